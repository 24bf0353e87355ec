// HttpRelay: one HTTP request relayed to a TCP endpoint and its response
// streamed back, asynchronously on the HTTP server's I/O threads (the port
// proxy's data path; HttpServer starts one when its Router says so).
//
// Both ways go a piece at a time: the request's body as the client sends it
// (the server has read only its header), the response as it comes (chunked,
// server-sent events and long polls stream). An upgrade
// answered with 101 (WebSocket) turns both connections into a byte tunnel.
// Upstream connections are kept alive in an UpstreamPool; one the far side
// closed meanwhile gets one retry on a new connection.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/mutex.h"

namespace paddock::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// Where a request goes; what names it in a 502; which kept-alive
// connections may carry it.
struct RelayTarget {
  net::ip::tcp::endpoint endpoint;
  std::string what;      // "port 8000 of sandbox ID"
  std::string pool_key;  // connections are reused only within one key
};

// Idle upstream connections, by pool key. A connection is reused only if it
// is still open with nothing pending, and forgotten after kIdleFor (the far
// side may be gone without a word: a deleted sandbox's namespace sends none).
class UpstreamPool {
 public:
  static constexpr size_t kMaxPerKey = 16;
  static constexpr std::chrono::seconds kIdleFor{30};

  // An open idle connection for `key`, or nothing.
  UniqueFd Take(const std::string& key);
  void GiveBack(const std::string& key, UniqueFd fd);
  size_t idle() const;

 private:
  struct Idle {
    UniqueFd fd;
    std::chrono::steady_clock::time_point since;
  };
  void SweepLocked(std::chrono::steady_clock::time_point now) REQUIRES(mu_);

  mutable Mutex mu_;
  std::map<std::string, std::vector<Idle>> idle_ GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_sweep_ GUARDED_BY(mu_){};
};

// The upstream connection a client connection relays through. It stays
// with the client connection while its requests go to the same target (no
// pool round trip); when the target changes or the client leaves, it goes
// back to the pool.
class UpstreamLink {
 public:
  UpstreamLink(net::any_io_executor ex, UpstreamPool& pool) : stream_(std::move(ex)), pool_(pool) {}
  ~UpstreamLink() { Park(); }

  beast::tcp_stream& stream() { return stream_; }
  // Whether it is open to `key`; if it is open to another target, that
  // connection goes back to the pool.
  bool OpenTo(const std::string& key) {
    if (stream_.socket().is_open() && key_ == key) return true;
    Park();
    return false;
  }
  // Connected (or taken from the pool) for `key`.
  void Bind(const std::string& key) { key_ = key; }
  // An open connection for `key` from the pool, or false.
  bool TakeFromPool(const std::string& key) {
    UniqueFd fd = pool_.Take(key);
    if (!fd) return false;
    beast::error_code ec;
    stream_.socket().assign(net::ip::tcp::v4(), fd.get(), ec);
    if (ec) return false;
    fd.release();
    key_ = key;
    return true;
  }
  void Close() {
    beast::error_code ignored;
    stream_.socket().close(ignored);
    key_.clear();
  }

 private:
  void Park() {
    if (stream_.socket().is_open() && !key_.empty()) {
      beast::error_code ec;
      int fd = stream_.socket().release(ec);
      if (!ec) pool_.GiveBack(key_, UniqueFd(fd));
    }
    Close();
  }

  beast::tcp_stream stream_;
  UpstreamPool& pool_;
  std::string key_;
};

// A 502 (Bad Gateway) with Paddock's JSON error body.
Response BadGatewayResponse(const std::string& message, const Request& req);
Response BadGatewayResponse(const std::string& message, unsigned version, bool keep_alive);

// A request whose header has been read and whose body is read as it is relayed.
using RequestParser = http::request_parser<http::buffer_body>;

struct RelayTimeouts {
  std::chrono::seconds connect{5};
  std::chrono::seconds io{300};       // a response may take this long to start or go on
  std::chrono::seconds tunnel{3600};  // a tunnel may be quiet both ways this long
};

// Relays the request in `request` (which the caller keeps alive and
// untouched until `done`; its header read, its body not yet) from `client`, a
// Beast stream on the connection's (single-threaded) executor, through
// `upstream`, which the caller keeps too; `client_buffer` holds what the
// client sent past the header. Calls done(reply, keep_alive) once: with a
// reply when nothing was sent to the client yet (the caller writes it; the
// request's body may be partly unread, see request.is_done()), else with
// whether the client connection may carry another request.
template <class ClientStream>
class HttpRelay : public std::enable_shared_from_this<HttpRelay<ClientStream>> {
 public:
  using Done = std::function<void(std::optional<Response> reply, bool keep_alive)>;

