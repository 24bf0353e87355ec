// Store: where every sandbox's record and the journal of its transitions
// live, so that they survive paddockd's crashes and restarts. SQLite (WAL)
// is the embedded default; PostgreSQL will sit behind the same interface.
//
// Thread-safe. Every method is one transaction: a failure changes nothing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace paddock {

// The durable part of a sandbox. `state` includes the transitional states
// ("creating", "stopping", "starting", "deleting") that mark an intent in
// flight: start-up recovery finishes or rolls back whatever it finds in one.
struct SandboxRecord {
  std::string id;
  std::string name;
  std::string template_name;
  std::string state;
  int64_t memory_bytes = 0;
  int64_t cpu_millicores = 0;
  int64_t pids = 0;
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> metadata;
  int64_t timeout_at_ms = 0;          // wall clock; 0: no timeout
  std::string on_timeout = "kill";    // kill | pause | stop
  int64_t auto_delete_after_s = 0;    // delete this long after stopping; 0: never
  int64_t created_at_ms = 0;
  int64_t started_at_ms = 0;
  int64_t stopped_at_ms = 0;
  int64_t last_active_ms = 0;
  std::string error;                  // why it stopped unexpectedly, if it did
  int64_t init_pid = 0;
  uint64_t init_start_time = 0;
  uint32_t id_base = 0;               // host uid/gid of root inside
  std::string access_token;           // guards the sandbox's own API (E2B envd routes)
  std::string network;                // its network settings, JSON (net::NetworkSettings)
  std::string address;                // IPv4 of its network slot; empty when it has none
  std::string forwards;               // TCP forwards from host ports, JSON (net::PortForward)
  std::string image_id;               // the image its root filesystem stacks; empty for built-ins
  std::string snapshot_id;            // the snapshot it was created from, stacked over its base; or empty
  int64_t disk_bytes = 0;             // its disk limit (a quota group on the disk pool); 0: none
  std::string volumes;                // the volumes it mounts, JSON [{name, path, read_only}]
  int64_t idle_timeout_s = 0;         // stopped (or paused) after this long without activity; 0: never
  std::string on_idle = "stop";       // stop | pause
  std::string devices;                // the CDI devices it holds, JSON ["vendor/class=name", ...]
  // Its writable layer goes to an archive once it has been stopped this
  // long (0: paddockd's default; -1: never), and comes back at its start.
  int64_t archive_after_s = 0;
  int64_t archived_at_ms = 0;         // 0: its layer is on disk as a folder
  std::string archive_sha256;         // of <dir>/upper.tar.zst while archived
  int64_t archive_size = 0;           // that file's bytes
  int64_t restore_ms = 0;             // how long its last restore took
};

// A deleted sandbox's files, kept (`rm --keep-data`) in
// <state>/archives/<id>.tar.zst: its writable layer, or the part of it
// under `path`, as changes over the base it was created from.
struct ArchiveRecord {
  std::string id;
  std::string sandbox_id, sandbox_name;
  std::string template_name;          // the base: a built-in's name or the image's reference
  std::string image_id;               // the base image; empty for built-ins
  std::string snapshot_id;            // the snapshot it stacked over; or empty
  std::string path = "/";             // what of its files it holds
  int64_t size = 0;                   // the file's bytes
  int64_t bytes = 0;                  // its files' data
  std::string sha256;                 // of the file, 64 hex digits
  int64_t created_at_ms = 0;
};

// A volume: a named folder that outlives sandboxes and is mounted into them.
struct VolumeRecord {
  std::string name;
  int64_t disk_bytes = 0;             // its limit on the disk pool; 0: none
  int64_t created_at_ms = 0;
  std::string token;                  // authorises its files' API without the daemon's key (E2B's volume token)
};

// A sandbox's writable layer kept as a read-only layer (its folder is
// <state>/snapshots/<id>). It stacks over its parent snapshot's layers, if
// any, then over the base (a built-in template or an image).
struct SnapshotRecord {
  std::string id;
  std::string name;                   // unique among snapshots; may be empty
  std::string source_id;              // the sandbox it was taken of (which may be gone)
  std::string template_name;          // the base: a built-in's name or the image's reference
  std::string image_id;               // the base image; empty for built-ins
  std::string parent;                 // the snapshot the source was created from; or empty
  int64_t size = 0;                   // bytes in its layer
  int64_t created_at_ms = 0;
  // What sandboxes made from it run with (env, workdir, user, start
  // command, readiness check), JSON (sandbox::RunConfig); empty: their base's.
  std::string config;
  // The key of the template build step whose result it is; empty if none.
  std::string build_key;
};

