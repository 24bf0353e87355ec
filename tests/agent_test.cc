// The agent protocol against a real paddock-init run by hand (no sandbox, no
// root needed): processes, output replay, ptys, files, watches, bad frames.
#include "agent/client.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <set>

#include "base/fs.h"

extern char** environ;

namespace paddock::agent {
namespace {

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pdk-agent-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    socket_ = dir_ + "/agent.sock";
    std::string init = PADDOCK_INIT_PATH;
    char* argv[] = {init.data(), const_cast<char*>("--listen"), socket_.data(), nullptr};
    ASSERT_EQ(::posix_spawn(&pid_, init.c_str(), nullptr, nullptr, argv, environ), 0);
    for (int i = 0; i < 500 && !PathExists(socket_); ++i) ::usleep(10000);
    client_ = Connect();
  }
  void TearDown() override {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "init did not exit cleanly";
    (void)RemoveTree(dir_);
  }
  std::unique_ptr<AgentClient> Connect() {
    auto c = AgentClient::Connect(socket_);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::make_unique<AgentClient>(std::move(*c));
  }
  // Reads events until an exit event for `pid`; returns output by stream.
  std::map<std::string, std::string> Drain(AgentClient& c, int pid, json* exit_event = nullptr) {
    std::map<std::string, std::string> out;
    for (;;) {
      auto f = c.Read(10000);
      EXPECT_TRUE(f.ok()) << f.status().ToString();
      if (!f.ok()) return out;
      if (f->header.value("pid", 0) != pid) continue;
      if (f->header.value("event", "") == "output") out[f->header["stream"]] += f->payload;
      if (f->header.value("event", "") == "exit") {
        if (exit_event) *exit_event = f->header;
        return out;
      }
    }
  }

  std::string dir_, socket_;
  pid_t pid_ = 0;
  std::unique_ptr<AgentClient> client_;
};

TEST_F(AgentTest, PingAnswers) {
  auto r = client_->Call({{"op", "ping"}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->header["pid"], pid_);
}

TEST_F(AgentTest, ReconnectingClientGetsBufferedOutputAndExit) {
  auto spawned = client_->Call({{"op", "spawn"}, {"argv", {"/bin/sh", "-c", "echo one; sleep 0.3; echo two"}}});
  ASSERT_TRUE(spawned.ok()) << spawned.status().ToString();
  int pid = spawned->header["pid"];
  client_.reset();  // the client goes away mid-run
  ::usleep(500000);
  auto again = Connect();
  auto attached = again->Call({{"op", "attach"}, {"pid", pid}, {"from", 0}});
  ASSERT_TRUE(attached.ok()) << attached.status().ToString();
  json exit_event;
  auto out = Drain(*again, pid, &exit_event);
  EXPECT_EQ(out["stdout"], "one\ntwo\n");
  EXPECT_EQ(exit_event["exit_code"], 0);
  // From an offset: only what came after it.
  auto from4 = Connect();
  ASSERT_TRUE(from4->Call({{"op", "attach"}, {"pid", pid}, {"from", 4}}).ok());
  EXPECT_EQ(Drain(*from4, pid)["stdout"], "two\n");
}

TEST_F(AgentTest, PtyHasItsSizeAndCanBeResized) {
  auto spawned = client_->Call({{"op", "spawn"},
                                {"argv", {"/bin/sh", "-c", "stty size; read x; stty size"}},
                                {"pty", {{"rows", 40}, {"cols", 100}}}});
  ASSERT_TRUE(spawned.ok()) << spawned.status().ToString();
  int pid = spawned->header["pid"];
  std::string first;
  while (first.find('\n') == std::string::npos) {
    auto ev = client_->Read(5000);
    ASSERT_TRUE(ev.ok()) << ev.status().ToString();
    if (ev->header.value("event", "") == "output") first += ev->payload;
  }
  EXPECT_EQ(first, "40 100\r\n");
  ASSERT_TRUE(client_->Call({{"op", "resize"}, {"pid", pid}, {"rows", 50}, {"cols", 120}}).ok());
  ASSERT_TRUE(client_->Call({{"op", "stdin"}, {"pid", pid}}, "go\n").ok());
  auto out = Drain(*client_, pid);
  EXPECT_NE(out["pty"].find("50 120"), std::string::npos) << out["pty"];
}

TEST_F(AgentTest, SignalsListsAndTags) {
  auto spawned = client_->Call({{"op", "spawn"}, {"argv", {"/bin/sleep", "30"}}, {"tag", "sleeper"}});
  ASSERT_TRUE(spawned.ok());
  int pid = spawned->header["pid"];
  auto list = client_->Call({{"op", "list"}});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->header["processes"].size(), 1u);
  EXPECT_EQ(list->header["processes"][0]["tag"], "sleeper");
  ASSERT_TRUE(client_->Call({{"op", "signal"}, {"tag", "sleeper"}, {"signal", "TERM"}}).ok());
  json exit_event;
  Drain(*client_, pid, &exit_event);
  EXPECT_EQ(exit_event["signal"], SIGTERM);
  EXPECT_EQ(client_->Call({{"op", "list"}})->header["processes"].size(), 0u);
}

