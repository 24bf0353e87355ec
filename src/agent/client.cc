#include "agent/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>

#include "base/fs.h"
#include "base/json_field.h"
#include "base/ids.h"

namespace paddock::agent {

Result<AgentClient> AgentClient::Connect(const std::string& socket_path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Status::Errno("socket");
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path)
    return InvalidArgument("agent socket path too long: " + socket_path);
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size());
  // Whatever the sandbox does, a connect or send waits at most this long:
  // an init that stops reading (or accepting) fails the call, not the daemon.
  struct timeval limit = {kSendTimeoutMs / 1000, 0};
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit) != 0)
    return Status::Errno("setsockopt SO_SNDTIMEO");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return DeadlineExceeded("the sandbox agent did not accept a connection in " +
                              std::to_string(kSendTimeoutMs / 1000) + " s");
    return Status::Errno("connect " + socket_path);
  }
  return AgentClient(std::move(fd));
}

Result<uint64_t> AgentClient::Send(json request, std::string_view payload) {
  uint64_t id = next_id_++;
  request["id"] = id;
  std::string frame = EncodeFrame(request, payload);
  std::string_view rest = frame;
  while (!rest.empty()) {
    ssize_t n = ::send(fd_.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return DeadlineExceeded("the sandbox agent read nothing for " +
                                std::to_string(kSendTimeoutMs / 1000) + " s");
      return Status::Errno("send to agent");
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  return id;
}

Result<Frame> AgentClient::Read(int timeout_ms) {
  if (!pending_events_.empty()) {
    Frame f = std::move(pending_events_.front());
    pending_events_.pop_front();
    return f;
  }
  return ReadWire(timeout_ms);
}

Result<Frame> AgentClient::ReadWire(int timeout_ms) {
  int64_t deadline = timeout_ms < 0 ? -1 : MonotonicNanos() + int64_t{timeout_ms} * 1000000;
  for (;;) {
    int64_t now = MonotonicNanos();
    if (check_ && now >= next_check_ns_) {
      next_check_ns_ = now + int64_t{kCheckIntervalMs} * 1000000;
      if (Status s = check_(); !s.ok()) {
        if (report_) report_(s);
        return s;
      }
    }
    if (auto f = decoder_.Next()) {
      if (!f->ok()) return f->status();
      return std::move(*f).value();
    }
    int wait = -1;
    if (deadline >= 0) {
      int64_t left = deadline - now;
      if (left <= 0) return DeadlineExceeded("timed out waiting for the sandbox agent");
      wait = static_cast<int>((left + 999999) / 1000000);
    }
    if (check_) {
      int to_check = static_cast<int>((next_check_ns_ - now + 999999) / 1000000);
      wait = wait < 0 ? to_check : std::min(wait, to_check);
    }
    struct pollfd pfd = {fd_.get(), POLLIN, 0};
    int r = ::poll(&pfd, 1, wait);
    if (r < 0 && errno != EINTR) return Status::Errno("poll agent socket");
    if (r <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Errno("recv from agent");
    if (n == 0) return Unavailable("the sandbox agent closed the connection");
    decoder_.Feed(buf, static_cast<size_t>(n));
  }
}

Result<Frame> AgentClient::Call(json request, std::string_view payload,
                                const std::function<void(Frame&)>& on_event, int timeout_ms) {
  PDK_ASSIGN_OR_RETURN(uint64_t id, Send(std::move(request), payload));
  int64_t deadline = MonotonicNanos() + int64_t{timeout_ms} * 1000000;
  for (;;) {
    int left = static_cast<int>((deadline - MonotonicNanos()) / 1000000);
    Result<Frame> f = ReadWire(left < 0 ? 0 : left);
    if (!f.ok() && f.status().code() == StatusCode::kDeadlineExceeded) {
      Status late = DeadlineExceeded("the sandbox's init did not answer in " +
                                     std::to_string(timeout_ms / 1000) + " s");
      if (report_) report_(late);
      return late;
    }
    if (!f.ok()) return f.status();
    if (f->header.contains("id") && f->header["id"] == id) {
      if (report_) report_(Status::Ok());
      PDK_TRY(StatusFromReply(f->header));
      return std::move(f).value();
    }
    if (!f->header.contains("event")) continue;  // a late reply to a request sent with Send
    if (on_event) on_event(*f);
    else pending_events_.push_back(std::move(f).value());
  }
}

json AgentClient::SpawnRequest(const ExecOptions& opts, bool subscribe) {
  json req = {{"op", "spawn"}, {"argv", opts.argv}, {"stdin", opts.has_stdin}, {"subscribe", subscribe}};
  if (!opts.env.empty()) req["env"] = opts.env;
  if (!opts.cwd.empty()) req["cwd"] = opts.cwd;
  if (!opts.user.empty()) req["user"] = opts.user;
  if (!opts.tag.empty()) req["tag"] = opts.tag;
  return req;
}

Result<ExecResult> AgentClient::Exec(const ExecOptions& opts) {
  json req = SpawnRequest(opts);

  ExecResult result;
  bool exited = false;
  auto on_event = [&](Frame& f) {
    const json& h = f.header;
    std::string ev = Field(h, "event", "");
    if (ev == "output") {
      bool err = Field(h, "stream", "") == "stderr";
      std::string& kept = err ? result.stderr_data : result.stdout_data;
      size_t room = opts.max_output_bytes - std::min(kept.size(), opts.max_output_bytes);
      kept.append(f.payload, 0, std::min(room, f.payload.size()));
      if (f.payload.size() > room) (err ? result.stderr_truncated : result.stdout_truncated) = true;
    } else if (ev == "exit") {
      result.exit_code = Field(h, "exit_code", -1);
      result.signal = Field(h, "signal", 0);
      exited = true;
    }
  };
  PDK_ASSIGN_OR_RETURN(Frame spawned, Call(req, {}, on_event));
  result.pid = Field(spawned.header, "pid", 0);
  if (opts.has_stdin) {
    if (!opts.stdin_data.empty())
      PDK_TRY(Call({{"op", "stdin"}, {"pid", result.pid}}, opts.stdin_data, on_event).status());
    PDK_TRY(Call({{"op", "close_stdin"}, {"pid", result.pid}}, {}, on_event).status());
  }
  int64_t deadline = MonotonicNanos() + int64_t{opts.timeout_ms} * 1000000;
  while (!exited) {
    int64_t left = (deadline - MonotonicNanos()) / 1000000;
    if (left <= 0 && !result.timed_out) {
      result.timed_out = true;
      PDK_TRY(Send({{"op", "signal"}, {"pid", result.pid}, {"signal", "KILL"}}).status());
      deadline = MonotonicNanos() + int64_t{5000} * 1000000;
      continue;
    }
    if (left <= 0) return Unavailable("process did not exit after SIGKILL");
    auto f = Read(static_cast<int>(left));
    if (!f.ok() && f.status().code() == StatusCode::kDeadlineExceeded) continue;
    if (!f.ok()) return f.status();
    if (f->header.contains("event")) on_event(*f);
  }
  return result;
}

Result<uint64_t> AgentClient::ReadFile(const std::string& path,
                                       const std::function<bool(std::string_view)>& sink) {
  uint64_t offset = 0;
  for (;;) {
    PDK_ASSIGN_OR_RETURN(Frame f, Call({{"op", "read"}, {"path", path}, {"offset", offset},
                                        {"length", kReadPieceBytes}}));
    offset += f.payload.size();
    if (!f.payload.empty() && !sink(f.payload)) return offset;
    if (Field(f.header, "eof", true) || f.payload.empty()) return offset;
  }
}

Result<json> AgentClient::WriteFile(const std::string& path, std::string_view data, json extra) {
  return WriteFileFrom(
      path,
      [&data](char* buf, size_t cap) -> Result<size_t> {
        size_t n = std::min(cap, data.size());
        std::memcpy(buf, data.data(), n);
        data.remove_prefix(n);
        return n;
      },
      std::move(extra));
}

Result<json> AgentClient::WriteFileFrom(const std::string& path, const Reader& read, json extra) {
  constexpr size_t kPiece = kWritePieceBytes;
  std::string piece;
  // The next piece: kPiece bytes unless the data ends first. The buffer
  // grows as data comes, so a small file costs a small one.
  auto fill = [&]() -> Result<size_t> {
    piece.clear();
    for (;;) {
      size_t got = piece.size();
      if (got == kPiece) return got;
      piece.resize(got + std::min<size_t>(kPiece - got, std::max<size_t>(got, 64 << 10)));
      PDK_ASSIGN_OR_RETURN(size_t n, read(piece.data() + got, piece.size() - got));
      piece.resize(got + n);
      if (n == 0) return got;
    }
  };
  json req = std::move(extra);
  req["op"] = "write";
  PDK_ASSIGN_OR_RETURN(size_t n, fill());
  if (n < kPiece) {
    req["path"] = path;
    PDK_ASSIGN_OR_RETURN(Frame f, Call(req, piece));
    return f.header["entry"];
  }
  // Watchers never see ".paddock-write-" names; readers see the old file until the rename.
  size_t slash = path.rfind('/');
  std::string tmp = path.substr(0, slash + 1) + ".paddock-write-" + RandomHex(6);
  req["path"] = tmp;
  for (bool first = true; n > 0; first = false) {
    req["append"] = !first;
    Status sent = Call(req, piece).status();
    Result<size_t> next = sent.ok() ? fill() : Result<size_t>(sent);
    if (!next.ok()) {
      (void)Call({{"op", "remove"}, {"path", tmp}});
      return next.status();
    }
    n = *next;
  }
  PDK_ASSIGN_OR_RETURN(Frame f, Call({{"op", "rename"}, {"from", tmp}, {"to", path}}));
  return f.header["entry"];
}

}  // namespace paddock::agent
