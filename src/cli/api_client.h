// ApiClient: a small synchronous HTTP/1.1 client for paddockd's REST API,
// over its unix socket or TCP. Used by the CLI and the API tests.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace paddock::cli {

using nlohmann::json;

struct HttpResult {
  int status = 0;
  std::string body;
  json Json() const { return json::parse(body, nullptr, false); }
  // The API's error ({"error":{"code","message"}}) as a Status; ok for 2xx.
  Status AsStatus() const;
};

class ApiClient {
 public:
  // `socket` is a unix socket path, or "tcp://HOST:PORT".
  ApiClient(std::string endpoint, std::string api_key = "")
      : endpoint_(std::move(endpoint)), api_key_(std::move(api_key)) {}
  // $PADDOCK_HOST (tcp) with $PADDOCK_API_KEY, else $PADDOCK_SOCKET, else the default socket.
  static ApiClient FromEnvironment();
  const std::string& endpoint() const { return endpoint_; }

  // kUnavailable with a hint when paddockd is not there.
  Result<HttpResult> Send(const std::string& method, const std::string& target,
                          const std::string& body = "", const std::string& content_type = "application/json");
  // A request whose body is the file at `path`, sent as it is read.
  Result<HttpResult> SendFile(const std::string& method, const std::string& target,
                              const std::string& path, const std::string& content_type);
  // A request answered with server-sent events: `on_event(name, data)` per
  // event, until the stream ends or it returns false. A non-2xx answer is
  // returned as its Status.
  Status Stream(const std::string& method, const std::string& target, const std::string& body,
                const std::function<bool(const std::string&, const json&)>& on_event);

 private:
  std::string endpoint_;
  std::string api_key_;
};

}  // namespace paddock::cli
