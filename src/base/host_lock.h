// HostLock: held by one holder on this host at a time. It keeps two sandbox
// managers apart (two paddockds, or paddock-run beside one): both would take
// the cgroup tree, the bridge, the firewall table and the user id ranges as
// their own, and each sweeps at start-up what the other made, killing its
// sandboxes.
//
// An open file description lock (F_OFD_SETLK) on a file in a folder only
// root may write: it goes with the holder's last descriptor of that open, so
// a crash (kill -9 included) releases it, and nothing else the holder does
// (another open of the file and its close, a child's exit) can. The
// descriptor is close-on-exec. The file names its holder, for the error the
// next one gets.
#pragma once

#include <string>

#include "base/fd.h"
#include "base/status.h"

namespace paddock {

class HostLock {
 public:
  HostLock() = default;

  // Takes the lock at `path` (its folder made 0700 if missing, and refused
  // if anyone but this user could write there), waiting up to `wait_ms` for
  // a holder to let go. `holder` says who takes it (the file keeps it with
  // the pid): kUnavailable names the holder when it does not let go.
  static Result<HostLock> Acquire(const std::string& path, int wait_ms, const std::string& holder);

  bool held() const { return fd_.valid(); }

 private:
  explicit HostLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace paddock
