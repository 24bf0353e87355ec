#include "api/tar_upload.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "base/fs.h"

namespace paddock::api {

Result<int> UnpackArchive(int fd, std::string_view memory, const std::string& root, UnpackSink& sink,
                          const UnpackLimits& limits) {
  struct archive* a = archive_read_new();
  std::unique_ptr<struct archive, int (*)(struct archive*)> guard(a, archive_read_free);
  archive_read_support_format_all(a);
  archive_read_support_filter_all(a);
  int64_t archive_bytes = 0;
  int opened;
  if (fd >= 0) {
    struct stat st;
    if (::fstat(fd, &st) != 0) return Status::Errno("fstat the uploaded archive");
    archive_bytes = st.st_size;
    opened = archive_read_open_fd(a, fd, 64 << 10);
  } else {
    archive_bytes = static_cast<int64_t>(memory.size());
    opened = archive_read_open_memory(a, memory.data(), memory.size());
  }
  auto archive_error = [&](const std::string& what) {
    return InvalidArgument(what + ": " + (archive_error_string(a) ? archive_error_string(a) : "truncated"));
  };
  if (opened != ARCHIVE_OK) return archive_error("body is not a tar archive");
  int files = 0;
  int64_t entries = 0;
  int64_t unpacked = 0;
  struct archive_entry* entry;
  int rc;
  while ((rc = archive_read_next_header(a, &entry)) == ARCHIVE_OK) {
    if (++entries > limits.max_entries)
      return InvalidArgument("archive has more than " + std::to_string(limits.max_entries) + " entries");
    std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    while (name.rfind("./", 0) == 0) name = name.substr(2);
    if (name.empty() || name == ".") continue;
    if (name[0] == '/' || ("/" + name + "/").find("/../") != std::string::npos)
      return InvalidArgument("archive entry '" + name + "' escapes the target folder");
    std::string path = JoinPath(root, name);
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    auto type = archive_entry_filetype(entry);
    int mode = archive_entry_perm(entry) & 07777;  // a header can carry other bits
    if (type == AE_IFDIR) {
      PDK_TRY(sink.MakeDir(path, mode));
    } else if (type == AE_IFREG) {
      // A sparse entry's trailing hole is not returned as data: zeros make
      // up its declared size (they count as unpacked bytes like any others).
      int64_t size = archive_entry_size_is_set(entry) ? archive_entry_size(entry) : 0;
      int64_t written = 0;
      auto read = [&](char* buf, size_t cap) -> Result<size_t> {
        la_ssize_t n = archive_read_data(a, buf, cap);
        if (n < 0) return archive_error("bad tar entry '" + name + "'");
        if (n == 0 && written < size) {
          n = static_cast<la_ssize_t>(std::min<int64_t>(size - written, static_cast<int64_t>(cap)));
          std::memset(buf, 0, static_cast<size_t>(n));
        }
        written += n;
        unpacked += n;
        if (unpacked > limits.bomb_floor_bytes && unpacked / limits.max_expansion > archive_bytes)
          return InvalidArgument("archive expands to more than " + std::to_string(limits.max_expansion) +
                                 " times its size (a decompression bomb?)");
        return static_cast<size_t>(n);
      };
      PDK_TRY(sink.WriteFile(path, mode, read));
      ++files;
    }
  }
  if (rc != ARCHIVE_EOF) return archive_error("bad tar archive");
  return files;
}

}  // namespace paddock::api
