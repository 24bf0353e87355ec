// What the agent's request handlers share: the reply they produce and the way
// they push events to connected clients.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "agent/protocol.h"

namespace paddock::init {

using agent::json;

// A connection's identity; 0 is never used.
using ConnId = uint64_t;

struct Reply {
  json body = json::object();
  std::string payload;
  // Runs after the reply is queued: events that must follow it (replayed output).
  std::function<void()> after;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Queues an event frame to `conn`; silently drops it if the connection is gone.
  virtual void Emit(ConnId conn, const json& event, std::string_view payload = {}) = 0;
  // Bytes queued for `conn` and not yet sent; 0 once it is gone.
  virtual size_t Backlog(ConnId conn) const = 0;
};

}  // namespace paddock::init
