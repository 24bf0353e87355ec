// SandboxManager: the lifecycle of sandboxes on this host.
//
//   Create -> running <-> paused (Pause/Resume, cgroup freezer)
//   running|paused -> stopped (Stop: SIGTERM, grace, SIGKILL; the writable
//   layer is kept) -> running (Start: a new init over the same filesystem)
//   any -> gone (Delete)
//
// An invalid transition returns kFailedPrecondition and changes nothing.
// Thread-safe: one lock per sandbox for its transitions; the manager's lock
// only for the narrow steps that reserve names and ids. A sandbox's lock is
// taken before the manager's, never after. The annotations (base/mutex.h)
// say which lock guards what; clang checks them.
//
// Durable: every transition is written to the Store first as an intent (a
// transitional state and a journal entry), then done, then its result is
// written. Open() reconciles each record with what the kernel shows and
// adopts, finishes, rolls back or marks it; it sweeps what has no record.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/client.h"
#include "base/fd.h"
#include "base/host_lock.h"
#include "base/mutex.h"
#include "base/status.h"
#include "base/warm_pool.h"
#include "base/work_queue.h"
#include "image/image_store.h"
#include "kernel/cgroup.h"
#include "kernel/contain.h"
#include "kernel/process.h"
#include "kernel/user.h"
#include "net/forwarder.h"
#include "net/network.h"
#include "net/policy.h"
#include "sandbox/cdi.h"
#include "sandbox/disk_pool.h"
#include "sandbox/id_ranges.h"
#include "sandbox/run_config.h"
#include "sandbox/template.h"
#include "store/store.h"

