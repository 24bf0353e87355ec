// A single-threaded epoll loop with one-shot timers; paddock-init runs on it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <unordered_map>

#include "base/fd.h"
#include "base/status.h"

namespace paddock::init {

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;

  Status Init();
  // Watches `fd` (not owned) for `events`; the handler may Remove any fd, itself included.
  Status Add(int fd, uint32_t events, Handler handler);
  Status Modify(int fd, uint32_t events);
  void Remove(int fd);
  // Runs `fn` once, `delay_ms` from now. Returns an id for CancelTimer.
  uint64_t AddTimer(int delay_ms, std::function<void()> fn);
  void CancelTimer(uint64_t id);
  // Waits for and dispatches one batch of events and due timers.
  void RunOnce();

 private:
  struct Entry {
    uint64_t token;
    Handler handler;
  };
  UniqueFd epfd_;
  uint64_t next_token_ = 1;
  std::unordered_map<int, Entry> by_fd_;
  std::unordered_map<uint64_t, int> fd_by_token_;
  std::multimap<int64_t, std::pair<uint64_t, std::function<void()>>> timers_;
};

}  // namespace paddock::init
