// PortProxy: HTTP to the ports of sandboxes, through paddockd.
//
//   Host: {port}-{id}.{domain}             public (E2B's getHost form); a
//                                          sandbox with a traffic token wants
//                                          it in e2b-traffic-access-token
//   /v1/sandboxes/{id}/ports/{port}/...    behind the API key; the prefix
//                                          is stripped
//
// Requests are relayed as they come, responses streamed back as they are
// produced (chunked, server-sent events, long polls). An upgrade (WebSocket)
// turns the connection into a tunnel. Connections to sandboxes are kept
// alive and reused. When nothing answers, the client gets a 502 naming the
// sandbox and the port.
//
// Each relayed request, and each tunnel for its life, holds one of the HTTP
// server's workers.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "api/http_server.h"
#include "base/fd.h"
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
  explicit PortProxy(SandboxManager* manager) : manager_(manager) {}

  // The sandbox port `req` is for, if it is for one (envd's port is not:
  // the E2B API serves it).
  static std::optional<PortRoute> Route(const Request& req);
  // Host-name requests bring their own credentials (a traffic token, where
  // the sandbox has one) instead of the API key.
  static bool IsPublic(const Request& req);

  // Relays `req` to the sandbox port `route` (Route's answer for it);
  // returns an error response, or nullopt once it has relayed through `conn`.
  std::optional<Response> Serve(const PortRoute& route, Request& req, StreamWriter& conn);

 private:
  struct Upstream {
    UniqueFd fd;
    bool reused = false;
  };
  Result<Upstream> Connect(const std::string& key, const std::string& ip, uint16_t port);
  void GiveBack(const std::string& key, UniqueFd fd);

  SandboxManager* manager_;
  std::mutex idle_mu_;  // guards idle_
  std::map<std::string, std::vector<UniqueFd>> idle_;  // by sandbox id:address:port
};

}  // namespace paddock::api
