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

struct Daemon {
  std::string state, sock;
  pid_t pid = -1;
};

Daemon Start(const std::vector<std::string>& extra) {
  char dir_tmpl[] = "/tmp/pdk-diskbench-XXXXXX";
  Daemon d;
  d.state = ::mkdtemp(dir_tmpl);
  ::chmod(d.state.c_str(), 0711);
  d.sock = d.state + "/api.sock";
  std::vector<std::string> args = {PADDOCKD_PATH, "--state-dir", d.state + "/state", "--socket", d.sock,
                                   "--init", PADDOCK_INIT_PATH};
  args.insert(args.end(), extra.begin(), extra.end());
  d.pid = bench::SpawnPaddockd(args, d.sock, d.state + "/paddockd.log");
  if (d.pid <= 0) {
    std::fprintf(stderr, "paddockd did not start (see %s/paddockd.log)\n", d.state.c_str());
    std::exit(1);
  }
  ::usleep(500 * 1000);  // its warm shells
  return d;
}

void Stop(Daemon& d) {
  ::kill(d.pid, SIGTERM);
  ::waitpid(d.pid, nullptr, 0);
  (void)RemoveTree(d.state);
}

void Measure(const Daemon& d, bench::Samples& s, const json& body) {
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
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  bench::Samples plain, pool_free, pool_limited;
  Daemon without = Start({});
  for (int i = 0; i < count; ++i) Measure(without, plain, {{"template", "busybox"}});
  Stop(without);
  Daemon with = Start({"--disk-pool", "4G"});
  for (int i = 0; i < count; ++i) {
    Measure(with, pool_free, {{"template", "busybox"}});
    Measure(with, pool_limited, {{"template", "busybox"}, {"disk", "1g"}});
  }
  Stop(with);
  std::printf("create, no disk pool:            p50 %.2f ms  p99 %.2f ms\n", plain.P(0.5), plain.P(0.99));
  std::printf("create on the pool, no limit:    p50 %.2f ms  p99 %.2f ms\n", pool_free.P(0.5), pool_free.P(0.99));
  std::printf("create on the pool, disk 1g:     p50 %.2f ms  p99 %.2f ms\n", pool_limited.P(0.5),
              pool_limited.P(0.99));
  std::printf("a limit costs %+.2f ms at p50 (against no pool: %+.2f ms)\n", pool_limited.P(0.5) - pool_free.P(0.5),
              pool_limited.P(0.5) - plain.P(0.5));
  return 0;
}
