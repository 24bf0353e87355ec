#include "net/network.h"

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/fs.h"
#include "kernel/mnt.h"
#include "kernel/net.h"
#include "net/conntrack.h"

namespace paddock::net {
namespace {

// The host's resolvers that a sandbox can reach: loopback ones (a local
// stub resolver) would be the sandbox's own loopback.
std::vector<std::string> HostResolvers() {
  std::vector<std::string> found;
  std::ifstream in("/etc/resolv.conf");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (words >> key >> value && key == "nameserver" && value.rfind("127.", 0) != 0 &&
        value.find(':') == std::string::npos)
      found.push_back(value);
  }
  return found;
}

std::string VethName(Ipv4 a) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "pdkv%08x", a.value);
  return buf;
}

// In the slot's namespace, before it has devices: the settings the sandbox,
// without CAP_NET_ADMIN there, cannot make for itself. IPv6 goes off first,
// so that the eth0 made next starts without it (no link-local address to
// make and check for duplicates, no routes).
Status SetSysctlsInside() {
  Result<UniqueFd> proc = kernel::mnt::MakeProc();
  if (!proc.ok()) {  // no new mount API, or not allowed here: the host's
    proc = UniqueFd(::open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!*proc) return Status::Errno("open /proc");
  }
  auto open_dir = [&](const char* path) {
    return UniqueFd(::openat(proc->get(), path, O_PATH | O_DIRECTORY | O_CLOEXEC));
  };
  if (UniqueFd v6 = open_dir("sys/net/ipv6/conf"); v6)  // none without IPv6
    for (const char* conf : {"all/disable_ipv6", "default/disable_ipv6"})
      PDK_TRY(WriteExistingAt(v6.get(), conf, "1").Annotate("/proc/sys/net/ipv6/conf"));
  UniqueFd v4 = open_dir("sys/net/ipv4");
  if (!v4) return Status::Errno("open /proc/sys/net/ipv4");
  const std::pair<const char*, const char*> settings[] = {
      {"ip_unprivileged_port_start", "0"},
      {"ping_group_range", "0 2147483647"},
      // No per-peer TCP metrics kept: they would show the next holder of a
      // recycled slot whom the last one talked to.
      {"tcp_no_metrics_save", "1"}};
  for (const auto& [name, value] : settings)
    PDK_TRY(WriteExistingAt(v4.get(), name, value).Annotate("/proc/sys/net/ipv4"));
  return Status::Ok();
}

// In the slot's namespace, once eth0 is there: its address and routes.
Status ConfigureInside(Ipv4 address, Ipv4 gateway) {
  if (int err = kernel::net::BringUpLoopback(); err != 0) return Status::Errno("bring up lo", err);
  PDK_ASSIGN_OR_RETURN(Netlink nl, Netlink::Open());
  PDK_ASSIGN_OR_RETURN(int eth0, nl.LinkIndex("eth0"));
  PDK_TRY(nl.SetUp(eth0));
  // A /32 with the gateway on-link: every packet, even to another sandbox,
  // goes through the host, where the firewall decides.
  PDK_TRY(nl.AddAddress(eth0, address, 32));
  PDK_TRY(nl.AddRoute(Cidr{gateway, 32}, Ipv4{}, eth0));
  return nl.AddRoute(Cidr{Ipv4{0}, 0}, gateway, eth0);
}

// What a slot's last holder left in its namespace, read from inside it.
struct Leftovers {
  bool sockets = false;  // a TCP, UDP, raw or unix socket, or a TIME_WAIT entry
  // IPv4 packets the slot's stack received and sent since it was made. Not
  // eth0's counters: those also count the bridge's floods (ARP, IPv6
  // multicast), which every slot gets and which say nothing of its holder.
  IpCounters ip;
};

