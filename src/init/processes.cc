#include "init/processes.h"

#include <fcntl.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "init/passwd.h"

namespace paddock::init {

namespace {

// The supplementary groups init started with, read once.
const std::vector<gid_t>& DeviceGroups() {
  static const std::vector<gid_t> groups = [] {
    std::vector<gid_t> g(64);
    int n = ::getgroups(static_cast<int>(g.size()), g.data());
    g.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return g;
  }();
  return groups;
}

// How long to wait, once a process has exited, for its pipes to reach EOF
// before reporting the exit anyway (a background child may hold them open).
constexpr int kDrainAfterExitMs = 100;
constexpr size_t kMaxPendingStdin = size_t{16} << 20;

const char* const kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

Result<std::vector<std::string>> StringArray(const json& req, const char* field) {
  auto it = req.find(field);
  if (it == req.end() || !it->is_array() || it->empty())
    return InvalidArgument(std::string("field '") + field +
                           "' must be a non-empty array of strings");
  std::vector<std::string> out;
  for (const auto& v : *it) {
    if (!v.is_string())
      return InvalidArgument(std::string("field '") + field + "' must contain only strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

// Finds `name` on `path` the way execvp would, but with the process's own PATH.
Result<std::string> ResolveExecutable(const std::string& name, const std::string& path,
                                      const std::string& cwd) {
  if (name.find('/') != std::string::npos) {
    std::string full = name[0] == '/' ? name : cwd + "/" + name;
    if (::access(full.c_str(), F_OK) != 0) return NotFound("executable '" + name + "' not found");
    return full;
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string full = dir + "/" + name;
    struct stat st;
    if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) return full;
    start = end + 1;
  }
  return NotFound("executable '" + name + "' not found in PATH=" + path);
}

int SignalFromJson(const json& v) {
  if (v.is_number_integer()) return v.get<int>();
  if (!v.is_string()) return -1;
  std::string s = v.get<std::string>();
  if (s.rfind("SIG", 0) == 0) s = s.substr(3);
  static const struct { const char* name; int sig; } kSignals[] = {
      {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT}, {"HUP", SIGHUP},
      {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP},
      {"CONT", SIGCONT}, {"WINCH", SIGWINCH}, {"ALRM", SIGALRM}, {"PIPE", SIGPIPE},
  };
  for (const auto& e : kSignals)
    if (s == e.name) return e.sig;
  return -1;
}

// What a child reports through its close-on-exec pipe when it cannot exec.
struct ChildFailure {
  int stage;
  int err;
};
enum ChildStage { kStageTty = 1, kStageIds, kStageCwd, kStageExec };

[[noreturn]] void ChildFail(int fd, int stage) {
  ChildFailure f{stage, errno};
  (void)!::write(fd, &f, sizeof f);
  ::_exit(127);
}

// What a spawned child needs, all prepared before clone: it only makes
// system calls (raw ones for ids: the child shares init's memory, and
// glibc's set*id would take its locks).
struct ChildArgs {
  const char* exe;
  char** argv;
  char** envp;
  const char* cwd;
  const gid_t* groups;
  size_t ngroups;
  uid_t uid;
  gid_t gid;
  bool switch_ids;
  int tty;        // the pty's slave, or -1 for the pipes in stdio
  int stdio[3];
  int fail_fd;    // close-on-exec: a ChildFailure, or EOF once exec'd
};

int ChildMain(void* arg) {
  const ChildArgs& a = *static_cast<const ChildArgs*>(arg);
  // exec resets caught signals by itself; only ignored ones (SIGPIPE) persist.
  ::signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::setsid();
  if (a.tty >= 0) {
    if (::ioctl(a.tty, TIOCSCTTY, 0) != 0) ChildFail(a.fail_fd, kStageTty);
    for (int fd = 0; fd < 3; ++fd) ::dup2(a.tty, fd);
  } else {
    for (int fd = 0; fd < 3; ++fd) ::dup2(a.stdio[fd], fd);
  }
  // Children of init inherit its OOM immunity; give it back so the OOM
  // killer picks the hog, not the sandbox's PID 1.
  int oom = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (oom >= 0) {
    (void)!::write(oom, "0", 1);
    ::close(oom);
  }
  if (a.switch_ids) {
    if (::syscall(SYS_setgroups, a.ngroups, a.groups) != 0) ChildFail(a.fail_fd, kStageIds);
    if (::syscall(SYS_setresgid, a.gid, a.gid, a.gid) != 0) ChildFail(a.fail_fd, kStageIds);
    if (::syscall(SYS_setresuid, a.uid, a.uid, a.uid) != 0) ChildFail(a.fail_fd, kStageIds);
  }
  if (::chdir(a.cwd) != 0) ChildFail(a.fail_fd, kStageCwd);
  ::execve(a.exe, a.argv, a.envp);
  ChildFail(a.fail_fd, kStageExec);
}

}  // namespace

struct ProcessTable::Process {
  pid_t pid = 0;
  std::string tag;
  std::vector<std::string> argv;
  std::string cwd;
  std::string user;
  bool pty = false;
  UniqueFd out;     // stdout pipe, or the pty master
  UniqueFd err;     // stderr pipe
  UniqueFd in;      // stdin pipe (not used with a pty: input goes to `out`)
  std::string stdin_pending;
  bool close_stdin_after_flush = false;
  OutputRing ring;
  bool reaped = false;
  bool finished = false;
  int exit_code = -1;
  int term_signal = 0;
  uint64_t drain_timer = 0;
  std::set<ConnId> subscribers;
  bool output_paused = false;  // a subscriber fell behind: the pipes wait

  explicit Process(size_t ring_bytes) : ring(ring_bytes) {}
  int input_fd() const { return pty ? out.get() : in.get(); }
};

ProcessTable::ProcessTable(EventLoop* loop, EventSink* sink, size_t ring_bytes,
                           size_t keep_exited)
    : loop_(loop), sink_(sink), ring_bytes_(ring_bytes), keep_exited_(keep_exited) {}
ProcessTable::~ProcessTable() = default;

Result<Reply> ProcessTable::Spawn(const json& req, ConnId conn) {
  PDK_ASSIGN_OR_RETURN(std::vector<std::string> argv, StringArray(req, "argv"));
  std::string user_spec;
  if (auto u = req.find("user"); u != req.end() && !u->is_null())
    user_spec = u->is_number_integer() ? std::to_string(u->get<int64_t>()) : u->get<std::string>();
  PDK_ASSIGN_OR_RETURN(User user, LookupUser(user_spec));
  if (auto g = req.find("group"); g != req.end() && !g->is_null()) {
    std::string group_spec = g->is_number_integer() ? std::to_string(g->get<int64_t>())
                                                    : g->get<std::string>();
    PDK_ASSIGN_OR_RETURN(user.gid, LookupGroup(group_spec));
  }
  std::string cwd = req.value("cwd", "");
  if (cwd.empty()) cwd = user.home;

  std::map<std::string, std::string> env = {
      {"PATH", kDefaultPath}, {"HOME", user.home}, {"USER", user.name},
      {"LOGNAME", user.name}, {"SHELL", user.shell}};
  bool pty = req.contains("pty") && req["pty"].is_object();
  if (pty) env["TERM"] = "xterm-256color";
  if (auto it = req.find("env"); it != req.end() && !it->is_null()) {
    if (!it->is_object()) return InvalidArgument("field 'env' must be an object of strings");
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string()) return InvalidArgument("env value for '" + k + "' must be a string");
      if (k.empty() || k.find('=') != std::string::npos)
        return InvalidArgument("env name '" + k + "' is not valid");
      env[k] = v.get<std::string>();
    }
  }
  PDK_ASSIGN_OR_RETURN(std::string exe, ResolveExecutable(argv[0], env["PATH"], cwd));

