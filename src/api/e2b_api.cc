#include "api/e2b_api.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <set>

#include "api/connect.h"
#include "api/e2b_parts.h"
#include "api/volume_content.h"
#include "base/units.h"
#include "api/request_body.h"
#include "base/fs.h"
#include "base/json_field.h"
#include "base/ids.h"

namespace paddock::api {

using agent::json;
using e2b::E2bError;
using e2b::Try;

namespace {

constexpr const char* kEnvdVersion = "0.5.7";
constexpr int kDefaultKeepaliveS = 50;

// A {string: string} field, absent or null meaning empty.
Result<std::map<std::string, std::string>> StringMap(const json& body, const char* field) {
  std::map<std::string, std::string> out;
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return out;
  if (!it->is_object()) return InvalidArgument(std::string("field '") + field + "' must be an object of strings");
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string())
      return InvalidArgument(std::string("field '") + field + "." + k + "' must be a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

Result<std::optional<int64_t>> OptionalInt(const json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<int64_t>();
  if (!it->is_number_integer() || it->get<int64_t>() < 0)
    return InvalidArgument(std::string("field '") + field + "' must be a non-negative integer");
  return std::optional<int64_t>(it->get<int64_t>());
}

Result<std::optional<bool>> OptionalBool(const json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean()) return InvalidArgument(std::string("field '") + field + "' must be a boolean");
  return std::optional<bool>(it->get<bool>());
}

std::string Rfc3339(int64_t unix_ns) {
  time_t secs = static_cast<time_t>(unix_ns / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%09lldZ", static_cast<long long>(unix_ns % 1000000000));
  return buf;
}

// E2B shows a paused or stopped sandbox as "paused": both resume on connect.
const char* E2bState(SandboxState s) { return s == SandboxState::kRunning ? "running" : "paused"; }

// What every E2B answer about a sandbox starts with.
json IdentityJson(const SandboxInfo& i, const std::string& domain) {
  json mounts = json::array();
  for (const auto& v : i.volumes) mounts.push_back({{"name", v.name}, {"path", v.path}});
  return {{"sandboxID", i.id},
          {"volumeMounts", std::move(mounts)},
          {"templateID", i.template_name},
          {"alias", i.template_name},
          {"clientID", "paddock"},
          {"envdVersion", kEnvdVersion},
          {"domain", domain.empty() ? json(nullptr) : json(domain)}};
}

// E2B's egress fields -> Paddock's: denyOut with 0.0.0.0/0 (or
// allow_internet_access false) refuses what allowOut does not list.
// `create` also reads network.allowPublicTraffic.
Status MergeE2bNetwork(const json& body, paddock::net::NetworkSettings& settings) {
  const json& network = body.contains("network") && body["network"].is_object() ? body["network"] : body;
  auto cidrs = [&](const char* field, std::vector<std::string>& out, bool& all) -> Status {
    auto it = network.find(field);
    if (it == network.end() || it->is_null()) return Status::Ok();
    if (!it->is_array()) return InvalidArgument(std::string("field '") + field + "' must be a list of CIDRs");
    for (const auto& v : *it) {
      if (!v.is_string()) return InvalidArgument(std::string("field '") + field + "' must be a list of CIDRs");
      std::string c = v.get<std::string>();
      if (c == "0.0.0.0/0") all = true;
      else if (!paddock::net::Cidr::Parse(c).ok())
        return InvalidArgument(std::string(field) + ": '" + c + "' is not an IPv4 address or CIDR "
                               "(domain names are not supported)");
      else out.push_back(c);
    }
    return Status::Ok();
  };
  std::vector<std::string> allow, deny;
  bool allow_all = false, deny_all = false;
  PDK_TRY(cidrs("allowOut", allow, allow_all));
  PDK_TRY(cidrs("denyOut", deny, deny_all));
  PDK_ASSIGN_OR_RETURN(auto internet, OptionalBool(body, "allow_internet_access"));
  json merged = {{"egress", (deny_all || internet == false) && !allow_all ? "deny" : "allow"},
                 {"allow", allow}, {"deny", deny}};
  if (network.contains("allowPublicTraffic")) merged["public_traffic"] = network["allowPublicTraffic"];
  return settings.Merge(merged);
}

json E2bNetworkJson(const paddock::net::NetworkSettings& n) {
  json allow = json::array(), deny = json::array();
  for (const auto& r : n.policy.allow) allow.push_back(r.cidr.ToString());
  for (const auto& r : n.policy.deny) deny.push_back(r.cidr.ToString());
  if (!n.policy.allow_egress) deny.push_back("0.0.0.0/0");
  return {{"allowOut", allow}, {"denyOut", deny}, {"allowPublicTraffic", n.traffic_token.empty()}};
}

json SandboxJson(const SandboxInfo& i, const std::string& domain) {
  int64_t started = i.started_at_ms ? i.started_at_ms : i.created_at_ms;
  long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  int64_t total_mb = static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE) >> 20;
  json j = IdentityJson(i, domain);
  j.update({{"startedAt", Rfc3339(started * 1000000)},
            {"endAt", Rfc3339((i.timeout_at_ms ? i.timeout_at_ms : started) * 1000000)},
            {"cpuCount", i.limits.cpu_millicores ? (i.limits.cpu_millicores + 999) / 1000 : cores},
            {"memoryMB", i.limits.memory_bytes ? i.limits.memory_bytes >> 20 : total_mb},
            {"diskSizeMB", i.disk_bytes >> 20},
            {"metadata", i.metadata},
            {"state", E2bState(i.state)},
            {"allowInternetAccess", i.network.policy.allow_egress},
            {"network", E2bNetworkJson(i.network)}});
  return j;
}

// What create and connect answer: enough for the SDK to reach envd.
json SandboxAccessJson(const SandboxInfo& i, const std::string& domain) {
  json j = IdentityJson(i, domain);
  j["envdAccessToken"] = i.access_token;
  if (!i.network.traffic_token.empty()) j["trafficAccessToken"] = i.network.traffic_token;
  return j;
}

// The user of an envd call: "Authorization: Basic base64(user:)". Empty
// (SDKs since envd 0.4.0 send none): the sandbox's default, its image's
// User or else root.
Result<std::string> EnvdUser(const Request& req, const Target& t) {
  std::string user = t.Q("username");
  std::string auth(req[http::field::authorization]);
  if (auth.rfind("Basic ", 0) == 0) {
    PDK_ASSIGN_OR_RETURN(std::string decoded, connect::Base64Decode(auth.substr(6)));
    user = decoded.substr(0, decoded.find(':'));
  }
  return user;
}

// E2B resolves relative paths against the user's home.
std::string ResolvePath(const std::string& path, const std::string& user) {
  if (!path.empty() && path[0] == '/') return path;
  std::string home = user.empty() || user == "root" ? "/root" : "/home/" + user;
  if (path.empty() || path == "~") return home;
  if (path.rfind("~/", 0) == 0) return home + path.substr(1);
  return home + "/" + path;
}

std::string Permissions(const std::string& type, uint32_t mode) {
  std::string s = type == "dir" ? "d" : type == "symlink" ? "l" : "-";
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (mode & (0400 >> i)) ? rwx[i] : '-';
  return s;
}

// paddock-init's entry -> filesystem.EntryInfo.
json EntryInfo(const json& e) {
  std::string type = Field(e, "type", "other");
  uint32_t mode = Field(e, "mode", 0u);
  int64_t uid = Field(e, "uid", int64_t{0}), gid = Field(e, "gid", int64_t{0});
  json j = {{"name", Field(e, "name", "")},
            {"type", type == "file" ? "FILE_TYPE_FILE" : type == "dir" ? "FILE_TYPE_DIRECTORY"
                     : type == "symlink" ? "FILE_TYPE_SYMLINK" : "FILE_TYPE_UNSPECIFIED"},
            {"path", Field(e, "path", "")},
            {"size", std::to_string(Field(e, "size", int64_t{0}))},
            {"mode", mode},
            {"permissions", Permissions(type, mode)},
            {"owner", uid == 0 ? "root" : std::to_string(uid)},
            {"group", gid == 0 ? "root" : std::to_string(gid)},
            {"modifiedTime", Rfc3339(Field(e, "mtime_ns", int64_t{0}))}};
  if (e.contains("symlink_target")) j["symlinkTarget"] = e["symlink_target"];
  return j;
}

const char* EventType(const std::string& op) {
  if (op == "create") return "EVENT_TYPE_CREATE";
  if (op == "write") return "EVENT_TYPE_WRITE";
  if (op == "remove") return "EVENT_TYPE_REMOVE";
  if (op == "rename") return "EVENT_TYPE_RENAME";
  if (op == "chmod") return "EVENT_TYPE_CHMOD";
  return "EVENT_TYPE_UNSPECIFIED";
}

// process.ProcessSelector -> the agent's {"pid"} or {"tag"}.
Result<json> Selector(const json& msg) {
  const json& sel = msg.contains("process") && msg["process"].is_object() ? msg["process"] : json::object();
  if (sel.contains("pid") && sel["pid"].is_number_integer()) return json{{"pid", sel["pid"]}};
  if (sel.contains("tag") && sel["tag"].is_string()) return json{{"tag", sel["tag"]}};
  return InvalidArgument("field 'process' must select a process by 'pid' or 'tag'");
}

Result<std::string> StringField(const json& msg, const char* field) {
  auto it = msg.find(field);
  if (it == msg.end() || !it->is_string()) return InvalidArgument(std::string("field '") + field + "' must be a string");
  return it->get<std::string>();
}

// How often a stream says it is alive: the client's Keepalive-Ping-Interval (seconds).
int KeepaliveMs(const Request& req) {
  int s = std::atoi(std::string(req["Keepalive-Ping-Interval"]).c_str());
  return (s > 0 && s < 3600 ? s : kDefaultKeepaliveS) * 1000;
}

// The stream's deadline from Connect-Timeout-Ms; 0: none.
int64_t DeadlineNs(const Request& req) {
  int64_t ms = std::atoll(std::string(req["Connect-Timeout-Ms"]).c_str());
  return ms > 0 ? MonotonicNanos() + ms * 1000000 : 0;
}

// Sends a Connect stream's events as they come from `client`: `to_envelope`
// turns a frame into what to send ("" for nothing) and sets `done` on the
// last one; quiet spells get `keepalive`; Connect-Timeout-Ms ends the stream
// with `at_deadline`. Returns when the stream ends or the client leaves.
void Pump(StreamWriter& out, agent::AgentClient& client, const Request& req, const json& keepalive,
          const Status& at_deadline,
          const std::function<std::string(const agent::Frame&, bool& done)>& to_envelope) {
  int keepalive_ms = KeepaliveMs(req);
  int64_t deadline = DeadlineNs(req);
  for (;;) {
    int wait_ms = keepalive_ms;
    if (deadline) {
      int64_t left = (deadline - MonotonicNanos()) / 1000000;
      if (left <= 0) {
        if (out.Write(connect::EndOfStream(at_deadline))) out.End();
        return;
      }
      wait_ms = static_cast<int>(std::min<int64_t>(left, keepalive_ms));
    }
    auto f = client.Read(wait_ms);
    if (!f.ok() && f.status().code() == StatusCode::kDeadlineExceeded) {
      if (!out.Write(connect::Envelope(keepalive))) return;
      continue;
    }
    if (!f.ok()) {
      if (out.Write(connect::EndOfStream(f.status()))) out.End();
      return;
    }
    bool done = false;
    std::string envelope = to_envelope(*f, done);
    if (!envelope.empty() && !out.Write(envelope)) return;
    if (done) {
      if (out.Write(connect::EndOfStream(Status::Ok()))) out.End();
      return;
    }
  }
}

}  // namespace

// A watcher made by CreateWatcher: an agent connection holding the watch,
// read by GetWatcherEvents.
struct E2bApi::Watcher {
  Watcher(std::string id, agent::AgentClient c) : sandbox_id(std::move(id)), client(std::move(c)) {}
  Mutex mu;  // one reader of its events at a time
  const std::string sandbox_id;
  agent::AgentClient client GUARDED_BY(mu);
  std::atomic<int64_t> last_read_ns{MonotonicNanos()};
};

namespace {
// Each watcher holds a descriptor in paddockd and an inotify instance in
// the sandbox: without a cap a client could open them until either ran out.
constexpr int kMaxWatchers = 64;
// A polled watcher nobody reads: what E2B's SDK leaves behind when a
// client dies without RemoveWatcher.
constexpr int64_t kWatcherIdleNs = int64_t{600} * 1000000000;
}  // namespace

Status E2bApi::TakeWatcherPlace(const std::string& sandbox_id) {
  MutexLock lock(watchers_mu_);
  int64_t now = MonotonicNanos();
  int held = streamed_watches_[sandbox_id];
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    const Watcher& w = *it->second;
    // Endpoint, not Get: it never waits for a transition of that sandbox.
    if (now - w.last_read_ns.load() > kWatcherIdleNs || !manager_->Endpoint(w.sandbox_id).ok()) {
      it = watchers_.erase(it);
      continue;
    }
    held += w.sandbox_id == sandbox_id;
    ++it;
  }
  if (held >= kMaxWatchers)
    return ResourceExhausted("sandbox " + sandbox_id + " has " + std::to_string(kMaxWatchers) +
                             " watchers, the most it may; remove one (RemoveWatcher) first");
  return Status::Ok();
}

