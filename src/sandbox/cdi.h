// CDI (Container Device Interface): the device specs a host publishes in
// /etc/cdi and /var/run/cdi (JSON or YAML), and what a named device asks
// of a sandbox: device nodes bound in, host files mounted, env set.
//
// A device is named "VENDOR/CLASS=NAME" (nvidia.com/gpu=0), or
// "VENDOR/CLASS=all" for every device of that kind. Spec-wide edits apply
// to each of its devices.
//
// Hooks are programs a runtime runs as the container starts. Paddock runs
// none: it does itself what the NVIDIA toolkit's hooks (nvidia-ctk hook,
// nvidia-cdi-hook) do, which is all the hooks specs in use carry:
//   create-symlinks --link TARGET::LINK   the link, made inside
//   update-ldcache --folder DIR           DIR in the sandbox's ld.so.conf.d,
//                                         then its own ldconfig (if it has one)
//   enable-cuda-compat --host-driver-version=V
//                                         the image's CUDA forward-compat
//                                         libraries first, where newer than V
//   chmod --mode M --path P               P's mode, inside
//   disable-device-node-modification      nothing: a sandbox cannot make nodes
// What Paddock cannot honour (other hooks, network devices, RDT) is kept
// as `unsupported` and refused by name when a sandbox asks for the device,
// never ignored.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace paddock::cdi {

struct DeviceNode {
  std::string path;         // inside the sandbox, under /dev
  std::string host_path;    // the host's node (path when the spec gives none)
  std::string permissions;  // of "rw" (m is never given); empty: rw
};

struct Mount {
  std::string host_path, container_path;
  bool read_only = true;  // unless the spec's options say "rw"
};

struct Edits {
  std::vector<DeviceNode> nodes;
  std::vector<Mount> mounts;
  std::vector<std::string> env;          // KEY=VALUE
  // What its hooks ask (see above).
  std::vector<std::pair<std::string, std::string>> symlinks;  // {target, link}
  std::vector<std::string> ldcache_folders;
  std::string cuda_compat_driver;  // the host driver's version, for enable-cuda-compat
  std::vector<std::pair<std::string, uint32_t>> chmods;  // {path, mode}
  // Host groups its processes join (to open a node such as /dev/dri/card0,
  // 0660 root:video); mapped into the sandbox's user namespace one by one.
  std::vector<uint32_t> additional_gids;
  std::vector<std::string> unsupported;  // what it asks that Paddock cannot do, named
  // The edits of `other` added (nodes, mounts and links once per path).
  void Add(const Edits& other);
};

struct Device {
  std::string name;  // VENDOR/CLASS=NAME
  std::string spec;  // the file it comes from
  Edits edits;       // its own and its spec's
};

struct SpecError {
  std::string path, reason;
};

// One spec file's devices; kInvalidArgument saying what is wrong with it.
Result<std::vector<Device>> ParseSpec(const std::string& text, const std::string& path);

class Registry {
 public:
  // Reads every *.json, *.yaml and *.yml in `dirs`; a later folder's device
  // of the same name replaces an earlier one's. A spec that cannot be read
  // or parsed is listed in errors() and skipped.
  static Registry Load(const std::vector<std::string>& dirs);
  const std::vector<Device>& devices() const { return devices_; }
  const std::vector<SpecError>& errors() const { return errors_; }
  // Adds devices found otherwise (nvidia::Discover) whose names no spec took.
  void AddMissing(std::vector<Device> found);
  // The devices `name` names (one, or with "=all" each of its kind);
  // kInvalidArgument for a malformed name, kNotFound for an unknown one.
  Result<std::vector<Device>> Resolve(const std::string& name) const;

 private:
  std::vector<Device> devices_;
  std::vector<SpecError> errors_;
};

// "VENDOR/CLASS=NAME" well formed (VENDOR a domain, CLASS and NAME of
// [A-Za-z0-9_.:-], NAME starting with a letter or digit).
bool ValidName(const std::string& name);

}  // namespace paddock::cdi
