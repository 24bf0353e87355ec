// The reaper: timeouts and auto-deletes, acted on off the caller's thread.
#include "sandbox/manager.h"

#include "sandbox/manager_parts.h"

namespace paddock {
namespace {

// What the reaper should do to a sandbox as of `i` at `now_ms`.
enum class Due { kNothing, kTimeout, kExpired };

Due DueFor(const SandboxInfo& i, int64_t now_ms) {
  if (i.timeout_at_ms > 0 && i.timeout_at_ms <= now_ms && i.state != SandboxState::kStopped &&
      !(i.on_timeout == TimeoutAction::kPause && i.state == SandboxState::kPaused))
    return Due::kTimeout;
  if (i.state == SandboxState::kStopped && i.auto_delete_after_s > 0 && i.stopped_at_ms > 0 &&
      i.stopped_at_ms + i.auto_delete_after_s * 1000 <= now_ms)
    return Due::kExpired;
  return Due::kNothing;
}

}  // namespace

// Finds what is due from the published snapshots, without waiting for any
// transition in progress, and hands each action to the reaper's threads:
// one slow action (a stop's grace period) delays no other.
int SandboxManager::Reap(int64_t now_ms) {
  int started = 0;
  for (const auto& info : List()) {
    if (DueFor(info, now_ms) == Due::kNothing) continue;
    {
      MutexLock lock(mu_);
      if (!reaping_.insert(info.id).second) continue;  // its action is under way
    }
    ++started;
    reaper_.Post([this, id = info.id, now_ms] {
      ReapOne(id, now_ms);
      MutexLock lock(mu_);
      reaping_.erase(id);
    });
  }
  return started;
}

void SandboxManager::FinishReaping() { reaper_.Drain(); }

void SandboxManager::ReapOne(const std::string& id, int64_t now_ms) {
  auto found = Find(id);
  if (!found.ok()) return;  // deleted meanwhile
  Sandbox& sb = **found;
  MutexLock lock(sb.mu);
  if (!StillThere(sb, id).ok()) return;
  SandboxInfo& i = sb.info;
  Due due = DueFor(i, now_ms);  // again, under its lock: it may have changed
  if (due == Due::kExpired) {
    (void)DeleteLocked(sb);
    return;
  }
  if (due != Due::kTimeout) return;
  (void)store_->Journal(i.id, "timeout", "intent", TimeoutActionName(i.on_timeout));
  i.timeout_at_ms = 0;
  Status s;
  switch (i.on_timeout) {
    case TimeoutAction::kKill: s = DeleteLocked(sb); break;
    case TimeoutAction::kPause: s = PauseLocked(sb); break;
    case TimeoutAction::kStop: s = StopLocked(sb, -1); break;
  }
  (void)store_->Journal(id, "timeout", s.ok() ? "done" : "failed", s.ToString());
}

}  // namespace paddock
