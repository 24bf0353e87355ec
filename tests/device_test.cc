// CDI devices in sandboxes, with a fake spec this test writes: a vendor
// device backed by /dev/zero under another name, a file mounted and an env
// var. The sandbox that holds it sees exactly those; another cannot reach
// the node; one holder at a time, released on delete, kept over restarts.
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <thread>

#include "daemon_fixture.h"

namespace paddock::testing {
namespace {

std::string Out(const json& r) { return r.value("stdout", "") + r.value("stderr", ""); }

class DeviceTest : public DaemonTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "daemon tests run as root";
    std::string dir = cdi_.path() + "/cdi";
    ASSERT_TRUE(MakeDirs(dir).ok());
    ASSERT_TRUE(WriteFileAtomic(cdi_.path() + "/info.txt", "fake driver 1.0\n").ok());
    ASSERT_TRUE(WriteFileAtomic(dir + "/fake.json", R"({
      "cdiVersion": "0.6.0", "kind": "example.com/fake",
      "containerEdits": {"env": ["FAKE_DRIVER=1"]},
      "devices": [
        {"name": "0", "containerEdits": {
          "deviceNodes": [{"path": "/dev/fake0", "hostPath": "/dev/zero"}],
          "mounts": [{"hostPath": ")" + cdi_.path() + R"(/info.txt", "containerPath": "/opt/fake/info.txt"}],
          "env": ["FAKE_VISIBLE=0"]}},
        {"name": "1", "containerEdits": {"deviceNodes": [{"path": "/dev/fake/ctl1", "hostPath": "/dev/null"}]}}
      ]})").ok());
    ASSERT_TRUE(WriteFileAtomic(dir + "/odd.yaml", R"(cdiVersion: "0.5.0"
kind: example.com/odd
devices:
  - name: hooked
    containerEdits:
      deviceNodes: [{path: /dev/odd0, hostPath: /dev/null}]
      hooks: [{hookName: createContainer, path: /bin/true}]
)").ok());
    ASSERT_TRUE(WriteFileAtomic(dir + "/broken.yaml", "cdiVersion: [\n").ok());
    // The NVIDIA toolkit's hooks, as nvidia-ctk writes them, over a library
    // (zlib under its soname) in a folder of its own; and a node granted
    // read-only, backed by a device no sandbox has otherwise.
    ASSERT_TRUE(WriteFileAtomic(dir + "/hooked.yaml", R"(cdiVersion: 0.6.0
kind: example.com/hooked
devices:
  - name: lib
    containerEdits:
      deviceNodes: [{path: /dev/hooked/ctl, hostPath: /dev/null}]
      mounts:
        - {hostPath: /lib/x86_64-linux-gnu/libz.so.1, containerPath: /opt/fakelib/libz.so.1, options: [ro, nosuid, nodev, bind]}
      hooks:
        - hookName: createContainer
          path: /usr/bin/nvidia-cdi-hook
          args: [nvidia-cdi-hook, create-symlinks, --link, libz.so.1::/opt/fakelink/libfake.so, --link, /opt/fakelib::/opt/fakelink/dir]
        - {hookName: createContainer, path: /usr/bin/nvidia-ctk, args: [nvidia-ctk, hook, chmod, --mode, "711", --path, /dev/hooked]}
        - {hookName: createContainer, path: /usr/bin/nvidia-cdi-hook, args: [nvidia-cdi-hook, enable-cuda-compat, --host-driver-version=570.133.20]}
        - {hookName: createContainer, path: /usr/bin/nvidia-cdi-hook, args: [nvidia-cdi-hook, disable-device-node-modification]}
        - {hookName: createContainer, path: /usr/bin/nvidia-cdi-hook, args: [nvidia-cdi-hook, update-ldcache, --folder, /opt/fakelib]}
  - name: ro
    containerEdits:
      deviceNodes: [{path: /dev/fakero, hostPath: )" + cdi_.path() + R"(/fuse, permissions: r}]
)").ok());
    // A node only a host group may open (as /dev/dri/card0 is video's):
    // given with the group (additionalGids), and without.
    ASSERT_EQ(::mknod((cdi_.path() + "/grouped").c_str(), S_IFCHR | 0660, makedev(1, 3)), 0);
    ASSERT_EQ(::chown((cdi_.path() + "/grouped").c_str(), 0, 4242), 0);
    ASSERT_EQ(::chmod((cdi_.path() + "/grouped").c_str(), 0660), 0);
    ASSERT_TRUE(WriteFileAtomic(dir + "/grouped.yaml", R"(cdiVersion: 0.6.0
kind: example.com/grouped
devices:
  - name: with
    containerEdits:
      deviceNodes: [{path: /dev/gnode, hostPath: )" + cdi_.path() + R"(/grouped}]
      additionalGids: [4242]
  - name: without
    containerEdits:
      deviceNodes: [{path: /dev/gnode, hostPath: )" + cdi_.path() + R"(/grouped}]
)").ok());
    // FUSE's numbers (opening it is harmless), readable and writable by all.
    ASSERT_EQ(::mknod((cdi_.path() + "/fuse").c_str(), S_IFCHR | 0666, makedev(10, 229)), 0);
    ASSERT_EQ(::chmod((cdi_.path() + "/fuse").c_str(), 0666), 0);
    extra_args_ = {"--cdi-dir", dir};
    DaemonTest::SetUp();
  }
  json Exec(const std::string& id, const std::string& cmd) {
    return Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", cmd}});
  }
  TempDir cdi_;
};

TEST_F(DeviceTest, AHeldDeviceIsExactlyWhatItsSpecSays) {
  json listed = Must("GET", "/v1/devices");
  ASSERT_EQ(listed["devices"].size(), 7u) << listed.dump();
  EXPECT_FALSE(listed["device_filter"].is_null()) << listed.dump();
  EXPECT_EQ(listed["devices"][0]["name"], "example.com/fake=0");
  EXPECT_TRUE(listed["devices"][0]["held_by"].is_null());
  ASSERT_EQ(listed["errors"].size(), 1u);
  EXPECT_NE(listed["errors"][0]["spec"].get<std::string>().find("broken.yaml"), std::string::npos);
  EXPECT_NE(listed["errors"][0]["error"].get<std::string>().find("YAML"), std::string::npos);

  json a = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"devices", {"example.com/fake=0"}}}, 201);
  std::string ida = a["id"];
  EXPECT_EQ(a["devices"], json({"example.com/fake=0"}));
  EXPECT_EQ(Out(Exec(ida, "test -c /dev/fake0 && head -c 4 /dev/fake0 | od -An -tx1 | tr -d ' '")), "00000000\n");
  EXPECT_EQ(Out(Exec(ida, "cat /opt/fake/info.txt; echo $FAKE_VISIBLE $FAKE_DRIVER")), "fake driver 1.0\n0 1\n");
  EXPECT_NE(Exec(ida, "echo x > /opt/fake/info.txt").value("exit_code", 0), 0) << "mounts are read-only";
  EXPECT_EQ(Out(Exec(ida, "ls /dev | grep -c fake")), "1\n") << "only the device it holds";

