#include "build/template_builder.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "agent/client.h"
#include "api/tar_upload.h"
#include "base/fd.h"
#include "base/fs.h"
#include "base/ids.h"
#include "base/json_field.h"
#include "image/digest.h"

namespace paddock::build {

using json = nlohmann::json;

namespace {

int64_t Now() { return WallClockMillis(); }

std::string KindName(BuildStep::Kind k) {
  switch (k) {
    case BuildStep::Kind::kRun: return "RUN";
    case BuildStep::Kind::kCopy: return "COPY";
    case BuildStep::Kind::kEnv: return "ENV";
    case BuildStep::Kind::kWorkdir: return "WORKDIR";
    case BuildStep::Kind::kUser: return "USER";
  }
  return "";
}

// A copy's source as a path in the archive: no leading "./" or "/", no
// trailing "/"; "" for all of it. kInvalidArgument for one that climbs out.
Result<std::string> CleanSource(std::string src) {
  while (src.rfind("./", 0) == 0) src.erase(0, 2);
  while (!src.empty() && src.back() == '/') src.pop_back();
  if (src == ".") src.clear();
  if (!src.empty() && src[0] == '/') return InvalidArgument("a copy's source '" + src + "' must be relative");
  for (size_t at = 0; at <= src.size();) {
    size_t end = src.find('/', at);
    if (end == std::string::npos) end = src.size();
    if (src.compare(at, end - at, "..") == 0) return InvalidArgument("a copy's source '" + src + "' climbs out with ..");
    at = end + 1;
  }
  return src;
}

Result<int> ParseMode(const json& j) {
  if (j.is_number_integer()) {
    int m = j.get<int>();
    if (m >= 0 && m <= 07777) return m;
  } else if (j.is_string() && !j.get<std::string>().empty()) {
    const std::string& s = j.get_ref<const std::string&>();
    char* end = nullptr;
    long m = std::strtol(s.c_str(), &end, 8);
    if (*end == '\0' && m >= 0 && m <= 07777) return static_cast<int>(m);
  }
  return InvalidArgument("'mode' must be an octal string such as \"0644\" (or a number up to 07777)");
}

std::string NonEmptyString(const json& j, const char* key) { return Field<std::string>(j, key, ""); }

// The env of `cfg` as a map, and back.
std::map<std::string, std::string> EnvMap(const std::vector<std::string>& env) {
  std::map<std::string, std::string> m;
  for (const auto& kv : env) {
    size_t eq = kv.find('=');
    m[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  return m;
}

std::string Key(const std::string& parent, const json& input) {
  return image::DigestHex(image::Sha256::Of(parent + "\n" + input.dump()));
}

}  // namespace

std::string BuildStep::Describe() const {
  std::string out = KindName(kind) + " ";
  switch (kind) {
    case Kind::kRun: out += command; break;
    case Kind::kCopy: out += (src.empty() ? "." : src) + " " + dest; break;
    case Kind::kEnv:
      for (size_t i = 0; i < env.size(); ++i) out += (i ? " " : "") + env[i].first + "=" + env[i].second;
      break;
    case Kind::kWorkdir:
    case Kind::kUser: out += value; break;
  }
  if (!user.empty() && (kind == Kind::kRun || kind == Kind::kCopy)) out += " (as " + user + ")";
  return out;
}

json BuildStep::KeyJson() const {
  json j = {{"kind", KindName(kind)}};
  switch (kind) {
    case Kind::kRun: j["command"] = command; j["user"] = user; break;
    case Kind::kCopy: j["src"] = src; j["dest"] = dest; j["files"] = files; j["user"] = user; j["mode"] = mode; break;
    case Kind::kEnv: j["env"] = env; break;
    case Kind::kWorkdir:
    case Kind::kUser: j["value"] = value; break;
  }
  return j;
}

Result<BuildSpec> ParseBuildSpec(const json& j) {
  if (!j.is_object()) return InvalidArgument("a template build must be a JSON object");
  BuildSpec spec;
  std::string name = NonEmptyString(j, "name");
  if (name.empty()) return InvalidArgument("'name' (the template's name) is required");
  spec.names.push_back(name);
  if (auto it = j.find("tags"); it != j.end()) {
    if (!it->is_array()) return InvalidArgument("'tags' must be a list of strings");
    for (const auto& t : *it) {
      if (!t.is_string()) return InvalidArgument("'tags' must be a list of strings");
      spec.names.push_back(name.substr(0, name.find(':')) + ":" + t.get<std::string>());
    }
  }
  spec.from = NonEmptyString(j, "from");
  if (spec.from.empty()) return InvalidArgument("'from' (an image, template or snapshot) is required");
  spec.no_cache = Field<bool>(j, "no_cache", false);
  if (auto it = j.find("steps"); it != j.end()) {
    if (!it->is_array()) return InvalidArgument("'steps' must be a list");
    int n = 0;
    for (const auto& s : *it) {
      ++n;
      auto bad = [&](const std::string& why) { return InvalidArgument("step " + std::to_string(n) + ": " + why); };
      if (!s.is_object()) return bad("must be an object");
      BuildStep step;
      step.force = Field<bool>(s, "force", false);
      step.user = NonEmptyString(s, "user");
      if (s.contains("run")) {
        step.kind = BuildStep::Kind::kRun;
        step.command = NonEmptyString(s, "run");
        if (step.command.empty()) return bad("'run' must be a non-empty command");
      } else if (s.contains("copy")) {
        step.kind = BuildStep::Kind::kCopy;
        auto src = CleanSource(NonEmptyString(s, "copy"));
        if (!src.ok()) return bad(src.status().message());
        step.src = *src;
        step.dest = NonEmptyString(s, "to");
        step.files = NonEmptyString(s, "files");
        if (step.dest.empty() || step.dest[0] != '/') return bad("'to' must be an absolute path");
        if (!TemplateBuilder::ValidFilesHash(step.files))
          return bad("'files' must name the uploaded archive of its files (its SHA-256)");
        if (s.contains("mode")) {
          auto mode = ParseMode(s["mode"]);
          if (!mode.ok()) return bad(mode.status().message());
          step.mode = *mode;
        }
      } else if (s.contains("env")) {
        step.kind = BuildStep::Kind::kEnv;
        const json& env = s["env"];
        if (!env.is_object() || env.empty()) return bad("'env' must be a non-empty object of strings");
        for (const auto& [k, v] : env.items()) {
          if (!v.is_string() || k.empty() || k.find('=') != std::string::npos)
            return bad("'env' must map names (without '=') to strings");
          step.env.emplace_back(k, v.get<std::string>());
        }
      } else if (s.contains("workdir")) {
        step.kind = BuildStep::Kind::kWorkdir;
        step.value = NonEmptyString(s, "workdir");
        if (step.value.empty() || step.value[0] != '/') return bad("'workdir' must be an absolute path");
      } else if (s.contains("user") && s.size() == (s.contains("force") ? 2u : 1u)) {
        step.kind = BuildStep::Kind::kUser;
        step.value = step.user;
        step.user.clear();
        if (step.value.empty()) return bad("'user' must be a user name or id");
      } else {
        return bad("must have one of 'run', 'copy', 'env', 'workdir', 'user'");
      }
      spec.steps.push_back(std::move(step));
    }
  }
  spec.start_cmd = NonEmptyString(j, "start");
  if (j.contains("ready")) {
    PDK_ASSIGN_OR_RETURN(spec.ready, ParseReadyCheck(j["ready"]));
    spec.has_ready = true;
  }
  if (spec.has_ready && spec.start_cmd.empty())
    return InvalidArgument("'ready' needs a 'start' command to check");
  return spec;
}

std::string StepName(int step, int steps) {
  if (step <= 0) return "base";
  if (step > steps) return "finalize";
  return std::to_string(step);
}

const char* BuildStateName(BuildState s) {
  switch (s) {
    case BuildState::kWaiting: return "waiting";
    case BuildState::kBuilding: return "building";
    case BuildState::kReady: return "ready";
    case BuildState::kError: return "error";
  }
  return "";
}

struct TemplateBuilder::Build {
  BuildSpec spec;
  // Under the builder's mu_:
  std::string id;
  BuildState state = BuildState::kBuilding;
  std::deque<BuildLog> logs;
  size_t logs_dropped = 0;
  size_t log_bytes = 0;
  std::string error;
  int error_step = -1;
  std::string snapshot_id;
  int cached_steps = 0;
  int64_t started_at_ms = 0, finished_at_ms = 0;
  // The build's own thread only:
  int step = 0;
};

TemplateBuilder::TemplateBuilder(SandboxManager* manager, std::string files_dir)
    : manager_(manager), files_dir_(std::move(files_dir)) {
  (void)MakeDirs(files_dir_ + "/.incoming", 0700);
}

TemplateBuilder::~TemplateBuilder() { queue_.Drain(); }

void TemplateBuilder::SweepInterrupted() {
  for (const auto& info : manager_->List())
    if (info.metadata.count(kBuildLabel)) (void)manager_->Delete(info.id);
  (void)RemoveTree(files_dir_ + "/.incoming");
  (void)MakeDirs(files_dir_ + "/.incoming", 0700);
}

bool TemplateBuilder::ValidFilesHash(const std::string& hash) {
  if (hash.size() < 16 || hash.size() > 128) return false;
  return std::all_of(hash.begin(), hash.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; });
}

bool TemplateBuilder::HasFiles(const std::string& hash) const {
  struct stat st;
  return ValidFilesHash(hash) && ::stat(FilesPath(hash).c_str(), &st) == 0;
}

Status TemplateBuilder::PutFiles(const std::string& hash, int fd, std::string_view memory, bool verify) {
  if (!ValidFilesHash(hash)) return InvalidArgument("'" + hash + "' is not a files hash");
  std::string tmp = files_dir_ + "/.incoming/" + hash + "-" + RandomHex(4);
  UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out) return Status::Errno("create " + tmp);
  image::Sha256 sha;
  auto write = [&](const char* data, size_t n) -> Status {
    sha.Update(data, n);
    for (size_t done = 0; done < n;) {
      ssize_t w = ::write(out.get(), data + done, n - done);
      if (w < 0) return Status::Errno("write " + tmp);
      done += static_cast<size_t>(w);
    }
    return Status::Ok();
  };
  Status s = Status::Ok();
  if (fd >= 0) {
    char buf[1 << 16];
    if (::lseek(fd, 0, SEEK_SET) < 0) s = Status::Errno("rewind the upload");
    while (s.ok()) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0) s = Status::Errno("read the upload");
      if (n <= 0) break;
      s = write(buf, static_cast<size_t>(n));
    }
  } else {
    s = write(memory.data(), memory.size());
  }
  std::string got = image::DigestHex(sha.Digest());
  if (s.ok() && verify && got != hash)
    s = InvalidArgument("the upload's SHA-256 is " + got + ", not " + hash);
  if (s.ok() && ::fsync(out.get()) != 0) s = Status::Errno("sync " + tmp);
  if (s.ok() && ::rename(tmp.c_str(), FilesPath(hash).c_str()) != 0) s = Status::Errno("store files " + hash);
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

