// CDI specs: JSON and YAML read alike, spec-wide edits applied to each
// device, what Paddock cannot honour named, malformed specs reported with
// their path and skipped.
#include "sandbox/cdi.h"
#include "sandbox/nvidia.h"

#include <gtest/gtest.h>

#include "base/fs.h"
#include "host_clean.h"

namespace paddock::testing {
namespace {

constexpr const char* kJson = R"({
  "cdiVersion": "0.6.0",
  "kind": "example.com/fake",
  "containerEdits": {"env": ["FAKE_DRIVER=1"]},
  "devices": [
    {"name": "0", "containerEdits": {
      "deviceNodes": [{"path": "/dev/fake0", "hostPath": "/dev/zero"}],
      "mounts": [{"hostPath": "/etc/hostname", "containerPath": "/opt/fake/info", "options": ["ro", "bind"]}],
      "env": ["FAKE_VISIBLE=0"]}},
    {"name": "1", "containerEdits": {"deviceNodes": [{"path": "/dev/fake1", "hostPath": "/dev/null"}]}}
  ]
})";

constexpr const char* kYaml = R"(cdiVersion: "0.5.0"
kind: other.org/acc
devices:
  - name: a
    containerEdits:
      deviceNodes:
        - path: /dev/acc-a
          hostPath: /dev/full
          major: 1
          minor: 7
      mounts:
        - hostPath: /usr/lib
          containerPath: /opt/acc/lib
          options: [rw]
      hooks:
        - hookName: createContainer
          path: /usr/bin/acc-hook
)";

TEST(CdiTest, JsonAndYamlSpecsAndTheirEdits) {
  auto json = cdi::ParseSpec(kJson, "/etc/cdi/fake.json");
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  ASSERT_EQ(json->size(), 2u);
  const cdi::Device& d0 = (*json)[0];
  EXPECT_EQ(d0.name, "example.com/fake=0");
  ASSERT_EQ(d0.edits.nodes.size(), 1u);
  EXPECT_EQ(d0.edits.nodes[0].path, "/dev/fake0");
  EXPECT_EQ(d0.edits.nodes[0].host_path, "/dev/zero");
  ASSERT_EQ(d0.edits.mounts.size(), 1u);
  EXPECT_TRUE(d0.edits.mounts[0].read_only);
  EXPECT_EQ(d0.edits.env, (std::vector<std::string>{"FAKE_VISIBLE=0", "FAKE_DRIVER=1"}));
  EXPECT_TRUE(d0.edits.unsupported.empty());
  EXPECT_EQ((*json)[1].edits.env, (std::vector<std::string>{"FAKE_DRIVER=1"})) << "the spec's edits go to each";

  auto yaml = cdi::ParseSpec(kYaml, "/var/run/cdi/acc.yaml");
  ASSERT_TRUE(yaml.ok()) << yaml.status().ToString();
  ASSERT_EQ(yaml->size(), 1u);
  EXPECT_EQ((*yaml)[0].name, "other.org/acc=a");
  EXPECT_FALSE((*yaml)[0].edits.mounts[0].read_only);
  EXPECT_EQ((*yaml)[0].edits.unsupported, (std::vector<std::string>{"the hook '/usr/bin/acc-hook'"}));
}

// A spec as nvidia-ctk writes it: its hooks become what Paddock does itself.
constexpr const char* kToolkit = R"(cdiVersion: 0.6.0
kind: nvidia.com/gpu
containerEdits:
  deviceNodes: [{path: /dev/nvidiactl}]
  hooks:
  - {hookName: createContainer, path: /usr/bin/nvidia-cdi-hook,
     args: [nvidia-cdi-hook, create-symlinks, --link, libcuda.so.1::/usr/lib/x86_64-linux-gnu/libcuda.so]}
  - {hookName: createContainer, path: /usr/bin/nvidia-cdi-hook,
     args: [nvidia-cdi-hook, enable-cuda-compat, --host-driver-version=570.133.20]}
  - {hookName: createContainer, path: /usr/bin/nvidia-cdi-hook,
     args: [nvidia-cdi-hook, update-ldcache, --folder, /usr/lib/x86_64-linux-gnu, --folder, /usr/lib/x86_64-linux-gnu/vdpau]}
  - {hookName: createContainer, path: /usr/bin/nvidia-cdi-hook, args: [nvidia-cdi-hook, disable-device-node-modification]}
