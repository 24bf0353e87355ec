#include "api/http_server.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <sstream>
#include <type_traits>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include "api/http_util.h"
#include "base/fs.h"

namespace paddock::api {

http::status HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return http::status::ok;
    case StatusCode::kInvalidArgument: return http::status::bad_request;
    case StatusCode::kNotFound: return http::status::not_found;
    case StatusCode::kAlreadyExists: return http::status::conflict;
    case StatusCode::kFailedPrecondition: return http::status::conflict;
    case StatusCode::kPermissionDenied: return http::status::forbidden;
    case StatusCode::kResourceExhausted: return http::status::service_unavailable;
    case StatusCode::kUnavailable: return http::status::service_unavailable;
    case StatusCode::kUnimplemented: return http::status::not_implemented;
    case StatusCode::kDeadlineExceeded: return http::status::gateway_timeout;
    case StatusCode::kUnauthenticated: return http::status::unauthorized;
    case StatusCode::kDataLoss: return http::status::bad_gateway;
    case StatusCode::kInternal: return http::status::internal_server_error;
  }
  return http::status::internal_server_error;
}

nlohmann::json ErrorBody(const Status& s) {
  return {{"error", {{"code", StatusCodeName(s.code())}, {"message", s.message()}}}};
}

Response ErrorResponse(const Status& s, unsigned version, bool keep_alive) {
  Response res{HttpStatusFor(s.code()), version};
  res.set(http::field::content_type, "application/json");
  res.keep_alive(keep_alive);
  res.body() = ErrorBody(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  res.prepare_payload();
  return res;
}

namespace {

Response Unauthorized(unsigned version) {
  Response res = ErrorResponse(Status(StatusCode::kPermissionDenied,
                                      "an API key is required (X-API-Key or Authorization: Bearer)"),
                               version, false);
  res.result(http::status::unauthorized);
  return res;
}

bool KeyMatches(const Request& req, const std::string& key) {
  std::string given = BearerToken(req);
  if (given.empty()) given = std::string(req["X-API-Key"]);
  return SameSecret(given, key);
}

struct Shared {
  ServerOptions opts;
  Handler handler;
  UpstreamPool upstreams;
  std::atomic<size_t> connections{0};  // sessions alive
  std::atomic<size_t> streams{0};      // stream slots claimed
  net::thread_pool workers;
  Shared(ServerOptions o, Handler h) : opts(std::move(o)), handler(std::move(h)), workers(opts.workers) {}
};

template <typename Protocol>
class Session : public std::enable_shared_from_this<Session<Protocol>>, public StreamWriter {
 public:
  using Stream = beast::basic_stream<Protocol>;
  Session(typename Protocol::socket socket, std::shared_ptr<Shared> shared, bool needs_key)
      : stream_(std::move(socket)), shared_(std::move(shared)), needs_key_(needs_key) {
    shared_->connections.fetch_add(1, std::memory_order_relaxed);
    if constexpr (std::is_same_v<Protocol, net::ip::tcp>) {
      beast::error_code ec;
      auto peer = stream_.socket().remote_endpoint(ec);
      if (!ec) client_address_ = peer.address().to_string();
    }
  }

  ~Session() override {
    DropBodyFile();
    shared_->connections.fetch_sub(1, std::memory_order_relaxed);
  }

  void Run() { ReadHeader(); }
  auto executor() { return stream_.get_executor(); }

  // StreamWriter: called on a worker thread while the session waits for it.
  bool ClaimStream() override {
    if (stream_claimed_) return true;
    if (shared_->streams.fetch_add(1, std::memory_order_relaxed) >= shared_->opts.max_streams) {
      shared_->streams.fetch_sub(1, std::memory_order_relaxed);
      stream_refused_ = true;
      return false;
    }
    return stream_claimed_ = true;
  }
  bool Begin(http::status status, std::string_view content_type) override {
    if (!ClaimStream()) return false;
    http::response<http::empty_body> res{status, req_.version()};
    res.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
    res.set(http::field::cache_control, "no-cache");
    res.chunked(true);
    res.keep_alive(req_.keep_alive());
    std::ostringstream header;
    header << res.base();
    streamed_ = true;
    return WriteWhole(net::buffer(header.str()));
  }
  bool Write(std::string_view data) override {
    if (data.empty()) return true;
    return WriteWhole(http::make_chunk(net::const_buffer(data.data(), data.size())));
  }
  bool End() override {
    ended_ = true;
    if (!WriteWhole(http::make_chunk_last())) stream_failed_ = true;
    return !stream_failed_;
  }
  const std::string& body_file() const override { return body_file_; }

 private:
  void ReadHeader() {
    dispatched_ = false;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(shared_->opts.max_header_bytes));
    // OnHeader sets the limit once it knows the route. (Not boost::none: Boost
    // 1.74 reads "no limit" as a limit of zero while it parses the header.)
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    stream_.expires_after(std::chrono::seconds(shared_->opts.header_timeout_s));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              self->OnHeader(ec);
                            });
  }

  // The key is checked, the route chosen and the body's size judged before
  // a byte of it is read.
  void OnHeader(beast::error_code ec) {
    if (ec) return Fail(ec);
    const ServerOptions& o = shared_->opts;
    Request& head = parser_->get();
    if (needs_key_ && !KeyMatches(head, o.api_key) &&
        !(o.handler_authenticates && o.handler_authenticates(head)))
      return Reply(Unauthorized(head.version()));
    if (o.router) {
      RouteResult route = o.router(head, client_address_);
      if (auto* reply = std::get_if<Response>(&route)) {
        if (!parser_->is_done()) reply->keep_alive(false);  // the body stays unread
        return Reply(std::move(*reply));
      }
      if (auto* target = std::get_if<RelayTarget>(&route)) return Relay(std::move(*target));
    }
    bool to_file = o.body_to_file && !o.spool_dir.empty() && o.body_to_file(head);
    if (to_file && o.screen_header) {
      if (std::optional<Response> answer = o.screen_header(head)) {
        answer->keep_alive(false);  // the body stays unread
        return Reply(std::move(*answer));
      }
    }
    uint64_t limit = to_file ? o.max_file_body_bytes : o.max_body_bytes;
    if (auto length = parser_->content_length(); length && *length > limit)
      return TooLarge(limit, to_file);
    parser_->body_limit(limit);  // for chunked bodies
    if (!GoOnIfAsked(head)) return;
    // Reads are sized by the buffer's room, which starts at 512 bytes: give
    // a large body room for 64 KiB reads (512-byte reads cap a 600 MB
    // upload at ~50 MB/s).
    auto declared = parser_->content_length();
    if (to_file || !declared || *declared > buffer_.capacity())
      buffer_.reserve(static_cast<size_t>(std::min<uint64_t>(declared.value_or(kReadBytes), kReadBytes)));
    stream_.expires_after(std::chrono::seconds(o.body_timeout_s));
    if (to_file) return ReadBodyToFile(limit);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this(), limit](beast::error_code ec, size_t) {
                       if (ec == http::error::body_limit) return self->TooLarge(limit, false);
                       if (ec) return self->Fail(ec);
                       self->req_ = self->parser_->release();
                       self->Dispatch();
                     });
  }

  // An upload: the body goes to a file in the spool folder, not to memory.
  void ReadBodyToFile(uint64_t limit) {
    std::string path = shared_->opts.spool_dir + "/body-XXXXXX";
    int fd = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd < 0)
      return Reply(ErrorResponse(
          Unavailable(std::string("cannot hold the upload: ") + std::strerror(errno)), 11, false));
    body_file_ = path;
    file_parser_.emplace(std::move(*parser_));
    beast::file file;
    file.native_handle(fd);
    beast::error_code ec;
    file_parser_->get().body().reset(std::move(file), ec);
    if (ec)
      return Reply(ErrorResponse(Unavailable("cannot hold the upload: " + ec.message()), 11, false));
    // No body at all (Content-Length: 0): reading on would take the client's
    // end-of-stream as the body's end, and the next request's read would
    // then wait for it in vain.
    if (file_parser_->is_done()) return DispatchUpload();
    ReadUploadSome(limit);
  }

  // Piece by piece, each piece with its own deadline: a large upload may take
  // longer than body_timeout_s in all, but may not stall that long.
  void ReadUploadSome(uint64_t limit) {
    stream_.expires_after(std::chrono::seconds(shared_->opts.body_timeout_s));
    http::async_read_some(
        stream_, buffer_, *file_parser_,
        [self = this->shared_from_this(), limit](beast::error_code ec, size_t) {
          if (ec == http::error::body_limit) return self->TooLarge(limit, true);
          if (ec == beast::errc::no_space_on_device || ec == beast::errc::file_too_large)
            return self->Reply(ErrorResponse(
                ResourceExhausted("no room on the host for the upload: " + ec.message()), 11,
                false));
          if (ec) return self->Fail(ec);
          if (!self->file_parser_->is_done()) return self->ReadUploadSome(limit);
          self->DispatchUpload();
        });
  }

  void DispatchUpload() {
    auto message = file_parser_->release();
    file_parser_.reset();
    message.body().close();
    req_ = Request(std::move(message.base()));
    Dispatch();
  }

  void TooLarge(uint64_t limit, bool upload) {
    Response res = ErrorResponse(
        ResourceExhausted("the request body is over " + std::to_string(limit) + " bytes, the most " +
                          (upload ? "paddockd takes for an upload (its --max-upload)"
                                  : "paddockd takes for this request")),
        11, false);
    res.result(http::status::payload_too_large);
    Reply(std::move(res));
  }

  // Answers "Expect: 100-continue" (which the client sends before its
  // body); false when the connection failed.
  bool GoOnIfAsked(const Request& head) {
    if (!beast::iequals(head[http::field::expect], "100-continue")) return true;
    http::response<http::empty_body> go_on{http::status::continue_, head.version()};
    beast::error_code write_ec;
    http::write(stream_.socket(), go_on, write_ec);
    if (write_ec) Fail(write_ec);
    return !write_ec;
  }

  void Dispatch() {
    dispatched_ = true;
    stream_.expires_never();
    net::post(shared_->workers, [self = this->shared_from_this()] { self->Handle(); });
  }

  void DropBodyFile() {
    if (body_file_.empty()) return;
    ::unlink(body_file_.c_str());
    body_file_.clear();
  }

  // The body streams through to the sandbox as the client sends it: it
  // is never held here. paddockd answers a 100-continue itself (and drops
  // the Expect header), so the upstream's answer is its final one.
  void Relay(RelayTarget target) {
    // The body goes upstream framed as its header says, so that header must
    // say one thing: the body is chunked exactly when the one
    // Transfer-Encoding is "chunked". (Two fields, or another coding, would
    // let the sandbox's app read the body differently from paddockd, and
    // wait for bytes that never come.)
    const Request& head = parser_->get();
    auto codings = head.equal_range(http::field::transfer_encoding);
    size_t fields = static_cast<size_t>(std::distance(codings.first, codings.second));
    if (fields > 1 || (fields == 1 && !beast::iequals(codings.first->value(), "chunked"))) {
      Response bad = ErrorResponse(
          InvalidArgument("a relayed request's Transfer-Encoding may only be a single \"chunked\""),
          head.version(), false);
      return Reply(std::move(bad));
    }
    if (!GoOnIfAsked(parser_->get())) return;
    parser_->get().erase(http::field::expect);
    stream_.expires_never();  // the relay keeps its own deadlines
    relay_parser_.emplace(std::move(*parser_));
    parser_.reset();
    buffer_.reserve(kReadBytes);  // body pieces of up to 64 KiB, not 512 bytes
    if (!upstream_) upstream_.emplace(stream_.get_executor(), shared_->upstreams);
    auto relay = std::make_shared<HttpRelay<Stream>>(
        stream_, buffer_, *relay_parser_, std::move(target), *upstream_, shared_->opts.relay_timeouts,
        [self = this->shared_from_this()](std::optional<Response> reply, bool keep_alive) {
          if (reply) return self->Reply(std::move(*reply));
          if (!keep_alive) return self->Close();
          self->ReadHeader();
        });
    relay->Start();
  }

  // On a worker thread: the socket belongs to this handler until it returns.
  void Handle() {
    std::optional<Response> res;
    try {
      res = shared_->handler(req_, *this);
    } catch (const std::exception& e) {
      res = ErrorResponse(Internal(std::string("handler failed: ") + e.what()), req_.version());
    }
    if (streamed_) res.reset();  // a handler that began a stream has answered with it
    if (stream_claimed_) shared_->streams.fetch_sub(1, std::memory_order_relaxed);
    if (stream_refused_ && !streamed_)
      res = ErrorResponse(Unavailable("paddockd has " + std::to_string(shared_->opts.max_streams) +
                                      " streamed answers open, the most it serves at once "
                                      "(--max-streams): close one or try again"),
                          req_.version(), req_.keep_alive());
    stream_claimed_ = stream_refused_ = false;
    net::post(stream_.get_executor(), [self = this->shared_from_this(), res = std::move(res)]() mutable {
      self->DropBodyFile();
      if (res) return self->Reply(std::move(*res));
      // A stream its handler gave up on without End() is cut: the client
      // must not take what came for the whole answer.
      bool cut = self->streamed_ && !self->ended_;
      if (cut || self->stream_failed_ || !self->req_.keep_alive()) return self->Close();
      self->stream_failed_ = false;
      self->streamed_ = false;
      self->ended_ = false;
      self->ReadHeader();
    });
  }

  void Reply(Response res) {
    res_ = std::make_shared<Response>(std::move(res));
    if (!req_.keep_alive()) res_->keep_alive(false);
    stream_.expires_after(std::chrono::seconds(shared_->opts.body_timeout_s));
    http::async_write(stream_, *res_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      if (!self->res_->keep_alive()) return self->dispatched_ ? self->Close() : self->Linger();
      self->ReadHeader();
    });
  }

  // After an answer given before the body was read (401, 413, no room):
  // stop sending, then drop what the client still sends, for up to 2 s and
  // 4 MiB, before closing. A close with bytes unread makes the kernel reset
  // the connection, and a client still sending its body would fail on the
  // reset instead of reading the answer.
  void Linger() {
    beast::error_code ec;
    stream_.socket().shutdown(Protocol::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(2));
    DropSome(size_t{4} << 20);
  }
  void DropSome(size_t left) {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(std::min<size_t>(left, kReadBytes)),
                            [self = this->shared_from_this(), left](beast::error_code ec, size_t n) {
                              if (ec || n >= left) return self->Close();
                              self->DropSome(left - n);
                            });
  }

  // Writes all of `buffers` from a worker thread. A client that takes
  // nothing for write_stall_timeout_s fails the write, so a reader that
  // stops reading cannot hold a worker (or the sandbox stream behind it).
  template <class Buffers>
  bool WriteWhole(const Buffers& buffers) {
    auto& socket = stream_.socket();
    beast::error_code ec;
    socket.non_blocking(true, ec);
    beast::buffers_suffix<Buffers> left(buffers);
    while (!ec && beast::buffer_bytes(left) > 0) {
      size_t n = socket.write_some(left, ec);
      left.consume(n);
      if (ec != net::error::would_block) continue;
      ec = {};
      pollfd p{socket.native_handle(), POLLOUT, 0};
      int ready = ::poll(&p, 1, shared_->opts.write_stall_timeout_s * 1000);
      if (ready == 0) ec = net::error::timed_out;
      if (ready < 0 && errno != EINTR) ec = beast::error_code(errno, beast::system_category());
    }
    beast::error_code ignored;
    socket.non_blocking(false, ignored);
    return !ec;
  }

  void Fail(beast::error_code) { Close(); }
  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(Protocol::socket::shutdown_both, ec);
    stream_.close();
  }

  static constexpr uint64_t kReadBytes = 64 << 10;  // the most one read of a body takes

  Stream stream_;
  std::shared_ptr<Shared> shared_;
  bool needs_key_;
  std::string client_address_;           // the peer's, on TCP
  beast::flat_buffer buffer_;
  std::optional<UpstreamLink> upstream_;  // once it has relayed a request
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::request_parser<http::file_body>> file_parser_;
  std::optional<RequestParser> relay_parser_;  // the request being relayed
  std::string body_file_;  // the body of the request in hand, when it went to a file
  Request req_;
  std::shared_ptr<Response> res_;
  bool dispatched_ = false;  // the request in hand was read whole and passed on
  bool streamed_ = false;
  bool stream_claimed_ = false;  // holds one of Shared::streams
  bool stream_refused_ = false;  // asked for one when none was free
  bool ended_ = false;  // End() was called on the stream in hand
  bool stream_failed_ = false;
};

