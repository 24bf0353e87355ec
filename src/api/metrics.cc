#include "api/metrics.h"

#include <cstdio>
#include <sstream>

namespace paddock::api {

namespace {
// Seconds: from 100 µs to 30 s, fine where sandbox operations live.
const double kBounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10,   30};

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
}  // namespace

std::string Metrics::Key(const std::map<std::string, std::string>& labels) {
  std::string key;
  for (const auto& [k, v] : labels) key += (key.empty() ? "" : ",") + k + "=\"" + Escape(v) + "\"";
  return key;
}

void Metrics::Count(const std::string& name, const std::map<std::string, std::string>& labels) {
  MutexLock lock(mu_);
  counters_[name][Key(labels)] += 1;
}

void Metrics::Set(const std::string& name, const std::map<std::string, std::string>& labels, double v) {
  MutexLock lock(mu_);
  counters_[name][Key(labels)] = v;
}

void Metrics::Replace(const std::string& name, const Series& series) {
  MutexLock lock(mu_);
  auto& family = counters_[name];
  family.clear();
  for (const auto& [labels, v] : series) family[Key(labels)] = v;
}

void Metrics::Observe(const std::string& name, const std::map<std::string, std::string>& labels,
                      double seconds) {
  MutexLock lock(mu_);
  Histogram& h = histograms_[name][Key(labels)];
  if (h.buckets.empty()) h.buckets.assign(std::size(kBounds), 0);
  for (size_t i = 0; i < std::size(kBounds); ++i)
    if (seconds <= kBounds[i]) ++h.buckets[i];
  ++h.count;
  h.sum += seconds;
}

void Metrics::Describe(const std::string& name, const std::string& type, const std::string& help) {
  MutexLock lock(mu_);
  meta_[name] = {type, help};
}

std::string Metrics::Render() const {
  MutexLock lock(mu_);
  std::ostringstream out;
  auto header = [&](const std::string& name, const char* default_type) REQUIRES(mu_) {
    auto m = meta_.find(name);
    if (m != meta_.end()) out << "# HELP " << name << " " << m->second.second << "\n";
    out << "# TYPE " << name << " " << (m != meta_.end() ? m->second.first : default_type) << "\n";
  };
  for (const auto& [name, series] : counters_) {
    header(name, "counter");
    for (const auto& [key, v] : series)
      out << name << (key.empty() ? "" : "{" + key + "}") << " " << Num(v) << "\n";
  }
  for (const auto& [name, series] : histograms_) {
    header(name, "histogram");
    for (const auto& [key, h] : series) {
      std::string sep = key.empty() ? "" : key + ",";
      for (size_t i = 0; i < std::size(kBounds); ++i)
        out << name << "_bucket{" << sep << "le=\"" << Num(kBounds[i]) << "\"} " << h.buckets[i] << "\n";
      out << name << "_bucket{" << sep << "le=\"+Inf\"} " << h.count << "\n";
      out << name << "_sum" << (key.empty() ? "" : "{" + key + "}") << " " << Num(h.sum) << "\n";
      out << name << "_count" << (key.empty() ? "" : "{" + key + "}") << " " << h.count << "\n";
    }
  }
  return out.str();
}

}  // namespace paddock::api