  struct winsize ws = {};
  if (pty) {
    ws.ws_row = static_cast<unsigned short>(req["pty"].value("rows", 24));
    ws.ws_col = static_cast<unsigned short>(req["pty"].value("cols", 80));
  }
  bool want_stdin = req.value("stdin", false);

  // Everything the child needs is prepared here (ChildArgs); it only makes syscalls.
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> cenv;
  for (auto& e : env_strings) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  // Init's own supplementary groups are its devices' (the host set them:
  // ContainSpec::device_gids); every process keeps them, whoever it runs as.
  std::vector<gid_t> groups = user.groups;
  for (gid_t g : DeviceGroups())
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
  // Already that user (init run by hand outside a sandbox): nothing to switch.
  bool switch_ids = user.uid != ::geteuid() || user.gid != ::getegid() || !groups.empty();

  UniqueFd out_r, out_w, err_r, err_w, in_r, in_w, master, slave;
  int p[2];
  if (pty) {
    int m, s;
    if (::openpty(&m, &s, nullptr, nullptr, &ws) != 0) return Status::Errno("openpty");
    master.reset(m);
    slave.reset(s);
    ::fcntl(m, F_SETFD, FD_CLOEXEC);
    ::fcntl(s, F_SETFD, FD_CLOEXEC);
  } else {
    if (::pipe2(p, O_CLOEXEC) != 0) return Status::Errno("pipe2");
    out_r.reset(p[0]);
    out_w.reset(p[1]);
    if (::pipe2(p, O_CLOEXEC) != 0) return Status::Errno("pipe2");
    err_r.reset(p[0]);
    err_w.reset(p[1]);
    if (want_stdin) {
      if (::pipe2(p, O_CLOEXEC) != 0) return Status::Errno("pipe2");
      in_r.reset(p[0]);
      in_w.reset(p[1]);
    } else {
      in_r.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    }
  }
  if (::pipe2(p, O_CLOEXEC) != 0) return Status::Errno("pipe2");
  UniqueFd fail_r(p[0]), fail_w(p[1]);

