#include "sandbox/cdi.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "base/fs.h"

namespace paddock::cdi {

using nlohmann::json;

namespace {

constexpr size_t kMaxSpecBytes = 4 << 20;

bool NameChars(const std::string& s, bool first_alnum) {
  if (s.empty() || s.size() > 128) return false;
  if (first_alnum && !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' || c == ':';
  });
}

// "vendor.com/class".
bool ValidKind(const std::string& kind) {
  size_t slash = kind.find('/');
  if (slash == std::string::npos || slash == 0) return false;
  std::string vendor = kind.substr(0, slash), cls = kind.substr(slash + 1);
  bool vendor_ok = vendor.size() <= 63 && std::all_of(vendor.begin(), vendor.end(), [](char c) {
                     return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
                            c == '.' || c == '-';
                   });
  return vendor_ok && NameChars(cls, true) && cls.find(':') == std::string::npos;
}

json FromYaml(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      json j = json::object();
      for (const auto& kv : n) j[kv.first.as<std::string>()] = FromYaml(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      json j = json::array();
      for (const auto& v : n) j.push_back(FromYaml(v));
      return j;
    }
    case YAML::NodeType::Scalar: {
      // Numbers stay numbers (major, minor, fileMode, uid); the rest are strings.
      const std::string& s = n.Scalar();
      if (n.Tag() != "!" && !s.empty() &&
          std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        return json(std::stoll(s.substr(0, 18)));
      return json(s);
    }
    default:
      return json(nullptr);
  }
}

Result<json> ParseText(const std::string& text, const std::string& path) {
  bool yaml = path.size() > 5 && (path.substr(path.size() - 5) == ".yaml" || path.substr(path.size() - 4) == ".yml");
  if (!yaml) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return InvalidArgument("not valid JSON");
    return j;
  }
  try {
    return FromYaml(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string("not valid YAML: ") + e.what());
  }
}

Result<std::string> Str(const json& j, const char* key, const std::string& where, bool required) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) return InvalidArgument(where + ": '" + key + "' is required");
    return std::string();
  }
  if (!j[key].is_string()) return InvalidArgument(where + ": '" + key + "' must be a string");
  return j[key].get<std::string>();
}

bool CleanAbsolute(const std::string& p) {
  return p.size() > 1 && p.size() < 1024 && p[0] == '/' && p.find('\0') == std::string::npos &&
         ("/" + p + "/").find("/../") == std::string::npos && p.find("//") == std::string::npos;
}

