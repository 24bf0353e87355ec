// Disk limits: a paddockd with a disk pool (a btrfs image on a loop device,
// made by the daemon itself under the test's state folder), sandboxes with
// and without a quota, and what survives stops and restarts.
#include <sys/stat.h>

#include "daemon_fixture.h"

namespace paddock::testing {
namespace {

class DiskTest : public DaemonTest {
 protected:
  void SetUp() override {
    extra_args_ = {"--disk-pool", "2G"};
    DaemonTest::SetUp();
  }

  json Exec(const std::string& id, const std::string& cmd) {
    return Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", cmd}, {"timeout", 120}});
  }

  // Writes up to `mb` MiB of zeros to `path` in the sandbox: dd's exit code
  // and output, and the file's size after.
  std::pair<int, std::string> Fill(const std::string& id, const std::string& path, int mb) {
    json r = Exec(id, "dd if=/dev/zero of=" + path + " bs=1M count=" + std::to_string(mb) + " 2>&1; echo rc=$?");
    std::string out = r.value("stdout", "");
    size_t at = out.rfind("rc=");
    int rc = at == std::string::npos ? -1 : std::atoi(out.c_str() + at + 3);
    return {rc, out};
  }

  int64_t SizeOf(const std::string& id, const std::string& path) {
    return std::atoll(Exec(id, "stat -c %s " + path).value("stdout", "0").c_str());
  }
};

constexpr int64_t kMiB = 1 << 20;

TEST_F(DiskTest, AWritePastTheQuotaFailsInThatSandboxOnly) {
  json limited = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"disk", "64m"}}, 201);
  json free = Must("POST", "/v1/sandboxes", {{"template", "busybox"}}, 201);
  std::string id = limited["id"];
  EXPECT_EQ(limited["disk"], 64 * kMiB);

  auto [rc, out] = Fill(id, "/big", 100);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("Disk quota exceeded"), std::string::npos) << out;
  int64_t size = SizeOf(id, "/big");
  EXPECT_GT(size, 56 * kMiB);
  EXPECT_LE(size, 64 * kMiB);
  json seen = Must("GET", "/v1/sandboxes/" + id);
  EXPECT_GE(seen.value("disk_used", int64_t{0}), size);
  EXPECT_LE(seen.value("disk_used", int64_t{0}), 64 * kMiB);

  // Another sandbox and the host write on.
  auto [free_rc, free_out] = Fill(free["id"], "/big", 100);
  EXPECT_EQ(free_rc, 0) << free_out;
  EXPECT_EQ(SizeOf(free["id"], "/big"), 100 * kMiB);
  std::string host_file = state_->path() + "/host.bin";
  ASSERT_TRUE(WriteFileAtomic(host_file, std::string(100 * kMiB, 'x'), 0600).ok());
  ::unlink(host_file.c_str());

  // Room again once the file goes; the limit holds over a stop and start
  // and over a restart of paddockd.
  Exec(id, "rm /big");
  auto [small_rc, small_out] = Fill(id, "/small", 10);
  EXPECT_EQ(small_rc, 0) << small_out;
  Must("POST", "/v1/sandboxes/" + id + "/stop");
  Must("POST", "/v1/sandboxes/" + id + "/start");
  EXPECT_NE(Fill(id, "/big", 100).first, 0);
  StopDaemon(SIGTERM);
  StartDaemon();
  EXPECT_EQ(Must("GET", "/v1/sandboxes/" + id)["disk"], 64 * kMiB);
  Exec(id, "rm -f /big /small");
  auto [again_rc, again_out] = Fill(id, "/big", 100);
  EXPECT_NE(again_rc, 0) << again_out;
  EXPECT_LE(SizeOf(id, "/big"), 64 * kMiB);
  EXPECT_EQ(SizeOf(free["id"], "/big"), 100 * kMiB) << "files on the pool survive the restart";

  // New limits on a restart (a user asked for that): the disk cap grows.
  json restarted = Must("POST", "/v1/sandboxes/" + id + "/restart", {{"disk", "128m"}, {"memory", "256m"}});
  EXPECT_EQ(restarted["disk"], 128 * kMiB);
  EXPECT_EQ(restarted["memory"], 256 * kMiB);
  Exec(id, "rm -f /big");
  auto [grown_rc, grown_out] = Fill(id, "/big", 100);
  EXPECT_EQ(grown_rc, 0) << grown_out;
  MustFail("POST", "/v1/sandboxes/" + id + "/restart", R"({"disk":"1k"})", 400);
  EXPECT_EQ(Must("GET", "/v1/sandboxes/" + id)["state"], "running") << "a refused restart does not stop it";

  // Bad limits are named.
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"template":"busybox","disk":"12k"})", 400).find("at least 1 MiB"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"template":"busybox","disk":"lots"})", 400).find("'disk'"),
            std::string::npos);
}

TEST_F(DiskTest, AForkKeepsItsSourcesLimit) {
  json src = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"disk", "32m"}}, 201);
  Fill(src["id"], "/data", 8);
  json fork = Must("POST", "/sandboxes/" + src["id"].get<std::string>() + "/fork", json::object(), 201);
  std::string id = fork.at(0).at("sandbox").value("sandboxID", "");
  EXPECT_EQ(Must("GET", "/v1/sandboxes/" + id)["disk"], 32 * kMiB);
  EXPECT_EQ(SizeOf(id, "/data"), 8 * kMiB);
  // The copy shares its blocks with the source (a reflink): btrfs counts
  // them against the fork's limit from the next commit on (at most 30 s).
  Exec(id, "sync");
  auto [rc, out] = Fill(id, "/more", 64);
  EXPECT_NE(rc, 0) << out;
  EXPECT_LE(SizeOf(id, "/more"), 24 * kMiB);
}

TEST_F(DiskTest, AVolumeHasALimitOfItsOwn) {
  json vol = Must("POST", "/v1/volumes", {{"name", "capped"}, {"disk", "16m"}}, 201);
  EXPECT_EQ(vol["disk"], 16 * kMiB);
  json sb = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"volumes", {"capped:/data"}}}, 201);
  auto [rc, out] = Fill(sb["id"], "/data/big", 32);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("Disk quota exceeded"), std::string::npos) << out;
  EXPECT_LE(SizeOf(sb["id"], "/data/big"), 16 * kMiB);
  EXPECT_GT(Must("GET", "/v1/volumes/capped").value("disk_used", int64_t{0}), 8 * kMiB);
  auto [root_rc, root_out] = Fill(sb["id"], "/outside", 32);  // its own layer has no cap
  EXPECT_EQ(root_rc, 0) << root_out;
  Must("DELETE", "/v1/sandboxes/" + sb["id"].get<std::string>(), nullptr, 204);
  ASSERT_TRUE(WaitForTeardowns());
  Must("DELETE", "/v1/volumes/capped", nullptr, 204);
}

TEST_F(DaemonTest, ADiskLimitWithoutThePoolIsRefusedSayingWhy) {
  std::string err = MustFail("POST", "/v1/sandboxes", R"({"template":"busybox","disk":"64m"})", 501);
  EXPECT_NE(err.find("--disk-pool"), std::string::npos) << err;
  EXPECT_EQ(Must("GET", "/v1/sandboxes")["sandboxes"].size(), 0u);
}

}  // namespace
}  // namespace paddock::testing