int TemplateBuilder::PruneFiles() {
  std::set<std::string> wanted;
  {
    MutexLock lock(mu_);
    for (const auto& [id, b] : builds_)
      if (b->state == BuildState::kWaiting || b->state == BuildState::kBuilding)
        for (const auto& step : b->spec.steps)
          if (step.kind == BuildStep::Kind::kCopy) wanted.insert(step.files);
  }
  int removed = 0;
  for (const auto& name : ListDir(files_dir_))
    if (name[0] != '.' && !wanted.count(name) && ::unlink(FilesPath(name).c_str()) == 0) ++removed;
  return removed;
}

size_t TemplateBuilder::running() const {
  MutexLock lock(mu_);
  size_t n = 0;
  for (const auto& [id, b] : builds_) n += b->state == BuildState::kBuilding;
  return n;
}

Status TemplateBuilder::Check(const BuildSpec& spec) const {
  if (spec.names.empty()) return InvalidArgument("a build needs the template's name");
  for (const auto& name : spec.names)
    if (!SandboxManager::ValidTemplateName(name))
      return InvalidArgument("template name '" + name +
                             "' is not valid: NAME or NAME:TAG, each 1-63 characters [A-Za-z0-9_.-] starting "
                             "with a letter or digit (not host or busybox)");
  size_t file_steps = 0;
  for (size_t i = 0; i < spec.steps.size(); ++i) {
    const BuildStep& step = spec.steps[i];
    if (step.kind == BuildStep::Kind::kRun || step.kind == BuildStep::Kind::kCopy) ++file_steps;
    if (step.kind == BuildStep::Kind::kCopy && !HasFiles(step.files))
      return InvalidArgument("step " + std::to_string(i + 1) + " (" + step.Describe() + "): its files " +
                             step.files + " were not uploaded");
  }
  if (spec.start_cmd.size() > kMaxCommandBytes || spec.ready.value.size() > kMaxCommandBytes)
    return InvalidArgument("the start command and the ready check may be at most " +
                           std::to_string(kMaxCommandBytes) + " bytes each");
  for (size_t i = 0; i < spec.steps.size(); ++i)
    if (spec.steps[i].command.size() > kMaxCommandBytes)
      return InvalidArgument("step " + std::to_string(i + 1) + ": its command is over " +
                             std::to_string(kMaxCommandBytes) + " bytes");
  if (spec.steps.size() > kMaxAllSteps)
    return InvalidArgument("a template may have at most " + std::to_string(kMaxAllSteps) + " steps");
  if (file_steps > kMaxSteps)
    return InvalidArgument("a template may have at most " + std::to_string(kMaxSteps) +
                           " run and copy steps (it has " + std::to_string(file_steps) + ")");
  return Status::Ok();
}

