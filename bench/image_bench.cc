// image_bench: what pulling and running images costs.
//
//   image_bench [--mb N] [--layers N] [--rounds N] [--count N]
//
// 1. Pull: an image of a busybox base and N layers of incompressible data
//    (about --mb MB in all, gzip), built here and pushed with skopeo to a
//    docker-registry on 127.0.0.1, pulled through paddockd's API (download,
//    verify, extract) and, as the peer in the same run, by `skopeo copy` to
//    a local OCI folder (download and verify only). Rounds alternate; the
//    image is removed between them. Seconds and MB/s per round, medians.
// 2. Create-to-ready through the API (POST /v1/sandboxes, then exec `true`)
//    from that image and from busybox, alternating, with paddockd's default
//    warm shells; p50/p99 and the image's difference at p50.
// All traffic is loopback. Prints figures; asserts nothing.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../tests/host_clean.h"
#include "../tests/oci_kit.h"
#include "base/fs.h"
#include "daemon.h"
#include "samples.h"

using namespace paddock;
using nlohmann::json;
using paddock::testing::ImageSpec;
using paddock::testing::LayerSpec;

namespace {

double Seconds(int64_t t0, int64_t t1) { return (t1 - t0) / 1e9; }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int mb = 100, layers = 5, rounds = 3, count = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (flag == "--mb")
      mb = v;
    else if (flag == "--layers")
      layers = v;
    else if (flag == "--rounds")
      rounds = v;
    else if (flag == "--count")
      count = v;
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "image_bench runs paddockd: run it as root\n");
    return 1;
  }
  testing::TempDir work;
  ::chmod(work.path().c_str(), 0711);
  std::string layout = work.path() + "/layout";
  ImageSpec spec;
  auto busybox = ReadFile("/bin/busybox");
  spec.layers.push_back({{{"bin/busybox", 'f', busybox.ok() ? *busybox : "", 0755},
                          {"bin/sh", 'l', "busybox", 0777},
                          {"bin/true", 'l', "busybox", 0777}},
                         testing::LayerCompression::kGzip});
  std::mt19937_64 rng(7);
  size_t per_layer = static_cast<size_t>(mb) * (1 << 20) / std::max(1, layers);
  for (int i = 0; i < layers; ++i) {
    std::string data(per_layer, '\0');
    for (size_t j = 0; j + 8 <= data.size(); j += 8) {
      uint64_t x = rng();
      std::memcpy(&data[j], &x, 8);
    }
    spec.layers.push_back(
        {{{"data/" + std::to_string(i), 'f', std::move(data)}}, testing::LayerCompression::kGzip});
  }
  testing::TagLayout(layout, "v1", testing::AddImage(layout, spec));
  spec.layers.clear();
  testing::Registry registry(work.path() + "/registry");
  if (std::string err = registry.Push(layout, "v1", "bench/img:v1"); !err.empty()) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 1;
  }
  std::string ref = registry.host() + "/bench/img:v1";

  std::string sock = work.path() + "/api.sock";
  pid_t pid = bench::SpawnPaddockd({PADDOCKD_PATH, "--state-dir", work.path() + "/state",
                                    "--socket", sock, "--init", PADDOCK_INIT_PATH},
                                   sock, work.path() + "/paddockd.log");
  if (pid < 0) {
    std::fprintf(stderr, "paddockd did not start\n");
    return 1;
  }
  cli::ApiClient api(sock);

  // 1. Pull against skopeo copy, alternating.
  std::vector<double> ours, theirs;
  double bytes = 0;
  for (int r = 0; r < rounds; ++r) {
    int64_t t0 = MonotonicNanos();
    auto pulled = api.Send("POST", "/v1/images/pull", json{{"ref", ref}}.dump());
    int64_t t1 = MonotonicNanos();
    if (!pulled.ok() || pulled->status != 200) {
      std::fprintf(stderr, "pull failed: %s\n",
                   pulled.ok() ? pulled->body.c_str() : pulled.status().ToString().c_str());
      break;
    }
    bytes = pulled->Json().value("size", 0.0);
    ours.push_back(Seconds(t0, t1));
    if (r + 1 < rounds) {
      (void)api.Send("DELETE", "/v1/images/" + ref);
      (void)api.Send("POST", "/v1/images/prune");
    }
    std::string dest = work.path() + "/skopeo-" + std::to_string(r);
    t0 = MonotonicNanos();
    auto [rc, out] = testing::RunProgram({"skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                          "docker://" + ref, "oci:" + dest + ":v1"});
    t1 = MonotonicNanos();
    if (rc != 0)
      std::fprintf(stderr, "skopeo failed: %s\n", out.c_str());
    else
      theirs.push_back(Seconds(t0, t1));
    (void)RemoveTree(dest);
  }
  double mbytes = bytes / 1048576.0;
  std::printf("pull of %.1f MB in %d layers from a registry on 127.0.0.1, %d rounds\n", mbytes,
              layers + 1, rounds);
  for (size_t i = 0; i < ours.size(); ++i)
    std::printf(
        "  round %zu: paddockd %.2f s (%.0f MB/s, extracted)   skopeo copy %.2f s (%.0f MB/s, not "
        "extracted)\n",
        i + 1, ours[i], mbytes / ours[i], i < theirs.size() ? theirs[i] : 0,
        i < theirs.size() ? mbytes / theirs[i] : 0);
  double a = Median(ours), b = Median(theirs);
  std::printf(
      "  median: paddockd %.2f s (%.0f MB/s), skopeo %.2f s (%.0f MB/s): paddockd/skopeo "
      "throughput %.2fx\n",
      a, mbytes / a, b, mbytes / b, a > 0 ? b / a : 0);

  // 2. Create-to-ready: image against busybox, alternating.
  bench::Samples from_image, from_busybox;
  auto create_ready = [&](const std::string& tmpl, bench::Samples& s) {
    int64_t t0 = MonotonicNanos();
    auto c = api.Send("POST", "/v1/sandboxes", json{{"template", tmpl}}.dump());
    if (!c.ok() || c->status != 201) {
      std::fprintf(stderr, "create from %s: %s\n", tmpl.c_str(),
                   c.ok() ? c->body.c_str() : c.status().ToString().c_str());
      return false;
    }
    std::string id = c->Json()["id"];
    auto e = api.Send("POST", "/v1/sandboxes/" + id + "/exec", json{{"cmd", {"true"}}}.dump());
    int64_t t1 = MonotonicNanos();
    bool ok = e.ok() && e->status == 200 && e->Json().value("exit_code", -1) == 0;
    if (!ok)
      std::fprintf(stderr, "exec in %s: %s\n", tmpl.c_str(),
                   e.ok() ? e->body.c_str() : e.status().ToString().c_str());
    if (ok) s.Add(t0, t1);
    (void)api.Send("DELETE", "/v1/sandboxes/" + id);
    return ok;
  };
  create_ready(ref, from_image);  // the first create puts the image among those kept warm
  from_image.ms.clear();
  for (int i = 0; i < count; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));  // the pools refill
    if (!create_ready(ref, from_image) || !create_ready("busybox", from_busybox)) {
      break;
    }
  }
  double pi = from_image.P(0.5), pb = from_busybox.P(0.5);
  std::printf("create-to-ready through the API (create + exec true), %d each, warm shells on\n",
              count);
  std::printf("  image (%d layers): p50 %.2f ms  p99 %.2f ms\n", layers + 1, pi,
              from_image.P(0.99));
  std::printf("  busybox:           p50 %.2f ms  p99 %.2f ms\n", pb, from_busybox.P(0.99));
  std::printf("  image - busybox at p50: %+.2f ms\n", pi - pb);

  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  return 0;
}
