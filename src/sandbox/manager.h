// SandboxManager: the lifecycle of sandboxes on this host.
//
//   Create -> running <-> paused (Pause/Resume, cgroup freezer)
//   running|paused -> stopped (Stop: SIGTERM, grace, SIGKILL; the writable
//   layer is kept) -> running (Start: a new init over the same filesystem)
//   any -> gone (Delete)
//
// An invalid transition returns kFailedPrecondition and changes nothing.
// Thread-safe: one lock per sandbox for its transitions; the manager's lock
// only for the narrow steps that reserve names, ids and id ranges.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/client.h"
#include "base/fd.h"
#include "base/status.h"
#include "kernel/cgroup.h"
#include "kernel/process.h"
#include "kernel/user.h"
#include "sandbox/template.h"

namespace paddock {

enum class SandboxState { kRunning, kPaused, kStopped };
const char* SandboxStateName(SandboxState s);

struct ManagerOptions {
  std::string state_dir = "/var/lib/paddock";
  std::string init_path;               // paddock-init; empty: the one built beside the library
  std::string busybox_path = "/bin/busybox";
  std::string cgroup_parent = "paddock";
  uint32_t id_base = 1u << 30;         // host uid/gid of the first sandbox's root
  uint32_t id_slots = 16384;           // sandboxes with distinct id ranges
  int default_stop_grace_ms = 10000;
};

struct SandboxSpec {
  std::string name;                    // empty: the id
  std::string template_name = "host";
  kernel::CgroupLimits limits;
  std::map<std::string, std::string> env;  // default env of every process
};

struct SandboxInfo {
  std::string id;
  std::string name;
  std::string template_name;
  SandboxState state = SandboxState::kStopped;
  kernel::CgroupLimits limits;
  pid_t init_pid = 0;                  // host pid of paddock-init; 0 when stopped
  uint64_t init_start_time = 0;
  kernel::user::IdRange ids;
  std::string dir;                     // the sandbox's state folder
  std::string agent_socket;
};

class SandboxManager {
 public:
  // Prepares the state folder (sandboxes, templates, staging, trash), empties
  // trash left by a crash, and detects the cgroup version.
  static Result<std::unique_ptr<SandboxManager>> Open(ManagerOptions opts);
  ~SandboxManager();

  // Creates and starts a sandbox. Returns once paddock-init is running; the
  // agent socket accepts connections from then on.
  Result<SandboxInfo> Create(const SandboxSpec& spec);
  Status Pause(const std::string& id_or_name);
  Status Resume(const std::string& id_or_name);
  // SIGTERM to every process, SIGKILL after `grace_ms` (-1: the default).
  Status Stop(const std::string& id_or_name, int grace_ms = -1);
  Status Start(const std::string& id_or_name);
  // Stops it if needed and removes every trace: processes, cgroup, files.
  Status Delete(const std::string& id_or_name);

  Result<SandboxInfo> Get(const std::string& id_or_name) const;
  std::vector<SandboxInfo> List() const;
  Result<kernel::CgroupStats> Stats(const std::string& id_or_name);

  // A new agent connection to a running sandbox.
  Result<agent::AgentClient> Connect(const std::string& id_or_name);
  // Runs a command to completion in a running sandbox (its env under the
  // sandbox's default env).
  Result<agent::ExecResult> Exec(const std::string& id_or_name, agent::ExecOptions opts);

  const char* cgroup_version() const { return cgroups_->version(); }
  bool cgroup_limits_supported() const { return cgroups_->SupportsLimits(); }

 private:
  struct Sandbox;
  SandboxManager(ManagerOptions opts, std::unique_ptr<kernel::CgroupDriver> cgroups,
                 UniqueFd init_exe);
  Result<std::shared_ptr<Sandbox>> Find(const std::string& id_or_name) const;
  Status Boot(Sandbox& sb);                  // requires sb.mu held
  Status Halt(Sandbox& sb, int grace_ms);    // requires sb.mu held
  Result<uint32_t> ReserveIdSlot();
  void ReleaseIdSlot(uint32_t host_first);

  ManagerOptions opts_;
  std::unique_ptr<kernel::CgroupDriver> cgroups_;
  UniqueFd init_exe_;
  TemplateStore templates_;
  std::string sandboxes_dir_, trash_dir_;

  mutable std::mutex mu_;  // guards the maps and id slots below, never held during I/O
  std::map<std::string, std::shared_ptr<Sandbox>> by_id_;
  std::map<std::string, std::string> id_by_name_;
  std::vector<bool> slot_used_;
};

}  // namespace paddock
