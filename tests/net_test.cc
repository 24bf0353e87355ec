// Sandbox networking against the real kernel: slots on a bridge, isolation,
// egress policies, stop/start. All traffic stays on this machine: the
// "outside" is a network namespace this test makes, with a server in it.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netinet/ip_icmp.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "base/fs.h"
#include "kernel/net.h"
#include "net/conntrack.h"
#include "net/network.h"
#include "net/netlink.h"
#include "sandbox_fixture.h"

namespace paddock::testing {
namespace {

constexpr const char* kBridge = "pdkt0";
constexpr const char* kPool = "10.89.0.0/24";
constexpr const char* kOutside = "198.18.0.2";  // the outside server's address (TEST-NET-2)

// The outside server's port that keeps connections open and echoes.
constexpr int kEchoPort = 8004;

// Connections each sandbox may hold open at once through the host in this
// suite (the daemon's default is 8192): low, so a test can reach it.
constexpr int kMaxConnections = 32;

// A network namespace beside the host joined by veth `link` (host_address/30
// here, address/30 there), serving "hello <port>" on each port. By default
// the "internet": 198.18.0.2 (a benchmarking range, not a private one).
class OutsideServer {
 public:
  explicit OutsideServer(std::vector<int> ports, std::string address = kOutside,
                         std::string host_address = "198.18.0.1", std::string link = "pdkx0")
      : address_(std::move(address)), link_(std::move(link)) {
    auto ns = kernel::net::NewNetns();
    EXPECT_TRUE(ns.ok()) << ns.status().ToString();
    netns_ = std::move(*ns);
    auto nl = net::Netlink::Open();
    EXPECT_TRUE(nl.ok());
    EXPECT_TRUE(nl->AddVeth(link_, 0, "eth0", netns_.get()).ok());
    auto host_end = nl->LinkIndex(link_);
    EXPECT_TRUE(host_end.ok());
    EXPECT_TRUE(nl->AddAddress(*host_end, *net::Ipv4::Parse(host_address), 30).ok());
    EXPECT_TRUE(nl->SetUp(*host_end).ok());
    Status inside = kernel::net::InNetns(netns_.get(), [&]() -> Status {
      PDK_ASSIGN_OR_RETURN(net::Netlink inner, net::Netlink::Open());
      PDK_ASSIGN_OR_RETURN(int eth0, inner.LinkIndex("eth0"));
      PDK_TRY(inner.SetUp(eth0));
      PDK_TRY(inner.AddAddress(eth0, *net::Ipv4::Parse(address_), 30));
      for (int port : ports) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        ::inet_pton(AF_INET, address_.c_str(), &a.sin_addr);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0)
          return Status::Errno("listen outside");
        listeners_.push_back({fd, port});
      }
      return Status::Ok();
    });
    EXPECT_TRUE(inside.ok()) << inside.ToString();
    serve_ = std::thread([this] { Serve(); });
  }
  ~OutsideServer() {
    stop_ = true;
    serve_.join();
    for (auto [fd, port] : listeners_) ::close(fd);
    auto nl = net::Netlink::Open();
    if (nl.ok()) (void)nl->DeleteLink(link_);
  }