devices:
- name: "0"
  containerEdits:
    deviceNodes: [{path: /dev/nvidia0, permissions: rwm}, {path: /dev/dri/card1, permissions: r}]
    additionalGids: [44]
    hooks:
    - {hookName: createContainer, path: /usr/bin/nvidia-ctk,
       args: [nvidia-ctk, hook, create-symlinks, --link, ../card1::/dev/dri/by-path/pci-0000:38:00.0-card]}
    - {hookName: createContainer, path: /usr/bin/nvidia-ctk, args: [nvidia-ctk, hook, chmod, --mode, "755", --path, /dev/dri]}
- name: "1"
  containerEdits:
    deviceNodes: [{path: /dev/nvidia1}]
    hooks:
    - {hookName: createContainer, path: /usr/bin/nvidia-cdi-hook, args: [nvidia-cdi-hook, some-new-hook, --x, y]}
)";

TEST(CdiTest, TheToolkitsHooksAreReadAsWhatTheyDo) {
  auto spec = cdi::ParseSpec(kToolkit, "/etc/cdi/nvidia.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const cdi::Edits& e = (*spec)[0].edits;
  EXPECT_TRUE(e.unsupported.empty());
  EXPECT_EQ(e.symlinks, (std::vector<std::pair<std::string, std::string>>{
                            {"../card1", "/dev/dri/by-path/pci-0000:38:00.0-card"},
                            {"libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so"}}));
  EXPECT_EQ(e.ldcache_folders,
            (std::vector<std::string>{"/usr/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu/vdpau"}));
  EXPECT_EQ(e.cuda_compat_driver, "570.133.20");
  EXPECT_EQ(e.chmods, (std::vector<std::pair<std::string, uint32_t>>{{"/dev/dri", 0755}}));
  EXPECT_EQ(e.additional_gids, std::vector<uint32_t>{44});
  ASSERT_EQ(e.nodes.size(), 3u);
  EXPECT_EQ(e.nodes[0].permissions, "rw") << "mknod is never given";
  EXPECT_EQ(e.nodes[1].permissions, "r");
  EXPECT_EQ((*spec)[1].edits.unsupported,
            (std::vector<std::string>{"the hook '/usr/bin/nvidia-cdi-hook some-new-hook --x y'"}));

  // Two devices' edits together: each path once.
  cdi::Edits both = e;
  both.Add((*spec)[1].edits);
  EXPECT_EQ(both.nodes.size(), 4u);
  EXPECT_EQ(both.symlinks.size(), 2u);
  EXPECT_EQ(both.ldcache_folders.size(), 2u);

  auto bad = [](const std::string& hook) {
    auto r = cdi::ParseSpec("{\"cdiVersion\":\"0.6.0\",\"kind\":\"a.b/c\",\"devices\":[{\"name\":\"x\","
                            "\"containerEdits\":{\"hooks\":[" + hook + "]}}]}", "x.json");
    EXPECT_FALSE(r.ok()) << hook;
    return r.status().message();
  };
  EXPECT_NE(bad(R"({"path":"/usr/bin/nvidia-ctk","args":["nvidia-ctk","hook","create-symlinks","--link","a"]})")
                .find("TARGET::"), std::string::npos);
  EXPECT_NE(bad(R"({"path":"/usr/bin/nvidia-ctk","args":["nvidia-ctk","hook","chmod","--mode","9","--path","/dev/x"]})")
                .find("octal"), std::string::npos);
  EXPECT_NE(bad(R"({"path":"/usr/bin/nvidia-cdi-hook","args":["nvidia-cdi-hook","update-ldcache","--folder","../x"]})")
                .find("clean"), std::string::npos);
  auto gids = cdi::ParseSpec(R"({"cdiVersion":"0.6.0","kind":"a.b/c","devices":[{"name":"x",
      "containerEdits":{"additionalGids":[0]}}]})", "x.json");
  EXPECT_NE(gids.status().message().find("additionalGids"), std::string::npos) << "root's group is never given";
}

