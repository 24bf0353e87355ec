// NVIDIA GPUs on hosts with the driver but no CDI spec (no nvidia-ctk):
// found from the driver's device nodes and folders, and described as the
// CDI devices nvidia-ctk would write, "nvidia.com/gpu=<index>":
//
//   nodes   /dev/nvidia<index>, and for each GPU the shared ones:
//           /dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools,
//           /dev/nvidia-modeset, /dev/nvidia-caps/*
//   mounts  the driver's folders /usr/local/nvidia/{bin,lib64,lib} (where
//           CUDA images look for it), read-only, at the same paths
//   env     LD_LIBRARY_PATH naming the driver's library folders
#pragma once

#include <string>
#include <vector>

#include "sandbox/cdi.h"

namespace paddock::nvidia {

// The GPUs under `root` ("/" on a real host; tests give a fake tree laid
// out the same way). Only character devices count as nodes.
std::vector<cdi::Device> Discover(const std::string& root);

}  // namespace paddock::nvidia