Result<std::string> TemplateBuilder::Start(BuildSpec spec) {
  PDK_TRY(Check(spec));
  PDK_ASSIGN_OR_RETURN(std::string id, Reserve(spec.names));
  PDK_TRY(StartReserved(id, std::move(spec)));
  return id;
}

Result<std::string> TemplateBuilder::Reserve(std::vector<std::string> names) {
  BuildSpec spec;
  spec.names = std::move(names);
  PDK_TRY(Check(spec));
  auto b = std::make_shared<Build>();
  b->spec = std::move(spec);
  b->id = "bld-" + RandomHex(8);
  b->state = BuildState::kWaiting;
  b->started_at_ms = Now();
  MutexLock lock(mu_);
  size_t waiting = 0;
  for (const auto& [id, other] : builds_) waiting += other->state == BuildState::kWaiting;
  if (waiting >= kKeptBuilds)
    return ResourceExhausted(std::to_string(waiting) + " builds wait for their steps; start or forget some first");
  builds_[b->id] = b;
  return b->id;
}

Status TemplateBuilder::StartReserved(const std::string& id, BuildSpec spec) {
  std::shared_ptr<Build> b;
  {
    MutexLock lock(mu_);
    auto it = builds_.find(id);
    if (it == builds_.end()) return NotFound("build '" + id + "' does not exist");
    b = it->second;
    if (b->state != BuildState::kWaiting) return FailedPrecondition("build " + id + " has started already");
    spec.names = b->spec.names;
  }
  PDK_TRY(Check(spec));
  {
    MutexLock lock(mu_);
    if (b->state != BuildState::kWaiting) return FailedPrecondition("build " + id + " has started already");
    b->spec = std::move(spec);
    b->state = BuildState::kBuilding;
    b->started_at_ms = Now();
  }
  queue_.Post([this, b] { Run(b); });
  return Status::Ok();
}

