// Templates built from steps, end to end: `paddock template build` against
// a real paddockd, its cache, sandboxes made from the result (start command
// and ready check), bad input, and a kill -9 in the middle of a build.
#include <sys/stat.h>

#include <regex>

#include "daemon_fixture.h"
#include "oci_kit.h"

namespace paddock::testing {
namespace {

class TemplateTest : public DaemonTest {
 protected:
  void SetUp() override {
    work_ = std::make_unique<TempDir>();
    DaemonTest::SetUp();
  }
  void TearDown() override {
    DaemonTest::TearDown();
    work_.reset();
  }

  void Write(const std::string& rel, const std::string& data, mode_t mode = 0644) {
    std::string path = work_->path() + "/" + rel;
    ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/')), 0755).ok());
    ASSERT_TRUE(WriteFileAtomic(path, data, mode).ok());
  }

  // `paddock template build` of `spec` (written to the work folder): exit code and output.
  std::pair<int, std::string> Build(const json& spec, const std::string& flags = "") {
    Write("build.json", spec.dump());
    return RunProgram({"sh", "-c",
                       "env PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH + " template build " + flags + " " +
                           work_->path() + "/build.json 2>&1"});
  }

  std::string Sh(const std::string& id, const std::string& cmd, int want = 0) {
    json r = Must("POST", "/v1/sandboxes/" + id + "/exec", {{"cmd", {"sh", "-c", cmd}}});
    EXPECT_EQ(r.value("exit_code", -1), want) << cmd << ": " << r.dump();
    return r.value("stdout", "");
  }

  // Polls a build started through the API until it ends (bounded: 60 s).
  json WaitForBuild(const std::string& id) {
    json b;
    for (int i = 0; i < 600; ++i) {
      b = Must("GET", "/v1/builds/" + id);
      if (b.value("status", "") != "building") return b;
      ::usleep(100000);
    }
    ADD_FAILURE() << "build " << id << " did not end: " << b.dump();
    return b;
  }

  static int Count(const std::string& text, const std::string& what) {
    int n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  }

  std::unique_ptr<TempDir> work_;
};

json WebSpec() {
  return {{"name", "web"},
          {"from", "busybox"},
          {"tags", {"v1"}},
          {"steps",
           {{{"run", "mkdir -p /srv/www && echo step1 > /srv/www/made.txt && echo building"}},
            {{"copy", "site"}, {"to", "/srv/www/"}},
            {{"copy", "conf/app.conf"}, {"to", "/etc/app/"}, {"mode", "0640"}, {"user", "user"}},
            {{"env", {{"GREETING", "hi"}}}},
            {{"workdir", "/srv/www"}},
            {{"run", "echo $GREETING from $(pwd) > greet.txt && cat /etc/app/app.conf >> greet.txt"}}}},
          {"start", "httpd -f -p 8080 -h /srv/www"},
          {"ready", {{"port", 8080}, {"timeout_s", 20}}}};
}

TEST_F(TemplateTest, BuildsFromStepsCachesThemAndStartsSandboxesReady) {
  Write("site/index.html", "<h1>hello</h1>\n");
  Write("site/css/a.css", "body{}\n", 0600);
  Write("conf/app.conf", "mode=one\n");
  auto [rc, out] = Build(WebSpec());
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("[1/6] RUN mkdir"), std::string::npos) << out;
  EXPECT_NE(out.find("  building\n"), std::string::npos) << out;  // a step's output, streamed
  EXPECT_NE(out.find("(4 steps run, 0 from the cache)"), std::string::npos) << out;
  EXPECT_EQ(Count(out, "CACHED"), 0) << out;
  json tmpl = Must("GET", "/v1/templates/web");
  EXPECT_EQ(Must("GET", "/v1/templates/web:v1")["snapshot"], tmpl["snapshot"]);
  EXPECT_EQ(tmpl["config"]["start"], "httpd -f -p 8080 -h /srv/www");

  // Built once: a second build takes every step from the cache, same result.
  auto [rc2, again] = Build(WebSpec());
  ASSERT_EQ(rc2, 0) << again;
  EXPECT_EQ(Count(again, "CACHED"), 4) << again;
  EXPECT_NE(again.find("(0 steps run, 4 from the cache)"), std::string::npos) << again;
  EXPECT_EQ(Must("GET", "/v1/templates/web")["snapshot"], tmpl["snapshot"]);

