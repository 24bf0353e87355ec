#include "sandbox/layer_archive.h"

#include <archive.h>
#include <archive_entry.h>
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

#include "base/archive_util.h"
#include "base/fd.h"
#include "base/fs.h"
#include "base/tree_walk.h"
#include "image/digest.h"

namespace paddock {

namespace {

constexpr uid_t kNobody = 65534;
// Longer paths would need libarchive's deep-folder mode to restore, which
// changes the working folder of the whole process.
constexpr size_t kMaxPath = 3000;
constexpr size_t kChunk = 1 << 20;

// The output: the file, hashed and counted as libarchive writes it.
struct Sink {
  int fd = -1;
  std::string path;
  image::Sha256 hash;
  int64_t size = 0;
  Status error;
};

la_ssize_t SinkWrite(struct archive* a, void* ctx, const void* buf, size_t n) {
  auto* sink = static_cast<Sink*>(ctx);
  Status s = WriteAll(sink->fd, std::string_view(static_cast<const char*>(buf), n), sink->path);
  if (!s.ok()) {
    sink->error = s;
    archive_set_error(a, EIO, "%s", s.message().c_str());
    return -1;
  }
  sink->hash.Update(buf, n);
  sink->size += static_cast<int64_t>(n);
  return static_cast<la_ssize_t>(n);
}

class Writer {
 public:
  Writer(uid_t id_base, Sink& sink) : id_base_(id_base), sink_(sink), a_(archive_write_new()) {}
  ~Writer() { archive_write_free(a_); }

  Status Open() {
    archive_write_set_format_pax(a_);
    archive_write_add_filter_zstd(a_);
    (void)archive_write_set_filter_option(a_, "zstd", "compression-level", "3");
    archive_write_set_bytes_in_last_block(a_, 1);
    if (archive_write_open(a_, &sink_, nullptr, SinkWrite, nullptr) != ARCHIVE_OK)
      return Internal(ArchiveError(a_, "start the archive"));
    return Status::Ok();
  }
  Status Close() {
    if (archive_write_close(a_) != ARCHIVE_OK)
      return sink_.error.ok() ? Internal(ArchiveError(a_, "finish the archive")) : sink_.error;
    return Status::Ok();
  }

  // Adds `name` in the folder `dir` as `rel` (a folder: itself only).
  Status Add(int dir, const char* name, const struct stat& st, const std::string& rel, const std::string& where) {
    if (rel.size() > kMaxPath)
      return FailedPrecondition("path " + rel.substr(0, 200) + "... is longer than " + std::to_string(kMaxPath) +
                                " bytes: it cannot be archived");
    if (S_ISSOCK(st.st_mode) || S_ISBLK(st.st_mode) || (S_ISCHR(st.st_mode) && st.st_rdev != makedev(0, 0)))
      return Status::Ok();  // sockets and devices of the sandbox's own are not kept
    struct archive_entry* e = archive_entry_new();
    Status s = Fill(e, dir, name, st, rel, where);
    UniqueFd data;
    if (s.ok() && S_ISREG(st.st_mode) && !archive_entry_hardlink(e) && st.st_size > 0) {
      auto opened = OpenRegularAt(dir, name);  // not one swapped for a FIFO meanwhile
      if (opened.ok()) data = std::move(*opened);
      else s = opened.status().Annotate(where);
      if (s.ok()) s = MapHoles(e, data.get(), st.st_size);
    }
    if (s.ok() && archive_write_header(a_, e) != ARCHIVE_OK) s = Failed("add " + where);
    if (s.ok() && data) s = WriteData(e, data.get(), where);
    archive_entry_free(e);
    if (s.ok()) ++entries_;
    return s;
  }

  int64_t bytes() const { return bytes_; }
  int64_t entries() const { return entries_; }

 private:
  uid_t Stored(uid_t id) const { return id >= id_base_ && id - id_base_ < 65536 ? id - id_base_ : kNobody; }

  Status Failed(const std::string& what) {
    return sink_.error.ok() ? Internal(ArchiveError(a_, what)) : sink_.error;
  }

  Status Fill(struct archive_entry* e, int dir, const char* name, const struct stat& st, const std::string& rel,
              const std::string& where) {
    archive_entry_set_pathname(e, rel.empty() ? "." : rel.c_str());
    archive_entry_copy_stat(e, &st);
    archive_entry_set_uid(e, Stored(st.st_uid));
    archive_entry_set_gid(e, Stored(st.st_gid));
    archive_entry_unset_atime(e);  // reading the tree changes them: the same tree, the same archive
    archive_entry_unset_ctime(e);
    archive_entry_set_ino64(e, 0);
    archive_entry_set_dev(e, 0);
    archive_entry_set_nlink(e, 1);
    if (S_ISLNK(st.st_mode)) {
      std::vector<char> target(static_cast<size_t>(st.st_size) + 1);
      ssize_t n = ::readlinkat(dir, name, target.data(), target.size());
      if (n < 0) return Status::Errno("read symlink " + where);
      archive_entry_set_symlink(e, std::string(target.data(), static_cast<size_t>(n)).c_str());
    }
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto [first, fresh] = linked_.try_emplace({st.st_dev, st.st_ino}, rel);
      if (!fresh) {
        archive_entry_set_hardlink(e, first->second.c_str());
        archive_entry_set_size(e, 0);
      }
    }
    if (!S_ISREG(st.st_mode)) archive_entry_set_size(e, 0);
    return AddXattrs(e, dir, name, where);
  }

