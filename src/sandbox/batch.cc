#include "sandbox/batch.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

namespace paddock {

bool MayPass(const Status& s) {
  switch (s.code()) {
    case StatusCode::kUnavailable:
    case StatusCode::kResourceExhausted:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

std::vector<Result<SandboxInfo>> CreateBatch(SandboxManager& manager, const SandboxSpec& spec, size_t count,
                                             const BatchOptions& opts) {
  std::vector<Result<SandboxInfo>> results(count, Result<SandboxInfo>(Internal("not attempted")));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < count;) {
      SandboxSpec one = spec;
      if (!spec.name.empty()) one.name = spec.name + "-" + std::to_string(i);
      auto delay = std::chrono::milliseconds(50);
      for (int attempt = 1;; ++attempt) {
        results[i] = manager.Create(one);
        if (results[i].ok() || attempt >= opts.attempts || !MayPass(results[i].status())) break;
        std::this_thread::sleep_for(delay);
        delay *= 2;
      }
    }
  };
  size_t threads = std::clamp<size_t>(opts.parallel, 1, count == 0 ? 1 : count);
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return results;
}

}  // namespace paddock
