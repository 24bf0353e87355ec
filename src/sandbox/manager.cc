#include "sandbox/manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/ids.h"
#include "base/json_field.h"
#include "kernel/contain.h"
#include "kernel/seccomp.h"
#include "base/layer_copy.h"
#include "sandbox/layer_archive.h"
#include "sandbox/manager_parts.h"

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

const char* TimeoutActionName(TimeoutAction a) {
  switch (a) {
    case TimeoutAction::kKill: return "kill";
    case TimeoutAction::kPause: return "pause";
    case TimeoutAction::kStop: return "stop";
  }
  return "kill";
}

Result<TimeoutAction> ParseTimeoutAction(const std::string& s) {
  if (s == "kill") return TimeoutAction::kKill;
  if (s == "pause") return TimeoutAction::kPause;
  if (s == "stop") return TimeoutAction::kStop;
  return InvalidArgument("on_timeout must be kill, pause or stop, not '" + s + "'");
}

namespace manager_detail {

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

const char* RecordStateName(RecordState s) {
  switch (s) {
    case RecordState::kCreating: return "creating";
    case RecordState::kRunning: return "running";
    case RecordState::kPaused: return "paused";
    case RecordState::kStopping: return "stopping";
    case RecordState::kStopped: return "stopped";
    case RecordState::kStarting: return "starting";
    case RecordState::kDeleting: return "deleting";
  }
  return "stopped";
}

RecordState ParseRecordState(const std::string& s) {
  for (RecordState r : {RecordState::kCreating, RecordState::kRunning, RecordState::kPaused, RecordState::kStopping,
                        RecordState::kStarting, RecordState::kDeleting})
    if (s == RecordStateName(r)) return r;
  return RecordState::kStopped;
}

RecordState Recorded(SandboxState s) {
  switch (s) {
    case SandboxState::kRunning: return RecordState::kRunning;
    case SandboxState::kPaused: return RecordState::kPaused;
    case SandboxState::kStopped: return RecordState::kStopped;
  }
  return RecordState::kStopped;
}

std::string VolumesToJson(const std::vector<VolumeMount>& volumes) {
  if (volumes.empty()) return "";
  nlohmann::json j = nlohmann::json::array();
  for (const auto& v : volumes)
    j.push_back({{"name", v.name}, {"path", v.path}, {"read_only", v.read_only}, {"host", v.host}});
  return j.dump();
}

std::vector<VolumeMount> VolumesFromJson(const std::string& text) {
  std::vector<VolumeMount> out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& v : j)
    out.push_back({Field<std::string>(v, "name", ""), Field<std::string>(v, "path", ""),
                   Field<bool>(v, "read_only", false), Field<bool>(v, "host", false)});
  return out;
}

SandboxRecord ToRecord(const SandboxInfo& i, RecordState state) {
  SandboxRecord r;
  r.id = i.id;
  r.name = i.name;
  r.template_name = i.template_name;
  r.state = RecordStateName(state);
  r.memory_bytes = i.limits.memory_bytes;
  r.cpu_millicores = i.limits.cpu_millicores;
  r.pids = i.limits.pids;
  r.env = i.env;
  r.metadata = i.metadata;
  r.timeout_at_ms = i.timeout_at_ms;
  r.on_timeout = TimeoutActionName(i.on_timeout);
  r.auto_delete_after_s = i.auto_delete_after_s;
  r.idle_timeout_s = i.idle_timeout_s;
  r.on_idle = TimeoutActionName(i.on_idle);
  r.created_at_ms = i.created_at_ms;
  r.started_at_ms = i.started_at_ms;
  r.stopped_at_ms = i.stopped_at_ms;
  r.last_active_ms = i.last_active_ms;
  r.error = i.error;
  r.init_pid = i.init_pid;
  r.init_start_time = i.init_start_time;
  r.id_base = i.ids.host_first;
  r.access_token = i.access_token;
  r.network = i.network.ToJson(true).dump();
  r.address = i.address;
  r.forwards = net::ForwardsToStored(i.forwards);
  r.image_id = i.image_id;
  r.snapshot_id = i.snapshot_id;
  r.disk_bytes = i.disk_bytes;
  r.volumes = VolumesToJson(i.volumes);
  r.archive_after_s = i.archive_after_s;
  r.archived_at_ms = i.archived_at_ms;
  r.archive_sha256 = i.archive_sha256;
  r.archive_size = i.archive_size;
  r.restore_ms = i.restore_ms;
  r.devices = i.devices.empty() ? "" : nlohmann::json(i.devices).dump();
  return r;
}

SandboxInfo FromRecord(const SandboxRecord& r, const std::string& sandboxes_dir) {
  SandboxInfo i;
  i.id = r.id;
  i.name = r.name;
  i.template_name = r.template_name;
  i.state = r.state == "paused" ? SandboxState::kPaused
            : r.state == "running" ? SandboxState::kRunning
                                   : SandboxState::kStopped;
  i.limits = {r.memory_bytes, r.cpu_millicores, r.pids};
  i.init_pid = static_cast<pid_t>(r.init_pid);
  i.init_start_time = r.init_start_time;
  i.ids.host_first = r.id_base;
  i.access_token = r.access_token;
  i.dir = sandboxes_dir + "/" + r.id;
  i.agent_socket = i.dir + "/agent.sock";
  i.env = r.env;
  i.metadata = r.metadata;
  i.timeout_at_ms = r.timeout_at_ms;
  i.on_timeout = ParseTimeoutAction(r.on_timeout).ok() ? *ParseTimeoutAction(r.on_timeout)
                                                         : TimeoutAction::kKill;
  i.auto_delete_after_s = r.auto_delete_after_s;
  i.idle_timeout_s = r.idle_timeout_s;
  i.on_idle = r.on_idle == "pause" ? TimeoutAction::kPause : TimeoutAction::kStop;
  i.created_at_ms = r.created_at_ms;
  i.started_at_ms = r.started_at_ms;
  i.stopped_at_ms = r.stopped_at_ms;
  i.last_active_ms = r.last_active_ms;
  i.error = r.error;
  i.address = r.address;
  i.forwards = net::ForwardsFromStored(r.forwards);
  i.image_id = r.image_id;
  i.snapshot_id = r.snapshot_id;
  i.disk_bytes = r.disk_bytes;
  i.volumes = VolumesFromJson(r.volumes);
  i.archive_after_s = r.archive_after_s;
  i.archived_at_ms = r.archived_at_ms;
  i.archive_sha256 = r.archive_sha256;
  i.archive_size = r.archive_size;
  i.restore_ms = r.restore_ms;
  if (auto d = nlohmann::json::parse(r.devices, nullptr, false); d.is_array())
    for (const auto& name : d)
      if (name.is_string()) i.devices.push_back(name.get<std::string>());
  if (auto network = net::NetworkSettings::FromStored(r.network); network.ok()) i.network = *network;
  return i;
}

Status CloseSandboxDir(const std::string& dir, uid_t root) {
  if (::chown(dir.c_str(), root, root) != 0) return Status::Errno("chown " + dir);
  if (::chmod(dir.c_str(), 0700) != 0) return Status::Errno("chmod " + dir);
  return Status::Ok();
}

Status PrepareSandboxDir(const std::string& dir, uid_t root) {
  PDK_TRY(MakeDirs(dir + "/upper/etc", 0755));
  for (const char* sub : {"/work", "/rootfs"}) PDK_TRY(MakeDirs(dir + sub, 0755));
  for (const char* sub : {"/upper", "/upper/etc"})
    if (::chown((dir + sub).c_str(), root, root) != 0) return Status::Errno("chown " + dir + sub);
  return CloseSandboxDir(dir, root);
}

// FailedPrecondition unless the sandbox is in state `needed` for `done` (a
// past participle: "paused").
Status RequireState(const SandboxInfo& info, SandboxState needed, const char* done) {
  if (info.state == needed) return Status::Ok();
  return FailedPrecondition("sandbox " + info.id + " is " + SandboxStateName(info.state) + "; only a " +
                            SandboxStateName(needed) + " sandbox can be " + done);
}

