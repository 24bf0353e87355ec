// Netlink (rtnetlink through libnl-route-3): the links, addresses and routes
// of one network namespace.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "net/address.h"

struct nl_sock;

namespace paddock::net {

class Netlink {
 public:
  // A socket in the calling thread's network namespace; it stays there.
  static Result<Netlink> Open();
  Netlink(Netlink&&) noexcept;
  Netlink& operator=(Netlink&&) noexcept;
  ~Netlink();

  // The index of link `name`; kNotFound if there is none.
  Result<int> LinkIndex(const std::string& name);
  // Creates bridge `name` unless it exists; returns its index.
  Result<int> EnsureBridge(const std::string& name);
  // A veth pair: `host_name` here, enslaved to bridge `master_index` (if > 0);
  // its peer `peer_name`, created straight in namespace `peer_netns_fd`. Both
  // down: set what must hold from the first packet, then SetUp.
  Status AddVeth(const std::string& host_name, int master_index, const std::string& peer_name,
                 int peer_netns_fd);
  // Marks bridge port `index` isolated: it exchanges frames with the bridge
  // itself only, never with another isolated port.
  Status IsolatePort(int index);
  Status SetUp(int index);
  Status AddAddress(int index, Ipv4 address, int prefix);
  // A route to `dst` through `gateway`, or on-link when `gateway` is 0.
  Status AddRoute(const Cidr& dst, Ipv4 gateway, int index);
  // Deletes link `name` (a veth takes its peer along); ok if it is gone.
  Status DeleteLink(const std::string& name);
  // The names of the links enslaved to `master_index`.
  Result<std::vector<std::string>> PortsOf(int master_index);
  // The names of all links.
  Result<std::vector<std::string>> LinkNames();

 private:
  explicit Netlink(nl_sock* sock) : sock_(sock) {}
  nl_sock* sock_ = nullptr;
};

}  // namespace paddock::net
