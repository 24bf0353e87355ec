// Snapshots: a sandbox's files kept as a layer that outlives it, sandboxes
// created from it, rollbacks to it; checked byte for byte by manifests of
// the sandbox's root as its init sees it.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "sandbox_fixture.h"

namespace paddock::testing {
namespace {

namespace fs = std::filesystem;

class SnapshotTest : public SandboxTest {
 protected:
  void TearDown() override {
    SandboxTest::TearDown();
    if (!manager_) return;
    // Children before parents: the newest first.
    auto snaps = manager_->ListSnapshots();
    for (auto it = snaps.rbegin(); it != snaps.rend(); ++it) {
      Status s = manager_->RemoveSnapshot(it->id);
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    EXPECT_TRUE(ListDir(state_->path() + "/snapshots").empty());
  }

  // One line per file under `dirs` of the sandbox's root: type, mode,
  // owner (as inside), size, content hash, symlink target, user xattrs.
  static std::string Manifest(const SandboxInfo& info, const std::vector<std::string>& dirs) {
    std::string root = "/proc/" + std::to_string(info.init_pid) + "/root";
    std::map<std::string, std::string> lines;
    auto describe = [&](const std::string& path) {
      std::string host = root + path;
      struct stat st;
      if (::lstat(host.c_str(), &st) != 0) {
        lines[path] = "absent";
        return;
      }
      auto inside = [&](uid_t id) { return id - info.ids.host_first; };
      std::ostringstream d;
      d << std::oct << st.st_mode << std::dec << " " << inside(st.st_uid) << ":" << inside(st.st_gid);
      if (!S_ISDIR(st.st_mode)) d << " links=" << st.st_nlink;
      if (S_ISREG(st.st_mode)) {
        auto content = ReadFile(host);
        d << " " << st.st_size << " " << std::hash<std::string>{}(content.ok() ? *content : "?");
      } else if (S_ISLNK(st.st_mode)) {
        d << " -> " << fs::read_symlink(host).string();
      }
      char names[4096];
      ssize_t n = ::llistxattr(host.c_str(), names, sizeof names);
      for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
        char value[256];
        ssize_t len = ::lgetxattr(host.c_str(), names + i, value, sizeof value);
        d << " " << (names + i) << "=" << std::string(value, len > 0 ? static_cast<size_t>(len) : 0);
      }
      lines[path] = d.str();
    };
    for (const auto& dir : dirs) {
      describe(dir);
      std::error_code ec;
      if (!fs::is_directory(fs::symlink_status(root + dir, ec))) continue;
      for (auto it = fs::recursive_directory_iterator(root + dir, ec); it != fs::recursive_directory_iterator();
           it.increment(ec))
        describe(it->path().string().substr(root.size()));
    }
    std::string out;
    for (const auto& [path, line] : lines) out += path + " " + line + "\n";
    return out;
  }

  // Brings the sandbox to `state` from running.
  void Enter(const std::string& id, SandboxState state) {
    if (state == SandboxState::kPaused) {
      ASSERT_TRUE(manager_->Pause(id).ok());
    }
    if (state == SandboxState::kStopped) {
      ASSERT_TRUE(manager_->Stop(id, 0).ok());
    }
  }
  // Back to running from `state`.
  void Leave(const std::string& id, SandboxState state) {
    if (state == SandboxState::kPaused) {
      ASSERT_TRUE(manager_->Resume(id).ok());
    }
    if (state == SandboxState::kStopped) {
      ASSERT_TRUE(manager_->Start(id).ok());
    }
  }
  SandboxInfo Info(const std::string& id) {
    auto info = manager_->Get(id);
    EXPECT_TRUE(info.ok()) << info.status().ToString();
    return info.ok() ? *info : SandboxInfo{};
  }
  static void SetXattr(const SandboxInfo& info, const std::string& path, const std::string& value) {
    std::string host = "/proc/" + std::to_string(info.init_pid) + "/root" + path;
    ASSERT_EQ(::lsetxattr(host.c_str(), "user.cycle", value.data(), value.size(), 0), 0) << host;
  }

