// net_bench: what networking costs at create, and what the port proxy costs
// per request.
//
//   net_bench [--count N] [--requests N] [--io-threads N]   (--count 0: the HTTP part only)
//
// 1. Create-to-ready (Create returns; then the first exec of `true` done) of
//    N busybox sandboxes, through SandboxManager, in four set-ups measured in
//    the same run: no networking (the peer), networking with warm shells
//    (which carry their slot), networking with warm slots only, and
//    networking with neither. Between creates the pools are let refill.
// 2. Small HTTP requests (GET, 2-byte answer, kept-alive connections) to a
//    server in a sandbox: straight to the sandbox's address (the peer), and
//    through paddockd's proxy by host name, in alternating rounds. Sequential
//    latency p50/p99, then throughput with 8 connections. paddockd and the
//    server are started here; all traffic is loopback and the sandbox's own
//    address.
// Prints figures; asserts nothing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "daemon.h"
#include "samples.h"
#include "cli/api_client.h"
#include "sandbox/manager.h"

using namespace paddock;

namespace {

using bench::Samples;

struct CreateFigures {
  Samples create, ready;
};

CreateFigures MeasureCreates(const std::string& label, int count, bool network, size_t warm_shells,
                             size_t warm_slots) {
  std::string dir = "/tmp/pdk-netbench-XXXXXX";
  dir = ::mkdtemp(dir.data());
  ::chmod(dir.c_str(), 0711);
  ManagerOptions opts;
  opts.state_dir = dir;
  opts.init_path = PADDOCK_INIT_PATH;
  opts.warm_shells = warm_shells;
  opts.warm_templates = {"busybox"};
  if (network) {
    net::NetworkOptions n;
    n.bridge = "pdkb0";
    n.table = "paddock_bench";
    n.pool = "10.90.0.0/16";
    n.dns = {"10.90.0.1"};
    n.warm_slots = warm_slots;
    opts.network = n;
  }
  CreateFigures f;
  {
    auto m = SandboxManager::Open(opts);
    if (!m.ok()) {
      std::fprintf(stderr, "%s: %s\n", label.c_str(), m.status().ToString().c_str());
      return f;
    }
    SandboxSpec spec;
    spec.template_name = "busybox";
    for (int i = 0; i < count; ++i) {
      for (int w = 0; w < 2000; ++w) {  // let the pools refill (at most 2 s)
        bool shells = (*m)->warm_shells_ready() >= warm_shells;
        bool slots = !(*m)->network() || (*m)->network()->warm_slots_ready() >= warm_slots;
        if (shells && slots) break;
        ::usleep(1000);
      }
      int64_t t0 = MonotonicNanos();
      auto info = (*m)->Create(spec);
      int64_t t1 = MonotonicNanos();
      if (!info.ok()) {
        std::fprintf(stderr, "%s: create: %s\n", label.c_str(), info.status().ToString().c_str());
        break;
      }
      agent::ExecOptions exec;
      exec.argv = {"true"};
      auto r = (*m)->Exec(info->id, exec);
      int64_t t2 = MonotonicNanos();
      if (r.ok() && r->exit_code == 0) {
        f.create.Add(t0, t1);
        f.ready.Add(t0, t2);
      }
      (void)(*m)->Delete(info->id);
    }
  }
  (void)RemoveTree(dir);
  return f;
}

// ---- the HTTP part ----

constexpr int kTcpPort = 18790;

// A kept-alive HTTP/1.1 server: one thread per connection, "ok" to anything.
constexpr const char* kServer = R"py(
import socket, sys, threading
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b''
    while True:
        while b'\r\n\r\n' not in buf:
            d = c.recv(65536)
            if not d: return
            buf += d
        _, buf = buf.split(b'\r\n\r\n', 1)
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 8000)); s.listen(128)
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
)py";

int Dial(const std::string& ip, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One request on a kept-alive connection; true if "ok" came back.
bool RoundTrip(int fd, const std::string& request) {
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
    return false;
  std::string got;
  char buf[4096];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    got.append(buf, static_cast<size_t>(n));
    size_t end = got.find("\r\n\r\n");
    if (end != std::string::npos && got.size() >= end + 4 + 2) return got.compare(end + 4, 2, "ok") == 0;
  }
}

struct HttpFigures {
  Samples latency;
  int64_t done = 0, failures = 0;
  double seconds = 0;
  double per_second() const { return seconds > 0 ? done / seconds : 0; }
};

// `requests` sequential round trips on one kept-alive connection.
void MeasureLatency(const std::string& ip, int port, const std::string& request, int requests,
                    HttpFigures& f) {
  int fd = Dial(ip, port);
  for (int i = 0; i < requests && fd >= 0; ++i) {
    int64_t t0 = MonotonicNanos();
    if (!RoundTrip(fd, request)) {
      ++f.failures;
      break;
    }
    f.latency.Add(t0, MonotonicNanos());
  }
  if (fd >= 0) ::close(fd);
}

// `requests` round trips over 8 kept-alive connections at once.
void MeasureThroughput(const std::string& ip, int port, const std::string& request, int requests,
                       HttpFigures& f) {
  std::atomic<int> done{0}, failed{0};
  std::vector<std::thread> clients;
  int64_t t0 = MonotonicNanos();
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&] {
      int cfd = Dial(ip, port);
      for (int i = 0; i < requests / 8 && cfd >= 0; ++i) {
        if (!RoundTrip(cfd, request)) {
          ++failed;
          break;
        }
        ++done;
      }
      if (cfd >= 0) ::close(cfd);
    });
  for (auto& t : clients) t.join();
  f.seconds += (MonotonicNanos() - t0) / 1e9;
  f.done += done;
  f.failures += failed;
}

