#include "api/port_proxy.h"

#include <charconv>

#include "api/http_util.h"

namespace paddock::api {
namespace {

constexpr const char* kTokenHeader = "e2b-traffic-access-token";

std::optional<uint16_t> ParsePort(std::string_view s) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

}  // namespace

std::optional<PortRoute> PortProxy::Route(const Request& req) {
  SandboxPort addressed = AddressedSandboxPort(req);
  if (!addressed.id.empty()) {
    auto port = ParsePort(addressed.port);
    if (addressed.port == kEnvdPort || !port) return std::nullopt;
    return PortRoute{addressed.id, *port, std::string(req.target()), false};
  }
  // /v1/sandboxes/{id}/ports/{port}[/rest][?query]
  std::string_view t(req.target().data(), req.target().size());
  constexpr std::string_view kPrefix = "/v1/sandboxes/";
  if (t.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string_view rest = t.substr(kPrefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string id(rest.substr(0, slash));
  rest = rest.substr(slash);
  constexpr std::string_view kPorts = "/ports/";
  if (rest.substr(0, kPorts.size()) != kPorts) return std::nullopt;
  rest = rest.substr(kPorts.size());
  size_t end = rest.find_first_of("/?");
  auto port = ParsePort(rest.substr(0, end));
  if (!port) return std::nullopt;
  std::string target(end == std::string_view::npos ? "" : rest.substr(end));
  if (target.empty() || target[0] != '/') target = "/" + target;
  return PortRoute{id, *port, target, true};
}

bool PortProxy::IsPublic(const Request& req) {
  auto route = Route(req);
  return route && !route->by_path;
}

RouteResult PortProxy::Decide(Request& req, const std::string& client) const {
  auto route = Route(req);
  if (!route) return std::monostate();
  auto sandbox = manager_->Endpoint(route->sandbox);
  if (!sandbox.ok()) return ErrorResponse(sandbox.status(), req.version(), req.keep_alive());
  const std::string where = "port " + std::to_string(route->port) + " of sandbox " + sandbox->id;
  if (!route->by_path && !sandbox->traffic_token.empty() &&
      !SameSecret(std::string(req[kTokenHeader]), sandbox->traffic_token))
    return ErrorResponse(Status(StatusCode::kUnauthenticated,
                                where + " wants the sandbox's traffic token in header " + kTokenHeader),
                         req.version(), req.keep_alive());
  if (sandbox->state != SandboxState::kRunning)
    return BadGatewayResponse(where + " cannot be reached: the sandbox is " + SandboxStateName(sandbox->state),
                              req);
  beast::error_code ec;
  auto address = net::ip::make_address_v4(sandbox->address, ec);
  if (sandbox->address.empty() || ec)
    return BadGatewayResponse(where + " cannot be reached: the sandbox has no network", req);

  req.target(route->target);
  req.erase(kTokenHeader);
  req.erase("X-API-Key");
  if (route->by_path || (!api_key_.empty() && SameSecret(BearerToken(req), api_key_)))
    req.erase(http::field::authorization);
  if (!client.empty()) req.set("X-Forwarded-For", client);
  req.set("X-Forwarded-Proto", "http");
  if (!req[http::field::host].empty()) req.set("X-Forwarded-Host", req[http::field::host]);
  return RelayTarget{{address, route->port},
                     where,
                     sandbox->id + "|" + sandbox->address + ":" + std::to_string(route->port)};
}

}  // namespace paddock::api
