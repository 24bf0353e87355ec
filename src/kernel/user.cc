#include "kernel/user.h"

#include <string>

#include "base/fs.h"

namespace paddock::kernel::user {

Status WriteIdMaps(pid_t pid, const IdRange& ids, const std::vector<uint32_t>& host_gids) {
  std::string line = "0 " + std::to_string(ids.host_first) + " " + std::to_string(ids.count);
  std::string base = "/proc/" + std::to_string(pid);
  PDK_TRY(WriteExisting(base + "/uid_map", line));
  std::string gids = line + "\n";
  std::vector<gid_t> inside = DeviceGroupsInside(ids, host_gids.size());
  for (size_t i = 0; i < host_gids.size(); ++i) {
    if (host_gids[i] >= ids.host_first && host_gids[i] - ids.host_first < ids.count)
      return InvalidArgument("group " + std::to_string(host_gids[i]) + " is inside the sandbox's own id range");
    gids += std::to_string(inside[i]) + " " + std::to_string(host_gids[i]) + " 1\n";
  }
  return WriteExisting(base + "/gid_map", gids);
}

std::vector<gid_t> DeviceGroupsInside(const IdRange& ids, size_t count) {
  std::vector<gid_t> out;
  for (size_t i = 0; i < count; ++i) out.push_back(static_cast<gid_t>(ids.count + i));
  return out;
}

}  // namespace paddock::kernel::user
