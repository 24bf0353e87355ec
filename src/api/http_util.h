// Small HTTP helpers shared by the REST and E2B APIs.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_server.h"
#include "base/status.h"

namespace paddock::api {

// Percent-decoding, with '+' as a space (query strings).
std::string UrlDecode(std::string_view s);

// A request target split into decoded path segments and query parameters.
struct Target {
  std::vector<std::string> path;
  std::multimap<std::string, std::string> query;  // every value, in order
  // The first value of `key`, or `def`.
  std::string Q(const std::string& key, const std::string& def = "") const;
  bool Has(const std::string& key) const { return query.count(key) > 0; }
};
Target ParseTarget(std::string_view target);
inline Target ParseTarget(const Request& req) {
  return ParseTarget(std::string_view(req.target().data(), req.target().size()));
}

// The request body as a JSON object; an empty body is {} unless `required`.
Result<nlohmann::json> JsonObjectBody(const Request& req, bool required = false);

Response JsonResponse(http::status status, const nlohmann::json& body, const Request& req);
Response EmptyResponse(http::status status, const Request& req);

}  // namespace paddock::api
