#include "init/passwd.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "base/fs.h"

namespace paddock::init {
namespace {

TEST(PasswdTest, LooksUpByNameAndUidWithGroups) {
  char tmpl[] = "/tmp/pdk-passwd-XXXXXX";
  std::string etc = ::mkdtemp(tmpl);
  ASSERT_TRUE(WriteFileAtomic(etc + "/passwd",
                              "root:x:0:0:root:/root:/bin/sh\n"
                              "user:x:1000:1000:user:/home/user:/bin/bash\n").ok());
  ASSERT_TRUE(WriteFileAtomic(etc + "/group", "tty:x:5:user\nuser:x:1000:\nwheel:x:10:root,user\n").ok());
  auto user = LookupUser("user", etc);
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(user->uid, 1000u);
  EXPECT_EQ(user->home, "/home/user");
  EXPECT_EQ(user->shell, "/bin/bash");
  EXPECT_EQ(user->groups, (std::vector<gid_t>{5, 10}));
  EXPECT_EQ(LookupUser("1000", etc)->name, "user");
  EXPECT_EQ(LookupUser("", etc)->name, "root");
  EXPECT_EQ(LookupUser("4242", etc)->uid, 4242u);  // a bare uid is allowed
  EXPECT_EQ(LookupUser("ghost", etc).status().code(), StatusCode::kNotFound);
  auto bare = LookupUser("", etc + "/none");  // an image with no /etc/passwd: root still is
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->uid, 0u);
  EXPECT_EQ(bare->gid, 0u);
  EXPECT_EQ(bare->home, "/");
  EXPECT_EQ(*LookupGroup("wheel", etc), 10u);
  EXPECT_EQ(*LookupGroup("77", etc), 77u);
  EXPECT_EQ(LookupGroup("ghosts", etc).status().code(), StatusCode::kNotFound);
  (void)RemoveTree(etc);
}

}  // namespace
}  // namespace paddock::init
