#include "init/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>

#include "base/fd.h"
#include "base/fs.h"
#include "base/ids.h"
#include "init/passwd.h"

namespace paddock::init::files {

namespace {

// Largest single read reply; bigger files are read in ranges.
constexpr uint64_t kMaxReadChunk = agent::kMaxPayloadBytes - 4096;

Result<std::string> PathField(const json& req, const char* field = "path") {
  auto it = req.find(field);
  if (it == req.end() || !it->is_string() || it->get<std::string>().empty())
    return InvalidArgument(std::string("field '") + field + "' must be a non-empty string");
  std::string path = it->get<std::string>();
  if (path[0] != '/') return InvalidArgument(std::string("field '") + field + "' must be absolute");
  if (path.find('\0') != std::string::npos)
    return InvalidArgument(std::string("field '") + field + "' contains a NUL byte");
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

const char* TypeName(mode_t mode) {
  if (S_ISREG(mode)) return "file";
  if (S_ISDIR(mode)) return "dir";
  if (S_ISLNK(mode)) return "symlink";
  return "other";
}

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
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

// Refuses anything but a regular file, naming what it is.
Status CheckRegular(const std::string& path, mode_t mode) {
  if (S_ISREG(mode)) return Status::Ok();
  if (S_ISDIR(mode)) return FailedPrecondition(path + " is a directory");
  const char* kind = S_ISFIFO(mode)                     ? "FIFO"
                     : S_ISSOCK(mode)                   ? "socket"
                     : S_ISCHR(mode) || S_ISBLK(mode) ? "device"
                                                      : "special file";
  return FailedPrecondition(path + " is a " + kind +
                            ": the files API reads and writes regular files only");
}

// Opens `path` for the files API: only a regular file. A FIFO, device or
// socket is refused, and the open itself never waits (O_NONBLOCK: a FIFO
// with no writer would otherwise stall init, and every exec with it).
Result<UniqueFd> OpenRegular(const std::string& path, int flags, mode_t mode = 0) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) PDK_TRY(CheckRegular(path, st.st_mode));  // a socket cannot be opened
  UniqueFd fd(::open(path.c_str(), flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode));
  if (!fd) return Status::Errno("open " + path);
  if (::fstat(fd.get(), &st) != 0) return Status::Errno("stat " + path);
  PDK_TRY(CheckRegular(path, st.st_mode));  // swapped in after the first look
  return fd;
}

// What a listing reply may hold: it must fit a frame header (1 MiB) with room to spare.
constexpr size_t kListBudgetBytes = size_t{512} << 10;

// Appends the entries under `dir`, `depth` levels down, until `budget`
// (approximate reply bytes) runs out; returns false then. With a cursor
// (depth 1 only), starts after the entry it names and gives each entry the
// cursor that resumes after it.
bool ListInto(const std::string& dir, int depth, json& out, size_t& budget, const long* cursor) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return true;
  if (cursor && *cursor > 0) ::seekdir(d, *cursor);
  std::vector<std::string> subdirs;
  bool complete = true;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir == "/" ? "/" + std::string(name) : dir + "/" + std::string(name);
    auto entry = Describe(path);
    if (!entry.ok()) continue;  // vanished while listing
    if (cursor) (*entry)["cursor"] = ::telldir(d);
    size_t cost = 160 + path.size() * 2 + entry->value("symlink_target", "").size();
    if (cost > budget) {
      complete = false;
      break;
    }
    budget -= cost;
    if ((*entry)["type"] == "dir") subdirs.push_back(path);
    out.push_back(std::move(*entry));
  }
  ::closedir(d);
  if (depth > 1)
    for (const auto& sub : subdirs)
      if (complete) complete = ListInto(sub, depth - 1, out, budget, nullptr);
  return complete;
}

}  // namespace

Result<json> Describe(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Status::Errno("stat " + path);
  size_t slash = path.rfind('/');
  json j = {{"path", path},
            {"name", path == "/" ? "/" : path.substr(slash + 1)},
            {"type", TypeName(st.st_mode)},
            {"size", st.st_size},
            {"mode", st.st_mode & 07777},
            {"uid", st.st_uid},
            {"gid", st.st_gid},
            {"mtime_ns", int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec}};
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
    if (n >= 0) j["symlink_target"] = std::string(target, static_cast<size_t>(n));
  }
  return j;
}

Result<Reply> Read(const json& req) {
  PDK_ASSIGN_OR_RETURN(std::string path, PathField(req));
  uint64_t offset = req.value("offset", uint64_t{0});
  uint64_t length = req.value("length", kMaxReadChunk);
  if (length > kMaxReadChunk) length = kMaxReadChunk;
  PDK_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegular(path, O_RDONLY));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Status::Errno("stat " + path);
  Reply r;
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset < size && size - offset < length) length = size - offset;
  r.payload.resize(length);
  size_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd.get(), r.payload.data() + got, length - got,
                        static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Errno("read " + path);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  r.payload.resize(got);
  r.body["size"] = size;
  r.body["eof"] = offset + got >= size;
  return r;
}