 private:
  void Serve() {
    while (!stop_) {
      std::vector<pollfd> fds;
      for (auto [fd, port] : listeners_) fds.push_back({fd, POLLIN, 0});
      for (int fd : echoes_) fds.push_back({fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
      for (size_t i = 0; i < listeners_.size(); ++i) {
        if (!(fds[i].revents & POLLIN)) continue;
        int c = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        std::string hello = "hello " + std::to_string(listeners_[i].second) + "\n";
        (void)::send(c, hello.data(), hello.size(), MSG_NOSIGNAL);
        if (listeners_[i].second == kEchoPort) {
          ::fcntl(c, F_SETFL, O_NONBLOCK);
          echoes_.push_back(c);
        } else {
          ::close(c);
        }
      }
      for (size_t i = 0; i < echoes_.size(); ++i) {  // an open connection: echo, until closed
        char buf[4096];
        ssize_t n = ::recv(echoes_[i], buf, sizeof buf, 0);
        if (n > 0) (void)::send(echoes_[i], buf, static_cast<size_t>(n), MSG_NOSIGNAL);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
          ::close(echoes_[i]);
          echoes_.erase(echoes_.begin() + static_cast<long>(i--));
        }
      }
    }
    for (int c : echoes_) ::close(c);
  }
  std::vector<int> echoes_;
  std::string address_, link_;
  UniqueFd netns_;
  std::vector<std::pair<int, int>> listeners_;
  std::atomic<bool> stop_{false};
  std::thread serve_;
};

// A host service on every address and a free port, which never answers.
struct HostListener {
  HostListener() {
    sockaddr_in any{};
    any.sin_family = AF_INET;
    socklen_t len = sizeof any;
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
    EXPECT_EQ(::listen(fd.get(), 4), 0);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&any), &len);
    port = ntohs(any.sin_port);
  }
  UniqueFd fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  int port = 0;
};

class NetTest : public SandboxTest {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    state_ = new TempDir();
    ManagerOptions opts = Options();
    net::NetworkOptions network;
    network.bridge = kBridge;
    network.table = "paddock_test";
    network.pool = kPool;
    network.dns = {"10.89.0.1"};
    // No warm or recycled slots, no warm shells: the host-clean check
    // compares devices. SlotPoolTest covers the pool.
    network.recycled_slots = 0;
    network.max_connections = kMaxConnections;
    opts.network = network;
    auto m = SandboxManager::Open(opts);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manager_ = m->release();
  }
  static void TearDownTestSuite() {
    SandboxTest::TearDownTestSuite();
    if (::geteuid() != 0) return;
    // With no sandbox left, closing the manager removes bridge and table.
    HostSnapshot after = TakeHostSnapshot();
    EXPECT_TRUE(after.links.empty()) << after.links.front();
    EXPECT_TRUE(after.nft_tables.empty()) << after.nft_tables.front();
  }

  SandboxInfo CreateNet(const std::string& network_json = "{}") {
    SandboxSpec spec;
    EXPECT_TRUE(spec.network.Merge(nlohmann::json::parse(network_json)).ok());
    return Create(spec);
  }

  // From inside `id`: a TCP connection to ip:port and what came back:
  // "ok <first line>", "refused", "timeout" or another error's name.
  std::string Probe(const std::string& id, const std::string& ip, int port) {
    std::string script =
        "import socket,sys\n"
        "try:\n"
        "  s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=3)\n"
        "  s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
        "  print('ok', s.recv(200).decode().splitlines()[0] if True else '')\n"
        "except ConnectionRefusedError: print('refused')\n"
        "except socket.timeout: print('timeout')\n"
        "except Exception as e: print(type(e).__name__)\n";
    auto r = Exec(id, {"python3", "-c", script, ip, std::to_string(port)});
    std::string out = r.stdout_data;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  // Starts a one-line HTTP responder on `port` in sandbox `id`, for the probes.
  void Serve(const std::string& id, int port) {
    agent::ExecOptions opts;
    opts.argv = {"python3", "-c",
                 "import socket,sys\n"
                 "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                 "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16)\n"
                 "while True:\n"
                 "  c,_=s.accept(); c.recv(1000); c.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\nsandbox'); c.close()\n",
                 std::to_string(port)};
    auto client = manager_->Connect(id);
    ASSERT_TRUE(client.ok());
    auto pid = client->Call(agent::AgentClient::SpawnRequest(opts));
    ASSERT_TRUE(pid.ok()) << pid.status().ToString();
    // Ready once a connection from the host is answered.
    std::string ip = manager_->Get(id)->address;
    for (int i = 0; i < 100; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(port));
      ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
      bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      ::close(fd);
      if (up) return;
      ::usleep(50000);
    }
    FAIL() << "server on port " << port << " in " << id << " never came up";
  }
};