Result<BuildStatus> TemplateBuilder::Get(const std::string& id, size_t logs_offset) const {
  MutexLock lock(mu_);
  auto it = builds_.find(id);
  if (it == builds_.end()) return NotFound("build '" + id + "' does not exist (or was forgotten)");
  const Build& b = *it->second;
  BuildStatus out;
  out.id = b.id;
  out.name = b.spec.names.front();
  out.state = b.state;
  out.logs_total = b.logs_dropped + b.logs.size();
  for (size_t i = std::max(logs_offset, b.logs_dropped) - b.logs_dropped;
       i < b.logs.size() && out.logs.size() < kLogPage; ++i)
    out.logs.push_back(b.logs[i]);
  out.error = b.error;
  out.error_step = b.error_step;
  out.steps = static_cast<int>(b.spec.steps.size());
  out.snapshot_id = b.snapshot_id;
  out.cached_steps = b.cached_steps;
  out.started_at_ms = b.started_at_ms;
  out.finished_at_ms = b.finished_at_ms;
  return out;
}

void TemplateBuilder::Log(Build& b, const std::string& level, const std::string& message) {
  MutexLock lock(mu_);
  b.logs.push_back({Now(), level, message, b.step});
  b.log_bytes += message.size();
  while (b.logs.size() > 1 && (b.logs.size() > kMaxLogLines || b.log_bytes > kMaxLogBytes)) {
    b.log_bytes -= b.logs.front().message.size();
    b.logs.pop_front();
    ++b.logs_dropped;
  }
}

