// Volume files: reading and writing a volume's files from the host,
// without a sandbox (the E2B volume content API, REST's /v1/volumes/{name}/…).
//
// A volume's files were written by sandboxes, so every path is resolved
// inside the volume's folder and never out of it: symlinks in a path
// resolve as if the folder were "/" (openat2 RESOLVE_IN_ROOT, no magic
// links, no other mounts), and the last component is never followed (a
// symlink is stat'ed, replaced or removed as itself). Only regular files
// are read, opened non-blocking (a FIFO cannot stall the caller). Owners
// are stored as sandboxes see them (root is 0).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "base/status.h"

namespace paddock::volume_files {

enum class EntryType { kFile, kDirectory, kSymlink, kOther };
const char* EntryTypeName(EntryType t);  // file, directory, symlink, unknown

struct Entry {
  std::string name;    // the last component ("" for the volume's top)
  std::string path;    // from the volume's top: "/dir/file"
  EntryType type = EntryType::kOther;
  uint32_t mode = 0;   // permission bits (07777)
  uint32_t uid = 0, gid = 0;
  int64_t size = 0;
  std::string target;  // a symlink's
  int64_t atime_ns = 0, mtime_ns = 0, ctime_ns = 0;
};

// What a write or a mkdir gives the new entry; unset: root's, 0644 (0755
// for folders). Ids above 65535 are refused (kInvalidArgument).
struct Owner {
  std::optional<uint32_t> uid, gid, mode;
};

constexpr int kMaxDepth = 16;          // of a listing
constexpr size_t kMaxEntries = 10000;  // in one listing

// `root` is the volume's folder (any open fd of it). `path` is absolute
// ("/" is the top), at most 4,096 bytes, without ".." (kInvalidArgument).
Result<Entry> Stat(int root, const std::string& path);
// The entries under the folder `path`, `depth` levels down (1: its own),
// sorted by path; kFailedPrecondition past kMaxEntries.
Result<std::vector<Entry>> List(int root, const std::string& path, int depth);
// Makes the folder `path` (with `parents`, the missing folders above it
// too, with the same owner); kAlreadyExists if it exists.
Result<Entry> MakeDir(int root, const std::string& path, const Owner& owner, bool parents);
// The regular file at `path`, open for reading; kFailedPrecondition for a
// folder, a symlink or anything else.
Result<UniqueFd> OpenFile(int root, const std::string& path);
// Writes the file at `path` (replacing one there, atomically: a reader sees
// the old or the new file), its data from the file `source` if given,
// else `data`. Its folder must exist.
Result<Entry> WriteFile(int root, const std::string& path, const std::string& source, std::string_view data,
                        const Owner& owner);
// Changes the owner or mode of what is at `path` (a symlink's own owner).
Result<Entry> SetMetadata(int root, const std::string& path, const Owner& owner);
// Removes what is at `path`, a folder with everything in it.
Status Remove(int root, const std::string& path);

}  // namespace paddock::volume_files
