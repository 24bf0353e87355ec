// Snapshots: a sandbox's writable layer kept as a read-only layer, stacked
// under the writable layers of the sandboxes created from it.
//
//   <state>/snapshots/<id>   its layer: owners as inside the sandbox (root
//                            is 0), overlayfs whiteouts and opaque folders
//                            kept, so it stacks over the same lower layers
//
// A snapshot's folder is copied in staging and renamed into place before
// its record is written: a crash leaves either nothing (staging is emptied
// at start-up) or a folder no record names (LoadSnapshots removes it),
// never a record without its files.
#include "sandbox/manager.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/fs.h"
#include "base/ids.h"
#include "base/layer_copy.h"
#include "sandbox/manager_parts.h"

namespace paddock {

using namespace manager_detail;

namespace {

// "snapshot NAME (ID)", or "snapshot ID" when it has no name.
std::string Label(const SnapshotRecord& s) {
  return "snapshot " + (s.name.empty() ? s.id : s.name + " (" + s.id + ")");
}

}  // namespace

Status SandboxManager::LoadSnapshots() {
  PDK_ASSIGN_OR_RETURN(std::vector<SnapshotRecord> records, store_->ListSnapshots());
  PDK_ASSIGN_OR_RETURN(std::vector<TemplateRecord> templates, store_->ListTemplates());
  MutexLock lock(snap_mu_);
  for (auto& r : records) snapshots_[r.id] = std::move(r);
  for (auto& t : templates) built_templates_[t.name] = std::move(t);
  for (const auto& name : ListDir(snapshots_dir_)) {
    if (snapshots_.count(name)) continue;
    std::string trash = trash_dir_ + "/" + name + "-" + RandomHex(4);
    if (::rename(SnapshotDir(name).c_str(), trash.c_str()) == 0) (void)RemoveTree(trash);
  }
  return Status::Ok();
}

Result<SnapshotRecord> SandboxManager::FindSnapshotLocked(const std::string& id_or_name) const {
  if (auto it = snapshots_.find(id_or_name); it != snapshots_.end()) return it->second;
  for (const auto& [id, snap] : snapshots_)
    if (!snap.name.empty() && snap.name == id_or_name) return snap;
  return NotFound("snapshot '" + id_or_name + "' does not exist");
}

Result<SnapshotRecord> SandboxManager::GetSnapshot(const std::string& id_or_name) const {
  MutexLock lock(snap_mu_);
  return FindSnapshotLocked(id_or_name);
}

std::vector<SnapshotRecord> SandboxManager::ListSnapshots() const {
  std::vector<SnapshotRecord> out;
  {
    MutexLock lock(snap_mu_);
    for (const auto& [id, snap] : snapshots_) out.push_back(snap);
  }
  std::sort(out.begin(), out.end(), [](const SnapshotRecord& a, const SnapshotRecord& b) {
    return std::tie(a.created_at_ms, a.id) < std::tie(b.created_at_ms, b.id);
  });
  return out;
}

Result<Template> SandboxManager::SnapshotTemplate(const std::string& id) {
  std::vector<SnapshotRecord> chain;  // the snapshot, then its parents
  {
    MutexLock lock(snap_mu_);
    for (std::string at = id; !at.empty();) {
      auto it = snapshots_.find(at);
      if (it == snapshots_.end()) return NotFound("snapshot '" + at + "' does not exist");
      if (chain.size() == kMaxSnapshotDepth)
        return FailedPrecondition("snapshot " + id + " stacks over more than " +
                                  std::to_string(kMaxSnapshotDepth) + " snapshots");
      chain.push_back(it->second);
      at = it->second.parent;
    }
  }
  const SnapshotRecord& bottom = chain.back();
  Result<Template> tmpl =
      bottom.image_id.empty() ? templates_.Get(bottom.template_name) : templates_.ForImage(bottom.image_id);
  if (!tmpl.ok()) return tmpl.status().Annotate("snapshot " + id + "'s base " + bottom.template_name);
  std::vector<std::string> layers;  // top-most first, as Template's
  for (const auto& snap : chain) layers.push_back(SnapshotDir(snap.id));
  tmpl->layers.insert(tmpl->layers.begin(), layers.begin(), layers.end());
  tmpl->name = bottom.template_name;
  tmpl->snapshot_id = id;
  // The top-most snapshot with a config (a built template's, or one taken
  // of a sandbox made from it) says what its sandboxes run with.
  for (const auto& snap : chain) {
    if (snap.config.empty()) continue;
    auto parsed = RunConfig::Parse(nlohmann::json::parse(snap.config, nullptr, false));
    if (!parsed.ok()) return parsed.status().Annotate("snapshot " + snap.id + "'s config");
    auto config = std::make_shared<image::ImageConfig>(tmpl->config ? *tmpl->config : image::ImageConfig{});
    config->env = parsed->env;
    config->user = parsed->user;
    config->working_dir = parsed->workdir;
    tmpl->config = std::move(config);
    tmpl->run = std::make_shared<RunConfig>(std::move(*parsed));
    break;
  }
  return tmpl;
}

// The sandbox's writable layer into `staging`, owners mapped back out of
// its id range; fills in what `rec` says of its source.
Status SandboxManager::CopyForSnapshot(Sandbox& sb, SnapshotRecord& rec, const std::string& staging) {
  SandboxInfo& info = sb.info;
  size_t depth = 1;
  {
    MutexLock snaps(snap_mu_);
    for (std::string at = info.snapshot_id; !at.empty(); ++depth) {
      auto it = snapshots_.find(at);
      if (it == snapshots_.end()) break;
      if (rec.config.empty()) rec.config = it->second.config;  // its sandboxes run as the source's
      at = it->second.parent;
    }
  }
  if (depth > kMaxSnapshotDepth)
    return FailedPrecondition("sandbox " + info.id + " already stacks over " + std::to_string(depth - 1) +
                              " snapshots (at most " + std::to_string(kMaxSnapshotDepth) +
                              "): snapshot a sandbox made from its base instead");
  rec.source_id = info.id;
  rec.template_name = info.template_name;
  rec.image_id = info.image_id;
  rec.parent = info.snapshot_id;
  PDK_TRY(RestoreLayerLocked(sb));
  PDK_TRY(MakeDirs(staging, 0755));
  // A running sandbox is frozen so that its files are copied as of one
  // moment; a paused one is frozen already, a stopped one has no process.
  bool freeze = info.state == SandboxState::kRunning;
  if (freeze) PDK_TRY(sb.cgroup->Freeze());
  const std::string upper = info.dir + "/upper";
  Status s = CopyLayer(upper, staging, info.ids.host_first, 0, &rec.size);
  if (s.ok()) s = CopyTopFolder(upper, staging, info.ids.host_first, 0);
  if (freeze) {
    Status thawed = sb.cgroup->Thaw();
    if (s.ok()) s = thawed;
  }
  return s.Annotate("copying the files of sandbox " + info.id);
}

Result<SnapshotRecord> SandboxManager::CreateSnapshot(const std::string& sandbox, const std::string& name,
                                                      const std::string& build_key) {
  if (!name.empty() && !ValidName(name))
    return InvalidArgument("snapshot name '" + name +
                           "' is not valid: 1-63 characters [A-Za-z0-9_.-], starting with a letter or digit");
  {
    MutexLock lock(snap_mu_);
    if (!name.empty() && FindSnapshotLocked(name).ok())
      return AlreadyExists("a snapshot named '" + name + "' already exists");
  }
  PDK_ASSIGN_OR_RETURN(auto sb, Find(sandbox));
  SnapshotRecord rec;
  rec.id = "snap-" + RandomHex(8);
  rec.name = name;
  rec.build_key = build_key;
  const std::string staging = opts_.state_dir + "/staging/" + rec.id;
  Status copied = [&]() -> Status {
    MutexLock lock(sb->mu);  // no transition meanwhile
    PDK_TRY(StillThere(*sb, sandbox));
    return CopyForSnapshot(*sb, rec, staging);
  }();
  if (!copied.ok()) {
    (void)RemoveTree(staging);
    return copied;
  }
  return PublishSnapshot(std::move(rec), staging);
}

// A complete layer in `staging` becomes the snapshot `rec`: on disk before
// a record names it, in place only once complete.
Result<SnapshotRecord> SandboxManager::PublishSnapshot(SnapshotRecord rec, const std::string& staging) {
  auto cleanup = [&] { (void)RemoveTree(staging); };
  if (Status s = SyncFilesystem(staging); !s.ok()) {
    cleanup();
    return s;
  }
  if (::rename(staging.c_str(), SnapshotDir(rec.id).c_str()) != 0) {
    Status s = Status::Errno("move snapshot " + rec.id + " into place");
    cleanup();
    return s;
  }
  rec.created_at_ms = WallClockMillis();
  Status stored = [&]() -> Status {
    MutexLock lock(snap_mu_);
    if (!rec.name.empty() && FindSnapshotLocked(rec.name).ok())
      return AlreadyExists("a snapshot named '" + rec.name + "' already exists");
    PDK_TRY(store_->PutSnapshot(rec));
    snapshots_[rec.id] = rec;
    return Status::Ok();
  }();
  if (!stored.ok()) {
    (void)RemoveTree(SnapshotDir(rec.id));
    return stored;
  }
  if (!rec.source_id.empty()) (void)store_->Journal(rec.source_id, "snapshot", "done", rec.id);
  return rec;
}

Result<SnapshotRecord> SandboxManager::DeriveSnapshot(const Template& base, const RunConfig& config,
                                                      const std::string& build_key) {
  SnapshotRecord rec;
  rec.id = "snap-" + RandomHex(8);
  rec.template_name = base.name;
  rec.image_id = base.image_id;
  rec.parent = base.snapshot_id;
  rec.config = config.ToJson().dump();
  rec.build_key = build_key;
  {
    MutexLock lock(snap_mu_);
    size_t depth = 1;
    for (std::string at = base.snapshot_id; !at.empty(); ++depth) {
      auto it = snapshots_.find(at);
      if (it == snapshots_.end()) return NotFound("snapshot '" + at + "' does not exist");
      at = it->second.parent;
    }
    if (depth > kMaxSnapshotDepth)
      return FailedPrecondition("a snapshot over " + base.snapshot_id + " would stack over more than " +
                                std::to_string(kMaxSnapshotDepth) + " snapshots");
  }
  const std::string staging = opts_.state_dir + "/staging/" + rec.id;
  PDK_TRY(MakeDirs(staging, 0755));
  return PublishSnapshot(std::move(rec), staging);
}

std::optional<SnapshotRecord> SandboxManager::FindBuildStep(const std::string& build_key) const {
  MutexLock lock(snap_mu_);
  for (const auto& [id, snap] : snapshots_)
    if (snap.build_key == build_key) return snap;
  return std::nullopt;
}

Status SandboxManager::RemoveSnapshot(const std::string& id_or_name) {
  std::string id;
  {
    MutexLock lock(snap_mu_);
    PDK_ASSIGN_OR_RETURN(SnapshotRecord rec, FindSnapshotLocked(id_or_name));
    for (const auto& [other, snap] : snapshots_)
      if (snap.parent == rec.id)
        return FailedPrecondition(Label(rec) + " is in use: " + Label(snap) + " stacks over it");
    for (const auto& [name, t] : built_templates_)
      if (t.snapshot_id == rec.id)
        return FailedPrecondition(Label(rec) + " is in use: template " + name + " names it");
    {
      MutexLock sandboxes(mu_);
      for (const auto& [name, sid] : id_by_name_)
        if (auto it = by_id_.find(sid); it != by_id_.end() && it->second->snapshot_id == rec.id)
          return FailedPrecondition(Label(rec) + " is in use: sandbox " + (name == sid ? sid : name + " (" + sid + ")") +
                                    " was created from it");
    }
    PDK_TRY(store_->RemoveSnapshot(rec.id));
    snapshots_.erase(rec.id);
    id = rec.id;
  }
  DropWarm(kSnapshotKey + id);  // warm shells stack it
  std::string trash = trash_dir_ + "/" + id;
  if (::rename(SnapshotDir(id).c_str(), trash.c_str()) == 0) (void)RemoveTree(trash);
  return Status::Ok();
}

Status SandboxManager::Rollback(const std::string& sandbox, const std::string& snapshot) {
  PDK_ASSIGN_OR_RETURN(SnapshotRecord snap, GetSnapshot(snapshot));
  PDK_ASSIGN_OR_RETURN(auto sb, Find(sandbox));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, sandbox));
  SandboxInfo& info = sb->info;
  // The snapshot's layer holds changes against the layers below it: it
  // fits only a sandbox over the same ones.
  if (snap.parent != info.snapshot_id || snap.image_id != info.image_id ||
      (snap.image_id.empty() && snap.template_name != info.template_name))
    return FailedPrecondition(Label(snap) + " was taken over other layers than sandbox " + info.id +
                              "'s (" + snap.template_name + (snap.parent.empty() ? "" : " + " + snap.parent) +
                              "); roll back to a snapshot of this sandbox");
  SandboxState was = info.state;
  if (was != SandboxState::kStopped) PDK_TRY(StopLocked(*sb, 0));
  PDK_TRY(RestoreLayerLocked(*sb));  // its archive, if any, is what is swapped out
  // The copy is made beside the writable layer, then the two are swapped
  // in one step: a crash leaves one or the other in place, never neither.
  const std::string upper = info.dir + "/upper", next = info.dir + "/upper.rollback";
  PDK_TRY(RemoveTree(next));
  Status s = MakeDirs(next, 0755);
  if (s.ok()) s = CopyLayer(SnapshotDir(snap.id), next, 0, info.ids.host_first);
  if (s.ok()) s = CopyTopFolder(SnapshotDir(snap.id), next, 0, info.ids.host_first);
  if (s.ok()) s = SyncFilesystem(next);  // on disk before it is the sandbox's
  if (s.ok() && ::renameat2(AT_FDCWD, next.c_str(), AT_FDCWD, upper.c_str(), RENAME_EXCHANGE) != 0)
    s = Status::Errno("swap in the files of snapshot " + snap.id);
  if (!s.ok()) {
    (void)RemoveTree(next);
    // Its files are as they were: so is its state.
    if (was != SandboxState::kStopped) (void)StartLocked(*sb);
    return s.Annotate("rolling back sandbox " + info.id);
  }
  std::string trash = sandbox_trash_dir_ + "/" + info.id + "-upper-" + RandomHex(4);
  if (::rename(next.c_str(), trash.c_str()) == 0) (void)RemoveTree(trash);
  (void)store_->Journal(info.id, "rollback", "done", snap.id);
  if (was != SandboxState::kStopped) PDK_TRY(StartLocked(*sb));
  return Status::Ok();
}

}  // namespace paddock
