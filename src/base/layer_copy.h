// Copies a sandbox's writable layer into another sandbox's, for forks.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include <string>

#include "base/status.h"

namespace paddock {

// Copies the tree `from` into the existing folder `to`: files, folders,
// symlinks, hard links (as links), overlayfs whiteouts (0:0 character
// devices) and every extended attribute (overlayfs keeps opaque folders and
// redirects in trusted.overlay.*), with modes and times. Owners inside the id range [from_base, from_base+65536)
// move to the same offset in [to_base, ...); others are kept. `to` itself
// keeps its own owner, mode and attributes. Adds the bytes of the files and
// symlinks copied to `*bytes` if given.
Status CopyLayer(const std::string& from, const std::string& to, uid_t from_base, uid_t to_base,
                 int64_t* bytes = nullptr);
// What CopyLayer leaves to the caller: `to` gets the owner (moved as
// CopyLayer moves owners) and mode of `from`.
Status CopyTopFolder(const std::string& from, const std::string& to, uid_t from_base, uid_t to_base);

}  // namespace paddock
