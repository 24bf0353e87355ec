#include "base/work_queue.h"

#include <pthread.h>

namespace paddock {

WorkQueue::WorkQueue(size_t threads, const char* name) {
  for (size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { Work(); });
    ::pthread_setname_np(threads_.back().native_handle(), name);
  }
}

WorkQueue::~WorkQueue() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  for (auto& t : threads_) t.join();
}

void WorkQueue::Post(std::function<void()> job) {
  {
    MutexLock lock(mu_);
    jobs_.push_back(std::move(job));
    ++pending_;
  }
  cv_.NotifyOne();
}

size_t WorkQueue::pending() const {
  MutexLock lock(mu_);
  return pending_;
}

void WorkQueue::Drain() {
  MutexLock lock(mu_);
  while (pending_ != 0) idle_cv_.Wait(lock);
}

// Threads leave only once the queue is empty, so stopping finishes every job.
void WorkQueue::Work() {
  MutexLock lock(mu_);
  while (true) {
    while (!stopping_ && jobs_.empty()) cv_.Wait(lock);
    if (jobs_.empty()) return;  // stopping, nothing left
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.Unlock();
    job();
    lock.Lock();
    if (--pending_ == 0) idle_cv_.NotifyAll();
  }
}

}  // namespace paddock