  HttpRelay(ClientStream& client, beast::flat_buffer& client_buffer, RequestParser& request,
            RelayTarget target, UpstreamLink& upstream, RelayTimeouts timeouts, Done done)
      : client_(client),
        client_buffer_(client_buffer),
        request_(request),
        req_(request.get()),
        target_(std::move(target)),
        link_(upstream),
        upstream_(upstream.stream()),
        timeouts_(timeouts),
        done_(std::move(done)),
        upgrade_(req_.find(http::field::upgrade) != req_.end()) {}

  void Start() { Connect(true); }

 private:
  static constexpr size_t kTunnelBuffer = 65536;

  void Connect(bool may_reuse) {
    if (may_reuse && (link_.OpenTo(target_.pool_key) || link_.TakeFromPool(target_.pool_key))) {
      reused_ = true;
      return Send();
    }
    link_.Close();
    reused_ = false;
    upstream_.expires_after(timeouts_.connect);
    upstream_.async_connect(target_.endpoint, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) {
        bool refused = ec == net::error::connection_refused;
        return self->Finish(self->BadGateway(self->target_.what + " cannot be reached: " +
                                             (refused ? "nothing listens there" : ec.message())));
      }
      self->upstream_.socket().set_option(net::ip::tcp::no_delay(true), ec);
      self->link_.Bind(self->target_.pool_key);
      self->Send();
    });
  }

  void Send() {
    request_serializer_.emplace(req_);
    upstream_.expires_after(timeouts_.io);
    http::async_write_header(upstream_, *request_serializer_,
                             [self = this->shared_from_this()](beast::error_code ec, size_t) {
                               if (ec) return self->RetryOrFail(ec);
                               self->SendBody();
                             });
  }

  // The request's body, a piece at a time as the client sends it (Beast's
  // relay pattern, as Pump does for the response).
  void SendBody() {
    auto& body = req_.body();
    if (request_.is_done()) {
      body.data = nullptr;
      body.size = 0;
      body.more = false;
      return WriteBodyPiece();
    }
    body_begun_ = true;
    body.data = request_buffer_;
    body.size = sizeof request_buffer_;
    client_.expires_after(timeouts_.io);
    http::async_read(client_, client_buffer_, request_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (ec == http::error::need_buffer) ec = {};
                       if (ec) return self->Abort();  // the client left (or broke its body) midway
                       auto& body = self->req_.body();
                       body.size = sizeof self->request_buffer_ - body.size;
                       body.data = self->request_buffer_;
                       body.more = !self->request_.is_done();
                       self->WriteBodyPiece();
                     });
  }

  void WriteBodyPiece() {
    upstream_.expires_after(timeouts_.io);
    http::async_write(upstream_, *request_serializer_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        if (ec == http::error::need_buffer) ec = {};
                        if (ec) return self->RetryOrFail(ec);
                        if (!self->request_.is_done() || !self->request_serializer_->is_done())
                          return self->SendBody();
                        self->ReadHeader();
                      });
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // (boost::none misbehaves in 1.74)
    if (req_.method() == http::verb::head) parser_->skip(true);
    upstream_buffer_.clear();
    http::async_read_header(upstream_, upstream_buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->RetryOrFail(ec);
                              self->OnHeader();
                            });
  }

  // A kept-alive connection may have been closed by the far side just as
  // it was taken: that request gets one more try on a new connection, unless
  // some of its body was already taken from the client (it cannot be sent
  // again).
  void RetryOrFail(beast::error_code ec) {
    link_.Close();
    if (reused_ && !body_begun_) return Connect(false);
    Finish(BadGateway(target_.what + " did not answer: " + ec.message()));
  }

  // Kept alive only if the request's body was read whole.
  Response BadGateway(const std::string& message) {
    return BadGatewayResponse(message, req_.version(), req_.keep_alive() && request_.is_done());
  }

  void OnHeader() {
    auto& res = parser_->get();
    serializer_.emplace(res);
    if (upgrade_ && res.result() == http::status::switching_protocols) {
      res.body().data = nullptr;
      res.body().more = false;
      client_.expires_after(timeouts_.io);
      return http::async_write_header(client_, *serializer_,
                                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                                        if (ec) return self->Abort();
                                        self->StartTunnel();
                                      });
    }
    Pump();
  }

  // Beast's relay pattern: the body through a buffer_body, a buffer at a time.
  void Pump() {
    auto& body = parser_->get().body();
    if (parser_->is_done()) {
      body.data = nullptr;
      body.size = 0;
      return WriteOut();
    }
    body.data = buffer_;
    body.size = sizeof buffer_;
    upstream_.expires_after(timeouts_.io);
    http::async_read(upstream_, upstream_buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (ec == http::error::need_buffer) ec = {};
                       if (ec) return self->Abort();
                       auto& body = self->parser_->get().body();
                       body.size = sizeof self->buffer_ - body.size;
                       body.data = self->buffer_;
                       body.more = !self->parser_->is_done();
                       self->WriteOut();
                     });
  }

  void WriteOut() {
    client_.expires_after(timeouts_.io);
    http::async_write(client_, *serializer_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return self->Abort();
      if (!self->parser_->is_done() || !self->serializer_->is_done()) return self->Pump();
      self->Complete();
    });
  }

  void Complete() {
    bool keep = parser_->get().keep_alive();
    if (!keep || upstream_buffer_.size() != 0) link_.Close();
    Finish(std::nullopt, keep && req_.keep_alive());
  }

  // Part of the response went out: the client connection cannot go on.
  void Abort() {
    link_.Close();
    Finish(std::nullopt, false);
  }

  void Finish(std::optional<Response> reply, bool keep_alive = false) {
    upstream_.expires_never();
    client_.expires_never();
    Done done = std::move(done_);
    done(std::move(reply), keep_alive);
  }

  // What either side sent past the handshake goes across first, then bytes
  // both ways until one side closes or both are quiet for timeouts_.tunnel.
  void StartTunnel() {
    pipes_ = 2;
    to_upstream_ = Drain(client_buffer_);
    to_client_ = Drain(upstream_buffer_);
    size_t ahead = to_upstream_.size(), back = to_client_.size();
    to_upstream_.resize(std::max(ahead, kTunnelBuffer));
    to_client_.resize(std::max(back, kTunnelBuffer));
    PipeWrite(client_, upstream_, to_upstream_, ahead);
    PipeWrite(upstream_, client_, to_client_, back);
  }

  static std::vector<char> Drain(beast::flat_buffer& b) {
    std::vector<char> bytes(b.size());
    net::buffer_copy(net::buffer(bytes), b.data());
    b.consume(b.size());
    return bytes;
  }

  template <class From, class To>
  void PipeRead(From& from, To& to, std::vector<char>& buf) {
    from.async_read_some(net::buffer(buf), [self = this->shared_from_this(), &from, &to, &buf](
                                               beast::error_code ec, size_t n) {
      if (ec) return self->PipeEnded();
      self->PipeWrite(from, to, buf, n);
    });
  }

  template <class From, class To>
  void PipeWrite(From& from, To& to, std::vector<char>& buf, size_t n) {
    // Activity either way keeps both sides open.
    client_.expires_after(timeouts_.tunnel);
    upstream_.expires_after(timeouts_.tunnel);
    if (n == 0) return PipeRead(from, to, buf);
    net::async_write(to, net::buffer(buf.data(), n), [self = this->shared_from_this(), &from, &to, &buf](
                                                         beast::error_code ec, size_t) {
      if (ec) return self->PipeEnded();
      self->PipeRead(from, to, buf);
    });
  }

  // One side closed (or failed): close both, which ends the other pipe too.
  void PipeEnded() {
    link_.Close();
    beast::error_code ignored;
    client_.socket().shutdown(net::socket_base::shutdown_both, ignored);
    client_.cancel();
    if (--pipes_ == 0) Finish(std::nullopt, false);
  }

  ClientStream& client_;
  beast::flat_buffer& client_buffer_;
  RequestParser& request_;
  http::request<http::buffer_body>& req_;  // request_'s message
  RelayTarget target_;
  UpstreamLink& link_;
  beast::tcp_stream& upstream_;
  RelayTimeouts timeouts_;
  Done done_;
  const bool upgrade_;
  bool reused_ = false;
  bool body_begun_ = false;  // some of the request's body was taken from the client
  std::optional<http::request_serializer<http::buffer_body>> request_serializer_;
  char request_buffer_[65536];  // the request body's, a piece at a time
  beast::flat_buffer upstream_buffer_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  std::optional<http::response_serializer<http::buffer_body>> serializer_;
  char buffer_[16384];                           // the response body's, a piece at a time
  std::vector<char> to_upstream_, to_client_;    // the tunnel's, one per direction
  int pipes_ = 0;
};

}  // namespace paddock::api
