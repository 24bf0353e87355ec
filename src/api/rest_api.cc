#include "api/rest_api.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <set>
#include <thread>
#include <tuple>

#include "api/http_util.h"
#include "api/request_body.h"
#include "api/sse.h"
#include "api/tar_upload.h"
#include "api/volume_content.h"
#include "base/fs.h"
#include "base/json_field.h"
#include "base/units.h"
#include "sandbox/batch.h"

namespace paddock::api {

using agent::json;

namespace {

// A sync exec's reply holds at most this much of each stream (JSON escaping
// can grow it sixfold); more is for the streaming form.
constexpr int64_t kMaxExecOutput = int64_t{64} << 20;

json ForwardsJson(const SandboxInfo& i) {
  json all = json::array();
  for (const auto& f : i.forwards) all.push_back(f.ToJson());
  return all;
}

json NetworkJson(const SandboxInfo& i, const paddock::net::Network* network) {
  json j = i.network.ToJson(true);
  j["address"] = i.address.empty() ? json(nullptr) : json(i.address);
  j["gateway"] = network && !i.address.empty() ? json(network->gateway().ToString()) : json(nullptr);
  j["forwards"] = ForwardsJson(i);
  return j;
}

json ImageJson(const image::Image& img, bool detail) {
  json j = {{"id", img.id},
            {"refs", img.refs},
            {"digest", img.manifest_digest},
            {"size", img.size},
            {"layers", img.layers.size()},
            {"created_at", FormatTime(img.created_at_ms)},
            {"last_used_at", img.last_used_ms ? json(FormatTime(img.last_used_ms)) : json(nullptr)},
            {"config", img.config.ToJson()}};
  if (detail) {
    json layers = json::array();
    for (const auto& l : img.layers)
      layers.push_back({{"digest", l.digest}, {"size", l.size}, {"media_type", l.media_type},
                        {"diff_id", l.diff_id}, {"chain_id", l.chain_id}});
    j["layer_list"] = layers;
  }
  return j;
}

json VolumesJson(const std::vector<VolumeMount>& volumes) {
  json out = json::array();
  for (const auto& v : volumes)
    out.push_back({{"name", v.name}, {"path", v.path}, {"read_only", v.read_only}, {"host", v.host}});
  return out;
}

// "volumes" (or "host_dirs"): [{"name", "path", "read_only"?}] or ["NAME:/path[:ro]"].
Result<std::vector<VolumeMount>> ParseVolumeMounts(const json& body, const char* field) {
  std::vector<VolumeMount> out;
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return out;
  auto bad = [field] {
    return InvalidArgument(std::string("field '") + field +
                           "' must be a list of {\"name\", \"path\", \"read_only\"} or \"NAME:/path[:ro]\"");
  };
  if (!it->is_array()) return bad();
  for (const auto& v : *it) {
    VolumeMount m;
    if (v.is_string()) {
      std::string s = v.get<std::string>();
      size_t colon = s.find(':');
      if (colon == std::string::npos) return bad();
      m.name = s.substr(0, colon);
      m.path = s.substr(colon + 1);
      if (m.path.size() > 3 && m.path.compare(m.path.size() - 3, 3, ":ro") == 0) {
        m.read_only = true;
        m.path.resize(m.path.size() - 3);
      } else if (m.path.size() > 3 && m.path.compare(m.path.size() - 3, 3, ":rw") == 0) {
        m.path.resize(m.path.size() - 3);
      }
    } else if (v.is_object()) {
      m.name = Field<std::string>(v, "name", "");
      m.path = Field<std::string>(v, "path", "");
      m.read_only = Field<bool>(v, "read_only", false);
    } else {
      return bad();
    }
    if (m.name.empty() || m.path.empty()) return bad();
    out.push_back(std::move(m));
  }
  return out;
}

json ArchiveJson(const ArchiveRecord& a) {
  return json{{"id", a.id},
              {"sandbox", a.sandbox_id},
              {"sandbox_name", a.sandbox_name},
              {"template", a.template_name},
              {"image_id", a.image_id.empty() ? json(nullptr) : json(a.image_id)},
              {"snapshot", a.snapshot_id.empty() ? json(nullptr) : json(a.snapshot_id)},
              {"path", a.path},
              {"size", a.size},
              {"bytes", a.bytes},
              {"sha256", a.sha256},
              {"created_at", FormatTime(a.created_at_ms)}};
}

json SandboxJson(const SandboxInfo& i, const paddock::net::Network* network) {
  return json{{"id", i.id},
              {"name", i.name},
              {"template", i.template_name},
              {"image_id", i.image_id.empty() ? json(nullptr) : json(i.image_id)},
              {"snapshot", i.snapshot_id.empty() ? json(nullptr) : json(i.snapshot_id)},
              {"state", SandboxStateName(i.state)},
              {"cpu", i.limits.cpu_millicores},
              {"memory", i.limits.memory_bytes},
              {"disk", i.disk_bytes},
              {"volumes", VolumesJson(i.volumes)},
              {"devices", i.devices},
              {"pids", i.limits.pids},
              {"env", i.env},
              {"metadata", i.metadata},
              {"timeout_at", i.timeout_at_ms ? json(FormatTime(i.timeout_at_ms)) : json(nullptr)},
              {"on_timeout", TimeoutActionName(i.on_timeout)},
              {"auto_delete_after", i.auto_delete_after_s},
              {"idle_timeout", i.idle_timeout_s},
              {"on_idle", TimeoutActionName(i.on_idle)},
              {"archive_after", i.archive_after_s},
              {"archived", i.archived_at_ms > 0},
              {"archived_at", i.archived_at_ms ? json(FormatTime(i.archived_at_ms)) : json(nullptr)},
              {"archive_size", i.archive_size},
              {"restore_ms", i.restore_ms},
              {"created_at", FormatTime(i.created_at_ms)},
              {"started_at", i.started_at_ms ? json(FormatTime(i.started_at_ms)) : json(nullptr)},
              {"stopped_at", i.stopped_at_ms ? json(FormatTime(i.stopped_at_ms)) : json(nullptr)},
              {"error", i.error.empty() ? json(nullptr) : json(i.error)},
              {"healthy", i.unhealthy.empty()},
              {"unhealthy", i.unhealthy.empty() ? json(nullptr) : json(i.unhealthy)},
              {"init_pid", i.init_pid},
              {"network", NetworkJson(i, network)}};
}


// Typed field access that names the field when the type is wrong.
struct Body {
  json j;
  Status Check(const char* field, bool ok, const char* want) const {
    return ok ? Status::Ok()
              : InvalidArgument(std::string("field '") + field + "' must be " + want);
  }
  Result<std::string> Str(const char* f, std::string def = "") const {
    if (!j.contains(f) || j[f].is_null()) return def;
    PDK_TRY(Check(f, j[f].is_string(), "a string"));
    return j[f].get<std::string>();
  }
  Result<int64_t> Int(const char* f, int64_t def = 0) const {
    if (!j.contains(f) || j[f].is_null()) return def;
    PDK_TRY(Check(f, j[f].is_number_integer() && j[f].get<int64_t>() >= 0, "a non-negative integer"));
    return j[f].get<int64_t>();
  }
  Result<bool> Bool(const char* f, bool def = false) const {
    if (!j.contains(f) || j[f].is_null()) return def;
    PDK_TRY(Check(f, j[f].is_boolean(), "true or false"));
    return j[f].get<bool>();
  }
  Result<std::map<std::string, std::string>> StrMap(const char* f) const {
    std::map<std::string, std::string> out;
    if (!j.contains(f) || j[f].is_null()) return out;
    PDK_TRY(Check(f, j[f].is_object(), "an object of strings"));
    for (const auto& [k, v] : j[f].items()) {
      PDK_TRY(Check(f, v.is_string(), "an object of strings"));
      out[k] = v.get<std::string>();
    }
    return out;
  }
  Result<int64_t> Size(const char* f) const {
    if (!j.contains(f) || j[f].is_null()) return int64_t{0};
    if (j[f].is_number_integer() && j[f].get<int64_t>() >= 0) return j[f].get<int64_t>();
    if (j[f].is_string()) {
      auto size = ParseSize(j[f].get<std::string>());
      if (!size.ok()) return size.status().Annotate(std::string("field '") + f + "'");
      return size;
    }
    return InvalidArgument(std::string("field '") + f + "' must be bytes or a size like \"512m\"");
  }
};

Result<Body> ParseBody(const Request& req, bool required = false) {
  PDK_ASSIGN_OR_RETURN(json j, JsonObjectBody(req, required));
  return Body{std::move(j)};
}

// Runs `fn`, turning a Status into its error response.
template <typename Fn>
Response Try(const Request& req, Fn fn) {
  Result<Response> r = fn();
  if (!r.ok()) return ErrorResponse(r.status(), req.version(), req.keep_alive());
  return std::move(r).value();
}

}  // namespace

struct RestApi::Call {
  Request& req;
  StreamWriter& out;
  Target target;
  std::string op = "other";  // the metrics label
  std::string Q(const std::string& k, const std::string& def = "") const { return target.Q(k, def); }
};

RestApi::RestApi(SandboxManager* manager, api::Metrics* metrics, build::TemplateBuilder* builder)
    : manager_(manager), metrics_(metrics), builder_(builder) {
  metrics_->Describe("paddock_sandboxes", "gauge", "Sandboxes on this host by state.");
  metrics_->Describe("paddock_warm_shells", "gauge",
                     "Sandboxes-to-be ready for Create (namespaces, cgroup, root filesystem).");
  metrics_->Describe("paddock_warm_shells_target", "gauge",
                     "Warm shells kept ready: --warm-shells per template, grown by creates that found "
                     "none up to --warm-shells-max.");
  metrics_->Describe("paddock_warm_shell_creates_total", "counter",
                     "Creates that could start from a warm shell, by whether one was ready.");
  metrics_->Describe("paddock_warm_network_slots", "gauge",
                     "Network slots ready for Create and Start (namespace, veth, address).");
  metrics_->Describe("paddock_sandbox_addresses", "gauge", "Sandboxes holding a network address.");
  metrics_->Describe("paddock_tcp_forwards", "gauge", "Host ports listening for TCP forwards.");
  metrics_->Describe("paddock_tcp_forward_connections", "gauge", "Open TCP forward connections.");
  metrics_->Describe("paddock_images", "gauge", "Images on this host.");
  metrics_->Describe("paddock_sandboxes_archived", "gauge", "Stopped sandboxes whose files are archived.");
  metrics_->Describe("paddock_archived_files_bytes", "gauge", "Bytes of stopped sandboxes' archived files.");
  metrics_->Describe("paddock_archives", "gauge", "Archives of files deleted sandboxes kept.");
  metrics_->Describe("paddock_archives_bytes", "gauge", "Bytes of the archives deleted sandboxes kept.");
  metrics_->Describe("paddock_disk_pool_bytes", "gauge", "The disk pool's size and free bytes (--disk-pool).");
  metrics_->Describe("paddock_devices_held", "gauge", "CDI devices (GPUs included) held by sandboxes.");
  metrics_->Describe("paddock_sandbox_device", "gauge", "1 for each CDI device (GPUs included) a sandbox holds.");
  metrics_->Describe("paddock_registry_requests_total", "counter",
                     "HTTP requests sent to registries (manifests, blobs, tokens, redirects followed).");
  metrics_->Describe("paddock_operation_seconds", "histogram", "Latency of API operations.");
  metrics_->Describe("paddock_errors_total", "counter", "Failed API operations by error code.");
  metrics_->Describe("paddock_http_requests_total", "counter", "HTTP requests by status class.");
}

std::optional<Response> RestApi::Handle(Request& req, StreamWriter& out) {
  auto start = std::chrono::steady_clock::now();
  Target target = ParseTarget(req);
  Call c{req, out, std::move(target)};
  std::optional<Response> res = Route(c);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  unsigned status = res ? res->result_int() : 200;
  metrics_->Observe("paddock_operation_seconds", {{"op", c.op}}, secs);
  metrics_->Count("paddock_http_requests_total", {{"code", std::to_string(status / 100) + "xx"}});
  if (res && status >= 400) {
    json body = json::parse(res->body(), nullptr, false);
    std::string code = body.is_object() && body.contains("error") ? body["error"].value("code", "other") : "other";
    metrics_->Count("paddock_errors_total", {{"op", c.op}, {"code", code}});
  }
  return res;
}

bool RestApi::TakesUpload(const Request& req) {
  std::string_view target(req.target().data(), req.target().size());
  target = target.substr(0, target.find('?'));
  if (req.method() == http::verb::post) return target == "/v1/images/import";
  if (req.method() != http::verb::put) return false;
  if (target.rfind("/v1/build-files/", 0) == 0 || IsVolumeUpload(req, "/v1/volumes/")) return true;
  // /v1/sandboxes/{id}/files and /v1/sandboxes/{id}/files/archive
  constexpr std::string_view kPrefix = "/v1/sandboxes/";
  if (target.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view rest = target.substr(kPrefix.size());
  size_t slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos) return false;
  rest = rest.substr(slash);
  return rest == "/files" || rest == "/files/archive";
}

std::optional<Response> RestApi::Route(Call& c) {
  const auto& p = c.target.path;
  const Request& req = c.req;
  auto method = req.method();
  if (p.size() == 1 && p[0] == "metrics" && method == http::verb::get) return Metrics(c);
  if (p.size() == 2 && p[0] == "v1" && p[1] == "health")
    return JsonResponse(http::status::ok, {{"status", "ok"}, {"cgroup", manager_->cgroup_version()}}, req);
  if (p.size() >= 2 && p[0] == "v1" && p[1] == "images") return Images(c);
  if (p.size() >= 2 && p[0] == "v1" && p[1] == "registries") return Registries(c);
  if (p.size() >= 2 && p[0] == "v1" && p[1] == "snapshots") return Snapshots(c);
  if (p.size() >= 2 && p[0] == "v1" && (p[1] == "templates" || p[1] == "templates:prune")) return Templates(c);
  if (p.size() >= 2 && p[0] == "v1" && p[1] == "builds") return Builds(c);
  if (p.size() == 4 && p[0] == "v1" && p[1] == "volumes" && (p[3] == "file" || p[3] == "dir" || p[3] == "path")) {
    c.op = "volume-files";
    auto r = VolumeContent(*manager_, p[2], p[3], req, c.target, c.out);
    if (!r.ok()) return ErrorResponse(r.status(), req.version(), req.keep_alive());
    return std::move(*r);
  }
  if (p.size() >= 2 && p[0] == "v1" && p[1] == "volumes") return Volumes(c);
  if (p.size() >= 2 && p[0] == "v1" && p[1] == "archives") return Archives(c);
  if (p.size() == 2 && p[0] == "v1" && p[1] == "gpus" && method == http::verb::get) {
    c.op = "gpus";
    auto holders = manager_->DeviceHolders();
    json gpus = json::array();
    cdi::Registry registry = manager_->Devices();
    for (const auto& d : registry.devices()) {
      if (!SandboxManager::IsGpu(d.name)) continue;
      json nodes = json::array();
      for (const auto& n : d.edits.nodes) nodes.push_back(n.path);
      auto held = holders.find(d.name);
      gpus.push_back({{"name", d.name},
                      {"id", d.name.substr(SandboxManager::kGpuPrefix.size())},
                      {"source", d.spec},
                      {"nodes", nodes},
                      {"held_by", held == holders.end() ? json(nullptr) : json(held->second)}});
    }
    return JsonResponse(http::status::ok, {{"gpus", gpus}}, req);
  }
  if (p.size() == 2 && p[0] == "v1" && p[1] == "devices" && method == http::verb::get) {
    c.op = "devices";
    cdi::Registry registry = manager_->Devices();
    auto holders = manager_->DeviceHolders();
    json devices = json::array(), errors = json::array();
    for (const auto& d : registry.devices()) {
      json nodes = json::array(), mounts = json::array();
      for (const auto& n : d.edits.nodes) nodes.push_back({{"path", n.path}, {"host_path", n.host_path}});
      for (const auto& m : d.edits.mounts)
        mounts.push_back({{"host_path", m.host_path}, {"path", m.container_path}, {"read_only", m.read_only}});
      json symlinks = json::array();
      for (const auto& [target, link] : d.edits.symlinks) symlinks.push_back({{"target", target}, {"path", link}});
      auto held = holders.find(d.name);
      devices.push_back({{"name", d.name},
                         {"spec", d.spec},
                         {"nodes", nodes},
                         {"mounts", mounts},
                         {"env", d.edits.env},
                         {"symlinks", symlinks},
                         {"ldcache_folders", d.edits.ldcache_folders},
                         {"additional_gids", d.edits.additional_gids},
                         {"unsupported", d.edits.unsupported},
                         {"held_by", held == holders.end() ? json(nullptr) : json(held->second)}});
    }
    for (const auto& e : registry.errors()) errors.push_back({{"spec", e.path}, {"error", e.reason}});
    std::string filter = manager_->device_filter();
    return JsonResponse(http::status::ok,
                        {{"devices", devices},
                         {"errors", errors},
                         {"device_filter", filter.empty() ? json(nullptr) : json(filter)},
                         {"device_filter_error", filter.empty() ? json(manager_->device_filter_error()) : json(nullptr)}},
                        req);
  }
  if (p.size() >= 2 && p[0] == "v1" && p[1] == "build-files") return BuildFiles(c);
  if (p.size() == 2 && p[0] == "v1" && p[1] == "sandboxes:batch" && method == http::verb::post)
    return CreateSandboxes(c);
  if (p.size() == 2 && p[0] == "v1" && p[1] == "sandboxes:run" && method == http::verb::post) return RunOnce(c);
  if (p.size() < 2 || p[0] != "v1" || p[1] != "sandboxes")
    return ErrorResponse(NotFound("no route for " + std::string(req.method_string()) + " " +
                                  std::string(req.target())),
                         req.version(), req.keep_alive());
  if (p.size() == 2) {
    if (method == http::verb::post) return CreateSandbox(c);
    if (method == http::verb::get) return ListSandboxes(c);
  }
  if (p.size() >= 3) {
    const std::string& id = p[2];
    if (p.size() == 3 && method == http::verb::get) {
      c.op = "get";
      return Try(req, [&]() -> Result<Response> {
        PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
        json j = SandboxJson(info, manager_->network());
        if (auto used = manager_->DiskUsage(id); used.ok()) j["disk_used"] = used->used_bytes;
        return JsonResponse(http::status::ok, j, req);
      });
    }
    bool keep_data = c.target.Has("keep_data") && c.Q("keep_data") != "false" && c.Q("keep_data") != "0";
    if (p.size() == 3 && method == http::verb::delete_ && keep_data) {
      c.op = "delete";
      return Try(req, [&]() -> Result<Response> {
        PDK_ASSIGN_OR_RETURN(ArchiveRecord a, manager_->DeleteKeepingData(id, c.Q("path", "/")));
        return JsonResponse(http::status::ok, ArchiveJson(a), req);
      });
    }
    if (p.size() == 3 && method == http::verb::delete_) return Transition(c, id, "delete");
    if (p.size() == 4 && method == http::verb::post) {
      const std::string& action = p[3];
      if (action == "pause" || action == "resume" || action == "stop" || action == "start" ||
          action == "restart")
        return Transition(c, id, action);
      if (action == "timeout") return SetTimeout(c, id);
      if (action == "exec") return Exec(c, id);
      if (action == "snapshots") return CreateSnapshot(c, id);
      if (action == "rollback") return Rollback(c, id);
      if (action == "archive") {
        c.op = "archive";
        return Try(req, [&]() -> Result<Response> {
          PDK_TRY(manager_->ArchiveLayer(id));
          PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
          return JsonResponse(http::status::ok, SandboxJson(info, manager_->network()), req);
        });
      }
    }
    if (p.size() == 4 && p[3] == "network" && (method == http::verb::put || method == http::verb::patch))
      return UpdateNetwork(c, id);
    if (p.size() == 4 && p[3] == "network" && method == http::verb::get) {
      c.op = "network";
      return Try(req, [&]() -> Result<Response> {
        PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
        return JsonResponse(http::status::ok, NetworkJson(info, manager_->network()), req);
      });
    }
    if (p.size() >= 4 && p[3] == "forwards")
      if (auto res = Forwards(c, id, p.size() == 5 ? p[4] : "", p.size())) return res;
    if (p.size() >= 4 && p[3] == "processes")
      return Processes(c, id, std::vector<std::string>(p.begin() + 4, p.end()));
    if (p.size() >= 4 && p[3] == "files") return Files(c, id, p.size() >= 5 ? p[4] : "");
  }
  return ErrorResponse(Status(StatusCode::kNotFound, "no route for " + std::string(req.method_string()) +
                                                         " " + std::string(req.target())),
                       req.version(), req.keep_alive());
}

std::optional<Response> RestApi::Images(Call& c) {
  const auto& p = c.target.path;
  auto method = c.req.method();
  c.op = "image";
  if (p.size() == 3 && p[2] == "pull" && method == http::verb::post) return PullImage(c);
  if (p.size() == 2 && method == http::verb::get)
    return Try(c.req, [&]() -> Result<Response> {
      json all = json::array();
      for (const auto& img : manager_->images().List()) all.push_back(ImageJson(img, false));
      return JsonResponse(http::status::ok, {{"images", all}}, c.req);
    });
  if (p.size() == 3 && p[2] == "import" && method == http::verb::post)
    return Try(c.req, [&]() -> Result<Response> {
      c.op = "import";
      const std::string& archive = c.out.body_file();
      struct stat st {};
      if (archive.empty() || ::stat(archive.c_str(), &st) != 0 || st.st_size == 0)
        return InvalidArgument("the body must be the archive (docker save, or an OCI archive)");
      PDK_ASSIGN_OR_RETURN(auto images, manager_->images().Import(archive, c.Q("ref")));
      json all = json::array();
      for (const auto& img : images) all.push_back(ImageJson(img, false));
      return JsonResponse(http::status::ok, {{"images", all}}, c.req);
    });
  if (p.size() == 3 && p[2] == "prune" && method == http::verb::post)
    return Try(c.req, [&]() -> Result<Response> {
      PDK_ASSIGN_OR_RETURN(image::PruneReport r, manager_->PruneImages());
      return JsonResponse(http::status::ok, {{"images_removed", r.images}, {"layers_removed", r.layers}}, c.req);
    });
  if (p.size() >= 3 && (method == http::verb::get || method == http::verb::delete_)) {
    // A reference holds slashes: the rest of the path is the reference.
    std::string ref = p[2];
    for (size_t i = 3; i < p.size(); ++i) ref += "/" + p[i];
    return Try(c.req, [&]() -> Result<Response> {
      if (method == http::verb::delete_) {
        PDK_TRY(manager_->RemoveImage(ref));
        return EmptyResponse(http::status::no_content, c.req);
      }
      PDK_ASSIGN_OR_RETURN(image::Image img, manager_->images().Find(ref));
      return JsonResponse(http::status::ok, ImageJson(img, true), c.req);
    });
  }
  return ErrorResponse(NotFound("no route for " + std::string(c.req.method_string()) + " " +
                                std::string(c.req.target())),
                       c.req.version(), c.req.keep_alive());
}

static Result<std::optional<image::Credentials>> AuthField(const Body& b) {
  if (!b.j.contains("auth") || b.j["auth"].is_null()) return std::optional<image::Credentials>();
  const json& a = b.j["auth"];
  if (!a.is_object() || !a.contains("username") || !a["username"].is_string() || !a.contains("password") ||
      !a["password"].is_string())
    return InvalidArgument("field 'auth' must be {\"username\": string, \"password\": string}");
  return std::optional<image::Credentials>(image::Credentials{a["username"], a["password"]});
}

Response RestApi::Registries(Call& c) {
  c.op = "registry";
  const auto& p = c.target.path;
  auto method = c.req.method();
  return Try(c.req, [&]() -> Result<Response> {
    if (p.size() == 2 && method == http::verb::get)
      return JsonResponse(http::status::ok, {{"logins", manager_->images().Logins()}}, c.req);
    if (p.size() == 3 && p[2] == "login" && method == http::verb::post) {
      PDK_ASSIGN_OR_RETURN(Body b, ParseBody(c.req, true));
      PDK_ASSIGN_OR_RETURN(std::string registry, b.Str("registry"));
      PDK_ASSIGN_OR_RETURN(std::string user, b.Str("username"));
      PDK_ASSIGN_OR_RETURN(std::string password, b.Str("password"));
      if (registry.empty()) return InvalidArgument("field 'registry' (host[:port]) is required");
      PDK_ASSIGN_OR_RETURN(std::string name, manager_->images().Login(registry, {user, password}));
      return JsonResponse(http::status::ok, {{"registry", name}, {"username", user}}, c.req);
    }
    if (p.size() == 4 && p[3] == "login" && method == http::verb::delete_) {
      PDK_TRY(manager_->images().Logout(p[2]));
      return EmptyResponse(http::status::no_content, c.req);
    }
    return NotFound("no route for " + std::string(c.req.method_string()) + " " + std::string(c.req.target()));
  });
}

// POST /v1/images/pull {"ref", "stream", "auth"}: the image as JSON once pulled, or
// with "stream" (or Accept: text/event-stream) a "progress" event per layer
// step, then "done" with the image or "error" with the reason.
std::optional<Response> RestApi::PullImage(Call& c) {
  c.op = "pull";
  struct PullRequest {
    std::string ref;
    bool stream = false;
    std::optional<image::Credentials> auth;  // this pull's, over a stored login
  };
  auto parsed = [&]() -> Result<PullRequest> {
    PDK_ASSIGN_OR_RETURN(Body b, ParseBody(c.req, true));
    PullRequest r;
    PDK_ASSIGN_OR_RETURN(r.ref, b.Str("ref"));
    if (r.ref.empty()) return InvalidArgument("field 'ref' (the image reference) is required");
    PDK_TRY(image::ImageRef::Parse(r.ref).status());
    PDK_ASSIGN_OR_RETURN(r.stream, b.Bool("stream"));
    if (c.req[http::field::accept].find("text/event-stream") != std::string_view::npos) r.stream = true;
    PDK_ASSIGN_OR_RETURN(r.auth, AuthField(b));
    return r;
  }();
  if (!parsed.ok()) return ErrorResponse(parsed.status(), c.req.version(), c.req.keep_alive());
  const std::string& ref = parsed->ref;
  const auto& auth = parsed->auth;
  if (!c.out.ClaimStream()) return std::nullopt;  // a pull, streamed or not, is a long wait
  if (!parsed->stream)
    return Try(c.req, [&]() -> Result<Response> {
      PDK_ASSIGN_OR_RETURN(image::Image img, manager_->images().Pull(ref, nullptr, auth));
      return JsonResponse(http::status::ok, ImageJson(img, false), c.req);
    });
  // The pull runs on its own thread; this one writes its events in order.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> events;
  bool done = false;
  Result<image::Image> result = Internal("pull did not finish");
  std::thread puller([&] {
    auto r = manager_->images().Pull(
        ref,
        [&](const image::PullEvent& e) {
          std::lock_guard<std::mutex> lock(mu);
          events.push_back(SseEvent("progress", {{"digest", e.digest}, {"state", image::LayerStateName(e.state)},
                                                 {"current", e.current}, {"total", e.total}}));
          cv.notify_one();
        },
        auth);
    std::lock_guard<std::mutex> lock(mu);
    result = std::move(r);
    done = true;
    cv.notify_one();
  });
  bool open = c.out.Begin(http::status::ok, "text/event-stream");
  std::unique_lock<std::mutex> lock(mu);
  while (true) {
    cv.wait(lock, [&] { return done || !events.empty(); });
    while (!events.empty()) {
      std::string e = std::move(events.front());
      events.pop_front();
      lock.unlock();
      open = open && c.out.Write(e);  // a client gone does not stop the pull
      lock.lock();
    }
    if (done) break;
  }
  lock.unlock();
  puller.join();
  if (open) {
    if (result.ok())
      open = c.out.Write(SseEvent("done", ImageJson(*result, false)));
    else
      open = c.out.Write(SseEvent("error", {{"code", StatusCodeName(result.status().code())},
                                           {"status", static_cast<int>(HttpStatusFor(result.status().code()))},
                                           {"message", result.status().message()}}));
  }
  if (open) c.out.End();
  return std::nullopt;
}

// The fields of a create's body (every one optional).
static Result<SandboxSpec> SpecFromBody(const Body& b) {
  SandboxSpec spec;
  PDK_ASSIGN_OR_RETURN(spec.name, b.Str("name"));
  PDK_ASSIGN_OR_RETURN(spec.template_name, b.Str("template", "host"));
  PDK_ASSIGN_OR_RETURN(spec.snapshot, b.Str("snapshot"));
  if (!spec.snapshot.empty() && b.j.contains("template"))
    return InvalidArgument("give 'template' or 'snapshot', not both: a snapshot brings its own base");
  PDK_ASSIGN_OR_RETURN(spec.restore, b.Str("restore"));
  if (!spec.restore.empty() && (b.j.contains("template") || b.j.contains("snapshot")))
    return InvalidArgument("give 'restore' without 'template' or 'snapshot': an archive brings its own base");
  if (b.j.contains("archive_after")) {
    const json& v = b.j["archive_after"];
    if (!v.is_number_integer() || v.get<int64_t>() < -1)
      return InvalidArgument("field 'archive_after' must be seconds stopped before its files are archived (-1: never)");
    spec.archive_after_s = v.get<int64_t>();
  }
  PDK_ASSIGN_OR_RETURN(spec.limits.cpu_millicores, b.Int("cpu"));
  PDK_ASSIGN_OR_RETURN(spec.limits.memory_bytes, b.Size("memory"));
  PDK_ASSIGN_OR_RETURN(spec.disk_bytes, b.Size("disk"));
  PDK_ASSIGN_OR_RETURN(spec.volumes, ParseVolumeMounts(b.j, "volumes"));
  if (b.j.contains("devices") && !b.j["devices"].is_null()) {
    const json& d = b.j["devices"];
    if (!d.is_array()) return InvalidArgument("field 'devices' must be a list of CDI names (VENDOR/CLASS=NAME)");
    for (const auto& name : d) {
      if (!name.is_string()) return InvalidArgument("field 'devices' must be a list of CDI names (VENDOR/CLASS=NAME)");
      spec.devices.push_back(name.get<std::string>());
    }
  }
  PDK_ASSIGN_OR_RETURN(std::string gpus, b.Str("gpus"));
  spec.gpus = gpus;
  PDK_ASSIGN_OR_RETURN(std::vector<VolumeMount> host_dirs, ParseVolumeMounts(b.j, "host_dirs"));
  for (auto& h : host_dirs) {
    h.host = true;
    h.read_only = true;
    spec.volumes.push_back(std::move(h));
  }
  PDK_ASSIGN_OR_RETURN(spec.limits.pids, b.Int("pids"));
  PDK_ASSIGN_OR_RETURN(spec.env, b.StrMap("env"));
  PDK_ASSIGN_OR_RETURN(spec.metadata, b.StrMap("metadata"));
  PDK_ASSIGN_OR_RETURN(spec.timeout_s, b.Int("timeout"));
  PDK_ASSIGN_OR_RETURN(spec.auto_delete_after_s, b.Int("auto_delete_after"));
  PDK_ASSIGN_OR_RETURN(spec.idle_timeout_s, b.Int("idle_timeout"));
  PDK_ASSIGN_OR_RETURN(std::string on_idle, b.Str("on_idle", "stop"));
  if (on_idle != "stop" && on_idle != "pause") return InvalidArgument("field 'on_idle' must be stop or pause");
  spec.on_idle = on_idle == "pause" ? TimeoutAction::kPause : TimeoutAction::kStop;
  PDK_ASSIGN_OR_RETURN(std::string action, b.Str("on_timeout", "kill"));
  PDK_ASSIGN_OR_RETURN(spec.on_timeout, ParseTimeoutAction(action));
  if (b.j.contains("network")) PDK_TRY(spec.network.Merge(b.j["network"]));
  return spec;
}

Response RestApi::CreateSandbox(Call& c) {
  c.op = "create";
  return Try(c.req, [&]() -> Result<Response> {
    PDK_ASSIGN_OR_RETURN(Body b, ParseBody(c.req));
    PDK_ASSIGN_OR_RETURN(SandboxSpec spec, SpecFromBody(b));
    PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Create(spec));
    return JsonResponse(http::status::created, SandboxJson(info, manager_->network()), c.req);
  });
}

