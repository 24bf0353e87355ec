// The child's checklist reads top to bottom in SandboxMain; the host's half
// (maps, cgroup, detached mounts) is in Contain. They meet over a socketpair:
// the host sends the mount fds once the id maps are written, and the child's
// end closes on exec, which is how the host learns that init is running.
#include "kernel/contain.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "base/fs.h"
#include "kernel/caps.h"
#include "kernel/mnt.h"
#include "kernel/net.h"
#include "kernel/seccomp.h"

namespace paddock::kernel {

namespace {

constexpr int kNamespaces =
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;
constexpr size_t kMaxMountFds = 16;
constexpr size_t kStackBytes = 256 * 1024;
// Fixed fd numbers in init: 3 is the agent socket (see paddock-init --listen-fd).
constexpr int kInitListenFd = 3;

struct ChildError {
  char step[96];
  int err;
};

// Prepared by the host before clone: the child reads it and allocates nothing.
struct ChildArgs {
  const ContainSpec* spec;
  mnt::RootfsPlan plan;
  const seccomp::Program* seccomp;
  uint64_t caps;
  int sync_fd;
  int host_fd;  // the host's end of the socketpair, which our copy of the fd table also holds
  std::vector<char*> argv, envp;
};

[[noreturn]] void ChildFail(int sync_fd, const char* step) {
  ChildError e = {};
  e.err = errno;
  std::strncpy(e.step, step, sizeof e.step - 1);
  (void)!::send(sync_fd, &e, sizeof e, MSG_NOSIGNAL);
  ::_exit(1);
}

// Waits for the host's go: the detached mounts, sent once the id maps exist.
ssize_t ReceiveMountFds(int sync_fd, int* fds) {
  char byte;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxMountFds)];
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = ::recvmsg(sync_fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
  std::memcpy(fds, CMSG_DATA(c), count * sizeof(int));
  return static_cast<ssize_t>(count);
}

int SandboxMain(void* arg) {
  auto* a = static_cast<ChildArgs*>(arg);
  const ContainSpec& spec = *a->spec;
  int sync = a->sync_fd;
  int fds[kMaxMountFds];

  // Until init runs, this child must not outlive paddockd: if the daemon dies
  // mid-create, nothing would ever send the mounts or collect it. Our copy of
  // the host's end must go too, or its death would never reach us as EOF.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::close(a->host_fd);
  ssize_t nfds = ReceiveMountFds(sync, fds);                   // host: maps written, cgroup joined
  if (nfds < 1) ChildFail(sync, "receive mounts from host");
  if (::setresgid(0, 0, 0) != 0 || ::setresuid(0, 0, 0) != 0)  // user ns: become root inside
    ChildFail(sync, "become root in the user namespace");
  if (::setgroups(0, nullptr) != 0) ChildFail(sync, "clear supplementary groups");
  if (::unshare(CLONE_NEWCGROUP) != 0) ChildFail(sync, "unshare cgroup namespace");  // cgroup ns
  if (const char* step = mnt::AssembleRootfs(a->plan, fds, static_cast<size_t>(nfds)))  // mount ns
    ChildFail(sync, step);
  if (::sethostname(spec.hostname.data(), spec.hostname.size()) != 0)  // uts ns
    ChildFail(sync, "sethostname");
  if ((errno = net::BringUpLoopback()) != 0) ChildFail(sync, "bring up loopback");  // net ns
  for (const auto& [resource, value] : spec.rlimits) {                              // limits
    // Raising a hard limit takes CAP_SYS_RESOURCE on the host: clamp to it.
    struct rlimit rl;
    if (::getrlimit(resource, &rl) != 0) ChildFail(sync, "getrlimit");
    rl.rlim_cur = rl.rlim_max = value < rl.rlim_max ? value : rl.rlim_max;
    if (::setrlimit(resource, &rl) != 0) ChildFail(sync, "setrlimit");
  }
  if ((errno = caps::Restrict(a->caps)) != 0) ChildFail(sync, "restrict capabilities");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(sync, "set no_new_privs");
  if ((errno = seccomp::Apply(*a->seccomp)) != 0) ChildFail(sync, "install seccomp filter");
  // fds: 0 /dev/null, 1-2 the log, 3 the agent socket, 4 init's executable,
  // 5 the sync socket. Lift them all above that range first, so that no dup2
  // overwrites one still to be moved.
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int lifted[5] = {
      ::fcntl(devnull, F_DUPFD_CLOEXEC, 16), ::fcntl(spec.log_fd, F_DUPFD_CLOEXEC, 16),
      ::fcntl(spec.listen_fd, F_DUPFD_CLOEXEC, 16), ::fcntl(spec.init_exe_fd, F_DUPFD_CLOEXEC, 16),
      ::fcntl(sync, F_DUPFD_CLOEXEC, 16)};
  for (int fd : lifted)
    if (fd < 0) ChildFail(sync, "duplicate fds for init");
  if (::dup2(lifted[0], 0) < 0 || ::dup2(lifted[1], 1) < 0 || ::dup2(lifted[1], 2) < 0 ||
      ::dup2(lifted[2], kInitListenFd) < 0 || ::dup3(lifted[3], 4, O_CLOEXEC) < 0 ||
      ::dup3(lifted[4], 5, O_CLOEXEC) < 0)
    ChildFail(sync, "arrange fds for init");
  sync = 5;
  // PID 1 drops signals it has no handler for, unless they are blocked: keep
  // the ones init handles blocked, so a SIGTERM sent before init installs its
  // handlers waits for it instead of vanishing. The mask survives exec.
  sigset_t init_signals;
  sigemptyset(&init_signals);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
    sigaddset(&init_signals, sig);
  ::sigprocmask(SIG_SETMASK, &init_signals, nullptr);
  ::syscall(SYS_close_range, 6, ~0U, 0);
  ::prctl(PR_SET_PDEATHSIG, 0);  // init outlives paddockd: that is the point
  ::syscall(SYS_execveat, 4, "", a->argv.data(), a->envp.data(), AT_EMPTY_PATH);
  ChildFail(sync, "exec paddock-init");
}

Status SendMountFds(int sync_fd, const std::vector<UniqueFd>& fds) {
  char byte = 'g';
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxMountFds)] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  int* out = reinterpret_cast<int*>(CMSG_DATA(c));
  for (size_t i = 0; i < fds.size(); ++i) out[i] = fds[i].get();
  if (::sendmsg(sync_fd, &msg, MSG_NOSIGNAL) < 0) return Status::Errno("send mounts to sandbox");
  return Status::Ok();
}