constexpr const char* kHostnameFile = "/etc/hostname";
constexpr const char* kHostsFile = "/etc/hosts";
constexpr const char* kResolvConfFile = "/etc/resolv.conf";

kernel::LaunchSpec LaunchFor(const SandboxInfo& info, bool first_boot, const net::Network* network) {
  kernel::LaunchSpec launch;
  launch.hostname = info.name;
  if (first_boot)
    launch.files = {{kHostnameFile, info.name + "\n"},
                    {kHostsFile, "127.0.0.1\tlocalhost\n127.0.1.1\t" + info.name +
                                     "\n::1\tlocalhost ip6-localhost ip6-loopback\n"}};
  if (network && info.network.enabled) launch.files.emplace_back(kResolvConfFile, network->ResolvConf());
  return launch;
}

Status PlaceFirstBootFiles(const std::string& dir, uid_t root, bool network) {
  std::vector<const char*> files = {kHostnameFile, kHostsFile};
  if (network) files.push_back(kResolvConfFile);  // without one, the image's stays
  for (const char* file : files) {
    std::string path = dir + "/upper" + file;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd) return Status::Errno("create " + path);
    if (::fchown(fd.get(), root, root) != 0 || ::fchmod(fd.get(), 0644) != 0)
      return Status::Errno("hand " + path + " to the sandbox's root");
  }
  return Status::Ok();
}

}  // namespace manager_detail

using namespace manager_detail;

SandboxManager::SandboxManager(HostLock host_lock, ManagerOptions opts,
                               std::unique_ptr<kernel::CgroupDriver> cgroups, UniqueFd init_exe)
    : host_lock_(std::move(host_lock)),
      opts_(std::move(opts)),
      store_(opts_.store),
      cgroups_(std::move(cgroups)),
      init_exe_(std::move(init_exe)),
      templates_(opts_.state_dir + "/templates", opts_.state_dir + "/staging", opts_.busybox_path),
      sandboxes_dir_(opts_.state_dir + "/sandboxes"),
      trash_dir_(opts_.state_dir + "/trash"),
      sandbox_trash_dir_(sandboxes_dir_ + "/.trash"),
      snapshots_dir_(opts_.state_dir + "/snapshots"),
      volumes_dir_(sandboxes_dir_ + "/.volumes"),
      archives_dir_(opts_.state_dir + "/archives"),
      archived_dir_(sandboxes_dir_ + "/.archived"),
      id_ranges_(opts_.id_base, opts_.id_slots),
      warm_({.make = [this](const std::string& key) { return MakeWarmShell(key); },
             .discard = [this](std::unique_ptr<WarmShell> w) { DiscardWarmShell(std::move(w)); }},
            {.thread_name = "pdk-warm-shells"}) {}

// Sandboxes outlive the manager (a daemon restart must not kill them); only
// an empty cgroup parent is tidied away.
SandboxManager::~SandboxManager() {
  reaper_.Drain();
  teardown_.Drain();  // deleted sandboxes' slots go back to network_, cgroups to cgroups_
  forwarder_.reset();  // its connections ask this manager where sandboxes are
  warm_.Stop();  // discards the warm shells, their slots back to network_
  cgroups_->RemoveParentIfEmpty();
  if (network_) {
    bool in_use = false;
    for (const auto& [id, sb] : by_id_) in_use = in_use || sb->slot != nullptr;
    // Sandboxes outlive paddockd with their network and its rules; with
    // none left, the bridge and the table go too.
    if (!in_use) (void)network_->RemoveAll();
  }
}

Result<std::unique_ptr<SandboxManager>> SandboxManager::Open(ManagerOptions opts) {
  // Before anything is swept or made: another manager's sandboxes would be.
  auto host_lock =
      HostLock::Acquire(opts.host_lock, opts.host_lock_wait_ms, "state folder " + opts.state_dir);
  if (!host_lock.ok() && host_lock.status().code() == StatusCode::kUnavailable)
    return FailedPrecondition("another sandbox manager runs on this host: " + host_lock.status().message() +
                              ". One runs per host: two would each take the cgroup tree, the bridge, the "
                              "firewall table and the sandboxes' user ids as their own, and sweep what the "
                              "other made");
  if (!host_lock.ok()) return host_lock.status();
  if (opts.init_path.empty()) opts.init_path = PADDOCK_INIT_DEFAULT_PATH;
  UniqueFd init(::open(opts.init_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!init) return Status::Errno("open paddock-init at " + opts.init_path);
  // The seccomp filter every launch carries, compiled (and its fd opened)
  // now: a host whose libseccomp cannot build it fails here, not at a create.
  PDK_TRY(kernel::seccomp::DefaultProfileFd().status());
  for (const char* sub : {"", "/sandboxes", "/templates", "/staging", "/trash", "/snapshots", "/archives"})
    PDK_TRY(MakeDirs(opts.state_dir + sub, 0711));
  // A sandbox's set-up runs as its own root, an unprivileged host id, and must
  // reach its folder: the state folder must be searchable (not listable) by all.
  if (::chmod(opts.state_dir.c_str(), 0711) != 0) return Status::Errno("chmod " + opts.state_dir);
  // ... and so must every folder above it.
  for (size_t slash = opts.state_dir.find('/', 1); slash != std::string::npos;
       slash = opts.state_dir.find('/', slash + 1)) {
    std::string up = opts.state_dir.substr(0, slash);
    struct stat st;
    if (::stat(up.c_str(), &st) == 0 && !(st.st_mode & S_IXOTH))
      return FailedPrecondition("the state folder's parent " + up +
                                " is not searchable by other users; sandboxes run as unprivileged "
                                "host ids and must reach their folders (chmod o+x " + up +
                                ", or choose another state folder)");
  }
  // With disk limits, sandboxes' folders live on the disk pool, mounted
  // over the sandboxes folder.
  // Once made, the pool holds sandboxes' files: it is used from then on.
  std::unique_ptr<DiskPool> disk;
  if (opts.disk_pool_bytes > 0 || PathExists(opts.state_dir + "/disk.img")) {
    PDK_ASSIGN_OR_RETURN(disk, DiskPool::Open({opts.state_dir + "/disk.img", opts.state_dir + "/sandboxes",
                                               opts.disk_pool_bytes}));
  }
  // Half-built templates and half-deleted sandboxes and snapshots of a
  // crashed run. A sandbox's folder goes to a trash on its own filesystem.
  for (const char* sub : {"/staging", "/trash", "/sandboxes/.trash"}) {
    PDK_TRY(RemoveTree(opts.state_dir + sub));
    PDK_TRY(MakeDirs(opts.state_dir + sub, 0711));
  }
  // Volumes hold files sandboxes wrote, setuid ones of host ids included:
  // no local user may reach them (paddockd makes the sandboxes' mounts).
  PDK_TRY(MakeDirs(opts.state_dir + "/sandboxes/.volumes", 0700));
  if (::chmod((opts.state_dir + "/sandboxes/.volumes").c_str(), 0700) != 0)
    return Status::Errno("chmod " + opts.state_dir + "/sandboxes/.volumes");
  PDK_TRY(MakeDirs(opts.state_dir + "/sandboxes/.archived", 0700));
  if (!opts.store) {
    PDK_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, OpenSqliteStore(opts.state_dir + "/paddock.db"));
    opts.store = std::move(store);
  }
  PDK_ASSIGN_OR_RETURN(auto cgroups, kernel::CgroupDriver::Detect(opts.cgroup_parent));
  image::ImageStoreOptions iopts;
  iopts.root = opts.state_dir + "/images";
  iopts.registry = opts.registry;
  PDK_ASSIGN_OR_RETURN(auto images, image::ImageStore::Open(std::move(iopts), opts.store));
  std::unique_ptr<SandboxManager> m(
      new SandboxManager(std::move(*host_lock), std::move(opts), std::move(cgroups), std::move(init)));
  m->images_ = std::move(images);
  m->disk_ = std::move(disk);
  m->templates_.SetImages(m->images_.get());
  if (m->opts_.network) {
    PDK_ASSIGN_OR_RETURN(m->network_, net::Network::Open(*m->opts_.network));
    m->forwarder_ = std::make_unique<net::Forwarder>([p = m.get()](const std::string& id) {
      std::optional<net::Ipv4> address;
      if (auto e = p->Endpoint(id); e.ok() && e->state == SandboxState::kRunning && !e->address.empty())
        if (auto a = net::Ipv4::Parse(e->address); a.ok()) address = *a;
      return address;
    });
  }
  PDK_TRY(m->LoadSnapshots());
  PDK_TRY(m->LoadVolumes());
  PDK_TRY(m->Recover());
  m->SweepArchives();
  if (m->opts_.warm_shells > 0) {
    for (const auto& name : m->opts_.warm_templates)
      (void)m->warm_.SetTarget(name, m->opts_.warm_shells, m->opts_.warm_shells_max);
    m->warm_.Start();
  }
  return m;
}