void E2bApi::GiveWatcherPlace(const std::string& sandbox_id) {
  MutexLock lock(watchers_mu_);
  if (--streamed_watches_[sandbox_id] <= 0) streamed_watches_.erase(sandbox_id);
}

E2bApi::E2bApi(SandboxManager* manager, build::TemplateBuilder* builder, E2bOptions opts)
    : manager_(manager), builder_(builder), opts_(std::move(opts)) {}
E2bApi::~E2bApi() = default;

bool E2bApi::IsEnvdRequest(const Request& req) { return AddressedSandboxPort(req).port == kEnvdPort; }

bool E2bApi::TakesUpload(const Request& req) {
  std::string_view t(req.target().data(), req.target().size());
  t = t.substr(0, t.find('?'));
  if (req.method() == http::verb::put && !IsEnvdRequest(req))  // a template build's files, a volume's file
    return (t.rfind("/templates/", 0) == 0 && t.size() > 7 && t.substr(t.size() - 7) == "/upload") ||
           IsVolumeUpload(req, "/volumecontent/");
  return req.method() == http::verb::post && IsEnvdRequest(req) && t == "/files";
}

bool E2bApi::Handles(const Request& req) {
  if (IsEnvdRequest(req)) return true;
  std::string_view t(req.target().data(), req.target().size());
  return t.rfind("/v2/sandboxes", 0) == 0 || t.rfind("/sandboxes", 0) == 0 || t.rfind("/snapshots", 0) == 0 ||
         t.rfind("/templates/", 0) == 0 || t.rfind("/v2/templates/", 0) == 0 || t.rfind("/v3/templates", 0) == 0 ||
         t.rfind("/volumes", 0) == 0 || t.rfind("/volumecontent/", 0) == 0;
}

