// Idle sandboxes: stopped (or paused) after their idle timeout with no
// exec, file operation or proxied connection; activity keeps them running.
#include "daemon_fixture.h"

namespace paddock::testing {
namespace {

// Polls (bounded: 10 s) until sandbox `id` is in `state`.
bool WaitForState(const std::string& id, const std::string& state, json& last,
                  const std::function<json(const std::string&)>& get) {
  for (int i = 0; i < 200; ++i) {
    last = get(id);
    if (last.value("state", "") == state) return true;
    ::usleep(50000);
  }
  return false;
}

TEST_F(DaemonTest, IdleSandboxesStopOrPauseAndActivityKeepsThemRunning) {
  json idle = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"idle_timeout", 1}}, 201);
  json paused = Must("POST", "/v1/sandboxes",
                     {{"template", "busybox"}, {"idle_timeout", 1}, {"on_idle", "pause"}}, 201);
  json busy = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"idle_timeout", 1}}, 201);
  EXPECT_EQ(idle["idle_timeout"], 1);
  EXPECT_EQ(paused["on_idle"], "pause");
  auto get = [&](const std::string& id) { return Must("GET", "/v1/sandboxes/" + id); };
  // `busy` gets an exec every 300 ms for 2.5 s: never idle for a second.
  for (int i = 0; i < 8; ++i) {
    Must("POST", "/v1/sandboxes/" + busy["id"].get<std::string>() + "/exec", {{"command", "true"}});
    ::usleep(300000);
  }
  EXPECT_EQ(get(busy["id"])["state"], "running");
  json last;
  EXPECT_TRUE(WaitForState(idle["id"], "stopped", last, get)) << last.dump();
  EXPECT_TRUE(WaitForState(paused["id"], "paused", last, get)) << last.dump();
  // Started again, it runs until it idles again.
  Must("POST", "/v1/sandboxes/" + idle["id"].get<std::string>() + "/start");
  EXPECT_EQ(get(idle["id"])["state"], "running");
  EXPECT_TRUE(WaitForState(idle["id"], "stopped", last, get)) << last.dump();
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"template":"busybox","on_idle":"kill"})", 400).find("on_idle"),
            std::string::npos);
}

}  // namespace
}  // namespace paddock::testing
