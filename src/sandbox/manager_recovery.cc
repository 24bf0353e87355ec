// Start-up: every record reconciled with what the kernel shows; what no
// record holds, swept. See SandboxManager::Open and RecoveryReport.
#include "sandbox/manager.h"

#include <fcntl.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "base/fs.h"
#include "base/ids.h"
#include "sandbox/manager_parts.h"

namespace paddock {

using namespace manager_detail;

Status SandboxManager::Recover() {
  PDK_ASSIGN_OR_RETURN(std::vector<SandboxRecord> records, store_->List());
  std::set<std::string> known;
  for (const auto& rec : records) {
    known.insert(rec.id);
    Status s = RecoverOne(rec);
    if (!s.ok()) return s.Annotate("recovering sandbox " + rec.id);
  }
  for (const auto& name : ListDir(sandboxes_dir_)) {
    if (known.count(name) || name[0] == '.') continue;  // .trash is emptied at start-up
    std::string trash = sandbox_trash_dir_ + "/" + name + "-" + RandomHex(4);
    if (::rename((sandboxes_dir_ + "/" + name).c_str(), trash.c_str()) == 0) {
      (void)RemoveTree(trash);
      ++recovery_.swept_dirs;
    }
  }
  std::set<std::string> adopted;  // sandboxes whose cgroup was taken over
  std::map<net::Ipv4, net::NetworkPolicy> policies;
  for (const auto& sb : All()) {
    MutexLock lock(sb->mu);
    if (sb->cgroup) adopted.insert(sb->id);
    if (sb->slot) policies[sb->slot->address] = sb->info.network.policy;
  }
  for (const auto& name : cgroups_->List()) {
    if (adopted.count(name)) continue;
    if (auto cg = cgroups_->Open(name); cg.ok() && (*cg)->Destroy().ok()) ++recovery_.swept_cgroups;
  }
  // Last, with every process that held an orphan slot gone: the bridge keeps
  // only adopted ports, the table only their policies.
  if (network_) PDK_TRY(network_->FinishRecovery(policies).Annotate("recovering the network"));
  for (const auto& sb : All()) {
    MutexLock lock(sb->mu);
    PDK_TRY(ReopenForwards(*sb));
  }
  return Status::Ok();
}

Status SandboxManager::RecoverOne(const SandboxRecord& rec) {
  auto sb = std::make_shared<Sandbox>();
  sb->id = rec.id;
  sb->image_id = rec.image_id;
  sb->snapshot_id = rec.snapshot_id;
  if (!sb->snapshot_id.empty()) {
    if (auto tmpl = SnapshotTemplate(sb->snapshot_id); tmpl.ok()) {
      sb->image_config = tmpl->config;
      sb->run = tmpl->run;
    }
  } else if (!sb->image_id.empty()) {
    if (auto tmpl = templates_.ForImage(sb->image_id); tmpl.ok()) sb->image_config = tmpl->config;
  }
  MutexLock sb_lock(sb->mu);
  sb->info = FromRecord(rec, sandboxes_dir_);
  SandboxInfo& info = sb->info;
  RecordState recorded = ParseRecordState(rec.state);
  kernel::ProcessHandle init;
  if (rec.init_pid > 0) {
    if (auto h = kernel::ProcessHandle::Open(static_cast<pid_t>(rec.init_pid), rec.init_start_time);
        h.ok())
      init = std::move(*h);
  }
  auto cgroup = cgroups_->Open(rec.id);
  auto end_processes = [&, socket = info.agent_socket] {  // whatever still runs for this sandbox
    if (cgroup.ok()) (void)(*cgroup)->Destroy();
    if (init.valid()) {
      (void)init.Signal(SIGKILL);
      (void)init.Wait(5000);
    }
    ::unlink(socket.c_str());
  };
  std::string what;  // the journal's account of what recovery did

  if (recorded == RecordState::kCreating || recorded == RecordState::kDeleting) {
    // An unfinished create is undone; an unfinished delete is completed.
    end_processes();
    std::string trash = sandbox_trash_dir_ + "/" + rec.id + "-" + RandomHex(4);
    if (::rename(info.dir.c_str(), trash.c_str()) == 0) (void)RemoveTree(trash);
    PDK_TRY(store_->Remove(rec.id, {"recover", "done",
                                    recorded == RecordState::kCreating ? "rolled back an interrupted create"
                                                                       : "finished an interrupted delete"}));
    ++(recorded == RecordState::kCreating ? recovery_.rolled_back : recovery_.finished);
    return Status::Ok();
  }

  // A folder an older paddockd left open to other local users (one that is
  // gone shows when the sandbox next starts).
  (void)CloseSandboxDir(info.dir, info.ids.host_first);

  bool alive = init.valid() && cgroup.ok();
  bool was_up = recorded == RecordState::kRunning || recorded == RecordState::kPaused;
  if (alive && was_up) {
    auto frozen = (*cgroup)->IsFrozen();
    info.state = frozen.ok() && *frozen ? SandboxState::kPaused : SandboxState::kRunning;
    // Recorded running yet frozen: a snapshot's or a fork's copy (or a
    // pause never answered) was cut short. Its client was never told it
    // paused: it runs on.
    bool thawed = recorded == RecordState::kRunning && info.state == SandboxState::kPaused &&
                  (*cgroup)->Thaw().ok();
    if (thawed) info.state = SandboxState::kRunning;
    sb->cgroup = std::move(*cgroup);
    sb->init = std::move(init);
    // Its root mount, held as one made by this paddockd is: a reference to
    // init's root keeps the overlay mounted past init's exit, so that its
    // unmount (a sync of the filesystem) comes in the teardown, last.
    sb->root_mount = UniqueFd(::open(("/proc/" + std::to_string(info.init_pid) + "/root").c_str(),
                                     O_PATH | O_DIRECTORY | O_CLOEXEC));
    ++recovery_.adopted;
    what = std::string("adopted as ") + SandboxStateName(info.state) +
           (thawed ? " (thawed: frozen by a copy or a pause cut short)" : "");
    if (!info.address.empty()) {
      auto address = net::Ipv4::Parse(info.address);
      auto slot = address.ok() && network_ ? network_->Adopt(*address, sb->init.pid())
                                           : Result<std::unique_ptr<net::Slot>>(Unavailable("networking is off"));
      if (slot.ok()) {
        sb->slot = std::move(*slot);
      } else {
        info.error = "its network was lost while paddockd was not running: " + slot.status().ToString();
        info.address.clear();
        what += "; " + info.error;
      }
    }
  } else {
    end_processes();
    if (recorded == RecordState::kStopping) {
      ++recovery_.finished;
      what = "finished an interrupted stop";
    } else if (recorded == RecordState::kStarting) {
      ++recovery_.rolled_back;
      what = "rolled back an interrupted start";
    } else if (was_up) {
      info.error = "init exited while paddockd was not running";
      ++recovery_.marked_stopped;
      what = "marked stopped: " + info.error;
    }
    if (info.state != SandboxState::kStopped || recorded != RecordState::kStopped) {
      info.state = SandboxState::kStopped;
      info.stopped_at_ms = WallClockMillis();
    }
    info.init_pid = 0;
    info.init_start_time = 0;
    info.address.clear();  // its slot died with it
  }
  if (std::string archive = RecoverArchive(info); !archive.empty()) what += (what.empty() ? "" : "; ") + archive;
  PDK_ASSIGN_OR_RETURN(sb->ids, id_ranges_.Claim(info.ids.host_first));
  // Its project's limit, as recorded (an earlier paddockd may have set another).
  if (Status s = ApplyDiskLimit(info.dir, info.disk_bytes); !s.ok())
    what += (what.empty() ? "" : "; ") + s.ToString();
  sb->ready = true;
  {
    MutexLock lock(mu_);
    by_id_[info.id] = sb;
    id_by_name_[info.name] = info.id;
    // Its devices again (a record holds only what its create claimed).
    if (Status s = ClaimDevices(info.id, info.devices); !s.ok()) {
      info.error = s.message();
      what += (what.empty() ? "" : "; ") + info.error;
    }
  }
  return PersistState(*sb, what.empty() ? JournalNote{} : JournalNote{"recover", "done", what});
}

}  // namespace paddock
