// TemplateBuilder: templates built from steps, as Dockerfiles are.
//
// A build starts from a base (a built template, a snapshot, an image or a
// built-in) and runs its steps in order. Steps that change files (run a
// command, copy files in) each run in a sandbox made from the previous
// step's result, which is then kept as a snapshot; steps that change what
// processes run with (env, workdir, user) change the config the next
// steps and the template's sandboxes get. Each file step's snapshot is
// cached under a key of its parent's key and its inputs (a copy's files
// by their hash), so a rebuild reuses the unchanged prefix. The template's
// config (and its start command and ready check) goes in a last, empty
// snapshot, which the template's name then points at. With a start
// command, the build ends by creating a sandbox from the result, which
// checks that it gets ready.
//
// Builds run in the background (two at a time); their logs and state are
// kept in memory for the last kKeptBuilds. A build interrupted by a crash
// leaves complete snapshots only (a cache) and sandboxes labelled with
// kBuildLabel, which SweepInterrupted removes at start-up: its template
// name is moved only at the very end.
//
// Copied files arrive beforehand as archives (tar, any compression) kept
// by hash in `files_dir`.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"
#include "base/work_queue.h"
#include "sandbox/manager.h"
#include "sandbox/run_config.h"

namespace paddock::build {

struct BuildStep {
  enum class Kind { kRun, kCopy, kEnv, kWorkdir, kUser };
  Kind kind = Kind::kRun;
  std::string command;  // run: by /bin/sh -c
  std::string user;     // run: who runs it; copy: who owns the files; empty: the build's current user
  std::string src;      // copy: a path in the archive (relative; "." for all of it)
  std::string dest;     // copy: an absolute path; ending in "/": into that folder
  std::string files;    // copy: the archive's hash
  int mode = -1;        // copy: the files' mode; -1: as archived
  std::vector<std::pair<std::string, std::string>> env;  // env
  std::string value;    // workdir, user
  bool force = false;   // never from the cache

  // "RUN apt-get install -y curl", for logs.
  std::string Describe() const;
  // What its cache key covers.
  nlohmann::json KeyJson() const;
};

struct BuildSpec {
  std::vector<std::string> names;  // the template's names (NAME or NAME:TAG); the first is its name
  std::string from;
  std::vector<BuildStep> steps;
  std::string start_cmd;           // empty: the base's
  ReadyCheck ready;
  bool has_ready = false;          // false: the base's ready check
  bool no_cache = false;
  kernel::CgroupLimits limits;     // of the build's sandboxes
};

static constexpr size_t kMaxSteps = 48;  // each file step stacks a layer; snapshots stack 64 deep

// The build file `paddock template build` reads, as JSON:
//   {"name": "web", "from": "debian:bookworm",
//    "steps": [{"run": "apt-get install -y python3"},
//              {"copy": "site", "to": "/srv/", "files": "<hash>", "user": "u", "mode": "0644"},
//              {"env": {"PORT": "8000"}}, {"workdir": "/srv"}, {"user": "nobody"}],
//    "start": "python3 -m http.server 8000", "ready": {"port": 8000, "timeout_s": 30},
//    "tags": ["v1"], "no_cache": false}
// kInvalidArgument naming what is wrong.
Result<BuildSpec> ParseBuildSpec(const nlohmann::json& j);

enum class BuildState { kWaiting, kBuilding, kReady, kError };
const char* BuildStateName(BuildState s);

struct BuildLog {
  int64_t at_ms = 0;
  std::string level;    // info, error
  std::string message;
  int step = -1;        // 0: the base; 1..n: the steps; n+1: finishing; -1: none
};

// "base" (0), "1".."n", "finalize" (n+1): E2B's names of a build's steps.
std::string StepName(int step, int steps);

struct BuildStatus {
  std::string id;
  std::string name;
  BuildState state = BuildState::kBuilding;
  std::vector<BuildLog> logs;   // from the offset asked for
  size_t logs_total = 0;
  std::string error;            // why it failed
  int error_step = -1;
  int steps = 0;                // in its spec
  std::string snapshot_id;      // the result, once ready
  int cached_steps = 0;         // file steps reused from the cache
  int64_t started_at_ms = 0, finished_at_ms = 0;
};

class TemplateBuilder {
 public:
  static constexpr const char* kBuildLabel = "paddock.build";
  static constexpr size_t kKeptBuilds = 64;
  // Per build, older lines are dropped past these: a step printing without
  // end cannot grow the daemon (64 builds x 2 MiB at most).
  static constexpr size_t kMaxLogLines = 20000;
  static constexpr size_t kMaxLogBytes = size_t{2} << 20;
  static constexpr size_t kLogPage = 2000;  // lines per Get
  static constexpr size_t kMaxAllSteps = 256;  // env, workdir and user steps included
  static constexpr size_t kMaxCommandBytes = 64 << 10;
  static constexpr int kStepTimeoutS = 3600;

  TemplateBuilder(SandboxManager* manager, std::string files_dir);
  ~TemplateBuilder();  // waits for the builds under way

  // Removes the sandboxes of builds a crash interrupted, and uploads that
  // never finished.
  void SweepInterrupted();

  // Starts a build; returns its id. kInvalidArgument for a bad name, a copy
  // whose files are not uploaded, too many steps.
  Result<std::string> Start(BuildSpec spec);
  // E2B's two-part build: an id for the template's names now (waiting),
  // its steps later (StartReserved, whose spec's names are ignored).
  Result<std::string> Reserve(std::vector<std::string> names) EXCLUDES(mu_);
  Status StartReserved(const std::string& id, BuildSpec spec) EXCLUDES(mu_);
  // Its state and its log lines from `logs_offset` on (kLogPage at most).
  Result<BuildStatus> Get(const std::string& id, size_t logs_offset = 0) const EXCLUDES(mu_);

  // Uploaded archives, by hash ([0-9a-f]{64} or a client's token of
  // [A-Za-z0-9_-]{16,128}).
  static bool ValidFilesHash(const std::string& hash);
  bool HasFiles(const std::string& hash) const;
  // Stores the archive read from `fd` (or `memory` when fd < 0) as `hash`.
  // With `verify`, its SHA-256 must be `hash`.
  Status PutFiles(const std::string& hash, int fd, std::string_view memory, bool verify);

  // Builds under way.
  size_t running() const EXCLUDES(mu_);

  // Forgets every uploaded archive that no build waiting or under way
  // names (a client uploads again what it needs). Returns how many went.
  int PruneFiles() EXCLUDES(mu_);

 private:
  struct Build;
  void Run(const std::shared_ptr<Build>& b);
  Status RunSteps(Build& b);
  // kInvalidArgument naming what of `spec` cannot be built.
  Status Check(const BuildSpec& spec) const;
  Status RunStep(Build& b, const std::string& sandbox, const BuildStep& step, const RunConfig& cfg);
  Status CopyStep(Build& b, const std::string& sandbox, const BuildStep& step, const RunConfig& cfg);
  void Log(Build& b, const std::string& level, const std::string& message) EXCLUDES(mu_);
  std::string FilesPath(const std::string& hash) const { return files_dir_ + "/" + hash; }

  SandboxManager* manager_;
  std::string files_dir_;
  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<Build>> builds_ GUARDED_BY(mu_);
  std::deque<std::string> finished_ GUARDED_BY(mu_);  // oldest first, for eviction
  WorkQueue queue_{2, "pdk-build"};  // last: joined first
};

}  // namespace paddock::build
