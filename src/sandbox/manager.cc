#include "sandbox/manager.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "base/fs.h"
#include "base/ids.h"
#include "kernel/contain.h"

#ifndef PADDOCK_INIT_DEFAULT_PATH
#define PADDOCK_INIT_DEFAULT_PATH "/usr/local/libexec/paddock/paddock-init"
#endif

namespace paddock {

const char* SandboxStateName(SandboxState s) {
  switch (s) {
    case SandboxState::kRunning: return "running";
    case SandboxState::kPaused: return "paused";
    case SandboxState::kStopped: return "stopped";
  }
  return "stopped";
}

struct SandboxManager::Sandbox {
  std::mutex mu;        // serializes this sandbox's transitions
  bool ready = false;   // false while Create is still building it
  SandboxInfo info;
  std::map<std::string, std::string> env;
  std::unique_ptr<kernel::Cgroup> cgroup;  // present while running or paused
  kernel::ProcessHandle init;
};

namespace {

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  return true;
}

Result<UniqueFd> ListenUnix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Status::Errno("socket");
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return InvalidArgument("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Status::Errno("bind " + path);
  if (::listen(fd.get(), 128) != 0) return Status::Errno("listen " + path);
  return fd;
}

Status WriteOwnedFile(const std::string& path, const std::string& data, uid_t owner) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return Status::Errno("create " + path);
  if (::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size()))
    return Status::Errno("write " + path);
  if (::fchown(fd.get(), owner, owner) != 0) return Status::Errno("chown " + path);
  return Status::Ok();
}

}  // namespace

SandboxManager::SandboxManager(ManagerOptions opts, std::unique_ptr<kernel::CgroupDriver> cgroups,
                               UniqueFd init_exe)
    : opts_(std::move(opts)),
      cgroups_(std::move(cgroups)),
      init_exe_(std::move(init_exe)),
      templates_(opts_.state_dir + "/templates", opts_.state_dir + "/staging", opts_.busybox_path),
      sandboxes_dir_(opts_.state_dir + "/sandboxes"),
      trash_dir_(opts_.state_dir + "/trash"),
      slot_used_(opts_.id_slots, false) {}

// Sandboxes outlive the manager (a daemon restart must not kill them); only
// an empty cgroup parent is tidied away.
SandboxManager::~SandboxManager() { cgroups_->RemoveParentIfEmpty(); }

