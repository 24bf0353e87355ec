// RestApi: the native REST API under /v1, and /metrics. A thin layer: every
// behaviour lives in SandboxManager and the agent protocol; this maps HTTP
// and JSON onto them. docs/rest-api.md lists the routes.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "api/http_server.h"
#include "api/metrics.h"
#include "build/template_builder.h"
#include "sandbox/manager.h"

namespace paddock::api {

class RestApi {
 public:
  RestApi(SandboxManager* manager, Metrics* metrics, build::TemplateBuilder* builder);
  std::optional<Response> Handle(Request& req, StreamWriter& out);
  // Routes whose body the server should write to a file (image imports).
  static bool TakesUpload(const Request& req);

 private:
  struct Call;
  std::optional<Response> Route(Call& c);
  Response CreateSandbox(Call& c);
  std::optional<Response> CreateSandboxes(Call& c);
  Response ListSandboxes(Call& c);
  Response Transition(Call& c, const std::string& id, const std::string& action);
  Response SetTimeout(Call& c, const std::string& id);
  Response UpdateNetwork(Call& c, const std::string& id);
  std::optional<Response> Forwards(Call& c, const std::string& id, const std::string& host_port,
                                   size_t depth);
  std::optional<Response> Exec(Call& c, const std::string& id);
  // An exec's fields, parsed; RunExec runs one (sync, streamed or in the
  // background), its stream slot already claimed unless in the background.
  // A stream calls `before_last_event` once the process has ended (or the
  // agent failed), before its client hears so.
  struct ExecRequest;
  static Result<ExecRequest> ParseExec(const nlohmann::json& body, const Request& req);
  std::optional<Response> RunExec(Call& c, const std::string& id, ExecRequest& e,
                                  const std::function<void()>& before_last_event = nullptr);
  // POST /v1/sandboxes:run: create, exec and delete in one request.
  std::optional<Response> RunOnce(Call& c);
  std::optional<Response> StreamProcess(Call& c, agent::AgentClient& client, int pid, uint64_t from,
                                        bool started, const std::function<void()>& before_last_event = nullptr);
  std::optional<Response> Processes(Call& c, const std::string& id, const std::vector<std::string>& rest);
  std::optional<Response> Files(Call& c, const std::string& id, const std::string& sub);
  Response Metrics(Call& c);
  std::optional<Response> CreateSnapshot(Call& c, const std::string& id);
  std::optional<Response> Rollback(Call& c, const std::string& id);
  Response Snapshots(Call& c);
  // /v1/templates: build (a build spec), list, inspect, remove;
  // /v1/builds/{id}: a build's state and logs; /v1/build-files/{hash}: the
  // archives that copy steps take their files from.
  Response Templates(Call& c);
  Response Builds(Call& c);
  Response BuildFiles(Call& c);
  // /v1/volumes: create, list, inspect, remove.
  Response Volumes(Call& c);
  Response Archives(Call& c);
  // /v1/images: pull (JSON, or progress as server-sent events), list,
  // inspect, remove, prune.
  std::optional<Response> Images(Call& c);
  std::optional<Response> PullImage(Call& c);
  // /v1/registries: logins kept for pulls (passwords never shown).
  Response Registries(Call& c);

  SandboxManager* manager_;
  api::Metrics* metrics_;
  build::TemplateBuilder* builder_;
};

}  // namespace paddock::api
