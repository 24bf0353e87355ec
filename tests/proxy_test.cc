// paddockd's network surface: the port proxy (both forms, WebSocket, 502,
// traffic token), TCP forwards, network settings over REST, and recovery of
// networked sandboxes after kill -9. Traffic goes to loopback and to the sandboxes'
// own addresses only.
#include <arpa/inet.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "daemon_fixture.h"

namespace paddock::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

constexpr int kTcpPort = 18733;
constexpr const char* kApiKey = "proxy-test-key";

// HTTP and WebSocket echo in Python's standard library: answers
// "METHOD PATH host=HOST" plus the body (/headers: the headers it got;
// /count: the body's size and SHA-256, read in pieces, sized or chunked),
// keeps connections alive.
constexpr const char* kServer = R"py(
import base64, hashlib, socket, struct, sys, threading, time
def handle(c):
    f = c.makefile('rb')
    while True:
        line = f.readline()
        if not line: return
        headers = {}
        while True:
            h = f.readline().decode()
            if h in ('\r\n', '\n', ''): break
            k, v = h.split(':', 1); headers[k.strip().lower()] = v.strip()
        if line.split(b' ')[1].startswith(b'/count'):
            digest, count = hashlib.sha256(), 0
            def take(n):
                nonlocal count
                while n > 0:
                    d = f.read(min(n, 1 << 20))
                    if not d: raise EOFError
                    digest.update(d); count += len(d); n -= len(d)
            if headers.get('transfer-encoding', '').lower() == 'chunked':
                while True:
                    size = int(f.readline().split(b';')[0], 16)
                    if size == 0: f.readline(); break
                    take(size); f.readline()
            else:
                take(int(headers.get('content-length', 0)))
            out = ('%d %s' % (count, digest.hexdigest())).encode()
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % len(out) + out); continue
        n = int(headers.get('content-length', 0)); body = f.read(n) if n else b''
        if headers.get('upgrade', '').lower() == 'websocket':
            acc = base64.b64encode(hashlib.sha1((headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').encode()).digest()).decode()
            c.sendall(('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n' % acc).encode())
            while True:
                hdr = f.read(2)
                if len(hdr) < 2: return
                op, ln = hdr[0] & 15, hdr[1] & 127
                if ln == 126: ln = struct.unpack('>H', f.read(2))[0]
                elif ln == 127: ln = struct.unpack('>Q', f.read(8))[0]
                mask = f.read(4); data = bytes(b ^ mask[i % 4] for i, b in enumerate(f.read(ln)))
                if op == 8: c.sendall(b'\x88\x00'); c.shutdown(socket.SHUT_RDWR); return
                size = bytes([ln]) if ln < 126 else b'\x7e' + struct.pack('>H', ln) if ln < 65536 else b'\x7f' + struct.pack('>Q', ln)
                c.sendall(bytes([hdr[0]]) + size + data)  # FIN and opcode as sent: fragments stay fragments
        method, path, _ = line.decode().split(' ', 2)
        out = ('%s %s host=%s' % (method, path, headers.get('host', ''))).encode() + body
        if path.startswith('/chunks'):  # streamed: three chunks, a pause before each
            c.sendall(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')
            for i in range(3):
                time.sleep(0.05); c.sendall(b'6\r\nchunk%d\r\n' % i)
            c.sendall(b'0\r\n\r\n'); continue
        if path.startswith('/big'): out = b'x' * (1 << 20) + out
        if path.startswith('/headers'): out = ''.join('%s: %s\n' % kv for kv in sorted(headers.items())).encode()
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % len(out) + out)
        if path.startswith('/bye'): c.close(); return  # drops a kept-alive connection unannounced
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(64)
while True:
    c, _ = s.accept(); threading.Thread(target=handle, args=(c,), daemon=True).start()
)py";

// Raw TCP: reads until the client's end of stream, answers with what came
// upper-cased, then closes (so a forward must pass half-closes through).
constexpr const char* kShouter = R"py(
import socket, sys, threading
def handle(c):
    data = b''
    while True:
        d = c.recv(65536)
        if not d: break
        data += d
    c.sendall(data.upper()); c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(64)
while True:
    c, _ = s.accept(); threading.Thread(target=handle, args=(c,), daemon=True).start()
)py";

// Sends `data` to 127.0.0.1:`port`, half-closes, reads to the end. An error
// (a reset, a refusal) comes back as its message.
std::string Shout(int port, const std::string& data) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  beast::error_code ec;
  s.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)}, ec);
  if (ec) return "error: " + ec.message();
  // A reset can come while this still sends: the send reports it, and the
  // socket would then read as a plain end of stream.
  asio::write(s, asio::buffer(data), ec);
  if (!ec) s.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  if (ec) return "error: " + ec.message();
  std::string got;
  char buf[65536];
  while (true) {
    size_t n = s.read_some(asio::buffer(buf), ec);
    got.append(buf, n);
    if (ec == asio::error::eof) return got;
    if (ec) return "error: " + ec.message();
  }
}