  // Another sandbox has no such node and cannot make one.
  json b = Must("POST", "/v1/sandboxes", {{"template", "busybox"}}, 201);
  std::string idb = b["id"];
  EXPECT_EQ(Out(Exec(idb, "test -e /dev/fake0; echo $?; mknod /tmp/z c 1 5 2>/dev/null; echo $?")), "1\n1\n");

  // One holder at a time: refused naming it, free again once it is deleted.
  std::string taken = MustFail("POST", "/v1/sandboxes", R"({"template":"busybox","devices":["example.com/fake=0"]})", 409);
  EXPECT_NE(taken.find(ida), std::string::npos) << taken;
  EXPECT_EQ(Must("GET", "/v1/devices")["devices"][0]["held_by"], ida);
  EXPECT_NE(api().Send("GET", "/metrics")->body.find("\npaddock_devices_held 1\n"), std::string::npos);

  // Kept over a stop and start, and over a restart of paddockd.
  Must("POST", "/v1/sandboxes/" + ida + "/stop");
  Must("POST", "/v1/sandboxes/" + ida + "/start");
  EXPECT_EQ(Out(Exec(ida, "test -c /dev/fake0; echo $?")), "0\n");
  StopDaemon(SIGTERM);
  StartDaemon();
  MustFail("POST", "/v1/sandboxes", R"({"template":"busybox","devices":["example.com/fake=0"]})", 409);
  Must("DELETE", "/v1/sandboxes/" + ida, nullptr, 204);
  json c = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"devices", {"example.com/fake=all"}}}, 201);
  EXPECT_EQ(c["devices"], json({"example.com/fake=0", "example.com/fake=1"}));
  EXPECT_EQ(Out(Exec(c["id"], "test -c /dev/fake/ctl1 && test -c /dev/fake0; echo $?")), "0\n");
}

