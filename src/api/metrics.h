// Metrics in the Prometheus text format: counters and latency histograms
// with labels, kept in memory. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/mutex.h"

namespace paddock::api {

class Metrics {
 public:
  // Adds 1 to counter `name` with `labels` (e.g. {{"code","not_found"}}).
  void Count(const std::string& name, const std::map<std::string, std::string>& labels = {});
  // Records one observation, in seconds, in histogram `name`.
  void Observe(const std::string& name, const std::map<std::string, std::string>& labels,
               double seconds);
  // Sets gauge `name` (computed at scrape time by the caller).
  void Set(const std::string& name, const std::map<std::string, std::string>& labels, double v);
  // Sets gauge `name` to exactly these series (those of a scrape before
  // that are not among them go: a deleted sandbox's).
  using Series = std::vector<std::pair<std::map<std::string, std::string>, double>>;
  void Replace(const std::string& name, const Series& series);
  // Declares HELP and TYPE text for a metric family.
  void Describe(const std::string& name, const std::string& type, const std::string& help);
  std::string Render() const;

 private:
  struct Histogram {
    std::vector<uint64_t> buckets;  // cumulative counts per bound, as rendered
    uint64_t count = 0;
    double sum = 0;
  };
  static std::string Key(const std::map<std::string, std::string>& labels);
  mutable Mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> meta_ GUARDED_BY(mu_);  // name -> type, help
  std::map<std::string, std::map<std::string, double>> counters_ GUARDED_BY(mu_);    // also gauges
  std::map<std::string, std::map<std::string, Histogram>> histograms_ GUARDED_BY(mu_);
};

}  // namespace paddock::api
