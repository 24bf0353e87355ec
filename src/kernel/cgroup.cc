#include "kernel/cgroup.h"

#include <sched.h>
#include <unistd.h>

#include <sstream>

#include "base/fs.h"

namespace paddock::kernel {

Status WaitUntil(const std::function<Result<bool>()>& done, int timeout_ms, const char* what) {
  int64_t deadline = MonotonicNanos() + int64_t{timeout_ms} * 1000000;
  for (int i = 0;; ++i) {
    PDK_ASSIGN_OR_RETURN(bool ok, done());
    if (ok) return Status::Ok();
    if (MonotonicNanos() > deadline) return Unavailable(std::string("timed out: ") + what);
    if (i < 50) ::sched_yield();
    else ::usleep(i < 200 ? 50 : 1000);
  }
}

Result<std::vector<CgroupMount>> ReadCgroupMounts() {
  PDK_ASSIGN_OR_RETURN(std::string mountinfo, ReadFile("/proc/self/mountinfo"));
  std::vector<CgroupMount> mounts;
  std::istringstream in(mountinfo);
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    std::istringstream fields(line);
    std::string f, mount_point;
    for (int i = 0; i < 5 && fields >> f; ++i)
      if (i == 4) mount_point = f;
    while (fields >> f && f != "-") {}
    CgroupMount m;
    std::string source;
    fields >> m.fstype >> source >> m.super_options;
    if (m.fstype != "cgroup" && m.fstype != "cgroup2") continue;
    m.mount_point = mount_point;
    mounts.push_back(std::move(m));
  }
  return mounts;
}

Result<std::unique_ptr<CgroupDriver>> CgroupDriver::Detect(const std::string& parent) {
  PDK_ASSIGN_OR_RETURN(std::vector<CgroupMount> mounts, ReadCgroupMounts());
  std::string v2_mount;
  bool v1_memory = false;
  for (const auto& m : mounts) {
    if (m.fstype == "cgroup2" && v2_mount.empty()) v2_mount = m.mount_point;
    if (m.fstype == "cgroup" && ("," + m.super_options + ",").find(",memory,") != std::string::npos)
      v1_memory = true;
  }
  if (v1_memory) return NewCgroupV1Driver(parent);
  if (!v2_mount.empty()) return NewCgroupV2Driver(v2_mount, parent);
  return Unimplemented("no cgroup hierarchy with the memory controller is mounted");
}

Result<std::unique_ptr<CgroupDriver>> CgroupDriver::V2At(const std::string& mount,
                                                         const std::string& parent) {
  return NewCgroupV2Driver(mount, parent);
}

}  // namespace paddock::kernel