// One hook: one of the NVIDIA toolkit's, which Paddock does itself (see
// cdi.h), or `unsupported`, named by its command line.
Status ParseHook(const json& h, const std::string& where, Edits& out) {
  if (!h.is_object()) return InvalidArgument(where + ": a hook must be an object");
  PDK_ASSIGN_OR_RETURN(std::string path, Str(h, "path", where + " hook", true));
  std::vector<std::string> args;
  if (h.contains("args") && !h["args"].is_null()) {
    if (!h["args"].is_array()) return InvalidArgument(where + ": a hook's 'args' must be a list of strings");
    for (const auto& a : h["args"]) {
      if (!a.is_string()) return InvalidArgument(where + ": a hook's 'args' must be a list of strings");
      args.push_back(a.get<std::string>());
    }
  }
  std::string line = path;
  for (size_t i = 1; i < args.size() && i < 8; ++i) line += " " + args[i];
  const std::string unsupported = "the hook '" + line + (args.size() > 8 ? " ..." : "") + "'";
  std::string program = path.substr(path.rfind('/') + 1);
  size_t at = 1;  // args[0] is the program's name
  if (program == "nvidia-ctk" && args.size() > at && args[at] == "hook") ++at;
  if ((program != "nvidia-ctk" && program != "nvidia-cdi-hook") || args.size() <= at) {
    out.unsupported.push_back(unsupported);
    return Status::Ok();
  }
  const std::string command = args[at++];
  // Its flags, as --name VALUE or --name=VALUE.
  std::vector<std::pair<std::string, std::string>> flags;
  for (; at < args.size(); ++at) {
    std::string a = args[at];
    if (a.rfind("--", 0) != 0) return InvalidArgument(where + ": " + unsupported + ": '" + a + "' is not a flag");
    size_t eq = a.find('=');
    if (eq != std::string::npos) flags.emplace_back(a.substr(2, eq - 2), a.substr(eq + 1));
    else if (at + 1 < args.size()) flags.emplace_back(a.substr(2), args[++at]);
    else return InvalidArgument(where + ": " + unsupported + ": '" + a + "' has no value");
  }
  auto bad = [&](const std::string& why) { return InvalidArgument(where + ": " + unsupported + ": " + why); };
  std::string chmod_mode;
  std::vector<std::string> chmod_paths;
  for (const auto& [name, value] : flags) {
    if (command == "create-symlinks" && name == "link") {
      size_t sep = value.find("::");
      std::string target = value.substr(0, sep), link = sep == std::string::npos ? "" : value.substr(sep + 2);
      if (target.empty() || target.size() > 1024 || target.find('\0') != std::string::npos || !CleanAbsolute(link))
        return bad("--link '" + value + "' is not TARGET::/CLEAN/PATH");
      out.symlinks.emplace_back(target, link);
    } else if (command == "update-ldcache" && name == "folder") {
      if (!CleanAbsolute(value) || value.find_first_of("\n#") != std::string::npos)
        return bad("--folder '" + value + "' is not a clean absolute path");
      out.ldcache_folders.push_back(value);
    } else if (command == "enable-cuda-compat" && name == "host-driver-version") {
      if (value.empty() || value.size() > 32 || value.find_first_not_of("0123456789.") != std::string::npos)
        return bad("host driver version '" + value + "' is not N.N.N");
      out.cuda_compat_driver = value;
    } else if (command == "chmod" && name == "mode") {
      chmod_mode = value;
    } else if (command == "chmod" && name == "path") {
      if (!CleanAbsolute(value)) return bad("--path '" + value + "' is not a clean absolute path");
      chmod_paths.push_back(value);
    } else if (name != "debug" && name != "driver-root" && name != "container-spec") {
      out.unsupported.push_back(unsupported);
      return Status::Ok();
    }
  }
  if (command == "chmod") {
    char* end = nullptr;
    unsigned long mode = std::strtoul(chmod_mode.c_str(), &end, 8);
    if (chmod_mode.empty() || *end || mode > 07777) return bad("--mode '" + chmod_mode + "' is not an octal mode");
    for (const auto& p : chmod_paths) out.chmods.emplace_back(p, static_cast<uint32_t>(mode));
  } else if (command != "create-symlinks" && command != "update-ldcache" && command != "enable-cuda-compat" &&
             command != "disable-device-node-modification") {
    out.unsupported.push_back(unsupported);
  }
  return Status::Ok();
}

