#include "base/layer_copy.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "base/fs.h"
#include "base/tree_walk.h"

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
  auto xattrs = ReadXattrs(src);
  if (!xattrs.ok()) return xattrs.status().Annotate(path);
  for (const auto& [key, value] : *xattrs)
    if (::lsetxattr(dst.c_str(), key.c_str(), value.data(), value.size(), 0) != 0)
      return Status::Errno("copy attribute " + key + " of " + path);
  return Status::Ok();
}

Status CopyFile(int src_dir, int dst_dir, const char* name, const struct stat& st, const std::string& path) {
  auto opened = OpenRegularAt(src_dir, name);  // not one a running sandbox swapped for a FIFO
  if (!opened.ok()) return opened.status().Annotate(path);
  UniqueFd in = std::move(*opened);
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

// Copies `name` from `src_dir` to `dst_dir` when it is not a folder; false
// for a type that is not carried over.
Result<bool> CopyEntry(int src_dir, int dst_dir, const char* name, const struct stat& st,
                       const std::string& path) {
  if (S_ISREG(st.st_mode)) {
    PDK_TRY(CopyFile(src_dir, dst_dir, name, st, path));
  } else if (S_ISLNK(st.st_mode)) {
    std::vector<char> target(static_cast<size_t>(st.st_size) + 1);
    ssize_t n = ::readlinkat(src_dir, name, target.data(), target.size());
    if (n < 0 ||
        ::symlinkat(std::string(target.data(), static_cast<size_t>(n)).c_str(), dst_dir, name) != 0)
      return Status::Errno("copy symlink " + path);
  } else if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {  // an overlayfs whiteout
    if (::mknodat(dst_dir, name, S_IFCHR | 0000, makedev(0, 0)) != 0)
      return Status::Errno("copy whiteout " + path);
  } else {
    return false;  // sockets, fifos and devices of the sandbox's own are not carried over
  }
  return true;
}

// Gives the copy of `name` the source's attributes, owners and times (a
// folder's once its contents are in, so that they do not touch its times).
Status FinishEntry(int src_dir, int dst_dir, const char* name, const struct stat& st,
                   const std::string& path, const Shift& shift) {
  PDK_TRY(CopyXattrs(src_dir, dst_dir, name, path));
  if (::fchownat(dst_dir, name, shift(st.st_uid), shift(st.st_gid), AT_SYMLINK_NOFOLLOW) != 0)
    return Status::Errno("chown copy of " + path);
  if (!S_ISLNK(st.st_mode) && ::fchmodat(dst_dir, name, st.st_mode & 07777, 0) != 0)
    return Status::Errno("chmod copy of " + path);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(dst_dir, name, times, AT_SYMLINK_NOFOLLOW) != 0)
    return Status::Errno("set times of copy of " + path);
  return Status::Ok();
}

}  // namespace

Status CopyTopFolder(const std::string& from, const std::string& to, uid_t from_base, uid_t to_base) {
  const Shift shift{from_base, to_base};
  struct stat st;
  if (::stat(from.c_str(), &st) != 0) return Status::Errno("stat " + from);
  if (::chown(to.c_str(), shift(st.st_uid), shift(st.st_gid)) != 0) return Status::Errno("chown " + to);
  if (::chmod(to.c_str(), st.st_mode & 07777) != 0) return Status::Errno("chmod " + to);
  return Status::Ok();
}

// A walk of `from` (base/tree_walk.h) with a second descriptor, the copy's
// folder, moved down and up beside it.
Status CopyLayer(const std::string& from, const std::string& to, uid_t from_base, uid_t to_base,
                 int64_t* bytes) {
  const Shift shift{from_base, to_base};
  UniqueFd src(::open(from.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!src) return Status::Errno("open " + from);
  UniqueFd dst(::open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dst) return Status::Errno("open " + to);
  // Files with more than one name are copied once and linked again (as
  // package managers leave them), by their copy's path under `to`.
  std::map<std::pair<dev_t, ino_t>, std::string> linked;
  TreeWalk walk;
  walk.visit = [&](int dir, const std::string& name, const struct stat& st, const std::string& rel) -> Result<bool> {
    const std::string where = from + "/" + rel;
    if (S_ISDIR(st.st_mode)) {
      if (::mkdirat(dst.get(), name.c_str(), 0700) != 0 && errno != EEXIST)
        return Status::Errno("create folder " + where);
      return true;
    }
    if (st.st_nlink > 1) {
      auto [first, fresh] = linked.try_emplace({st.st_dev, st.st_ino}, to + "/" + rel);
      // A link too long for a path (thousands of folders deep) is copied.
      if (!fresh && ::linkat(AT_FDCWD, first->second.c_str(), dst.get(), name.c_str(), 0) == 0) return false;
    }
    PDK_ASSIGN_OR_RETURN(bool copied, CopyEntry(dir, dst.get(), name.c_str(), st, where));
    if (copied) PDK_TRY(FinishEntry(dir, dst.get(), name.c_str(), st, where, shift));
    if (copied && bytes) *bytes += st.st_size;
    return false;
  };
  walk.enter = [&](int, const std::string& name, const std::string& rel) -> Status {
    UniqueFd down(::openat(dst.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!down) return Status::Errno("open folder " + to + "/" + rel);
    dst = std::move(down);
    return Status::Ok();
  };
  walk.leave = [&](int parent, const std::string& name, const struct stat& st, const std::string& rel) -> Status {
    UniqueFd up(::openat(dst.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!up) return Status::Errno("open the folder above " + to + "/" + rel);
    dst = std::move(up);
    return FinishEntry(parent, dst.get(), name.c_str(), st, from + "/" + rel, shift);
  };
  return WalkTree(std::move(src), from, walk, "copied");
}

}  // namespace paddock
