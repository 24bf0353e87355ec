#include "init/ring_buffer.h"

#include <gtest/gtest.h>

namespace paddock::init {
namespace {

std::string Collect(const OutputRing& r, uint64_t from) {
  std::string out;
  r.ReadFrom(from, [&](Stream, uint64_t, std::string_view d) { out += d; });
  return out;
}

TEST(OutputRingTest, KeepsTheNewestBytesAddressedByOffset) {
  OutputRing r(10);
  EXPECT_EQ(r.Append(Stream::kStdout, "hello"), 0u);
  EXPECT_EQ(r.Append(Stream::kStderr, "world"), 5u);
  EXPECT_EQ(Collect(r, 0), "helloworld");
  EXPECT_EQ(Collect(r, 7), "rld");
  r.Append(Stream::kStdout, "!!!");
  EXPECT_EQ(r.first_offset(), 3u);
  EXPECT_EQ(r.end_offset(), 13u);
  EXPECT_EQ(Collect(r, 0), "loworld!!!");
  EXPECT_EQ(Collect(r, 13), "");
}

TEST(OutputRingTest, ReportsStreamsAndOffsets) {
  OutputRing r(1 << 20);
  r.Append(Stream::kStdout, "a");
  r.Append(Stream::kStderr, "b");
  std::vector<std::pair<Stream, uint64_t>> seen;
  r.ReadFrom(0, [&](Stream s, uint64_t off, std::string_view) { seen.emplace_back(s, off); });
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_pair(Stream::kStdout, uint64_t{0}));
  EXPECT_EQ(seen[1], std::make_pair(Stream::kStderr, uint64_t{1}));
}

}  // namespace
}  // namespace paddock::init
