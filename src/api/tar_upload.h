// Unpacking an uploaded archive entry by entry into a sink (a sandbox's
// files, through its agent). The checks on what an archive may ask for
// (names, entry count, expansion) live here, apart from the agent, so that
// they can be fuzzed on their own (fuzz/tar_upload_fuzz.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace paddock::api {

struct UnpackLimits {
  int64_t max_entries = 1000000;
  // Past this many bytes unpacked, an archive may not expand to more than
  // max_expansion times its own size (a decompression bomb).
  int64_t bomb_floor_bytes = int64_t{1} << 30;
  int64_t max_expansion = 1024;
};

// Where an archive's folders and files go. Paths are `root` joined with an
// entry's name that neither is absolute nor holds "..", without a trailing
// slash. Other entry types (links, devices) are skipped.
class UnpackSink {
 public:
  virtual ~UnpackSink() = default;
  virtual Status MakeDir(const std::string& path, int mode) = 0;
  // `read` fills up to `cap` bytes at `buf` and returns how many, 0 at the
  // end of the file's data; an error ends the upload.
  using Reader = std::function<Result<size_t>(char* buf, size_t cap)>;
  virtual Status WriteFile(const std::string& path, int mode, const Reader& read) = 0;
};

// Unpacks a tar (any compression libarchive knows) read from `fd`, or from
// `memory` when `fd` is negative, into `sink` under `root`. Returns the
// files written; kInvalidArgument naming the entry for a bad archive.
Result<int> UnpackArchive(int fd, std::string_view memory, const std::string& root, UnpackSink& sink,
                          const UnpackLimits& limits = {});

}  // namespace paddock::api