// Host half once the child exists: maps, cgroup, OOM immunity for init, mounts.
Status PrepareChild(const ContainSpec& spec, pid_t pid, int sync_fd) {
  PDK_TRY(user::WriteIdMaps(pid, spec.ids));
  if (spec.cgroup) PDK_TRY(spec.cgroup->AddProcess(pid));
  // PID 1 should outlive an OOM in its sandbox (its children reset this to 0).
  // Needs CAP_SYS_RESOURCE, which some hosts withhold; then the OOM killer
  // still prefers the hog, init being small.
  Status oom = WriteExisting("/proc/" + std::to_string(pid) + "/oom_score_adj", "-1000");
  if (!oom.ok() && oom.code() != StatusCode::kPermissionDenied) return oom;
  UniqueFd userns(::open(("/proc/" + std::to_string(pid) + "/ns/user").c_str(),
                         O_RDONLY | O_CLOEXEC));
  if (!userns) return Status::Errno("open user namespace of sandbox");
  std::vector<UniqueFd> mounts;
  PDK_ASSIGN_OR_RETURN(UniqueFd root, mnt::MakeOverlayRoot(spec.lower_dirs, spec.upper_dir,
                                                           spec.work_dir, userns.get()));
  mounts.push_back(std::move(root));
  for (const auto& [source, target] : spec.readonly_binds) {
    PDK_ASSIGN_OR_RETURN(UniqueFd bind, mnt::MakeReadOnlyBind(source, userns.get()));
    mounts.push_back(std::move(bind));
  }
  return SendMountFds(sync_fd, mounts);
}

}  // namespace

Result<Contained> Contain(const ContainSpec& spec) {
  if (spec.readonly_binds.size() + 1 > kMaxMountFds)
    return InvalidArgument("too many read-only binds");
  PDK_ASSIGN_OR_RETURN(const seccomp::Program* filter, seccomp::DefaultProfile());

  ChildArgs args;
  args.spec = &spec;
  std::vector<std::string> targets;
  for (const auto& b : spec.readonly_binds) targets.push_back(b.second);
  args.plan = mnt::PlanRootfs(spec.rootfs_dir, targets);
  args.seccomp = filter;
  args.caps = caps::DefaultSet();
  static char kInit[] = "paddock-init", kFlag[] = "--listen-fd", kFd[] = "3";
  args.argv = {kInit, kFlag, kFd, nullptr};
  std::vector<std::string> env = spec.init_env;
  for (auto& e : env) args.envp.push_back(e.data());
  args.envp.push_back(nullptr);

  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
    return Status::Errno("socketpair");
  UniqueFd host_end(sp[0]), child_end(sp[1]);
  args.sync_fd = child_end.get();
  args.host_fd = host_end.get();

  // CLONE_VM, as posix_spawn does: copying the caller's page tables would
  // make every create cost more as the daemon grows. The child then shares
  // our memory until it execs, so it runs on its own stack, allocates
  // nothing and writes nothing of ours; `args` and `stack` outlive it here.
  // All signals are blocked across clone so none of our handlers ever runs
  // on the child's stack; the child sets its own mask before exec.
  std::vector<char> stack(kStackBytes);
  int pidfd = -1;
  sigset_t all, saved;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &saved);
  pid_t pid = ::clone(SandboxMain, stack.data() + stack.size(),
                      kNamespaces | CLONE_VM | CLONE_PIDFD | SIGCHLD, &args, &pidfd);
  int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (pid < 0) return Status::Errno("clone sandbox namespaces", clone_errno);
  ProcessHandle handle(pid, UniqueFd(pidfd));
  child_end.reset();

  auto kill_child = [&] {
    (void)handle.Signal(SIGKILL);
    (void)handle.Wait(-1);
  };
  if (Status s = PrepareChild(spec, pid, host_end.get()); !s.ok()) {
    kill_child();
    return s;
  }
  // EOF: the child's end closed on exec. A message: the step that failed.
  ChildError err = {};
  ssize_t n;
  do n = ::recv(host_end.get(), &err, sizeof err, 0);
  while (n < 0 && errno == EINTR);
  if (n != 0) {
    kill_child();
    if (n == sizeof err) return Status::Errno(std::string("sandbox set-up: ") + err.step, err.err);
    return Internal("sandbox set-up failed without a report");
  }
  PDK_ASSIGN_OR_RETURN(uint64_t start, ProcessStartTime(pid));
  return Contained{std::move(handle), start};
}

}  // namespace paddock::kernel
