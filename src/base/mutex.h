// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable with
// the annotations of Clang's thread-safety analysis, so that a comment such
// as "requires sb.mu held" becomes a check. Mark what a lock guards with
// GUARDED_BY(mu), a function that needs it held with REQUIRES(mu), one that
// takes it itself with EXCLUDES(mu). A clang build with -Wthread-safety
// (scripts/check-threads.sh, run by ctest) turns a broken rule into an
// error; other compilers ignore the annotations.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define PDK_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define PDK_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) PDK_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY PDK_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) PDK_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) PDK_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) PDK_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) PDK_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) PDK_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) PDK_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) PDK_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS PDK_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace paddock {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// Holds a Mutex from construction to the end of its scope. Unlock and Lock
// step out of it for a while (I/O, a call that takes the lock itself).
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : lock_(mu.mu_) {}
  ~MutexLock() RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() { lock_.unlock(); }
  void Lock() ACQUIRE() { lock_.lock(); }

 private:
  friend class CondVar;
  std::unique_lock<std::mutex> lock_;
};

// Waits release the lock and hold it again on return, as
// std::condition_variable's do. The caller loops on its condition (a
// predicate lambda would read guarded fields where the analysis cannot see
// the lock).
class CondVar {
 public:
  void Wait(MutexLock& lock) { cv_.wait(lock.lock_); }
  // False once `timeout` has passed.
  template <class Rep, class Period>
  bool WaitFor(MutexLock& lock, std::chrono::duration<Rep, Period> timeout) {
    return cv_.wait_for(lock.lock_, timeout) == std::cv_status::no_timeout;
  }
  template <class Clock, class Duration>
  bool WaitUntil(MutexLock& lock, std::chrono::time_point<Clock, Duration> deadline) {
    return cv_.wait_until(lock.lock_, deadline) == std::cv_status::no_timeout;
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace paddock
