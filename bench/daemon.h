// Starts a paddockd for a benchmark, its output appended to `log`.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/fs.h"
#include "cli/api_client.h"

extern char** environ;

namespace paddock::bench {

// Spawns `args` (the paddockd binary first) and waits up to 10 s for its API
// on the unix socket `sock` to answer. Returns its pid, or -1 (having
// killed it) if it did not.
inline pid_t SpawnPaddockd(std::vector<std::string> args, const std::string& sock, const std::string& log) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  int err = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (err != 0) return -1;
  for (int i = 0; i < 10000; ++i) {
    auto h = cli::ApiClient(sock).Send("GET", "/v1/health");
    if (h.ok() && h->status == 200) return pid;
    ::usleep(1000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -1;
}

// A paddockd of a benchmark's own: a new state folder /tmp/<prefix>-XXXXXX
// (searchable, as sandboxes' ids must reach their folders), its API on
// <state>/api.sock, its log in <state>/paddockd.log.
struct OwnPaddockd {
  std::string state, sock;
  pid_t pid = -1;
};

// Starts one: `command` is the paddockd binary and flags of its own
// (--state-dir and --socket are added). This process becomes the
// subreaper of its sandboxes. Exits, naming the log, if it does not come up.
inline OwnPaddockd StartOwnPaddockd(const std::string& prefix, std::vector<std::string> command) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  OwnPaddockd d;
  d.state = ::mkdtemp(tmpl.data());
  ::chmod(d.state.c_str(), 0711);
  d.sock = d.state + "/api.sock";
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  command.insert(command.end(), {"--state-dir", d.state + "/state", "--socket", d.sock});
  d.pid = SpawnPaddockd(std::move(command), d.sock, d.state + "/paddockd.log");
  if (d.pid <= 0) {
    std::fprintf(stderr, "paddockd did not start (see %s/paddockd.log)\n", d.state.c_str());
    std::exit(1);
  }
  return d;
}

// Stops it (SIGTERM, as a service manager would) and removes its state folder.
inline void StopOwnPaddockd(OwnPaddockd& d) {
  ::kill(d.pid, SIGTERM);
  ::waitpid(d.pid, nullptr, 0);
  (void)RemoveTree(d.state);
}

// One API call on the unix socket `sock`; its answer (an empty body is
// {}), or the process exits naming what failed.
inline cli::json MustCall(const std::string& sock, const std::string& method, const std::string& target,
                          const cli::json& body = nullptr) {
  auto r = cli::ApiClient(sock).Send(method, target, body.is_null() ? "" : body.dump());
  if (!r.ok() || r->status >= 300) {
    std::fprintf(stderr, "%s %s failed: %s\n", method.c_str(), target.c_str(),
                 r.ok() ? r->body.c_str() : r.status().ToString().c_str());
    std::exit(1);
  }
  return r->body.empty() ? cli::json::object() : r->Json();
}

}  // namespace paddock::bench
