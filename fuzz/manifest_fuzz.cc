// Registry documents as a registry (or anyone between it and paddockd)
// could send them: an index, a manifest of either kind, an image config.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "image/manifest.h"

using namespace paddock::image;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json body = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return 0;
  for (const char* type : {"", "application/vnd.oci.image.index.v1+json",
                           "application/vnd.docker.distribution.manifest.list.v2+json"})
    (void)IsIndex(type, body);
  if (auto entries = ParseIndex(body); entries.ok()) {
    (void)SelectPlatform(*entries, HostPlatform());
    (void)SelectPlatform(*entries, Platform{"linux", "arm", ""});
  }
  for (const char* type : {"application/vnd.oci.image.manifest.v1+json",
                           "application/vnd.docker.distribution.manifest.v2+json",
                           "application/vnd.docker.distribution.manifest.v1+json", ""})
    (void)ParseManifest(type, body);
  if (auto config = ParseConfig(body); config.ok()) {
    (void)config->ToJson().dump();
    (void)CommandFor(*config, {});
    (void)CommandFor(*config, {"sh"});
  }
  return 0;
}
