// A volume's files, without a sandbox: the calls REST serves under
// /v1/volumes/{name}/{file,dir,path} and E2B's volume content API under
// /volumecontent/{id}/{file,dir,path}, the same in both:
//
//   GET    file?path=P                  the file's bytes, streamed
//   PUT    file?path=P[&uid&gid&mode]   writes it (replacing one there) from the body
//   GET    dir?path=P[&depth=N]         its entries, N levels down (1)
//   POST   dir?path=P[&uid&gid&mode&force]  makes it (force: and the folders above)
//   GET    path?path=P                  one entry
//   PATCH  path?path=P  {uid, gid, mode}  changes owner or mode
//   DELETE path?path=P                  removes it, a folder with all in it
//
// An entry: {name, path, type (file|directory|symlink|unknown), mode, uid,
// gid, size, target (symlinks), atime, mtime, ctime}. Safety: see
// sandbox/volume_files.h.
#pragma once

#include <optional>
#include <string>

#include "api/http_server.h"
#include "api/http_util.h"
#include "sandbox/manager.h"

namespace paddock::api {

// PUT .../file: its body goes to a spool file (ServerOptions::body_to_file).
bool IsVolumeUpload(const Request& req, std::string_view prefix);

// One call; `what` is "file", "dir" or "path". The caller turns an error
// into its API's error body; nullopt once the answer was streamed.
Result<std::optional<Response>> VolumeContent(SandboxManager& manager, const std::string& volume,
                                              const std::string& what, const Request& req, const Target& target,
                                              StreamWriter& out);

}  // namespace paddock::api