// Only the content routes themselves, exactly: a volume's token opens
// nothing else (not a path that climbs out with "..").
static bool IsVolumeContentRoute(const std::vector<std::string>& p) {
  return p.size() == 3 && p[0] == "volumecontent" && (p[2] == "file" || p[2] == "dir" || p[2] == "path");
}

bool E2bApi::VolumeTokenMatches(const Request& req) const {
  std::string_view t(req.target().data(), req.target().size());
  if (t.rfind("/volumecontent/", 0) != 0) return false;
  Target target = ParseTarget(t);
  if (!IsVolumeContentRoute(target.path)) return false;
  auto volume = manager_->GetVolume(target.path[1]);
  return volume.ok() && !volume->token.empty() && SameSecret(BearerToken(req), volume->token);
}

std::optional<Response> E2bApi::Handle(Request& req, StreamWriter& out) {
  Call c{req, out, ParseTarget(req), {}, {}};
  if (IsEnvdRequest(req)) return Envd(c);
  const auto& p = c.target.path;
  if (!p.empty() && (p[0] == "templates" || ((p[0] == "v2" || p[0] == "v3") && p.size() > 1 && p[1] == "templates")))
    return TemplateRoutes(c);
  if (!p.empty() && p[0] == "snapshots") return SnapshotRoutes(c);
  if (!p.empty() && p[0] == "volumes") return VolumeRoutes(c);
  if (!p.empty() && p[0] == "volumecontent") {
    auto r = IsVolumeContentRoute(p) ? VolumeContent(*manager_, p[1], p[2], req, c.target, out)
                                     : Result<std::optional<Response>>(NotFound("no volume content route " +
                                                                                std::string(req.target())));
    if (!r.ok()) return e2b::E2bError(r.status(), req);
    return std::move(*r);
  }
  return Lifecycle(c);
}

// ---- Lifecycle ----

Response E2bApi::Lifecycle(Call& c) {
  const auto& p = c.target.path;
  auto method = c.req.method();
  bool v2 = !p.empty() && p[0] == "v2";
  size_t base = v2 ? 1 : 0;  // index of "sandboxes"
  size_t n = p.size() - base;
  if (n == 1 && v2 && method == http::verb::post) return CreateSandbox(c);
  if (n == 1 && method == http::verb::get) return ListSandboxes(c);
  if (n >= 2) {
    const std::string& id = p[base + 1];
    std::string action = n == 3 ? p[base + 2] : "";
    if (n == 2 && method == http::verb::get)
      return Try(c.req, [&]() -> Result<Response> {
        PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
        return JsonResponse(http::status::ok, SandboxJson(info, opts_.domain), c.req);
      });
    if (n == 2 && method == http::verb::delete_)
      return Try(c.req, [&]() -> Result<Response> {
        PDK_TRY(manager_->Delete(id));
        return EmptyResponse(http::status::no_content, c.req);
      });
    if (action == "timeout" && method == http::verb::post)
      return Try(c.req, [&]() -> Result<Response> {
        PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req));
        PDK_ASSIGN_OR_RETURN(auto timeout, OptionalInt(body, "timeout"));
        if (!timeout) return InvalidArgument("field 'timeout' (seconds) is required");
        PDK_TRY(manager_->SetTimeout(id, *timeout));
        return EmptyResponse(http::status::no_content, c.req);
      });
    if (action == "pause" && method == http::verb::post) return PauseSandbox(c, id);
    if (action == "connect" && v2 && method == http::verb::post) return ConnectSandbox(c, id);
    if (action == "metrics" && method == http::verb::get) return SandboxMetrics(c, id);
    if (action == "fork" && method == http::verb::post) return ForkSandbox(c, id);
    if (action == "snapshots" && method == http::verb::post) return CreateSnapshot(c, id);
    if (action == "network" && method == http::verb::put)
      return Try(c.req, [&]() -> Result<Response> {
        PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req, true));
        PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
        PDK_TRY(MergeE2bNetwork(body, info.network));
        PDK_TRY(manager_->UpdateNetwork(id, info.network));
        return EmptyResponse(http::status::no_content, c.req);
      });
  }
  return E2bError(NotFound("no E2B route for " + std::string(c.req.method_string()) + " " +
                           std::string(c.req.target())),
                  c.req);
}

Response E2bApi::CreateSandbox(Call& c) {
  return Try(c.req, [&]() -> Result<Response> {
    PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req));
    SandboxSpec spec;
    auto tmpl = body.find("templateID");
    if (tmpl == body.end() || !tmpl->is_string() || tmpl->get<std::string>().empty())
      return InvalidArgument("field 'templateID' must be a non-empty string");
    std::string name = tmpl->get<std::string>();
    auto alias = opts_.template_aliases.find(name);
    spec.template_name = alias == opts_.template_aliases.end() ? name : alias->second;
    PDK_ASSIGN_OR_RETURN(spec.metadata, StringMap(body, "metadata"));
    // E2B has no devices field: metadata "paddock.devices" names CDI
    // devices, comma-separated, and "paddock.gpus" asks for GPUs as
    // --gpus does (both stay in the metadata, as given).
    if (auto devices = spec.metadata.find("paddock.devices"); devices != spec.metadata.end())
      spec.devices = SplitList(devices->second);
    if (auto gpus = spec.metadata.find("paddock.gpus"); gpus != spec.metadata.end()) spec.gpus = gpus->second;
    PDK_ASSIGN_OR_RETURN(spec.env, StringMap(body, "envVars"));
    PDK_ASSIGN_OR_RETURN(auto timeout, OptionalInt(body, "timeout"));
    spec.timeout_s = timeout.value_or(opts_.default_timeout_s);
    PDK_ASSIGN_OR_RETURN(auto auto_pause, OptionalBool(body, "autoPause"));
    PDK_ASSIGN_OR_RETURN(auto keep_memory, OptionalBool(body, "autoPauseMemory"));
    PDK_TRY(MergeE2bNetwork(body, spec.network));
    if (auto mounts = body.find("volumeMounts"); mounts != body.end() && !mounts->is_null()) {
      if (!mounts->is_array()) return InvalidArgument("field 'volumeMounts' must be a list of {name, path}");
      for (const auto& m : *mounts)
        spec.volumes.push_back({Field<std::string>(m, "name", ""), Field<std::string>(m, "path", ""), false});
    }
    // Pausing without memory is E2B's filesystem-only pause: Paddock's stop.
    if (auto_pause.value_or(false))
      spec.on_timeout = keep_memory.value_or(true) ? TimeoutAction::kPause : TimeoutAction::kStop;
    auto info = manager_->Create(spec);
    // E2B says a template is missing in its own words; anything else
    // missing (a volume, a device, a path of a device's files) as it is.
    if (!info.ok() && info.status().code() == StatusCode::kNotFound &&
        !manager_->HasTemplate(spec.template_name))
      return NotFound("template '" + name + "' not found");
    if (!info.ok()) return info.status();
    return JsonResponse(http::status::created, SandboxAccessJson(*info, opts_.domain), c.req);
  });
}