Result<Leftovers> ReadLeftovers() {
  Leftovers left;
  // Per namespace: "inuse" of each protocol and "tw" of TCP ("orphan" and
  // "alloc" count the whole host).
  for (const char* file : {"/proc/thread-self/net/sockstat", "/proc/thread-self/net/sockstat6"}) {
    PDK_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream words(line);
      std::string proto, key;
      uint64_t value;
      words >> proto;
      if (proto.rfind("FRAG", 0) == 0 || proto == "sockets:") continue;
      while (words >> key >> value)
        if ((key == "inuse" || key == "tw") && value != 0) left.sockets = true;
    }
  }
  PDK_ASSIGN_OR_RETURN(std::string unix_sockets, ReadFile("/proc/thread-self/net/unix"));
  if (std::count(unix_sockets.begin(), unix_sockets.end(), '\n') > 1) left.sockets = true;
  // Two "Ip:" lines: the field names, then their values.
  PDK_ASSIGN_OR_RETURN(std::string snmp, ReadFile("/proc/thread-self/net/snmp"));
  std::istringstream lines(snmp);
  std::string names, values;
  while (std::getline(lines, names) && names.rfind("Ip:", 0) != 0) {
  }
  if (!std::getline(lines, values) || values.rfind("Ip:", 0) != 0)
    return Internal("no Ip: counters in the slot's /proc/net/snmp");
  std::istringstream n(names), v(values);
  std::string name, label;
  uint64_t value;
  n >> label;
  v >> label;
  while (n >> name && v >> value) {
    if (name == "InReceives") left.ip.received = value;
    if (name == "OutRequests") left.ip.sent = value;
  }
  return left;
}

}  // namespace

Result<std::unique_ptr<Network>> Network::Open(NetworkOptions opts) {
  PDK_ASSIGN_OR_RETURN(Cidr pool, Cidr::Parse(opts.pool));
  if (pool.prefix > 29 || pool.prefix < 8)
    return InvalidArgument("network pool " + opts.pool + " must be between /8 and /29");
  if (opts.bridge.empty() || opts.bridge.size() > 15)
    return InvalidArgument("bridge name '" + opts.bridge + "' must be 1-15 characters");
  std::vector<Ipv4> resolvers;
  for (const auto& text : opts.dns.empty() ? HostResolvers() : opts.dns) {
    PDK_ASSIGN_OR_RETURN(Ipv4 a, Ipv4::Parse(text));
    resolvers.push_back(a);
  }
  std::vector<Cidr> private_allowed;
  for (const auto& text : opts.private_allowed) {
    PDK_ASSIGN_OR_RETURN(Cidr c, Cidr::Parse(text));
    private_allowed.push_back(c);
  }
  PDK_ASSIGN_OR_RETURN(Netlink nl, Netlink::Open());
  PDK_ASSIGN_OR_RETURN(int bridge, nl.EnsureBridge(opts.bridge));
  PDK_TRY(nl.AddAddress(bridge, pool.At(1), pool.prefix));
  PDK_TRY(nl.SetUp(bridge));
  PDK_TRY(WriteExisting("/proc/sys/net/ipv4/ip_forward", "1").Annotate("enable IPv4 forwarding"));
  UniqueFd ipv6_conf(::open("/proc/sys/net/ipv6/conf", O_PATH | O_DIRECTORY | O_CLOEXEC));
  PDK_ASSIGN_OR_RETURN(auto firewall, Firewall::Open({opts.table, opts.bridge, pool, resolvers, private_allowed, opts.max_connections}));
  return std::unique_ptr<Network>(new Network(std::move(opts), pool, std::move(resolvers), std::move(nl), bridge,
                                              std::move(ipv6_conf), std::move(firewall)));
}

Network::Network(NetworkOptions opts, Cidr pool, std::vector<Ipv4> resolvers, Netlink nl, int bridge_index,
                 UniqueFd host_ipv6_conf, std::unique_ptr<Firewall> firewall)
    : opts_(std::move(opts)),
      pool_(pool),
      resolvers_(std::move(resolvers)),
      nl_(std::move(nl)),
      bridge_index_(bridge_index),
      host_ipv6_conf_(std::move(host_ipv6_conf)),
      firewall_(std::move(firewall)),
      used_(pool.size(), false),
      ready_({.make = [this](const std::string&) { return MakeSlot(); },
              .discard = [this](std::unique_ptr<Slot> slot) { DestroySlot(*slot); }},
             {.thread_name = "pdk-warm-slots"}) {
  used_[0] = used_[1] = used_.back() = true;  // network, gateway, broadcast
  // One key: every slot is alike. Released slots beyond warm_slots go once
  // none has been taken for a minute.
  (void)ready_.SetTarget(kSlots, opts_.warm_slots);
}

