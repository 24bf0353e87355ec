// Templates built from steps, as the manager sees them: a template is a
// name for a snapshot whose config says what its sandboxes run with, and a
// sandbox made from one runs its start command and is handed out once its
// ready check passes. Building them is TemplateBuilder's (build/).
#include <stdio.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/json_field.h"
#include "sandbox/manager.h"
#include "sandbox/manager_parts.h"

namespace paddock {

using namespace manager_detail;

namespace {

bool IsBuiltIn(const std::string& name) { return name == "host" || name == "busybox"; }

// Whether a TCP socket of the network namespace of `pid` listens on `port`
// (/proc/<pid>/net/tcp{,6}: "sl local_address rem_address st ...", the
// port in hex after the colon, state 0A for LISTEN).
bool Listening(pid_t pid, int port) {
  for (const char* table : {"tcp", "tcp6"}) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/net/" + table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, local, remote, state;
      if (!(fields >> sl >> local >> remote >> state) || state != "0A") continue;
      size_t colon = local.rfind(':');
      if (colon != std::string::npos && std::strtol(local.c_str() + colon + 1, nullptr, 16) == port) return true;
    }
  }
  return false;
}

// The last `max` bytes of what process `pid` printed, from init's record of it.
std::string OutputTail(agent::AgentClient& client, int pid, size_t max = 4096) {
  std::string out;
  if (!client.Call({{"op", "attach"}, {"pid", pid}, {"from", 0}}).ok()) return out;
  for (;;) {
    auto f = client.Read(200);
    if (!f.ok()) break;
    std::string ev = Field<std::string>(f->header, "event", "");
    if (ev == "output") out += f->payload;
    if (ev == "exit") break;
  }
  (void)client.Call({{"op", "detach"}, {"pid", pid}});
  if (out.size() > max) out = "..." + out.substr(out.size() - max);
  return out;
}

}  // namespace

bool SandboxManager::ValidTemplateName(const std::string& name) {
  size_t colon = name.find(':');
  if (colon == std::string::npos) return ValidName(name) && !IsBuiltIn(name);
  return ValidName(name.substr(0, colon)) && ValidName(name.substr(colon + 1));
}

Result<Template> SandboxManager::ResolveTemplate(const std::string& name) {
  std::string snapshot_id;
  {
    MutexLock lock(snap_mu_);
    if (auto it = built_templates_.find(name); it != built_templates_.end()) snapshot_id = it->second.snapshot_id;
    // A snapshot goes wherever a template does: named as one, it is found
    // before an image of that name (never before a built-in).
    else if (!IsBuiltIn(name))
      if (auto snap = FindSnapshotLocked(name); snap.ok()) snapshot_id = snap->id;
  }
  if (!snapshot_id.empty()) return SnapshotTemplate(snapshot_id);
  return templates_.Get(name);
}

bool SandboxManager::HasTemplate(const std::string& name) const {
  {
    MutexLock lock(snap_mu_);
    if (built_templates_.count(name) || (!IsBuiltIn(name) && FindSnapshotLocked(name).ok())) return true;
  }
  return templates_.Has(name);
}

Status SandboxManager::PutTemplate(const std::string& name, const std::string& snapshot_id,
                                   const std::string& build_id) {
  if (!ValidTemplateName(name))
    return InvalidArgument("template name '" + name +
                           "' is not valid: NAME or NAME:TAG, each 1-63 characters [A-Za-z0-9_.-] starting "
                           "with a letter or digit (not host or busybox)");
  MutexLock lock(snap_mu_);
  if (!snapshots_.count(snapshot_id)) return NotFound("snapshot '" + snapshot_id + "' does not exist");
  TemplateRecord rec{name, snapshot_id, build_id, WallClockMillis()};
  PDK_TRY(store_->PutTemplate(rec));
  built_templates_[name] = std::move(rec);
  return Status::Ok();
}

std::vector<TemplateRecord> SandboxManager::ListTemplates() const {
  MutexLock lock(snap_mu_);
  std::vector<TemplateRecord> out;
  for (const auto& [name, t] : built_templates_) out.push_back(t);
  return out;
}

Result<TemplateRecord> SandboxManager::GetTemplate(const std::string& name) const {
  MutexLock lock(snap_mu_);
  auto it = built_templates_.find(name);
  if (it == built_templates_.end()) return NotFound("template '" + name + "' does not exist");
  return it->second;
}

Status SandboxManager::RemoveTemplate(const std::string& name) {
  std::string snapshot_id;
  {
    MutexLock lock(snap_mu_);
    auto it = built_templates_.find(name);
    if (it == built_templates_.end()) return NotFound("template '" + name + "' does not exist");
    PDK_TRY(store_->RemoveTemplate(name));
    snapshot_id = it->second.snapshot_id;
    built_templates_.erase(it);
  }
  // Its build's snapshot goes unless a sandbox, a snapshot or another name
  // uses it; the steps below it stay as the build cache.
  Status removed = RemoveSnapshot(snapshot_id);
  if (!removed.ok() && removed.code() != StatusCode::kFailedPrecondition &&
      removed.code() != StatusCode::kNotFound)
    return removed;
  return Status::Ok();
}

