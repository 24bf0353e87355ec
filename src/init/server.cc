#include "init/server.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "init/files.h"

namespace paddock::init {

Server::Server(EventLoop* loop, UniqueFd listen_fd, ServerOptions opts)
    : loop_(loop),
      listen_fd_(std::move(listen_fd)),
      opts_(opts),
      procs_(loop, this, opts.ring_bytes, opts.keep_exited),
      watches_(loop, this) {}

Status Server::Start() {
  sigset_t set;
  ::sigprocmask(SIG_BLOCK, nullptr, &set);
  signal_fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_) return Status::Errno("signalfd");
  PDK_TRY(loop_->Add(signal_fd_.get(), EPOLLIN, [this](uint32_t) { OnSignal(); }));
  PDK_TRY(loop_->Add(listen_fd_.get(), EPOLLIN, [this](uint32_t) { Accept(); }));
  return Status::Ok();
}

void Server::OnSignal() {
  struct signalfd_siginfo si;
  while (::read(signal_fd_.get(), &si, sizeof si) == sizeof si) {
    int sig = static_cast<int>(si.ssi_signo);
    if (sig == SIGCHLD) continue;
    if (sig == SIGTERM) terminating_ = true;
    procs_.SignalAll(sig);  // forward: the sandbox's processes decide what it means
  }
  // Reap after every batch: SIGCHLD coalesces, and shutdown waits on the last child.
  bool children_left = procs_.ReapChildren();
  if (terminating_ && !children_left) finished_ = true;
}

void Server::Accept() {
  for (;;) {
    int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    auto c = std::make_unique<Conn>();
    c->id = next_conn_++;
    c->fd.reset(fd);
    Conn* raw = c.get();
    if (!loop_->Add(fd, EPOLLIN | EPOLLRDHUP, [this, raw](uint32_t ev) {
          if (ev & EPOLLOUT) Flush(raw);
          if (conns_.count(raw->id) && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
            OnReadable(raw);
        }).ok())
      continue;
    conns_[c->id] = std::move(c);
  }
}

void Server::OnReadable(Conn* c) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(c->fd.get(), buf, sizeof buf);
    if (n > 0) {
      c->decoder.Feed(buf, static_cast<size_t>(n));
      while (auto frame = c->decoder.Next()) {
        if (!frame->ok()) {
          Send(c, agent::ErrorReply(nullptr, frame->status()));
          continue;
        }
        HandleFrame(c, frame->value());
        if (!conns_.count(c->id)) return;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    Close(c);  // EOF or error
    return;
  }
}

void Server::HandleFrame(Conn* c, agent::Frame& f) {
  json id = f.header.contains("id") ? f.header["id"] : json(nullptr);
  auto op_it = f.header.find("op");
  if (op_it == f.header.end() || !op_it->is_string()) {
    Send(c, agent::ErrorReply(id, InvalidArgument("field 'op' must be a string")));
    return;
  }
  Result<Reply> r = InvalidArgument("unhandled");
  try {
    r = Dispatch(op_it->get<std::string>(), f, c->id);
  } catch (const std::exception& e) {
    // A field of the wrong JSON type: report it, never let it take init down.
    r = InvalidArgument(std::string("bad request: ") + e.what());
  }
  if (!r.ok()) {
    Send(c, agent::ErrorReply(id, r.status()));
    return;
  }
  Reply reply = std::move(r).value();
  reply.body["id"] = id;
  reply.body["ok"] = true;
  Send(c, reply.body, reply.payload);
  if (reply.after) reply.after();
}

Result<Reply> Server::Dispatch(const std::string& op, const agent::Frame& f, ConnId conn) {
  const json& req = f.header;
  if (op == "ping") {
    Reply r;
    r.body["pid"] = ::getpid();
    r.body["version"] = 1;
    return r;
  }
  if (op == "spawn") return procs_.Spawn(req, conn);
  if (op == "attach") return procs_.Attach(req, conn);
  if (op == "detach") return procs_.Detach(req, conn);
  if (op == "stdin") return procs_.WriteStdin(req, f.payload);
  if (op == "close_stdin") return procs_.CloseStdin(req);
  if (op == "signal") return procs_.Signal(req);
  if (op == "resize") return procs_.Resize(req);
  if (op == "list") return procs_.List(req);
  if (op == "read") return files::Read(req);
  if (op == "write") return files::Write(req, f.payload);
  if (op == "stat") return files::Stat(req);
  if (op == "ls") return files::List(req);
  if (op == "mkdir") return files::MakeDir(req);
  if (op == "remove") return files::Remove(req);
  if (op == "rename") return files::Rename(req);
  if (op == "watch") return watches_.Watch(req, conn);
  if (op == "unwatch") return watches_.Unwatch(req, conn);
  return InvalidArgument("unknown op '" + op + "'");
}

void Server::Send(Conn* c, const json& header, std::string_view payload) {
  c->out += agent::EncodeFrame(header, payload);
  if (c->out.size() - c->out_pos > opts_.max_outbound) {
    Close(c);  // hopelessly behind; it can reconnect and replay from the ring
    return;
  }
  if (!c->writing) Flush(c);
}

void Server::Flush(Conn* c) {
  while (c->out_pos < c->out.size()) {
    ssize_t n = ::send(c->fd.get(), c->out.data() + c->out_pos, c->out.size() - c->out_pos,
                       MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      Close(c);
      return;
    }
    c->out_pos += static_cast<size_t>(n);
  }
  bool pending = c->out_pos < c->out.size();
  if (!pending) {
    c->out.clear();
    c->out_pos = 0;
  }
  if (pending != c->writing) {
    c->writing = pending;
    (void)loop_->Modify(c->fd.get(), EPOLLIN | EPOLLRDHUP | (pending ? uint32_t{EPOLLOUT} : 0u));
    if (!pending) procs_.ResumeOutput();  // caught up: its processes may print again
  }
}

size_t Server::Backlog(ConnId conn) const {
  auto it = conns_.find(conn);
  return it == conns_.end() ? 0 : it->second->out.size() - it->second->out_pos;
}

void Server::Emit(ConnId conn, const json& event, std::string_view payload) {
  auto it = conns_.find(conn);
  if (it != conns_.end()) Send(it->second.get(), event, payload);
}

void Server::Close(Conn* c) {
  ConnId id = c->id;
  loop_->Remove(c->fd.get());
  procs_.DropConnection(id);
  watches_.DropConnection(id);
  conns_.erase(id);
}

}  // namespace paddock::init
