// Layer archives: a sandbox's writable layer (or part of it) in one
// compressed, checksummed file, and back. Used for data kept when a
// sandbox is deleted (`paddock rm --keep-data`) and for the layers of
// long-stopped sandboxes (archived, restored at their next start).
//
// The file is a pax tar compressed with zstd. It keeps what overlayfs
// needs to stack the layer again byte for byte: files (holes kept),
// folders, symlinks, hard links (as links), whiteouts (0:0 character
// devices), modes, times and every extended attribute (trusted.overlay.*
// included). Owners are stored as the sandbox sees them (root is 0); one
// outside its range is stored as nobody (65534), as the sandbox saw it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/status.h"

namespace paddock {

struct LayerArchiveInfo {
  std::string sha256;   // of the file, 64 hex digits
  int64_t size = 0;     // of the file
  int64_t bytes = 0;    // of the files' data in it (holes not counted)
  int64_t entries = 0;
};

// Writes the tree `dir` (all of it, or with `sub` a relative path, that
// entry and what is under it, below the folders leading to it) to the
// new file `out`, synced before it returns. Owners inside [id_base,
// id_base+65536) are stored relative to id_base. kNotFound if `sub` is not
// in `dir`; kFailedPrecondition for a path too long to restore (over 3,000
// bytes). On error `out` is removed.
Result<LayerArchiveInfo> WriteLayerArchive(const std::string& dir, const std::string& sub, const std::string& out,
                                           uid_t id_base);

// Checks that the file `archive` has the SHA-256 `sha256` (kDataLoss if
// not: nothing is written), then unpacks it into the existing folder `dir`
// with owners moved to id_base's range. Returns the bytes of data written.
Result<int64_t> ReadLayerArchive(const std::string& archive, const std::string& sha256, const std::string& dir,
                                 uid_t id_base);

}  // namespace paddock
