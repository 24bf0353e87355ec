// Unit tests of the image module's parsers: references, auth challenges,
// indexes, manifests and configs; and of layer extraction (as root).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include "base/fs.h"
#include "host_clean.h"
#include "image/digest.h"
#include "image/layer_store.h"
#include "image/manifest.h"
#include "image/reference.h"
#include "image/registry.h"
#include "oci_kit.h"

namespace paddock::image {
namespace {

using nlohmann::json;

std::string Norm(const std::string& s) {
  auto r = ImageRef::Parse(s);
  return r.ok() ? r->String() : "error: " + r.status().message();
}

TEST(ImageRefTest, NormalisesAsDockerDoes) {
  EXPECT_EQ(Norm("python:3.12"), "docker.io/library/python:3.12");
  EXPECT_EQ(Norm("alpine"), "docker.io/library/alpine:latest");
  EXPECT_EQ(Norm("org/img"), "docker.io/org/img:latest");
  EXPECT_EQ(Norm("index.docker.io/library/alpine:3"), "docker.io/library/alpine:3");
  EXPECT_EQ(Norm("ghcr.io/org/sub/img:v1.2-rc_3"), "ghcr.io/org/sub/img:v1.2-rc_3");
  EXPECT_EQ(Norm("127.0.0.1:5000/team/img:v1"), "127.0.0.1:5000/team/img:v1");
  EXPECT_EQ(Norm("localhost/img"), "localhost/img:latest");
  std::string d = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(Norm("ghcr.io/org/img@" + d), "ghcr.io/org/img@" + d);
  EXPECT_EQ(Norm("img:tag@" + d), "docker.io/library/img:tag@" + d);
  auto r = ImageRef::Parse("registry.example.com:8443/a/b@" + d);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->registry, "registry.example.com:8443");
  EXPECT_EQ(r->repository, "a/b");
  EXPECT_EQ(r->ManifestReference(), d);
  EXPECT_EQ(ImageRef::Parse("python").value().ApiHost(), "registry-1.docker.io");
}

TEST(ImageRefTest, RefusesBadSyntaxNamingIt) {
  for (const char* bad : {"", "UPPER/case", "img:", "img@sha256:short", "a//b", "-lead", "img:-tag",
                          "host:port:x/img", "img@md5:0123", "a/../b", "x/ y"}) {
    auto r = ImageRef::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
      EXPECT_NE(r.status().message().find(std::string("'") + bad + "'"), std::string::npos)
          << r.status().message();
    }
  }
  EXPECT_FALSE(ImageRef::Parse(std::string(600, 'a')).ok());
}

TEST(ImageRefTest, RegistriesAsLoginsNameThem) {
  EXPECT_EQ(NormalizeRegistry("docker.io").value(), "docker.io");
  EXPECT_EQ(NormalizeRegistry("index.docker.io").value(), "docker.io");
  EXPECT_EQ(NormalizeRegistry("ghcr.io").value(), "ghcr.io");
  EXPECT_EQ(NormalizeRegistry("127.0.0.1:5000").value(), "127.0.0.1:5000");
  EXPECT_EQ(NormalizeRegistry("localhost").value(), "localhost");
  for (const char* bad : {"", "myregistry", "ghcr.io/org", "host:port", "a..b:"})
    EXPECT_EQ(NormalizeRegistry(bad).status().code(), StatusCode::kInvalidArgument) << bad;
}

TEST(ImageRefTest, LoopbackRegistries) {
  EXPECT_TRUE(IsLoopbackRegistry("127.0.0.1:5000"));
  EXPECT_TRUE(IsLoopbackRegistry("localhost"));
  EXPECT_TRUE(IsLoopbackRegistry("[::1]:5000"));
  EXPECT_FALSE(IsLoopbackRegistry("10.0.0.1:5000"));
  EXPECT_FALSE(IsLoopbackRegistry("localhost.evil.com"));
}