Result<std::unique_ptr<SandboxManager>> SandboxManager::Open(ManagerOptions opts) {
  if (opts.init_path.empty()) opts.init_path = PADDOCK_INIT_DEFAULT_PATH;
  UniqueFd init(::open(opts.init_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!init) return Status::Errno("open paddock-init at " + opts.init_path);
  for (const char* sub : {"", "/sandboxes", "/templates", "/staging", "/trash"})
    PDK_TRY(MakeDirs(opts.state_dir + sub, 0711));
  // A sandbox's set-up runs as its own root, an unprivileged host id, and must
  // reach its folder: the state folder must be searchable (not listable) by all.
  if (::chmod(opts.state_dir.c_str(), 0711) != 0) return Status::Errno("chmod " + opts.state_dir);
  // Half-built templates and half-deleted sandboxes of a crashed run.
  for (const char* sub : {"/staging", "/trash"}) {
    PDK_TRY(RemoveTree(opts.state_dir + sub));
    PDK_TRY(MakeDirs(opts.state_dir + sub, 0711));
  }
  PDK_ASSIGN_OR_RETURN(auto cgroups, kernel::CgroupDriver::Detect(opts.cgroup_parent));
  return std::unique_ptr<SandboxManager>(
      new SandboxManager(std::move(opts), std::move(cgroups), std::move(init)));
}

Result<uint32_t> SandboxManager::ReserveIdSlot() {
  for (size_t i = 0; i < slot_used_.size(); ++i) {
    if (!slot_used_[i]) {
      slot_used_[i] = true;
      return opts_.id_base + static_cast<uint32_t>(i) * 65536;
    }
  }
  return ResourceExhausted("all " + std::to_string(slot_used_.size()) + " id ranges are in use");
}

void SandboxManager::ReleaseIdSlot(uint32_t host_first) {
  size_t i = (host_first - opts_.id_base) / 65536;
  if (i < slot_used_.size()) slot_used_[i] = false;
}

Result<std::shared_ptr<SandboxManager::Sandbox>> SandboxManager::Find(
    const std::string& id_or_name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(id_or_name);
  if (it == by_id_.end()) {
    auto n = id_by_name_.find(id_or_name);
    if (n != id_by_name_.end()) it = by_id_.find(n->second);
  }
  if (it == by_id_.end() || !it->second->ready)
    return NotFound("sandbox '" + id_or_name + "' does not exist");
  return it->second;
}

Result<SandboxInfo> SandboxManager::Create(const SandboxSpec& spec) {
  if (!spec.name.empty() && !ValidName(spec.name))
    return InvalidArgument("name '" + spec.name +
                           "' is not valid: 1-63 characters [A-Za-z0-9_.-], starting with a "
                           "letter or digit");
  if (spec.limits.memory_bytes < 0 || spec.limits.cpu_millicores < 0 || spec.limits.pids < 0)
    return InvalidArgument("limits must not be negative");
  if (spec.limits.memory_bytes > 0 && spec.limits.memory_bytes < (int64_t{4} << 20))
    return InvalidArgument("memory limit must be at least 4 MiB");
  if ((spec.limits.memory_bytes || spec.limits.cpu_millicores || spec.limits.pids) &&
      !cgroups_->SupportsLimits())
    return Unimplemented("this host's cgroup " + std::string(cgroups_->version()) +
                         " tree has no memory/cpu/pids controllers; limits cannot be enforced");
  PDK_ASSIGN_OR_RETURN(Template tmpl, templates_.Get(spec.template_name));

  auto sb = std::make_shared<Sandbox>();
  std::unique_lock<std::mutex> sb_lock(sb->mu);
  SandboxInfo& info = sb->info;
  info.id = NewSandboxId();
  info.name = spec.name.empty() ? info.id : spec.name;
  info.template_name = tmpl.name;
  info.limits = spec.limits;
  info.dir = sandboxes_dir_ + "/" + info.id;
  info.agent_socket = info.dir + "/agent.sock";
  sb->env = spec.env;
  {  // The narrow reservation step: name, id and id range.
    std::lock_guard<std::mutex> lock(mu_);
    if (id_by_name_.count(info.name))
      return AlreadyExists("a sandbox named '" + info.name + "' already exists");
    PDK_ASSIGN_OR_RETURN(info.ids.host_first, ReserveIdSlot());
    by_id_[info.id] = sb;
    id_by_name_[info.name] = info.id;
  }
  auto unreserve = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    by_id_.erase(info.id);
    id_by_name_.erase(info.name);
    ReleaseIdSlot(info.ids.host_first);
  };

  // The writable layer; its root is the sandbox's root, so "/" is owned by root inside.
  uid_t root = info.ids.host_first;
  Status s = MakeDirs(info.dir + "/upper/etc", 0755);
  for (const char* sub : {"/work", "/rootfs"})
    if (s.ok()) s = MakeDirs(info.dir + sub, 0755);
  for (const char* sub : {"/upper", "/upper/etc"})
    if (s.ok() && ::chown((info.dir + sub).c_str(), root, root) != 0)
      s = Status::Errno("chown " + info.dir + sub);
  if (s.ok()) s = WriteOwnedFile(info.dir + "/upper/etc/hostname", info.name + "\n", root);
  if (s.ok())
    s = WriteOwnedFile(info.dir + "/upper/etc/hosts",
                       "127.0.0.1\tlocalhost\n127.0.1.1\t" + info.name +
                           "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                       root);
  if (s.ok()) s = Boot(*sb);
  if (!s.ok()) {
    (void)RemoveTree(info.dir);
    unreserve();
    return s;
  }
  sb->ready = true;
  return info;
}

// Starts paddock-init over the sandbox's filesystem, in a new cgroup.
Status SandboxManager::Boot(Sandbox& sb) {
  SandboxInfo& info = sb.info;
  PDK_ASSIGN_OR_RETURN(Template tmpl, templates_.Get(info.template_name));
  PDK_ASSIGN_OR_RETURN(std::unique_ptr<kernel::Cgroup> cgroup,
                       cgroups_->Create(info.id, info.limits));
  PDK_ASSIGN_OR_RETURN(UniqueFd listen, ListenUnix(info.agent_socket));
  UniqueFd log(::open((info.dir + "/init.log").c_str(),
                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log) return Status::Errno("open " + info.dir + "/init.log");

  kernel::ContainSpec spec;
  spec.hostname = info.name;
  spec.lower_dirs = tmpl.layers;
  spec.upper_dir = info.dir + "/upper";
  spec.work_dir = info.dir + "/work";
  spec.rootfs_dir = info.dir + "/rootfs";
  spec.readonly_binds = tmpl.readonly_binds;
  spec.ids = info.ids;
  spec.cgroup = cgroup.get();
  spec.init_exe_fd = init_exe_.get();
  spec.listen_fd = listen.get();
  spec.log_fd = log.get();
  spec.init_env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "PADDOCK_SANDBOX_ID=" + info.id};
  auto contained = kernel::Contain(spec);
  if (!contained.ok()) {
    ::unlink(info.agent_socket.c_str());
    return contained.status().Annotate("starting sandbox " + info.id);
  }
  cgroup->Keep();
  sb.cgroup = std::move(cgroup);
  info.init_pid = contained->init.pid();
  info.init_start_time = contained->start_time;
  sb.init = std::move(contained->init);
  info.state = SandboxState::kRunning;
  return Status::Ok();
}

// Ends every process of the sandbox and removes its cgroup; files stay.
Status SandboxManager::Halt(Sandbox& sb, int grace_ms) {
  SandboxInfo& info = sb.info;
  if (info.state == SandboxState::kStopped) return Status::Ok();
  // A frozen init cannot act on SIGTERM, and frozen tasks do not die.
  if (info.state == SandboxState::kPaused) PDK_TRY(sb.cgroup->Thaw());
  bool exited = false;
  if (grace_ms > 0 && sb.init.valid()) {
    PDK_TRY(sb.init.Signal(SIGTERM));  // init forwards it to every process
    PDK_ASSIGN_OR_RETURN(exited, sb.init.Wait(grace_ms));
  }
  if (!exited && sb.init.valid()) {
    // Killing PID 1 of a pid namespace kills everything in it.
    PDK_TRY(sb.init.Signal(SIGKILL));
    PDK_ASSIGN_OR_RETURN(exited, sb.init.Wait(-1));
  }
  PDK_TRY(sb.cgroup->Destroy());
  sb.cgroup.reset();
  sb.init = kernel::ProcessHandle();
  ::unlink(info.agent_socket.c_str());
  info.state = SandboxState::kStopped;
  info.init_pid = 0;
  info.init_start_time = 0;
  return Status::Ok();
}

Status SandboxManager::Pause(const std::string& id_or_name) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  std::lock_guard<std::mutex> lock(sb->mu);
  if (sb->info.state != SandboxState::kRunning)
    return FailedPrecondition("sandbox " + sb->info.id + " is " +
                              SandboxStateName(sb->info.state) + "; only a running sandbox can be paused");
  PDK_TRY(sb->cgroup->Freeze());
  sb->info.state = SandboxState::kPaused;
  return Status::Ok();
}