struct Reply {
  int status = 0;
  std::string body;
};

// One request to paddockd's TCP port with the Host header given.
Reply Exchange(http::verb method, const std::string& host, const std::string& target,
               const std::vector<std::pair<std::string, std::string>>& headers = {},
               const std::string& body = "") {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), kTcpPort});
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, host);
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  http::write(s, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  return {static_cast<int>(res.result_int()), res.body()};
}

Reply Get(const std::string& host, const std::string& target,
          const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  return Exchange(http::verb::get, host, target, headers);
}

class ProxyTest : public DaemonTest {
 protected:
  void SetUp() override {
    extra_args_ = {"--listen", "127.0.0.1:" + std::to_string(kTcpPort), "--api-key", kApiKey,
                   "--e2b-domain", "paddock.test"};
    DaemonTest::SetUp();
  }

  // A sandbox serving kServer on `port`; returns its id.
  std::string WebSandbox(const std::string& name, int port, json network = json::object()) {
    std::string id = Must("POST", "/v1/sandboxes", {{"name", name}, {"network", network}}, 201)["id"];
    auto put = api().Send("PUT", "/v1/sandboxes/" + name + "/files?path=/srv.py", kServer,
                          "application/octet-stream");
    EXPECT_TRUE(put.ok() && put->status == 200);
    Must("POST", "/v1/sandboxes/" + name + "/exec",
         {{"command", "nohup python3 /srv.py " + std::to_string(port) + " >/dev/null 2>&1 &"}});
    for (int i = 0; i < 100; ++i) {  // bounded: 5 s
      auto r = api().Send("GET", "/v1/sandboxes/" + name + "/ports/" + std::to_string(port) + "/");
      if (r.ok() && r->status == 200) return id;
      ::usleep(50000);
    }
    ADD_FAILURE() << "the server in " << name << " never answered";
    return id;
  }
};

