// The REST API of a real paddockd: lifecycle, exec (sync, streamed,
// background and re-attached), files, errors, limits, keys, metrics, CLI.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <thread>

#include "base/fd.h"
#include "daemon_fixture.h"

namespace paddock::testing {
namespace {

TEST_F(DaemonTest, CreateExecAndInspect) {
  json sb = Must("POST", "/v1/sandboxes",
                 {{"name", "alpha"}, {"memory", "256m"}, {"cpu", 500}, {"env", {{"GREETING", "hi"}}},
                  {"metadata", {{"team", "rl"}}}, {"timeout", 600}, {"on_timeout", "pause"}},
                 201);
  EXPECT_EQ(sb["name"], "alpha");
  EXPECT_EQ(sb["state"], "running");
  EXPECT_EQ(sb["memory"], 256 << 20);
  EXPECT_EQ(sb["on_timeout"], "pause");
  EXPECT_TRUE(sb["timeout_at"].is_string());
  json r = Must("POST", "/v1/sandboxes/alpha/exec", {{"command", "echo $GREETING; echo e >&2; exit 4"}});
  EXPECT_EQ(r["stdout"], "hi\n");
  EXPECT_EQ(r["stderr"], "e\n");
  EXPECT_EQ(r["exit_code"], 4);
  json got = Must("GET", "/v1/sandboxes/" + sb["id"].get<std::string>());
  EXPECT_EQ(got["metadata"]["team"], "rl");
  json stdin_r = Must("POST", "/v1/sandboxes/alpha/exec", {{"cmd", {"wc", "-c"}}, {"stdin", "12345"}});
  EXPECT_EQ(stdin_r["stdout"], "5\n");
}

TEST_F(DaemonTest, StreamedExecAndReattachAfterADaemonRestart) {
  Must("POST", "/v1/sandboxes", {{"name", "s"}}, 201);
  std::vector<std::string> events;
  std::string out;
  Status st = api().Stream("POST", "/v1/sandboxes/s/exec",
                           json{{"command", "echo one; echo two >&2; exit 2"}, {"stream", true}}.dump(),
                           [&](const std::string& ev, const json& d) {
                             events.push_back(ev);
                             if (ev == "stdout" || ev == "stderr") out += d.value("data", "");
                             if (ev == "exit") {
                               EXPECT_EQ(d["exit_code"], 2);
                             }
                             return true;
                           });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(events.front(), "start");
  EXPECT_EQ(events.back(), "exit");
  EXPECT_EQ(out, "one\ntwo\n");

  // A background command survives paddockd going away; its output is replayed.
  json bg = Must("POST", "/v1/sandboxes/s/exec",
                 {{"command", "echo before; sleep 1; echo after"}, {"background", true}}, 202);
  int pid = bg["pid"];
  StopDaemon(SIGKILL);
  StartDaemon();
  std::string replay;
  st = api().Stream("GET", "/v1/sandboxes/s/processes/" + std::to_string(pid) + "/events?from=0", "",
                    [&](const std::string& ev, const json& d) {
                      if (ev == "stdout") replay += d.value("data", "");
                      return ev != "exit";
                    });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(replay, "before\nafter\n");
  json procs = Must("GET", "/v1/sandboxes/s/processes");
  EXPECT_GE(procs["processes"].size(), 1u);
}

TEST_F(DaemonTest, LifecycleAndInvalidTransitions) {
  json sb = Must("POST", "/v1/sandboxes", {{"name", "life"}}, 201);
  Must("POST", "/v1/sandboxes/life/exec", {{"command", "echo kept > /root/f"}});
  EXPECT_EQ(Must("POST", "/v1/sandboxes/life/pause")["state"], "paused");
  EXPECT_EQ(MustFail("POST", "/v1/sandboxes/life/exec", R"({"command":"true"})", 409).substr(0, 19),
            "failed_precondition");
  EXPECT_EQ(MustFail("POST", "/v1/sandboxes/life/pause", "", 409).substr(0, 19), "failed_precondition");
  EXPECT_EQ(Must("POST", "/v1/sandboxes/life/resume")["state"], "running");
  EXPECT_EQ(Must("POST", "/v1/sandboxes/life/stop", {{"grace_ms", 1000}})["state"], "stopped");
  EXPECT_EQ(Must("POST", "/v1/sandboxes/life/start")["state"], "running");
  EXPECT_EQ(Must("POST", "/v1/sandboxes/life/restart")["state"], "running");
  EXPECT_EQ(Must("POST", "/v1/sandboxes/life/exec", {{"command", "cat /root/f"}})["stdout"], "kept\n");
  Must("DELETE", "/v1/sandboxes/life", nullptr, 204);
  EXPECT_EQ(MustFail("GET", "/v1/sandboxes/life", "", 404).substr(0, 9), "not_found");
  EXPECT_EQ(MustFail("DELETE", "/v1/sandboxes/life", "", 404).substr(0, 9), "not_found");
}

TEST_F(DaemonTest, BadInputGetsAClearErrorAndCorruptsNothing) {
  Must("POST", "/v1/sandboxes", {{"name", "keep"}, {"metadata", {{"k", "v"}}}}, 201);
  EXPECT_EQ(MustFail("POST", "/v1/sandboxes", "{not json", 400), "invalid_argument: request body is not a JSON object");
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"cpu":"lots"})", 400).find("'cpu'"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"memory":"12 parsecs"})", 400).find("'memory'"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"env":{"A":1}})", 400).find("'env'"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"on_timeout":"explode"})", 400).find("on_timeout"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"name":"../x"})", 400).find("name"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"template":"127.0.0.1:9/nope"})", 503).find("127.0.0.1:9"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"template":"No Such Template"})", 400).find("No Such Template"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"name":"keep"})", 409).find("already exists"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes/keep/exec", R"({"cmd":"ls"})", 400).find("'cmd'"), std::string::npos);
  EXPECT_NE(MustFail("GET", "/v1/sandboxes?state=dancing", "", 400).find("dancing"), std::string::npos);
  EXPECT_NE(MustFail("GET", "/v1/nowhere", "", 404).find("no route"), std::string::npos);
  // A request with an absurd header is refused without harm.
  auto huge = api().Send("GET", "/v1/sandboxes?x=" + std::string(100000, 'a'));
  EXPECT_TRUE(!huge.ok() || huge->status >= 400);
  json list = Must("GET", "/v1/sandboxes");
  ASSERT_EQ(list["sandboxes"].size(), 1u);
  EXPECT_EQ(list["sandboxes"][0]["metadata"]["k"], "v");
  EXPECT_EQ(list["sandboxes"][0]["state"], "running");
}