namespace paddock {

enum class SandboxState { kRunning, kPaused, kStopped };
const char* SandboxStateName(SandboxState s);
// What a record says: a SandboxState or a transition under way (manager_parts.h).
enum class RecordState;

struct ManagerOptions {
  std::string state_dir = "/var/lib/paddock";
  std::shared_ptr<Store> store;        // null: SQLite at <state_dir>/paddock.db
  std::string init_path;               // paddock-init; empty: the one built beside the library
  std::string busybox_path = "/bin/busybox";
  std::string cgroup_parent = "paddock";
  // One manager per host (see HostLock): this file's lock is held while it
  // lives; a start waits this long for another holder to stop.
  std::string host_lock = "/run/paddock.lock";
  int host_lock_wait_ms = 10000;
  uint32_t id_base = 1u << 30;         // host uid/gid of the first sandbox's root
  uint32_t id_slots = 16384;           // sandboxes with distinct id ranges
  int default_stop_grace_ms = 10000;
  // How long a sandbox's set-up may take to answer at each step before it
  // is killed and the create or start fails (kernel::ContainSpec).
  int set_up_timeout_ms = 30000;
  size_t max_sandboxes = 1000;         // beyond this, Create says the host is full
  // What a sandbox gets for each limit its spec leaves at 0, so that one
  // fork bomb or memory hog cannot take the host; a 0 here: no limit.
  kernel::CgroupLimits default_limits = {int64_t{1} << 30, 2000, 4096};
  // Warm shells: sandboxes-to-be with namespaces, cgroup and root filesystem
  // ready, kept per template so that Create only names and launches one.
  size_t warm_shells = 0;              // per template; 0: none
  // Each create that finds no warm shell of its template asks for one more,
  // up to this many (below warm_shells: no growth); a minute with no create
  // brings the pool back to warm_shells.
  size_t warm_shells_max = 0;
  std::vector<std::string> warm_templates = {"host", "busybox"};
  // Images get warm shells too: the `warm_images` last created from.
  size_t warm_images = 2;
  // Networking: a bridge, an address and a slot per sandbox. Unset: every
  // sandbox has loopback only. With it, warm shells come with their slot.
  std::optional<net::NetworkOptions> network;
  // Images: pulled into <state_dir>/images from these registries.
  image::RegistryOptions registry;
  // Disk limits: >0: sandboxes' folders on a disk pool of this size
  // (<state_dir>/disk.img, btrfs with quota groups; see DiskPool).
  int64_t disk_pool_bytes = 0;
  int64_t default_disk_bytes = 0;      // what a sandbox gets when its spec leaves it at 0; 0: none
  int64_t default_idle_timeout_s = 0;  // see SandboxSpec::idle_timeout_s
  int64_t default_archive_after_s = 0; // see SandboxSpec::archive_after_s; 0: never
  // Host folders sandboxes may mount read-only, by name (datasets, model
  // weights, a driver's folder): the operator's allow list.
  std::map<std::string, std::string> host_dirs;
  // Devices: the folders of CDI specs, and whether a device may be given to
  // several sandboxes at once (else one holds it until it is deleted).
  std::vector<std::string> cdi_dirs = {"/etc/cdi", "/var/run/cdi"};
  bool shared_devices = false;
  // Where to look for an NVIDIA driver without a CDI spec (nvidia::Discover).
  std::string gpu_root = "/";
};

enum class TimeoutAction { kKill, kPause, kStop };
const char* TimeoutActionName(TimeoutAction a);
Result<TimeoutAction> ParseTimeoutAction(const std::string& s);

// A volume mounted into a sandbox.
struct VolumeMount {
  std::string name;        // the volume (or with `host`, the allowed host folder's name)
  std::string path;        // where it shows inside (absolute; made if missing)
  bool read_only = false;
  bool host = false;       // a host folder from ManagerOptions::host_dirs (always read-only)
};

struct SandboxSpec {
  std::string name;                    // empty: the id
  std::string template_name = "host";  // host, busybox, or an image reference (pulled if missing)
  std::string snapshot;                // a snapshot's id or name: its files, over its base (template_name unused)
  bool run_start = true;               // false: a built template's start command is not run (its builds')
  kernel::CgroupLimits limits;
  int64_t disk_bytes = 0;              // its writable layer's limit; 0: the default (needs the disk pool)
  std::vector<VolumeMount> volumes;    // at most kMaxVolumes, host folders included
  // CDI devices (VENDOR/CLASS=NAME, or =all): their nodes, mounts and env.
  std::vector<std::string> devices;
  // GPUs: "all"; N (a count: the first N free, picked as the sandbox's
  // devices are claimed); "device=I,J" or "I,J" (indices); or CDI names,
  // comma-separated. Added to `devices`.
  std::string gpus;
  std::map<std::string, std::string> env;       // default env of every process
  std::map<std::string, std::string> metadata;  // labels, for listing and filtering
  int64_t timeout_s = 0;               // 0: none
  TimeoutAction on_timeout = TimeoutAction::kKill;
  int64_t auto_delete_after_s = 0;     // delete this long after it stops; 0: never
  // Stopped (or paused) after this long with no exec, file operation or
  // proxied connection; 0: paddockd's --idle-timeout (0: never).
  int64_t idle_timeout_s = 0;
  TimeoutAction on_idle = TimeoutAction::kStop;  // stop or pause
  // Its writable layer is archived (compressed, checksummed, the folder
  // removed) once it has been stopped this long, and restored at its next
  // start; 0: paddockd's --archive-after (0: never); -1: never.
  int64_t archive_after_s = 0;
  // An archive kept by a delete (DeleteKeepingData): the sandbox starts
  // with its files, over the base they were made over (template_name and
  // snapshot are not used).
  std::string restore;
  net::NetworkSettings network;
};

struct SandboxInfo {
  std::string id;
  std::string name;
  std::string template_name;           // host, busybox, or the image's normalised reference
  std::string image_id;                // the image it was made from (its config digest); empty for built-ins
  std::string snapshot_id;             // the snapshot it was created from; empty if none
  SandboxState state = SandboxState::kStopped;
  kernel::CgroupLimits limits;
  int64_t disk_bytes = 0;              // the disk limit of its files; 0: none
  std::vector<VolumeMount> volumes;
  std::vector<std::string> devices;    // the CDI devices it holds, each by its full name
  pid_t init_pid = 0;                  // host pid of paddock-init; 0 when stopped
  uint64_t init_start_time = 0;
  kernel::user::IdRange ids;
  std::string dir;                     // the sandbox's state folder
  std::string agent_socket;
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> metadata;
  int64_t timeout_at_ms = 0;           // wall clock; 0: none
  TimeoutAction on_timeout = TimeoutAction::kKill;
  int64_t auto_delete_after_s = 0;
  int64_t idle_timeout_s = 0;
  TimeoutAction on_idle = TimeoutAction::kStop;
  int64_t archive_after_s = 0;         // as given (0: the default, -1: never)
  int64_t archived_at_ms = 0;          // its writable layer is an archive since then; 0: a folder
  std::string archive_sha256;
  int64_t archive_size = 0;            // the archive's bytes while archived
  int64_t restore_ms = 0;              // how long its last restore took
  int64_t created_at_ms = 0, started_at_ms = 0, stopped_at_ms = 0, last_active_ms = 0;
  std::string error;                   // why it stopped without being asked to
  // Why its init does not answer host calls (stopped, gone, or past a
  // deadline); empty while it answers. Known from calls, not stored.
  std::string unhealthy;
  std::string access_token;            // a secret of the sandbox's own API (E2B envd routes)
  net::NetworkSettings network;
  std::string address;                 // its IPv4 while it holds a network slot (running, paused)
  std::vector<net::PortForward> forwards;  // TCP from host ports; kept over stop and start
};

// Where a sandbox's ports are, as of its last recorded transition.
struct SandboxEndpoint {
  std::string id;
  SandboxState state = SandboxState::kStopped;
  std::string address;        // empty without a network slot
  std::string traffic_token;  // guards its public ports when set
  std::string access_token;   // guards its E2B envd routes
};

// What Open() found and did, for logs and tests.
struct RecoveryReport {
  int adopted = 0;        // running or paused sandboxes taken over as they were
  int finished = 0;       // interrupted stops and deletes completed
  int rolled_back = 0;    // interrupted creates and starts undone
  int marked_stopped = 0; // their init had died: stopped, with the reason in `error`
  int swept_dirs = 0;     // sandbox folders with no record
  int swept_cgroups = 0;  // cgroups with no record (and whatever ran in them)
  int lost_forwards = 0;  // sandboxes with a forward that could not listen again (journal says why)
};

class SandboxManager {
 public:
  // Prepares the state folder (sandboxes, templates, staging, trash), empties
  // trash left by a crash, detects the cgroup version, opens the store and
  // recovers every recorded sandbox (see RecoveryReport).
  static Result<std::unique_ptr<SandboxManager>> Open(ManagerOptions opts);
  const RecoveryReport& recovery() const { return recovery_; }
  ~SandboxManager();

