#include "api/port_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <boost/asio/buffer.hpp>
#include <charconv>
#include <chrono>
#include <limits>

#include "api/http_util.h"

namespace paddock::api {
namespace {

constexpr int kConnectTimeoutMs = 5000;
constexpr int kIoTimeoutMs = 300 * 1000;        // a response may take this long to start or go on
constexpr int kTunnelIdleMs = 3600 * 1000;      // a WebSocket may be quiet this long
constexpr size_t kMaxIdlePerTarget = 16;
constexpr const char* kTokenHeader = "e2b-traffic-access-token";

// Waits until `fd` is ready for `events`; false on timeout or error.
bool WaitFor(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int n;
  do n = ::poll(&p, 1, timeout_ms);
  while (n < 0 && errno == EINTR);
  return n > 0;
}

// A blocking stream over a non-blocking socket, with a timeout on each
// wait: Beast's synchronous read and write run on it.
class FdStream {
 public:
  FdStream(int fd, int timeout_ms) : fd_(fd), timeout_ms_(timeout_ms) {}

  template <typename Buffers>
  size_t read_some(const Buffers& buffers, beast::error_code& ec) {
    return Transfer(First<net::mutable_buffer>(buffers), POLLIN, ec,
                    [&](net::mutable_buffer b) { return ::recv(fd_, b.data(), b.size(), 0); });
  }
  template <typename Buffers>
  size_t write_some(const Buffers& buffers, beast::error_code& ec) {
    return Transfer(First<net::const_buffer>(buffers), POLLOUT, ec,
                    [&](net::const_buffer b) { return ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL); });
  }
  template <typename Buffers>
  size_t read_some(const Buffers& buffers) {
    return OrThrow([&](beast::error_code& ec) { return read_some(buffers, ec); });
  }
  template <typename Buffers>
  size_t write_some(const Buffers& buffers) {
    return OrThrow([&](beast::error_code& ec) { return write_some(buffers, ec); });
  }

 private:
  template <typename Buffer, typename Buffers>
  static Buffer First(const Buffers& buffers) {
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers); ++it)
      if (Buffer b = *it; b.size() > 0) return b;
    return Buffer();
  }
  // One recv or send into `b`, waiting up to the timeout while the socket is
  // not ready. A recv of 0 bytes is the end of the stream.
  template <typename Buffer, typename Syscall>
  size_t Transfer(Buffer b, short events, beast::error_code& ec, Syscall call) {
    ec = {};
    if (b.size() == 0) return 0;
    while (true) {
      ssize_t n = call(b);
      if (n > 0 || (n == 0 && events == POLLOUT)) return static_cast<size_t>(n);
      if (n == 0) {
        ec = net::error::eof;
        return 0;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN || !WaitFor(fd_, events, timeout_ms_)) {
        ec = errno == EAGAIN ? beast::error_code(net::error::timed_out)
                             : beast::error_code(errno, boost::system::system_category());
        return 0;
      }
    }
  }
  template <typename Op>
  static size_t OrThrow(Op op) {
    beast::error_code ec;
    size_t n = op(ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  int fd_;
  int timeout_ms_;
};

bool SendAll(int fd, const char* data, size_t size, int timeout_ms) {
  FdStream s(fd, timeout_ms);
  beast::error_code ec;
  net::write(s, net::const_buffer(data, size), ec);
  return !ec;
}

// Bytes both ways until either side closes or both are quiet too long.
void Tunnel(int a, int b) {
  char buf[65536];
  while (true) {
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    int n = ::poll(p, 2, kTunnelIdleMs);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      int from = i == 0 ? a : b, to = i == 0 ? b : a;
      ssize_t got = ::recv(from, buf, sizeof buf, 0);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0 || !SendAll(to, buf, static_cast<size_t>(got), kIoTimeoutMs)) return;
    }
  }
}

Response BadGateway(const std::string& message, const Request& req) {
  Response res = ErrorResponse(Unavailable(message), req.version(), req.keep_alive());
  res.result(http::status::bad_gateway);
  return res;
}

std::optional<uint16_t> ParsePort(std::string_view s) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

std::string PeerAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  char buf[INET6_ADDRSTRLEN] = "";
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET)
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
    else if (ss.ss_family == AF_INET6)
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

}  // namespace

