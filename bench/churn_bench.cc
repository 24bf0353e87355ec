// churn_bench: sandboxes created and deleted by the thousand, as an RL
// rollout farm drives paddockd, through its HTTP API on the unix socket.
//
//   churn_bench [--count N] [--clients C] [--seconds S] [--template T]
//               [--cmd "WORD..."] [--warm-shells N] [--rounds R] [--no-network]
//               [--no-runc] [--timeline FILE]
//
// Starts its own paddockd over a temporary state folder, then with C
// concurrent clients (50): N creates (1,000), an exec of `true` in each, N
// deletes, each phase's rate and p50/p99; then S seconds (60) of steady
// churn, every client looping create -> exec `true` -> delete: cycles per
// second and each step's p50/p99. The peer, in the same run: runc's CLI
// over the same root filesystem, create (run -d) -> exec `true` -> kill ->
// delete, one after another (runc has no daemon to take concurrent
// clients). --cmd runs another command than `true` in each (words split at
// spaces): `ping -c 1 127.0.0.1` makes each sandbox send a packet, so its
// network slot is destroyed at delete rather than reused. --warm-shells N
// starts paddockd with N warm shells of the template (and none of the other
// built-in) and waits for them before the first phase: a pool sized to a
// burst, as a farm that knows its batch sizes would run it (default: 4 of
// each built-in), and again for the pool to refill before the steady churn,
// whose end shows how many were left. Each holds a network slot, and a
// bridge holds 1,023. --rounds R repeats the burst (creates, execs,
// deletes) R times, each once the warm pool has refilled to its target,
// which the misses of the round before may have grown (--warm-shells-max):
// what a farm running batches of the same size sees from its second batch.
// --timeline FILE writes every request's start and latency, one per line
// (`create.1 812.345 31.2`: the first burst's creates; churn.create for the
// steady churn's), to see when the slow ones happen. The state folder goes
// under $TMPDIR (/tmp), which picks the filesystem measured. Asserts nothing.
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "cli/api_client.h"
#include "daemon.h"
#include "runc.h"
#include "samples.h"

using namespace paddock;
using bench::MakeRuncBundle;
using bench::Run;
using bench::Samples;
using cli::json;

namespace {

std::string state, sock;
pid_t daemon_pid = -1;

double Now() { return MonotonicNanos() / 1e6; }

std::vector<std::string> SplitWords(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

void StartDaemon(bool network, const std::string& tmpl, int warm_shells) {
  std::vector<std::string> args = {PADDOCKD_PATH, "--state-dir", state + "/state", "--socket", sock,
                                   "--init", PADDOCK_INIT_PATH};
  if (!network) args.push_back("--no-network");
  if (warm_shells >= 0) {
    args.insert(args.end(), {"--warm-shells", std::to_string(warm_shells), "--warm-templates", tmpl});
  }
  daemon_pid = bench::SpawnPaddockd(args, sock, state + "/paddockd.log");
  if (daemon_pid > 0) return;
  std::fprintf(stderr, "paddockd did not start (see %s/paddockd.log)\n", state.c_str());
  std::exit(1);
}

// One API call; false (with the error printed once per kind) if it failed.
bool Call(const std::string& method, const std::string& target, const json& body, json* out = nullptr) {
  auto r = cli::ApiClient(sock).Send(method, target, body.is_null() ? "" : body.dump());
  if (r.ok() && r->status < 300) {
    if (out) *out = r->body.empty() ? json::object() : r->Json();
    return true;
  }
  static std::mutex mu;
  static std::map<std::string, bool> said;
  std::string what = method + " " + target.substr(0, target.find('/', 4)) + ": " +
                     (r.ok() ? r->body.substr(0, 200) : r.status().ToString());
  std::lock_guard<std::mutex> lock(mu);
  if (!said[what]) std::fprintf(stderr, "failed: %s\n", what.c_str());
  said[what] = true;
  return false;
}

// Runs `work(i)` for i in [0, n) on `clients` threads; returns the wall time (ms).
template <class Work>
double Parallel(int n, int clients, Work work) {
  std::atomic<int> next{0};
  double t0 = Now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < n;) work(i);
    });
  for (auto& t : threads) t.join();
  return Now() - t0;
}

