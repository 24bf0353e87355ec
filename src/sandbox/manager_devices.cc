// Devices: CDI devices given to sandboxes (see cdi.h). A device's nodes
// are bound into the sandbox's /dev, its mounts bound in (read-only unless
// its spec says rw), its env added to the sandbox's. Unless paddockd shares
// devices, one sandbox holds a device from its create to its delete; the
// claim is in its record, so a restart claims it again.
#include <algorithm>
#include <set>

#include "base/json_field.h"
#include "base/units.h"
#include "sandbox/manager.h"
#include "sandbox/manager_parts.h"
#include "sandbox/nvidia.h"

namespace paddock {

cdi::Registry SandboxManager::Devices() const {
  cdi::Registry registry = cdi::Registry::Load(opts_.cdi_dirs);
  registry.AddMissing(nvidia::Discover(opts_.gpu_root));
  return registry;
}

namespace {

// A number of at most `max` digits (a GPU index or count: 3).
bool Digits(const std::string& s, size_t max = 3) {
  return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), ::isdigit);
}

// The leading number of a version ("570.133.20" -> 570); -1 if none.
int Major(const std::string& version) {
  std::string head = version.substr(0, version.find('.'));
  return Digits(head, 6) ? std::stoi(head) : -1;
}

}  // namespace

Result<SandboxManager::GpuAsk> SandboxManager::ParseGpus(const std::string& gpus) {
  GpuAsk ask;
  if (gpus.empty()) return ask;
  const std::string kind(kGpuPrefix);
  if (gpus == "all") {
    ask.names = {kind + "all"};
    return ask;
  }
  if (Digits(gpus)) {
    ask.count = std::stoul(gpus);
    if (ask.count == 0) return InvalidArgument("gpus must not be 0");
    return ask;
  }
  std::string list = gpus.rfind("device=", 0) == 0 ? gpus.substr(7) : gpus;
  for (const auto& item : SplitList(list)) {
    if (Digits(item)) ask.names.push_back(kind + item);
    else if (item.find('=') != std::string::npos) ask.names.push_back(item);
    else return InvalidArgument("gpus '" + gpus + "' must be all, a count, device=I,J or CDI names (VENDOR/CLASS=NAME)");
  }
  if (ask.names.empty()) return InvalidArgument("gpus must not be empty");
  return ask;
}

Status SandboxManager::PickGpus(const cdi::Registry& registry, size_t count,
                                std::vector<std::string>& devices) const {
  std::vector<std::pair<int, std::string>> free;
  for (const auto& d : registry.devices()) {
    if (!IsGpu(d.name)) continue;
    std::string index = d.name.substr(kGpuPrefix.size());
    if (!Digits(index)) continue;
    bool taken = std::find(devices.begin(), devices.end(), d.name) != devices.end() ||
                 (!opts_.shared_devices && device_holders_.count(d.name));
    if (!taken) free.emplace_back(std::stoi(index), d.name);
  }
  if (free.size() < count)
    return ResourceExhausted("asked for " + std::to_string(count) + " GPUs; " + std::to_string(free.size()) +
                             " are free on this host");
  std::sort(free.begin(), free.end());
  for (size_t i = 0; i < count; ++i) devices.push_back(free[i].second);
  if (devices.size() > kMaxDevices)
    return InvalidArgument("a sandbox may hold at most " + std::to_string(kMaxDevices) + " devices");
  return Status::Ok();
}

Result<std::vector<std::string>> SandboxManager::ResolveDevices(const cdi::Registry& registry,
                                                                const std::vector<std::string>& requested) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& name : requested) {
    PDK_ASSIGN_OR_RETURN(std::vector<cdi::Device> devices, registry.Resolve(name));
    for (const auto& d : devices) {
      if (!d.edits.unsupported.empty()) {
        std::string what;
        for (const auto& u : d.edits.unsupported) what += (what.empty() ? "" : ", ") + u;
        return Unimplemented("device " + d.name + " (" + d.spec + ") asks for what Paddock cannot do: " + what);
      }
      for (const auto& n : d.edits.nodes)  // the filter's own reading of it: the same check as at boot
        if (!kernel::DeviceAccessOf(n.host_path, n.permissions).ok())
          return FailedPrecondition("device " + d.name + ": " + n.host_path + " is not a device node on this host");
      if (seen.insert(d.name).second) out.push_back(d.name);
    }
  }
  if (out.size() > kMaxDevices)
    return InvalidArgument("a sandbox may hold at most " + std::to_string(kMaxDevices) + " devices");
  return out;
}

