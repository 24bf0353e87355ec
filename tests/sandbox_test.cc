// The basics: a sandbox runs commands and reports what they did.
#include "sandbox_fixture.h"

namespace paddock::testing {
namespace {

TEST_F(SandboxTest, RunsCommandAndReturnsOutputAndExitCode) {
  SandboxInfo sb = Create();
  auto r = Exec(sb.id, {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.stdout_data, "out\n");
  EXPECT_EQ(r.stderr_data, "err\n");
  EXPECT_EQ(r.exit_code, 3);
}

TEST_F(SandboxTest, HostTemplateRunsHostPrograms) {
  SandboxInfo sb = Create();
  EXPECT_EQ(Sh(sb.id, "python3 -c 'print(6*7)'"), "42\n");
}

TEST_F(SandboxTest, BusyboxTemplateHasNoHostUsr) {
  SandboxSpec spec;
  spec.template_name = "busybox";
  SandboxInfo sb = Create(spec);
  EXPECT_EQ(Sh(sb.id, "echo hi; test -e /usr/bin/python3 || echo no-python"), "hi\nno-python\n");
}

// Any name but the built-ins is an image reference; one whose registry does
// not answer (nothing listens on 127.0.0.1:9) fails naming that registry,
// and leaves nothing behind. Tests never reach real registries.
TEST_F(SandboxTest, TemplateFromAnUnreachableRegistryFailsNamingIt) {
  SandboxSpec spec;
  spec.template_name = "127.0.0.1:9/nope:v1";
  auto r = manager_->Create(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("127.0.0.1:9"), std::string::npos) << r.status().ToString();
  spec.template_name = "Bad Name";
  r = manager_->Create(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(manager_->List().empty());
}

TEST_F(SandboxTest, NamesAreUniqueAndValidated) {
  SandboxSpec spec;
  spec.name = "alpha";
  SandboxInfo a = Create(spec);
  EXPECT_EQ(a.name, "alpha");
  auto dup = manager_->Create(spec);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  spec.name = "../etc";
  auto bad = manager_->Create(spec);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(manager_->Get("alpha").ok());
}

TEST_F(SandboxTest, MissingExecutableIsAClearError) {
  SandboxInfo sb = Create();
  agent::ExecOptions opts;
  opts.argv = {"no-such-program"};
  auto r = manager_->Exec(sb.id, opts);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("no-such-program"), std::string::npos);
}

// A child that cannot reach exec reports why through its close-on-exec
// pipe, and init (suspended while the child shares its memory) goes on.
TEST_F(SandboxTest, AChildThatCannotExecSaysWhyAndInitGoesOn) {
  SandboxInfo sb = Create();
  agent::ExecOptions opts;
  opts.argv = {"/bin/true"};
  opts.cwd = "/no/such/dir";
  auto r = manager_->Exec(sb.id, opts);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("chdir to cwd '/no/such/dir'"), std::string::npos)
      << r.status().ToString();
  Sh(sb.id, "printf 'not a program' > /tmp/x; chmod +x /tmp/x");
  opts.cwd = "/";
  opts.argv = {"/tmp/x"};
  r = manager_->Exec(sb.id, opts);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("exec /tmp/x"), std::string::npos) << r.status().ToString();
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(Exec(sb.id, {"/bin/echo", std::to_string(i)}).stdout_data, std::to_string(i) + "\n");
}

TEST_F(SandboxTest, EnvCwdAndUser) {
  SandboxSpec spec;
  spec.env = {{"FROM_SANDBOX", "s"}, {"BOTH", "sandbox"}};
  SandboxInfo sb = Create(spec);
  agent::ExecOptions opts;
  opts.argv = {"/bin/sh", "-c", "echo $FROM_SANDBOX $BOTH $(pwd) $(id -u) $HOME"};
  opts.env = {{"BOTH", "exec"}};
  opts.cwd = "/tmp";
  opts.user = "user";
  auto r = manager_->Exec(sb.id, opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_data, "s exec /tmp 1000 /home/user\n");
  auto client = manager_->Connect(sb.id);
  ASSERT_TRUE(client.ok());
  auto spawned = client->Call({{"op", "spawn"}, {"argv", {"/bin/sh", "-c", "id -u; id -g"}},
                               {"user", 1000}, {"group", "tty"}});
  ASSERT_TRUE(spawned.ok()) << spawned.status().ToString();
  std::string out;
  for (;;) {
    auto f = client->Read(5000);
    ASSERT_TRUE(f.ok());
    if (f->header.value("event", "") == "output") out += f->payload;
    if (f->header.value("event", "") == "exit") break;
  }
  EXPECT_EQ(out, "1000\n5\n");
}

TEST_F(SandboxTest, StdinIsDelivered) {
  SandboxInfo sb = Create();
  agent::ExecOptions opts;
  opts.argv = {"/bin/cat"};
  opts.has_stdin = true;
  opts.stdin_data = std::string(300000, 'x');
  auto r = manager_->Exec(sb.id, opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_data.size(), 300000u);
}

TEST_F(SandboxTest, ExecTimeoutKillsTheProcess) {
  SandboxInfo sb = Create();
  auto r = Exec(sb.id, {"/bin/sleep", "30"}, 200);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, 9);
}

}  // namespace
}  // namespace paddock::testing