  static Status AddXattrs(struct archive_entry* e, int dir, const char* name, const std::string& where) {
    auto xattrs = ReadXattrs("/proc/self/fd/" + std::to_string(dir) + "/" + name);
    if (!xattrs.ok()) return xattrs.status().Annotate(where);
    for (const auto& [key, value] : *xattrs)
      archive_entry_xattr_add_entry(e, key.c_str(), value.data(), value.size());
    return Status::Ok();
  }

  // Records the file's data regions, so that holes stay holes (a sparse
  // terabyte costs nothing to archive).
  static Status MapHoles(struct archive_entry* e, int fd, off_t size) {
    std::vector<std::pair<off_t, off_t>> regions;
    for (off_t at = 0; at < size;) {
      off_t data = ::lseek(fd, at, SEEK_DATA);
      if (data < 0) {
        if (errno == ENXIO) break;  // only a hole from here
        return Status::Ok();        // no hole support: the whole file
      }
      off_t hole = ::lseek(fd, data, SEEK_HOLE);
      if (hole < 0) return Status::Ok();
      hole = std::min(hole, size);
      regions.emplace_back(data, hole - data);
      at = hole;
    }
    if (regions.size() == 1 && regions[0].first == 0 && regions[0].second == size) return Status::Ok();
    if (regions.empty()) regions.emplace_back(size - 1, 1);  // all hole: pax needs one region
    for (const auto& [off, len] : regions) archive_entry_sparse_add_entry(e, off, len);
    if (regions.back().first + regions.back().second < size)
      archive_entry_sparse_add_entry(e, size, 0);  // ends in a hole
    return Status::Ok();
  }

