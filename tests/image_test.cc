// Images end to end: layouts built here, pushed with skopeo to a real
// registry (Debian's docker-registry) on 127.0.0.1, pulled by a real
// paddockd, and run as sandboxes.
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include "daemon_fixture.h"
#include "image/digest.h"
#include "oci_kit.h"

namespace paddock::testing {
namespace {

// The base every test image stacks: busybox, so the sandbox has a shell, a
// user of its own, and files for the layers above to hide.
LayerSpec BaseLayer() {
  auto busybox = ReadFile("/bin/busybox");
  LayerSpec l;
  l.entries = {
      {"bin/", 'd', "", 0755},
      {"bin/busybox", 'f', busybox.ok() ? *busybox : "", 0755},
      {"bin/sh", 'l', "busybox", 0777},
      {"bin/echo", 'l', "busybox", 0777},
      {"etc/", 'd', "", 0755},
      {"etc/passwd", 'f', "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/home/app:/bin/sh\n"},
      {"etc/group", 'f', "root:x:0:\napp:x:2345:\n"},
      {"home/", 'd', "", 0755},
      {"home/app/", 'd', "", 0750, 1234, 2345},
      {"home/app/own.txt", 'f', "mine\n", 0600, 1234, 2345},
      {"data/", 'd', "", 0755},
      {"data/keep.txt", 'f', "kept\n"},
      {"data/gone.txt", 'f', "should be hidden\n"},
      {"data/hard", 'h', "data/keep.txt"},
      {"data/link", 'l', "keep.txt", 0777},
      {"data/note.txt", 'f', "with an xattr\n", 0640, 0, 0, {{"user.note", "hello"}}},
      {"data/fifo", 'p', "", 0600},
      {"opq/", 'd', "", 0755},
      {"opq/a.txt", 'f', "lower a\n"},
      {"opq/sub/", 'd', "", 0700},
      {"opq/sub/b.txt", 'f', "lower b\n"},
      {"forged/", 'd', "", 0755},
      {"forged/lower.txt", 'f', "still here\n"},
  };
  return l;
}

// Whiteouts placed after their siblings, and an overlay xattr a hostile
// layer tries to forge (it must be dropped, not obeyed).
LayerSpec WhiteoutLayer() {
  LayerSpec l;
  l.compression = LayerCompression::kNone;
  l.entries = {
      {"data/", 'd', "", 0755},
      {"data/new.txt", 'f', "new\n"},
      {"data/.wh.gone.txt", 'f', ""},
      {"opq/", 'd', "", 0755},
      {"opq/c.txt", 'f', "upper c\n"},
      {"opq/.wh..wh..opq", 'f', ""},
      {"forged/", 'd', "", 0755, 0, 0, {{"trusted.overlay.opaque", "y"}}},
  };
  return l;
}

// Bytes that do not compress, so a layer of them is as large as they are.
std::string Noise(size_t n) {
  std::mt19937 rng(42);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

// A layout at `layout` of the base and a layer holding `noise` as /big.bin, tagged v1.
void NoiseLayout(const std::string& layout, const std::string& noise) {
  ImageSpec spec;
  LayerSpec big;
  big.entries = {{"big.bin", 'f', noise}};
  spec.layers = {BaseLayer(), big};
  TagLayout(layout, "v1", AddImage(layout, spec));
}

nlohmann::json RunConfig() {
  return {{"Env", {"PATH=/bin", "GREETING=hello"}},
          {"Cmd", {"sh", "-c", "echo $GREETING from $(pwd) as $(id -u):$(id -g)"}},
          {"WorkingDir", "/work/dir"},
          {"User", "app"}};
}

// Every entry under `root` (the named top-level paths only), one line each:
// path, type, mode, owner relative to `base_uid`, size, content digest, link.
std::vector<std::string> Listing(const std::string& root, uid_t base_uid) {
  std::vector<std::string> out;
  std::function<void(const std::string&)> walk = [&](const std::string& rel) {
    std::string path = root + "/" + rel;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return;
    std::string line = rel + " " + std::to_string(st.st_mode) + " " +
                       std::to_string(st.st_uid - base_uid) + ":" +
                       std::to_string(st.st_gid - base_uid);
    if (S_ISREG(st.st_mode)) {
      auto data = ReadFile(path);
      line += " " + std::to_string(st.st_size) + " " +
              (data.ok() ? image::Sha256::Of(*data) : "unreadable");
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(path.c_str(), target, sizeof target);
      line += " -> " + std::string(target, n > 0 ? static_cast<size_t>(n) : 0);
    }
    out.push_back(line);
    if (S_ISDIR(st.st_mode))
      for (const auto& name : ListDir(path)) walk(rel + "/" + name);
  };
  for (const char* top : {"bin", "data", "opq", "forged", "home", "etc/passwd", "etc/group"})
    walk(top);
  std::sort(out.begin(), out.end());
  return out;
}

class ImageTest : public DaemonTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "image tests run as root";
    for (const char* tool : {"/usr/bin/docker-registry", "/usr/bin/skopeo", "/usr/bin/umoci"})
      ASSERT_TRUE(PathExists(tool)) << tool << " is missing (scripts/install-deps.sh installs it)";
    work_ = std::make_unique<TempDir>();
    registry_ = std::make_unique<Registry>(work_->path() + "/registry");
    DaemonTest::SetUp();
  }
  void TearDown() override {
    DaemonTest::TearDown();
    registry_.reset();
    work_.reset();
  }

  // Builds `image` into a layout and pushes it as repo:tag; returns the ref.
  std::string Push(const ImageSpec& image, const std::string& repo_tag) {
    std::string layout = work_->path() + "/layout";
    TagLayout(layout, repo_tag, AddImage(layout, image));
    EXPECT_EQ(registry_->Push(layout, repo_tag, repo_tag), "");
    return registry_->host() + "/" + repo_tag;
  }

