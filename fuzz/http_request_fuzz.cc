// The HTTP request path as a client on paddockd's sockets sees it: a real
// HttpServer (Beast's parser, our header judging, API key, size limits,
// bodies to memory or to a spool file, keep-alive and pipelining, streamed
// answers) with a handler that runs the helpers every route starts with.
//
// Input: byte 0 picks the socket (TCP with an API key, or the unix socket);
// the rest is written to a fresh connection, which is then half-closed.
// The server must answer and close: a connection still open 10 s later is
// a hang, reported as a crash.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "api/http_server.h"
#include "api/http_util.h"
#include "base/fd.h"

using namespace paddock;
using namespace paddock::api;

namespace {

std::optional<Response> Handle(Request& req, StreamWriter& out) {
  Target target = ParseTarget(req);
  (void)AddressedSandboxPort(req);
  (void)BearerToken(req);
  auto body = JsonObjectBody(req, target.Has("required"));
  if (!body.ok()) return ErrorResponse(body.status(), req.version(), req.keep_alive());
  if (!target.path.empty() && target.path[0] == "stream") {
    if (!out.Begin(http::status::ok, "text/plain")) return std::nullopt;
    for (const auto& segment : target.path)
      if (!out.Write(segment)) return std::nullopt;
    if (target.Has("cut")) return std::nullopt;  // left without End(): the connection is closed
    out.End();
    return std::nullopt;
  }
  return JsonResponse(http::status::ok, {{"path", target.path}, {"body", *body}}, req);
}

struct Server {
  Server() {
    // Under $TMPDIR: scripts/fuzz.sh points it at a folder it removes (the
    // harness itself never returns to clean up).
    const char* tmp = std::getenv("TMPDIR");
    std::string made = std::string(tmp && *tmp ? tmp : "/tmp") + "/paddock-fuzz-XXXXXX";
    char* dir = made.data();
    if (!::mkdtemp(dir)) std::abort();
    ServerOptions opts;
    opts.unix_socket = std::string(dir) + "/api.sock";
    opts.tcp_listen = "127.0.0.1:0";
    opts.api_key = "fuzz-key";
    opts.spool_dir = dir;
    opts.body_to_file = [](const Request& req) { return req.method() == http::verb::put; };
    opts.max_body_bytes = 1 << 20;
    opts.max_file_body_bytes = 1 << 20;
    opts.handler_authenticates = [](const Request& req) { return req.target().starts_with("/envd"); };
    // "/routed" is answered on the header; "/relay..." is relayed, body
    // streamed, to this same server as "/relayed...", where the handler
    // answers it (the port proxy's path, with this server as the sandbox).
    opts.router = [this](Request& req, const std::string&) -> RouteResult {
      if (req.target().starts_with("/routed")) return EmptyResponse(http::status::accepted, req);
      if (req.target().starts_with("/relay") && !req.target().starts_with("/relayed")) {
        req.target("/relayed" + std::string(req.target().substr(6)));
        req.set("X-API-Key", "fuzz-key");
        return RelayTarget{{net::ip::make_address_v4("127.0.0.1"), server->tcp_port()}, "the fuzz server", "self"};
      }
      return std::monostate{};
    };
    opts.io_threads = 1;
    opts.workers = 4;
    opts.max_streams = 2;
    unix_path = opts.unix_socket;
    server = std::make_unique<HttpServer>(opts, Handle);
    if (!server->Start().ok()) std::abort();
  }
  std::string unix_path;
  std::unique_ptr<HttpServer> server;
};

UniqueFd Dial(const Server& s, bool tcp) {
  if (tcp) {
    // A new loopback source address each time: the server closes first, and
    // its TIME_WAIT entries would otherwise use up one address's ports
    // after some 30,000 runs. The port is left to connect()
    // (IP_BIND_ADDRESS_NO_PORT), which picks one whose 4-tuple is free.
    static uint32_t connections = 0;
    for (int attempt = 0; attempt < 8; ++attempt) {
      UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      int one = 1;
      ::setsockopt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      struct sockaddr_in from = {};
      from.sin_family = AF_INET;
      from.sin_addr.s_addr = htonl(0x7f010000u | (++connections & 0xffffu));
      struct sockaddr_in addr = {};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(s.server->tcp_port());
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&from), sizeof from) == 0 &&
          ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
        return fd;
      std::fprintf(stderr, "harness: connecting from 127.1.x.y: %s\n", std::strerror(errno));
    }
    std::abort();
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  s.unix_path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Server server;
  if (size < 1) return 0;
  UniqueFd fd = Dial(server, data[0] & 1);
  // Writes what it can (the server may answer and close early), reading
  // answers meanwhile so that neither side's buffer fills.
  size_t at = 1;
  bool half_closed = false;
  for (int waited_ms = 0;;) {
    if (at == size && !half_closed) half_closed = ::shutdown(fd.get(), SHUT_WR) == 0 || true;
    struct pollfd pfd = {fd.get(), static_cast<short>(POLLIN | (at < size ? POLLOUT : 0)), 0};
    int r = ::poll(&pfd, 1, 100);
    if (r == 0 && (waited_ms += 100) >= 10000) {
      std::fprintf(stderr, "the server kept the connection open for 10 s\n");
      std::abort();
    }
    if (r <= 0) continue;
    if (pfd.revents & POLLOUT) {
      ssize_t n = ::send(fd.get(), data + at, size - at, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) at += static_cast<size_t>(n);
      else at = size;  // the server closed its end
    }
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[65536];
      ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return 0;  // answered and closed
    }
  }
}