TEST_F(NetTest, EachSandboxHasItsOwnAddressRouteAndResolvers) {
  SandboxInfo a = CreateNet(), b = CreateNet();
  ASSERT_FALSE(a.address.empty());
  ASSERT_FALSE(b.address.empty());
  EXPECT_NE(a.address, b.address);
  EXPECT_TRUE(net::Cidr::Parse(kPool)->Contains(*net::Ipv4::Parse(a.address)));
  EXPECT_EQ(manager_->Get(a.id)->address, a.address);
  std::string addrs = Sh(a.id, "cat /proc/net/fib_trie; cat /proc/net/route");
  EXPECT_NE(addrs.find(a.address), std::string::npos) << addrs;
  EXPECT_NE(Sh(a.id, "cat /proc/net/route").find("00000000"), std::string::npos);  // a default route
  EXPECT_EQ(Sh(a.id, "cat /etc/resolv.conf"), "nameserver 10.89.0.1\n");
  // What the slot set in its namespace for the sandbox: low ports and ping
  // without privileges, no TCP metrics kept for the slot's next holder, no
  // IPv6. (Ping's group range is every host group, 0 to 2^31-1: seen from
  // the sandbox's user namespace, both ends are unmapped ids.)
  EXPECT_EQ(Sh(a.id, "cd /proc/sys/net && cat ipv4/ip_unprivileged_port_start ipv4/ping_group_range "
                     "ipv4/tcp_no_metrics_save ipv6/conf/all/disable_ipv6 ipv6/conf/default/disable_ipv6"),
            "0\n65534\t65534\n1\n1\n1\n");
  // IPv6 was off before eth0 was made, and stays off on the host's end of
  // the link too: no address on either side, no route on the host.
  EXPECT_EQ(Sh(a.id, "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6 /proc/net/if_inet6"), "1\n");
  char veth[16];
  std::snprintf(veth, sizeof veth, "pdkv%08x", net::Ipv4::Parse(a.address)->value);
  auto host_end = ReadFile(std::string("/proc/sys/net/ipv6/conf/") + veth + "/disable_ipv6");
  ASSERT_TRUE(host_end.ok()) << host_end.status().ToString();
  EXPECT_EQ(*host_end, "1\n");
  auto host_routes = ReadFile("/proc/net/ipv6_route");
  ASSERT_TRUE(host_routes.ok()) << host_routes.status().ToString();
  EXPECT_EQ(host_routes->find(veth), std::string::npos) << *host_routes;
  // The sandbox cannot reconfigure its network: the namespace is not its own.
  auto r = Exec(a.id, {"python3", "-c",
                       "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)"});
  EXPECT_NE(r.exit_code, 0) << "a raw socket opened";
}

TEST_F(NetTest, SandboxesReachTheGatewayAndThemselvesButNotEachOtherOrTheHost) {
  SandboxInfo a = CreateNet(), b = CreateNet();
  Serve(a.id, 8000);
  Serve(b.id, 8000);
  // Ping the gateway (an ICMP datagram socket: no raw sockets needed).
  std::string ping = Sh(a.id,
                        "python3 -c \"import socket,sys\n"
                        "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)\n"
                        "s.settimeout(3); s.sendto(b'\\x08\\x00\\x00\\x00\\x00\\x01\\x00\\x01', ('10.89.0.1', 0))\n"
                        "print(s.recvfrom(100)[0][0])\"");
  EXPECT_EQ(ping, "0\n");  // an echo reply
  EXPECT_EQ(Probe(a.id, a.address, 8000), "ok HTTP/1.0 200 OK");
  EXPECT_EQ(Probe(a.id, "127.0.0.1", 8000), "ok HTTP/1.0 200 OK");
  // The other sandbox: refused by the firewall at once, not left to time out.
  EXPECT_EQ(Probe(a.id, b.address, 8000), "refused");
  EXPECT_EQ(Probe(b.id, a.address, 8000), "refused");
  // A host service on every address: refused through the gateway, and the
  // sandbox's loopback is its own.
  HostListener host;
  EXPECT_EQ(Probe(a.id, "10.89.0.1", host.port), "refused");
  EXPECT_EQ(Probe(a.id, "127.0.0.1", host.port), "refused");
}

