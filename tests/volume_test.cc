// Volumes end to end: named folders shared by sandboxes, mounted read-write
// or read-only, kept past the sandboxes and restarts, their files' owners
// as inside whatever each sandbox's id range.
#include <sys/stat.h>

#include "daemon_fixture.h"

namespace paddock::testing {
namespace {

std::string Out(const json& r) { return r.value("stdout", "") + r.value("stderr", ""); }

class VolumeTest : public DaemonTest {
 protected:
  json Exec(const std::string& id, const std::string& cmd) {
    return Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", cmd}});
  }
};

TEST_F(VolumeTest, SharedReadOnlyOrNotAndKeptPastItsSandboxes) {
  json vol = Must("POST", "/v1/volumes", {{"name", "shared"}}, 201);
  EXPECT_EQ(vol["name"], "shared");
  json a = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"volumes", {"shared:/data"}}}, 201);
  json b = Must("POST", "/v1/sandboxes",
                {{"template", "busybox"}, {"volumes", {{{"name", "shared"}, {"path", "/mnt/in/data"}, {"read_only", true}}}}},
                201);
  std::string ida = a["id"], idb = b["id"];
  EXPECT_EQ(a["volumes"][0]["path"], "/data");
  json wrote = Exec(ida, "echo hello > /data/f && mkdir /data/sub && echo x > /data/sub/y && chown 1000:1000 /data/sub/y");
  EXPECT_EQ(wrote.value("exit_code", -1), 0) << wrote.dump();

  // The other sandbox sees them, owners as inside though its id range differs.
  auto host_uid = [](const json& sb) {
    auto read = ReadFile("/proc/" + std::to_string(sb.value("init_pid", 0)) + "/status");
    std::string status = read.ok() ? *read : "";
    size_t at = status.find("Uid:");
    return at == std::string::npos ? std::string() : status.substr(at + 5, status.find('\t', at + 5) - at - 5);
  };
  EXPECT_NE(host_uid(a), host_uid(b));
  EXPECT_FALSE(host_uid(a).empty());
  EXPECT_EQ(Out(Exec(idb, "cat /mnt/in/data/f; stat -c '%u %g' /mnt/in/data/sub/y")), "hello\n1000 1000\n");
  json refused = Exec(idb, "echo no > /mnt/in/data/g");
  EXPECT_NE(refused.value("exit_code", 0), 0);
  EXPECT_NE(Out(refused).find("Read-only file system"), std::string::npos) << refused.dump();
  // On disk, the ids are the ones inside: root's file is owned by 0.
  struct stat st;
  std::string on_disk = state_->path() + "/state/sandboxes/.volumes/shared";
  ASSERT_EQ(::stat((on_disk + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  ASSERT_EQ(::stat((on_disk + "/sub/y").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);

  // Mounted: not removable, and saying by whom.
  std::string err = MustFail("DELETE", "/v1/volumes/shared", "", 409);
  EXPECT_NE(err.find("is in use: sandbox"), std::string::npos) << err;

  // Kept over a stop and start of the sandbox and a restart of paddockd.
  Must("POST", "/v1/sandboxes/" + ida + "/stop");
  Must("POST", "/v1/sandboxes/" + ida + "/start");
  EXPECT_EQ(Out(Exec(ida, "cat /data/f")), "hello\n");
  StopDaemon(SIGTERM);
  StartDaemon();
  EXPECT_EQ(Out(Exec(ida, "cat /data/sub/y")), "x\n");
  EXPECT_EQ(Must("GET", "/v1/volumes")["volumes"].size(), 1u);

  // Outlives both.
  Must("DELETE", "/v1/sandboxes/" + ida, nullptr, 204);
  Must("DELETE", "/v1/sandboxes/" + idb, nullptr, 204);
  json c = Must("POST", "/v1/sandboxes", {{"template", "host"}, {"volumes", {"shared:/work:rw"}}}, 201);
  EXPECT_EQ(Out(Exec(c["id"], "cat /work/f")), "hello\n");
  Must("DELETE", "/v1/sandboxes/" + c["id"].get<std::string>(), nullptr, 204);
  ASSERT_TRUE(WaitForTeardowns());
  Must("DELETE", "/v1/volumes/shared", nullptr, 204);
  MustFail("GET", "/v1/volumes/shared", "", 404);
  EXPECT_FALSE(PathExists(on_disk));
}

TEST_F(VolumeTest, BadVolumesAreNamed) {
  Must("POST", "/v1/volumes", {{"name", "v1"}}, 201);
  MustFail("POST", "/v1/volumes", R"({"name":"v1"})", 409);
  MustFail("POST", "/v1/volumes", R"({"name":"../x"})", 400);
  MustFail("POST", "/v1/volumes", R"({})", 400);
  EXPECT_NE(MustFail("POST", "/v1/volumes", R"({"name":"capped","disk":"1g"})", 501).find("--disk-pool"),
            std::string::npos);
  auto create = [&](const json& volumes, int status) {
    return MustFail("POST", "/v1/sandboxes", json{{"template", "busybox"}, {"volumes", volumes}}.dump(), status);
  };
  EXPECT_NE(create({"nope:/data"}, 404).find("volume 'nope'"), std::string::npos);
  // Through E2B too: the template is there, the volume is what is missing.
  std::string e2b = MustFail("POST", "/v2/sandboxes",
                             json{{"templateID", "base"}, {"volumeMounts", {{{"name", "nope"}, {"path", "/data"}}}}}.dump(),
                             404);
  EXPECT_NE(e2b.find("volume 'nope'"), std::string::npos) << e2b;
  EXPECT_NE(create({"v1:relative"}, 400).find("clean absolute path"), std::string::npos);
  EXPECT_NE(create({"v1:/"}, 400).find("clean absolute path"), std::string::npos);
  EXPECT_NE(create({"v1:/a/../b"}, 400).find("clean absolute path"), std::string::npos);
  EXPECT_NE(create({"v1:/proc/x"}, 400).find("under /proc"), std::string::npos);
  EXPECT_NE(create({"v1:/a", "v1:/a"}, 400).find("two volumes at /a"), std::string::npos);
  EXPECT_NE(create({"justaname"}, 400).find("'volumes'"), std::string::npos);
  EXPECT_NE(create(json::object(), 400).find("'volumes'"), std::string::npos);
  EXPECT_EQ(Must("GET", "/v1/sandboxes")["sandboxes"].size(), 0u);
  Must("DELETE", "/v1/volumes/v1", nullptr, 204);
}

}  // namespace
}  // namespace paddock::testing

namespace paddock::testing {
namespace {

// Host folders from paddockd's allow list, mounted read-only.
class HostDirTest : public DaemonTest {
 protected:
  void SetUp() override {
    models_ = std::make_unique<TempDir>();
    ::chmod(models_->path().c_str(), 0755);
    ASSERT_TRUE(WriteFileAtomic(models_->path() + "/weights.bin", "w8s\n", 0644).ok());
    extra_args_ = {"--host-dir", "models=" + models_->path()};
    DaemonTest::SetUp();
  }
  std::unique_ptr<TempDir> models_;
};

TEST_F(HostDirTest, AnAllowedHostFolderIsMountedReadOnlyAndOthersAreRefused) {
  json sb = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"host_dirs", {"models:/models"}}}, 201);
  std::string id = sb["id"];
  EXPECT_EQ(sb["volumes"][0]["host"], true);
  EXPECT_EQ(sb["volumes"][0]["read_only"], true);
  json r = Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", "cat /models/weights.bin; echo x > /models/new"}});
  EXPECT_EQ(r.value("stdout", ""), "w8s\n");
  EXPECT_NE(r.value("stderr", "").find("Read-only file system"), std::string::npos) << r.dump();
  EXPECT_FALSE(PathExists(models_->path() + "/new"));
  // Read-only whatever the request says; names outside the list are refused.
  json rw = Must("POST", "/v1/sandboxes",
                 {{"template", "busybox"}, {"host_dirs", {{{"name", "models"}, {"path", "/m"}, {"read_only", false}}}}},
                 201);
  EXPECT_EQ(rw["volumes"][0]["read_only"], true);
  std::string err = MustFail("POST", "/v1/sandboxes", R"({"template":"busybox","host_dirs":["etc:/etc2"]})", 400);
  EXPECT_NE(err.find("--host-dir"), std::string::npos) << err;
  // Kept over a restart of the sandbox.
  Must("POST", "/v1/sandboxes/" + id + "/restart");
  EXPECT_EQ(Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", "cat /models/weights.bin"}}).value("stdout", ""),
            "w8s\n");
}

}  // namespace
}  // namespace paddock::testing

