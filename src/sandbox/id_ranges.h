// IdRanges: the host uid/gid ranges that sandboxes' user namespaces map,
// 65,536 ids each, `count` of them from `base`. A range is held by a
// move-only Lease (a warm shell's, then its sandbox's, then its teardown's)
// and given back when the lease goes. Nothing is stored: at start-up each
// recorded sandbox claims its range again. Thread-safe; leases may outlive
// the IdRanges that made them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"

namespace paddock {

class IdRanges {
  struct Pool;

 public:
  static constexpr uint32_t kIdsPerRange = 65536;

  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept { *this = std::move(other); }
    Lease& operator=(Lease&& other) noexcept;
    ~Lease() { GiveBack(); }

    explicit operator bool() const { return pool_ != nullptr; }
    uint32_t host_first() const { return host_first_; }
    // Lets go of the range without giving it back: a process that outlived
    // SIGKILL may still run as its ids. The next start-up frees it.
    void Abandon() { pool_.reset(); }

   private:
    friend class IdRanges;
    Lease(std::shared_ptr<Pool> pool, uint32_t host_first) : pool_(std::move(pool)), host_first_(host_first) {}
    void GiveBack();

    std::shared_ptr<Pool> pool_;
    uint32_t host_first_ = 0;
  };

  IdRanges(uint32_t base, uint32_t count);
  // The lowest free range; ResourceExhausted when all are held.
  Result<Lease> Reserve();
  // Start-up: the range starting at `host_first` that a record holds.
  // Internal if it is outside the pool or held already.
  Result<Lease> Claim(uint32_t host_first);

 private:
  struct Pool {
    Mutex mu;
    uint32_t base = 0;
    std::vector<bool> used GUARDED_BY(mu);
  };
  std::shared_ptr<Pool> pool_;
};

}  // namespace paddock