  // Creates and starts a sandbox. Returns once paddock-init is running; the
  // agent socket accepts connections from then on.
  Result<SandboxInfo> Create(const SandboxSpec& spec);
  // Creates a sandbox from `source`'s template with a copy of its writable
  // layer (a running source is frozen for the copy); `spec` names the new
  // one, its template is ignored. Processes and memory are not copied: the
  // fork boots fresh over the copied files.
  Result<SandboxInfo> Fork(const std::string& source, SandboxSpec spec);
  Status Pause(const std::string& id_or_name);
  Status Resume(const std::string& id_or_name);
  // SIGTERM to every process, SIGKILL after `grace_ms` (-1: the default).
  Status Stop(const std::string& id_or_name, int grace_ms = -1);
  // New limits for a start (what is left unset stays; 0: the default).
  struct LimitsChange {
    std::optional<int64_t> memory_bytes, cpu_millicores, pids, disk_bytes;
    bool empty() const { return !memory_bytes && !cpu_millicores && !pids && !disk_bytes; }
  };
  Status Start(const std::string& id_or_name, const LimitsChange& change = {});
  // Stop (unless stopped) then Start, as one transition: no other request
  // acts on the sandbox in between.
  Status Restart(const std::string& id_or_name, int grace_ms = -1, const LimitsChange& change = {});
  // Brings the sandbox to running, as one transition: resumes a paused one
  // (with keep_memory false, boots it afresh instead), starts a stopped
  // one. Returns the state it was in.
  Result<SandboxState> EnsureRunning(const std::string& id_or_name, bool keep_memory);
  // Kills its processes and forgets it; its cgroup, network slot and files
  // are removed in the background (FinishTeardowns waits for that).
  Status Delete(const std::string& id_or_name);
  // Returns once every deleted sandbox's teardown has finished, and the
  // kernel has removed the network slots it destroyed.
  void FinishTeardowns();
  // Deleted sandboxes whose teardown has not finished; they count against
  // max_sandboxes.
  size_t tearing_down() const EXCLUDES(mu_);

  Result<SandboxInfo> Get(const std::string& id_or_name) const;
  // Never waits for a transition in progress (Get does): the port proxy and
  // forwards ask once per connection, on I/O threads.
  Result<SandboxEndpoint> Endpoint(const std::string& id_or_name) const;
  std::vector<SandboxInfo> List() const;

  // Sets (or with 0 clears) the timeout, `timeout_s` from now; the sandbox
  // must be running or paused. The action is kept unless one is given.
  Status SetTimeout(const std::string& id_or_name, int64_t timeout_s,
                    const TimeoutAction* action = nullptr);
  // Fires due timeouts and deletes stopped sandboxes past their auto-delete
  // age, as of `now_ms`, on the reaper's threads (at most 8 at once).
  // Returns how many actions it started; FinishReaping waits for them.
  int Reap(int64_t now_ms);
  void FinishReaping();
  Result<kernel::CgroupStats> Stats(const std::string& id_or_name);

  // A new agent connection to a running sandbox; marks it active. While it
  // waits, the client checks that init can still answer: one stopped (by a
  // signal or a debugger) or gone fails the wait within a second, and the
  // sandbox shows as unhealthy until its init answers again.
  Result<agent::AgentClient> Connect(const std::string& id_or_name);
  // From now on, agent waits end at their next check ("paddockd is shutting
  // down"), so that no request in progress holds the daemon's shutdown.
  void BeginShutdown() { shutting_down_ = true; }
  // Fills in what the caller left out of `opts`: env from the sandbox's
  // default env over its image's Env (the caller's values win), and the
  // image's User and WorkingDir ("/" when it has none, as in Docker).
  Status ApplyExecDefaults(const std::string& id_or_name, agent::ExecOptions& opts) const;
  // What `paddock run` of the sandbox's image runs: its Entrypoint, then
  // `given` or else its Cmd (Docker's rules). kFailedPrecondition if that
  // is empty (a built-in template, or an image with neither).
  Result<std::vector<std::string>> ImageCommand(const std::string& id_or_name,
                                                const std::vector<std::string>& given) const;
  // Runs a command to completion in a running sandbox, with ApplyExecDefaults.
  Result<agent::ExecResult> Exec(const std::string& id_or_name, agent::ExecOptions opts);

  // Changes a sandbox's network settings; a running or paused sandbox's
  // egress and host access change at once. Whether it has a network at all
  // can only change while it is stopped.
  Status UpdateNetwork(const std::string& id_or_name, const net::NetworkSettings& settings);