TEST_F(ProxyTest, HttpThroughBothFormsAndA502ForADeadPort) {
  std::string id = WebSandbox("web", 8080);
  json info = Must("GET", "/v1/sandboxes/web");
  EXPECT_TRUE(info["network"]["address"].is_string()) << info.dump();
  EXPECT_EQ(info["network"]["egress"], "allow");

  // Path form, behind the API key (the unix socket is trusted).
  auto r = api().Send("POST", "/v1/sandboxes/web/ports/8080/echo/this?x=1", "payload", "text/plain");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.substr(0, 21), "POST /echo/this?x=1 h");
  EXPECT_NE(r->body.find("payload"), std::string::npos);
  auto anonymous = cli::ApiClient("tcp://127.0.0.1:" + std::to_string(kTcpPort)).Send("GET", "/v1/sandboxes/web/ports/8080/");
  ASSERT_TRUE(anonymous.ok());
  EXPECT_EQ(anonymous->status, 401);

  // Host form, public; many requests on one kept-alive client connection.
  std::string host = "8080-" + id + ".paddock.test";
  Reply hosted = Get(host, "/from/host");
  EXPECT_EQ(hosted.status, 200);
  EXPECT_EQ(hosted.body, "GET /from/host host=" + host);
  // The app's own Authorization reaches it; Paddock's API key never does.
  Reply own = Get(host, "/headers", {{"Authorization", "Bearer app-secret"}});
  EXPECT_NE(own.body.find("authorization: Bearer app-secret\n"), std::string::npos) << own.body;
  Reply leaked = Get(host, "/headers",
                     {{"Authorization", std::string("Bearer ") + kApiKey}, {"X-API-Key", kApiKey}});
  EXPECT_EQ(leaked.status, 200);
  EXPECT_EQ(leaked.body.find(kApiKey), std::string::npos) << leaked.body;
  EXPECT_NE(leaked.body.find("x-forwarded-host: " + host), std::string::npos) << leaked.body;
  // A path that paddockd's own API takes as an upload is the sandbox's here:
  // relayed with its body.
  Reply posted = Exchange(http::verb::post, host, "/v1/images/import", {}, "the sandbox's body");
  EXPECT_EQ(posted.status, 200);
  EXPECT_NE(posted.body.find("the sandbox's body"), std::string::npos) << posted.body;
  {
    asio::io_context io;
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), kTcpPort});
    beast::flat_buffer buf;
    for (int i = 0; i < 20; ++i) {
      http::request<http::string_body> req{http::verb::get, "/n/" + std::to_string(i), 11};
      req.set(http::field::host, host);
      http::write(s, req);
      http::response<http::string_body> res;
      http::read(s, buf, res);
      EXPECT_EQ(res.body(), "GET /n/" + std::to_string(i) + " host=" + host);
    }
  }

  // Nobody on the port: a 502 that names sandbox and port.
  Reply dead = Get("9999-" + id + ".paddock.test", "/");
  EXPECT_EQ(dead.status, 502);
  EXPECT_NE(dead.body.find("port 9999 of sandbox " + id), std::string::npos) << dead.body;
  EXPECT_NE(dead.body.find("nothing listens there"), std::string::npos) << dead.body;
  EXPECT_EQ(Get("8080-nosuchsandbox.paddock.test", "/").status, 404);
  // Paused: 502 too, saying so.
  Must("POST", "/v1/sandboxes/web/pause");
  Reply paused = Get(host, "/");
  EXPECT_EQ(paused.status, 502);
  EXPECT_NE(paused.body.find("paused"), std::string::npos);
  Must("POST", "/v1/sandboxes/web/resume");
  EXPECT_EQ(Get(host, "/again").status, 200);
}

