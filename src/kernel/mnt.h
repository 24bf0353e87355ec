// Mounts: the sandbox's root filesystem.
//
// Host side (root in the host's user namespace): build detached mounts with
// the new mount API — the overlay root over the template's read-only layers,
// and read-only binds such as the host's /usr — idmapped to the sandbox's id
// range so that files owned by root on disk are owned by root inside.
// Sandbox side (root in the sandbox's user namespace): move them into place,
// add /proc, /dev, /sys, pivot_root, and mask what must stay hidden.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "base/status.h"

namespace paddock::kernel::mnt {

// The overlay root: `lower_dirs` top-most first. Lower layers are idmapped
// through `userns_fd` where the kernel allows it (6.8+ `lowerdir+`); older
// kernels get plain lower layers, whose files then show as nobody inside.
Result<UniqueFd> MakeOverlayRoot(const std::vector<std::string>& lower_dirs,
                                 const std::string& upper_dir, const std::string& work_dir,
                                 int userns_fd);

// A detached, read-only overlay of `lower_dirs` alone (top-most first, no
// upper layer): their merged view, readable through /proc/self/fd/<fd>.
Result<UniqueFd> MakeReadOnlyOverlay(const std::vector<std::string>& lower_dirs);

// A nosuid, nodev recursive bind of `source` (read-only unless asked
// otherwise), idmapped where possible.
Result<UniqueFd> MakeBind(const std::string& source, int userns_fd, bool read_only = true);

// A detached, read-only sysfs of the calling thread's network namespace
// (its /sys/class/net lists that namespace's devices only). The host makes
// it for a sandbox in a namespace the host owns, where the sandbox itself
// may not mount one.
Result<UniqueFd> MakeSysfs();

// A detached procfs of its own. /proc/sys shows the calling thread's network
// namespace, but in the host's /proc each of its folders is cached once per
// namespace under one name, so that a lookup there compares its way past
// every other namespace's (thousands on a host full of sandboxes); a new
// instance holds only the caller's.
Result<UniqueFd> MakeProc();

// Everything the sandbox side needs, as paths computed up front: after clone
// the child must not allocate.
struct RootfsPlan {
  std::string rootfs;                      // host path where the overlay goes
  std::vector<std::string> bind_targets;   // host paths for the binds, in fd order
  std::vector<char> bind_is_file;          // per bind: its source is a file (the target is made a file)
  std::vector<std::string> bind_parents;   // folders to make first (parents before children)
  std::string proc, dev, dev_pts, dev_shm, sys, tmp;
  bool sysfs_fd = false;  // the last fd is a sysfs the host made (see MakeSysfs)
  std::vector<std::pair<std::string, std::string>> dev_nodes;     // host node -> rootfs path
  std::vector<std::string> dev_dirs;       // folders under /dev the nodes need (parents first)
  std::vector<std::pair<std::string, std::string>> dev_symlinks;  // target -> rootfs path
  // After pivot_root, paths as the sandbox sees them:
  std::vector<std::string> masked_files;   // /dev/null bound over them
  std::vector<std::string> masked_dirs;    // empty read-only tmpfs over them
  std::vector<std::string> readonly_dirs;  // bound read-only onto themselves
};

// The plan for a sandbox whose root is mounted at `rootfs`, with read-only
// binds at `bind_targets` (paths inside the sandbox, e.g. "/usr").
// `devices`: extra host nodes {host, path under /dev inside}.
RootfsPlan PlanRootfs(const std::string& rootfs, const std::vector<std::string>& bind_targets,
                      const std::vector<std::pair<std::string, std::string>>& devices = {});

// Sandbox side, async-signal-safe. `fds[0]` is the overlay root, `fds[1..]`
// the binds, then the sysfs if the plan says so. Returns nullptr, or the
// name of the failed step with errno set.
const char* AssembleRootfs(const RootfsPlan& plan, const int* fds, size_t nfds);

}  // namespace paddock::kernel::mnt
