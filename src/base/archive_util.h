// What every tar reader in paddockd needs from libarchive: clean entry
// names, hardlinks kept inside the folder being filled, errors that say
// whose fault they are, and data copied with its holes.
#pragma once

#include <string>

#include "base/status.h"

struct archive;
struct archive_entry;

namespace paddock {

// A tar entry's path made relative and clean: "./a//b/" -> "a/b". Refuses
// (kDataLoss) absolute paths and any ".." component; "" is the root.
Result<std::string> CleanPath(const char* raw);
// "<what>: <libarchive's error>".
std::string ArchiveError(struct archive* a, const std::string& what);
// Points a hardlink entry at its target inside `dir`; kDataLoss if the
// target is not inside `where` (the layer, the archive).
Status RebaseHardlink(struct archive_entry* e, const std::string& dir, const std::string& name,
                      const char* where);
// A write to disk that libarchive reports as anything but ARCHIVE_OK (it
// reports a failed write(2), ENOSPC included, as a mere warning): the
// errno's code where it is the disk's fault, else kDataLoss.
Status WriteError(struct archive* a, const std::string& what);
// Copies one entry's data from a reader to a disk writer, holes included.
Status CopyData(struct archive* in, struct archive* out, const std::string& name);

}  // namespace paddock
