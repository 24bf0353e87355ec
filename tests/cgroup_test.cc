// The cgroup drivers on their own: the detected one, and v2 over whatever
// cgroup2 mount this host has (on hybrid hosts, the controller-less tree).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <sstream>

#include "kernel/cgroup.h"
#include "sandbox_fixture.h"

namespace paddock::testing {
namespace {

using kernel::CgroupDriver;

// This host's cgroup2 mount (on hybrid hosts, the controller-less tree); empty if none.
std::string CgroupV2Mount() {
  auto mounts = kernel::ReadCgroupMounts();
  if (!mounts.ok()) return "";
  for (const auto& m : *mounts)
    if (m.fstype == "cgroup2") return m.mount_point;
  return "";
}

void FreezeKillAndRemove(CgroupDriver& driver) {
  HostSnapshot before = TakeHostSnapshot();
  auto cg = driver.Create("pdk-test-cg", {}, {});
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

// A task in a cgroup with a device filter opens the standard nodes and what
// it was granted (as granted: read-only here), nothing else, whatever nodes
// it finds.
void FiltersDevices(CgroupDriver& driver) {
  if (driver.device_filter().empty()) GTEST_SKIP() << "no device filter: " << driver.device_filter_error();
  HostSnapshot before = TakeHostSnapshot();
  TempDir dir;
  const std::string granted = dir.path() + "/granted", other = dir.path() + "/other";
  ASSERT_EQ(::mknod(granted.c_str(), S_IFCHR | 0666, makedev(10, 229)), 0);  // FUSE's numbers
  ASSERT_EQ(::mknod(other.c_str(), S_IFCHR | 0666, makedev(10, 237)), 0);    // loop-control's
  auto cg = driver.Create("pdk-test-dev", {}, {{'c', 10, 229, true, false}});
  ASSERT_TRUE(cg.ok()) << cg.status().ToString();
  ASSERT_TRUE((*cg)->Rename("pdk-test-dev2").ok()) << "as a warm shell's is: the filter goes with it";
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  pid_t child = ::fork();
  if (child == 0) {
    char byte;
    if (::read(go[0], &byte, 1) != 1) ::_exit(100);
    auto opens = [](const std::string& path, int flags) {
      int fd = ::open(path.c_str(), flags | O_CLOEXEC);
      if (fd >= 0) ::close(fd);
      return fd >= 0 ? 0 : errno;
    };
    int code = (opens("/dev/null", O_RDWR) == 0 ? 0 : 1) | (opens(granted, O_RDONLY) == 0 ? 0 : 2) |
               (opens(granted, O_WRONLY) == EPERM ? 0 : 4) | (opens(other, O_RDONLY) == EPERM ? 0 : 8);
    ::_exit(code);
  }
  ASSERT_TRUE((*cg)->AddProcess(child).ok());
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  int status;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ::close(go[0]);
  ::close(go[1]);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: /dev/null refused, 2: granted read refused, 4: write not refused, "
                                       "8: an ungranted node opened";
  ASSERT_TRUE((*cg)->Destroy().ok());
  driver.RemoveParentIfEmpty();
  EXPECT_EQ(DescribeLeaks(before, TakeHostSnapshot()), "");
}

// The limits that hold for process `pid`, read from the files of its
// cgroups in whichever layout: "memory cpu-quota pids", each a number or
// "max".
std::string LimitsOf(pid_t pid) {
  auto mounts = kernel::ReadCgroupMounts();
  auto own = ReadFile("/proc/" + std::to_string(pid) + "/cgroup");
  if (!mounts.ok() || !own.ok()) return "unreadable";
  // Its folder in the hierarchy holding `controller` (v2: the one hierarchy).
  auto dir = [&](const std::string& controller) -> std::string {
    std::istringstream lines(*own);
    for (std::string line; std::getline(lines, line);) {
      size_t a = line.find(':'), b = line.find(':', a + 1);
      std::string list = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
      for (const auto& m : *mounts) {
        bool v2 = m.fstype == "cgroup2" && list.empty();
        bool v1 = m.fstype == "cgroup" && ("," + list + ",").find("," + controller + ",") != std::string::npos &&
                  ("," + m.super_options + ",").find("," + controller + ",") != std::string::npos;
        if ((v1 || v2) && PathExists(m.mount_point + path + (v2 ? "/memory.max" : "")))
          return m.mount_point + path;
      }
    }
    return "";
  };
  auto first = [](Result<std::string> text) {
    std::string word = text.ok() ? text->substr(0, text->find_first_of(" \n")) : "unreadable";
    return word == "-1" || word == "9223372036854771712" ? "max" : word;  // v1's "unlimited"
  };
  std::string memory = dir("memory"), cpu = dir("cpu"), pids = dir("pids");
  bool v2 = PathExists(memory + "/memory.max");
  return first(ReadFile(memory + (v2 ? "/memory.max" : "/memory.limit_in_bytes"))) + " " +
         first(ReadFile(cpu + (v2 ? "/cpu.max" : "/cpu.cfs_quota_us"))) + " " + first(ReadFile(pids + "/pids.max"));
}

// SetLimits writes the limits that changed and keeps the rest; a rename
// (v2: a new folder) keeps them all.
void SetsTheLimitsThatChange(CgroupDriver& driver) {
  if (!driver.SupportsLimits()) GTEST_SKIP() << "no limit controllers in this " << driver.version() << " tree";
  HostSnapshot before = TakeHostSnapshot();
  auto cg = driver.Create("pdk-test-limits", {.memory_bytes = 64 << 20, .cpu_millicores = 500, .pids = 50}, {});
  ASSERT_TRUE(cg.ok()) << cg.status().ToString();
  pid_t child = ::fork();
  if (child == 0) {
    for (;;) ::pause();
  }
  ASSERT_TRUE((*cg)->AddProcess(child).ok());
  EXPECT_EQ(LimitsOf(child), "67108864 50000 50");
  ASSERT_TRUE((*cg)->SetLimits({.memory_bytes = 32 << 20, .cpu_millicores = 500, .pids = 50}).ok());
  EXPECT_EQ(LimitsOf(child), "33554432 50000 50");
  ASSERT_TRUE((*cg)->Rename("pdk-test-limits2").ok());
  EXPECT_EQ(LimitsOf(child), "33554432 50000 50");
  ASSERT_TRUE((*cg)->SetLimits({.memory_bytes = 32 << 20, .cpu_millicores = 0, .pids = 60}).ok());
  EXPECT_EQ(LimitsOf(child), "33554432 max 60");
  ASSERT_TRUE((*cg)->SetLimits({}).ok());
  EXPECT_EQ(LimitsOf(child), "max max max");
  ASSERT_TRUE((*cg)->Destroy().ok());
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  driver.RemoveParentIfEmpty();
  EXPECT_EQ(DescribeLeaks(before, TakeHostSnapshot()), "");
}

TEST_F(SandboxTest, DetectedCgroupDriverSetsTheLimitsThatChange) {
  auto driver = CgroupDriver::Detect("paddock-test");
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  SetsTheLimitsThatChange(**driver);
}

TEST_F(SandboxTest, CgroupV2DriverSetsTheLimitsThatChange) {
  std::string v2 = CgroupV2Mount();
  if (v2.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
  auto driver = CgroupDriver::V2At(v2, "paddock-test");
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  SetsTheLimitsThatChange(**driver);
}

TEST_F(SandboxTest, DetectedCgroupDriverFiltersDevices) {
  auto driver = CgroupDriver::Detect("paddock-test");
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  FiltersDevices(**driver);
}

TEST_F(SandboxTest, CgroupV2DriverFiltersDevicesWithBpf) {
  std::string v2 = CgroupV2Mount();
  if (v2.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
  auto driver = CgroupDriver::V2At(v2, "paddock-test");
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  EXPECT_EQ((*driver)->device_filter(), "BPF device program") << (*driver)->device_filter_error();
  FiltersDevices(**driver);
}

TEST_F(SandboxTest, DetectedCgroupDriverFreezesKillsAndRemoves) {
  auto driver = CgroupDriver::Detect("paddock-test");
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  FreezeKillAndRemove(**driver);
}

TEST_F(SandboxTest, CgroupV2DriverFreezesKillsAndRemoves) {
  std::string v2 = CgroupV2Mount();
  if (v2.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
  auto driver = CgroupDriver::V2At(v2, "paddock-test");
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  FreezeKillAndRemove(**driver);
}

TEST_F(SandboxTest, FailedCreateLeavesNoCgroup) {
  auto driver = CgroupDriver::Detect("paddock-test");
  ASSERT_TRUE(driver.ok());
  {
    auto cg = (*driver)->Create("pdk-test-drop", {}, {});
    ASSERT_TRUE(cg.ok());
    // Dropped without Keep(): it removes itself.
  }
  auto names = (*driver)->List();
  EXPECT_TRUE(std::find(names.begin(), names.end(), "pdk-test-drop") == names.end());
  (*driver)->RemoveParentIfEmpty();
}

}  // namespace
}  // namespace paddock::testing