TEST_F(DaemonTest, ListFiltersByStateAndMetadata) {
  Must("POST", "/v1/sandboxes", {{"name", "a"}, {"metadata", {{"team", "rl"}, {"run", "1"}}}}, 201);
  Must("POST", "/v1/sandboxes", {{"name", "b"}, {"metadata", {{"team", "rl"}, {"run", "2"}}}}, 201);
  Must("POST", "/v1/sandboxes", {{"name", "c"}, {"metadata", {{"team", "chat"}}}}, 201);
  Must("POST", "/v1/sandboxes/b/pause");
  EXPECT_EQ(Must("GET", "/v1/sandboxes?metadata.team=rl")["sandboxes"].size(), 2u);
  EXPECT_EQ(Must("GET", "/v1/sandboxes?metadata.team=rl&metadata.run=2")["sandboxes"].size(), 1u);
  EXPECT_EQ(Must("GET", "/v1/sandboxes?state=paused")["sandboxes"][0]["name"], "b");
  EXPECT_EQ(Must("GET", "/v1/sandboxes?state=running,paused")["sandboxes"].size(), 3u);
}

TEST_F(DaemonTest, BatchCreateMakesManySandboxesInOneRequestAndNamesEachFailure) {
  json batch = Must("POST", "/v1/sandboxes:batch", {{"count", 12}, {"template", "busybox"}, {"name", "rollout"},
                                                    {"metadata", {{"run", "7"}}}}, 201);
  EXPECT_EQ(batch["created"], 12);
  EXPECT_EQ(batch["failed"], 0);
  ASSERT_EQ(batch["results"].size(), 12u);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(batch["results"][i]["sandbox"]["name"], "rollout-" + std::to_string(i));
    EXPECT_EQ(batch["results"][i]["sandbox"]["state"], "running");
  }
  EXPECT_EQ(Must("GET", "/v1/sandboxes?metadata.run=7")["sandboxes"].size(), 12u);
  std::string last = batch["results"][11]["sandbox"]["id"];
  EXPECT_EQ(Must("POST", "/v1/sandboxes/" + last + "/exec", {{"command", "echo ok"}})["stdout"], "ok\n");

  // One name taken: that one fails, in its place, and the others are made.
  Must("POST", "/v1/sandboxes", {{"name", "eval-2"}}, 201);
  json partial = Must("POST", "/v1/sandboxes:batch", {{"count", 4}, {"name", "eval"}}, 207);
  EXPECT_EQ(partial["created"], 3);
  EXPECT_EQ(partial["failed"], 1);
  EXPECT_EQ(partial["results"][2]["error"]["code"], "already_exists");
  EXPECT_FALSE(partial["results"][2].contains("sandbox"));
  EXPECT_EQ(partial["results"][3]["sandbox"]["name"], "eval-3");

  // Bad input is refused whole, naming what is wrong, and creates nothing.
  size_t before = Must("GET", "/v1/sandboxes")["sandboxes"].size();
  EXPECT_NE(MustFail("POST", "/v1/sandboxes:batch", R"({"count": 0})", 400).find("count"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes:batch", R"({"count": 1001})", 400).find("count"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes:batch", R"({"count": "3"})", 400).find("count"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes:batch", R"({"count": 3, "memory": "1k"})", 400).find("memory"),
            std::string::npos);
  MustFail("GET", "/v1/sandboxes:batch", "", 404);
  EXPECT_EQ(Must("GET", "/v1/sandboxes")["sandboxes"].size(), before);

  // The CLI: one id per line.
  std::string out = Shell("PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH + " create --count 3 -t busybox");
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 3) << out;
  EXPECT_EQ(Must("GET", "/v1/sandboxes")["sandboxes"].size(), before + 3);
}