  // Forwards TCP from a host port (forward.host_port, or any free one if 0)
  // to the sandbox's port, from now until it is removed or the sandbox is
  // deleted; kept in its record, so a restart of paddockd listens again.
  // Connections are refused while the sandbox is not running.
  static constexpr size_t kMaxForwards = 32;
  Result<net::PortForward> AddForward(const std::string& id_or_name, net::PortForward forward);
  Status RemoveForward(const std::string& id_or_name, uint16_t host_port);

  // The host's images. RemoveImage and PruneImages refuse or skip images
  // that a sandbox was made from.
  image::ImageStore& images() const { return *images_; }
  Status RemoveImage(const std::string& ref_or_id);
  Result<image::PruneReport> PruneImages();

  // Snapshots: a sandbox's files (its writable layer) kept as a read-only
  // layer that outlives the sandbox, usable wherever a template is (see
  // SandboxSpec::snapshot). A running sandbox is frozen while its layer is
  // copied. Memory and processes are not captured: this host cannot
  // checkpoint them. `name` may be empty; it is unique among snapshots.
  static constexpr size_t kMaxSnapshotDepth = 64;  // snapshots stacked over one base
  // `build_key` marks it as a template build step's result (FindBuildStep).
  Result<SnapshotRecord> CreateSnapshot(const std::string& sandbox, const std::string& name,
                                        const std::string& build_key = "") EXCLUDES(snap_mu_);
  // A snapshot with no files of its own over `base`'s layers, carrying
  // `config` for the sandboxes made from it.
  Result<SnapshotRecord> DeriveSnapshot(const Template& base, const RunConfig& config,
                                        const std::string& build_key) EXCLUDES(snap_mu_);
  // The snapshot a template build step with this key made, if one is kept.
  std::optional<SnapshotRecord> FindBuildStep(const std::string& build_key) const EXCLUDES(snap_mu_);
  std::vector<SnapshotRecord> ListSnapshots() const EXCLUDES(snap_mu_);
  Result<SnapshotRecord> GetSnapshot(const std::string& id_or_name) const EXCLUDES(snap_mu_);
  // kFailedPrecondition while a sandbox or another snapshot stacks it, or a
  // template names it.
  Status RemoveSnapshot(const std::string& id_or_name) EXCLUDES(snap_mu_, mu_);
  // Returns the sandbox's files to those of a snapshot taken of it (or of a
  // sandbox over the same layers). A running or paused sandbox is stopped
  // and started again over them (its processes end); a stopped one stays
  // stopped.
  Status Rollback(const std::string& sandbox, const std::string& snapshot) EXCLUDES(snap_mu_);

  // Volumes: named folders under the state folder (on the disk pool, each
  // with its own limit, when there is one) that outlive sandboxes, mounted
  // into them at create, read-write or read-only, by several at once. Files
  // in them keep the ids they have inside (root is 0): each sandbox sees
  // them through an idmapped mount of its own range.
  static constexpr size_t kMaxVolumes = 8;  // per sandbox
  Result<VolumeRecord> CreateVolume(const std::string& name, int64_t disk_bytes) EXCLUDES(vol_mu_);
  std::vector<VolumeRecord> ListVolumes() const EXCLUDES(vol_mu_);
  Result<VolumeRecord> GetVolume(const std::string& name) const EXCLUDES(vol_mu_);
  // What its files take (on the disk pool only).
  Result<kernel::btrfs::Usage> VolumeUsage(const std::string& name) const EXCLUDES(vol_mu_);
  // kFailedPrecondition while a sandbox (in any state) mounts it.
  Status RemoveVolume(const std::string& name) EXCLUDES(vol_mu_, mu_);
  std::string VolumeDir(const std::string& name) const { return volumes_dir_ + "/" + name; }
  // The volume's folder, open (O_PATH) for volume_files' calls.
  Result<UniqueFd> OpenVolume(const std::string& name) const EXCLUDES(vol_mu_);

  // Data kept on delete: the sandbox's writable layer (or the part under
  // `path` inside it) goes to an archive, then the sandbox is deleted. If
  // the archive cannot be made, nothing is deleted and the error says why.
  // A running sandbox is frozen while its files are read.
  Result<ArchiveRecord> DeleteKeepingData(const std::string& id_or_name, const std::string& path)
      EXCLUDES(mu_);
  std::vector<ArchiveRecord> ListArchives() const;
  Result<ArchiveRecord> GetArchive(const std::string& id) const;
  Status RemoveArchive(const std::string& id);
  std::string ArchiveFile(const std::string& id) const { return archives_dir_ + "/" + id + ".tar.zst"; }

  // Devices: the host's CDI specs as they are now (re-read each time, so
  // specs installed later count), and who holds each device.
  static constexpr size_t kMaxDevices = 16;  // per sandbox
  cdi::Registry Devices() const;
  // GPUs are the devices of this CDI kind: "nvidia.com/gpu=<index>".
  static constexpr std::string_view kGpuPrefix = "nvidia.com/gpu=";
  static bool IsGpu(std::string_view device) { return device.starts_with(kGpuPrefix); }
  std::map<std::string, std::string> DeviceHolders() const EXCLUDES(mu_);
  // Archives a stopped sandbox's writable layer now (the reaper does so
  // after archive_after_s); its next start restores it.
  Status ArchiveLayer(const std::string& id_or_name);