Result<Reply> Write(const json& req, std::string_view data) {
  PDK_ASSIGN_OR_RETURN(std::string path, PathField(req));
  bool append = req.value("append", false);
  mode_t mode = req.value("mode", 0644) & 07777;
  if (req.value("parents", true)) PDK_TRY(MakeDirs(Parent(path)));
  int uid = -1, gid = -1;
  if (req.contains("user")) {
    std::string spec = req["user"].is_number_integer()
                           ? std::to_string(req["user"].get<int64_t>())
                           : req.value("user", "");
    PDK_ASSIGN_OR_RETURN(User user, LookupUser(spec));
    uid = static_cast<int>(user.uid);
    gid = static_cast<int>(user.gid);
  }
  if (append) {
    PDK_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegular(path, O_WRONLY | O_CREAT | O_APPEND, mode));
    PDK_TRY(WriteAll(fd.get(), data, path));
    if (uid >= 0 && ::fchown(fd.get(), uid, gid) != 0) return Status::Errno("chown " + path);
  } else {
    // Atomic replace: readers see the old file or the new one, never half of it.
    std::string tmp = Parent(path) + "/.paddock-write-" + RandomHex(6);
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!fd) return Status::Errno("create " + tmp);
    Status s = WriteAll(fd.get(), data, tmp);
    if (s.ok() && ::fchmod(fd.get(), mode) != 0) s = Status::Errno("chmod " + path);
    if (s.ok() && uid >= 0 && ::fchown(fd.get(), uid, gid) != 0) s = Status::Errno("chown " + path);
    fd.reset();
    if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::Errno("rename to " + path);
    if (!s.ok()) {
      ::unlink(tmp.c_str());
      return s;
    }
  }
  PDK_ASSIGN_OR_RETURN(json entry, Describe(path));
  Reply r;
  r.body["entry"] = std::move(entry);
  return r;
}

Result<Reply> Stat(const json& req) {
  PDK_ASSIGN_OR_RETURN(std::string path, PathField(req));
  PDK_ASSIGN_OR_RETURN(json entry, Describe(path));
  Reply r;
  r.body["entry"] = std::move(entry);
  return r;
}

Result<Reply> List(const json& req) {
  PDK_ASSIGN_OR_RETURN(std::string path, PathField(req));
  int depth = req.value("depth", 1);
  if (depth < 1 || depth > 64) return InvalidArgument("field 'depth' must be in 1..64");
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::Errno("stat " + path);
  if (!S_ISDIR(st.st_mode)) return FailedPrecondition(path + " is not a directory");
  json entries = json::array();
  size_t budget = kListBudgetBytes;
  // A cursor pages through one folder of any size: each entry carries the
  // cursor to resume after it, "more" says whether to.
  std::optional<long> cursor;
  if (auto c = req.find("cursor"); c != req.end()) {
    if (!c->is_number_integer() || depth != 1)
      return InvalidArgument("field 'cursor' must be an integer, with depth 1");
    cursor = c->get<long>();
  }
  bool complete = ListInto(path, depth, entries, budget, cursor ? &*cursor : nullptr);
  Reply r;
  r.body["entries"] = std::move(entries);
  if (!complete) r.body[cursor ? "more" : "truncated"] = true;
  return r;
}

Result<Reply> MakeDir(const json& req) {
  PDK_ASSIGN_OR_RETURN(std::string path, PathField(req));
  mode_t mode = req.value("mode", 0755) & 07777;
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return AlreadyExists(path + " exists and is not a directory");
    Reply r;
    r.body["created"] = false;
    return r;
  }
  if (req.value("parents", true)) PDK_TRY(MakeDirs(Parent(path)));
  if (::mkdir(path.c_str(), mode) != 0) return Status::Errno("mkdir " + path);
  if (req.contains("user")) {  // given to that user, as a file written for one
    std::string spec = req["user"].is_number_integer() ? std::to_string(req["user"].get<int64_t>())
                                                       : req.value("user", "");
    PDK_ASSIGN_OR_RETURN(User user, LookupUser(spec));
    if (::lchown(path.c_str(), user.uid, user.gid) != 0) return Status::Errno("chown " + path);
  }
  Reply r;
  r.body["created"] = true;
  return r;
}

Result<Reply> Remove(const json& req) {
  PDK_ASSIGN_OR_RETURN(std::string path, PathField(req));
  if (path == "/") return InvalidArgument("refusing to remove /");
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Status::Errno("stat " + path);
  if (S_ISDIR(st.st_mode) && !req.value("recursive", true)) {
    if (::rmdir(path.c_str()) != 0) return Status::Errno("rmdir " + path);
  } else {
    PDK_TRY(RemoveTree(path));
  }
  return Reply{};
}

Result<Reply> Rename(const json& req) {
  PDK_ASSIGN_OR_RETURN(std::string from, PathField(req, "from"));
  PDK_ASSIGN_OR_RETURN(std::string to, PathField(req, "to"));
  if (::rename(from.c_str(), to.c_str()) != 0) return Status::Errno("rename " + from + " to " + to);
  PDK_ASSIGN_OR_RETURN(json entry, Describe(to));
  Reply r;
  r.body["entry"] = std::move(entry);
  return r;
}

}  // namespace paddock::init::files
