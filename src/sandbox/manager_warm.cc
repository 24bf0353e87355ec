// Warm shells: sandboxes-to-be kept ready per template and per image.
#include "sandbox/manager.h"

#include <algorithm>
#include <cstring>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/ids.h"
#include "sandbox/manager_parts.h"

namespace paddock {

using namespace manager_detail;

// ---- Warm shells ----

// A template's name, an image's id or a snapshot's key; an image or a
// snapshot removed meanwhile is no longer kept warm.
Result<std::unique_ptr<SandboxManager::WarmShell>> SandboxManager::MakeWarmShell(const std::string& key) {
  bool built_in = std::find(opts_.warm_templates.begin(), opts_.warm_templates.end(), key) !=
                  opts_.warm_templates.end();
  bool snapshot = key.rfind(kSnapshotKey, 0) == 0;
  Result<Template> tmpl = built_in   ? templates_.Get(key)
                          : snapshot ? SnapshotTemplate(key.substr(std::strlen(kSnapshotKey)))
                                     : templates_.ForImage(key);
  if (!tmpl.ok()) {
    if (!built_in && tmpl.status().code() == StatusCode::kNotFound) DropWarm(key);
    return tmpl.status();
  }
  auto warm = std::make_unique<WarmShell>();
  warm->key = "warm-" + RandomHex(6);
  warm->dir = sandboxes_dir_ + "/" + warm->key;
  PDK_ASSIGN_OR_RETURN(warm->ids, id_ranges_.Reserve());
  auto made = [&]() -> Status {
    PDK_TRY(MakeSandboxDir(warm->dir, warm->ids.host_first()));
    PDK_TRY(PlaceFirstBootFiles(warm->dir, warm->ids.host_first(), network_ != nullptr));
    // The limits of a create that names none: what a take then mostly keeps.
    PDK_ASSIGN_OR_RETURN(warm->cgroup, cgroups_->Create(warm->key, WithDefaults({}), {}));
    if (network_) {
      PDK_ASSIGN_OR_RETURN(warm->slot, network_->Acquire());
    }
    kernel::user::IdRange ids;
    ids.host_first = warm->ids.host_first();
    PDK_ASSIGN_OR_RETURN(warm->shell,
                         PrepareShell(*tmpl, warm->dir, ids, warm->cgroup.get(), warm->slot.get()));
    return Status::Ok();
  }();
  if (!made.ok()) {
    DiscardWarmShell(std::move(warm));
    return made;
  }
  return warm;
}

void SandboxManager::KeepWarm(const std::string& key) {
  if (opts_.warm_shells == 0 || opts_.warm_images == 0) return;
  std::vector<std::unique_ptr<WarmShell>> evicted;
  {
    MutexLock lock(warm_mu_);
    auto it = std::find(warm_keys_.begin(), warm_keys_.end(), key);
    if (it != warm_keys_.end() && it == warm_keys_.begin()) return;  // already the most recent
    if (it != warm_keys_.end()) warm_keys_.erase(it);
    warm_keys_.push_front(key);
    (void)warm_.SetTarget(key, opts_.warm_shells, opts_.warm_shells_max);
    while (warm_keys_.size() > opts_.warm_images) {
      for (auto& w : warm_.SetTarget(warm_keys_.back(), 0)) evicted.push_back(std::move(w));
      warm_keys_.pop_back();
    }
  }
  warm_.Discard(std::move(evicted));
}

void SandboxManager::DropWarm(const std::string& key) {
  std::vector<std::unique_ptr<WarmShell>> dropped;
  {
    MutexLock lock(warm_mu_);
    for (auto it = warm_keys_.begin(); it != warm_keys_.end();) {
      if (!key.empty() && *it != key) {
        ++it;
        continue;
      }
      for (auto& w : warm_.SetTarget(*it, 0)) dropped.push_back(std::move(w));
      it = warm_keys_.erase(it);
    }
  }
  warm_.Discard(std::move(dropped));
}

// Kills the shell, removes its cgroup and folder and gives back its id
// range (unless a sandbox took the lease).
void SandboxManager::DiscardWarmShell(std::unique_ptr<WarmShell> warm) {
  warm->shell.reset();
  if (warm->slot) network_->Release(std::move(warm->slot));
  if (warm->cgroup) (void)warm->cgroup->Destroy();
  (void)RemoveTree(warm->dir);
}

}  // namespace paddock
