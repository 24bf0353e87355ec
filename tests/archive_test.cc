// Archives: a deleted sandbox's files kept and restored into a new one;
// a long-stopped sandbox's files archived and restored at its start; both
// byte for byte (content, modes, owners, links, holes, removed files), a
// corrupt archive refused, and paddockd killed mid-way losing nothing.
#include <atomic>
#include <set>
#include <thread>

#include "daemon_fixture.h"

namespace paddock::testing {
namespace {

class ArchiveTest : public DaemonTest {
 protected:
  json Exec(const std::string& id, const std::string& cmd) {
    return Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", cmd}, {"timeout", 120}});
  }

  std::string Create(const json& body) { return Must("POST", "/v1/sandboxes", body, 201)["id"]; }

  // Files of every kind a workspace holds, and one the template had, removed.
  void Populate(const std::string& id, int random_mb = 1) {
    json r = Exec(id, "set -e; mkdir -p /data/sub /other; echo hello > /data/a; chmod 0751 /data/a; "
                      "chown 1000:1001 /data/a; ln -s ../a /data/sub/rel; ln -s /etc/passwd /data/abs; "
                      "ln /data/a /data/hard; mkfifo -m 0620 /data/fifo; chmod 4755 /data/sub; "
                      "head -c " + std::to_string(random_mb) + "M /dev/urandom > /data/rand; "
                      "truncate -s 100M /data/sparse; echo tail >> /data/sparse; "
                      "touch -d '2020-01-02 03:04:05' /data/a; echo other > /other/o; "
                      "rm /etc/timezone; echo $?");
    ASSERT_EQ(r.value("exit_code", -1), 0) << r.dump();
  }

  // What the sandbox sees of its files: one line each, with content sums.
  std::string Manifest(const std::string& id, const std::string& paths = "/data /other /etc/timezone") {
    json r = Exec(id, "find " + paths + " -xdev -printf '%p %y %m %U:%G %s %l %T@\\n' 2>&1 | sort; "
                      "find " + paths + " -xdev -type f -exec md5sum {} + 2>/dev/null | sort; du -k /data/sparse");
    return r.value("stdout", "") + r.value("stderr", "");
  }

  // The lines of `a` and `b` that the other lacks.
  static std::string Diff(const std::string& a, const std::string& b) {
    auto lines = [](const std::string& s) {
      std::multiset<std::string> out;
      size_t i = 0;
      for (size_t j; (j = s.find('\n', i)) != std::string::npos; i = j + 1) out.insert(s.substr(i, j - i));
      return out;
    };
    auto la = lines(a), lb = lines(b);
    std::string out;
    for (const auto& l : la)
      if (!lb.count(l)) out += "- " + l + "\n";
    for (const auto& l : lb)
      if (!la.count(l)) out += "+ " + l + "\n";
    return out;
  }

  json Get(const std::string& id) { return Must("GET", "/v1/sandboxes/" + id); }

  bool WaitFor(const std::string& id, const std::function<bool(const json&)>& done) {
    for (int i = 0; i < 300; ++i) {  // bounded: 15 s
      if (done(Get(id))) return true;
      ::usleep(50000);
    }
    return false;
  }

  std::string StateDir() { return state_->path() + "/state"; }
};

TEST_F(ArchiveTest, KeptDataRestoresByteForByteIntoANewSandbox) {
  std::string id = Create({{"template", "host"}, {"name", "work"}});
  Populate(id);
  std::string before = Manifest(id);
  ASSERT_NE(before.find("/data/fifo p 620"), std::string::npos) << before;
  ASSERT_NE(before.find("find: '/etc/timezone': No such file"), std::string::npos) << before;

  json kept = Must("DELETE", "/v1/sandboxes/" + id + "?keep_data=1");
  EXPECT_EQ(kept["sandbox"], id);
  EXPECT_EQ(kept["sandbox_name"], "work");
  EXPECT_EQ(kept["path"], "/");
  EXPECT_EQ(kept["sha256"].get<std::string>().size(), 64u);
  EXPECT_LT(kept["size"].get<int64_t>(), 4 << 20) << "the 100 MB hole is not stored";
  MustFail("GET", "/v1/sandboxes/" + id, "", 404);
  std::string arc = kept["id"];
  EXPECT_TRUE(PathExists(StateDir() + "/archives/" + arc + ".tar.zst"));
  EXPECT_EQ(Must("GET", "/v1/archives")["archives"][0]["id"], arc);
  EXPECT_NE(api().Send("GET", "/metrics")->body.find("\npaddock_archives 1\n"), std::string::npos);

  std::string restored = Create({{"restore", arc}, {"name", "work"}});
  EXPECT_EQ(Get(restored)["template"], "host");
  EXPECT_EQ(Diff(before, Manifest(restored)), "");
  // The archive stays until removed; a second restore is as good.
  std::string again = Create({{"restore", arc}});
  EXPECT_EQ(Diff(before, Manifest(again)), "");

  Must("DELETE", "/v1/archives/" + arc, nullptr, 204);
  EXPECT_FALSE(PathExists(StateDir() + "/archives/" + arc + ".tar.zst"));
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", json{{"restore", arc}}.dump(), 404).find(arc), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"restore":"x","template":"busybox"})", 400).find("restore"),
            std::string::npos);
}

