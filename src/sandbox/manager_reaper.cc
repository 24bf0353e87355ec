// The reaper: timeouts, idle sandboxes, auto-deletes and archives of
// long-stopped sandboxes, acted on off the caller's thread.
#include <algorithm>

#include "sandbox/manager.h"

#include "sandbox/manager_parts.h"

namespace paddock {
namespace {

// What the reaper should do to a sandbox as of `i` at `now_ms`.
enum class Due { kNothing, kTimeout, kIdle, kExpired, kArchive };

// `last_active_ms`: its latest activity, exec or file operation or proxied
// connection; `archive_after_s`: paddockd's default.
Due DueFor(const SandboxInfo& i, int64_t last_active_ms, int64_t now_ms, int64_t archive_after_s) {
  if (i.timeout_at_ms > 0 && i.timeout_at_ms <= now_ms && i.state != SandboxState::kStopped &&
      !(i.on_timeout == TimeoutAction::kPause && i.state == SandboxState::kPaused))
    return Due::kTimeout;
  if (i.idle_timeout_s > 0 && i.state == SandboxState::kRunning &&
      last_active_ms + i.idle_timeout_s * 1000 <= now_ms)
    return Due::kIdle;
  if (i.state == SandboxState::kStopped && i.auto_delete_after_s > 0 && i.stopped_at_ms > 0 &&
      i.stopped_at_ms + i.auto_delete_after_s * 1000 <= now_ms)
    return Due::kExpired;
  if (i.archive_after_s != 0) archive_after_s = i.archive_after_s;
  if (i.state == SandboxState::kStopped && archive_after_s > 0 && i.archived_at_ms == 0 && i.stopped_at_ms > 0 &&
      i.stopped_at_ms + archive_after_s * 1000 <= now_ms)
    return Due::kArchive;
  return Due::kNothing;
}

}  // namespace

// Finds what is due from the published snapshots, without waiting for any
// transition in progress, and hands each action to the reaper's threads:
// one slow action (a stop's grace period) delays no other. Archives (which
// read a whole layer) run at most kMaxArchiving at once, so that a crowd of
// long-stopped sandboxes never holds the threads timeouts need.
int SandboxManager::Reap(int64_t now_ms) {
  int started = 0;
  for (const auto& info : List()) {
    Due due = DueFor(info, info.last_active_ms, now_ms, opts_.default_archive_after_s);
    if (due == Due::kNothing) continue;
    {
      MutexLock lock(mu_);
      if (auto failed = archive_failed_ms_.find(info.id); failed != archive_failed_ms_.end()) {
        if (info.state != SandboxState::kStopped) {
          archive_failed_ms_.erase(failed);
        } else if (due == Due::kArchive && now_ms - failed->second < (now_ms - info.stopped_at_ms) / 2 + 1000) {
          continue;  // tried lately: again once it has been stopped twice as long
        }
      }
      if (due == Due::kArchive && archiving_ >= kMaxArchiving) continue;  // the next round
      if (!reaping_.insert(info.id).second) continue;  // its action is under way
      if (due == Due::kArchive) ++archiving_;
    }
    ++started;
    reaper_.Post([this, id = info.id, now_ms, archive = due == Due::kArchive] {
      ReapOne(id, now_ms);
      MutexLock lock(mu_);
      reaping_.erase(id);
      if (archive) --archiving_;
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
  // Again, under its lock: it may have changed.
  Due due = DueFor(i, std::max(i.last_active_ms, sb.proxied_ms.load(std::memory_order_relaxed)), now_ms,
                   opts_.default_archive_after_s);
  if (due == Due::kExpired) {
    (void)DeleteLocked(sb);
    return;
  }
  if (due == Due::kArchive) {
    // A failure is in the journal; the next try waits as long again.
    if (Status s = ArchiveLayerLocked(sb); !s.ok()) {
      (void)store_->Journal(id, "archive", "failed", s.ToString());
      MutexLock lock(mu_);
      archive_failed_ms_[id] = now_ms;
    }
    return;
  }
  if (due == Due::kIdle) {
    std::string idle = std::to_string(i.idle_timeout_s) + " s idle";
    (void)store_->Journal(i.id, "idle", "intent", std::string(TimeoutActionName(i.on_idle)) + " after " + idle);
    Status s = i.on_idle == TimeoutAction::kPause ? PauseLocked(sb) : StopLocked(sb, -1);
    (void)store_->Journal(id, "idle", s.ok() ? "done" : "failed", s.ToString());
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
