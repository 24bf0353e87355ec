// DiskPool: where sandboxes' folders live when their disk use is limited.
// A btrfs filesystem in an image file (sparse, made with mkfs.btrfs at first
// start) on a loop device, mounted over the sandboxes folder, with quota
// groups on. Each sandbox's folder is a subvolume whose qgroup limit caps
// what its writable layer (and overlayfs's work folder) hold: a write past
// it fails with EDQUOT ("Disk quota exceeded") in that sandbox only.
//
// Why btrfs: XFS and ext4 project quotas need kernel options
// (CONFIG_XFS_QUOTA, CONFIG_QFMT_V2) that hosts often lack (this one does);
// btrfs quotas come with btrfs.
//
// The mount outlives paddockd only as long as sandboxes use it: it is
// detached when the pool closes, and the loop device (autoclear) goes with
// its last user. The next start finds that device again by its backing
// file, never attaching the image twice.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/fd.h"
#include "base/status.h"
#include "kernel/btrfs.h"

namespace paddock {

struct DiskPoolOptions {
  std::string image;        // the image file; made if missing
  std::string mount_point;  // an empty folder (or the pool's mount already)
  int64_t size_bytes = 0;   // of a new image; at least 512 MiB
};

class DiskPool {
 public:
  static Result<std::unique_ptr<DiskPool>> Open(const DiskPoolOptions& opts);
  ~DiskPool();

  // Makes the folder `dir` (in the pool; it must not exist) a unit of its
  // own for limits.
  Status MakeFolder(const std::string& dir) { return kernel::btrfs::CreateSubvolume(dir); }
  // Caps what the folder `dir` (made by MakeFolder) holds; 0: no cap.
  Status SetLimit(const std::string& dir, int64_t bytes) { return kernel::btrfs::SetLimit(dir, bytes); }
  Result<kernel::btrfs::Usage> Usage(const std::string& dir) const { return kernel::btrfs::GetUsage(dir); }

 private:
  explicit DiskPool(std::string mount_point) : mount_point_(std::move(mount_point)) {}
  std::string mount_point_;
};

}  // namespace paddock
