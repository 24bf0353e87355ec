#include "kernel/mnt.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "base/fs.h"

namespace paddock::kernel::mnt {

namespace {

Status SetAttr(int fd, uint64_t attrs, int userns_fd, bool recursive) {
  struct mount_attr attr = {};
  attr.attr_set = attrs;
  if (userns_fd >= 0) {
    attr.attr_set |= MOUNT_ATTR_IDMAP;
    attr.userns_fd = static_cast<uint64_t>(userns_fd);
  }
  unsigned flags = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
  if (::mount_setattr(fd, "", flags, &attr, sizeof attr) != 0) return Status::Errno("mount_setattr");
  return Status::Ok();
}

// A detached clone of `source`, idmapped if the filesystem allows it.
Result<UniqueFd> CloneTree(const std::string& source, uint64_t attrs, int userns_fd,
                           bool recursive) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
  UniqueFd fd(::open_tree(AT_FDCWD, source.c_str(), flags));
  if (!fd) return Status::Errno("open_tree " + source);
  if (!SetAttr(fd.get(), attrs, userns_fd, recursive).ok()) {
    // Not idmappable (filesystem or kernel): fall back to a plain clone.
    PDK_TRY(SetAttr(fd.get(), attrs, -1, recursive).Annotate(source));
  }
  return fd;
}

}  // namespace

Result<UniqueFd> MakeOverlayRoot(const std::vector<std::string>& lower_dirs,
                                 const std::string& upper_dir, const std::string& work_dir,
                                 int userns_fd) {
  UniqueFd fs(::fsopen("overlay", FSOPEN_CLOEXEC));
  if (!fs) return Status::Errno("fsopen overlay");
  bool plain = false;
  std::vector<UniqueFd> layers;
  for (const auto& dir : lower_dirs) {
    PDK_ASSIGN_OR_RETURN(UniqueFd layer, CloneTree(dir, MOUNT_ATTR_RDONLY, userns_fd, false));
    if (::fsconfig(fs.get(), FSCONFIG_SET_FD, "lowerdir+", nullptr, layer.get()) != 0) {
      if (errno != EINVAL) return Status::Errno("overlay lowerdir+ " + dir);
      plain = true;  // kernel before 6.8
      break;
    }
    layers.push_back(std::move(layer));
  }
  if (plain) {
    std::string joined;
    for (const auto& dir : lower_dirs) joined += (joined.empty() ? "" : ":") + dir;
    if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, "lowerdir", joined.c_str(), 0) != 0)
      return Status::Errno("overlay lowerdir " + joined);
  }
  if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, "upperdir", upper_dir.c_str(), 0) != 0)
    return Status::Errno("overlay upperdir " + upper_dir);
  if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, "workdir", work_dir.c_str(), 0) != 0)
    return Status::Errno("overlay workdir " + work_dir);
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    return Status::Errno("create overlay over " + upper_dir);
  // nosuid costs nothing that no_new_privs had not already taken; nodev
  // keeps any device node in the writable layer closed.
  UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
  if (!mnt) return Status::Errno("fsmount overlay");
  return mnt;
}

Result<UniqueFd> MakeReadOnlyOverlay(const std::vector<std::string>& lower_dirs) {
  UniqueFd fs(::fsopen("overlay", FSOPEN_CLOEXEC));
  if (!fs) return Status::Errno("fsopen overlay");
  for (const auto& dir : lower_dirs)
    if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, "lowerdir+", dir.c_str(), 0) != 0)
      return Status::Errno("overlay lowerdir+ " + dir);
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    return Status::Errno("create a read-only overlay of " + std::to_string(lower_dirs.size()) + " layers");
  UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID));
  if (!mnt) return Status::Errno("fsmount read-only overlay");
  return mnt;
}

Result<UniqueFd> MakeBind(const std::string& source, int userns_fd, bool read_only) {
  return CloneTree(source, (read_only ? MOUNT_ATTR_RDONLY : 0) | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, userns_fd,
                   true);
}