struct Phase {
  std::mutex mu;
  Samples ms;
  int failed = 0;
  std::vector<std::pair<double, double>> timeline;  // (start, ms) of each, for --timeline
  void Add(double t0, bool ok) {
    double t = Now() - t0;
    std::lock_guard<std::mutex> lock(mu);
    if (ok) ms.ms.push_back(t);
    else ++failed;
    timeline.emplace_back(t0, ok ? t : -1);
  }
  // One line per request: `what start_ms latency_ms` (start from `origin`,
  // in order of start; -1 for a failure).
  void WriteTimeline(std::FILE* f, const std::string& what, double origin) {
    std::sort(timeline.begin(), timeline.end());
    for (auto [t0, t] : timeline) std::fprintf(f, "%s %.3f %.3f\n", what.c_str(), t0 - origin, t);
  }
};

// A rate only for a phase timed on its own (wall_ms > 0); "-" for the
// steps of a cycle, whose rate is the cycle's.
void PrintRow(const char* what, Phase& p, double wall_ms) {
  size_t n = p.ms.ms.size();
  char rate[16] = "-";
  if (wall_ms > 0) std::snprintf(rate, sizeof rate, "%.1f", n / (wall_ms / 1000));
  std::printf("%-24s %8zu %9s %10.1f %10.1f %7d\n", what, n, rate, p.ms.P(0.5), p.ms.P(0.99), p.failed);
}

// runc's create -> exec -> kill -> delete, `seconds` long (at most 1,000
// cycles), one after another. Returns cycles per second; 0 without runc.
double RuncChurn(const std::string& rootfs, double seconds, Phase& cycle) {
  std::string bundle = state + "/runc-bundle", root = state + "/runc-state";
  if (!MakeRuncBundle(bundle, rootfs)) return 0;
  double t0 = Now();
  int n = 0;
  for (; n < 1000 && Now() - t0 < seconds * 1000; ++n) {
    std::string id = "pdk-churn-" + std::to_string(n);
    double c0 = Now();
    int rc = Run({"runc", "--root", root, "run", "-d", "--bundle", bundle, id});
    rc |= Run({"runc", "--root", root, "exec", id, "/bin/true"});
    rc |= Run({"runc", "--root", root, "kill", id, "KILL"});
    for (int w = 0; w < 1000 && Run({"runc", "--root", root, "delete", id}) != 0; ++w) ::usleep(1000);
    cycle.Add(c0, rc == 0);
  }
  return n / ((Now() - t0) / 1000);
}

// Waits (up to 2 minutes) until paddockd has finished tearing down every
// deleted sandbox; returns how long that took (ms), or -1.
// The value of a series in /metrics (`name` or `name{labels}`), or -1.
double Gauge(const std::string& name) {
  auto r = cli::ApiClient(sock).Send("GET", "/metrics", "");
  if (!r.ok()) return -1;
  size_t at = r->body.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::atof(r->body.c_str() + at + name.size() + 2);
}

// Waits (at most 10 min) until `n` warm shells are ready; the wait in ms.
double WaitForWarmShells(int n) {
  double t0 = Now();
  while (Now() - t0 < 600000 && Gauge("paddock_warm_shells") < n) ::usleep(20000);
  return Now() - t0;
}