  // Templates built from steps (see TemplateBuilder): names of snapshots.
  // What a create from `name` starts from: a built template, else a
  // snapshot of that name, else a built-in or an image (pulled if missing).
  Result<Template> ResolveTemplate(const std::string& name) EXCLUDES(snap_mu_);
  // Whether ResolveTemplate(name) finds it on this host, without pulling.
  bool HasTemplate(const std::string& name) const EXCLUDES(snap_mu_);
  // Names (or renames) snapshot `snapshot_id` as the template `name`.
  Status PutTemplate(const std::string& name, const std::string& snapshot_id, const std::string& build_id)
      EXCLUDES(snap_mu_);
  std::vector<TemplateRecord> ListTemplates() const EXCLUDES(snap_mu_);
  Result<TemplateRecord> GetTemplate(const std::string& name) const EXCLUDES(snap_mu_);
  // Forgets the name; its snapshot goes too unless something else uses it.
  Status RemoveTemplate(const std::string& name) EXCLUDES(snap_mu_, mu_);
  static bool ValidTemplateName(const std::string& name);
  // Removes the build steps' snapshots (the build cache) that no template,
  // sandbox or other snapshot uses. Returns how many, and their bytes.
  std::pair<int, int64_t> PruneBuildCache() EXCLUDES(snap_mu_, mu_);

  // Warm shells ready now, over all templates.
  size_t warm_shells_ready() const { return warm_.ready(); }
  // The warm shells kept ready, over all templates (grown by misses).
  size_t warm_shells_target() const { return warm_.target(); }
  // Creates that could start from a warm shell, by whether one was ready:
  // misses say the pool is too small for the rate of creates.
  uint64_t warm_shells_taken() const { return warm_taken_.load(); }
  uint64_t warm_shells_missed() const { return warm_missed_.load(); }
  // The host side of networking; null when it is off.
  net::Network* network() const { return network_.get(); }
  const net::Forwarder* forwarder() const { return forwarder_.get(); }

  // What its files take on disk against its limit; kUnimplemented without
  // the disk pool (nothing is counted then).
  Result<kernel::btrfs::Usage> DiskUsage(const std::string& id_or_name) const;
  bool disk_limits_supported() const { return disk_ != nullptr; }
  // The disk pool's size and free bytes; kUnimplemented without it.
  Result<std::pair<int64_t, int64_t>> DiskPoolSpace() const;

  const char* cgroup_version() const { return cgroups_->version(); }
  // How sandboxes' device access is limited here (empty: it cannot be, and
  // no device is given out; the error says why).
  std::string device_filter() const { return cgroups_->device_filter(); }
  std::string device_filter_error() const { return cgroups_->device_filter_error(); }
  bool cgroup_limits_supported() const { return cgroups_->SupportsLimits(); }

 private:
  struct Sandbox {
    Mutex mu;  // serializes this sandbox's transitions
    // False while Create is still building it and once it is deleted;
    // read without mu (Find).
    std::atomic<bool> ready = false;
    // Set before it is listed and never changed: read without mu.
    std::string id;
    std::string image_id;  // the image it was made from; empty for built-ins
    std::string snapshot_id;  // the snapshot it was created from; empty if none
    std::shared_ptr<const image::ImageConfig> image_config;  // its image's defaults; null for built-ins
    std::shared_ptr<const RunConfig> run;  // its template's start command; null if none
    std::vector<VolumeMount> volumes;      // set before it is listed, never changed
    // When a proxied connection last reached it (Endpoint); read without mu.
    mutable std::atomic<int64_t> proxied_ms = 0;

    SandboxInfo info GUARDED_BY(mu);
    IdRanges::Lease ids GUARDED_BY(mu);                      // info.ids's range
    std::unique_ptr<kernel::Cgroup> cgroup GUARDED_BY(mu);   // present while running or paused
    kernel::ProcessHandle init GUARDED_BY(mu);
    UniqueFd root_mount GUARDED_BY(mu);                      // see kernel::Contained; init's root once adopted
    std::unique_ptr<net::Slot> slot GUARDED_BY(mu);          // its network, while running or paused

    // What Persist publishes at the end of every transition, for readers
    // that must not wait for one in progress (List, /metrics, the reaper,
    // the port proxy): a stop's grace period or a fork's copy holds mu long.
    mutable Mutex published_mu;
    SandboxEndpoint endpoint GUARDED_BY(published_mu);
    SandboxInfo published GUARDED_BY(published_mu);
    // What agent clients last saw of an init (SandboxInfo::unhealthy): the
    // one that started at health_init. Clients report from any thread.
    mutable Mutex health_mu;
    uint64_t health_init GUARDED_BY(health_mu) = 0;
    std::string unhealthy GUARDED_BY(health_mu);