TEST_F(NetTest, HostAccessIsAnExplicitOptIn) {
  SandboxInfo a = CreateNet(R"({"host_access": true})");
  HostListener host;
  // Connected: the probe then waits for a greeting that never comes.
  EXPECT_EQ(Probe(a.id, "10.89.0.1", host.port), "timeout");
}

TEST_F(NetTest, EgressPoliciesChangeOnARunningSandbox) {
  OutsideServer outside({8001, 8002});
  SandboxInfo a = CreateNet();
  EXPECT_EQ(Probe(a.id, kOutside, 8001), "ok hello 8001");
  EXPECT_EQ(Probe(a.id, kOutside, 8002), "ok hello 8002");

  net::NetworkSettings deny = a.network;
  ASSERT_TRUE(deny.Merge(nlohmann::json{{"egress", "deny"}}).ok());
  ASSERT_TRUE(manager_->UpdateNetwork(a.id, deny).ok());
  EXPECT_EQ(Probe(a.id, kOutside, 8001), "refused");
  EXPECT_EQ(manager_->Get(a.id)->network.policy.allow_egress, false);

  net::NetworkSettings allow_list = deny;
  ASSERT_TRUE(allow_list.Merge(nlohmann::json::parse(
                                   R"({"allow": [{"cidr": "198.18.0.2/32", "ports": "8001", "protocol": "tcp"}]})"))
                  .ok());
  ASSERT_TRUE(manager_->UpdateNetwork(a.id, allow_list).ok());
  EXPECT_EQ(Probe(a.id, kOutside, 8001), "ok hello 8001");
  EXPECT_EQ(Probe(a.id, kOutside, 8002), "refused");

  // A deny rule over the default "allow".
  net::NetworkSettings deny_one;
  ASSERT_TRUE(deny_one.Merge(nlohmann::json::parse(R"({"deny": [{"cidr": "198.18.0.0/30", "ports": 8002}]})")).ok());
  ASSERT_TRUE(manager_->UpdateNetwork(a.id, deny_one).ok());
  EXPECT_EQ(Probe(a.id, kOutside, 8001), "ok hello 8001");
  EXPECT_EQ(Probe(a.id, kOutside, 8002), "refused");

  // A policy at create, kept over stop and start (with a new slot).
  SandboxInfo b = CreateNet(R"({"egress": "deny"})");
  EXPECT_EQ(Probe(b.id, kOutside, 8001), "refused");
  ASSERT_TRUE(manager_->Stop(b.id, 0).ok());
  EXPECT_EQ(manager_->Get(b.id)->address, "");
  ASSERT_TRUE(manager_->Start(b.id).ok());
  EXPECT_FALSE(manager_->Get(b.id)->address.empty());
  EXPECT_EQ(Probe(b.id, kOutside, 8001), "refused");
}

