// A manager that goes away and comes back (a daemon restart, in process):
// running and paused sandboxes are adopted, interrupted transitions finished
// or rolled back, dead ones marked, and what has no record swept.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kernel/cgroup.h"
#include "sandbox_fixture.h"

namespace paddock::testing {
namespace {

class RecoveryTest : public SandboxTest {
 protected:
  // Drops the manager (sandboxes keep running) and opens a new one.
  const RecoveryReport& Restart(std::function<void()> while_down = nullptr) {
    delete manager_;
    manager_ = nullptr;
    if (while_down) while_down();
    auto m = SandboxManager::Open(Options());
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    manager_ = m->release();
    return manager_->recovery();
  }
  // Rewrites a record's state directly in the database, as a crash mid-transition leaves it.
  void SetRecordState(const std::string& id, const std::string& state) {
    auto store = OpenSqliteStore(state_->path() + "/paddock.db");
    ASSERT_TRUE(store.ok());
    auto rec = (*store)->Get(id);
    ASSERT_TRUE(rec.ok());
    rec->state = state;
    ASSERT_TRUE((*store)->Update(*rec).ok());
  }
};

TEST_F(RecoveryTest, RunningAndPausedSandboxesAreAdoptedWithTheirProcesses) {
  SandboxInfo running = Create();
  SandboxInfo paused = Create();
  SandboxSpec stopped_spec;
  stopped_spec.name = "stays-stopped";
  SandboxInfo stopped = Create(stopped_spec);
  ASSERT_TRUE(manager_->Stop(stopped.id).ok());
  auto client = manager_->Connect(running.id);
  ASSERT_TRUE(client.ok());
  auto spawned = client->Call({{"op", "spawn"}, {"argv", {"/bin/sh", "-c", "echo before; sleep 0.5; echo after"}}});
  ASSERT_TRUE(spawned.ok());
  int pid = spawned->header["pid"];
  ASSERT_TRUE(manager_->Pause(paused.id).ok());

  const RecoveryReport& report = Restart();
  EXPECT_EQ(report.adopted, 2);
  EXPECT_EQ(report.marked_stopped, 0);
  EXPECT_EQ(manager_->Get(running.id)->state, SandboxState::kRunning);
  EXPECT_EQ(manager_->Get(running.id)->init_pid, running.init_pid);
  EXPECT_EQ(manager_->Get(paused.id)->state, SandboxState::kPaused);
  EXPECT_EQ(manager_->Get("stays-stopped")->state, SandboxState::kStopped);
  // The command started before the restart kept running; its output is all there.
  auto again = manager_->Connect(running.id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(CollectOutput(*again, pid), "before\nafter\n");
  // Adopted sandboxes are fully usable: resume, stop, start.
  ASSERT_TRUE(manager_->Resume(paused.id).ok());
  EXPECT_EQ(Sh(paused.id, "echo ok"), "ok\n");
  ASSERT_TRUE(manager_->Stop(running.id).ok());
  ASSERT_TRUE(manager_->Start("stays-stopped").ok());
  EXPECT_EQ(Sh("stays-stopped", "echo ok"), "ok\n");
}

TEST_F(RecoveryTest, ASandboxWhoseInitDiedIsMarkedStoppedAndCanStartAgain) {
  SandboxInfo sb = Create();
  Sh(sb.id, "echo data > /root/f");
  Restart([&] {
    ::kill(sb.init_pid, SIGKILL);
    siginfo_t info;  // wait until it has died, but leave the zombie: we are its parent
    ::waitid(P_PID, static_cast<id_t>(sb.init_pid), &info, WEXITED | WNOWAIT);
  });
  EXPECT_EQ(manager_->recovery().marked_stopped, 1);
  auto info = manager_->Get(sb.id);
  EXPECT_EQ(info->state, SandboxState::kStopped);
  EXPECT_NE(info->error.find("init exited"), std::string::npos);
  ASSERT_TRUE(manager_->Start(sb.id).ok());
  EXPECT_EQ(Sh(sb.id, "cat /root/f"), "data\n");
  EXPECT_EQ(manager_->Get(sb.id)->error, "");
  ::waitpid(sb.init_pid, nullptr, 0);
}

TEST_F(RecoveryTest, InterruptedTransitionsAreFinishedOrRolledBack) {
  SandboxInfo creating = Create();
  SandboxInfo stopping = Create();
  SandboxInfo deleting = Create();
  SandboxInfo starting = Create();
  Sh(stopping.id, "echo kept > /root/f");
  const RecoveryReport& report = Restart([&] {
    SetRecordState(creating.id, "creating");
    SetRecordState(stopping.id, "stopping");
    SetRecordState(deleting.id, "deleting");
    SetRecordState(starting.id, "starting");
  });
  EXPECT_EQ(report.rolled_back, 2);  // the create and the start
  EXPECT_EQ(report.finished, 2);     // the stop and the delete
  EXPECT_EQ(manager_->Get(creating.id).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(PathExists(creating.dir));
  EXPECT_EQ(manager_->Get(deleting.id).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(PathExists(deleting.dir));
  EXPECT_EQ(manager_->Get(stopping.id)->state, SandboxState::kStopped);
  EXPECT_EQ(manager_->Get(starting.id)->state, SandboxState::kStopped);
  for (pid_t pid : {creating.init_pid, stopping.init_pid, deleting.init_pid, starting.init_pid})
    EXPECT_NE(::kill(pid, 0), 0) << "init " << pid << " still runs";
  ASSERT_TRUE(manager_->Start(stopping.id).ok());
  EXPECT_EQ(Sh(stopping.id, "cat /root/f"), "kept\n");
}

TEST_F(RecoveryTest, FoldersAndCgroupsWithNoRecordAreSwept) {
  const RecoveryReport& report = Restart([&] {
    ASSERT_TRUE(MakeDirs(state_->path() + "/sandboxes/orphan/upper").ok());
    auto driver = kernel::CgroupDriver::Detect("paddock");
    ASSERT_TRUE(driver.ok());
    auto cg = (*driver)->Create("orphan", {}, {});
    ASSERT_TRUE(cg.ok());
    (*cg)->Keep();
    // A crash between Create's mkdirs leaves a cgroup in some v1 hierarchies only.
    if (PathExists("/sys/fs/cgroup/cpu/paddock")) {
      ASSERT_EQ(::mkdir("/sys/fs/cgroup/cpu/paddock/halfmade", 0755), 0);
    }
  });
  EXPECT_EQ(report.swept_dirs, 1);
  EXPECT_EQ(report.swept_cgroups, PathExists("/sys/fs/cgroup/cpu/paddock") ? 2 : 1);
  EXPECT_FALSE(PathExists("/sys/fs/cgroup/cpu/paddock/halfmade"));
  EXPECT_FALSE(PathExists(state_->path() + "/sandboxes/orphan"));
}

TEST_F(RecoveryTest, TimeoutsFireTheirActionsAndSurviveRestarts) {
  SandboxSpec spec;
  spec.timeout_s = 1;
  spec.on_timeout = TimeoutAction::kPause;
  SandboxInfo pauses = Create(spec);
  spec.on_timeout = TimeoutAction::kStop;
  spec.auto_delete_after_s = 2;
  SandboxInfo stops = Create(spec);
  spec.on_timeout = TimeoutAction::kKill;
  spec.auto_delete_after_s = 0;
  SandboxInfo kills = Create(spec);
  SandboxInfo extended = Create(spec);
  ASSERT_TRUE(manager_->SetTimeout(extended.id, 3600).ok());
  Restart();  // deadlines live in the store
  int64_t now = WallClockMillis();
  EXPECT_EQ(manager_->Reap(now), 0);
  EXPECT_EQ(manager_->Reap(now + 1500), 3);
  manager_->FinishReaping();
  EXPECT_EQ(manager_->Get(pauses.id)->state, SandboxState::kPaused);
  EXPECT_EQ(manager_->Get(stops.id)->state, SandboxState::kStopped);
  EXPECT_EQ(manager_->Get(kills.id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_->Get(extended.id)->state, SandboxState::kRunning);
  // The stopped one goes once it has been stopped longer than its auto-delete age.
  EXPECT_EQ(manager_->Reap(WallClockMillis() + 2500), 1);
  manager_->FinishReaping();
  EXPECT_EQ(manager_->Get(stops.id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_->SetTimeout(extended.id, -1).code(), StatusCode::kInvalidArgument);
}

TEST_F(RecoveryTest, ASnapshotCutShortByACrashLeavesNothingAndKeptOnesStay) {
  SandboxSpec spec;
  spec.template_name = "busybox";
  SandboxInfo source = Create(spec);
  Sh(source.id, "echo kept > /kept");
  auto snap = manager_->CreateSnapshot(source.id, "kept");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  const std::string snapshots = state_->path() + "/snapshots", staging = state_->path() + "/staging";
  Restart([&] {
    // What a kill -9 mid-snapshot leaves: a copy still in staging, or one
    // moved into place whose record was never written.
    ASSERT_TRUE(MakeDirs(staging + "/snap-00000000deadbeef/etc").ok());
    ASSERT_TRUE(MakeDirs(snapshots + "/snap-0123456789abcdef/etc").ok());
  });
  EXPECT_EQ(ListDir(snapshots), std::vector<std::string>{snap->id});
  EXPECT_TRUE(ListDir(staging).empty());
  ASSERT_EQ(manager_->ListSnapshots().size(), 1u);
  SandboxSpec from;
  from.snapshot = "kept";
  SandboxInfo copy = Create(from);
  EXPECT_EQ(Sh(copy.id, "cat /kept"), "kept\n");
  ASSERT_TRUE(manager_->Delete(copy.id).ok());
  ASSERT_TRUE(manager_->RemoveSnapshot("kept").ok());
  EXPECT_TRUE(ListDir(snapshots).empty());
}

// An adopted sandbox's root mount is held like a new one's (its unmount
// comes last in the teardown), and the teardown lets go of it.
TEST_F(RecoveryTest, AnAdoptedSandboxHoldsItsRootMountUntilItsTeardown) {
  SandboxInfo sb = Create();
  struct stat root;
  ASSERT_EQ(::stat(("/proc/" + std::to_string(sb.init_pid) + "/root").c_str(), &root), 0);
  auto held = [&] {
    for (const auto& fd : ListDir("/proc/self/fd")) {
      struct stat st;
      if (::fstat(std::atoi(fd.c_str()), &st) == 0 && st.st_dev == root.st_dev && st.st_ino == root.st_ino)
        return true;
    }
    return false;
  };
  EXPECT_TRUE(held());
  Restart();
  EXPECT_TRUE(held()) << "the adopted sandbox holds no reference to its root mount";
  ASSERT_TRUE(manager_->Delete(sb.id).ok());
  manager_->FinishTeardowns();
  EXPECT_FALSE(held());
}

}  // namespace
}  // namespace paddock::testing