TEST(RegistryTest, ChallengesParseQuotedCommas) {
  auto [scheme, p] = ParseChallenge(
      R"(Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push")");
  EXPECT_EQ(scheme, "bearer");
  EXPECT_EQ(p["realm"], "https://auth.example.com/token");
  EXPECT_EQ(p["service"], "registry.example.com");
  EXPECT_EQ(p["scope"], "repository:a/b:pull,push");
  auto [basic, q] = ParseChallenge(R"(Basic realm="Registry Realm")");
  EXPECT_EQ(basic, "basic");
  EXPECT_EQ(q["realm"], "Registry Realm");
}

TEST(ManifestTest, IndexSkipsAttestationsAndPicksThePlatform) {
  auto entry = [](const char* os, const char* arch, const char* variant, char fill) {
    json p = {{"os", os}, {"architecture", arch}};
    if (*variant) p["variant"] = variant;
    return json{{"mediaType", media::kOciManifest},
                {"digest", "sha256:" + std::string(64, fill)},
                {"size", 10},
                {"platform", p}};
  };
  json index = {{"schemaVersion", 2},
                {"manifests",
                 {entry("unknown", "unknown", "", 'a'), entry("linux", "arm", "v6", 'b'),
                  entry("linux", "arm64", "", 'c'), entry("linux", "amd64", "", 'd')}}};
  auto entries = ParseIndex(index);
  ASSERT_TRUE(entries.ok());
  EXPECT_EQ(entries->size(), 3u);
  EXPECT_EQ(SelectPlatform(*entries, {"linux", "amd64", ""}).value().digest,
            "sha256:" + std::string(64, 'd'));
  EXPECT_EQ(SelectPlatform(*entries, {"linux", "arm64", "v8"}).value().digest,
            "sha256:" + std::string(64, 'c'));
  auto none = SelectPlatform(*entries, {"linux", "arm", "v7"});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("linux/arm/v6"), std::string::npos)
      << none.status().message();
  EXPECT_TRUE(IsIndex("", index));
  EXPECT_FALSE(IsIndex(media::kOciManifest, index));
}