TEST_F(DeviceTest, WhatCannotBeHonouredIsRefusedByName) {
  std::string hooked = MustFail("POST", "/v1/sandboxes", R"({"template":"busybox","devices":["example.com/odd=hooked"]})", 501);
  EXPECT_NE(hooked.find("the hook '/bin/true'"), std::string::npos) << hooked;
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"devices":["example.com/fake=7"]})", 404).find("fake=7"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"devices":["fake0"]})", 400).find("CDI name"), std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"devices":"example.com/fake=0"})", 400).find("devices"),
            std::string::npos);
  EXPECT_TRUE(Must("GET", "/v1/sandboxes")["sandboxes"].empty());
  // E2B's create, by its metadata.
  json e2b = Must("POST", "/v2/sandboxes",
                  {{"templateID", "base"}, {"metadata", {{"paddock.devices", "example.com/fake=1"}}}}, 201);
  EXPECT_EQ(Must("GET", "/v1/sandboxes/" + e2b["sandboxID"].get<std::string>())["devices"],
            json({"example.com/fake=1"}));
  std::string cli = "PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH;
  std::string listed = Shell(cli + " devices");
  EXPECT_NE(listed.find("unreadable spec"), std::string::npos) << listed;
  EXPECT_NE(listed.find("device access limited by the kernel: "), std::string::npos) << listed;
}

// What the NVIDIA toolkit's hooks ask is done by Paddock: the links, the
// mode, the library folder in ld.so.cache (by the sandbox's own ldconfig).
TEST_F(DeviceTest, TheToolkitsHooksAreDoneByPaddock) {
  json a = Must("POST", "/v1/sandboxes", {{"devices", {"example.com/hooked=lib"}}}, 201);
  std::string id = a["id"];
  EXPECT_EQ(Out(Exec(id, "readlink /opt/fakelink/libfake.so /opt/fakelink/dir; stat -c %a /dev/hooked")),
            "libz.so.1\n/opt/fakelib\n711\n");
  EXPECT_EQ(Out(Exec(id, "cat /etc/ld.so.conf.d/00-paddock-cdi.conf | grep -v '^#'")), "/opt/fakelib\n");
  EXPECT_EQ(Out(Exec(id, "ldconfig -p | grep -c '=> /opt/fakelib/libz.so.1'")), "1\n");
  // Done again at each start (a link the sandbox removed comes back).
  Exec(id, "rm /opt/fakelink/libfake.so");
  Must("POST", "/v1/sandboxes/" + id + "/stop");
  Must("POST", "/v1/sandboxes/" + id + "/start");
  EXPECT_EQ(Out(Exec(id, "readlink /opt/fakelink/libfake.so")), "libz.so.1\n");
  // A sandbox without ldconfig (busybox) still gets the links.
  Must("DELETE", "/v1/sandboxes/" + id, nullptr, 204);
  json b = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"devices", {"example.com/hooked=lib"}}}, 201);
  EXPECT_EQ(Out(Exec(b["id"], "readlink /opt/fakelink/libfake.so; test -e /etc/ld.so.cache; echo $?")),
            "libz.so.1\n1\n");
  // CUDA's forward-compatibility libraries go first once the image has some
  // newer than the host's driver (570 here), not before, and not older ones.
  const std::string conf = "grep -v '^#' /etc/ld.so.conf.d/00-paddock-cdi.conf";
  EXPECT_EQ(Out(Exec(b["id"], conf)), "/opt/fakelib\n");
  Exec(b["id"], "mkdir -p /usr/local/cuda/compat && touch /usr/local/cuda/compat/libcuda.so.560.35.03");
  Must("POST", "/v1/sandboxes/" + b["id"].get<std::string>() + "/stop");
  Must("POST", "/v1/sandboxes/" + b["id"].get<std::string>() + "/start");
  EXPECT_EQ(Out(Exec(b["id"], conf)), "/opt/fakelib\n");
  Exec(b["id"], "touch /usr/local/cuda/compat/libcuda.so.575.51.03");
  Must("POST", "/v1/sandboxes/" + b["id"].get<std::string>() + "/stop");
  Must("POST", "/v1/sandboxes/" + b["id"].get<std::string>() + "/start");
  EXPECT_EQ(Out(Exec(b["id"], conf)), "/usr/local/cuda/compat\n/opt/fakelib\n");
}