void TemplateBuilder::Run(const std::shared_ptr<Build>& b) {
  Status s = RunSteps(*b);
  if (!s.ok()) Log(*b, "error", s.message());
  MutexLock lock(mu_);
  b->state = s.ok() ? BuildState::kReady : BuildState::kError;
  if (!s.ok()) {
    b->error = s.message();
    b->error_step = b->step;
  }
  b->finished_at_ms = Now();
  finished_.push_back(b->id);
  while (finished_.size() > kKeptBuilds) {
    builds_.erase(finished_.front());
    finished_.pop_front();
  }
}

Status TemplateBuilder::RunSteps(Build& b) {
  const BuildSpec& spec = b.spec;
  const size_t n = spec.steps.size();
  Log(b, "info", "FROM " + spec.from);
  auto base = manager_->ResolveTemplate(spec.from);
  if (!base.ok()) return base.status().Annotate("the base " + spec.from);
  // The cache key starts from what the base is, not what it is called.
  std::string key = Key("paddock-build-v1", !base->snapshot_id.empty() ? "snapshot:" + base->snapshot_id
                                            : !base->image_id.empty()  ? "image:" + base->image_id
                                                                       : "builtin:" + base->name);
  RunConfig cfg;
  if (base->run) cfg = *base->run;
  if (base->config) {
    cfg.env = base->config->env;
    cfg.user = base->config->user;
    cfg.workdir = base->config->working_dir;
  }
  Template current = *base;
  int made = 0;
  for (size_t i = 0; i < n; ++i) {
    const BuildStep& step = spec.steps[i];
    b.step = static_cast<int>(i + 1);
    Log(b, "info", "[" + std::to_string(i + 1) + "/" + std::to_string(n) + "] " + step.Describe());
    switch (step.kind) {
      case BuildStep::Kind::kEnv: {
        auto env = EnvMap(cfg.env);
        for (const auto& [k, v] : step.env) env[k] = v;
        cfg.env.clear();
        for (const auto& [k, v] : env) cfg.env.push_back(k + "=" + v);
        break;
      }
      case BuildStep::Kind::kWorkdir: cfg.workdir = step.value; break;
      case BuildStep::Kind::kUser: cfg.user = step.value; break;
      case BuildStep::Kind::kRun:
      case BuildStep::Kind::kCopy: break;
    }
    if (step.kind != BuildStep::Kind::kRun && step.kind != BuildStep::Kind::kCopy) {
      key = Key(key, step.KeyJson());
      continue;
    }
    // A file step's result depends on what it ran with, too.
    key = Key(key, {{"step", step.KeyJson()}, {"env", cfg.env}, {"workdir", cfg.workdir}, {"user", cfg.user}});
    if (!spec.no_cache && !step.force) {
      if (auto hit = manager_->FindBuildStep(key)) {
        auto t = manager_->ResolveTemplate(hit->id);
        if (t.ok()) {
          Log(b, "info", "CACHED " + hit->id);
          current = std::move(*t);
          MutexLock lock(mu_);
          ++b.cached_steps;
          continue;
        }
      }
    }
    SandboxSpec sbs;
    sbs.name = "build-" + b.id.substr(4) + "-" + std::to_string(i + 1);
    if (!current.snapshot_id.empty())
      sbs.snapshot = current.snapshot_id;
    else
      sbs.template_name = spec.from;
    sbs.run_start = false;
    sbs.limits = spec.limits;
    sbs.metadata[kBuildLabel] = b.id;
    auto sb = manager_->Create(sbs);
    if (!sb.ok()) return sb.status().Annotate("creating the sandbox for step " + std::to_string(i + 1));
    Status s = step.kind == BuildStep::Kind::kRun ? RunStep(b, sb->id, step, cfg) : CopyStep(b, sb->id, step, cfg);
    Result<SnapshotRecord> snap = s.ok() ? manager_->CreateSnapshot(sb->id, "", key) : Result<SnapshotRecord>(s);
    (void)manager_->Delete(sb->id);
    if (!snap.ok()) return snap.status().Annotate("step " + std::to_string(i + 1) + " (" + step.Describe() + ")");
    ++made;
    auto t = manager_->ResolveTemplate(snap->id);
    if (!t.ok()) return t.status();
    current = std::move(*t);
  }
  // The template's own config, in a last empty layer: steps' snapshots are
  // shared by every template whose steps begin alike.
  b.step = static_cast<int>(n + 1);
  if (!spec.start_cmd.empty()) {
    cfg.start_cmd = spec.start_cmd;
    cfg.ready = spec.ready;
  }
  key = Key(key, {{"config", cfg.ToJson()}});
  std::optional<SnapshotRecord> final_snap = spec.no_cache ? std::nullopt : manager_->FindBuildStep(key);
  if (!final_snap) {
    auto derived = manager_->DeriveSnapshot(current, cfg, key);
    if (!derived.ok()) return derived.status().Annotate("storing the template's config");
    final_snap = *derived;
  }
  if (!cfg.start_cmd.empty()) {
    Log(b, "info", "START " + cfg.start_cmd + " (waiting for " + cfg.ready.Describe() + ", at most " +
                       std::to_string(cfg.ready.timeout_s) + " s)");
    SandboxSpec check;
    check.name = "build-" + b.id.substr(4) + "-start";
    check.snapshot = final_snap->id;
    check.limits = spec.limits;
    check.metadata[kBuildLabel] = b.id;
    auto sb = manager_->Create(check);
    if (!sb.ok()) return sb.status().Annotate("the start command");
    (void)manager_->Delete(sb->id);
    Log(b, "info", "ready");
  }
  for (const auto& name : spec.names) PDK_TRY(manager_->PutTemplate(name, final_snap->id, b.id));
  {
    MutexLock lock(mu_);
    b.snapshot_id = final_snap->id;
  }
  Log(b, "info", "template " + spec.names.front() + " is " + final_snap->id + " (" + std::to_string(made) +
                     " steps run, " + std::to_string(b.cached_steps) + " from the cache)");
  return Status::Ok();
}