TEST(CdiTest, MalformedSpecsSayWhy) {
  auto bad = [](const std::string& text) {
    auto r = cdi::ParseSpec(text, "x.json");
    EXPECT_FALSE(r.ok()) << text;
    return r.status().message();
  };
  EXPECT_NE(bad("{").find("JSON"), std::string::npos);
  EXPECT_NE(bad(R"({"cdiVersion":"0.6.0","kind":"NoSlash","devices":[]})").find("kind"), std::string::npos);
  EXPECT_NE(bad(R"({"cdiVersion":"0.6.0","kind":"a.b/c","devices":[]})").find("devices"), std::string::npos);
  EXPECT_NE(bad(R"({"cdiVersion":"0.6.0","kind":"a.b/c","devices":[{"name":"x","containerEdits":
              {"deviceNodes":[{"path":"/etc/passwd"}]}}]})").find("under /dev/"), std::string::npos);
  EXPECT_NE(bad(R"({"cdiVersion":"0.6.0","kind":"a.b/c","devices":[{"name":"x","containerEdits":
              {"mounts":[{"hostPath":"/a/../etc","containerPath":"/x"}]}}]})").find("clean"), std::string::npos);
  EXPECT_NE(bad(R"({"cdiVersion":"1.0.0","kind":"a.b/c","devices":[]})").find("cdiVersion"), std::string::npos);
  auto y = cdi::ParseSpec("kind: [unclosed", "x.yaml");
  EXPECT_NE(y.status().message().find("YAML"), std::string::npos);
}

// The host's own cache, read as the loader reads it: libc is in it, by its
// soname, at a path that leads to it.
TEST(CdiTest, LdCacheIsReadAsTheLoaderReadsIt) {
  auto libs = nvidia::ReadLdCache("/etc/ld.so.cache");
  if (libs.empty()) GTEST_SKIP() << "this host's ld.so.cache is not glibc's current format";
  auto libc = std::find_if(libs.begin(), libs.end(), [](const auto& l) { return l.soname == "libc.so.6"; });
  ASSERT_NE(libc, libs.end());
  EXPECT_TRUE(PathExists(libc->path)) << libc->path;
  EXPECT_TRUE(nvidia::ReadLdCache("/etc/hostname").empty());
  EXPECT_TRUE(nvidia::ReadLdCache("/nonexistent").empty());
}

TEST(CdiTest, RegistryReadsFoldersReportsBadSpecsAndResolves) {
  TempDir tmp;
  ASSERT_TRUE(MakeDirs(tmp.path() + "/etc").ok());
  ASSERT_TRUE(MakeDirs(tmp.path() + "/run").ok());
  ASSERT_TRUE(WriteFileAtomic(tmp.path() + "/etc/fake.json", kJson).ok());
  ASSERT_TRUE(WriteFileAtomic(tmp.path() + "/run/acc.yaml", kYaml).ok());
  ASSERT_TRUE(WriteFileAtomic(tmp.path() + "/run/broken.json", "{\"cdiVersion\":").ok());
  ASSERT_TRUE(WriteFileAtomic(tmp.path() + "/run/notes.txt", "not a spec").ok());
  auto reg = cdi::Registry::Load({tmp.path() + "/etc", tmp.path() + "/run", tmp.path() + "/missing"});
  EXPECT_EQ(reg.devices().size(), 3u);
  ASSERT_EQ(reg.errors().size(), 1u);
  EXPECT_EQ(reg.errors()[0].path, tmp.path() + "/run/broken.json");
  EXPECT_NE(reg.errors()[0].reason.find("JSON"), std::string::npos);

  auto all = reg.Resolve("example.com/fake=all");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
  EXPECT_EQ(reg.Resolve("other.org/acc=a")->at(0).edits.nodes[0].host_path, "/dev/full");
  EXPECT_EQ(reg.Resolve("example.com/fake=9").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(reg.Resolve("fake0").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reg.Resolve("nobody.com/x=all").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace paddock::testing