  // libarchive takes the whole content, holes included, and skips what
  // the sparse map says is a hole: holes are fed from a zero buffer it
  // never reads.
  Status WriteData(struct archive_entry* e, int fd, const std::string& where) {
    std::vector<std::pair<off_t, off_t>> regions;
    if (archive_entry_sparse_reset(e) > 0) {
      la_int64_t off, len;
      while (archive_entry_sparse_next(e, &off, &len) == ARCHIVE_OK) regions.emplace_back(off, len);
    } else {
      regions.emplace_back(0, archive_entry_size(e));
    }
    buf_.resize(kChunk);
    static const std::vector<char> zeros(kChunk);
    off_t at = 0;
    auto skip_to = [&](off_t to) -> Status {
      for (; at < to;) {
        size_t n = static_cast<size_t>(std::min<off_t>(to - at, kChunk));
        if (archive_write_data(a_, zeros.data(), n) != static_cast<la_ssize_t>(n)) return Failed("write " + where);
        at += static_cast<off_t>(n);
      }
      return Status::Ok();
    };
    for (auto [off, len] : regions) {
      PDK_TRY(skip_to(off));
      while (len > 0) {
        ssize_t n = ::pread(fd, buf_.data(), static_cast<size_t>(std::min<off_t>(len, kChunk)), off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Status::Errno("read " + where);
        if (n == 0) return Status::Ok();  // it shrank: libarchive pads the entry
        if (archive_write_data(a_, buf_.data(), static_cast<size_t>(n)) != n) return Failed("write " + where);
        off += n;
        len -= n;
        at = off;
        bytes_ += n;
      }
    }
    return skip_to(archive_entry_size(e));
  }

  uid_t id_base_;
  Sink& sink_;
  struct archive* a_;
  std::map<std::pair<dev_t, ino_t>, std::string> linked_;
  std::vector<char> buf_;
  int64_t bytes_ = 0, entries_ = 0;
};

// Adds the folder `fd` (archived as `rel`, found at `where`) and everything
// under it (base/tree_walk.h).
Status AddTree(Writer& w, UniqueFd fd, const std::string& rel, const std::string& where) {
  TreeWalk walk;
  walk.visit = [&](int dir, const std::string& name, const struct stat& st, const std::string& sub) -> Result<bool> {
    PDK_TRY(w.Add(dir, name.c_str(), st, rel.empty() ? sub : rel + "/" + sub, where + "/" + sub));
    return S_ISDIR(st.st_mode);
  };
  return WalkTree(std::move(fd), where, walk, "archived");
}

// Adds what `dir` holds at `sub` ("" for all of it), with the folders
// leading to it.
Status AddPath(Writer& w, const std::string& dir, const std::string& sub) {
  UniqueFd at(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!at) return Status::Errno("open " + dir);
  struct stat st;
  if (::fstat(at.get(), &st) != 0) return Status::Errno("stat " + dir);
  PDK_TRY(w.Add(at.get(), ".", st, "", dir));
  std::string rel;
  size_t i = 0;
  while (i < sub.size()) {
    size_t j = sub.find('/', i);
    if (j == std::string::npos) j = sub.size();
    std::string name = sub.substr(i, j - i);
    i = j + 1;
    if (name.empty() || name == ".") continue;
    if (name == "..") return InvalidArgument("path '" + sub + "' climbs out with '..'");
    std::string where = dir + "/" + rel + (rel.empty() ? "" : "/") + name;
    if (::fstatat(at.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return NotFound("'/" + sub + "' is not among the sandbox's changed files");
      return Status::Errno("stat " + where);
    }
    rel += (rel.empty() ? "" : "/") + name;
    PDK_TRY(w.Add(at.get(), name.c_str(), st, rel, where));
    if (!S_ISDIR(st.st_mode)) {
      if (i < sub.size()) return NotFound("'/" + sub + "': /" + rel + " is not a folder");
      return Status::Ok();
    }
    UniqueFd next(::openat(at.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return Status::Errno("open " + where);
    at = std::move(next);
  }
  return AddTree(w, std::move(at), rel, dir + (rel.empty() ? "" : "/" + rel));
}

Result<std::string> FileSha256(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Errno("open " + path);
  image::Sha256 hash;
  std::vector<char> buf(kChunk);
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Errno("read " + path);
    if (n == 0) break;
    hash.Update(buf.data(), static_cast<size_t>(n));
  }
  return image::DigestHex(hash.Digest());
}

}  // namespace

Result<LayerArchiveInfo> WriteLayerArchive(const std::string& dir, const std::string& sub, const std::string& out,
                                           uid_t id_base) {
  Sink sink;
  sink.path = out;
  UniqueFd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return Status::Errno("create " + out);
  sink.fd = fd.get();
  Writer w(id_base, sink);
  Status s = w.Open();
  if (s.ok()) s = AddPath(w, dir, sub);
  if (s.ok()) s = w.Close();
  if (s.ok() && ::fsync(fd.get()) != 0) s = Status::Errno("sync " + out);
  if (!s.ok()) {
    ::unlink(out.c_str());
    return s;
  }
  return LayerArchiveInfo{image::DigestHex(sink.hash.Digest()), sink.size, w.bytes(), w.entries()};
}

Result<int64_t> ReadLayerArchive(const std::string& archive, const std::string& sha256, const std::string& dir,
                                 uid_t id_base) {
  PDK_ASSIGN_OR_RETURN(std::string actual, FileSha256(archive));
  if (actual != sha256)
    return DataLoss("archive " + archive + " is corrupt: its SHA-256 is " + actual + ", not " + sha256);
  auto moved = [&](int64_t id) { return id_base + static_cast<uid_t>(id >= 0 && id < 65536 ? id : kNobody); };
  struct archive* in = archive_read_new();
  archive_read_support_filter_zstd(in);
  archive_read_support_format_tar(in);
  struct archive* disk = archive_write_disk_new();
  archive_write_disk_set_options(disk, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                                           ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                           ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  Status s;
  int64_t bytes = 0;
  if (archive_read_open_filename(in, archive.c_str(), kChunk) != ARCHIVE_OK)
    s = DataLoss(ArchiveError(in, "open archive " + archive));
  struct archive_entry* e;
  while (s.ok()) {
    int r = archive_read_next_header(in, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      s = DataLoss(ArchiveError(in, "read archive " + archive));
      break;
    }
    auto clean = CleanPath(archive_entry_pathname(e));
    if (!clean.ok()) {
      s = clean.status();
      break;
    }
    const std::string& rel = *clean;
    uid_t uid = moved(archive_entry_uid(e)), gid = moved(archive_entry_gid(e));
    mode_t type = archive_entry_filetype(e);
    if (rel.empty()) {  // the folder itself: its owner and mode
      if (::chown(dir.c_str(), uid, gid) != 0 || ::chmod(dir.c_str(), archive_entry_perm(e)) != 0)
        s = Status::Errno("set owner and mode of " + dir);
      continue;
    }
    bool whiteout = type == AE_IFCHR && archive_entry_rdev(e) == 0;
    bool link = archive_entry_hardlink(e) != nullptr;
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK && type != AE_IFIFO && !whiteout && !link) continue;
    if (s = RebaseHardlink(e, dir, rel, "the archive"); !s.ok()) break;
    archive_entry_set_pathname(e, (dir + "/" + rel).c_str());
    archive_entry_set_uid(e, uid);
    archive_entry_set_gid(e, gid);
    if (archive_write_header(disk, e) != ARCHIVE_OK) {
      s = WriteError(disk, "restore " + rel);
      break;
    }
    if (archive_entry_size(e) > 0 && !link) {
      bytes += archive_entry_size(e);
      s = CopyData(in, disk, rel);
    }
    if (s.ok() && archive_write_finish_entry(disk) != ARCHIVE_OK) s = WriteError(disk, "restore " + rel);
  }
  if (archive_write_close(disk) != ARCHIVE_OK && s.ok()) s = WriteError(disk, "finish restoring into " + dir);
  archive_write_free(disk);
  archive_read_free(in);
  if (!s.ok()) return s;
  return bytes;
}

}  // namespace paddock
