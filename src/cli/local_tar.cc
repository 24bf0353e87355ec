#include "cli/local_tar.h"

#include <archive.h>
#include <archive_entry.h>

#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <vector>
#include <fstream>
#include <iterator>

namespace {

// Opens the new archive `a` to append its bytes to *out.
void WriteInto(struct archive* a, std::string* out) {
  archive_write_open(a, out, nullptr, [](struct archive*, void* ctx, const void* b, size_t n) -> la_ssize_t {
    static_cast<std::string*>(ctx)->append(static_cast<const char*>(b), n);
    return static_cast<la_ssize_t>(n);
  }, nullptr);
}

}  // namespace

bool paddock_tar_dir(const char* dir_c, std::string* out, std::string* error) {
  const std::string dir = dir_c;
  struct archive* disk = archive_read_disk_new();
  archive_read_disk_set_standard_lookup(disk);
  if (archive_read_disk_open(disk, dir.c_str()) != ARCHIVE_OK) {
    archive_read_free(disk);
    *error = "cannot read " + dir;
    return false;
  }
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  WriteInto(a, out);
  while (true) {
    struct archive_entry* entry = archive_entry_new();
    if (archive_read_next_header2(disk, entry) != ARCHIVE_OK) {
      archive_entry_free(entry);
      break;
    }
    archive_read_disk_descend(disk);
    std::string path = archive_entry_pathname(entry);
    std::string rel = path.size() > dir.size() ? path.substr(dir.size() + 1) : ".";
    archive_entry_set_pathname(entry, rel.c_str());
    archive_write_header(a, entry);
    if (archive_entry_filetype(entry) == AE_IFREG) {
      std::ifstream in(path, std::ios::binary);
      std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      archive_write_data(a, data.data(), data.size());
    }
    archive_entry_free(entry);
  }
  archive_read_free(disk);
  archive_write_close(a);
  archive_write_free(a);
  return true;
}

bool paddock_untar(const std::string* tar, const char* dir_c, std::string* error) {
  const std::string dir = dir_c;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    *error = "create " + dir + ": " + ec.message();
    return false;
  }
  struct archive* a = archive_read_new();
  archive_read_support_format_all(a);
  archive_read_open_memory(a, tar->data(), tar->size());
  struct archive* disk = archive_write_disk_new();
  archive_write_disk_set_options(disk, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                           ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS);
  struct archive_entry* entry;
  bool ok = true;
  while (archive_read_next_header(a, &entry) == ARCHIVE_OK) {
    std::string path = dir + "/" + archive_entry_pathname(entry);
    archive_entry_set_pathname(entry, path.c_str());
    if (archive_write_header(disk, entry) != ARCHIVE_OK) {
      *error = std::string("extract: ") + archive_error_string(disk);
      ok = false;
      break;
    }
    const void* buf;
    size_t size;
    la_int64_t offset;
    while (archive_read_data_block(a, &buf, &size, &offset) == ARCHIVE_OK)
      archive_write_data_block(disk, buf, size, offset);
  }
  archive_read_free(a);
  archive_write_free(disk);
  return ok;
}

bool paddock_tar_paths(const char* context_c, const char* src_c, std::string* out, std::string* sha256,
                       std::string* error) {
  namespace fs = std::filesystem;
  const fs::path context = context_c;
  std::string src = src_c;
  while (src.size() > 1 && src.back() == '/') src.pop_back();
  // Every path under src, sorted, so that the same files make the same bytes.
  std::vector<std::string> names;
  std::error_code ec;
  fs::file_status top = fs::symlink_status(context / src, ec);
  if (ec || !fs::exists(top)) {
    *error = "no file or folder " + (context / src).string();
    return false;
  }
  if (src != ".") names.push_back(src);
  if (fs::is_directory(top)) {
    for (fs::recursive_directory_iterator it(context / src, ec), end; !ec && it != end; it.increment(ec))
      names.push_back(fs::relative(it->path(), context, ec).generic_string());
    if (ec) {
      *error = "cannot read " + (context / src).string() + ": " + ec.message();
      return false;
    }
  }
  std::sort(names.begin(), names.end());
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  WriteInto(a, out);
  bool ok = true;
  for (const auto& name : names) {
    fs::path full = context / name;
    fs::file_status st = fs::symlink_status(full, ec);
    struct archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, name.c_str());
    archive_entry_set_perm(entry, static_cast<mode_t>(st.permissions()) & 07777);
    std::string data;
    if (fs::is_directory(st)) {
      archive_entry_set_filetype(entry, AE_IFDIR);
    } else if (fs::is_symlink(st)) {
      archive_entry_set_filetype(entry, AE_IFLNK);
      archive_entry_set_symlink(entry, fs::read_symlink(full, ec).c_str());
    } else if (fs::is_regular_file(st)) {
      std::ifstream in(full, std::ios::binary);
      data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (!in.good() && !in.eof()) {
        *error = "cannot read " + full.string();
        ok = false;
      }
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_size(entry, static_cast<la_int64_t>(data.size()));
    } else {
      archive_entry_free(entry);
      continue;  // sockets, devices, FIFOs: not copied
    }
    if (ok && archive_write_header(a, entry) != ARCHIVE_OK) {
      *error = std::string("tar: ") + archive_error_string(a);
      ok = false;
    }
    if (ok && !data.empty()) archive_write_data(a, data.data(), data.size());
    archive_entry_free(entry);
    if (!ok) break;
  }
  archive_write_close(a);
  archive_write_free(a);
  if (!ok) return false;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(out->data(), out->size(), md, &len, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  sha256->clear();
  for (unsigned int i = 0; i < len; ++i) {
    *sha256 += kHex[md[i] >> 4];
    *sha256 += kHex[md[i] & 15];
  }
  return true;
}
