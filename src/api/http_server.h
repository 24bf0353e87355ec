// HttpServer: HTTP/1.1 on a unix socket and optionally TCP, with Boost.Beast.
//
// Connections are read asynchronously on a couple of I/O threads, with a
// deadline for each request's header and body and a size limit, so slow or
// hostile clients cannot pile up. On TCP an API key is required; it and the
// body's declared size are judged on the header, before any body is read.
// Upload bodies go to a file, others to memory. Each request is then handled
// on a worker pool: handlers may block (sandbox operations do) and may
// stream their response (chunked) through a StreamWriter. Requests a Router
// claims are relayed to a TCP endpoint on the I/O threads instead
// (HttpRelay), holding no worker.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/http_relay.h"
#include "base/status.h"

namespace paddock::api {

// A response written piece by piece from the handler's thread.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  // Claims one of the server's stream slots for this request (streams hold
  // a worker each, so they are capped below the worker count: plain
  // requests always find one). False when all are taken: the handler then
  // returns nullopt and the server answers 503. A handler claims before
  // doing what its stream reports on (starting a process, a watch); Begin
  // claims one itself if none is held.
  virtual bool ClaimStream() = 0;
  // Sends status and headers; the body follows in chunks. False if the
  // client is gone, or no stream slot was free.
  virtual bool Begin(http::status status, std::string_view content_type) = 0;
  virtual bool Write(std::string_view data) = 0;
  // Ends the stream. A handler that returns after Begin() without End() has
  // its connection closed, so a stream cut short never looks complete.
  virtual bool End() = 0;
  // Where the request's body is when the server wrote it to a file (see
  // ServerOptions::body_to_file); empty otherwise. The file is removed once
  // the handler returns.
  virtual const std::string& body_file() const = 0;
};

// Returns the response, or nullopt once it has streamed one through the writer.
using Handler = std::function<std::optional<Response>(Request& req, StreamWriter& out)>;

// Runs on an I/O thread for each authenticated request, on its header
// alone, so it must not block: a target relays the request there, its body
// streamed as it comes (the router may rewrite the header first), a
// response answers it at once, nothing passes it on (its body is then read,
// and the Handler called).
// `client` is the peer's address on TCP, empty on the unix socket.
using RouteResult = std::variant<std::monostate, RelayTarget, Response>;
using Router = std::function<RouteResult(Request& req, const std::string& client)>;

struct ServerOptions {
  std::string unix_socket;           // required
  std::string tcp_listen;            // "host:port"; empty: no TCP
  std::string api_key;               // required on TCP (X-API-Key or Authorization: Bearer)
  // Requests that carry credentials of their own, which the handler checks
  // (a sandbox's access token on E2B envd routes): exempt from the API key.
  std::function<bool(const Request&)> handler_authenticates;
  Router router;                     // optional
  RelayTimeouts relay_timeouts;
  size_t max_header_bytes = 64 * 1024;
  size_t max_body_bytes = size_t{256} << 20;  // bodies held in memory
  // Requests whose body goes to a file in `spool_dir` instead of memory
  // (uploads of archives of any size), chosen from the header alone.
  std::function<bool(const Request& header)> body_to_file;
  // Judges a request that body_to_file sends to a file on its header alone,
  // on an I/O thread (it must not block): an answer here is given before a
  // byte of the body is read (credentials of the request's own, which the
  // API key check left to the handler). Optional.
  std::function<std::optional<Response>(const Request& header)> screen_header;
  std::string spool_dir;
  uint64_t max_file_body_bytes = uint64_t{64} << 30;
  int header_timeout_s = 30;         // also how long an idle keep-alive connection lives
  int body_timeout_s = 300;
  int write_stall_timeout_s = 60;    // a streamed response whose client takes nothing for this long is cut
  size_t io_threads = 2;
  size_t workers = 256;              // handlers in flight (streams hold one each)
  size_t max_streams = 224;          // streamed answers open at once; below `workers`
  // Connections open at once; more are answered 503 and closed. (Each is a
  // descriptor: without a cap, a flood runs paddockd out of them.)
  size_t max_connections = 4096;
};

// The API's error body, {"error":{"code","message"}}; ErrorResponse sends
// it with the fitting status.
nlohmann::json ErrorBody(const Status& s);
Response ErrorResponse(const Status& s, unsigned version = 11, bool keep_alive = true);
http::status HttpStatusFor(StatusCode code);

class HttpServer {
 public:
  HttpServer(ServerOptions opts, Handler handler);
  ~HttpServer();
  // Binds and listens (replacing a stale unix socket file), then serves on
  // background threads until Stop.
  Status Start();
  // Stops accepting and closes connections; waits for the I/O threads.
  void Stop();
  // The TCP port actually bound (for ":0").
  unsigned short tcp_port() const { return tcp_port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  unsigned short tcp_port_ = 0;
};

}  // namespace paddock::api