// POST /v1/sandboxes:batch: a create's fields and "count". 201 when all
// were created; 207 when some failed; each result, in order, is
// {"sandbox": ...} or {"error": ...}. When none was created, the first error.
// A batch holds its worker as long as a sync exec may: it takes a stream
// slot, so that batches can never take every worker.
std::optional<Response> RestApi::CreateSandboxes(Call& c) {
  c.op = "create_batch";
  auto parsed = [&]() -> Result<std::pair<SandboxSpec, int64_t>> {
    PDK_ASSIGN_OR_RETURN(Body b, ParseBody(c.req));
    PDK_ASSIGN_OR_RETURN(int64_t count, b.Int("count"));
    if (count < 1 || count > static_cast<int64_t>(kMaxBatch))
      return InvalidArgument("field 'count' must be 1 to " + std::to_string(kMaxBatch));
    b.j.erase("count");
    PDK_ASSIGN_OR_RETURN(SandboxSpec spec, SpecFromBody(b));
    return std::make_pair(std::move(spec), count);
  }();
  if (!parsed.ok()) return ErrorResponse(parsed.status(), c.req.version(), c.req.keep_alive());
  if (!c.out.ClaimStream()) return std::nullopt;
  const SandboxSpec& spec = parsed->first;
  const int64_t count = parsed->second;
  return Try(c.req, [&]() -> Result<Response> {
    auto results = CreateBatch(*manager_, spec, static_cast<size_t>(count));
    json all = json::array();
    int created = 0;
    const Status* first_error = nullptr;
    for (const auto& r : results) {
      if (r.ok()) {
        ++created;
        all.push_back({{"sandbox", SandboxJson(*r, manager_->network())}});
      } else {
        if (!first_error) first_error = &r.status();
        all.push_back(ErrorBody(r.status()));
      }
    }
    if (created == 0) return *first_error;
    return JsonResponse(created == count ? http::status::created : http::status::multi_status,
                        {{"created", created}, {"failed", count - created}, {"results", all}}, c.req);
  });
}

