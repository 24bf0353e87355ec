// WatchTable: directory watches (inotify) owned by a connection; events go to
// that connection until it unwatches or disconnects.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "base/fd.h"
#include "init/event_loop.h"
#include "init/hub.h"

namespace paddock::init {

class WatchTable {
 public:
  WatchTable(EventLoop* loop, EventSink* sink) : loop_(loop), sink_(sink) {}

  // {"path", "recursive"} -> {"watch_id"}; events: {"event":"fs","watch_id","name","op"}
  // with op one of create, write, remove, rename, chmod; name relative to path.
  Result<Reply> Watch(const json& req, ConnId conn);
  Result<Reply> Unwatch(const json& req, ConnId conn);
  void DropConnection(ConnId conn);

 private:
  struct WatchEntry {
    uint64_t id;
    ConnId conn;
    std::string root;
    bool recursive;
    UniqueFd fd;
    std::unordered_map<int, std::string> dirs;  // inotify wd -> path relative to root
  };
  void AddDir(WatchEntry* w, const std::string& rel, bool report_existing);
  void Report(WatchEntry* w, const std::string& name, const char* op);
  void OnEvents(WatchEntry* w);

  EventLoop* loop_;
  EventSink* sink_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<WatchEntry>> watches_;
};

}  // namespace paddock::init