Result<UniqueFd> MakeSysfs() {
  UniqueFd fs(::fsopen("sysfs", FSOPEN_CLOEXEC));
  if (!fs) return Status::Errno("fsopen sysfs");
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    return Status::Errno("create sysfs");
  UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC,
                         MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  if (!mnt) return Status::Errno("fsmount sysfs");
  return mnt;
}

Result<UniqueFd> MakeProc() {
  UniqueFd fs(::fsopen("proc", FSOPEN_CLOEXEC));
  if (!fs) return Status::Errno("fsopen proc");
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    return Status::Errno("create proc");
  UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  if (!mnt) return Status::Errno("fsmount proc");
  return mnt;
}

RootfsPlan PlanRootfs(const std::string& rootfs, const std::vector<std::string>& bind_targets,
                      const std::vector<std::pair<std::string, std::string>>& devices) {
  RootfsPlan p;
  p.rootfs = rootfs;
  for (const auto& t : bind_targets) {
    p.bind_targets.push_back(JoinPath(rootfs, t));
    for (size_t slash = t.find('/', 1); slash != std::string::npos; slash = t.find('/', slash + 1))
      p.bind_parents.push_back(JoinPath(rootfs, t.substr(0, slash)));
  }
  p.proc = rootfs + "/proc";
  p.dev = rootfs + "/dev";
  p.dev_pts = rootfs + "/dev/pts";
  p.dev_shm = rootfs + "/dev/shm";
  p.sys = rootfs + "/sys";
  p.tmp = rootfs + "/tmp";
  for (const char* node : {"null", "zero", "full", "random", "urandom", "tty"})
    p.dev_nodes.emplace_back(std::string("/dev/") + node, p.dev + "/" + node);
  for (const auto& [host, inside] : devices) {  // inside: "/dev/..."
    for (size_t slash = inside.find('/', 5); slash != std::string::npos; slash = inside.find('/', slash + 1))
      p.dev_dirs.push_back(rootfs + inside.substr(0, slash));
    p.dev_nodes.emplace_back(host, rootfs + inside);
  }
  p.dev_symlinks = {{"pts/ptmx", p.dev + "/ptmx"},
                    {"/proc/self/fd", p.dev + "/fd"},
                    {"/proc/self/fd/0", p.dev + "/stdin"},
                    {"/proc/self/fd/1", p.dev + "/stdout"},
                    {"/proc/self/fd/2", p.dev + "/stderr"}};
  // Docker's masked paths, and a few more the host's kernel shows.
  p.masked_files = {"/proc/kcore",         "/proc/keys",         "/proc/timer_list",
                    "/proc/timer_stats",   "/proc/sched_debug",  "/proc/latency_stats",
                    "/proc/kallsyms",      "/proc/kmsg",         "/proc/interrupts"};
  p.masked_dirs = {"/proc/acpi",    "/proc/scsi",   "/proc/asound",
                   "/proc/driver",  "/sys/firmware", "/sys/devices/virtual/powercap",
                   "/sys/class/powercap", "/sys/class/thermal", "/sys/devices/virtual/thermal"};
  p.readonly_dirs = {"/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sysrq-trigger"};
  return p;
}

