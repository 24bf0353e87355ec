// What the parts of E2bApi (e2b_api.cc, e2b_templates.cc) share.
#pragma once

#include "api/e2b_api.h"
#include "api/http_server.h"
#include "api/http_util.h"
#include "base/status.h"

namespace paddock::api {

struct E2bApi::Call {
  Request& req;
  StreamWriter& out;
  Target target;
  SandboxInfo sandbox;  // envd calls: the sandbox addressed
  std::string user;     // envd calls: who the operation runs as
};

namespace e2b {

// E2B's error body: {"code": <HTTP status>, "message": ...}.
inline Response E2bError(const Status& s, const Request& req) {
  http::status status = HttpStatusFor(s.code());
  return JsonResponse(status, {{"code", static_cast<int>(status)}, {"message", s.message()}}, req);
}

// Runs `fn`, turning a Status into E2B's error response.
template <typename Fn>
Response Try(const Request& req, Fn fn) {
  Result<Response> r = fn();
  if (!r.ok()) return E2bError(r.status(), req);
  return std::move(r).value();
}

}  // namespace e2b
}  // namespace paddock::api
