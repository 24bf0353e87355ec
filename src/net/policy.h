// A sandbox's network settings: egress policy, host access, traffic token.
// Stored as JSON in the sandbox's record and given as JSON by the APIs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"
#include "net/address.h"

namespace paddock::net {

// Traffic to `cidr`, on ports [port_min, port_max] (0, 0: any) of
// `protocol` ("tcp", "udp" or empty: both, and any protocol without ports).
struct EgressRule {
  Cidr cidr;
  uint16_t port_min = 0, port_max = 0;
  std::string protocol;
  // "1.2.3.0/24", or {"cidr": "1.2.3.0/24", "ports": "80-90" | 443, "protocol": "tcp"}.
  static Result<EgressRule> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// Egress: what `allow` names is let through, then what `deny` names is
// refused, then `allow_egress` decides the rest: allowed means the public
// internet and DNS to the sandbox's resolvers, not private, link-local or
// other non-public ranges (an `allow` rule, or paddockd's
// --egress-allow-private, opens one). Allowed (the default) is allow_egress
// with no rules; denied is !allow_egress with none; an allow list is
// !allow_egress with `allow` rules. Refusals fail fast (TCP reset or ICMP
// admin-prohibited), so a client is told at once.
struct NetworkPolicy {
  bool allow_egress = true;
  std::vector<EgressRule> allow, deny;
  // Whether it may open connections to the host (its gateway address and the
  // host's other addresses, paddockd included). Off unless asked at create.
  bool host_access = false;
  bool default_egress() const { return allow_egress && allow.empty() && deny.empty(); }
};

struct NetworkSettings {
  bool enabled = true;        // false: loopback only, no slot
  NetworkPolicy policy;
  std::string traffic_token;  // non-empty: exposed ports want it (header e2b-traffic-access-token)

  // Reads the fields `j` has over `*this` ("egress": "allow" | "deny",
  // "allow", "deny", "host_access", "enabled", "public_traffic": false makes
  // a token). Validates everything before changing anything.
  Status Merge(const nlohmann::json& j);
  nlohmann::json ToJson(bool with_token) const;
  static Result<NetworkSettings> FromStored(const std::string& text);
};

}  // namespace paddock::net
