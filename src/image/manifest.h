// The OCI image spec's documents, and Docker's v2 equivalents: indexes
// (manifest lists), manifests and image configs, parsed and checked.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"

namespace paddock::image {

namespace media {
constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
// Every manifest type Paddock reads, for the Accept header.
constexpr const char* kAcceptManifests =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";
}  // namespace media

// Caps on what is read into memory before it is checked.
constexpr size_t kMaxManifestBytes = 4 << 20;
constexpr size_t kMaxConfigBytes = 8 << 20;

enum class Compression { kNone, kGzip, kZstd };

struct Platform {
  std::string os, architecture, variant;
  std::string String() const {
    return os + "/" + architecture + (variant.empty() ? "" : "/" + variant);
  }
};
// This host's platform as an image names it (linux/amd64, linux/arm64/v8, ...).
Platform HostPlatform();

struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = 0;
  Platform platform;  // index entries only
  bool foreign =
      false;  // a layer the spec lets registries not serve (its `urls` are never followed)
};

// True if `body` is an index or manifest list (by media type, or by shape
// when the registry gave none).
bool IsIndex(const std::string& media_type, const nlohmann::json& body);
// The manifests an index lists, checked. Attestation entries
// (unknown/unknown) are left out.
Result<std::vector<Descriptor>> ParseIndex(const nlohmann::json& body);
// The entry for `want` (a missing variant matches the usual one: arm64 is
// v8, arm is v7); kNotFound listing the platforms the index has.
Result<Descriptor> SelectPlatform(const std::vector<Descriptor>& entries, const Platform& want);

struct Layer {
  Descriptor blob;  // as the registry stores it
  Compression compression = Compression::kNone;
};
struct Manifest {
  Descriptor config;
  std::vector<Layer> layers;  // bottom first
};
// Parses an image manifest (OCI or Docker v2); schema 1 and unknown types
// are refused naming the type.
Result<Manifest> ParseManifest(const std::string& media_type, const nlohmann::json& body);

// What an image's config says about running it, and its layers' diff ids.
struct ImageConfig {
  Platform platform;
  std::vector<std::string> env;  // "K=V"
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string working_dir;
  std::string user;
  std::vector<std::string> diff_ids;  // bottom first
  std::string created;
  nlohmann::json ToJson() const;  // without diff ids
};
Result<ImageConfig> ParseConfig(const nlohmann::json& body);

// Docker's rules for what a container runs: Entrypoint then the given
// arguments, or Entrypoint then Cmd when none are given.
std::vector<std::string> CommandFor(const ImageConfig& config,
                                    const std::vector<std::string>& given);

}  // namespace paddock::image