  const std::vector<std::string> kDirs = {"/data", "/usr", "/bin/vi", "/bin/ls"};
};

TEST_F(SnapshotTest, TwentyRollbacksInEveryStateAreByteExact) {
  SandboxSpec spec;
  spec.template_name = "busybox";
  std::string id = Create(spec).id;
  // Whiteouts and an opaque folder over the template's layer.
  Sh(id, "rm /bin/vi && rm -rf /usr && mkdir -p /usr/local && echo kept > /usr/local/file");
  const SandboxState states[] = {SandboxState::kRunning, SandboxState::kPaused, SandboxState::kStopped};
  for (int cycle = 0; cycle < 20; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle));
    std::string c = std::to_string(cycle);
    Sh(id, "mkdir -p /data/d" + c + " && head -c " + std::to_string(1000 + cycle * 977) +
               " /dev/urandom > /data/d" + c + "/blob && printf v" + c + " > /data/d" + c +
               "/f && chmod 0640 /data/d" + c + "/f && chown 1000:2000 /data/d" + c +
               "/f && ln -sfn d" + c + "/f /data/latest && chmod 4755 /data/d" + c + "/blob && ln /data/d" + c +
               "/blob /data/d" + c + "/hard");
    SetXattr(Info(id), "/data/d" + c + "/f", "value-" + c);
    std::string before = Manifest(Info(id), kDirs);
    ASSERT_NE(before.find("/data/latest"), std::string::npos);
    ASSERT_NE(before.find("/bin/vi absent"), std::string::npos);
    ASSERT_NE(before.find("/hard 104755 0:0 links=2"), std::string::npos) << before;

    SandboxState state = states[cycle % 3];
    Enter(id, state);
    auto snap = manager_->CreateSnapshot(id, "cycle-" + c);
    ASSERT_TRUE(snap.ok()) << snap.status().ToString();
    EXPECT_EQ(Info(id).state, state);  // a snapshot changes nothing about the sandbox
    EXPECT_EQ(snap->source_id, id);
    EXPECT_GT(snap->size, 0);
    Leave(id, state);

    // Change, delete, add: files, the whiteout, the opaque folder.
    Sh(id, "rm -rf /data/d" + c + " && echo junk > /data/junk && chmod 777 /data && ln -s busybox /bin/vi && "
           "rm /bin/ls && rm -rf /usr/local && echo other > /usr/x");
    ASSERT_NE(Manifest(Info(id), kDirs), before);

    Enter(id, state);
    Status rolled = manager_->Rollback(id, "cycle-" + c);
    ASSERT_TRUE(rolled.ok()) << rolled.ToString();
    // Running and paused sandboxes come back running (their processes
    // restarted); a stopped one stays stopped.
    EXPECT_EQ(Info(id).state, state == SandboxState::kStopped ? SandboxState::kStopped : SandboxState::kRunning);
    if (state == SandboxState::kStopped) {
      ASSERT_TRUE(manager_->Start(id).ok());
    }
    EXPECT_EQ(Manifest(Info(id), kDirs), before);
  }
  EXPECT_EQ(manager_->ListSnapshots().size(), 20u);
}

