// WorkQueue: jobs run in order of posting on a fixed number of threads, for
// work that may finish after the caller has its answer (the teardown of a
// deleted sandbox). The destructor runs every job already posted.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace paddock {

class WorkQueue {
 public:
  explicit WorkQueue(size_t threads);
  ~WorkQueue();  // runs what is queued, then joins the threads
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  void Post(std::function<void()> job);
  // Jobs queued or running.
  size_t pending() const;
  // Returns once every job posted before the call, and any posted meanwhile, has run.
  void Drain();

 private:
  void Work();

  mutable std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;       // a job was posted, or stopping_
  std::condition_variable idle_cv_;  // pending_ reached 0
  std::deque<std::function<void()>> jobs_;
  size_t pending_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace paddock
