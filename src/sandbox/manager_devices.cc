// Devices: CDI devices given to sandboxes (see cdi.h). A device's nodes
// are bound into the sandbox's /dev, its mounts bound in (read-only unless
// its spec says rw), its env added to the sandbox's. Unless paddockd shares
// devices, one sandbox holds a device from its create to its delete; the
// claim is in its record, so a restart claims it again.
#include <sys/stat.h>

#include <set>

#include <algorithm>

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

Result<std::vector<std::string>> SandboxManager::GpuRequest(const std::string& gpus) const {
  auto digits = [](const std::string& s) {
    return !s.empty() && s.size() < 4 && std::all_of(s.begin(), s.end(), ::isdigit);
  };
  std::string kind = std::string(kGpuKind) + "=";
  if (gpus == "all") return std::vector<std::string>{kind + "all"};
  if (digits(gpus)) {  // a count
    size_t want = std::stoul(gpus);
    auto holders = DeviceHolders();
    std::vector<std::pair<int, std::string>> free;
    cdi::Registry registry = Devices();
    for (const auto& d : registry.devices()) {
      if (d.name.rfind(kind, 0) != 0 || !digits(d.name.substr(kind.size()))) continue;
      if (opts_.shared_devices || !holders.count(d.name)) free.emplace_back(std::stoi(d.name.substr(kind.size())), d.name);
    }
    if (free.size() < want)
      return ResourceExhausted("asked for " + gpus + " GPUs; " + std::to_string(free.size()) + " are free on this host");
    std::sort(free.begin(), free.end());
    std::vector<std::string> out;
    for (size_t i = 0; i < want; ++i) out.push_back(free[i].second);
    return out;
  }
  std::string list = gpus.rfind("device=", 0) == 0 ? gpus.substr(7) : gpus;
  std::vector<std::string> out;
  for (const auto& item : SplitList(list)) {
    if (digits(item)) out.push_back(kind + item);
    else if (item.find('=') != std::string::npos) out.push_back(item);
    else return InvalidArgument("gpus '" + gpus + "' must be all, a count, device=I,J or CDI names (VENDOR/CLASS=NAME)");
  }
  if (out.empty()) return InvalidArgument("gpus must not be empty");
  return out;
}

Result<std::vector<std::string>> SandboxManager::ResolveDevices(const std::vector<std::string>& requested) const {
  if (requested.empty()) return std::vector<std::string>{};
  cdi::Registry registry = Devices();
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
      for (const auto& n : d.edits.nodes) {
        struct stat st;
        if (::stat(n.host_path.c_str(), &st) != 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
          return FailedPrecondition("device " + d.name + ": " + n.host_path + " is not a device node on this host");
      }
      if (seen.insert(d.name).second) out.push_back(d.name);
    }
  }
  if (out.size() > kMaxDevices)
    return InvalidArgument("a sandbox may hold at most " + std::to_string(kMaxDevices) + " devices");
  return out;
}

Result<cdi::Edits> SandboxManager::DeviceEdits(const std::vector<std::string>& devices) const {
  cdi::Registry registry = Devices();
  cdi::Edits all;
  std::set<std::string> paths;
  for (const auto& name : devices) {
    auto found = registry.Resolve(name);
    if (!found.ok() || found->size() != 1)
      return FailedPrecondition("device " + name + " is no longer in this host's CDI specs");
    const cdi::Edits& e = (*found)[0].edits;
    for (const auto& n : e.nodes)
      if (paths.insert(n.path).second) all.nodes.push_back(n);
    for (const auto& m : e.mounts)
      if (paths.insert(m.container_path).second) all.mounts.push_back(m);
    all.env.insert(all.env.end(), e.env.begin(), e.env.end());
  }
  return all;
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
