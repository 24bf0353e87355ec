// The child's checklist reads top to bottom in ShellMain; the host's half
// (maps, cgroup, detached mounts) is in Shell::Prepare, and its identity comes
// in Shell::Launch. They meet over a socketpair:
//   host -> child   the mount fds, once the id maps are written
//   child -> host   one byte: the root filesystem is assembled (a warm shell)
//   host -> child   the launch message: hostname, env, files to write
//   child's end closes on exec, which is how the host learns init is running.
// At any step the child may instead report the step that failed and exit.
#include "kernel/contain.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "base/fs.h"
#include "kernel/caps.h"
#include "kernel/mnt.h"
#include "kernel/net.h"
#include "kernel/seccomp.h"

namespace paddock::kernel {

// Prepared by the host before clone: the child reads it and allocates nothing.
struct ShellArgs {
  mnt::RootfsPlan plan;
  std::vector<std::pair<int, rlim_t>> rlimits;
  const seccomp::Program* seccomp = nullptr;
  uint64_t caps = 0;
  int log_fd = -1, listen_fd = -1, init_exe_fd = -1;
  int sync_fd = -1;
  bool own_netns = true;  // else it joined the host's namespace for it, set up already
  int host_fd = -1;  // the host's end of the socketpair, which our copy of the fd table also holds
  std::vector<gid_t> groups;      // supplementary groups inside (device groups)
  std::vector<std::string> env;   // ContainSpec::init_env
  std::vector<char*> argv, envp;  // envp: into `env`, no terminator (launch adds to it)
};

namespace {

constexpr int kNamespaces = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
constexpr size_t kMaxMountFds = 128;  // SCM_RIGHTS takes up to 253
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kLaunchBytes = 16384;  // the launch message's limit
constexpr size_t kMaxLaunchEnv = 64;
constexpr char kReady = 'R';
// ThreadSanitizer keeps per-thread state in memory a CLONE_VM child would
// share (and corrupt, running intercepted calls as our thread): a TSan
// build gives the child a copy of the address space instead.
#if defined(__SANITIZE_THREAD__)
constexpr int kShareVm = 0;
#else
constexpr int kShareVm = CLONE_VM;
#endif
// Fixed fd numbers in the child: 0 /dev/null, 1-2 the log, 3 the agent
// socket (see paddock-init --listen-fd), 4 init's executable, 5 the sync socket.
constexpr int kInitListenFd = 3, kInitExeFd = 4, kSyncFd = 5;

struct ChildError {
  char step[96];
  int err;
};

[[noreturn]] void ChildFail(int sync_fd, const char* step) {
  ChildError e = {};
  e.err = errno;
  std::strncpy(e.step, step, sizeof e.step - 1);
  (void)!::send(sync_fd, &e, sizeof e, MSG_NOSIGNAL);
  ::_exit(1);
}

ssize_t RecvRetrying(int fd, struct msghdr* msg, int flags) {
  ssize_t n;
  do n = ::recvmsg(fd, msg, flags);
  while (n < 0 && errno == EINTR);
  return n;
}

// Waits for the host's first go: the detached mounts, sent once the id maps exist.
ssize_t ReceiveMountFds(int sync_fd, int* fds) {
  char byte;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxMountFds)];
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  if (RecvRetrying(sync_fd, &msg, MSG_CMSG_CLOEXEC) <= 0) return -1;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
  std::memcpy(fds, CMSG_DATA(c), count * sizeof(int));
  return static_cast<ssize_t>(count);
}

// The launch message: "hostname\0" then `env_count` "K=V\0" then `file_count`
// pairs "path\0text\0", `symlink_count` pairs "target\0path\0" and
// `chmod_count` pairs "path\0octal mode\0", after a header of the counts.
struct LaunchHeader {
  uint32_t env_count;
  uint32_t file_count;
  uint32_t symlink_count;
  uint32_t chmod_count;
};

Result<std::string> EncodeLaunch(const LaunchSpec& launch) {
  if (launch.env.size() > kMaxLaunchEnv) return InvalidArgument("too many launch env entries");
  LaunchHeader h{static_cast<uint32_t>(launch.env.size()), static_cast<uint32_t>(launch.files.size()),
                 static_cast<uint32_t>(launch.symlinks.size()), static_cast<uint32_t>(launch.chmods.size())};
  std::string out(reinterpret_cast<const char*>(&h), sizeof h);
  auto add = [&out](const std::string& s) -> Status {
    if (s.find('\0') != std::string::npos) return InvalidArgument("launch strings hold no NUL");
    out += s;
    out += '\0';
    return Status::Ok();
  };
  PDK_TRY(add(launch.hostname));
  for (const auto& e : launch.env) PDK_TRY(add(e));
  for (const auto& [path, text] : launch.files) {
    PDK_TRY(add(path));
    PDK_TRY(add(text));
  }
  for (const auto& [target, path] : launch.symlinks) {
    PDK_TRY(add(target));
    PDK_TRY(add(path));
  }
  for (const auto& [path, mode] : launch.chmods) {
    char octal[16];
    std::snprintf(octal, sizeof octal, "%o", mode & 07777);
    PDK_TRY(add(path));
    PDK_TRY(add(octal));
  }
  if (out.size() > kLaunchBytes) return InvalidArgument("launch message over 16 KiB");
  return out;
}