  // The Debian root of DebianRootfs() as an image in the test registry; its ref.
  std::string PushDebian(const std::string& rootfs) {
    ImageSpec spec;
    LayerSpec root;
    root.tar_file = rootfs;
    root.compression = LayerCompression::kNone;
    spec.layers = {root};
    spec.config = {
        {"Env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}},
        {"Cmd", {"python3", "-c", "print(6*7)"}}};
    return Push(spec, "debian/python:bookworm");
  }

  std::string Sh(const std::string& id, const std::string& cmd) {
    json r = Must("POST", "/v1/sandboxes/" + id + "/exec", {{"cmd", {"sh", "-c", cmd}}});
    EXPECT_EQ(r.value("exit_code", -1), 0) << cmd << ": " << r.dump();
    return r.value("stdout", "");
  }

  std::unique_ptr<TempDir> work_;
  std::unique_ptr<Registry> registry_;
};

TEST_F(ImageTest, PulledLayersMatchUmociAndRunWithTheImageConfig) {
  ImageSpec spec;
  spec.layers = {BaseLayer(), WhiteoutLayer()};
  spec.config = RunConfig();
  std::string ref = Push(spec, "test/layers:v1");

  json pulled = Must("POST", "/v1/images/pull", {{"ref", ref}});
  EXPECT_EQ(pulled.value("layers", 0), 2);
  EXPECT_EQ(pulled["refs"], json::array({ref}));
  json listed = Must("GET", "/v1/images");
  ASSERT_EQ(listed["images"].size(), 1u);
  EXPECT_EQ(listed["images"][0]["id"], pulled["id"]);
  json inspected = Must("GET", "/v1/images/" + ref);
  EXPECT_EQ(inspected["config"]["working_dir"], "/work/dir");
  EXPECT_EQ(inspected["layer_list"].size(), 2u);
  struct stat store_st;  // layers hold what images ship (setuid binaries too): root's alone
  ASSERT_EQ(::stat((state_->path() + "/state/images").c_str(), &store_st), 0);
  EXPECT_EQ(store_st.st_mode & 07777, 0700u);

  json sb = Must("POST", "/v1/sandboxes", {{"template", ref}}, 201);
  std::string id = sb["id"];
  EXPECT_EQ(sb["template"], ref);
  EXPECT_EQ(sb["image_id"], pulled["id"]);
  // The image's User, Env and WorkingDir (created, as it was missing).
  EXPECT_EQ(Sh(id, "id -u; id -g; pwd; echo $GREETING"), "1234\n2345\n/work/dir\nhello\n");
  EXPECT_EQ(Sh(id, "cat /home/app/own.txt"), "mine\n");
  // Whiteouts and the opaque folder, though they came after their siblings.
  EXPECT_EQ(Sh(id, "test -e /data/gone.txt || echo hidden; cat /data/new.txt /data/keep.txt"),
            "hidden\nnew\nkept\n");
  EXPECT_EQ(Sh(id, "ls /opq"), "c.txt\n");
  // The forged opaque xattr was dropped: the lower layer still shows through.
  EXPECT_EQ(Sh(id, "cat /forged/lower.txt"), "still here\n");

  // Compared with umoci's unpack of the same layout, entry by entry.
  std::string bundle = work_->path() + "/bundle";
  auto [rc, out] =
      RunProgram({"umoci", "unpack", "--image", work_->path() + "/layout:test/layers:v1", bundle});
  ASSERT_EQ(rc, 0) << out;
  std::string root = "/proc/" + std::to_string(sb["init_pid"].get<int>()) + "/root";
  struct stat st;
  ASSERT_EQ(::stat(root.c_str(), &st), 0);
  std::vector<std::string> ours = Listing(root, st.st_uid), umoci = Listing(bundle + "/rootfs", 0);
  EXPECT_EQ(ours, umoci);
  EXPECT_GT(ours.size(), 15u);
  char value[16] = {};
  EXPECT_EQ(::lgetxattr((root + "/data/note.txt").c_str(), "user.note", value, sizeof value), 5);
  EXPECT_STREQ(value, "hello");

  // The image is now kept warm: shells with its layers, for the next creates.
  auto warm_shells = [&] {
    auto m = api().Send("GET", "/metrics");
    std::string text = m.ok() ? m->body : "";
    size_t at = text.find("\npaddock_warm_shells ");
    return at == std::string::npos ? -1 : std::atoi(text.c_str() + at + 21);
  };
  for (int i = 0; i < 1000 && warm_shells() < 12; ++i) ::usleep(10000);
  EXPECT_EQ(warm_shells(), 12) << "4 each for host, busybox and the image";
  json second = Must("POST", "/v1/sandboxes", {{"template", ref}}, 201);
  EXPECT_EQ(Sh(second["id"], "cat /data/new.txt; pwd"), "new\n/work/dir\n");
  Must("DELETE", "/v1/sandboxes/" + second["id"].get<std::string>(), nullptr, 204);

  // An image in use cannot be removed; once its sandbox is gone it can.
  EXPECT_NE(MustFail("DELETE", "/v1/images/" + ref, "", 409).find("used by a sandbox"),
            std::string::npos);
  // Nor while a snapshot stacks over it, even with no sandbox left; a
  // sandbox from the snapshot has the image's files and config and the
  // snapshot's own.
  Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", "echo snap > /data/snap.txt"}, {"user", "root"}});
  json snap = Must("POST", "/v1/sandboxes/" + id + "/snapshots", {{"name", "over-image"}}, 201);
  EXPECT_EQ(snap["image_id"], sb["image_id"]);
  Must("DELETE", "/v1/sandboxes/" + id, nullptr, 204);
  EXPECT_NE(MustFail("DELETE", "/v1/images/" + ref, "", 409).find("snapshot"), std::string::npos);
  json from = Must("POST", "/v1/sandboxes", {{"snapshot", "over-image"}}, 201);
  EXPECT_EQ(from["template"], sb["template"]);
  EXPECT_EQ(Sh(from["id"], "cat /data/new.txt /data/snap.txt; pwd"), "new\nsnap\n/work/dir\n");
  Must("DELETE", "/v1/sandboxes/" + from["id"].get<std::string>(), nullptr, 204);
  Must("DELETE", "/v1/snapshots/over-image", nullptr, 204);
  Must("DELETE", "/v1/images/" + ref, nullptr, 204);
  EXPECT_EQ(Must("GET", "/v1/images")["images"].size(), 0u);
  EXPECT_TRUE(ListDir(state_->path() + "/state/images/layers").empty());
  EXPECT_LE(warm_shells(), 8) << "the image's warm shells went with it";
}

TEST_F(ImageTest, RunWithNoCommandRunsTheImageCmdThroughTheCli) {
  ImageSpec spec;
  spec.layers = {BaseLayer()};
  spec.config = RunConfig();
  std::string ref = Push(spec, "test/cmd:v1");
  // Not pulled yet: `run` pulls it first.
  auto [rc, out] =
      RunProgram({"env", "PADDOCK_SOCKET=" + socket_, PADDOCK_CLI_PATH, "run", "--template", ref});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "hello from /work/dir as 1234:2345\n");
  // With a command, the command replaces Cmd.
  auto [rc2, out2] = RunProgram({"env", "PADDOCK_SOCKET=" + socket_, PADDOCK_CLI_PATH, "run",
                                 "--template", ref, "--", "echo", "given"});
  EXPECT_EQ(rc2, 0) << out2;
  EXPECT_EQ(out2, "given\n");
  auto [rc3, listing] =
      RunProgram({"env", "PADDOCK_SOCKET=" + socket_, PADDOCK_CLI_PATH, "image", "ls"});
  EXPECT_EQ(rc3, 0);
  EXPECT_NE(listing.find(ref), std::string::npos) << listing;
}

// `paddock image pull` off a terminal: a line per layer state, then the image.
TEST_F(ImageTest, CliPullShowsEachLayersProgress) {
  ImageSpec spec;
  spec.layers = {BaseLayer(), WhiteoutLayer()};
  std::string ref = Push(spec, "test/progress:v1");
  auto pull = [&] {
    return RunProgram({"env", "PADDOCK_SOCKET=" + socket_, PADDOCK_CLI_PATH, "image", "pull", ref});
  };
  auto [rc, out] = pull();
  ASSERT_EQ(rc, 0) << out;
  json m = json::parse(ReadFile(work_->path() + "/layout/index.json").value())["manifests"].back();
  json manifest = json::parse(ReadFile(work_->path() + "/layout/blobs/sha256/" +
                                       image::DigestHex(m["digest"].get<std::string>()))
                                  .value());
  for (const auto& layer : manifest["layers"]) {
    std::string short_id = image::DigestHex(layer["digest"].get<std::string>()).substr(0, 12);
    for (const char* state : {"waiting", "downloading", "extracting", "done"})
      EXPECT_NE(out.find(short_id + " " + state), std::string::npos)
          << state << " of " << short_id << ":\n"
          << out;
  }
  json img = Must("GET", "/v1/images/" + ref);
  EXPECT_NE(out.find(ref + ": " + img["id"].get<std::string>() + " (2 layers, "), std::string::npos)
      << out;
  auto [rc2, again] = pull();  // nothing to fetch: every layer is cached
  EXPECT_EQ(rc2, 0) << again;
  EXPECT_NE(again.find(" cached"), std::string::npos) << again;
  EXPECT_EQ(again.find("downloading"), std::string::npos) << again;
  auto [rc3, missing] = RunProgram({"env", "PADDOCK_SOCKET=" + socket_, PADDOCK_CLI_PATH, "image",
                                    "pull", registry_->host() + "/test/none:v1"});
  EXPECT_EQ(rc3, 1);
  EXPECT_NE(missing.find("has no manifest"), std::string::npos) << missing;
}

TEST_F(ImageTest, ZstdLayersAndAnIndexWithAnAttestationPickThisHost) {
  std::string layout = work_->path() + "/layout";
  ImageSpec mine;
  LayerSpec arch;
  arch.compression = LayerCompression::kZstd;
  arch.entries = {{"arch", 'f', HostArchitecture() + "\n"}};
  mine.layers = {BaseLayer(), arch};
  ImageSpec other = mine;
  other.architecture = HostArchitecture() == "arm64" ? "amd64" : "arm64";
  other.layers[1].entries = {{"arch", 'f', "wrong\n"}};
  ImageSpec attestation;
  attestation.os = attestation.architecture = "unknown";
  attestation.layers = {{{{"statement.json", 'f', "{}"}}, LayerCompression::kNone}};
  json index = AddIndex(
      layout, {AddImage(layout, other), AddImage(layout, attestation), AddImage(layout, mine)});
  TagLayout(layout, "multi", index);
  ASSERT_EQ(registry_->Push(layout, "multi", "test/multi:v1"), "");
  std::string ref = registry_->host() + "/test/multi:v1";

  json sb = Must("POST", "/v1/sandboxes", {{"template", ref}}, 201);
  EXPECT_EQ(Sh(sb["id"], "cat /arch"), HostArchitecture() + "\n");
  json img = Must("GET", "/v1/images/" + ref);
  EXPECT_EQ(img["config"]["architecture"], HostArchitecture());
  EXPECT_EQ(img["layer_list"][1]["media_type"], "application/vnd.oci.image.layer.v1.tar+zstd");
}

TEST_F(ImageTest, TwentyConcurrentCreatesOfAMissingImagePullItOnce) {
  ImageSpec spec;
  spec.layers = {BaseLayer(), WhiteoutLayer()};
  spec.config = RunConfig();
  std::string ref = Push(spec, "test/burst:v1");
  std::string log_before = registry_->Log();
  int manifests_before = registry_->CountRequests("GET /v2/test/burst/manifests/");
  int blobs_before = registry_->CountRequests("GET /v2/test/burst/blobs/");

  constexpr int kCreates = 20;
  std::vector<std::string> ids(kCreates);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCreates; ++i)
    threads.emplace_back([&, i] {
      auto r = api().Send("POST", "/v1/sandboxes", json{{"template", ref}}.dump());
      if (r.ok() && r->status == 201)
        ids[i] = r->Json()["id"];
      else
        ADD_FAILURE() << (r.ok() ? r->body : r.status().ToString());
    });
  for (auto& t : threads) t.join();
  for (const auto& id : ids) {
    if (!id.empty()) {
      EXPECT_EQ(Sh(id, "cat /data/new.txt"), "new\n");
    }
  }
  EXPECT_EQ(registry_->CountRequests("GET /v2/test/burst/manifests/") - manifests_before, 1);
  std::string metrics = api().Send("GET", "/metrics")->body;
  EXPECT_NE(metrics.find("\npaddock_registry_requests_total 4\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\npaddock_images 1\n"), std::string::npos) << metrics;
  // One config and two layer blobs, each fetched once.
  EXPECT_EQ(registry_->CountRequests("GET /v2/test/burst/blobs/") - blobs_before, 3);
}

