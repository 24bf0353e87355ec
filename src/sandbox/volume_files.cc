#include "sandbox/volume_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>

#include "base/fs.h"
#include "base/ids.h"

namespace paddock::volume_files {

namespace {

constexpr uint32_t kMaxId = 65535;

struct Path {
  std::vector<std::string> parts;  // empty: the top
  std::string shown;               // "/a/b"
  std::string parent() const {
    std::string p;
    for (size_t i = 0; i + 1 < parts.size(); ++i) p += (p.empty() ? "" : "/") + parts[i];
    return p.empty() ? "." : p;
  }
  const std::string& name() const { return parts.back(); }
};

Result<Path> Parse(const std::string& raw) {
  if (raw.empty() || raw[0] != '/' || raw.size() > 4096 || raw.find('\0') != std::string::npos)
    return InvalidArgument("path '" + raw.substr(0, 200) + "' must be absolute (\"/\" is the volume's top)");
  auto parts = CleanParts(raw);
  if (!parts) return InvalidArgument("path '" + raw + "' must not contain '..'");
  Path p;
  p.parts = std::move(*parts);
  for (const auto& c : p.parts) p.shown += "/" + c;
  if (p.shown.empty()) p.shown = "/";
  return p;
}

Status Errno(const std::string& what, const std::string& path, int err = errno) {
  if (err == ENOENT) return NotFound("'" + path + "' does not exist in the volume");
  if (err == ENOTDIR) return NotFound("'" + path + "': a part of it is not a folder");
  if (err == ELOOP || err == EXDEV) return FailedPrecondition("'" + path + "' leads through a link it cannot follow");
  return Status::Errno(what + " " + path, err);
}

// `rel` (relative, "." for the top) inside `root`, never out of it.
Result<UniqueFd> OpenInside(int root, const std::string& rel, uint64_t flags, const std::string& shown) {
  struct open_how how {};
  how.flags = flags | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  long fd = ::syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how);
  if (fd < 0) return Errno("open", shown);
  return UniqueFd(static_cast<int>(fd));
}

Result<UniqueFd> OpenParent(int root, const Path& p) {
  return OpenInside(root, p.parent(), O_PATH | O_DIRECTORY, p.shown);
}

Entry FromStat(const struct stat& st, const std::string& name, const std::string& path) {
  Entry e;
  e.name = name;
  e.path = path;
  e.type = S_ISREG(st.st_mode) ? EntryType::kFile
           : S_ISDIR(st.st_mode) ? EntryType::kDirectory
           : S_ISLNK(st.st_mode) ? EntryType::kSymlink
                                 : EntryType::kOther;
  e.mode = st.st_mode & 07777;
  e.uid = st.st_uid;
  e.gid = st.st_gid;
  e.size = st.st_size;
  auto ns = [](const struct timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; };
  e.atime_ns = ns(st.st_atim);
  e.mtime_ns = ns(st.st_mtim);
  e.ctime_ns = ns(st.st_ctim);
  return e;
}

// `name` in the folder `dir`, as itself.
Result<Entry> StatAt(int dir, const std::string& name, const std::string& path) {
  struct stat st;
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Errno("stat", path);
  Entry e = FromStat(st, name, path);
  if (S_ISLNK(st.st_mode)) {
    std::vector<char> target(static_cast<size_t>(std::min<off_t>(st.st_size, 4096)) + 1);
    ssize_t n = ::readlinkat(dir, name.c_str(), target.data(), target.size());
    if (n > 0) e.target.assign(target.data(), static_cast<size_t>(n));
  }
  return e;
}

Result<Entry> StatTop(int root) {
  struct stat st;
  if (::fstat(root, &st) != 0) return Status::Errno("stat the volume");
  return FromStat(st, "", "/");
}

Status CheckOwner(const Owner& o) {
  if ((o.uid && *o.uid > kMaxId) || (o.gid && *o.gid > kMaxId))
    return InvalidArgument("uid and gid must be at most 65535 (ids as sandboxes see them)");
  if (o.mode && *o.mode > 07777) return InvalidArgument("mode must be permission bits (at most 07777)");
  return Status::Ok();
}

// Gives `name` in `dir` the owner and mode asked for (or root's and `mode`).
Status Own(int dir, const std::string& name, const Owner& o, uint32_t mode, const std::string& path) {
  if (::fchownat(dir, name.c_str(), o.uid.value_or(0), o.gid.value_or(0), AT_SYMLINK_NOFOLLOW) != 0)
    return Errno("chown", path);
  // Never through a symlink a sandbox put there meanwhile (glibc refuses one).
  if (::fchmodat(dir, name.c_str(), o.mode.value_or(mode), AT_SYMLINK_NOFOLLOW) != 0) return Errno("chmod", path);
  return Status::Ok();
}

Status CopyInto(int out, const std::string& source, const std::string& path) {
  UniqueFd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return Status::Errno("open the upload");
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::copy_file_range(in.get(), nullptr, out, nullptr, 1 << 30, 0);
    if (n == 0) return Status::Ok();
    if (n > 0) continue;
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS) return Errno("write", path);
    break;  // across filesystems: by hand
  }
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Errno("read the upload");
    if (n == 0) return Status::Ok();
    PDK_TRY(WriteAll(out, std::string_view(buf.data(), static_cast<size_t>(n)), path));
  }
}

}  // namespace

