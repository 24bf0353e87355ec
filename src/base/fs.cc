#include "base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fd.h"
#include "base/ids.h"

namespace paddock {

Result<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Errno("open " + path);
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Errno("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Errno("write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Status WriteExisting(const std::string& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Status::Errno("open " + path);
  return WriteAll(fd.get(), data, path);
}

Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = path + ".tmp-" + RandomHex(6);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd) return Status::Errno("create " + tmp);
  Status s = WriteAll(fd.get(), data, tmp);
  if (s.ok() && ::fsync(fd.get()) != 0) s = Status::Errno("fsync " + tmp);
  fd.reset();
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::Errno("rename " + path);
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return InvalidArgument("MakeDirs: empty path");
  size_t pos = 0;
  do {
    pos = path.find('/', pos + 1);
    std::string part = path.substr(0, pos);
    if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST) return Status::Errno("mkdir " + part);
  } while (pos != std::string::npos);
  return Status::Ok();
}

// Removes everything below the open directory `dirfd`, never following symlinks.
static Status RemoveContents(int dirfd, const std::string& path) {
  int dupfd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0) return Status::Errno("dup " + path);
  DIR* dir = ::fdopendir(dupfd);
  if (!dir) {
    ::close(dupfd);
    return Status::Errno("opendir " + path);
  }
  Status result;
  while (struct dirent* e = ::readdir(dir)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    if (::unlinkat(dirfd, e->d_name, 0) == 0) continue;
    if (errno != EISDIR && errno != EPERM) {
      result = Status::Errno("unlink " + path + "/" + e->d_name);
      break;
    }
    UniqueFd child(::openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!child) {
      result = Status::Errno("open " + path + "/" + e->d_name);
      break;
    }
    result = RemoveContents(child.get(), path + "/" + e->d_name);
    if (!result.ok()) break;
    if (::unlinkat(dirfd, e->d_name, AT_REMOVEDIR) != 0) {
      result = Status::Errno("rmdir " + path + "/" + e->d_name);
      break;
    }
  }
  ::closedir(dir);
  return result;
}

Status RemoveTree(const std::string& path) {
  if (::unlink(path.c_str()) == 0) return Status::Ok();
  if (errno == ENOENT) return Status::Ok();
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return errno == ENOENT ? Status::Ok() : Status::Errno("open " + path);
  PDK_TRY(RemoveContents(dir.get(), path));
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return Status::Errno("rmdir " + path);
  return Status::Ok();
}

std::vector<std::string> ListDir(const std::string& dir, bool dirs_only) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent* e = ::readdir(d))
    if (e->d_name[0] != '.' && (!dirs_only || e->d_type == DT_DIR)) out.emplace_back(e->d_name);
  ::closedir(d);
  return out;
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string JoinPath(std::string_view a, std::string_view b) {
  while (!a.empty() && a.back() == '/') a.remove_suffix(1);
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  std::string out(a);
  out += '/';
  out += b;
  return out;
}

int64_t MonotonicNanos() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace paddock