TEST_F(ImageTest, BadReferencesUnknownImagesAndCorruptBlobsStoreNothing) {
  EXPECT_NE(
      MustFail("POST", "/v1/images/pull", R"({"ref":"Not/Valid:ref"})", 400).find("Not/Valid"),
      std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/images/pull", R"({})", 400).find("ref"), std::string::npos);
  std::string missing = registry_->host() + "/test/missing:v1";
  std::string err = MustFail("POST", "/v1/images/pull", json{{"ref", missing}}.dump(), 404);
  EXPECT_NE(err.find("test/missing"), std::string::npos) << err;
  EXPECT_NE(err.find("MANIFEST_UNKNOWN"), std::string::npos) << err;
  err = MustFail("POST", "/v1/sandboxes", json{{"template", missing}}.dump(), 404);
  EXPECT_NE(err.find("test/missing"), std::string::npos) << err;
  // E2B's own words for a template it cannot find.
  err = MustFail("POST", "/v2/sandboxes", json{{"templateID", missing}}.dump(), 404);
  EXPECT_NE(err.find("template '" + missing + "' not found"), std::string::npos) << err;
  EXPECT_NE(MustFail("GET", "/v1/images/" + missing, "", 404).find("not on this host"),
            std::string::npos);

  // A registry serving a layer whose bytes do not match its digest.
  ImageSpec spec;
  spec.layers = {BaseLayer(), WhiteoutLayer()};
  std::string ref = Push(spec, "test/corrupt:v1");
  json manifest =
      json::parse(ReadFile(work_->path() + "/layout/index.json").value())["manifests"].back();
  json m = json::parse(ReadFile(work_->path() + "/layout/blobs/sha256/" +
                                image::DigestHex(manifest["digest"].get<std::string>()))
                           .value());
  std::string layer = m["layers"][1]["digest"];
  std::string hex = image::DigestHex(layer);
  std::string data_path = registry_->storage() + "/docker/registry/v2/blobs/sha256/" +
                          hex.substr(0, 2) + "/" + hex + "/data";
  auto data = ReadFile(data_path);
  ASSERT_TRUE(data.ok()) << data_path;
  std::string tampered = *data;
  tampered[tampered.size() / 2] ^= 0x20;
  ASSERT_TRUE(WriteFileAtomic(data_path, tampered).ok());
  err = MustFail("POST", "/v1/images/pull", json{{"ref", ref}}.dump(), 502);
  EXPECT_NE(err.find("does not match its digest"), std::string::npos) << err;
  EXPECT_EQ(Must("GET", "/v1/images")["images"].size(), 0u);
  EXPECT_TRUE(ListDir(state_->path() + "/state/images/layers").empty());
  EXPECT_TRUE(ListDir(state_->path() + "/state/images/staging").empty());
  EXPECT_TRUE(ListDir(state_->path() + "/state/images/blobs").empty());
}

// Token auth, as Docker Hub and most registries do it: the real registry
// in token mode, with a token service the test runs. Tokens are cached;
// one the registry no longer takes is fetched anew once; a scope the
// service refuses is a 401 naming the registry.
TEST_F(ImageTest, BearerTokensAreCachedRefreshedOnA401AndRefusalsNamed) {
  // The registry takes a JWT until 60 s past its exp: these expire 55 s
  // before they are issued, so they serve for 5 s, though the service
  // claims 300. Only a 401 can tell the client.
  TestServer tokens(
      "token", {"--port", "{port0}", "--cert-out", work_->path() + "/token.crt", "--ttl", "-55"}, 1,
      work_->path() + "/token.log");
  std::string auth =
      "auth:\n  token:\n    realm: http://127.0.0.1:" + std::to_string(tokens.port()) +
      "/token\n    service: paddock-test\n    issuer: paddock-test-issuer\n    rootcertbundle: " +
      work_->path() + "/token.crt\n";
  Registry secured(work_->path() + "/secured", auth);
  std::string layout = work_->path() + "/auth-layout";
  ImageSpec spec;
  spec.layers = {BaseLayer()};
  TagLayout(layout, "v1", AddImage(layout, spec));
  ASSERT_EQ(secured.Push(layout, "v1", "test/auth:v1", "alice:wonderland"), "");
  ASSERT_EQ(secured.Push(layout, "v1", "private/secret:v1", "alice:wonderland"), "");
  std::string ref = secured.host() + "/test/auth:v1";
  const std::string anonymous = "token user=- scope=repository:test/auth:pull";

  Must("POST", "/v1/images/pull", {{"ref", ref}});
  EXPECT_EQ(tokens.Count(anonymous), 1) << tokens.Log();
  Must("POST", "/v1/images/pull", {{"ref", ref}});  // the cached token serves again
  EXPECT_EQ(tokens.Count(anonymous), 1) << tokens.Log();
  ::sleep(6);  // the registry now refuses that token
  Must("POST", "/v1/images/pull", {{"ref", ref}});
  EXPECT_EQ(tokens.Count(anonymous), 2) << tokens.Log();
  json sb = Must("POST", "/v1/sandboxes", {{"template", ref}}, 201);
  EXPECT_EQ(Sh(sb["id"], "cat /data/keep.txt"), "kept\n");

  std::string secret = secured.host() + "/private/secret:v1";
  std::string err = MustFail("POST", "/v1/images/pull", json{{"ref", secret}}.dump(), 401);
  EXPECT_NE(err.find("unauthenticated: registry " + secured.host()), std::string::npos) << err;
  EXPECT_EQ(Must("GET", "/v1/images")["images"].size(), 1u);
  // A login the token service refuses is not kept; one it takes opens the repository.
  err = MustFail(
      "POST", "/v1/registries/login",
      json{{"registry", secured.host()}, {"username", "alice"}, {"password", "wrong"}}.dump(), 401);
  EXPECT_NE(err.find(secured.host()), std::string::npos) << err;
  EXPECT_EQ(Must("GET", "/v1/registries")["logins"].size(), 0u);
  Must("POST", "/v1/registries/login",
       {{"registry", secured.host()}, {"username", "alice"}, {"password", "wonderland"}});
  json sb2 = Must("POST", "/v1/sandboxes", {{"template", secret}}, 201);
  EXPECT_EQ(Sh(sb2["id"], "cat /data/keep.txt"), "kept\n");
  EXPECT_GE(tokens.Count("token user=alice scope=repository:private/secret:pull"), 1)
      << tokens.Log();
}

// Basic auth (htpasswd), logins through the CLI, kept 0600 and used by
// creates; a pull may also bring its own credentials.
TEST_F(ImageTest, BasicAuthLoginsAreCheckedKeptAndUsed) {
  auto [rc, htpasswd] = RunProgram({"htpasswd", "-Bbn", "alice", "wonderland"});
  ASSERT_EQ(rc, 0) << htpasswd;
  ASSERT_TRUE(WriteFileAtomic(work_->path() + "/htpasswd", htpasswd).ok());
  Registry basic(
      work_->path() + "/basic",
      "auth:\n  htpasswd:\n    realm: basic-realm\n    path: " + work_->path() + "/htpasswd\n");
  std::string layout = work_->path() + "/basic-layout";
  ImageSpec spec;
  spec.layers = {BaseLayer()};
  TagLayout(layout, "v1", AddImage(layout, spec));
  ASSERT_EQ(basic.Push(layout, "v1", "team/app:v1", "alice:wonderland"), "");
  std::string ref = basic.host() + "/team/app:v1";

  std::string err = MustFail("POST", "/v1/sandboxes", json{{"template", ref}}.dump(), 401);
  EXPECT_NE(err.find("paddock login " + basic.host()), std::string::npos) << err;
  err = MustFail("POST", "/v1/images/pull",
                 json{{"ref", ref}, {"auth", {{"username", "alice"}, {"password", "nope"}}}}.dump(),
                 401);
  EXPECT_NE(err.find("registry " + basic.host()), std::string::npos) << err;
  Must("POST", "/v1/images/pull",
       {{"ref", ref}, {"auth", {{"username", "alice"}, {"password", "wonderland"}}}});
  Must("DELETE", "/v1/images/" + ref, nullptr, 204);
  EXPECT_EQ(Must("GET", "/v1/registries")["logins"].size(), 0u)
      << "a pull's own credentials are not kept";

  auto cli = [&](const std::string& args, const std::string& input) {
    return RunProgram({"sh", "-c",
                       "printf '" + input + "' | env PADDOCK_SOCKET=" + socket_ + " " +
                           PADDOCK_CLI_PATH + " " + args});
  };
  auto [bad, bad_out] = cli("login " + basic.host() + " -u alice --password-stdin", "wrong\\n");
  EXPECT_EQ(bad, 1);
  EXPECT_NE(bad_out.find("refused the login of 'alice'"), std::string::npos) << bad_out;
  auto [ok, ok_out] = cli("login " + basic.host() + " -u alice --password-stdin", "wonderland\\n");
  EXPECT_EQ(ok, 0) << ok_out;
  EXPECT_EQ(ok_out, "logged in to " + basic.host() + " as alice\n");
  std::string auth_file = state_->path() + "/state/images/auth.json";
  struct stat st;
  ASSERT_EQ(::stat(auth_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(Must("GET", "/v1/registries")["logins"], json::array({basic.host()}));
  EXPECT_EQ(Must("GET", "/v1/registries").dump().find("wonderland"), std::string::npos);

  json sb = Must("POST", "/v1/sandboxes", {{"template", ref}}, 201);  // pulled with the login
  EXPECT_EQ(Sh(sb["id"], "cat /data/keep.txt"), "kept\n");
  auto [out_rc, out] = cli("logout " + basic.host(), "");
  EXPECT_EQ(out_rc, 0) << out;
  EXPECT_EQ(Must("GET", "/v1/registries")["logins"].size(), 0u);
  MustFail("DELETE", "/v1/registries/" + basic.host() + "/login", "", 404);
}

// Blobs redirected to another port get no Authorization header; a 429 is
// retried; a transfer cut short resumes with a range request. A manifest
// over the 4 MiB cap is refused, naming the cap.
TEST_F(ImageTest, RedirectsDropCredentialsAndBrokenTransfersResume) {
  std::string layout = work_->path() + "/redirect-layout";
  std::string noise = Noise(256 << 10);
  NoiseLayout(layout, noise);
  TestServer front("redirect",
                   {"--port", "{port0}", "--blob-port", "{port1}", "--layout", layout,
                    "--cut-first", "--rate-limit-once"},
                   2, work_->path() + "/redirect.log");
  std::string ref = "127.0.0.1:" + std::to_string(front.port(0)) + "/test/redir:v1";
  json pulled = Must("POST", "/v1/images/pull", {{"ref", ref}});
  EXPECT_EQ(pulled.value("layers", 0), 2) << front.Log();
  // Config and two layers: each asked for twice (a 429, then a 307), the
  // two layers once more to resume; fetched from the other port without
  // the token.
  EXPECT_EQ(front.Count("api GET /v2/test/redir/blobs/sha256:"), 8) << front.Log();
  EXPECT_GE(front.Count("blob GET sha256:"), 3) << front.Log();
  EXPECT_EQ(front.Count("blob GET sha256:"), front.Count("auth=no range"))
      << "credentials crossed a redirect:\n"
      << front.Log();
  // Both layers were cut halfway once and resumed where they broke off.
  EXPECT_EQ(front.Count("range=bytes="), 2) << front.Log();
  json sb = Must("POST", "/v1/sandboxes", {{"template", ref}}, 201);
  EXPECT_EQ(Sh(sb["id"], "wc -c < /big.bin"), std::to_string(noise.size()) + "\n");

  json huge = {{"schemaVersion", 2},
               {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
               {"config",
                {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                 {"digest", image::Sha256::Of("{}")},
                 {"size", 2}}},
               {"layers", json::array()},
               {"annotations", {{"padding", std::string(5 << 20, 'x')}}}};
  std::string text = huge.dump(), digest = image::Sha256::Of(text);
  ASSERT_TRUE(WriteFileAtomic(layout + "/blobs/sha256/" + image::DigestHex(digest), text).ok());
  TagLayout(layout, "huge",
            {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
             {"digest", digest},
             {"size", text.size()}});
  std::string err = MustFail(
      "POST", "/v1/images/pull",
      json{{"ref", "127.0.0.1:" + std::to_string(front.port(0)) + "/test/redir:huge"}}.dump(), 502);
  EXPECT_NE(err.find("over the 4194304-byte cap"), std::string::npos) << err;
  EXPECT_EQ(Must("GET", "/v1/images")["images"].size(), 1u);
}

// A paddockd killed mid-pull leaves nothing that a later one uses: start-up
// sweeps half-done layers, and the next pull resumes the partial downloads.
TEST_F(ImageTest, APullKilledMidwayIsCleanedAtStartUpAndThenResumes) {
  std::string layout = work_->path() + "/slow-layout";
  std::string noise = Noise(600 << 10);
  NoiseLayout(layout, noise);
  TestServer slow("redirect",
                  {"--port", "{port0}", "--blob-port", "{port1}", "--layout", layout,
                   "--throttle-bps", "400000"},
                  2, work_->path() + "/slow.log");
  std::string ref = "127.0.0.1:" + std::to_string(slow.port(0)) + "/test/slow:v1";
  std::thread pull([&] { (void)api().Send("POST", "/v1/images/pull", json{{"ref", ref}}.dump()); });
  for (int i = 0; i < 500 && slow.Count("blob GET") < 2; ++i) ::usleep(10000);
  ::usleep(300000);
  StopDaemon(SIGKILL);
  pull.join();
  std::string images = state_->path() + "/state/images";
  EXPECT_FALSE(ListDir(images + "/blobs").empty() && ListDir(images + "/staging").empty())
      << "the kill came after the pull had finished; nothing was tested";
  StartDaemon();
  EXPECT_EQ(Must("GET", "/v1/images")["images"].size(), 0u);
  EXPECT_TRUE(ListDir(images + "/layers").empty());
  EXPECT_TRUE(ListDir(images + "/staging").empty());
  EXPECT_FALSE(ListDir(images + "/blobs").empty())
      << "the partial downloads are kept for the next pull";
  EXPECT_EQ(slow.Count("range=bytes="), 0);
  json sb = Must("POST", "/v1/sandboxes", {{"template", ref}}, 201);
  EXPECT_EQ(Sh(sb["id"], "wc -c < /big.bin"), std::to_string(noise.size()) + "\n");
  EXPECT_GE(slow.Count("range=bytes="), 1) << "no download went on where the killed one stopped:\n"
                                           << slow.Log();
  EXPECT_TRUE(ListDir(images + "/blobs").empty());
}

// Deeper than Docker's old ~122-layer mount limit: the bottom 23 layers
// are merged into one folder at pull (whiteouts applied), 127 stack on it.
TEST_F(ImageTest, AnImageOf150LayersRunsWithItsBottomLayersFlattened) {
  ImageSpec spec;
  spec.layers = {BaseLayer()};
  for (int i = 1; i < 150; ++i) {
    LayerSpec l;
    l.compression = i % 2 ? LayerCompression::kGzip : LayerCompression::kNone;
    l.entries = {{"layers/" + std::to_string(i), 'f', std::to_string(i) + "\n"}};
    if (i > 1) l.entries.push_back({"layers/.wh." + std::to_string(i - 1), 'f', ""});
    spec.layers.push_back(l);
  }
  std::string ref = Push(spec, "test/deep:v1");
  json sb = Must("POST", "/v1/sandboxes", {{"template", ref}}, 201);
  EXPECT_EQ(Must("GET", "/v1/images/" + ref)["layers"], 150);
  // Each layer hid the one below's file: only the top one's is left.
  EXPECT_EQ(Sh(sb["id"], "ls /layers; cat /layers/149"), "149\n149\n");
  std::string layers = state_->path() + "/state/images/layers";
  std::vector<std::string> flat;
  for (const auto& name : ListDir(layers))
    if (name.rfind("flat-", 0) == 0) flat.push_back(name);
  ASSERT_EQ(flat.size(), 1u);
  EXPECT_EQ(ListDir(layers + "/" + flat[0] + "/layers"), std::vector<std::string>{"22"});
  EXPECT_EQ(ListDir(layers).size(), 151u) << "150 layers and the flat folder";
  Must("DELETE", "/v1/sandboxes/" + sb["id"].get<std::string>(), nullptr, 204);
  Must("DELETE", "/v1/images/" + ref, nullptr, 204);
  EXPECT_TRUE(ListDir(layers).empty());
}

// Archives: an OCI layout tarred, and `docker save`'s legacy form (made by
// skopeo's docker-archive transport), uploaded and run; bad ones store nothing.
TEST_F(ImageTest, ImportedArchivesRunAndBadOnesStoreNothing) {
  ImageSpec spec;
  spec.layers = {BaseLayer(), WhiteoutLayer()};
  spec.config = RunConfig();
  std::string layout = work_->path() + "/layout";
  TagLayout(layout, "v1", AddImage(layout, spec));
  std::string oci_tar = work_->path() + "/oci.tar", saved = work_->path() + "/saved.tar";
  ASSERT_EQ(RunProgram({"tar", "-C", layout, "-cf", oci_tar, "."}).first, 0);
  auto [rc, out] = RunProgram({"skopeo", "copy", "--quiet", "oci:" + layout + ":v1",
                               "docker-archive:" + saved + ":saved/app:v2"});
  ASSERT_EQ(rc, 0) << out;
  auto upload = [&](const std::string& file, const std::string& ref) {
    return api().Send("POST", "/v1/images/import" + (ref.empty() ? "" : "?ref=" + ref),
                      ReadFile(file).value(), "application/x-tar");
  };

  // An OCI layout names its image only by tag: the import needs a ref.
  auto r = upload(oci_tar, "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("give the ref"), std::string::npos) << r->body;
  r = upload(oci_tar, "local/app:v1");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->Json()["images"][0]["refs"], json::array({"docker.io/local/app:v1"}));
  json sb =
      Must("POST", "/v1/sandboxes", {{"template", "local/app:v1"}}, 201);  // found here: no pull
  EXPECT_EQ(Sh(sb["id"], "cat /data/new.txt; test -e /data/gone.txt || echo hidden"),
            "new\nhidden\n");

  // docker save's form, through the CLI: named by its RepoTags.
  auto [cli_rc, cli_out] =
      RunProgram({"env", "PADDOCK_SOCKET=" + socket_, PADDOCK_CLI_PATH, "image", "import", saved});
  ASSERT_EQ(cli_rc, 0) << cli_out;
  EXPECT_NE(cli_out.find("docker.io/saved/app:v2"), std::string::npos) << cli_out;
  json sb2 = Must("POST", "/v1/sandboxes", {{"template", "saved/app:v2"}}, 201);
  EXPECT_EQ(Sh(sb2["id"], "ls /opq; id -u"), "c.txt\n1234\n");
  json img = Must("GET", "/v1/images/saved/app:v2");
  EXPECT_EQ(img["id"], Must("GET", "/v1/images/local/app:v1")["id"]) << "one image, two names";
  EXPECT_EQ(img["refs"].size(), 2u);

  // Hostile or broken archives: refused with the reason, nothing stored.
  size_t layers_before = ListDir(state_->path() + "/state/images/layers").size();
  std::string evil = work_->path() + "/evil.tar";
  ASSERT_TRUE(WriteFileAtomic(evil, MakeTar({{"../evil", 'f', "x"}})).ok());
  r = upload(evil, "x/y:z");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("climbs out"), std::string::npos) << r->body;
  std::string sneaky = work_->path() + "/sneaky.tar";
  ASSERT_TRUE(
      WriteFileAtomic(sneaky, MakeTar({{"manifest.json", 'f',
                                        R"([{"Config":"../../../../etc/passwd","Layers":[]}])"}}))
          .ok());
  r = upload(sneaky, "");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("outside itself"), std::string::npos) << r->body;
  // A layer whose bytes are not what its manifest says.
  std::string tampered_dir = work_->path() + "/tampered";
  ASSERT_EQ(RunProgram({"cp", "-a", layout, tampered_dir}).first, 0);
  json m = json::parse(ReadFile(tampered_dir + "/index.json").value())["manifests"][0];
  json manifest = json::parse(
      ReadFile(tampered_dir + "/blobs/sha256/" + image::DigestHex(m["digest"].get<std::string>()))
          .value());
  std::string plain_layer = tampered_dir + "/blobs/sha256/" +
                            image::DigestHex(manifest["layers"][1]["digest"].get<std::string>());
  std::string bytes = ReadFile(plain_layer).value();
  bytes[600] ^= 1;  // inside the first file's content, still a valid tar
  ASSERT_TRUE(WriteFileAtomic(plain_layer, bytes).ok());
  std::string tampered = work_->path() + "/tampered.tar";
  ASSERT_EQ(RunProgram({"tar", "-C", tampered_dir, "-cf", tampered, "."}).first, 0);
  r = upload(tampered, "other/app:v1");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("fails its digest"), std::string::npos) << r->body;
  EXPECT_EQ(Must("GET", "/v1/images")["images"].size(), 1u);
  EXPECT_EQ(ListDir(state_->path() + "/state/images/layers").size(), layers_before);
  EXPECT_TRUE(ListDir(state_->path() + "/state/images/staging").empty());

  // Prune keeps what sandboxes use, then removes the image and its layers.
  json kept = Must("POST", "/v1/images/prune");
  EXPECT_EQ(kept["images_removed"], 0);
  EXPECT_EQ(kept["layers_removed"], 0);
  Must("DELETE", "/v1/sandboxes/" + sb["id"].get<std::string>(), nullptr, 204);
  Must("DELETE", "/v1/sandboxes/" + sb2["id"].get<std::string>(), nullptr, 204);
  json pruned = Must("POST", "/v1/images/prune");
  EXPECT_EQ(pruned["images_removed"], 1);
  EXPECT_EQ(pruned["layers_removed"], 2);
  EXPECT_EQ(Must("GET", "/v1/images")["images"].size(), 0u);
  EXPECT_TRUE(ListDir(state_->path() + "/state/images/layers").empty());
}

// An archive larger than any body paddockd holds in memory (256 MiB) goes
// through the CLI and into the store as a stream: paddockd's peak memory
// hardly moves. --max-upload refuses a larger one up front, naming itself.
TEST_F(ImageTest, ArchivesOverAQuarterGigabyteStreamAndMaxUploadRefusesLargerOnes) {
  std::string tree = work_->path() + "/tree", layer = work_->path() + "/layer.tar";
  ASSERT_TRUE(MakeDirs(tree + "/data", 0755).ok());
  auto [made, made_out] = RunProgram(
      {"sh", "-c", "head -c 300M /dev/urandom > " + tree + "/data/blob && tar -C " + tree +
                       " -cf " + layer + " data && sha256sum " + tree + "/data/blob"});
  ASSERT_EQ(made, 0) << made_out;
  std::string blob_sum = made_out.substr(0, 64);
  ImageSpec spec;
  spec.layers = {BaseLayer(), LayerSpec{{}, LayerCompression::kNone, layer}};
  std::string layout = work_->path() + "/big";
  TagLayout(layout, "v1", AddImage(layout, spec));
  std::string archive = work_->path() + "/big.tar";
  ASSERT_EQ(RunProgram({"tar", "-C", layout, "-cf", archive, "."}).first, 0);
  ASSERT_TRUE(RemoveTree(tree).ok());
  ASSERT_TRUE(RemoveTree(layout).ok());
  auto cli = [&](const std::string& file) {
    return RunProgram({"env", "PADDOCK_SOCKET=" + socket_, PADDOCK_CLI_PATH, "image", "import",
                       "--ref", "local/big:v1", file});
  };

  int64_t peak_before = PeakRssKb(pid_);
  auto [rc, out] = cli(archive);
  ASSERT_EQ(rc, 0) << out;
  int64_t peak_after = PeakRssKb(pid_);
  EXPECT_LT(peak_after - peak_before, 64 * 1024)
      << "paddockd's peak memory grew from " << peak_before << " kB to " << peak_after << " kB";
  json sb = Must("POST", "/v1/sandboxes", {{"template", "local/big:v1"}}, 201);
  EXPECT_EQ(Sh(sb["id"], "busybox sha256sum /data/blob | busybox cut -c1-64"), blob_sum + "\n");
  Must("DELETE", "/v1/sandboxes/" + sb["id"].get<std::string>(), nullptr, 204);
  Must("DELETE", "/v1/images/local/big:v1", nullptr, 204);
  EXPECT_TRUE(ListDir(state_->path() + "/state/uploads").empty());

  StopDaemon(SIGTERM);
  StartDaemon({"--max-upload", "100M"});
  auto [refused, refused_out] = cli(archive);
  EXPECT_NE(refused, 0);
  EXPECT_NE(refused_out.find("over 104857600 bytes"), std::string::npos) << refused_out;
  EXPECT_NE(refused_out.find("--max-upload"), std::string::npos) << refused_out;
  EXPECT_EQ(Must("GET", "/v1/images")["images"].size(), 0u);
  EXPECT_TRUE(ListDir(state_->path() + "/state/uploads").empty());
  EXPECT_TRUE(ListDir(state_->path() + "/state/images/layers").empty());
}

// Debian's minbase with python3, made by mmdebstrap from Debian's archive
// (the one download tests make; cached across runs): its tar's path, or
// empty with `skip` set to why there is none.
std::string DebianRootfs(std::string& skip) {
  const std::string cache = "/var/cache/paddock-tests";
  const std::string rootfs = cache + "/debian-bookworm-minbase-python3.tar";
  if (PathExists(rootfs)) return rootfs;
  EXPECT_TRUE(MakeDirs(cache, 0755).ok());
  auto [rc, out] = RunProgram({"timeout", "600", "mmdebstrap", "--variant=minbase", "--include=python3-minimal",
                               "--format=tar", "bookworm", rootfs + ".part"});
  if (rc != 0) {
    ::unlink((rootfs + ".part").c_str());
    if (out.find("Could not resolve") != std::string::npos || out.find("Failed to fetch") != std::string::npos ||
        out.find("Temporary failure") != std::string::npos)
      skip = "Debian's package archive is unreachable, so no Debian root can be built:\n" + out;
    else
      ADD_FAILURE() << "mmdebstrap failed:\n" << out;
    return "";
  }
  EXPECT_EQ(::rename((rootfs + ".part").c_str(), rootfs.c_str()), 0);
  return rootfs;
}

// A real distribution, pushed, pulled and used: dpkg and apt state,
// python3, its Cmd.
TEST_F(ImageTest, ADebianRootFromMmdebstrapRunsPythonAndApt) {
  std::string skip;
  std::string rootfs = DebianRootfs(skip);
  if (rootfs.empty()) GTEST_SKIP() << skip;
  std::string ref = PushDebian(rootfs);

  json sb = Must("POST", "/v1/sandboxes", {{"template", ref}}, 201);
  EXPECT_EQ(Sh(sb["id"], "python3 -c 'print(6*7)'"), "42\n");
  EXPECT_EQ(Sh(sb["id"], "dpkg-query -W -f='${Status}' python3-minimal"), "install ok installed");
  EXPECT_EQ(Sh(sb["id"], "apt-get check >/dev/null && echo consistent"), "consistent\n");
  EXPECT_EQ(Sh(sb["id"], ". /etc/os-release; echo $ID $VERSION_CODENAME"), "debian bookworm\n");
  auto [rc, out] =
      RunProgram({"env", "PADDOCK_SOCKET=" + socket_, PADDOCK_CLI_PATH, "run", "--template", ref});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "42\n");
}

