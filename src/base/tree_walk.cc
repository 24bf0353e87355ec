#include "base/tree_walk.h"

#include <fcntl.h>

#include <vector>

#include "base/fs.h"

namespace paddock {

namespace {

bool SameFile(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

// A folder on the way down: its name, what it is, the names in it not walked yet.
struct Level {
  std::string name;
  struct stat st;
  std::vector<std::string> names;
  size_t next = 0;
};

}  // namespace

Status WalkTree(UniqueFd fd, const std::string& root_path, const TreeWalk& walk, const char* doing) {
  std::vector<Level> down(1);
  if (::fstat(fd.get(), &down[0].st) != 0) return Status::Errno("stat " + root_path);
  PDK_ASSIGN_OR_RETURN(down[0].names, NamesIn(fd.get(), root_path));
  auto rel = [&](const std::string& name) {
    std::string p;
    for (size_t i = 1; i < down.size(); ++i) p += down[i].name + "/";
    return p + name;
  };
  auto where = [&](const std::string& name) { return root_path + "/" + rel(name); };
  for (;;) {
    Level& level = down.back();
    if (level.next == level.names.size()) {
      if (down.size() == 1) return Status::Ok();
      Level done = std::move(level);
      down.pop_back();
      UniqueFd up(::openat(fd.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      struct stat st;
      if (!up || ::fstat(up.get(), &st) != 0) return Status::Errno("open the folder above " + where(done.name));
      if (!SameFile(st, down.back().st))
        return FailedPrecondition("folder " + where(done.name) + " moved while it was being " + doing);
      fd = std::move(up);
      if (walk.leave) PDK_TRY(walk.leave(fd.get(), done.name, done.st, rel(done.name)));
      continue;
    }
    const std::string name = level.names[level.next++];
    struct stat st;
    if (::fstatat(fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Status::Errno("stat " + where(name));
    PDK_ASSIGN_OR_RETURN(bool enter, walk.visit(fd.get(), name, st, rel(name)));
    if (!enter || !S_ISDIR(st.st_mode)) continue;
    UniqueFd sub(::openat(fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat opened;
    if (!sub || ::fstat(sub.get(), &opened) != 0) return Status::Errno("open folder " + where(name));
    if (!SameFile(opened, st))
      return FailedPrecondition("folder " + where(name) + " changed while it was being " + doing);
    PDK_ASSIGN_OR_RETURN(std::vector<std::string> names, NamesIn(sub.get(), where(name)));
    if (walk.enter) PDK_TRY(walk.enter(sub.get(), name, rel(name)));
    down.push_back({name, st, std::move(names)});
    fd = std::move(sub);
  }
}

}  // namespace paddock
