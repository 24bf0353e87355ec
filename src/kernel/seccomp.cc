#include "kernel/seccomp.h"

#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <mutex>

#include "base/fd.h"

namespace paddock::kernel::seccomp {

namespace {

constexpr const char* kDenied[] = {
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "create_module", "get_kernel_syms", "query_module", "bpf", "perf_event_open",
    "keyctl", "add_key", "request_key", "userfaultfd", "mount", "umount", "umount2",
    "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
    "mount_setattr", "swapon", "swapoff", "reboot", "acct", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "stime", "quotactl", "quotactl_fd",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "nfsservctl", "uselib",
    "_sysctl", "iopl", "ioperm", "syslog", "vhangup", "setns", "fanotify_init",
    "kcmp",
};

Result<Program> Build() {
  scmp_filter_ctx ctx = ::seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return Internal("seccomp_init failed");
  auto fail = [&](const char* what, int rc) {
    ::seccomp_release(ctx);
    return Status::Errno(std::string("seccomp ") + what, -rc);
  };
  for (const char* name : kDenied) {
    int nr = ::seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0); rc < 0)
      return fail(name, rc);
  }
  // A new user namespace would hand back every capability inside it.
  for (const char* name : {"unshare", "clone"}) {
    int nr = ::seccomp_syscall_resolve_name(name);
    if (int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
                                    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
        rc < 0)
      return fail(name, rc);
  }
  // clone3 passes flags in memory seccomp cannot read: make callers fall back to clone.
  if (int nr = ::seccomp_syscall_resolve_name("clone3"); nr != __NR_SCMP_ERROR)
    if (int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0); rc < 0)
      return fail("clone3", rc);
  UniqueFd mem(::memfd_create("pdk-seccomp", MFD_CLOEXEC));
  if (!mem) {
    ::seccomp_release(ctx);
    return Status::Errno("memfd_create");
  }
  int rc = ::seccomp_export_bpf(ctx, mem.get());
  ::seccomp_release(ctx);
  if (rc < 0) return Status::Errno("seccomp_export_bpf", -rc);
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  Program prog;
  prog.code.resize(static_cast<size_t>(size) / sizeof(struct sock_filter));
  if (::pread(mem.get(), prog.code.data(), static_cast<size_t>(size), 0) != size)
    return Status::Errno("read seccomp program");
  return prog;
}

}  // namespace

Result<const Program*> DefaultProfile() {
  static std::once_flag once;
  static Result<Program>* built = nullptr;
  std::call_once(once, [] { built = new Result<Program>(Build()); });
  if (!built->ok()) return built->status();
  return &built->value();
}

int Apply(const Program& prog) {
  struct sock_fprog fprog = prog.fprog();
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) != 0) return errno;
  return 0;
}

}  // namespace paddock::kernel::seccomp