// Start-up reconciliation. Runs before any request is served, so it takes no
// sandbox locks. Order: records first (they reserve names and id ranges),
// then the sweep of folders and cgroups that no record claims.
// Listens again on a recovered sandbox's forwards. One whose host port was
// taken meanwhile (or whose networking is now off) is dropped from the
// record, with the reason in the journal.
Status SandboxManager::ReopenForwards(Sandbox& sb) {
  if (sb.info.forwards.empty()) return Status::Ok();
  std::vector<net::PortForward> kept;
  std::string lost;
  for (const auto& f : sb.info.forwards) {
    Status s = forwarder_ ? forwarder_->Open(sb.info.id, f).status() : Unavailable("networking is off");
    if (s.ok()) {
      kept.push_back(f);
    } else {
      lost += (lost.empty() ? "" : "; ") + f.bind + ":" + std::to_string(f.host_port) + ": " + s.message();
    }
  }
  if (lost.empty()) return Status::Ok();
  sb.info.forwards = std::move(kept);
  ++recovery_.lost_forwards;
  return PersistState(sb, {"forward", "lost", lost});
}

Result<net::PortForward> SandboxManager::AddForward(const std::string& id_or_name, net::PortForward forward) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  SandboxInfo& info = sb->info;
  if (!forwarder_) return FailedPrecondition("networking is off on this host (paddockd --no-network)");
  if (!info.network.enabled)
    return FailedPrecondition("sandbox " + info.id + " has no network (network.enabled is false)");
  if (info.forwards.size() >= kMaxForwards)
    return ResourceExhausted("sandbox " + info.id + " has " + std::to_string(kMaxForwards) +
                             " forwards, the most it may have");
  for (const auto& f : info.forwards)
    if (forward.host_port != 0 && f.host_port == forward.host_port)
      return AlreadyExists("sandbox " + info.id + " already forwards host port " +
                           std::to_string(f.host_port) + " (to its port " + std::to_string(f.port) + ")");
  PDK_ASSIGN_OR_RETURN(net::PortForward opened, forwarder_->Open(info.id, forward));
  info.forwards.push_back(opened);
  Status s = PersistState(*sb, {"forward", "added", opened.bind + ":" + std::to_string(opened.host_port)});
  if (!s.ok()) {  // the record is the truth
    info.forwards.pop_back();
    forwarder_->Close(opened.bind, opened.host_port);
    return s;
  }
  return opened;
}

Status SandboxManager::RemoveForward(const std::string& id_or_name, uint16_t host_port) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  SandboxInfo& info = sb->info;
  auto it = std::find_if(info.forwards.begin(), info.forwards.end(),
                         [&](const net::PortForward& f) { return f.host_port == host_port; });
  if (it == info.forwards.end())
    return NotFound("sandbox " + info.id + " has no forward from host port " + std::to_string(host_port));
  net::PortForward gone = *it;
  info.forwards.erase(it);
  Status s = PersistState(*sb, {"forward", "removed", gone.bind + ":" + std::to_string(gone.host_port)});
  if (!s.ok()) {
    info.forwards.push_back(gone);
    return s;
  }
  forwarder_->Close(gone.bind, gone.host_port);
  return Status::Ok();
}

// One record against the kernel: is its init still the process we started
// (pid and start time), and is its cgroup there?
Status SandboxManager::Persist(Sandbox& sb, RecordState state, const JournalNote& note) {
  PDK_TRY(store_->Update(ToRecord(sb.info, state), note));
  MutexLock lock(sb.published_mu);
  sb.endpoint = {sb.info.id, sb.info.state, sb.info.address, sb.info.network.traffic_token,
                 sb.info.access_token};
  sb.published = sb.info;
  return Status::Ok();
}

Status SandboxManager::PersistState(Sandbox& sb, const JournalNote& note) {
  return Persist(sb, Recorded(sb.info.state), note);
}

void SandboxManager::Sandbox::ReportHealth(uint64_t init_start_time, const Status& seen) {
  MutexLock lock(health_mu);
  health_init = init_start_time;
  unhealthy = seen.ok() ? "" : seen.message();
}

SandboxInfo SandboxManager::Sandbox::Published() const {
  SandboxInfo out;
  {
    MutexLock lock(published_mu);
    out = published;
  }
  out.last_active_ms = std::max(out.last_active_ms, proxied_ms.load(std::memory_order_relaxed));
  return WithHealth(std::move(out));
}

SandboxInfo SandboxManager::Sandbox::WithHealth(SandboxInfo out) const {
  MutexLock lock(health_mu);
  if (out.state != SandboxState::kStopped && out.init_start_time == health_init) out.unhealthy = unhealthy;
  return out;
}

Result<std::shared_ptr<SandboxManager::Sandbox>> SandboxManager::Find(
    const std::string& id_or_name) const {
  MutexLock lock(mu_);
  auto it = by_id_.find(id_or_name);
  if (it == by_id_.end()) {
    auto n = id_by_name_.find(id_or_name);
    if (n != id_by_name_.end()) it = by_id_.find(n->second);
  }
  if (it == by_id_.end() || !it->second->ready)
    return NotFound("sandbox '" + id_or_name + "' does not exist");
  return it->second;
}

std::vector<std::shared_ptr<SandboxManager::Sandbox>> SandboxManager::All() const {
  MutexLock lock(mu_);
  std::vector<std::shared_ptr<Sandbox>> all;
  all.reserve(by_id_.size());
  for (const auto& [id, sb] : by_id_) all.push_back(sb);
  return all;
}

Status SandboxManager::StillThere(const Sandbox& sb, const std::string& id_or_name) {
  if (sb.ready) return Status::Ok();
  return NotFound("sandbox '" + id_or_name + "' does not exist");
}

Result<SandboxInfo> SandboxManager::Create(const SandboxSpec& spec) {
  PDK_TRY(CheckSpec(spec));  // before a pull, which may take minutes
  if (!spec.restore.empty()) {
    PDK_ASSIGN_OR_RETURN(ArchiveRecord rec, GetArchive(spec.restore));
    PDK_ASSIGN_OR_RETURN(Template tmpl, ArchiveTemplate(rec));
    return CreateFrom(spec, tmpl, "", &rec);
  }
  if (!spec.snapshot.empty()) {
    PDK_ASSIGN_OR_RETURN(SnapshotRecord snap, GetSnapshot(spec.snapshot));
    PDK_ASSIGN_OR_RETURN(Template tmpl, SnapshotTemplate(snap.id));
    return CreateFrom(spec, tmpl, "");
  }
  PDK_ASSIGN_OR_RETURN(Template tmpl, ResolveTemplate(spec.template_name));
  return CreateFrom(spec, tmpl, "");
}

