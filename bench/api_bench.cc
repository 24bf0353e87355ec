// api_bench: paddockd through its HTTP API on the unix socket.
//
//   api_bench [--count N] [--adopt N]
//
// Starts its own paddockd over a temporary state folder. Prints p50/p99 of
// create, exec of `true`, pause, resume, delete and the create-exec-delete
// cycle, sequentially and with 8 concurrent clients; then the time paddockd
// takes to come back with N sandboxes to adopt after a kill -9 (the
// "msg=recovered ... ms=" it logs, and until its API answers). Asserts nothing.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "daemon.h"
#include "samples.h"
#include "cli/api_client.h"

using namespace paddock;
using cli::json;

namespace {

using bench::Samples;

double Now() { return MonotonicNanos() / 1e6; }

std::string state, sock;
pid_t daemon_pid = -1;

void StartDaemon() {
  std::vector<std::string> args = {PADDOCKD_PATH, "--state-dir", state + "/state", "--socket", sock,
                                   "--init", PADDOCK_INIT_PATH, "--max-sandboxes", "2000"};
  daemon_pid = bench::SpawnPaddockd(args, sock, state + "/paddockd.log");
  if (daemon_pid > 0) return;
  std::fprintf(stderr, "paddockd did not start\n");
  std::exit(1);
}

void StopDaemon(int sig) {
  ::kill(daemon_pid, sig);
  ::waitpid(daemon_pid, nullptr, 0);
}

json Must(const std::string& method, const std::string& target, const json& body = nullptr) {
  return bench::MustCall(sock, method, target, body);
}

// One client's run of `count` full lifecycles, recording each step.
void Lifecycles(int count, std::map<std::string, Samples>& out, std::mutex& mu) {
  std::map<std::string, Samples> mine;
  json tru = {{"cmd", {"/bin/true"}}};
  for (int i = 0; i < count; ++i) {
    double t0 = Now();
    std::string id = Must("POST", "/v1/sandboxes", {{"template", "busybox"}})["id"];
    double t1 = Now();
    Must("POST", "/v1/sandboxes/" + id + "/exec", tru);
    double t2 = Now();
    Must("POST", "/v1/sandboxes/" + id + "/pause");
    double t3 = Now();
    Must("POST", "/v1/sandboxes/" + id + "/resume");
    double t4 = Now();
    Must("DELETE", "/v1/sandboxes/" + id);
    double t5 = Now();
    std::string id2 = Must("POST", "/v1/sandboxes", {{"template", "busybox"}})["id"];
    Must("POST", "/v1/sandboxes/" + id2 + "/exec", tru);
    Must("DELETE", "/v1/sandboxes/" + id2);
    double t6 = Now();
    mine["create"].ms.push_back(t1 - t0);
    mine["exec true"].ms.push_back(t2 - t1);
    mine["pause"].ms.push_back(t3 - t2);
    mine["resume"].ms.push_back(t4 - t3);
    mine["delete"].ms.push_back(t5 - t4);
    mine["create+exec+delete"].ms.push_back(t6 - t5);
  }
  std::lock_guard<std::mutex> lock(mu);
  for (auto& [k, v] : mine) out[k].ms.insert(out[k].ms.end(), v.ms.begin(), v.ms.end());
}

void Print(const char* title, std::map<std::string, Samples>& t) {
  std::printf("\n%s\n%-22s %10s %10s\n", title, "operation", "p50 ms", "p99 ms");
  for (const char* op : {"create", "exec true", "pause", "resume", "delete", "create+exec+delete"})
    std::printf("%-22s %10.3f %10.3f\n", op, t[op].P(0.5), t[op].P(0.99));
}

}  // namespace

int main(int argc, char** argv) {
  int count = 100, adopt = 500;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--count") count = std::atoi(argv[i + 1]);
    else if (a == "--adopt") adopt = std::atoi(argv[i + 1]);
  }
  char tmpl[] = "/tmp/pdk-apibench-XXXXXX";
  state = ::mkdtemp(tmpl);
  ::chmod(state.c_str(), 0711);
  sock = state + "/api.sock";
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);  // sandboxes orphaned by the kill -9 come back to us
  StartDaemon();
  Must("DELETE", "/v1/sandboxes/" + Must("POST", "/v1/sandboxes", {{"template", "busybox"}})["id"].get<std::string>());

  std::mutex mu;
  std::map<std::string, Samples> seq, conc;
  Lifecycles(count, seq, mu);
  Print(("sequential, " + std::to_string(count) + " cycles, busybox template").c_str(), seq);
  std::vector<std::thread> clients;
  double t0 = Now();
  for (int c = 0; c < 8; ++c) clients.emplace_back([&] { Lifecycles(count / 8, conc, mu); });
  for (auto& t : clients) t.join();
  double wall = Now() - t0;
  Print(("8 concurrent clients, " + std::to_string(count / 8 * 8) + " cycles").c_str(), conc);
  std::printf("throughput: %.1f lifecycles/s\n", (count / 8 * 8) / (wall / 1000));

  for (int i = 0; i < adopt; ++i) {
    json sb = Must("POST", "/v1/sandboxes", {{"template", "busybox"}});
    if (i % 2) Must("POST", "/v1/sandboxes/" + sb["id"].get<std::string>() + "/pause");
  }
  StopDaemon(SIGKILL);
  double r0 = Now();
  StartDaemon();
  double up = Now() - r0;
  std::string log = ReadFile(state + "/paddockd.log").value();
  size_t at = log.rfind("msg=recovered");
  if (at == std::string::npos) at = 0;
  std::printf("\nadoption after kill -9: %d sandboxes (half paused)\n  %s\n  until the API answered: %.1f ms\n",
              adopt, log.substr(at, log.find('\n', at) - at).c_str(), up);

  json all = Must("GET", "/v1/sandboxes");
  for (const auto& s : all["sandboxes"]) Must("DELETE", "/v1/sandboxes/" + s["id"].get<std::string>());
  StopDaemon(SIGTERM);
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {}
  (void)RemoveTree(state);
  return 0;
}
