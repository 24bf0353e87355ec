// RunConfig: what a sandbox made from a built template runs with. Its
// base's defaults (an image's Env, User, WorkingDir) as the build's steps
// left them, and what starts when it boots: a start command and the check
// that says it is ready.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "base/status.h"

namespace paddock {

struct ReadyCheck {
  // kCommand: `value` run by /bin/sh -c exits 0. kPort: a TCP socket
  // listens on `port` in the sandbox. kFile: `value` exists. kProcess: a
  // process named `value` runs. kNone: ready once the start command runs.
  enum class Kind { kNone, kCommand, kPort, kFile, kProcess };
  Kind kind = Kind::kNone;
  std::string value;
  int port = 0;
  int timeout_s = 60;

  static constexpr int kMaxTimeoutS = 3600;
  // "waiting for port 8080", ...
  std::string Describe() const;
};

struct RunConfig {
  std::vector<std::string> env;  // "K=V": the whole default env
  std::string workdir;
  std::string user;
  std::string start_cmd;         // run by /bin/sh -c at each boot; empty: none
  ReadyCheck ready;

  // {"env": [...], "workdir": ..., "user": ..., "start": ..., "ready": {...}}
  nlohmann::json ToJson() const;
  // Also reads what a client sends: "ready" as {"port": N} | {"file": P} |
  // {"process": NAME} | {"cmd": CMD}, each with an optional "timeout_s".
  // kInvalidArgument naming the field that is wrong.
  static Result<RunConfig> Parse(const nlohmann::json& j);
};

// One "ready" object of a client's (see RunConfig::Parse).
Result<ReadyCheck> ParseReadyCheck(const nlohmann::json& j);

// A ready check given as a shell command (E2B's readyCmd). The ones the E2B
// SDK's waitForPort, waitForFile and waitForProcess write become checks
// paddockd does itself (the tools they call, ss and pgrep, are in few
// images); any other runs as it is, until it exits 0. Empty: kNone.
ReadyCheck ReadyCheckFromCommand(const std::string& cmd);

}  // namespace paddock
