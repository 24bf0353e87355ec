// The fixture of the daemon tests: a real paddockd process over a temporary
// state folder and socket, driven through its REST API; after each case every
// sandbox is deleted, the daemon stopped, and the host checked clean.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "base/fs.h"
#include "cli/api_client.h"
#include "host_clean.h"

extern char** environ;

namespace paddock::testing {

using cli::json;

// A process's peak resident memory so far (kB; -1 if unknown).
inline int64_t PeakRssKb(pid_t pid) {
  auto status = ReadFile("/proc/" + std::to_string(pid) + "/status");
  if (!status.ok()) return -1;
  size_t at = status->find("VmHWM:");
  return at == std::string::npos ? -1 : std::stoll(status->substr(at + 6));
}

// What `command` (run by sh) prints on stdout.
inline std::string Shell(const std::string& command) {
  FILE* p = ::popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  if (p) ::pclose(p);
  return out;
}

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "daemon tests run as root";
    // Play the host's init: sandboxes orphaned by a killed paddockd come to
    // us, and we reap them, as systemd would.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    before_ = TakeHostSnapshot();
    state_ = std::make_unique<TempDir>();
    socket_ = state_->path() + "/api.sock";
    StartDaemon();
  }

  void TearDown() override {
    if (!state_) return;
    // An overlay's unmount syncs the filesystem under it, and a sandbox's
    // network namespace (its veth with it) goes only after that: with the
    // gigabytes an earlier test left dirty, past paddockd's wait for its
    // devices at exit. Written back here, the deletes below find none.
    ::sync();
    if (pid_ <= 0) StartDaemon();
    auto list = api().Send("GET", "/v1/sandboxes");
    json body = list.ok() ? list->Json() : json::object();
    if (body.contains("sandboxes"))
      for (const auto& s : body["sandboxes"]) {
        auto r = api().Send("DELETE", "/v1/sandboxes/" + s["id"].get<std::string>());
        EXPECT_TRUE(r.ok() && r->status == 204) << s.dump();
      }
    StopDaemon(SIGTERM);
    ReapOrphans();
    EXPECT_EQ(DescribeLeaks(before_, TakeHostSnapshot()), "");
  }

  void StartDaemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {PADDOCKD_PATH, "--state-dir", state_->path() + "/state",
                                     "--socket", socket_, "--init", PADDOCK_INIT_PATH,
                                     "--reap-interval-ms", "100"};
    for (auto& e : extra_args_) args.push_back(e);
    for (auto& e : extra) args.push_back(e);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    std::string log = state_->path() + "/paddockd.log";
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ASSERT_EQ(::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 1000; ++i) {  // up to 10 s (adopting many sandboxes takes a while)
      auto h = api().Send("GET", "/v1/health");
      if (h.ok() && h->status == 200) return;
      ::usleep(10000);
    }
    FAIL() << "paddockd did not come up; log:\n" << ReadFile(log).value();
  }

  void StopDaemon(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status;
    ::waitpid(pid_, &status, 0);
    if (sig == SIGTERM) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    pid_ = -1;
  }

  // Reaps sandboxes that a killed paddockd left to us and that have since ended.
  void ReapOrphans() {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {}
  }

  // Waits (bounded: 30 s) until paddockd has torn down every deleted
  // sandbox, which it does after answering the delete; false if it has not.
  bool WaitForTeardowns() {
    for (int i = 0; i < 3000; ++i) {
      auto m = api().Send("GET", "/metrics");
      if (m.ok() && m->body.find("\npaddock_sandboxes_tearing_down 0\n") != std::string::npos) return true;
      ::usleep(10000);
    }
    return false;
  }

  std::string DaemonLog() { return ReadFile(state_->path() + "/paddockd.log").value(); }

  cli::ApiClient api() { return cli::ApiClient(socket_); }

  // A request that must succeed with `status`; returns the JSON body.
  json Must(const std::string& method, const std::string& target, const json& body = nullptr, int status = 200) {
    auto r = api().Send(method, target, body.is_null() ? "" : body.dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return json();
    EXPECT_EQ(r->status, status) << method << " " << target << ": " << r->body;
    return r->body.empty() ? json::object() : r->Json();
  }

  // A request that must fail with `status`; returns the error code string.
  std::string MustFail(const std::string& method, const std::string& target, const std::string& body, int status) {
    auto r = api().Send(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return "";
    EXPECT_EQ(r->status, status) << method << " " << target << ": " << r->body;
    json j = r->Json();
    return j.is_object() && j.contains("error") ? j["error"].value("code", "") + ": " + j["error"].value("message", "") : r->body;
  }

  std::unique_ptr<TempDir> state_;
  std::string socket_;
  pid_t pid_ = -1;
  std::vector<std::string> extra_args_;
  HostSnapshot before_;
};

}  // namespace paddock::testing
