#include "agent/protocol.h"

#include <cstring>

#include "base/json_field.h"

namespace paddock::agent {

static void PutU32(std::string& out, uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out.append(b, 4);
}

static uint32_t GetU32(const char* p) {
  auto u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} << 24 | uint32_t{u[1]} << 16 | uint32_t{u[2]} << 8 | u[3];
}

std::string EncodeFrame(const json& header, std::string_view payload) {
  std::string h = header.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(kFramePrefixBytes + h.size() + payload.size());
  PutU32(out, static_cast<uint32_t>(h.size()));
  PutU32(out, static_cast<uint32_t>(payload.size()));
  out += h;
  out.append(payload.data(), payload.size());
  return out;
}

json OkReply(const json& request_id) { return json{{"id", request_id}, {"ok", true}}; }

json ErrorReply(const json& request_id, const Status& status) {
  return json{{"id", request_id},
              {"ok", false},
              {"error", {{"code", StatusCodeName(status.code())}, {"message", status.message()}}}};
}

Status StatusFromReply(const json& reply) {
  if (Field(reply, "ok", false)) return Status::Ok();
  const json& err = reply.contains("error") ? reply["error"] : json::object();
  std::string code = err.is_object() ? Field(err, "code", "internal") : "internal";
  std::string message = err.is_object() ? Field(err, "message", "agent error") : "agent error";
  return Status(StatusCodeFromName(code), message);
}

void FrameDecoder::Feed(const char* data, size_t n) {
  if (skip_ > 0) {
    size_t s = n < skip_ ? n : skip_;
    skip_ -= s;
    data += s;
    n -= s;
  }
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > (size_t{1} << 20) && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(data, n);
}

std::optional<Result<Frame>> FrameDecoder::Next() {
  if (skip_ > 0 || buffered() < kFramePrefixBytes) return std::nullopt;
  const char* p = buf_.data() + pos_;
  size_t hlen = GetU32(p);
  size_t plen = GetU32(p + 4);
  if (hlen > kMaxHeaderBytes || plen > kMaxPayloadBytes) {
    size_t total = kFramePrefixBytes + hlen + plen;
    size_t have = buffered();
    if (have >= total) {
      pos_ += total;
    } else {
      skip_ = total - have;
      pos_ = buf_.size();
    }
    return Result<Frame>(ResourceExhausted(
        "frame too large: header " + std::to_string(hlen) + " bytes (max " +
        std::to_string(kMaxHeaderBytes) + "), payload " + std::to_string(plen) + " bytes (max " +
        std::to_string(kMaxPayloadBytes) + ")"));
  }
  if (buffered() < kFramePrefixBytes + hlen + plen) return std::nullopt;
  const char* h = p + kFramePrefixBytes;
  Frame f;
  f.header = json::parse(h, h + hlen, nullptr, /*allow_exceptions=*/false);
  f.payload.assign(h + hlen, plen);
  pos_ += kFramePrefixBytes + hlen + plen;
  if (f.header.is_discarded() || !f.header.is_object())
    return Result<Frame>(InvalidArgument("malformed frame: header is not a JSON object"));
  return Result<Frame>(std::move(f));
}

}  // namespace paddock::agent
