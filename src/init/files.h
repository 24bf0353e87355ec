// File operations on the sandbox's own view of its filesystem. paddock-init
// runs after pivot_root, so every path resolves inside the sandbox.
#pragma once

#include <string_view>

#include "init/hub.h"

namespace paddock::init::files {

Result<Reply> Read(const json& req);
Result<Reply> Write(const json& req, std::string_view data);
Result<Reply> Stat(const json& req);
Result<Reply> List(const json& req);
Result<Reply> MakeDir(const json& req);
Result<Reply> Remove(const json& req);
Result<Reply> Rename(const json& req);

// The entry describing `path` (lstat), as Stat and List return it.
Result<json> Describe(const std::string& path);

}  // namespace paddock::init::files
