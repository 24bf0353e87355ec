// net::Forwarder on loopback: a forward to a server this test runs on
// 127.0.0.1 (standing in for a sandbox's address), half-closes, resets for a
// sandbox that is not running, and the port freed by Close. No root needed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "net/forwarder.h"

namespace paddock::net {
namespace {

UniqueFd Listen(uint16_t* port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd.get(), 8) != 0) return {};
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// Connects to 127.0.0.1:port, sends `data`, half-closes, reads to the end;
// "error" if the connection is refused or reset.
std::string Exchange(uint16_t port, const std::string& data) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "error";
  for (size_t off = 0; off < data.size();) {
    ssize_t n = ::send(fd.get(), data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return "error";
    off += static_cast<size_t>(n);
  }
  ::shutdown(fd.get(), SHUT_WR);
  std::string got;
  char buf[65536];
  while (true) {
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n == 0) return got;
    if (n < 0) return "error";
    got.append(buf, static_cast<size_t>(n));
  }
}

TEST(PortForwardTest, JsonIsCheckedFieldByField) {
  auto ok = PortForward::FromJson({{"port", 5432}, {"host_port", 0}, {"bind", "0.0.0.0"}});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->port, 5432);
  EXPECT_EQ(ok->bind, "0.0.0.0");
  EXPECT_EQ(PortForward::FromJson({{"host_port", 1}}).status().message(),
            "a forward needs 'port', the sandbox's port");
  EXPECT_NE(PortForward::FromJson({{"port", 0}}).status().message().find("port must be 1 to 65535"),
            std::string::npos);
  EXPECT_NE(PortForward::FromJson({{"port", "22"}}).status().message().find("integer"), std::string::npos);
  EXPECT_NE(PortForward::FromJson({{"port", 22}, {"bind", "::1"}}).status().message().find("::1"),
            std::string::npos);
  EXPECT_NE(PortForward::FromJson({{"port", 22}, {"to", 1}}).status().message().find("'to'"),
            std::string::npos);
  std::vector<PortForward> two = {{22, 2222, "127.0.0.1"}, {5432, 15432, "0.0.0.0"}};
  auto back = ForwardsFromStored(ForwardsToStored(two));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].host_port, 15432);
  EXPECT_EQ(back[1].bind, "0.0.0.0");
  EXPECT_TRUE(ForwardsFromStored("").empty());
  EXPECT_EQ(ForwardsToStored({}), "");
}

TEST(ForwarderTest, RelaysBothWaysAndResetsWhenTheSandboxIsNotRunning) {
  uint16_t server_port = 0;
  UniqueFd server = Listen(&server_port);
  ASSERT_TRUE(server);
  std::atomic<bool> running{true};
  // Upper-cases what it reads until the end of stream, then answers.
  std::thread shouter([&] {
    while (true) {
      UniqueFd c(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c || !running) return;
      std::string data;
      char buf[65536];
      ssize_t n;
      while ((n = ::recv(c.get(), buf, sizeof buf, 0)) > 0) data.append(buf, static_cast<size_t>(n));
      for (char& ch : data) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      for (size_t off = 0; off < data.size();) {
        ssize_t w = ::send(c.get(), data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += static_cast<size_t>(w);
      }
    }
  });
  {
    Forwarder forwarder([](const std::string& sandbox) -> std::optional<Ipv4> {
      if (sandbox == "up") return Ipv4{0x7f000001};
      return std::nullopt;
    });
    auto up = forwarder.Open("up", {server_port, 0, "127.0.0.1"});
    ASSERT_TRUE(up.ok()) << up.status().ToString();
    EXPECT_NE(up->host_port, 0);
    EXPECT_EQ(Exchange(up->host_port, "hello"), "HELLO");
    std::string big(2 << 20, 'a');
    EXPECT_TRUE(Exchange(up->host_port, big) == std::string(2 << 20, 'A'));
    EXPECT_EQ(forwarder.listening(), 1u);

    auto down = forwarder.Open("down", {server_port, 0, "127.0.0.1"});
    ASSERT_TRUE(down.ok());
    EXPECT_EQ(Exchange(down->host_port, "anyone?"), "error");

    auto clash = forwarder.Open("up", {server_port, up->host_port, "127.0.0.1"});
    EXPECT_EQ(clash.status().code(), StatusCode::kAlreadyExists);
    EXPECT_NE(clash.status().message().find("in use"), std::string::npos);
    auto elsewhere = forwarder.Open("up", {server_port, 0, "192.0.2.1"});
    EXPECT_EQ(elsewhere.status().code(), StatusCode::kInvalidArgument);

    forwarder.Close("127.0.0.1", up->host_port);
    EXPECT_EQ(Exchange(up->host_port, "gone?"), "error");
    auto again = forwarder.Open("up", {server_port, up->host_port, "127.0.0.1"});  // free again
    EXPECT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(Exchange(again->host_port, "back"), "BACK");
    EXPECT_EQ(forwarder.listening(), 2u);
  }
  running = false;
  ::shutdown(server.get(), SHUT_RDWR);
  shouter.join();
}

}  // namespace
}  // namespace paddock::net
