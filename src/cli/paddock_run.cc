// paddock-run: one sandbox for one command, with no daemon.
//
//   paddock-run [--template host|busybox] [--state-dir DIR] [--memory BYTES]
//               [--cpu MILLICORES] [--pids N] [--tty] -- CMD [ARGS...]
//
// Creates a sandbox, runs CMD in it streaming stdout and stderr (stdin is
// passed through), deletes the sandbox, and exits with CMD's exit code
// (128+N if killed by signal N). The `paddock run` of the daemon's CLI does
// the same through paddockd. It is a sandbox manager of its own: beside a
// paddockd, or another paddock-run, it waits up to 10 s for that one to end
// (one manager per host, see base/host_lock.h), then fails naming it.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/fs.h"
#include "sandbox/manager.h"

using namespace paddock;

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: paddock-run [--template host|busybox] [--state-dir DIR] [--memory BYTES]\n"
               "                   [--cpu MILLICORES] [--pids N] -- CMD [ARGS...]\n");
  return 2;
}

void WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Streams the process's output until it exits; forwards our stdin to it.
Result<int> Stream(agent::AgentClient& client, int pid) {
  bool stdin_open = true;
  for (;;) {
    // Frames an earlier read took off the socket come first: they would
    // not wake the poll (the process's last output and its exit often
    // arrive with the spawn's reply).
    Result<agent::Frame> f = client.Read(0);
    if (!f.ok() && f.status().code() != StatusCode::kDeadlineExceeded) return f.status();
    if (!f.ok()) {
      struct pollfd fds[2] = {{client.fd(), POLLIN, 0}, {0, POLLIN, 0}};
      int n = ::poll(fds, stdin_open ? 2 : 1, -1);
      if (n < 0 && errno == EINTR) continue;
      if (stdin_open && (fds[1].revents & (POLLIN | POLLHUP))) {
        char buf[65536];
        ssize_t got = ::read(0, buf, sizeof buf);
        if (got > 0) {
          PDK_TRY(client.Send({{"op", "stdin"}, {"pid", pid}}, std::string_view(buf, got)).status());
        } else {
          stdin_open = false;
          PDK_TRY(client.Send({{"op", "close_stdin"}, {"pid", pid}}).status());
        }
      }
      if (!(fds[0].revents & (POLLIN | POLLHUP))) continue;
      f = client.Read(-1);
      if (!f.ok()) return f.status();
    }
    const auto& h = f->header;
    if (h.contains("ok") && !h.value("ok", false)) PDK_TRY(agent::StatusFromReply(h));
    std::string ev = h.value("event", "");
    if (ev == "output") WriteAll(h.value("stream", "") == "stderr" ? 2 : 1, f->payload);
    if (ev == "exit") return h.value("signal", 0) ? 128 + h.value("signal", 0) : h.value("exit_code", 1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  ManagerOptions opts;
  opts.state_dir = "/var/lib/paddock";
  SandboxSpec spec;
  std::vector<std::string> cmd;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--") {
      for (++i; i < argc; ++i) cmd.emplace_back(argv[i]);
    } else if (a == "--template") {
      if (const char* v = value()) spec.template_name = v; else return Usage();
    } else if (a == "--state-dir") {
      if (const char* v = value()) opts.state_dir = v; else return Usage();
    } else if (a == "--memory") {
      if (const char* v = value()) spec.limits.memory_bytes = std::atoll(v); else return Usage();
    } else if (a == "--cpu") {
      if (const char* v = value()) spec.limits.cpu_millicores = std::atoll(v); else return Usage();
    } else if (a == "--pids") {
      if (const char* v = value()) spec.limits.pids = std::atoll(v); else return Usage();
    } else {
      return Usage();
    }
  }
  if (cmd.empty()) return Usage();
  ::signal(SIGPIPE, SIG_IGN);

  auto manager = SandboxManager::Open(opts);
  if (!manager.ok()) {
    std::fprintf(stderr, "paddock-run: %s\n", manager.status().ToString().c_str());
    return 125;
  }
  auto sb = (*manager)->Create(spec);
  if (!sb.ok()) {
    std::fprintf(stderr, "paddock-run: create sandbox: %s\n", sb.status().ToString().c_str());
    return 125;
  }
  int code = 125;
  auto client = (*manager)->Connect(sb->id);
  auto spawned = client.ok() ? client->Call({{"op", "spawn"}, {"argv", cmd}, {"stdin", true}})
                             : Result<agent::Frame>(client.status());
  if (!spawned.ok()) {
    std::fprintf(stderr, "paddock-run: %s\n", spawned.status().ToString().c_str());
  } else {
    auto exit_code = Stream(*client, spawned->header.value("pid", 0));
    if (exit_code.ok()) code = *exit_code;
    else std::fprintf(stderr, "paddock-run: %s\n", exit_code.status().ToString().c_str());
  }
  if (Status s = (*manager)->Delete(sb->id); !s.ok())
    std::fprintf(stderr, "paddock-run: delete sandbox %s: %s\n", sb->id.c_str(), s.ToString().c_str());
  return code;
}