// A template: a name for the snapshot a build ended with. A rebuild moves
// the name; the snapshot it named stays while anything uses it.
struct TemplateRecord {
  std::string name;
  std::string snapshot_id;
  std::string build_id;               // the build that made it
  int64_t created_at_ms = 0;
};

// An image in the local image store. Its id is the digest of its config.
struct ImageRecord {
  std::string id;
  std::string manifest_digest;
  std::string config;                 // the image config, JSON as the registry served it
  std::string layers;                 // JSON [{digest, size, media_type, diff_id, chain_id}], bottom first
  int64_t size = 0;                   // bytes pulled (config and layer blobs)
  int64_t created_at_ms = 0;          // when it was pulled or imported
  int64_t last_used_ms = 0;           // last sandbox created from it
  std::vector<std::string> refs;      // normalised references naming it
};

struct JournalEntry {
  int64_t seq = 0;
  std::string sandbox_id;
  std::string op;       // create, pause, resume, stop, start, delete, timeout, recover
  std::string phase;    // intent, done, failed
  std::string detail;
  int64_t at_ms = 0;
};

// A journal entry written in the same transaction as a record change.
struct JournalNote {
  std::string op;       // empty: no entry
  std::string phase;
  std::string detail;
};

class Store {
 public:
  virtual ~Store() = default;
  // Adds a record; kAlreadyExists if the id or the name is taken.
  virtual Status Insert(const SandboxRecord& r, const JournalNote& note = {}) = 0;
  // Replaces the record with r.id; kNotFound if there is none.
  virtual Status Update(const SandboxRecord& r, const JournalNote& note = {}) = 0;
  virtual Status Remove(const std::string& id, const JournalNote& note = {}) = 0;
  virtual Result<SandboxRecord> Get(const std::string& id) = 0;
  virtual Result<std::vector<SandboxRecord>> List() = 0;
  // Appends to the journal and returns the entry's sequence number.
  virtual Result<int64_t> Journal(const std::string& sandbox_id, const std::string& op,
                                  const std::string& phase, const std::string& detail) = 0;
  // The journal of one sandbox (or all, if empty), oldest first: of the
  // entries still kept (see OpenSqliteStore).
  virtual Result<std::vector<JournalEntry>> ReadJournal(const std::string& sandbox_id) = 0;

  // Adds or replaces the image `r.id` (an empty r.config keeps the stored
  // one); each of r.refs now names it (a ref that named another image moves).
  virtual Status PutImage(const ImageRecord& r) = 0;
  // Every image, with its refs, oldest first.
  virtual Result<std::vector<ImageRecord>> ListImages() = 0;
  // Removes one ref; the image it named stays.
  virtual Status RemoveImageRef(const std::string& ref) = 0;
  // Removes the image and every ref naming it.
  virtual Status RemoveImage(const std::string& id) = 0;
  virtual Status TouchImage(const std::string& id, int64_t at_ms) = 0;

  // Adds a snapshot; kAlreadyExists if its id or (non-empty) name is taken.
  virtual Status PutSnapshot(const SnapshotRecord& r) = 0;
  // Every snapshot, oldest first.
  virtual Result<std::vector<SnapshotRecord>> ListSnapshots() = 0;
  // kFailedPrecondition while a template names it.
  virtual Status RemoveSnapshot(const std::string& id) = 0;

  // Adds or moves the template `r.name`; kNotFound if its snapshot is not stored.
  virtual Status PutTemplate(const TemplateRecord& r) = 0;
  // Every template, by name.
  virtual Result<std::vector<TemplateRecord>> ListTemplates() = 0;
  virtual Status RemoveTemplate(const std::string& name) = 0;

  // Adds a volume; kAlreadyExists if the name is taken.
  virtual Status PutVolume(const VolumeRecord& r) = 0;
  // Every volume, by name.
  virtual Result<std::vector<VolumeRecord>> ListVolumes() = 0;
  virtual Status RemoveVolume(const std::string& name) = 0;

  // Adds an archive; kAlreadyExists if its id is taken.
  virtual Status PutArchive(const ArchiveRecord& r) = 0;
  // Every archive, oldest first.
  virtual Result<std::vector<ArchiveRecord>> ListArchives() = 0;
  virtual Status RemoveArchive(const std::string& id) = 0;
};

// The journal entries kept: every transition writes one or two (four in a
// sandbox's create and delete), so a farm churning 100 sandboxes a second
// would add 35 million a day. Older ones go, a hundredth of this at a time.
constexpr int64_t kJournalKeep = 100000;  // about 18 MB

// Opens (creating and migrating as needed) the SQLite store at `path`,
// keeping the last `journal_keep` journal entries (and up to a hundredth
// more between trims).
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, int64_t journal_keep = kJournalKeep);

int64_t WallClockMillis();

}  // namespace paddock
