// Connect-protocol request bodies, as an E2B client (or anyone holding a
// sandbox's token) could send them: envelopes, their JSON, base64 bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/connect.h"

using namespace paddock::api::connect;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  if (auto messages = ParseEnvelopes(body); messages.ok()) {
    for (const auto& m : *messages)
      if (m.is_object())
        for (const auto& [key, value] : m.items())
          if (value.is_string()) (void)Base64Decode(value.get<std::string>());
  }
  (void)Base64Decode(body);
  // What is encoded decodes back to itself.
  auto back = Base64Decode(Base64Encode(body));
  if (!back.ok() || *back != body) std::abort();
  return 0;
}
