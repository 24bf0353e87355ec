// runtime_bench: the sandbox lifecycle, timed, against runc in the same run.
//
//   runtime_bench [--count N] [--template busybox|host] [--no-runc]
//
// For each of N sandboxes: create (returns when paddock-init runs), first
// exec ready (create + connect + `true` run to completion), exec round trip of
// `true` on an open connection and on a new one, pause, resume, stop, delete.
// Then the same cycle through runc over an OCI bundle whose rootfs is the same
// template layer. Prints p50/p99 in milliseconds and the ratios; asserts nothing.
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "base/fs.h"
#include "runc.h"
#include "samples.h"
#include "sandbox/manager.h"

using namespace paddock;

namespace {

using bench::MakeRuncBundle;
using bench::Run;
using bench::Samples;

using Table = std::vector<std::pair<std::string, Samples>>;

Samples& Row(Table& t, const std::string& name) {
  for (auto& [n, s] : t)
    if (n == name) return s;
  t.emplace_back(name, Samples{});
  return t.back().second;
}

void Print(const char* title, Table& t) {
  std::printf("\n%s\n%-34s %10s %10s\n", title, "operation", "p50 ms", "p99 ms");
  for (auto& [name, s] : t) std::printf("%-34s %10.3f %10.3f\n", name.c_str(), s.P(0.5), s.P(0.99));
}

void Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "runtime_bench: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

// The paddock cycle over `count` sandboxes, with `warm_shells` kept ready.
Table RunPaddock(const std::string& state, const SandboxSpec& spec, int count, size_t warm_shells) {
  ManagerOptions opts;
  opts.state_dir = state;
  opts.init_path = PADDOCK_INIT_PATH;
  opts.warm_shells = warm_shells;
  opts.warm_templates = {spec.template_name};
  auto manager = SandboxManager::Open(opts);
  if (!manager.ok()) Die("open manager", manager.status());
  SandboxManager& m = **manager;
  // Build the template once, outside the measurements, and fill the pool.
  auto first = m.Create(spec);
  if (!first.ok()) Die("create", first.status());
  (void)m.Delete(first->id);
  for (int i = 0; i < 1000 && m.warm_shells_ready() < warm_shells; ++i) ::usleep(1000);

  Table pdk;
  agent::ExecOptions tru;
  tru.argv = {"/bin/true"};
  for (int i = 0; i < count; ++i) {
    int64_t t0 = MonotonicNanos();
    auto sb = m.Create(spec);
    int64_t t1 = MonotonicNanos();
    if (!sb.ok()) Die("create", sb.status());
    auto client = m.Connect(sb->id);
    if (!client.ok()) Die("connect", client.status());
    auto first = client->Exec(tru);
    int64_t t2 = MonotonicNanos();
    if (!first.ok() || first->exit_code != 0) Die("first exec", first.status());
    Row(pdk, "create (init running)").Add(t0, t1);
    Row(pdk, "create to first exec done").Add(t0, t2);
    int64_t t3 = MonotonicNanos();
    auto again = client->Exec(tru);
    int64_t t4 = MonotonicNanos();
    if (!again.ok()) Die("exec", again.status());
    Row(pdk, "exec true (open connection)").Add(t3, t4);
    auto fresh = m.Exec(sb->id, tru);
    int64_t t5 = MonotonicNanos();
    if (!fresh.ok()) Die("exec", fresh.status());
    Row(pdk, "exec true (new connection)").Add(t4, t5);
    Status s = m.Pause(sb->id);
    int64_t t6 = MonotonicNanos();
    if (!s.ok()) Die("pause", s);
    s = m.Resume(sb->id);
    int64_t t7 = MonotonicNanos();
    if (!s.ok()) Die("resume", s);
    Row(pdk, "pause").Add(t5, t6);
    Row(pdk, "resume").Add(t6, t7);
    s = m.Stop(sb->id);
    int64_t t8 = MonotonicNanos();
    if (!s.ok()) Die("stop", s);
    s = m.Delete(sb->id);
    int64_t t9 = MonotonicNanos();
    if (!s.ok()) Die("delete", s);
    Row(pdk, "stop").Add(t7, t8);
    Row(pdk, "delete (stopped)").Add(t8, t9);
  }
  return pdk;
}

}  // namespace

