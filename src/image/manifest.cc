#include "image/manifest.h"

#include <sys/utsname.h>

#include "base/json_field.h"
#include "image/digest.h"

namespace paddock::image {

using nlohmann::json;

namespace {

Status Bad(const std::string& what) { return DataLoss("malformed image document: " + what); }

Result<Descriptor> ParseDescriptor(const json& j, const char* where) {
  if (!j.is_object()) return Bad(std::string(where) + " is not an object");
  Descriptor d;
  if (!j.contains("digest") || !j["digest"].is_string() ||
      !ValidDigest(j["digest"].get<std::string>()))
    return Bad(std::string(where) + " has no sha256 digest");
  d.digest = j["digest"].get<std::string>();
  if (!j.contains("size") || !j["size"].is_number_integer() || j["size"].get<int64_t>() < 0)
    return Bad(std::string(where) + " " + d.digest + " has no size");
  d.size = j["size"].get<int64_t>();
  d.media_type = Field(j, "mediaType", "");
  if (j.contains("platform") && j["platform"].is_object()) {
    const json& p = j["platform"];
    d.platform = {Field(p, "os", ""), Field(p, "architecture", ""), Field(p, "variant", "")};
  }
  return d;
}

std::string DefaultVariant(const std::string& arch) {
  if (arch == "arm64") return "v8";
  if (arch == "arm") return "v7";
  return "";
}

std::vector<std::string> Strings(const json& j, const char* key) {
  std::vector<std::string> out;
  if (j.contains(key) && j[key].is_array())
    for (const auto& s : j[key])
      if (s.is_string()) out.push_back(s.get<std::string>());
  return out;
}

}  // namespace

Platform HostPlatform() {
  struct utsname u;
  ::uname(&u);
  std::string m = u.machine;
  if (m == "x86_64") return {"linux", "amd64", ""};
  if (m == "aarch64") return {"linux", "arm64", "v8"};
  if (m.rfind("armv7", 0) == 0) return {"linux", "arm", "v7"};
  if (m.rfind("armv6", 0) == 0) return {"linux", "arm", "v6"};
  if (m == "i686" || m == "i386") return {"linux", "386", ""};
  return {"linux", m, ""};  // ppc64le, s390x, riscv64 are named as uname names them
}

bool IsIndex(const std::string& media_type, const json& body) {
  if (media_type == media::kOciIndex || media_type == media::kDockerList) return true;
  if (media_type.empty() || media_type == "application/json")
    return body.is_object() && body.contains("manifests") && !body.contains("layers");
  return false;
}

Result<std::vector<Descriptor>> ParseIndex(const json& body) {
  if (!body.is_object() || !body.contains("manifests") || !body["manifests"].is_array())
    return Bad("index has no manifests");
  std::vector<Descriptor> out;
  for (const auto& m : body["manifests"]) {
    PDK_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(m, "index entry"));
    if (d.platform.os == "unknown" && d.platform.architecture == "unknown")
      continue;  // attestations
    out.push_back(std::move(d));
  }
  return out;
}

Result<Descriptor> SelectPlatform(const std::vector<Descriptor>& entries, const Platform& want) {
  const Descriptor* loose = nullptr;
  std::string have;
  for (const auto& d : entries) {
    have += (have.empty() ? "" : ", ") + d.platform.String();
    if (d.platform.os != want.os || d.platform.architecture != want.architecture) continue;
    std::string variant =
        d.platform.variant.empty() ? DefaultVariant(d.platform.architecture) : d.platform.variant;
    std::string wanted = want.variant.empty() ? DefaultVariant(want.architecture) : want.variant;
    if (variant == wanted) return d;
    if (!loose && d.platform.variant.empty()) loose = &d;
  }
  if (loose) return *loose;
  return NotFound("the image has no manifest for " + want.String() +
                  " (it has: " + (have.empty() ? "none" : have) + ")");
}

