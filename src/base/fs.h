// File helpers over raw syscalls. All return Status with the path in the message.
#pragma once

#include <sys/types.h>

#include <string>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "base/status.h"

struct stat;

namespace paddock {

Result<std::string> ReadFile(const std::string& path);
// Writes all of `data` to `fd`, past short writes and EINTR; `path` names it in errors.
Status WriteAll(int fd, std::string_view data, const std::string& path);
// Writes `data` to an existing file (cgroup knobs, /proc files): no create, no truncate.
Status WriteExisting(const std::string& path, std::string_view data);
// The same for `name` in the folder `dir` (AT_FDCWD: the working folder).
Status WriteExistingAt(int dir, const std::string& name, std::string_view data);
// Crash-safe replace: writes a temporary sibling, fsyncs it, renames it over `path`.
Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode = 0644);
// `name` in the folder `dir` opened for reading, only if it is a regular
// file: looked at through an O_PATH handle first and reopened from it, so
// that nothing else is ever opened (a FIFO's open would wait for a writer,
// a device's act). FailedPrecondition otherwise; `st`, if given, gets what
// it is either way.
Result<UniqueFd> OpenRegularAt(int dir, const std::string& name, struct stat* st = nullptr);
// mkdir -p; succeeds if the directory already exists.
Status MakeDirs(const std::string& path, mode_t mode = 0755);
// rm -rf without following symlinks (safe on trees written by sandboxes).
// Succeeds if `path` does not exist.
Status RemoveTree(const std::string& path);
bool PathExists(const std::string& path);
// Names in `dir` not starting with '.', folders only if `dirs_only`; empty if
// `dir` cannot be read.
std::vector<std::string> ListDir(const std::string& dir, bool dirs_only = false);
// The names in the open folder `dir_fd` but "." and "..", sorted (hidden
// ones too); `path` names it in errors.
Result<std::vector<std::string>> NamesIn(int dir_fd, const std::string& path);
// The extended attributes of `path` itself (not a symlink's target), as
// (name, value) pairs.
Result<std::vector<std::pair<std::string, std::string>>> ReadXattrs(const std::string& path);
// syncfs(2) of the filesystem holding `dir`: what was written there is on disk.
Status SyncFilesystem(const std::string& dir);
// The components of `path`, without empty ones and "."; nullopt if one is
// "..". "/a//./b/" -> {"a", "b"}.
std::optional<std::vector<std::string>> CleanParts(std::string_view path);
// Joins two path pieces with exactly one '/'.
std::string JoinPath(std::string_view a, std::string_view b);

// Nanoseconds on CLOCK_MONOTONIC.
int64_t MonotonicNanos();

}  // namespace paddock
