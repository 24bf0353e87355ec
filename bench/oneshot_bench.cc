// oneshot_bench: the one-shot a newcomer tries first, as whole processes,
// side by side.
//
//   oneshot_bench [--count N] [--template T]
//
// `paddock run --template T -- true` (the CLI, against a paddockd this bench
// starts with its defaults, warm shells included) and `runc run` of the same
// root filesystem running /bin/true: N (100) of each, alternating, after
// five of each to warm up. Prints p50/p99 of each and the ratio of the
// medians. Asserts nothing.
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "base/fs.h"
#include "daemon.h"
#include "runc.h"
#include "samples.h"

using namespace paddock;

namespace {

double Now() { return MonotonicNanos() / 1e6; }

}  // namespace

int main(int argc, char** argv) {
  int count = 100;
  std::string tmpl = "busybox";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--count" && i + 1 < argc) count = std::atoi(argv[++i]);
    else if (a == "--template" && i + 1 < argc) tmpl = argv[++i];
    else {
      std::fprintf(stderr, "usage: oneshot_bench [--count N] [--template T]\n");
      return 2;
    }
  }
  bench::OwnPaddockd daemon = bench::StartOwnPaddockd("pdk-oneshot", {PADDOCKD_PATH, "--init", PADDOCK_INIT_PATH});
  const std::string& state = daemon.state;
  const std::string& sock = daemon.sock;
  ::setenv("PADDOCK_SOCKET", sock.c_str(), 1);
  std::string bundle = state + "/runc-bundle", root = state + "/runc-state";
  // The template's layer exists once paddockd has made a sandbox of it.
  bench::Run({PADDOCK_CLI_PATH, "run", "--template", tmpl, "--", "true"});
  bool runc = bench::MakeRuncBundle(bundle, state + "/state/templates/" + tmpl + "-v1", R"(["/bin/true"])");

  bench::Samples paddock_ms, runc_ms;
  int paddock_failed = 0, runc_failed = 0;
  for (int i = -5; i < count; ++i) {  // the first five of each warm up
    double t0 = Now();
    int rc = bench::Run({PADDOCK_CLI_PATH, "run", "--template", tmpl, "--", "true"});
    double t = Now() - t0;
    if (i >= 0 && rc == 0) paddock_ms.ms.push_back(t);
    if (i >= 0 && rc != 0) ++paddock_failed;
    if (!runc) continue;
    t0 = Now();
    rc = bench::Run({"runc", "--root", root, "run", "--bundle", bundle, "pdk-oneshot-" + std::to_string(i + 5)});
    t = Now() - t0;
    if (i >= 0 && rc == 0) runc_ms.ms.push_back(t);
    if (i >= 0 && rc != 0) ++runc_failed;
  }
  ::kill(daemon.pid, SIGTERM);
  ::waitpid(daemon.pid, nullptr, 0);
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }

  std::printf("one-shot `true` in a fresh %s sandbox, whole process, %d of each, alternating\n\n", tmpl.c_str(),
              count);
  std::printf("%-40s %10s %10s %7s\n", "", "p50 ms", "p99 ms", "failed");
  std::printf("%-40s %10.1f %10.1f %7d\n", "paddock run -- true", paddock_ms.P(0.5), paddock_ms.P(0.99),
              paddock_failed);
  if (runc) {
    std::printf("%-40s %10.1f %10.1f %7d\n", "runc run (/bin/true)", runc_ms.P(0.5), runc_ms.P(0.99), runc_failed);
    std::printf("ratio of medians, runc / paddock: %.1fx\n", runc_ms.P(0.5) / paddock_ms.P(0.5));
  } else {
    std::printf("runc: not found, no peer figures\n");
  }
  (void)RemoveTree(state);
  return 0;
}
