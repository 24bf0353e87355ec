#include "image/layer_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <vector>

#include "base/archive_util.h"
#include "base/fd.h"
#include "base/fs.h"
#include "base/ids.h"
#include "base/layer_copy.h"
#include "image/digest.h"
#include "kernel/mnt.h"

namespace paddock::image {

namespace {

constexpr const char* kWhiteoutPrefix = ".wh.";
constexpr const char* kOpaqueMarker = ".wh..wh..opq";

// Feeds the tar reader the decompressed stream, hashing it on the way: the
// diff id is the digest of exactly these bytes.
struct Decompressed {
  struct archive* raw = nullptr;
  Sha256 hash;
  int64_t bytes = 0;
  const std::function<void(int64_t)>* progress = nullptr;
  std::vector<char> buf = std::vector<char>(1 << 20);
  bool failed = false;
};

la_ssize_t ReadDecompressed(struct archive* a, void* ctx, const void** out) {
  auto* d = static_cast<Decompressed*>(ctx);
  la_ssize_t n = archive_read_data(d->raw, d->buf.data(), d->buf.size());
  if (n < 0) {
    d->failed = true;
    archive_set_error(a, EIO, "%s", ArchiveError(d->raw, "decompressing the layer").c_str());
    return -1;
  }
  d->hash.Update(d->buf.data(), static_cast<size_t>(n));
  d->bytes += n;
  if (d->progress && *d->progress) (*d->progress)(d->bytes);
  *out = d->buf.data();
  return n;
}

// Drops the xattrs overlayfs would take as its own (a forged opaque flag or redirect).
void StripOverlayXattrs(struct archive_entry* e) {
  struct Xattr {
    std::string name;
    std::string value;
  };
  std::vector<Xattr> kept;
  bool dropped = false;
  archive_entry_xattr_reset(e);
  const char* name;
  const void* value;
  size_t size;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    if (std::string(name).rfind("trusted.overlay.", 0) == 0) {
      dropped = true;
      continue;
    }
    kept.push_back({name, std::string(static_cast<const char*>(value), size)});
  }
  if (!dropped) return;
  archive_entry_xattr_clear(e);
  for (const auto& x : kept)
    archive_entry_xattr_add_entry(e, x.name.c_str(), x.value.data(), x.value.size());
}

// Unpacks the tar stream of `tar` into `dir`, which exists and is empty.
Status Unpack(struct archive* tar, const std::string& dir) {
  struct archive* disk = archive_write_disk_new();
  archive_write_disk_set_options(disk, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM |
                                           ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
                                           ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                           ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  Status s;
  struct archive_entry* e;
  while (s.ok()) {
    int r = archive_read_next_header(tar, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      s = DataLoss(ArchiveError(tar, "reading the layer's tar stream"));
      break;
    }
    auto clean = CleanPath(archive_entry_pathname(e));
    if (!clean.ok()) {
      s = clean.status();
      break;
    }
    const std::string& rel = *clean;
    if (rel.empty()) continue;  // the layer's root: its folder is made by us
    std::string path = dir + "/" + rel;
    size_t slash = rel.rfind('/');
    std::string base = slash == std::string::npos ? rel : rel.substr(slash + 1);
    std::string parent = slash == std::string::npos ? dir : dir + "/" + rel.substr(0, slash);

    if (base == kOpaqueMarker) {  // the parent hides what lower layers hold there
      s = MakeDirs(parent, 0755);
      if (s.ok() && ::lsetxattr(parent.c_str(), "trusted.overlay.opaque", "y", 1, 0) != 0)
        s = Status::Errno("mark " + parent + " opaque");
      continue;
    }
    if (base.rfind(kWhiteoutPrefix, 0) == 0) {
      std::string hidden = parent + "/" + base.substr(4);
      struct stat st;
      if (base.size() == 4 || ::lstat(hidden.c_str(), &st) == 0)
        continue;  // never hides its own layer's entries
      s = MakeDirs(parent, 0755);
      if (s.ok() && ::mknod(hidden.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0)
        s = Status::Errno("whiteout " + hidden);
      continue;
    }
    mode_t type = archive_entry_filetype(e);
    if (type == AE_IFCHR || type == AE_IFBLK) continue;  // /dev is the sandbox's own
    if (s = RebaseHardlink(e, dir, rel, "its layer"); !s.ok()) break;
    StripOverlayXattrs(e);
    // An entry replaces a whiteout this layer wrote for the same name.
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0))
      ::unlink(path.c_str());
    archive_entry_set_pathname(e, path.c_str());
    if (archive_write_header(disk, e) != ARCHIVE_OK) {
      s = WriteError(disk, "extracting " + rel);
      break;
    }
    if (archive_entry_size(e) > 0) s = CopyData(tar, disk, rel);
    if (s.ok() && archive_write_finish_entry(disk) != ARCHIVE_OK)
      s = WriteError(disk, "finishing " + rel);
  }
  if (archive_write_close(disk) != ARCHIVE_OK && s.ok()) s = WriteError(disk, "closing the layer");
  archive_write_free(disk);
  return s;
}

}  // namespace

