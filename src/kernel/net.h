// Network namespaces: made and entered by the daemon's threads, and the
// loopback set-up a sandbox with a namespace of its own does for itself.
//
// A namespace made here is held by its fd alone: nothing is mounted, so when
// the last fd and the last process in it are gone the kernel frees it with
// its devices, whichever way paddockd ended.
#pragma once

#include <sys/types.h>

#include <functional>

#include "base/fd.h"
#include "base/status.h"

namespace paddock::kernel::net {

// Child side, async-signal-safe: brings `lo` up. Returns 0 or an errno.
int BringUpLoopback();

// A new, empty network namespace (loopback down), owned by the caller's user
// namespace. The calling thread is back in its own namespace on return.
Result<UniqueFd> NewNetns();

// The network namespace of process `pid`.
Result<UniqueFd> OpenNetnsOf(pid_t pid);

// Runs `fn` with the calling thread in namespace `netns_fd`, then moves it
// back; sockets and processes (clone) made by `fn` stay in that namespace.
// Aborts if the thread cannot return: a daemon thread left in a sandbox's
// namespace would be worse.
Status InNetns(int netns_fd, const std::function<Status()>& fn);

}  // namespace paddock::kernel::net
