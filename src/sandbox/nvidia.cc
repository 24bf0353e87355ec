#include "sandbox/nvidia.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>

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

}  // namespace

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

  std::vector<cdi::Device> out;
  for (int i : indices) {
    cdi::Device d;
    d.name = "nvidia.com/gpu=" + std::to_string(i);
    d.spec = "(found: " + Under(root, "/dev/nvidia" + std::to_string(i)) + ")";
    d.edits.nodes.push_back({"/dev/nvidia" + std::to_string(i), Under(root, "/dev/nvidia" + std::to_string(i))});
    d.edits.nodes.insert(d.edits.nodes.end(), shared.nodes.begin(), shared.nodes.end());
    d.edits.mounts = shared.mounts;
    d.edits.env = shared.env;
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace paddock::nvidia
