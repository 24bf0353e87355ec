#include "base/archive_util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>

#include "base/fs.h"

namespace paddock {

Result<std::string> CleanPath(const char* raw) {
  if (!raw) return DataLoss("a tar entry has no name");
  std::string p = raw;
  if (!p.empty() && p[0] == '/') return DataLoss("tar entry '" + p + "' is an absolute path");
  auto parts = CleanParts(p);
  if (!parts) return DataLoss("tar entry '" + p + "' climbs out of its layer with '..'");
  std::string out;
  for (const auto& c : *parts) out += (out.empty() ? "" : "/") + c;
  return out;
}

std::string ArchiveError(struct archive* a, const std::string& what) {
  const char* e = archive_error_string(a);
  return what + ": " + (e ? e : "unknown libarchive error");
}

Status RebaseHardlink(struct archive_entry* e, const std::string& dir, const std::string& name,
                      const char* where) {
  const char* link = archive_entry_hardlink(e);
  if (!link) return Status::Ok();
  auto target = CleanPath(link);
  if (!target.ok() || target->empty())
    return DataLoss("hardlink '" + name + "' points out of " + where + " ('" + link + "')");
  archive_entry_set_hardlink(e, (dir + "/" + *target).c_str());
  return Status::Ok();
}

Status WriteError(struct archive* a, const std::string& what) {
  int err = archive_errno(a);
  if (err == ENOSPC || err == EDQUOT || err == EIO || err == EROFS || err == ENOMEM)
    return Status::Errno(what, err);
  return DataLoss(ArchiveError(a, what));
}

Status CopyData(struct archive* in, struct archive* out, const std::string& name) {
  const void* buf;
  size_t size;
  la_int64_t offset;
  while (true) {
    int r = archive_read_data_block(in, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) return Status::Ok();
    if (r < ARCHIVE_WARN) return DataLoss(ArchiveError(in, "reading " + name + " from the archive"));
    if (archive_write_data_block(out, buf, size, offset) != ARCHIVE_OK)
      return WriteError(out, "writing " + name);
  }
}

}  // namespace paddock
