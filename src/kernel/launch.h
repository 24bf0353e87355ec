// The launch: what a prepared sandbox (a shell, warm or not) learns when it
// becomes a given sandbox, and the words its init and the host exchange.
//
// paddock-init is exec'd as soon as the shell's root is assembled and waits
// on its launch socket (--launch-fd), so that a create does not pay init's
// start-up; contain.cc (Shell::Launch) sends the launch, init/launch.cc
// carries it out:
//   init -> host   kShellReady: init runs and waits
//   host -> init   the launch message, the seccomp program's fd attached
//   init -> host   kLaunched once it has carried it out and hardened itself,
//                  or a LaunchError naming the step that failed
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace paddock::kernel {

// What a shell learns at launch: whose sandbox it is.
struct LaunchSpec {
  std::string hostname;
  // {path inside, text} written before init serves, as root inside (its
  // folders made if missing).
  std::vector<std::pair<std::string, std::string>> files;
  // {target, path inside}: symlinks made then (a device's, see cdi.h); an
  // earlier link at the path is replaced, anything else there kept.
  std::vector<std::pair<std::string, std::string>> symlinks;
  // {path inside, mode}: chmod'ed then; a path not there is skipped.
  std::vector<std::pair<std::string, uint32_t>> chmods;
};

constexpr char kShellReady = 'R', kLaunched = 'L';
constexpr size_t kLaunchBytes = 16384;  // the launch message's limit

// A step of the set-up that failed, and its errno: the last word of a shell
// that gives up (before or after init runs).
struct LaunchError {
  char step[96];
  int err;
};

// Sends a LaunchError for `step` and `err` on `fd`. Async-signal-safe (a
// shell's child reports with it before exec, init after).
void ReportLaunchError(int fd, const char* step, int err);

// The message carries `caps`, the capabilities init keeps (and so every
// process it starts): the rest leave the bounding set.
Result<std::string> EncodeLaunch(const LaunchSpec& launch, uint64_t caps);
Result<LaunchSpec> DecodeLaunch(std::string_view message, uint64_t* caps);

}  // namespace paddock::kernel