void ProxyBench(int requests, const std::string& io_threads) {
  std::string dir = "/tmp/pdk-netbench-XXXXXX";
  dir = ::mkdtemp(dir.data());
  ::chmod(dir.c_str(), 0711);
  std::string sock = dir + "/api.sock";
  std::vector<std::string> args = {PADDOCKD_PATH, "--state-dir", dir + "/state", "--socket", sock,
                                   "--init", PADDOCK_INIT_PATH, "--listen",
                                   "127.0.0.1:" + std::to_string(kTcpPort), "--api-key", "bench",
                                   "--bridge", "pdkb0", "--nft-table", "paddock_bench",
                                   "--network-pool", "10.90.0.0/16", "--dns", "10.90.0.1", "--io-threads",
                                   io_threads};
  pid_t daemon = bench::SpawnPaddockd(args, sock, dir + "/paddockd.log");
  cli::ApiClient api(sock);
  auto created = api.Send("POST", "/v1/sandboxes", R"({"name": "web"})");
  if (daemon > 0 && created.ok() && created->status == 201) {
    std::string id = created->Json()["id"];
    std::string ip = created->Json()["network"]["address"];
    (void)api.Send("PUT", "/v1/sandboxes/web/files?path=/srv.py", kServer, "application/octet-stream");
    (void)api.Send("POST", "/v1/sandboxes/web/exec",
                   R"({"command": "nohup python3 /srv.py >/dev/null 2>&1 &"})");
    for (int i = 0; i < 100; ++i) {
      int fd = Dial(ip, 8000);
      if (fd >= 0) {
        ::close(fd);
        break;
      }
      ::usleep(50000);
    }
    std::string host = "8000-" + id + ".paddock.local";
    // In alternating rounds, so that both see the machine in the same state
    // (how busy the CPUs are changes a wake-up's cost several times over).
    HttpFigures direct, proxied;
    const std::string to_direct = "GET / HTTP/1.1\r\nHost: " + ip + ":8000\r\n\r\n";
    const std::string to_proxy = "GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
    constexpr int kRounds = 10;
    for (int r = 0; r < kRounds; ++r) {
      MeasureLatency(ip, 8000, to_direct, requests / kRounds, direct);
      MeasureLatency("127.0.0.1", kTcpPort, to_proxy, requests / kRounds, proxied);
    }
    for (int r = 0; r < 2; ++r) {
      MeasureThroughput(ip, 8000, to_direct, requests / 2, direct);
      MeasureThroughput("127.0.0.1", kTcpPort, to_proxy, requests / 2, proxied);
    }
    std::printf("\nsmall HTTP requests, %d sequential then %d over 8 connections:\n", requests, requests);
    std::printf("%-34s %9s %9s %11s %9s\n", "", "p50 ms", "p99 ms", "req/s (8)", "failed");
    std::printf("%-34s %9.3f %9.3f %11.0f %9lld\n", "direct to the sandbox (peer)", direct.latency.P(0.5),
                direct.latency.P(0.99), direct.per_second(), static_cast<long long>(direct.failures));
    std::printf("%-34s %9.3f %9.3f %11.0f %9lld\n", "through paddockd (host name)", proxied.latency.P(0.5),
                proxied.latency.P(0.99), proxied.per_second(), static_cast<long long>(proxied.failures));
    std::printf("proxied / direct: latency p50 %.2fx, throughput %.2fx\n",
                proxied.latency.P(0.5) / direct.latency.P(0.5), proxied.per_second() / direct.per_second());
    (void)api.Send("DELETE", "/v1/sandboxes/web");
  } else {
    std::fprintf(stderr, "create failed: %s\n", created.ok() ? created->body.c_str() : "no answer");
  }
  if (daemon > 0) {
    ::kill(daemon, SIGTERM);
    ::waitpid(daemon, nullptr, 0);
  }
  (void)RemoveTree(dir);
}

}  // namespace

int main(int argc, char** argv) {
  int count = 100, requests = 4000;
  std::string io_threads = "2";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--count") == 0) count = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--requests") == 0) requests = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--io-threads") == 0) io_threads = argv[i + 1];
  }
  struct Setup {
    const char* label;
    bool network;
    size_t shells, slots;
  };
  const Setup setups[] = {{"no network, 4 warm shells (peer)", false, 4, 0},
                          {"network, 4 warm shells + 4 slots", true, 4, 4},
                          {"network, 4 warm slots, no shells", true, 0, 4},
                          {"network, no pools", true, 0, 0},
                          {"no network, no pools", false, 0, 0}};
  if (count > 0) std::printf("create-to-ready of %d busybox sandboxes (ms):\n", count);
  std::printf("%-36s %9s %9s %11s %11s\n", "", "create p50", "p99", "+exec p50", "p99");
  double peer = 0;
  for (const auto& s : setups) {
    if (count == 0) break;
    CreateFigures f = MeasureCreates(s.label, count, s.network, s.shells, s.slots);
    if (peer == 0) peer = f.ready.P(0.5);
    std::printf("%-36s %9.3f %9.3f %11.3f %11.3f  (%+.3f ms vs peer)\n", s.label, f.create.P(0.5),
                f.create.P(0.99), f.ready.P(0.5), f.ready.P(0.99), f.ready.P(0.5) - peer);
  }
  ProxyBench(requests, io_threads);
  return 0;
}
