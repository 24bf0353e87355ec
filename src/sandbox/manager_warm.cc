// Warm shells: sandboxes-to-be kept ready per template and per image.
#include "sandbox/manager.h"

#include <algorithm>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "base/fs.h"
#include "base/ids.h"
#include "sandbox/manager_parts.h"

namespace paddock {

using namespace manager_detail;

// ---- Warm shells ----

Result<std::unique_ptr<SandboxManager::WarmShell>> SandboxManager::MakeWarmShell(
    const Template& tmpl) {
  auto warm = std::make_unique<WarmShell>();
  warm->key = "warm-" + RandomHex(6);
  warm->dir = sandboxes_dir_ + "/" + warm->key;
  PDK_ASSIGN_OR_RETURN(warm->ids, id_ranges_.Reserve());
  auto made = [&]() -> Status {
    PDK_TRY(PrepareSandboxDir(warm->dir, warm->ids.host_first()));
    PDK_ASSIGN_OR_RETURN(warm->cgroup, cgroups_->Create(warm->key, {}));
    if (network_) {
      PDK_ASSIGN_OR_RETURN(warm->slot, network_->Acquire());
    }
    kernel::user::IdRange ids;
    ids.host_first = warm->ids.host_first();
    PDK_ASSIGN_OR_RETURN(warm->shell,
                         PrepareShell(tmpl, warm->dir, ids, warm->cgroup.get(), warm->slot.get()));
    return Status::Ok();
  }();
  if (!made.ok()) {
    DiscardWarmShell(std::move(warm));
    return made;
  }
  return warm;
}

void SandboxManager::KeepImageWarm(const std::string& image_id) {
  if (opts_.warm_shells == 0 || opts_.warm_images == 0) return;
  std::vector<std::unique_ptr<WarmShell>> evicted;
  {
    MutexLock lock(warm_mu_);
    auto it = std::find(warm_images_.begin(), warm_images_.end(), image_id);
    if (it != warm_images_.end() && it == warm_images_.begin()) return;  // already the most recent
    if (it != warm_images_.end()) warm_images_.erase(it);
    warm_images_.push_front(image_id);
    while (warm_images_.size() > opts_.warm_images) {
      auto& shells = warm_[warm_images_.back()];
      for (auto& s : shells) evicted.push_back(std::move(s));
      warm_.erase(warm_images_.back());
      warm_images_.pop_back();
    }
  }
  warm_cv_.NotifyAll();
  for (auto& w : evicted) DiscardWarmShell(std::move(w));
}

void SandboxManager::DropWarmImages(const std::string& image_id) {
  std::vector<std::unique_ptr<WarmShell>> dropped;
  {
    MutexLock lock(warm_mu_);
    for (auto it = warm_images_.begin(); it != warm_images_.end();) {
      if (!image_id.empty() && *it != image_id) {
        ++it;
        continue;
      }
      for (auto& s : warm_[*it]) dropped.push_back(std::move(s));
      warm_.erase(*it);
      it = warm_images_.erase(it);
    }
  }
  for (auto& w : dropped) DiscardWarmShell(std::move(w));
}

std::unique_ptr<SandboxManager::WarmShell> SandboxManager::TakeWarmShell(const std::string& key) {
  std::unique_ptr<WarmShell> warm;
  {
    MutexLock lock(warm_mu_);
    auto it = warm_.find(key);
    if (it == warm_.end() || it->second.empty()) return nullptr;
    warm = std::move(it->second.front());
    it->second.pop_front();
  }
  warm_cv_.NotifyAll();  // the refill thread makes its successor
  return warm;
}

// Kills the shell, removes its cgroup and folder and gives back its id
// range (unless a sandbox took the lease).
void SandboxManager::DiscardWarmShell(std::unique_ptr<WarmShell> warm) {
  warm->shell.reset();
  if (warm->slot) network_->Release(std::move(warm->slot));
  if (warm->cgroup) (void)warm->cgroup->Destroy();
  (void)RemoveTree(warm->dir);
}

size_t SandboxManager::warm_shells_ready() const {
  MutexLock lock(warm_mu_);
  size_t n = 0;
  for (const auto& [name, shells] : warm_) n += shells.size();
  return n;
}

// Keeps opts_.warm_shells ready per built-in template and per image kept
// warm, one at a time; backs off for a second after a failure (a template
// that cannot be built, a full host). An image removed meanwhile is no
// longer kept warm: a shell made for it is discarded.
void SandboxManager::RefillWarmShells() {
  MutexLock lock(warm_mu_);
  while (!stopping_) {
    std::string key;
    bool image = false;
    for (const auto& name : opts_.warm_templates)
      if (key.empty() && warm_[name].size() < opts_.warm_shells) key = name;
    for (const auto& id : warm_images_)
      if (key.empty() && warm_[id].size() < opts_.warm_shells) key = id, image = true;
    if (key.empty()) {
      warm_cv_.Wait(lock);
      continue;
    }
    lock.Unlock();
    auto tmpl = image ? templates_.ForImage(key) : templates_.Get(key);
    auto warm = tmpl.ok() ? MakeWarmShell(*tmpl) : tmpl.status();
    lock.Lock();
    bool wanted = !image || std::find(warm_images_.begin(), warm_images_.end(), key) != warm_images_.end();
    if (warm.ok() && wanted) {
      warm_[key].push_back(std::move(*warm));
    } else if (warm.ok()) {
      lock.Unlock();
      DiscardWarmShell(std::move(*warm));
      lock.Lock();
    } else if (image && tmpl.status().code() == StatusCode::kNotFound) {
      warm_images_.erase(std::remove(warm_images_.begin(), warm_images_.end(), key), warm_images_.end());
    } else {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      while (!stopping_ && warm_cv_.WaitUntil(lock, deadline)) {
      }
    }
  }
}

}  // namespace paddock