namespace paddock::testing {
namespace {

// A volume's files through the API, no sandbox needed; what a sandbox
// writes shows there and what the API writes shows in sandboxes.
TEST_F(VolumeTest, FilesReadAndWrittenWithoutASandbox) {
  Must("POST", "/v1/volumes", {{"name", "files"}}, 201);
  const std::string v = "/v1/volumes/files";
  EXPECT_NE(MustFail("PUT", v + "/file?path=/a/b.txt", "x", 404).find("/a"), std::string::npos);
  json dir = Must("POST", v + "/dir?path=/a&uid=1000&gid=1000&mode=488", nullptr, 201);  // 0750
  EXPECT_EQ(dir["type"], "directory");
  EXPECT_EQ(dir["mode"], 0750);
  auto sent = api().Send("PUT", v + "/file?path=/a/b.txt&uid=1000&gid=1000", "from the api\n");
  ASSERT_TRUE(sent.ok() && sent->status == 200) << (sent.ok() ? sent->body : sent.status().ToString());
  json put = sent->Json();
  EXPECT_EQ(put["size"], 13);
  EXPECT_EQ(put["uid"], 1000);
  auto got = api().Send("GET", v + "/file?path=/a/b.txt");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "from the api\n");

  json sb = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"volumes", {"files:/data"}}}, 201);
  std::string id = sb["id"];
  EXPECT_EQ(Out(Exec(id, "cat /data/a/b.txt; stat -c '%u %g %a' /data/a /data/a/b.txt")),
            "from the api\n1000 1000 750\n1000 1000 644\n");
  // 8 MiB written inside, read back whole through the API (streamed).
  json wrote = Exec(id, "head -c 8388608 /dev/urandom > /data/big && md5sum /data/big && ln -s /etc/passwd /data/link");
  ASSERT_EQ(wrote.value("exit_code", -1), 0) << wrote.dump();
  auto big = api().Send("GET", v + "/file?path=/big");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->body.size(), 8u << 20);
  {
    std::string path = state_->path() + "/big.copy";
    ASSERT_TRUE(WriteFileAtomic(path, big->body).ok());
    EXPECT_EQ(Shell("md5sum < " + path).substr(0, 32), Out(wrote).substr(0, 32));
  }
  json link = Must("GET", v + "/path?path=/link");
  EXPECT_EQ(link["type"], "symlink");
  EXPECT_EQ(link["target"], "/etc/passwd");
  EXPECT_NE(MustFail("GET", v + "/file?path=/link", "", 409).find("symlink"), std::string::npos);
  json listed = Must("GET", v + "/dir?path=/&depth=2");
  std::vector<std::string> paths;
  for (const auto& e : listed) paths.push_back(e["path"]);
  EXPECT_EQ(paths, (std::vector<std::string>{"/a", "/a/b.txt", "/big", "/link"}));
  json patched = Must("PATCH", v + "/path?path=/a/b.txt", {{"mode", 0600}});
  EXPECT_EQ(patched["mode"], 0600);
  EXPECT_EQ(Out(Exec(id, "stat -c %a /data/a/b.txt")), "600\n");
  // The CLI, both ways.
  std::string cli = "PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH;
  std::string local = state_->path() + "/local.txt";
  ASSERT_TRUE(WriteFileAtomic(local, "from the cli\n", 0640).ok());
  EXPECT_EQ(Shell(cli + " volume cp " + local + " files:/a/cli.txt 2>&1"), "");
  EXPECT_EQ(Shell(cli + " volume cp files:/a/cli.txt - 2>&1"), "from the cli\n");
  EXPECT_EQ(Out(Exec(id, "stat -c %a /data/a/cli.txt")), "640\n");
  EXPECT_NE(Shell(cli + " volume files files /a").find("/a/cli.txt"), std::string::npos);
  Must("DELETE", v + "/path?path=/a", nullptr, 204);
  EXPECT_EQ(Out(Exec(id, "ls /data")), "big\nlink\n");
  EXPECT_NE(MustFail("GET", v + "/path?path=/../etc", "", 400).find(".."), std::string::npos);
  EXPECT_NE(MustFail("GET", "/v1/volumes/none/path?path=/", "", 404).find("none"), std::string::npos);
  Must("DELETE", "/v1/sandboxes/" + id, nullptr, 204);
  ASSERT_TRUE(WaitForTeardowns());
  Must("DELETE", "/v1/volumes/files", nullptr, 204);
}

}  // namespace
}  // namespace paddock::testing
