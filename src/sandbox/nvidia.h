// NVIDIA GPUs on hosts with the driver but no CDI spec (no nvidia-ctk):
// found from the driver's device nodes and folders, and described as the
// CDI devices nvidia-ctk would write, "nvidia.com/gpu=<index>":
//
//   nodes   /dev/nvidia<index>, and for each GPU the shared ones:
//           /dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools,
//           /dev/nvidia-modeset, /dev/nvidia-caps/*
//   mounts  the driver's folders /usr/local/nvidia/{bin,lib64,lib} (where
//           CUDA images look for it), read-only, at the same paths; the
//           driver's libraries the host's ld.so.cache lists (libcuda,
//           libnvidia-*, the GL/EGL/Vulkan/VDPAU ones), each file at its
//           own path; its programs in /usr/bin (nvidia-smi and the like)
//   links   each library's soname to its file, as nvidia-ctk's
//           create-symlinks hook would
//   ldcache the folders of those libraries (update-ldcache)
//   env     LD_LIBRARY_PATH naming /usr/local/nvidia's library folders
#pragma once

#include <string>
#include <vector>

#include "sandbox/cdi.h"

namespace paddock::nvidia {

// The GPUs under `root` ("/" on a real host; tests give a fake tree laid
// out the same way). Only character devices count as nodes.
std::vector<cdi::Device> Discover(const std::string& root);

// One library the ld.so.cache at `path` lists: its soname, and the path
// the cache gives for it (usually the soname's link).
struct CachedLibrary {
  std::string soname, path;
};
// The native (64-bit) libraries of that cache; none if it is not one
// (glibc's format since 2.32, "glibc-ld.so.cache1.1").
std::vector<CachedLibrary> ReadLdCache(const std::string& path);

}  // namespace paddock::nvidia
