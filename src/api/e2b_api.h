// E2bApi: the routes the official E2B SDK calls, served over the same
// SandboxManager and paddock-init operations as /v1, so that code written for
// E2B runs unchanged with E2B_API_URL and E2B_SANDBOX_URL pointing here.
//
// Lifecycle (the E2B "API", guarded by the daemon's API key as X-API-KEY):
//   POST /v2/sandboxes, GET /v2/sandboxes, GET|DELETE /sandboxes/{id},
//   POST /sandboxes/{id}/{timeout,pause}, POST /v2/sandboxes/{id}/connect,
//   GET /sandboxes/{id}/metrics, POST /sandboxes/{id}/fork.
// In-sandbox (E2B's "envd"), chosen by the E2b-Sandbox-Id header or a host
// name 49983-{id}.{domain}, guarded by the sandbox's access token
// (X-Access-Token): GET /health, GET|POST /files, and the Connect services
// process.Process and filesystem.Filesystem (JSON codec).
// docs/e2b.md maps every E2B notion onto Paddock's.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/client.h"
#include "api/http_server.h"
#include "api/http_util.h"
#include "build/template_builder.h"
#include "sandbox/manager.h"

namespace paddock::api {

struct E2bOptions {
  // E2B template names -> Paddock templates. Any other name is looked up as a
  // Paddock template itself.
  std::map<std::string, std::string> template_aliases = {{"base", "host"}};
  std::string domain;  // returned as the sandboxes' domain; empty: none (the SDK's own)
  int64_t default_timeout_s = 300;
};

class E2bApi {
 public:
  E2bApi(SandboxManager* manager, build::TemplateBuilder* builder, E2bOptions opts);
  ~E2bApi();

  // True for requests addressed to a sandbox's envd: these carry the
  // sandbox's access token instead of the daemon's API key.
  static bool IsEnvdRequest(const Request& req);
  // True for the E2B lifecycle routes and envd requests.
  static bool Handles(const Request& req);
  // True for envd file uploads (POST /files): their bodies go to a spool
  // file, not to memory (ServerOptions::body_to_file).
  static bool TakesUpload(const Request& req);
  // True for a volume content call that carries its volume's token
  // (Authorization: Bearer): exempt from the API key.
  bool VolumeTokenMatches(const Request& req) const;
  // Judges an envd request on its header alone (on an I/O thread, without
  // waiting on any sandbox): the answer for an unknown sandbox or a missing
  // or wrong access token, nullopt when its body may be read. Keeps anyone
  // without the token from spooling an upload to disk.
  std::optional<Response> ScreenHeader(const Request& header) const;
  std::optional<Response> Handle(Request& req, StreamWriter& out);

 private:
  struct Call;
  struct Watcher;
  // Lifecycle.
  Response Lifecycle(Call& c);
  Response CreateSandbox(Call& c);
  Response ListSandboxes(Call& c);
  Response ConnectSandbox(Call& c, const std::string& id);
  Response PauseSandbox(Call& c, const std::string& id);
  Response SandboxMetrics(Call& c, const std::string& id);
  Response ForkSandbox(Call& c, const std::string& id);
  // Snapshots: E2B's createSnapshot, listSnapshots and deleteSnapshot
  // (DELETE /templates/{id}); a snapshot's id or name is a templateID.
  Response SnapshotRoutes(Call& c);
  Response CreateSnapshot(Call& c, const std::string& id);
  // Templates (e2b_templates.cc): the SDK's Template.build: POST
  // /v3/templates (names, a build id), GET /templates/{id}/files/{hash}
  // (an upload link for a copy step's files; PUT .../upload), POST
  // /v2/templates/{id}/builds/{build} (the steps), GET .../status (state and
  // logs), GET /templates/aliases/{name}; DELETE /templates/{id} removes a
  // template (or a snapshot).
  Response TemplateRoutes(Call& c);
  // Volumes: POST|GET /volumes, GET|DELETE /volumes/{id} (the name);
  // sandboxes mount them with volumeMounts at create.
  Response VolumeRoutes(Call& c);
  // envd.
  std::optional<Response> Envd(Call& c);
  std::optional<Response> DownloadFile(Call& c);
  Response UploadFiles(Call& c);
  std::optional<Response> Rpc(Call& c, const std::string& service, const std::string& method);
  Response StreamInput(Call& c, const std::vector<agent::json>& messages);
  std::optional<Response> ProcessStream(Call& c, const agent::json& msg, bool start);
  std::optional<Response> WatchStream(Call& c, const agent::json& msg);
  Result<agent::json> UnaryProcess(Call& c, const std::string& method, const agent::json& msg);
  Result<agent::json> UnaryFilesystem(Call& c, const std::string& method, const agent::json& msg);

  SandboxManager* manager_;
  build::TemplateBuilder* builder_;
  E2bOptions opts_;
  // Takes one of a sandbox's kMaxWatchers places (a CreateWatcher watcher
  // or a WatchDir stream); ResourceExhausted when none is left. Drops, first,
  // polled watchers of sandboxes that are gone or unread for kWatcherIdle.
  Status TakeWatcherPlace(const std::string& sandbox_id) EXCLUDES(watchers_mu_);
  void GiveWatcherPlace(const std::string& sandbox_id) EXCLUDES(watchers_mu_);

  Mutex watchers_mu_;
  std::map<std::string, std::shared_ptr<Watcher>> watchers_ GUARDED_BY(watchers_mu_);  // CreateWatcher's, by id
  std::map<std::string, int> streamed_watches_ GUARDED_BY(watchers_mu_);  // WatchDir streams, by sandbox
};

}  // namespace paddock::api
