#include "kernel/btrfs.h"

#include <fcntl.h>
#include <linux/btrfs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "base/fd.h"
#include "base/fs.h"

namespace paddock::kernel::btrfs {

namespace {

constexpr uint64_t kFirstFreeObjectId = 256;  // BTRFS_FIRST_FREE_OBJECTID: a subvolume's root folder

Result<UniqueFd> OpenDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return Status::Errno("open " + dir);
  return fd;
}

// /sys/fs/btrfs/<fsid>/qgroups/0_<subvolume id>/: the qgroup of `fd`'s subvolume.
Result<std::string> QgroupSysfs(int fd) {
  struct btrfs_ioctl_fs_info_args fs {};
  if (::ioctl(fd, BTRFS_IOC_FS_INFO, &fs) != 0) return Status::Errno("read the btrfs filesystem's id");
  struct btrfs_ioctl_ino_lookup_args lookup {};
  lookup.objectid = kFirstFreeObjectId;
  if (::ioctl(fd, BTRFS_IOC_INO_LOOKUP, &lookup) != 0) return Status::Errno("find the subvolume's id");
  char uuid[37];
  const unsigned char* u = fs.fsid;
  std::snprintf(uuid, sizeof uuid, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
                u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  return "/sys/fs/btrfs/" + std::string(uuid) + "/qgroups/0_" + std::to_string(lookup.treeid);
}

// A qgroup's number; 0 for none, or for "no limit" (all ones).
int64_t ReadNumber(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return 0;
  unsigned long long n = std::strtoull(text->c_str(), nullptr, 10);
  return n >= static_cast<unsigned long long>(INT64_MAX) ? 0 : static_cast<int64_t>(n);
}

}  // namespace

Status EnableQuotas(int fs) {
  struct btrfs_ioctl_quota_ctl_args args {};
  args.cmd = BTRFS_QUOTA_CTL_ENABLE;
  if (::ioctl(fs, BTRFS_IOC_QUOTA_CTL, &args) != 0 && errno != EEXIST)
    return Status::Errno("turn btrfs quotas on");
  return Status::Ok();
}

Status CreateSubvolume(const std::string& dir) {
  size_t slash = dir.rfind('/');
  std::string parent = slash == 0 ? "/" : dir.substr(0, slash), name = dir.substr(slash + 1);
  PDK_ASSIGN_OR_RETURN(UniqueFd fd, OpenDir(parent));
  struct btrfs_ioctl_vol_args args {};
  if (name.empty() || name.size() > BTRFS_PATH_NAME_MAX) return InvalidArgument("bad subvolume name '" + name + "'");
  std::memcpy(args.name, name.data(), name.size());
  if (::ioctl(fd.get(), BTRFS_IOC_SUBVOL_CREATE, &args) != 0) return Status::Errno("create subvolume " + dir);
  return Status::Ok();
}

Status SetLimit(const std::string& dir, int64_t bytes) {
  if (bytes < 0) return InvalidArgument("a disk limit must not be negative");
  PDK_ASSIGN_OR_RETURN(UniqueFd fd, OpenDir(dir));
  struct btrfs_ioctl_qgroup_limit_args args {};
  args.qgroupid = 0;  // the subvolume of fd
  args.lim.flags = BTRFS_QGROUP_LIMIT_MAX_RFER;
  args.lim.max_rfer = bytes > 0 ? static_cast<uint64_t>(bytes) : ~uint64_t{0};  // all ones: none
  if (::ioctl(fd.get(), BTRFS_IOC_QGROUP_LIMIT, &args) != 0) return Status::Errno("set the disk limit of " + dir);
  return Status::Ok();
}

Result<Usage> GetUsage(const std::string& dir) {
  PDK_ASSIGN_OR_RETURN(UniqueFd fd, OpenDir(dir));
  PDK_ASSIGN_OR_RETURN(std::string qgroup, QgroupSysfs(fd.get()));
  Usage u;
  u.used_bytes = ReadNumber(qgroup + "/referenced");
  u.limit_bytes = ReadNumber(qgroup + "/max_referenced");
  return u;
}

}  // namespace paddock::kernel::btrfs
