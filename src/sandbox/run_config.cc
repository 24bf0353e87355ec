#include "sandbox/run_config.h"

#include <regex>

#include "base/json_field.h"

namespace paddock {

using json = nlohmann::json;

std::string ReadyCheck::Describe() const {
  switch (kind) {
    case Kind::kNone: return "the start command to run";
    case Kind::kCommand: return "'" + value + "' to exit 0";
    case Kind::kPort: return "a listener on port " + std::to_string(port);
    case Kind::kFile: return "file " + value + " to exist";
    case Kind::kProcess: return "a process named " + value;
  }
  return "";
}

Result<ReadyCheck> ParseReadyCheck(const json& j) {
  ReadyCheck r;
  if (j.is_null()) return r;
  if (!j.is_object()) return InvalidArgument("'ready' must be an object: {\"port\"|\"file\"|\"process\"|\"cmd\": ...}");
  int kinds = 0;
  for (const char* key : {"port", "file", "process", "cmd"}) kinds += j.contains(key);
  if (kinds > 1) return InvalidArgument("'ready' names more than one check");
  if (j.contains("port")) {
    int port = Field<int>(j, "port", 0);
    if (port < 1 || port > 65535) return InvalidArgument("'ready.port' must be a port number (1-65535)");
    r.kind = ReadyCheck::Kind::kPort;
    r.port = port;
  } else {
    for (auto [key, kind] : {std::pair{"file", ReadyCheck::Kind::kFile},
                             std::pair{"process", ReadyCheck::Kind::kProcess},
                             std::pair{"cmd", ReadyCheck::Kind::kCommand}}) {
      if (!j.contains(key)) continue;
      std::string v = Field<std::string>(j, key, "");
      if (v.empty() || v.size() > 4096 || v.find('\0') != std::string::npos)
        return InvalidArgument(std::string("'ready.") + key + "' must be a non-empty string of at most 4096 bytes");
      if (kind == ReadyCheck::Kind::kFile && v[0] != '/')
        return InvalidArgument("'ready.file' must be an absolute path");
      r.kind = kind;
      r.value = v;
    }
  }
  if (j.contains("timeout_s")) {
    r.timeout_s = Field<int>(j, "timeout_s", -1);
    if (r.timeout_s < 1 || r.timeout_s > ReadyCheck::kMaxTimeoutS)
      return InvalidArgument("'ready.timeout_s' must be 1-" + std::to_string(ReadyCheck::kMaxTimeoutS));
  }
  return r;
}

ReadyCheck ReadyCheckFromCommand(const std::string& cmd) {
  ReadyCheck r;
  if (cmd.empty()) return r;
  static const std::regex port(R"re(\[ -n "\$\(ss -Htuln sport = :(\d{1,5})\)" \])re");
  // The SDK quotes an argument only when it holds characters a shell minds.
  static const std::regex file(R"re(\[ -f (?:'(/[^']*)'|(/[^'\s]*)) \])re");
  static const std::regex process(R"re(pgrep (?:'([^']+)'|([^'\s]+)) > /dev/null)re");
  std::smatch m;
  auto arg = [&] { return m[1].matched ? m[1].str() : m[2].str(); };
  if (cmd.size() > 1024) {  // none of the SDK's; and std::regex recurses per character
    r.kind = ReadyCheck::Kind::kCommand;
    r.value = cmd;
  } else if (std::regex_match(cmd, m, port) && std::stoi(m[1]) >= 1 && std::stoi(m[1]) <= 65535) {
    r.kind = ReadyCheck::Kind::kPort;
    r.port = std::stoi(m[1]);
  } else if (std::regex_match(cmd, m, file)) {
    r.kind = ReadyCheck::Kind::kFile;
    r.value = arg();
  } else if (std::regex_match(cmd, m, process)) {
    r.kind = ReadyCheck::Kind::kProcess;
    r.value = arg();
  } else {
    r.kind = ReadyCheck::Kind::kCommand;
    r.value = cmd;
  }
  return r;
}

json RunConfig::ToJson() const {
  json j = {{"env", env}, {"workdir", workdir}, {"user", user}, {"start", start_cmd}};
  json r = {{"timeout_s", ready.timeout_s}};
  switch (ready.kind) {
    case ReadyCheck::Kind::kNone: break;
    case ReadyCheck::Kind::kCommand: r["cmd"] = ready.value; break;
    case ReadyCheck::Kind::kPort: r["port"] = ready.port; break;
    case ReadyCheck::Kind::kFile: r["file"] = ready.value; break;
    case ReadyCheck::Kind::kProcess: r["process"] = ready.value; break;
  }
  j["ready"] = r;
  return j;
}

Result<RunConfig> RunConfig::Parse(const json& j) {
  if (!j.is_object()) return InvalidArgument("a run config must be a JSON object");
  RunConfig c;
  if (auto it = j.find("env"); it != j.end()) {
    if (!it->is_array()) return InvalidArgument("'env' must be a list of \"K=V\"");
    for (const auto& kv : *it) {
      if (!kv.is_string() || kv.get<std::string>().find('=') == std::string::npos)
        return InvalidArgument("'env' must be a list of \"K=V\"");
      c.env.push_back(kv.get<std::string>());
    }
  }
  c.workdir = Field<std::string>(j, "workdir", "");
  c.user = Field<std::string>(j, "user", "");
  c.start_cmd = Field<std::string>(j, "start", "");
  if (!c.workdir.empty() && c.workdir[0] != '/') return InvalidArgument("'workdir' must be an absolute path");
  if (auto it = j.find("ready"); it != j.end()) {
    PDK_ASSIGN_OR_RETURN(c.ready, ParseReadyCheck(*it));
  }
  return c;
}

}  // namespace paddock
