// PortProxy: HTTP to the ports of sandboxes, through paddockd.
//
//   Host: {port}-{id}.{domain}             public (E2B's getHost form); a
//                                          sandbox with a traffic token wants
//                                          it in e2b-traffic-access-token
//   /v1/sandboxes/{id}/ports/{port}/...    behind the API key; the prefix
//                                          is stripped
//
// The proxy only decides (PortProxy::Decide, on the HTTP server's I/O
// thread, without blocking); the server relays (HttpRelay): responses are
// streamed back as they are produced (chunked, server-sent events, long
// polls), an upgrade (WebSocket) turns the connection into a tunnel, and
// connections to sandboxes are kept alive and reused. When nothing answers,
// the client gets a 502 naming the sandbox and the port.
#pragma once

#include <optional>
#include <string>

#include "api/http_server.h"
#include "sandbox/manager.h"

namespace paddock::api {

struct PortRoute {
  std::string sandbox;
  uint16_t port = 0;
  std::string target;  // the request target the sandbox sees
  bool by_path = false;
};

class PortProxy {
 public:
  // `api_key`: Paddock's own, never passed on to a sandbox.
  PortProxy(SandboxManager* manager, std::string api_key)
      : manager_(manager), api_key_(std::move(api_key)) {}

  // The sandbox port `req` is for, if it is for one (envd's port is not:
  // the E2B API serves it).
  static std::optional<PortRoute> Route(const Request& req);
  // Host-name requests bring their own credentials (a traffic token, where
  // the sandbox has one) instead of the API key.
  static bool IsPublic(const Request& req);

  // The HTTP server's Router: for a request to a sandbox port, the target to
  // relay it to (the request rewritten for the sandbox: its own path, no
  // Paddock credentials, X-Forwarded-*), or an error response; nothing for
  // any other request. An Authorization header goes on to the sandbox's app
  // on the host form, unless it carries Paddock's API key.
  RouteResult Decide(Request& req, const std::string& client) const;

 private:
  SandboxManager* manager_;
  std::string api_key_;
};

}  // namespace paddock::api