const char* AssembleRootfs(const RootfsPlan& p, const int* fds, size_t nfds) {
  constexpr unsigned long kSafe = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return "make / private";
  if (::move_mount(fds[0], "", AT_FDCWD, p.rootfs.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0)
    return "move overlay root into place";
  for (const auto& parent : p.bind_parents) ::mkdir(parent.c_str(), 0755);
  for (size_t i = 1; i < nfds && i - 1 < p.bind_targets.size(); ++i) {
    const char* target = p.bind_targets[i - 1].c_str();
    if (i - 1 < p.bind_is_file.size() && p.bind_is_file[i - 1]) {
      int fd = ::open(target, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (fd >= 0) ::close(fd);
    } else {
      ::mkdir(target, 0755);
    }
    if (::move_mount(fds[i], "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) != 0)
      return "move a bind into place";
  }
  ::mkdir(p.proc.c_str(), 0555);
  if (::mount("proc", p.proc.c_str(), "proc", kSafe, nullptr) != 0) return "mount /proc";

  ::mkdir(p.dev.c_str(), 0755);
  if (::mount("tmpfs", p.dev.c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k") != 0)
    return "mount /dev";
  for (const auto& dir : p.dev_dirs) ::mkdir(dir.c_str(), 0755);
  for (const auto& [host, path] : p.dev_nodes) {
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) return "create /dev node";
    ::close(fd);
    if (::mount(host.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0) return "bind /dev node";
  }
  ::mkdir(p.dev_pts.c_str(), 0755);
  if (::mount("devpts", p.dev_pts.c_str(), "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620,gid=5") != 0)
    return "mount /dev/pts";
  ::mkdir(p.dev_shm.c_str(), 01777);
  if (::mount("shm", p.dev_shm.c_str(), "tmpfs", kSafe, "mode=1777,size=65536k") != 0)
    return "mount /dev/shm";
  for (const auto& [target, path] : p.dev_symlinks)
    if (::symlink(target.c_str(), path.c_str()) != 0) return "create /dev symlink";

  ::mkdir(p.sys.c_str(), 0555);
  bool host_sys = false;
  size_t sysfs_at = 1 + p.bind_targets.size();
  bool own_sys =
      p.sysfs_fd && sysfs_at < nfds
          ? ::move_mount(fds[sysfs_at], "", AT_FDCWD, p.sys.c_str(), MOVE_MOUNT_F_EMPTY_PATH) == 0
          : ::mount("sysfs", p.sys.c_str(), "sysfs", kSafe | MS_RDONLY, nullptr) == 0;
  if (!own_sys) {
    host_sys = true;
    // A kernel that refused both: a read-only view of the host's, masked below.
    if (::mount("/sys", p.sys.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) return "bind /sys";
    if (::mount(nullptr, p.sys.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | kSafe,
                nullptr) != 0)
      return "remount /sys read-only";
  }
  if (::mkdir(p.tmp.c_str(), 01777) == 0) ::chmod(p.tmp.c_str(), 01777);

  // pivot_root(".", ".") stacks the old root under the new one; detach it.
  if (::chdir(p.rootfs.c_str()) != 0) return "chdir to new root";
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return "pivot_root";
  if (::umount2(".", MNT_DETACH) != 0) return "detach old root";
  if (::chdir("/") != 0) return "chdir /";

  for (const auto& path : p.masked_files)
    if (::mount("/dev/null", path.c_str(), nullptr, MS_BIND, nullptr) != 0 && errno != ENOENT)
      return "mask /proc file";
  for (const auto& path : p.masked_dirs)
    if (::mount("tmpfs", path.c_str(), "tmpfs", MS_RDONLY | kSafe, "size=0") != 0 &&
        errno != ENOENT)
      return "mask directory";
  for (const auto& path : p.readonly_dirs) {
    if (::mount(path.c_str(), path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      if (errno == ENOENT) continue;
      return "bind read-only path";
    }
    if (::mount(nullptr, path.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | kSafe,
                nullptr) != 0)
      return "remount path read-only";
  }
  // The host's sysfs shows the host's cgroup tree and every network device
  // (other sandboxes' veths among them): hidden.
  if (host_sys)
    for (const char* path : {"/sys/fs/cgroup", "/sys/class/net", "/sys/devices/virtual/net",
                             "/sys/devices/virtual/block", "/sys/class/block", "/sys/block"})
      if (::mount("tmpfs", path, "tmpfs", MS_RDONLY | kSafe, "size=0") != 0 && errno != ENOENT)
        return "mask the host's sysfs";
  errno = 0;
  return nullptr;
}

}  // namespace paddock::kernel::mnt