// PUT and PATCH alike: the fields given replace the current ones.
Response RestApi::UpdateNetwork(Call& c, const std::string& id) {
  c.op = "network";
  return Try(c.req, [&]() -> Result<Response> {
    PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req, true));
    PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
    paddock::net::NetworkSettings settings = info.network;
    PDK_TRY(settings.Merge(body));
    PDK_TRY(manager_->UpdateNetwork(id, settings));
    PDK_ASSIGN_OR_RETURN(info, manager_->Get(id));
    return JsonResponse(http::status::ok, NetworkJson(info, manager_->network()), c.req);
  });
}

// /v1/sandboxes/{id}/forwards: GET lists, POST {"port", "host_port", "bind"}
// adds; /forwards/{host_port}: DELETE removes. Nothing for other methods
// and paths (the caller answers 404).
std::optional<Response> RestApi::Forwards(Call& c, const std::string& id, const std::string& host_port,
                                          size_t depth) {
  c.op = "forward";
  auto method = c.req.method();
  if (depth == 4 && method == http::verb::get)
    return Try(c.req, [&]() -> Result<Response> {
      PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
      return JsonResponse(http::status::ok, {{"forwards", ForwardsJson(info)}}, c.req);
    });
  if (depth == 4 && method == http::verb::post)
    return Try(c.req, [&]() -> Result<Response> {
      PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req, true));
      PDK_ASSIGN_OR_RETURN(paddock::net::PortForward forward, paddock::net::PortForward::FromJson(body));
      PDK_ASSIGN_OR_RETURN(forward, manager_->AddForward(id, forward));
      return JsonResponse(http::status::created, forward.ToJson(), c.req);
    });
  if (depth == 5 && method == http::verb::delete_)
    return Try(c.req, [&]() -> Result<Response> {
      int port = 0;
      auto [end, ec] = std::from_chars(host_port.data(), host_port.data() + host_port.size(), port);
      if (ec != std::errc() || end != host_port.data() + host_port.size() || port < 1 || port > 65535)
        return InvalidArgument("'" + host_port + "' is not a host port (1 to 65535)");
      PDK_TRY(manager_->RemoveForward(id, static_cast<uint16_t>(port)));
      return EmptyResponse(http::status::no_content, c.req);
    });
  return std::nullopt;
}

