#include "net/forwarder.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <vector>

namespace paddock::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using json = nlohmann::json;

namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(5);
constexpr auto kIdleTimeout = std::chrono::hours(1);
constexpr size_t kBuffer = 64 * 1024;
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

Result<uint16_t> PortField(const json& j, const char* name, bool zero_ok) {
  if (!j.is_number_integer()) return InvalidArgument(std::string(name) + " must be an integer port number");
  int64_t v = j.get<int64_t>();
  if (v < (zero_ok ? 0 : 1) || v > 65535)
    return InvalidArgument(std::string(name) + " must be " + (zero_ok ? "0 (any free port)" : "1") +
                           " to 65535, not " + std::to_string(v));
  return static_cast<uint16_t>(v);
}

// A reset, not a close: the client learns at once that nothing is there.
void Reset(tcp::socket& s) {
  boost::system::error_code ec;
  s.set_option(asio::socket_base::linger(true, 0), ec);
  s.close(ec);
}

// One forwarded connection: the client's socket and the sandbox's, bytes
// copied both ways. An end of stream one way is passed on as a half-close;
// the connection ends when both ways have ended, on an error, or when both
// ways have been quiet for kIdleTimeout.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket client, std::atomic<size_t>& count)
      : client_(std::move(client)), upstream_(client_.get_executor()), timer_(client_.get_executor()),
        count_(count) {
    ++count_;
  }
  ~Connection() { --count_; }

  void Start(tcp::endpoint to) {
    timer_.expires_after(kConnectTimeout);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec && !self->connected_) self->upstream_.close(ec);  // the connect fails with operation_aborted
    });
    upstream_.async_connect(to, [self = shared_from_this()](boost::system::error_code ec) {
      self->connected_ = true;
      self->timer_.cancel();
      if (ec) return Reset(self->client_);
      self->upstream_.set_option(tcp::no_delay(true), ec);
      self->client_.set_option(tcp::no_delay(true), ec);
      self->last_activity_ = std::chrono::steady_clock::now();
      self->WatchIdle();
      self->Pipe(self->client_, self->upstream_, self->to_upstream_);
      self->Pipe(self->upstream_, self->client_, self->to_client_);
    });
  }

 private:
  void Pipe(tcp::socket& from, tcp::socket& to, std::vector<char>& buf) {
    if (buf.empty()) buf.resize(kBuffer);
    from.async_read_some(asio::buffer(buf), [self = shared_from_this(), &from, &to, &buf](
                                                boost::system::error_code ec, size_t n) {
      self->last_activity_ = std::chrono::steady_clock::now();
      if (ec == asio::error::eof) {  // this way is done: say so to the other side
        to.shutdown(tcp::socket::shutdown_send, ec);
        return self->Ended(false);
      }
      if (ec) return self->Ended(true);
      asio::async_write(to, asio::buffer(buf.data(), n), [self, &from, &to, &buf](boost::system::error_code ec,
                                                                                  size_t) {
        if (ec) return self->Ended(true);
        self->Pipe(from, to, buf);
      });
    });
  }

  void Ended(bool failed) {
    if (failed || ++ended_ == 2) {
      boost::system::error_code ignored;
      client_.close(ignored);
      upstream_.close(ignored);
      timer_.cancel();
    }
  }

  void WatchIdle() {
    auto deadline = last_activity_ + kIdleTimeout;
    timer_.expires_at(deadline);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || !self->client_.is_open()) return;
      if (std::chrono::steady_clock::now() - self->last_activity_ >= kIdleTimeout) return self->Ended(true);
      self->WatchIdle();
    });
  }

  tcp::socket client_, upstream_;
  asio::steady_timer timer_;
  std::atomic<size_t>& count_;
  bool connected_ = false;
  int ended_ = 0;
  std::chrono::steady_clock::time_point last_activity_;
  std::vector<char> to_upstream_, to_client_;
};

}  // namespace

Result<PortForward> PortForward::FromJson(const json& j) {
  if (!j.is_object()) return InvalidArgument("a forward must be an object like {\"port\": 5432}");
  for (const auto& [key, value] : j.items())
    if (key != "port" && key != "host_port" && key != "bind")
      return InvalidArgument("unknown field '" + key + "' in a forward (port, host_port, bind)");
  if (!j.contains("port")) return InvalidArgument("a forward needs 'port', the sandbox's port");
  PortForward f;
  PDK_ASSIGN_OR_RETURN(f.port, PortField(j["port"], "port", false));
  if (j.contains("host_port")) {
    PDK_ASSIGN_OR_RETURN(f.host_port, PortField(j["host_port"], "host_port", true));
  }
  if (j.contains("bind")) {
    if (!j["bind"].is_string()) return InvalidArgument("bind must be an IPv4 address string");
    f.bind = j["bind"].get<std::string>();
    if (!Ipv4::Parse(f.bind).ok()) return InvalidArgument("bind '" + f.bind + "' is not an IPv4 address");
  }
  return f;
}