Status TemplateBuilder::RunStep(Build& b, const std::string& sandbox, const BuildStep& step, const RunConfig& cfg) {
  PDK_ASSIGN_OR_RETURN(agent::AgentClient client, manager_->Connect(sandbox));
  agent::ExecOptions o;
  o.argv = {"/bin/sh", "-c", step.command};
  for (const auto& [k, v] : EnvMap(cfg.env)) o.env[k] = v;
  o.cwd = cfg.workdir.empty() ? "/" : cfg.workdir;
  o.user = step.user.empty() ? cfg.user : step.user;
  if (!cfg.workdir.empty())  // as Docker's WORKDIR: made when first used
    PDK_TRY(client.Call({{"op", "mkdir"}, {"path", cfg.workdir}, {"parents", true}}).status());
  PDK_TRY(manager_->ApplyExecDefaults(sandbox, o));
  auto spawned = client.Call(agent::AgentClient::SpawnRequest(o, true));
  if (!spawned.ok()) return spawned.status();
  int pid = Field<int>(spawned->header, "pid", 0);
  // Output goes to the log a line at a time; what it prints last is kept
  // for the error.
  std::string partial[2], tail;
  auto emit = [&](int stream, bool flush) {
    std::string& buf = partial[stream];
    size_t at;
    while ((at = buf.find('\n')) != std::string::npos || (flush && !buf.empty())) {
      if (at == std::string::npos) at = buf.size();
      std::string line = buf.substr(0, at);
      buf.erase(0, std::min(buf.size(), at + 1));
      tail += line + "\n";
      if (tail.size() > 4096) tail.erase(0, tail.size() - 4096);
      Log(b, stream ? "error" : "info", line);
    }
    if (buf.size() > 64 * 1024) {  // one endless line: log it in pieces
      Log(b, stream ? "error" : "info", buf);
      buf.clear();
    }
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kStepTimeoutS);
  for (;;) {
    if (std::chrono::steady_clock::now() > deadline) {
      (void)client.Call({{"op", "signal"}, {"pid", pid}, {"signal", 9}});
      return DeadlineExceeded("it ran past " + std::to_string(kStepTimeoutS) + " s");
    }
    auto f = client.Read(1000);
    if (!f.ok()) {
      if (f.status().code() == StatusCode::kDeadlineExceeded) continue;
      return f.status();
    }
    std::string ev = Field<std::string>(f->header, "event", "");
    if (ev == "output") {
      int stream = Field<std::string>(f->header, "stream", "") == "stderr";
      partial[stream] += f->payload;
      emit(stream, false);
    } else if (ev == "exit") {
      emit(0, true);
      emit(1, true);
      int code = Field<int>(f->header, "exit_code", -1), sig = Field<int>(f->header, "signal", 0);
      if (code == 0 && sig == 0) return Status::Ok();
      return FailedPrecondition("it " + (sig ? "was killed by signal " + std::to_string(sig)
                                              : "exited with code " + std::to_string(code)) +
                                (tail.empty() ? "" : "; its output ended with:\n" + tail));
    }
  }
}

