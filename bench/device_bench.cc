// device_bench: what a CDI device costs a create, through paddockd's API on
// the unix socket (one client), as users see it.
//
//   device_bench [--count N]
//
// Starts a paddockd with no warm shells (a sandbox with a device never
// takes one, so each create here is cold alike) and a CDI spec this bench
// writes: `bench.example/fake=plain` (two device nodes, a mounted file, an
// env var: its nodes filtered by the kernel) and `bench.example/fake=hooked`
// (the same, with nvidia-ctk's create-symlinks and update-ldcache hooks,
// so the sandbox's own ldconfig runs). Creates N (100) sandboxes of each
// kind one after another, interleaved in a new order each round, each
// deleted and its teardown waited for, untimed: busybox without
// and with the plain device, host (which has ldconfig) without and with the
// hooked one. Prints p50/p99 and the differences. Asserts nothing.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "base/fs.h"
#include "cli/api_client.h"
#include "daemon.h"
#include "samples.h"

using namespace paddock;
using cli::json;

namespace {

double Now() { return MonotonicNanos() / 1e6; }

// One create, timed; then, untimed, its delete and the wait for its
// teardown (which runs after the delete answers, and would otherwise slow
// the next create).
void Measure(const bench::OwnPaddockd& d, bench::Samples& s, const json& body) {
  double t0 = Now();
  std::string id = bench::MustCall(d.sock, "POST", "/v1/sandboxes", body)["id"];
  s.ms.push_back(Now() - t0);
  bench::MustCall(d.sock, "DELETE", "/v1/sandboxes/" + id);
  for (int i = 0; i < 2000; ++i) {  // bounded: 2 s
    auto m = cli::ApiClient(d.sock).Send("GET", "/metrics");
    if (m.ok() && m->body.find("\npaddock_sandboxes_tearing_down 0\n") != std::string::npos) break;
    ::usleep(1000);
  }
  // And the host's dirty pages written: an overlay's unmount syncs its
  // filesystem, and one that wrote (ldconfig's cache) would bill the next
  // create for it.
  ::sync();
}

}  // namespace

int main(int argc, char** argv) {
  int count = 100;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--count" && i + 1 < argc) {
      count = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: device_bench [--count N]\n");
      return 2;
    }
  }
  char tmp[] = "/tmp/pdk-devbench-XXXXXX";
  if (!::mkdtemp(tmp)) return 1;
  const std::string dir = tmp;
  (void)MakeDirs(dir + "/cdi");
  ::mknod((dir + "/fuse").c_str(), S_IFCHR | 0666, makedev(10, 229));  // FUSE's numbers
  (void)WriteFileAtomic(dir + "/info.txt", "fake driver\n");
  const std::string edits = R"("deviceNodes": [{"path": "/dev/fake0", "hostPath": ")" + dir + R"(/fuse"},
                                               {"path": "/dev/fakectl", "hostPath": "/dev/null"}],
      "mounts": [{"hostPath": ")" + dir + R"(/info.txt", "containerPath": "/opt/fake/info.txt"}],
      "env": ["FAKE_VISIBLE=0"])";
  (void)WriteFileAtomic(dir + "/cdi/fake.json", R"({"cdiVersion": "0.6.0", "kind": "bench.example/fake", "devices": [
    {"name": "plain", "containerEdits": {)" + edits + R"(}},
    {"name": "hooked", "containerEdits": {)" + edits + R"(, "hooks": [
      {"hookName": "createContainer", "path": "/usr/bin/nvidia-cdi-hook",
       "args": ["nvidia-cdi-hook", "create-symlinks", "--link", "info.txt::/opt/fake/link"]},
      {"hookName": "createContainer", "path": "/usr/bin/nvidia-cdi-hook",
       "args": ["nvidia-cdi-hook", "update-ldcache", "--folder", "/opt/fake"]}]}}]})");
  ::chmod(dir.c_str(), 0711);

  bench::OwnPaddockd d = bench::StartOwnPaddockd(
      "pdk-devbench", {PADDOCKD_PATH, "--init", PADDOCK_INIT_PATH, "--warm-shells", "0", "--cdi-dir", dir + "/cdi"});
  bench::Samples busybox, busybox_dev, host, host_hooked;
  const std::vector<std::pair<bench::Samples*, json>> kinds = {
      {&busybox, {{"template", "busybox"}}},
      {&busybox_dev, {{"template", "busybox"}, {"devices", {"bench.example/fake=plain"}}}},
      {&host, {{"template", "host"}}},
      {&host_hooked, {{"template", "host"}, {"devices", {"bench.example/fake=hooked"}}}}};
  // Each round in a new order: a create right after the ldconfig one is
  // slower (the host catching up on it), and no kind should always be that one.
  std::mt19937 rng(42);
  std::vector<size_t> order = {0, 1, 2, 3};
  for (int i = 0; i < count; ++i) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t k : order) Measure(d, *kinds[k].first, kinds[k].second);
  }
  bench::StopOwnPaddockd(d);
  (void)RemoveTree(dir);
  std::printf("cold creates, %d of each, interleaved in shuffled rounds\n", count);
  std::printf("busybox:                           p50 %.2f ms  p99 %.2f ms\n", busybox.P(0.5), busybox.P(0.99));
  std::printf("busybox + device (2 nodes, file):  p50 %.2f ms  p99 %.2f ms  (%+.2f ms at p50)\n", busybox_dev.P(0.5),
              busybox_dev.P(0.99), busybox_dev.P(0.5) - busybox.P(0.5));
  std::printf("host:                              p50 %.2f ms  p99 %.2f ms\n", host.P(0.5), host.P(0.99));
  std::printf("host + device with hooks (ldconfig): p50 %.2f ms  p99 %.2f ms  (%+.2f ms at p50)\n",
              host_hooked.P(0.5), host_hooked.P(0.99), host_hooked.P(0.5) - host.P(0.5));
  return 0;
}