std::pair<int, int64_t> SandboxManager::PruneBuildCache() {
  int removed = 0;
  int64_t bytes = 0;
  // Leaves first: each pass removes what the last one freed.
  for (bool progress = true; progress;) {
    progress = false;
    for (const auto& snap : ListSnapshots()) {
      if (snap.build_key.empty() || !RemoveSnapshot(snap.id).ok()) continue;
      ++removed;
      bytes += snap.size;
      progress = true;
    }
  }
  return {removed, bytes};
}

void SandboxManager::ExecDefaultsLocked(const Sandbox& sb, agent::ExecOptions& opts) {
  for (const auto& [k, v] : sb.info.env) opts.env.emplace(k, v);  // the caller's win
  if (const auto& image = sb.image_config) {
    for (const auto& kv : image->env) {
      size_t eq = kv.find('=');
      opts.env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
    }
    if (opts.user.empty()) opts.user = image->user;
    if (opts.cwd.empty()) opts.cwd = image->working_dir.empty() ? "/" : image->working_dir;  // as Docker
  }
}

Result<bool> SandboxManager::ReadyNow(Sandbox& sb, agent::AgentClient& client) {
  const ReadyCheck& check = sb.run->ready;
  switch (check.kind) {
    case ReadyCheck::Kind::kNone:
      return true;
    case ReadyCheck::Kind::kPort:
      return Listening(sb.init.pid(), check.port);
    case ReadyCheck::Kind::kFile: {
      auto st = client.Call({{"op", "stat"}, {"path", check.value}});
      if (st.ok()) return true;
      if (st.status().code() == StatusCode::kNotFound) return false;
      return st.status();
    }
    case ReadyCheck::Kind::kProcess: {
      if (!sb.cgroup) return false;
      PDK_ASSIGN_OR_RETURN(std::vector<pid_t> pids, sb.cgroup->Pids());
      std::string want = check.value.substr(0, 15);  // comm is at most 15 bytes
      for (pid_t pid : pids) {
        std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
        std::string comm;
        if (std::getline(in, comm) && comm == want) return true;
      }
      return false;
    }
    case ReadyCheck::Kind::kCommand: {
      agent::ExecOptions o;
      o.argv = {"/bin/sh", "-c", check.value};
      o.timeout_ms = 10000;
      o.max_output_bytes = 4096;
      ExecDefaultsLocked(sb, o);
      PDK_ASSIGN_OR_RETURN(agent::ExecResult r, client.Exec(o));
      return r.exit_code == 0;
    }
  }
  return false;
}

Status SandboxManager::RunStartCommand(Sandbox& sb) {
  if (!sb.run || sb.run->start_cmd.empty()) return Status::Ok();
  const RunConfig& run = *sb.run;
  const std::string what = "sandbox " + sb.info.id + "'s start command '" + run.start_cmd + "'";
  PDK_ASSIGN_OR_RETURN(agent::AgentClient client, agent::AgentClient::Connect(sb.info.agent_socket));
  agent::ExecOptions o;
  o.argv = {"/bin/sh", "-c", run.start_cmd};
  o.tag = "start";
  ExecDefaultsLocked(sb, o);
  auto spawned = client.Call(agent::AgentClient::SpawnRequest(o, false));
  if (!spawned.ok()) return spawned.status().Annotate(what);
  int pid = Field<int>(spawned->header, "pid", 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(run.ready.timeout_s);
  for (;;) {
    PDK_ASSIGN_OR_RETURN(bool ready, ReadyNow(sb, client));
    if (ready) return Status::Ok();
    // One that failed will never be ready: say so now, with what it printed.
    auto listed = client.Call({{"op", "list"}, {"all", true}});
    if (listed.ok())
      for (const auto& p : listed->header["processes"])
        if (Field<int>(p, "pid", 0) == pid && !Field<bool>(p, "running", true) &&
            (Field<int>(p, "exit_code", 0) != 0 || Field<int>(p, "signal", 0) != 0))
          return FailedPrecondition(what + " exited with code " + std::to_string(Field<int>(p, "exit_code", -1)) +
                                    " before it was ready; its output:\n" + OutputTail(client, pid));
    if (std::chrono::steady_clock::now() >= deadline || shutting_down_)
      return DeadlineExceeded(what + " was not ready within " + std::to_string(run.ready.timeout_s) +
                              " s (waiting for " + run.ready.Describe() + "); its output:\n" +
                              OutputTail(client, pid));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace paddock
