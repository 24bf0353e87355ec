// Contain: starts a process inside a fresh set of namespaces, with the
// sandbox's root filesystem, limits and hardening, and execs paddock-init.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "base/status.h"
#include "kernel/cgroup.h"
#include "kernel/process.h"
#include "kernel/user.h"

namespace paddock::kernel {

struct ContainSpec {
  std::string hostname;
  // Root filesystem: an overlay of `upper_dir` over `lower_dirs` (top first),
  // mounted at `rootfs_dir`, plus read-only binds {host source, sandbox path}.
  std::vector<std::string> lower_dirs;
  std::string upper_dir, work_dir, rootfs_dir;
  std::vector<std::pair<std::string, std::string>> readonly_binds;
  user::IdRange ids;
  Cgroup* cgroup = nullptr;         // the new process joins it before anything runs
  int init_exe_fd = -1;             // paddock-init, opened on the host
  int listen_fd = -1;               // the agent socket, becomes fd 3 of init
  int log_fd = -1;                  // stdout/stderr of init
  std::vector<std::string> init_env;
  // Set as soft and hard limit, clamped to the host's hard limit.
  std::vector<std::pair<int, rlim_t>> rlimits = {{RLIMIT_NOFILE, 1048576}, {RLIMIT_CORE, 0}};
};

struct Contained {
  ProcessHandle init;
  uint64_t start_time = 0;  // of the init process, for adoption after a restart
};

// Creates the sandbox's init. On return the process has exec'd paddock-init;
// on error nothing is left running.
Result<Contained> Contain(const ContainSpec& spec);

}  // namespace paddock::kernel