  ChildArgs a;
  a.exe = exe.c_str();
  a.argv = cargv.data();
  a.envp = cenv.data();
  a.cwd = cwd.c_str();
  a.groups = groups.data();
  a.ngroups = groups.size();
  a.uid = user.uid;
  a.gid = user.gid;
  a.switch_ids = switch_ids;
  a.tty = pty ? slave.get() : -1;
  a.stdio[0] = in_r.get();
  a.stdio[1] = out_w.get();
  a.stdio[2] = err_w.get();
  a.fail_fd = fail_w.get();
  // CLONE_VM|CLONE_VFORK, as posix_spawn does: no copy of init's page
  // tables and no copy-on-write faults after (a quarter of an exec's
  // latency here). We stay suspended until the child execs or exits, so it
  // may use our memory and the stack below; it writes only its own locals
  // (and errno).
  // Signals are blocked across clone so no handler of ours runs on it.
  sigset_t all, saved;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, &saved);
  pid_t pid = ::clone(ChildMain, child_stack_.data() + child_stack_.size(),
                      CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
  int clone_errno = errno;
  ::sigprocmask(SIG_SETMASK, &saved, nullptr);
  if (pid < 0) return Status::Errno("clone", clone_errno);
  fail_w.reset();
  slave.reset();
  ChildFailure failure{};
  ssize_t n;
  do n = ::read(fail_r.get(), &failure, sizeof failure);
  while (n < 0 && errno == EINTR);
  if (n == sizeof failure) {
    ::waitpid(pid, nullptr, 0);
    switch (failure.stage) {
      case kStageCwd: return Status::Errno("chdir to cwd '" + cwd + "'", failure.err);
      case kStageIds: return Status::Errno("switch to user '" + user.name + "'", failure.err);
      case kStageTty: return Status::Errno("set controlling tty", failure.err);
      default: return Status::Errno("exec " + exe, failure.err);
    }
  }

  auto proc = std::make_unique<Process>(ring_bytes_);
  Process* pr = proc.get();
  pr->pid = pid;
  pr->tag = req.value("tag", "");
  pr->argv = std::move(argv);
  pr->cwd = cwd;
  pr->user = user.name;
  pr->pty = pty;
  if (pty) {
    pr->out = std::move(master);
  } else {
    pr->out = std::move(out_r);
    pr->err = std::move(err_r);
    pr->in = std::move(in_w);
  }
  for (int fd : {pr->out.get(), pr->err.get(), pr->in.get()})
    if (fd >= 0) SetNonBlocking(fd);
  WatchOutput(pr);
  if (req.value("subscribe", true)) pr->subscribers.insert(conn);
  procs_[pid] = std::move(proc);

  Reply r;
  r.body["pid"] = pid;
  return r;
}

Result<ProcessTable::Process*> ProcessTable::Find(const json& req) {
  if (auto it = req.find("pid"); it != req.end()) {
    if (!it->is_number_integer()) return InvalidArgument("field 'pid' must be an integer");
    auto p = procs_.find(it->get<pid_t>());
    if (p == procs_.end()) return NotFound("no process with pid " + std::to_string(it->get<int>()));
    return p->second.get();
  }
  if (auto it = req.find("tag"); it != req.end() && it->is_string()) {
    std::string tag = it->get<std::string>();
    Process* found = nullptr;
    for (auto& [pid, p] : procs_)  // prefer a running one, then the newest
      if (p->tag == tag && (!found || !p->finished)) found = p.get();
    if (!found) return NotFound("no process with tag '" + tag + "'");
    return found;
  }
  return InvalidArgument("request needs 'pid' (integer) or 'tag' (string)");
}

Result<Reply> ProcessTable::Attach(const json& req, ConnId conn) {
  PDK_ASSIGN_OR_RETURN(Process * p, Find(req));
  uint64_t from = req.value("from", uint64_t{0});
  Reply r;
  r.body["pid"] = p->pid;
  r.body["first_offset"] = p->ring.first_offset();
  r.body["running"] = !p->finished;
  pid_t pid = p->pid;
  r.after = [this, pid, conn, from] {
    auto it = procs_.find(pid);
    if (it == procs_.end()) return;
    Process* p = it->second.get();
    p->ring.ReadFrom(from, [&](Stream s, uint64_t off, std::string_view data) {
      sink_->Emit(conn, json{{"event", "output"}, {"pid", pid}, {"stream", StreamName(s)},
                             {"offset", off}},
                  data);
    });
    if (p->finished)
      sink_->Emit(conn, json{{"event", "exit"}, {"pid", pid}, {"exit_code", p->exit_code},
                             {"signal", p->term_signal}, {"end_offset", p->ring.end_offset()}});
    else
      p->subscribers.insert(conn);
  };
  return r;
}

Result<Reply> ProcessTable::Detach(const json& req, ConnId conn) {
  PDK_ASSIGN_OR_RETURN(Process * p, Find(req));
  p->subscribers.erase(conn);
  return Reply{};
}

Result<Reply> ProcessTable::WriteStdin(const json& req, std::string_view data) {
  PDK_ASSIGN_OR_RETURN(Process * p, Find(req));
  if (p->finished || p->input_fd() < 0)
    return FailedPrecondition("process " + std::to_string(p->pid) +
                              (p->finished ? " has exited" : " was started without stdin"));
  if (p->close_stdin_after_flush) return FailedPrecondition("stdin is closed");
  if (p->stdin_pending.size() + data.size() > kMaxPendingStdin)
    return ResourceExhausted("stdin backlog over 16 MiB; the process is not reading");
  p->stdin_pending.append(data);
  FlushStdin(p);
  return Reply{};
}

Result<Reply> ProcessTable::CloseStdin(const json& req) {
  PDK_ASSIGN_OR_RETURN(Process * p, Find(req));
  if (p->pty) {
    if (!p->finished) p->stdin_pending += '\x04';  // EOF at the line discipline
  } else {
    p->close_stdin_after_flush = true;
  }
  FlushStdin(p);
  return Reply{};
}

void ProcessTable::FlushStdin(Process* p) {
  int fd = p->input_fd();
  if (fd < 0) return;
  while (!p->stdin_pending.empty()) {
    ssize_t n = ::write(fd, p->stdin_pending.data(), p->stdin_pending.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      p->stdin_pending.clear();  // reader gone (EPIPE): drop what is left
      break;
    }
    p->stdin_pending.erase(0, static_cast<size_t>(n));
  }
  if (p->pty) {
    if (!p->stdin_pending.empty()) {
      // The pty master is also the output fd: wait for it to become writable.
      (void)loop_->Modify(fd, EPOLLIN | EPOLLOUT);
    } else if (p->out) {
      (void)loop_->Modify(fd, EPOLLIN);
    }
    return;
  }
  if (!p->stdin_pending.empty()) {
    loop_->Remove(fd);
    (void)loop_->Add(fd, EPOLLOUT, [this, p](uint32_t) { FlushStdin(p); });
    return;
  }
  loop_->Remove(fd);
  if (p->close_stdin_after_flush) p->in.reset();
}

Result<Reply> ProcessTable::Signal(const json& req) {
  PDK_ASSIGN_OR_RETURN(Process * p, Find(req));
  int sig = req.contains("signal") ? SignalFromJson(req["signal"]) : SIGKILL;
  if (sig <= 0 || sig >= NSIG) return InvalidArgument("field 'signal' is not a known signal");
  if (p->reaped) return FailedPrecondition("process " + std::to_string(p->pid) + " has exited");
  // The process leads its own session, so signal the whole group: killing
  // `sh -c 'sleep 100'` must not leave the sleep behind.
  bool group = req.value("group", true);
  if (!group || ::kill(-p->pid, sig) != 0) {
    if (::kill(p->pid, sig) != 0) return Status::Errno("kill " + std::to_string(p->pid));
  }
  return Reply{};
}

Result<Reply> ProcessTable::Resize(const json& req) {
  PDK_ASSIGN_OR_RETURN(Process * p, Find(req));
  if (!p->pty) return FailedPrecondition("process " + std::to_string(p->pid) + " has no pty");
  if (!p->out) return FailedPrecondition("process " + std::to_string(p->pid) + " has exited");
  int rows = req.value("rows", 0), cols = req.value("cols", 0);
  if (rows <= 0 || cols <= 0 || rows > 65535 || cols > 65535)
    return InvalidArgument("fields 'rows' and 'cols' must be integers in 1..65535");
  struct winsize ws = {};
  ws.ws_row = static_cast<unsigned short>(rows);
  ws.ws_col = static_cast<unsigned short>(cols);
  if (::ioctl(p->out.get(), TIOCSWINSZ, &ws) != 0) return Status::Errno("TIOCSWINSZ");
  return Reply{};
}

json ProcessTable::Describe(const Process& p) const {
  json j = {{"pid", p.pid},         {"tag", p.tag},       {"argv", p.argv},
            {"cwd", p.cwd},         {"user", p.user},     {"pty", p.pty},
            {"running", !p.finished}, {"end_offset", p.ring.end_offset()}};
  if (p.finished) {
    j["exit_code"] = p.exit_code;
    j["signal"] = p.term_signal;
  }
  return j;
}

Result<Reply> ProcessTable::List(const json& req) const {
  bool include_exited = req.value("all", false);
  json list = json::array();
  for (const auto& [pid, p] : procs_)
    if (include_exited || !p->finished) list.push_back(Describe(*p));
  Reply r;
  r.body["processes"] = std::move(list);
  return r;
}

void ProcessTable::WatchOutput(Process* p) {
  auto watch = [this, p](int fd, Stream stream) {
    if (fd < 0) return;
    uint32_t events = EPOLLIN | (p->pty && !p->stdin_pending.empty() ? uint32_t{EPOLLOUT} : 0u);
    (void)loop_->Add(fd, events, [this, p, fd, stream](uint32_t ev) {
      if (ev & EPOLLOUT) FlushStdin(p);  // a pty master is its stdin too
      if (ev & ~uint32_t{EPOLLOUT}) OnOutput(p, fd, stream);
    });
  };
  watch(p->out.get(), p->pty ? Stream::kPty : Stream::kStdout);
  watch(p->err.get(), Stream::kStderr);
}

bool ProcessTable::SubscriberBehind(const Process& p) const {
  for (ConnId c : p.subscribers)
    if (sink_->Backlog(c) > kOutputHighWater) return true;
  return false;
}

void ProcessTable::ResumeOutput() {
  for (auto& [pid, p] : procs_) {
    if (!p->output_paused || SubscriberBehind(*p)) continue;
    p->output_paused = false;
    WatchOutput(p.get());
    MaybeFinish(p.get());  // exited meanwhile: wait for the pipes' end again
  }
}

void ProcessTable::OnOutput(Process* p, int fd, Stream stream) {
  char buf[65536];
  for (int rounds = 0; rounds < 16; ++rounds) {  // bounded: stay fair to other fds
    if (!p->output_paused && SubscriberBehind(*p)) {
      // Back-pressure: stop reading until the reader catches up (the
      // server calls ResumeOutput), so the process blocks on a full pipe
      // instead of init queueing its output without bound.
      p->output_paused = true;
      for (int f : {p->out.get(), p->err.get()})
        if (f >= 0) loop_->Remove(f);
    }
    if (p->output_paused) return;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      std::string_view data(buf, static_cast<size_t>(n));
      uint64_t off = p->ring.Append(stream, data);
      json ev = {{"event", "output"}, {"pid", p->pid}, {"stream", StreamName(stream)},
                 {"offset", off}};
      for (ConnId c : p->subscribers) sink_->Emit(c, ev, data);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    CloseOutput(p, fd);  // EOF, or EIO from a pty whose slave side is gone
    return;
  }
}

void ProcessTable::CloseOutput(Process* p, int fd) {
  loop_->Remove(fd);
  if (p->out.get() == fd) p->out.reset();
  if (p->err.get() == fd) p->err.reset();
  MaybeFinish(p);
}

void ProcessTable::MaybeFinish(Process* p) {
  if (p->finished || !p->reaped) return;
  if (!p->out && !p->err) {
    Finish(p);
    return;
  }
  if (p->drain_timer == 0) {
    pid_t pid = p->pid;
    p->drain_timer = loop_->AddTimer(kDrainAfterExitMs, [this, pid] {
      auto it = procs_.find(pid);
      if (it == procs_.end() || it->second->finished) return;
      Process* p = it->second.get();
      p->drain_timer = 0;
      // A reader that is behind holds the rest in the pipe: ResumeOutput
      // starts this wait again once it catches up.
      if (p->output_paused) return;
      for (int fd : {p->out.get(), p->err.get()})
        if (fd >= 0) OnOutput(p, fd, fd == p->err.get() ? Stream::kStderr
                                                         : (p->pty ? Stream::kPty : Stream::kStdout));
      if (!p->finished && !p->output_paused) Finish(p);
    });
  }
}

void ProcessTable::Finish(Process* p) {
  if (p->finished) return;
  for (int fd : {p->out.get(), p->err.get(), p->in.get()})
    if (fd >= 0) loop_->Remove(fd);
  p->output_paused = false;
  p->out.reset();
  p->err.reset();
  p->in.reset();
  p->stdin_pending.clear();
  p->finished = true;
  json ev = {{"event", "exit"}, {"pid", p->pid}, {"exit_code", p->exit_code},
             {"signal", p->term_signal}, {"end_offset", p->ring.end_offset()}};
  for (ConnId c : p->subscribers) sink_->Emit(c, ev);
  p->subscribers.clear();
  exited_order_.push_back(p->pid);
  while (exited_order_.size() > keep_exited_) {
    procs_.erase(exited_order_.front());
    exited_order_.pop_front();
  }
}

bool ProcessTable::ReapChildren() {
  for (;;) {
    int status;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid == 0) return true;
    if (pid < 0) return errno != ECHILD;
    auto it = procs_.find(pid);
    if (it == procs_.end()) continue;  // an orphan reparented to us: reaping is all we owe it
    Process* p = it->second.get();
    p->reaped = true;
    if (WIFEXITED(status)) {
      p->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      p->term_signal = WTERMSIG(status);
      p->exit_code = 128 + p->term_signal;
    }
    MaybeFinish(p);
  }
}

void ProcessTable::SignalAll(int sig) {
  // As PID 1 of a pid namespace, -1 means "everything in this sandbox". Run by
  // hand on a host it would mean every process we may signal: there, signal
  // only the process groups we started.
  if (::getpid() == 1) {
    ::kill(-1, sig);
    return;
  }
  for (const auto& [pid, p] : procs_)
    if (!p->reaped) ::kill(-pid, sig);
}

void ProcessTable::DropConnection(ConnId conn) {
  for (auto& [pid, p] : procs_) p->subscribers.erase(conn);
  ResumeOutput();
}

}  // namespace paddock::init
