// The fixture of every integration test: one SandboxManager over a temporary
// state folder per test binary, and after each case a check that every
// sandbox the case made is gone and the host holds nothing new.
#pragma once

#include <gtest/gtest.h>
#include <dirent.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/fs.h"
#include "host_clean.h"
#include "sandbox/manager.h"

namespace paddock::testing {

class SandboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    state_ = new TempDir();
    auto m = SandboxManager::Open(Options());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manager_ = m->release();
  }
  static ManagerOptions Options() {
    ManagerOptions opts;
    opts.state_dir = state_->path();
    opts.init_path = PADDOCK_INIT_PATH;
    opts.default_stop_grace_ms = 2000;
    return opts;
  }

  // Attaches to process `pid` and returns all its output until it exits.
  static std::string CollectOutput(agent::AgentClient& client, int pid) {
    auto attached = client.Call({{"op", "attach"}, {"pid", pid}});
    EXPECT_TRUE(attached.ok()) << attached.status().ToString();
    std::string out;
    while (attached.ok()) {
      auto f = client.Read(5000);
      EXPECT_TRUE(f.ok()) << f.status().ToString();
      if (!f.ok() || f->header.value("event", "") == "exit") break;
      if (f->header.value("event", "") == "output") out += f->payload;
    }
    return out;
  }

  static void TearDownTestSuite() {
    delete manager_;
    manager_ = nullptr;
    delete state_;
    state_ = nullptr;
  }

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "integration tests run as root";
    before_ = TakeHostSnapshot();
  }

  void TearDown() override {
    if (!manager_) return;
    for (const auto& info : manager_->List()) {
      Status s = manager_->Delete(info.id);
      EXPECT_TRUE(s.ok()) << "delete " << info.id << ": " << s.ToString();
    }
    manager_->FinishTeardowns();
    EXPECT_EQ(DescribeLeaks(before_, TakeHostSnapshot()), "");
    auto left = ListDir(state_->path() + "/sandboxes");
    EXPECT_TRUE(left.empty()) << "sandbox folders left: " << left.size();
  }

  SandboxInfo Create(SandboxSpec spec = {}) {
    auto info = manager_->Create(spec);
    EXPECT_TRUE(info.ok()) << info.status().ToString();
    return info.ok() ? *info : SandboxInfo{};
  }

  agent::ExecResult Exec(const std::string& id, std::vector<std::string> argv,
                         int timeout_ms = 30000) {
    agent::ExecOptions opts;
    opts.argv = std::move(argv);
    opts.timeout_ms = timeout_ms;
    auto r = manager_->Exec(id, opts);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : agent::ExecResult{};
  }

  // `sh -c script` in the sandbox, returning stdout; expects exit code 0.
  std::string Sh(const std::string& id, const std::string& script) {
    auto r = Exec(id, {"/bin/sh", "-c", script});
    EXPECT_EQ(r.exit_code, 0) << script << "\nstderr: " << r.stderr_data;
    return r.stdout_data;
  }


  static inline TempDir* state_ = nullptr;
  static inline SandboxManager* manager_ = nullptr;
  HostSnapshot before_;
};


}  // namespace paddock::testing