double WaitForTeardowns() {
  double t0 = Now();
  while (Now() - t0 < 120000) {
    auto r = cli::ApiClient(sock).Send("GET", "/metrics", "");
    if (r.ok() && r->body.find("\npaddock_sandboxes_tearing_down 0\n") != std::string::npos) return Now() - t0;
    ::usleep(5000);
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  int count = 1000, clients = 50;
  double seconds = 60;
  std::string tmpl = "busybox";
  std::vector<std::string> cmd = {"/bin/true"};
  bool network = true, with_runc = true;
  int warm_shells = -1, rounds = 1;
  std::string timeline;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--count" && i + 1 < argc) count = std::atoi(argv[++i]);
    else if (a == "--clients" && i + 1 < argc) clients = std::atoi(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (a == "--template" && i + 1 < argc) tmpl = argv[++i];
    else if (a == "--cmd" && i + 1 < argc) cmd = SplitWords(argv[++i]);
    else if (a == "--warm-shells" && i + 1 < argc) warm_shells = std::atoi(argv[++i]);
    else if (a == "--rounds" && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else if (a == "--no-network") network = false;
    else if (a == "--no-runc") with_runc = false;
    else if (a == "--timeline" && i + 1 < argc) timeline = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: churn_bench [--count N] [--clients C] [--seconds S] [--template T] [--cmd \"WORD...\"] "
                   "[--warm-shells N] [--rounds R] [--no-network] [--no-runc] [--timeline FILE]\n");
      return 2;
    }
  }
  // Under $TMPDIR, to measure another filesystem than /tmp's.
  const char* tmp = std::getenv("TMPDIR");
  std::string dir_tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/pdk-churn-XXXXXX";
  if (!::mkdtemp(dir_tmpl.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  state = dir_tmpl;
  ::chmod(state.c_str(), 0711);
  sock = state + "/api.sock";
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  if (warm_shells >= 0 && tmpl != "busybox" && tmpl != "host") {
    std::fprintf(stderr, "--warm-shells needs a built-in --template (busybox or host)\n");
    return 2;
  }
  StartDaemon(network, tmpl, warm_shells);
  double warm_wait_ms = warm_shells > 0 ? WaitForWarmShells(warm_shells) : 0;
  json spec = {{"template", tmpl}};
  json tru = {{"cmd", cmd}};

  // A burst: every create, then an exec in each, then every delete.
  struct Burst {
    Phase create, exec, del;
    double create_ms = 0, exec_ms = 0, delete_ms = 0, taken = 0, teardown_ms = 0;
  };
  std::vector<Burst> bursts(rounds);
  double origin = Now();
  for (Burst& b : bursts) {
    if (&b != &bursts.front()) {  // the pool refilled to its (perhaps grown) target
      double t0 = Now();
      while (Now() - t0 < 60000 &&
             Gauge("paddock_warm_shells") < Gauge("paddock_warm_shells_target"))
        ::usleep(20000);
    }
    double taken_before = Gauge("paddock_warm_shell_creates_total{shell=\"taken\"}");
    std::vector<std::string> ids(count);
    b.create_ms = Parallel(count, clients, [&](int i) {
      double t0 = Now();
      json out;
      bool ok = Call("POST", "/v1/sandboxes", spec, &out);
      b.create.Add(t0, ok);
      if (ok) ids[i] = out["id"];
    });
    b.exec_ms = Parallel(count, clients, [&](int i) {
      if (ids[i].empty()) return;
      double t0 = Now();
      b.exec.Add(t0, Call("POST", "/v1/sandboxes/" + ids[i] + "/exec", tru));
    });
    b.delete_ms = Parallel(count, clients, [&](int i) {
      if (ids[i].empty()) return;
      double t0 = Now();
      b.del.Add(t0, Call("DELETE", "/v1/sandboxes/" + ids[i], nullptr));
    });
    b.taken = Gauge("paddock_warm_shell_creates_total{shell=\"taken\"}") - taken_before;
    b.teardown_ms = WaitForTeardowns();
  }
  double refill_ms = warm_shells > 0 ? WaitForWarmShells(warm_shells) : 0;

  Phase c_create, c_exec, c_delete, c_cycle;
  std::atomic<bool> stop{false};
  std::atomic<int> cycles{0};
  double churn_t0 = Now();
  std::vector<std::thread> loopers;
  for (int c = 0; c < clients; ++c)
    loopers.emplace_back([&] {
      while (!stop.load()) {
        double t0 = Now();
        json out;
        bool ok = Call("POST", "/v1/sandboxes", spec, &out);
        c_create.Add(t0, ok);
        if (!ok) {
          ::usleep(10000);  // the host may be full of sandboxes still being torn down
          continue;
        }
        std::string id = out["id"];
        double t1 = Now();
        bool ran = Call("POST", "/v1/sandboxes/" + id + "/exec", tru);
        c_exec.Add(t1, ran);
        double t2 = Now();
        bool gone = Call("DELETE", "/v1/sandboxes/" + id, nullptr);
        c_delete.Add(t2, gone);
        c_cycle.Add(t0, ran && gone);
        cycles.fetch_add(1);
      }
    });
  ::usleep(static_cast<useconds_t>(seconds * 1e6));
  stop = true;
  for (auto& t : loopers) t.join();
  double churn_ms = Now() - churn_t0;
  double warm_left = Gauge("paddock_warm_shells");
  double churn_teardown_ms = WaitForTeardowns();

  std::string command;
  for (const auto& w : cmd) command += (command.empty() ? "" : " ") + w;
  std::printf("paddockd, template %s, networking %s, %d concurrent clients, exec `%s`\n", tmpl.c_str(),
              network ? "on" : "off (--no-network)", clients, command.c_str());
  if (warm_shells >= 0)
    std::printf("%d warm shells of %s (no others), ready %.1f s after start-up\n", warm_shells, tmpl.c_str(),
                warm_wait_ms / 1000);
  for (size_t r = 0; r < bursts.size(); ++r) {
    Burst& b = bursts[r];
    if (bursts.size() > 1) std::printf("\nburst %zu of %zu", r + 1, bursts.size());
    std::printf("\n%-24s %8s %9s %10s %10s %7s\n", "phase", "done", "per s", "p50 ms", "p99 ms",
                "failed");
    PrintRow("create", b.create, b.create_ms);
    std::printf("  %.0f of them from a warm shell\n", b.taken);
    PrintRow("exec", b.exec, b.exec_ms);
    PrintRow("delete", b.del, b.delete_ms);
    std::printf("teardowns (in the background) all done %.0f ms after the last delete's answer\n",
                b.teardown_ms);
  }
  std::printf("\nsteady churn, %.0f s: %.1f create+exec+delete cycles/s\n", churn_ms / 1000,
              cycles.load() / (churn_ms / 1000));
  PrintRow("cycle", c_cycle, churn_ms);
  PrintRow("  create", c_create, 0);
  PrintRow("  exec", c_exec, 0);
  PrintRow("  delete", c_delete, 0);
  std::printf("teardowns all done %.0f ms after the churn stopped\n", churn_teardown_ms);
  if (warm_shells > 0)
    std::printf("warm shells: refilled %.1f s after the deletes, %.0f left when the churn stopped\n",
                refill_ms / 1000, warm_left);

  if (int status; ::waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
    auto log = ReadFile(state + "/paddockd.log");
    std::string text = log.ok() ? *log : "";
    std::fprintf(stderr, "paddockd died (status %d) during the run; the end of its log:\n%s\n", status,
                 text.substr(text.size() > 4000 ? text.size() - 4000 : 0).c_str());
  } else {
    ::kill(daemon_pid, SIGTERM);
    ::waitpid(daemon_pid, nullptr, 0);
  }
  if (!timeline.empty()) {
    if (std::FILE* f = std::fopen(timeline.c_str(), "w")) {
      for (size_t r = 0; r < bursts.size(); ++r) {
        std::string n = std::to_string(r + 1);
        bursts[r].create.WriteTimeline(f, "create." + n, origin);
        bursts[r].exec.WriteTimeline(f, "exec." + n, origin);
        bursts[r].del.WriteTimeline(f, "delete." + n, origin);
      }
      c_create.WriteTimeline(f, "churn.create", origin);
      c_exec.WriteTimeline(f, "churn.exec", origin);
      c_delete.WriteTimeline(f, "churn.delete", origin);
      std::fclose(f);
    } else {
      std::perror(timeline.c_str());
    }
  }
  if (with_runc) {
    Phase runc_cycle;
    double rate = RuncChurn(state + "/state/templates/" + tmpl + "-v1", std::min(seconds, 30.0), runc_cycle);
    if (rate > 0) {
      std::printf("\nrunc, one cycle at a time (run -d, exec true, kill, delete): %.1f cycles/s\n", rate);
      PrintRow("cycle", runc_cycle, 0);
      std::printf("ratio, paddockd cycles/s under %d clients / runc cycles/s: %.1fx\n", clients,
                  (cycles.load() / (churn_ms / 1000)) / rate);
    } else {
      std::printf("\nrunc: not found, no peer figures\n");
    }
  }
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  (void)RemoveTree(state);
  return 0;
}