Response RestApi::ListSandboxes(Call& c) {
  c.op = "list";
  return Try(c.req, [&]() -> Result<Response> {
    std::set<std::string> states;
    std::string state_filter = c.Q("state");
    for (size_t i = 0; i < state_filter.size();) {
      size_t j = state_filter.find(',', i);
      if (j == std::string::npos) j = state_filter.size();
      std::string s = state_filter.substr(i, j - i);
      if (s != "running" && s != "paused" && s != "stopped")
        return InvalidArgument("state filter '" + s + "' is not one of running, paused, stopped");
      states.insert(s);
      i = j + 1;
    }
    std::map<std::string, std::string> labels;  // metadata.KEY=VALUE
    for (const auto& [k, v] : c.target.query)
      if (k.rfind("metadata.", 0) == 0) labels[k.substr(9)] = v;
    json list = json::array();
    for (const auto& info : manager_->List()) {
      if (!states.empty() && !states.count(SandboxStateName(info.state))) continue;
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = info.metadata.find(k);
        if (it == info.metadata.end() || it->second != v) match = false;
      }
      if (match) list.push_back(SandboxJson(info, manager_->network()));
    }
    return JsonResponse(http::status::ok, {{"sandboxes", list}}, c.req);
  });
}

Response RestApi::Transition(Call& c, const std::string& id, const std::string& action) {
  c.op = action;
  return Try(c.req, [&]() -> Result<Response> {
    PDK_ASSIGN_OR_RETURN(Body b, ParseBody(c.req));
    if (action == "delete") {
      PDK_TRY(manager_->Delete(id));
      return EmptyResponse(http::status::no_content, c.req);
    }
    if (action == "pause") PDK_TRY(manager_->Pause(id));
    if (action == "resume") PDK_TRY(manager_->Resume(id));
    // A start or restart may bring new limits: memory, cpu, pids, disk.
    SandboxManager::LimitsChange change;
    if (action == "start" || action == "restart") {
      auto given = [&](const char* f) { return b.j.contains(f) && !b.j[f].is_null(); };
      for (auto [field, into, size] : {std::tuple{"memory", &change.memory_bytes, true},
                                       std::tuple{"disk", &change.disk_bytes, true},
                                       std::tuple{"cpu", &change.cpu_millicores, false},
                                       std::tuple{"pids", &change.pids, false}}) {
        if (!given(field)) continue;
        PDK_ASSIGN_OR_RETURN(int64_t value, size ? b.Size(field) : b.Int(field));
        *into = value;
      }
    }
    if (action == "start") PDK_TRY(manager_->Start(id, change));
    if (action == "stop" || action == "restart") {
      PDK_ASSIGN_OR_RETURN(int64_t grace, b.Int("grace_ms", -1));
      if (action == "stop") PDK_TRY(manager_->Stop(id, static_cast<int>(grace)));
      if (action == "restart") PDK_TRY(manager_->Restart(id, static_cast<int>(grace), change));
    }
    PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
    return JsonResponse(http::status::ok, SandboxJson(info, manager_->network()), c.req);
  });
}

static json SnapshotJson(const SnapshotRecord& s) {
  return json{{"id", s.id},
              {"name", s.name.empty() ? json(nullptr) : json(s.name)},
              {"source", s.source_id},
              {"template", s.template_name},
              {"image_id", s.image_id.empty() ? json(nullptr) : json(s.image_id)},
              {"parent", s.parent.empty() ? json(nullptr) : json(s.parent)},
              {"size", s.size},
              {"memory", false},
              {"build_step", !s.build_key.empty()},
              {"created_at", FormatTime(s.created_at_ms)}};
}

