// Firewall: Paddock's one nftables table (inet family, through libnftables).
//
//   input       sandboxes reach the host only for replies and ping, unless
//               their address is in @host_access
//   forward     never sandbox to sandbox; nothing unasked-for from outside
//               to a sandbox; egress by @egress, a verdict map from a
//               sandbox's address to the chain of its policy, then
//               public_only: DNS to the resolvers and the operator's
//               private_allowed, no other private, link-local, loopback,
//               shared (CGNAT) or multicast address; the rest accepted
//   postrouting masquerade from the pool to anywhere but the bridge
//
// What a sandbox sends is judged on every packet (only replies to
// connections made towards it skip the policy), so a narrower policy cuts
// the connections already open that it no longer allows.
//
// A sandbox with the default policy (all egress allowed, no host access)
// has no element and no chain, so taking a network slot needs no nft call.
// Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "net/address.h"
#include "net/policy.h"

struct nft_ctx;

namespace paddock::net {

struct FirewallConfig {
  std::string table = "paddock";
  std::string bridge = "pdk0";
  Cidr pool;
  std::vector<Ipv4> resolvers;  // DNS to these is let through (by an allow list too)
  std::vector<Cidr> private_allowed;  // private ranges the operator opened to every sandbox
  // Connections a sandbox may have open at once through the host (its
  // entries in the host's conntrack table, which all sandboxes and the host
  // share); a new one past this is refused. 0: no cap.
  uint32_t max_connections = 0;
};

class Firewall {
 public:
  static Result<std::unique_ptr<Firewall>> Open(FirewallConfig config);
  ~Firewall();

  // Replaces the table, in one transaction, with one holding `policies`
  // (by sandbox address) and nothing else.
  Status Rebuild(const std::map<Ipv4, NetworkPolicy>& policies);
  // Sets the policy of the sandbox at `address` (atomically).
  Status Apply(Ipv4 address, const NetworkPolicy& policy);
  // Forgets `address`: back to the default, for the next holder.
  Status Forget(Ipv4 address) { return Apply(address, NetworkPolicy{}); }
  // Deletes the table (when no sandbox has an address any more).
  Status Remove();

 private:
  explicit Firewall(FirewallConfig config, nft_ctx* ctx) : config_(std::move(config)), ctx_(ctx) {}
  Status Run(const std::string& commands);  // requires mu_
  std::string TableText() const;
  // Commands that take `address` from `has_chain_`'s state to `policy`.
  std::string ApplyCommands(Ipv4 address, const NetworkPolicy& policy) const;

  const FirewallConfig config_;
  std::mutex mu_;          // guards ctx_ and the state below
  nft_ctx* ctx_;
  std::map<Ipv4, NetworkPolicy> applied_;  // non-default policies in the table
};

}  // namespace paddock::net