  // A sandbox from it is handed out once ready: the server answers at once.
  json sb = Must("POST", "/v1/sandboxes", {{"template", "web"}}, 201);
  std::string id = sb["id"];
  EXPECT_EQ(Sh(id, "wget -qO- http://127.0.0.1:8080/index.html"), "<h1>hello</h1>\n");
  EXPECT_EQ(Sh(id, "pwd; echo $GREETING; cat greet.txt made.txt css/a.css"),
            "/srv/www\nhi\nhi from /srv/www\nmode=one\nstep1\nbody{}\n");
  EXPECT_EQ(Sh(id, "stat -c '%a %U' /etc/app/app.conf css/a.css index.html"), "640 user\n600 root\n644 root\n");
  // Its snapshots keep what it runs with.
  json snap = Must("POST", "/v1/sandboxes/" + id + "/snapshots", json::object(), 201);
  json child = Must("POST", "/v1/sandboxes", {{"snapshot", snap["id"]}}, 201);
  EXPECT_EQ(Sh(child["id"], "wget -qO- http://127.0.0.1:8080/made.txt; pwd"), "step1\n/srv/www\n");

  // A changed copied file: its step and those after it run again, not those before.
  Write("conf/app.conf", "mode=two\n");
  auto [rc3, changed] = Build(WebSpec());
  ASSERT_EQ(rc3, 0) << changed;
  EXPECT_EQ(Count(changed, "CACHED"), 2) << changed;
  EXPECT_NE(changed.find("(2 steps run, 2 from the cache)"), std::string::npos) << changed;
  json moved = Must("GET", "/v1/templates/web");
  EXPECT_NE(moved["snapshot"], tmpl["snapshot"]);
  json sb2 = Must("POST", "/v1/sandboxes", {{"template", "web:v1"}}, 201);
  EXPECT_EQ(Sh(sb2["id"], "cat greet.txt"), "hi from /srv/www\nmode=two\n");
  EXPECT_EQ(Sh(id, "cat greet.txt"), "hi from /srv/www\nmode=one\n") << "an older sandbox keeps its files";

  // --no-cache runs everything again.
  auto [rc4, fresh] = Build(WebSpec(), "--no-cache");
  ASSERT_EQ(rc4, 0) << fresh;
  EXPECT_EQ(Count(fresh, "CACHED"), 0) << fresh;

  // The template's snapshot is in use: not removable as a snapshot.
  std::string err = MustFail("DELETE", "/v1/snapshots/" + Must("GET", "/v1/templates/web")["snapshot"].get<std::string>(),
                             "", 409);
  EXPECT_NE(err.find("template web"), std::string::npos) << err;
  Must("DELETE", "/v1/snapshots/" + snap["id"].get<std::string>(), nullptr, 409);  // child uses it
  Must("DELETE", "/v1/sandboxes/" + child["id"].get<std::string>(), nullptr, 204);
  Must("DELETE", "/v1/snapshots/" + snap["id"].get<std::string>(), nullptr, 204);
  // No build sandbox is left over.
  EXPECT_EQ(Must("GET", "/v1/sandboxes")["sandboxes"].size(), 2u);

  // Pruning the build cache keeps what templates and sandboxes use.
  Must("DELETE", "/v1/sandboxes/" + id, nullptr, 204);
  json pruned = Must("POST", "/v1/templates:prune");
  EXPECT_EQ(pruned["snapshots_removed"], 3) << pruned.dump();  // the first build's last two steps and config
  EXPECT_EQ(pruned["files_removed"], 3) << pruned.dump();      // the site, and the conf as it was twice
  EXPECT_EQ(Sh(sb2["id"], "cat greet.txt"), "hi from /srv/www\nmode=two\n");
  auto [rc5, after] = Build(WebSpec());  // uploads again; its steps are all still here
  ASSERT_EQ(rc5, 0) << after;
  EXPECT_EQ(Count(after, "CACHED"), 4) << after;
}

TEST_F(TemplateTest, FailuresNameTheStepAndStoreNothing) {
  // A failing step: its number, its exit code and its output.
  auto [rc, out] = Build({{"name", "bad"},
                          {"from", "busybox"},
                          {"steps", {{{"env", {{"A", "1"}}}}, {{"run", "echo partial; echo broken >&2; exit 3"}}}}});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("failed at step 2"), std::string::npos) << out;
  EXPECT_NE(out.find("exited with code 3"), std::string::npos) << out;
  EXPECT_NE(out.find("broken"), std::string::npos) << out;

