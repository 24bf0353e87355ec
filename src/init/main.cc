// paddock-init: PID 1 of every Paddock sandbox.
//
//   paddock-init --listen-fd N     serve the agent protocol on inherited socket N
//   paddock-init --listen PATH     bind PATH itself (tests, debugging)
//   ... --launch-fd M              first wait for the sandbox's launch on
//                                  socket M and carry it out (init/launch.h)
//
// It reaps every zombie in the sandbox, forwards SIGTERM/SIGINT/SIGHUP to all
// processes, and exits once SIGTERM has been delivered and no child remains.
#include <signal.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "init/launch.h"
#include "init/server.h"

namespace {

void NoOp(int) {}

int Die(const char* what) {
  std::fprintf(stderr, "paddock-init: %s: %s\n", what, std::strerror(errno));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace paddock;
  // Out of the sandbox's reach: a process that is not dumpable can be traced,
  // have its memory read (/proc/1/mem, process_vm_readv) or its descriptors
  // taken (pidfd_getfd) only with CAP_SYS_PTRACE, which no sandbox process
  // holds. Its children become dumpable again when they exec, so debuggers
  // still work on the sandbox's own programs.
  if (::prctl(PR_SET_DUMPABLE, 0) != 0) return Die("prctl(PR_SET_DUMPABLE)");
  int listen_fd = -1, launch_fd = -1;
  std::string listen_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--listen-fd") listen_fd = std::atoi(argv[i + 1]);
    else if (flag == "--listen") listen_path = argv[i + 1];
    else if (flag == "--launch-fd") launch_fd = std::atoi(argv[i + 1]);
  }
  if (launch_fd >= 0) init::AwaitLaunch(launch_fd);
  if (listen_fd < 0 && listen_path.empty()) {
    std::fprintf(stderr, "usage: paddock-init --listen-fd N | --listen PATH\n");
    return 2;
  }
  if (!listen_path.empty()) {
    listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    if (listen_path.size() >= sizeof addr.sun_path) return Die("socket path too long");
    std::strcpy(addr.sun_path, listen_path.c_str());
    ::unlink(listen_path.c_str());
    if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return Die("bind");
    if (::listen(listen_fd, 128) != 0) return Die("listen");
  }
  ::fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
  ::fcntl(listen_fd, F_SETFL, ::fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
  // Outside a pid namespace (tests), still adopt orphans so they get reaped.
  if (::getpid() != 1) ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  // PID 1 of a pid namespace only receives signals it has handlers for, so
  // install real handlers, block them, and read them from a signalfd.
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) {
    struct sigaction sa = {};
    sa.sa_handler = NoOp;
    ::sigaction(sig, &sa, nullptr);
    sigaddset(&set, sig);
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);

  init::ServerOptions opts;
  if (const char* ring = std::getenv("PADDOCK_RING_BYTES")) opts.ring_bytes = std::strtoull(ring, nullptr, 10);
  init::EventLoop loop;
  if (!loop.Init().ok()) return Die("epoll");
  init::Server server(&loop, UniqueFd(listen_fd), opts);
  if (Status s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "paddock-init: %s\n", s.ToString().c_str());
    return 1;
  }
  while (!server.finished()) loop.RunOnce();
  return 0;
}