// A template built from the Debian image: an apt install (of a package made
// here, so that no network is needed), files copied in, and a start command
// serving HTTP. Built once, rebuilt from the cache, a changed file reruns
// its step and those after it only; a sandbox from it is ready when created.
TEST_F(ImageTest, ADebianTemplateInstallsWithAptAndServesHttpOnceReady) {
  std::string skip;
  std::string rootfs = DebianRootfs(skip);
  if (rootfs.empty()) GTEST_SKIP() << skip;
  std::string ref = PushDebian(rootfs);
  const std::string pkg = work_->path() + "/pkg", ctx = work_->path() + "/ctx";
  ASSERT_TRUE(MakeDirs(pkg + "/DEBIAN", 0755).ok());
  ASSERT_TRUE(MakeDirs(pkg + "/usr/local/bin", 0755).ok());
  ASSERT_TRUE(MakeDirs(ctx + "/site", 0755).ok());
  ASSERT_TRUE(WriteFileAtomic(pkg + "/DEBIAN/control",
                              "Package: pdk-httpd\nVersion: 1.0\nArchitecture: all\n"
                              "Maintainer: Paddock tests <tests@paddock.invalid>\n"
                              "Description: busybox, for its HTTP server\n",
                              0644)
                  .ok());
  ASSERT_TRUE(WriteFileAtomic(pkg + "/usr/local/bin/busybox", ReadFile("/bin/busybox").value(), 0755).ok());
  auto [deb_rc, deb_out] = RunProgram({"dpkg-deb", "--root-owner-group", "--build", pkg, ctx + "/pdk-httpd.deb"});
  ASSERT_EQ(deb_rc, 0) << deb_out;
  ASSERT_TRUE(WriteFileAtomic(ctx + "/site/index.html", "<h1>debian</h1>\n", 0644).ok());
  json spec = {{"name", "debian-web"},
               {"from", ref},
               {"steps",
                {{{"copy", "pdk-httpd.deb"}, {"to", "/tmp/"}},
                 {{"run", "apt-get install -y /tmp/pdk-httpd.deb && rm /tmp/pdk-httpd.deb"}},
                 {{"copy", "site"}, {"to", "/srv/www"}}}},
               {"start", "busybox httpd -f -p 8000 -h /srv/www"},
               {"ready", {{"port", 8000}, {"timeout_s", 30}}}};
  ASSERT_TRUE(WriteFileAtomic(ctx + "/build.json", spec.dump(), 0644).ok());
  auto build = [&] {
    return RunProgram({"sh", "-c", "env PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH + " template build " +
                                       ctx + "/build.json 2>&1"});
  };
  auto cached = [](const std::string& out) {
    int n = 0;
    for (size_t at = out.find("CACHED"); at != std::string::npos; at = out.find("CACHED", at + 1)) ++n;
    return n;
  };
  auto [rc, out] = build();
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("Setting up pdk-httpd (1.0)"), std::string::npos) << out;  // apt's own output
  EXPECT_EQ(cached(out), 0) << out;
  auto [rc2, again] = build();
  ASSERT_EQ(rc2, 0) << again;
  EXPECT_EQ(cached(again), 3) << again;

  json sb = Must("POST", "/v1/sandboxes", {{"template", "debian-web"}}, 201);
  EXPECT_EQ(Sh(sb["id"], "busybox wget -qO- http://127.0.0.1:8000/index.html"), "<h1>debian</h1>\n");
  EXPECT_EQ(Sh(sb["id"], "dpkg-query -W -f='${Status}' pdk-httpd"), "install ok installed");

  ASSERT_TRUE(WriteFileAtomic(ctx + "/site/index.html", "<h1>changed</h1>\n", 0644).ok());
  auto [rc3, changed] = build();
  ASSERT_EQ(rc3, 0) << changed;
  EXPECT_EQ(cached(changed), 2) << changed;  // the deb's copy and the install
  json sb2 = Must("POST", "/v1/sandboxes", {{"template", "debian-web"}}, 201);
  EXPECT_EQ(Sh(sb2["id"], "busybox wget -qO- http://127.0.0.1:8000/index.html"), "<h1>changed</h1>\n");
}

