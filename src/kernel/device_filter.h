// Which device nodes a sandbox's processes may open, enforced by the
// kernel whatever nodes they find: on cgroup v1 by the `devices`
// controller's allow list, on v2 by a BPF_PROG_TYPE_CGROUP_DEVICE program
// attached to the sandbox's cgroup. Both allow read and write of the listed
// nodes and nothing else; mknod is never allowed (a user namespace refuses
// it anyway, bar overlayfs whiteouts, which the kernel lets through).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/status.h"

namespace paddock::kernel {

struct DeviceAccess {
  char type = 'c';     // 'c' character, 'b' block
  uint32_t major = 0;
  int64_t minor = -1;  // -1: every minor of `major`
  bool read = true, write = true;
  bool operator==(const DeviceAccess&) const = default;
};

// The nodes every sandbox's /dev holds: null, zero, full, random, urandom,
// tty, ptmx and the pseudo-terminals.
const std::vector<DeviceAccess>& StandardDevices();

// The access a host node gives ("rw" and the like from a CDI spec's
// permissions; empty: rw); kInvalidArgument if `path` is no device node.
Result<DeviceAccess> DeviceAccessOf(const std::string& path, const std::string& permissions = "");

// "c 1:3 rw": a line for v1's devices.allow.
std::string V1DeviceRule(const DeviceAccess& d);

// A loaded program allowing exactly `allowed`; the kernel's verifier log
// in the error if it refuses it.
Result<UniqueFd> LoadDeviceProgram(const std::vector<DeviceAccess>& allowed);
// Attaches `program` to the cgroup2 folder `dir` (replacing one attached before).
Status AttachDeviceProgram(const std::string& dir, int program);

}  // namespace paddock::kernel
