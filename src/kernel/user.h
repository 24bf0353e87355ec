// User namespaces: root inside a sandbox is an unprivileged id range on the host.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "base/status.h"

namespace paddock::kernel::user {

struct IdRange {
  uint32_t host_first = 0;  // host uid/gid that sandbox id 0 maps to
  uint32_t count = 65536;
};

// Writes "0 host_first count" to the uid_map and gid_map of `pid`, which must
// be in a fresh user namespace. Done by the (host-root) parent, so setgroups
// stays allowed inside and init can drop supplementary groups when it spawns.
// Each of `host_gids` (a device's groups: CDI's additionalGids) is mapped
// too, one by one, to the ids just past the range: DeviceGroupsInside.
Status WriteIdMaps(pid_t pid, const IdRange& ids, const std::vector<uint32_t>& host_gids = {});
// The ids inside the sandbox that `host_gids` map to.
std::vector<gid_t> DeviceGroupsInside(const IdRange& ids, size_t count);

}  // namespace paddock::kernel::user
