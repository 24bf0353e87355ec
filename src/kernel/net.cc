#include "kernel/net.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace paddock::kernel::net {

int BringUpLoopback() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, "lo", 3);
  int err = 0;
  if (::ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
    err = errno;
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) err = errno;
  }
  ::close(fd);
  return err;
}

namespace {

Result<UniqueFd> OpenOwnNetns() {
  UniqueFd fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Errno("open /proc/thread-self/ns/net");
  return fd;
}

void ReturnTo(int home) {
  if (::setns(home, CLONE_NEWNET) != 0) {
    std::perror("paddock: cannot return to the host network namespace");
    std::abort();
  }
}

}  // namespace

Result<UniqueFd> NewNetns() {
  PDK_ASSIGN_OR_RETURN(UniqueFd home, OpenOwnNetns());
  if (::unshare(CLONE_NEWNET) != 0) return Status::Errno("unshare network namespace");
  Result<UniqueFd> made = OpenOwnNetns();
  ReturnTo(home.get());
  return made;
}

Result<UniqueFd> OpenNetnsOf(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Errno("open " + path);
  return fd;
}

Status InNetns(int netns_fd, const std::function<Status()>& fn) {
  PDK_ASSIGN_OR_RETURN(UniqueFd home, OpenOwnNetns());
  if (::setns(netns_fd, CLONE_NEWNET) != 0) return Status::Errno("enter network namespace");
  Status s = fn();
  ReturnTo(home.get());
  return s;
}

}  // namespace paddock::kernel::net
