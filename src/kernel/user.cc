#include "kernel/user.h"

#include <string>

#include "base/fs.h"

namespace paddock::kernel::user {

Status WriteIdMaps(pid_t pid, const IdRange& ids) {
  std::string line = "0 " + std::to_string(ids.host_first) + " " + std::to_string(ids.count);
  std::string base = "/proc/" + std::to_string(pid);
  PDK_TRY(WriteExisting(base + "/uid_map", line));
  return WriteExisting(base + "/gid_map", line);
}

}  // namespace paddock::kernel::user