// Next NUL-terminated string of [*at, end), or null if there is none.
const char* NextString(const char** at, const char* end) {
  const char* s = *at;
  const void* nul = s < end ? std::memchr(s, '\0', end - s) : nullptr;
  if (!nul) return nullptr;
  *at = static_cast<const char*>(nul) + 1;
  return s;
}

// Makes the folders above `path` (inside the sandbox: it is our root now).
void MakeChildParents(int sync, const char* path) {
  char dir[1024];
  size_t len = std::strlen(path);
  if (len >= sizeof dir) ChildFail(sync, "make a launch path's folders");
  std::memcpy(dir, path, len + 1);
  for (size_t i = 1; i < len; ++i) {
    if (dir[i] != '/') continue;
    dir[i] = '\0';
    if (::mkdir(dir, 0755) != 0 && errno != EEXIST) ChildFail(sync, "make a launch path's folders");
    dir[i] = '/';
  }
}

// Writes `text` to `path` as a new file renamed into place. Whatever the
// sandbox left at the path is replaced, never opened: a FIFO there would
// block this open (and the start waiting on it) forever, a symlink would
// redirect the write. A folder there is the sandbox's own doing and stays.
void WriteChildFile(int sync, const char* path, const char* text) {
  MakeChildParents(sync, path);
  // Beside the path, so that the rename replaces it in one step; a random
  // name, so that the sandbox cannot have taken it.
  unsigned char random[8];
  if (::getrandom(random, sizeof random, 0) != static_cast<ssize_t>(sizeof random))
    ChildFail(sync, "create a launch file");
  char tmp[1100];
  int n = std::snprintf(tmp, sizeof tmp, "%s.pdk-", path);
  if (n < 0 || static_cast<size_t>(n) + 2 * sizeof random >= sizeof tmp) ChildFail(sync, "create a launch file");
  for (unsigned char b : random) {
    tmp[n++] = "0123456789abcdef"[b >> 4];
    tmp[n++] = "0123456789abcdef"[b & 15];
  }
  tmp[n] = '\0';
  int fd = ::open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) ChildFail(sync, "create a launch file");
  size_t len = std::strlen(text);
  bool written = ::write(fd, text, len) == static_cast<ssize_t>(len);
  ::close(fd);
  if (written && ::rename(tmp, path) == 0) return;
  int err = errno;
  ::unlink(tmp);
  if (written && (err == EISDIR || err == ENOTEMPTY || err == EEXIST)) return;  // a folder
  errno = err;
  ChildFail(sync, written ? "put a launch file in place" : "write a launch file");
}

