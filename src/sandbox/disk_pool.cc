#include "sandbox/disk_pool.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <vector>

#include "base/fs.h"
#include "kernel/process.h"

namespace paddock {

namespace {

constexpr int64_t kMinSize = int64_t{512} << 20;

// The loop device whose backing file is `image`, if one is attached.
std::string FindLoop(const std::string& image) {
  for (const auto& name : ListDir("/sys/block")) {
    if (name.rfind("loop", 0) != 0) continue;
    auto backing = ReadFile("/sys/block/" + name + "/loop/backing_file");
    if (!backing.ok()) continue;
    std::string file = *backing;
    while (!file.empty() && file.back() == '\n') file.pop_back();
    if (file == image) return "/dev/" + name;
  }
  return "";
}

// Attaches `image` to a free loop device that lets go of it with its last
// user; returns the device, open.
Result<std::pair<std::string, UniqueFd>> AttachLoop(const std::string& image) {
  UniqueFd file(::open(image.c_str(), O_RDWR | O_CLOEXEC));
  if (!file) return Status::Errno("open " + image);
  UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!control) return Status::Errno("open /dev/loop-control");
  for (int attempt = 0; attempt < 16; ++attempt) {  // another process may take the free one first
    int n = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
    if (n < 0) return Status::Errno("find a free loop device");
    std::string dev = "/dev/loop" + std::to_string(n);
    UniqueFd loop(::open(dev.c_str(), O_RDWR | O_CLOEXEC));
    if (!loop) return Status::Errno("open " + dev);
    struct loop_config config {};
    config.fd = static_cast<uint32_t>(file.get());
    config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    std::strncpy(reinterpret_cast<char*>(config.info.lo_file_name), image.c_str(), LO_NAME_SIZE - 1);
    if (::ioctl(loop.get(), LOOP_CONFIGURE, &config) == 0) return std::make_pair(dev, std::move(loop));
    if (errno != EBUSY) return Status::Errno("attach " + image + " to " + dev);
  }
  return Unavailable("no free loop device for " + image);
}

// Whether `dir` is the root of a btrfs mount (the pool's, mounted before).
bool IsBtrfsMount(const std::string& dir) {
  struct statfs fs {};
  struct stat here {}, up {};
  return ::statfs(dir.c_str(), &fs) == 0 && fs.f_type == BTRFS_SUPER_MAGIC && ::stat(dir.c_str(), &here) == 0 &&
         ::stat((dir + "/..").c_str(), &up) == 0 && here.st_dev != up.st_dev;
}

}  // namespace

Result<std::unique_ptr<DiskPool>> DiskPool::Open(const DiskPoolOptions& opts) {
  std::string mount_point = opts.mount_point;
  if (!IsBtrfsMount(mount_point)) {
    for (const auto& name : ListDir(mount_point)) {
      if (name[0] == '.') {  // a trash of a run without the pool
        PDK_TRY(RemoveTree(mount_point + "/" + name));
        continue;
      }
      return FailedPrecondition(mount_point + " holds sandboxes made without the disk pool: delete them (or "
                                "start paddockd without --disk-pool) before turning it on");
    }
    if (!PathExists(opts.image)) {
      if (opts.size_bytes < kMinSize) return InvalidArgument("the disk pool must be at least 512 MiB");
      std::string part = opts.image + ".part";
      ::unlink(part.c_str());
      {
        UniqueFd f(::open(part.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (!f || ::ftruncate(f.get(), opts.size_bytes) != 0) return Status::Errno("create " + part);
      }
      Status made = kernel::RunProgram("mkfs.btrfs", {"mkfs.btrfs", "-q", part}, true).status();
      if (made.code() == StatusCode::kNotFound) made = Unavailable("mkfs.btrfs is missing: install btrfs-progs");
      if (made.ok() && ::rename(part.c_str(), opts.image.c_str()) != 0) made = Status::Errno("rename " + part);
      if (!made.ok()) {
        ::unlink(part.c_str());
        return made.Annotate("making the disk pool");
      }
    }
    char real[PATH_MAX];
    if (!::realpath(opts.image.c_str(), real)) return Status::Errno("resolve " + opts.image);
    std::string device = FindLoop(real);
    UniqueFd held;  // the new device's only user until the mount
    if (device.empty()) {
      PDK_ASSIGN_OR_RETURN(auto attached, AttachLoop(real));
      device = attached.first;
      held = std::move(attached.second);
    }
    if (::mount(device.c_str(), mount_point.c_str(), "btrfs", MS_NOSUID | MS_NODEV, nullptr) != 0)
      return Status::Errno("mount the disk pool " + device + " on " + mount_point);
  }
  UniqueFd root(::open(mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Status::Errno("open " + mount_point);
  if (Status s = kernel::btrfs::EnableQuotas(root.get()); !s.ok()) {
    ::umount2(mount_point.c_str(), MNT_DETACH);
    return s.Annotate("the disk pool at " + mount_point);
  }
  if (::chmod(mount_point.c_str(), 0711) != 0) return Status::Errno("chmod " + mount_point);
  return std::unique_ptr<DiskPool>(new DiskPool(mount_point));
}

DiskPool::~DiskPool() {
  // Lazily: running sandboxes keep the filesystem, and the next paddockd
  // mounts it again.
  ::umount2(mount_point_.c_str(), MNT_DETACH);
}

}  // namespace paddock
