#include "base/host_lock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "base/fs.h"

namespace paddock {

Result<HostLock> HostLock::Acquire(const std::string& path, int wait_ms, const std::string& holder) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0)
    return InvalidArgument("host lock '" + path + "' must be in a folder");
  std::string dir = path.substr(0, slash);
  PDK_TRY(MakeDirs(dir, 0700));
  // Whoever may write the folder may put a link or a file of their own at
  // the lock's name: only its owner may.
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) return Status::Errno("stat " + dir);
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022) != 0)
    return FailedPrecondition("the host lock's folder " + dir +
                              " must be a folder that only its owner, this user, may write");
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return Status::Errno("open " + path);
  if (::fstat(fd.get(), &st) != 0) return Status::Errno("stat " + path);
  if (!S_ISREG(st.st_mode)) return FailedPrecondition("the host lock " + path + " is not a plain file");

  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    struct flock lock = {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    if (::fcntl(fd.get(), F_OFD_SETLK, &lock) == 0) break;
    if (errno != EAGAIN && errno != EACCES) return Status::Errno("lock " + path);
    if (std::chrono::steady_clock::now() >= deadline) {
      char text[512];
      ssize_t n = ::pread(fd.get(), text, sizeof text, 0);
      std::string who(text, n > 0 ? static_cast<size_t>(n) : 0);
      while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
      return Unavailable(path + " is held by " + (who.empty() ? "another process" : who) + " (waited " +
                         std::to_string(wait_ms) + " ms for it to let go)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::string who = "pid " + std::to_string(::getpid()) + ", " + holder + "\n";
  if (::ftruncate(fd.get(), 0) != 0) return Status::Errno("truncate " + path);
  if (::pwrite(fd.get(), who.data(), who.size(), 0) != static_cast<ssize_t>(who.size()))
    return Status::Errno("write " + path);
  return HostLock(std::move(fd));
}

}  // namespace paddock