Response E2bApi::ListSandboxes(Call& c) {
  return Try(c.req, [&]() -> Result<Response> {
    // metadata=k1%3Dv1%26k2%3Dv2: one parameter holding a query string.
    Target filter = ParseTarget("?" + c.target.Q("metadata"));
    std::vector<std::string> states;
    for (const auto& [k, v] : c.target.query)
      if (k == "state")
        for (auto& s : SplitList(v)) states.push_back(std::move(s));
    for (const auto& s : states)
      if (s != "running" && s != "paused")
        return InvalidArgument("state '" + s + "' is not one of running, paused");
    int64_t limit = 100;
    if (c.target.Has("limit")) {
      limit = std::atoll(c.target.Q("limit").c_str());
      if (limit < 1 || limit > 1000) return InvalidArgument("limit must be in 1..1000");
    }
    std::string template_filter = c.target.Q("template");
    std::vector<SandboxInfo> all = manager_->List();
    std::sort(all.begin(), all.end(), [](const SandboxInfo& a, const SandboxInfo& b) {
      return std::tie(a.created_at_ms, a.id) < std::tie(b.created_at_ms, b.id);
    });
    std::string after = c.target.Q("nextToken");
    bool started = after.empty();
    json out = json::array();
    std::string next;
    for (const auto& info : all) {
      if (!started) {
        started = info.id == after;
        continue;
      }
      bool match = states.empty() ||
                   std::find(states.begin(), states.end(), E2bState(info.state)) != states.end();
      for (const auto& [k, v] : filter.query) {
        auto it = info.metadata.find(k);
        match = match && it != info.metadata.end() && it->second == v;
      }
      if (!template_filter.empty()) match = match && info.template_name == template_filter;
      if (!match) continue;
      if (static_cast<int64_t>(out.size()) == limit) {
        next = out.back()["sandboxID"];
        break;
      }
      out.push_back(SandboxJson(info, opts_.domain));
    }
    Response res = JsonResponse(http::status::ok, out, c.req);
    if (!next.empty()) res.set("X-Next-Token", next);
    return res;
  });
}

Response E2bApi::PauseSandbox(Call& c, const std::string& id) {
  return Try(c.req, [&]() -> Result<Response> {
    PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req));
    PDK_ASSIGN_OR_RETURN(auto memory, OptionalBool(body, "memory"));
    PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
    // Without memory: a filesystem-only pause, which is Paddock's stop.
    Status paused = FailedPrecondition("not running");
    if (info.state == SandboxState::kRunning)
      paused = memory.value_or(true) ? manager_->Pause(id) : manager_->Stop(id);
    // Not running, now or by the time the pause reached it: E2B's 409.
    if (paused.code() == StatusCode::kFailedPrecondition)
      return Status(StatusCode::kAlreadyExists, "sandbox " + id + " is already paused");
    PDK_TRY(paused);
    return EmptyResponse(http::status::no_content, c.req);
  });
}

Response E2bApi::ConnectSandbox(Call& c, const std::string& id) {
  return Try(c.req, [&]() -> Result<Response> {
    PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req));
    PDK_ASSIGN_OR_RETURN(auto timeout, OptionalInt(body, "timeout"));
    PDK_ASSIGN_OR_RETURN(auto memory, OptionalBool(body, "memory"));
    // Without memory, a paused sandbox boots afresh (a filesystem-only resume).
    PDK_ASSIGN_OR_RETURN(SandboxState was, manager_->EnsureRunning(id, memory.value_or(true)));
    http::status status = was == SandboxState::kRunning ? http::status::ok : http::status::created;
    if (timeout) PDK_TRY(manager_->SetTimeout(id, *timeout));
    PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
    return JsonResponse(status, SandboxAccessJson(info, opts_.domain), c.req);
  });
}

Response E2bApi::SandboxMetrics(Call& c, const std::string& id) {
  return Try(c.req, [&]() -> Result<Response> {
    PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
    json out = json::array();
    if (info.state == SandboxState::kStopped) return JsonResponse(http::status::ok, out, c.req);
    PDK_ASSIGN_OR_RETURN(kernel::CgroupStats st, manager_->Stats(id));
    json s = SandboxJson(info, "");
    int64_t now_ms = WallClockMillis();
    double ran_ns = std::max<int64_t>(1, now_ms - info.started_at_ms) * 1e6;
    int64_t cores = s["cpuCount"].get<int64_t>();
    auto disk = manager_->DiskUsage(id);  // counted only on the disk pool
    out.push_back({{"timestamp", Rfc3339(now_ms * 1000000)},
                   {"timestampUnix", now_ms / 1000},
                   {"cpuCount", cores},
                   {"cpuUsedPct", 100.0 * static_cast<double>(st.cpu_usage_ns) / ran_ns / cores},
                   {"memUsed", st.memory_bytes},
                   {"memTotal", s["memoryMB"].get<int64_t>() << 20},
                   {"diskUsed", disk.ok() ? disk->used_bytes : 0},
                   {"diskTotal", disk.ok() ? disk->limit_bytes : 0},
                   // Paddock's own: the devices it holds (E2B has no GPUs), its GPUs counted.
                   {"devices", info.devices},
                   {"gpuCount", std::count_if(info.devices.begin(), info.devices.end(), SandboxManager::IsGpu)}});
    return JsonResponse(http::status::ok, out, c.req);
  });
}

