// Server-sent events: one event is "event: NAME\ndata: JSON\n\n".
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace paddock::api {

inline std::string SseEvent(const std::string& name, const nlohmann::json& data) {
  return "event: " + name + "\ndata: " +
         data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
}

}  // namespace paddock::api
