// Archives: the files a deleted sandbox kept, and the writable layers of
// long-stopped sandboxes (see layer_archive.h for the format).
//
//   <state>/archives/<id>.tar.zst            kept by `rm --keep-data`; a record names each
//   <state>/sandboxes/.archived/<id>.tar.zst  a stopped sandbox's archived layer
//
// Every file is written as <name>.partial, synced, then renamed; its record
// comes after it. A crash leaves a partial (removed at start-up), or a file
// no record names yet (removed), or a file and its record: never a record
// without its file. A layer's folder goes only once its record says
// archived, and comes back (beside it, then renamed) before the record says
// it is not; start-up settles a sandbox caught between (RecoverArchive).
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/ids.h"
#include "sandbox/layer_archive.h"
#include "sandbox/manager.h"
#include "sandbox/manager_parts.h"

namespace paddock {

using namespace manager_detail;

namespace {

constexpr const char* kPartial = ".partial";

// "/a/b/" -> "a/b"; kInvalidArgument for a relative path or one with "..".
Result<std::string> LayerPath(const std::string& path) {
  if (path.empty() || path[0] != '/' || path.size() > 1024 || path.find('\0') != std::string::npos)
    return InvalidArgument("path '" + path + "' must be an absolute path inside the sandbox");
  auto parts = CleanParts(path);
  if (!parts) return InvalidArgument("path '" + path + "' must not contain '..'");
  std::string out;
  for (const auto& c : *parts) out += (out.empty() ? "" : "/") + c;
  return out;
}

int64_t Elapsed(int64_t since_ns) { return (MonotonicNanos() - since_ns) / 1000000; }

}  // namespace

std::vector<ArchiveRecord> SandboxManager::ListArchives() const {
  auto all = store_->ListArchives();
  return all.ok() ? *all : std::vector<ArchiveRecord>{};
}

Result<ArchiveRecord> SandboxManager::GetArchive(const std::string& id) const {
  PDK_ASSIGN_OR_RETURN(std::vector<ArchiveRecord> all, store_->ListArchives());
  for (auto& a : all)
    if (a.id == id) return a;
  return NotFound("archive '" + id + "' does not exist");
}

Status SandboxManager::RemoveArchive(const std::string& id) {
  PDK_TRY(GetArchive(id).status());
  PDK_TRY(store_->RemoveArchive(id));
  if (::unlink(ArchiveFile(id).c_str()) != 0 && errno != ENOENT) return Status::Errno("remove " + ArchiveFile(id));
  return Status::Ok();
}

Result<Template> SandboxManager::ArchiveTemplate(const ArchiveRecord& rec) {
  Result<Template> tmpl = NotFound("");
  if (!rec.snapshot_id.empty()) {
    tmpl = SnapshotTemplate(rec.snapshot_id);
  } else if (!rec.image_id.empty()) {
    tmpl = templates_.ForImage(rec.image_id);
    if (!tmpl.ok()) tmpl = ResolveTemplate(rec.template_name);  // removed since: its reference again
  } else {
    tmpl = templates_.Get(rec.template_name);
  }
  if (!tmpl.ok()) return tmpl.status().Annotate("archive " + rec.id + "'s base " + rec.template_name);
  return tmpl;
}

Result<ArchiveRecord> SandboxManager::DeleteKeepingData(const std::string& id_or_name, const std::string& path) {
  PDK_ASSIGN_OR_RETURN(std::string sub, LayerPath(path.empty() ? "/" : path));
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  SandboxInfo& info = sb->info;
  ArchiveRecord rec;
  rec.id = "arc-" + RandomHex(8);
  rec.sandbox_id = info.id;
  rec.sandbox_name = info.name;
  rec.template_name = info.template_name;
  rec.image_id = info.image_id;
  rec.snapshot_id = info.snapshot_id;
  rec.path = "/" + sub;
  const std::string file = ArchiveFile(rec.id), partial = file + kPartial;
  auto refused = [&, id = info.id](const Status& why) {
    ::unlink(partial.c_str());
    ::unlink(file.c_str());
    return why.Annotate("keeping the files of sandbox " + id + " failed, so it was not deleted");
  };
  if (Status s = RestoreLayerLocked(*sb); !s.ok()) return refused(s);
  // Frozen while its files are read: they are kept as of one moment.
  bool freeze = info.state == SandboxState::kRunning;
  if (freeze)
    if (Status s = sb->cgroup->Freeze(); !s.ok()) return refused(s);
  auto written = WriteLayerArchive(info.dir + "/upper", sub, partial, info.ids.host_first);
  if (freeze) (void)sb->cgroup->Thaw();
  if (!written.ok()) return refused(written.status());
  rec.sha256 = written->sha256;
  rec.size = written->size;
  rec.bytes = written->bytes;
  rec.created_at_ms = WallClockMillis();
  if (::rename(partial.c_str(), file.c_str()) != 0) return refused(Status::Errno("move " + partial + " into place"));
  if (Status s = SyncFilesystem(archives_dir_); !s.ok()) return refused(s);
  if (Status s = store_->PutArchive(rec); !s.ok()) return refused(s);
  (void)store_->Journal(info.id, "keep-data", "done", rec.id + " (" + rec.path + ")");
  if (Status s = DeleteLocked(*sb); !s.ok())
    return s.Annotate("sandbox " + info.id + "'s files were kept as archive " + rec.id + ", but the delete failed");
  return rec;
}

Status SandboxManager::ArchiveLayer(const std::string& id_or_name) {
  PDK_ASSIGN_OR_RETURN(auto sb, Find(id_or_name));
  MutexLock lock(sb->mu);
  PDK_TRY(StillThere(*sb, id_or_name));
  return ArchiveLayerLocked(*sb);
}

Status SandboxManager::ArchiveLayerLocked(Sandbox& sb) {
  SandboxInfo& info = sb.info;
  if (info.state != SandboxState::kStopped)
    return FailedPrecondition("sandbox " + info.id + " is " + SandboxStateName(info.state) +
                              ": only a stopped sandbox's files are archived");
  if (info.archived_at_ms > 0) return Status::Ok();
  const std::string upper = info.dir + "/upper", file = ArchivedLayer(info.id), partial = file + kPartial;
  ::unlink(partial.c_str());
  auto written = WriteLayerArchive(upper, "", partial, info.ids.host_first);
  Status s = written.status();
  if (s.ok() && ::rename(partial.c_str(), file.c_str()) != 0) s = Status::Errno("move " + partial + " into place");
  if (s.ok()) s = SyncFilesystem(archived_dir_);
  if (s.ok()) {
    info.archived_at_ms = WallClockMillis();
    info.archive_sha256 = written->sha256;
    info.archive_size = written->size;
    s = PersistState(sb, {"archive", "done",
                          std::to_string(written->bytes) + " bytes in " + std::to_string(written->size)});
    if (!s.ok()) info.archived_at_ms = 0;
  }
  if (!s.ok()) {
    ::unlink(partial.c_str());
    ::unlink(file.c_str());
    info.archive_sha256.clear();
    info.archive_size = 0;
    return s.Annotate("archiving the files of sandbox " + info.id);
  }
  // Recorded as archived: its folder can go (a crash before it is gone
  // leaves both, which start-up settles).
  std::string trash = sandbox_trash_dir_ + "/" + info.id + "-upper-" + RandomHex(4);
  if (::rename(upper.c_str(), trash.c_str()) == 0) (void)RemoveTree(trash);
  return Status::Ok();
}

Status SandboxManager::RestoreLayerLocked(Sandbox& sb) {
  SandboxInfo& info = sb.info;
  if (info.archived_at_ms == 0) return Status::Ok();
  int64_t start = MonotonicNanos();
  const std::string upper = info.dir + "/upper", next = info.dir + "/upper.restore";
  PDK_TRY(RemoveTree(next));
  Status s = MakeDirs(next, 0755);
  if (s.ok()) s = ReadLayerArchive(ArchivedLayer(info.id), info.archive_sha256, next, info.ids.host_first).status();
  if (s.ok()) s = SyncFilesystem(next);
  if (s.ok() && ::rename(next.c_str(), upper.c_str()) != 0) s = Status::Errno("move the restored files into place");
  if (!s.ok()) {
    (void)RemoveTree(next);
    (void)store_->Journal(info.id, "restore", "failed", s.ToString());
    return s.Annotate("restoring the archived files of sandbox " + info.id);
  }
  info.archived_at_ms = 0;
  info.archive_sha256.clear();
  info.archive_size = 0;
  info.restore_ms = Elapsed(start);
  // Recorded as restored before the archive goes: a crash between leaves
  // both, which start-up settles.
  PDK_TRY(PersistState(sb, {"restore", "done", std::to_string(info.restore_ms) + " ms"}));
  ::unlink(ArchivedLayer(info.id).c_str());
  return Status::Ok();
}

std::string SandboxManager::RecoverArchive(SandboxInfo& info) {
  const std::string file = ArchivedLayer(info.id), upper = info.dir + "/upper";
  ::unlink((file + kPartial).c_str());
  (void)RemoveTree(info.dir + "/upper.restore");
  if (info.archived_at_ms == 0) {
    if (::unlink(file.c_str()) == 0) return "removed an archive of its files cut short";
    return "";
  }
  if (PathExists(upper)) {
    // Archived but its folder not yet removed, or restored but not yet
    // recorded: the two hold the same files. The folder stays.
    info.archived_at_ms = 0;
    info.archive_sha256.clear();
    info.archive_size = 0;
    ::unlink(file.c_str());
    return "kept its files' folder over an archive cut short";
  }
  if (!PathExists(file)) {
    info.error = "its archived files are missing (" + file + ")";
    return info.error;
  }
  return "";
}

void SandboxManager::SweepArchives() {
  std::set<std::string> kept;
  for (const auto& a : ListArchives()) kept.insert(a.id + ".tar.zst");
  for (const auto& name : ListDir(archives_dir_))
    if (!kept.count(name)) ::unlink((archives_dir_ + "/" + name).c_str());
  std::set<std::string> archived;
  for (const auto& sb : All()) {
    MutexLock lock(sb->mu);
    if (sb->info.archived_at_ms > 0) archived.insert(sb->id + ".tar.zst");
  }
  for (const auto& name : ListDir(archived_dir_))
    if (!archived.count(name)) ::unlink((archived_dir_ + "/" + name).c_str());
}

}  // namespace paddock