TEST_F(AgentTest, StdinStreamsAndCloses) {
  auto spawned = client_->Call({{"op", "spawn"}, {"argv", {"/bin/cat"}}, {"stdin", true}});
  ASSERT_TRUE(spawned.ok());
  int pid = spawned->header["pid"];
  ASSERT_TRUE(client_->Call({{"op", "stdin"}, {"pid", pid}}, "abc").ok());
  ASSERT_TRUE(client_->Call({{"op", "stdin"}, {"pid", pid}}, "def").ok());
  ASSERT_TRUE(client_->Call({{"op", "close_stdin"}, {"pid", pid}}).ok());
  EXPECT_EQ(Drain(*client_, pid)["stdout"], "abcdef");
}

TEST_F(AgentTest, BadRequestsGetClearErrorsAndInitCarriesOn) {
  auto expect_error = [&](json req, StatusCode code, const std::string& needle) {
    auto r = client_->Call(req);
    ASSERT_FALSE(r.ok()) << req.dump();
    EXPECT_EQ(r.status().code(), code) << r.status().ToString();
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
  };
  expect_error({{"op", "nope"}}, StatusCode::kInvalidArgument, "unknown op 'nope'");
  expect_error({{"op", "spawn"}, {"argv", "ls"}}, StatusCode::kInvalidArgument, "argv");
  expect_error({{"op", "attach"}, {"pid", 999999}}, StatusCode::kNotFound, "999999");
  expect_error({{"op", "attach"}, {"pid", "x"}}, StatusCode::kInvalidArgument, "pid");
  expect_error({{"op", "read"}, {"path", "relative"}}, StatusCode::kInvalidArgument, "absolute");
  expect_error({{"op", "spawn"}, {"argv", {"/bin/true"}}, {"env", {{"A", 1}}}},
               StatusCode::kInvalidArgument, "env");
  expect_error({{"op", "resize"}, {"pid", 999999}, {"rows", 1}, {"cols", 1}}, StatusCode::kNotFound,
               "999999");
  expect_error({{"op", "spawn"}, {"argv", {"/bin/true"}}, {"pty", {{"rows", "tall"}}}},
               StatusCode::kInvalidArgument, "bad request");

  // Raw garbage on the wire: a malformed header and an oversized frame.
  int fd = client_->fd();
  std::string junk = {0, 0, 0, 5, 0, 0, 0, 0, '{', 'x', 'x', 'x', 'x'};
  ASSERT_EQ(::send(fd, junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
  auto err = client_->Read(5000);
  ASSERT_TRUE(err.ok());
  EXPECT_EQ(StatusFromReply(err->header).code(), StatusCode::kInvalidArgument);
  uint32_t big = static_cast<uint32_t>(kMaxPayloadBytes + 10);
  std::string huge = {0, 0, 0, 2, char(big >> 24), char(big >> 16), char(big >> 8), char(big), '{', '}'};
  huge += std::string(big, 'z');
  ASSERT_EQ(::send(fd, huge.data(), huge.size(), 0), static_cast<ssize_t>(huge.size()));
  auto too_big = client_->Read(5000);
  ASSERT_TRUE(too_big.ok());
  EXPECT_EQ(StatusFromReply(too_big->header).code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(client_->Call({{"op", "ping"}}).ok());
}

TEST_F(AgentTest, FileOperations) {
  std::string d = dir_ + "/files";
  auto w = client_->Call({{"op", "write"}, {"path", d + "/a/b.txt"}, {"mode", 0600}}, "hello");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->header["entry"]["size"], 5);
  EXPECT_EQ(w->header["entry"]["mode"], 0600);
  auto r = client_->Call({{"op", "read"}, {"path", d + "/a/b.txt"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->payload, "hello");
  auto part = client_->Call({{"op", "read"}, {"path", d + "/a/b.txt"}, {"offset", 1}, {"length", 3}});
  EXPECT_EQ(part->payload, "ell");
  ASSERT_TRUE(client_->Call({{"op", "write"}, {"path", d + "/a/b.txt"}, {"append", true}}, "!").ok());
  EXPECT_EQ(client_->Call({{"op", "read"}, {"path", d + "/a/b.txt"}})->payload, "hello!");
  auto mk = client_->Call({{"op", "mkdir"}, {"path", d + "/x/y"}});
  ASSERT_TRUE(mk.ok());
  EXPECT_EQ(mk->header["created"], true);
  EXPECT_EQ(client_->Call({{"op", "mkdir"}, {"path", d + "/x/y"}})->header["created"], false);
  auto ls = client_->Call({{"op", "ls"}, {"path", d}, {"depth", 2}});
  ASSERT_TRUE(ls.ok());
  std::set<std::string> names;
  for (const auto& e : ls->header["entries"]) names.insert(e["path"].get<std::string>().substr(d.size()));
  EXPECT_EQ(names, (std::set<std::string>{"/a", "/a/b.txt", "/x", "/x/y"}));
  auto mv = client_->Call({{"op", "rename"}, {"from", d + "/a/b.txt"}, {"to", d + "/x/c.txt"}});
  ASSERT_TRUE(mv.ok());
  EXPECT_EQ(mv->header["entry"]["type"], "file");
  auto st = client_->Call({{"op", "stat"}, {"path", d + "/x"}});
  EXPECT_EQ(st->header["entry"]["type"], "dir");
  ASSERT_TRUE(client_->Call({{"op", "remove"}, {"path", d + "/x"}}).ok());
  auto gone = client_->Call({{"op", "stat"}, {"path", d + "/x"}});
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(client_->Call({{"op", "ls"}, {"path", d + "/a"}, {"depth", 0}}).status().code(),
            StatusCode::kInvalidArgument);
  // A large file goes in one frame and comes back in ranges.
  std::string big(12 << 20, 'q');
  ASSERT_TRUE(client_->Call({{"op", "write"}, {"path", d + "/big"}}, big).ok());
  std::string back;
  for (;;) {
    auto chunk = client_->Call({{"op", "read"}, {"path", d + "/big"}, {"offset", back.size()}});
    ASSERT_TRUE(chunk.ok());
    back += chunk->payload;
    if (chunk->header["eof"]) break;
  }
  EXPECT_EQ(back, big);
}

TEST_F(AgentTest, WatchReportsChanges) {
  std::string d = dir_ + "/watched";
  // The folder exists before the watch: a folder made after it is watched
  // from when init sees it appear, which under load can be after its first
  // writes (inotify's own race; those files are then reported as created).
  ASSERT_TRUE(MakeDirs(d + "/sub").ok());
  auto watch = client_->Call({{"op", "watch"}, {"path", d}, {"recursive", true}});
  ASSERT_TRUE(watch.ok()) << watch.status().ToString();
  auto other = Connect();
  ASSERT_TRUE(other->Call({{"op", "write"}, {"path", d + "/sub/f"}}, "x").ok());
  ASSERT_TRUE(other->Call({{"op", "write"}, {"path", d + "/sub/f"}, {"append", true}}, "y").ok());
  ASSERT_TRUE(other->Exec({.argv = {"/bin/chmod", "600", d + "/sub/f"}}).ok());
  ASSERT_TRUE(other->Call({{"op", "rename"}, {"from", d + "/sub/f"}, {"to", d + "/sub/g"}}).ok());
  ASSERT_TRUE(other->Call({{"op", "remove"}, {"path", d + "/sub/g"}}).ok());
  std::set<std::string> seen;
  for (int i = 0; i < 50 && !seen.count("remove sub/g"); ++i) {
    auto ev = client_->Read(2000);
    ASSERT_TRUE(ev.ok()) << ev.status().ToString() << " seen " << seen.size();
    seen.insert(ev->header["op"].get<std::string>() + " " + ev->header["name"].get<std::string>());
  }
  for (const char* want : {"create sub/f", "write sub/f", "chmod sub/f", "rename sub/f",
                           "create sub/g", "remove sub/g"})
    EXPECT_TRUE(seen.count(want)) << want;
}

}  // namespace
}  // namespace paddock::agent
