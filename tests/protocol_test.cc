#include "agent/protocol.h"

#include <gtest/gtest.h>

namespace paddock::agent {
namespace {

TEST(ProtocolTest, RoundTripsFramesFedByteByByte) {
  std::string wire = EncodeFrame({{"op", "ping"}, {"id", 1}}) +
                     EncodeFrame({{"event", "output"}}, std::string("\0bin\xff", 5));
  FrameDecoder d;
  std::vector<Frame> got;
  for (char c : wire) {
    d.Feed(&c, 1);
    while (auto f = d.Next()) {
      ASSERT_TRUE(f->ok());
      got.push_back(std::move(*f).value());
    }
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].header["op"], "ping");
  EXPECT_EQ(got[1].payload, std::string("\0bin\xff", 5));
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(ProtocolTest, MalformedHeaderIsAnErrorAndTheStreamStaysInSync) {
  std::string bad = "{not json";
  std::string wire;
  uint32_t n = static_cast<uint32_t>(bad.size());
  wire += std::string{char(n >> 24), char(n >> 16), char(n >> 8), char(n)};
  wire += std::string(4, '\0');
  wire += bad;
  wire += EncodeFrame({{"op", "after"}});
  FrameDecoder d;
  d.Feed(wire.data(), wire.size());
  auto first = d.Next();
  ASSERT_TRUE(first && !first->ok());
  EXPECT_EQ(first->status().code(), StatusCode::kInvalidArgument);
  auto second = d.Next();
  ASSERT_TRUE(second && second->ok());
  EXPECT_EQ((*second)->header["op"], "after");
}

TEST(ProtocolTest, OversizedFrameIsSkippedWithoutBufferingIt) {
  FrameDecoder d;
  uint32_t big = static_cast<uint32_t>(kMaxPayloadBytes + 1);
  std::string prefix = {0, 0, 0, 2, char(big >> 24), char(big >> 16), char(big >> 8), char(big)};
  prefix += "{}";
  d.Feed(prefix.data(), prefix.size());
  auto err = d.Next();
  ASSERT_TRUE(err && !err->ok());
  EXPECT_EQ(err->status().code(), StatusCode::kResourceExhausted);
  std::string chunk(1 << 20, 'x');
  for (size_t sent = 0; sent < big; sent += chunk.size())
    d.Feed(chunk.data(), std::min(chunk.size(), size_t{big} - sent));
  EXPECT_LE(d.buffered(), size_t{1} << 20);
  std::string next = EncodeFrame({{"op", "ok"}});
  d.Feed(next.data(), next.size());
  auto f = d.Next();
  ASSERT_TRUE(f && f->ok());
  EXPECT_EQ((*f)->header["op"], "ok");
}

TEST(ProtocolTest, ErrorRepliesMapBackToStatus) {
  json reply = ErrorReply(7, NotFound("no process with pid 9"));
  Status s = StatusFromReply(reply);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "no process with pid 9");
  EXPECT_TRUE(StatusFromReply(OkReply(7)).ok());
}

}  // namespace
}  // namespace paddock::agent