int ShellMain(void* arg) {
  auto* a = static_cast<ShellArgs*>(arg);
  int sync = a->sync_fd;

  // Until init runs, this child must not outlive paddockd: if the daemon dies,
  // nothing would ever launch or collect it. Our copy of the host's end must
  // go too, or its death would never reach us as EOF.
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
      ::dup3(lifted[4], kSyncFd, O_CLOEXEC) < 0)
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
  if (::send(sync, &kReady, 1, MSG_NOSIGNAL) != 1) ::_exit(1);

  // A warm shell waits here. EOF: the host discarded it.
  char msg[kLaunchBytes];
  struct iovec iov = {msg, sizeof msg};
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  ssize_t n = RecvRetrying(sync, &mh, 0);
  if (n <= 0) ::_exit(1);
  if (static_cast<size_t>(n) < sizeof(LaunchHeader)) ChildFail(sync, "read the launch message");
  LaunchHeader h;
  std::memcpy(&h, msg, sizeof h);
  const char* at = msg + sizeof h;
  const char* end = msg + n;
  const char* hostname = NextString(&at, end);
  char* envp[kMaxLaunchEnv * 2 + 1];
  size_t ne = 0;
  for (char* e : a->envp)
    if (ne < kMaxLaunchEnv) envp[ne++] = e;
  for (uint32_t i = 0; i < h.env_count && ne < kMaxLaunchEnv * 2; ++i) {
    const char* e = NextString(&at, end);
    if (!e) ChildFail(sync, "read the launch message");
    envp[ne++] = const_cast<char*>(e);
  }
  envp[ne] = nullptr;
  if (!hostname) ChildFail(sync, "read the launch message");

  // The host has given the cgroup its final name: this is its root from now on.
  if (::unshare(CLONE_NEWCGROUP) != 0) ChildFail(sync, "unshare cgroup namespace");  // cgroup ns
  if (::sethostname(hostname, std::strlen(hostname)) != 0) ChildFail(sync, "sethostname");  // uts ns
  for (uint32_t i = 0; i < h.file_count; ++i) {
    const char* path = NextString(&at, end);
    const char* text = path ? NextString(&at, end) : nullptr;
    if (!text) ChildFail(sync, "read the launch message");
    WriteChildFile(sync, path, text);
  }
  for (uint32_t i = 0; i < h.symlink_count; ++i) {
    const char* target = NextString(&at, end);
    const char* path = target ? NextString(&at, end) : nullptr;
    if (!path) ChildFail(sync, "read the launch message");
    MakeChildParents(sync, path);
    struct stat st;
    if (::lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) ::unlink(path);
    if (::symlink(target, path) != 0 && errno != EEXIST) ChildFail(sync, "create a device's symlink");
  }
  for (uint32_t i = 0; i < h.chmod_count; ++i) {
    const char* path = NextString(&at, end);
    const char* mode = path ? NextString(&at, end) : nullptr;
    if (!mode) ChildFail(sync, "read the launch message");
    if (::chmod(path, static_cast<mode_t>(std::strtoul(mode, nullptr, 8))) != 0 && errno != ENOENT)
      ChildFail(sync, "chmod a device's path");
  }
  if ((errno = caps::Restrict(a->caps)) != 0) ChildFail(sync, "restrict capabilities");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(sync, "set no_new_privs");
  if ((errno = seccomp::Apply(*a->seccomp)) != 0) ChildFail(sync, "install seccomp filter");
  // PID 1 drops signals it has no handler for, unless they are blocked: keep
  // the ones init handles blocked, so a SIGTERM sent before init installs its
  // handlers waits for it instead of vanishing. The mask survives exec.
  sigset_t init_signals;
  sigemptyset(&init_signals);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
    sigaddset(&init_signals, sig);
  ::sigprocmask(SIG_SETMASK, &init_signals, nullptr);
  ::prctl(PR_SET_PDEATHSIG, 0);  // init outlives paddockd: that is the point
  ::syscall(SYS_execveat, kInitExeFd, "", a->argv.data(), envp, AT_EMPTY_PATH);
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

// The child's next word: kReady, EOF (it exec'd: returns '\0'), or the step
// that failed; waited for at most `timeout_ms`, so that nothing a sandbox
// does keeps a create or a start waiting forever.
Result<char> ReadReport(int sync_fd, int timeout_ms) {
  struct pollfd p = {sync_fd, POLLIN, 0};
  int ready;
  do ready = ::poll(&p, 1, timeout_ms);
  while (ready < 0 && errno == EINTR);
  if (ready < 0) return Status::Errno("wait for sandbox set-up");
  if (ready == 0)
    return DeadlineExceeded("sandbox set-up did not answer within " + std::to_string(timeout_ms) + " ms");
  ChildError err = {};
  ssize_t n;
  do n = ::recv(sync_fd, &err, sizeof err, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Status::Errno("read sandbox set-up report");
  if (n == 0) return '\0';
  if (n == 1 && err.step[0] == kReady) return kReady;
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
  PDK_ASSIGN_OR_RETURN(const seccomp::Program* filter, seccomp::DefaultProfile());

  std::unique_ptr<Shell> shell(new Shell());
  shell->timeout_ms_ = spec.set_up_timeout_ms;
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
  a.seccomp = filter;
  a.caps = caps::DefaultSet();
  a.log_fd = spec.log_fd;
  a.listen_fd = spec.listen_fd;
  a.init_exe_fd = spec.init_exe_fd;
  a.own_netns = spec.netns_fd < 0;
  a.plan.sysfs_fd = !a.own_netns;
  static char kInit[] = "paddock-init", kFlag[] = "--listen-fd", kFd[] = "3";
  a.argv = {kInit, kFlag, kFd, nullptr};
  a.env = spec.init_env;
  for (auto& e : a.env) a.envp.push_back(e.data());

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
  if (report != kReady) return Internal("sandbox set-up ended before its root was ready");
  return shell;
}

Result<Contained> Shell::Launch(const LaunchSpec& launch) {
  if (!child_.valid()) return FailedPrecondition("this sandbox shell was launched already");
  auto launched = [&]() -> Result<Contained> {
    PDK_ASSIGN_OR_RETURN(std::string msg, EncodeLaunch(launch));
    Status sent;
    if (::send(sync_.get(), msg.data(), msg.size(), MSG_NOSIGNAL) < 0)
      sent = Status::Errno("send launch message to sandbox");
    // A child that died reports why before its end closes: read that first.
    PDK_ASSIGN_OR_RETURN(char report, ReadReport(sync_.get(), timeout_ms_));
    PDK_TRY(sent);
    if (report != '\0') return Internal("sandbox sent an unexpected report at launch");
    PDK_ASSIGN_OR_RETURN(uint64_t start, ProcessStartTime(child_.pid()));
    return Contained{std::move(child_), start, std::move(root_mount_)};
  }();
  if (!launched.ok()) Kill();
  return launched;
}

}  // namespace paddock::kernel
