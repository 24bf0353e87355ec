#include "api/http_util.h"

#include <algorithm>
#include <cctype>

namespace paddock::api {

std::string UrlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string Target::Q(const std::string& key, const std::string& def) const {
  auto it = query.find(key);
  return it == query.end() ? def : it->second;
}

Target ParseTarget(std::string_view target) {
  Target t;
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) t.path.push_back(UrlDecode(path.substr(i, j - i)));
    i = j + 1;
  }
  if (q == std::string_view::npos) return t;
  std::string_view qs = target.substr(q + 1);
  i = 0;
  while (i <= qs.size()) {
    size_t j = qs.find('&', i);
    if (j == std::string_view::npos) j = qs.size();
    std::string_view pair = qs.substr(i, j - i);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      t.query.emplace(UrlDecode(pair.substr(0, eq)),
                      eq == std::string_view::npos ? "" : UrlDecode(pair.substr(eq + 1)));
    }
    i = j + 1;
  }
  return t;
}

Result<nlohmann::json> JsonObjectBody(const Request& req, bool required) {
  if (req.body().empty()) {
    if (required) return InvalidArgument("request body must be a JSON object");
    return nlohmann::json::object();
  }
  nlohmann::json j = nlohmann::json::parse(req.body(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("request body is not a JSON object");
  return j;
}

bool SameSecret(const std::string& given, const std::string& secret) {
  unsigned char diff = given.size() != secret.size();
  for (size_t i = 0; i < secret.size(); ++i)
    diff |= static_cast<unsigned char>(i < given.size() ? given[i] ^ secret[i] : 1);
  return diff == 0;
}

std::string BearerToken(const Request& req) {
  std::string_view value(req[http::field::authorization].data(), req[http::field::authorization].size());
  return value.rfind("Bearer ", 0) == 0 ? std::string(value.substr(7)) : std::string();
}

SandboxPort AddressedSandboxPort(const Request& req) {
  std::string id(req["E2b-Sandbox-Id"]);
  std::string port(req["E2b-Sandbox-Port"]);
  if (!id.empty()) return {id, port.empty() ? kEnvdPort : port};
  std::string host(req[http::field::host]);
  size_t dash = host.find('-'), dot = host.find('.');
  if (dash == std::string::npos || dot == std::string::npos || dash == 0 || dot < dash) return {};
  std::string p = host.substr(0, dash);
  if (!std::all_of(p.begin(), p.end(), [](unsigned char c) { return std::isdigit(c); })) return {};
  return {host.substr(dash + 1, dot - dash - 1), p};
}

Response JsonResponse(http::status status, const nlohmann::json& body, const Request& req) {
  Response res{status, req.version()};
  res.set(http::field::content_type, "application/json");
  res.keep_alive(req.keep_alive());
  res.body() = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  res.prepare_payload();
  return res;
}

Response EmptyResponse(http::status status, const Request& req) {
  Response res{status, req.version()};
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  return res;
}

}  // namespace paddock::api
