// cgroups for sandboxes, v1 and v2 behind one interface. Every sandbox gets
// one cgroup named after it under a `paddock` parent in each hierarchy used.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "kernel/device_filter.h"

namespace paddock::kernel {

struct CgroupLimits {
  int64_t memory_bytes = 0;    // 0: unlimited
  int64_t cpu_millicores = 0;  // 0: unlimited; 1000 = one full core
  int64_t pids = 0;            // 0: unlimited
  bool any() const { return memory_bytes || cpu_millicores || pids; }
  bool operator==(const CgroupLimits&) const = default;
};

struct CgroupStats {
  uint64_t cpu_usage_ns = 0;
  uint64_t memory_bytes = 0;
  uint64_t oom_kills = 0;
  uint64_t pids = 0;
};

// One sandbox's cgroup. Removes itself on destruction (killing what is left
// in it) unless Keep() was called, so failed creations leave nothing behind.
class Cgroup {
 public:
  virtual ~Cgroup() = default;
  virtual const std::string& name() const = 0;
  virtual Status AddProcess(pid_t pid) = 0;
  // Sets every limit; a 0 in `limits` means unlimited. Writes only those
  // that differ from what this object set last (or made the cgroup with):
  // a CPU quota write walks every cpu cgroup on the host, so on a host of
  // thousands of sandboxes each costs more, and a warm shell's cgroup is
  // made with the default limits that a create then mostly keeps.
  virtual Status SetLimits(const CgroupLimits& limits) = 0;
  // Gives the cgroup a new name under the same parent, its tasks staying in
  // it (a warm sandbox shell taking its sandbox's id). v2 has no rename: a
  // new cgroup is made and the tasks move there.
  virtual Status Rename(const std::string& new_name) = 0;
  // Freezes every task and returns once the kernel reports them frozen.
  virtual Status Freeze() = 0;
  virtual Status Thaw() = 0;
  virtual Result<bool> IsFrozen() = 0;
  virtual Result<std::vector<pid_t>> Pids() = 0;
  virtual Result<CgroupStats> Stats() = 0;
  // SIGKILLs every task (thawing if needed) and removes the cgroup.
  virtual Status Destroy() = 0;
  // Ownership passes to the caller's records: no removal on destruction.
  void Keep() { keep_ = true; }

 protected:
  bool keep_ = false;
};

class CgroupDriver {
 public:
  virtual ~CgroupDriver() = default;
  // Looks at /proc/self/mountinfo: v1 if the memory controller is on a v1
  // hierarchy, else v2 on the cgroup2 mount. `parent` names the folder that
  // holds every sandbox cgroup.
  static Result<std::unique_ptr<CgroupDriver>> Detect(const std::string& parent = "paddock");
  // A v2 driver over an explicit cgroup2 mount (tests use the hybrid tree).
  static Result<std::unique_ptr<CgroupDriver>> V2At(const std::string& mount,
                                                    const std::string& parent);

  virtual const char* version() const = 0;  // "v1" or "v2"
  // Creates the sandbox cgroup `name` with `limits`; fails if it exists.
  // Where device_filter() says how, its tasks may open only the standard
  // nodes (StandardDevices) and `devices`.
  virtual Result<std::unique_ptr<Cgroup>> Create(const std::string& name, const CgroupLimits& limits,
                                                 const std::vector<DeviceAccess>& devices) = 0;
  // Opens an existing sandbox cgroup (adoption after a restart, or removal of
  // one left half-made by a crash); kept by default.
  virtual Result<std::unique_ptr<Cgroup>> Open(const std::string& name) = 0;
  // Names of all sandbox cgroups present (to sweep those with no record).
  virtual std::vector<std::string> List() = 0;
  // Removes the parent folders if no sandbox cgroup is left in them.
  virtual void RemoveParentIfEmpty() = 0;
  // Which limits this host can enforce (v2 without controllers cannot).
  virtual bool SupportsLimits() const = 0;
  // How device access is limited ("devices controller", "BPF device
  // program"); empty where it cannot be (no v1 devices hierarchy, or a
  // kernel that refused the program: device_filter_error() says why).
  virtual std::string device_filter() const = 0;
  virtual std::string device_filter_error() const { return ""; }
};

// Internal: the cgroup mounts of this host, and the v1 and v2 implementations.
struct CgroupMount {
  std::string fstype;         // "cgroup" (v1) or "cgroup2"
  std::string mount_point;
  std::string super_options;  // v1: the controllers, e.g. "rw,memory"
};
Result<std::vector<CgroupMount>> ReadCgroupMounts();
Result<std::unique_ptr<CgroupDriver>> NewCgroupV1Driver(const std::string& parent);
Result<std::unique_ptr<CgroupDriver>> NewCgroupV2Driver(const std::string& mount,
                                                        const std::string& parent);
// Waits (briefly spinning, then sleeping) until `done()` or `timeout_ms`.
Status WaitUntil(const std::function<Result<bool>()>& done, int timeout_ms, const char* what);

}  // namespace paddock::kernel
