// The Connect protocol (connectrpc.com/docs/protocol), JSON codec only: what
// the E2B SDK speaks to a sandbox's envd. Unary calls are plain JSON POSTs;
// streams are "enveloped": each message is 1 flag byte, a 4-byte big-endian
// length and the JSON; the last one (flag 0x02) ends the stream and carries
// the error, if any.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "api/http_server.h"
#include "base/status.h"

namespace paddock::api::connect {

using json = nlohmann::json;

constexpr uint8_t kEndStream = 0x02;
constexpr uint8_t kCompressed = 0x01;

// The Connect error code name for a status ("not_found", ...).
const char* CodeName(StatusCode code);
// {"code": ..., "message": ...}
json ErrorJson(const Status& s);
// A unary call's error: the code's HTTP status and the JSON error body.
Response UnaryError(const Status& s, const Request& req);
Response UnaryOk(const json& message, const Request& req);

// A whole stream answered at once (HTTP 200): `envelopes`, ending with EndOfStream.
Response StreamReply(std::string envelopes, const Request& req);

// One enveloped message.
std::string Envelope(const json& message, uint8_t flags = 0);
// The stream's last envelope: {} or {"error": ...}.
std::string EndOfStream(const Status& s);
// Splits a request body into the JSON messages of its envelopes; rejects
// truncated or compressed envelopes and bad JSON with kInvalidArgument.
Result<std::vector<json>> ParseEnvelopes(std::string_view body);

// Standard base64 (what proto3 JSON uses for bytes).
std::string Base64Encode(std::string_view data);
Result<std::string> Base64Decode(std::string_view text);

}  // namespace paddock::api::connect
