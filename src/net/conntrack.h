// Conntrack: the host's table of tracked connections (ctnetlink, through
// libnetfilter_conntrack).
#pragma once

#include "base/status.h"
#include "net/address.h"

namespace paddock::net {

// Deletes every tracked IPv4 connection that `address` takes part in, in
// either direction (its NAT mappings included), so that nothing of one
// sandbox's traffic reaches the next holder of its address. Costs a dump of
// the IPv4 table (the kernel cannot filter it by address in this library
// version); returns how many entries it deleted.
Result<int> ForgetConnections(Ipv4 address);

}  // namespace paddock::net
