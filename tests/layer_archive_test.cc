// Layer archives: a writable layer to a checksummed file and back, byte
// for byte (owners moved between id ranges, holes, links, whiteouts,
// overlayfs xattrs), refusing a corrupt file before writing anything.
#include "sandbox/layer_archive.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "base/fd.h"
#include "base/fs.h"
#include "host_clean.h"

namespace paddock::testing {
namespace {

namespace fs = std::filesystem;

constexpr uid_t kFrom = 1u << 30, kTo = (1u << 30) + 5 * 65536;

// One line per entry under `dir`: type and mode, owner relative to `base`,
// size, blocks allocated (holes), content, link target, times, xattrs.
using Manifest_t = std::map<std::string, std::string>;

// The entries that differ, for a readable failure.
std::string Diff(const Manifest_t& a, const Manifest_t& b) {
  std::string out;
  for (const auto& [k, v] : a)
    if (auto it = b.find(k); it == b.end() || it->second != v)
      out += k + ":\n  " + v + "\n  " + (it == b.end() ? "(absent)" : it->second) + "\n";
  for (const auto& [k, v] : b)
    if (!a.count(k)) out += k + ": (absent)\n  " + v + "\n";
  return out;
}

std::map<std::string, std::string> Manifest(const std::string& dir, uid_t base) {
  std::map<std::string, std::string> out;
  auto describe = [&](const std::string& path, const std::string& rel) {
    struct stat st;
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    std::ostringstream d;
    auto rel_id = [&](uid_t id) { return static_cast<int64_t>(id) - base; };
    d << std::oct << st.st_mode << std::dec << " " << rel_id(st.st_uid) << ":" << rel_id(st.st_gid);
    if (S_ISREG(st.st_mode)) {
      auto content = ReadFile(path);
      d << " size=" << st.st_size << " allocated<=" << (st.st_blocks * 512 <= 1 << 20) << " "
        << std::hash<std::string>{}(content.ok() ? *content : "?") << " mtime=" << st.st_mtim.tv_sec;
    } else if (S_ISLNK(st.st_mode)) {
      d << " -> " << fs::read_symlink(path).string();
    } else if (S_ISCHR(st.st_mode)) {
      d << " rdev=" << major(st.st_rdev) << ":" << minor(st.st_rdev);
    }
    if (!S_ISDIR(st.st_mode)) d << " links=" << st.st_nlink;
    char names[4096];
    ssize_t n = ::llistxattr(path.c_str(), names, sizeof names);
    for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
      char value[256];
      ssize_t len = ::lgetxattr(path.c_str(), names + i, value, sizeof value);
      d << " " << (names + i) << "=" << std::string(value, len > 0 ? static_cast<size_t>(len) : 0);
    }
    out[rel] = d.str();
  };
  describe(dir, ".");
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it)
    describe(it->path().string(), it->path().lexically_relative(dir).string());
  return out;
}

void Write(const std::string& path, const std::string& data, mode_t mode, uid_t uid, gid_t gid) {
  ASSERT_TRUE(WriteFileAtomic(path, data, mode).ok()) << path;
  ASSERT_EQ(::chown(path.c_str(), uid, gid), 0);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);  // setuid survives the chown
}

class LayerArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = tmp_.path() + "/upper";
    dst_ = tmp_.path() + "/restored";
    file_ = tmp_.path() + "/layer.tar.zst";
    ASSERT_TRUE(MakeDirs(src_ + "/home/user/deep", 0755).ok());
    ASSERT_TRUE(MakeDirs(dst_, 0700).ok());
    ASSERT_EQ(::chown(src_.c_str(), kFrom, kFrom), 0);
    ASSERT_EQ(::chown((src_ + "/home/user").c_str(), kFrom + 1000, kFrom + 1000), 0);
    Write(src_ + "/home/user/notes.txt", "hello\n", 0640, kFrom + 1000, kFrom + 100);
    Write(src_ + "/home/user/tool", "#!/bin/sh\n", 04755, kFrom, kFrom);
    Write(src_ + "/foreign", "owned by the host", 0600, 5, 5);  // outside the range: nobody
    ASSERT_EQ(::symlink("/etc/passwd", (src_ + "/home/user/abs-link").c_str()), 0);
    ASSERT_EQ(::symlink("../nowhere", (src_ + "/home/user/dangling").c_str()), 0);
    ASSERT_EQ(::lchown((src_ + "/home/user/dangling").c_str(), kFrom + 1000, kFrom + 1000), 0);
    ASSERT_EQ(::link((src_ + "/home/user/notes.txt").c_str(), (src_ + "/home/user/deep/notes-link").c_str()), 0);
    ASSERT_EQ(::mknod((src_ + "/gone").c_str(), S_IFCHR | 0000, makedev(0, 0)), 0);  // a whiteout
    ASSERT_EQ(::mkfifo((src_ + "/home/user/pipe").c_str(), 0620), 0);
    ASSERT_EQ(::setxattr((src_ + "/home").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
    ASSERT_EQ(::setxattr((src_ + "/home/user/notes.txt").c_str(), "user.mime", "text/plain", 10, 0), 0);
    // 64 MiB with 8 KiB of data in the middle: holes stay holes.
    UniqueFd sparse(::open((src_ + "/sparse").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(sparse);
    std::string block(8192, 'x');
    ASSERT_EQ(::pwrite(sparse.get(), block.data(), block.size(), 32 << 20), static_cast<ssize_t>(block.size()));
    ASSERT_EQ(::ftruncate(sparse.get(), 64 << 20), 0);
    sparse.reset();
    ASSERT_EQ(::chown((src_ + "/sparse").c_str(), kFrom, kFrom), 0);
    UniqueFd all_hole(::open((src_ + "/all-hole").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_EQ(::ftruncate(all_hole.get(), 4 << 20), 0);
    // Folders nested far deeper than recursion would like.
    std::string deep = src_ + "/home/user/deep";
    for (int i = 0; i < 300; ++i) deep += "/d";
    ASSERT_TRUE(MakeDirs(deep, 0755).ok());
    Write(deep + "/bottom", "at the bottom", 0644, kFrom, kFrom);
    // What the sandbox made is its own; "foreign" stays the host's.
    for (auto it = fs::recursive_directory_iterator(src_); it != fs::recursive_directory_iterator(); ++it) {
      struct stat st;
      ASSERT_EQ(::lstat(it->path().c_str(), &st), 0);
      if (st.st_uid == 0 && it->path().filename() != "foreign") {
        ASSERT_EQ(::lchown(it->path().c_str(), kFrom, kFrom), 0);
      }
    }
    ASSERT_EQ(::chown(src_.c_str(), kFrom, kFrom), 0);
  }

  TempDir tmp_;
  std::string src_, dst_, file_;
};

TEST_F(LayerArchiveTest, RestoresByteForByteInAnotherRange) {
  auto info = WriteLayerArchive(src_, "", file_, kFrom);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->sha256.size(), 64u);
  EXPECT_LT(info->size, 1 << 20) << "holes and repeats compress away";
  EXPECT_EQ(info->bytes, 8192 + 6 + 10 + 17 + 13 + 1);  // an all-hole file keeps its last byte
  auto restored = ReadLayerArchive(file_, info->sha256, dst_, kTo);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();

  auto before = Manifest(src_, kFrom), after = Manifest(dst_, kTo);
  // The host's own file came back as the sandbox saw it: nobody.
  EXPECT_NE(after["foreign"].find(" 65534:65534 "), std::string::npos) << after["foreign"];
  before.erase("foreign");
  after.erase("foreign");
  EXPECT_EQ(Diff(before, after), "");
  EXPECT_NE(after["home/user/tool"].find("104755 0:0"), std::string::npos) << after["home/user/tool"];
  EXPECT_NE(after["sparse"].find("allocated<=1"), std::string::npos) << after["sparse"];

  // The same tree makes the same archive.
  auto again = WriteLayerArchive(src_, "", file_ + ".2", kFrom);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->sha256, info->sha256);
}

TEST_F(LayerArchiveTest, PartOfTheLayerKeepsItsPlace) {
  auto info = WriteLayerArchive(src_, "/home/user/", file_, kFrom);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_TRUE(ReadLayerArchive(file_, info->sha256, dst_, kTo).ok());
  EXPECT_EQ(Diff(Manifest(src_ + "/home/user", kFrom), Manifest(dst_ + "/home/user", kTo)), "");
  EXPECT_FALSE(PathExists(dst_ + "/sparse"));
  EXPECT_FALSE(PathExists(dst_ + "/gone"));

  auto missing = WriteLayerArchive(src_, "home/nobody", file_ + ".2", kFrom);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().ToString();
  EXPECT_FALSE(PathExists(file_ + ".2")) << "a failed archive leaves no file";
  auto through_file = WriteLayerArchive(src_, "home/user/notes.txt/x", file_ + ".2", kFrom);
  EXPECT_EQ(through_file.status().code(), StatusCode::kNotFound);
}

TEST_F(LayerArchiveTest, CorruptArchiveIsRefusedBeforeAnythingIsWritten) {
  auto info = WriteLayerArchive(src_, "", file_, kFrom);
  ASSERT_TRUE(info.ok());
  UniqueFd fd(::open(file_.c_str(), O_RDWR | O_CLOEXEC));
  char byte;
  ASSERT_EQ(::pread(fd.get(), &byte, 1, info->size / 2), 1);
  byte ^= 0x40;
  ASSERT_EQ(::pwrite(fd.get(), &byte, 1, info->size / 2), 1);
  auto restored = ReadLayerArchive(file_, info->sha256, dst_, kTo);
  EXPECT_EQ(restored.status().code(), StatusCode::kDataLoss) << restored.status().ToString();
  EXPECT_NE(restored.status().message().find("corrupt"), std::string::npos);
  EXPECT_TRUE(ListDir(dst_).empty());
}

// What the layer copy and the archive open in a sandbox's layer: only a
// regular file. A FIFO (which a running sandbox may swap in after the walk
// looked) is refused at once, never opened, so nothing waits for a writer.
TEST(OpenRegularAtTest, OpensRegularFilesOnlyAndNeverWaitsOnAFifo) {
  TempDir tmp;
  ASSERT_TRUE(WriteFileAtomic(tmp.path() + "/file", "data").ok());
  ASSERT_EQ(::mkfifo((tmp.path() + "/fifo").c_str(), 0644), 0);
  ASSERT_EQ(::symlink("file", (tmp.path() + "/link").c_str()), 0);
  UniqueFd dir(::open(tmp.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(dir);
  auto file = OpenRegularAt(dir.get(), "file");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  char buf[8] = {};
  EXPECT_EQ(::read(file->get(), buf, sizeof buf), 4);
  struct stat st;
  auto fifo = OpenRegularAt(dir.get(), "fifo", &st);
  EXPECT_EQ(fifo.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(OpenRegularAt(dir.get(), "link").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(OpenRegularAt(dir.get(), "missing").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace paddock::testing
