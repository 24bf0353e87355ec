// Messages with descriptors attached (SCM_RIGHTS) on a unix socket. Plain
// system calls that allocate nothing: safe in a child that shares its
// parent's memory (contain.cc's CLONE_VM shell).
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace paddock {

constexpr size_t kMaxPassedFds = 128;  // SCM_RIGHTS takes up to 253

// Sends `len` bytes of `data` (at least one) with `count` fds (at most
// kMaxPassedFds) in one message. 0, or an errno.
int SendWithFds(int sock, const void* data, size_t len, const int* fds, size_t count);

// Receives one message into `buf` and the fds that came with it (made
// close-on-exec) into `fds`, their number in `*count`; fds beyond `max_fds`
// are closed. Returns the bytes read, 0 at EOF, or -1 with errno set;
// retries on EINTR.
ssize_t RecvWithFds(int sock, void* buf, size_t len, int* fds, size_t max_fds, size_t* count);

}  // namespace paddock