Status SandboxManager::Resume(const std::string& id_or_name) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  std::lock_guard<std::mutex> lock(sb->mu);
  if (sb->info.state != SandboxState::kPaused)
    return FailedPrecondition("sandbox " + sb->info.id + " is " +
                              SandboxStateName(sb->info.state) + "; only a paused sandbox can be resumed");
  PDK_TRY(sb->cgroup->Thaw());
  sb->info.state = SandboxState::kRunning;
  return Status::Ok();
}

Status SandboxManager::Stop(const std::string& id_or_name, int grace_ms) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  std::lock_guard<std::mutex> lock(sb->mu);
  if (sb->info.state == SandboxState::kStopped)
    return FailedPrecondition("sandbox " + sb->info.id + " is already stopped");
  return Halt(*sb, grace_ms < 0 ? opts_.default_stop_grace_ms : grace_ms);
}

Status SandboxManager::Start(const std::string& id_or_name) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  std::lock_guard<std::mutex> lock(sb->mu);
  if (sb->info.state != SandboxState::kStopped)
    return FailedPrecondition("sandbox " + sb->info.id + " is " +
                              SandboxStateName(sb->info.state) + "; only a stopped sandbox can be started");
  return Boot(*sb);
}

Status SandboxManager::Delete(const std::string& id_or_name) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  std::lock_guard<std::mutex> lock(sb->mu);
  if (!sb->ready) return NotFound("sandbox '" + id_or_name + "' does not exist");
  PDK_TRY(Halt(*sb, 0));
  // Rename first: a crash mid-removal leaves only trash, which Open empties.
  std::string trash = trash_dir_ + "/" + sb->info.id + "-" + RandomHex(4);
  if (::rename(sb->info.dir.c_str(), trash.c_str()) != 0 && errno != ENOENT)
    return Status::Errno("move " + sb->info.dir + " to trash");
  sb->ready = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    by_id_.erase(sb->info.id);
    id_by_name_.erase(sb->info.name);
    ReleaseIdSlot(sb->info.ids.host_first);
  }
  return RemoveTree(trash);
}