Status ParseEdits(const json& e, const std::string& where, Edits& out) {
  if (e.is_null()) return Status::Ok();
  if (!e.is_object()) return InvalidArgument(where + ": 'containerEdits' must be an object");
  if (e.contains("deviceNodes") && !e["deviceNodes"].is_null()) {
    if (!e["deviceNodes"].is_array()) return InvalidArgument(where + ": 'deviceNodes' must be a list");
    for (const auto& n : e["deviceNodes"]) {
      if (!n.is_object()) return InvalidArgument(where + ": a device node must be an object");
      PDK_ASSIGN_OR_RETURN(std::string path, Str(n, "path", where + " device node", true));
      PDK_ASSIGN_OR_RETURN(std::string host, Str(n, "hostPath", where + " device node", false));
      if (!CleanAbsolute(path) || path.rfind("/dev/", 0) != 0)
        return InvalidArgument(where + ": device node path '" + path + "' must be a clean path under /dev/");
      if (host.empty()) host = path;
      if (!CleanAbsolute(host)) return InvalidArgument(where + ": device node hostPath '" + host + "' must be absolute");
      PDK_ASSIGN_OR_RETURN(std::string permissions, Str(n, "permissions", where + " device node", false));
      if (permissions.find_first_not_of("rwm") != std::string::npos)
        return InvalidArgument(where + ": device node " + path + "'s permissions '" + permissions + "' must be of r, w, m");
      permissions.erase(std::remove(permissions.begin(), permissions.end(), 'm'), permissions.end());
      if (n.contains("permissions") && permissions.empty())
        return InvalidArgument(where + ": device node " + path + " allows neither read nor write");
      out.nodes.push_back({path, host, permissions});
    }
  }
  if (e.contains("mounts") && !e["mounts"].is_null()) {
    if (!e["mounts"].is_array()) return InvalidArgument(where + ": 'mounts' must be a list");
    for (const auto& m : e["mounts"]) {
      if (!m.is_object()) return InvalidArgument(where + ": a mount must be an object");
      PDK_ASSIGN_OR_RETURN(std::string host, Str(m, "hostPath", where + " mount", true));
      PDK_ASSIGN_OR_RETURN(std::string target, Str(m, "containerPath", where + " mount", true));
      PDK_ASSIGN_OR_RETURN(std::string type, Str(m, "type", where + " mount", false));
      if (!CleanAbsolute(host) || !CleanAbsolute(target))
        return InvalidArgument(where + ": mount paths must be clean absolute paths ('" + host + "' -> '" + target + "')");
      Mount mount{host, target, true};
      if (!type.empty() && type != "bind") out.unsupported.push_back("a mount of type '" + type + "' at " + target);
      if (m.contains("options") && m["options"].is_array())
        for (const auto& o : m["options"])
          if (o.is_string() && o.get<std::string>() == "rw") mount.read_only = false;
      out.mounts.push_back(std::move(mount));
    }
  }
  if (e.contains("env") && !e["env"].is_null()) {
    if (!e["env"].is_array()) return InvalidArgument(where + ": 'env' must be a list of KEY=VALUE");
    for (const auto& v : e["env"]) {
      if (!v.is_string() || v.get<std::string>().find('=') == std::string::npos || v.get<std::string>()[0] == '=')
        return InvalidArgument(where + ": 'env' must be a list of KEY=VALUE");
      out.env.push_back(v.get<std::string>());
    }
  }
  if (e.contains("hooks") && !e["hooks"].is_null()) {
    if (!e["hooks"].is_array()) return InvalidArgument(where + ": 'hooks' must be a list");
    for (const auto& h : e["hooks"]) PDK_TRY(ParseHook(h, where, out));
  }
  if (e.contains("additionalGids") && !e["additionalGids"].is_null()) {
    if (!e["additionalGids"].is_array()) return InvalidArgument(where + ": 'additionalGids' must be a list of group ids");
    for (const auto& g : e["additionalGids"]) {
      // 0 (root's group) is never given: it would be the host's root group.
      if (!g.is_number_integer() || g.get<int64_t>() <= 0 || g.get<int64_t>() > 0x7fffffff)
        return InvalidArgument(where + ": 'additionalGids' must hold group ids from 1 to 2^31-1");
      out.additional_gids.push_back(static_cast<uint32_t>(g.get<int64_t>()));
    }
  }
  for (const char* other : {"intelRdt", "netDevices"})
    if (e.contains(other) && !e[other].is_null() && !e[other].empty())
      out.unsupported.push_back(std::string("'") + other + "'");
  return Status::Ok();
}

}  // namespace

void Edits::Add(const Edits& other) {
  auto add_unique = [](auto& to, const auto& from, auto key) {
    for (const auto& item : from)
      if (std::none_of(to.begin(), to.end(), [&](const auto& have) { return key(have) == key(item); }))
        to.push_back(item);
  };
  add_unique(nodes, other.nodes, [](const DeviceNode& n) { return n.path; });
  add_unique(mounts, other.mounts, [](const Mount& m) { return m.container_path; });
  add_unique(symlinks, other.symlinks, [](const auto& l) { return l.second; });
  add_unique(ldcache_folders, other.ldcache_folders, [](const std::string& f) { return f; });
  add_unique(additional_gids, other.additional_gids, [](uint32_t g) { return g; });
  env.insert(env.end(), other.env.begin(), other.env.end());
  chmods.insert(chmods.end(), other.chmods.begin(), other.chmods.end());
  if (cuda_compat_driver.empty()) cuda_compat_driver = other.cuda_compat_driver;
  unsupported.insert(unsupported.end(), other.unsupported.begin(), other.unsupported.end());
}