const char* EntryTypeName(EntryType t) {
  switch (t) {
    case EntryType::kFile: return "file";
    case EntryType::kDirectory: return "directory";
    case EntryType::kSymlink: return "symlink";
    case EntryType::kOther: return "unknown";
  }
  return "unknown";
}

Result<Entry> Stat(int root, const std::string& path) {
  PDK_ASSIGN_OR_RETURN(Path p, Parse(path));
  if (p.parts.empty()) return StatTop(root);
  PDK_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(root, p));
  return StatAt(parent.get(), p.name(), p.shown);
}

Result<std::vector<Entry>> List(int root, const std::string& path, int depth) {
  PDK_ASSIGN_OR_RETURN(Path p, Parse(path));
  depth = std::clamp(depth, 1, kMaxDepth);
  PDK_ASSIGN_OR_RETURN(Entry top, Stat(root, path));
  if (top.type != EntryType::kDirectory) return FailedPrecondition("'" + p.shown + "' is not a folder");
  std::vector<Entry> out;
  // Breadth first, one folder open at a time, each reopened inside the root.
  std::deque<std::pair<std::string, int>> todo = {{p.parts.empty() ? "" : p.shown, 1}};
  while (!todo.empty()) {
    auto [dir, level] = todo.front();
    todo.pop_front();
    std::string rel = dir.empty() ? "." : dir.substr(1);
    PDK_ASSIGN_OR_RETURN(UniqueFd fd, OpenInside(root, rel, O_RDONLY | O_DIRECTORY, dir.empty() ? "/" : dir));
    PDK_ASSIGN_OR_RETURN(std::vector<std::string> names, NamesIn(fd.get(), dir.empty() ? "/" : dir));
    for (const auto& name : names) {
      if (out.size() == kMaxEntries)
        return FailedPrecondition("'" + p.shown + "' holds more than " + std::to_string(kMaxEntries) +
                                  " entries at that depth: list a folder further down, or less deep");
      auto e = StatAt(fd.get(), name, dir + "/" + name);
      if (!e.ok()) continue;  // gone meanwhile
      if (e->type == EntryType::kDirectory && level < depth) todo.emplace_back(e->path, level + 1);
      out.push_back(std::move(*e));
    }
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.path < b.path; });
  return out;
}

