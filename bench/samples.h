// Latency samples of a benchmark, in milliseconds, and their percentiles.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace paddock::bench {

struct Samples {
  std::vector<double> ms;
  // From two MonotonicNanos() readings.
  void Add(int64_t t0_ns, int64_t t1_ns) { ms.push_back((t1_ns - t0_ns) / 1e6); }
  // The q-quantile (0.5: p50), nearest rank; 0 with no samples.
  double P(double q) {
    if (ms.empty()) return 0;
    std::sort(ms.begin(), ms.end());
    return ms[std::min(ms.size() - 1, static_cast<size_t>(q * (ms.size() - 1) + 0.5))];
  }
};

}  // namespace paddock::bench
