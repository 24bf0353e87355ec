// Parsing of the sizes, times and lists people type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace paddock {

// "536870912", "512m", "512MiB", "1g", "1.5G", "64k": bytes (powers of 1024).
Result<int64_t> ParseSize(const std::string& text);
// RFC 3339 UTC with milliseconds, "2026-11-22T22:18:00.000Z"; "" for 0.
std::string FormatTime(int64_t unix_ms);
// "a,b,,c" -> {"a", "b", "c"}: comma-separated items, empty ones dropped.
std::vector<std::string> SplitList(const std::string& text);

}  // namespace paddock