// POST /v1/sandboxes/{id}/snapshots: {"name"?}. Files only: asking for
// memory ("memory": true) is refused, saying why. A copy of gigabytes holds
// its worker for seconds: it takes a stream slot, as a sync exec does.
std::optional<Response> RestApi::CreateSnapshot(Call& c, const std::string& id) {
  c.op = "snapshot";
  if (!c.out.ClaimStream()) return std::nullopt;
  return Try(c.req, [&]() -> Result<Response> {
    PDK_ASSIGN_OR_RETURN(Body b, ParseBody(c.req));
    PDK_ASSIGN_OR_RETURN(std::string name, b.Str("name"));
    PDK_ASSIGN_OR_RETURN(bool memory, b.Bool("memory"));
    if (memory)
      return Unimplemented("snapshots keep files only: this host cannot checkpoint memory or processes "
                           "(CRIU does not work on its kernel); leave out 'memory'");
    PDK_ASSIGN_OR_RETURN(SnapshotRecord snap, manager_->CreateSnapshot(id, name));
    return JsonResponse(http::status::created, SnapshotJson(snap), c.req);
  });
}

// POST /v1/sandboxes/{id}/rollback: {"snapshot": id or name}; a stream
// slot too (a copy, then a boot).
std::optional<Response> RestApi::Rollback(Call& c, const std::string& id) {
  c.op = "rollback";
  if (!c.out.ClaimStream()) return std::nullopt;
  return Try(c.req, [&]() -> Result<Response> {
    PDK_ASSIGN_OR_RETURN(Body b, ParseBody(c.req, true));
    PDK_ASSIGN_OR_RETURN(std::string snapshot, b.Str("snapshot"));
    if (snapshot.empty()) return InvalidArgument("field 'snapshot' (an id or a name) is required");
    PDK_TRY(manager_->Rollback(id, snapshot));
    PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
    return JsonResponse(http::status::ok, SandboxJson(info, manager_->network()), c.req);
  });
}

// /v1/snapshots: list; /v1/snapshots/{id or name}: inspect, remove.
Response RestApi::Snapshots(Call& c) {
  const auto& p = c.target.path;
  auto method = c.req.method();
  c.op = "snapshot";
  return Try(c.req, [&]() -> Result<Response> {
    if (p.size() == 2 && method == http::verb::get) {
      json all = json::array();
      for (const auto& snap : manager_->ListSnapshots()) all.push_back(SnapshotJson(snap));
      return JsonResponse(http::status::ok, {{"snapshots", all}}, c.req);
    }
    if (p.size() == 3 && method == http::verb::get) {
      PDK_ASSIGN_OR_RETURN(SnapshotRecord snap, manager_->GetSnapshot(p[2]));
      return JsonResponse(http::status::ok, SnapshotJson(snap), c.req);
    }
    if (p.size() == 3 && method == http::verb::delete_) {
      PDK_TRY(manager_->RemoveSnapshot(p[2]));
      return EmptyResponse(http::status::no_content, c.req);
    }
    return NotFound("no route for " + std::string(c.req.method_string()) + " " + std::string(c.req.target()));
  });
}

static json TemplateJson(const TemplateRecord& t, const SnapshotRecord* snap) {
  json j = {{"name", t.name},
            {"snapshot", t.snapshot_id},
            {"build", t.build_id.empty() ? json(nullptr) : json(t.build_id)},
            {"created_at", FormatTime(t.created_at_ms)}};
  if (snap) {
    j["base"] = snap->template_name;
    j["config"] = json::parse(snap->config, nullptr, false);
  }
  return j;
}

static json BuildJson(const build::BuildStatus& b) {
  json logs = json::array();
  for (const auto& l : b.logs)
    logs.push_back({{"at", FormatTime(l.at_ms)}, {"level", l.level}, {"message", l.message}, {"step", l.step}});
  json j = {{"id", b.id},
            {"template", b.name},
            {"status", build::BuildStateName(b.state)},
            {"logs", std::move(logs)},
            {"logs_end", b.logs_total},
            {"cached_steps", b.cached_steps},
            {"snapshot", b.snapshot_id.empty() ? json(nullptr) : json(b.snapshot_id)},
            {"started_at", FormatTime(b.started_at_ms)},
            {"finished_at", b.finished_at_ms ? json(FormatTime(b.finished_at_ms)) : json(nullptr)}};
  if (b.state == build::BuildState::kError)
    j["error"] = {{"message", b.error}, {"step", build::StepName(b.error_step, b.steps)}};
  return j;
}

Response RestApi::Templates(Call& c) {
  const auto& p = c.target.path;
  auto method = c.req.method();
  c.op = "template";
  return Try(c.req, [&]() -> Result<Response> {
    if (p.size() == 2 && p[1] == "templates:prune" && method == http::verb::post) {
      auto [snapshots, bytes] = manager_->PruneBuildCache();
      int files = builder_->PruneFiles();
      return JsonResponse(http::status::ok,
                          {{"snapshots_removed", snapshots}, {"bytes_freed", bytes}, {"files_removed", files}}, c.req);
    }
    if (p[1] != "templates") return NotFound("no route for " + std::string(c.req.target()));
    if (p.size() == 2 && method == http::verb::post) {
      PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req, true));
      PDK_ASSIGN_OR_RETURN(build::BuildSpec spec, build::ParseBuildSpec(body));
      PDK_ASSIGN_OR_RETURN(std::string id, builder_->Start(std::move(spec)));
      PDK_ASSIGN_OR_RETURN(build::BuildStatus st, builder_->Get(id));
      return JsonResponse(http::status::accepted, BuildJson(st), c.req);
    }
    if (p.size() == 2 && method == http::verb::get) {
      json all = json::array();
      for (const auto& t : manager_->ListTemplates()) {
        auto snap = manager_->GetSnapshot(t.snapshot_id);
        all.push_back(TemplateJson(t, snap.ok() ? &*snap : nullptr));
      }
      return JsonResponse(http::status::ok, {{"templates", all}}, c.req);
    }
    if (p.size() == 3 && method == http::verb::get) {
      PDK_ASSIGN_OR_RETURN(TemplateRecord t, manager_->GetTemplate(p[2]));
      auto snap = manager_->GetSnapshot(t.snapshot_id);
      return JsonResponse(http::status::ok, TemplateJson(t, snap.ok() ? &*snap : nullptr), c.req);
    }
    if (p.size() == 3 && method == http::verb::delete_) {
      PDK_TRY(manager_->RemoveTemplate(p[2]));
      return EmptyResponse(http::status::no_content, c.req);
    }
    return NotFound("no route for " + std::string(c.req.method_string()) + " " + std::string(c.req.target()));
  });
}

// GET /v1/builds/{id}?logs_offset=N: its state and the log lines from N on
// ("logs_end" is where the next poll starts).
Response RestApi::Builds(Call& c) {
  const auto& p = c.target.path;
  c.op = "build";
  return Try(c.req, [&]() -> Result<Response> {
    if (p.size() != 3 || c.req.method() != http::verb::get)
      return NotFound("no route for " + std::string(c.req.method_string()) + " " + std::string(c.req.target()));
    uint64_t offset = 0;
    std::string given = c.Q("logs_offset", "0");
    auto [end, ec] = std::from_chars(given.data(), given.data() + given.size(), offset);
    if (ec != std::errc() || end != given.data() + given.size())
      return InvalidArgument("query parameter 'logs_offset' must be a non-negative integer");
    PDK_ASSIGN_OR_RETURN(build::BuildStatus st, builder_->Get(p[2], offset));
    return JsonResponse(http::status::ok, BuildJson(st), c.req);
  });
}

// PUT /v1/build-files/{sha256}: an archive (tar, any compression) whose
// SHA-256 is its name; GET tells whether it is here.
Response RestApi::BuildFiles(Call& c) {
  const auto& p = c.target.path;
  auto method = c.req.method();
  c.op = "build_files";
  return Try(c.req, [&]() -> Result<Response> {
    if (p.size() != 3) return NotFound("no route for " + std::string(c.req.target()));
    const std::string& hash = p[2];
    if (hash.size() != 64 || !build::TemplateBuilder::ValidFilesHash(hash))
      return InvalidArgument("'" + hash + "' is not a SHA-256 (64 hex digits)");
    if (method == http::verb::get || method == http::verb::head) {
      if (!builder_->HasFiles(hash)) return NotFound("files " + hash + " are not uploaded");
      return JsonResponse(http::status::ok, {{"present", true}}, c.req);
    }
    if (method == http::verb::put) {
      BodyReader body(c.req, c.out);
      PDK_TRY(builder_->PutFiles(hash, body.fd(), body.memory(), true));
      return JsonResponse(http::status::created, {{"present", true}}, c.req);
    }
    return NotFound("no route for " + std::string(c.req.method_string()) + " " + std::string(c.req.target()));
  });
}

static json VolumeJson(const VolumeRecord& v, SandboxManager& manager) {
  json j = {{"name", v.name}, {"disk", v.disk_bytes}, {"created_at", FormatTime(v.created_at_ms)}};
  if (auto used = manager.VolumeUsage(v.name); used.ok()) j["disk_used"] = used->used_bytes;
  return j;
}

Response RestApi::Volumes(Call& c) {
  const auto& p = c.target.path;
  auto method = c.req.method();
  c.op = "volume";
  return Try(c.req, [&]() -> Result<Response> {
    if (p.size() == 2 && method == http::verb::post) {
      PDK_ASSIGN_OR_RETURN(Body b, ParseBody(c.req, true));
      PDK_ASSIGN_OR_RETURN(std::string name, b.Str("name"));
      PDK_ASSIGN_OR_RETURN(int64_t disk, b.Size("disk"));
      if (name.empty()) return InvalidArgument("field 'name' is required");
      PDK_ASSIGN_OR_RETURN(VolumeRecord v, manager_->CreateVolume(name, disk));
      return JsonResponse(http::status::created, VolumeJson(v, *manager_), c.req);
    }
    if (p.size() == 2 && method == http::verb::get) {
      json all = json::array();
      for (const auto& v : manager_->ListVolumes()) all.push_back(VolumeJson(v, *manager_));
      return JsonResponse(http::status::ok, {{"volumes", all}}, c.req);
    }
    if (p.size() == 3 && method == http::verb::get) {
      PDK_ASSIGN_OR_RETURN(VolumeRecord v, manager_->GetVolume(p[2]));
      return JsonResponse(http::status::ok, VolumeJson(v, *manager_), c.req);
    }
    if (p.size() == 3 && method == http::verb::delete_) {
      PDK_TRY(manager_->RemoveVolume(p[2]));
      return EmptyResponse(http::status::no_content, c.req);
    }
    return NotFound("no route for " + std::string(c.req.method_string()) + " " + std::string(c.req.target()));
  });
}

