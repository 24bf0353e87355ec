#include "kernel/process.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "base/fs.h"

namespace paddock::kernel {

Result<uint64_t> ProcessStartTime(pid_t pid) {
  PDK_ASSIGN_OR_RETURN(std::string stat, ReadFile("/proc/" + std::to_string(pid) + "/stat"));
  // The command name (field 2) may hold spaces or parentheses: count from the last ')'.
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return Internal("malformed /proc/" + std::to_string(pid) + "/stat");
  const char* p = stat.c_str() + close + 2;  // field 3
  for (int field = 3; field < 22 && *p; ++p)
    if (*p == ' ') ++field;
  return std::strtoull(p, nullptr, 10);
}

Result<ProcessHandle> ProcessHandle::Open(pid_t pid, uint64_t expected_start_time) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) return Status::Errno("pidfd_open " + std::to_string(pid));
  PDK_ASSIGN_OR_RETURN(uint64_t start, ProcessStartTime(pid));
  if (start != expected_start_time)
    return NotFound("pid " + std::to_string(pid) + " now belongs to another process");
  return ProcessHandle(pid, std::move(fd));
}

Status ProcessHandle::Signal(int sig) const {
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) != 0 && errno != ESRCH)
    return Status::Errno("pidfd_send_signal " + std::to_string(pid_));
  return Status::Ok();
}

Result<bool> ProcessHandle::Wait(int timeout_ms) const {
  struct pollfd pfd = {pidfd_.get(), POLLIN, 0};
  int r;
  do r = ::poll(&pfd, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r < 0) return Status::Errno("poll pidfd");
  if (r == 0) return false;
  // Exited. Reap it if it is our child (after a daemon restart it is not).
  siginfo_t info;
  ::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED | WNOHANG);
  return true;
}

}  // namespace paddock::kernel
