#include "sandbox/nvidia.h"

#include <limits.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "base/fs.h"

namespace paddock::nvidia {

namespace {

bool IsCharDevice(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string Under(const std::string& root, const std::string& path) {
  return root == "/" ? path : JoinPath(root, path);
}

// The file `path` (under `root`, resolved: realpath) leads to through its
// links, as a path under `root`; empty if it is not a regular file there.
std::string RealFileUnder(const std::string& root, const std::string& path) {
  char real[PATH_MAX];
  if (!::realpath(Under(root, path).c_str(), real)) return "";
  std::string r = real;
  if (root != "/") {
    if (r.rfind(root + "/", 0) != 0) return "";
    r = r.substr(root.size());
  }
  struct stat st;
  return ::stat(real, &st) == 0 && S_ISREG(st.st_mode) ? r : "";
}

// The driver's own libraries (not the container toolkit's).
bool DriverLibrary(const std::string& soname) {
  if (soname.rfind("libnvidia-container", 0) == 0) return false;
  for (const char* prefix : {"libcuda.so", "libcudadebugger.so", "libnvidia-", "libnvcuvid.so", "libnvoptix.so"})
    if (soname.rfind(prefix, 0) == 0) return true;
  return soname.find("_nvidia.so") != std::string::npos;  // libGLX_, libEGL_, libGLESv2_, libvdpau_nvidia
}

// ld.so.cache's layout (glibc's elf/cache.c): a 48-byte header, then
// entries of 24 bytes whose key (soname) and value (path) are offsets of
// NUL-terminated strings from the file's start.
constexpr char kCacheMagic[] = "glibc-ld.so.cache1.1";
constexpr size_t kCacheHeader = 48, kCacheEntry = 24;
constexpr int32_t kElfLibc6 = 0x0003, kTypeMask = 0x00ff, kArchMask = 0xff00;
#if defined(__x86_64__)
constexpr int32_t kNativeArch = 0x0300;
#elif defined(__aarch64__)
constexpr int32_t kNativeArch = 0x0a00;
#else
constexpr int32_t kNativeArch = -1;  // every entry
#endif

uint32_t Word(const std::string& d, size_t at) {
  uint32_t v;
  std::memcpy(&v, d.data() + at, sizeof v);
  return v;
}

std::string StringAt(const std::string& d, uint32_t at) {
  if (at >= d.size()) return "";
  size_t end = d.find('\0', at);
  return end == std::string::npos ? "" : d.substr(at, end - at);
}

}  // namespace

std::vector<CachedLibrary> ReadLdCache(const std::string& path) {
  auto data = ReadFile(path);
  std::vector<CachedLibrary> out;
  if (!data.ok() || data->size() < kCacheHeader || data->compare(0, sizeof kCacheMagic - 1, kCacheMagic) != 0)
    return out;
  const std::string& d = *data;
  uint32_t count = Word(d, sizeof kCacheMagic - 1);
  if (count > (d.size() - kCacheHeader) / kCacheEntry) return out;
  for (uint32_t i = 0; i < count; ++i) {
    size_t at = kCacheHeader + i * kCacheEntry;
    auto flags = static_cast<int32_t>(Word(d, at));
    if ((flags & kTypeMask) != kElfLibc6) continue;
    if (kNativeArch >= 0 && (flags & kArchMask) != kNativeArch) continue;
    CachedLibrary lib{StringAt(d, Word(d, at + 4)), StringAt(d, Word(d, at + 8))};
    if (!lib.soname.empty() && !lib.path.empty() && lib.path[0] == '/') out.push_back(std::move(lib));
  }
  return out;
}

std::vector<cdi::Device> Discover(const std::string& root) {
  std::vector<int> indices;
  for (const auto& name : ListDir(Under(root, "/dev"))) {
    if (name.size() <= 6 || name.rfind("nvidia", 0) != 0) continue;
    std::string digits = name.substr(6);
    if (digits.size() > 3 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    if (IsCharDevice(Under(root, "/dev/" + name))) indices.push_back(std::atoi(digits.c_str()));
  }
  std::sort(indices.begin(), indices.end());
  if (indices.empty()) return {};

  cdi::Edits shared;
  for (const char* node : {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"})
    if (IsCharDevice(Under(root, node))) shared.nodes.push_back({node, Under(root, node)});
  for (const auto& cap : ListDir(Under(root, "/dev/nvidia-caps")))
    if (IsCharDevice(Under(root, "/dev/nvidia-caps/" + cap)))
      shared.nodes.push_back({"/dev/nvidia-caps/" + cap, Under(root, "/dev/nvidia-caps/" + cap)});
  std::string libraries;
  for (const char* dir : {"/usr/local/nvidia/bin", "/usr/local/nvidia/lib64", "/usr/local/nvidia/lib"}) {
    if (!IsDir(Under(root, dir))) continue;
    shared.mounts.push_back({Under(root, dir), dir, true});
    if (std::string(dir).find("/lib") != std::string::npos) libraries += (libraries.empty() ? "" : ":") + std::string(dir);
  }
  if (!libraries.empty()) shared.env.push_back("LD_LIBRARY_PATH=" + libraries);
  // The driver's libraries wherever the host's loader finds them: each file
  // bound at its own path, its soname linked to it, its folder in ld.so.cache.
  char resolved[PATH_MAX];
  if (!::realpath(root.c_str(), resolved)) return {};
  const std::string real_root = resolved;
  for (const auto& lib : ReadLdCache(Under(root, "/etc/ld.so.cache"))) {
    if (!DriverLibrary(lib.soname)) continue;
    std::string file = RealFileUnder(real_root, lib.path);
    if (file.empty()) continue;
    std::string dir = file.substr(0, file.rfind('/')), name = file.substr(file.rfind('/') + 1);
    cdi::Edits one;
    one.mounts.push_back({Under(root, file), file, true});
    if (name != lib.soname) one.symlinks.emplace_back(name, dir + "/" + lib.soname);
    one.ldcache_folders.push_back(dir);
    shared.Add(one);
  }
  for (const char* program : {"nvidia-smi", "nvidia-debugdump", "nvidia-persistenced", "nvidia-cuda-mps-control",
                              "nvidia-cuda-mps-server"}) {
    std::string file = RealFileUnder(real_root, std::string("/usr/bin/") + program);
    if (!file.empty()) shared.mounts.push_back({Under(root, file), std::string("/usr/bin/") + program, true});
  }

  std::vector<cdi::Device> out;
  for (int i : indices) {
    cdi::Device d;
    d.name = "nvidia.com/gpu=" + std::to_string(i);
    d.spec = "(found: " + Under(root, "/dev/nvidia" + std::to_string(i)) + ")";
    d.edits.nodes.push_back({"/dev/nvidia" + std::to_string(i), Under(root, "/dev/nvidia" + std::to_string(i))});
    d.edits.Add(shared);
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace paddock::nvidia