    void ReportHealth(uint64_t init_start_time, const Status& seen) EXCLUDES(health_mu);
    // info, with what is known of its init's health.
    SandboxInfo Snapshot() const REQUIRES(mu) { return WithHealth(info); }
    // As of its last transition; never waits for one.
    SandboxInfo Published() const EXCLUDES(published_mu);
    SandboxInfo WithHealth(SandboxInfo out) const EXCLUDES(health_mu);
  };
  struct WarmShell;
  SandboxManager(HostLock host_lock, ManagerOptions opts, std::unique_ptr<kernel::CgroupDriver> cgroups,
                 UniqueFd init_exe);
  Result<std::shared_ptr<Sandbox>> Find(const std::string& id_or_name) const EXCLUDES(mu_);
  // Every listed sandbox.
  std::vector<std::shared_ptr<Sandbox>> All() const EXCLUDES(mu_);
  // Called with the lock of a sandbox that Find returned: NotFound if a
  // delete finished while the caller waited for it. Every caller would
  // otherwise act on a sandbox that is gone.
  static Status StillThere(const Sandbox& sb, const std::string& id_or_name) REQUIRES(sb.mu);
  Status ReopenForwards(Sandbox& sb) REQUIRES(sb.mu);
  // Starts init over the sandbox's filesystem in a new shell and cgroup.
  // `devices`: what its devices ask, if the caller read it already.
  Status Boot(Sandbox& sb, const kernel::LaunchSpec& launch, const cdi::Edits* devices = nullptr)
      REQUIRES(sb.mu);
  // Gives a warm shell the sandbox's id, folder and limits, and launches it.
  Status BootWarm(Sandbox& sb, WarmShell& warm, const kernel::LaunchSpec& launch) REQUIRES(sb.mu);
  Status Launch(Sandbox& sb, std::unique_ptr<kernel::Cgroup> cgroup, kernel::Shell& shell,
                const kernel::LaunchSpec& launch) REQUIRES(sb.mu);
  // A shell over the sandbox folder `dir`, listening on dir/agent.sock.
  Result<std::unique_ptr<kernel::Shell>> PrepareShell(const Template& tmpl, const std::string& dir,
                                                      const kernel::user::IdRange& ids,
                                                      kernel::Cgroup* cgroup, const net::Slot* slot,
                                                      const std::vector<VolumeMount>& volumes = {},
                                                      const cdi::Edits& devices = {});
  // A `gpus` request (see SandboxSpec): the devices it names, and how many
  // more to pick (a count).
  struct GpuAsk {
    std::vector<std::string> names;
    size_t count = 0;
  };
  static Result<GpuAsk> ParseGpus(const std::string& gpus);
  // The full names of the devices `requested` names, checked: each known,
  // each asking only what Paddock can do, its host nodes there.
  static Result<std::vector<std::string>> ResolveDevices(const cdi::Registry& registry,
                                                         const std::vector<std::string>& requested);
  // Adds `count` GPUs no sandbox holds to `devices` (lowest index first);
  // kResourceExhausted when fewer are free.
  Status PickGpus(const cdi::Registry& registry, size_t count, std::vector<std::string>& devices) const
      REQUIRES(mu_);
  // What the devices named in full ask of a boot; kFailedPrecondition for
  // one whose spec is gone.
  static Result<cdi::Edits> DeviceEdits(const cdi::Registry& registry, const std::vector<std::string>& devices);
  // The kernel's device filter for what `edits` binds in.
  static Result<std::vector<kernel::DeviceAccess>> DeviceAccessFor(const cdi::Edits& edits);
  // Its devices' hooks (cdi.h) that run as init starts: links, modes, the
  // ld.so.conf.d file.
  static void AddDeviceHooks(const cdi::Edits& edits, kernel::LaunchSpec& launch);
  // The rest, once init runs: its ldconfig over the device's library folders.
  Status RefreshLdCache(Sandbox& sb, const cdi::Edits& edits) REQUIRES(sb.mu);
  // Claims the devices for `id` (with mu_ held); kAlreadyExists naming the
  // holder of one taken (unless devices are shared).
  Status ClaimDevices(const std::string& id, const std::vector<std::string>& devices) REQUIRES(mu_);
  void ReleaseDevices(const std::string& id, const std::vector<std::string>& devices) REQUIRES(mu_);
  // Start-up: loads the volume records.
  Status LoadVolumes() EXCLUDES(vol_mu_);
  // Start-up, after Recover: removes archives no record names, and the
  // partial files of archives cut short.
  void SweepArchives();
  // Where a stopped sandbox's archived writable layer is (outside its own
  // folder, so outside its disk limit).
  std::string ArchivedLayer(const std::string& id) const { return archived_dir_ + "/" + id + ".tar.zst"; }
  Status ArchiveLayerLocked(Sandbox& sb) REQUIRES(sb.mu);
  // Puts an archived sandbox's writable layer back in place (a no-op for
  // one that is not archived): verified by its checksum, unpacked beside
  // the folder's place and renamed into it, so a crash or a corrupt archive
  // never leaves half a layer.
  Status RestoreLayerLocked(Sandbox& sb) REQUIRES(sb.mu);
  // Start-up: settles a stopped sandbox's archive cut short by a crash.
  // Returns what it did, for the journal ("" if nothing).
  std::string RecoverArchive(SandboxInfo& info);
  // The base an archive's files were made over.
  Result<Template> ArchiveTemplate(const ArchiveRecord& rec);
  // The warm pool's make hook: a shell for a WarmKey.
  Result<std::unique_ptr<WarmShell>> MakeWarmShell(const std::string& key) EXCLUDES(warm_mu_);
  // Warm shells are kept by template name, an image's by its id (a tag
  // may move to another image), a snapshot's by "snapshot:" and its id.
  static std::string WarmKey(const Template& tmpl) {
    if (!tmpl.snapshot_id.empty()) return kSnapshotKey + tmpl.snapshot_id;
    return tmpl.image_id.empty() ? tmpl.name : tmpl.image_id;
  }
  static constexpr const char* kSnapshotKey = "snapshot:";
  // Puts an image's or a snapshot's WarmKey first among those kept warm,
  // evicting the oldest.
  void KeepWarm(const std::string& key) EXCLUDES(warm_mu_);
  // Stops keeping images and snapshots warm (all if `key` is empty) and
  // discards their shells.
  void DropWarm(const std::string& key) EXCLUDES(warm_mu_);
  void DiscardWarmShell(std::unique_ptr<WarmShell> warm);
  // Ends every process, removes the cgroup, gives back the network slot.
  Status Halt(Sandbox& sb, int grace_ms) REQUIRES(sb.mu);
  Status Thaw(Sandbox& sb) REQUIRES(sb.mu);
  // Thaws, sends SIGKILL to init and unlinks the agent socket; does not wait.
  Status Kill(Sandbox& sb) REQUIRES(sb.mu);
  // Takes a network slot for sb if it should have one (before Boot).
  Status TakeSlot(Sandbox& sb) REQUIRES(sb.mu);
  // Applies sb's policy to its slot (after boot) and records its address.
  Status ApplyNetwork(Sandbox& sb) REQUIRES(sb.mu);
  void ReleaseSlot(Sandbox& sb) REQUIRES(sb.mu);
  // Writes sb's record with `state` and, in the same transaction, the
  // journal entry `note`; then publishes it (Sandbox::published).
  Status Persist(Sandbox& sb, RecordState state, const JournalNote& note = {}) REQUIRES(sb.mu);
  // Persist with the sandbox's own state.
  Status PersistState(Sandbox& sb, const JournalNote& note = {}) REQUIRES(sb.mu);
  Status Recover() EXCLUDES(mu_);
  Status RecoverOne(const SandboxRecord& rec) EXCLUDES(mu_);
  Status DeleteLocked(Sandbox& sb) REQUIRES(sb.mu) EXCLUDES(mu_);
  // The transitions, each on a sandbox whose lock the caller holds.
  Status PauseLocked(Sandbox& sb) REQUIRES(sb.mu);
  Status ResumeLocked(Sandbox& sb) REQUIRES(sb.mu);
  Status StopLocked(Sandbox& sb, int grace_ms) REQUIRES(sb.mu);
  Status StartLocked(Sandbox& sb) REQUIRES(sb.mu);
  // kInvalidArgument (or kUnimplemented) naming what is wrong with `change`.
  Status CheckLimits(const LimitsChange& change) const;
  // Checks `change` and applies it to sb's limits (before a start).
  Status ChangeLimits(Sandbox& sb, const LimitsChange& change) REQUIRES(sb.mu);
  // What a deleted sandbox leaves for the teardown workers.
  struct Remains {
    kernel::ProcessHandle init;  // killed, maybe not yet reaped
    UniqueFd root_mount;         // closed last: its unmount syncs the filesystem
    std::unique_ptr<kernel::Cgroup> cgroup;
    std::unique_ptr<net::Slot> slot;
    std::string trash;           // its folder, moved to the trash
    IdRanges::Lease ids;
  };
  void TearDown(Remains& r) EXCLUDES(mu_);
  // The reaper's action on one sandbox, if it is still due.
  void ReapOne(const std::string& id, int64_t now_ms);
  // A fork copies the files of `fork_source`, a restore unpacks `archive`'s.
  Result<SandboxInfo> CreateFrom(const SandboxSpec& spec, const Template& tmpl, const std::string& fork_source,
                                 const ArchiveRecord* archive = nullptr) EXCLUDES(mu_);
  // kInvalidArgument (or kUnimplemented for limits this host cannot
  // enforce) naming what is wrong with `spec`.
  Status CheckSpec(const SandboxSpec& spec) const;
  // `limits` with the host's defaults where it leaves one at 0 (none where
  // the cgroup tree cannot enforce limits).
  kernel::CgroupLimits WithDefaults(kernel::CgroupLimits limits) const;
  // The template a sandbox boots from: its snapshot's, else its image by
  // id, else the built-in.
  Result<Template> TemplateOf(const SandboxInfo& info);
  // A snapshot's layer over its parents' and its base's.
  Result<Template> SnapshotTemplate(const std::string& id) EXCLUDES(snap_mu_);
  std::string SnapshotDir(const std::string& id) const { return snapshots_dir_ + "/" + id; }
  Result<SnapshotRecord> PublishSnapshot(SnapshotRecord rec, const std::string& staging) EXCLUDES(snap_mu_);
  Status CopyForSnapshot(Sandbox& sb, SnapshotRecord& rec, const std::string& staging) REQUIRES(sb.mu)
      EXCLUDES(snap_mu_);
  // Start-up: loads the records and removes snapshot folders none names.
  Status LoadSnapshots() EXCLUDES(snap_mu_);
  Result<SnapshotRecord> FindSnapshotLocked(const std::string& id_or_name) const REQUIRES(snap_mu_);
  // Runs the template's start command in a sandbox that just booted and
  // waits for its ready check; kDeadlineExceeded with the command's output
  // when it is not ready in time, kFailedPrecondition if it exits first.
  Status RunStartCommand(Sandbox& sb) REQUIRES(sb.mu);
  Result<bool> ReadyNow(Sandbox& sb, agent::AgentClient& client) REQUIRES(sb.mu);
  // Fills in the defaults of ApplyExecDefaults.
  static void ExecDefaultsLocked(const Sandbox& sb, agent::ExecOptions& opts) REQUIRES(sb.mu);
  // A sandbox's folder (see PrepareSandboxDir); on the disk pool, a unit
  // of its own for limits.
  Status MakeSandboxDir(const std::string& dir, uint32_t host_first);
  // Caps what the sandbox folder `dir` holds (a no-op without the pool).
  Status ApplyDiskLimit(const std::string& dir, int64_t bytes);
  // Creates the image's WorkingDir in a just-created sandbox.
  Status MakeWorkingDir(const Sandbox& sb) REQUIRES(sb.mu);
  // A sandbox or a snapshot stacks the image.
  bool ImageInUse(const std::string& image_id) const EXCLUDES(mu_, snap_mu_);
  // Copies `source_id`'s writable layer into `info`'s folder.
  Status CopyLayerOf(const std::string& source_id, const SandboxInfo& info);