// E2B keeps a fork's memory; Paddock copies the filesystem only, and each
// fork boots fresh over its copy. Asking for memory is refused, saying so.
Response E2bApi::ForkSandbox(Call& c, const std::string& id) {
  return Try(c.req, [&]() -> Result<Response> {
    PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req));
    PDK_ASSIGN_OR_RETURN(auto timeout, OptionalInt(body, "timeout"));
    PDK_ASSIGN_OR_RETURN(auto count, OptionalInt(body, "count"));
    PDK_ASSIGN_OR_RETURN(auto memory, OptionalBool(body, "memory"));
    if (count && (*count < 1 || *count > 16)) return InvalidArgument("field 'count' must be in 1..16");
    PDK_ASSIGN_OR_RETURN(SandboxInfo src, manager_->Get(id));
    if (memory.value_or(false))
      return Unimplemented("sandbox " + src.id + " can be forked with its filesystem only: Paddock "
                           "cannot keep memory or running processes across a fork");
    json out = json::array();
    for (int64_t i = 0; i < count.value_or(1); ++i) {
      SandboxSpec spec;
      spec.metadata = src.metadata;
      spec.env = src.env;
      spec.limits = src.limits;
      spec.timeout_s = timeout.value_or(opts_.default_timeout_s);
      auto fork = manager_->Fork(src.id, spec);
      if (fork.ok()) {
        out.push_back({{"sandbox", SandboxAccessJson(*fork, opts_.domain)}});
      } else {
        int code = static_cast<int>(HttpStatusFor(fork.status().code()));
        out.push_back({{"error", {{"code", code}, {"message", fork.status().message()}}}});
      }
    }
    return JsonResponse(http::status::created, out, c.req);
  });
}

// ---- Snapshots ----

namespace {

json SnapshotE2bJson(const SnapshotRecord& s) {
  json names = json::array();
  if (!s.name.empty()) names.push_back(s.name);
  return {{"snapshotID", s.id}, {"names", names}};
}

}  // namespace

// E2B pauses the sandbox and keeps its memory too; Paddock keeps its files,
// copied while it is frozen, and it goes on running.
Response E2bApi::CreateSnapshot(Call& c, const std::string& id) {
  // A long copy holds its worker: it takes a stream slot, or is a 503.
  if (!c.out.ClaimStream())
    return E2bError(Unavailable("paddockd has as many long requests as it allows under way; retry"), c.req);
  return Try(c.req, [&]() -> Result<Response> {
    PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req));
    std::string name;
    if (auto it = body.find("name"); it != body.end() && !it->is_null()) {
      if (!it->is_string()) return InvalidArgument("field 'name' must be a string");
      name = it->get<std::string>();
    }
    PDK_ASSIGN_OR_RETURN(SnapshotRecord snap, manager_->CreateSnapshot(id, name));
    return JsonResponse(http::status::created, SnapshotE2bJson(snap), c.req);
  });
}

// GET /snapshots?sandboxID=&name=&limit=&nextToken=, oldest first, paged by
// X-Next-Token; DELETE /templates/{snapshot id or name}.
Response E2bApi::SnapshotRoutes(Call& c) {
  const auto& p = c.target.path;
  auto method = c.req.method();
  return Try(c.req, [&]() -> Result<Response> {
    if (p.size() != 1 || p[0] != "snapshots" || method != http::verb::get)
      return NotFound("no E2B route for " + std::string(c.req.method_string()) + " " + std::string(c.req.target()));
    int64_t limit = 100;
    if (c.target.Has("limit")) {
      limit = std::atoll(c.target.Q("limit").c_str());
      if (limit < 1 || limit > 1000) return InvalidArgument("limit must be in 1..1000");
    }
    std::string source = c.target.Q("sandboxID"), name = c.target.Q("name"), after = c.target.Q("nextToken");
    bool started = after.empty();
    json out = json::array();
    std::string next;
    for (const auto& snap : manager_->ListSnapshots()) {
      if (!started) {
        started = snap.id == after;
        continue;
      }
      if ((!source.empty() && snap.source_id != source) || (!name.empty() && snap.name != name)) continue;
      if (static_cast<int64_t>(out.size()) == limit) {
        next = out.back()["snapshotID"];
        break;
      }
      out.push_back(SnapshotE2bJson(snap));
    }
    Response res = JsonResponse(http::status::ok, out, c.req);
    if (!next.empty()) res.set("X-Next-Token", next);
    return res;
  });
}

// ---- Volumes ----

// E2B's volumes are Paddock's; a volume's id is its name, its token
// authorises the content API (/volumecontent/{id}/..., api/volume_content.h)
// without the API key, as E2B's does.
Response E2bApi::VolumeRoutes(Call& c) {
  const auto& p = c.target.path;
  auto method = c.req.method();
  auto volume_json = [](const VolumeRecord& v) { return json{{"volumeID", v.name}, {"name", v.name}}; };
  return Try(c.req, [&]() -> Result<Response> {
    if (p.size() == 1 && method == http::verb::post) {
      PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req, true));
      std::string name = Field<std::string>(body, "name", "");
      if (name.empty()) return InvalidArgument("field 'name' is required");
      PDK_ASSIGN_OR_RETURN(VolumeRecord v, manager_->CreateVolume(name, 0));
      json out = volume_json(v);
      out["token"] = v.token;
      return JsonResponse(http::status::created, out, c.req);
    }
    if (p.size() == 1 && method == http::verb::get) {
      json out = json::array();
      for (const auto& v : manager_->ListVolumes()) out.push_back(volume_json(v));
      return JsonResponse(http::status::ok, out, c.req);
    }
    if (p.size() == 2 && method == http::verb::get) {
      PDK_ASSIGN_OR_RETURN(VolumeRecord v, manager_->GetVolume(p[1]));
      json out = volume_json(v);
      out["token"] = v.token;
      return JsonResponse(http::status::ok, out, c.req);
    }
    if (p.size() == 2 && method == http::verb::delete_) {
      PDK_TRY(manager_->RemoveVolume(p[1]));
      return EmptyResponse(http::status::no_content, c.req);
    }
    return NotFound("no E2B route for " + std::string(c.req.method_string()) + " " + std::string(c.req.target()));
  });
}

// ---- envd ----

namespace {

// As E2B's own proxy answers for a sandbox that is gone: 502, which the SDK
// reads as "the sandbox was killed or timed out".
Response SandboxGone(const std::string& id, const Request& req, bool rpc) {
  Status gone = Unavailable("sandbox " + id + " not found");
  if (!rpc) return JsonResponse(http::status::bad_gateway, {{"code", 502}, {"message", gone.message()}}, req);
  Response res = connect::UnaryError(gone, req);
  res.result(http::status::bad_gateway);
  return res;
}

bool TokenMatches(const Request& req, const std::string& access_token) {
  return !access_token.empty() && SameSecret(std::string(req["X-Access-Token"]), access_token);
}

const Status kWrongToken(StatusCode::kUnauthenticated,
                         "the sandbox's access token (X-Access-Token) is missing or wrong");

}  // namespace

std::optional<Response> E2bApi::ScreenHeader(const Request& header) const {
  if (!IsEnvdRequest(header)) return std::nullopt;
  std::string id = AddressedSandboxPort(header).id;
  auto endpoint = manager_->Endpoint(id);
  if (!endpoint.ok()) return SandboxGone(id, header, false);
  if (!TokenMatches(header, endpoint->access_token)) return E2bError(kWrongToken, header);
  return std::nullopt;
}

