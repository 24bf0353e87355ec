// Template build specs and ready checks as clients send them: what parses,
// and the error that names what does not.
#include <gtest/gtest.h>

#include "build/template_builder.h"
#include "sandbox/run_config.h"

namespace paddock {
namespace {

using build::BuildStep;
using build::ParseBuildSpec;
using nlohmann::json;

std::string Error(const json& j) {
  auto r = ParseBuildSpec(j);
  EXPECT_FALSE(r.ok()) << j.dump();
  return r.ok() ? "" : r.status().message();
}

TEST(BuildSpecTest, ParsesEveryKindOfStep) {
  auto spec = ParseBuildSpec({{"name", "web"},
                              {"from", "debian:bookworm"},
                              {"tags", {"v1", "prod"}},
                              {"steps",
                               {{{"run", "apt-get install -y curl"}, {"user", "root"}},
                                {{"copy", "./site/"}, {"to", "/srv/"}, {"files", std::string(64, 'a')}, {"mode", "0640"}},
                                {{"env", {{"A", "1"}, {"B", "two"}}}},
                                {{"workdir", "/srv"}},
                                {{"user", "nobody"}, {"force", true}}}},
                              {"start", "serve"},
                              {"ready", {{"port", 8080}, {"timeout_s", 5}}}});
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->names, (std::vector<std::string>{"web", "web:v1", "web:prod"}));
  ASSERT_EQ(spec->steps.size(), 5u);
  EXPECT_EQ(spec->steps[0].kind, BuildStep::Kind::kRun);
  EXPECT_EQ(spec->steps[0].user, "root");
  EXPECT_EQ(spec->steps[1].src, "site");  // "./" and the trailing "/" dropped
  EXPECT_EQ(spec->steps[1].dest, "/srv/");
  EXPECT_EQ(spec->steps[1].mode, 0640);
  EXPECT_EQ(spec->steps[2].env.size(), 2u);
  EXPECT_EQ(spec->steps[3].value, "/srv");
  EXPECT_EQ(spec->steps[4].kind, BuildStep::Kind::kUser);
  EXPECT_EQ(spec->steps[4].value, "nobody");
  EXPECT_TRUE(spec->steps[4].force);
  EXPECT_EQ(spec->ready.kind, ReadyCheck::Kind::kPort);
  EXPECT_EQ(spec->ready.timeout_s, 5);
  // Each step's cache key covers its inputs: another mode is another key.
  auto other = spec->steps[1];
  other.mode = 0644;
  EXPECT_NE(other.KeyJson(), spec->steps[1].KeyJson());
}

TEST(BuildSpecTest, BadSpecsNameWhatIsWrong) {
  json base = {{"name", "x"}, {"from", "busybox"}};
  auto with = [&](const json& steps) {
    json j = base;
    j["steps"] = steps;
    return Error(j);
  };
  EXPECT_NE(Error({{"from", "busybox"}}).find("'name'"), std::string::npos);
  EXPECT_NE(Error({{"name", "x"}}).find("'from'"), std::string::npos);
  EXPECT_NE(Error(json::array()).find("JSON object"), std::string::npos);
  EXPECT_NE(with(json::array({{{"run", ""}}})).find("step 1: 'run'"), std::string::npos);
  EXPECT_NE(with(json::array({{{"copy", "/etc"}, {"to", "/x"}, {"files", std::string(64, 'a')}}})).find("relative"),
            std::string::npos);
  EXPECT_NE(with(json::array({{{"copy", "a/../../b"}, {"to", "/x"}, {"files", std::string(64, 'a')}}}))
                .find("climbs out"),
            std::string::npos);
  EXPECT_NE(with(json::array({{{"copy", "a"}, {"to", "relative"}, {"files", std::string(64, 'a')}}})).find("'to'"),
            std::string::npos);
  EXPECT_NE(with(json::array({{{"copy", "a"}, {"to", "/a"}, {"files", "../../etc/passwd"}}})).find("'files'"),
            std::string::npos);
  EXPECT_NE(with(json::array({{{"copy", "a"}, {"to", "/a"}, {"files", std::string(64, 'a')}, {"mode", "9"}}}))
                .find("'mode'"),
            std::string::npos);
  EXPECT_NE(with(json::array({{{"env", {{"A=B", "1"}}}}})).find("'env'"), std::string::npos);
  EXPECT_NE(with(json::array({{{"env", {{"A", 1}}}}})).find("'env'"), std::string::npos);
  EXPECT_NE(with(json::array({{{"workdir", "rel"}}})).find("absolute"), std::string::npos);
  EXPECT_NE(with(json::array({{{"teleport", "x"}}})).find("one of"), std::string::npos);
  json ready = base;
  ready["ready"] = {{"port", 80}};
  EXPECT_NE(Error(ready).find("needs a 'start'"), std::string::npos);
  ready["start"] = "x";
  ready["ready"] = {{"port", 80}, {"file", "/x"}};
  EXPECT_NE(Error(ready).find("more than one"), std::string::npos);
  ready["ready"] = {{"file", "relative"}};
  EXPECT_NE(Error(ready).find("absolute"), std::string::npos);
  ready["ready"] = {{"cmd", "true"}, {"timeout_s", 0}};
  EXPECT_NE(Error(ready).find("timeout_s"), std::string::npos);
}

TEST(ReadyCheckTest, TheSdksWaitCommandsBecomeChecksPaddockdDoesItself) {
  auto port = ReadyCheckFromCommand(R"x([ -n "$(ss -Htuln sport = :8080)" ])x");
  EXPECT_EQ(port.kind, ReadyCheck::Kind::kPort);
  EXPECT_EQ(port.port, 8080);
  auto file = ReadyCheckFromCommand("[ -f /tmp/ready ]");
  EXPECT_EQ(file.kind, ReadyCheck::Kind::kFile);
  EXPECT_EQ(file.value, "/tmp/ready");
  auto quoted = ReadyCheckFromCommand("[ -f '/tmp/my ready' ]");
  EXPECT_EQ(quoted.kind, ReadyCheck::Kind::kFile);
  EXPECT_EQ(quoted.value, "/tmp/my ready");
  auto proc = ReadyCheckFromCommand("pgrep my-daemon > /dev/null");
  EXPECT_EQ(proc.kind, ReadyCheck::Kind::kProcess);
  EXPECT_EQ(proc.value, "my-daemon");
  // Anything else runs as a command; a port out of range too.
  EXPECT_EQ(ReadyCheckFromCommand(R"x([ -n "$(ss -Htuln sport = :99999)" ])x").kind, ReadyCheck::Kind::kCommand);
  EXPECT_EQ(ReadyCheckFromCommand("curl -sf localhost:3000").kind, ReadyCheck::Kind::kCommand);
  EXPECT_EQ(ReadyCheckFromCommand(std::string(1 << 20, '[')).kind, ReadyCheck::Kind::kCommand);
  EXPECT_EQ(ReadyCheckFromCommand("").kind, ReadyCheck::Kind::kNone);
}

TEST(ReadyCheckTest, RunConfigRoundTrips) {
  RunConfig c;
  c.env = {"A=1", "PATH=/bin"};
  c.workdir = "/srv";
  c.user = "app";
  c.start_cmd = "serve --port 1";
  c.ready.kind = ReadyCheck::Kind::kProcess;
  c.ready.value = "serve";
  c.ready.timeout_s = 9;
  auto back = RunConfig::Parse(c.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), c.ToJson());
  EXPECT_FALSE(RunConfig::Parse({{"env", {"NOEQUALS"}}}).ok());
  EXPECT_FALSE(RunConfig::Parse({{"workdir", "rel"}}).ok());
}

}  // namespace
}  // namespace paddock
