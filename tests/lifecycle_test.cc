// Pause/resume, stop/start, delete, and the transitions that are refused.
#include <atomic>
#include <thread>

#include "sandbox_fixture.h"

namespace paddock::testing {
namespace {

// Reads the counter a sandbox's loop writes to /tmp/c, through the host's
// view of its writable layer (works while the sandbox is frozen).
long Counter(const SandboxInfo& sb) {
  auto v = ReadFile(sb.dir + "/upper/tmp/c");
  return v.ok() ? std::atol(v->c_str()) : -1;
}

TEST_F(SandboxTest, PauseStopsACounterAndResumeRestartsIt) {
  SandboxInfo sb = Create();
  auto client = manager_->Connect(sb.id);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->Call({{"op", "spawn"},
                            {"argv", {"/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; sleep 0.01; done"}},
                            {"subscribe", false}})
                  .ok());
  while (Counter(sb) < 3) ::usleep(10000);
  ASSERT_TRUE(manager_->Pause(sb.id).ok());
  EXPECT_EQ(manager_->Get(sb.id)->state, SandboxState::kPaused);
  long frozen = Counter(sb);
  ::usleep(300000);
  EXPECT_EQ(Counter(sb), frozen);
  // Nothing runs in a paused sandbox, and it says so.
  agent::ExecOptions opts;
  opts.argv = {"/bin/true"};
  EXPECT_EQ(manager_->Exec(sb.id, opts).status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(manager_->Resume(sb.id).ok());
  for (int i = 0; i < 300 && Counter(sb) <= frozen + 3; ++i) ::usleep(10000);
  EXPECT_GT(Counter(sb), frozen + 3);
}

TEST_F(SandboxTest, StopThenStartKeepsFiles) {
  SandboxInfo sb = Create();
  Sh(sb.id, "echo kept > /root/file; mkdir -p /opt/app && echo v1 > /opt/app/v");
  pid_t first_init = sb.init_pid;
  ASSERT_TRUE(manager_->Stop(sb.id).ok());
  auto stopped = manager_->Get(sb.id);
  EXPECT_EQ(stopped->state, SandboxState::kStopped);
  EXPECT_EQ(stopped->init_pid, 0);
  EXPECT_EQ(::kill(first_init, 0), -1);  // init is gone
  agent::ExecOptions opts;
  opts.argv = {"/bin/true"};
  EXPECT_EQ(manager_->Exec(sb.id, opts).status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(manager_->Start(sb.id).ok());
  EXPECT_EQ(Sh(sb.id, "cat /root/file /opt/app/v"), "kept\nv1\n");
  EXPECT_EQ(Sh(sb.id, "cat /proc/1/comm"), "paddock-init\n");
}

// Restart and EnsureRunning are each one transition: racing each other and
// pauses, neither finds the sandbox moved under it half way (a stop then a
// start made by the caller would: "only a stopped sandbox can be started").
TEST_F(SandboxTest, RestartsAndResumesRacingPausesNeverFailHalfWay) {
  SandboxInfo sb = Create();
  std::vector<std::thread> threads;
  std::atomic<int> failed{0}, paused{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3; ++i) {
        Status s = t % 3 == 0   ? manager_->Restart(sb.id, 0)
                   : t % 3 == 1 ? manager_->EnsureRunning(sb.id, t < 3).status()
                                : manager_->Pause(sb.id);
        if (t % 3 == 2) {
          if (s.ok()) ++paused;
          else EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
        } else if (!s.ok()) {
          ADD_FAILURE() << s.ToString();
          ++failed;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed, 0);
  auto was = manager_->EnsureRunning(sb.id, true);
  ASSERT_TRUE(was.ok()) << was.status().ToString();
  EXPECT_EQ(manager_->Get(sb.id)->state, SandboxState::kRunning);
  EXPECT_EQ(Sh(sb.id, "echo up"), "up\n");
  // What each call says it found.
  ASSERT_TRUE(manager_->Pause(sb.id).ok());
  EXPECT_EQ(*manager_->EnsureRunning(sb.id, true), SandboxState::kPaused);
  EXPECT_EQ(*manager_->EnsureRunning(sb.id, true), SandboxState::kRunning);
  ASSERT_TRUE(manager_->Pause(sb.id).ok());
  pid_t init = manager_->Get(sb.id)->init_pid;
  EXPECT_EQ(*manager_->EnsureRunning(sb.id, false), SandboxState::kPaused);
  EXPECT_NE(manager_->Get(sb.id)->init_pid, init);  // booted afresh
  ASSERT_TRUE(manager_->Stop(sb.id, 0).ok());
  EXPECT_EQ(*manager_->EnsureRunning(sb.id, true), SandboxState::kStopped);
  EXPECT_EQ(Sh(sb.id, "echo up"), "up\n");
}

size_t OpenDescriptors() { return ListDir("/proc/self/fd").size(); }

// Each sandbox holds descriptors (its root mount, its init's pidfd) that a
// stop and a delete's teardown must close: none may be left behind.
TEST_F(SandboxTest, StopStartAndDeleteLeaveNoDescriptorOpen) {
  size_t before = OpenDescriptors();
  SandboxInfo sb = Create();
  EXPECT_GT(OpenDescriptors(), before);
  Sh(sb.id, "echo data > /root/f");
  ASSERT_TRUE(manager_->Stop(sb.id, 0).ok());
  EXPECT_EQ(OpenDescriptors(), before);
  ASSERT_TRUE(manager_->Start(sb.id).ok());
  EXPECT_EQ(Sh(sb.id, "cat /root/f"), "data\n");
  ASSERT_TRUE(manager_->Delete(sb.id).ok());
  manager_->FinishTeardowns();
  EXPECT_EQ(OpenDescriptors(), before);
}

TEST_F(SandboxTest, StopSendsSigtermFirst) {
  SandboxInfo sb = Create();
  auto client = manager_->Connect(sb.id);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->Call({{"op", "spawn"},
                            {"argv", {"/bin/sh", "-c", "trap 'echo term > /root/got; exit 0' TERM; while :; do sleep 0.05; done"}},
                            {"subscribe", false}})
                  .ok());
  ::usleep(100000);
  ASSERT_TRUE(manager_->Stop(sb.id, 5000).ok());
  EXPECT_EQ(*ReadFile(sb.dir + "/upper/root/got"), "term\n");
}

TEST_F(SandboxTest, StopKillsWhatIgnoresSigterm) {
  SandboxInfo sb = Create();
  auto client = manager_->Connect(sb.id);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->Call({{"op", "spawn"},
                            {"argv", {"/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"}},
                            {"subscribe", false}})
                  .ok());
  ASSERT_TRUE(manager_->Stop(sb.id, 200).ok());
  EXPECT_EQ(manager_->Get(sb.id)->state, SandboxState::kStopped);
}

// A stop in its grace period holds its sandbox's lock for seconds: List and
// the reaper's other actions must not wait for it.
TEST_F(SandboxTest, ASlowStopHoldsNeitherListNorOtherTimeouts) {
  SandboxSpec spec;
  spec.timeout_s = 1;
  spec.on_timeout = TimeoutAction::kStop;
  SandboxInfo slow = Create(spec);
  spec.on_timeout = TimeoutAction::kKill;
  SandboxInfo quick = Create(spec);
  auto client = manager_->Connect(slow.id);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->Call({{"op", "spawn"},
                            {"argv", {"/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"}},
                            {"subscribe", false}})
                  .ok());
  ::usleep(100000);
  // The slow one's stop waits the fixture's 2 s grace; the quick one's kill goes meanwhile.
  EXPECT_EQ(manager_->Reap(WallClockMillis() + 1500), 2);
  bool quick_gone = false;
  for (int i = 0; i < 150 && !quick_gone; ++i, ::usleep(10000))  // bounded: 1.5 s
    quick_gone = manager_->Get(quick.id).status().code() == StatusCode::kNotFound;
  EXPECT_TRUE(quick_gone);
  auto listed = manager_->List();  // answers from the published state, mid-stop
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id, slow.id);
  EXPECT_EQ(listed[0].state, SandboxState::kRunning);  // its stop has not finished
  manager_->FinishReaping();
  EXPECT_EQ(manager_->Get(slow.id)->state, SandboxState::kStopped);
}

