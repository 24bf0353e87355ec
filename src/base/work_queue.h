// WorkQueue: jobs run in order of posting on a fixed number of threads, for
// work that may finish after the caller has its answer (the teardown of a
// deleted sandbox). The destructor runs every job already posted.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "base/mutex.h"

namespace paddock {

class WorkQueue {
 public:
  // `name`: the threads', as ps and top show them (15 bytes at most).
  WorkQueue(size_t threads, const char* name);
  ~WorkQueue();  // runs what is queued, then joins the threads
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  void Post(std::function<void()> job) EXCLUDES(mu_);
  // Jobs queued or running.
  size_t pending() const EXCLUDES(mu_);
  // Returns once every job posted before the call, and any posted meanwhile, has run.
  void Drain() EXCLUDES(mu_);

 private:
  void Work() EXCLUDES(mu_);

  mutable Mutex mu_;
  CondVar cv_;       // a job was posted, or stopping_
  CondVar idle_cv_;  // pending_ reached 0
  std::deque<std::function<void()>> jobs_ GUARDED_BY(mu_);
  size_t pending_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace paddock
