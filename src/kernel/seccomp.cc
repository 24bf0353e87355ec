#include "kernel/seccomp.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <vector>

#include "base/fd.h"

namespace paddock::kernel::seccomp {

namespace {

// Allowed whatever their arguments: Docker's default profile (moby
// profiles/seccomp/default.json) for a process without CAP_SYS_ADMIN,
// CAP_SYS_PTRACE, CAP_SYS_TIME, CAP_SYS_NICE or CAP_SYSLOG, less
// io_uring, plus get_mempolicy (read-only; NUMA-aware libraries probe it).
// Names this libseccomp does not know, or that this architecture lacks
// (the 32-bit ones), are skipped.
constexpr const char* kAllowed[] = {
    "accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "chown32", "chroot", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
    "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv",
    "futex_wake", "futimesat", "get_mempolicy", "get_robust_list", "get_thread_area", "getcpu",
    "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid",
    "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp",
    "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getrlimit", "getrusage", "getsid", "getsockname", "getsockopt", "gettid",
    "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64", "io_setup", "io_submit", "ioctl", "ioprio_get",
    "ioprio_set", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
    "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64",
    "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore",
    "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2",
    "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
    "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
    "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open",
    "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll",
    "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "process_mrelease", "process_vm_readv", "process_vm_writev", "pselect6", "pselect6_time64",
    "ptrace", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat",
    "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages",
    "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_getscheduler", "sched_rr_get_interval",
    "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam",
    "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop",
    "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg",
    "sendto", "set_robust_list", "set_thread_area", "set_tid_address", "setfsgid", "setfsgid32",
    "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "setsid", "setsockopt", "setuid",
    "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
    "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketpair", "splice", "stat", "stat64",
    "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
    "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
    "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
    "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat",
    "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid",
    "waitpid", "write", "writev",
};

// Named here only to say why they are refused (the default action refuses
// them anyway); they count towards the newest syscall this list knows.
constexpr const char* kRefused[] = {
    // Kernel attack surface with a history of escapes.
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "perf_event_open",
    "userfaultfd", "keyctl", "add_key", "request_key",
    // Reaching into another process beyond what ptrace's own checks allow.
    "kcmp", "pidfd_getfd", "process_madvise",
    // The host's: kernel, modules, time, swap, accounting, quotas, console.
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "swapon", "swapoff", "acct",
    "quotactl", "quotactl_fd", "syslog", "iopl", "ioperm", "vhangup", "sethostname",
    "setdomainname", "mbind", "set_mempolicy", "set_mempolicy_home_node", "migrate_pages",
    "move_pages", "lookup_dcookie", "nfsservctl", "uselib", "_sysctl", "sysfs", "ustat",
    // Mounts and namespaces (CAP_SYS_ADMIN's, which sandboxes lack).
    "mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr", "setns", "unshare", "open_by_handle_at",
    "name_to_handle_at", "fanotify_init", "modify_ldt",
};

// clone flags that make namespaces (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|
// NEWUSER|NEWPID|NEWNET): Docker refuses them without CAP_SYS_ADMIN.
constexpr uint64_t kNamespaceFlags = 0x7E020000;

// personality() values Docker allows: Linux, UNAME26, READ_IMPLIES_EXEC
// variants of them, and the query.
constexpr uint64_t kPersonalities[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

Result<std::vector<struct sock_filter>> Build() {
  scmp_filter_ctx ctx = ::seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (!ctx) return Internal("seccomp_init failed");
  // Syscalls as a binary tree, not a list. The kernel runs the filter on
  // every syscall number when it is loaded, to cache which ones it always
  // allows, and that runs in every sandbox's set-up: 0.31 ms for the list,
  // 0.09 ms for the tree. Without it (an older libseccomp) the list works.
  (void)::seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  auto fail = [&](const char* what, int rc) {
    ::seccomp_release(ctx);
    return Status::Errno(std::string("seccomp ") + what, -rc);
  };
  int newest = 0;  // the highest syscall number the lists name
  auto resolve = [&](const char* name) {
    int nr = ::seccomp_syscall_resolve_name(name);
    if (nr != __NR_SCMP_ERROR && nr >= 0) newest = std::max(newest, nr);
    return nr;
  };
  for (const char* name : kAllowed) {
    int nr = resolve(name);
    if (nr == __NR_SCMP_ERROR) continue;
    if (int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0); rc < 0) return fail(name, rc);
  }
  for (const char* name : kRefused) resolve(name);

  // clone without namespace flags; clone3 passes its flags in memory the
  // filter cannot read, so it gets ENOSYS and libc falls back to clone.
  int clone = resolve("clone");
  if (int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, clone, 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, kNamespaceFlags, 0));
      rc < 0)
    return fail("clone", rc);
  if (int nr = resolve("clone3"); nr != __NR_SCMP_ERROR)
    if (int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0); rc < 0)
      return fail("clone3", rc);

  int personality = resolve("personality");
  for (uint64_t value : kPersonalities)
    if (int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, personality, 1,
                                    SCMP_A0(SCMP_CMP_EQ, value));
        rc < 0)
      return fail("personality", rc);

  // Sockets: local, netlink, and TCP/UDP (ICMP too, as datagram sockets,
  // where the sandbox's ping_group_range grants them). No raw IP or packet
  // sockets, which could forge traffic on the sandboxes' shared bridge, and
  // no AF_VSOCK, a door to the host.
  int socket = resolve("socket");
  for (int family : {AF_UNIX, AF_NETLINK})
    if (int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, socket, 1,
                                    SCMP_A0(SCMP_CMP_EQ, static_cast<uint64_t>(family)));
        rc < 0)
      return fail("socket", rc);
  for (int family : {AF_INET, AF_INET6})
    for (int type : {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET})
      if (int rc = ::seccomp_rule_add(
              ctx, SCMP_ACT_ALLOW, socket, 2, SCMP_A0(SCMP_CMP_EQ, static_cast<uint64_t>(family)),
              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, static_cast<uint64_t>(type)));
          rc < 0)
        return fail("socket", rc);

  UniqueFd mem(::memfd_create("pdk-seccomp", MFD_CLOEXEC));
  if (!mem) {
    ::seccomp_release(ctx);
    return Status::Errno("memfd_create");
  }
  uint32_t arch = ::seccomp_arch_native();
  int rc = ::seccomp_export_bpf(ctx, mem.get());
  ::seccomp_release(ctx);
  if (rc < 0) return Status::Errno("seccomp_export_bpf", -rc);
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  std::vector<struct sock_filter> body(static_cast<size_t>(size) / sizeof(struct sock_filter));
  if (::pread(mem.get(), body.data(), static_cast<size_t>(size), 0) != size)
    return Status::Errno("read seccomp program");

  // Syscalls newer than anything the lists name get ENOSYS, not EPERM, so
  // that libc falls back to an older call as it would on an older kernel.
  // Jumps are relative: libseccomp's program runs unchanged after this.
  std::vector<struct sock_filter> code = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, static_cast<uint32_t>(newest), 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
  };
  code.insert(code.end(), body.begin(), body.end());
  return code;
}

}  // namespace

Result<int> DefaultProfileFd() {
  static std::once_flag once;
  static Result<int>* made = nullptr;
  std::call_once(once, [] {
    made = new Result<int>([]() -> Result<int> {
      PDK_ASSIGN_OR_RETURN(std::vector<struct sock_filter> code, Build());
      UniqueFd fd(::memfd_create("paddock-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING));
      if (!fd) return Status::Errno("memfd_create for the seccomp filter");
      size_t bytes = code.size() * sizeof(sock_filter);
      if (::write(fd.get(), code.data(), bytes) != static_cast<ssize_t>(bytes))
        return Status::Errno("write the seccomp filter");
      if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0)
        return Status::Errno("seal the seccomp filter");
      return fd.release();
    }());
  });
  return *made;
}

}  // namespace paddock::kernel::seccomp