Result<SandboxInfo> SandboxManager::Fork(const std::string& source, SandboxSpec spec) {
  PDK_ASSIGN_OR_RETURN(SandboxInfo src, Get(source));
  PDK_ASSIGN_OR_RETURN(Template tmpl, TemplateOf(src));
  tmpl.name = src.template_name;
  if (spec.disk_bytes == 0) spec.disk_bytes = src.disk_bytes;  // a copy fits the source's limit
  if (spec.volumes.empty()) spec.volumes = src.volumes;        // and shares its volumes
  return CreateFrom(spec, tmpl, src.id);
}

Result<Template> SandboxManager::TemplateOf(const SandboxInfo& info) {
  if (!info.snapshot_id.empty()) {
    auto tmpl = SnapshotTemplate(info.snapshot_id);
    if (!tmpl.ok()) return tmpl.status().Annotate("sandbox " + info.id + "'s snapshot");
    return tmpl;
  }
  if (info.image_id.empty()) return templates_.Get(info.template_name);
  auto tmpl = templates_.ForImage(info.image_id);
  if (!tmpl.ok()) return tmpl.status().Annotate("sandbox " + info.id + "'s image " + info.template_name);
  return tmpl;
}

bool SandboxManager::ImageInUse(const std::string& image_id) const {
  {
    MutexLock lock(snap_mu_);
    for (const auto& [id, snap] : snapshots_)
      if (snap.image_id == image_id) return true;
  }
  MutexLock lock(mu_);
  for (const auto& [id, sb] : by_id_)
    if (sb->image_id == image_id) return true;
  return false;
}

// Warm shells stack the image's layers: they go first (the next create
// makes them again if only a ref was removed).
Status SandboxManager::RemoveImage(const std::string& ref_or_id) {
  if (auto img = images_->Find(ref_or_id); img.ok() && !ImageInUse(img->id)) DropWarm(img->id);
  return images_->Remove(ref_or_id, [this](const std::string& id) { return ImageInUse(id); });
}

Result<image::PruneReport> SandboxManager::PruneImages() {
  DropWarm("");
  return images_->Prune([this](const std::string& id) { return ImageInUse(id); });
}

Status SandboxManager::MakeWorkingDir(const Sandbox& sb) {
  if (!sb.image_config || sb.image_config->working_dir.empty()) return Status::Ok();
  PDK_ASSIGN_OR_RETURN(agent::AgentClient client, agent::AgentClient::Connect(sb.info.agent_socket));
  auto made = client.Call({{"op", "mkdir"}, {"path", sb.image_config->working_dir}, {"parents", true}});
  return made.ok() ? Status::Ok() : made.status().Annotate("creating the image's WorkingDir");
}

Status SandboxManager::CopyLayerOf(const std::string& source_id, const SandboxInfo& info) {
  PDK_ASSIGN_OR_RETURN(auto src, Find(source_id));
  MutexLock lock(src->mu);  // no transition of the source meanwhile
  PDK_TRY(StillThere(*src, source_id));
  PDK_TRY(RestoreLayerLocked(*src));
  bool freeze = src->info.state == SandboxState::kRunning;
  if (freeze) PDK_TRY(src->cgroup->Freeze());  // a consistent copy: nothing writes meanwhile
  Status s = CopyLayer(src->info.dir + "/upper", info.dir + "/upper", src->info.ids.host_first,
                       info.ids.host_first);
  if (freeze) {
    Status thawed = src->cgroup->Thaw();
    if (s.ok()) s = thawed;
  }
  return s.Annotate("copying the files of sandbox " + source_id);
}

Status SandboxManager::MakeSandboxDir(const std::string& dir, uint32_t host_first) {
  if (disk_) PDK_TRY(disk_->MakeFolder(dir));
  return PrepareSandboxDir(dir, host_first);
}

Status SandboxManager::ApplyDiskLimit(const std::string& dir, int64_t bytes) {
  if (!disk_) return Status::Ok();
  return disk_->SetLimit(dir, bytes);
}

Result<kernel::btrfs::Usage> SandboxManager::DiskUsage(const std::string& id_or_name) const {
  if (!disk_) return Unimplemented("this paddockd has no disk pool (--disk-pool SIZE): disk use is not counted");
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  return disk_->Usage(sb->Published().dir);
}

Result<std::pair<int64_t, int64_t>> SandboxManager::DiskPoolSpace() const {
  if (!disk_) return Unimplemented("this paddockd has no disk pool");
  struct statvfs fs;
  if (::statvfs(sandboxes_dir_.c_str(), &fs) != 0) return Status::Errno("statvfs " + sandboxes_dir_);
  return std::pair<int64_t, int64_t>(static_cast<int64_t>(fs.f_blocks) * fs.f_frsize,
                                     static_cast<int64_t>(fs.f_bavail) * fs.f_frsize);
}

Status SandboxManager::CheckSpec(const SandboxSpec& spec) const {
  if (!spec.name.empty() && !ValidName(spec.name))
    return InvalidArgument("name '" + spec.name +
                           "' is not valid: 1-63 characters [A-Za-z0-9_.-], starting with a "
                           "letter or digit");
  if (spec.limits.memory_bytes < 0 || spec.limits.cpu_millicores < 0 || spec.limits.pids < 0)
    return InvalidArgument("limits must not be negative");
  if (spec.limits.memory_bytes > 0 && spec.limits.memory_bytes < (int64_t{4} << 20))
    return InvalidArgument("memory limit must be at least 4 MiB");
  if (spec.idle_timeout_s < 0) return InvalidArgument("idle_timeout must not be negative");
  if (spec.archive_after_s < -1) return InvalidArgument("archive_after must be a number of seconds (or -1: never)");
  if (spec.on_idle == TimeoutAction::kKill)
    return InvalidArgument("an idle sandbox is stopped or paused, not killed (on_idle: stop or pause)");
  if (spec.timeout_s < 0 || spec.auto_delete_after_s < 0)
    return InvalidArgument("timeout and auto_delete_after must not be negative");
  if (spec.devices.size() > kMaxDevices)
    return InvalidArgument("a sandbox may ask for at most " + std::to_string(kMaxDevices) + " devices");
  if (spec.volumes.size() > kMaxVolumes)
    return InvalidArgument("a sandbox may mount at most " + std::to_string(kMaxVolumes) + " volumes");
  std::set<std::string> paths;
  for (const auto& v : spec.volumes) {
    if (v.host && !opts_.host_dirs.count(v.name))
      return InvalidArgument("host folder '" + v.name + "' is not one paddockd allows (its --host-dir NAME=PATH)");
    if (!v.host && !ValidName(v.name)) return InvalidArgument("volume name '" + v.name + "' is not valid");
    const std::string& p = v.path;
    bool clean = p.size() > 1 && p.size() < 1024 && p[0] == '/' && p.back() != '/' &&
                 p.find("//") == std::string::npos && ("/" + p + "/").find("/../") == std::string::npos &&
                 ("/" + p + "/").find("/./") == std::string::npos && p.find('\0') == std::string::npos;
    if (!clean) return InvalidArgument("volume " + v.name + "'s path '" + p + "' must be a clean absolute path, not /");
    for (const char* system : {"/proc", "/sys", "/dev"})
      if (p == system || p.rfind(std::string(system) + "/", 0) == 0)
        return InvalidArgument("volume " + v.name + " may not be mounted at " + p + " (under " + system + ")");
    if (!paths.insert(p).second) return InvalidArgument("two volumes at " + p);
  }
  if (spec.disk_bytes < 0) return InvalidArgument("the disk limit must not be negative");
  if (spec.disk_bytes > 0 && spec.disk_bytes < (int64_t{1} << 20))
    return InvalidArgument("the disk limit must be at least 1 MiB");
  if (spec.disk_bytes > 0 && !disk_)
    return Unimplemented("disk limits need paddockd's disk pool (--disk-pool SIZE): this paddockd has none");
  if (spec.limits.any() && !cgroups_->SupportsLimits())
    return Unimplemented("this host's cgroup " + std::string(cgroups_->version()) +
                         " tree has no memory/cpu/pids controllers; limits cannot be enforced");
  return Status::Ok();
}

