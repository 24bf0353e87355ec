// template_bench: templates built from steps, through paddockd's API on the
// unix socket (one client), as users see them.
//
//   template_bench [--count N]
//
// Starts its own paddockd (its defaults: warm shells, networking). Builds a
// busybox template of 4 run steps, 2 config steps and a start command
// (busybox httpd, ready when port 8080 listens): 5 times with no_cache
// (every step runs: a sandbox per step, a snapshot of each), then N (20)
// times unchanged (every step from the cache), each timed from the POST to
// the build's "ready" (polled every 2 ms). Then N sandboxes are created from
// the template (each answered once its server listens) against N from
// busybox and N from the template's last step snapshot without its start
// command, in the same run. Prints p50/p99 and ratios. Asserts nothing.
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

std::string sock;

double Now() { return MonotonicNanos() / 1e6; }

json Must(const std::string& method, const std::string& target, const json& body = nullptr) {
  return bench::MustCall(sock, method, target, body);
}

json Spec(bool no_cache) {
  return {{"name", "bench-web"},
          {"from", "busybox"},
          {"no_cache", no_cache},
          {"steps",
           {{{"run", "mkdir -p /srv/www && echo '<h1>bench</h1>' > /srv/www/index.html"}},
            {{"env", {{"MODE", "bench"}}}},
            {{"run", "head -c 1048576 /dev/urandom > /srv/www/blob"}},
            {{"workdir", "/srv/www"}},
            {{"run", "echo $MODE > mode.txt"}},
            {{"run", "adduser -D -H web 2>/dev/null || true"}}}},
          {"start", "httpd -f -p 8080 -h /srv/www"},
          {"ready", {{"port", 8080}, {"timeout_s", 30}}}};
}

// One build, timed from the request to its end; exits if it failed.
double Build(bool no_cache) {
  double t0 = Now();
  std::string id = Must("POST", "/v1/templates", Spec(no_cache))["id"];
  for (;;) {
    json b = Must("GET", "/v1/builds/" + id + "?logs_offset=1000000");
    std::string st = b.value("status", "");
    if (st == "ready") return Now() - t0;
    if (st == "error") {
      std::fprintf(stderr, "the build failed: %s\n", b["error"].dump().c_str());
      std::exit(1);
    }
    ::usleep(2000);
  }
}

template <typename F>
void Measure(bench::Samples& s, F create) {
  double t0 = Now();
  std::string id = create();
  s.ms.push_back(Now() - t0);
  Must("DELETE", "/v1/sandboxes/" + id);
}

}  // namespace

int main(int argc, char** argv) {
  int count = 20;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--count" && i + 1 < argc) {
      count = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: template_bench [--count N]\n");
      return 2;
    }
  }
  bench::OwnPaddockd daemon = bench::StartOwnPaddockd("pdk-tmplbench", {PADDOCKD_PATH, "--init", PADDOCK_INIT_PATH});
  sock = daemon.sock;
  bench::Samples cold, cached, from_template, from_busybox, from_step;
  for (int i = 0; i < 5; ++i) cold.ms.push_back(Build(true));
  for (int i = 0; i < count; ++i) cached.ms.push_back(Build(false));
  // The last step's snapshot: the template's files without its config.
  json tmpl = Must("GET", "/v1/templates/bench-web");
  std::string step = Must("GET", "/v1/snapshots/" + tmpl.value("snapshot", ""))["parent"];
  for (int i = 0; i < count; ++i) {
    Measure(from_template, [] { return Must("POST", "/v1/sandboxes", {{"template", "bench-web"}})["id"]; });
    Measure(from_busybox, [] { return Must("POST", "/v1/sandboxes", {{"template", "busybox"}})["id"]; });
    Measure(from_step, [&] { return Must("POST", "/v1/sandboxes", {{"snapshot", step}})["id"]; });
  }
  std::printf("build, 4 run steps (cold, no_cache): p50 %.1f ms  p99 %.1f ms  (5 builds)\n", cold.P(0.5),
              cold.P(0.99));
  std::printf("build, every step cached:           p50 %.1f ms  p99 %.1f ms  (%.1fx faster than cold)\n",
              cached.P(0.5), cached.P(0.99), cold.P(0.5) / cached.P(0.5));
  std::printf("create from the template (waits for its server): p50 %.1f ms  p99 %.1f ms\n", from_template.P(0.5),
              from_template.P(0.99));
  std::printf("create from its last step (no start command):    p50 %.1f ms  p99 %.1f ms\n", from_step.P(0.5),
              from_step.P(0.99));
  std::printf("create from busybox:                             p50 %.1f ms  p99 %.1f ms\n", from_busybox.P(0.5),
              from_busybox.P(0.99));
  std::printf("template / busybox: %.1fx at p50\n", from_template.P(0.5) / from_busybox.P(0.5));
  Must("DELETE", "/v1/templates/bench-web");
  bench::StopOwnPaddockd(daemon);
  return 0;
}