TEST_F(DaemonTest, BatchCreateOnAFullHostMakesWhatFitsAndWaitsForTeardowns) {
  StopDaemon(SIGTERM);
  extra_args_ = {"--max-sandboxes", "5"};
  StartDaemon();
  json batch = Must("POST", "/v1/sandboxes:batch", {{"count", 7}}, 207);
  EXPECT_EQ(batch["created"], 5);
  EXPECT_EQ(batch["failed"], 2);
  for (const auto& r : batch["results"]) {
    if (r.contains("error")) {
      EXPECT_EQ(r["error"]["code"], "resource_exhausted") << r.dump();
    }
  }
  // Deleted sandboxes count until their teardown is done; a create right
  // after the deletes waits for it rather than say the host is full.
  for (const auto& r : batch["results"]) {
    if (r.contains("sandbox")) {
      Must("DELETE", "/v1/sandboxes/" + r["sandbox"]["id"].get<std::string>(), nullptr, 204);
    }
  }
  EXPECT_EQ(Must("POST", "/v1/sandboxes:batch", {{"count", 5}}, 201)["created"], 5);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes:batch", R"({"count": 2})", 503).find("full"), std::string::npos);
}

// --warm-templates: only busybox gets warm shells, and a create from it
// takes one; an unknown template name keeps paddockd from starting.
TEST_F(DaemonTest, WarmTemplatesPickWhichBuiltInsGetWarmShells) {
  StopDaemon(SIGTERM);
  extra_args_ = {"--warm-shells", "3", "--warm-templates", "busybox"};
  StartDaemon();
  // A series of /metrics without labels, or one named with them; -1 if absent.
  auto gauge = [&](const std::string& name) {
    auto m = api().Send("GET", "/metrics");
    std::string text = m.ok() ? m->body : "";
    size_t at = text.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::atoi(text.c_str() + at + name.size() + 2);
  };
  for (int i = 0; i < 1000 && gauge("paddock_warm_shells") < 3; ++i) ::usleep(10000);  // bounded: 10 s
  EXPECT_EQ(gauge("paddock_warm_shells"), 3);
  ::usleep(300000);  // none for host meanwhile (the default would make 6)
  EXPECT_EQ(gauge("paddock_warm_shells"), 3);
  json sb = Must("POST", "/v1/sandboxes", {{"template", "busybox"}}, 201);
  std::string metrics = api().Send("GET", "/metrics")->body;
  EXPECT_NE(metrics.find("\npaddock_warm_shell_creates_total{shell=\"taken\"} 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\npaddock_warm_shell_creates_total{shell=\"missed\"} 0\n"), std::string::npos);
  Must("DELETE", "/v1/sandboxes/" + sb["id"].get<std::string>(), nullptr, 204);
  json host = Must("POST", "/v1/sandboxes", {{"template", "host"}}, 201);  // no warm shells of its own
  metrics = api().Send("GET", "/metrics")->body;
  EXPECT_NE(metrics.find("\npaddock_warm_shell_creates_total{shell=\"missed\"} 1\n"), std::string::npos) << metrics;
  Must("DELETE", "/v1/sandboxes/" + host["id"].get<std::string>(), nullptr, 204);

  // A burst larger than the pool: each create that found none ready asks
  // for one more busybox shell, up to --warm-shells-max (5).
  StopDaemon(SIGTERM);
  extra_args_ = {"--warm-shells", "2", "--warm-shells-max", "5", "--warm-templates", "busybox"};
  StartDaemon();
  for (int i = 0; i < 1000 && gauge("paddock_warm_shells") < 2; ++i) ::usleep(10000);
  EXPECT_EQ(gauge("paddock_warm_shells_target"), 2);
  std::vector<std::thread> burst;
  for (int i = 0; i < 12; ++i)
    burst.emplace_back([&] { Must("POST", "/v1/sandboxes", {{"template", "busybox"}}, 201); });
  for (auto& t : burst) t.join();
  int missed = gauge("paddock_warm_shell_creates_total{shell=\"missed\"}");
  EXPECT_GE(missed, 1);
  int grown = std::min(2 + missed, 5);
  EXPECT_EQ(gauge("paddock_warm_shells_target"), grown);
  for (int i = 0; i < 1000 && gauge("paddock_warm_shells") < grown; ++i) ::usleep(10000);
  EXPECT_EQ(gauge("paddock_warm_shells"), grown);

  std::string refused = Shell(std::string(PADDOCKD_PATH) + " --warm-templates busybox,ubuntu 2>&1");
  EXPECT_NE(refused.find("ubuntu not in {host,busybox}"), std::string::npos) << refused;
}