// A body larger than any paddockd holds in memory (256 MiB) streams
// through the proxy to the sandbox's app, sized and chunked, on one kept-alive
// connection: 600 MiB leave paddockd's peak memory within 64 MiB of where
// it was. (The old proxy read the body whole first and answered 413.)
TEST_F(ProxyTest, LargeBodiesStreamThroughToTheSandbox) {
  std::string id = WebSandbox("up", 8080);
  std::string upload = state_->path() + "/upload.bin";
  Shell("head -c 1048576 /dev/urandom > " + upload + ".1 && for i in $(seq 600); do cat " + upload +
        ".1; done > " + upload);
  std::string expected = std::to_string(600 << 20) + " " + Shell("sha256sum < " + upload).substr(0, 64);
  int64_t before = PeakRssKb(pid_);
  std::string url = "http://127.0.0.1:" + std::to_string(kTcpPort) + "/count";
  std::string host = "-H 'Host: 8080-" + id + ".paddock.test' ";
  // -T streams the file with its Content-Length; from stdin it goes chunked.
  std::string both = Shell("curl -sS -X POST " + host + "-T " + upload + " " + url + " -: -sS -X POST " + host +
                           "-H 'Transfer-Encoding: chunked' -T - " + url + " < " + upload);
  EXPECT_EQ(both, expected + expected);
  int64_t after = PeakRssKb(pid_);
  EXPECT_LT(after - before, 64 * 1024) << "paddockd's peak grew from " << before << " to " << after << " kB";
  // A client that leaves midway leaves the proxy serving the next.
  Shell("head -c 100000000 " + upload + " | curl -sS -m 1 -X POST " + host + "-H 'Content-Length: 600000000' -T - " +
        url + " 2>/dev/null");
  EXPECT_EQ(Get("8080-" + id + ".paddock.test", "/after").body, "GET /after host=8080-" + id + ".paddock.test");

  // Framing the app could read otherwise than paddockd (two
  // Transfer-Encodings) is refused, not relayed. (Found by
  // fuzz/http_request_fuzz: the app waited for chunks that never came.)
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), kTcpPort});
  asio::write(s, asio::buffer("POST /count HTTP/1.1\r\nHost: 8080-" + id +
                              ".paddock.test\r\nTransfer-Encoding: chunke\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "1\r\nx\r\n0\r\n\r\n"));
  beast::flat_buffer buf;
  http::response<http::string_body> refused;
  http::read(s, buf, refused);
  EXPECT_EQ(refused.result_int(), 400);
  EXPECT_NE(refused.body().find("Transfer-Encoding"), std::string::npos) << refused.body();
}

// One client connection whose requests go to two sandboxes, through a
// server that drops kept-alive connections unannounced, with a streamed and
// a large response on the way.
TEST_F(ProxyTest, OneClientConnectionAcrossSandboxesAndDroppedUpstreams) {
  std::string a = WebSandbox("a", 8080), b = WebSandbox("b", 8080);
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), kTcpPort});
  beast::flat_buffer buf;
  auto get = [&](const std::string& id, const std::string& target) {
    http::request<http::string_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "8080-" + id + ".paddock.test");
    http::write(s, req);
    http::response_parser<http::string_body> parser;
    parser.body_limit(8 << 20);
    http::read(s, buf, parser);
    return parser.release();
  };
  auto echo = [](const std::string& id, const std::string& target) {
    return "GET " + target + " host=8080-" + id + ".paddock.test";
  };
  EXPECT_EQ(get(a, "/bye").body(), echo(a, "/bye"));
  EXPECT_EQ(get(a, "/after-bye").body(), echo(a, "/after-bye"));  // the dropped one is retried
  EXPECT_EQ(get(b, "/to-b").body(), echo(b, "/to-b"));
  EXPECT_EQ(get(a, "/back-to-a").body(), echo(a, "/back-to-a"));
  auto chunks = get(b, "/chunks");
  EXPECT_EQ(chunks.result_int(), 200);
  EXPECT_TRUE(chunks.chunked());
  EXPECT_EQ(chunks.body(), "chunk0chunk1chunk2");
  auto big = get(a, "/big");
  EXPECT_EQ(big.body().size(), (size_t{1} << 20) + echo(a, "/big").size());
  EXPECT_EQ(big.body().substr(1 << 20), echo(a, "/big"));
  EXPECT_EQ(get(b, "/last").body(), echo(b, "/last"));
}

TEST_F(ProxyTest, WebSocketEchoThroughTheProxy) {
  std::string id = WebSandbox("ws", 8081);
  asio::io_context io;
  beast::websocket::stream<asio::ip::tcp::socket> ws(io);
  ws.next_layer().connect({asio::ip::make_address("127.0.0.1"), kTcpPort});
  ws.handshake("8081-" + id + ".paddock.test", "/socket");
  for (const std::string& text : {std::string("ping"), std::string(70000, 'w')}) {  // small and over 64 KiB frames
    ws.write(asio::buffer(text));
    beast::flat_buffer buf;
    ws.read(buf);
    EXPECT_TRUE(beast::buffers_to_string(buf.data()) == text) << buf.size() << " bytes came back";
  }
  ws.close(beast::websocket::close_code::normal);
}