// One io_context per I/O thread: a connection lives on one of them for its
// whole life, so its handlers never hop threads (no strand, no wake-ups of
// another thread between a read and the write it causes).
class IoContexts {
 public:
  explicit IoContexts(size_t n) {
    for (size_t i = 0; i < std::max<size_t>(n, 1); ++i) {
      all_.push_back(std::make_unique<net::io_context>(1));
      idle_guards_.push_back(net::make_work_guard(*all_.back()));  // run() waits for connections
    }
  }
  net::io_context& first() { return *all_.front(); }
  net::io_context& next() { return *all_[next_.fetch_add(1, std::memory_order_relaxed) % all_.size()]; }
  const std::vector<std::unique_ptr<net::io_context>>& all() const { return all_; }

 private:
  std::vector<std::unique_ptr<net::io_context>> all_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> idle_guards_;
  std::atomic<size_t> next_{0};
};

template <typename Protocol>
class Listener : public std::enable_shared_from_this<Listener<Protocol>> {
 public:
  Listener(IoContexts& ios, typename Protocol::acceptor acceptor, std::shared_ptr<Shared> shared,
           bool needs_key)
      : ios_(ios), acceptor_(std::move(acceptor)), shared_(std::move(shared)), needs_key_(needs_key) {}
  void Accept() {
    acceptor_.async_accept(ios_.next(), [self = this->shared_from_this()](beast::error_code ec,
                                                                        typename Protocol::socket s) {
      if (ec == net::error::operation_aborted) return;
      if (ec) {
        // Out of descriptors (or another passing failure): accepting again at
        // once would spin; try again shortly.
        self->retry_.expires_after(std::chrono::milliseconds(100));
        self->retry_.async_wait([self](beast::error_code wait_ec) {
          if (!wait_ec) self->Accept();
        });
        return;
      }
      if (self->shared_->connections.load(std::memory_order_relaxed) >= self->shared_->opts.max_connections) {
        TurnAway(s);
        return self->Accept();
      }
      // Responses go out in several writes (headers, chunks): Nagle would
      // hold each small one back for the client's delayed ACK (40 ms).
      if constexpr (std::is_same_v<Protocol, net::ip::tcp>) s.set_option(net::ip::tcp::no_delay(true), ec);
      auto session = std::make_shared<Session<Protocol>>(std::move(s), self->shared_, self->needs_key_);
      net::post(session->executor(), [session] { session->Run(); });
      self->Accept();
    });
  }
  void Close() {
    beast::error_code ec;
    acceptor_.close(ec);
  }