Result<LayerStore> LayerStore::Open(const std::string& root) {
  PDK_TRY(MakeDirs(root, 0700));
  char real[PATH_MAX];
  if (!::realpath(root.c_str(), real)) return Status::Errno("realpath " + root);
  LayerStore store(real);
  PDK_TRY(RemoveTree(store.root_ + "/staging"));
  for (const char* sub : {"/layers", "/blobs", "/staging"})
    PDK_TRY(MakeDirs(store.root_ + sub, 0700));
  // Root's alone: layers hold whatever images ship (setuid binaries among
  // them), which no host user may reach. paddockd mounts them as root.
  if (::chmod(store.root_.c_str(), 0700) != 0) return Status::Errno("chmod " + store.root_);
  return store;
}

std::string LayerStore::Dir(const std::string& chain_id) const {
  return root_ + "/layers/" + DigestHex(chain_id);
}

std::string LayerStore::FlatDir(const std::string& chain_id) const {
  return root_ + "/layers/flat-" + DigestHex(chain_id);
}

Status LayerStore::Flatten(const std::vector<std::string>& chain_ids) const {
  std::string target = FlatDir(chain_ids.back());
  if (PathExists(target)) return Status::Ok();
  std::vector<std::string> lowers;  // top-most first
  for (auto it = chain_ids.rbegin(); it != chain_ids.rend(); ++it) lowers.push_back(Dir(*it));
  PDK_ASSIGN_OR_RETURN(UniqueFd merged, kernel::mnt::MakeReadOnlyOverlay(lowers));
  PDK_ASSIGN_OR_RETURN(std::string staging, Scratch("flat"));
  Status s = CopyLayer("/proc/self/fd/" + std::to_string(merged.get()), staging, 0, 0);
  if (s.ok() && ::chmod(staging.c_str(), 0755) != 0) s = Status::Errno("chmod " + staging);
  if (s.ok() && ::rename(staging.c_str(), target.c_str()) != 0)
    s = Status::Errno("rename " + staging + " to " + target);
  (void)RemoveTree(staging);
  return s.ok() ? s : s.Annotate("flattening " + std::to_string(chain_ids.size()) + " layers");
}

bool LayerStore::Has(const std::string& chain_id) const { return PathExists(Dir(chain_id)); }

std::string LayerStore::PartialBlob(const std::string& digest) const {
  return root_ + "/blobs/" + DigestHex(digest) + ".partial";
}