TEST_F(DaemonTest, RunCreatesExecsAndDeletesInOneRequest) {
  auto r = api().Send("POST", "/v1/sandboxes:run",
                      R"({"sandbox": {"template": "busybox", "env": {"WHO": "run"}},
                          "cmd": ["sh", "-c", "echo hi $WHO; echo oops >&2; exit 3"]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->status, 200) << r->body;
  json out = r->Json();
  EXPECT_EQ(out["exit_code"], 3);
  EXPECT_EQ(out["stdout"], "hi run\n");
  EXPECT_EQ(out["stderr"], "oops\n");
  EXPECT_TRUE(Must("GET", "/v1/sandboxes")["sandboxes"].empty());
  std::string headers = Shell("curl -s -D - -o /dev/null --unix-socket " + socket_ +
                              " -X POST http://paddock/v1/sandboxes:run -d '{\"cmd\": [\"true\"]}'");
  size_t at = headers.find("X-Sandbox-Id: ");
  ASSERT_NE(at, std::string::npos) << headers;
  std::string id = headers.substr(at + 14, headers.find('\r', at) - at - 14);
  MustFail("GET", "/v1/sandboxes/" + id, "", 404);

  // Bad input creates nothing; a command that cannot start leaves nothing.
  EXPECT_NE(MustFail("POST", "/v1/sandboxes:run", R"({"sandbox": 5, "cmd": ["true"]})", 400).find("sandbox"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes:run", R"({"cmd": ["true"], "background": true})", 400).find("background"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes:run", R"({"sandbox": {"memory": "1k"}, "cmd": ["true"]})", 400)
                .find("memory"),
            std::string::npos);
  MustFail("POST", "/v1/sandboxes:run", R"({"sandbox": {"template": "busybox"}})", 400);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes:run", R"({"cmd": ["/no/such/program"]})", 404).find("/no/such/program"),
            std::string::npos);
  ASSERT_TRUE(WaitForTeardowns());
  EXPECT_TRUE(Must("GET", "/v1/sandboxes")["sandboxes"].empty());
  EXPECT_TRUE(ListDir(state_->path() + "/state/trash").empty());

  // The CLI's one-shot is this route, streamed.
  std::string cli = "PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH;
  EXPECT_EQ(Shell(cli + " run -t busybox -- sh -c 'echo out; exit 4' ; echo rc=$?"), "out\nrc=4\n");
  EXPECT_TRUE(Must("GET", "/v1/sandboxes")["sandboxes"].empty());
}

TEST_F(DaemonTest, CliCopiesFilesAndFoldersBothWays) {
  Must("POST", "/v1/sandboxes", {{"name", "box"}}, 201);
  TempDir local;
  ASSERT_TRUE(MakeDirs(local.path() + "/tree/sub").ok());
  ASSERT_TRUE(WriteFileAtomic(local.path() + "/tree/sub/a.txt", "alpha", 0640).ok());
  ASSERT_TRUE(WriteFileAtomic(local.path() + "/one.txt", "single", 0644).ok());
  std::string cli = "PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH;
  EXPECT_EQ(Shell(cli + " cp " + local.path() + "/tree box:/tmp/tree; echo rc=$?"), "rc=0\n");
  EXPECT_EQ(Shell(cli + " cp " + local.path() + "/one.txt box:/tmp/one.txt; echo rc=$?"), "rc=0\n");
  EXPECT_EQ(Must("POST", "/v1/sandboxes/box/exec", {{"command", "cat /tmp/tree/sub/a.txt /tmp/one.txt"}})["stdout"],
            "alphasingle");
  EXPECT_EQ(Shell(cli + " cp box:/tmp/tree " + local.path() + "/back; echo rc=$?"), "rc=0\n");
  auto back = ReadFile(local.path() + "/back/sub/a.txt");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, "alpha");
  EXPECT_EQ(Shell(cli + " cp box:/tmp/one.txt -"), "single");
}

TEST_F(DaemonTest, HostFullIs503) {
  StopDaemon(SIGTERM);
  extra_args_ = {"--max-sandboxes", "2"};
  StartDaemon();
  Must("POST", "/v1/sandboxes", json::object(), 201);
  Must("POST", "/v1/sandboxes", json::object(), 201);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", "{}", 503).find("full"), std::string::npos);
}