  // A start command that never gets ready, and one that dies first.
  auto [rc2, slow] = Build({{"name", "slow"}, {"from", "busybox"}, {"start", "echo waiting; sleep 60"},
                            {"ready", {{"port", 9}, {"timeout_s", 1}}}});
  EXPECT_EQ(rc2, 1);
  EXPECT_NE(slow.find("failed checking its start command"), std::string::npos) << slow;
  EXPECT_NE(slow.find("was not ready within 1 s (waiting for a listener on port 9)"), std::string::npos) << slow;
  EXPECT_NE(slow.find("waiting"), std::string::npos) << slow;
  auto [rc3, died] = Build({{"name", "died"}, {"from", "busybox"}, {"start", "echo bye; exit 4"},
                            {"ready", {{"file", "/tmp/never"}}}});
  EXPECT_EQ(rc3, 1);
  EXPECT_NE(died.find("exited with code 4 before it was ready"), std::string::npos) << died;

  // An unknown base (a snapshot or template name that does not exist, and
  // no registry to pull it from).
  json b = Must("POST", "/v1/templates", {{"name", "nobase"}, {"from", "127.0.0.1:9/none:v1"}}, 202);
  json ended = WaitForBuild(b["id"]);
  EXPECT_EQ(ended["status"], "error");
  EXPECT_EQ(ended["error"]["step"], "base");

  // Bad specs: 400 naming what is wrong.
  EXPECT_NE(MustFail("POST", "/v1/templates", R"({"from":"busybox"})", 400).find("'name'"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/templates", R"({"name":"x"})", 400).find("'from'"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/templates", R"({"name":"host","from":"busybox"})", 400).find("not valid"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/templates", R"({"name":"x","from":"busybox","steps":[{"jump":1}]})", 400)
                .find("step 1"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/templates",
                     R"({"name":"x","from":"busybox","steps":[{"copy":"a","to":"/a","files":")" +
                         std::string(64, 'a') + R"("}]})",
                     400)
                .find("were not uploaded"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/templates",
                     R"({"name":"x","from":"busybox","steps":[{"copy":"../up","to":"/a","files":")" +
                         std::string(64, 'a') + R"("}]})",
                     400)
                .find("climbs out"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/templates", R"({"name":"x","from":"busybox","ready":{"port":0},"start":"x"})", 400)
                .find("ready.port"),
            std::string::npos);
  // An upload whose content is not its name.
  MustFail("PUT", "/v1/build-files/" + std::string(64, 'b'), "not that", 400);
  MustFail("GET", "/v1/build-files/" + std::string(64, 'b'), "", 404);
  MustFail("GET", "/v1/builds/bld-nope", "", 404);
  MustFail("DELETE", "/v1/templates/nope", "", 404);

  // Nothing half-stored: no template, no build sandbox.
  EXPECT_EQ(Must("GET", "/v1/templates")["templates"].size(), 0u);
  EXPECT_EQ(Must("GET", "/v1/sandboxes")["sandboxes"].size(), 0u);
}

TEST_F(TemplateTest, KillNineDuringABuildLeavesNoTemplateAndNoBuildSandbox) {
  json spec = {{"name", "crashy"},
               {"from", "busybox"},
               {"steps", {{{"run", "echo one > /one"}}, {{"run", "touch /tmp/started; sleep 30"}}}}};
  json b = Must("POST", "/v1/templates", spec, 202);
  // Until the second step's sandbox runs it.
  bool running = false;
  for (int i = 0; i < 300 && !running; ++i) {
    json list = Must("GET", "/v1/sandboxes");
    for (const auto& s : list["sandboxes"])
      running = running || s["name"].get<std::string>().ends_with("-2");  // build-<id>-2 (the id may hold "-2" too)
    if (!running) ::usleep(20000);
  }
  ASSERT_TRUE(running) << Must("GET", "/v1/builds/" + b["id"].get<std::string>()).dump();
  StopDaemon(SIGKILL);
  ReapOrphans();
  StartDaemon();
  EXPECT_EQ(Must("GET", "/v1/templates")["templates"].size(), 0u);
  EXPECT_EQ(Must("GET", "/v1/sandboxes")["sandboxes"].size(), 0u) << "the build's sandbox is removed at start-up";
  MustFail("GET", "/v1/builds/" + b["id"].get<std::string>(), "", 404);
  // The first step's snapshot was complete: the next build reuses it.
  spec["steps"][1]["run"] = "echo two > /two";
  json again = WaitForBuild(Must("POST", "/v1/templates", spec, 202)["id"]);
  EXPECT_EQ(again["status"], "ready") << again.dump();
  EXPECT_EQ(again["cached_steps"], 1);
  json sb = Must("POST", "/v1/sandboxes", {{"template", "crashy"}}, 201);
  EXPECT_EQ(Sh(sb["id"], "cat /one /two"), "one\ntwo\n");
}

}  // namespace
}  // namespace paddock::testing