  HostLock host_lock_;  // first: let go last, once everything else is
  ManagerOptions opts_;
  std::shared_ptr<Store> store_;
  RecoveryReport recovery_;
  std::unique_ptr<kernel::CgroupDriver> cgroups_;
  std::unique_ptr<net::Network> network_;
  std::unique_ptr<net::Forwarder> forwarder_;  // with network_; after it, so destroyed first
  UniqueFd init_exe_;
  std::unique_ptr<image::ImageStore> images_;
  TemplateStore templates_;
  std::unique_ptr<DiskPool> disk_;  // null: no disk limits
  std::string sandboxes_dir_, trash_dir_, sandbox_trash_dir_, snapshots_dir_, volumes_dir_, archives_dir_,
      archived_dir_;

  std::atomic<bool> shutting_down_ = false;
  std::atomic<uint64_t> warm_taken_ = 0, warm_missed_ = 0;
  IdRanges id_ranges_;

  mutable Mutex mu_;  // never held during I/O
  std::map<std::string, std::shared_ptr<Sandbox>> by_id_ GUARDED_BY(mu_);
  std::map<std::string, std::string> id_by_name_ GUARDED_BY(mu_);
  size_t tearing_down_ GUARDED_BY(mu_) = 0;  // deleted sandboxes whose teardown has not finished
  std::set<std::string> reaping_ GUARDED_BY(mu_);  // ids whose reaper action is under way
  std::map<std::string, std::string> device_holders_ GUARDED_BY(mu_);  // CDI device -> the sandbox holding it
  std::map<std::string, int64_t> archive_failed_ms_ GUARDED_BY(mu_);  // when archiving a stopped sandbox last failed
  static constexpr int kMaxArchiving = 2;  // reaper threads archiving at once (of 8)
  int archiving_ GUARDED_BY(mu_) = 0;
  CondVar teardown_cv_;  // tearing_down_ went down

  mutable Mutex snap_mu_;  // taken after a sandbox's mu, before mu_
  std::map<std::string, SnapshotRecord> snapshots_ GUARDED_BY(snap_mu_);  // by id
  std::map<std::string, TemplateRecord> built_templates_ GUARDED_BY(snap_mu_);  // by name

  mutable Mutex vol_mu_;  // taken before mu_
  std::map<std::string, VolumeRecord> volumes_ GUARDED_BY(vol_mu_);  // by name

  // Warm shells by WarmKey: opts_.warm_shells of each warm template, and of
  // each image or snapshot in warm_keys_ (whose targets change under warm_mu_).
  WarmPool<WarmShell> warm_;
  Mutex warm_mu_;
  // The images' and snapshots' WarmKeys kept warm (--warm-images of them),
  // the last used first.
  std::deque<std::string> warm_keys_ GUARDED_BY(warm_mu_);

  // Last: destroyed first, finishing every action and teardown while the
  // rest is there.
  WorkQueue teardown_{4, "pdk-teardown"};
  WorkQueue reaper_{8, "pdk-reaper"};
};

}  // namespace paddock
