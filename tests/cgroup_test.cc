// The cgroup drivers on their own: the detected one, and v2 over whatever
// cgroup2 mount this host has (on hybrid hosts, the controller-less tree).
#include <signal.h>
#include <sys/wait.h>

#include "kernel/cgroup.h"
#include "sandbox_fixture.h"

namespace paddock::testing {
namespace {

using kernel::CgroupDriver;

void FreezeKillAndRemove(CgroupDriver& driver) {
  HostSnapshot before = TakeHostSnapshot();
  auto cg = driver.Create("pdk-test-cg", {});
  ASSERT_TRUE(cg.ok()) << cg.status().ToString();
  // The leak check sees it, whichever layout this driver uses.
  EXPECT_NE(DescribeLeaks(before, TakeHostSnapshot()).find("leaked cgroup: "), std::string::npos);
  pid_t child = ::fork();
  if (child == 0) {
    for (;;) ::pause();
  }
  ASSERT_TRUE((*cg)->AddProcess(child).ok());
  EXPECT_EQ(*(*cg)->Pids(), std::vector<pid_t>{child});
  ASSERT_TRUE((*cg)->Freeze().ok());
  EXPECT_TRUE(*(*cg)->IsFrozen());
  ASSERT_TRUE((*cg)->Thaw().ok());
  EXPECT_FALSE(*(*cg)->IsFrozen());
  ASSERT_TRUE((*cg)->Freeze().ok());
  EXPECT_TRUE(std::find(driver.List().begin(), driver.List().end(), "pdk-test-cg") != driver.List().end());
  ASSERT_TRUE((*cg)->Destroy().ok());  // kills even a frozen task
  int status;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status));
  auto names = driver.List();
  EXPECT_TRUE(std::find(names.begin(), names.end(), "pdk-test-cg") == names.end());
  driver.RemoveParentIfEmpty();
  EXPECT_EQ(DescribeLeaks(before, TakeHostSnapshot()), "");
}

TEST_F(SandboxTest, DetectedCgroupDriverFreezesKillsAndRemoves) {
  auto driver = CgroupDriver::Detect("paddock-test");
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  FreezeKillAndRemove(**driver);
}

TEST_F(SandboxTest, CgroupV2DriverFreezesKillsAndRemoves) {
  auto mounts = kernel::ReadCgroupMounts();
  ASSERT_TRUE(mounts.ok());
  std::string v2;
  for (const auto& m : *mounts)
    if (m.fstype == "cgroup2") v2 = m.mount_point;
  if (v2.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
  auto driver = CgroupDriver::V2At(v2, "paddock-test");
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  FreezeKillAndRemove(**driver);
}

TEST_F(SandboxTest, FailedCreateLeavesNoCgroup) {
  auto driver = CgroupDriver::Detect("paddock-test");
  ASSERT_TRUE(driver.ok());
  {
    auto cg = (*driver)->Create("pdk-test-drop", {});
    ASSERT_TRUE(cg.ok());
    // Dropped without Keep(): it removes itself.
  }
  auto names = (*driver)->List();
  EXPECT_TRUE(std::find(names.begin(), names.end(), "pdk-test-drop") == names.end());
  (*driver)->RemoveParentIfEmpty();
}

}  // namespace
}  // namespace paddock::testing
