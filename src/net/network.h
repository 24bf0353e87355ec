// Network: the host side of sandbox networking. One bridge, an address pool,
// the firewall table, and network slots: a namespace joined to the bridge by
// a veth pair, with its address, routes and loopback set up.
//
// The namespaces belong to the host's user namespace, not the sandbox's: a
// sandbox can use its network but not change its address, routes or
// firewall, nor open raw sockets. Its ports below 1024 and ping sockets are
// opened up by sysctl instead.
//
// Slots are kept ready in a WarmPool, refilled by its thread, so that
// taking one costs no netlink round trip. Released slots go back to the
// pool when nothing of their last holder is left in them: deleting a veth
// waits on the kernel's one rtnl lock and an RCU grace period, so making
// and destroying a slot per sandbox would serialise every create and delete
// on the host. Nothing is mounted: a slot lives
// while its fd or a process in it does, so a crash of paddockd frees every
// slot no sandbox holds. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/mutex.h"
#include "base/status.h"
#include "base/warm_pool.h"
#include "net/address.h"
#include "net/firewall.h"
#include "net/netlink.h"
#include "net/policy.h"

namespace paddock::net {

struct NetworkOptions {
  std::string bridge = "pdk0";
  std::string table = "paddock";      // the nftables table (inet family)
  std::string pool = "10.88.0.0/16";  // the first address is the bridge's (the gateway)
  std::vector<std::string> dns;       // empty: the host's resolvers, less loopback ones
  size_t warm_slots = 0;              // slots kept ready
  // Released slots kept for the next sandboxes beyond warm_slots, once
  // reset (see Release); when no slot has been taken for a minute, they go.
  size_t recycled_slots = 256;
  // Private-range CIDRs that sandboxes reach by default (egress otherwise
  // goes to the public internet only: see Firewall).
  std::vector<std::string> private_allowed;
  // Connections each sandbox may have open at once through the host (see
  // FirewallConfig::max_connections); 0: no cap.
  uint32_t max_connections = 8192;
};

// IPv4 packets a namespace's stack received and sent (its /proc/net/snmp).
struct IpCounters {
  uint64_t received = 0;
  uint64_t sent = 0;
};

struct Slot {
  Ipv4 address;
  std::string veth;  // the host end, a port of the bridge
  UniqueFd netns;
  IpCounters ip;  // as they were when the slot was made or last reset
};

class Network {
 public:
  // Brings up the bridge with the gateway address and turns on IPv4
  // forwarding. The firewall table is rebuilt by FinishRecovery.
  static Result<std::unique_ptr<Network>> Open(NetworkOptions opts);
  ~Network();  // stops the refill and destroys the ready slots

  // Start-up, before FinishRecovery: takes over the slot of a sandbox that
  // survived a restart of paddockd, its init being `init_pid`.
  Result<std::unique_ptr<Slot>> Adopt(Ipv4 address, pid_t init_pid) EXCLUDES(mu_, nl_mu_);
  // Start-up, once every surviving slot is adopted: deletes every other
  // bridge port, rebuilds the table with `policies`, starts the refill.
  Status FinishRecovery(const std::map<Ipv4, NetworkPolicy>& policies) EXCLUDES(mu_, nl_mu_);

  // A slot from the pool, or one made now if the pool is empty.
  Result<std::unique_ptr<Slot>> Acquire() EXCLUDES(mu_);
  // Forgets the slot's policy and the host's tracked connections of its
  // address, and takes it back. It goes to the back of the pool (its
  // address is reused after every other ready one) if its last holder left
  // nothing the next could read: no socket (one closing or in TIME_WAIT
  // would show in /proc/net) and no packet sent (counters and the route
  // cache would show it). Otherwise, or with the pool full, the slot is
  // destroyed and its address freed once its veth is gone.
  void Release(std::unique_ptr<Slot> slot) EXCLUDES(mu_);
  Status Apply(const Slot& slot, const NetworkPolicy& policy) {
    return firewall_->Apply(slot.address, policy);
  }
  // On shutdown with no sandbox holding a slot: removes table and bridge.
  Status RemoveAll() EXCLUDES(nl_mu_);

  size_t warm_slots_ready() const EXCLUDES(mu_);
  // Returns once every destroyed slot's veth is gone and its address free:
  // after 5 s, it deletes the veths whose namespace the kernel still keeps.
  void WaitForDestroyedSlots() EXCLUDES(mu_);
  // A Linux bridge has 1,023 ports: slots in use, pooled and being torn
  // down count against that. Beyond it Acquire says the network is full.
  static constexpr size_t kMaxSlots = 1023;
  Ipv4 gateway() const { return pool_.At(1); }
  const Cidr& pool() const { return pool_; }
  const std::vector<Ipv4>& resolvers() const { return resolvers_; }
  // The sandbox's /etc/resolv.conf.
  std::string ResolvConf() const;

 private:
  Network(NetworkOptions opts, Cidr pool, std::vector<Ipv4> resolvers, Netlink nl, int bridge_index,
          UniqueFd host_ipv6_conf, std::unique_ptr<Firewall> firewall);
  Result<Ipv4> ReserveAddress() EXCLUDES(mu_);
  Result<std::unique_ptr<Slot>> MakeSlot() EXCLUDES(mu_, nl_mu_);
  Status DisableIpv6(const std::string& veth) const;
  void DestroySlot(Slot& slot) EXCLUDES(mu_, nl_mu_);
  Status Reset(Slot& slot) EXCLUDES(mu_);
  // Frees the addresses of destroyed slots whose veth is gone.
  void FreeDestroyedAddresses() EXCLUDES(mu_, nl_mu_);
  static constexpr const char* kSlots = "slot";  // the ready pool's one key

  const NetworkOptions opts_;
  const Cidr pool_;
  const std::vector<Ipv4> resolvers_;
  Mutex nl_mu_;
  Netlink nl_ GUARDED_BY(nl_mu_);  // the host namespace's netlink socket
  const int bridge_index_;
  // The host's /proc/sys/net/ipv6/conf, opened once (none without IPv6):
  // each lookup of that path compares its way past every slot's namespace.
  const UniqueFd host_ipv6_conf_;
  std::unique_ptr<Firewall> firewall_;

  mutable Mutex mu_;
  std::vector<bool> used_ GUARDED_BY(mu_);  // by offset in the pool
  size_t slots_ GUARDED_BY(mu_) = 0;  // slots that exist (each a bridge port), adopted ones included
  uint64_t cursor_ GUARDED_BY(mu_) = 2;  // next offset to try: freed addresses are reused last
  std::set<std::string> adopted_veths_ GUARDED_BY(mu_);
  // Addresses held until their slot's veth is gone; freed when an address
  // or a port is wanted (ReserveAddress) or on WaitForDestroyedSlots.
  std::vector<Ipv4> destroyed_ GUARDED_BY(mu_);
  // Declared last: destroyed first, while what its hooks use is alive.
  WarmPool<Slot> ready_;
};

}  // namespace paddock::net
