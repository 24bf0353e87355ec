#include "sandbox/id_ranges.h"

#include <string>

namespace paddock {

IdRanges::Lease& IdRanges::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    GiveBack();
    pool_ = std::move(other.pool_);
    host_first_ = other.host_first_;
  }
  return *this;
}

void IdRanges::Lease::GiveBack() {
  if (!pool_) return;
  // Ours may be the pool's last reference: the lock goes before the pool.
  std::shared_ptr<Pool> pool = std::move(pool_);
  MutexLock lock(pool->mu);
  pool->used[(host_first_ - pool->base) / kIdsPerRange] = false;
}

IdRanges::IdRanges(uint32_t base, uint32_t count) : pool_(std::make_shared<Pool>()) {
  pool_->base = base;
  MutexLock lock(pool_->mu);
  pool_->used.assign(count, false);
}

Result<IdRanges::Lease> IdRanges::Reserve() {
  MutexLock lock(pool_->mu);
  for (size_t i = 0; i < pool_->used.size(); ++i) {
    if (!pool_->used[i]) {
      pool_->used[i] = true;
      return Lease(pool_, pool_->base + static_cast<uint32_t>(i) * kIdsPerRange);
    }
  }
  return ResourceExhausted("all " + std::to_string(pool_->used.size()) + " id ranges are in use");
}

Result<IdRanges::Lease> IdRanges::Claim(uint32_t host_first) {
  MutexLock lock(pool_->mu);
  size_t i = (host_first - pool_->base) / kIdsPerRange;
  if (host_first < pool_->base || (host_first - pool_->base) % kIdsPerRange != 0 || i >= pool_->used.size())
    return Internal("id range " + std::to_string(host_first) + " is outside this host's pool");
  if (pool_->used[i]) return Internal("id range " + std::to_string(host_first) + " is held twice");
  pool_->used[i] = true;
  return Lease(pool_, host_first);
}

}  // namespace paddock