TEST_F(SandboxTest, InvalidTransitionsAreRefusedAndChangeNothing) {
  SandboxInfo sb = Create();
  EXPECT_EQ(manager_->Resume(sb.id).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->Start(sb.id).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->Get(sb.id)->state, SandboxState::kRunning);
  ASSERT_TRUE(manager_->Pause(sb.id).ok());
  EXPECT_EQ(manager_->Pause(sb.id).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->Start(sb.id).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->Get(sb.id)->state, SandboxState::kPaused);
  ASSERT_TRUE(manager_->Stop(sb.id).ok());  // a paused sandbox can be stopped
  EXPECT_EQ(manager_->Stop(sb.id).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->Pause(sb.id).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->Resume(sb.id).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->Get(sb.id)->state, SandboxState::kStopped);
  EXPECT_EQ(manager_->Pause("no-such").code(), StatusCode::kNotFound);
}

TEST_F(SandboxTest, DeleteRemovesEverythingInAnyState) {
  SandboxInfo running = Create();
  SandboxInfo paused = Create();
  SandboxInfo stopped = Create();
  ASSERT_TRUE(manager_->Pause(paused.id).ok());
  ASSERT_TRUE(manager_->Stop(stopped.id).ok());
  for (const auto& sb : {running, paused, stopped}) {
    ASSERT_TRUE(manager_->Delete(sb.id).ok());
    EXPECT_FALSE(PathExists(sb.dir));
    EXPECT_EQ(manager_->Get(sb.id).status().code(), StatusCode::kNotFound);
  }
  EXPECT_EQ(manager_->Delete(running.id).code(), StatusCode::kNotFound);
  // The rest goes in the background: once it is done, the trash is empty
  // too, and the fixture checks no mount, cgroup or init process is left.
  manager_->FinishTeardowns();
  EXPECT_TRUE(ListDir(state_->path() + "/trash").empty());
}

TEST_F(SandboxTest, ProcessesKeepRunningWithoutAClientAndOutputIsReplayed) {
  SandboxInfo sb = Create();
  int pid;
  {
    auto client = manager_->Connect(sb.id);
    ASSERT_TRUE(client.ok());
    auto spawned = client->Call({{"op", "spawn"}, {"argv", {"/bin/sh", "-c", "echo a; sleep 0.2; echo b"}}});
    ASSERT_TRUE(spawned.ok());
    pid = spawned->header["pid"];
  }
  ::usleep(400000);
  auto again = manager_->Connect(sb.id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(CollectOutput(*again, pid), "a\nb\n");
}

}  // namespace
}  // namespace paddock::testing