Status TemplateBuilder::CopyStep(Build& b, const std::string& sandbox, const BuildStep& step,
                                 const RunConfig& cfg) {
  PDK_ASSIGN_OR_RETURN(agent::AgentClient client, manager_->Connect(sandbox));
  UniqueFd fd(::open(FilesPath(step.files).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Errno("open the files " + step.files);
  // Entries of the archive under the source go under the destination, as
  // Docker's COPY: a folder's contents into the destination folder, a file
  // to the destination path (into it, when that ends in "/").
  struct Mapped : api::UnpackSink {
    agent::AgentClient& client;
    std::string src, dest, user;
    bool dest_is_dir;
    int mode;
    int matched = 0;
    Mapped(agent::AgentClient& c, const BuildStep& s, std::string owner)
        : client(c), src("/" + s.src), dest(s.dest), user(std::move(owner)), dest_is_dir(s.dest.back() == '/'),
          mode(s.mode) {
      if (src == "/") src.clear();
      while (dest.size() > 1 && dest.back() == '/') dest.pop_back();
    }
    // Where the archive's `path` (under root "/") goes; empty: not copied.
    std::string Target(const std::string& path, bool dir) const {
      if (src.empty()) return dest == "/" ? path : dest + path;
      if (path == src) {
        if (dir || !dest_is_dir) return dest;
        return (dest == "/" ? "" : dest) + src.substr(src.rfind('/'));
      }
      if (path.rfind(src + "/", 0) == 0) return (dest == "/" ? "" : dest) + path.substr(src.size());
      return "";
    }
    json Extra(int archived_mode) const {
      json j = {{"mode", mode >= 0 ? mode : archived_mode}, {"parents", true}};
      if (!user.empty()) j["user"] = user;
      return j;
    }
    Status MakeDir(const std::string& path, int archived_mode) override {
      std::string to = Target(path, true);
      if (to.empty()) return Status::Ok();
      ++matched;
      json req = Extra(archived_mode);
      req["op"] = "mkdir";
      req["path"] = to;
      return client.Call(req).status();
    }
    Status WriteFile(const std::string& path, int archived_mode, const Reader& read) override {
      std::string to = Target(path, false);
      if (to.empty()) {  // not copied: read past it
        char buf[1 << 14];
        for (;;) {
          PDK_ASSIGN_OR_RETURN(size_t got, read(buf, sizeof buf));
          if (got == 0) return Status::Ok();
        }
      }
      ++matched;
      return client.WriteFileFrom(to, read, Extra(archived_mode)).status();
    }
  } sink(client, step, step.user.empty() ? cfg.user : step.user);
  if (sink.dest_is_dir || step.src.empty())
    PDK_TRY(client.Call({{"op", "mkdir"}, {"path", step.dest}, {"parents", true}}).status());
  PDK_TRY(api::UnpackArchive(fd.get(), {}, "/", sink).status());
  if (sink.matched == 0)
    return NotFound("nothing in the uploaded files " + step.files + " is at '" + (step.src.empty() ? "." : step.src) +
                    "'");
  Log(b, "info", "copied " + std::to_string(sink.matched) + " files and folders");
  return Status::Ok();
}

}  // namespace paddock::build
