#include "init/watches.h"

#include <dirent.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

namespace paddock::init {

namespace {
constexpr uint32_t kMask = IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                           IN_ATTRIB | IN_DELETE_SELF | IN_ONLYDIR;

const char* OpName(uint32_t mask) {
  if (mask & (IN_CREATE | IN_MOVED_TO)) return "create";
  if (mask & IN_MODIFY) return "write";
  if (mask & (IN_DELETE | IN_DELETE_SELF)) return "remove";
  if (mask & IN_MOVED_FROM) return "rename";
  if (mask & IN_ATTRIB) return "chmod";
  return nullptr;
}
// The temporary files of atomic writes: watchers see only the final rename.
bool IsInternal(const std::string& name) { return name.rfind(".paddock-write-", 0) == 0; }

}  // namespace

void WatchTable::Report(WatchEntry* w, const std::string& name, const char* op) {
  sink_->Emit(w->conn, json{{"event", "fs"}, {"watch_id", w->id}, {"name", name}, {"op", op}});
}

Result<Reply> WatchTable::Watch(const json& req, ConnId conn) {
  auto path = req.value("path", "");
  if (path.empty() || path[0] != '/') return InvalidArgument("field 'path' must be absolute");
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::Errno("stat " + path);
  if (!S_ISDIR(st.st_mode)) return FailedPrecondition(path + " is not a directory");
  auto w = std::make_unique<WatchEntry>();
  w->id = next_id_++;
  w->conn = conn;
  w->root = path;
  w->recursive = req.value("recursive", false);
  w->fd.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!w->fd) return Status::Errno("inotify_init1");
  AddDir(w.get(), "", /*report_existing=*/false);
  if (w->dirs.empty()) return Status::Errno("inotify_add_watch " + path);
  WatchEntry* raw = w.get();
  PDK_TRY(loop_->Add(raw->fd.get(), EPOLLIN, [this, raw](uint32_t) { OnEvents(raw); }));
  uint64_t id = w->id;
  watches_[id] = std::move(w);
  Reply r;
  r.body["watch_id"] = id;
  return r;
}

// Watches root/rel and, for recursive watches, every directory below it.
// A folder that appeared while watched may already hold entries made before
// its watch existed (inotify's classic race): with `report_existing`, each is
// reported as created.
void WatchTable::AddDir(WatchEntry* w, const std::string& rel, bool report_existing) {
  std::string full = rel.empty() ? w->root : w->root + "/" + rel;
  int wd = ::inotify_add_watch(w->fd.get(), full.c_str(), kMask);
  if (wd < 0) return;
  w->dirs[wd] = rel;
  if (!w->recursive) return;
  DIR* d = ::opendir(full.c_str());
  if (!d) return;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string child = rel.empty() ? name : rel + "/" + name;
    if (report_existing && !IsInternal(name)) Report(w, child, "create");
    if (e->d_type == DT_DIR) AddDir(w, child, report_existing);
  }
  ::closedir(d);
}

void WatchTable::OnEvents(WatchEntry* w) {
  alignas(struct inotify_event) char buf[16384];
  for (;;) {
    ssize_t n = ::read(w->fd.get(), buf, sizeof buf);
    if (n <= 0) return;
    std::string last_name, last_op;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(p);
      p += sizeof(struct inotify_event) + ev->len;
      auto dir = w->dirs.find(ev->wd);
      if (dir == w->dirs.end()) continue;
      if (ev->mask & IN_IGNORED) {
        w->dirs.erase(dir);
        continue;
      }
      const char* op = OpName(ev->mask);
      if (!op) continue;
      std::string name = ev->len ? std::string(ev->name) : std::string();
      if (!dir->second.empty()) name = name.empty() ? dir->second : dir->second + "/" + name;
      bool new_dir = w->recursive && (ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO));
      if ((ev->mask & IN_DELETE_SELF) && !dir->second.empty()) continue;  // reported by parent
      if (ev->len && IsInternal(ev->name)) continue;
      if (!(name == last_name && op == last_op)) Report(w, name, op);  // coalesce write bursts
      last_name = name;
      last_op = op;
      if (new_dir) AddDir(w, name, /*report_existing=*/true);
    }
  }
}

Result<Reply> WatchTable::Unwatch(const json& req, ConnId conn) {
  uint64_t id = req.value("watch_id", uint64_t{0});
  auto it = watches_.find(id);
  if (it == watches_.end() || it->second->conn != conn)
    return NotFound("no watch with id " + std::to_string(id));
  loop_->Remove(it->second->fd.get());
  watches_.erase(it);
  return Reply{};
}

void WatchTable::DropConnection(ConnId conn) {
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (it->second->conn == conn) {
      loop_->Remove(it->second->fd.get());
      it = watches_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace paddock::init
