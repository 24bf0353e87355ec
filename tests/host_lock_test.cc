#include "base/host_lock.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "base/fs.h"

namespace paddock {
namespace {

class HostLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pdk-lock-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/locks/host.lock";
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  // A child process that takes the lock, says so, and holds it until it is
  // killed (or, with `hold_ms`, until that time has passed).
  pid_t HolderProcess(int hold_ms = -1) {
    int ready[2];
    EXPECT_EQ(::pipe(ready), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(ready[0]);
      auto lock = HostLock::Acquire(path_, 0, "the child");
      char ok = lock.ok() ? 1 : 0;
      (void)!::write(ready[1], &ok, 1);
      if (hold_ms >= 0) ::usleep(hold_ms * 1000);
      else ::pause();
      ::_exit(0);
    }
    ::close(ready[1]);
    char ok = 0;
    EXPECT_EQ(::read(ready[0], &ok, 1), 1);
    EXPECT_EQ(ok, 1) << "the child could not take the lock";
    ::close(ready[0]);
    return pid;
  }

  std::string dir_, path_;
};

double MillisSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

TEST_F(HostLockTest, OneHolderAtATimeAndTheNextIsToldWhoHoldsIt) {
  pid_t child = HolderProcess();
  auto t0 = std::chrono::steady_clock::now();
  auto second = HostLock::Acquire(path_, 200, "the parent");
  ASSERT_FALSE(second.ok());
  EXPECT_GE(MillisSince(t0), 190);  // it waited for the holder first
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("pid " + std::to_string(child) + ", the child"), std::string::npos)
      << second.status().message();
  EXPECT_NE(second.status().message().find("waited 200 ms"), std::string::npos);

  // kill -9 lets go: a crashed holder never keeps the host.
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  auto third = HostLock::Acquire(path_, 0, "the parent");
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_TRUE(third->held());
  EXPECT_EQ(ReadFile(path_).value(), "pid " + std::to_string(::getpid()) + ", the parent\n");
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat((dir_ + "/locks").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(HostLockTest, AWaitEndsWhenTheHolderLetsGo) {
  pid_t child = HolderProcess(300);
  auto t0 = std::chrono::steady_clock::now();
  auto lock = HostLock::Acquire(path_, 10000, "the parent");
  ASSERT_TRUE(lock.ok()) << lock.status().ToString();
  EXPECT_LT(MillisSince(t0), 5000);
  ::waitpid(child, nullptr, 0);
}

TEST_F(HostLockTest, TwoHoldersInOneProcessExcludeEachOtherToo) {
  {
    auto first = HostLock::Acquire(path_, 0, "first");
    ASSERT_TRUE(first.ok());
    // Another open of the same file, closed again, must not release it
    // (a plain POSIX record lock would be).
    { UniqueFd other(::open(path_.c_str(), O_RDONLY | O_CLOEXEC)); }
    auto second = HostLock::Acquire(path_, 0, "second");
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(second.status().message().find("first"), std::string::npos);
  }
  EXPECT_TRUE(HostLock::Acquire(path_, 0, "second").ok());  // the first went with its holder
}

TEST_F(HostLockTest, AFolderOthersMayWriteOrALinkAtItsNameIsRefused) {
  ASSERT_TRUE(MakeDirs(dir_ + "/locks", 0700).ok());
  ASSERT_EQ(::chmod((dir_ + "/locks").c_str(), 0777), 0);
  auto open = HostLock::Acquire(path_, 0, "me");
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(open.status().message().find("only its owner"), std::string::npos) << open.status().message();

  ASSERT_EQ(::chmod((dir_ + "/locks").c_str(), 0700), 0);
  ASSERT_EQ(::symlink((dir_ + "/target").c_str(), path_.c_str()), 0);
  EXPECT_FALSE(HostLock::Acquire(path_, 0, "me").ok());
  EXPECT_FALSE(PathExists(dir_ + "/target"));  // nothing made through the link
}

}  // namespace
}  // namespace paddock
