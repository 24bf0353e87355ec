#include "net/netlink.h"

#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <sys/socket.h>

#include <utility>

namespace paddock::net {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { if (p) Free(p); }
};
using LinkPtr = std::unique_ptr<rtnl_link, Deleter<rtnl_link, rtnl_link_put>>;
using AddrPtr = std::unique_ptr<rtnl_addr, Deleter<rtnl_addr, rtnl_addr_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, Deleter<rtnl_route, rtnl_route_put>>;
using NlAddrPtr = std::unique_ptr<nl_addr, Deleter<nl_addr, nl_addr_put>>;
using CachePtr = std::unique_ptr<nl_cache, Deleter<nl_cache, nl_cache_free>>;
using MsgPtr = std::unique_ptr<nl_msg, Deleter<nl_msg, nlmsg_free>>;

Status NlError(const std::string& op, int err) {
  std::string m = "netlink: " + op + ": " + nl_geterror(err);
  switch (-err) {
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV: return NotFound(m);
    case NLE_EXIST: return AlreadyExists(m);
    case NLE_PERM: return Status(StatusCode::kPermissionDenied, m);
    default: return Internal(m);
  }
}

NlAddrPtr MakeAddr(Ipv4 a, int prefix) {
  uint32_t n = a.network_order();
  NlAddrPtr addr(nl_addr_build(AF_INET, &n, sizeof n));
  if (addr) nl_addr_set_prefixlen(addr.get(), prefix);
  return addr;
}

}  // namespace

Result<Netlink> Netlink::Open() {
  nl_sock* sock = nl_socket_alloc();
  if (!sock) return Internal("netlink: out of memory");
  if (int err = nl_connect(sock, NETLINK_ROUTE); err < 0) {
    nl_socket_free(sock);
    return NlError("connect", err);
  }
  return Netlink(sock);
}

Netlink::Netlink(Netlink&& o) noexcept : sock_(std::exchange(o.sock_, nullptr)) {}
Netlink& Netlink::operator=(Netlink&& o) noexcept {
  std::swap(sock_, o.sock_);
  return *this;
}
Netlink::~Netlink() {
  if (sock_) nl_socket_free(sock_);
}

Result<int> Netlink::LinkIndex(const std::string& name) {
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sock_, 0, name.c_str(), &raw); err < 0)
    return NlError("find link " + name, err);
  LinkPtr link(raw);
  return rtnl_link_get_ifindex(link.get());
}

Result<int> Netlink::EnsureBridge(const std::string& name) {
  if (auto index = LinkIndex(name); index.ok() || index.status().code() != StatusCode::kNotFound)
    return index;
  if (int err = rtnl_link_bridge_add(sock_, name.c_str()); err < 0 && err != -NLE_EXIST)
    return NlError("add bridge " + name, err);
  return LinkIndex(name);
}

