// The parts of SandboxManager that its files share (manager.cc: lifecycle;
// manager_recovery.cc: start-up; manager_warm.cc: warm shells;
// manager_reaper.cc: timeouts; manager_snapshots.cc: snapshots). Not for use outside src/sandbox.
#pragma once

#include <memory>
#include <string>

#include "sandbox/manager.h"

namespace paddock {

// A sandbox-to-be, named warm-<hex> until Create gives it an id: its folder,
// id range, cgroup and a shell with the template's root filesystem mounted.
struct SandboxManager::WarmShell {
  std::string key;  // warm-<hex>: the folder's and the cgroup's name
  std::string dir;
  IdRanges::Lease ids;
  std::unique_ptr<kernel::Cgroup> cgroup;  // declared before the shell: killed after it
  std::unique_ptr<net::Slot> slot;         // the shell is in its namespace (networking on)
  std::unique_ptr<kernel::Shell> shell;
};

enum class RecordState { kCreating, kRunning, kPaused, kStopping, kStopped, kStarting, kDeleting };

namespace manager_detail {

// A sandbox's or a snapshot's name: 1-63 of [A-Za-z0-9_.-], starting with a
// letter or digit.
bool ValidName(const std::string& name);

const char* RecordStateName(RecordState s);
// A record's state; an unknown one reads as stopped.
RecordState ParseRecordState(const std::string& s);
RecordState Recorded(SandboxState s);
Result<UniqueFd> ListenUnix(const std::string& path);
SandboxRecord ToRecord(const SandboxInfo& i, RecordState state);
SandboxInfo FromRecord(const SandboxRecord& r, const std::string& sandboxes_dir);
// A sandbox's folder is its root's alone (0700): its set-up, which runs as
// that host id, reaches it; other local users cannot read the sandbox's files.
Status CloseSandboxDir(const std::string& dir, uid_t root);
// The writable layer of `dir`; its root is the sandbox's root, so "/" is owned by root inside.
Status PrepareSandboxDir(const std::string& dir, uid_t root);
// Whose sandbox a shell becomes: name and id; at creation also the files
// that carry its name; with a network, its resolvers at every boot.
kernel::LaunchSpec LaunchFor(const SandboxInfo& info, bool first_boot, const net::Network* network);
// The files a first boot writes (LaunchFor), made empty in the writable
// layer of a fresh folder made by PrepareSandboxDir and owned by its root:
// a warm shell's, so that its launch rewrites them in place. A file made at
// launch is a new inode, and on a filesystem churning through sandboxes
// (ext4 without a journal scans for inodes not recently freed) that was
// the slowest part of a create from a warm shell.
Status PlaceFirstBootFiles(const std::string& dir, uid_t root, bool network);

}  // namespace manager_detail
}  // namespace paddock