// A policy change cuts the connections it no longer allows: a sandbox's
// open connection to the outside stops carrying data once egress is denied
// (it used to carry on, its packets accepted as "established").
TEST_F(NetTest, NarrowingThePolicyCutsConnectionsAlreadyOpen) {
  OutsideServer outside({kEchoPort});
  SandboxInfo a = CreateNet();
  agent::ExecOptions talker;
  talker.argv = {"python3", "-c",
                 "import socket, sys, time\n"
                 "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)\n"
                 "s.recv(100)\n"
                 "for _ in range(100):\n"
                 "    try:\n"
                 "        s.sendall(b'ping'); got = s.recv(100)\n"
                 "        line = 'ok' if got else 'closed'\n"
                 "    except Exception as e:\n"
                 "        line = type(e).__name__\n"
                 "    open('/tmp/talk', 'a').write(line + '\\n')\n"
                 "    if line != 'ok': break\n"
                 "    time.sleep(0.1)\n",
                 kOutside, std::to_string(kEchoPort)};
  auto client = manager_->Connect(a.id);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->Call(agent::AgentClient::SpawnRequest(talker, false)).ok());
  auto talk = [&] { return Exec(a.id, {"sh", "-c", "cat /tmp/talk 2>/dev/null"}).stdout_data; };
  for (int i = 0; i < 100 && talk().find("ok\nok\n") == std::string::npos; ++i) ::usleep(50000);
  ASSERT_NE(talk().find("ok\nok\n"), std::string::npos) << talk();

  net::NetworkSettings deny = a.network;
  ASSERT_TRUE(deny.Merge(nlohmann::json{{"egress", "deny"}}).ok());
  ASSERT_TRUE(manager_->UpdateNetwork(a.id, deny).ok());
  std::string last;
  for (int i = 0; i < 100; ++i) {  // up to 5 s: a reset, or a 2 s receive timeout
    std::string t = talk();
    last = t.substr(t.rfind('\n', t.size() - 2) + 1);
    if (last != "ok\n") break;
    ::usleep(50000);
  }
  EXPECT_NE(last, "ok\n") << "the connection still carries data after egress was denied:\n" << talk();
}

// A sandbox cannot fill the host's conntrack table, which every sandbox and
// the host's own NAT share: past its cap, its new connections are refused at
// once (a reset, not a hang), another sandbox still connects, and once it
// closes its connections it may open new ones.
TEST_F(NetTest, ASandboxCannotHoldMoreConnectionsThanItsCap) {
  OutsideServer outside({8001, kEchoPort});
  SandboxInfo a = CreateNet(), b = CreateNet();
  // Opens `tries` connections to the echo port and keeps them open while it
  // counts how each went; they close when it exits, with a reset (linger 0),
  // so that none is still counted, half-closed, when the next round opens.
  std::string hoarder =
      "import socket, struct, sys, collections\n"
      "held, seen = [], collections.Counter()\n"
      "for _ in range(int(sys.argv[3])):\n"
      "    try:\n"
      "        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
      "        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
      "        s.recv(100); held.append(s); seen['ok'] += 1\n"
      "    except ConnectionRefusedError: seen['refused'] += 1\n"
      "    except Exception as e: seen[type(e).__name__] += 1\n"
      "print(' '.join(f'{k}={v}' for k, v in sorted(seen.items())))\n";
  auto hoard = [&](int tries) {
    auto r = Exec(a.id, {"python3", "-c", hoarder, kOutside, std::to_string(kEchoPort),
                         std::to_string(tries)});
    return r.stdout_data;
  };
  EXPECT_EQ(hoard(kMaxConnections + 10),
            "ok=" + std::to_string(kMaxConnections) + " refused=10\n");
  EXPECT_EQ(Probe(b.id, kOutside, 8001), "ok hello 8001");
  // The first round's connections are closed now: the sandbox starts afresh.
  EXPECT_EQ(hoard(kMaxConnections), "ok=" + std::to_string(kMaxConnections) + "\n");
}