TEST_F(DaemonTest, FilesReadWriteListMoveRemoveAndTar) {
  Must("POST", "/v1/sandboxes", {{"name", "f"}}, 201);
  std::string big(20 << 20, 'x');  // over one agent frame: written in pieces, renamed into place
  big[12345] = 'y';
  auto put = api().Send("PUT", "/v1/sandboxes/f/files?path=/data/big.bin", big, "application/octet-stream");
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->status, 200) << put->body;
  auto get = api().Send("GET", "/v1/sandboxes/f/files?path=/data/big.bin");
  ASSERT_TRUE(get.ok());
  EXPECT_TRUE(get->body == big) << get->body.size();
  EXPECT_EQ(Must("GET", "/v1/sandboxes/f/files/stat?path=/data/big.bin")["size"], 20 << 20);
  EXPECT_EQ(Must("POST", "/v1/sandboxes/f/files/mkdir", {{"path", "/data/sub"}})["created"], true);
  Must("POST", "/v1/sandboxes/f/files/rename", {{"from", "/data/big.bin"}, {"to", "/data/sub/moved.bin"}});
  json list = Must("GET", "/v1/sandboxes/f/files/list?path=/data&depth=2");
  ASSERT_EQ(list["entries"].size(), 2u);
  auto tar = api().Send("GET", "/v1/sandboxes/f/files/archive?path=/data");
  ASSERT_TRUE(tar.ok());
  EXPECT_EQ(tar->status, 200);
  EXPECT_GT(tar->body.size(), size_t{20} << 20);
  auto up = api().Send("PUT", "/v1/sandboxes/f/files/archive?path=/copy", tar->body, "application/x-tar");
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(up->status, 200) << up->body;
  EXPECT_EQ(Must("POST", "/v1/sandboxes/f/exec", {{"command", "cmp /data/sub/moved.bin /copy/sub/moved.bin && echo same"}})["stdout"],
            "same\n");
  Must("DELETE", "/v1/sandboxes/f/files?path=/data", nullptr, 204);
  EXPECT_EQ(MustFail("GET", "/v1/sandboxes/f/files?path=/data/sub/moved.bin", "", 404).substr(0, 9), "not_found");
  EXPECT_NE(MustFail("PUT", "/v1/sandboxes/f/files/archive?path=/x", "not a tar", 400).find("tar"), std::string::npos);
}

TEST_F(DaemonTest, TimeoutsFireThroughTheReaper) {
  Must("POST", "/v1/sandboxes", {{"name", "dies"}, {"timeout", 1}}, 201);
  Must("POST", "/v1/sandboxes", {{"name", "sleeps"}, {"timeout", 1}, {"on_timeout", "pause"}}, 201);
  Must("POST", "/v1/sandboxes", {{"name", "lives"}, {"timeout", 1}}, 201);
  Must("POST", "/v1/sandboxes/lives/timeout", {{"timeout", 600}});
  bool done = false;
  for (int i = 0; i < 100 && !done; ++i) {  // bounded: 10 s
    ::usleep(100000);
    auto d = api().Send("GET", "/v1/sandboxes/dies");
    auto s = api().Send("GET", "/v1/sandboxes/sleeps");
    done = d.ok() && d->status == 404 && s.ok() && s->Json().value("state", "") == "paused";
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(Must("GET", "/v1/sandboxes/lives")["state"], "running");
}

// Sends `head` (a request's header, its body never follows) to 127.0.0.1:port
// and returns the status line of the answer, which must come within 10 s.
std::string AnswerToHeaderAlone(int port, const std::string& head) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval deadline{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &deadline, sizeof deadline);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, head.data(), head.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(head.size())) {
    char buf[4096];
    ssize_t n;
    while (answer.find("\r\n") == std::string::npos && (n = ::recv(fd, buf, sizeof buf, 0)) > 0)
      answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return answer.substr(0, answer.find("\r\n"));
}

TEST_F(DaemonTest, TcpNeedsTheApiKey) {
  StopDaemon(SIGTERM);
  extra_args_ = {"--listen", "127.0.0.1:18731", "--api-key", "s3cret"};
  StartDaemon();
  auto anonymous = cli::ApiClient("tcp://127.0.0.1:18731").Send("GET", "/v1/sandboxes");
  ASSERT_TRUE(anonymous.ok()) << anonymous.status().ToString();
  EXPECT_EQ(anonymous->status, 401);
  auto wrong = cli::ApiClient("tcp://127.0.0.1:18731", "guess").Send("GET", "/v1/sandboxes");
  EXPECT_EQ(wrong->status, 401);
  auto keyed = cli::ApiClient("tcp://127.0.0.1:18731", "s3cret").Send("GET", "/v1/sandboxes");
  ASSERT_TRUE(keyed.ok());
  EXPECT_EQ(keyed->status, 200);

  // The key and the body's size are judged on the header: no body is waited
  // for (none is sent), let alone read into memory.
  EXPECT_EQ(AnswerToHeaderAlone(18731,
                                "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\n"
                                "Content-Type: application/json\r\nContent-Length: 200000000\r\n\r\n"),
            "HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(AnswerToHeaderAlone(18731,
                                "POST /v1/images/import HTTP/1.1\r\nHost: x\r\n"
                                "Content-Length: 50000000000\r\n\r\n"),
            "HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(AnswerToHeaderAlone(18731,
                                "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nX-API-Key: s3cret\r\n"
                                "Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n"),
            "HTTP/1.1 413 Payload Too Large");
  EXPECT_TRUE(ListDir(state_->path() + "/state/uploads").empty());
}

