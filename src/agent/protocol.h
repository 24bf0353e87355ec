// The agent protocol between paddockd and paddock-init, over a unix stream socket.
//
// Every message is one frame:
//   u32 header_len | u32 payload_len | header (JSON object) | payload (raw bytes)
// lengths big-endian. Bulk bytes (process output, stdin, file contents) ride in
// the payload, so they are never base64-encoded. docs/agent-protocol.md lists
// the operations.
//
// Requests carry "id" and "op"; each gets exactly one reply with the same "id"
// and "ok" (true, or false with "error": {"code", "message"}). Events carry
// "event" and no "id".
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace paddock::agent {

using json = nlohmann::json;

inline constexpr size_t kMaxHeaderBytes = size_t{1} << 20;
inline constexpr size_t kMaxPayloadBytes = size_t{16} << 20;
inline constexpr size_t kFramePrefixBytes = 8;

struct Frame {
  json header;
  std::string payload;
};

std::string EncodeFrame(const json& header, std::string_view payload = {});

// Reply helpers.
json OkReply(const json& request_id);
json ErrorReply(const json& request_id, const Status& status);
// Turns an error reply back into a Status (ok for an ok reply).
Status StatusFromReply(const json& reply);

// Incremental decoder. A frame that is too large or whose header is not a JSON
// object is reported as an error and skipped; the stream stays in sync, so one
// bad frame never poisons the connection.
class FrameDecoder {
 public:
  void Feed(const char* data, size_t n);
  // The next frame, an error for a bad frame, or nullopt when more bytes are needed.
  std::optional<Result<Frame>> Next();
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  size_t skip_ = 0;  // bytes of an oversized frame still to discard
};

}  // namespace paddock::agent
