// ProcessTable: the processes paddock-init runs for the host. Each has pipes or
// a pty, a bounded output history (OutputRing) and a set of subscribed
// connections that get its output and exit events. Exited processes are kept
// for a while so a client that reconnects still gets the end of the story.
#pragma once

#include <sys/types.h>

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "init/event_loop.h"
#include "init/hub.h"
#include "init/ring_buffer.h"

namespace paddock::init {

class ProcessTable {
 public:
  ProcessTable(EventLoop* loop, EventSink* sink, size_t ring_bytes, size_t keep_exited);
  ~ProcessTable();

  // Request handlers; each validates its request and names the bad field.
  Result<Reply> Spawn(const json& req, ConnId conn);
  Result<Reply> Attach(const json& req, ConnId conn);
  Result<Reply> Detach(const json& req, ConnId conn);
  Result<Reply> WriteStdin(const json& req, std::string_view data);
  Result<Reply> CloseStdin(const json& req);
  Result<Reply> Signal(const json& req);
  Result<Reply> Resize(const json& req);
  Result<Reply> List(const json& req) const;

  // Reaps every exited child (SIGCHLD). Returns false once no child is left.
  bool ReapChildren();
  // Sends `sig` to every process in the sandbox but init itself (outside a
  // pid namespace: to the process groups this table started).
  void SignalAll(int sig);
  void DropConnection(ConnId conn);
  // Reads output again for processes whose subscribers have caught up; the
  // server calls it when a connection's queue drains.
  void ResumeOutput();

  // How far (bytes queued, unsent) a subscriber may fall behind before its
  // processes' output is no longer read.
  static constexpr size_t kOutputHighWater = size_t{1} << 20;

 private:
  struct Process;
  Result<Process*> Find(const json& req);
  void WatchOutput(Process* p);
  bool SubscriberBehind(const Process& p) const;
  void OnOutput(Process* p, int fd, Stream stream);
  void CloseOutput(Process* p, int fd);
  void FlushStdin(Process* p);
  void MaybeFinish(Process* p);
  void Finish(Process* p);
  json Describe(const Process& p) const;

  EventLoop* loop_;
  EventSink* sink_;
  size_t ring_bytes_;
  size_t keep_exited_;
  std::map<pid_t, std::unique_ptr<Process>> procs_;
  std::deque<pid_t> exited_order_;
  std::vector<char> child_stack_ = std::vector<char>(64 * 1024);  // of a spawned child until it execs
};

}  // namespace paddock::init