TEST_F(ArchiveTest, KeepDataOfOnePathAndAFailedExportDeletesNothing) {
  std::string id = Create({{"template", "host"}});
  Populate(id);
  std::string data = Manifest(id, "/data");
  // Nothing under /nowhere was written: no archive, and no delete.
  EXPECT_NE(MustFail("DELETE", "/v1/sandboxes/" + id + "?keep_data=1&path=/nowhere", "", 404).find("not deleted"),
            std::string::npos);
  EXPECT_EQ(Get(id)["state"], "running");
  EXPECT_NE(MustFail("DELETE", "/v1/sandboxes/" + id + "?keep_data=1&path=../x", "", 400).find("path"),
            std::string::npos);
  EXPECT_TRUE(Must("GET", "/v1/archives")["archives"].empty());

  // Through the CLI, as a user would.
  std::string cli = "PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH;
  std::string out = Shell(cli + " rm --keep-data --path /data/ " + id);
  ASSERT_EQ(out.rfind(id + " arc-", 0), 0u) << out;
  std::string arc = out.substr(id.size() + 1, out.size() - id.size() - 2);
  EXPECT_NE(Shell(cli + " archive ls").find(arc), std::string::npos);
  EXPECT_EQ(Must("GET", "/v1/archives/" + arc)["path"], "/data");
  std::string restored = Shell(cli + " create --restore " + arc);
  restored.pop_back();
  EXPECT_EQ(Diff(data, Manifest(restored, "/data")), "");
  EXPECT_EQ(Exec(restored, "test -e /other/o; echo $?")["stdout"], "1\n") << "only /data was kept";
  EXPECT_EQ(Shell(cli + " archive rm " + arc), arc + "\n");
}

TEST_F(ArchiveTest, StoppedPastItsAgeItsFilesAreArchivedAndStartRestoresThem) {
  std::string id = Create({{"template", "host"}, {"archive_after", 1}});
  Populate(id);
  std::string before = Manifest(id);
  Must("POST", "/v1/sandboxes/" + id + "/stop");
  ASSERT_TRUE(WaitFor(id, [](const json& s) { return s.value("archived", false); })) << Get(id).dump();
  json s = Get(id);
  EXPECT_GT(s["archive_size"].get<int64_t>(), 0);
  EXPECT_FALSE(s["archived_at"].is_null());
  EXPECT_FALSE(PathExists(StateDir() + "/sandboxes/" + id + "/upper")) << "the folder is gone";
  EXPECT_TRUE(PathExists(StateDir() + "/sandboxes/.archived/" + id + ".tar.zst"));
  EXPECT_NE(api().Send("GET", "/metrics")->body.find("\npaddock_sandboxes_archived 1\n"), std::string::npos);

  std::string listed = Shell("PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH + " ls");
  EXPECT_NE(listed.find(id), std::string::npos);
  EXPECT_NE(listed.find(" archived "), std::string::npos) << listed;

  // It survives a restart of paddockd as it is.
  StopDaemon(SIGTERM);
  StartDaemon();
  EXPECT_TRUE(Get(id)["archived"].get<bool>());

  json started = Must("POST", "/v1/sandboxes/" + id + "/start");
  EXPECT_EQ(started["state"], "running");
  EXPECT_FALSE(started["archived"].get<bool>());
  EXPECT_GE(started["restore_ms"].get<int64_t>(), 0);
  EXPECT_EQ(Diff(before, Manifest(id)), "");
  EXPECT_FALSE(PathExists(StateDir() + "/sandboxes/.archived/" + id + ".tar.zst"));
  // Running, it is not archived again; -1 never archives.
  std::string never = Create({{"template", "busybox"}, {"archive_after", -1}});
  Must("POST", "/v1/sandboxes/" + never + "/stop");
  ::usleep(1500000);
  EXPECT_FALSE(Get(never)["archived"].get<bool>());
  EXPECT_FALSE(Get(id)["archived"].get<bool>());
  EXPECT_NE(MustFail("POST", "/v1/sandboxes/" + id + "/archive", "", 409).find("stopped"), std::string::npos);
}

// More due at once than the reaper archives at a time: all are archived,
// a couple at a time, and a timeout due meanwhile still fires.
TEST_F(ArchiveTest, ManyDueAtOnceAreAllArchived) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(Create({{"template", "busybox"}, {"archive_after", 1}}));
    Exec(ids.back(), "head -c 4194304 /dev/urandom > /data.bin");
  }
  for (const auto& id : ids) Must("POST", "/v1/sandboxes/" + id + "/stop");
  std::string timed = Create({{"template", "busybox"}, {"timeout", 2}});
  for (const auto& id : ids)
    EXPECT_TRUE(WaitFor(id, [](const json& s) { return s.value("archived", false); })) << Get(id).dump();
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {  // bounded: 10 s
    auto r = api().Send("GET", "/v1/sandboxes/" + timed);
    gone = r.ok() && r->status == 404;
    if (!gone) ::usleep(50000);
  }
  EXPECT_TRUE(gone) << "the timeout fired";
  json started = Must("POST", "/v1/sandboxes/" + ids[0] + "/start");
  EXPECT_EQ(Exec(ids[0], "stat -c %s /data.bin")["stdout"], "4194304\n");
}

