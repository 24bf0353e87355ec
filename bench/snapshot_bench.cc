// snapshot_bench: snapshots against the size of a sandbox's writable layer,
// through paddockd's API on the unix socket (one client), as users see them.
//
//   snapshot_bench [--sizes MB,MB,...] [--count N]
//
// Starts its own paddockd (its defaults: warm shells, networking). For each
// size (1, 100 and 1000 MB unless given): a busybox sandbox writes that many
// random bytes; then it is snapshotted 3 times (POST .../snapshots), N (30)
// sandboxes are created from the snapshot one after another (POST
// /v1/sandboxes {"snapshot"}, each deleted untimed before the next), and N
// are forked from the sandbox itself (E2B's POST /sandboxes/{id}/fork,
// which copies its layer), for comparison in the same run. Prints p50/p99
// of each and the fork/create ratio of the medians. Asserts nothing.
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "base/fs.h"
#include "cli/api_client.h"
#include "daemon.h"
#include "samples.h"

using namespace paddock;
using cli::json;

namespace {

std::string sock;

double Now() { return MonotonicNanos() / 1e6; }

json Must(const std::string& method, const std::string& target, const json& body = nullptr) {
  return bench::MustCall(sock, method, target, body);
}

// Times `call`, which returns what to delete afterwards (untimed).
template <typename F>
void Measure(bench::Samples& s, F call) {
  double t0 = Now();
  std::string gone = call();
  s.ms.push_back(Now() - t0);
  Must("DELETE", "/v1/sandboxes/" + gone);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes = {1, 100, 1000};
  int count = 30;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--count" && i + 1 < argc) {
      count = std::atoi(argv[++i]);
    } else if (a == "--sizes" && i + 1 < argc) {
      sizes.clear();
      std::stringstream list(argv[++i]);
      for (std::string mb; std::getline(list, mb, ',');) sizes.push_back(std::atoi(mb.c_str()));
    } else {
      std::fprintf(stderr, "usage: snapshot_bench [--sizes MB,MB,...] [--count N]\n");
      return 2;
    }
  }
  bench::OwnPaddockd daemon = bench::StartOwnPaddockd("pdk-snapbench", {PADDOCKD_PATH, "--init", PADDOCK_INIT_PATH});
  sock = daemon.sock;

  std::printf("%8s  %16s  %24s  %24s  %10s\n", "layer", "snapshot p50", "create-from-snap p50/p99",
              "fork p50/p99", "fork/snap");
  for (int mb : sizes) {
    std::string src = Must("POST", "/v1/sandboxes", {{"template", "busybox"}})["id"];
    json wrote = Must("POST", "/v1/sandboxes/" + src + "/exec",
                      {{"command", "mkdir -p /data && head -c " + std::to_string(int64_t{mb} << 20) +
                                       " /dev/urandom > /data/blob"},
                       {"timeout", 600}});
    if (wrote.value("exit_code", -1) != 0) {
      std::fprintf(stderr, "writing %d MB failed: %s\n", mb, wrote.dump().c_str());
      return 1;
    }
    ::sync();  // as a snapshot of a long-lived sandbox finds it: on disk

    bench::Samples snap_ms, create_ms, fork_ms;
    std::vector<std::string> snaps;
    for (int i = 0; i < 3; ++i) {
      double t0 = Now();
      snaps.push_back(Must("POST", "/v1/sandboxes/" + src + "/snapshots", json::object())["id"]);
      snap_ms.ms.push_back(Now() - t0);
    }
    for (int i = 0; i < count; ++i)
      Measure(create_ms, [&] { return Must("POST", "/v1/sandboxes", {{"snapshot", snaps[0]}})["id"]; });
    // A sandbox from the snapshot holds every byte of it.
    std::string check = Must("POST", "/v1/sandboxes", {{"snapshot", snaps[0]}})["id"];
    std::string size = Must("POST", "/v1/sandboxes/" + check + "/exec",
                            {{"command", "stat -c %s /data/blob"}})["stdout"];
    Must("DELETE", "/v1/sandboxes/" + check);
    if (std::atoll(size.c_str()) != (int64_t{mb} << 20)) {
      std::fprintf(stderr, "a sandbox from the snapshot has %s bytes, not %d MB\n", size.c_str(), mb);
      return 1;
    }
    for (int i = 0; i < count; ++i)
      Measure(fork_ms, [&] {
        json forks = Must("POST", "/sandboxes/" + src + "/fork", json::object());
        return forks.at(0).at("sandbox").value("sandboxID", "");
      });
    Must("DELETE", "/v1/sandboxes/" + src);
    for (const auto& s : snaps) Must("DELETE", "/v1/snapshots/" + s);

    double c50 = create_ms.P(0.5), f50 = fork_ms.P(0.5);
    char create[64], fork[64];
    std::snprintf(create, sizeof create, "%.1f / %.1f ms", c50, create_ms.P(0.99));
    std::snprintf(fork, sizeof fork, "%.1f / %.1f ms", f50, fork_ms.P(0.99));
    std::printf("%6d MB  %13.1f ms  %24s  %24s  %9.1fx\n", mb, snap_ms.P(0.5), create, fork, f50 / c50);
    std::fflush(stdout);
  }
  bench::StopOwnPaddockd(daemon);
  return 0;
}
