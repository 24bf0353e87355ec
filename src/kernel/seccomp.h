// The default seccomp profile, in the spirit of Docker's: deny what a sandbox
// never needs and what has a history of kernel escapes.
#pragma once

#include <linux/filter.h>

#include <vector>

#include "base/status.h"

namespace paddock::kernel::seccomp {

struct Program {
  std::vector<struct sock_filter> code;
  struct sock_fprog fprog() const {
    return {static_cast<unsigned short>(code.size()), const_cast<sock_filter*>(code.data())};
  }
};

// The default profile compiled to BPF with libseccomp (once; thread-safe).
// Denied calls fail with EPERM: kexec, kernel modules, bpf, perf_event_open,
// keyctl and friends, userfaultfd, mount and the new mount API, swap, reboot,
// clock setting, acct, quotactl, open_by_handle_at, setns, kcmp, and
// unshare/clone of a new user namespace; clone3 gets ENOSYS so libc falls
// back to clone, whose flags the filter can see.
Result<const Program*> DefaultProfile();

// Child side, async-signal-safe: installs `prog` (needs no_new_privs). 0 or errno.
int Apply(const Program& prog);

}  // namespace paddock::kernel::seccomp