Status LayerStore::Extract(const std::string& blob, const std::string& diff_id,
                           const std::string& chain_id,
                           const std::function<void(int64_t)>& progress) const {
  std::string staging = root_ + "/staging/" + DigestHex(chain_id) + "-" + RandomHex(4);
  PDK_TRY(MakeDirs(staging, 0755));
  struct archive* raw = archive_read_new();
  archive_read_support_filter_all(raw);
  archive_read_support_format_raw(raw);
  archive_read_support_format_empty(raw);
  struct archive* tar = archive_read_new();
  archive_read_support_format_tar(tar);
  Decompressed d;
  d.raw = raw;
  d.progress = &progress;
  Status s;
  struct archive_entry* first;
  if (archive_read_open_filename(raw, blob.c_str(), 1 << 20) != ARCHIVE_OK)
    s = DataLoss(ArchiveError(raw, "opening layer blob " + blob));
  int header = s.ok() ? archive_read_next_header(raw, &first) : ARCHIVE_FATAL;
  if (s.ok() && header == ARCHIVE_OK) {
    if (archive_read_open(tar, &d, nullptr, ReadDecompressed, nullptr) != ARCHIVE_OK)
      s = DataLoss(ArchiveError(tar, "reading the layer's tar stream"));
    if (s.ok()) s = Unpack(tar, staging);
    // Whatever follows the tar's end (padding) is part of the diff id too.
    while (s.ok() && !d.failed) {
      const void* ignored;
      if (ReadDecompressed(tar, &d, &ignored) <= 0) break;
    }
    if (s.ok() && d.failed) s = DataLoss(ArchiveError(raw, "decompressing the layer"));
  } else if (s.ok() && header != ARCHIVE_EOF) {
    s = DataLoss(ArchiveError(raw, "reading layer blob"));
  }
  archive_read_free(tar);
  archive_read_free(raw);
  if (s.ok()) {
    std::string got = d.hash.Digest();
    if (got != diff_id)
      s = DataLoss("the layer's uncompressed digest is " + got + ", not the diff id " + diff_id +
                   " its image config gives");
  }
  if (s.ok() && ::rename(staging.c_str(), Dir(chain_id).c_str()) != 0) {
    if (errno == ENOTEMPTY || errno == EEXIST)
      s = Status::Ok();  // already there: keep the first
    else
      s = Status::Errno("rename " + staging + " to " + Dir(chain_id));
  }
  (void)RemoveTree(staging);  // gone after a successful rename; the wreck of a failure otherwise
  return s.ok() ? s : s.Annotate("layer " + diff_id);
}

Result<std::string> LayerStore::Scratch(const std::string& what) const {
  std::string dir = root_ + "/staging/" + what + "-" + RandomHex(6);
  PDK_TRY(MakeDirs(dir, 0700));
  return dir;
}

Status LayerStore::UnpackArchive(const std::string& archive, const std::string& dir) {
  struct archive* in = archive_read_new();
  archive_read_support_filter_all(in);
  archive_read_support_format_tar(in);
  struct archive* out = archive_write_disk_new();
  archive_write_disk_set_options(out,
                                 ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  Status s;
  if (archive_read_open_filename(in, archive.c_str(), 1 << 20) != ARCHIVE_OK)
    s = InvalidArgument(ArchiveError(in, "the upload is not a tar archive"));
  struct archive_entry* e;
  while (s.ok()) {
    int r = archive_read_next_header(in, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      s = InvalidArgument(ArchiveError(in, "reading the archive"));
      break;
    }
    auto clean = CleanPath(archive_entry_pathname(e));
    if (!clean.ok()) {
      s = InvalidArgument(clean.status().message());
      break;
    }
    mode_t type = archive_entry_filetype(e);
    if (clean->empty() || (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)) continue;
    if (Status h = RebaseHardlink(e, dir, *clean, "the archive"); !h.ok()) {
      s = InvalidArgument(h.message());
      break;
    }
    archive_entry_set_pathname(e, (dir + "/" + *clean).c_str());
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_perm(e, type == AE_IFDIR ? 0700 : 0600);
    archive_entry_xattr_clear(e);
    if (archive_write_header(out, e) != ARCHIVE_OK) {
      s = WriteError(out, "unpacking " + *clean);
      break;
    }
    if (archive_entry_size(e) > 0) s = CopyData(in, out, *clean);
    if (s.ok() && archive_write_finish_entry(out) != ARCHIVE_OK)
      s = WriteError(out, "writing " + *clean);
  }
  if (archive_write_close(out) != ARCHIVE_OK && s.ok()) s = WriteError(out, "closing " + dir);
  archive_write_free(out);
  archive_read_free(in);
  return s;
}

Status LayerStore::Sync() const { return SyncFilesystem(root_); }

int LayerStore::Sweep(const std::set<std::string>& keep, bool partials) const {
  std::set<std::string> keep_hex;  // folder names
  for (const auto& c : keep)
    keep_hex.insert(c.rfind("flat:", 0) == 0 ? "flat-" + DigestHex(c.substr(5)) : DigestHex(c));
  int removed = 0;
  for (const auto& name : ListDir(root_ + "/layers")) {
    if (keep_hex.count(name)) continue;
    std::string trash = root_ + "/staging/gone-" + name;
    if (::rename((root_ + "/layers/" + name).c_str(), trash.c_str()) == 0 && RemoveTree(trash).ok())
      ++removed;
  }
  if (partials)
    for (const auto& name : ListDir(root_ + "/blobs")) ::unlink((root_ + "/blobs/" + name).c_str());
  return removed;
}

}  // namespace paddock::image
