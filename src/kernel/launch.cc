#include "kernel/launch.h"

#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace paddock::kernel {
namespace {

// The launch message: a header of the counts and the capabilities, then
// "hostname\0", `file_count` pairs "path\0text\0", `symlink_count` pairs
// "target\0path\0" and `chmod_count` pairs "path\0octal mode\0".
struct LaunchHeader {
  uint64_t caps;
  uint32_t file_count;
  uint32_t symlink_count;
  uint32_t chmod_count;
};

}  // namespace

void ReportLaunchError(int fd, const char* step, int err) {
  LaunchError e = {};
  e.err = err;
  std::strncpy(e.step, step, sizeof e.step - 1);
  (void)!::send(fd, &e, sizeof e, MSG_NOSIGNAL);
}

Result<std::string> EncodeLaunch(const LaunchSpec& launch, uint64_t caps) {
  LaunchHeader h{caps, static_cast<uint32_t>(launch.files.size()),
                 static_cast<uint32_t>(launch.symlinks.size()), static_cast<uint32_t>(launch.chmods.size())};
  std::string out(reinterpret_cast<const char*>(&h), sizeof h);
  auto add = [&out](const std::string& s) -> Status {
    if (s.find('\0') != std::string::npos) return InvalidArgument("launch strings hold no NUL");
    out += s;
    out += '\0';
    return Status::Ok();
  };
  PDK_TRY(add(launch.hostname));
  for (const auto& [path, text] : launch.files) {
    PDK_TRY(add(path));
    PDK_TRY(add(text));
  }
  for (const auto& [target, path] : launch.symlinks) {
    PDK_TRY(add(target));
    PDK_TRY(add(path));
  }
  for (const auto& [path, mode] : launch.chmods) {
    char octal[16];
    std::snprintf(octal, sizeof octal, "%o", mode & 07777);
    PDK_TRY(add(path));
    PDK_TRY(add(octal));
  }
  if (out.size() > kLaunchBytes) return InvalidArgument("launch message over 16 KiB");
  return out;
}

Result<LaunchSpec> DecodeLaunch(std::string_view message, uint64_t* caps) {
  LaunchHeader h;
  if (message.size() < sizeof h) return InvalidArgument("launch message shorter than its header");
  std::memcpy(&h, message.data(), sizeof h);
  message.remove_prefix(sizeof h);
  auto next = [&message]() -> Result<std::string> {
    size_t nul = message.find('\0');
    if (nul == std::string_view::npos) return InvalidArgument("launch message cut short");
    std::string s(message.substr(0, nul));
    message.remove_prefix(nul + 1);
    return s;
  };
  *caps = h.caps;
  LaunchSpec l;
  PDK_ASSIGN_OR_RETURN(l.hostname, next());
  // Each entry takes at least two bytes: counts past that are lies.
  if (uint64_t{h.file_count} + h.symlink_count + h.chmod_count > message.size())
    return InvalidArgument("launch message counts more entries than it holds");
  for (uint32_t i = 0; i < h.file_count; ++i) {
    PDK_ASSIGN_OR_RETURN(std::string path, next());
    PDK_ASSIGN_OR_RETURN(std::string text, next());
    l.files.emplace_back(std::move(path), std::move(text));
  }
  for (uint32_t i = 0; i < h.symlink_count; ++i) {
    PDK_ASSIGN_OR_RETURN(std::string target, next());
    PDK_ASSIGN_OR_RETURN(std::string path, next());
    l.symlinks.emplace_back(std::move(target), std::move(path));
  }
  for (uint32_t i = 0; i < h.chmod_count; ++i) {
    PDK_ASSIGN_OR_RETURN(std::string path, next());
    PDK_ASSIGN_OR_RETURN(std::string mode, next());
    l.chmods.emplace_back(std::move(path), static_cast<uint32_t>(std::strtoul(mode.c_str(), nullptr, 8)));
  }
  return l;
}

}  // namespace paddock::kernel
