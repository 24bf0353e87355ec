#include "base/status.h"

#include <gtest/gtest.h>

#include "base/fs.h"
#include "base/ids.h"

namespace paddock {
namespace {

TEST(StatusTest, ErrnoCarriesOperationAndCode) {
  Status s = Status::Errno("open /x", ENOENT);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.sys_errno(), ENOENT);
  EXPECT_EQ(s.ToString(), "not_found: open /x: No such file or directory");
  EXPECT_EQ(s.Annotate("loading").message(), "loading: open /x: No such file or directory");
  EXPECT_EQ(Status::Errno("x", EBUSY).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Status::Errno("x", EPERM).code(), StatusCode::kPermissionDenied);
}

Result<int> Half(int v) {
  if (v % 2) return InvalidArgument("odd");
  return v / 2;
}

Result<int> Quarter(int v) {
  PDK_ASSIGN_OR_RETURN(int h, Half(v));
  return Half(h);
}

TEST(StatusTest, ResultPropagates) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(FsTest, AtomicWriteReadAndRemoveTree) {
  char tmpl[] = "/tmp/pdk-unit-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  ASSERT_TRUE(MakeDirs(dir + "/a/b/c").ok());
  ASSERT_TRUE(WriteFileAtomic(dir + "/a/b/c/f", "hello").ok());
  EXPECT_EQ(*ReadFile(dir + "/a/b/c/f"), "hello");
  ASSERT_TRUE(WriteFileAtomic(dir + "/a/b/c/f", "again").ok());
  EXPECT_EQ(*ReadFile(dir + "/a/b/c/f"), "again");
  ASSERT_EQ(::symlink("/etc", (dir + "/a/link").c_str()), 0);
  ASSERT_TRUE(RemoveTree(dir).ok());
  EXPECT_FALSE(PathExists(dir));
  EXPECT_TRUE(PathExists("/etc/hostname"));  // the symlink was not followed
  EXPECT_EQ(ReadFile(dir + "/nope").status().code(), StatusCode::kNotFound);
}

TEST(IdsTest, SandboxIdsAreDnsLabels) {
  for (int i = 0; i < 100; ++i) {
    std::string id = NewSandboxId();
    ASSERT_EQ(id.size(), 20u);
    EXPECT_TRUE(std::isalpha(static_cast<unsigned char>(id[0])));
    for (char c : id) EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(c)) || std::islower(static_cast<unsigned char>(c)));
  }
  EXPECT_NE(NewSandboxId(), NewSandboxId());
}

}  // namespace
}  // namespace paddock
