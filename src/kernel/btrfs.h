// Btrfs subvolumes and their quota groups: a hard limit on the bytes a
// folder tree may reference. A sandbox's folder is a subvolume; its qgroup
// limit makes a write past it fail (EDQUOT, "Disk quota exceeded") in that
// folder only. Used because XFS and ext4 project quotas need kernel options
// (CONFIG_XFS_QUOTA, CONFIG_QFMT_V2) that hosts often lack, while btrfs
// quotas come with btrfs itself.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace paddock::kernel::btrfs {

// Turns quota groups on for the filesystem of `fs` (an open descriptor of
// any file on it); a no-op when they are on.
Status EnableQuotas(int fs);
// Makes the subvolume `dir` (its parent must exist, it must not).
Status CreateSubvolume(const std::string& dir);
// Limits what the subvolume `dir` references (0: no limit).
Status SetLimit(const std::string& dir, int64_t bytes);

struct Usage {
  int64_t used_bytes = 0;   // referenced by the subvolume
  int64_t limit_bytes = 0;  // 0: none
};
Result<Usage> GetUsage(const std::string& dir);

}  // namespace paddock::kernel::btrfs