std::optional<PortRoute> PortProxy::Route(const Request& req) {
  SandboxPort addressed = AddressedSandboxPort(req);
  if (!addressed.id.empty()) {
    auto port = ParsePort(addressed.port);
    if (addressed.port == kEnvdPort || !port) return std::nullopt;
    return PortRoute{addressed.id, *port, std::string(req.target()), false};
  }
  // /v1/sandboxes/{id}/ports/{port}[/rest][?query]
  std::string_view t(req.target().data(), req.target().size());
  constexpr std::string_view kPrefix = "/v1/sandboxes/";
  if (t.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string_view rest = t.substr(kPrefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string id(rest.substr(0, slash));
  rest = rest.substr(slash);
  constexpr std::string_view kPorts = "/ports/";
  if (rest.substr(0, kPorts.size()) != kPorts) return std::nullopt;
  rest = rest.substr(kPorts.size());
  size_t end = rest.find_first_of("/?");
  auto port = ParsePort(rest.substr(0, end));
  if (!port) return std::nullopt;
  std::string target(end == std::string_view::npos ? "" : rest.substr(end));
  if (target.empty() || target[0] != '/') target = "/" + target;
  return PortRoute{id, *port, target, true};
}

bool PortProxy::IsPublic(const Request& req) {
  auto route = Route(req);
  return route && !route->by_path;
}

Result<PortProxy::Upstream> PortProxy::Connect(const std::string& key, const std::string& ip,
                                               uint16_t port) {
  {
    std::lock_guard<std::mutex> lock(idle_mu_);
    auto& idle = idle_[key];
    while (!idle.empty()) {
      UniqueFd fd = std::move(idle.back());
      idle.pop_back();
      char probe;
      ssize_t n = ::recv(fd.get(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && errno == EAGAIN) return Upstream{std::move(fd), true};  // still open, nothing pending
    }
  }
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Status::Errno("socket");
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  int err = 0;
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      err = WaitFor(fd.get(), POLLOUT, kConnectTimeoutMs) ? 0 : ETIMEDOUT;
      socklen_t len = sizeof err;
      if (err == 0) ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    }
  }
  if (err != 0) return Status::Errno("connect", err);
  return Upstream{std::move(fd), false};
}

void PortProxy::GiveBack(const std::string& key, UniqueFd fd) {
  std::lock_guard<std::mutex> lock(idle_mu_);
  auto& idle = idle_[key];
  if (idle.size() < kMaxIdlePerTarget) idle.push_back(std::move(fd));
}

std::optional<Response> PortProxy::Serve(const PortRoute& route, Request& req, StreamWriter& conn) {
  auto info = manager_->Get(route.sandbox);
  if (!info.ok()) return ErrorResponse(info.status(), req.version(), req.keep_alive());
  const std::string where = "port " + std::to_string(route.port) + " of sandbox " + info->id;
  if (!route.by_path && !info->network.traffic_token.empty() &&
      !SameSecret(std::string(req[kTokenHeader]), info->network.traffic_token))
    return ErrorResponse(Status(StatusCode::kUnauthenticated,
                                where + " wants the sandbox's traffic token in header " + kTokenHeader),
                         req.version(), req.keep_alive());
  if (info->state != SandboxState::kRunning)
    return BadGateway(where + " cannot be reached: the sandbox is " + SandboxStateName(info->state), req);
  if (info->address.empty())
    return BadGateway(where + " cannot be reached: the sandbox has no network", req);

  // What the sandbox sees: its own path, no Paddock credentials, where it came from.
  req.target(route.target);
  req.erase(kTokenHeader);
  req.erase("X-API-Key");
  if (route.by_path) req.erase(http::field::authorization);
  std::string client = PeerAddress(conn.native_fd());
  if (!client.empty()) req.set("X-Forwarded-For", client);
  req.set("X-Forwarded-Proto", "http");
  if (!req[http::field::host].empty()) req.set("X-Forwarded-Host", req[http::field::host]);
  const bool upgrade = req.find(http::field::upgrade) != req.end();

  // Send; a kept-alive connection the sandbox closed meanwhile gets one retry.
  const std::string key = info->id + "|" + info->address + ":" + std::to_string(route.port);
  Upstream up;
  beast::flat_buffer from_up;
  std::optional<http::response_parser<http::buffer_body>> parser;
  for (int attempt = 0;; ++attempt) {
    auto connected = Connect(key, info->address, route.port);
    if (!connected.ok())
      return BadGateway(where + " cannot be reached: " +
                            (connected.status().message().find("refused") != std::string::npos
                                 ? std::string("nothing listens there")
                                 : connected.status().message()),
                        req);
    up = std::move(*connected);
    parser.emplace();
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());  // (boost::none misbehaves in 1.74)
    if (req.method() == http::verb::head) parser->skip(true);
    from_up.clear();
    FdStream upstream(up.fd.get(), kIoTimeoutMs);
    beast::error_code ec;
    http::write(upstream, req, ec);
    if (!ec) http::read_header(upstream, from_up, *parser, ec);
    if (!ec) break;
    if (!up.reused || attempt > 0) return BadGateway(where + " did not answer: " + ec.message(), req);
  }

  FdStream upstream(up.fd.get(), kIoTimeoutMs), downstream(conn.native_fd(), kIoTimeoutMs);
  auto& res = parser->get();
  http::response_serializer<http::buffer_body> serializer{res};
  beast::error_code ec;
  if (upgrade && res.result() == http::status::switching_protocols) {
    res.body().data = nullptr;
    res.body().more = false;
    http::write_header(downstream, serializer, ec);
    std::string ahead = conn.TakeReadAhead();
    std::string back = beast::buffers_to_string(from_up.data());
    if (!ec && SendAll(up.fd.get(), ahead.data(), ahead.size(), kIoTimeoutMs) &&
        SendAll(conn.native_fd(), back.data(), back.size(), kIoTimeoutMs))
      Tunnel(conn.native_fd(), up.fd.get());
    conn.Relayed(false);
    return std::nullopt;
  }
  // The body as it comes (Beast's relay pattern with a buffer_body).
  char buf[65536];
  do {
    if (!parser->is_done()) {
      res.body().data = buf;
      res.body().size = sizeof buf;
      http::read(upstream, from_up, *parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) break;
      res.body().size = sizeof buf - res.body().size;
      res.body().data = buf;
      res.body().more = !parser->is_done();
    } else {
      res.body().data = nullptr;
      res.body().size = 0;
    }
    http::write(downstream, serializer, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) break;
  } while (!parser->is_done() || !serializer.is_done());
  bool complete = !ec && parser->is_done() && serializer.is_done();
  if (complete && res.keep_alive() && from_up.size() == 0) GiveBack(key, std::move(up.fd));
  conn.Relayed(complete && res.keep_alive() && req.keep_alive());
  return std::nullopt;
}

}  // namespace paddock::api