Network::~Network() {
  ready_.Stop();  // destroys the ready slots
  WaitForDestroyedSlots();
}

Result<Ipv4> Network::ReserveAddress() {
  for (bool swept = false;; swept = true) {
    {
      MutexLock lock(mu_);
      bool full = slots_ >= kMaxSlots;
      for (uint64_t n = 0; !full && n < used_.size(); ++n) {
        uint64_t i = (cursor_ + n) % used_.size();
        if (!used_[i]) {
          used_[i] = true;
          cursor_ = i + 1;
          ++slots_;
          return pool_.At(i);
        }
      }
      if (swept || destroyed_.empty()) {
        if (full)
          return ResourceExhausted("the sandbox network is full: its bridge holds at most " +
                                   std::to_string(kMaxSlots) + " slots (in use, ready or being released)");
        return ResourceExhausted("network pool " + pool_.ToString() + " has no free address");
      }
    }
    // Destroyed slots hold their address and their bridge port until
    // their veth is gone: the ones gone by now free theirs.
    FreeDestroyedAddresses();
  }
}

Result<std::unique_ptr<Slot>> Network::MakeSlot() {
  auto slot = std::make_unique<Slot>();
  PDK_ASSIGN_OR_RETURN(slot->address, ReserveAddress());
  slot->veth = VethName(slot->address);
  Status s = [&]() -> Status {
    PDK_ASSIGN_OR_RETURN(slot->netns, kernel::net::NewNetns());
    PDK_TRY(kernel::net::InNetns(slot->netns.get(), SetSysctlsInside));
    {
      MutexLock lock(nl_mu_);
      PDK_TRY(nl_.AddVeth(slot->veth, bridge_index_, "eth0", slot->netns.get()));
      PDK_ASSIGN_OR_RETURN(int port, nl_.LinkIndex(slot->veth));
      PDK_TRY(DisableIpv6(slot->veth));
      PDK_TRY(nl_.IsolatePort(port));
      PDK_TRY(nl_.SetUp(port));
    }
    return kernel::net::InNetns(slot->netns.get(), [&] { return ConfigureInside(slot->address, gateway()); });
  }();
  if (!s.ok()) {
    DestroySlot(*slot);
    return s.Annotate("network slot " + slot->address.ToString());
  }
  return slot;
}

// The host's end of a slot carries IPv4 to the bridge and nothing else.
// With IPv6 on, each would get a link-local address (checked for duplicates
// by a kernel worker under the rtnl lock) and three routes, and the kernel
// walks the host's whole IPv6 routing table on every link's up and down: a
// cost that grows with the slots on the host. Off before the link is up.
Status Network::DisableIpv6(const std::string& veth) const {
  if (!host_ipv6_conf_) return Status::Ok();
  return WriteExistingAt(host_ipv6_conf_.get(), veth + "/disable_ipv6", "1")
      .Annotate("/proc/sys/net/ipv6/conf");
}

// Closing the namespace's last fd lets the kernel destroy it, and its eth0
// takes the host's veth along: the kernel tears dying namespaces down in
// batches, under one rtnl lock and one grace period for all, where an
// RTM_DELLINK from here pays both for each slot. The address stays taken
// until the veth, which is named after it, is gone.
void Network::DestroySlot(Slot& slot) {
  slot.netns.reset();
  MutexLock lock(mu_);
  destroyed_.push_back(slot.address);
}

void Network::FreeDestroyedAddresses() {
  Result<std::vector<std::string>> links = [&] {
    MutexLock lock(nl_mu_);
    return nl_.LinkNames();
  }();
  if (!links.ok()) return;
  std::set<std::string> present(links->begin(), links->end());
  MutexLock lock(mu_);
  auto gone = std::partition(destroyed_.begin(), destroyed_.end(),
                             [&](Ipv4 a) { return present.count(VethName(a)) > 0; });
  for (auto it = gone; it != destroyed_.end(); ++it) {
    used_[it->value - pool_.base.value] = false;
    --slots_;
  }
  destroyed_.erase(gone, destroyed_.end());
}