// A disk that fills up during a pull: a clear error, nothing half-stored.
// The state folder is a 4 MiB tmpfs; the layer is 2.5 MiB that does not
// compress, so it downloads but cannot also be extracted.
TEST_F(ImageTest, ADiskFullDuringAPullIsAClearErrorAndLeavesNothing) {
  ImageSpec spec;
  LayerSpec big;
  big.entries = {{"big.bin", 'f', Noise(5 << 19)}};
  spec.layers = {big};
  std::string ref = Push(spec, "test/huge:v1");
  StopDaemon(SIGTERM);
  std::string state = state_->path() + "/state";
  std::string saved = state_->path() + "/state-before";
  ASSERT_EQ(::rename(state.c_str(), saved.c_str()), 0);
  ASSERT_TRUE(MakeDirs(state, 0711).ok());
  ASSERT_EQ(::mount("tmpfs", state.c_str(), "tmpfs", 0, "size=4m,mode=0711"), 0);
  StartDaemon();
  std::string err = MustFail("POST", "/v1/images/pull", json{{"ref", ref}}.dump(), 503);
  EXPECT_NE(err.find("No space left on device"), std::string::npos) << err;
  EXPECT_EQ(Must("GET", "/v1/images")["images"].size(), 0u);
  for (const char* sub : {"/images/layers", "/images/staging", "/images/blobs"})
    EXPECT_TRUE(ListDir(state + sub).empty()) << sub;
  StopDaemon(SIGTERM);
  EXPECT_EQ(::umount2(state.c_str(), 0), 0);
  ASSERT_TRUE(RemoveTree(state).ok());
  ASSERT_EQ(::rename(saved.c_str(), state.c_str()), 0);
  StartDaemon();
}

}  // namespace
}  // namespace paddock::testing