TEST_F(SnapshotTest, ThirtyTwoSandboxesFromOneSnapshotStartEqualAndDiverge) {
  SandboxSpec spec;
  spec.template_name = "busybox";
  SandboxInfo source = Create(spec);
  Sh(source.id, "mkdir -p /data && head -c 300000 /dev/urandom > /data/big && echo hi > /data/small && "
                "chown -R 42:43 /data && rm /bin/vi");
  std::string expected = Manifest(source, kDirs);
  auto snap = manager_->CreateSnapshot(source.id, "base");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  // The snapshot outlives its source.
  ASSERT_TRUE(manager_->Delete(source.id).ok());

  std::vector<SandboxInfo> made;
  for (int i = 0; i < 32; ++i) {
    SandboxSpec from;
    if (i % 2) from.snapshot = "base";
    else from.template_name = snap->id;  // a snapshot goes where a template does
    made.push_back(Create(from));
    ASSERT_FALSE(made.back().id.empty());
    EXPECT_EQ(made.back().snapshot_id, snap->id);
    EXPECT_EQ(made.back().template_name, "busybox");
  }
  for (const auto& sb : made) EXPECT_EQ(Manifest(sb, kDirs), expected) << sb.id;
  for (size_t i = 0; i < made.size(); ++i) Sh(made[i].id, "echo " + std::to_string(i) + " > /data/mine && rm /data/small");
  for (size_t i = 0; i < made.size(); ++i)
    EXPECT_EQ(Sh(made[i].id, "cat /data/mine; ls /data"), std::to_string(i) + "\nbig\nmine\n");

  // In use: not removable; a snapshot of one of them stacks over it.
  auto removed = manager_->RemoveSnapshot("base");
  EXPECT_EQ(removed.code(), StatusCode::kFailedPrecondition) << removed.ToString();
  auto child = manager_->CreateSnapshot(made[0].id, "child");
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  EXPECT_EQ(child->parent, snap->id);
  SandboxSpec grand;
  grand.snapshot = "child";
  SandboxInfo g = Create(grand);
  EXPECT_EQ(Sh(g.id, "cat /data/mine; ls /data"), "0\nbig\nmine\n");
  for (const auto& sb : made) ASSERT_TRUE(manager_->Delete(sb.id).ok());
  ASSERT_TRUE(manager_->Delete(g.id).ok());
  removed = manager_->RemoveSnapshot("base");
  EXPECT_EQ(removed.code(), StatusCode::kFailedPrecondition) << "child stacks over it";
  EXPECT_NE(removed.message().find("child"), std::string::npos) << removed.ToString();
}

TEST_F(SnapshotTest, BadRequestsAreClearAndStoreNothing) {
  SandboxSpec spec;
  spec.template_name = "busybox";
  SandboxInfo a = Create(spec);
  SandboxInfo host = Create();  // over the host template

  EXPECT_EQ(manager_->CreateSnapshot("no-such-sandbox", "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_->CreateSnapshot(a.id, "bad name!").status().code(), StatusCode::kInvalidArgument);
  auto named = manager_->CreateSnapshot(a.id, "taken");
  ASSERT_TRUE(named.ok());
  auto again = manager_->CreateSnapshot(a.id, "taken");
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  auto unnamed = manager_->CreateSnapshot(a.id, "");
  ASSERT_TRUE(unnamed.ok());
  EXPECT_EQ(manager_->ListSnapshots().size(), 2u);

  // A snapshot of other layers does not fit.
  Status other = manager_->Rollback(host.id, "taken");
  EXPECT_EQ(other.code(), StatusCode::kFailedPrecondition) << other.ToString();
  EXPECT_EQ(Info(host.id).state, SandboxState::kRunning);  // untouched
  EXPECT_EQ(manager_->Rollback(a.id, "nope").code(), StatusCode::kNotFound);
  // A rollback whose copy fails (the snapshot's files lost under it) leaves
  // the sandbox as it was: running, its files its own.
  Sh(a.id, "echo mine > /mine");
  auto lost = manager_->CreateSnapshot(a.id, "lost");
  ASSERT_TRUE(lost.ok());
  ASSERT_TRUE(RemoveTree(state_->path() + "/snapshots/" + lost->id).ok());
  EXPECT_FALSE(manager_->Rollback(a.id, "lost").ok());
  EXPECT_EQ(Info(a.id).state, SandboxState::kRunning);
  EXPECT_EQ(Sh(a.id, "cat /mine"), "mine\n");
  ASSERT_TRUE(manager_->RemoveSnapshot("lost").ok());

  SandboxSpec from;
  from.snapshot = "nope";
  EXPECT_EQ(manager_->Create(from).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_->RemoveSnapshot("nope").code(), StatusCode::kNotFound);
  ASSERT_TRUE(manager_->RemoveSnapshot("taken").ok());
  EXPECT_EQ(manager_->GetSnapshot("taken").status().code(), StatusCode::kNotFound);
  from.snapshot = named->id;
  EXPECT_EQ(manager_->Create(from).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_->ListSnapshots().size(), 1u);
}

}  // namespace
}  // namespace paddock::testing