// An answer given on the header alone (here 401) reaches a client that is
// still sending its body: paddockd drains what follows for a while instead
// of closing with bytes unread, which would reset the connection under the
// client's sends (curl then reports the reset, not the 401).
TEST_F(DaemonTest, AnAnswerGivenBeforeTheBodyLetsTheClientFinishSending) {
  StopDaemon(SIGTERM);
  extra_args_ = {"--listen", "127.0.0.1:18732", "--api-key", "s3cret"};
  StartDaemon();
  UniqueFd socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int fd = socket.get();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(18732);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval deadline{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &deadline, sizeof deadline);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &deadline, sizeof deadline);
  std::string head = "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 3000000\r\n\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  std::string answer;
  char buf[4096];
  ssize_t n;
  while (answer.find("}}") == std::string::npos && (n = ::recv(fd, buf, sizeof buf, 0)) > 0)
    answer.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(answer.substr(0, answer.find("\r\n")), "HTTP/1.1 401 Unauthorized");
  std::string piece(64 << 10, '{');
  for (int i = 0; i < 32; ++i)  // 2 MiB of the body, after the answer
    ASSERT_EQ(::send(fd, piece.data(), piece.size(), MSG_NOSIGNAL), static_cast<ssize_t>(piece.size()))
        << "send " << i << ": " << std::strerror(errno);
  ::shutdown(fd, SHUT_WR);
  EXPECT_EQ(::recv(fd, buf, sizeof buf, 0), 0) << std::strerror(errno);  // a close, not a reset
}

// A client that sends an empty upload and half-closes its end (as `curl
// -T /dev/null` can) gets its answer and then the connection closed, not
// held open until the idle timeout. (Found by fuzz/http_request_fuzz.)
TEST_F(DaemonTest, AnEmptyUploadFromAHalfClosedClientIsAnsweredThenClosed) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socket_.copy(addr.sun_path, sizeof addr.sun_path - 1);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string head = "PUT /v1/sandboxes/none/files?path=/f HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  ::shutdown(fd, SHUT_WR);
  timeval deadline{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &deadline, sizeof deadline);
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) answer.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(n, 0) << "the connection was still open 5 s after the answer";
  EXPECT_EQ(answer.substr(0, answer.find("\r\n")), "HTTP/1.1 404 Not Found");
  ::close(fd);
}

TEST_F(DaemonTest, MetricsCountSandboxesOperationsAndErrors) {
  Must("POST", "/v1/sandboxes", {{"name", "m"}}, 201);
  MustFail("GET", "/v1/sandboxes/none", "", 404);
  auto r = api().Send("GET", "/metrics");
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->body.find("paddock_sandboxes{state=\"running\"} 1"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("paddock_operation_seconds_count{op=\"create\"} 1"), std::string::npos);
  EXPECT_NE(r->body.find("paddock_errors_total{code=\"not_found\",op=\"get\"} 1"), std::string::npos);
}

TEST_F(DaemonTest, CliRunExecAndErrors) {
  auto run = [&](const std::string& args) {
    std::string cmd = "PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH + " " + args + " 2>&1";
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int status = ::pclose(p);
    return std::make_pair(WEXITSTATUS(status), out);
  };
  EXPECT_EQ(run("run -- python3 -c 'print(6*7)'"), std::make_pair(0, std::string("42\n")));
  auto created = run("create --name cli -l team=x");
  EXPECT_EQ(created.first, 0);
  EXPECT_EQ(run("exec cli -- sh -c 'exit 7'").first, 7);
  EXPECT_EQ(run("inspect cli --json").first, 0);
  EXPECT_NE(run("ls").second.find("cli"), std::string::npos);
  auto forwarded = run("forward cli 7000");
  EXPECT_EQ(forwarded.first, 0) << forwarded.second;
  ASSERT_EQ(forwarded.second.rfind("127.0.0.1:", 0), 0u) << forwarded.second;
  std::string host_port = forwarded.second.substr(10, forwarded.second.size() - 11);
  EXPECT_NE(run("forwards cli").second.find(forwarded.second.substr(0, forwarded.second.size() - 1)),
            std::string::npos);
  EXPECT_EQ(run("unforward cli " + host_port).first, 0);
  EXPECT_NE(run("unforward cli " + host_port).second.find("no forward"), std::string::npos);
  EXPECT_NE(run("forward cli 70000").first, 0);
  auto missing = run("exec nope -- true");
  EXPECT_EQ(missing.first, 1);
  EXPECT_NE(missing.second.find("does not exist"), std::string::npos);
  std::string no_daemon = "PADDOCK_SOCKET=/tmp/pdk-none.sock " + std::string(PADDOCK_CLI_PATH) + " ls 2>&1";
  FILE* p = ::popen(no_daemon.c_str(), "r");
  char buf[512] = {};
  (void)!std::fread(buf, 1, sizeof buf - 1, p);
  EXPECT_NE(WEXITSTATUS(::pclose(p)), 0);
  EXPECT_NE(std::string(buf).find("is it running"), std::string::npos) << buf;
}