int main(int argc, char** argv) {
  int count = 200;
  std::string tmpl = "busybox";
  bool with_runc = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--count" && i + 1 < argc) count = std::atoi(argv[++i]);
    else if (a == "--template" && i + 1 < argc) tmpl = argv[++i];
    else if (a == "--no-runc") with_runc = false;
    else {
      std::fprintf(stderr, "usage: runtime_bench [--count N] [--template busybox|host] [--no-runc]\n");
      return 2;
    }
  }
  char dir_tmpl[] = "/tmp/pdk-bench-XXXXXX";
  std::string state = ::mkdtemp(dir_tmpl);
  SandboxSpec spec;
  spec.template_name = tmpl;
  // Cold: every create clones and mounts. Warm: creates take a shell from
  // the pool, which a background thread refills between them.
  Table cold = RunPaddock(state, spec, count, 0);
  Table pdk = RunPaddock(state, spec, count, 4);
  std::printf("paddock: %d sandboxes, template %s\n", count, tmpl.c_str());
  Print("paddock, no warm shells (every create clones and mounts)", cold);
  Print("paddock, 4 warm shells (the daemon's default)", pdk);

  // The same rootfs: the template's layer, read-only.
  std::string bundle = state + "/runc-bundle", root = state + "/runc-state";
  if (with_runc &&
      MakeRuncBundle(bundle, state + "/templates/" + (tmpl == "busybox" ? "busybox-v1" : "host-v1"))) {
    Table runc;
    int failures = 0;
    for (int i = 0; i < count; ++i) {
      std::string id = "pdk-bench-" + std::to_string(i);
      int64_t t0 = MonotonicNanos();
      int rc = Run({"runc", "--root", root, "run", "-d", "--bundle", bundle, id});
      int64_t t1 = MonotonicNanos();
      rc |= Run({"runc", "--root", root, "exec", id, "/bin/true"});
      int64_t t2 = MonotonicNanos();
      rc |= Run({"runc", "--root", root, "exec", id, "/bin/true"});
      int64_t t3 = MonotonicNanos();
      rc |= Run({"runc", "--root", root, "pause", id});
      int64_t t4 = MonotonicNanos();
      rc |= Run({"runc", "--root", root, "resume", id});
      int64_t t5 = MonotonicNanos();
      rc |= Run({"runc", "--root", root, "kill", id, "KILL"});
      for (int w = 0; w < 1000 && Run({"runc", "--root", root, "delete", id}) != 0; ++w) ::usleep(1000);
      int64_t t6 = MonotonicNanos();
      if (rc != 0) ++failures;
      Row(runc, "create (init running)").Add(t0, t1);
      Row(runc, "create to first exec done").Add(t0, t2);
      Row(runc, "exec true").Add(t2, t3);
      Row(runc, "pause").Add(t3, t4);
      Row(runc, "resume").Add(t4, t5);
      Row(runc, "stop+delete").Add(t5, t6);
    }
    std::printf("\nrunc: %d containers over the same rootfs (no user namespace), %d failed\n",
                count, failures);
    Print("runc", runc);
    std::printf("\nratios, runc p50 / paddock p50\n");
    auto ratio = [&](const char* label, const char* r, const char* p) {
      std::printf("%-34s %9.1fx\n", label, Row(runc, r).P(0.5) / Row(pdk, p).P(0.5));
    };
    ratio("create + first exec", "create to first exec done", "create to first exec done");
    std::printf("%-34s %9.1fx\n", "create + first exec, no warm shells",
                Row(runc, "create to first exec done").P(0.5) /
                    Row(cold, "create to first exec done").P(0.5));
    ratio("exec true", "exec true", "exec true (new connection)");
    ratio("pause", "pause", "pause");
    ratio("resume", "resume", "resume");
    Samples pdk_teardown;
    for (size_t i = 0; i < Row(pdk, "stop").ms.size(); ++i)
      pdk_teardown.ms.push_back(Row(pdk, "stop").ms[i] + Row(pdk, "delete (stopped)").ms[i]);
    std::printf("%-34s %9.1fx\n", "stop + delete", Row(runc, "stop+delete").P(0.5) / pdk_teardown.P(0.5));
  }
  (void)RemoveTree(state);
  return 0;
}
