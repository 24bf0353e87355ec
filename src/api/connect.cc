#include "api/connect.h"

#include "api/http_util.h"

namespace paddock::api::connect {

const char* CodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kAlreadyExists: return "already_exists";
    case StatusCode::kPermissionDenied: return "permission_denied";
    case StatusCode::kFailedPrecondition: return "failed_precondition";
    case StatusCode::kResourceExhausted: return "resource_exhausted";
    case StatusCode::kUnimplemented: return "unimplemented";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kDeadlineExceeded: return "deadline_exceeded";
    case StatusCode::kUnauthenticated: return "unauthenticated";
    case StatusCode::kDataLoss: return "data_loss";
    default: return "internal";
  }
}

namespace {

// The HTTP status the Connect spec gives each code for unary errors.
http::status HttpStatus(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition: return http::status::bad_request;
    case StatusCode::kNotFound: return http::status::not_found;
    case StatusCode::kAlreadyExists: return http::status::conflict;
    case StatusCode::kPermissionDenied: return http::status::forbidden;
    case StatusCode::kResourceExhausted: return http::status::too_many_requests;
    case StatusCode::kUnimplemented: return http::status::not_implemented;
    case StatusCode::kUnavailable: return http::status::service_unavailable;
    case StatusCode::kDeadlineExceeded: return http::status::gateway_timeout;
    case StatusCode::kUnauthenticated: return http::status::unauthorized;
    default: return http::status::internal_server_error;
  }
}


constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

json ErrorJson(const Status& s) { return {{"code", CodeName(s.code())}, {"message", s.ToString()}}; }

Response UnaryError(const Status& s, const Request& req) {
  return JsonResponse(HttpStatus(s.code()), ErrorJson(s), req);
}

Response UnaryOk(const json& message, const Request& req) {
  return JsonResponse(http::status::ok, message, req);
}

Response StreamReply(std::string envelopes, const Request& req) {
  Response res{http::status::ok, req.version()};
  res.set(http::field::content_type, "application/connect+json");
  res.keep_alive(req.keep_alive());
  res.body() = std::move(envelopes);
  res.prepare_payload();
  return res;
}

std::string Envelope(const json& message, uint8_t flags) {
  std::string data = message.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out(5, '\0');
  out[0] = static_cast<char>(flags);
  uint32_t n = static_cast<uint32_t>(data.size());
  for (int i = 0; i < 4; ++i) out[1 + i] = static_cast<char>((n >> (24 - 8 * i)) & 0xff);
  return out + data;
}

std::string EndOfStream(const Status& s) {
  return Envelope(s.ok() ? json::object() : json{{"error", ErrorJson(s)}}, kEndStream);
}

Result<std::vector<json>> ParseEnvelopes(std::string_view body) {
  std::vector<json> out;
  while (!body.empty()) {
    if (body.size() < 5) return InvalidArgument("truncated Connect envelope: fewer than 5 header bytes");
    uint8_t flags = static_cast<uint8_t>(body[0]);
    uint32_t n = 0;
    for (int i = 1; i <= 4; ++i) n = (n << 8) | static_cast<uint8_t>(body[i]);
    if (body.size() - 5 < n)
      return InvalidArgument("truncated Connect envelope: " + std::to_string(n) + " bytes announced, " +
                             std::to_string(body.size() - 5) + " sent");
    if (flags & kCompressed) return InvalidArgument("compressed Connect envelopes are not supported");
    json message = json::parse(body.substr(5, n), nullptr, false);
    if (message.is_discarded() || !message.is_object())
      return InvalidArgument("a Connect envelope does not hold a JSON object");
    if (!(flags & kEndStream)) out.push_back(std::move(message));
    body.remove_prefix(5 + n);
  }
  return out;
}

std::string Base64Encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    uint32_t v = (uint8_t(data[i]) << 16) | (uint8_t(data[i + 1]) << 8) | uint8_t(data[i + 2]);
    for (int k = 3; k >= 0; --k) out += kAlphabet[(v >> (6 * k)) & 63];
  }
  if (i < data.size()) {
    uint32_t v = uint8_t(data[i]) << 16;
    if (i + 1 < data.size()) v |= uint8_t(data[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < data.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Accepts the standard and URL-safe alphabets, with or without padding.
Result<std::string> Base64Decode(std::string_view text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else if (c == '=') break;
    else return InvalidArgument("invalid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace paddock::api::connect
