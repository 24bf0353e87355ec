// Volume files from the host: every path stays inside the volume whatever
// links a sandbox left there, FIFOs never block, owners and modes are as
// asked, and writes replace files whole.
#include "sandbox/volume_files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "host_clean.h"

namespace paddock::testing {
namespace {

namespace vf = volume_files;

class VolumeFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path() + "/vol";
    outside_ = tmp_.path() + "/outside";
    ASSERT_TRUE(MakeDirs(dir_ + "/sub", 0755).ok());
    ASSERT_TRUE(WriteFileAtomic(outside_, "host secret").ok());
    // What a hostile sandbox leaves in its volume.
    ASSERT_EQ(::symlink(tmp_.path().c_str(), (dir_ + "/abs-dir").c_str()), 0);
    ASSERT_EQ(::symlink(outside_.c_str(), (dir_ + "/abs-file").c_str()), 0);
    ASSERT_EQ(::symlink("../../..", (dir_ + "/sub/up").c_str()), 0);
    ASSERT_EQ(::mkfifo((dir_ + "/fifo").c_str(), 0600), 0);
    root_ = UniqueFd(::open(dir_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(root_);
  }
  std::string Outside() { return ReadFile(outside_).value(); }

  TempDir tmp_;
  std::string dir_, outside_;
  UniqueFd root_;
};

TEST_F(VolumeFilesTest, LinksResolveInsideTheVolumeAndNeverOut) {
  // Through a link to a host folder: looked up inside the volume, not found.
  std::string name = outside_.substr(tmp_.path().size());  // "/outside"
  EXPECT_EQ(vf::Stat(root_.get(), "/abs-dir" + name).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(vf::WriteFile(root_.get(), "/abs-dir" + name, "", "pwned", {}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(vf::WriteFile(root_.get(), "/sub/up/up/x", "", "pwned", {}).status().code(), StatusCode::kNotFound);
  // "../" climbs to the volume's top and stops there.
  auto up = vf::List(root_.get(), "/sub/up/sub", 1);
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  EXPECT_EQ(up->size(), 1u);
  // The last link is itself: read refused, write replaces the link, not its target.
  EXPECT_EQ(vf::OpenFile(root_.get(), "/abs-file").status().code(), StatusCode::kFailedPrecondition);
  auto stat = vf::Stat(root_.get(), "/abs-file");
  ASSERT_TRUE(stat.ok());
  EXPECT_EQ(stat->type, vf::EntryType::kSymlink);
  EXPECT_EQ(stat->target, outside_);
  ASSERT_TRUE(vf::WriteFile(root_.get(), "/abs-file", "", "mine", {}).ok());
  EXPECT_EQ(ReadFile(dir_ + "/abs-file").value(), "mine");
  ASSERT_TRUE(vf::SetMetadata(root_.get(), "/abs-dir", {.uid = 7}).ok());
  EXPECT_EQ(vf::SetMetadata(root_.get(), "/abs-dir", {.mode = 0777}).status().code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(vf::Remove(root_.get(), "/abs-dir").ok());
  EXPECT_EQ(Outside(), "host secret");
  struct stat st;
  ASSERT_EQ(::stat(tmp_.path().c_str(), &st), 0) << "the link's target stays";
  ASSERT_EQ(::stat(outside_.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  // Paths are absolute and never climb.
  for (const char* bad : {"relative", "/a/../b", "..", ""})
    EXPECT_EQ(vf::Stat(root_.get(), bad).status().code(), StatusCode::kInvalidArgument) << bad;
}

TEST_F(VolumeFilesTest, AFifoIsRefusedAtOnce) {
  auto opened = vf::OpenFile(root_.get(), "/fifo");
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("not a file"), std::string::npos);
  EXPECT_EQ(vf::OpenFile(root_.get(), "/sub").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(vf::OpenFile(root_.get(), "/none").status().code(), StatusCode::kNotFound);
}

TEST_F(VolumeFilesTest, WritesFoldersOwnersAndRemoval) {
  EXPECT_EQ(vf::WriteFile(root_.get(), "/a/b/c.txt", "", "x", {}).status().code(), StatusCode::kNotFound);
  auto made = vf::MakeDir(root_.get(), "/a/b", {.uid = 1000, .gid = 1001, .mode = 0750}, true);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ(made->path, "/a/b");
  EXPECT_EQ(made->mode, 0750u);
  EXPECT_EQ(made->uid, 1000u);
  EXPECT_EQ(vf::MakeDir(root_.get(), "/a/b", {}, false).status().code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(vf::MakeDir(root_.get(), "/a/b", {}, true).ok()) << "with parents, an existing folder is fine";

  // A file from a spooled upload, another from memory; both replace whole.
  std::string upload = tmp_.path() + "/upload";
  ASSERT_TRUE(WriteFileAtomic(upload, std::string(3 << 20, 'u')).ok());
  auto big = vf::WriteFile(root_.get(), "/a/b/big", upload, "", {.uid = 1000, .gid = 1000, .mode = 04755});
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_EQ(big->size, 3 << 20);
  EXPECT_EQ(big->mode, 04755u);
  EXPECT_EQ(big->gid, 1000u);
  ASSERT_TRUE(vf::WriteFile(root_.get(), "/a/b/big", "", "small", {}).ok());
  auto file = vf::OpenFile(root_.get(), "/a/b/big");
  ASSERT_TRUE(file.ok());
  char buf[16];
  EXPECT_EQ(::read(file->get(), buf, sizeof buf), 5);
  EXPECT_EQ(vf::WriteFile(root_.get(), "/a", "", "x", {}).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(vf::WriteFile(root_.get(), "/a/x", "", "x", {.uid = 70000}).status().code(),
            StatusCode::kInvalidArgument);

  auto listed = vf::List(root_.get(), "/", 3);
  ASSERT_TRUE(listed.ok());
  std::vector<std::string> paths;
  for (const auto& e : *listed) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"/a", "/a/b", "/a/b/big", "/abs-dir", "/abs-file", "/fifo", "/sub",
                                              "/sub/up"}));
  EXPECT_EQ(vf::List(root_.get(), "/", 1)->size(), 5u);
  EXPECT_EQ(vf::List(root_.get(), "/a/b/big", 1).status().code(), StatusCode::kFailedPrecondition);

  auto changed = vf::SetMetadata(root_.get(), "/a/b/big", {.gid = 5, .mode = 0600});
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(changed->gid, 5u);
  EXPECT_EQ(changed->uid, 0u) << "what is not given stays";
  EXPECT_EQ(changed->mode, 0600u);

  EXPECT_EQ(vf::Remove(root_.get(), "/").code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(vf::Remove(root_.get(), "/a").ok());
  EXPECT_FALSE(PathExists(dir_ + "/a"));
  EXPECT_EQ(vf::Remove(root_.get(), "/a").code(), StatusCode::kNotFound);
  for (const auto& name : ListDir(dir_)) EXPECT_EQ(name.rfind(".pdk-write-", 0), std::string::npos) << name;
}

}  // namespace
}  // namespace paddock::testing
