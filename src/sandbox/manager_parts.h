// The parts of SandboxManager that its files share (manager.cc: lifecycle;
// manager_recovery.cc: start-up; manager_warm.cc: warm shells;
// manager_reaper.cc: timeouts). Not for use outside src/sandbox.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "sandbox/manager.h"

namespace paddock {

struct SandboxManager::Sandbox {
  std::mutex mu;        // serializes this sandbox's transitions
  // False while Create is still building it and once it is deleted. Written
  // under mu, read under the manager's lock too (Find): atomic.
  std::atomic<bool> ready = false;
  SandboxInfo info;
  std::unique_ptr<kernel::Cgroup> cgroup;  // present while running or paused
  kernel::ProcessHandle init;
  UniqueFd root_mount;                     // see kernel::Contained::root_mount; none once adopted
  std::unique_ptr<net::Slot> slot;         // its network, while running or paused
  std::shared_ptr<const image::ImageConfig> image_config;  // its image's defaults; null for built-ins
  // What Persist publishes at the end of every transition, for readers that
  // must not wait for one in progress (List, /metrics, the reaper, the
  // port proxy): a stop's grace period or a fork's copy holds mu for long.
  mutable std::mutex published_mu;  // guards the two below
  SandboxEndpoint endpoint;
  SandboxInfo published;
  // What agent clients last saw of an init (SandboxInfo::unhealthy): the
  // one that started at health_init. Clients report from any thread.
  mutable std::mutex health_mu;
  uint64_t health_init = 0;
  std::string unhealthy;

  void ReportHealth(uint64_t init_start_time, const Status& seen) {
    std::lock_guard<std::mutex> lock(health_mu);
    health_init = init_start_time;
    unhealthy = seen.ok() ? "" : seen.message();
  }
  // info, with what is known of its init's health; requires mu held.
  SandboxInfo Snapshot() const { return WithHealth(info); }
  // As of its last transition; never waits for one.
  SandboxInfo Published() const {
    std::lock_guard<std::mutex> lock(published_mu);
    return WithHealth(published);
  }
  SandboxInfo WithHealth(SandboxInfo out) const {
    std::lock_guard<std::mutex> lock(health_mu);
    if (out.state != SandboxState::kStopped && out.init_start_time == health_init) out.unhealthy = unhealthy;
    return out;
  }
};

// A sandbox-to-be, named warm-<hex> until Create gives it an id: its folder,
// id range, cgroup and a shell with the template's root filesystem mounted.
struct SandboxManager::WarmShell {
  std::string key;  // warm-<hex>: the folder's and the cgroup's name
  std::string dir;
  uint32_t host_first = 0;
  std::unique_ptr<kernel::Cgroup> cgroup;  // declared before the shell: killed after it
  std::unique_ptr<net::Slot> slot;         // the shell is in its namespace (networking on)
  std::unique_ptr<kernel::Shell> shell;
};

namespace manager_detail {

Result<UniqueFd> ListenUnix(const std::string& path);
SandboxRecord ToRecord(const SandboxInfo& i, const char* state);
SandboxInfo FromRecord(const SandboxRecord& r, const std::string& sandboxes_dir);
// A sandbox's folder is its root's alone (0700): its set-up, which runs as
// that host id, reaches it; other local users cannot read the sandbox's files.
Status CloseSandboxDir(const std::string& dir, uid_t root);
// The writable layer of `dir`; its root is the sandbox's root, so "/" is owned by root inside.
Status PrepareSandboxDir(const std::string& dir, uid_t root);
// Whose sandbox a shell becomes: name and id; at creation also the files
// that carry its name; with a network, its resolvers at every boot.
kernel::LaunchSpec LaunchFor(const SandboxInfo& info, bool first_boot, const net::Network* network);

}  // namespace manager_detail
}  // namespace paddock
