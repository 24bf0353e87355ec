// The launch message between paddockd and a waiting paddock-init.
#include <gtest/gtest.h>

#include <cstring>

#include "kernel/launch.h"

namespace paddock::kernel {
namespace {

LaunchSpec Sample() {
  LaunchSpec l;
  l.hostname = "box";
  l.files = {{"/etc/hostname", "box\n"}, {"/etc/empty", ""}};
  l.symlinks = {{"/dev/nvidia0", "/dev/dri/card0"}};
  l.chmods = {{"/dev/nvidia0", 0660}};
  return l;
}

constexpr uint64_t kCaps = 0xa80425fb;

TEST(LaunchTest, WhatIsEncodedDecodesTheSame) {
  auto msg = EncodeLaunch(Sample(), kCaps);
  ASSERT_TRUE(msg.ok()) << msg.status().ToString();
  uint64_t caps = 0;
  auto back = DecodeLaunch(*msg, &caps);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->hostname, "box");
  EXPECT_EQ(back->files, Sample().files);
  EXPECT_EQ(back->symlinks, Sample().symlinks);
  EXPECT_EQ(back->chmods, Sample().chmods);
  EXPECT_EQ(caps, kCaps);
}

TEST(LaunchTest, StringsWithNulAndMessagesOverTheLimitAreRefused) {
  LaunchSpec nul = Sample();
  nul.files[0].second = std::string("a\0b", 3);
  EXPECT_EQ(EncodeLaunch(nul, kCaps).status().message(), "launch strings hold no NUL");
  LaunchSpec big = Sample();
  big.files.emplace_back("/etc/big", std::string(kLaunchBytes, 'x'));
  EXPECT_EQ(EncodeLaunch(big, kCaps).status().message(), "launch message over 16 KiB");
}

TEST(LaunchTest, CutOrLyingMessagesAreRefusedWithoutReadingPastTheirEnd) {
  std::string msg = EncodeLaunch(Sample(), kCaps).value();
  uint64_t caps = 0;
  for (size_t cut = 0; cut < msg.size(); ++cut)
    EXPECT_FALSE(DecodeLaunch(msg.substr(0, cut), &caps).ok()) << "cut at " << cut;
  std::string lying = msg;
  uint32_t many = 0xffffffff;
  std::memcpy(lying.data() + sizeof(uint64_t), &many, sizeof many);  // file_count
  EXPECT_EQ(DecodeLaunch(lying, &caps).status().message(), "launch message counts more entries than it holds");
}

}  // namespace
}  // namespace paddock::kernel
