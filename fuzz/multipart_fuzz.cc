// E2B's multipart uploads (POST /files on envd), as a client could send
// them, read in pieces of the sizes the input's first bytes pick. Checks
// that the reader never hands out more than asked, that what it hands out
// is the body's own bytes in order, and that it holds a bounded amount.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "api/request_body.h"

using namespace paddock;
using namespace paddock::api;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t source_step = 1 + data[0] % 97;  // bytes per source call
  size_t read_cap = 1 + data[1] * 37;     // bytes per Read
  std::string body(reinterpret_cast<const char*>(data) + 2, size - 2);
  size_t given = 0;
  MultipartReader reader("bnd", [&](char* buf, size_t cap) -> Result<size_t> {
    size_t n = std::min({cap, source_step, body.size() - given});
    std::memcpy(buf, body.data() + given, n);
    given += n;
    return n;
  });
  std::string buf(read_cap, '\0');
  for (int parts = 0; parts < 1000; ++parts) {
    Result<std::optional<std::string>> head = reader.NextPart();
    if (!head.ok() || !*head) return 0;
    if ((*head)->size() > MultipartReader::kMaxHeadBytes) std::abort();
    (void)MultipartReader::FileNameOf(**head);
    for (;;) {
      Result<size_t> n = reader.Read(buf.data(), read_cap);
      if (!n.ok() || *n == 0) break;
      if (*n > read_cap) std::abort();
      // Data is a copy of bytes the body holds.
      if (body.find(std::string_view(buf.data(), *n)) == std::string::npos) std::abort();
    }
  }
  return 0;
}
