// WarmPool: things made ahead of need (warm shells, network slots), kept by
// key and refilled by one background thread, so that taking one costs the
// caller nothing but a lock.
//
// Each key has a target. The refill thread makes one item at a time for the
// first key (in the order targets were first set) below its target; a key
// whose make failed is tried again after `retry_after`, other keys first.
// A key may have a ceiling above its target: each Take that finds none
// raises the target by one, up to the ceiling, so that a pool learns the
// bursts it is asked for; once nothing was asked for `idle_life`, the
// target falls back. Items given back with Put are kept beyond the target,
// up to a cap; surplus items are discarded once idle_life passes with no
// take. Items are discarded through the `discard` hook, never under the
// pool's lock. Thread-safe.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"

namespace paddock {

template <typename T>
class WarmPool {
 public:
  using Item = std::unique_ptr<T>;
  struct Hooks {
    std::function<Result<Item>(const std::string& key)> make;
    std::function<void(Item)> discard;
  };
  struct Options {
    std::chrono::milliseconds retry_after{1000};
    std::chrono::milliseconds idle_life{60000};
    const char* thread_name = "pdk-warm";  // the refill thread's, as ps and top show it (15 bytes at most)
  };

  explicit WarmPool(Hooks hooks, Options opts = {}) : hooks_(std::move(hooks)), opts_(opts) {}
  ~WarmPool() { Stop(); }
  WarmPool(const WarmPool&) = delete;
  WarmPool& operator=(const WarmPool&) = delete;

  // Starts the refill thread (once).
  void Start() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    if (!stopping_ && !refill_.joinable()) refill_ = std::thread([this] { Refill(); });
  }
  // Joins the refill thread and discards every ready item. Afterwards Take
  // finds nothing and Put hands every item back.
  void Stop() EXCLUDES(mu_) {
    std::vector<Item> left;
    {
      MutexLock lock(mu_);
      stopping_ = true;
      for (auto& e : entries_)
        for (auto& item : e.items) left.push_back(std::move(item));
      entries_.clear();
    }
    cv_.NotifyAll();
    if (refill_.joinable()) refill_.join();
    for (auto& item : left) hooks_.discard(std::move(item));
  }

  // Keeps `count` items of `key` ready (0: the key is dropped), grown by
  // misses up to `ceiling` (no growth at or below `count`); a target grown
  // before stays, within the new bounds. Returns the ready items beyond
  // the new target, for the caller to discard once it holds no lock of its
  // own (see Discard).
  [[nodiscard]] std::vector<Item> SetTarget(const std::string& key, size_t count, size_t ceiling = 0)
      EXCLUDES(mu_) {
    std::vector<Item> extra;
    {
      MutexLock lock(mu_);
      if (stopping_) return extra;
      auto it = FindEntry(key);
      if (it == entries_.end()) {
        if (count == 0) return extra;
        it = entries_.insert(entries_.end(), Entry{.key = key});
      }
      it->base = count;
      it->ceiling = std::max(count, ceiling);
      it->target = std::clamp(it->target, it->base, it->ceiling);
      while (it->items.size() > it->target) {
        extra.push_back(std::move(it->items.back()));
        it->items.pop_back();
      }
      if (count == 0) entries_.erase(it);
    }
    cv_.NotifyAll();
    return extra;
  }
  void Discard(std::vector<Item> items) {
    for (auto& item : items) hooks_.discard(std::move(item));
  }

