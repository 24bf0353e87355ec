// Forwarder: raw TCP from host ports to sandbox ports (SSH, databases,
// anything that is not HTTP).
//
// Each forward is a listening socket on the host. A connection to it is
// joined to the sandbox's port at its current address, looked up when the
// connection arrives (a stopped and restarted sandbox keeps its forwards but
// may have a new address); while the sandbox is not running, or nothing
// listens on the port, the connection is reset. Bytes are copied both ways
// on one I/O thread until either side closes, or both are quiet for an hour.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"
#include "net/address.h"

namespace paddock::net {

struct PortForward {
  uint16_t port = 0;                 // in the sandbox
  uint16_t host_port = 0;            // on the host; 0 at creation: any free one
  std::string bind = "127.0.0.1";    // the host address it listens on (IPv4)

  // {"port": 5432, "host_port": 15432, "bind": "127.0.0.1"}; only port is required.
  static Result<PortForward> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

class Forwarder {
 public:
  // Where a sandbox's port is now: its address if it is running, nothing if not.
  using Resolve = std::function<std::optional<Ipv4>(const std::string& sandbox)>;

  explicit Forwarder(Resolve resolve);
  ~Forwarder();  // closes every listener and connection

  // Listens for `sandbox`; returns the forward with the host port bound.
  // AlreadyExists if the host port is taken, InvalidArgument if `bind` is
  // not an address of this host.
  Result<PortForward> Open(const std::string& sandbox, PortForward forward);
  // Stops listening on `host_port` (and `bind`), which is free again on
  // return; open connections go on.
  void Close(const std::string& bind, uint16_t host_port);
  size_t listening() const;
  size_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Serializes a sandbox's forwards for its record, and back.
std::string ForwardsToStored(const std::vector<PortForward>& forwards);
std::vector<PortForward> ForwardsFromStored(const std::string& text);

}  // namespace paddock::net
