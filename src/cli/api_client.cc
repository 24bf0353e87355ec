#include "cli/api_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>

namespace paddock::cli {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

Status HttpResult::AsStatus() const {
  if (status >= 200 && status < 300) return Status::Ok();
  json j = Json();
  std::string code = "internal", message = body;
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    code = j["error"].value("code", "internal");
    message = j["error"].value("message", body);
  }
  StatusCode c = StatusCodeFromName(code);
  if (c == StatusCode::kOk || (c == StatusCode::kInternal && code != "internal"))
    return Internal("HTTP " + std::to_string(status) + ": " + message);
  return Status(c, message);
}

ApiClient ApiClient::FromEnvironment() {
  const char* host = std::getenv("PADDOCK_HOST");
  const char* key = std::getenv("PADDOCK_API_KEY");
  if (host && *host) return ApiClient(std::string("tcp://") + host, key ? key : "");
  const char* socket = std::getenv("PADDOCK_SOCKET");
  return ApiClient(socket && *socket ? socket : "/run/paddock/paddock.sock", key ? key : "");
}

namespace {

// One connection, one request; `handle(stream)` writes and reads.
template <typename Fn>
Status WithConnection(const std::string& endpoint, Fn handle) {
  net::io_context io;
  beast::error_code ec;
  if (endpoint.rfind("tcp://", 0) == 0) {
    std::string hp = endpoint.substr(6);
    size_t colon = hp.rfind(':');
    net::ip::tcp::resolver resolver(io);
    auto results = resolver.resolve(hp.substr(0, colon), hp.substr(colon + 1), ec);
    net::ip::tcp::socket socket(io);
    if (!ec) net::connect(socket, results, ec);
    if (ec) return Unavailable("cannot reach paddockd at " + hp + ": " + ec.message());
    return handle(socket);
  }
  net::local::stream_protocol::socket socket(io);
  socket.connect(net::local::stream_protocol::endpoint(endpoint), ec);
  if (ec)
    return Unavailable("cannot reach paddockd at " + endpoint + " (" + ec.message() +
                       "); is it running? Start it with `paddockd`, or set PADDOCK_SOCKET");
  return handle(socket);
}

http::request<http::string_body> MakeRequest(const std::string& method, const std::string& target,
                                             const std::string& body, const std::string& content_type,
                                             const std::string& api_key) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "paddock");
  req.set(http::field::user_agent, "paddock-cli");
  if (!api_key.empty()) req.set("X-API-Key", api_key);
  if (!body.empty()) req.set(http::field::content_type, content_type);
  req.body() = body;
  req.prepare_payload();
  return req;
}

// Reads the answer to a request already sent.
template <typename Socket>
Status ReadAnswer(Socket& socket, HttpResult& out) {
  beast::error_code ec;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(size_t{4} << 30);
  http::read(socket, buffer, parser, ec);
  if (ec) return Unavailable("read from paddockd: " + ec.message());
  out.status = parser.get().result_int();
  out.body = std::move(parser.get().body());
  return Status::Ok();
}

}  // namespace

Result<HttpResult> ApiClient::Send(const std::string& method, const std::string& target,
                                   const std::string& body, const std::string& content_type) {
  HttpResult out;
  Status s = WithConnection(endpoint_, [&](auto& socket) -> Status {
    beast::error_code ec;
    http::write(socket, MakeRequest(method, target, body, content_type, api_key_), ec);
    if (ec) return Unavailable("send to paddockd: " + ec.message());
    return ReadAnswer(socket, out);
  });
  if (!s.ok()) return s;
  return out;
}

Result<HttpResult> ApiClient::SendFile(const std::string& method, const std::string& target,
                                       const std::string& path, const std::string& content_type) {
  http::request<http::file_body> req{http::string_to_verb(method), target, 11};
  beast::error_code ec;
  req.body().open(path.c_str(), beast::file_mode::scan, ec);
  if (ec) return NotFound("cannot read " + path + ": " + ec.message());
  req.set(http::field::host, "paddock");
  req.set(http::field::user_agent, "paddock-cli");
  req.set(http::field::content_type, content_type);
  if (!api_key_.empty()) req.set("X-API-Key", api_key_);
  req.prepare_payload();
  HttpResult out;
  Status s = WithConnection(endpoint_, [&](auto& socket) -> Status {
    http::write(socket, req, ec);
    // paddockd may refuse early (too large, no room) and close: its answer says why.
    Status answer = ReadAnswer(socket, out);
    if (answer.ok()) return answer;
    if (ec) return Unavailable("send to paddockd: " + ec.message());
    return answer;
  });
  if (!s.ok()) return s;
  return out;
}

Status ApiClient::Stream(const std::string& method, const std::string& target, const std::string& body,
                         const std::function<bool(const std::string&, const json&)>& on_event) {
  return WithConnection(endpoint_, [&](auto& socket) -> Status {
    beast::error_code ec;
    auto req = MakeRequest(method, target, body, "application/json", api_key_);
    req.set(http::field::accept, "text/event-stream");
    http::write(socket, req, ec);
    if (ec) return Unavailable("send to paddockd: " + ec.message());
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t{1} << 40);  // a stream is as long as the command runs
    http::read_header(socket, buffer, parser, ec);
    if (ec) return Unavailable("read from paddockd: " + ec.message());
    if (parser.get().result_int() >= 300) {
      http::read(socket, buffer, parser, ec);
      return HttpResult{static_cast<int>(parser.get().result_int()), parser.get().body()}.AsStatus();
    }
    std::string pending;  // SSE text not yet ending in a blank line
    bool go_on = true;
    auto on_chunk = [&](std::uint64_t, beast::string_view data, beast::error_code&) -> std::size_t {
      pending.append(data.data(), data.size());
      size_t end;
      while (go_on && (end = pending.find("\n\n")) != std::string::npos) {
        std::string block = pending.substr(0, end);
        pending.erase(0, end + 2);
        std::string event = "message", data_line;
        size_t i = 0;
        while (i < block.size()) {
          size_t nl = block.find('\n', i);
          if (nl == std::string::npos) nl = block.size();
          std::string line = block.substr(i, nl - i);
          if (line.rfind("event: ", 0) == 0) event = line.substr(7);
          if (line.rfind("data: ", 0) == 0) data_line += line.substr(6);
          i = nl + 1;
        }
        if (!data_line.empty()) go_on = on_event(event, json::parse(data_line, nullptr, false));
      }
      return data.size();
    };
    parser.on_chunk_body(on_chunk);
    while (go_on && !parser.is_done()) {
      http::read_some(socket, buffer, parser, ec);
      if (ec) return go_on ? Unavailable("stream from paddockd ended: " + ec.message()) : Status::Ok();
    }
    return Status::Ok();
  });
}

}  // namespace paddock::cli
