#include "net/firewall.h"

#include <nftables/libnftables.h>

#include <sstream>

namespace paddock::net {
namespace {

std::string ChainOf(Ipv4 a) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "egress_%08x", a.value);
  return buf;
}

std::string Match(const EgressRule& r) {
  std::string m = "ip daddr " + r.cidr.ToString();
  std::string proto = r.protocol.empty() ? (r.port_min ? "{ tcp, udp }" : "") : r.protocol;
  if (!proto.empty()) m += " meta l4proto " + proto;
  if (r.port_min)
    m += " th dport " + std::to_string(r.port_min) +
         (r.port_max != r.port_min ? "-" + std::to_string(r.port_max) : "");
  return m;
}

}  // namespace

Result<std::unique_ptr<Firewall>> Firewall::Open(FirewallConfig config) {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) return Internal("nftables: cannot make a context");
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  return std::unique_ptr<Firewall>(new Firewall(std::move(config), ctx));
}

Firewall::~Firewall() { nft_ctx_free(ctx_); }

Status Firewall::Run(const std::string& commands) {
  if (nft_run_cmd_from_buffer(ctx_, commands.c_str()) != 0) {
    std::string err = nft_ctx_get_error_buffer(ctx_);
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return Internal("nftables: " + err);
  }
  return Status::Ok();
}

std::string Firewall::TableText() const {
  const std::string br = "\"" + config_.bridge + "\"";
  const std::string pool = config_.pool.ToString();
  auto elements = [](const std::vector<std::string>& all) {
    std::string text;
    for (const auto& e : all) text += (text.empty() ? "" : ", ") + e;
    return all.empty() ? std::string() : " elements = { " + text + " };";
  };
  std::vector<std::string> resolvers, allowed;
  for (Ipv4 r : config_.resolvers) resolvers.push_back(r.ToString());
  for (const Cidr& c : config_.private_allowed) allowed.push_back(c.ToString());
  // A new connection past a sandbox's cap is refused, so that no sandbox
  // fills the host's conntrack table, which every sandbox (and the host's
  // own NAT) needs. Closed connections and those in TIME_WAIT do not count.
  std::string cap;
  if (config_.max_connections > 0)
    cap = "    iifname " + br + " ct state new add @connections { ip saddr ct count over " +
          std::to_string(config_.max_connections) + " } jump refuse\n";
  std::ostringstream t;
  t << "table inet " << config_.table << " {\n"
    << "  set host_access { type ipv4_addr; }\n"
    << "  set connections { type ipv4_addr; size 65535; flags dynamic; }\n"
    << "  map egress { type ipv4_addr : verdict; }\n"
    << "  set resolvers { type ipv4_addr;" << elements(resolvers) << " }\n"
    << "  set private_allowed { type ipv4_addr; flags interval; auto-merge;" << elements(allowed)
    << " }\n"
    // Not the internet: this host's networks and their neighbours (RFC 1918,
    // link-local and the cloud metadata address, CGNAT, loopback, "this
    // network", multicast and reserved).
    << "  set private { type ipv4_addr; flags interval; elements = { 0.0.0.0/8, 10.0.0.0/8, "
       "100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16, "
       "224.0.0.0/3 }; }\n"
    << "  chain refuse {\n"
    << "    meta l4proto tcp reject with tcp reset\n"
    << "    reject with icmpx admin-prohibited\n"
    << "  }\n"
    << "  chain public_only {\n"
    << "    ip daddr @resolvers meta l4proto { tcp, udp } th dport 53 accept\n"
    << "    ip daddr @private_allowed accept\n"
    << "    ip daddr @private jump refuse\n"
    << "    accept\n"
    << "  }\n"
    // Packets a sandbox sends are judged by its policy each time, not only
    // when a connection opens: a change that narrows the policy cuts the
    // connections it no longer allows (no conntrack flush needed). Replies
    // to connections opened towards the sandbox, and ICMP errors, pass.
    << "  chain input {\n"
    << "    type filter hook input priority filter - 10; policy accept;\n"
    << "    iifname " << br << " ct direction reply accept\n"
    << "    iifname " << br << " ct state related accept\n"
    << cap
    << "    iifname " << br << " ip saddr @host_access accept\n"
    << "    iifname " << br << " icmp type echo-request accept\n"
    << "    iifname " << br << " jump refuse\n"
    << "  }\n"
    << "  chain forward {\n"
    << "    type filter hook forward priority filter - 10; policy accept;\n"
    << "    iifname " << br << " oifname " << br << " jump refuse\n"
    << "    oifname " << br << " ct state established,related accept\n"
    << "    oifname " << br << " drop\n"
    << "    iifname " << br << " ip saddr != " << pool << " drop\n"
    << "    iifname " << br << " meta nfproto ipv6 drop\n"
    << "    iifname " << br << " ct direction reply accept\n"
    << "    iifname " << br << " ct state related accept\n"
    << cap
    << "    iifname " << br << " ip saddr vmap @egress\n"
    << "    iifname " << br << " goto public_only\n"
    << "  }\n"
    << "  chain postrouting {\n"
    << "    type nat hook postrouting priority srcnat; policy accept;\n"
    << "    ip saddr " << pool << " oifname != " << br << " masquerade\n"
    << "  }\n"
    << "}\n";
  return t.str();
}

