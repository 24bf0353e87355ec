#include "base/layer_copy.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/fd.h"
#include "base/fs.h"

namespace paddock {

namespace {

struct Shift {
  uid_t from, to;
  uid_t operator()(uid_t id) const {
    return id >= from && id - from < 65536 ? to + (id - from) : id;
  }
};

Status CopyXattrs(int src_dir, int dst_dir, const char* name, const std::string& path) {
  std::string src = "/proc/self/fd/" + std::to_string(src_dir) + "/" + name;
  std::string dst = "/proc/self/fd/" + std::to_string(dst_dir) + "/" + name;
  ssize_t n = ::llistxattr(src.c_str(), nullptr, 0);
  if (n <= 0) return Status::Ok();
  std::vector<char> names(static_cast<size_t>(n));
  n = ::llistxattr(src.c_str(), names.data(), names.size());
  if (n < 0) return Status::Errno("list extended attributes of " + path);
  for (const char* key = names.data(); key < names.data() + n; key += std::strlen(key) + 1) {
    ssize_t len = ::lgetxattr(src.c_str(), key, nullptr, 0);
    if (len < 0) return Status::Errno(std::string("read attribute ") + key + " of " + path);
    std::vector<char> value(static_cast<size_t>(len));
    len = ::lgetxattr(src.c_str(), key, value.data(), value.size());
    if (len < 0 || ::lsetxattr(dst.c_str(), key, value.data(), static_cast<size_t>(len), 0) != 0)
      return Status::Errno(std::string("copy attribute ") + key + " of " + path);
  }
  return Status::Ok();
}

Status CopyFile(int src_dir, int dst_dir, const char* name, const struct stat& st, const std::string& path) {
  UniqueFd in(::openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) return Status::Errno("open " + path);
  UniqueFd out(::openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return Status::Errno("create copy of " + path);
  off_t left = st.st_size;
  bool in_kernel = true;  // copy_file_range, until a filesystem pair refuses it
  std::vector<char> buf;
  while (left > 0) {
    ssize_t n;
    if (in_kernel) {
      n = ::copy_file_range(in.get(), nullptr, out.get(), nullptr, static_cast<size_t>(left), 0);
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) {
        in_kernel = false;  // e.g. out of an overlay mount
        buf.resize(1 << 20);
        continue;
      }
    } else {
      n = ::read(in.get(), buf.data(), std::min<size_t>(buf.size(), static_cast<size_t>(left)));
      if (n > 0) PDK_TRY(WriteAll(out.get(), std::string_view(buf.data(), static_cast<size_t>(n)), path));
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Errno("copy " + path);
    if (n == 0) break;  // the file shrank meanwhile
    left -= n;
  }
  return Status::Ok();
}

Status CopyDir(int src_dir, int dst_dir, const std::string& path, const Shift& shift) {
  int dupfd = ::fcntl(src_dir, F_DUPFD_CLOEXEC, 0);
  DIR* dir = dupfd < 0 ? nullptr : ::fdopendir(dupfd);
  if (!dir) {
    if (dupfd >= 0) ::close(dupfd);
    return Status::Errno("list " + path);
  }
  Status result;
  while (struct dirent* e = ::readdir(dir)) {
    const char* name = e->d_name;
    if (!std::strcmp(name, ".") || !std::strcmp(name, "..")) continue;
    std::string sub = path + "/" + name;
    struct stat st;
    if (::fstatat(src_dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      result = Status::Errno("stat " + sub);
      break;
    }
    Status s;
    if (S_ISDIR(st.st_mode)) {
      if (::mkdirat(dst_dir, name, 0700) != 0 && errno != EEXIST) {
        s = Status::Errno("create folder " + sub);
      } else {
        UniqueFd from(::openat(src_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        UniqueFd to(::openat(dst_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        s = from && to ? CopyDir(from.get(), to.get(), sub, shift) : Status::Errno("open folder " + sub);
      }
    } else if (S_ISREG(st.st_mode)) {
      s = CopyFile(src_dir, dst_dir, name, st, sub);
    } else if (S_ISLNK(st.st_mode)) {
      std::vector<char> target(static_cast<size_t>(st.st_size) + 1);
      ssize_t n = ::readlinkat(src_dir, name, target.data(), target.size());
      if (n < 0 || ::symlinkat(std::string(target.data(), static_cast<size_t>(n)).c_str(), dst_dir, name) != 0)
        s = Status::Errno("copy symlink " + sub);
    } else if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {  // an overlayfs whiteout
      if (::mknodat(dst_dir, name, S_IFCHR | 0000, makedev(0, 0)) != 0) s = Status::Errno("copy whiteout " + sub);
    } else {
      continue;  // sockets, fifos and devices of the sandbox's own are not carried over
    }
    if (s.ok()) s = CopyXattrs(src_dir, dst_dir, name, sub);
    if (s.ok() && ::fchownat(dst_dir, name, shift(st.st_uid), shift(st.st_gid), AT_SYMLINK_NOFOLLOW) != 0)
      s = Status::Errno("chown copy of " + sub);
    if (s.ok() && !S_ISLNK(st.st_mode) && ::fchmodat(dst_dir, name, st.st_mode & 07777, 0) != 0)
      s = Status::Errno("chmod copy of " + sub);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (s.ok() && ::utimensat(dst_dir, name, times, AT_SYMLINK_NOFOLLOW) != 0)
      s = Status::Errno("set times of copy of " + sub);
    if (!s.ok()) {
      result = s;
      break;
    }
  }
  ::closedir(dir);
  return result;
}

}  // namespace

Status CopyLayer(const std::string& from, const std::string& to, uid_t from_base, uid_t to_base) {
  UniqueFd src(::open(from.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!src) return Status::Errno("open " + from);
  UniqueFd dst(::open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dst) return Status::Errno("open " + to);
  return CopyDir(src.get(), dst.get(), from, Shift{from_base, to_base});
}

}  // namespace paddock
