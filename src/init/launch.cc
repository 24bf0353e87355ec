#include "init/launch.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/fd_passing.h"
#include "base/ids.h"
#include "kernel/caps.h"
#include "kernel/launch.h"

namespace paddock::init {
namespace {

[[noreturn]] void Fail(int fd, const char* step, int err = errno) {
  kernel::ReportLaunchError(fd, step, err);
  ::_exit(1);
}

// Makes the folders above `path` (inside the sandbox: it is our root).
bool MakeParents(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1))
    if (::mkdir(path.substr(0, slash).c_str(), 0755) != 0 && errno != EEXIST) return false;
  return true;
}

// Rewrites `path` in place if it is a plain file of one name: no new inode,
// which a busy filesystem makes slow (a warm shell's host made its files
// ahead for this). A FIFO, socket, device or symlink there is never
// written through: the open does not follow or wait, and what it opened
// is checked before a byte goes in. Cut to length after the write, never
// to zero first: ext4 flushes a file emptied and rewritten when it is
// closed. False: the path needs WriteFile's way.
bool RewriteInPlace(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st;
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) return false;
  if (::pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) return false;
  return st.st_size <= static_cast<off_t>(text.size()) || ::ftruncate(fd.get(), text.size()) == 0;
}

// Writes `text` to `path`: in place when that is safe, else as a new file
// renamed into place, so that whatever the sandbox left at the path is
// replaced, never opened: a FIFO there would block a plain open (and the
// start waiting on it) forever, a symlink would redirect the write. A
// folder there is the sandbox's own doing and stays. Null, or the step that
// failed (errno set).
const char* WriteFile(const std::string& path, const std::string& text) {
  if (RewriteInPlace(path, text)) return nullptr;
  if (!MakeParents(path)) return "make a launch path's folders";
  // Beside the path, so that the rename replaces it in one step; a random
  // name, so that the sandbox cannot have taken it.
  std::string tmp = path + ".pdk-" + RandomHex(8);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) return "create a launch file";
  bool written = ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
  fd.reset();
  if (written && ::rename(tmp.c_str(), path.c_str()) == 0) return nullptr;
  int err = errno;
  ::unlink(tmp.c_str());
  if (written && (err == EISDIR || err == ENOTEMPTY || err == EEXIST)) return nullptr;  // a folder
  errno = err;
  return written ? "put a launch file in place" : "write a launch file";
}

// The filter paddockd compiled, from the sealed memfd it sent; null, or
// the step that failed.
const char* InstallSeccomp(int program_fd) {
  struct stat st;
  if (::fstat(program_fd, &st) != 0) return "read the seccomp filter";
  size_t count = static_cast<size_t>(st.st_size) / sizeof(sock_filter);
  if (count == 0 || count > BPF_MAXINSNS || count * sizeof(sock_filter) != static_cast<size_t>(st.st_size)) {
    errno = EINVAL;
    return "read the seccomp filter";
  }
  std::vector<sock_filter> code(count);
  if (::pread(program_fd, code.data(), st.st_size, 0) != st.st_size) return "read the seccomp filter";
  struct sock_fprog prog = {static_cast<unsigned short>(count), code.data()};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) return "install seccomp filter";
  return nullptr;
}

}  // namespace

void AwaitLaunch(int fd) {
  // Not yet any sandbox's init: named apart until launched, for the host's
  // process listings (and leak checks) to tell a waiting shell from a sandbox.
  ::prctl(PR_SET_NAME, "paddock-shell");
  if (::send(fd, &kernel::kShellReady, 1, MSG_NOSIGNAL) != 1) ::_exit(1);

  // A warm shell waits here. EOF: the host discarded it.
  std::vector<char> message(kernel::kLaunchBytes);
  int program = -1;
  size_t fds = 0;
  ssize_t n = RecvWithFds(fd, message.data(), message.size(), &program, 1, &fds);
  if (n <= 0) ::_exit(1);
  UniqueFd seccomp_program(fds == 1 ? program : -1);
  if (!seccomp_program) Fail(fd, "receive the seccomp filter with the launch", EPROTO);
  uint64_t caps = 0;
  auto launch = kernel::DecodeLaunch(std::string_view(message.data(), static_cast<size_t>(n)), &caps);
  if (!launch.ok()) Fail(fd, "read the launch message", EPROTO);

  // The host has given the cgroup its final name: this is its root from now on.
  if (::unshare(CLONE_NEWCGROUP) != 0) Fail(fd, "unshare cgroup namespace");    // cgroup ns
  if (::sethostname(launch->hostname.data(), launch->hostname.size()) != 0)   // uts ns
    Fail(fd, "sethostname");
  for (const auto& [path, text] : launch->files)
    if (const char* step = WriteFile(path, text)) Fail(fd, step);
  for (const auto& [target, path] : launch->symlinks) {
    if (!MakeParents(path)) Fail(fd, "make a launch path's folders");
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) ::unlink(path.c_str());
    if (::symlink(target.c_str(), path.c_str()) != 0 && errno != EEXIST) Fail(fd, "create a device's symlink");
  }
  for (const auto& [path, mode] : launch->chmods)
    if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0 && errno != ENOENT)
      Fail(fd, "chmod a device's path");
  if ((errno = kernel::caps::Restrict(caps)) != 0) Fail(fd, "restrict capabilities");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) Fail(fd, "set no_new_privs");
  if (const char* step = InstallSeccomp(seccomp_program.get())) Fail(fd, step);
  seccomp_program.reset();
  ::prctl(PR_SET_PDEATHSIG, 0);  // init outlives paddockd: that is the point
  ::prctl(PR_SET_NAME, "paddock-init");
  if (::send(fd, &kernel::kLaunched, 1, MSG_NOSIGNAL) != 1) ::_exit(1);
  ::close(fd);
}

}  // namespace paddock::init