std::optional<Response> E2bApi::Envd(Call& c) {
  std::string id = AddressedSandboxPort(c.req).id;
  bool rpc = c.target.path.size() == 2 && c.target.path[0].find('.') != std::string::npos;
  auto fail = [&](const Status& s) -> Response {
    return rpc ? connect::UnaryError(s, c.req) : E2bError(s, c.req);
  };
  auto info = manager_->Get(id);
  if (!info.ok()) return SandboxGone(id, c.req, rpc);
  if (!TokenMatches(c.req, info->access_token)) return fail(kWrongToken);
  if (info->state != SandboxState::kRunning)
    return fail(Unavailable("sandbox " + id + " is " + SandboxStateName(info->state) +
                            "; connect to it to resume it"));
  c.sandbox = *info;
  auto user = EnvdUser(c.req, c.target);
  if (!user.ok()) return fail(user.status());
  c.user = *user;

  const auto& p = c.target.path;
  auto method = c.req.method();
  if (p.size() == 1 && p[0] == "health") return EmptyResponse(http::status::no_content, c.req);
  if (p.size() == 1 && p[0] == "files" && method == http::verb::get) {
    return DownloadFile(c);
  }
  if (p.size() == 1 && p[0] == "files" && method == http::verb::post) return UploadFiles(c);
  if (rpc && method == http::verb::post) return Rpc(c, p[0], p[1]);
  return fail(NotFound("no envd route for " + std::string(c.req.method_string()) + " " +
                       std::string(c.req.target())));
}

// Streams the file once its first bytes are in; a missing file is a clean 404.
std::optional<Response> E2bApi::DownloadFile(Call& c) {
  std::string path = ResolvePath(c.target.Q("path"), c.user);
  auto client = manager_->Connect(c.sandbox.id);
  if (!client.ok()) return E2bError(client.status(), c.req);
  if (Status s = client->Call({{"op", "stat"}, {"path", path}}).status(); !s.ok()) return E2bError(s, c.req);
  bool begun = false, gone = false;
  auto size = client->ReadFile(path, [&](std::string_view data) {
    if (!begun) {
      begun = true;
      gone = !c.out.Begin(http::status::ok, "application/octet-stream");
    }
    gone = gone || !c.out.Write(data);
    return !gone;
  });
  if (begun) {
    if (!gone) c.out.End();
    return std::nullopt;
  }
  if (!size.ok()) return E2bError(size.status(), c.req);
  Response res{http::status::ok, c.req.version()};  // an empty file
  res.set(http::field::content_type, "application/octet-stream");
  res.keep_alive(c.req.keep_alive());
  res.prepare_payload();
  return res;
}

// Each file streams from the request body (spooled to disk by the server)
// to the sandbox, one piece at a time. Files of a multipart upload are
// written in order, each replaced whole or not at all; a part found
// malformed fails the upload after the files before it were written.
Response E2bApi::UploadFiles(Call& c) {
  return Try(c.req, [&]() -> Result<Response> {
    std::string type(c.req[http::field::content_type]);
    std::string query_path = c.target.Q("path");
    if (!std::string(c.req[http::field::content_encoding]).empty())
      return InvalidArgument("compressed uploads (Content-Encoding) are not supported");
    BodyReader body(c.req, c.out);
    if (body.from_file() && body.fd() < 0) return Internal("the request body's spool file is gone");
    PDK_ASSIGN_OR_RETURN(agent::AgentClient client, manager_->Connect(c.sandbox.id));
    json out = json::array();
    auto write = [&](const std::string& path, const agent::AgentClient::Reader& read) -> Status {
      std::string resolved = ResolvePath(path, c.user);
      PDK_ASSIGN_OR_RETURN(json entry, client.WriteFileFrom(resolved, read, {{"user", c.user}}));
      out.push_back({{"name", Field(entry, "name", "")}, {"type", "file"}, {"path", resolved}});
      return Status::Ok();
    };
    auto from_body = [&](char* buf, size_t cap) { return body.Read(buf, cap); };
    if (type.rfind("multipart/form-data", 0) != 0) {
      if (query_path.empty()) return InvalidArgument("query parameter 'path' is required");
      PDK_TRY(write(query_path, from_body));
      return JsonResponse(http::status::ok, out, c.req);
    }
    PDK_ASSIGN_OR_RETURN(std::string boundary, MultipartReader::BoundaryOf(type));
    MultipartReader parts(boundary, from_body);
    for (;;) {
      PDK_ASSIGN_OR_RETURN(std::optional<std::string> head, parts.NextPart());
      if (!head) break;
      std::string path = query_path.empty() ? MultipartReader::FileNameOf(*head) : query_path;
      if (path.empty()) return InvalidArgument("an uploaded file names no path (query 'path' or filename)");
      PDK_TRY(write(path, [&](char* buf, size_t cap) { return parts.Read(buf, cap); }));
    }
    if (out.empty()) return InvalidArgument("multipart upload holds no file");
    return JsonResponse(http::status::ok, out, c.req);
  });
}

// ---- Connect RPC ----

std::optional<Response> E2bApi::Rpc(Call& c, const std::string& service, const std::string& method) {
  std::string type(c.req[http::field::content_type]);
  bool streaming = type.rfind("application/connect+json", 0) == 0;
  bool unary = type.rfind("application/json", 0) == 0;
  if (!streaming && !unary)
    return connect::UnaryError(InvalidArgument("content type '" + type +
                                               "' is not supported: use application/json or "
                                               "application/connect+json"),
                               c.req);
  // A stream's errors go in its end-of-stream message, with HTTP 200.
  auto stream_error = [&](const Status& s) -> std::optional<Response> {
    return connect::StreamReply(connect::EndOfStream(s), c.req);
  };
  // A message field of the wrong type (a string where a number belongs)
  // throws from json::value(): the caller's mistake, answered as such.
  try {
    json msg;
    if (streaming) {
      auto messages = connect::ParseEnvelopes(c.req.body());
      if (!messages.ok()) return stream_error(messages.status());
      if (service == "process.Process" && method == "StreamInput") return StreamInput(c, *messages);
      if (messages->size() != 1)
        return stream_error(InvalidArgument("a server-streaming call takes exactly one request message"));
      msg = std::move((*messages)[0]);
      if (service == "process.Process" && (method == "Start" || method == "Connect"))
        return ProcessStream(c, msg, method == "Start");
      if (service == "filesystem.Filesystem" && method == "WatchDir") return WatchStream(c, msg);
      return stream_error(Unimplemented("no streaming method " + service + "/" + method));
    }
    msg = json::parse(c.req.body().empty() ? "{}" : c.req.body(), nullptr, false);
    if (msg.is_discarded() || !msg.is_object())
      return connect::UnaryError(InvalidArgument("the request body is not a JSON object"), c.req);
    Result<json> reply = service == "process.Process"         ? UnaryProcess(c, method, msg)
                         : service == "filesystem.Filesystem" ? UnaryFilesystem(c, method, msg)
                                                              : Result<json>(Unimplemented("no service " + service));
    if (!reply.ok()) return connect::UnaryError(reply.status(), c.req);
    return connect::UnaryOk(*reply, c.req);
  } catch (const json::exception& e) {
    Status bad = InvalidArgument(std::string("a field of the request message has the wrong type: ") + e.what());
    return streaming ? stream_error(bad) : connect::UnaryError(bad, c.req);
  }
}

