// Process handles that survive pid reuse: a pidfd plus the kernel's start time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/status.h"

namespace paddock::kernel {

struct ProcessStat {
  char state = '?';         // R, S, D, Z (zombie), ...
  uint64_t start_time = 0;  // clock ticks since boot
};
Result<ProcessStat> ReadProcessStat(pid_t pid);

// Field 22 of /proc/PID/stat (clock ticks since boot): with the pid it names
// one process for the life of the host, which the store records.
Result<uint64_t> ProcessStartTime(pid_t pid);

// Runs the program `exe` (looked up in PATH unless it holds a '/') with
// `argv` (argv[0] first) to its end and returns what it printed on stdout,
// and on stderr too with `with_stderr`. kNotFound if the program is missing;
// kInternal if it fails, with its output when stderr was taken.
Result<std::string> RunProgram(const std::string& exe, std::vector<std::string> argv, bool with_stderr = false);

class ProcessHandle {
 public:
  ProcessHandle() = default;
  ProcessHandle(pid_t pid, UniqueFd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}
  // Opens a handle on a running process and checks its start time, so a
  // recycled pid is never mistaken for the process that was recorded. A
  // zombie counts as gone.
  static Result<ProcessHandle> Open(pid_t pid, uint64_t expected_start_time);

  pid_t pid() const { return pid_; }
  bool valid() const { return pidfd_.valid(); }
  Status Signal(int sig) const;
  // Waits up to `timeout_ms` (-1: forever) for the process to exit and reaps
  // it if it is our child. Returns true if it has exited.
  Result<bool> Wait(int timeout_ms) const;

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
};

}  // namespace paddock::kernel