Result<SandboxInfo> SandboxManager::Get(const std::string& id_or_name) const {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  std::lock_guard<std::mutex> lock(sb->mu);
  return sb->info;
}

std::vector<SandboxInfo> SandboxManager::List() const {
  std::vector<std::shared_ptr<Sandbox>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, sb] : by_id_) all.push_back(sb);
  }
  std::vector<SandboxInfo> out;
  for (const auto& sb : all) {
    std::lock_guard<std::mutex> lock(sb->mu);
    if (sb->ready) out.push_back(sb->info);
  }
  return out;
}

Result<kernel::CgroupStats> SandboxManager::Stats(const std::string& id_or_name) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  std::lock_guard<std::mutex> lock(sb->mu);
  if (!sb->cgroup) return kernel::CgroupStats{};
  return sb->cgroup->Stats();
}

Result<agent::AgentClient> SandboxManager::Connect(const std::string& id_or_name) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  std::string socket;
  {
    std::lock_guard<std::mutex> lock(sb->mu);
    if (sb->info.state != SandboxState::kRunning)
      return FailedPrecondition("sandbox " + sb->info.id + " is " +
                                SandboxStateName(sb->info.state) + "; it must be running");
    socket = sb->info.agent_socket;
  }
  return agent::AgentClient::Connect(socket);
}

Result<agent::ExecResult> SandboxManager::Exec(const std::string& id_or_name,
                                               agent::ExecOptions opts) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  {
    std::lock_guard<std::mutex> lock(sb->mu);
    for (const auto& [k, v] : sb->env) opts.env.emplace(k, v);  // the caller's win
  }
  PDK_ASSIGN_OR_RETURN(agent::AgentClient client, Connect(id_or_name));
  return client.Exec(opts);
}

}  // namespace paddock