Result<Entry> MakeDir(int root, const std::string& path, const Owner& owner, bool parents) {
  PDK_TRY(CheckOwner(owner));
  PDK_ASSIGN_OR_RETURN(Path p, Parse(path));
  if (p.parts.empty()) return AlreadyExists("the volume's top exists");
  if (!parents) {
    PDK_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(root, p));
    if (::mkdirat(parent.get(), p.name().c_str(), 0700) != 0) {
      if (errno == EEXIST) return AlreadyExists("'" + p.shown + "' exists");
      return Errno("create folder", p.shown);
    }
    PDK_TRY(Own(parent.get(), p.name(), owner, 0755, p.shown));
    return StatAt(parent.get(), p.name(), p.shown);
  }
  UniqueFd cur(::openat(root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cur) return Status::Errno("open the volume");
  std::string at;
  for (size_t i = 0; i < p.parts.size(); ++i) {
    const std::string& part = p.parts[i];
    at += "/" + part;
    if (::mkdirat(cur.get(), part.c_str(), 0700) == 0) {
      PDK_TRY(Own(cur.get(), part, owner, 0755, at));
    } else if (errno != EEXIST) {
      return Errno("create folder", at);
    }
    if (i + 1 == p.parts.size()) return StatAt(cur.get(), part, at);
    UniqueFd next(::openat(cur.get(), part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return FailedPrecondition("'" + at + "' is not a folder");
    cur = std::move(next);
  }
  return StatTop(root);
}

Result<UniqueFd> OpenFile(int root, const std::string& path) {
  PDK_ASSIGN_OR_RETURN(Path p, Parse(path));
  if (p.parts.empty()) return FailedPrecondition("'/' is a folder");
  PDK_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(root, p));
  // Looked at before it is opened: a device or a FIFO is never opened.
  UniqueFd node(::openat(parent.get(), p.name().c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!node) return Errno("open", p.shown);
  struct stat st;
  if (::fstat(node.get(), &st) != 0) return Errno("stat", p.shown);
  if (!S_ISREG(st.st_mode))
    return FailedPrecondition("'" + p.shown + "' is " +
                              (S_ISDIR(st.st_mode) ? "a folder" : S_ISLNK(st.st_mode) ? "a symlink" : "not a file"));
  UniqueFd file(::open(("/proc/self/fd/" + std::to_string(node.get())).c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) return Errno("open", p.shown);
  return file;
}

Result<Entry> WriteFile(int root, const std::string& path, const std::string& source, std::string_view data,
                        const Owner& owner) {
  PDK_TRY(CheckOwner(owner));
  PDK_ASSIGN_OR_RETURN(Path p, Parse(path));
  if (p.parts.empty()) return FailedPrecondition("'/' is a folder");
  PDK_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(root, p));
  struct stat st;
  if (::fstatat(parent.get(), p.name().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
    return FailedPrecondition("'" + p.shown + "' is a folder");
  // Written beside it, then renamed over it: readers see the old file or the new.
  std::string tmp = ".pdk-write-" + RandomHex(6);
  UniqueFd out(::openat(parent.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return Errno("create", p.shown);
  Status s = source.empty() ? WriteAll(out.get(), data, p.shown) : CopyInto(out.get(), source, p.shown);
  if (s.ok() && ::fchown(out.get(), owner.uid.value_or(0), owner.gid.value_or(0)) != 0) s = Errno("chown", p.shown);
  if (s.ok() && ::fchmod(out.get(), owner.mode.value_or(0644)) != 0) s = Errno("chmod", p.shown);
  if (s.ok() && ::renameat(parent.get(), tmp.c_str(), parent.get(), p.name().c_str()) != 0) s = Errno("write", p.shown);
  if (!s.ok()) {
    ::unlinkat(parent.get(), tmp.c_str(), 0);
    return s;
  }
  return StatAt(parent.get(), p.name(), p.shown);
}

Result<Entry> SetMetadata(int root, const std::string& path, const Owner& owner) {
  PDK_TRY(CheckOwner(owner));
  PDK_ASSIGN_OR_RETURN(Path p, Parse(path));
  UniqueFd parent;
  std::string name = ".";
  if (!p.parts.empty()) {
    PDK_ASSIGN_OR_RETURN(parent, OpenParent(root, p));
    name = p.name();
  }
  int dir = parent ? parent.get() : root;
  if ((owner.uid || owner.gid) &&
      ::fchownat(dir, name.c_str(), owner.uid ? *owner.uid : static_cast<uid_t>(-1),
                 owner.gid ? *owner.gid : static_cast<gid_t>(-1), AT_SYMLINK_NOFOLLOW) != 0)
    return Errno("chown", p.shown);
  if (owner.mode) {
    struct stat st;
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Errno("stat", p.shown);
    if (S_ISLNK(st.st_mode)) return FailedPrecondition("'" + p.shown + "' is a symlink: it has no mode of its own");
    if (::fchmodat(dir, name.c_str(), *owner.mode, AT_SYMLINK_NOFOLLOW) != 0) return Errno("chmod", p.shown);
  }
  return p.parts.empty() ? StatTop(root) : StatAt(dir, name, p.shown);
}

Status Remove(int root, const std::string& path) {
  PDK_ASSIGN_OR_RETURN(Path p, Parse(path));
  if (p.parts.empty()) return InvalidArgument("the volume's top cannot be removed (remove the volume instead)");
  PDK_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(root, p));
  if (::unlinkat(parent.get(), p.name().c_str(), 0) == 0) return Status::Ok();
  if (errno != EISDIR) return Errno("remove", p.shown);
  return RemoveTree("/proc/self/fd/" + std::to_string(parent.get()) + "/" + p.name());
}

}  // namespace paddock::volume_files
