#include "agent/protocol.h"
#include "base/json_field.h"

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

// What a compromised agent could put in a reply: fields of the wrong type
// read as absent, never an exception out of the host's code.
TEST(ProtocolTest, RepliesWithFieldsOfTheWrongTypeAreReadAsAbsent) {
  EXPECT_FALSE(StatusFromReply({{"ok", "yes"}}).ok());
  Status s = StatusFromReply({{"ok", false}, {"error", {{"code", 5}, {"message", {1, 2}}}}});
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(s.message(), "agent error");
  EXPECT_EQ(StatusFromReply({{"ok", false}, {"error", "text"}}).code(), StatusCode::kInternal);
}

TEST(JsonFieldTest, TakesOnlyAValueOfTheAskedTypeAndRange) {
  json j = {{"s", "text"}, {"i", -3},        {"u", 4000000000u}, {"big", 1e300},
            {"b", true},   {"n", nullptr},   {"a", {1, 2}}};
  EXPECT_EQ(Field(j, "s", ""), "text");
  EXPECT_EQ(Field(j, "i", ""), "");        // a number is not a string
  EXPECT_EQ(Field(j, "i", 0), -3);
  EXPECT_EQ(Field(j, "s", 7), 7);          // nor a string a number
  EXPECT_EQ(Field(j, "u", 0), 0);          // 4e9 does not fit an int
  EXPECT_EQ(Field(j, "u", int64_t{0}), 4000000000);
  EXPECT_EQ(Field(j, "i", 0u), 0u);        // nor -3 an unsigned
  EXPECT_EQ(Field(j, "big", 1), 1);        // no float made an integer
  EXPECT_EQ(Field(j, "b", false), true);
  EXPECT_EQ(Field(j, "i", false), false);  // nor a number a bool
  EXPECT_EQ(Field(j, "n", "x"), "x");
  EXPECT_EQ(Field(j, "a", json::array()).size(), 2u);
  EXPECT_EQ(Field(j, "missing", 9), 9);
  EXPECT_EQ(Field(json("not an object"), "s", "fallback"), "fallback");
}

}  // namespace
}  // namespace paddock::agent