// A client stream: a start message naming the process, then data messages.
// The whole body is in by now, so its messages are applied in order and
// one empty reply ends the call.
Response E2bApi::StreamInput(Call& c, const std::vector<json>& messages) {
  Status s;
  json selector;
  for (const auto& m : messages) {
    if (!s.ok()) break;
    if (m.contains("start")) {
      auto sel = Selector(m["start"]);
      if (sel.ok()) selector = m["start"]["process"];
      else s = sel.status();
    } else if (m.contains("data")) {
      if (selector.is_null()) s = InvalidArgument("StreamInput sent data before its start message");
      else s = UnaryProcess(c, "SendInput", {{"process", selector}, {"input", m["data"].value("input", json::object())}}).status();
    }
  }
  return connect::StreamReply((s.ok() ? connect::Envelope(json::object()) : "") + connect::EndOfStream(s), c.req);
}

Result<json> E2bApi::UnaryProcess(Call& c, const std::string& method, const json& msg) {
  static const std::set<std::string> kMethods = {"List", "SendInput", "SendSignal", "CloseStdin", "Update"};
  if (!kMethods.count(method)) return Unimplemented("no method process.Process/" + method);
  PDK_ASSIGN_OR_RETURN(agent::AgentClient client, manager_->Connect(c.sandbox.id));
  if (method == "List") {
    PDK_ASSIGN_OR_RETURN(agent::Frame f, client.Call({{"op", "list"}}));
    json out = json::array();
    for (const auto& p : Field(f.header, "processes", json::array())) {
      if (!Field(p, "running", false)) continue;
      json argv = Field(p, "argv", json::array());
      json config = {{"cmd", argv.empty() ? "" : argv[0].get<std::string>()},
                     {"args", argv.empty() ? json::array() : json(std::vector<json>(argv.begin() + 1, argv.end()))},
                     {"envs", json::object()},
                     {"cwd", Field(p, "cwd", "")}};
      json info = {{"config", config}, {"pid", Field(p, "pid", 0)}};
      if (!Field(p, "tag", "").empty()) info["tag"] = p["tag"];
      out.push_back(std::move(info));
    }
    return json{{"processes", out}};
  }
  PDK_ASSIGN_OR_RETURN(json sel, Selector(msg));
  if (method == "SendInput") {
    const json& input = msg.value("input", json::object());
    std::string data;
    for (const char* k : {"stdin", "pty"})
      if (input.contains(k) && input[k].is_string()) {
        PDK_ASSIGN_OR_RETURN(data, connect::Base64Decode(input[k].get<std::string>()));
      }
    json req = sel;
    req["op"] = "stdin";
    PDK_TRY(client.Call(req, data).status());
    return json::object();
  }
  if (method == "SendSignal") {
    json sig = msg.value("signal", json("SIGNAL_SIGKILL"));
    int number = sig.is_number_integer() ? sig.get<int>()
                 : sig == "SIGNAL_SIGTERM"   ? 15
                 : sig == "SIGNAL_SIGKILL"   ? 9
                                             : 0;
    if (number != 9 && number != 15) return InvalidArgument("field 'signal' must be SIGNAL_SIGTERM or SIGNAL_SIGKILL");
    json req = sel;
    req["op"] = "signal";
    req["signal"] = number;
    PDK_TRY(client.Call(req).status());
    return json::object();
  }
  if (method == "CloseStdin") {
    json req = sel;
    req["op"] = "close_stdin";
    PDK_TRY(client.Call(req).status());
    return json::object();
  }
  if (method == "Update") {
    const json& size = msg.value("pty", json::object()).value("size", json::object());
    if (!size.contains("rows") || !size.contains("cols"))
      return InvalidArgument("field 'pty.size' must give rows and cols");
    json req = sel;
    req["op"] = "resize";
    req["rows"] = size["rows"];
    req["cols"] = size["cols"];
    PDK_TRY(client.Call(req).status());
    return json::object();
  }
  return Unimplemented("no method process.Process/" + method);
}

Result<json> E2bApi::UnaryFilesystem(Call& c, const std::string& method, const json& msg) {
  if (method == "GetWatcherEvents" || method == "RemoveWatcher") {
    PDK_ASSIGN_OR_RETURN(std::string wid, StringField(msg, "watcherId"));
    std::shared_ptr<Watcher> w;
    {
      MutexLock lock(watchers_mu_);
      auto it = watchers_.find(wid);
      if (it == watchers_.end() || it->second->sandbox_id != c.sandbox.id)
        return NotFound("watcher '" + wid + "' not found");
      w = it->second;
      if (method == "RemoveWatcher") watchers_.erase(it);
    }
    if (method == "RemoveWatcher") return json::object();
    MutexLock lock(w->mu);
    w->last_read_ns = MonotonicNanos();
    json events = json::array();
    for (;;) {
      auto f = w->client.Read(0);
      if (!f.ok()) {
        if (f.status().code() == StatusCode::kDeadlineExceeded) break;
        return f.status();
      }
      if (Field(f->header, "event", "") == "fs")
        events.push_back({{"name", Field(f->header, "name", "")}, {"type", EventType(Field(f->header, "op", ""))}});
    }
    return json{{"events", events}};
  }
  PDK_ASSIGN_OR_RETURN(agent::AgentClient client, manager_->Connect(c.sandbox.id));
  if (method == "CreateWatcher") {
    PDK_ASSIGN_OR_RETURN(std::string path, StringField(msg, "path"));
    PDK_TRY(TakeWatcherPlace(c.sandbox.id));
    PDK_TRY(client.Call({{"op", "watch"}, {"path", ResolvePath(path, c.user)},
                         {"recursive", msg.value("recursive", false)}})
                .status());
    auto w = std::make_shared<Watcher>(c.sandbox.id, std::move(client));
    std::string wid = RandomHex(8);
    MutexLock lock(watchers_mu_);
    watchers_[wid] = std::move(w);
    return json{{"watcherId", wid}};
  }
  if (method == "Stat" || method == "MakeDir" || method == "Remove" || method == "ListDir") {
    PDK_ASSIGN_OR_RETURN(std::string path, StringField(msg, "path"));
    path = ResolvePath(path, c.user);
    if (method == "Stat") {
      PDK_ASSIGN_OR_RETURN(agent::Frame f, client.Call({{"op", "stat"}, {"path", path}}));
      return json{{"entry", EntryInfo(f.header["entry"])}};
    }
    if (method == "MakeDir") {
      PDK_ASSIGN_OR_RETURN(agent::Frame f, client.Call({{"op", "mkdir"}, {"path", path}, {"parents", true}}));
      if (!Field(f.header, "created", true))
        return Status(StatusCode::kAlreadyExists, "directory " + path + " already exists");
      PDK_ASSIGN_OR_RETURN(agent::Frame st, client.Call({{"op", "stat"}, {"path", path}}));
      return json{{"entry", EntryInfo(st.header["entry"])}};
    }
    if (method == "Remove") {
      PDK_TRY(client.Call({{"op", "stat"}, {"path", path}}).status());  // missing: not_found
      PDK_TRY(client.Call({{"op", "remove"}, {"path", path}, {"recursive", true}}).status());
      return json::object();
    }
    int64_t depth = msg.value("depth", 1);
    PDK_ASSIGN_OR_RETURN(agent::Frame f,
                         client.Call({{"op", "ls"}, {"path", path}, {"depth", depth < 1 ? 1 : depth}}));
    json entries = json::array();
    for (const auto& e : Field(f.header, "entries", json::array())) entries.push_back(EntryInfo(e));
    return json{{"entries", entries}};
  }
  if (method == "Move") {
    PDK_ASSIGN_OR_RETURN(std::string from, StringField(msg, "source"));
    PDK_ASSIGN_OR_RETURN(std::string to, StringField(msg, "destination"));
    PDK_ASSIGN_OR_RETURN(agent::Frame f, client.Call({{"op", "rename"},
                                                      {"from", ResolvePath(from, c.user)},
                                                      {"to", ResolvePath(to, c.user)}}));
    return json{{"entry", EntryInfo(f.header["entry"])}};
  }
  return Unimplemented("no method filesystem.Filesystem/" + method);
}