 private:
  // Over max_connections: a 503 written without waiting (it fits the
  // socket's buffer), then the connection is closed unread.
  static void TurnAway(typename Protocol::socket& s) {
    static const std::string kBusy = [] {
      Response res = ErrorResponse(
          ResourceExhausted("paddockd has as many connections as it takes (--max-connections)"), 11,
          false);
      std::ostringstream text;
      text << res;
      return text.str();
    }();
    beast::error_code ec;
    s.non_blocking(true, ec);
    s.write_some(net::buffer(kBusy), ec);
    s.shutdown(Protocol::socket::shutdown_both, ec);
    s.close(ec);
  }

  IoContexts& ios_;
  typename Protocol::acceptor acceptor_;
  std::shared_ptr<Shared> shared_;
  bool needs_key_;
  net::steady_timer retry_{acceptor_.get_executor()};
};

}  // namespace

struct HttpServer::Impl {
  std::unique_ptr<IoContexts> ios;
  std::shared_ptr<Shared> shared;
  std::shared_ptr<Listener<net::local::stream_protocol>> unix_listener;
  std::shared_ptr<Listener<net::ip::tcp>> tcp_listener;
  std::vector<std::thread> threads;
};

HttpServer::HttpServer(ServerOptions opts, Handler handler) : impl_(std::make_unique<Impl>()) {
  impl_->shared = std::make_shared<Shared>(std::move(opts), std::move(handler));
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  const ServerOptions& o = impl_->shared->opts;
  if (o.max_streams == 0 || o.max_streams >= o.workers)
    return InvalidArgument("--max-streams must be 1.." + std::to_string(o.workers - 1) +
                           ": streams hold a worker each, and plain requests need some left");
  impl_->ios = std::make_unique<IoContexts>(o.io_threads);
  net::io_context& io = impl_->ios->first();
  try {
    std::string dir = o.unix_socket.substr(0, o.unix_socket.rfind('/'));
    if (!dir.empty()) PDK_TRY(MakeDirs(dir, 0755));
    ::unlink(o.unix_socket.c_str());
    net::local::stream_protocol::acceptor unix_acceptor(io, {o.unix_socket});
    ::chmod(o.unix_socket.c_str(), 0660);
    impl_->unix_listener = std::make_shared<Listener<net::local::stream_protocol>>(
        *impl_->ios, std::move(unix_acceptor), impl_->shared, false);
    impl_->unix_listener->Accept();
    if (!o.tcp_listen.empty()) {
      if (o.api_key.empty()) return InvalidArgument("listening on TCP needs an API key");
      size_t colon = o.tcp_listen.rfind(':');
      if (colon == std::string::npos) return InvalidArgument("--listen must be HOST:PORT");
      auto addr = net::ip::make_address(o.tcp_listen.substr(0, colon));
      auto port = static_cast<unsigned short>(std::stoi(o.tcp_listen.substr(colon + 1)));
      net::ip::tcp::acceptor tcp_acceptor(io, {addr, port});
      tcp_port_ = tcp_acceptor.local_endpoint().port();
      impl_->tcp_listener = std::make_shared<Listener<net::ip::tcp>>(*impl_->ios, std::move(tcp_acceptor),
                                                                     impl_->shared, true);
      impl_->tcp_listener->Accept();
    }
  } catch (const std::exception& e) {
    return Unavailable(std::string("listen: ") + e.what());
  }
  for (const auto& ctx : impl_->ios->all()) {
    impl_->threads.emplace_back([&io = *ctx] { io.run(); });
    ::pthread_setname_np(impl_->threads.back().native_handle(), "pdk-io");
  }
  return Status::Ok();
}

void HttpServer::Stop() {
  if (!impl_ || impl_->threads.empty()) return;
  net::post(impl_->ios->first(), [this] {
    if (impl_->unix_listener) impl_->unix_listener->Close();
    if (impl_->tcp_listener) impl_->tcp_listener->Close();
  });
  for (const auto& ctx : impl_->ios->all()) ctx->stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  impl_->shared->workers.stop();
  impl_->shared->workers.join();
}

}  // namespace paddock::api