void Network::WaitForDestroyedSlots() {
  for (int i = 0; i < 500; ++i) {
    {
      MutexLock lock(mu_);
      if (destroyed_.empty()) return;
    }
    FreeDestroyedAddresses();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // A namespace the kernel keeps past its last process (a TCP socket of the
  // sandbox's waiting out its FIN timeout holds it a minute or two) keeps
  // its veth: delete those host ends, so that nothing of Paddock's stays on
  // the host after it.
  std::vector<Ipv4> lingering;
  {
    MutexLock lock(mu_);
    lingering = destroyed_;
  }
  for (Ipv4 a : lingering) {
    MutexLock lock(nl_mu_);
    (void)nl_.DeleteLink(VethName(a));
  }
  FreeDestroyedAddresses();
}

Result<std::unique_ptr<Slot>> Network::Adopt(Ipv4 address, pid_t init_pid) {
  if (!pool_.Contains(address)) return FailedPrecondition(address.ToString() + " is not in the pool " + pool_.ToString());
  auto slot = std::make_unique<Slot>();
  slot->address = address;
  slot->veth = VethName(address);
  PDK_ASSIGN_OR_RETURN(slot->netns, kernel::net::OpenNetnsOf(init_pid));
  {
    MutexLock lock(nl_mu_);
    PDK_TRY(nl_.LinkIndex(slot->veth).status());
  }
  MutexLock lock(mu_);
  uint64_t i = address.value - pool_.base.value;
  if (used_[i]) return AlreadyExists(address.ToString() + " is held twice");
  used_[i] = true;
  ++slots_;
  adopted_veths_.insert(slot->veth);
  return slot;
}

Status Network::FinishRecovery(const std::map<Ipv4, NetworkPolicy>& policies) {
  {
    MutexLock lock(nl_mu_);
    PDK_ASSIGN_OR_RETURN(auto ports, nl_.PortsOf(bridge_index_));
    MutexLock state(mu_);
    for (const auto& port : ports)
      if (!adopted_veths_.count(port)) PDK_TRY(nl_.DeleteLink(port).Annotate("sweep orphan port"));
    adopted_veths_.clear();
  }
  PDK_TRY(firewall_->Rebuild(policies));
  ready_.Start();
  return Status::Ok();
}

Result<std::unique_ptr<Slot>> Network::Acquire() {
  if (auto slot = ready_.Take(kSlots)) return slot;
  return MakeSlot();
}

void Network::Release(std::unique_ptr<Slot> slot) {
  if (!slot) return;
  if (firewall_->Forget(slot->address).ok() && Reset(*slot).ok())
    slot = ready_.Put(kSlots, std::move(slot), opts_.warm_slots + opts_.recycled_slots);
  if (slot) DestroySlot(*slot);
}

Status Network::Reset(Slot& slot) {
  Leftovers left;
  PDK_TRY(kernel::net::InNetns(slot.netns.get(), [&]() -> Status {
    PDK_ASSIGN_OR_RETURN(left, ReadLeftovers());
    return Status::Ok();
  }));
  // A slot that carried no packet since it was made has no tracked
  // connection: the table dump is paid only by slots that were used.
  if (left.ip.received != slot.ip.received || left.ip.sent != slot.ip.sent)
    PDK_TRY(ForgetConnections(slot.address).status());
  if (left.sockets) return FailedPrecondition("sockets of the last holder remain in the slot");
  // What a namespace learns from sending cannot be reset: its counters,
  // the path MTUs and redirects it cached per destination. Only a slot
  // whose holder sent nothing goes to the next one, which then sees no more
  // of it than how many packets reached its address.
  if (left.ip.sent != slot.ip.sent) return FailedPrecondition("the last holder sent packets from the slot");
  slot.ip = left.ip;
  return Status::Ok();
}

Status Network::RemoveAll() {
  PDK_TRY(firewall_->Remove());
  MutexLock lock(nl_mu_);
  return nl_.DeleteLink(opts_.bridge);
}

size_t Network::warm_slots_ready() const { return ready_.ready(); }

std::string Network::ResolvConf() const {
  std::string text;
  for (Ipv4 r : resolvers_) text += "nameserver " + r.ToString() + "\n";
  return text;
}

}  // namespace paddock::net
