// Unpacking uploaded archives (api/tar_upload): what reaches the sink for
// names, modes, entry counts and expansion, on archives built here.
#include "api/tar_upload.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>

namespace paddock::api {
namespace {

struct Recorded {
  int mode;
  std::string data;  // files only
};

struct RecordingSink : UnpackSink {
  Status MakeDir(const std::string& path, int mode) override {
    dirs[path] = {mode, ""};
    return Status::Ok();
  }
  Status WriteFile(const std::string& path, int mode, const Reader& read) override {
    std::string data;
    char buf[4096];
    for (;;) {
      PDK_ASSIGN_OR_RETURN(size_t n, read(buf, sizeof buf));
      if (n == 0) break;
      data.append(buf, n);
    }
    files[path] = {mode, data};
    return Status::Ok();
  }
  std::map<std::string, Recorded> dirs, files;
};

struct Entry {
  std::string name;
  std::string data;
  int type = AE_IFREG;
};

// A tar (gzipped when asked) built by libarchive.
std::string Tar(const std::vector<Entry>& entries, bool gzip = false) {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (gzip) archive_write_add_filter_gzip(a);
  archive_write_open(
      a, &out, nullptr,
      [](struct archive*, void* to, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(to)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  for (const auto& e : entries) {
    struct archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.name.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, 0640);
    archive_entry_set_size(entry, static_cast<la_int64_t>(e.data.size()));
    archive_write_header(a, entry);
    if (!e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// One ustar header block written by hand, for fields libarchive's writer
// would not produce (a mode with bits above 07777).
std::string UstarFile(const std::string& name, const char* mode_octal, const std::string& data) {
  std::string h(512, '\0');
  name.copy(h.data(), 99);
  std::snprintf(h.data() + 100, 8, "%s", mode_octal);
  std::snprintf(h.data() + 108, 8, "%07o", 0);
  std::snprintf(h.data() + 116, 8, "%07o", 0);
  std::snprintf(h.data() + 124, 12, "%011o", static_cast<unsigned>(data.size()));
  std::snprintf(h.data() + 136, 12, "%011o", 0);
  h[156] = '0';
  std::memcpy(h.data() + 257, "ustar\0" "00", 8);
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h.data() + 148, 8, "%06o", sum);
  std::string body = data + std::string((512 - data.size() % 512) % 512, '\0');
  return h + body + std::string(1024, '\0');
}

TEST(TarUploadTest, FilesAndFoldersLandUnderTheRootWithTheirModes) {
  RecordingSink sink;
  auto files = UnpackArchive(-1, Tar({{"./a/", "", AE_IFDIR}, {"a/b.txt", "hello"}, {"c", ""}}), "/up",
                             sink);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(*files, 2);
  ASSERT_TRUE(sink.dirs.count("/up/a"));  // no trailing slash
  EXPECT_EQ(sink.files["/up/a/b.txt"].data, "hello");
  EXPECT_EQ(sink.files["/up/a/b.txt"].mode, 0640);
  EXPECT_EQ(sink.files["/up/c"].data, "");
}

TEST(TarUploadTest, NamesThatLeaveTheRootAreRefusedNamingThem) {
  for (const char* name : {"../x", "a/../../x", "/etc/passwd", "a/.."}) {
    RecordingSink sink;
    auto files = UnpackArchive(-1, Tar({{name, "x"}}), "/up", sink);
    ASSERT_FALSE(files.ok()) << name;
    EXPECT_EQ(files.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(files.status().message().find("escapes the target folder"), std::string::npos) << name;
    EXPECT_TRUE(sink.files.empty());
  }
}

// A header's mode field may carry bits above 07777; only the permission
// bits reach the sandbox. (Found by fuzz/tar_upload_fuzz.)
TEST(TarUploadTest, OnlyPermissionBitsOfAHeadersModeReachTheSink) {
  RecordingSink sink;
  auto files = UnpackArchive(-1, UstarFile("f", "7777777", "x"), "/up", sink);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(sink.files["/up/f"].mode, 07777);
}

TEST(TarUploadTest, EntryCountAndExpansionAreCapped) {
  UnpackLimits limits;
  limits.max_entries = 2;
  RecordingSink sink;
  auto many = UnpackArchive(-1, Tar({{"a", "1"}, {"b", "2"}, {"c", "3"}}), "/up", sink, limits);
  ASSERT_FALSE(many.ok());
  EXPECT_NE(many.status().message().find("more than 2 entries"), std::string::npos);

  // 8 MiB of zeros gzip to ~8 KiB: past a 1 MiB floor, over 16 times.
  limits = {};
  limits.bomb_floor_bytes = 1 << 20;
  limits.max_expansion = 16;
  std::string bomb = Tar({{"zeros", std::string(8 << 20, '\0')}}, /*gzip=*/true);
  ASSERT_LT(bomb.size(), 64u << 10);
  RecordingSink bombed;
  auto out = UnpackArchive(-1, bomb, "/up", bombed, limits);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("decompression bomb"), std::string::npos);
}

}  // namespace
}  // namespace paddock::api
