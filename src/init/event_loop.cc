#include "init/event_loop.h"

#include <sys/epoll.h>

#include "base/fs.h"

namespace paddock::init {

Status EventLoop::Init() {
  epfd_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epfd_) return Status::Errno("epoll_create1");
  return Status::Ok();
}

Status EventLoop::Add(int fd, uint32_t events, Handler handler) {
  uint64_t token = next_token_++;
  struct epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = token;
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return Status::Errno("epoll_ctl add");
  by_fd_[fd] = Entry{token, std::move(handler)};
  fd_by_token_[token] = fd;
  return Status::Ok();
}

Status EventLoop::Modify(int fd, uint32_t events) {
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return NotFound("fd not in loop");
  struct epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = it->second.token;
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) return Status::Errno("epoll_ctl mod");
  return Status::Ok();
}

void EventLoop::Remove(int fd) {
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return;
  ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  fd_by_token_.erase(it->second.token);
  by_fd_.erase(it);
}

uint64_t EventLoop::AddTimer(int delay_ms, std::function<void()> fn) {
  uint64_t id = next_token_++;
  timers_.emplace(MonotonicNanos() + int64_t{delay_ms} * 1000000, std::make_pair(id, std::move(fn)));
  return id;
}

void EventLoop::CancelTimer(uint64_t id) {
  for (auto it = timers_.begin(); it != timers_.end(); ++it) {
    if (it->second.first == id) {
      timers_.erase(it);
      return;
    }
  }
}

void EventLoop::RunOnce() {
  int timeout = -1;
  if (!timers_.empty()) {
    int64_t wait_ns = timers_.begin()->first - MonotonicNanos();
    timeout = wait_ns <= 0 ? 0 : static_cast<int>(wait_ns / 1000000 + 1);
  }
  struct epoll_event events[64];
  int n = ::epoll_wait(epfd_.get(), events, 64, timeout);
  for (int i = 0; i < n; ++i) {
    // Look the handler up per event: an earlier handler may have removed it.
    auto t = fd_by_token_.find(events[i].data.u64);
    if (t == fd_by_token_.end()) continue;
    Handler h = by_fd_[t->second].handler;  // copy: the handler may remove itself
    h(events[i].events);
  }
  int64_t now = MonotonicNanos();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    auto fn = std::move(timers_.begin()->second.second);
    timers_.erase(timers_.begin());
    fn();
  }
}

}  // namespace paddock::init