  // The oldest ready item of `key`, or null (which raises the key's target
  // if it may grow); the refill thread makes its successor.
  Item Take(const std::string& key) EXCLUDES(mu_) {
    Item item;
    {
      MutexLock lock(mu_);
      auto it = FindEntry(key);
      if (it == entries_.end()) return nullptr;
      last_take_ = std::chrono::steady_clock::now();
      if (it->items.empty()) {
        if (it->target >= it->ceiling) return nullptr;
        ++it->target;
      } else {
        item = std::move(it->items.front());
        it->items.pop_front();
      }
    }
    cv_.NotifyAll();
    return item;
  }
  // The targets of all keys, and of `key` (0 for no such key), as they are
  // now (grown by misses or not).
  size_t target() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    size_t n = 0;
    for (const auto& e : entries_) n += e.target;
    return n;
  }
  size_t target(const std::string& key) const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    for (const auto& e : entries_)
      if (e.key == key) return e.target;
    return 0;
  }

  // Keeps an item given back, to be taken after every other ready one of
  // its key, while fewer than `cap` of them are ready. Otherwise (or once
  // stopped) hands it back: null when kept.
  [[nodiscard]] Item Put(const std::string& key, Item item, size_t cap) EXCLUDES(mu_) {
    {
      MutexLock lock(mu_);
      if (stopping_) return item;
      auto it = FindEntry(key);
      if (it == entries_.end()) it = entries_.insert(entries_.end(), Entry{.key = key});
      if (it->items.size() >= cap) return item;
      it->items.push_back(std::move(item));
    }
    cv_.NotifyAll();  // a surplus to retire once idle
    return nullptr;
  }

  size_t ready() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    size_t n = 0;
    for (const auto& e : entries_) n += e.items.size();
    return n;
  }
  size_t ready(const std::string& key) const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    for (const auto& e : entries_)
      if (e.key == key) return e.items.size();
    return 0;
  }

 private:
  struct Entry {
    std::string key;
    size_t target = 0;   // what the refill keeps ready now
    size_t base = 0;     // as set; where an idle pool's target falls back
    size_t ceiling = 0;  // how far misses may raise the target
    std::deque<Item> items;  // taken from the front, made or given back to the back
    std::chrono::steady_clock::time_point retry_at{};  // after a failed make
  };
  using Entries = std::list<Entry>;  // list: a deque of move-only items makes vector copy on growth

  typename Entries::iterator FindEntry(const std::string& key) REQUIRES(mu_) {
    return std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.key == key; });
  }

  // Once nothing was taken for idle_life: grown targets back to what was
  // set, and the ready items beyond them; and entries left with neither
  // target nor items.
  std::vector<Item> TakeIdleSurplus(bool& surplus_left) REQUIRES(mu_) {
    std::vector<Item> idle;
    bool expired = std::chrono::steady_clock::now() - last_take_ >= opts_.idle_life;
    surplus_left = false;
    for (auto& e : entries_) {
      if (e.items.size() <= e.target && e.target == e.base) continue;
      if (!expired) {
        surplus_left = true;
        continue;
      }
      e.target = e.base;
      while (e.items.size() > e.target) {  // the oldest go
        idle.push_back(std::move(e.items.front()));
        e.items.pop_front();
      }
    }
    std::erase_if(entries_, [](const Entry& e) { return e.target == 0 && e.items.empty(); });
    return idle;
  }

  void Refill() EXCLUDES(mu_) {
    using Clock = std::chrono::steady_clock;
    ::pthread_setname_np(::pthread_self(), opts_.thread_name);
    MutexLock lock(mu_);
    while (!stopping_) {
      bool surplus_left = false;
      if (auto idle = TakeIdleSurplus(surplus_left); !idle.empty()) {
        lock.Unlock();
        Discard(std::move(idle));
        lock.Lock();
        continue;
      }
      // The first short key not backing off; else sleep until one is due.
      auto now = Clock::now();
      auto wake = surplus_left ? last_take_ + opts_.idle_life : Clock::time_point::max();
      std::string key;
      bool found = false;
      for (const auto& e : entries_) {
        if (e.items.size() >= e.target) continue;
        if (e.retry_at <= now) {
          key = e.key;
          found = true;
          break;
        }
        wake = std::min(wake, e.retry_at);
      }
      if (!found) {
        if (wake == Clock::time_point::max())
          cv_.Wait(lock);
        else
          cv_.WaitUntil(lock, wake);
        continue;
      }
      lock.Unlock();
      Result<Item> item = hooks_.make(key);
      lock.Lock();
      auto it = FindEntry(key);
      bool wanted = !stopping_ && it != entries_.end() && it->items.size() < it->target;
      if (item.ok() && wanted) {
        it->items.push_back(std::move(*item));
      } else if (item.ok()) {
        lock.Unlock();
        hooks_.discard(std::move(*item));
        lock.Lock();
      } else if (it != entries_.end()) {
        // The host may be full or the key's recipe broken: other keys go
        // first meanwhile.
        it->retry_at = Clock::now() + opts_.retry_after;
      }
    }
  }

  const Hooks hooks_;
  const Options opts_;
  mutable Mutex mu_;
  CondVar cv_;
  Entries entries_ GUARDED_BY(mu_);  // in the order their targets were first set
  std::chrono::steady_clock::time_point last_take_ GUARDED_BY(mu_) = std::chrono::steady_clock::now();
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread refill_;
};

}  // namespace paddock
