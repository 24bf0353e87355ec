// What comes back over a sandbox's agent socket, as a compromised init
// could send it: frames split anywhere, then whole conversations read by
// the host's AgentClient (an exec, a file read, a write, a plain call).
//
// Input: byte 0 picks the conversation, byte 1 the split size for the
// decoder pass; the rest is what the "agent" sends before it stops writing.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/client.h"
#include "base/fd.h"

using namespace paddock;
using namespace paddock::agent;

namespace {

// A listening socket where the host side connects; the fuzzer plays the agent.
struct FakeAgentSocket {
  FakeAgentSocket() {
    // Under $TMPDIR: scripts/fuzz.sh points it at a folder it removes (the
    // harness itself never returns to clean up).
    const char* tmp = std::getenv("TMPDIR");
    std::string made = std::string(tmp && *tmp ? tmp : "/tmp") + "/paddock-fuzz-XXXXXX";
    char* dir = made.data();
    if (!::mkdtemp(dir)) std::abort();
    path = std::string(dir) + "/agent.sock";
    listener.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener.get(), 4) != 0)
      std::abort();
  }
  std::string path;
  UniqueFd listener;
};

void DecodeInPieces(const uint8_t* data, size_t size, size_t piece) {
  FrameDecoder decoder;
  for (size_t at = 0; at < size; at += piece) {
    decoder.Feed(reinterpret_cast<const char*>(data) + at, std::min(piece, size - at));
    while (auto f = decoder.Next())
      if (f->ok()) (void)StatusFromReply((*f)->header);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FakeAgentSocket agent;
  if (size < 2) return 0;
  uint8_t conversation = data[0];
  DecodeInPieces(data + 2, size - 2, 1 + data[1]);

  auto client = AgentClient::Connect(agent.path);
  if (!client.ok()) std::abort();
  UniqueFd far(::accept4(agent.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  // The whole reply fits the socket's buffer (inputs are capped at 64 KiB);
  // then the agent stops writing, but keeps reading what the host sends.
  for (size_t at = 2; at < size;) {
    ssize_t n = ::send(far.get(), data + at, size - at, MSG_NOSIGNAL);
    if (n <= 0) std::abort();
    at += static_cast<size_t>(n);
  }
  ::shutdown(far.get(), SHUT_WR);
  switch (conversation % 4) {
    case 0: {
      ExecOptions opts;
      opts.argv = {"true"};
      opts.has_stdin = conversation & 4;
      opts.stdin_data = "in";
      opts.max_output_bytes = 100;
      (void)client->Exec(opts);
      break;
    }
    case 1:
      (void)client->ReadFile("/f", [](std::string_view) { return true; });
      break;
    case 2:
      (void)client->WriteFile("/f", "data");
      break;
    case 3:
      if (auto f = client->Call({{"op", "stat"}, {"path", "/"}}); f.ok()) (void)f->header.dump();
      break;
  }
  return 0;
}
