// Starts a process inside a fresh set of namespaces, with the sandbox's root
// filesystem, limits and hardening, and execs paddock-init.
//
// In two steps, so that the slow one can be done ahead of time: a Shell is a
// process with its namespaces, id maps, cgroup and root filesystem in place
// running paddock-init, which waits (Shell::Prepare); it learns whose
// sandbox it is at Launch.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <memory>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "base/status.h"
#include "kernel/cgroup.h"
#include "kernel/launch.h"
#include "kernel/process.h"
#include "kernel/user.h"

namespace paddock::kernel {

// A host folder bound into the sandbox, idmapped into its id range (files
// owned by 0 on disk are root's inside), nosuid and nodev.
struct Bind {
  std::string source;   // host path
  std::string target;   // path inside the sandbox; made if missing
  bool read_only = true;
};

struct ContainSpec {
  // Root filesystem: an overlay of `upper_dir` over `lower_dirs` (top first),
  // mounted at `rootfs_dir`, plus binds.
  std::vector<std::string> lower_dirs;
  std::string upper_dir, work_dir, rootfs_dir;
  std::vector<Bind> binds;  // a file's bind goes onto a file, a folder's onto a folder
  static constexpr size_t kMaxBinds = 64;  // volumes, host folders, a CDI spec's mounts (one per library file)
  // Host device nodes bound in at paths under /dev (a CDI device's):
  // {host node, path inside}. The only nodes beyond the standard ones.
  std::vector<std::pair<std::string, std::string>> devices;
  static constexpr size_t kMaxDevices = 32;
  // Host groups the sandbox's processes belong to (a device's
  // additionalGids): mapped in (user::WriteIdMaps) and every process's
  // supplementary groups, init's and so all it starts.
  std::vector<uint32_t> device_gids;
  static constexpr size_t kMaxDeviceGids = 8;
  user::IdRange ids;
  Cgroup* cgroup = nullptr;         // the new process joins it before anything runs
  int init_exe_fd = -1;             // paddock-init, opened on the host
  int listen_fd = -1;               // the agent socket, becomes fd 3 of init
  int log_fd = -1;                  // stdout/stderr of init
  // A network namespace to join (one the host made, which the sandbox may
  // use but not reconfigure); -1: a new one of its own, loopback only.
  int netns_fd = -1;
  std::vector<std::string> init_env;
  // Set as soft and hard limit, clamped to the host's hard limit.
  std::vector<std::pair<int, rlim_t>> rlimits = {{RLIMIT_NOFILE, 1048576}, {RLIMIT_CORE, 0}};
  // How long Prepare, and later Launch, wait for the child's answer (a few
  // ms normally, seconds on a host under load) before they kill it and fail.
  int set_up_timeout_ms = 30000;
};

struct Contained {
  ProcessHandle init;
  uint64_t start_time = 0;  // of the init process, for adoption after a restart
  // The sandbox's root (overlay) mount. Held, it outlives init: the
  // overlay's unmount, which syncs the filesystem under it (seconds on a
  // host with much dirty data), then happens when this is closed, not in
  // init's exit, where it would hold the network namespace (and veth) too.
  UniqueFd root_mount;
};

struct ShellArgs;  // what the child reads, in contain.cc

class Shell {
 public:
  // Clones the process, writes its id maps, puts it in spec.cgroup and hands
  // it the root filesystem; returns once the child has assembled it. The fds
  // in `spec` may be closed on return (the child holds its own copies).
  static Result<std::unique_ptr<Shell>> Prepare(const ContainSpec& spec);
  ~Shell();  // kills the child unless it was launched
  Shell(const Shell&) = delete;
  Shell& operator=(const Shell&) = delete;

  pid_t pid() const { return child_.pid(); }
  // Sends `launch` and returns once init has carried it out.
  // Once only; on error (DeadlineExceeded past set_up_timeout_ms) the child
  // is gone.
  Result<Contained> Launch(const LaunchSpec& launch);

 private:
  Shell();
  void Kill();
  std::unique_ptr<ShellArgs> args_;  // read by the child until it execs
  std::vector<char> stack_;
  ProcessHandle child_;
  UniqueFd sync_;
  UniqueFd root_mount_;  // see Contained::root_mount
  int timeout_ms_ = 0;   // ContainSpec::set_up_timeout_ms
  int seccomp_fd_ = -1;  // seccomp::DefaultProfileFd(), sent with the launch
};

}  // namespace paddock::kernel