TEST_F(ProxyTest, ATrafficTokenGuardsPublicPorts) {
  std::string id = WebSandbox("private", 8082, {{"public_traffic", false}});
  json info = Must("GET", "/v1/sandboxes/private");
  std::string token = info["network"]["traffic_token"];
  ASSERT_EQ(token.size(), 32u);
  std::string host = "8082-" + id + ".paddock.test";
  EXPECT_EQ(Get(host, "/").status, 401);
  EXPECT_EQ(Get(host, "/", {{"e2b-traffic-access-token", "wrong"}}).status, 401);
  EXPECT_EQ(Get(host, "/", {{"e2b-traffic-access-token", token}}).status, 200);
}

TEST_F(ProxyTest, NetworkSettingsOverRest) {
  Must("POST", "/v1/sandboxes", {{"name", "n"}}, 201);
  json changed = Must("PUT", "/v1/sandboxes/n/network",
                      {{"egress", "deny"}, {"allow", {{{"cidr", "192.0.2.0/24"}, {"ports", "443"}}}}});
  EXPECT_EQ(changed["egress"], "deny");
  EXPECT_EQ(changed["allow"][0]["cidr"], "192.0.2.0/24");
  EXPECT_NE(MustFail("PUT", "/v1/sandboxes/n/network", R"({"allow": ["300.1.1.1"]})", 400).find("300.1.1.1"),
            std::string::npos);
  EXPECT_NE(MustFail("PUT", "/v1/sandboxes/n/network", R"({"enabled": false})", 409).find("stopped"),
            std::string::npos);
  json kept = Must("GET", "/v1/sandboxes/n/network");
  EXPECT_EQ(kept["egress"], "deny");  // the bad requests changed nothing
  EXPECT_EQ(kept["allow"].size(), 1u);
  // Stop gives the address back; start takes one.
  Must("POST", "/v1/sandboxes/n/stop");
  EXPECT_TRUE(Must("GET", "/v1/sandboxes/n/network")["address"].is_null());
  Must("PUT", "/v1/sandboxes/n/network", {{"enabled", false}});
  Must("POST", "/v1/sandboxes/n/start");
  EXPECT_TRUE(Must("GET", "/v1/sandboxes/n/network")["address"].is_null());
  auto metrics = api().Send("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("paddock_warm_network_slots"), std::string::npos);
}

// Raw TCP forwards from host ports: half-closes pass, bad requests are
// refused by name, a stopped sandbox resets connections, a restarted one is
// reached at its new address, paddockd's restart listens again, and removing
// the forward or the sandbox frees the port.
TEST_F(ProxyTest, TcpForwardsFromHostPorts) {
  Must("POST", "/v1/sandboxes", {{"name", "db"}}, 201);
  auto put = api().Send("PUT", "/v1/sandboxes/db/files?path=/shout.py", kShouter, "application/octet-stream");
  ASSERT_TRUE(put.ok() && put->status == 200);
  auto serve = [&] {
    Must("POST", "/v1/sandboxes/db/exec", {{"command", "nohup python3 /shout.py 7000 >/dev/null 2>&1 &"}});
  };
  serve();
  json fwd = Must("POST", "/v1/sandboxes/db/forwards", {{"port", 7000}}, 201);
  int host_port = fwd["host_port"];
  EXPECT_GT(host_port, 0);
  EXPECT_EQ(fwd["bind"], "127.0.0.1");
  EXPECT_EQ(fwd["address"], "127.0.0.1:" + std::to_string(host_port));
  auto shout_soon = [&](const std::string& data) {
    std::string got;
    for (int i = 0; i < 100; ++i) {  // bounded: the server may still be starting (5 s)
      got = Shout(host_port, data);
      if (got.rfind("error", 0) != 0 && !got.empty()) break;
      ::usleep(50000);
    }
    return got;
  };
  EXPECT_EQ(shout_soon("hello forward"), "HELLO FORWARD");
  std::string big(3 << 20, 'q');
  EXPECT_TRUE(Shout(host_port, big) == std::string(3 << 20, 'Q'));

  // Bad requests name what is wrong and change nothing.
  Must("POST", "/v1/sandboxes", {{"name", "other"}}, 201);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes/other/forwards",
                     json{{"port", 22}, {"host_port", host_port}}.dump(), 409)
                .find("in use"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes/db/forwards", R"({"port": 70000})", 400).find("port"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes/db/forwards", R"({"port": 22, "bind": "nope"})", 400).find("nope"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes/db/forwards", R"({"port": 22, "bind": "192.0.2.7"})", 400)
                .find("not an address of this host"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes/db/forwards", R"({"port": 22, "hostport": 1})", 400).find("hostport"),
            std::string::npos);
  MustFail("DELETE", "/v1/sandboxes/db/forwards/1", "", 404);
  json listed = Must("GET", "/v1/sandboxes/db/forwards");
  ASSERT_EQ(listed["forwards"].size(), 1u);
  EXPECT_EQ(listed["forwards"][0]["port"], 7000);
  EXPECT_EQ(Must("GET", "/v1/sandboxes/db")["network"]["forwards"].size(), 1u);

  // Stopped: a reset, at once. Started again (a new address, maybe): reached.
  Must("POST", "/v1/sandboxes/db/stop");
  std::string while_stopped = Shout(host_port, "anyone?");
  EXPECT_EQ(while_stopped.rfind("error", 0), 0u) << "got '" << while_stopped << "'";
  Must("POST", "/v1/sandboxes/db/start");
  serve();
  EXPECT_EQ(shout_soon("after restart"), "AFTER RESTART");

  // paddockd killed and started again: the forward is in the record.
  StopDaemon(SIGKILL);
  StartDaemon();
  EXPECT_EQ(shout_soon("after kill -9"), "AFTER KILL -9");
  auto metrics = api().Send("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("paddock_tcp_forwards 1"), std::string::npos);

  // Removed: the port is free (refused, as no one listens).
  Must("DELETE", "/v1/sandboxes/db/forwards/" + std::to_string(host_port), nullptr, 204);
  EXPECT_NE(Shout(host_port, "gone?").find("refused"), std::string::npos);
  // A sandbox's delete frees its forwards' ports.
  json again = Must("POST", "/v1/sandboxes/other/forwards", {{"port", 22}, {"host_port", host_port}}, 201);
  EXPECT_EQ(again["host_port"], host_port);
  Must("DELETE", "/v1/sandboxes/other", nullptr, 204);
  EXPECT_NE(Shout(host_port, "gone?").find("refused"), std::string::npos);
}

// kill -9 with warm slots and shells in flight; the next paddockd (without
// pools, so that the bridge should hold exactly the sandbox's port) adopts
// the sandbox, which stays reachable, and sweeps every orphan.
TEST_F(ProxyTest, KillNineKeepsSandboxesReachableAndLeavesNoOrphans) {
  StopDaemon(SIGTERM);
  extra_args_.insert(extra_args_.end(), {"--warm-slots", "2", "--warm-shells", "1"});
  StartDaemon();
  std::string id = WebSandbox("survivor", 8083);
  std::string address = Must("GET", "/v1/sandboxes/survivor")["network"]["address"];
  Must("PUT", "/v1/sandboxes/survivor/network", {{"deny", {"198.18.0.0/15"}}});
  StopDaemon(SIGKILL);
  extra_args_.resize(extra_args_.size() - 4);
  StartDaemon({"--warm-slots", "0", "--warm-shells", "0"});
  json info = Must("GET", "/v1/sandboxes/survivor");
  EXPECT_EQ(info["state"], "running");
  EXPECT_EQ(info["network"]["address"], address);
  EXPECT_EQ(info["network"]["deny"][0]["cidr"], "198.18.0.0/15");
  Reply r = Get("8083-" + id + ".paddock.test", "/after");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GET /after host=8083-" + id + ".paddock.test");
  auto ports = ListDir("/sys/class/net/pdk0/brif");
  char veth[16];
  std::snprintf(veth, sizeof veth, "pdkv%08x", ntohl(::inet_addr(address.c_str())));
  EXPECT_EQ(ports, std::vector<std::string>{veth});
}

}  // namespace
}  // namespace paddock::testing
