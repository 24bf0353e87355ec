// Capabilities: a bounded default set, as Docker's default, for root inside.
#pragma once

#include <cstdint>

namespace paddock::kernel::caps {

// CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE
// NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP, as a bit mask.
uint64_t DefaultSet();

// Child side, async-signal-safe: drops every capability outside `keep` from
// the bounding set and sets effective, permitted and inheritable to `keep`,
// ambient cleared. Returns 0 or an errno.
int Restrict(uint64_t keep);

}  // namespace paddock::kernel::caps