Result<cdi::Edits> SandboxManager::DeviceEdits(const cdi::Registry& registry, const std::vector<std::string>& devices) {
  cdi::Edits all;
  for (const auto& name : devices) {
    auto found = registry.Resolve(name);
    if (!found.ok() || found->size() != 1)
      return FailedPrecondition("device " + name + " is no longer in this host's CDI specs");
    all.Add((*found)[0].edits);
  }
  return all;
}

Result<std::vector<kernel::DeviceAccess>> SandboxManager::DeviceAccessFor(const cdi::Edits& edits) {
  std::vector<kernel::DeviceAccess> out;
  for (const auto& n : edits.nodes) {
    auto access = kernel::DeviceAccessOf(n.host_path, n.permissions);
    if (!access.ok()) return FailedPrecondition("device node " + n.path + ": " + access.status().message());
    out.push_back(*access);
  }
  return out;
}

void SandboxManager::AddDeviceHooks(const cdi::Edits& edits, kernel::LaunchSpec& launch) {
  launch.symlinks.insert(launch.symlinks.end(), edits.symlinks.begin(), edits.symlinks.end());
  launch.chmods.insert(launch.chmods.end(), edits.chmods.begin(), edits.chmods.end());
}

Status SandboxManager::RefreshLdCache(Sandbox& sb, const cdi::Edits& edits) {
  std::vector<std::string> folders = edits.ldcache_folders;
  if (folders.empty() && edits.cuda_compat_driver.empty()) return Status::Ok();
  const std::string what = "refreshing sandbox " + sb.info.id + "'s ld.so.cache for its devices";
  PDK_ASSIGN_OR_RETURN(agent::AgentClient client, agent::AgentClient::Connect(sb.info.agent_socket));
  // CUDA's forward-compatibility libraries, where the image has some newer
  // than the host's driver, go first (nvidia-ctk's enable-cuda-compat).
  constexpr const char* kCompat = "/usr/local/cuda/compat";
  if (int host = Major(edits.cuda_compat_driver); host > 0) {
    auto listed = client.Call({{"op", "ls"}, {"path", kCompat}, {"depth", 1}});
    int newest = -1;
    if (listed.ok())
      for (const auto& e : listed->header.value("entries", nlohmann::json::array()))
        if (std::string name = Field<std::string>(e, "name", ""); name.rfind("libcuda.so.", 0) == 0)
          newest = std::max(newest, Major(name.substr(11)));
    if (newest > host) folders.insert(folders.begin(), kCompat);
  }
  if (folders.empty()) return Status::Ok();
  std::string conf = "# Written by paddockd: the library folders of this sandbox's devices.\n";
  for (const auto& f : folders) conf += f + "\n";
  auto made = client.Call({{"op", "mkdir"}, {"path", "/etc/ld.so.conf.d"}, {"parents", true}});
  if (!made.ok()) return made.status().Annotate(what);
  PDK_TRY(client.WriteFile("/etc/ld.so.conf.d/00-paddock-cdi.conf", conf).status().Annotate(what));
  // An image without ldconfig (musl, distroless) has no cache to refresh.
  std::string ldconfig;
  for (const char* path : {"/sbin/ldconfig", "/usr/sbin/ldconfig"})
    if (ldconfig.empty() && client.Call({{"op", "stat"}, {"path", path}}).ok()) ldconfig = path;
  if (ldconfig.empty()) return Status::Ok();
  agent::ExecOptions o;
  o.argv = {ldconfig};
  o.tag = "ldconfig";
  o.timeout_ms = 30000;
  o.max_output_bytes = 64 << 10;
  PDK_ASSIGN_OR_RETURN(agent::ExecResult r, client.Exec(o));
  if (r.exit_code != 0)
    return FailedPrecondition(what + ": " + ldconfig + " exited with " + std::to_string(r.exit_code) + ": " +
                              r.stderr_data.substr(0, 2000));
  return Status::Ok();
}

Status SandboxManager::ClaimDevices(const std::string& id, const std::vector<std::string>& devices) {
  if (opts_.shared_devices) return Status::Ok();
  for (const auto& d : devices)
    if (auto held = device_holders_.find(d); held != device_holders_.end() && held->second != id)
      return AlreadyExists("device " + d + " is held by sandbox " + held->second);
  for (const auto& d : devices) device_holders_[d] = id;
  return Status::Ok();
}

void SandboxManager::ReleaseDevices(const std::string& id, const std::vector<std::string>& devices) {
  for (const auto& d : devices)
    if (auto held = device_holders_.find(d); held != device_holders_.end() && held->second == id)
      device_holders_.erase(held);
}

std::map<std::string, std::string> SandboxManager::DeviceHolders() const {
  MutexLock lock(mu_);
  return device_holders_;
}

}  // namespace paddock