TEST_F(ArchiveTest, ACorruptArchiveIsReportedAndNothingIsHalfRestored) {
  std::string id = Create({{"template", "host"}});
  Populate(id);
  Must("POST", "/v1/sandboxes/" + id + "/stop");
  json s = Must("POST", "/v1/sandboxes/" + id + "/archive");
  ASSERT_TRUE(s["archived"].get<bool>());
  std::string file = StateDir() + "/sandboxes/.archived/" + id + ".tar.zst";
  Shell("printf 'X' | dd of=" + file + " bs=1 seek=" + std::to_string(s["archive_size"].get<int64_t>() / 2) +
        " conv=notrunc 2>/dev/null");
  // Data lost on the host: 502, as for a layer whose digest is wrong.
  std::string err = MustFail("POST", "/v1/sandboxes/" + id + "/start", "", 502);
  EXPECT_NE(err.find("corrupt"), std::string::npos) << err;
  s = Get(id);
  EXPECT_EQ(s["state"], "stopped");
  EXPECT_TRUE(s["archived"].get<bool>());
  EXPECT_FALSE(PathExists(StateDir() + "/sandboxes/" + id + "/upper"));
  EXPECT_FALSE(PathExists(StateDir() + "/sandboxes/" + id + "/upper.restore"));
}

// paddockd killed while it archives, then while it restores: whichever
// moment the kill hits, the files come back whole.
TEST_F(ArchiveTest, KillNineMidArchiveAndMidRestoreLosesNothing) {
  std::string id = Create({{"template", "host"}, {"memory", "1g"}});
  Populate(id, 192);  // a few hundred ms to archive
  std::string before = Manifest(id);
  Must("POST", "/v1/sandboxes/" + id + "/stop");
  ::sync();

  std::thread archiving([&] { (void)api().Send("POST", "/v1/sandboxes/" + id + "/archive"); });
  ::usleep(150000);
  StopDaemon(SIGKILL);
  archiving.join();
  StartDaemon();
  json s = Get(id);
  EXPECT_EQ(s["state"], "stopped");
  bool archived = s["archived"].get<bool>();
  RecordProperty("killed_after_archive", archived);
  EXPECT_EQ(PathExists(StateDir() + "/sandboxes/" + id + "/upper"), !archived) << s.dump();
  EXPECT_EQ(PathExists(StateDir() + "/sandboxes/.archived/" + id + ".tar.zst"), archived) << s.dump();
  EXPECT_FALSE(PathExists(StateDir() + "/sandboxes/.archived/" + id + ".tar.zst.partial"));
  if (!archived) Must("POST", "/v1/sandboxes/" + id + "/archive");

  std::thread starting([&] { (void)api().Send("POST", "/v1/sandboxes/" + id + "/start"); });
  ::usleep(150000);
  StopDaemon(SIGKILL);
  starting.join();
  ReapOrphans();
  StartDaemon();
  EXPECT_FALSE(PathExists(StateDir() + "/sandboxes/" + id + "/upper.restore"));
  s = Get(id);
  RecordProperty("killed_after_restore", s["state"] == "running");
  if (s["state"] != "running") Must("POST", "/v1/sandboxes/" + id + "/start");
  EXPECT_EQ(Diff(before, Manifest(id)), "");
  EXPECT_FALSE(PathExists(StateDir() + "/sandboxes/.archived/" + id + ".tar.zst"));
}

}  // namespace
}  // namespace paddock::testing
