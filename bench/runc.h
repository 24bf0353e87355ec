// The peer the benchmarks measure against: runc's CLI over an OCI bundle
// whose read-only rootfs is a Paddock template's layer.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "base/fs.h"

extern char** environ;

namespace paddock::bench {

// Runs `args` (found on PATH) with no input or output; its exit status, 127
// if it could not start, 128 if it did not exit.
inline int Run(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return 127;
  int status;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// A container that runs ARGS with Docker-like namespaces and mounts.
inline constexpr const char* kRuncConfig = R"({
  "ociVersion": "1.0.2",
  "process": {"terminal": false, "user": {"uid": 0, "gid": 0},
    "args": ARGS, "env": ["PATH=/bin:/usr/bin"], "cwd": "/",
    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
    "noNewPrivileges": true},
  "root": {"path": "ROOTFS", "readonly": true},
  "hostname": "runc",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid","strictatime","mode=755","size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid","noexec","nodev","ro"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid","nodev"]}
  ],
  "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
    "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
    "readonlyPaths": ["/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sysrq-trigger"]}
})";

// Writes `bundle`/config.json over `rootfs`, its process `args` (a JSON
// array); whether runc is there to use it.
inline bool MakeRuncBundle(const std::string& bundle, const std::string& rootfs,
                           const std::string& args = R"(["/bin/sleep", "1000000"])") {
  if (Run({"runc", "--version"}) != 0) return false;
  (void)MakeDirs(bundle);
  std::string config = kRuncConfig;
  config.replace(config.find("ROOTFS"), 6, rootfs);
  config.replace(config.find("ARGS"), 4, args);
  return WriteFileAtomic(bundle + "/config.json", config).ok();
}

}  // namespace paddock::bench