// GET /v1/archives[/{id}], DELETE /v1/archives/{id}: the files deleted
// sandboxes kept (DELETE /v1/sandboxes/{id}?keep_data=1 makes one; a
// create's "restore" starts a sandbox with one).
Response RestApi::Archives(Call& c) {
  const auto& p = c.target.path;
  auto method = c.req.method();
  c.op = "archive";
  return Try(c.req, [&]() -> Result<Response> {
    if (p.size() == 2 && method == http::verb::get) {
      json all = json::array();
      for (const auto& a : manager_->ListArchives()) all.push_back(ArchiveJson(a));
      return JsonResponse(http::status::ok, {{"archives", all}}, c.req);
    }
    if (p.size() == 3 && method == http::verb::get) {
      PDK_ASSIGN_OR_RETURN(ArchiveRecord a, manager_->GetArchive(p[2]));
      return JsonResponse(http::status::ok, ArchiveJson(a), c.req);
    }
    if (p.size() == 3 && method == http::verb::delete_) {
      PDK_TRY(manager_->RemoveArchive(p[2]));
      return EmptyResponse(http::status::no_content, c.req);
    }
    return NotFound("no route for " + std::string(c.req.method_string()) + " " + std::string(c.req.target()));
  });
}

Response RestApi::SetTimeout(Call& c, const std::string& id) {
  c.op = "timeout";
  return Try(c.req, [&]() -> Result<Response> {
    PDK_ASSIGN_OR_RETURN(Body b, ParseBody(c.req, true));
    if (!b.j.contains("timeout")) return InvalidArgument("field 'timeout' (seconds) is required");
    PDK_ASSIGN_OR_RETURN(int64_t timeout, b.Int("timeout"));
    std::optional<TimeoutAction> action;
    if (b.j.contains("on_timeout")) {
      PDK_ASSIGN_OR_RETURN(std::string a, b.Str("on_timeout"));
      PDK_ASSIGN_OR_RETURN(action, ParseTimeoutAction(a));
    }
    PDK_TRY(manager_->SetTimeout(id, timeout, action ? &*action : nullptr));
    PDK_ASSIGN_OR_RETURN(SandboxInfo info, manager_->Get(id));
    return JsonResponse(http::status::ok, SandboxJson(info, manager_->network()), c.req);
  });
}

// An exec's fields (as POST .../exec takes them); the image's command, if
// asked for, is the caller's to resolve (it needs the sandbox).
struct RestApi::ExecRequest {
  agent::ExecOptions opts;
  bool image_command = false, stream = false, background = false;
};

Result<RestApi::ExecRequest> RestApi::ParseExec(const json& body, const Request& req) {
  const Body b{body};
  ExecRequest e;
  agent::ExecOptions& o = e.opts;
  if (b.j.contains("cmd")) {
    const json& cmd = b.j["cmd"];
    if (!cmd.is_array() || cmd.empty()) return InvalidArgument("field 'cmd' must be a non-empty array of strings");
    for (const auto& a : cmd) {
      if (!a.is_string()) return InvalidArgument("field 'cmd' must be a non-empty array of strings");
      o.argv.push_back(a.get<std::string>());
    }
  } else if (b.j.contains("command")) {
    PDK_ASSIGN_OR_RETURN(std::string command, b.Str("command"));
    o.argv = {"/bin/sh", "-c", command};
  }
  // "image_command": Docker's rules, the image's Entrypoint then cmd or its Cmd.
  PDK_ASSIGN_OR_RETURN(e.image_command, b.Bool("image_command"));
  if (!e.image_command && o.argv.empty()) return InvalidArgument("give 'cmd' (an array) or 'command' (a shell string)");
  PDK_ASSIGN_OR_RETURN(o.env, b.StrMap("env"));
  PDK_ASSIGN_OR_RETURN(o.cwd, b.Str("cwd"));
  PDK_ASSIGN_OR_RETURN(o.user, b.Str("user"));
  PDK_ASSIGN_OR_RETURN(o.tag, b.Str("tag"));
  if (b.j.contains("stdin")) {
    PDK_ASSIGN_OR_RETURN(o.stdin_data, b.Str("stdin"));
    o.has_stdin = true;
  }
  PDK_ASSIGN_OR_RETURN(int64_t max_output, b.Int("max_output", int64_t{4} << 20));
  if (max_output > kMaxExecOutput)
    return InvalidArgument("field 'max_output' must be at most " + std::to_string(kMaxExecOutput) +
                           " bytes (stream larger output)");
  o.max_output_bytes = static_cast<size_t>(max_output);
  PDK_ASSIGN_OR_RETURN(int64_t timeout, b.Int("timeout", 60));
  o.timeout_ms = static_cast<int>(std::min<int64_t>(timeout, 86400) * 1000);
  PDK_ASSIGN_OR_RETURN(e.stream, b.Bool("stream"));
  PDK_ASSIGN_OR_RETURN(e.background, b.Bool("background"));
  if (req[http::field::accept].find("text/event-stream") != std::string_view::npos) e.stream = true;
  return e;
}

std::optional<Response> RestApi::Exec(Call& c, const std::string& id) {
  c.op = "exec";
  const Request& req = c.req;
  auto parsed = [&]() -> Result<ExecRequest> {
    PDK_ASSIGN_OR_RETURN(Body b, ParseBody(req, true));
    PDK_ASSIGN_OR_RETURN(ExecRequest e, ParseExec(b.j, req));
    if (e.image_command) {
      PDK_ASSIGN_OR_RETURN(e.opts.argv, manager_->ImageCommand(id, e.opts.argv));
    }
    return e;
  }();
  if (!parsed.ok()) return ErrorResponse(parsed.status(), req.version(), req.keep_alive());
  // A sync exec waits on its process as long as a stream follows one: both
  // hold a worker, so both take a stream slot, before the process starts.
  if (!parsed->background && !c.out.ClaimStream()) return std::nullopt;
  return RunExec(c, id, *parsed);
}

std::optional<Response> RestApi::RunExec(Call& c, const std::string& id, ExecRequest& e,
                                         const std::function<void()>& before_last_event) {
  const Request& req = c.req;
  agent::ExecOptions& opts = e.opts;
  if (!e.stream && !e.background) {
    return Try(req, [&]() -> Result<Response> {
      PDK_ASSIGN_OR_RETURN(agent::ExecResult r, manager_->Exec(id, opts));
      return JsonResponse(http::status::ok,
                          {{"pid", r.pid}, {"exit_code", r.exit_code}, {"signal", r.signal},
                           {"timed_out", r.timed_out}, {"stdout", r.stdout_data}, {"stderr", r.stderr_data},
                           {"stdout_truncated", r.stdout_truncated},
                           {"stderr_truncated", r.stderr_truncated}},
                          req);
    });
  }
  // Streaming or background: spawn, then follow (or not) the process's events.
  if (Status s = manager_->ApplyExecDefaults(id, opts); !s.ok())
    return ErrorResponse(s, req.version(), req.keep_alive());
  auto client = manager_->Connect(id);
  if (!client.ok()) return ErrorResponse(client.status(), req.version(), req.keep_alive());
  auto spawned = client->Call(agent::AgentClient::SpawnRequest(opts, e.stream));
  if (!spawned.ok()) return ErrorResponse(spawned.status(), req.version(), req.keep_alive());
  int pid = Field(spawned->header, "pid", 0);
  if (opts.has_stdin) {
    if (!opts.stdin_data.empty()) (void)client->Call({{"op", "stdin"}, {"pid", pid}}, opts.stdin_data);
    (void)client->Call({{"op", "close_stdin"}, {"pid", pid}});
  }
  if (e.background) return JsonResponse(http::status::accepted, {{"pid", pid}}, req);
  return StreamProcess(c, *client, pid, 0, true, before_last_event);
}

// POST /v1/sandboxes:run: {"sandbox": a create's fields} and an exec's
// fields (no "background"). Creates the sandbox, runs the command to its
// end (answering as a sync exec, or streaming), then deletes the sandbox:
// the one-shot in one round trip. A sync answer names the sandbox in
// X-Sandbox-Id.
std::optional<Response> RestApi::RunOnce(Call& c) {
  c.op = "run";
  const Request& req = c.req;
  auto parsed = [&]() -> Result<std::pair<SandboxSpec, ExecRequest>> {
    PDK_ASSIGN_OR_RETURN(Body b, ParseBody(req, true));
    SandboxSpec spec;
    if (b.j.contains("sandbox")) {
      if (!b.j["sandbox"].is_object()) return InvalidArgument("field 'sandbox' must be an object (a create's fields)");
      PDK_ASSIGN_OR_RETURN(spec, SpecFromBody(Body{b.j["sandbox"]}));
    }
    PDK_ASSIGN_OR_RETURN(ExecRequest e, ParseExec(b.j, req));
    if (e.background) return InvalidArgument("field 'background' has no use here: the sandbox goes when the command ends");
    return std::make_pair(std::move(spec), std::move(e));
  }();
  if (!parsed.ok()) return ErrorResponse(parsed.status(), req.version(), req.keep_alive());
  auto& [spec, e] = *parsed;
  if (!c.out.ClaimStream()) return std::nullopt;
  auto created = manager_->Create(spec);
  if (!created.ok()) return ErrorResponse(created.status(), req.version(), req.keep_alive());
  const std::string& id = created->id;
  std::optional<Response> res;
  if (e.image_command) {
    auto argv = manager_->ImageCommand(id, e.opts.argv);
    if (argv.ok()) e.opts.argv = std::move(*argv);
    else res = ErrorResponse(argv.status(), req.version(), req.keep_alive());
  }
  // Deleted before the client hears the end (a stream's exit event, or the
  // answer), so that it never lists the sandbox afterwards. A delete
  // answers at once: the teardown is in the background.
  bool deleted = false;
  auto remove = [&] {
    if (!deleted) (void)manager_->Delete(id);
    deleted = true;
  };
  if (!res) res = RunExec(c, id, e, remove);
  if (res) res->set("X-Sandbox-Id", id);
  remove();
  return res;
}