Status Netlink::AddVeth(const std::string& host_name, int master_index,
                        const std::string& peer_name, int peer_netns_fd) {
  LinkPtr link(rtnl_link_veth_alloc());
  if (!link) return Internal("netlink: out of memory");
  rtnl_link_set_name(link.get(), host_name.c_str());
  if (master_index > 0) rtnl_link_set_master(link.get(), master_index);
  LinkPtr peer(rtnl_link_veth_get_peer(link.get()));
  rtnl_link_set_name(peer.get(), peer_name.c_str());
  rtnl_link_set_ns_fd(peer.get(), peer_netns_fd);
  if (int err = rtnl_link_add(sock_, link.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0)
    return NlError("add veth " + host_name, err);
  return Status::Ok();
}

Status Netlink::IsolatePort(int index) {
  // libnl 3.7 has no setter for IFLA_BRPORT_ISOLATED: the message by hand.
  MsgPtr msg(nlmsg_alloc_simple(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK));
  if (!msg) return Internal("netlink: out of memory");
  ifinfomsg ifi{};
  ifi.ifi_family = AF_BRIDGE;
  ifi.ifi_index = index;
  nlattr* protinfo = nullptr;
  if (nlmsg_append(msg.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0 ||
      !(protinfo = nla_nest_start(msg.get(), IFLA_PROTINFO | NLA_F_NESTED)) ||
      nla_put_u8(msg.get(), IFLA_BRPORT_ISOLATED, 1) < 0 || nla_nest_end(msg.get(), protinfo) < 0)
    return Internal("netlink: building the port isolation message failed");
  if (int err = nl_send_auto(sock_, msg.get()); err < 0) return NlError("isolate port", err);
  if (int err = nl_wait_for_ack(sock_); err < 0) return NlError("isolate port", err);
  return Status::Ok();
}

Status Netlink::SetUp(int index) {
  LinkPtr orig(rtnl_link_alloc()), change(rtnl_link_alloc());
  if (!orig || !change) return Internal("netlink: out of memory");
  rtnl_link_set_ifindex(orig.get(), index);
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int err = rtnl_link_change(sock_, orig.get(), change.get(), 0); err < 0)
    return NlError("set link " + std::to_string(index) + " up", err);
  return Status::Ok();
}

Status Netlink::AddAddress(int index, Ipv4 address, int prefix) {
  AddrPtr addr(rtnl_addr_alloc());
  NlAddrPtr local = MakeAddr(address, prefix);
  if (!addr || !local) return Internal("netlink: out of memory");
  rtnl_addr_set_ifindex(addr.get(), index);
  rtnl_addr_set_local(addr.get(), local.get());
  if (int err = rtnl_addr_add(sock_, addr.get(), 0); err < 0 && err != -NLE_EXIST)
    return NlError("add address " + address.ToString(), err);
  return Status::Ok();
}

Status Netlink::AddRoute(const Cidr& dst, Ipv4 gateway, int index) {
  RoutePtr route(rtnl_route_alloc());
  NlAddrPtr to = MakeAddr(dst.base, dst.prefix);
  rtnl_nexthop* nh = rtnl_route_nh_alloc();  // owned by the route once added
  if (!route || !to || !nh) {
    if (nh) rtnl_route_nh_free(nh);
    return Internal("netlink: out of memory");
  }
  rtnl_route_set_family(route.get(), AF_INET);
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_protocol(route.get(), RTPROT_STATIC);
  rtnl_route_set_dst(route.get(), to.get());
  rtnl_route_nh_set_ifindex(nh, index);
  if (gateway.value != 0) {
    NlAddrPtr via = MakeAddr(gateway, 32);
    rtnl_route_nh_set_gateway(nh, via.get());
    rtnl_route_set_scope(route.get(), RT_SCOPE_UNIVERSE);
  } else {
    rtnl_route_set_scope(route.get(), RT_SCOPE_LINK);
  }
  rtnl_route_add_nexthop(route.get(), nh);
  if (int err = rtnl_route_add(sock_, route.get(), NLM_F_CREATE); err < 0 && err != -NLE_EXIST)
    return NlError("add route " + dst.ToString(), err);
  return Status::Ok();
}

Status Netlink::DeleteLink(const std::string& name) {
  LinkPtr link(rtnl_link_alloc());
  if (!link) return Internal("netlink: out of memory");
  rtnl_link_set_name(link.get(), name.c_str());
  int err = rtnl_link_delete(sock_, link.get());
  if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NODEV) return NlError("delete " + name, err);
  return Status::Ok();
}

namespace {

// The names of the links for which `keep` holds.
template <class Keep>
Result<std::vector<std::string>> NamesOf(nl_sock* sock, Keep keep) {
  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sock, AF_UNSPEC, &raw); err < 0) return NlError("list links", err);
  CachePtr cache(raw);
  std::vector<std::string> names;
  for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
    auto* link = reinterpret_cast<rtnl_link*>(o);
    if (keep(link)) names.emplace_back(rtnl_link_get_name(link));
  }
  return names;
}

}  // namespace

Result<std::vector<std::string>> Netlink::PortsOf(int master_index) {
  return NamesOf(sock_, [&](rtnl_link* link) { return rtnl_link_get_master(link) == master_index; });
}

Result<std::vector<std::string>> Netlink::LinkNames() {
  return NamesOf(sock_, [](rtnl_link*) { return true; });
}

}  // namespace paddock::net