// Default egress is the public internet: a server on a private-range address
// of the host's LAN (here a namespace the test makes, at 10.99.0.2) is
// refused, as is the cloud metadata address, while the "internet" answers;
// an allow rule opens the LAN to one sandbox.
TEST_F(NetTest, DefaultEgressReachesTheInternetButNotTheHostsPrivateNetworks) {
  OutsideServer internet({8001});
  OutsideServer lan({8003}, "10.99.0.2", "10.99.0.1", "pdkl0");
  SandboxInfo a = CreateNet();
  EXPECT_EQ(Probe(a.id, kOutside, 8001), "ok hello 8001");
  EXPECT_EQ(Probe(a.id, "10.99.0.2", 8003), "refused");
  EXPECT_EQ(Probe(a.id, "169.254.169.254", 80), "refused");
  EXPECT_EQ(Probe(a.id, "192.168.1.1", 80), "refused");
  SandboxInfo b = CreateNet(R"({"allow": ["10.99.0.0/30"]})");
  EXPECT_EQ(Probe(b.id, "10.99.0.2", 8003), "ok hello 8003");
  EXPECT_EQ(Probe(b.id, kOutside, 8001), "ok hello 8001");
  EXPECT_EQ(Probe(b.id, "169.254.169.254", 80), "refused");
  // And a policy change opens or closes it on a running sandbox.
  net::NetworkSettings open = a.network;
  ASSERT_TRUE(open.Merge(nlohmann::json::parse(R"({"allow": ["10.99.0.2/32"]})")).ok());
  ASSERT_TRUE(manager_->UpdateNetwork(a.id, open).ok());
  EXPECT_EQ(Probe(a.id, "10.99.0.2", 8003), "ok hello 8003");
  ASSERT_TRUE(manager_->UpdateNetwork(a.id, net::NetworkSettings{}).ok());
  EXPECT_EQ(Probe(a.id, "10.99.0.2", 8003), "refused");
}

// A networked sandbox's network namespace is the host's to own, so it may
// not mount a sysfs itself: the host mounts one made in that namespace for
// it. It lists the sandbox's own network devices only (not the host's, nor
// other sandboxes' veths), no cgroup tree, and cannot be made writable.
TEST_F(NetTest, SysIsTheSandboxsOwnWithoutTheHostsCgroupsOrDevices) {
  SandboxInfo a = CreateNet(), b = CreateNet();
  (void)b;
  EXPECT_EQ(Sh(a.id, "ls /sys/class/net | tr '\\n' ' '"), "eth0 lo ");
  EXPECT_EQ(Sh(a.id, "ls /sys/devices/virtual/net | tr '\\n' ' '"), "eth0 lo ");
  EXPECT_EQ(Sh(a.id, "ls /sys/fs/cgroup | grep -c . || true"), "0\n");
  EXPECT_EQ(Sh(a.id, "awk '$5 == \"/sys\" {print $6, $8}' /proc/self/mountinfo"),
            "ro,nosuid,nodev,noexec,relatime sysfs\n");
  EXPECT_EQ(Sh(a.id, "mount -o remount,rw /sys 2>/dev/null && echo writable || echo refused"), "refused\n");
  EXPECT_EQ(Sh(a.id, "cat /proc/interrupts | wc -c; ls /proc/asound 2>/dev/null | wc -l"), "0\n0\n");
  EXPECT_EQ(Sh(a.id, "ls /sys/class/thermal /sys/devices/virtual/powercap 2>/dev/null | grep -v : | "
                     "grep -c . || true"),
            "0\n");
}

