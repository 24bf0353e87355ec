// E2B's Template SDK over TemplateBuilder. A template's E2B id is its name
// (without a tag); its builds are TemplateBuilder's. docs/e2b.md has the
// mapping; what is not supported says so (registry credentials in a build).
#include "api/e2b_api.h"
#include "api/e2b_parts.h"
#include "api/request_body.h"
#include "base/json_field.h"
#include "base/units.h"

namespace paddock::api {

using agent::json;
using e2b::Try;

namespace {

Result<std::vector<std::string>> Args(const json& step, size_t min, const std::string& type) {
  std::vector<std::string> out;
  if (auto it = step.find("args"); it != step.end() && !it->is_null()) {
    if (!it->is_array()) return InvalidArgument("a " + type + " step's 'args' must be a list of strings");
    for (const auto& a : *it) {
      if (!a.is_string()) return InvalidArgument("a " + type + " step's 'args' must be a list of strings");
      out.push_back(a.get<std::string>());
    }
  }
  if (out.size() < min) return InvalidArgument("a " + type + " step needs " + std::to_string(min) + " args");
  return out;
}

// TemplateBuildStartV2 as a BuildSpec (its names come from the reservation).
Result<build::BuildSpec> ParseE2bBuild(const json& body, const std::map<std::string, std::string>& aliases) {
  build::BuildSpec spec;
  std::string image = Field<std::string>(body, "fromImage", ""), base = Field<std::string>(body, "fromTemplate", "");
  if (image.empty() == base.empty()) return InvalidArgument("give exactly one of 'fromImage' and 'fromTemplate'");
  if (body.contains("fromImageRegistry") && !body["fromImageRegistry"].is_null())
    return Unimplemented("registry credentials in a build are not supported: log in once with `paddock login` "
                         "(paddockd keeps the login for pulls) and leave 'fromImageRegistry' out");
  if (!base.empty())
    if (auto it = aliases.find(base); it != aliases.end()) base = it->second;
  spec.from = image.empty() ? base : image;
  spec.no_cache = Field<bool>(body, "force", false);
  spec.start_cmd = Field<std::string>(body, "startCmd", "");
  std::string ready = Field<std::string>(body, "readyCmd", "");
  if (!ready.empty() && spec.start_cmd.empty()) return InvalidArgument("'readyCmd' needs a 'startCmd'");
  spec.ready = ReadyCheckFromCommand(ready);
  spec.ready.timeout_s = 300;  // E2B gives a build's start command no limit; this one is generous
  spec.has_ready = !ready.empty();
  if (auto it = body.find("steps"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) return InvalidArgument("'steps' must be a list");
    int n = 0;
    for (const auto& s : *it) {
      ++n;
      std::string type = Field<std::string>(s, "type", "");
      auto where = "step " + std::to_string(n) + " (" + type + ")";
      build::BuildStep step;
      step.force = Field<bool>(s, "force", false);
      if (type == "RUN") {
        PDK_ASSIGN_OR_RETURN(auto args, Args(s, 1, type));
        step.kind = build::BuildStep::Kind::kRun;
        step.command = args[0];
        if (args.size() > 1) step.user = args[1];
      } else if (type == "COPY") {
        PDK_ASSIGN_OR_RETURN(auto args, Args(s, 2, type));
        step.kind = build::BuildStep::Kind::kCopy;
        json native = {{"copy", args[0]}, {"to", args[1]}, {"files", Field<std::string>(s, "filesHash", "")}};
        if (args.size() > 2 && !args[2].empty()) native["user"] = args[2];
        if (args.size() > 3 && !args[3].empty()) native["mode"] = args[3];
        // The native parser checks the paths, the hash and the mode.
        auto parsed = build::ParseBuildSpec({{"name", "x"}, {"from", "x"}, {"steps", {native}}});
        if (!parsed.ok()) return InvalidArgument(where + ": " + parsed.status().message());
        bool force = step.force;
        step = parsed->steps[0];
        step.force = force;
      } else if (type == "ENV") {
        PDK_ASSIGN_OR_RETURN(auto args, Args(s, 2, type));
        if (args.size() % 2) return InvalidArgument(where + ": args must be name, value pairs");
        step.kind = build::BuildStep::Kind::kEnv;
        for (size_t i = 0; i < args.size(); i += 2) {
          if (args[i].empty() || args[i].find('=') != std::string::npos)
            return InvalidArgument(where + ": '" + args[i] + "' is not an env name");
          step.env.emplace_back(args[i], args[i + 1]);
        }
      } else if (type == "WORKDIR" || type == "USER") {
        PDK_ASSIGN_OR_RETURN(auto args, Args(s, 1, type));
        step.kind = type == "USER" ? build::BuildStep::Kind::kUser : build::BuildStep::Kind::kWorkdir;
        step.value = args[0];
        if (step.value.empty() || (type == "WORKDIR" && step.value[0] != '/'))
          return InvalidArgument(where + ": '" + step.value + "' is not " +
                                 (type == "USER" ? "a user" : "an absolute path"));
      } else {
        return InvalidArgument(where + ": unknown step type (RUN, COPY, ENV, WORKDIR and USER are known)");
      }
      spec.steps.push_back(std::move(step));
    }
  }
  return spec;
}

// A request's "tags": a non-empty list of names.
Result<std::vector<std::string>> Tags(const json& body) {
  auto it = body.find("tags");
  if (it == body.end() || !it->is_array() || it->empty())
    return InvalidArgument("field 'tags' must be a non-empty list of strings");
  std::vector<std::string> out;
  for (const auto& t : *it) {
    if (!t.is_string()) return InvalidArgument("field 'tags' must be a non-empty list of strings");
    out.push_back(t.get<std::string>());
  }
  return out;
}

json LogEntryJson(const build::BuildLog& l, int steps) {
  return {{"timestamp", FormatTime(l.at_ms)},
          {"level", l.level},
          {"message", l.message},
          {"step", build::StepName(l.step, steps)}};
}

}  // namespace

Response E2bApi::TemplateRoutes(Call& c) {
  const auto& p = c.target.path;
  auto method = c.req.method();
  auto no_route = [&] {
    return NotFound("no E2B route for " + std::string(c.req.method_string()) + " " + std::string(c.req.target()));
  };
  return Try(c.req, [&]() -> Result<Response> {
    // POST /v3/templates {name: "n" or "n:tag", tags}: names and a build id.
    if (p.size() == 2 && p[0] == "v3" && method == http::verb::post) {
      PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req, true));
      std::string name = Field<std::string>(body, "name", Field<std::string>(body, "alias", ""));
      if (name.empty()) return InvalidArgument("field 'name' (the template's name) is required");
      std::string id = name.substr(0, name.find(':'));
      std::vector<std::string> names = {id}, tags;
      if (name != id) tags.push_back(name.substr(id.size() + 1));
      if (auto it = body.find("tags"); it != body.end() && it->is_array())
        for (const auto& t : *it)
          if (t.is_string()) tags.push_back(t.get<std::string>());
      for (const auto& t : tags) names.push_back(id + ":" + t);
      PDK_ASSIGN_OR_RETURN(std::string build, builder_->Reserve(names));
      return JsonResponse(http::status::accepted,
                          {{"templateID", id}, {"buildID", build}, {"tags", tags}, {"names", {id}},
                           {"aliases", {id}}, {"public", false}},
                          c.req);
    }
    // POST /v2/templates/{id}/builds/{build}: the steps.
    if (p.size() == 5 && p[0] == "v2" && p[3] == "builds" && method == http::verb::post) {
      PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req, true));
      PDK_ASSIGN_OR_RETURN(build::BuildSpec spec, ParseE2bBuild(body, opts_.template_aliases));
      PDK_TRY(builder_->StartReserved(p[4], std::move(spec)));
      return EmptyResponse(http::status::accepted, c.req);
    }
    if (p.empty() || p[0] != "templates") return no_route();
    // Tags: more names for a template's build. POST /templates/tags
    // {target: "name[:tag]", tags}; DELETE /templates/tags {name, tags};
    // GET /templates/{id}/tags.
    if (p.size() == 2 && p[1] == "tags" && method == http::verb::post) {
      PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req, true));
      std::string target = Field<std::string>(body, "target", "");
      PDK_ASSIGN_OR_RETURN(std::vector<std::string> tags, Tags(body));
      PDK_ASSIGN_OR_RETURN(TemplateRecord t, manager_->GetTemplate(target));
      std::string id = target.substr(0, target.find(':'));
      for (const auto& tag : tags) PDK_TRY(manager_->PutTemplate(id + ":" + tag, t.snapshot_id, t.build_id));
      return JsonResponse(http::status::created, {{"buildID", t.build_id}, {"tags", tags}}, c.req);
    }
    if (p.size() == 2 && p[1] == "tags" && method == http::verb::delete_) {
      PDK_ASSIGN_OR_RETURN(json body, JsonObjectBody(c.req, true));
      std::string name = Field<std::string>(body, "name", "");
      PDK_ASSIGN_OR_RETURN(std::vector<std::string> tags, Tags(body));
      std::string id = name.substr(0, name.find(':'));
      for (const auto& tag : tags) PDK_TRY(manager_->RemoveTemplate(id + ":" + tag));
      return EmptyResponse(http::status::no_content, c.req);
    }
    if (p.size() == 3 && p[2] == "tags" && method == http::verb::get) {
      json out = json::array();
      bool any = false;
      for (const auto& t : manager_->ListTemplates()) {
        any = any || t.name == p[1];
        if (t.name.rfind(p[1] + ":", 0) == 0)
          out.push_back({{"tag", t.name.substr(p[1].size() + 1)}, {"buildID", t.build_id},
                         {"createdAt", FormatTime(t.created_at_ms)}});
      }
      if (!any && out.empty()) return NotFound("template '" + p[1] + "' not found");
      return JsonResponse(http::status::ok, out, c.req);
    }
    // GET /templates/aliases/{name}
    if (p.size() == 3 && p[1] == "aliases" && method == http::verb::get) {
      if (!manager_->GetTemplate(p[2]).ok()) return NotFound("template '" + p[2] + "' not found");
      return JsonResponse(http::status::ok, {{"templateID", p[2]}, {"public", false}}, c.req);
    }
    // GET /templates/{id}/files/{hash}: here already, or where to PUT it
    // (this server, with the caller's own key).
    if (p.size() == 4 && p[2] == "files" && method == http::verb::get) {
      if (!build::TemplateBuilder::ValidFilesHash(p[3])) return InvalidArgument("'" + p[3] + "' is not a files hash");
      json out = {{"present", builder_->HasFiles(p[3])}};
      std::string host(c.req[http::field::host]);
      if (host.empty()) return InvalidArgument("the request has no Host header to build the upload link on");
      out["url"] = "http://" + host + "/templates/" + p[1] + "/files/" + p[3] + "/upload";
      std::string key(c.req["X-API-Key"]);
      if (!key.empty()) out["headers"] = {{"X-API-Key", key}};
      std::string bearer(c.req[http::field::authorization]);
      if (!bearer.empty()) out["headers"]["Authorization"] = bearer;
      return JsonResponse(http::status::created, out, c.req);
    }
    if (p.size() == 5 && p[2] == "files" && p[4] == "upload" && method == http::verb::put) {
      BodyReader body(c.req, c.out);
      PDK_TRY(builder_->PutFiles(p[3], body.fd(), body.memory(), false));
      return EmptyResponse(http::status::ok, c.req);
    }
    // GET /templates/{id}/builds/{build}/status?logsOffset=N
    if (p.size() == 5 && p[2] == "builds" && p[4] == "status" && method == http::verb::get) {
      int64_t offset = std::atoll(c.target.Q("logsOffset", "0").c_str());
      if (offset < 0) return InvalidArgument("logsOffset must not be negative");
      PDK_ASSIGN_OR_RETURN(build::BuildStatus st, builder_->Get(p[3], static_cast<size_t>(offset)));
      json logs = json::array();
      for (const auto& l : st.logs) logs.push_back(LogEntryJson(l, st.steps));
      json out = {{"buildID", st.id},
                  {"templateID", p[1]},
                  {"status", build::BuildStateName(st.state)},
                  {"logEntries", std::move(logs)},
                  {"logs", json::array()}};
      if (st.state == build::BuildState::kError)
        out["reason"] = {{"message", st.error}, {"step", build::StepName(st.error_step, st.steps)}, {"logEntries", json::array()}};
      return JsonResponse(http::status::ok, out, c.req);
    }
    // DELETE /templates/{id}: a template (with its tags), or a snapshot.
    if (p.size() == 2 && method == http::verb::delete_) {
      bool any = false;
      for (const auto& t : manager_->ListTemplates())
        if (t.name == p[1] || t.name.rfind(p[1] + ":", 0) == 0) {
          PDK_TRY(manager_->RemoveTemplate(t.name));
          any = true;
        }
      if (!any) {
        Status removed = manager_->RemoveSnapshot(p[1]);
        if (removed.code() == StatusCode::kNotFound) return NotFound("template '" + p[1] + "' not found");
        PDK_TRY(removed);
      }
      return EmptyResponse(http::status::no_content, c.req);
    }
    return no_route();
  });
}

}  // namespace paddock::api