Result<Manifest> ParseManifest(const std::string& media_type, const json& body) {
  if (!body.is_object()) return Bad("manifest is not a JSON object");
  if (Field(body, "schemaVersion", 0) == 1 ||
      media_type.rfind("application/vnd.docker.distribution.manifest.v1", 0) == 0)
    return Unimplemented(
        "the registry served a Docker schema 1 manifest, which Paddock does not "
        "support (push the image again with a current client)");
  std::string type = media_type.empty() || media_type == "application/json"
                         ? Field(body, "mediaType", "")
                         : media_type;
  if (!type.empty() && type != media::kOciManifest && type != media::kDockerManifest)
    return Unimplemented("unsupported manifest media type '" + type + "'");
  Manifest m;
  if (!body.contains("config")) return Bad("manifest has no config");
  PDK_ASSIGN_OR_RETURN(m.config, ParseDescriptor(body["config"], "config"));
  if (m.config.size > static_cast<int64_t>(kMaxConfigBytes))
    return DataLoss("image config of " + std::to_string(m.config.size) + " bytes is over the " +
                    std::to_string(kMaxConfigBytes) + "-byte cap");
  if (!body.contains("layers") || !body["layers"].is_array()) return Bad("manifest has no layers");
  for (const auto& l : body["layers"]) {
    PDK_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(l, "layer"));
    Layer layer;
    const std::string& t = d.media_type;
    d.foreign =
        t.find("foreign") != std::string::npos || t.find("nondistributable") != std::string::npos;
    if (t == "application/vnd.oci.image.layer.v1.tar+gzip" ||
        t == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
        t == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
        t == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") {
      layer.compression = Compression::kGzip;
    } else if (t == "application/vnd.oci.image.layer.v1.tar+zstd" ||
               t == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd") {
      layer.compression = Compression::kZstd;
    } else if (t == "application/vnd.oci.image.layer.v1.tar" ||
               t == "application/vnd.oci.image.layer.nondistributable.v1.tar") {
      layer.compression = Compression::kNone;
    } else {
      return Unimplemented("unsupported layer media type '" + t + "' (" + d.digest + ")");
    }
    layer.blob = std::move(d);
    m.layers.push_back(std::move(layer));
  }
  return m;
}

Result<ImageConfig> ParseConfig(const json& body) {
  if (!body.is_object()) return Bad("image config is not a JSON object");
  ImageConfig c;
  c.platform = {Field(body, "os", ""), Field(body, "architecture", ""), Field(body, "variant", "")};
  c.created = body.contains("created") && body["created"].is_string()
                  ? body["created"].get<std::string>()
                  : "";
  if (body.contains("config") && body["config"].is_object()) {
    const json& cfg = body["config"];
    c.env = Strings(cfg, "Env");
    c.entrypoint = Strings(cfg, "Entrypoint");
    c.cmd = Strings(cfg, "Cmd");
    if (cfg.contains("WorkingDir") && cfg["WorkingDir"].is_string())
      c.working_dir = cfg["WorkingDir"];
    if (cfg.contains("User") && cfg["User"].is_string()) c.user = cfg["User"];
  }
  if (!body.contains("rootfs") || !body["rootfs"].is_object() ||
      !body["rootfs"].contains("diff_ids") || !body["rootfs"]["diff_ids"].is_array())
    return Bad("image config has no rootfs.diff_ids");
  for (const auto& d : body["rootfs"]["diff_ids"]) {
    if (!d.is_string() || !ValidDigest(d.get<std::string>()))
      return Bad("a diff id is not a sha256 digest");
    c.diff_ids.push_back(d.get<std::string>());
  }
  for (const auto& e : c.env)
    if (e.find('=') == std::string::npos || e.front() == '=')
      return Bad("Env entry '" + e + "' is not K=V");
  if (!c.working_dir.empty() && c.working_dir.front() != '/')
    return Bad("WorkingDir '" + c.working_dir + "' is not absolute");
  return c;
}

json ImageConfig::ToJson() const {
  return json{{"os", platform.os},           {"architecture", platform.architecture},
              {"variant", platform.variant}, {"env", env},
              {"entrypoint", entrypoint},    {"cmd", cmd},
              {"working_dir", working_dir},  {"user", user},
              {"created", created}};
}

std::vector<std::string> CommandFor(const ImageConfig& config,
                                    const std::vector<std::string>& given) {
  std::vector<std::string> argv = config.entrypoint;
  const auto& tail = given.empty() ? config.cmd : given;
  argv.insert(argv.end(), tail.begin(), tail.end());
  return argv;
}

}  // namespace paddock::image
