// Server: the agent protocol endpoint of paddock-init. Accepts host
// connections on an inherited listening socket, decodes frames, dispatches
// requests to the process, file and watch tables, and handles signals.
#pragma once

#include <map>
#include <memory>

#include "agent/protocol.h"
#include "base/fd.h"
#include "init/event_loop.h"
#include "init/hub.h"
#include "init/processes.h"
#include "init/watches.h"

namespace paddock::init {

struct ServerOptions {
  size_t ring_bytes = size_t{1} << 20;  // output history per process
  size_t keep_exited = 64;              // exited processes kept for late readers
  size_t max_outbound = size_t{64} << 20;  // a client this far behind is dropped
};

class Server : public EventSink {
 public:
  Server(EventLoop* loop, UniqueFd listen_fd, ServerOptions opts);
  // Takes signals (blocked by the caller) from a signalfd and starts accepting.
  Status Start();
  void Emit(ConnId conn, const json& event, std::string_view payload) override;
  size_t Backlog(ConnId conn) const override;
  // True once a SIGTERM-initiated shutdown has seen every child exit.
  bool finished() const { return finished_; }

 private:
  struct Conn {
    ConnId id;
    UniqueFd fd;
    agent::FrameDecoder decoder;
    std::string out;
    size_t out_pos = 0;
    bool writing = false;
  };
  void Accept();
  void OnReadable(Conn* c);
  void Flush(Conn* c);
  void Send(Conn* c, const json& header, std::string_view payload = {});
  void Close(Conn* c);
  void HandleFrame(Conn* c, agent::Frame& f);
  Result<Reply> Dispatch(const std::string& op, const agent::Frame& f, ConnId conn);
  void OnSignal();

  EventLoop* loop_;
  UniqueFd listen_fd_;
  UniqueFd signal_fd_;
  ServerOptions opts_;
  ProcessTable procs_;
  WatchTable watches_;
  ConnId next_conn_ = 1;
  std::map<ConnId, std::unique_ptr<Conn>> conns_;
  bool terminating_ = false;
  bool finished_ = false;
};

}  // namespace paddock::init