// A node a host group may open is opened by the sandbox given that group
// (CDI's additionalGids), by whichever user runs there, and by no other.
TEST_F(DeviceTest, AdditionalGroupsOpenWhatOnlyThatGroupMay) {
  json a = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"devices", {"example.com/grouped=with"}}}, 201);
  std::string id = a["id"];
  EXPECT_EQ(Out(Exec(id, "echo x > /dev/gnode && echo written; id -G")), "written\n0 65536\n");
  json as_nobody = Must("POST", "/v1/sandboxes/" + id + "/exec",
                        {{"command", "echo x > /dev/gnode && echo written"}, {"user", "nobody"}, {"cwd", "/"}});
  EXPECT_EQ(Out(as_nobody), "written\n");
  json b = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"devices", {"example.com/grouped=without"}}}, 201);
  EXPECT_NE(Out(Exec(b["id"], "echo x > /dev/gnode || echo refused")).find("refused"), std::string::npos);
}

// The kernel, not only the absence of a node, keeps a sandbox to what it
// was granted: a node granted read-only opens for reading, never writing.
TEST_F(DeviceTest, DeviceAccessIsLimitedByTheKernel) {
  json a = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"devices", {"example.com/hooked=ro"}}}, 201);
  std::string id = a["id"];
  EXPECT_EQ(Out(Exec(id, "exec 3</dev/fakero && echo read; (exec 4>/dev/fakero) 2>/dev/null || echo no-write")),
            "read\nno-write\n");
  EXPECT_EQ(Out(Exec(id, "echo x > /dev/null && head -c 1 /dev/zero | wc -c")), "1\n") << "the standard nodes";
}

}  // namespace
}  // namespace paddock::testing