TEST_F(DaemonTest, ParallelCreatesWithClashingNamesHaveOneWinnerEach) {
  constexpr int kNames = 10, kTries = 10;
  std::vector<std::thread> threads;
  std::vector<int> wins(kNames, 0), clashes(kNames, 0);
  std::mutex mu;
  for (int t = 0; t < kNames * kTries; ++t) {
    threads.emplace_back([&, t] {
      int n = t % kNames;
      auto r = api().Send("POST", "/v1/sandboxes", json{{"name", "clash-" + std::to_string(n)}}.dump());
      std::lock_guard<std::mutex> lock(mu);
      if (r.ok() && r->status == 201) ++wins[n];
      else if (r.ok() && r->status == 409) ++clashes[n];
    });
  }
  for (auto& t : threads) t.join();
  for (int n = 0; n < kNames; ++n) {
    EXPECT_EQ(wins[n], 1) << "name " << n;
    EXPECT_EQ(clashes[n], kTries - 1) << "name " << n;
  }
  json list = Must("GET", "/v1/sandboxes");
  EXPECT_EQ(list["sandboxes"].size(), static_cast<size_t>(kNames));
  std::set<int> pids;
  for (const auto& s : list["sandboxes"]) pids.insert(s["init_pid"].get<int>());
  EXPECT_EQ(pids.size(), static_cast<size_t>(kNames));  // no duplicate resources
  EXPECT_EQ(TakeHostSnapshot().init_processes.size(), before_.init_processes.size() + kNames);
}