bool ValidName(const std::string& name) {
  size_t eq = name.find('=');
  return eq != std::string::npos && ValidKind(name.substr(0, eq)) && NameChars(name.substr(eq + 1), true);
}

Result<std::vector<Device>> ParseSpec(const std::string& text, const std::string& path) {
  PDK_ASSIGN_OR_RETURN(json j, ParseText(text, path));
  if (!j.is_object()) return InvalidArgument("a spec must be an object");
  PDK_ASSIGN_OR_RETURN(std::string version, Str(j, "cdiVersion", "the spec", true));
  if (version.rfind("0.", 0) != 0) return InvalidArgument("cdiVersion '" + version + "' is not one Paddock reads (0.x)");
  PDK_ASSIGN_OR_RETURN(std::string kind, Str(j, "kind", "the spec", true));
  if (!ValidKind(kind)) return InvalidArgument("kind '" + kind + "' is not VENDOR/CLASS");
  Edits common;
  if (j.contains("containerEdits")) PDK_TRY(ParseEdits(j["containerEdits"], "the spec's containerEdits", common));
  if (!j.contains("devices") || !j["devices"].is_array() || j["devices"].empty())
    return InvalidArgument("'devices' must be a non-empty list");
  std::vector<Device> out;
  for (const auto& d : j["devices"]) {
    if (!d.is_object()) return InvalidArgument("a device must be an object");
    PDK_ASSIGN_OR_RETURN(std::string name, Str(d, "name", "a device", true));
    if (!NameChars(name, true) || name == "all") return InvalidArgument("device name '" + name + "' is not valid");
    Device dev{kind + "=" + name, path, {}};
    if (!d.contains("containerEdits")) return InvalidArgument("device " + name + ": 'containerEdits' is required");
    PDK_TRY(ParseEdits(d["containerEdits"], "device " + name, dev.edits));
    dev.edits.Add(common);
    out.push_back(std::move(dev));
  }
  return out;
}

Registry Registry::Load(const std::vector<std::string>& dirs) {
  Registry r;
  std::map<std::string, Device> by_name;
  for (const auto& dir : dirs) {
    std::vector<std::string> files = ListDir(dir);
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      bool spec = (f.size() > 5 && f.substr(f.size() - 5) == ".json") ||
                  (f.size() > 5 && f.substr(f.size() - 5) == ".yaml") || (f.size() > 4 && f.substr(f.size() - 4) == ".yml");
      if (!spec) continue;
      std::string path = dir + "/" + f;
      auto text = ReadFile(path);
      if (!text.ok()) {
        r.errors_.push_back({path, text.status().message()});
        continue;
      }
      if (text->size() > kMaxSpecBytes) {
        r.errors_.push_back({path, "larger than 4 MiB"});
        continue;
      }
      auto devices = ParseSpec(*text, path);
      if (!devices.ok()) {
        r.errors_.push_back({path, devices.status().message()});
        continue;
      }
      for (auto& d : *devices) by_name[d.name] = std::move(d);
    }
  }
  for (auto& [name, d] : by_name) r.devices_.push_back(std::move(d));
  return r;
}

void Registry::AddMissing(std::vector<Device> found) {
  for (auto& d : found) {
    bool taken = std::any_of(devices_.begin(), devices_.end(), [&](const Device& e) { return e.name == d.name; });
    if (!taken) devices_.push_back(std::move(d));
  }
}

Result<std::vector<Device>> Registry::Resolve(const std::string& name) const {
  size_t eq = name.find('=');
  std::string kind = eq == std::string::npos ? "" : name.substr(0, eq);
  if (eq != std::string::npos && name.substr(eq + 1) == "all" && ValidKind(kind)) {
    std::vector<Device> all;
    for (const auto& d : devices_)
      if (d.name.rfind(kind + "=", 0) == 0) all.push_back(d);
    if (all.empty()) return NotFound("no CDI device of kind " + kind + " on this host");
    return all;
  }
  if (!ValidName(name)) return InvalidArgument("device '" + name + "' is not a CDI name (VENDOR/CLASS=NAME)");
  for (const auto& d : devices_)
    if (d.name == name) return std::vector<Device>{d};
  return NotFound("no CDI device " + name + " on this host (its specs: /etc/cdi, /var/run/cdi)");
}

}  // namespace paddock::cdi
