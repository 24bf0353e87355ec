#include "api/http_relay.h"

#include <sys/socket.h>

#include "api/http_server.h"

namespace paddock::api {

UniqueFd UpstreamPool::Take(const std::string& key) {
  auto now = std::chrono::steady_clock::now();
  MutexLock lock(mu_);
  auto it = idle_.find(key);
  if (it == idle_.end()) return UniqueFd();
  auto& idle = it->second;
  while (!idle.empty()) {
    Idle entry = std::move(idle.back());
    idle.pop_back();
    if (now - entry.since > kIdleFor) continue;
    char probe;
    ssize_t n = ::recv(entry.fd.get(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) return std::move(entry.fd);  // open, nothing pending
  }
  idle_.erase(it);
  return UniqueFd();
}

void UpstreamPool::GiveBack(const std::string& key, UniqueFd fd) {
  auto now = std::chrono::steady_clock::now();
  MutexLock lock(mu_);
  if (now - last_sweep_ > kIdleFor) SweepLocked(now);
  auto& idle = idle_[key];
  if (idle.size() < kMaxPerKey) idle.push_back({std::move(fd), now});
}

size_t UpstreamPool::idle() const {
  MutexLock lock(mu_);
  size_t n = 0;
  for (const auto& [key, idle] : idle_) n += idle.size();
  return n;
}

void UpstreamPool::SweepLocked(std::chrono::steady_clock::time_point now) {
  last_sweep_ = now;
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& idle = it->second;
    std::erase_if(idle, [&](const Idle& e) { return now - e.since > kIdleFor; });
    it = idle.empty() ? idle_.erase(it) : std::next(it);
  }
}

Response BadGatewayResponse(const std::string& message, const Request& req) {
  return BadGatewayResponse(message, req.version(), req.keep_alive());
}

Response BadGatewayResponse(const std::string& message, unsigned version, bool keep_alive) {
  Response res = ErrorResponse(Unavailable(message), version, keep_alive);
  res.result(http::status::bad_gateway);
  return res;
}

}  // namespace paddock::api
