// The child's checklist reads top to bottom in ShellMain; the host's half
// (maps, cgroup, detached mounts) is in Shell::Prepare, and its identity comes
// in Shell::Launch. They meet over a socketpair:
//   host -> child   the mount fds, once the id maps are written
//   the child assembles the root and execs paddock-init, which says it is
//   ready and waits for the launch (kernel/launch.h, init/launch.cc)
// At any step the child may instead report the step that failed and exit.
#include "kernel/contain.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fd_passing.h"
#include "base/fs.h"
#include "kernel/caps.h"
#include "kernel/launch.h"
#include "kernel/mnt.h"
#include "kernel/net.h"
#include "kernel/seccomp.h"

namespace paddock::kernel {

// Prepared by the host before clone: the child reads it and allocates nothing.
struct ShellArgs {
  mnt::RootfsPlan plan;
  std::vector<std::pair<int, rlim_t>> rlimits;
  int log_fd = -1, listen_fd = -1, init_exe_fd = -1;
  int sync_fd = -1;
  bool own_netns = true;  // else it joined the host's namespace for it, set up already
  int host_fd = -1;  // the host's end of the socketpair, which our copy of the fd table also holds
  std::vector<gid_t> groups;      // supplementary groups inside (device groups)
  std::vector<std::string> env;   // ContainSpec::init_env
  std::vector<char*> argv, envp;  // envp: into `env`
};

namespace {

constexpr int kNamespaces = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
constexpr size_t kMaxMountFds = kMaxPassedFds;
constexpr size_t kStackBytes = 256 * 1024;
// ThreadSanitizer keeps per-thread state in memory a CLONE_VM child would
// share (and corrupt, running intercepted calls as our thread): a TSan
// build gives the child a copy of the address space instead.
#if defined(__SANITIZE_THREAD__)
constexpr int kShareVm = 0;
#else
constexpr int kShareVm = CLONE_VM;
#endif
// Fixed fd numbers in the child: 0 /dev/null, 1-2 the log, 3 the agent
// socket (see paddock-init --listen-fd), 4 init's executable, 5 the sync
// socket (init's --launch-fd).
constexpr int kInitListenFd = 3, kInitExeFd = 4, kSyncFd = 5;

[[noreturn]] void ChildFail(int sync_fd, const char* step) {
  ReportLaunchError(sync_fd, step, errno);
  ::_exit(1);
}

// Waits for the host's first go: the detached mounts, sent once the id maps
// exist. Their number, or -1.
ssize_t ReceiveMountFds(int sync_fd, int* fds) {
  char byte;
  size_t count = 0;
  if (RecvWithFds(sync_fd, &byte, 1, fds, kMaxMountFds, &count) <= 0) return -1;
  return static_cast<ssize_t>(count);
}

int ShellMain(void* arg) {
  auto* a = static_cast<ShellArgs*>(arg);
  int sync = a->sync_fd;

  // Until it is launched, this child (later init) must not outlive
  // paddockd: if the daemon dies, nothing would ever launch or collect it.
  // Our copy of the host's end must go too, or its death would never reach
  // us as EOF.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::close(a->host_fd);
  // Keep only init's fds: a warm shell may wait long, and must not hold the
  // daemon's other files (client connections) open meanwhile. Lift them all
  // above the fixed range first, so that no dup2 overwrites one still to move.
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int lifted[5] = {::fcntl(devnull, F_DUPFD_CLOEXEC, 16), ::fcntl(a->log_fd, F_DUPFD_CLOEXEC, 16),
                   ::fcntl(a->listen_fd, F_DUPFD_CLOEXEC, 16),
                   ::fcntl(a->init_exe_fd, F_DUPFD_CLOEXEC, 16), ::fcntl(sync, F_DUPFD_CLOEXEC, 16)};
  for (int fd : lifted)
    if (fd < 0) ChildFail(sync, "duplicate fds for init");
  if (::dup2(lifted[0], 0) < 0 || ::dup2(lifted[1], 1) < 0 || ::dup2(lifted[1], 2) < 0 ||
      ::dup2(lifted[2], kInitListenFd) < 0 || ::dup3(lifted[3], kInitExeFd, O_CLOEXEC) < 0 ||
      ::dup2(lifted[4], kSyncFd) < 0)
    ChildFail(sync, "arrange fds for init");
  sync = kSyncFd;
  ::syscall(SYS_close_range, kSyncFd + 1, ~0U, 0);

  int fds[kMaxMountFds];
  ssize_t nfds = ReceiveMountFds(sync, fds);                   // host: maps written, cgroup joined
  if (nfds < 1) ChildFail(sync, "receive mounts from host");
  // Raw system calls: glibc's wrappers would apply the change to every
  // thread of the daemon whose memory we share (signalling each and taking
  // its thread-list lock), where we want it for this task alone.
  if (::syscall(SYS_setresgid, 0, 0, 0) != 0 || ::syscall(SYS_setresuid, 0, 0, 0) != 0)  // user ns
    ChildFail(sync, "become root in the user namespace");
  if (::syscall(SYS_setgroups, a->groups.size(), a->groups.data()) != 0)  // none, or its devices'
    ChildFail(sync, "set supplementary groups");
  if (const char* step = mnt::AssembleRootfs(a->plan, fds, static_cast<size_t>(nfds)))  // mount ns
    ChildFail(sync, step);
  ::syscall(SYS_close_range, kSyncFd + 1, ~0U, 0);  // the mount fds
  if (a->own_netns && (errno = net::BringUpLoopback()) != 0)                       // net ns
    ChildFail(sync, "bring up loopback");
  for (const auto& [resource, value] : a->rlimits) {                               // limits
    // Raising a hard limit takes CAP_SYS_RESOURCE on the host: clamp to it.
    struct rlimit rl;
    if (::getrlimit(resource, &rl) != 0) ChildFail(sync, "getrlimit");
    rl.rlim_cur = rl.rlim_max = value < rl.rlim_max ? value : rl.rlim_max;
    if (::setrlimit(resource, &rl) != 0) ChildFail(sync, "setrlimit");
  }
  // Init runs from here on and waits for the launch itself, so that a
  // create does not pay its start-up (a static binary's glibc start-up
  // probes the CPU: ~0.5 ms in a VM, where each cpuid traps). PID 1 drops
  // signals it has no handler for, unless they are blocked: keep the ones
  // init handles blocked, so a SIGTERM sent before init installs its
  // handlers waits for it instead of vanishing. The mask survives exec, as
  // does the parent-death signal, which init clears once launched.
  sigset_t init_signals;
  sigemptyset(&init_signals);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
    sigaddset(&init_signals, sig);
  ::sigprocmask(SIG_SETMASK, &init_signals, nullptr);
  ::syscall(SYS_execveat, kInitExeFd, "", a->argv.data(), a->envp.data(), AT_EMPTY_PATH);
  ChildFail(sync, "exec paddock-init");
}

Status SendMountFds(int sync_fd, const std::vector<UniqueFd>& mounts) {
  int fds[kMaxMountFds];
  for (size_t i = 0; i < mounts.size(); ++i) fds[i] = mounts[i].get();
  if (int err = SendWithFds(sync_fd, "g", 1, fds, mounts.size()))
    return Status::Errno("send mounts to sandbox", err);
  return Status::Ok();
}

// Host half once the child exists: maps, cgroup, OOM immunity for init,
// mounts. Returns a copy of the root mount's fd.
Result<UniqueFd> PrepareChild(const ContainSpec& spec, pid_t pid, int sync_fd) {
  PDK_TRY(user::WriteIdMaps(pid, spec.ids, spec.device_gids));
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
  UniqueFd root_copy(::fcntl(root.get(), F_DUPFD_CLOEXEC, 0));
  if (!root_copy) return Status::Errno("duplicate the root mount's fd");
  mounts.push_back(std::move(root));
  for (const auto& b : spec.binds) {
    PDK_ASSIGN_OR_RETURN(UniqueFd bind, mnt::MakeBind(b.source, userns.get(), b.read_only));
    mounts.push_back(std::move(bind));
  }
  // A joined network namespace is the host's to own: only the host may
  // mount the sysfs that shows it (and only its devices).
  if (spec.netns_fd >= 0) {
    UniqueFd sysfs;
    PDK_TRY(net::InNetns(spec.netns_fd, [&]() -> Status {
      PDK_ASSIGN_OR_RETURN(sysfs, mnt::MakeSysfs());
      return Status::Ok();
    }));
    mounts.push_back(std::move(sysfs));
  }
  PDK_TRY(SendMountFds(sync_fd, mounts));
  return root_copy;
}

// The child's next word: kShellReady, kLaunched, or the step that failed;
// waited for at most `timeout_ms`, so that nothing a sandbox does keeps a
// create or a start waiting forever.
Result<char> ReadReport(int sync_fd, int timeout_ms) {
  struct pollfd p = {sync_fd, POLLIN, 0};
  int ready;
  do ready = ::poll(&p, 1, timeout_ms);
  while (ready < 0 && errno == EINTR);
  if (ready < 0) return Status::Errno("wait for sandbox set-up");
  if (ready == 0)
    return DeadlineExceeded("sandbox set-up did not answer within " + std::to_string(timeout_ms) + " ms");
  LaunchError err = {};
  ssize_t n;
  do n = ::recv(sync_fd, &err, sizeof err, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Status::Errno("read sandbox set-up report");
  if (n == 0) return Internal("sandbox set-up ended without a word");
  if (n == 1) return err.step[0];
  if (n == sizeof err) return Status::Errno(std::string("sandbox set-up: ") + err.step, err.err);
  return Internal("sandbox set-up sent a malformed report");
}

}  // namespace

Shell::Shell() : args_(std::make_unique<ShellArgs>()), stack_(kStackBytes) {}

Shell::~Shell() { Kill(); }

void Shell::Kill() {
  if (!child_.valid()) return;
  (void)child_.Signal(SIGKILL);
  (void)child_.Wait(-1);  // the child runs on our stack_: it must be gone first
  child_ = ProcessHandle();
}

Result<std::unique_ptr<Shell>> Shell::Prepare(const ContainSpec& spec) {
  static_assert(ContainSpec::kMaxBinds + 2 <= kMaxMountFds);
  if (spec.binds.size() > ContainSpec::kMaxBinds)
    return InvalidArgument("too many binds: at most " + std::to_string(ContainSpec::kMaxBinds));
  PDK_ASSIGN_OR_RETURN(int seccomp_fd, seccomp::DefaultProfileFd());

  std::unique_ptr<Shell> shell(new Shell());
  shell->timeout_ms_ = spec.set_up_timeout_ms;
  shell->seccomp_fd_ = seccomp_fd;
  ShellArgs& a = *shell->args_;
  if (spec.devices.size() > ContainSpec::kMaxDevices)
    return InvalidArgument("too many device nodes: at most " + std::to_string(ContainSpec::kMaxDevices));
  if (spec.device_gids.size() > ContainSpec::kMaxDeviceGids)
    return InvalidArgument("too many device groups: at most " + std::to_string(ContainSpec::kMaxDeviceGids));
  a.groups = user::DeviceGroupsInside(spec.ids, spec.device_gids.size());
  std::vector<std::string> targets;
  for (const auto& b : spec.binds) targets.push_back(b.target);
  a.plan = mnt::PlanRootfs(spec.rootfs_dir, targets, spec.devices);
  for (const auto& b : spec.binds) {
    struct stat st;
    a.plan.bind_is_file.push_back(::stat(b.source.c_str(), &st) == 0 && !S_ISDIR(st.st_mode));
  }
  a.rlimits = spec.rlimits;
  a.log_fd = spec.log_fd;
  a.listen_fd = spec.listen_fd;
  a.init_exe_fd = spec.init_exe_fd;
  a.own_netns = spec.netns_fd < 0;
  a.plan.sysfs_fd = !a.own_netns;
  static char kInit[] = "paddock-init", kListen[] = "--listen-fd", kListenFd[] = "3",
              kLaunch[] = "--launch-fd", kLaunchFd[] = "5";
  static_assert(kInitListenFd == 3 && kSyncFd == 5);
  a.argv = {kInit, kListen, kListenFd, kLaunch, kLaunchFd, nullptr};
  a.env = spec.init_env;
  for (auto& e : a.env) a.envp.push_back(e.data());
  a.envp.push_back(nullptr);

  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
    return Status::Errno("socketpair");
  UniqueFd host_end(sp[0]), child_end(sp[1]);
  a.sync_fd = child_end.get();
  a.host_fd = host_end.get();

  // CLONE_VM, as posix_spawn does: copying the caller's page tables would
  // make every create cost more as the daemon grows. The child then shares
  // our memory until it execs, so it runs on its own stack, allocates
  // nothing and writes nothing of ours; `args_` and `stack_` outlive it.
  // All signals are blocked across clone so none of our handlers ever runs
  // on the child's stack; the child sets its own mask before exec.
  // A joined network namespace is inherited: clone from inside it.
  int pidfd = -1;
  pid_t pid = -1;
  auto clone_child = [&]() -> Status {
    sigset_t all, saved;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid = ::clone(ShellMain, shell->stack_.data() + shell->stack_.size(),
                  kNamespaces | (a.own_netns ? CLONE_NEWNET : 0) | kShareVm | CLONE_PIDFD | SIGCHLD,
                  &a, &pidfd);
    int clone_errno = errno;
    ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    return pid < 0 ? Status::Errno("clone sandbox namespaces", clone_errno) : Status::Ok();
  };
  PDK_TRY(a.own_netns ? clone_child() : net::InNetns(spec.netns_fd, clone_child));
  shell->child_ = ProcessHandle(pid, UniqueFd(pidfd));
  shell->sync_ = std::move(host_end);
  child_end.reset();

  // On error ~Shell kills the child.
  PDK_ASSIGN_OR_RETURN(shell->root_mount_, PrepareChild(spec, pid, shell->sync_.get()));
  PDK_ASSIGN_OR_RETURN(char report, ReadReport(shell->sync_.get(), shell->timeout_ms_));
  if (report != kShellReady) return Internal("sandbox sent an unexpected report once set up");
  return shell;
}

Result<Contained> Shell::Launch(const LaunchSpec& launch) {
  if (!child_.valid()) return FailedPrecondition("this sandbox shell was launched already");
  auto launched = [&]() -> Result<Contained> {
    PDK_ASSIGN_OR_RETURN(std::string msg, EncodeLaunch(launch, caps::DefaultSet()));
    // The seccomp program's fd goes with it: init installs it.
    Status sent;
    if (int err = SendWithFds(sync_.get(), msg.data(), msg.size(), &seccomp_fd_, 1))
      sent = Status::Errno("send launch message to sandbox", err);
    // A child that died reports why before its end closes: read that first.
    PDK_ASSIGN_OR_RETURN(char report, ReadReport(sync_.get(), timeout_ms_));
    PDK_TRY(sent);
    if (report != kLaunched) return Internal("sandbox sent an unexpected report at launch");
    PDK_ASSIGN_OR_RETURN(uint64_t start, ProcessStartTime(child_.pid()));
    return Contained{std::move(child_), start, std::move(root_mount_)};
  }();
  if (!launched.ok()) Kill();
  return launched;
}

}  // namespace paddock::kernel
