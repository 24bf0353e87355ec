// paddockd killed with SIGKILL, mid-work and at rest: sandboxes are adopted,
// finished, rolled back or marked, and nothing leaks.
#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "daemon_fixture.h"

namespace paddock::testing {
namespace {

TEST_F(DaemonTest, KillNineDuringFiftyParallelCreates) {
  std::atomic<int> created{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i)
    threads.emplace_back([&] {
      auto r = api().Send("POST", "/v1/sandboxes", "{}");
      if (r.ok() && r->status == 201) ++created;
    });
  for (int i = 0; i < 30000 && created < 10; ++i) ::usleep(1000);  // mid-way (bounded: 30 s)
  ASSERT_GE(created.load(), 10) << DaemonLog();
  StopDaemon(SIGKILL);
  for (auto& t : threads) t.join();
  StartDaemon();
  EXPECT_NE(DaemonLog().find("msg=recovered"), std::string::npos);
  json list = Must("GET", "/v1/sandboxes");
  // Every record left is a usable sandbox (a create that never got its
  // answer may still have completed); none is half made.
  for (const auto& s : list["sandboxes"]) {
    std::string id = s["id"];
    ASSERT_EQ(s["state"], "running") << s.dump();
    EXPECT_EQ(Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", "echo ok"}})["stdout"], "ok\n");
  }
  EXPECT_GE(list["sandboxes"].size(), static_cast<size_t>(created.load()));
  // Kernel state matches the records exactly: one init, one cgroup (in each
  // hierarchy) and one folder per record, nothing else but the new daemon's
  // own warm shells (the killed daemon's were swept): 4 per template by default.
  for (int i = 0; i < 1000; ++i) {  // bounded: 10 s for the pool to fill
    auto metrics = api().Send("GET", "/metrics");
    if (metrics.ok() && metrics->body.find("paddock_warm_shells 8\n") != std::string::npos) break;
    ::usleep(10000);
  }
  std::set<std::string> ids;
  for (const auto& s : list["sandboxes"]) ids.insert(s["id"].get<std::string>());
  auto drop_warm = [](std::set<std::string>& names) {
    size_t warm = 0;
    for (auto it = names.begin(); it != names.end();)
      if (it->rfind("warm-", 0) == 0) {
        it = names.erase(it);
        ++warm;
      } else {
        ++it;
      }
    return warm;
  };
  ReapOrphans();
  HostSnapshot now = TakeHostSnapshot();
  EXPECT_EQ(now.init_processes.size(), before_.init_processes.size() + ids.size());
  std::set<std::string> cgroup_names;
  for (const auto& cg : now.cgroups)
    if (std::find(before_.cgroups.begin(), before_.cgroups.end(), cg) == before_.cgroups.end())
      cgroup_names.insert(cg.substr(cg.rfind('/') + 1));
  EXPECT_EQ(drop_warm(cgroup_names), 8u);
  EXPECT_EQ(cgroup_names, ids);
  std::set<std::string> folders;
  if (DIR* d = ::opendir((state_->path() + "/state/sandboxes").c_str())) {
    while (struct dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') folders.insert(e->d_name);
    ::closedir(d);
  }
  EXPECT_EQ(drop_warm(folders), 8u);
  EXPECT_EQ(folders, ids);
}

// A delete answers before its teardown (cgroup, network slot, files) is
// done; paddockd killed right after fifty of them finishes that at start-up.
TEST_F(DaemonTest, KillNineRightAfterFiftyDeletesLeavesNothingBehind) {
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(Must("POST", "/v1/sandboxes", json::object(), 201)["id"]);
  std::vector<std::thread> threads;
  std::atomic<int> deleted{0};
  for (const auto& id : ids)
    threads.emplace_back([&, id] {
      auto r = api().Send("DELETE", "/v1/sandboxes/" + id);
      if (r.ok() && r->status == 204) ++deleted;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(deleted.load(), 50);
  StopDaemon(SIGKILL);
  ReapOrphans();
  StartDaemon();
  EXPECT_TRUE(Must("GET", "/v1/sandboxes")["sandboxes"].empty());
  EXPECT_TRUE(ListDir(state_->path() + "/state/trash").empty());
  for (const auto& id : ids) {
    EXPECT_FALSE(PathExists(state_->path() + "/state/sandboxes/" + id)) << id;
    for (const auto& cg : TakeHostSnapshot().cgroups) EXPECT_EQ(cg.find(id), std::string::npos) << cg;
  }
  // The fixture then stops paddockd and checks no device, mount or process is left.
}

TEST_F(DaemonTest, RestartAdoptsTwoHundredRunningAndPausedSandboxes) {
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) ids.push_back(Must("POST", "/v1/sandboxes", {{"template", "busybox"}}, 201)["id"]);
  for (int i = 0; i < 200; i += 2) Must("POST", "/v1/sandboxes/" + ids[i] + "/pause");
  StopDaemon(SIGKILL);
  StartDaemon();
  EXPECT_NE(DaemonLog().find("adopted=200"), std::string::npos) << DaemonLog();
  json list = Must("GET", "/v1/sandboxes");
  ASSERT_EQ(list["sandboxes"].size(), 200u);
  std::map<std::string, std::string> state;
  for (const auto& s : list["sandboxes"]) state[s["id"]] = s["state"];
  for (int i = 0; i < 200; ++i) EXPECT_EQ(state[ids[i]], i % 2 ? "running" : "paused") << i;
  EXPECT_EQ(Must("POST", "/v1/sandboxes/" + ids[1] + "/exec", {{"command", "echo adopted"}})["stdout"], "adopted\n");
  EXPECT_EQ(Must("POST", "/v1/sandboxes/" + ids[0] + "/resume")["state"], "running");
}

// One paddockd per host: a second one, over another state folder, would
// sweep the first's cgroups (killing its sandboxes) and take its bridge and
// table. It waits for the first to stop (--host-lock-wait), then gives up,
// naming it, having touched nothing; a restart that overlaps the old
// daemon's exit waits for it and adopts its sandboxes.
TEST_F(DaemonTest, ASecondPaddockdWaitsForTheFirstAndLeavesItsSandboxesAlone) {
  std::string id = Must("POST", "/v1/sandboxes", json::object(), 201)["id"];
  TempDir other;
  std::string out = Shell(std::string(PADDOCKD_PATH) + " --state-dir " + other.path() + "/state --socket " +
                          other.path() + "/api.sock --init " + PADDOCK_INIT_PATH +
                          " --host-lock-wait 1 2>&1; echo rc=$?");
  EXPECT_NE(out.find("another sandbox manager runs on this host"), std::string::npos) << out;
  EXPECT_NE(out.find("pid " + std::to_string(pid_) + ", state folder " + state_->path() + "/state"),
            std::string::npos) << out;
  EXPECT_NE(out.find("waited 1000 ms"), std::string::npos) << out;
  EXPECT_NE(out.find("rc=1"), std::string::npos) << out;
  EXPECT_FALSE(PathExists(other.path() + "/state"));  // it made nothing
  EXPECT_EQ(Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", "echo ok"}})["stdout"], "ok\n");

  // A restart whose new daemon starts before the old one has stopped.
  pid_t first = pid_;
  StartDaemon({"--host-lock-wait", "60"});  // the first still answers its health check
  ASSERT_NE(pid_, first);
  ::kill(first, SIGTERM);
  int status = 0;
  ::waitpid(first, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  bool served = false;
  for (int i = 0; i < 1500 && !served; ++i) {  // bounded: 15 s for the second to take over
    auto r = api().Send("GET", "/v1/sandboxes/" + id);
    served = r.ok() && r->status == 200;
    if (!served) ::usleep(10000);
  }
  ASSERT_TRUE(served) << DaemonLog();
  EXPECT_EQ(Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", "echo again"}})["stdout"], "again\n");
  EXPECT_NE(DaemonLog().find("adopted=1"), std::string::npos) << DaemonLog();
}

}  // namespace
}  // namespace paddock::testing