// Server-sent events for one process: start, stdout/stderr (with byte
// offsets, to resume from after a reconnect), exit.
std::optional<Response> RestApi::StreamProcess(Call& c, agent::AgentClient& client, int pid,
                                               uint64_t from, bool started,
                                               const std::function<void()>& before_last_event) {
  if (!started) {
    auto attached = client.Call({{"op", "attach"}, {"pid", pid}, {"from", from}});
    if (!attached.ok()) return ErrorResponse(attached.status(), c.req.version(), c.req.keep_alive());
  }
  if (!c.out.Begin(http::status::ok, "text/event-stream")) return std::nullopt;
  if (!c.out.Write(SseEvent("start", {{"pid", pid}}))) return std::nullopt;
  for (;;) {
    auto f = client.Read(15000);
    if (!f.ok() && f.status().code() == StatusCode::kDeadlineExceeded) {
      if (!c.out.Write(": keepalive\n\n")) return std::nullopt;  // also notices a gone client
      continue;
    }
    if (!f.ok()) {
      if (before_last_event) before_last_event();
      c.out.Write(SseEvent("error", {{"code", StatusCodeName(f.status().code())}, {"message", f.status().message()}}));
      break;
    }
    const json& h = f->header;
    std::string ev = Field(h, "event", "");
    if (Field(h, "pid", 0) != pid) continue;
    if (ev == "output") {
      std::string stream = Field(h, "stream", "stdout");
      if (!c.out.Write(SseEvent(stream == "stderr" ? "stderr" : "stdout",
                                {{"data", f->payload}, {"offset", Field(h, "offset", uint64_t{0})}})))
        return std::nullopt;
    } else if (ev == "exit") {
      if (before_last_event) before_last_event();
      c.out.Write(SseEvent("exit", {{"exit_code", Field(h, "exit_code", -1)}, {"signal", Field(h, "signal", 0)}}));
      break;
    }
  }
  c.out.End();
  return std::nullopt;
}

std::optional<Response> RestApi::Processes(Call& c, const std::string& id,
                                           const std::vector<std::string>& rest) {
  c.op = "processes";
  const Request& req = c.req;
  auto client = manager_->Connect(id);
  if (!client.ok()) return ErrorResponse(client.status(), req.version(), req.keep_alive());
  if (rest.empty() && req.method() == http::verb::get) {
    return Try(req, [&]() -> Result<Response> {
      PDK_ASSIGN_OR_RETURN(agent::Frame f, client->Call({{"op", "list"}, {"all", true}}));
      return JsonResponse(http::status::ok, {{"processes", f.header["processes"]}}, req);
    });
  }
  if (rest.size() < 2) return ErrorResponse(NotFound("no such process route"), req.version(), req.keep_alive());
  int pid = std::atoi(rest[0].c_str());
  if (pid <= 0) return ErrorResponse(InvalidArgument("process id '" + rest[0] + "' is not a pid"), req.version(), req.keep_alive());
  const std::string& what = rest[1];
  if (what == "events" && req.method() == http::verb::get)
    return StreamProcess(c, *client, pid, std::strtoull(c.Q("from", "0").c_str(), nullptr, 10), false);
  if (what == "signal" && req.method() == http::verb::post) {
    return Try(req, [&]() -> Result<Response> {
      PDK_ASSIGN_OR_RETURN(Body b, ParseBody(req));
      json sig = b.j.contains("signal") ? b.j["signal"] : json("KILL");
      PDK_TRY(client->Call({{"op", "signal"}, {"pid", pid}, {"signal", sig}}).status());
      return EmptyResponse(http::status::no_content, req);
    });
  }
  if (what == "stdin" && req.method() == http::verb::post) {
    return Try(req, [&]() -> Result<Response> {
      if (!req.body().empty()) PDK_TRY(client->Call({{"op", "stdin"}, {"pid", pid}}, req.body()).status());
      if (c.Q("close") == "true") PDK_TRY(client->Call({{"op", "close_stdin"}, {"pid", pid}}).status());
      return EmptyResponse(http::status::no_content, req);
    });
  }
  return ErrorResponse(NotFound("no such process route"), req.version(), req.keep_alive());
}

namespace {

// How deep a downloaded tree may go (each level holds one path on the host).
constexpr size_t kMaxArchiveDepth = 1024;

// One name of a listing, as the host takes it: a single path component.
bool PlainName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

// Streams a tar (pax) of the tree at `root` to `out`, read through the agent
// one folder page and one file range at a time, so paddockd holds neither
// the listing nor the data. Names are built here from the folder walked and
// each entry's single-component name; a file is given exactly the size it
// was listed with (cut, or padded with zeros if it changed meanwhile).
// `begun` says whether the 200 went out (after it, a failure can only cut the stream).
Status TarFromSandbox(agent::AgentClient& client, const std::string& root, StreamWriter& out,
                      bool& begun) {
  struct Sink {
    StreamWriter& out;
    bool& begun;
    bool failed = false;
  } sink{out, begun};
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_per_block(a, 64 << 10);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(a, &sink, nullptr,
                     [](struct archive*, void* ctx, const void* buf, size_t n) -> la_ssize_t {
                       auto* s = static_cast<Sink*>(ctx);
                       if (!s->begun) s->begun = s->out.Begin(http::status::ok, "application/x-tar");
                       if (!s->begun || !s->out.Write({static_cast<const char*>(buf), n})) {
                         s->failed = true;
                         return -1;
                       }
                       return static_cast<la_ssize_t>(n);
                     },
                     nullptr);
  std::unique_ptr<struct archive, int (*)(struct archive*)> guard(a, archive_write_free);
  auto written = [&](int rc) -> Status {
    if (rc >= ARCHIVE_WARN) return Status::Ok();
    if (sink.failed) return Unavailable("the client stopped reading");
    return Internal(std::string("tar: ") + (archive_error_string(a) ? archive_error_string(a) : "write failed"));
  };
  struct Level {
    std::string dir;   // absolute, in the sandbox
    std::string rel;   // its name in the archive ("" for the root)
    int64_t cursor = 0;
  };
  std::vector<Level> stack{{root, "", 0}};
  while (!stack.empty()) {
    Level& level = stack.back();
    PDK_ASSIGN_OR_RETURN(agent::Frame page, client.Call({{"op", "ls"}, {"path", level.dir}, {"depth", 1},
                                                         {"cursor", level.cursor}}));
    const json& entries = page.header["entries"];
    bool descended = false;
    for (const auto& e : entries) {
      level.cursor = Field(e, "cursor", int64_t{0});
      std::string name = Field(e, "name", "");
      if (!PlainName(name))
        return DataLoss("the sandbox's agent listed a bad name under " + level.dir);
      std::string path = JoinPath(level.dir, name);
      std::string rel = level.rel.empty() ? name : level.rel + "/" + name;
      std::string type = Field(e, "type", "");
      std::unique_ptr<struct archive_entry, void (*)(struct archive_entry*)> entry(archive_entry_new(),
                                                                                    archive_entry_free);
      archive_entry_set_pathname(entry.get(), rel.c_str());
      archive_entry_set_perm(entry.get(), Field(e, "mode", 0644) & 07777);
      archive_entry_set_mtime(entry.get(), Field(e, "mtime_ns", int64_t{0}) / 1000000000, 0);
      if (type == "dir") {
        archive_entry_set_filetype(entry.get(), AE_IFDIR);
        PDK_TRY(written(archive_write_header(a, entry.get())));
        if (stack.size() >= kMaxArchiveDepth)
          return FailedPrecondition("the tree under " + root + " is deeper than " +
                                    std::to_string(kMaxArchiveDepth) + " levels");
        stack.push_back({path, rel, 0});  // `level` is not used past this point
        descended = true;
        break;
      }
      if (type == "symlink") {
        archive_entry_set_filetype(entry.get(), AE_IFLNK);
        archive_entry_set_symlink(entry.get(), Field(e, "symlink_target", "").c_str());
        PDK_TRY(written(archive_write_header(a, entry.get())));
        continue;
      }
      if (type != "file") continue;  // FIFOs, devices, sockets have no contents to give
      int64_t size = std::max<int64_t>(Field(e, "size", int64_t{0}), 0);
      archive_entry_set_filetype(entry.get(), AE_IFREG);
      archive_entry_set_size(entry.get(), size);
      PDK_TRY(written(archive_write_header(a, entry.get())));
      int64_t sent = 0;
      Status piece_status;
      auto read = client.ReadFile(path, [&](std::string_view piece) {
        size_t n = static_cast<size_t>(std::min<int64_t>(size - sent, static_cast<int64_t>(piece.size())));
        piece_status = written(static_cast<int>(archive_write_data(a, piece.data(), n)) >= 0 || n == 0
                                   ? ARCHIVE_OK
                                   : ARCHIVE_FATAL);
        sent += static_cast<int64_t>(n);
        return piece_status.ok() && sent < size;
      });
      PDK_TRY(piece_status);
      if (!read.ok() && read.status().code() != StatusCode::kNotFound) return read.status();
      static const std::string kZeros(64 << 10, '\0');
      while (sent < size) {  // shrank (or vanished) since it was listed
        size_t n = static_cast<size_t>(std::min<int64_t>(size - sent, static_cast<int64_t>(kZeros.size())));
        PDK_TRY(written(archive_write_data(a, kZeros.data(), n) >= 0 ? ARCHIVE_OK : ARCHIVE_FATAL));
        sent += static_cast<int64_t>(n);
      }
    }
    if (!descended && !Field(page.header, "more", false)) stack.pop_back();
  }
  PDK_TRY(written(archive_write_close(a)));
  if (!sink.begun && !(sink.begun = out.Begin(http::status::ok, "application/x-tar")))
    return Unavailable("the client stopped reading");
  out.End();
  return Status::Ok();
}

// Unpacks an uploaded archive into `root` in the sandbox, one entry and one
// piece at a time.
Result<int> UntarIntoSandbox(agent::AgentClient& client, const std::string& root, BodyReader& body) {
  struct ToAgent : UnpackSink {
    explicit ToAgent(agent::AgentClient& c) : client(c) {}
    Status MakeDir(const std::string& path, int mode) override {
      return client.Call({{"op", "mkdir"}, {"path", path}, {"mode", mode}}).status();
    }
    Status WriteFile(const std::string& path, int mode, const Reader& read) override {
      return client.WriteFileFrom(path, read, {{"mode", mode}}).status();
    }
    agent::AgentClient& client;
  } sink(client);
  if (body.from_file() && body.fd() < 0) return Internal("the request body's spool file is gone");
  return UnpackArchive(body.fd(), body.memory(), root, sink);
}

}  // namespace