TEST_F(DaemonTest, SnapshotsThroughRestAndCliSurviveAKill) {
  auto cli = [&](const std::string& args) {
    std::string out = Shell("PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH + " " + args + " 2>&1; echo rc=$?");
    return out;
  };
  auto cat = [&](const std::string& sandbox) {
    return Must("POST", "/v1/sandboxes/" + sandbox + "/exec", {{"command", "cat /data/f"}})["stdout"];
  };
  json src = Must("POST", "/v1/sandboxes", {{"name", "src"}, {"template", "busybox"}}, 201);
  Must("POST", "/v1/sandboxes/src/exec", {{"command", "mkdir /data && echo v1 > /data/f"}});

  // Files only: a caller asking for memory is told why not.
  EXPECT_NE(MustFail("POST", "/v1/sandboxes/src/snapshots", R"({"memory": true})", 501).find("memory"),
            std::string::npos);
  json snap = Must("POST", "/v1/sandboxes/src/snapshots", {{"name", "s1"}}, 201);
  EXPECT_EQ(snap["source"], src["id"]);
  EXPECT_EQ(snap["template"], "busybox");
  EXPECT_EQ(snap["memory"], false);
  EXPECT_GT(snap["size"].get<int64_t>(), 0);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes/src/snapshots", R"({"name": "s1"})", 409).find("s1"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes/src/snapshots", R"({"name": 5})", 400).find("name"), std::string::npos);
  MustFail("POST", "/v1/sandboxes/nope/snapshots", "{}", 404);
  std::string made = cli("snapshot create src --name s2");
  ASSERT_EQ(made.rfind("snap-", 0), 0u) << made;
  std::string listed = cli("snapshot ls");
  EXPECT_NE(listed.find("s1"), std::string::npos) << listed;
  EXPECT_NE(listed.find("s2"), std::string::npos) << listed;
  EXPECT_EQ(Must("GET", "/v1/snapshots/s1")["id"], snap["id"]);
  MustFail("GET", "/v1/snapshots/nope", "", 404);

  // Sandboxes from them: by field and by flag; a snapshot brings its base.
  json copy = Must("POST", "/v1/sandboxes", {{"name", "copy"}, {"snapshot", "s1"}}, 201);
  EXPECT_EQ(copy["snapshot"], snap["id"]);
  EXPECT_EQ(copy["template"], "busybox");
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"snapshot": "s1", "template": "busybox"})", 400).find("snapshot"),
            std::string::npos);
  MustFail("POST", "/v1/sandboxes", R"({"snapshot": "nope"})", 404);
  std::string copy2 = cli("create --from-snapshot s2 --name copy2");
  EXPECT_EQ(copy2, Must("GET", "/v1/sandboxes/copy2").value("id", "") + "\nrc=0\n");
  EXPECT_EQ(cat("copy"), "v1\n");
  EXPECT_EQ(cat("copy2"), "v1\n");

  // Rollback: the files as they were; a running sandbox runs again.
  Must("POST", "/v1/sandboxes/src/exec", {{"command", "echo v2 > /data/f"}});
  json rolled = Must("POST", "/v1/sandboxes/src/rollback", {{"snapshot", "s1"}});
  EXPECT_EQ(rolled["state"], "running");
  EXPECT_EQ(cat("src"), "v1\n");
  Must("POST", "/v1/sandboxes/src/exec", {{"command", "echo v3 > /data/f"}});
  EXPECT_EQ(cli("rollback src s2"), "src\nrc=0\n");
  EXPECT_EQ(cat("src"), "v1\n");
  MustFail("POST", "/v1/sandboxes/src/rollback", "{}", 400);
  MustFail("POST", "/v1/sandboxes/src/rollback", R"({"snapshot": "nope"})", 404);
  EXPECT_NE(MustFail("DELETE", "/v1/snapshots/s1", "", 409).find("copy"), std::string::npos) << "copy stacks on it";

  // A kill -9: the snapshots and what was made from them are all back.
  StopDaemon(SIGKILL);
  StartDaemon();
  EXPECT_EQ(Must("GET", "/v1/snapshots")["snapshots"].size(), 2u);
  EXPECT_EQ(cat("copy"), "v1\n");
  Must("POST", "/v1/sandboxes/copy/restart");  // booted again over the snapshot
  EXPECT_EQ(cat("copy"), "v1\n");

  Must("DELETE", "/v1/sandboxes/copy", nullptr, 204);
  Must("DELETE", "/v1/sandboxes/copy2", nullptr, 204);
  Must("DELETE", "/v1/snapshots/s1", nullptr, 204);
  MustFail("GET", "/v1/snapshots/s1", "", 404);
  EXPECT_EQ(cli("snapshot rm s2"), "s2\nrc=0\n");
  EXPECT_TRUE(Must("GET", "/v1/snapshots")["snapshots"].empty());
  EXPECT_TRUE(ListDir(state_->path() + "/state/snapshots").empty());
}

TEST_F(DaemonTest, AKillDuringASnapshotLeavesNoHalfSnapshotAndTheSandboxRunning) {
  Must("POST", "/v1/sandboxes", {{"name", "big"}, {"template", "busybox"}}, 201);
  json wrote = Must("POST", "/v1/sandboxes/big/exec",
                    {{"command", "head -c 536870912 /dev/zero > /big && echo done"}, {"timeout", 120}});
  ASSERT_EQ(wrote["stdout"], "done\n") << wrote.dump();
  const std::string staging = state_->path() + "/state/staging";
  std::thread snapshot([&] { (void)api().Send("POST", "/v1/sandboxes/big/snapshots", R"({"name": "half"})"); });
  bool copying = false;
  for (int i = 0; i < 5000 && !copying; ++i) {
    for (const auto& n : ListDir(staging)) copying = copying || n.rfind("snap-", 0) == 0;
    if (!copying) ::usleep(1000);
  }
  EXPECT_TRUE(copying) << "the snapshot's copy never showed in staging";
  StopDaemon(SIGKILL);
  snapshot.join();
  StartDaemon();
  MustFail("GET", "/v1/snapshots/half", "", 404);
  EXPECT_TRUE(Must("GET", "/v1/snapshots")["snapshots"].empty());
  EXPECT_TRUE(ListDir(state_->path() + "/state/snapshots").empty());
  for (const auto& n : ListDir(staging)) EXPECT_NE(n.rfind("snap-", 0), 0u) << n;
  // The sandbox the copy froze runs on: it was never paused.
  EXPECT_EQ(Must("GET", "/v1/sandboxes/big")["state"], "running");
  EXPECT_EQ(Must("POST", "/v1/sandboxes/big/exec", {{"command", "echo alive"}})["stdout"], "alive\n");
  json whole = Must("POST", "/v1/sandboxes/big/snapshots", {{"name", "whole"}}, 201);
  EXPECT_GE(whole["size"].get<int64_t>(), int64_t{512} << 20);
  Must("DELETE", "/v1/snapshots/whole", nullptr, 204);
}

}  // namespace
}  // namespace paddock::testing
