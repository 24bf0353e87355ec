// Warm shells: Create takes a sandbox-to-be from the pool, gives it the
// sandbox's id, name, folder and limits, and launches init in it; the pool
// refills; shells hold none of the daemon's files; nothing outlives the manager.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "sandbox_fixture.h"

namespace paddock::testing {
namespace {

class WarmShellTest : public SandboxTest {
 protected:
  // Swaps the suite's manager for one that keeps `n` busybox shells warm.
  void UseWarmManager(size_t n) {
    delete manager_;
    ManagerOptions opts = Options();
    opts.warm_shells = n;
    opts.warm_templates = {"busybox"};
    auto m = SandboxManager::Open(opts);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manager_ = m->release();
  }
  // Back to the suite's plain manager; the warm one must take its shells along.
  void UseColdManager() {
    for (const auto& info : manager_->List()) EXPECT_TRUE(manager_->Delete(info.id).ok());
    delete manager_;
    auto m = SandboxManager::Open(Options());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manager_ = m->release();
  }
  static bool WaitForWarmShells(size_t n) {
    for (int i = 0; i < 2000; ++i) {
      if (manager_->warm_shells_ready() == n) return true;
      ::usleep(2000);
    }
    return false;
  }
  static size_t WarmFolders() {
    auto names = ListDir(state_->path() + "/sandboxes");
    return std::count_if(names.begin(), names.end(),
                         [](const std::string& n) { return n.rfind("warm-", 0) == 0; });
  }
};

// The identity in init's environment, read from the host (init is not
// dumpable: the sandbox's own processes cannot read its environ).
std::string InitIdentity(SandboxManager& manager, const std::string& id) {
  auto info = manager.Get(id);
  if (!info.ok()) return info.status().ToString();
  std::string environ = ReadFile("/proc/" + std::to_string(info->init_pid) + "/environ").value();
  for (size_t at = 0; at < environ.size();) {
    size_t end = environ.find('\0', at);
    std::string var = environ.substr(at, end - at);
    if (var.rfind("PADDOCK_SANDBOX_ID=", 0) == 0) return var;
    at = end == std::string::npos ? environ.size() : end + 1;
  }
  return "";
}

TEST_F(WarmShellTest, CreateTakesAWarmShellAndGivesItTheSandboxIdentity) {
  UseWarmManager(2);
  ASSERT_TRUE(WaitForWarmShells(2));
  EXPECT_EQ(WarmFolders(), 2u);

  SandboxSpec spec;
  spec.name = "warmbox";
  spec.template_name = "busybox";
  spec.limits.memory_bytes = 64 << 20;
  spec.limits.pids = 40;
  spec.env = {{"GREETING", "hi"}};
  SandboxInfo sb = Create(spec);
  ASSERT_FALSE(sb.id.empty());
  EXPECT_EQ(Sh(sb.id, "hostname; cat /etc/hostname; grep warmbox /etc/hosts | cut -f2"),
            "warmbox\nwarmbox\nwarmbox\n");
  EXPECT_EQ(Sh(sb.id, "echo $GREETING; tr '\\0' ' ' < /proc/1/cmdline"),
            "hi\npaddock-init --listen-fd 3 ");
  EXPECT_EQ(InitIdentity(*manager_, sb.id), "PADDOCK_SANDBOX_ID=" + sb.id);
  // The cgroup carries the sandbox's id and its limits; inside, it is the root.
  EXPECT_EQ(Sh(sb.id, "cat /proc/self/cgroup | grep -c ':/$'"),
            Sh(sb.id, "wc -l < /proc/self/cgroup"));
  if (std::string(manager_->cgroup_version()) == "v1") {
    std::string dir = "/sys/fs/cgroup/memory/paddock/" + sb.id;
    auto limit = ReadFile(dir + "/memory.limit_in_bytes");
    ASSERT_TRUE(limit.ok()) << limit.status().ToString();
    EXPECT_EQ(*limit, std::to_string(64 << 20) + "\n");
    auto pids = ReadFile("/sys/fs/cgroup/pids/paddock/" + sb.id + "/pids.max");
    ASSERT_TRUE(pids.ok());
    EXPECT_EQ(*pids, "40\n");
  }
  // Files written by root inside belong to the sandbox's own id range.
  Sh(sb.id, "echo data > /root-file");
  struct stat st;
  ASSERT_EQ(::stat((sb.dir + "/upper/root-file").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, sb.ids.host_first);

  // The pool refills behind the create.
  EXPECT_TRUE(WaitForWarmShells(2));
  EXPECT_EQ(WarmFolders(), 2u);

  // A warm-born sandbox stops and starts like any other, keeping its files.
  ASSERT_TRUE(manager_->Stop(sb.id, 0).ok());
  ASSERT_TRUE(manager_->Start(sb.id).ok());
  EXPECT_EQ(Sh(sb.id, "cat /root-file; hostname"), "data\nwarmbox\n");
  UseColdManager();
}

TEST_F(WarmShellTest, ConcurrentCreatesDrainThePoolAndFallBackToColdBoots) {
  UseWarmManager(2);
  ASSERT_TRUE(WaitForWarmShells(2));
  std::vector<std::thread> threads;
  std::vector<std::string> ids(6);
  for (size_t i = 0; i < ids.size(); ++i)
    threads.emplace_back([&, i] {
      SandboxSpec spec;
      spec.template_name = "busybox";
      auto info = manager_->Create(spec);
      EXPECT_TRUE(info.ok()) << info.status().ToString();
      if (info.ok()) ids[i] = info->id;
    });
  for (auto& t : threads) t.join();
  for (const auto& id : ids) {
    ASSERT_FALSE(id.empty());
    EXPECT_EQ(InitIdentity(*manager_, id), "PADDOCK_SANDBOX_ID=" + id);
  }
  UseColdManager();
}

TEST_F(WarmShellTest, WarmShellsHoldNoneOfTheDaemonsFiles) {
  // A shell is cloned from the daemon; were it to keep the daemon's fds while
  // it waits, a connection the daemon closes would stay open. Our pipe stands
  // in for such a connection: its write end is open while the shells are made.
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UseWarmManager(2);
  ASSERT_TRUE(WaitForWarmShells(2));
  ::close(p[1]);
  struct pollfd pfd = {p[0], POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 2000), 1) << "a warm shell holds the pipe's write end";
  EXPECT_TRUE(pfd.revents & POLLHUP);
  ::close(p[0]);
  UseColdManager();
}

}  // namespace
}  // namespace paddock::testing