TEST_F(NetTest, BadPoliciesAreRefusedAndChangeNothing) {
  net::NetworkSettings s;
  EXPECT_EQ(s.Merge(nlohmann::json::parse(R"({"allow": ["10.0.0.1/8"]})")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Merge(nlohmann::json::parse(R"({"egress": "maybe"})")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Merge(nlohmann::json::parse(R"({"allow": [{"cidr": "1.2.3.4", "ports": "90-80"}]})")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Merge(nlohmann::json::parse(R"({"egress": "deny", "colour": 1})")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(s.policy.allow_egress);  // the failed merges changed nothing
  SandboxInfo a = CreateNet();
  net::NetworkSettings off = a.network;
  off.enabled = false;
  EXPECT_EQ(manager_->UpdateNetwork(a.id, off).code(), StatusCode::kFailedPrecondition);
}

TEST_F(NetTest, PauseKeepsTheNetworkAndNoNetworkMeansLoopbackOnly) {
  SandboxInfo a = CreateNet();
  Serve(a.id, 8000);
  ASSERT_TRUE(manager_->Pause(a.id).ok());
  EXPECT_EQ(manager_->Get(a.id)->address, a.address);
  ASSERT_TRUE(manager_->Resume(a.id).ok());
  EXPECT_EQ(Probe(a.id, a.address, 8000), "ok HTTP/1.0 200 OK");

  SandboxInfo none = CreateNet(R"({"enabled": false})");
  EXPECT_EQ(none.address, "");
  EXPECT_EQ(Sh(none.id, "cat /proc/net/dev").find("eth0"), std::string::npos);
}

// The slot pool on its own: a Network with a bridge, table and pool of its
// own, no sandbox. Slots come back to it when their last holder left nothing.
class SlotPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "integration tests run as root";
    before_ = TakeHostSnapshot();
    net::NetworkOptions opts;
    opts.bridge = "pdkt1";
    opts.table = "paddock_pool_test";
    opts.pool = "10.90.0.0/24";
    opts.dns = {"10.90.0.1"};
    opts.recycled_slots = 4;
    auto n = net::Network::Open(opts);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    network_ = std::move(*n);
    ASSERT_TRUE(network_->FinishRecovery({}).ok());
  }
  void TearDown() override {
    if (!network_) return;
    EXPECT_TRUE(network_->RemoveAll().ok());
    network_.reset();  // destroys the pooled slots
    EXPECT_EQ(DescribeLeaks(before_, TakeHostSnapshot()), "");
  }

  std::unique_ptr<net::Slot> Take() {
    auto slot = network_->Acquire();
    EXPECT_TRUE(slot.ok()) << slot.status().ToString();
    return slot.ok() ? std::move(*slot) : nullptr;
  }
  static ino_t NamespaceOf(const net::Slot& slot) {
    struct stat st {};
    ::fstat(slot.netns.get(), &st);
    return st.st_ino;
  }
  static bool VethExists(const std::string& name) {
    auto nl = net::Netlink::Open();
    return nl.ok() && nl->LinkIndex(name).ok();
  }
  // From inside the slot: one ICMP echo to the gateway and its reply, which
  // the host's conntrack table records under the slot's address.
  Status PingGateway(const net::Slot& slot) {
    return kernel::net::InNetns(slot.netns.get(), [&]() -> Status {
      UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP));
      if (!fd) return Status::Errno("ping socket");
      icmphdr echo{};
      echo.type = ICMP_ECHO;
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_addr.s_addr = network_->gateway().network_order();
      if (::sendto(fd.get(), &echo, sizeof echo, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
        return Status::Errno("send echo");
      pollfd p{fd.get(), POLLIN, 0};
      if (::poll(&p, 1, 3000) != 1) return DeadlineExceeded("no echo reply");
      char reply[64];
      if (::recv(fd.get(), reply, sizeof reply, 0) <= 0) return Status::Errno("receive echo reply");
      return Status::Ok();
    });
  }
  // Leaves a TCP connection in TIME_WAIT in the slot's namespace (over its
  // loopback): the side that closes first keeps it for a minute.
  Status LeaveTimeWait(const net::Slot& slot) {
    return kernel::net::InNetns(slot.netns.get(), [&]() -> Status {
      UniqueFd server(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof a;
      if (::bind(server.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(server.get(), 1) != 0 ||
          ::getsockname(server.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
        return Status::Errno("listen on loopback");
      UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (::connect(client.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return Status::Errno("connect");
      UniqueFd accepted(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!accepted) return Status::Errno("accept");
      client.reset();  // the active close
      char byte;
      if (::recv(accepted.get(), &byte, 1, 0) != 0) return Internal("expected EOF");
      return Status::Ok();  // the accepted end closes on return, the client's enters TIME_WAIT
    });
  }

  HostSnapshot before_;
  std::unique_ptr<net::Network> network_;
};

TEST_F(SlotPoolTest, AReleasedSlotThatHoldsNothingIsReusedAsItIs) {
  auto first = Take();
  ASSERT_TRUE(first);
  net::Ipv4 address = first->address;
  ino_t ns = NamespaceOf(*first);
  network_->Release(std::move(first));
  EXPECT_EQ(network_->warm_slots_ready(), 1u);
  auto second = Take();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->address, address);
  EXPECT_EQ(NamespaceOf(*second), ns);
  // Another slot comes first when both are ready: a freed address is reused last.
  auto third = Take();
  ASSERT_TRUE(third);
  net::Ipv4 other = third->address;
  network_->Release(std::move(third));
  network_->Release(std::move(second));
  auto fourth = Take();
  ASSERT_TRUE(fourth);
  EXPECT_EQ(fourth->address, other);
  network_->Release(std::move(fourth));
}

TEST_F(SlotPoolTest, ASlotWithASocketLeftInItIsDestroyedNotReused) {
  auto slot = Take();
  ASSERT_TRUE(slot);
  net::Ipv4 address = slot->address;
  std::string veth = slot->veth;
  ASSERT_TRUE(LeaveTimeWait(*slot).ok());
  network_->Release(std::move(slot));
  EXPECT_EQ(network_->warm_slots_ready(), 0u);
  network_->WaitForDestroyedSlots();  // the kernel removes the veth with the namespace
  EXPECT_FALSE(VethExists(veth));
  auto next = Take();
  ASSERT_TRUE(next);
  EXPECT_NE(next->address, address);
  network_->Release(std::move(next));
}

TEST_F(SlotPoolTest, ASlotThatSentPacketsIsDestroyedAndItsConnectionsForgotten) {
  auto slot = Take();
  ASSERT_TRUE(slot);
  net::Ipv4 address = slot->address;
  ino_t ns = NamespaceOf(*slot);
  ASSERT_TRUE(PingGateway(*slot).ok());
  auto forgotten = net::ForgetConnections(address);  // the ping was tracked
  ASSERT_TRUE(forgotten.ok()) << forgotten.status().ToString();
  EXPECT_GE(*forgotten, 1);

  // Its counters and route cache would show the next holder what it sent.
  ASSERT_TRUE(PingGateway(*slot).ok());
  network_->Release(std::move(slot));
  EXPECT_EQ(network_->warm_slots_ready(), 0u);
  forgotten = net::ForgetConnections(address);
  ASSERT_TRUE(forgotten.ok());
  EXPECT_EQ(*forgotten, 0);  // Release had forgotten its connections
  auto next = Take();
  ASSERT_TRUE(next);
  EXPECT_NE(NamespaceOf(*next), ns);
  network_->Release(std::move(next));
}

TEST_F(SlotPoolTest, ASlotThatOnlyReceivedIsReusedWithoutItsTrackedConnections) {
  auto slot = Take();
  ASSERT_TRUE(slot);
  net::Ipv4 address = slot->address;
  ino_t ns = NamespaceOf(*slot);
  // A datagram from the host to a socket bound in the slot: received, and
  // tracked under the slot's address; nothing is sent back.
  UniqueFd inside;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = address.network_order();
  socklen_t len = sizeof to;
  ASSERT_TRUE(kernel::net::InNetns(slot->netns.get(), [&]() -> Status {
                inside.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
                if (!inside || ::bind(inside.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 ||
                    ::getsockname(inside.get(), reinterpret_cast<sockaddr*>(&to), &len) != 0)
                  return Status::Errno("bind in the slot");
                return Status::Ok();
              }).ok());
  UniqueFd host(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::sendto(host.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 1);
  pollfd p{inside.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 3000), 1);
  inside.reset();

  network_->Release(std::move(slot));
  EXPECT_EQ(network_->warm_slots_ready(), 1u);
  auto forgotten = net::ForgetConnections(address);
  ASSERT_TRUE(forgotten.ok());
  EXPECT_EQ(*forgotten, 0);
  auto again = Take();
  ASSERT_TRUE(again);
  EXPECT_EQ(NamespaceOf(*again), ns);
  network_->Release(std::move(again));
}

}  // namespace
}  // namespace paddock::testing
