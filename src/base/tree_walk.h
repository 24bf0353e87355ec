// A folder tree walked depth first without recursion, holding one
// descriptor of it whatever its depth (a sandbox can nest folders thousands
// deep): the walk climbs back up through "..", checking that it lands where
// it came from, so a folder moved meanwhile ends the walk with an error
// instead of taking it outside the tree. Symlinks are never followed.
#pragma once

#include <sys/stat.h>

#include <functional>
#include <string>

#include "base/fd.h"
#include "base/status.h"

namespace paddock {

struct TreeWalk {
  // Each entry of a folder, by that folder's fd, with its lstat and its path
  // relative to the root; for a folder, returning true enters it.
  std::function<Result<bool>(int dir, const std::string& name, const struct stat& st, const std::string& rel)> visit;
  // A folder entered, by its own fd (checked to be what `visit` saw).
  std::function<Status(int dir, const std::string& name, const std::string& rel)> enter;
  // Done with a folder entered, by its parent's fd, once climbed back to it.
  std::function<Status(int parent, const std::string& name, const struct stat& st, const std::string& rel)> leave;
};

// Walks what the folder `root` holds (not `root` itself); `root_path` and
// `doing` ("copied", "archived") are for messages.
Status WalkTree(UniqueFd root, const std::string& root_path, const TreeWalk& walk, const char* doing);

}  // namespace paddock