std::optional<Response> RestApi::Files(Call& c, const std::string& id, const std::string& sub) {
  const Request& req = c.req;
  c.op = "files";
  auto client = manager_->Connect(id);
  if (!client.ok()) return ErrorResponse(client.status(), req.version(), req.keep_alive());
  std::string path = c.Q("path");
  auto need_path = [&]() -> Status {
    return path.empty() || path[0] != '/' ? InvalidArgument("query parameter 'path' must be an absolute path")
                                          : Status::Ok();
  };
  auto method = req.method();
  if (sub.empty() && method == http::verb::get) {
    if (Status s = need_path(); !s.ok()) return ErrorResponse(s, req.version(), req.keep_alive());
    // Stat first, so a missing file is a clean 404 and not a broken stream.
    auto st = client->Call({{"op", "stat"}, {"path", path}});
    if (!st.ok()) return ErrorResponse(st.status(), req.version(), req.keep_alive());
    if (Field(st->header["entry"], "type", "") == "dir")
      return ErrorResponse(FailedPrecondition(path + " is a directory; use files/archive"), req.version(),
                           req.keep_alive());
    // The first piece before the 200: a refusal (a FIFO, a device) is still
    // an error response. A failure later cuts the stream short (no last
    // chunk), so the client cannot take it for the whole file.
    bool begun = false, gone = false;
    auto read = client->ReadFile(path, [&](std::string_view piece) {
      if (!begun) gone = !(begun = c.out.Begin(http::status::ok, "application/octet-stream"));
      gone = gone || !c.out.Write(piece);
      return !gone;
    });
    if (!read.ok() && !begun) return ErrorResponse(read.status(), req.version(), req.keep_alive());
    if (!read.ok() || gone) return std::nullopt;
    if (!begun) return EmptyResponse(http::status::ok, req);  // an empty file
    c.out.End();
    return std::nullopt;
  }
  if (sub == "archive" && method == http::verb::get) {
    if (Status s = need_path(); !s.ok()) return ErrorResponse(s, req.version(), req.keep_alive());
    auto st = client->Call({{"op", "stat"}, {"path", path}});
    if (!st.ok()) return ErrorResponse(st.status(), req.version(), req.keep_alive());
    if (Field(st->header["entry"], "type", "") != "dir")
      return ErrorResponse(FailedPrecondition(path + " is not a directory"), req.version(), req.keep_alive());
    // Errors after the first byte cut the stream (no last chunk).
    bool begun = false;
    Status s = TarFromSandbox(*client, path, c.out, begun);
    if (!s.ok() && !begun) return ErrorResponse(s, req.version(), req.keep_alive());
    return std::nullopt;
  }
  return Try(req, [&]() -> Result<Response> {
    if (sub.empty() && method == http::verb::put) {
      PDK_TRY(need_path());
      json extra = json::object();
      if (!c.Q("mode").empty()) extra["mode"] = std::stoi(c.Q("mode"), nullptr, 8);
      BodyReader body(req, c.out);
      PDK_ASSIGN_OR_RETURN(
          json entry, client->WriteFileFrom(
                          path, [&body](char* buf, size_t cap) { return body.Read(buf, cap); }, extra));
      return JsonResponse(http::status::ok, entry, req);
    }
    if (sub.empty() && method == http::verb::delete_) {
      PDK_TRY(need_path());
      PDK_TRY(client->Call({{"op", "remove"}, {"path", path}}).status());
      return EmptyResponse(http::status::no_content, req);
    }
    if (sub == "stat" && method == http::verb::get) {
      PDK_TRY(need_path());
      PDK_ASSIGN_OR_RETURN(agent::Frame f, client->Call({{"op", "stat"}, {"path", path}}));
      return JsonResponse(http::status::ok, f.header["entry"], req);
    }
    if (sub == "list" && method == http::verb::get) {
      PDK_TRY(need_path());
      int depth = std::atoi(c.Q("depth", "1").c_str());
      PDK_ASSIGN_OR_RETURN(agent::Frame f, client->Call({{"op", "ls"}, {"path", path}, {"depth", depth}}));
      json reply = {{"entries", f.header["entries"]}};
      if (Field(f.header, "truncated", false)) reply["truncated"] = true;  // over the reply budget
      return JsonResponse(http::status::ok, reply, req);
    }
    if (sub == "mkdir" && method == http::verb::post) {
      PDK_ASSIGN_OR_RETURN(Body b, ParseBody(req, true));
      PDK_ASSIGN_OR_RETURN(std::string p, b.Str("path"));
      PDK_ASSIGN_OR_RETURN(agent::Frame f, client->Call({{"op", "mkdir"}, {"path", p}}));
      return JsonResponse(http::status::ok, {{"created", Field(f.header, "created", false)}}, req);
    }
    if (sub == "rename" && method == http::verb::post) {
      PDK_ASSIGN_OR_RETURN(Body b, ParseBody(req, true));
      PDK_ASSIGN_OR_RETURN(std::string from, b.Str("from"));
      PDK_ASSIGN_OR_RETURN(std::string to, b.Str("to"));
      PDK_ASSIGN_OR_RETURN(agent::Frame f, client->Call({{"op", "rename"}, {"from", from}, {"to", to}}));
      return JsonResponse(http::status::ok, f.header["entry"], req);
    }
    if (sub == "archive" && method == http::verb::put) {
      PDK_TRY(need_path());
      PDK_TRY(client->Call({{"op", "mkdir"}, {"path", path}}).status());
      BodyReader body(req, c.out);
      PDK_ASSIGN_OR_RETURN(int files, UntarIntoSandbox(*client, path, body));
      return JsonResponse(http::status::ok, {{"files", files}}, req);
    }
    return NotFound("no files route " + std::string(req.method_string()) + " " + sub);
  });
}

Response RestApi::Metrics(Call& c) {
  c.op = "metrics";
  std::map<std::string, int> by_state = {{"running", 0}, {"paused", 0}, {"stopped", 0}};
  int addressed = 0, archived = 0;
  int64_t archived_bytes = 0;
  api::Metrics::Series devices;
  for (const auto& info : manager_->List()) {
    for (const auto& d : info.devices) devices.push_back({{{"device", d}, {"sandbox", info.id}}, 1});
    ++by_state[SandboxStateName(info.state)];
    addressed += !info.address.empty();
    archived += info.archived_at_ms > 0;
    archived_bytes += info.archive_size;
  }
  metrics_->Set("paddock_sandboxes_archived", {}, archived);
  metrics_->Set("paddock_archived_files_bytes", {}, static_cast<double>(archived_bytes));
  auto archives = manager_->ListArchives();
  int64_t archives_bytes = 0;
  for (const auto& a : archives) archives_bytes += a.size;
  metrics_->Set("paddock_archives", {}, static_cast<double>(archives.size()));
  metrics_->Set("paddock_archives_bytes", {}, static_cast<double>(archives_bytes));
  metrics_->Set("paddock_devices_held", {}, static_cast<double>(manager_->DeviceHolders().size()));
  metrics_->Replace("paddock_sandbox_device", devices);
  if (auto space = manager_->DiskPoolSpace(); space.ok()) {
    metrics_->Set("paddock_disk_pool_bytes", {{"kind", "size"}}, static_cast<double>(space->first));
    metrics_->Set("paddock_disk_pool_bytes", {{"kind", "free"}}, static_cast<double>(space->second));
  }
  for (const auto& [state, n] : by_state) metrics_->Set("paddock_sandboxes", {{"state", state}}, n);
  metrics_->Set("paddock_warm_shells", {}, static_cast<double>(manager_->warm_shells_ready()));
  metrics_->Set("paddock_warm_shells_target", {}, static_cast<double>(manager_->warm_shells_target()));
  metrics_->Set("paddock_warm_shell_creates_total", {{"shell", "taken"}},
                static_cast<double>(manager_->warm_shells_taken()));
  metrics_->Set("paddock_warm_shell_creates_total", {{"shell", "missed"}},
                static_cast<double>(manager_->warm_shells_missed()));
  metrics_->Set("paddock_sandboxes_tearing_down", {}, static_cast<double>(manager_->tearing_down()));
  metrics_->Set("paddock_images", {}, static_cast<double>(manager_->images().List().size()));
  metrics_->Set("paddock_registry_requests_total", {},
                static_cast<double>(manager_->images().registry().requests_sent()));
  if (const paddock::net::Network* network = manager_->network()) {
    metrics_->Set("paddock_warm_network_slots", {}, static_cast<double>(network->warm_slots_ready()));
    metrics_->Set("paddock_sandbox_addresses", {}, addressed);
  }
  if (const paddock::net::Forwarder* forwarder = manager_->forwarder()) {
    metrics_->Set("paddock_tcp_forwards", {}, static_cast<double>(forwarder->listening()));
    metrics_->Set("paddock_tcp_forward_connections", {}, static_cast<double>(forwarder->connections()));
  }
  Response res{http::status::ok, c.req.version()};
  res.set(http::field::content_type, "text/plain; version=0.0.4");
  res.keep_alive(c.req.keep_alive());
  res.body() = metrics_->Render();
  res.prepare_payload();
  return res;
}

}  // namespace paddock::api
