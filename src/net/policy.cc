#include "net/policy.h"

#include <charconv>

#include <nlohmann/json.hpp>

#include "base/ids.h"

namespace paddock::net {
namespace {

Result<uint16_t> ParsePort(std::string_view s, const std::string& field) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v == 0 || v > 65535)
    return InvalidArgument(field + ": '" + std::string(s) + "' is not a port (1-65535)");
  return static_cast<uint16_t>(v);
}

Result<std::vector<EgressRule>> RulesFromJson(const nlohmann::json& j, const std::string& field) {
  if (!j.is_array()) return InvalidArgument(field + " must be a list of CIDRs or rules");
  std::vector<EgressRule> rules;
  for (const auto& item : j) {
    auto rule = EgressRule::FromJson(item);
    if (!rule.ok()) return rule.status().Annotate(field);
    rules.push_back(*rule);
  }
  return rules;
}

nlohmann::json RulesToJson(const std::vector<EgressRule>& rules) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& r : rules) j.push_back(r.ToJson());
  return j;
}

}  // namespace

Result<EgressRule> EgressRule::FromJson(const nlohmann::json& j) {
  EgressRule r;
  if (j.is_string()) {
    PDK_ASSIGN_OR_RETURN(r.cidr, Cidr::Parse(j.get<std::string>()));
    return r;
  }
  if (!j.is_object() || !j.contains("cidr") || !j["cidr"].is_string())
    return InvalidArgument("a rule is a CIDR string or an object with \"cidr\"");
  PDK_ASSIGN_OR_RETURN(r.cidr, Cidr::Parse(j["cidr"].get<std::string>()));
  if (j.contains("protocol")) {
    if (!j["protocol"].is_string()) return InvalidArgument("protocol must be \"tcp\" or \"udp\"");
    r.protocol = j["protocol"].get<std::string>();
    if (r.protocol != "tcp" && r.protocol != "udp")
      return InvalidArgument("protocol '" + r.protocol + "' is not \"tcp\" or \"udp\"");
  }
  if (j.contains("ports")) {
    std::string ports = j["ports"].is_number_unsigned() ? std::to_string(j["ports"].get<unsigned>())
                        : j["ports"].is_string()        ? j["ports"].get<std::string>()
                                                        : "";
    size_t dash = ports.find('-');
    PDK_ASSIGN_OR_RETURN(r.port_min, ParsePort(ports.substr(0, dash), "ports"));
    r.port_max = r.port_min;
    if (dash != std::string::npos) {
      PDK_ASSIGN_OR_RETURN(r.port_max, ParsePort(ports.substr(dash + 1), "ports"));
    }
    if (r.port_max < r.port_min) return InvalidArgument("ports: '" + ports + "' is an empty range");
  }
  return r;
}

nlohmann::json EgressRule::ToJson() const {
  nlohmann::json j = {{"cidr", cidr.ToString()}};
  if (port_min != 0)
    j["ports"] = port_min == port_max ? std::to_string(port_min)
                                      : std::to_string(port_min) + "-" + std::to_string(port_max);
  if (!protocol.empty()) j["protocol"] = protocol;
  return j;
}

Status NetworkSettings::Merge(const nlohmann::json& j) {
  if (!j.is_object()) return InvalidArgument("network must be an object");
  NetworkSettings next = *this;
  for (const auto& [key, value] : j.items()) {
    if (key == "enabled" || key == "host_access" || key == "public_traffic") {
      if (!value.is_boolean()) return InvalidArgument("network." + key + " must be true or false");
      if (key == "enabled") next.enabled = value.get<bool>();
      if (key == "host_access") next.policy.host_access = value.get<bool>();
      if (key == "public_traffic")
        next.traffic_token = value.get<bool>() ? "" : (traffic_token.empty() ? RandomHex(16) : traffic_token);
    } else if (key == "egress") {
      std::string mode = value.is_string() ? value.get<std::string>() : "";
      if (mode != "allow" && mode != "deny")
        return InvalidArgument("network.egress must be \"allow\" or \"deny\"");
      next.policy.allow_egress = mode == "allow";
    } else if (key == "allow") {
      PDK_ASSIGN_OR_RETURN(next.policy.allow, RulesFromJson(value, "network.allow"));
    } else if (key == "deny") {
      PDK_ASSIGN_OR_RETURN(next.policy.deny, RulesFromJson(value, "network.deny"));
    } else if (key != "address" && key != "gateway") {  // read-only fields a client may echo back
      return InvalidArgument("network has no field '" + key + "'");
    }
  }
  *this = std::move(next);
  return Status::Ok();
}

nlohmann::json NetworkSettings::ToJson(bool with_token) const {
  nlohmann::json j = {{"enabled", enabled},
                      {"egress", policy.allow_egress ? "allow" : "deny"},
                      {"allow", RulesToJson(policy.allow)},
                      {"deny", RulesToJson(policy.deny)},
                      {"host_access", policy.host_access},
                      {"public_traffic", traffic_token.empty()}};
  if (with_token && !traffic_token.empty()) j["traffic_token"] = traffic_token;
  return j;
}

Result<NetworkSettings> NetworkSettings::FromStored(const std::string& text) {
  NetworkSettings s;
  if (text.empty()) return s;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return Internal("stored network settings are not JSON");
  std::string token = j.value("traffic_token", "");
  j.erase("traffic_token");
  j.erase("public_traffic");
  PDK_TRY(s.Merge(j));
  s.traffic_token = token;
  return s;
}

}  // namespace paddock::net