kernel::CgroupLimits SandboxManager::WithDefaults(kernel::CgroupLimits limits) const {
  if (!cgroups_->SupportsLimits()) return limits;
  const kernel::CgroupLimits& d = opts_.default_limits;
  if (limits.memory_bytes == 0) limits.memory_bytes = d.memory_bytes;
  if (limits.cpu_millicores == 0) limits.cpu_millicores = d.cpu_millicores;
  if (limits.pids == 0) limits.pids = d.pids;
  return limits;
}

Result<SandboxInfo> SandboxManager::CreateFrom(const SandboxSpec& spec, const Template& tmpl,
                                               const std::string& fork_source, const ArchiveRecord* archive) {
  PDK_TRY(CheckSpec(spec));
  auto sb = std::make_shared<Sandbox>();
  sb->id = NewSandboxId();
  sb->image_id = tmpl.image_id;
  sb->snapshot_id = tmpl.snapshot_id;
  sb->image_config = tmpl.config;
  if (spec.run_start) sb->run = tmpl.run;
  sb->volumes = spec.volumes;
  MutexLock sb_lock(sb->mu);
  SandboxInfo& info = sb->info;
  info.id = sb->id;
  info.access_token = RandomHex(16);
  info.name = spec.name.empty() ? info.id : spec.name;
  info.template_name = tmpl.name;
  info.image_id = tmpl.image_id;
  info.snapshot_id = tmpl.snapshot_id;
  info.limits = WithDefaults(spec.limits);
  info.disk_bytes = spec.disk_bytes > 0 ? spec.disk_bytes : opts_.default_disk_bytes;
  info.volumes = spec.volumes;
  info.dir = sandboxes_dir_ + "/" + info.id;
  info.agent_socket = info.dir + "/agent.sock";
  info.env = spec.env;
  // Its devices, known and usable now (a count of GPUs is picked as they
  // are claimed, below), from the host's specs read once.
  PDK_ASSIGN_OR_RETURN(GpuAsk gpus, ParseGpus(spec.gpus));
  std::vector<std::string> asked = spec.devices;
  asked.insert(asked.end(), gpus.names.begin(), gpus.names.end());
  std::optional<cdi::Registry> registry;
  if (!asked.empty() || gpus.count) {
    if (cgroups_->device_filter().empty())
      return FailedPrecondition("devices are not given out on this host: its device access cannot be limited (" +
                                cgroups_->device_filter_error() + ")");
    registry = Devices();
  }
  if (!asked.empty()) {
    PDK_ASSIGN_OR_RETURN(info.devices, ResolveDevices(*registry, asked));
  }
  info.metadata = spec.metadata;
  info.on_timeout = spec.on_timeout;
  info.auto_delete_after_s = spec.auto_delete_after_s;
  info.idle_timeout_s = spec.idle_timeout_s > 0 ? spec.idle_timeout_s : opts_.default_idle_timeout_s;
  info.on_idle = spec.on_idle;
  info.archive_after_s = spec.archive_after_s;
  info.network = spec.network;
  info.created_at_ms = info.last_active_ms = WallClockMillis();
  if (spec.timeout_s > 0) info.timeout_at_ms = info.created_at_ms + spec.timeout_s * 1000;
  {  // The narrow reservation step: name and id.
    MutexLock lock(mu_);
    // Deleted sandboxes still torn down hold their places for a moment:
    // wait for them (bounded) rather than say the host is full.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (by_id_.size() + tearing_down_ >= opts_.max_sandboxes && by_id_.size() < opts_.max_sandboxes)
      if (!teardown_cv_.WaitUntil(lock, deadline)) break;
    if (id_by_name_.count(info.name))
      return AlreadyExists("a sandbox named '" + info.name + "' already exists");
    if (by_id_.size() + tearing_down_ >= opts_.max_sandboxes)
      return ResourceExhausted("this host is full: " + std::to_string(opts_.max_sandboxes) +
                               " sandboxes exist (the configured maximum)");
    if (gpus.count) PDK_TRY(PickGpus(*registry, gpus.count, info.devices));
    PDK_TRY(ClaimDevices(info.id, info.devices));
    by_id_[info.id] = sb;
    id_by_name_[info.name] = info.id;
  }
  // Listed with its image id (and snapshot id), it keeps the image (and
  // the snapshot) from removal; one removed just before that is gone now.
  Status still_there = Status::Ok();
  if (!info.snapshot_id.empty()) {
    MutexLock lock(snap_mu_);
    if (!snapshots_.count(info.snapshot_id))
      still_there = NotFound("snapshot " + info.snapshot_id + " was removed");
  }
  if (still_there.ok() && !info.image_id.empty()) still_there = images_->Find(info.image_id).status();
  if (still_there.ok() && !info.volumes.empty()) {
    MutexLock lock(vol_mu_);
    for (const auto& v : info.volumes)
      if (!v.host && !volumes_.count(v.name)) still_there = NotFound("volume '" + v.name + "' does not exist");
  }
  // What its devices ask; their env under the sandbox's own.
  std::optional<cdi::Edits> device_edits;
  if (still_there.ok() && !info.devices.empty()) {
    auto edits = DeviceEdits(*registry, info.devices);
    if (edits.ok()) {
      for (const auto& kv : edits->env) {
        size_t eq = kv.find('=');
        info.env.emplace(kv.substr(0, eq), kv.substr(eq + 1));  // the caller's value wins
      }
      device_edits = std::move(*edits);
    } else {
      still_there = edits.status();
    }
  }
  if (!still_there.ok()) {
    MutexLock lock(mu_);
    by_id_.erase(info.id);
    id_by_name_.erase(info.name);
    ReleaseDevices(info.id, info.devices);
    return still_there.Annotate("creating from " + tmpl.name);
  }
  if (!info.image_id.empty()) images_->Touch(info.image_id);
  // The id range: the warm shell's, or a new one.
  // A fork's files must be in place before its overlay is mounted, and a
  // sandbox without network cannot use a shell in a slot: no warm shell.
  bool warm_fits = fork_source.empty() && !archive && (!network_ || info.network.enabled) &&
                   info.volumes.empty() && info.devices.empty();
  std::unique_ptr<WarmShell> warm = warm_fits ? warm_.Take(WarmKey(tmpl)) : nullptr;
  if (warm_fits) ++(warm ? warm_taken_ : warm_missed_);
  Result<IdRanges::Lease> ids = warm ? Result<IdRanges::Lease>(std::move(warm->ids)) : id_ranges_.Reserve();
  auto unreserve = [this, id = info.id, name = info.name, devices = info.devices] {  // its id range goes back with sb
    MutexLock lock(mu_);
    by_id_.erase(id);
    id_by_name_.erase(name);
    ReleaseDevices(id, devices);
  };
  if (!ids.ok()) {
    unreserve();
    return ids.status();
  }
  sb->ids = std::move(*ids);
  info.ids.host_first = sb->ids.host_first();

  // Intent first: a crash from here on leaves a "creating" record that
  // recovery rolls back, never an unrecorded folder or cgroup.
  if (Status s = store_->Insert(ToRecord(info, RecordState::kCreating), {"create", "intent", info.name}); !s.ok()) {
    if (warm) DiscardWarmShell(std::move(warm));
    unreserve();
    return s;
  }

  kernel::LaunchSpec launch = LaunchFor(info, true, network_.get());
  // Its disk limit holds before anything in it runs.
  Status s = warm ? ApplyDiskLimit(warm->dir, info.disk_bytes) : Unavailable("no warm shell");
  if (s.ok()) s = BootWarm(*sb, *warm, launch);
  if (!s.ok()) {  // none ready, or it failed: a cold boot
    if (warm) DiscardWarmShell(std::move(warm));
    s = MakeSandboxDir(info.dir, info.ids.host_first);
    if (s.ok()) s = ApplyDiskLimit(info.dir, info.disk_bytes);
    if (s.ok() && !fork_source.empty()) s = CopyLayerOf(fork_source, info);
    if (s.ok() && archive) {
      auto restored = ReadLayerArchive(ArchiveFile(archive->id), archive->sha256, info.dir + "/upper",
                                       info.ids.host_first);
      s = restored.status().Annotate("restoring archive " + archive->id);
    }
    if (s.ok()) s = TakeSlot(*sb);
    if (s.ok()) s = Boot(*sb, launch, device_edits ? &*device_edits : nullptr);
  }
  if (s.ok()) s = ApplyNetwork(*sb);
  if (s.ok() && fork_source.empty()) s = MakeWorkingDir(*sb);
  if (s.ok()) s = RunStartCommand(*sb);
  if (s.ok()) s = Persist(*sb, RecordState::kRunning, {"create", "done", ""});
  if (!s.ok()) {
    (void)Halt(*sb, 0);
    (void)RemoveTree(info.dir);
    (void)store_->Remove(info.id, {"create", "failed", s.ToString()});
    unreserve();
    return s;
  }
  sb->ready = true;
  if ((!info.image_id.empty() || !info.snapshot_id.empty()) && fork_source.empty()) KeepWarm(WarmKey(tmpl));
  return info;
}