namespace paddock::testing {
namespace {

// A host with the NVIDIA driver but no CDI spec, faked: a tree laid out
// like / with /dev/nvidia0 and /dev/nvidia1 (made here, backed by zero and
// null), the control and caps nodes, and the driver's folders.
class GpuTest : public DaemonTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "daemon tests run as root";
    const std::string r = root_.path();
    ASSERT_TRUE(MakeDirs(r + "/dev/nvidia-caps").ok());
    ASSERT_TRUE(MakeDirs(r + "/usr/local/nvidia/lib64").ok());
    ASSERT_TRUE(MakeDirs(r + "/usr/local/nvidia/bin").ok());
    ASSERT_TRUE(MakeDirs(r + "/cdi").ok());
    for (auto [name, minor] : {std::pair{"nvidia0", 5}, {"nvidia1", 3}, {"nvidiactl", 3}, {"nvidia-caps/nvidia-cap1", 3},
                               {"nvidia-uvm", 3}, {"nvidiafoo", 3}})
      ASSERT_EQ(::mknod((r + "/dev/" + name).c_str(), S_IFCHR | 0666, makedev(1, minor)), 0) << name;
    ASSERT_TRUE(WriteFileAtomic(r + "/dev/nvidia2", "not a node").ok());
    ASSERT_TRUE(WriteFileAtomic(r + "/usr/local/nvidia/lib64/libcuda.so.1", "fake cuda\n").ok());
    ASSERT_TRUE(WriteFileAtomic(r + "/usr/local/nvidia/bin/nvidia-smi", "#!/bin/sh\necho fake nvidia-smi\n", 0755).ok());
    // Driver libraries in the system's folder, known to its ld.so.cache
    // (made by the host's ldconfig over this tree), and the toolkit's own
    // library, which is not the driver's; nvidia-smi in /usr/bin.
    ASSERT_TRUE(MakeDirs(r + "/usr/lib/x86_64-linux-gnu").ok());
    ASSERT_TRUE(MakeDirs(r + "/etc").ok());
    ASSERT_TRUE(MakeDirs(r + "/usr/bin").ok());
    for (auto [file, soname] : {std::pair{"libcuda.so.550.54.14", "libcuda.so.1"},
                                {"libnvidia-ml.so.550.54.14", "libnvidia-ml.so.1"},
                                {"libnvidia-container.so.1.17.0", "libnvidia-container.so.1"}})
      Shell("printf 'int f(void){return 1;}' | cc -shared -fPIC -x c - -Wl,-soname," + std::string(soname) + " -o " +
            r + "/usr/lib/x86_64-linux-gnu/" + file);
    Shell("ldconfig -r " + r + " 2>/dev/null");
    ASSERT_TRUE(PathExists(r + "/etc/ld.so.cache"));
    ASSERT_TRUE(WriteFileAtomic(r + "/usr/bin/nvidia-smi", "#!/bin/sh\necho fake host nvidia-smi\n", 0755).ok());
    extra_args_ = {"--gpu-root", r, "--cdi-dir", r + "/cdi"};
    DaemonTest::SetUp();
  }
  json Exec(const std::string& id, const std::string& cmd) {
    return Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", cmd}});
  }
  TempDir root_;
};