json PortForward::ToJson() const {
  return {{"port", port}, {"host_port", host_port}, {"bind", bind},
          {"address", bind + ":" + std::to_string(host_port)}};
}

std::string ForwardsToStored(const std::vector<PortForward>& forwards) {
  if (forwards.empty()) return "";
  json all = json::array();
  for (const auto& f : forwards) all.push_back({{"port", f.port}, {"host_port", f.host_port}, {"bind", f.bind}});
  return all.dump();
}

std::vector<PortForward> ForwardsFromStored(const std::string& text) {
  std::vector<PortForward> out;
  json all = json::parse(text.empty() ? "[]" : text, nullptr, false);
  if (!all.is_array()) return out;
  for (const auto& j : all)
    if (auto f = PortForward::FromJson(j); f.ok()) out.push_back(*f);
  return out;
}

struct Forwarder::Impl {
  struct Listener {
    Listener(asio::io_context& io, std::string sandbox, uint16_t port)
        : acceptor(io), retry(io), sandbox(std::move(sandbox)), port(port) {}
    tcp::acceptor acceptor;
    asio::steady_timer retry;
    std::string sandbox;
    uint16_t port;
  };

  Resolve resolve;
  std::atomic<size_t> connections{0};  // before io: its connections count down as io goes
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::thread thread;
  mutable std::mutex mu;  // guards listeners
  std::map<std::string, std::shared_ptr<Listener>> listeners;  // by "bind:host_port"

  void Accept(std::shared_ptr<Listener> l) {
    l->acceptor.async_accept([this, l](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !l->acceptor.is_open()) return;
      if (ec) {  // out of descriptors, say: try again shortly rather than spin
        l->retry.expires_after(kAcceptRetry);
        return l->retry.async_wait([this, l](boost::system::error_code ec) {
          if (!ec) Accept(l);
        });
      }
      if (auto address = resolve(l->sandbox)) {
        auto to = tcp::endpoint(asio::ip::address_v4(address->value), l->port);
        std::make_shared<Connection>(std::move(s), connections)->Start(to);
      } else {
        Reset(s);
      }
      Accept(l);
    });
  }
};

Forwarder::Forwarder(Resolve resolve) : impl_(std::make_unique<Impl>()) {
  impl_->resolve = std::move(resolve);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

Forwarder::~Forwarder() {
  impl_->work.reset();
  impl_->io.stop();
  impl_->thread.join();
}

Result<PortForward> Forwarder::Open(const std::string& sandbox, PortForward forward) {
  PDK_ASSIGN_OR_RETURN(Ipv4 bind, Ipv4::Parse(forward.bind));
  auto l = std::make_shared<Impl::Listener>(impl_->io, sandbox, forward.port);
  tcp::endpoint at(asio::ip::address_v4(bind.value), forward.host_port);
  boost::system::error_code ec;
  l->acceptor.open(tcp::v4(), ec);
  if (!ec) l->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) l->acceptor.bind(at, ec);
  if (!ec) l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  const std::string where = forward.bind + ":" + std::to_string(forward.host_port);
  if (ec == asio::error::address_in_use) return AlreadyExists("host port " + where + " is in use");
  if (ec == boost::system::errc::address_not_available)
    return InvalidArgument("bind " + forward.bind + " is not an address of this host");
  if (ec) return Internal("cannot listen on " + where + ": " + ec.message());
  forward.host_port = l->acceptor.local_endpoint().port();
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->listeners[forward.bind + ":" + std::to_string(forward.host_port)] = l;
  }
  asio::post(impl_->io, [this, l] { impl_->Accept(l); });
  return forward;
}

void Forwarder::Close(const std::string& bind, uint16_t host_port) {
  std::shared_ptr<Impl::Listener> l;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->listeners.find(bind + ":" + std::to_string(host_port));
    if (it == impl_->listeners.end()) return;
    l = std::move(it->second);
    impl_->listeners.erase(it);
  }
  // On the I/O thread, which may be in the middle of an accept on it; the
  // port is free again when this returns.
  std::promise<void> closed;
  asio::post(impl_->io, [l, &closed] {
    boost::system::error_code ignored;
    l->acceptor.close(ignored);
    l->retry.cancel();
    closed.set_value();
  });
  closed.get_future().wait();
}

size_t Forwarder::listening() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->listeners.size();
}

size_t Forwarder::connections() const { return impl_->connections; }

}  // namespace paddock::net