Status SandboxManager::Boot(Sandbox& sb, const kernel::LaunchSpec& launch, const cdi::Edits* devices) {
  SandboxInfo& info = sb.info;
  PDK_ASSIGN_OR_RETURN(Template tmpl, TemplateOf(info));
  cdi::Edits edits;
  if (devices) {
    edits = *devices;
  } else if (!info.devices.empty()) {  // a restart: the specs as they are now
    PDK_ASSIGN_OR_RETURN(edits, DeviceEdits(Devices(), info.devices));
  }
  PDK_ASSIGN_OR_RETURN(std::vector<kernel::DeviceAccess> access, DeviceAccessFor(edits));
  PDK_ASSIGN_OR_RETURN(std::unique_ptr<kernel::Cgroup> cgroup, cgroups_->Create(info.id, info.limits, access));
  PDK_ASSIGN_OR_RETURN(std::unique_ptr<kernel::Shell> shell,
                       PrepareShell(tmpl, info.dir, info.ids, cgroup.get(), sb.slot.get(), info.volumes, edits));
  kernel::LaunchSpec with_hooks = launch;
  AddDeviceHooks(edits, with_hooks);
  PDK_TRY(Launch(sb, std::move(cgroup), *shell, with_hooks));
  return RefreshLdCache(sb, edits);
}

Status SandboxManager::TakeSlot(Sandbox& sb) {
  if (!network_ || !sb.info.network.enabled || sb.slot) return Status::Ok();
  PDK_ASSIGN_OR_RETURN(sb.slot, network_->Acquire());
  return Status::Ok();
}

Status SandboxManager::ApplyNetwork(Sandbox& sb) {
  if (!sb.slot) return Status::Ok();
  sb.info.address = sb.slot->address.ToString();
  return network_->Apply(*sb.slot, sb.info.network.policy);
}

void SandboxManager::ReleaseSlot(Sandbox& sb) {
  if (sb.slot) network_->Release(std::move(sb.slot));
  sb.info.address.clear();
}

Status SandboxManager::BootWarm(Sandbox& sb, WarmShell& warm, const kernel::LaunchSpec& launch) {
  SandboxInfo& info = sb.info;
  if (::rename(warm.dir.c_str(), info.dir.c_str()) != 0)
    return Status::Errno("rename " + warm.dir + " to " + info.dir);
  warm.dir = info.dir;
  PDK_TRY(warm.cgroup->Rename(info.id));
  PDK_TRY(warm.cgroup->SetLimits(info.limits));  // writes only those that differ from the shell's
  PDK_TRY(Launch(sb, std::move(warm.cgroup), *warm.shell, launch));
  sb.slot = std::move(warm.slot);
  return Status::Ok();
}

Status SandboxManager::Launch(Sandbox& sb, std::unique_ptr<kernel::Cgroup> cgroup,
                              kernel::Shell& shell, const kernel::LaunchSpec& launch) {
  SandboxInfo& info = sb.info;
  auto contained = shell.Launch(launch);
  if (!contained.ok()) {
    ::unlink(info.agent_socket.c_str());
    return contained.status().Annotate("starting sandbox " + info.id);
  }
  cgroup->Keep();
  sb.cgroup = std::move(cgroup);
  info.init_pid = contained->init.pid();
  info.init_start_time = contained->start_time;
  sb.init = std::move(contained->init);
  sb.root_mount = std::move(contained->root_mount);
  info.state = SandboxState::kRunning;
  info.started_at_ms = info.last_active_ms = WallClockMillis();
  info.error.clear();
  return Status::Ok();
}