TEST_F(GpuTest, DriverFoundWithoutASpecAndGpusGivenByCountIndexOrAll) {
  json gpus = Must("GET", "/v1/gpus")["gpus"];
  ASSERT_EQ(gpus.size(), 2u) << gpus.dump();
  EXPECT_EQ(gpus[0]["name"], "nvidia.com/gpu=0");
  EXPECT_EQ(gpus[1]["id"], "1");
  EXPECT_EQ(gpus[0]["nodes"], json({"/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-caps/nvidia-cap1"}));

  json a = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"gpus", "1"}}, 201);
  EXPECT_EQ(a["devices"], json({"nvidia.com/gpu=0"}));
  std::string ida = a["id"];
  EXPECT_EQ(Out(Exec(ida, "head -c 2 /dev/nvidia0 | od -An -tx1 | tr -d ' '; test -e /dev/nvidia1; echo $?; "
                          "ls /dev/nvidia-caps; cat /usr/local/nvidia/lib64/libcuda.so.1; "
                          "/usr/local/nvidia/bin/nvidia-smi; echo $LD_LIBRARY_PATH")),
            "0000\n1\nnvidia-cap1\nfake cuda\nfake nvidia-smi\n/usr/local/nvidia/lib64\n");
  // The libraries the host's ld.so.cache lists: the driver's, each with its
  // soname link; not the toolkit's.
  const std::string lib = "/usr/lib/x86_64-linux-gnu/";
  EXPECT_EQ(Out(Exec(ida, "readlink " + lib + "libcuda.so.1; readlink " + lib + "libnvidia-ml.so.1; ls " + lib +
                              "; /usr/bin/nvidia-smi")),
            "libcuda.so.550.54.14\nlibnvidia-ml.so.550.54.14\nlibcuda.so.1\nlibcuda.so.550.54.14\n"
            "libnvidia-ml.so.1\nlibnvidia-ml.so.550.54.14\nfake host nvidia-smi\n");
  json b = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"gpus", "1"}}, 201);
  EXPECT_EQ(b["devices"], json({"nvidia.com/gpu=1"})) << "the next free one";
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"template":"busybox","gpus":"1"})", 503).find("0 are free"),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"template":"busybox","gpus":"device=0"})", 409).find(ida),
            std::string::npos);
  EXPECT_NE(MustFail("POST", "/v1/sandboxes", R"({"template":"busybox","gpus":"two"})", 400).find("gpus 'two'"),
            std::string::npos);
  // The host template's /usr is the host's: a driver file this host has not is refused, naming it.
  Must("DELETE", "/v1/sandboxes/" + b["id"].get<std::string>(), nullptr, 204);
  std::string held_usr = MustFail("POST", "/v1/sandboxes", R"({"gpus":"1"})", 409);
  EXPECT_NE(held_usr.find("cannot hold"), std::string::npos) << held_usr;
  b = Must("POST", "/v1/sandboxes", {{"template", "busybox"}, {"gpus", "1"}}, 201);
  EXPECT_TRUE(Must("GET", "/v1/sandboxes")["sandboxes"].size() == 2u) << "the refused one left nothing";
  EXPECT_EQ(Must("GET", "/v1/gpus")["gpus"][1]["held_by"], b["id"]);
  std::string listed = Shell("PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH + " gpus");
  EXPECT_NE(listed.find(ida), std::string::npos) << listed;

  Must("DELETE", "/v1/sandboxes/" + ida, nullptr, 204);
  Must("DELETE", "/v1/sandboxes/" + b["id"].get<std::string>(), nullptr, 204);
  std::string all = Shell("PADDOCK_SOCKET=" + socket_ + " " + PADDOCK_CLI_PATH + " create -t busybox --gpus all");
  ASSERT_FALSE(all.empty());
  all.pop_back();
  EXPECT_EQ(Must("GET", "/v1/sandboxes/" + all)["devices"], json({"nvidia.com/gpu=0", "nvidia.com/gpu=1"}));
  Must("DELETE", "/v1/sandboxes/" + all, nullptr, 204);

  // Counts asked at once get different GPUs: each is picked as it is claimed.
  // One of them through E2B's metadata.
  std::string rest_body = R"({"template":"busybox","gpus":"1"})";
  std::string e2b_body = R"({"templateID":"busybox","metadata":{"paddock.gpus":"1"}})";
  std::vector<std::thread> creators;
  std::vector<int> codes(2);
  for (int i = 0; i < 2; ++i)
    creators.emplace_back([&, i] {
      auto r = api().Send("POST", i ? "/v2/sandboxes" : "/v1/sandboxes", i ? e2b_body : rest_body);
      codes[i] = r.ok() ? r->status : -1;
      if (r.ok() && r->status != 201) ADD_FAILURE() << r->body;
    });
  for (auto& t : creators) t.join();
  EXPECT_EQ(codes, std::vector<int>({201, 201}));
  json held = Must("GET", "/v1/gpus")["gpus"];
  ASSERT_EQ(held.size(), 2u);
  EXPECT_FALSE(held[0]["held_by"].is_null());
  EXPECT_FALSE(held[1]["held_by"].is_null());
  EXPECT_NE(held[0]["held_by"], held[1]["held_by"]);
  // Each holder's GPU in /metrics and in E2B's metrics.
  std::string metrics = api().Send("GET", "/metrics")->body;
  for (int i = 0; i < 2; ++i) {
    std::string holder = held[i]["held_by"];
    EXPECT_NE(metrics.find("paddock_sandbox_device{device=\"nvidia.com/gpu=" + std::to_string(i) + "\",sandbox=\"" +
                           holder + "\"} 1"),
              std::string::npos)
        << metrics;
    json m = Must("GET", "/sandboxes/" + holder + "/metrics");
    ASSERT_EQ(m.size(), 1u) << m.dump();
    EXPECT_EQ(m[0]["gpuCount"], 1);
    EXPECT_EQ(m[0]["devices"], json({"nvidia.com/gpu=" + std::to_string(i)}));
  }
}

}  // namespace
}  // namespace paddock::testing
