// The default seccomp profile: an allow list modelled on Docker's default
// profile and its argument rules, everything else refused.
#pragma once

#include "base/status.h"

namespace paddock::kernel::seccomp {

// The default profile, compiled to BPF with libseccomp once (thread-safe)
// and kept in a sealed memfd held for the process's life, for paddock-init
// to read and install when it is launched (init/launch.cc): the program as
// an array of struct sock_filter.
// Syscalls not on its list fail with EPERM (io_uring, bpf, perf_event_open,
// keyctl, userfaultfd, kcmp, pidfd_getfd, mounts, setns, unshare, kexec,
// modules, clock setting, ...); those newer than anything on it with ENOSYS,
// as on an older kernel. clone may not make namespaces; clone3 gets ENOSYS
// (libc falls back to clone, whose flags the filter can see); personality
// takes Docker's values; socket takes AF_UNIX, AF_NETLINK, and AF_INET/INET6
// stream, datagram and seqpacket sockets (no raw, packet or vsock ones).
Result<int> DefaultProfileFd();

}  // namespace paddock::kernel::seccomp
