#include "base/units.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace paddock {

Result<int64_t> ParseSize(const std::string& text) {
  if (text.empty()) return InvalidArgument("empty size");
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || v < 0 || !std::isfinite(v))
    return InvalidArgument("size '" + text + "' is not a number of bytes (like 512m or 2g)");
  std::string unit(end);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 1;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") mult = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  else return InvalidArgument("size '" + text + "' has an unknown unit '" + unit + "'");
  double bytes = v * mult;
  if (bytes > 9.0e18) return InvalidArgument("size '" + text + "' is too large");
  return static_cast<int64_t>(bytes);
}

std::string FormatTime(int64_t unix_ms) {
  if (unix_ms <= 0) return "";
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(unix_ms % 1000));
  return buf;
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  for (size_t i = 0; i <= text.size();) {
    size_t j = std::min(text.find(',', i), text.size());
    if (j > i) out.push_back(text.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

}  // namespace paddock
