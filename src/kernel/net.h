// Network namespace set-up done from inside the sandbox (loopback only for
// now; bridge, veth and NAT come with the networking work).
#pragma once

namespace paddock::kernel::net {

// Child side, async-signal-safe: brings `lo` up. Returns 0 or an errno.
int BringUpLoopback();

}  // namespace paddock::kernel::net
