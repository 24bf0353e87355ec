// Archive uploads (PUT /v1/sandboxes/{id}/files/archive), as a client could
// send them: every format and filter libarchive reads. The sink stands where
// the sandbox's agent would and checks what reaches it: paths under the
// root with no "..", and no more data than the limits allow.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/tar_upload.h"

using namespace paddock;
using namespace paddock::api;

namespace {

constexpr const char* kRoot = "/upload/here";

void CheckPath(const std::string& path) {
  std::string root = kRoot;
  if (path != root && path.rfind(root + "/", 0) != 0) std::abort();
  if ((path + "/").find("/../") != std::string::npos) std::abort();
  if (path.size() > root.size() && path.back() == '/') std::abort();
}

struct Checking : UnpackSink {
  Status MakeDir(const std::string& path, int mode) override {
    CheckPath(path);
    if (mode & ~07777) std::abort();
    return Status::Ok();
  }
  Status WriteFile(const std::string& path, int mode, const Reader& read) override {
    CheckPath(path);
    if (mode & ~07777) std::abort();
    char buf[64 << 10];
    for (;;) {
      PDK_ASSIGN_OR_RETURN(size_t n, read(buf, sizeof buf));
      if (n > sizeof buf) std::abort();
      if (n == 0) return Status::Ok();
      total += n;
    }
  }
  uint64_t total = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  UnpackLimits limits;
  limits.max_entries = 10000;
  limits.bomb_floor_bytes = 1 << 20;  // small, so that bombs are found in reach
  Checking sink;
  auto files = UnpackArchive(-1, std::string_view(reinterpret_cast<const char*>(data), size), kRoot, sink,
                             limits);
  // Past the floor, nothing expands beyond max_expansion times the input
  // (one read's worth of slack: the check follows each read).
  uint64_t bound = std::max<uint64_t>(limits.bomb_floor_bytes, size * limits.max_expansion) + (64 << 10);
  if (sink.total > bound) std::abort();
  (void)files;
  return 0;
}
