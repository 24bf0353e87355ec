// Volumes: named folders that outlive sandboxes.
//
//   <state>/sandboxes/.volumes/<name>   its files, ids as inside (root is 0);
//                                       on the disk pool, a subvolume with
//                                       its own limit
//
// A volume's folder is made before its record is written and removed after
// the record goes: a crash leaves at most a folder no record names, which
// the next start removes (LoadVolumes).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/ids.h"
#include "sandbox/manager.h"
#include "sandbox/manager_parts.h"

namespace paddock {

using namespace manager_detail;

Status SandboxManager::LoadVolumes() {
  PDK_ASSIGN_OR_RETURN(std::vector<VolumeRecord> records, store_->ListVolumes());
  MutexLock lock(vol_mu_);
  for (auto& r : records) volumes_[r.name] = std::move(r);
  for (const auto& name : ListDir(volumes_dir_)) {
    if (volumes_.count(name)) continue;
    std::string trash = sandbox_trash_dir_ + "/volume-" + name + "-" + RandomHex(4);
    if (::rename(VolumeDir(name).c_str(), trash.c_str()) == 0) (void)RemoveTree(trash);
  }
  return Status::Ok();
}

Result<UniqueFd> SandboxManager::OpenVolume(const std::string& name) const {
  PDK_TRY(GetVolume(name).status());
  UniqueFd fd(::open(VolumeDir(name).c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Status::Errno("open volume " + name);
  return fd;
}

Result<VolumeRecord> SandboxManager::CreateVolume(const std::string& name, int64_t disk_bytes) {
  if (!ValidName(name))
    return InvalidArgument("volume name '" + name +
                           "' is not valid: 1-63 characters [A-Za-z0-9_.-], starting with a letter or digit");
  if (disk_bytes < 0) return InvalidArgument("a volume's disk limit must not be negative");
  if (disk_bytes > 0 && disk_bytes < (int64_t{1} << 20))
    return InvalidArgument("a volume's disk limit must be at least 1 MiB");
  if (disk_bytes > 0 && !disk_)
    return Unimplemented("volume limits need paddockd's disk pool (--disk-pool SIZE): this paddockd has none");
  MutexLock lock(vol_mu_);
  if (volumes_.count(name)) return AlreadyExists("a volume named '" + name + "' already exists");
  const std::string dir = VolumeDir(name);
  (void)RemoveTree(dir);  // one a failed create left
  Status made = disk_ ? disk_->MakeFolder(dir) : MakeDirs(dir, 0755);
  if (made.ok() && disk_) made = disk_->SetLimit(dir, disk_bytes);
  // Root's inside every sandbox (its files keep the ids they have inside).
  if (made.ok() && (::chown(dir.c_str(), 0, 0) != 0 || ::chmod(dir.c_str(), 0755) != 0))
    made = Status::Errno("set the owner of " + dir);
  VolumeRecord rec{name, disk_bytes, WallClockMillis(), RandomHex(16)};
  if (made.ok()) made = store_->PutVolume(rec);
  if (!made.ok()) {
    (void)RemoveTree(dir);
    return made.Annotate("creating volume " + name);
  }
  volumes_[name] = rec;
  return rec;
}

std::vector<VolumeRecord> SandboxManager::ListVolumes() const {
  MutexLock lock(vol_mu_);
  std::vector<VolumeRecord> out;
  for (const auto& [name, v] : volumes_) out.push_back(v);
  return out;
}

Result<VolumeRecord> SandboxManager::GetVolume(const std::string& name) const {
  MutexLock lock(vol_mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return NotFound("volume '" + name + "' does not exist");
  return it->second;
}

Result<kernel::btrfs::Usage> SandboxManager::VolumeUsage(const std::string& name) const {
  PDK_TRY(GetVolume(name).status());
  if (!disk_) return Unimplemented("this paddockd has no disk pool (--disk-pool SIZE): disk use is not counted");
  return disk_->Usage(VolumeDir(name));
}

Status SandboxManager::RemoveVolume(const std::string& name) {
  {
    MutexLock lock(vol_mu_);
    if (!volumes_.count(name)) return NotFound("volume '" + name + "' does not exist");
    {
      MutexLock sandboxes(mu_);
      for (const auto& [id, sb] : by_id_)
        for (const auto& v : sb->volumes)
          if (v.name == name && !v.host)
            return FailedPrecondition("volume " + name + " is in use: sandbox " + id + " mounts it at " + v.path);
    }
    PDK_TRY(store_->RemoveVolume(name));
    volumes_.erase(name);
  }
  std::string trash = sandbox_trash_dir_ + "/volume-" + name + "-" + RandomHex(4);
  if (::rename(VolumeDir(name).c_str(), trash.c_str()) == 0) (void)RemoveTree(trash);
  return Status::Ok();
}

}  // namespace paddock
