// paddock-init's first job in a sandbox: wait for its launch
// (kernel/launch.h), carry it out and harden itself, before it serves.
#pragma once

namespace paddock::init {

// Says kShellReady on `fd` and waits for the launch message; then makes its
// own cgroup namespace (the host has given the cgroup its final name by
// now), sets the hostname, writes the files, symlinks and modes, bounds its
// capabilities, sets no_new_privs and the seccomp filter that came with the
// message, and clears its parent-death signal (init outlives paddockd).
// Answers kLaunched and closes `fd`. Exits on EOF (the host discarded the
// shell) and on a failed step, which it reports as a LaunchError.
void AwaitLaunch(int fd);

}  // namespace paddock::init
