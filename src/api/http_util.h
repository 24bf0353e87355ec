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

// The sandbox and port a request names by host, "{port}-{id}.{domain}", or
// by E2B's E2b-Sandbox-Id and E2b-Sandbox-Port headers (the port defaults
// to envd's). Empty id: neither.
struct SandboxPort {
  std::string id;
  std::string port;
};
SandboxPort AddressedSandboxPort(const Request& req);
constexpr const char* kEnvdPort = "49983";

// Compares in time that does not depend on where the strings differ.
bool SameSecret(const std::string& given, const std::string& secret);
// The token of an `Authorization: Bearer TOKEN` header; empty if none.
std::string BearerToken(const Request& req);

Response JsonResponse(http::status status, const nlohmann::json& body, const Request& req);
Response EmptyResponse(http::status status, const Request& req);

}  // namespace paddock::api