Result<std::unique_ptr<kernel::Shell>> SandboxManager::PrepareShell(
    const Template& tmpl, const std::string& dir, const kernel::user::IdRange& ids,
    kernel::Cgroup* cgroup, const net::Slot* slot, const std::vector<VolumeMount>& volumes,
    const cdi::Edits& devices) {
  std::string socket = dir + "/agent.sock";
  PDK_ASSIGN_OR_RETURN(UniqueFd listen, ListenUnix(socket));
  UniqueFd log(::open((dir + "/init.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log) return Status::Errno("open " + dir + "/init.log");

  kernel::ContainSpec spec;
  spec.lower_dirs = tmpl.layers;
  spec.upper_dir = dir + "/upper";
  spec.work_dir = dir + "/work";
  spec.rootfs_dir = dir + "/rootfs";
  for (const auto& [source, target] : tmpl.readonly_binds) spec.binds.push_back({source, target, true});
  for (const auto& v : volumes) {
    if (!v.host) {
      spec.binds.push_back({VolumeDir(v.name), v.path, v.read_only});
      continue;
    }
    auto allowed = opts_.host_dirs.find(v.name);
    if (allowed == opts_.host_dirs.end())
      return FailedPrecondition("host folder '" + v.name + "' is no longer allowed (paddockd --host-dir)");
    spec.binds.push_back({allowed->second, v.path, true});
  }
  // Under a template's read-only host folder (the host template's /usr)
  // nothing can be made: a device's file or link must be there already.
  for (const auto& [source, target] : tmpl.readonly_binds) {
    auto missing = [&, &target = target, &source = source](const std::string& path) {
      struct stat st;
      return path.rfind(target + "/", 0) == 0 && ::lstat((source + path.substr(target.size())).c_str(), &st) != 0;
    };
    for (const auto& m : devices.mounts)
      if (missing(m.container_path))
        return FailedPrecondition("a device mounts " + m.container_path + ", which template " + tmpl.name +
                                  " cannot hold: its " + target + " is the host's, read-only, without that path");
    for (const auto& [link_target, link] : devices.symlinks)
      if (missing(link))
        return FailedPrecondition("a device links " + link + ", which template " + tmpl.name +
                                  " cannot hold: its " + target + " is the host's, read-only, without that path");
  }
  for (const auto& m : devices.mounts) spec.binds.push_back({m.host_path, m.container_path, m.read_only});
  for (const auto& n : devices.nodes) spec.devices.emplace_back(n.host_path, n.path);
  spec.device_gids = devices.additional_gids;
  spec.ids = ids;
  spec.cgroup = cgroup;
  spec.init_exe_fd = init_exe_.get();
  spec.listen_fd = listen.get();
  spec.log_fd = log.get();
  spec.netns_fd = slot ? slot->netns.get() : -1;
  spec.init_env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  spec.set_up_timeout_ms = opts_.set_up_timeout_ms;
  auto shell = kernel::Shell::Prepare(spec);
  if (!shell.ok()) ::unlink(socket.c_str());
  return shell;
}

// A frozen init cannot act on SIGTERM, and frozen tasks do not die. Thaw
// whatever the recorded state: a freeze may have been left half done. A
// cgroup someone removed from outside has nothing left to thaw (and must
// not make the sandbox undeletable).
Status SandboxManager::Thaw(Sandbox& sb) {
  if (!sb.cgroup) return Status::Ok();
  Status thawed = sb.cgroup->Thaw();
  return thawed.ok() || thawed.code() == StatusCode::kNotFound ? Status::Ok() : thawed;
}

Status SandboxManager::Kill(Sandbox& sb) {
  PDK_TRY(Thaw(sb));
  // Killing PID 1 of a pid namespace kills everything in it.
  if (sb.init.valid()) PDK_TRY(sb.init.Signal(SIGKILL));
  ::unlink(sb.info.agent_socket.c_str());
  return Status::Ok();
}

// Ends every process of the sandbox and removes its cgroup; files stay.
Status SandboxManager::Halt(Sandbox& sb, int grace_ms) {
  SandboxInfo& info = sb.info;
  if (!sb.cgroup && !sb.init.valid()) {
    ReleaseSlot(sb);
    info.state = SandboxState::kStopped;
    return Status::Ok();
  }
  PDK_TRY(Thaw(sb));
  bool exited = false;
  if (grace_ms > 0 && sb.init.valid()) {
    PDK_TRY(sb.init.Signal(SIGTERM));  // init forwards it to every process
    PDK_ASSIGN_OR_RETURN(exited, sb.init.Wait(grace_ms));
  }
  if (!exited && sb.init.valid()) {
    // Killing PID 1 of a pid namespace kills everything in it.
    PDK_TRY(sb.init.Signal(SIGKILL));
    PDK_ASSIGN_OR_RETURN(exited, sb.init.Wait(10000));
    if (!exited) return Unavailable("init of sandbox " + info.id + " did not die 10 s after SIGKILL");
  }
  if (sb.cgroup) PDK_TRY(sb.cgroup->Destroy());
  sb.cgroup.reset();
  sb.init = kernel::ProcessHandle();
  ReleaseSlot(sb);
  sb.root_mount.reset();
  ::unlink(info.agent_socket.c_str());
  info.state = SandboxState::kStopped;
  info.init_pid = 0;
  info.init_start_time = 0;
  info.stopped_at_ms = WallClockMillis();
  return Status::Ok();
}

Status SandboxManager::Pause(const std::string& id_or_name) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  return PauseLocked(*sb);
}

Status SandboxManager::Resume(const std::string& id_or_name) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  return ResumeLocked(*sb);
}

Status SandboxManager::Stop(const std::string& id_or_name, int grace_ms) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  return StopLocked(*sb, grace_ms);
}

Status SandboxManager::Start(const std::string& id_or_name, const LimitsChange& change) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  PDK_TRY(RequireState(sb->info, SandboxState::kStopped, "started"));
  PDK_TRY(ChangeLimits(*sb, change));
  return StartLocked(*sb);
}

Status SandboxManager::Restart(const std::string& id_or_name, int grace_ms, const LimitsChange& change) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  PDK_TRY(CheckLimits(change));  // refused before the stop, not after
  if (sb->info.state != SandboxState::kStopped) PDK_TRY(StopLocked(*sb, grace_ms));
  PDK_TRY(ChangeLimits(*sb, change));
  return StartLocked(*sb);
}

Status SandboxManager::CheckLimits(const LimitsChange& change) const {
  SandboxSpec check;
  check.limits = {change.memory_bytes.value_or(0), change.cpu_millicores.value_or(0), change.pids.value_or(0)};
  check.disk_bytes = change.disk_bytes.value_or(0);
  return CheckSpec(check);
}

Status SandboxManager::ChangeLimits(Sandbox& sb, const LimitsChange& change) {
  if (change.empty()) return Status::Ok();
  PDK_TRY(CheckLimits(change));
  kernel::CgroupLimits limits = sb.info.limits;
  if (change.memory_bytes) limits.memory_bytes = *change.memory_bytes;
  if (change.cpu_millicores) limits.cpu_millicores = *change.cpu_millicores;
  if (change.pids) limits.pids = *change.pids;
  sb.info.limits = WithDefaults(limits);
  if (change.disk_bytes) sb.info.disk_bytes = *change.disk_bytes > 0 ? *change.disk_bytes : opts_.default_disk_bytes;
  return Status::Ok();
}

Result<SandboxState> SandboxManager::EnsureRunning(const std::string& id_or_name, bool keep_memory) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  SandboxState was = sb->info.state;
  if (was == SandboxState::kPaused && keep_memory) PDK_TRY(ResumeLocked(*sb));
  if (was == SandboxState::kPaused && !keep_memory) PDK_TRY(StopLocked(*sb, 0));
  if (sb->info.state == SandboxState::kStopped) PDK_TRY(StartLocked(*sb));
  return was;
}

Status SandboxManager::PauseLocked(Sandbox& sb) {
  PDK_TRY(RequireState(sb.info, SandboxState::kRunning, "paused"));
  // No intent needed: recovery reads the freezer, the kernel's own record.
  PDK_TRY(sb.cgroup->Freeze());
  sb.info.state = SandboxState::kPaused;
  return Persist(sb, RecordState::kPaused, {"pause", "done", ""});
}

Status SandboxManager::ResumeLocked(Sandbox& sb) {
  PDK_TRY(RequireState(sb.info, SandboxState::kPaused, "resumed"));
  PDK_TRY(sb.cgroup->Thaw());
  sb.info.state = SandboxState::kRunning;
  sb.info.last_active_ms = WallClockMillis();
  return Persist(sb, RecordState::kRunning, {"resume", "done", ""});
}

Status SandboxManager::StopLocked(Sandbox& sb, int grace_ms) {
  if (sb.info.state == SandboxState::kStopped)
    return FailedPrecondition("sandbox " + sb.info.id + " is already stopped");
  PDK_TRY(Persist(sb, RecordState::kStopping, {"stop", "intent", ""}));
  Status s = Halt(sb, grace_ms < 0 ? opts_.default_stop_grace_ms : grace_ms);
  PDK_TRY(PersistState(sb, {"stop", s.ok() ? "done" : "failed", s.ok() ? "" : s.ToString()}));
  return s;
}

Status SandboxManager::StartLocked(Sandbox& sb) {
  PDK_TRY(RequireState(sb.info, SandboxState::kStopped, "started"));
  PDK_TRY(RestoreLayerLocked(sb));
  PDK_TRY(Persist(sb, RecordState::kStarting, {"start", "intent", ""}));
  Status s = ApplyDiskLimit(sb.info.dir, sb.info.disk_bytes);
  if (s.ok()) s = TakeSlot(sb);
  if (s.ok()) s = Boot(sb, LaunchFor(sb.info, false, network_.get()));
  if (s.ok()) s = ApplyNetwork(sb);
  if (s.ok()) s = RunStartCommand(sb);
  if (!s.ok()) (void)Halt(sb, 0);
  PDK_TRY(PersistState(sb, {"start", s.ok() ? "done" : "failed", s.ok() ? "" : s.ToString()}));
  return s;
}

Status SandboxManager::Delete(const std::string& id_or_name) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  return DeleteLocked(*sb);
}

