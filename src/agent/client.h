// AgentClient: the host side of the agent protocol. One blocking connection
// to a sandbox's paddock-init; not thread-safe (use one per thread or lock).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/protocol.h"
#include "base/fd.h"

namespace paddock::agent {

struct ExecOptions {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  std::string cwd;
  std::string user;
  std::string tag;
  std::string stdin_data;   // written then closed, when has_stdin
  bool has_stdin = false;
  int timeout_ms = 60000;   // the process is killed when it runs past this
  // Output kept per stream; the rest is read and dropped (the reply says so).
  size_t max_output_bytes = size_t{4} << 20;
};

struct ExecResult {
  int pid = 0;
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;
  std::string stdout_data;
  std::string stderr_data;
  bool stdout_truncated = false;  // it printed more than max_output_bytes
  bool stderr_truncated = false;
};

class AgentClient {
 public:
  // The longest a connect or a send to the agent may wait, and the longest
  // a Call waits for its reply unless told otherwise.
  static constexpr int kSendTimeoutMs = 10000;
  static constexpr int kReplyTimeoutMs = 10000;
  // How often a waiting client runs its Check.
  static constexpr int kCheckIntervalMs = 1000;

  // Connects to the agent socket. The socket is created by the host before
  // init starts, so this succeeds as soon as the sandbox exists.
  static Result<AgentClient> Connect(const std::string& socket_path);

  // Sends `request` (an "id" is assigned) and waits up to `timeout_ms` for its
  // reply; events that arrive first go to `on_event`, or, if it is null, are
  // kept for the next Read.
  // An error reply comes back as its Status.
  Result<Frame> Call(json request, std::string_view payload = {},
                     const std::function<void(Frame&)>& on_event = nullptr,
                     int timeout_ms = kReplyTimeoutMs);
  // The next frame (event or reply), waiting up to `timeout_ms` (-1: forever);
  // kDeadlineExceeded when none came in time.
  Result<Frame> Read(int timeout_ms);
  // Sends without waiting for the reply.
  Result<uint64_t> Send(json request, std::string_view payload = {});

  // The "spawn" request for `opts` (stdin data is sent separately).
  static json SpawnRequest(const ExecOptions& opts, bool subscribe = true);
  // Runs a process to completion and collects its output.
  Result<ExecResult> Exec(const ExecOptions& opts);

  // Reads a file range by range (kReadPieceBytes each: a reader streams
  // through a small, fixed amount of memory), handing each range to `sink`
  // (which returns false to stop early). Returns the bytes read.
  static constexpr uint64_t kReadPieceBytes = uint64_t{1} << 20;
  static constexpr size_t kWritePieceBytes = size_t{1} << 20;
  Result<uint64_t> ReadFile(const std::string& path,
                            const std::function<bool(std::string_view)>& sink);
  // Replaces a file atomically with `data` of any size: one frame when it
  // fits in kWritePieceBytes, else a hidden temporary sibling written in
  // pieces of that size and renamed.
  // `extra` adds request fields (mode, user). Returns the file's entry.
  Result<json> WriteFile(const std::string& path, std::string_view data, json extra = json::object());
  // The same, with the data from `read`: it fills up to `cap` bytes at `buf`
  // and returns how many, 0 at the end. Holds at most one frame's worth.
  using Reader = std::function<Result<size_t>(char* buf, size_t cap)>;
  Result<json> WriteFileFrom(const std::string& path, const Reader& read,
                             json extra = json::object());

  int fd() const { return fd_.get(); }

  // Judges the far end while this client waits on it, at most once each
  // kCheckIntervalMs: a non-OK status ends the wait with that status (an init
  // that is stopped or gone never answers, and waiting out the deadline would
  // only hold the caller).
  using Check = std::function<Status()>;
  // Hears whether the agent answers: OK when a Call's reply came, else why
  // none did (its deadline passed, or the Check failed).
  using Report = std::function<void(const Status&)>;
  void Watch(Check check, Report report) {
    check_ = std::move(check);
    report_ = std::move(report);
  }

 private:
  explicit AgentClient(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<Frame> ReadWire(int timeout_ms);  // the next frame off the socket
  UniqueFd fd_;
  FrameDecoder decoder_;
  std::deque<Frame> pending_events_;  // arrived during a Call without a handler
  uint64_t next_id_ = 1;
  Check check_;
  Report report_;
  int64_t next_check_ns_ = 0;
};

}  // namespace paddock::agent
