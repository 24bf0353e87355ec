// disk_bench: what a disk limit costs a create, through paddockd's API on
// the unix socket (one client), as users see it.
//
//   disk_bench [--count N]
//
// Starts a paddockd without a disk pool, then one with a 4 GiB pool
// (--disk-pool: sandboxes' folders on XFS, each a project quota), each
// with its defaults (warm shells, networking). Creates N (200) busybox
// sandboxes one after another on each (deleted untimed after each), on the
// pool with and without `"disk": "1g"`, interleaved. Prints p50/p99 and the
// differences. Asserts nothing.
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "base/fs.h"
#include "cli/api_client.h"
#include "daemon.h"
#include "samples.h"

using namespace paddock;
using cli::json;

namespace {

double Now() { return MonotonicNanos() / 1e6; }

bench::OwnPaddockd Start(std::vector<std::string> extra) {
  std::vector<std::string> command = {PADDOCKD_PATH, "--init", PADDOCK_INIT_PATH};
  command.insert(command.end(), extra.begin(), extra.end());
  bench::OwnPaddockd d = bench::StartOwnPaddockd("pdk-diskbench", std::move(command));
  ::usleep(500 * 1000);  // its warm shells
  return d;
}

void Measure(const bench::OwnPaddockd& d, bench::Samples& s, const json& body) {
  double t0 = Now();
  std::string id = bench::MustCall(d.sock, "POST", "/v1/sandboxes", body)["id"];
  s.ms.push_back(Now() - t0);
  bench::MustCall(d.sock, "DELETE", "/v1/sandboxes/" + id);
}

}  // namespace

int main(int argc, char** argv) {
  int count = 200;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--count" && i + 1 < argc) {
      count = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: disk_bench [--count N]\n");
      return 2;
    }
  }
  bench::Samples plain, pool_free, pool_limited;
  bench::OwnPaddockd without = Start({});
  for (int i = 0; i < count; ++i) Measure(without, plain, {{"template", "busybox"}});
  bench::StopOwnPaddockd(without);
  bench::OwnPaddockd with = Start({"--disk-pool", "4G"});
  for (int i = 0; i < count; ++i) {
    Measure(with, pool_free, {{"template", "busybox"}});
    Measure(with, pool_limited, {{"template", "busybox"}, {"disk", "1g"}});
  }
  bench::StopOwnPaddockd(with);
  std::printf("create, no disk pool:            p50 %.2f ms  p99 %.2f ms\n", plain.P(0.5), plain.P(0.99));
  std::printf("create on the pool, no limit:    p50 %.2f ms  p99 %.2f ms\n", pool_free.P(0.5), pool_free.P(0.99));
  std::printf("create on the pool, disk 1g:     p50 %.2f ms  p99 %.2f ms\n", pool_limited.P(0.5),
              pool_limited.P(0.99));
  std::printf("a limit costs %+.2f ms at p50 (against no pool: %+.2f ms)\n", pool_limited.P(0.5) - pool_free.P(0.5),
              pool_limited.P(0.5) - plain.P(0.5));
  return 0;
}