std::string Firewall::ApplyCommands(Ipv4 address, const NetworkPolicy& policy) const {
  const std::string& table = config_.table;
  const std::string chain = ChainOf(address);
  const std::string addr = address.ToString();
  std::ostringstream c;
  auto old = applied_.find(address);
  bool had_chain = old != applied_.end() && !old->second.default_egress();
  bool had_host = old != applied_.end() && old->second.host_access;
  if (had_chain) c << "delete element inet " << table << " egress { " << addr << " }\n";
  if (had_host && !policy.host_access) c << "delete element inet " << table << " host_access { " << addr << " }\n";
  if (!had_host && policy.host_access) c << "add element inet " << table << " host_access { " << addr << " }\n";
  if (had_chain) c << "flush chain inet " << table << " " << chain << "\n";
  if (policy.default_egress()) {
    if (had_chain) c << "delete chain inet " << table << " " << chain << "\n";
    return c.str();
  }
  c << "add chain inet " << table << " " << chain << "\n";
  auto rule = [&](const std::string& text) { c << "add rule inet " << table << " " << chain << " " << text << "\n"; };
  if (!policy.allow_egress && !policy.allow.empty())
    for (Ipv4 r : config_.resolvers) rule("ip daddr " + r.ToString() + " meta l4proto { tcp, udp } th dport 53 accept");
  for (const auto& r : policy.allow) rule(Match(r) + " accept");
  for (const auto& r : policy.deny) rule(Match(r) + " jump refuse");
  if (!policy.allow_egress) rule("jump refuse");  // else back to forward, and public_only
  c << "add element inet " << table << " egress { " << addr << " : jump " << chain << " }\n";
  return c.str();
}

Status Firewall::Rebuild(const std::map<Ipv4, NetworkPolicy>& policies) {
  std::lock_guard<std::mutex> lock(mu_);
  // "add" first so that "delete" cannot fail on a host that has no table yet.
  std::string commands = "add table inet " + config_.table + "\ndelete table inet " + config_.table +
                         "\n" + TableText();
  std::map<Ipv4, NetworkPolicy> none;
  std::swap(applied_, none);
  for (const auto& [address, policy] : policies) commands += ApplyCommands(address, policy);
  Status s = Run(commands);
  if (!s.ok()) {
    std::swap(applied_, none);
    return s.Annotate("rebuilding table " + config_.table);
  }
  for (const auto& [address, policy] : policies)
    if (!policy.default_egress() || policy.host_access) applied_[address] = policy;
  return Status::Ok();
}

Status Firewall::Apply(Ipv4 address, const NetworkPolicy& policy) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string commands = ApplyCommands(address, policy);
  if (commands.empty()) return Status::Ok();
  PDK_TRY(Run(commands).Annotate("egress policy of " + address.ToString()));
  if (policy.default_egress() && !policy.host_access) applied_.erase(address);
  else applied_[address] = policy;
  return Status::Ok();
}

Status Firewall::Remove() {
  std::lock_guard<std::mutex> lock(mu_);
  applied_.clear();
  return Run("add table inet " + config_.table + "\ndelete table inet " + config_.table + "\n");
}

}  // namespace paddock::net