TEST(ManifestTest, ManifestsAndConfigs) {
  std::string d1 = "sha256:" + std::string(64, '1'), d2 = "sha256:" + std::string(64, '2');
  json m = {
      {"schemaVersion", 2},
      {"config",
       {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", d1}, {"size", 100}}},
      {"layers",
       {{{"mediaType", "application/vnd.docker.image.rootfs.diff.tar.gzip"},
         {"digest", d2},
         {"size", 5}},
        {{"mediaType", "application/vnd.oci.image.layer.v1.tar+zstd"}, {"digest", d2}, {"size", 5}},
        {{"mediaType", "application/vnd.oci.image.layer.v1.tar"}, {"digest", d2}, {"size", 5}}}}};
  auto parsed = ParseManifest(media::kDockerManifest, m);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->layers.size(), 3u);
  EXPECT_EQ(parsed->layers[0].compression, Compression::kGzip);
  EXPECT_EQ(parsed->layers[1].compression, Compression::kZstd);
  EXPECT_EQ(parsed->layers[2].compression, Compression::kNone);

  auto schema1 = ParseManifest("application/vnd.docker.distribution.manifest.v1+prettyjws",
                               {{"schemaVersion", 1}});
  ASSERT_FALSE(schema1.ok());
  EXPECT_EQ(schema1.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(schema1.status().message().find("schema 1"), std::string::npos);
  json odd = m;
  odd["layers"][0]["mediaType"] = "application/x-weird";
  auto weird = ParseManifest(media::kOciManifest, odd);
  ASSERT_FALSE(weird.ok());
  EXPECT_NE(weird.status().message().find("application/x-weird"), std::string::npos);
  json bad_digest = m;
  bad_digest["layers"][0]["digest"] = "sha256:nothex";
  EXPECT_EQ(ParseManifest(media::kOciManifest, bad_digest).status().code(), StatusCode::kDataLoss);

  json config = {{"os", "linux"},
                 {"architecture", "amd64"},
                 {"config",
                  {{"Env", {"PATH=/usr/bin", "A=b=c"}},
                   {"Entrypoint", {"/entry"}},
                   {"Cmd", {"run", "it"}},
                   {"WorkingDir", "/app"},
                   {"User", "1000:1000"}}},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", {d1, d2}}}}};
  auto c = ParseConfig(config);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->user, "1000:1000");
  EXPECT_EQ(c->diff_ids.size(), 2u);
  EXPECT_EQ(CommandFor(*c, {}), (std::vector<std::string>{"/entry", "run", "it"}));
  EXPECT_EQ(CommandFor(*c, {"other"}), (std::vector<std::string>{"/entry", "other"}));
  config["config"]["WorkingDir"] = "relative";
  EXPECT_FALSE(ParseConfig(config).ok());
}

// Documents a registry (or anyone between it and paddockd) could send, with
// fields of other types than the specs give: an error or a value read as
// absent, never an exception. (fuzz/manifest_fuzz found the first.)
TEST(ManifestTest, FieldsOfTheWrongTypeAreErrorsNotExceptions) {
  std::string d = "sha256:" + std::string(64, '1');
  json index = {{"manifests", {{{"digest", d}, {"size", 1}, {"mediaType", 5}, {"platform", {{"os", 1}}}}}}};
  auto entries = ParseIndex(index);
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  EXPECT_EQ((*entries)[0].media_type, "");
  EXPECT_EQ((*entries)[0].platform.os, "");
  json manifest = {{"schemaVersion", "2"},
                   {"mediaType", {1}},
                   {"config", {{"digest", d}, {"size", 1.5}}},
                   {"layers", json::array()}};
  EXPECT_EQ(ParseManifest("", manifest).status().code(), StatusCode::kDataLoss);  // a size of 1.5
  manifest["config"]["size"] = 1;
  EXPECT_TRUE(ParseManifest("", manifest).ok());
  json config = {{"os", {}}, {"architecture", 64}, {"config", {{"Env", "A=b"}, {"User", 0}}},
                 {"rootfs", {{"diff_ids", {d}}}}};
  auto c = ParseConfig(config);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->env.empty());
  EXPECT_EQ(c->user, "");
}

TEST(DigestTest, Sha256AndChainIds) {
  EXPECT_EQ(Sha256::Of(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_TRUE(ValidDigest(Sha256::Of("x")));
  EXPECT_FALSE(
      ValidDigest("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
  std::vector<std::string> diffs = {Sha256::Of("a"), Sha256::Of("b")};
  auto chains = ChainIds(diffs);
  EXPECT_EQ(chains[0], diffs[0]);
  EXPECT_EQ(chains[1], Sha256::Of(diffs[0] + " " + diffs[1]));
}

class LayerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "extraction keeps owners and makes whiteouts: needs root";
    auto s = LayerStore::Open(dir_.path() + "/images");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::make_unique<LayerStore>(std::move(*s));
  }
  // Writes `tar` as a blob and extracts it; returns the Status.
  Status Extract(const std::string& tar, const std::string& chain, std::string diff_id = "") {
    std::string blob = dir_.path() + "/blob";
    if (!WriteFileAtomic(blob, tar).ok()) return Internal("write blob");
    return store_->Extract(blob, diff_id.empty() ? Sha256::Of(tar) : diff_id, chain);
  }
  testing::TempDir dir_;
  std::unique_ptr<LayerStore> store_;
};

TEST_F(LayerStoreTest, WhiteoutsBecomeOverlayFormInAnyOrder) {
  using testing::TarEntry;
  std::string chain = Sha256::Of("chain");
  std::string tar = testing::MakeTar({
      {"./a/", 'd', "", 0755},
      {"./a/.wh.hidden", 'f', ""},
      {"./a/kept", 'f', "k", 0640, 1000, 1001},
      {"./a/.wh.kept", 'f', ""},  // never hides its own layer's entry
      {"./o/x", 'f', "x"},
      {"./o/.wh..wh..opq", 'f', ""},
      {"./f/", 'd', "", 0755, 0, 0, {{"trusted.overlay.opaque", "y"}, {"user.keep", "1"}}},
  });
  ASSERT_TRUE(Extract(tar, chain).ok());
  std::string root = store_->Dir(chain);
  struct stat st;
  ASSERT_EQ(::lstat((root + "/a/hidden").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
  ASSERT_EQ(::lstat((root + "/a/kept").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  char v[8] = {};
  EXPECT_EQ(::lgetxattr((root + "/o").c_str(), "trusted.overlay.opaque", v, sizeof v), 1);
  EXPECT_EQ(::lgetxattr((root + "/f").c_str(), "trusted.overlay.opaque", v, sizeof v), -1);
  EXPECT_EQ(::lgetxattr((root + "/f").c_str(), "user.keep", v, sizeof v), 1);
  EXPECT_FALSE(PathExists(root + "/a/.wh.hidden"));
  EXPECT_FALSE(PathExists(root + "/o/.wh..wh..opq"));
}

// File capabilities (what lets an image's ping open a raw socket without
// setuid) survive extraction, also on a file owned by someone else: a chown
// after the xattr would silently drop them.
TEST_F(LayerStoreTest, FileCapabilitiesAndOwnersAreKept) {
  // struct vfs_cap_data, revision 2, effective: permitted = CAP_NET_RAW (13).
  const std::string net_raw_ep("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00"
                               "\x00\x00\x00\x00\x00\x00\x00\x00",
                               20);
  std::string chain = Sha256::Of("caps");
  ASSERT_TRUE(Extract(testing::MakeTar({
                          {"./bin/", 'd', "", 0755},
                          {"./bin/ping", 'f', "elf", 0755, 0, 0, {{"security.capability", net_raw_ep}}},
                          {"./bin/tool", 'f', "elf", 0750, 1000, 1001,
                           {{"security.capability", net_raw_ep}}},
                      }),
                      chain)
                  .ok());
  for (const char* file : {"/bin/ping", "/bin/tool"}) {
    std::string path = store_->Dir(chain) + file;
    char value[64];
    ssize_t n = ::lgetxattr(path.c_str(), "security.capability", value, sizeof value);
    ASSERT_EQ(n, 20) << file << ": " << std::strerror(errno);
    EXPECT_EQ(std::string(value, static_cast<size_t>(n)), net_raw_ep) << file;
  }
  struct stat st;
  ASSERT_EQ(::lstat((store_->Dir(chain) + "/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST_F(LayerStoreTest, EscapesAndWrongDiffIdsLeaveNothing) {
  for (const auto& entries : std::vector<std::vector<testing::TarEntry>>{
           {{"../evil", 'f', "x"}},
           {{"a/../../evil", 'f', "x"}},
           {{"/etc/evil", 'f', "x"}},
           {{"ok", 'f', "x"}, {"link", 'h', "../outside"}}}) {
    std::string chain = Sha256::Of(entries.back().path);
    Status s = Extract(testing::MakeTar(entries), chain);
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << entries.back().path << ": " << s.ToString();
    EXPECT_FALSE(store_->Has(chain));
  }
  std::string chain = Sha256::Of("mismatch");
  Status s = Extract(testing::MakeTar({{"ok", 'f', "x"}}), chain, Sha256::Of("something else"));
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("diff id"), std::string::npos) << s.message();
  EXPECT_FALSE(store_->Has(chain));
  EXPECT_TRUE(ListDir(dir_.path() + "/images/staging").empty());
  EXPECT_FALSE(PathExists("/evil"));
  EXPECT_FALSE(PathExists(dir_.path() + "/evil"));
}

}  // namespace
}  // namespace paddock::image
