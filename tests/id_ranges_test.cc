#include "sandbox/id_ranges.h"

#include <gtest/gtest.h>

#include <optional>

namespace paddock {
namespace {

constexpr uint32_t kBase = 1u << 30;

TEST(IdRangesTest, LeasesHandOutEachRangeOnceAndGiveItBackWhenTheyGo) {
  IdRanges ranges(kBase, 2);
  auto a = ranges.Reserve();
  auto b = ranges.Reserve();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->host_first(), kBase);
  EXPECT_EQ(b->host_first(), kBase + IdRanges::kIdsPerRange);
  auto none = ranges.Reserve();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(none.status().message().find("all 2 id ranges are in use"), std::string::npos);

  IdRanges::Lease moved = std::move(*a);  // the range goes with the lease, not twice
  EXPECT_FALSE(*a);
  *a = IdRanges::Lease();
  EXPECT_FALSE(ranges.Reserve().ok());
  moved = IdRanges::Lease();
  auto again = ranges.Reserve();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->host_first(), kBase);
}

TEST(IdRangesTest, AnAbandonedRangeStaysTaken) {
  IdRanges ranges(kBase, 1);
  {
    auto a = ranges.Reserve();
    ASSERT_TRUE(a.ok());
    a->Abandon();
  }
  EXPECT_FALSE(ranges.Reserve().ok());
}

TEST(IdRangesTest, ClaimTakesARecordedRangeAndRefusesOneHeldOrOutside) {
  IdRanges ranges(kBase, 4);
  auto claimed = ranges.Claim(kBase + 2 * IdRanges::kIdsPerRange);
  ASSERT_TRUE(claimed.ok());
  auto twice = ranges.Claim(kBase + 2 * IdRanges::kIdsPerRange);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("held twice"), std::string::npos);
  for (uint32_t outside : {kBase - IdRanges::kIdsPerRange, kBase + 4 * IdRanges::kIdsPerRange, kBase + 5}) {
    auto r = ranges.Claim(outside);
    ASSERT_FALSE(r.ok()) << outside;
    EXPECT_NE(r.status().message().find("outside this host's pool"), std::string::npos);
  }
  // Reserve skips the claimed range.
  std::vector<uint32_t> got;
  for (;;) {
    auto r = ranges.Reserve();
    if (!r.ok()) break;
    got.push_back(r->host_first());
    r->Abandon();
  }
  EXPECT_EQ(got, (std::vector<uint32_t>{kBase, kBase + IdRanges::kIdsPerRange, kBase + 3 * IdRanges::kIdsPerRange}));
}

TEST(IdRangesTest, ALeaseMayOutliveItsPool) {
  std::optional<IdRanges::Lease> lease;
  {
    IdRanges ranges(kBase, 1);
    auto r = ranges.Reserve();
    ASSERT_TRUE(r.ok());
    lease = std::move(*r);
  }
  lease.reset();  // gives back to a pool only the lease still holds
}

}  // namespace
}  // namespace paddock