// Start or Connect: the process's events as a Connect stream, with a
// keepalive whenever it is quiet. The process outlives a client that leaves.
std::optional<Response> E2bApi::ProcessStream(Call& c, const json& msg, bool start) {
  if (!c.out.ClaimStream()) return std::nullopt;  // before the process starts: none runs unwatched
  auto opened = [&]() -> Result<std::pair<agent::AgentClient, int>> {
    PDK_ASSIGN_OR_RETURN(agent::AgentClient client, manager_->Connect(c.sandbox.id));
    json req;
    if (start) {
      const json& process = msg.value("process", json::object());
      agent::ExecOptions opts;
      PDK_ASSIGN_OR_RETURN(std::string cmd, StringField(process, "cmd"));
      opts.argv.push_back(cmd);
      for (const auto& a : process.value("args", json::array())) {
        if (!a.is_string()) return InvalidArgument("field 'process.args' must hold strings");
        opts.argv.push_back(a.get<std::string>());
      }
      PDK_ASSIGN_OR_RETURN(opts.env, StringMap(process, "envs"));
      opts.cwd = process.value("cwd", "");
      if (!opts.cwd.empty()) opts.cwd = ResolvePath(opts.cwd, c.user);
      opts.user = c.user;
      opts.tag = msg.value("tag", "");
      PDK_TRY(manager_->ApplyExecDefaults(c.sandbox.id, opts));
      req = agent::AgentClient::SpawnRequest(opts, true);
      req["stdin"] = msg.value("stdin", false);
      if (msg.contains("pty")) {
        const json& size = msg["pty"].value("size", json::object());
        req["pty"] = {{"rows", size.value("rows", 24)}, {"cols", size.value("cols", 80)}};
      }
    } else {
      PDK_ASSIGN_OR_RETURN(req, Selector(msg));
      req["op"] = "attach";
    }
    PDK_ASSIGN_OR_RETURN(agent::Frame reply, client.Call(req));
    return std::make_pair(std::move(client), Field(reply.header, "pid", 0));
  }();
  auto& out = c.out;
  if (!out.Begin(http::status::ok, "application/connect+json")) return std::nullopt;
  if (!opened.ok()) {
    if (out.Write(connect::EndOfStream(opened.status()))) out.End();
    return std::nullopt;
  }
  auto& [client, pid] = *opened;
  if (!out.Write(connect::Envelope({{"event", {{"start", {{"pid", pid}}}}}}))) return std::nullopt;
  Status deadline(StatusCode::kDeadlineExceeded, "the stream reached its deadline (Connect-Timeout-Ms)");
  Pump(out, client, c.req, {{"event", {{"keepalive", json::object()}}}}, deadline,
       [pid = pid](const agent::Frame& f, bool& done) -> std::string {
         const json& h = f.header;
         std::string event = Field(h, "event", "");
         if (Field(h, "pid", 0) != pid) return "";
         if (event == "output") {
           json data = {{Field(h, "stream", "stdout"), connect::Base64Encode(f.payload)}};
           return connect::Envelope({{"event", {{"data", data}}}});
         }
         if (event != "exit") return "";
         done = true;
         int code = Field(h, "exit_code", -1), sig = Field(h, "signal", 0);
         std::string status = sig ? "signal: " + std::string(strsignal(sig)) : "exit status " + std::to_string(code);
         json end = {{"exitCode", sig ? 128 + sig : code}, {"exited", sig == 0}, {"status", status}};
         if (sig) end["error"] = status;
         return connect::Envelope({{"event", {{"end", end}}}});
       });
  return std::nullopt;
}

std::optional<Response> E2bApi::WatchStream(Call& c, const json& msg) {
  if (!c.out.ClaimStream()) return std::nullopt;
  bool placed = false;
  auto opened = [&]() -> Result<agent::AgentClient> {
    PDK_ASSIGN_OR_RETURN(std::string path, StringField(msg, "path"));
    PDK_TRY(TakeWatcherPlace(c.sandbox.id));
    {
      MutexLock lock(watchers_mu_);
      ++streamed_watches_[c.sandbox.id];
      placed = true;
    }
    PDK_ASSIGN_OR_RETURN(agent::AgentClient client, manager_->Connect(c.sandbox.id));
    PDK_TRY(client.Call({{"op", "watch"}, {"path", ResolvePath(path, c.user)},
                         {"recursive", msg.value("recursive", false)}})
                .status());
    return client;
  }();
  struct Place {  // given back however the stream ends
    E2bApi* api;
    const std::string& id;
    bool held;
    ~Place() {
      if (held) api->GiveWatcherPlace(id);
    }
  } place{this, c.sandbox.id, placed};
  auto& out = c.out;
  if (!out.Begin(http::status::ok, "application/connect+json")) return std::nullopt;
  if (!opened.ok()) {
    if (out.Write(connect::EndOfStream(opened.status()))) out.End();
    return std::nullopt;
  }
  if (!out.Write(connect::Envelope({{"start", json::object()}}))) return std::nullopt;
  // A watch has no end of its own: it lasts until its deadline or its client leaves.
  Pump(out, *opened, c.req, {{"keepalive", json::object()}}, Status::Ok(),
       [](const agent::Frame& f, bool&) -> std::string {
         if (Field(f.header, "event", "") != "fs") return "";
         json ev = {{"name", Field(f.header, "name", "")}, {"type", EventType(Field(f.header, "op", ""))}};
         return connect::Envelope({{"filesystem", ev}});
       });
  return std::nullopt;
}

}  // namespace paddock::api