// The delete answers once the sandbox can neither run nor be reached: its
// processes killed, its folder in the trash, its record gone. What it leaves
// (its init to reap, cgroup, network slot, files, id range) is torn down by
// the teardown workers. A crash meanwhile leaves nothing unaccounted for:
// start-up empties the trash and removes cgroups and bridge ports that no
// record holds, and id ranges are free unless a record holds them.
Status SandboxManager::DeleteLocked(Sandbox& sb) {
  if (!sb.ready) return NotFound("sandbox '" + sb.info.id + "' does not exist");
  PDK_TRY(Persist(sb, RecordState::kDeleting, {"delete", "intent", ""}));
  PDK_TRY(Kill(sb));
  std::string trash = sandbox_trash_dir_ + "/" + sb.info.id + "-" + RandomHex(4);
  if (::rename(sb.info.dir.c_str(), trash.c_str()) != 0 && errno != ENOENT)
    return Status::Errno("move " + sb.info.dir + " to trash");
  PDK_TRY(store_->Remove(sb.info.id, {"delete", "done", ""}));
  if (sb.info.archived_at_ms > 0) ::unlink(ArchivedLayer(sb.info.id).c_str());
  if (forwarder_)
    for (const auto& f : sb.info.forwards) forwarder_->Close(f.bind, f.host_port);
  sb.ready = false;
  auto remains = std::make_shared<Remains>();
  remains->init = std::move(sb.init);
  remains->root_mount = std::move(sb.root_mount);
  remains->cgroup = std::move(sb.cgroup);
  remains->slot = std::move(sb.slot);
  remains->trash = std::move(trash);
  remains->ids = std::move(sb.ids);
  sb.info.state = SandboxState::kStopped;
  {
    MutexLock lock(mu_);
    by_id_.erase(sb.info.id);
    id_by_name_.erase(sb.info.name);
    archive_failed_ms_.erase(sb.info.id);
    ReleaseDevices(sb.info.id, sb.info.devices);
    ++tearing_down_;
  }
  teardown_.Post([this, remains] { TearDown(*remains); });
  return Status::Ok();
}

void SandboxManager::TearDown(Remains& r) {
  bool gone = !r.init.valid();
  if (!gone) {
    auto exited = r.init.Wait(10000);
    gone = exited.ok() && *exited;
  }
  // An init that outlived SIGKILL by 10 s (stuck in the kernel) keeps its
  // cgroup and id range; the next start-up sweeps the cgroup.
  if (gone && r.cgroup) gone = r.cgroup->Destroy().ok();
  if (r.slot) network_->Release(std::move(r.slot));
  // The files first: their dirty pages are then dropped, not written back
  // by the unmount's sync.
  (void)RemoveTree(r.trash);
  r.root_mount.reset();
  if (!gone) r.ids.Abandon();
  r.ids = {};
  MutexLock lock(mu_);
  --tearing_down_;
  teardown_cv_.NotifyAll();
}

void SandboxManager::FinishTeardowns() {
  teardown_.Drain();
  if (network_) network_->WaitForDestroyedSlots();
}

size_t SandboxManager::tearing_down() const {
  MutexLock lock(mu_);
  return tearing_down_;
}

Status SandboxManager::UpdateNetwork(const std::string& id_or_name,
                                     const net::NetworkSettings& settings) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  SandboxInfo& info = sb->info;
  if (settings.enabled != info.network.enabled && info.state != SandboxState::kStopped)
    return FailedPrecondition("sandbox " + info.id + " is " + SandboxStateName(info.state) +
                              "; network.enabled can change only while it is stopped");
  if (sb->slot) PDK_TRY(network_->Apply(*sb->slot, settings.policy));
  net::NetworkSettings before = info.network;
  info.network = settings;
  Status s = PersistState(*sb, {"network", "done", settings.ToJson(false).dump()});
  if (!s.ok()) {  // the record is the truth: put the kernel back to it
    info.network = before;
    if (sb->slot) (void)network_->Apply(*sb->slot, before.policy);
  }
  return s;
}

Result<SandboxInfo> SandboxManager::Get(const std::string& id_or_name) const {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  return sb->Snapshot();
}

Result<SandboxEndpoint> SandboxManager::Endpoint(const std::string& id_or_name) const {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  sb->proxied_ms.store(WallClockMillis(), std::memory_order_relaxed);  // a connection reaches it: activity
  MutexLock lock(sb->published_mu);
  return sb->endpoint;
}

std::vector<SandboxInfo> SandboxManager::List() const {
  std::vector<SandboxInfo> out;
  for (const auto& sb : All())
    if (sb->ready) out.push_back(sb->Published());
  return out;
}

Status SandboxManager::SetTimeout(const std::string& id_or_name, int64_t timeout_s,
                                  const TimeoutAction* action) {
  if (timeout_s < 0) return InvalidArgument("timeout must not be negative");
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  if (sb->info.state == SandboxState::kStopped)
    return FailedPrecondition("sandbox " + sb->info.id + " is stopped; a timeout applies to a "
                              "running or paused sandbox");
  sb->info.timeout_at_ms = timeout_s > 0 ? WallClockMillis() + timeout_s * 1000 : 0;
  if (action) sb->info.on_timeout = *action;
  return PersistState(*sb);
}

Result<kernel::CgroupStats> SandboxManager::Stats(const std::string& id_or_name) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  if (!sb->cgroup) return kernel::CgroupStats{};
  return sb->cgroup->Stats();
}

Result<agent::AgentClient> SandboxManager::Connect(const std::string& id_or_name) {
  std::shared_ptr<Sandbox> sb;
  std::string socket;
  pid_t pid = 0;
  uint64_t start_time = 0;
  {
    PDK_ASSIGN_OR_RETURN(sb, Find(id_or_name));
    MutexLock lock(sb->mu);
    PDK_TRY(StillThere(*sb, id_or_name));
    if (sb->info.state != SandboxState::kRunning)
      return FailedPrecondition("sandbox " + sb->info.id + " is " +
                                SandboxStateName(sb->info.state) + "; it must be running");
    socket = sb->info.agent_socket;
    pid = sb->info.init_pid;
    start_time = sb->info.init_start_time;
    sb->info.last_active_ms = WallClockMillis();  // in memory; persisted with the next transition
    MutexLock published(sb->published_mu);
    sb->published.last_active_ms = sb->info.last_active_ms;
  }
  PDK_ASSIGN_OR_RETURN(agent::AgentClient client, agent::AgentClient::Connect(socket));
  std::string id = sb->id;
  client.Watch(
      [this, id, pid, start_time]() -> Status {
        if (shutting_down_) return Unavailable("paddockd is shutting down");
        auto stat = kernel::ReadProcessStat(pid);
        if (!stat.ok() || stat->start_time != start_time || stat->state == 'Z' || stat->state == 'X')
          return Unavailable("sandbox " + id + "'s init has exited");
        if (stat->state == 'T' || stat->state == 't')
          return Unavailable("sandbox " + id + "'s init is stopped (by a signal or a debugger) and "
                             "cannot answer until it is continued");
        return Status::Ok();
      },
      [this, sb = std::move(sb), start_time](const Status& seen) {
        if (!shutting_down_) sb->ReportHealth(start_time, seen);
      });
  return client;
}

Status SandboxManager::ApplyExecDefaults(const std::string& id_or_name, agent::ExecOptions& opts) const {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  ExecDefaultsLocked(*sb, opts);
  return Status::Ok();
}

Result<std::vector<std::string>> SandboxManager::ImageCommand(const std::string& id_or_name,
                                                              const std::vector<std::string>& given) const {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  std::vector<std::string> argv = sb->image_config ? image::CommandFor(*sb->image_config, given) : given;
  if (argv.empty())
    return FailedPrecondition("sandbox " + sb->info.id + "'s template " + sb->info.template_name +
                              " has no Entrypoint or Cmd; give a command");
  return argv;
}

Result<agent::ExecResult> SandboxManager::Exec(const std::string& id_or_name,
                                               agent::ExecOptions opts) {
  PDK_TRY(ApplyExecDefaults(id_or_name, opts));
  PDK_ASSIGN_OR_RETURN(agent::AgentClient client, Connect(id_or_name));
  return client.Exec(opts);
}

}  // namespace paddock
