#include "kernel/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "base/fs.h"

extern char** environ;

namespace paddock::kernel {

Result<std::string> RunProgram(const std::string& exe, std::vector<std::string> argv, bool with_stderr) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Status::Errno("pipe2");
  UniqueFd r(p[0]), w(p[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, w.get(), 1);
  if (with_stderr) posix_spawn_file_actions_adddup2(&fa, w.get(), 2);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawnp(&pid, exe.c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc == ENOENT) return NotFound(exe + " is missing");
  if (rc != 0) return Status::Errno("spawn " + exe, rc);
  w.reset();
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(r.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  int status;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Internal(exe + " failed" + (with_stderr ? ": " + out : ""));
  return out;
}

Result<ProcessStat> ReadProcessStat(pid_t pid) {
  PDK_ASSIGN_OR_RETURN(std::string stat, ReadFile("/proc/" + std::to_string(pid) + "/stat"));
  // The command name (field 2) may hold spaces or parentheses: count from the last ')'.
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size())
    return Internal("malformed /proc/" + std::to_string(pid) + "/stat");
  ProcessStat out;
  const char* p = stat.c_str() + close + 2;  // field 3, the state
  out.state = *p;
  for (int field = 3; field < 22 && *p; ++p)
    if (*p == ' ') ++field;
  out.start_time = std::strtoull(p, nullptr, 10);
  return out;
}

Result<uint64_t> ProcessStartTime(pid_t pid) {
  PDK_ASSIGN_OR_RETURN(ProcessStat stat, ReadProcessStat(pid));
  return stat.start_time;
}

Result<ProcessHandle> ProcessHandle::Open(pid_t pid, uint64_t expected_start_time) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) return Status::Errno("pidfd_open " + std::to_string(pid));
  PDK_ASSIGN_OR_RETURN(ProcessStat stat, ReadProcessStat(pid));
  if (stat.start_time != expected_start_time)
    return NotFound("pid " + std::to_string(pid) + " now belongs to another process");
  if (stat.state == 'Z' || stat.state == 'X')
    return NotFound("process " + std::to_string(pid) + " has exited");
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
