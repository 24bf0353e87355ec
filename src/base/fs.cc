#include "base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

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
  return WriteExistingAt(AT_FDCWD, path, data);
}

Status WriteExistingAt(int dir, const std::string& name, std::string_view data) {
  UniqueFd fd(::openat(dir, name.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Status::Errno("open " + name);
  return WriteAll(fd.get(), data, name);
}

Result<UniqueFd> OpenRegularAt(int dir, const std::string& name, struct stat* st) {
  struct stat own;
  if (!st) st = &own;
  UniqueFd node(::openat(dir, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!node) return Status::Errno("open " + name);
  if (::fstat(node.get(), st) != 0) return Status::Errno("stat " + name);
  if (!S_ISREG(st->st_mode)) return FailedPrecondition(name + " is not a regular file");
  UniqueFd file(::open(("/proc/self/fd/" + std::to_string(node.get())).c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) return Status::Errno("open " + name);
  return file;
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

namespace {

// One folder on the way down: its name in its parent, and the identity of
// that parent, so that climbing back up through ".." can check where it lands.
struct Level {
  std::string name;
  dev_t parent_dev;
  ino_t parent_ino;
};

std::string PathOf(const std::string& root, const std::vector<Level>& down) {
  std::string path = root;
  for (const auto& l : down) path += "/" + l.name;
  return path;
}

// Removes what `dirfd` holds that is not a folder; returns the name of one
// folder left in it ("" when none), or the error.
Result<std::string> RemoveFilesIn(int dirfd, const std::function<std::string()>& where) {
  int dupfd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0) return Status::Errno("dup " + where());
  DIR* dir = ::fdopendir(dupfd);
  if (!dir) {
    ::close(dupfd);
    return Status::Errno("opendir " + where());
  }
  ::rewinddir(dir);
  Result<std::string> folder = std::string();
  while (struct dirent* e = ::readdir(dir)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    if (::unlinkat(dirfd, e->d_name, 0) == 0) continue;
    if (errno == EISDIR || errno == EPERM) {
      folder = std::string(name);
      break;
    }
    folder = Status::Errno("unlink " + where() + "/" + e->d_name);
    break;
  }
  ::closedir(dir);
  return folder;
}

}  // namespace

// Depth first without recursion, holding two descriptors whatever the depth
// (a tree 5,000 folders deep, which a sandbox can make, goes like any other),
// never following symlinks.
Status RemoveTree(const std::string& path) {
  if (::unlink(path.c_str()) == 0) return Status::Ok();
  if (errno == ENOENT) return Status::Ok();
  UniqueFd cur(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!cur) return errno == ENOENT ? Status::Ok() : Status::Errno("open " + path);
  std::vector<Level> down;
  auto where = [&] { return PathOf(path, down); };
  for (;;) {
    PDK_ASSIGN_OR_RETURN(std::string sub, RemoveFilesIn(cur.get(), where));
    if (!sub.empty()) {
      UniqueFd child(
          ::openat(cur.get(), sub.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child) return Status::Errno("open " + where() + "/" + sub);
      struct stat st;
      if (::fstat(cur.get(), &st) != 0) return Status::Errno("stat " + where());
      down.push_back({sub, st.st_dev, st.st_ino});
      cur = std::move(child);
      continue;
    }
    if (down.empty()) break;
    UniqueFd parent(::openat(cur.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct stat st;
    if (!parent || ::fstat(parent.get(), &st) != 0) return Status::Errno("open " + where() + "/..");
    if (st.st_dev != down.back().parent_dev || st.st_ino != down.back().parent_ino)
      return FailedPrecondition("folder " + where() + " moved while it was being removed");
    std::string name = std::move(down.back().name);
    down.pop_back();
    cur = std::move(parent);
    if (::unlinkat(cur.get(), name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
      return Status::Errno("rmdir " + where() + "/" + name);
  }
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

Result<std::vector<std::string>> NamesIn(int dir_fd, const std::string& path) {
  int copy = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* d = copy < 0 ? nullptr : ::fdopendir(copy);
  if (!d) {
    if (copy >= 0) ::close(copy);
    return Status::Errno("list " + path);
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d))
    if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) names.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::vector<std::pair<std::string, std::string>>> ReadXattrs(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
  if (n <= 0) return out;
  std::vector<char> names(static_cast<size_t>(n));
  n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) return Status::Errno("list extended attributes of " + path);
  for (const char* key = names.data(); key < names.data() + n; key += std::strlen(key) + 1) {
    ssize_t len = ::lgetxattr(path.c_str(), key, nullptr, 0);
    std::string value(static_cast<size_t>(std::max<ssize_t>(len, 0)), '\0');
    if (len >= 0) len = ::lgetxattr(path.c_str(), key, value.data(), value.size());
    if (len < 0) return Status::Errno(std::string("read attribute ") + key + " of " + path);
    value.resize(static_cast<size_t>(len));
    out.emplace_back(key, std::move(value));
  }
  return out;
}

Status SyncFilesystem(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::syncfs(fd.get()) != 0) return Status::Errno("sync " + dir);
  return Status::Ok();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::optional<std::vector<std::string>> CleanParts(std::string_view path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = std::min(path.find('/', i), path.size());
    std::string_view c = path.substr(i, j - i);
    if (c == "..") return std::nullopt;
    if (!c.empty() && c != ".") parts.emplace_back(c);
    i = j + 1;
  }
  return parts;
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
