// paddock: the command line of paddockd.
//
//   paddock create [--name N] [--template T] [--cpu MILLICORES] [--memory SIZE] [--disk SIZE]
//                  [--pids N] [--timeout SECONDS] [--on-timeout kill|pause|stop]
//                  [--env K=V]... [--label K=V]... [--json]
//   paddock ls [--state S] [--label K=V]... [--json]
//   paddock inspect ID|NAME [--json]
//   paddock exec ID|NAME [-i] [--env K=V]... [--cwd DIR] [--user U] -- CMD [ARGS...]
//   paddock run [create flags] [-i] [-- CMD [ARGS...]]   (no CMD: the image's Entrypoint/Cmd)
//   paddock image pull REF | ls [--json] | inspect REF | rm REF... | prune | import FILE [--ref REF]
//   paddock snapshot create ID|NAME [--name N] | ls [--json] | inspect S | rm S...
//   paddock create --from-snapshot S ...;  paddock rollback ID|NAME S
//   paddock template build FILE [--no-cache] | ls [--json] | inspect T | rm T... | prune
//   paddock volume create NAME [--disk SIZE] | ls [--json] | inspect NAME | rm NAME...
//   paddock volume cp ./local NAME:/path | NAME:/path ./local|-;  paddock volume files NAME [PATH] [--depth N]
//   paddock rm --keep-data [--path P] ID|NAME...;  paddock archive ls [--json] | inspect A | rm A...
//   paddock create --restore A ...;  paddock archive-files ID|NAME  (a stopped sandbox's, now)
//   paddock login REGISTRY -u USER --password-stdin;  paddock logout REGISTRY
//   paddock pause|resume|stop|start|restart|rm ID|NAME...
//   paddock cp SRC DST            (ID:/path on either side)
//   paddock timeout ID|NAME SECONDS [--on-timeout A]
//   paddock status
//
// Talks to $PADDOCK_SOCKET (default /run/paddock/paddock.sock), or to
// $PADDOCK_HOST over TCP with $PADDOCK_API_KEY. `exec` and `run` stream
// output and exit with the command's exit code.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "base/fs.h"
#include "cli/api_client.h"
#include "cli/local_tar.h"

using namespace paddock;
using cli::ApiClient;
using cli::json;

namespace {

int Fail(const Status& s) {
  std::fprintf(stderr, "paddock: %s\n", s.message().c_str());
  return 1;
}

std::string Escape(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') out += static_cast<char>(c);
    else { out += '%'; out += kHex[c >> 4]; out += kHex[c & 15]; }
  }
  return out;
}

Result<json> Call(ApiClient& api, const std::string& method, const std::string& target, const json& body = nullptr) {
  PDK_ASSIGN_OR_RETURN(cli::HttpResult r, api.Send(method, target, body.is_null() ? "" : body.dump()));
  PDK_TRY(r.AsStatus());
  return r.body.empty() ? json::object() : r.Json();
}

Result<std::map<std::string, std::string>> Pairs(const std::vector<std::string>& items, const char* what) {
  std::map<std::string, std::string> out;
  for (const auto& item : items) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      return InvalidArgument(std::string(what) + " '" + item + "' must be KEY=VALUE");
    out[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return out;
}

struct CreateFlags {
  std::string name, tmpl = "host", snapshot, restore, memory, disk, on_timeout, gpus;
  int64_t cpu = 0, pids = 0, timeout = 0, idle_timeout = 0, archive_after = 0;
  std::string on_idle;
  std::vector<std::string> env, labels, volumes, host_dirs, devices;
  void Add(CLI::App* c) {
    c->add_option("--name", name, "sandbox name (unique)");
    auto* t = c->add_option("--template,-t", tmpl,
                            "host, busybox, a snapshot, or an image (python:3.12, REGISTRY/REPO:TAG, "
                            "…@sha256:…), pulled if missing");
    auto* from = c->add_option("--from-snapshot", snapshot, "a snapshot's id or name: its files, over its base")->excludes(t);
    c->add_option("--restore", restore, "an archive (paddock rm --keep-data): its files, over their base")
        ->excludes(t)
        ->excludes(from);
    c->add_option("--cpu", cpu, "CPU limit in millicores (1000 = one core)");
    c->add_option("--memory,-m", memory, "memory limit, e.g. 512m or 2g");
    c->add_option("--pids", pids, "process limit");
    c->add_option("--disk", disk, "disk limit of its files, e.g. 10g (needs paddockd --disk-pool)");
    c->add_option("--volume,-v", volumes, "NAME:/path[:ro] a volume to mount (paddock volume create)");
    c->add_option("--host-dir", host_dirs, "NAME:/path a host folder paddockd allows (--host-dir), read-only");
    c->add_option("--device", devices, "a CDI device, VENDOR/CLASS=NAME or =all (paddock devices lists them)");
    c->add_option("--gpus", gpus, "all, a count, device=I,J, or CDI names (paddock gpus lists them)");
    c->add_option("--timeout", timeout, "seconds until the timeout action");
    c->add_option("--on-timeout", on_timeout, "kill (default), pause or stop");
    c->add_option("--idle-timeout", idle_timeout, "seconds without exec, file operation or connection until it stops");
    c->add_option("--on-idle", on_idle, "stop (default) or pause");
    c->add_option("--archive-after", archive_after,
                  "seconds stopped until its files are archived (restored at its start); -1: never");
    c->add_option("--env,-e", env, "KEY=VALUE for every process");
    c->add_option("--label,-l", labels, "KEY=VALUE metadata");
  }
  Result<json> Body() const {
    json b = !restore.empty()  ? json{{"restore", restore}}
             : snapshot.empty() ? json{{"template", tmpl}}
                                : json{{"snapshot", snapshot}};
    if (!name.empty()) b["name"] = name;
    if (cpu) b["cpu"] = cpu;
    if (!memory.empty()) b["memory"] = memory;
    if (!disk.empty()) b["disk"] = disk;
    if (!volumes.empty()) b["volumes"] = volumes;
    if (!host_dirs.empty()) b["host_dirs"] = host_dirs;
    if (!devices.empty()) b["devices"] = devices;
    if (!gpus.empty()) b["gpus"] = gpus;
    if (pids) b["pids"] = pids;
    if (timeout) b["timeout"] = timeout;
    if (!on_timeout.empty()) b["on_timeout"] = on_timeout;
    if (idle_timeout) b["idle_timeout"] = idle_timeout;
    if (!on_idle.empty()) b["on_idle"] = on_idle;
    if (archive_after) b["archive_after"] = archive_after;
    PDK_ASSIGN_OR_RETURN(auto e, Pairs(env, "--env"));
    PDK_ASSIGN_OR_RETURN(auto l, Pairs(labels, "--label"));
    if (!e.empty()) b["env"] = e;
    if (!l.empty()) b["metadata"] = l;
    return b;
  }
};

struct ExecFlags {
  std::vector<std::string> cmd, env;
  std::string cwd, user;
  bool interactive = false;
  void Add(CLI::App* c) {
    c->add_flag("--interactive,-i", interactive, "send this terminal's stdin to the command");
    c->add_option("--env,-e", env, "KEY=VALUE");
    c->add_option("--cwd,-w", cwd, "working directory");
    c->add_option("--user,-u", user, "user name or uid");
    c->add_option("cmd", cmd, "command and arguments (after --)")->required();
  }
};

// Streams a command's output; returns its exit code (128+N when killed by N).
// `image_command`: the image's Entrypoint goes first, its Cmd when f.cmd is empty.
// Streams a command's output to ours and returns its exit code: an exec in
// sandbox `id`, or with `sandbox` (a create's fields) a one-shot run in a
// sandbox made and deleted for it, in one request.
Result<int> StreamExec(ApiClient& api, const std::string& id, const ExecFlags& f, bool image_command = false,
                       const json& sandbox = nullptr) {
  json body = {{"stream", true}, {"timeout", 86400}};
  if (!sandbox.is_null()) body["sandbox"] = sandbox;
  if (!f.cmd.empty()) body["cmd"] = f.cmd;
  if (image_command) body["image_command"] = true;
  PDK_ASSIGN_OR_RETURN(auto env, Pairs(f.env, "--env"));
  if (!env.empty()) body["env"] = env;
  if (!f.cwd.empty()) body["cwd"] = f.cwd;
  if (!f.user.empty()) body["user"] = f.user;
  if (f.interactive) {
    std::ostringstream in;
    in << std::cin.rdbuf();
    body["stdin"] = in.str();
  }
  int code = -1;
  std::string target = sandbox.is_null() ? "/v1/sandboxes/" + Escape(id) + "/exec" : "/v1/sandboxes:run";
  Status s = api.Stream("POST", target, body.dump(),
                        [&](const std::string& event, const json& data) {
                          if (event == "stdout" || event == "stderr") {
                            std::string d = data.value("data", "");
                            (void)!::write(event == "stdout" ? 1 : 2, d.data(), d.size());
                          } else if (event == "exit") {
                            int sig = data.value("signal", 0);
                            code = sig ? 128 + sig : data.value("exit_code", 1);
                            return false;
                          } else if (event == "error") {
                            std::fprintf(stderr, "paddock: %s\n", data.value("message", "stream error").c_str());
                          }
                          return true;
                        });
  PDK_TRY(s);
  if (code < 0) return Unavailable("the output stream ended before the command did");
  return code;
}

std::string HumanBytes(int64_t n) {
  char buf[32];
  if (n >= (int64_t{1} << 30)) std::snprintf(buf, sizeof buf, "%.1f GB", n / 1073741824.0);
  else if (n >= (1 << 20)) std::snprintf(buf, sizeof buf, "%.1f MB", n / 1048576.0);
  else if (n >= (1 << 10)) std::snprintf(buf, sizeof buf, "%.1f kB", n / 1024.0);
  else std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(n));
  return buf;
}

std::string ShortDigest(const std::string& d) { return d.substr(d.find(':') + 1, 12); }

// Pulls `ref`, showing each layer's progress: a bar per layer redrawn in
// place on a terminal, a line per state change otherwise.
Status PullWithProgress(ApiClient& api, const std::string& ref) {
  bool tty = ::isatty(1);
  std::vector<std::string> order;           // layers in the order first seen
  std::map<std::string, std::string> lines; // digest -> its line
  std::map<std::string, std::string> last_state;
  size_t drawn = 0;
  auto redraw = [&] {
    if (drawn) std::printf("\033[%zuA", drawn);
    for (const auto& d : order) std::printf("\r\033[2K%s\n", lines[d].c_str());
    drawn = order.size();
    std::fflush(stdout);
  };
  json done;
  Status failed;
  Status s = api.Stream("POST", "/v1/images/pull", json{{"ref", ref}, {"stream", true}}.dump(),
                        [&](const std::string& event, const json& data) {
                          if (event == "progress") {
                            std::string d = data.value("digest", ""), state = data.value("state", "");
                            int64_t cur = data.value("current", int64_t{0}), total = data.value("total", int64_t{0});
                            if (!lines.count(d)) order.push_back(d);
                            std::string line = ShortDigest(d) + " " + state;
                            if (state == "downloading" && total > 0) {
                              int width = 30, fill = static_cast<int>(width * cur / total);
                              line += " [" + std::string(fill, '=') + (fill < width ? ">" : "") +
                                      std::string(std::max(0, width - fill - 1), ' ') + "] " + HumanBytes(cur) +
                                      "/" + HumanBytes(total);
                            } else if (total > 0) {
                              line += " " + HumanBytes(total);
                            }
                            lines[d] = line;
                            if (tty) {
                              redraw();
                            } else if (last_state[d] != state) {
                              last_state[d] = state;
                              std::printf("%s\n", line.c_str());
                            }
                          } else if (event == "done") {
                            done = data;
                            return false;
                          } else if (event == "error") {
                            failed = Status(StatusCodeFromName(data.value("code", "internal")), data.value("message", "pull failed"));
                            return false;
                          }
                          return true;
                        });
  PDK_TRY(s);
  PDK_TRY(failed);
  if (done.is_null()) return Unavailable("the pull's event stream ended before the pull did");
  std::printf("%s: %s (%zu layers, %s)\n", ref.c_str(), done.value("id", "").c_str(),
              static_cast<size_t>(done.value("layers", 0)), HumanBytes(done.value("size", int64_t{0})).c_str());
  return Status::Ok();
}

void PrintImages(const json& images) {
  std::printf("%-48s %-19s %8s %10s %-20s %s\n", "REFERENCE", "ID", "LAYERS", "SIZE", "CREATED", "LAST USED");
  for (const auto& i : images) {
    std::vector<std::string> refs = i.value("refs", std::vector<std::string>{});
    if (refs.empty()) refs.push_back("<none>");
    for (const auto& r : refs)
      std::printf("%-48s %-19s %8d %10s %-20s %s\n", r.c_str(), ShortDigest(i.value("id", "")).c_str(),
                  i.value("layers", 0), HumanBytes(i.value("size", int64_t{0})).c_str(),
                  i.value("created_at", "").c_str(),
                  i["last_used_at"].is_string() ? i["last_used_at"].get<std::string>().c_str() : "never");
  }
}

void PrintSnapshots(const json& snapshots) {
  std::printf("%-18s %-20s %-22s %-12s %10s %s\n", "ID", "NAME", "SOURCE", "TEMPLATE", "SIZE", "CREATED");
  for (const auto& s : snapshots)
    std::printf("%-18s %-20s %-22s %-12s %10s %s\n", s.value("id", "").c_str(),
                s["name"].is_string() ? s["name"].get<std::string>().c_str() : "-", s.value("source", "").c_str(),
                s.value("template", "").c_str(), HumanBytes(s.value("size", int64_t{0})).c_str(),
                s.value("created_at", "").c_str());
}

// A stopped sandbox whose files are archived shows as "archived".
void PrintTable(const json& sandboxes) {
  std::printf("%-22s %-20s %-9s %-8s %s\n", "ID", "NAME", "TEMPLATE", "STATE", "CREATED");
  for (const auto& s : sandboxes) {
    std::string state = s.value("archived", false) ? "archived" : s.value("state", "");
    std::printf("%-22s %-20s %-9s %-8s %s\n", s.value("id", "").c_str(), s.value("name", "").c_str(),
                s.value("template", "").c_str(), state.c_str(), s.value("created_at", "").c_str());
  }
}

// "ID:/path" -> {ID, /path}; a local path -> {"", path}.
std::pair<std::string, std::string> SplitRemote(const std::string& s) {
  size_t colon = s.find(':');
  if (colon == std::string::npos || colon == 0 || s[0] == '/' || s[0] == '.') return {"", s};
  return {s.substr(0, colon), s.substr(colon + 1)};
}

// libarchive, for cp alone: see cli/local_tar.h.
struct LocalTar {
  decltype(&paddock_tar_dir) tar_dir = nullptr;
  decltype(&paddock_untar) untar = nullptr;
  decltype(&paddock_tar_paths) tar_paths = nullptr;
};

Result<LocalTar> LoadLocalTar() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return Status::Errno("find the paddock binary");
  std::string path(self, static_cast<size_t>(n));
  path = path.substr(0, path.rfind('/') + 1) + "libpaddock-cli-tar.so";
  void* module = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!module) return Unavailable(std::string("cp of a folder needs ") + path + ": " + ::dlerror());
  LocalTar t;
  t.tar_dir = reinterpret_cast<decltype(t.tar_dir)>(::dlsym(module, "paddock_tar_dir"));
  t.untar = reinterpret_cast<decltype(t.untar)>(::dlsym(module, "paddock_untar"));
  t.tar_paths = reinterpret_cast<decltype(t.tar_paths)>(::dlsym(module, "paddock_tar_paths"));
  if (!t.tar_dir || !t.untar || !t.tar_paths) return Unavailable(path + " is not paddock's tar module");
  return t;
}

Result<std::string> TarLocalDir(const std::string& dir) {
  PDK_ASSIGN_OR_RETURN(LocalTar t, LoadLocalTar());
  std::string out, error;
  if (!t.tar_dir(dir.c_str(), &out, &error)) return NotFound(error);
  return out;
}

Status UntarLocal(const std::string& tar, const std::string& dir) {
  PDK_ASSIGN_OR_RETURN(LocalTar t, LoadLocalTar());
  std::string error;
  if (!t.untar(&tar, dir.c_str(), &error)) return Internal(error);
  return Status::Ok();
}

Status Copy(ApiClient& api, const std::string& src, const std::string& dst) {
  auto [sid, spath] = SplitRemote(src);
  auto [did, dpath] = SplitRemote(dst);
  if (sid.empty() == did.empty()) return InvalidArgument("cp needs exactly one side as ID:/path");
  if (!did.empty()) {  // upload
    struct stat st;
    if (::stat(spath.c_str(), &st) != 0) return Status::Errno("stat " + spath);
    std::string target = "/v1/sandboxes/" + Escape(did) + "/files";
    if (S_ISDIR(st.st_mode)) {
      PDK_ASSIGN_OR_RETURN(std::string tar, TarLocalDir(spath));
      PDK_ASSIGN_OR_RETURN(cli::HttpResult r, api.Send("PUT", target + "/archive?path=" + Escape(dpath), tar, "application/x-tar"));
      return r.AsStatus();
    }
    PDK_ASSIGN_OR_RETURN(std::string data, ReadFile(spath));
    char mode[8];
    std::snprintf(mode, sizeof mode, "%o", st.st_mode & 0777);
    PDK_ASSIGN_OR_RETURN(cli::HttpResult r, api.Send("PUT", target + "?path=" + Escape(dpath) + "&mode=" + mode, data, "application/octet-stream"));
    return r.AsStatus();
  }
  std::string target = "/v1/sandboxes/" + Escape(sid) + "/files";
  PDK_ASSIGN_OR_RETURN(json entry, Call(api, "GET", target + "/stat?path=" + Escape(spath)));
  if (entry.value("type", "") == "dir") {
    PDK_ASSIGN_OR_RETURN(cli::HttpResult r, api.Send("GET", target + "/archive?path=" + Escape(spath)));
    PDK_TRY(r.AsStatus());
    return UntarLocal(r.body, dpath);
  }
  PDK_ASSIGN_OR_RETURN(cli::HttpResult r, api.Send("GET", target + "?path=" + Escape(spath)));
  PDK_TRY(r.AsStatus());
  if (dpath == "-") {
    std::fwrite(r.body.data(), 1, r.body.size(), stdout);
    return Status::Ok();
  }
  return WriteFileAtomic(dpath, r.body, entry.value("mode", 0644) & 0777);
}

// `paddock volume cp`: one file between here and a volume (NAME:/path on
// one side), no sandbox needed; an upload streams from the file.
Status VolumeCopy(ApiClient& api, const std::string& src, const std::string& dst) {
  auto [sv, spath] = SplitRemote(src);
  auto [dv, dpath] = SplitRemote(dst);
  if (sv.empty() == dv.empty()) return InvalidArgument("volume cp needs exactly one side as NAME:/path");
  if (!dv.empty()) {
    struct stat st;
    if (::stat(spath.c_str(), &st) != 0) return Status::Errno("stat " + spath);
    if (!S_ISREG(st.st_mode)) return InvalidArgument(spath + " is not a file (volume cp copies one file)");
    std::string target = "/v1/volumes/" + Escape(dv) + "/file?path=" + Escape(dpath) +
                         "&mode=" + std::to_string(st.st_mode & 07777);
    PDK_ASSIGN_OR_RETURN(cli::HttpResult r, api.SendFile("PUT", target, spath, "application/octet-stream"));
    return r.AsStatus();
  }
  PDK_ASSIGN_OR_RETURN(cli::HttpResult r, api.Send("GET", "/v1/volumes/" + Escape(sv) + "/file?path=" + Escape(spath)));
  PDK_TRY(r.AsStatus());
  if (dpath == "-") {
    std::fwrite(r.body.data(), 1, r.body.size(), stdout);
    return Status::Ok();
  }
  return WriteFileAtomic(dpath, r.body, 0644);
}

// `paddock template build FILE`: uploads each copy step's files (a tar of
// them, named by its SHA-256, which is also the step's cache key; skipped
// when paddockd has it), starts the build and prints its log as it comes.
Status BuildTemplate(ApiClient& api, const std::string& file, bool no_cache) {
  PDK_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  json spec = json::parse(text, nullptr, false);
  if (!spec.is_object()) return InvalidArgument(file + " is not a JSON object");
  std::string context = file.find('/') == std::string::npos ? "." : file.substr(0, file.rfind('/'));
  if (context.empty()) context = "/";
  if (no_cache) spec["no_cache"] = true;
  if (spec.contains("steps") && spec["steps"].is_array()) {
    for (auto& step : spec["steps"]) {
      if (!step.is_object() || !step.contains("copy") || step.contains("files")) continue;
      if (!step["copy"].is_string()) return InvalidArgument("a step's 'copy' must be a path");
      PDK_ASSIGN_OR_RETURN(LocalTar t, LoadLocalTar());
      std::string tar, hash, error;
      if (!t.tar_paths(context.c_str(), step["copy"].get<std::string>().c_str(), &tar, &hash, &error))
        return NotFound(error);
      step["files"] = hash;
      PDK_ASSIGN_OR_RETURN(cli::HttpResult have, api.Send("GET", "/v1/build-files/" + hash));
      if (have.status == 200) continue;
      PDK_ASSIGN_OR_RETURN(cli::HttpResult put, api.Send("PUT", "/v1/build-files/" + hash, tar, "application/x-tar"));
      PDK_TRY(put.AsStatus());
    }
  }
  PDK_ASSIGN_OR_RETURN(json build, Call(api, "POST", "/v1/templates", spec));
  const std::string id = build.value("id", "");
  uint64_t offset = 0;
  for (;;) {
    PDK_ASSIGN_OR_RETURN(build, Call(api, "GET", "/v1/builds/" + Escape(id) + "?logs_offset=" + std::to_string(offset)));
    for (const auto& line : build["logs"]) {
      std::string msg = line.value("message", "");
      bool header = msg.rfind("FROM ", 0) == 0 || msg.rfind("[", 0) == 0 || msg.rfind("START ", 0) == 0;
      std::fprintf(line.value("level", "") == "error" ? stderr : stdout, "%s%s\n", header ? "" : "  ", msg.c_str());
    }
    std::fflush(stdout);
    offset = build.value("logs_end", offset);
    std::string state = build.value("status", "");
    if (state == "ready") {
      std::printf("%s %s\n", build.value("template", "").c_str(), build.value("snapshot", "").c_str());
      return Status::Ok();
    }
    if (state == "error") {  // its log ends with why
      std::string step = build["error"].value("step", "");
      return FailedPrecondition("the build of " + build.value("template", "") + " failed" +
                                (step == "base"       ? " on its base"
                                 : step == "finalize" ? " checking its start command"
                                                      : " at step " + step));
    }
    ::usleep(200 * 1000);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"paddock: sandboxes for AI agents (talks to paddockd)"};
  app.require_subcommand(1);
  ApiClient api = ApiClient::FromEnvironment();
  bool json_out = false;

  CreateFlags create_flags;
  auto* create = app.add_subcommand("create", "create and start a sandbox; prints its id");
  create_flags.Add(create);
  create->add_flag("--json", json_out, "print the sandbox as JSON");
  int64_t count = 0;
  create->add_option("--count,-n", count,
                     "create N sandboxes in one request (with --name, named NAME-0, NAME-1, ...); "
                     "prints each id, and each error on stderr")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));

  std::string state_filter;
  std::vector<std::string> label_filter;
  auto* ls = app.add_subcommand("ls", "list sandboxes");
  ls->add_option("--state", state_filter, "running, paused or stopped (comma-separated)");
  ls->add_option("--label,-l", label_filter, "KEY=VALUE metadata filter");
  ls->add_flag("--json", json_out, "JSON output");

  std::string id;
  auto* inspect = app.add_subcommand("inspect", "show one sandbox");
  inspect->add_option("id", id, "id or name")->required();
  inspect->add_flag("--json", json_out, "JSON output");

  ExecFlags exec_flags;
  auto* exec = app.add_subcommand("exec", "run a command in a sandbox");
  exec->add_option("id", id, "id or name")->required();
  exec_flags.Add(exec);

  CreateFlags run_create;
  ExecFlags run_exec;
  auto* run = app.add_subcommand("run", "create a sandbox, run a command in it, delete it");
  run_create.Add(run);
  run->add_flag("--interactive,-i", run_exec.interactive, "send stdin to the command");
  run->add_option("--cwd,-w", run_exec.cwd, "working directory");
  run->add_option("--user,-u", run_exec.user, "user name or uid");
  run->add_option("cmd", run_exec.cmd, "command and arguments (after --); none: the image's Entrypoint/Cmd");

  std::vector<std::string> ids;
  std::map<std::string, CLI::App*> simple;
  for (const char* verb : {"pause", "resume", "stop", "start", "restart", "rm"}) {
    simple[verb] = app.add_subcommand(verb, std::string(verb) + " sandboxes");
    simple[verb]->add_option("ids", ids, "ids or names")->required();
  }
  bool keep_data = false;
  std::string keep_path = "/";
  simple["rm"]->add_flag("--keep-data", keep_data,
                         "first keep its files as an archive (paddock archive ls); if that fails it is not deleted");
  simple["rm"]->add_option("--path", keep_path, "with --keep-data: only the files under this path inside");
  std::string src, dst;
  auto* cp = app.add_subcommand("cp", "copy files: paddock cp ./local ID:/path, or ID:/path ./local");
  cp->add_option("src", src)->required();
  cp->add_option("dst", dst)->required();
  int64_t seconds = 0;
  std::string on_timeout;
  auto* timeout = app.add_subcommand("timeout", "set a running or paused sandbox's timeout");
  timeout->add_option("id", id, "id or name")->required();
  timeout->add_option("seconds", seconds, "from now; 0 clears it")->required();
  timeout->add_option("--on-timeout", on_timeout, "kill, pause or stop");
  int port = 0, host_port = 0;
  std::string bind;
  auto* forward = app.add_subcommand("forward", "forward TCP from a host port to a sandbox's port; "
                                                "prints HOST:PORT");
  forward->add_option("id", id, "id or name")->required();
  forward->add_option("port", port, "the sandbox's port")->required();
  forward->add_option("--host-port", host_port, "the host port (default: any free one)");
  forward->add_option("--bind", bind, "the host address to listen on (default 127.0.0.1)");
  auto* forwards = app.add_subcommand("forwards", "list a sandbox's TCP forwards");
  forwards->add_option("id", id, "id or name")->required();
  forwards->add_flag("--json", json_out, "JSON output");
  auto* unforward = app.add_subcommand("unforward", "stop forwarding a host port");
  unforward->add_option("id", id, "id or name")->required();
  unforward->add_option("host_port", host_port, "the host port")->required();
  auto* status = app.add_subcommand("status", "is paddockd up, and what does it hold");
  auto* image = app.add_subcommand("image", "pull, list, inspect and remove images");
  image->require_subcommand(1);
  std::string ref;
  std::vector<std::string> refs;
  auto* image_pull = image->add_subcommand("pull", "pull an image from its registry");
  image_pull->add_option("ref", ref, "reference: python:3.12, ghcr.io/org/img@sha256:…, 127.0.0.1:5000/team/img:v1")->required();
  auto* image_ls = image->add_subcommand("ls", "list images");
  image_ls->add_flag("--json", json_out, "JSON output");
  auto* image_inspect = image->add_subcommand("inspect", "show one image as JSON");
  image_inspect->add_option("ref", ref, "reference or id")->required();
  auto* image_rm = image->add_subcommand("rm", "remove images (a reference; the image goes with its last)");
  image_rm->add_option("refs", refs, "references or ids")->required();
  auto* image_prune = image->add_subcommand("prune", "remove every image no sandbox uses, and unused layers");
  std::string archive;
  auto* image_import = image->add_subcommand("import", "import a docker save tarball or an OCI archive");
  image_import->add_option("file", archive, "the archive (docker save, OCI layout or archive)")->required();
  image_import->add_option("--ref", ref, "the name to give it (needed when the archive names none)");
  std::string registry, user;
  bool password_stdin = false;
  auto* login = app.add_subcommand("login", "check a registry login and keep it for pulls (paddockd stores it, 0600)");
  login->add_option("registry", registry, "host[:port], e.g. ghcr.io or docker.io")->required();
  login->add_option("--username,-u", user, "user name")->required();
  login->add_flag("--password-stdin", password_stdin, "read the password from stdin")->required();
  auto* logout = app.add_subcommand("logout", "forget a registry login");
  logout->add_option("registry", registry, "host[:port]")->required();
  auto* snapshot = app.add_subcommand("snapshot", "keep sandboxes' files as snapshots; list, inspect, remove them");
  snapshot->require_subcommand(1);
  std::string snapshot_name;
  auto* snapshot_create = snapshot->add_subcommand(
      "create", "snapshot a sandbox's files (memory is not kept); prints the snapshot's id");
  snapshot_create->add_option("id", id, "the sandbox's id or name")->required();
  snapshot_create->add_option("--name", snapshot_name, "the snapshot's name (unique)");
  snapshot_create->add_flag("--json", json_out, "print the snapshot as JSON");
  auto* snapshot_ls = snapshot->add_subcommand("ls", "list snapshots");
  snapshot_ls->add_flag("--json", json_out, "JSON output");
  auto* snapshot_inspect = snapshot->add_subcommand("inspect", "show one snapshot as JSON");
  snapshot_inspect->add_option("snapshot", ref, "id or name")->required();
  auto* snapshot_rm = snapshot->add_subcommand("rm", "remove snapshots no sandbox or snapshot stacks on");
  snapshot_rm->add_option("snapshots", refs, "ids or names")->required();
  auto* rollback = app.add_subcommand(
      "rollback", "return a sandbox's files to a snapshot of it (a running sandbox restarts)");
  rollback->add_option("id", id, "the sandbox's id or name")->required();
  rollback->add_option("snapshot", ref, "the snapshot's id or name")->required();
  auto* templ = app.add_subcommand("template", "build templates from steps; list, inspect, remove them");
  templ->require_subcommand(1);
  std::string build_file;
  bool no_cache = false;
  auto* template_build = templ->add_subcommand("build", "build a template from a JSON build file (see docs/templates.md)");
  template_build->add_option("file", build_file, "the build file; copy steps' paths are relative to its folder")->required();
  template_build->add_flag("--no-cache", no_cache, "run every step again");
  auto* template_ls = templ->add_subcommand("ls", "list templates");
  template_ls->add_flag("--json", json_out, "JSON output");
  auto* template_inspect = templ->add_subcommand("inspect", "show one template as JSON");
  template_inspect->add_option("template", ref, "its name")->required();
  auto* template_rm = templ->add_subcommand("rm", "remove templates (sandboxes made from them stay)");
  template_rm->add_option("templates", refs, "names")->required();
  auto* template_prune = templ->add_subcommand(
      "prune", "remove the build cache: step snapshots nothing uses, and uploaded files");
  auto* volume = app.add_subcommand("volume", "named folders that outlive sandboxes; create, list, inspect, remove");
  volume->require_subcommand(1);
  std::string volume_disk;
  auto* volume_create = volume->add_subcommand("create", "create a volume");
  volume_create->add_option("name", ref, "its name")->required();
  volume_create->add_option("--disk", volume_disk, "its disk limit, e.g. 5g (needs paddockd --disk-pool)");
  auto* volume_ls = volume->add_subcommand("ls", "list volumes");
  volume_ls->add_flag("--json", json_out, "JSON output");
  auto* volume_inspect = volume->add_subcommand("inspect", "show one volume as JSON");
  volume_inspect->add_option("name", ref, "its name")->required();
  auto* volume_rm = volume->add_subcommand("rm", "remove volumes no sandbox mounts");
  volume_rm->add_option("names", refs, "names")->required();
  auto* volume_cp = volume->add_subcommand("cp", "copy a file: paddock volume cp ./local NAME:/path, or NAME:/path ./local (- for stdout)");
  volume_cp->add_option("src", src)->required();
  volume_cp->add_option("dst", dst)->required();
  std::string volume_path = "/";
  int volume_depth = 1;
  auto* volume_files = volume->add_subcommand("files", "list a volume's files");
  volume_files->add_option("name", ref, "its name")->required();
  volume_files->add_option("path", volume_path, "a folder in it (/)");
  volume_files->add_option("--depth", volume_depth, "levels down (1)");
  volume_files->add_flag("--json", json_out, "JSON output");
  auto* gpus = app.add_subcommand("gpus", "the host's GPUs (from CDI specs, or found from the NVIDIA driver) and who holds each");
  gpus->add_flag("--json", json_out, "JSON output");
  auto* devices = app.add_subcommand("devices", "the host's CDI devices, who holds each, and specs that cannot be read");
  devices->add_flag("--json", json_out, "JSON output");
  auto* archives = app.add_subcommand("archive", "files deleted sandboxes kept (rm --keep-data); list, inspect, remove");
  archives->require_subcommand(1);
  auto* archive_ls = archives->add_subcommand("ls", "list archives");
  archive_ls->add_flag("--json", json_out, "JSON output");
  auto* archive_inspect = archives->add_subcommand("inspect", "show one archive as JSON");
  archive_inspect->add_option("id", ref, "its id")->required();
  auto* archive_rm = archives->add_subcommand("rm", "remove archives");
  archive_rm->add_option("ids", refs, "ids")->required();
  auto* archive_files = app.add_subcommand("archive-files", "archive a stopped sandbox's files now (its start restores them)");
  archive_files->add_option("id", id, "id or name")->required();
  CLI11_PARSE(app, argc, argv);

  auto sandbox_path = [](const std::string& i) { return "/v1/sandboxes/" + Escape(i); };
  if (create->parsed()) {
    auto body = create_flags.Body();
    if (!body.ok()) return Fail(body.status());
    if (count > 0) {
      (*body)["count"] = count;
      auto r = Call(api, "POST", "/v1/sandboxes:batch", *body);
      if (!r.ok()) return Fail(r.status());
      if (json_out) std::printf("%s\n", (*r)["results"].dump(2).c_str());
      int rc = 0;
      for (const auto& one : (*r)["results"]) {
        if (one.contains("sandbox")) {
          if (!json_out) std::printf("%s\n", one["sandbox"].value("id", "").c_str());
          continue;
        }
        std::fprintf(stderr, "paddock: %s\n", one["error"].value("message", "").c_str());
        rc = 1;
      }
      return rc;
    }
    auto r = Call(api, "POST", "/v1/sandboxes", *body);
    if (!r.ok()) return Fail(r.status());
    std::printf("%s\n", json_out ? r->dump(2).c_str() : r->value("id", "").c_str());
    return 0;
  }
  if (ls->parsed()) {
    std::string q = "/v1/sandboxes?state=" + Escape(state_filter);
    auto labels = Pairs(label_filter, "--label");
    if (!labels.ok()) return Fail(labels.status());
    for (const auto& [k, v] : *labels) q += "&metadata." + Escape(k) + "=" + Escape(v);
    auto r = Call(api, "GET", q);
    if (!r.ok()) return Fail(r.status());
    if (json_out) std::printf("%s\n", (*r)["sandboxes"].dump(2).c_str());
    else PrintTable((*r)["sandboxes"]);
    return 0;
  }
  if (inspect->parsed()) {
    auto r = Call(api, "GET", sandbox_path(id));
    if (!r.ok()) return Fail(r.status());
    if (json_out) {
      std::printf("%s\n", r->dump(2).c_str());
    } else {
      for (const auto& [k, v] : r->items())
        std::printf("%-18s %s\n", k.c_str(), v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
    }
    return 0;
  }
  if (exec->parsed()) {
    auto code = StreamExec(api, id, exec_flags);
    if (!code.ok()) return Fail(code.status());
    return *code;
  }
  if (run->parsed()) {
    auto body = run_create.Body();
    if (!body.ok()) return Fail(body.status());
    auto code = StreamExec(api, "", run_exec, true, *body);
    if (!code.ok()) return Fail(code.status());
    return *code;
  }
  for (const auto& [verb, sub] : simple) {
    if (!sub->parsed()) continue;
    int rc = 0;
    for (const auto& i : ids) {
      std::string rm_path = sandbox_path(i);
      if (keep_data) rm_path += "?keep_data=1&path=" + Escape(keep_path);
      auto r = verb == "rm" ? Call(api, "DELETE", rm_path) : Call(api, "POST", sandbox_path(i) + "/" + verb);
      if (!r.ok()) rc = Fail(r.status());
      else if (keep_data) std::printf("%s %s\n", i.c_str(), r->value("id", "").c_str());
      else std::printf("%s\n", i.c_str());
    }
    return rc;
  }
  if (forward->parsed()) {
    json body = {{"port", port}};
    if (host_port) body["host_port"] = host_port;
    if (!bind.empty()) body["bind"] = bind;
    auto r = Call(api, "POST", sandbox_path(id) + "/forwards", body);
    if (!r.ok()) return Fail(r.status());
    std::printf("%s\n", r->value("address", "").c_str());
    return 0;
  }
  if (forwards->parsed()) {
    auto r = Call(api, "GET", sandbox_path(id) + "/forwards");
    if (!r.ok()) return Fail(r.status());
    if (json_out) {
      std::printf("%s\n", (*r)["forwards"].dump(2).c_str());
    } else {
      std::printf("%-22s %s\n", "HOST", "SANDBOX PORT");
      for (const auto& f : (*r)["forwards"])
        std::printf("%-22s %d\n", f.value("address", "").c_str(), f.value("port", 0));
    }
    return 0;
  }
  if (unforward->parsed()) {
    auto r = Call(api, "DELETE", sandbox_path(id) + "/forwards/" + std::to_string(host_port));
    return r.ok() ? 0 : Fail(r.status());
  }
  if (cp->parsed()) {
    Status s = Copy(api, src, dst);
    return s.ok() ? 0 : Fail(s);
  }
  if (timeout->parsed()) {
    json body = {{"timeout", seconds}};
    if (!on_timeout.empty()) body["on_timeout"] = on_timeout;
    auto r = Call(api, "POST", sandbox_path(id) + "/timeout", body);
    if (!r.ok()) return Fail(r.status());
    std::printf("%s timeout_at=%s on_timeout=%s\n", id.c_str(),
                (*r)["timeout_at"].is_null() ? "none" : (*r)["timeout_at"].get<std::string>().c_str(),
                r->value("on_timeout", "").c_str());
    return 0;
  }
  if (image_pull->parsed()) {
    Status s = PullWithProgress(api, ref);
    return s.ok() ? 0 : Fail(s);
  }
  if (snapshot_create->parsed()) {
    json body = json::object();
    if (!snapshot_name.empty()) body["name"] = snapshot_name;
    auto r = Call(api, "POST", sandbox_path(id) + "/snapshots", body);
    if (!r.ok()) return Fail(r.status());
    std::printf("%s\n", json_out ? r->dump(2).c_str() : r->value("id", "").c_str());
    return 0;
  }
  if (snapshot_ls->parsed()) {
    auto r = Call(api, "GET", "/v1/snapshots");
    if (!r.ok()) return Fail(r.status());
    if (json_out) std::printf("%s\n", (*r)["snapshots"].dump(2).c_str());
    else PrintSnapshots((*r)["snapshots"]);
    return 0;
  }
  if (snapshot_inspect->parsed()) {
    auto r = Call(api, "GET", "/v1/snapshots/" + Escape(ref));
    if (!r.ok()) return Fail(r.status());
    std::printf("%s\n", r->dump(2).c_str());
    return 0;
  }
  if (snapshot_rm->parsed()) {
    int rc = 0;
    for (const auto& r : refs) {
      auto res = Call(api, "DELETE", "/v1/snapshots/" + Escape(r));
      if (!res.ok()) rc = Fail(res.status());
      else std::printf("%s\n", r.c_str());
    }
    return rc;
  }
  if (rollback->parsed()) {
    auto r = Call(api, "POST", sandbox_path(id) + "/rollback", {{"snapshot", ref}});
    if (!r.ok()) return Fail(r.status());
    std::printf("%s\n", id.c_str());
    return 0;
  }
  if (volume_create->parsed()) {
    json body = {{"name", ref}};
    if (!volume_disk.empty()) body["disk"] = volume_disk;
    auto r = Call(api, "POST", "/v1/volumes", body);
    if (!r.ok()) return Fail(r.status());
    std::printf("%s\n", r->value("name", "").c_str());
    return 0;
  }
  if (volume_ls->parsed()) {
    auto r = Call(api, "GET", "/v1/volumes");
    if (!r.ok()) return Fail(r.status());
    if (json_out) {
      std::printf("%s\n", (*r)["volumes"].dump(2).c_str());
    } else {
      std::printf("%-32s %10s %10s %s\n", "NAME", "DISK", "USED", "CREATED");
      for (const auto& v : (*r)["volumes"])
        std::printf("%-32s %10s %10s %s\n", v.value("name", "").c_str(),
                    v.value("disk", int64_t{0}) ? HumanBytes(v.value("disk", int64_t{0})).c_str() : "-",
                    v.contains("disk_used") ? HumanBytes(v.value("disk_used", int64_t{0})).c_str() : "-",
                    v.value("created_at", "").c_str());
    }
    return 0;
  }
  if (volume_inspect->parsed()) {
    auto r = Call(api, "GET", "/v1/volumes/" + Escape(ref));
    if (!r.ok()) return Fail(r.status());
    std::printf("%s\n", r->dump(2).c_str());
    return 0;
  }
  if (volume_rm->parsed()) {
    int rc = 0;
    for (const auto& r : refs) {
      auto res = Call(api, "DELETE", "/v1/volumes/" + Escape(r));
      if (!res.ok()) rc = Fail(res.status());
      else std::printf("%s\n", r.c_str());
    }
    return rc;
  }
  if (gpus->parsed()) {
    auto r = Call(api, "GET", "/v1/gpus");
    if (!r.ok()) return Fail(r.status());
    if (json_out) {
      std::printf("%s\n", r->dump(2).c_str());
      return 0;
    }
    std::printf("%-6s %-26s %-22s %s\n", "GPU", "DEVICE", "HELD BY", "SOURCE");
    for (const auto& g : (*r)["gpus"])
      std::printf("%-6s %-26s %-22s %s\n", g.value("id", "").c_str(), g.value("name", "").c_str(),
                  g["held_by"].is_string() ? g["held_by"].get<std::string>().c_str() : "-",
                  g.value("source", "").c_str());
    return 0;
  }
  if (devices->parsed()) {
    auto r = Call(api, "GET", "/v1/devices");
    if (!r.ok()) return Fail(r.status());
    if (json_out) {
      std::printf("%s\n", r->dump(2).c_str());
      return 0;
    }
    std::printf("%-40s %-22s %s\n", "DEVICE", "HELD BY", "SPEC");
    for (const auto& d : (*r)["devices"])
      std::printf("%-40s %-22s %s\n", d.value("name", "").c_str(),
                  d["held_by"].is_string() ? d["held_by"].get<std::string>().c_str() : "-", d.value("spec", "").c_str());
    for (const auto& e : (*r)["errors"])
      std::printf("unreadable spec %s: %s\n", e.value("spec", "").c_str(), e.value("error", "").c_str());
    if ((*r)["device_filter"].is_string())
      std::printf("device access limited by the kernel: %s\n", (*r)["device_filter"].get<std::string>().c_str());
    else
      std::printf("no device is given out here: device access cannot be limited (%s)\n",
                  r->value("device_filter_error", "").c_str());
    return 0;
  }
  if (volume_cp->parsed()) {
    Status s = VolumeCopy(api, src, dst);
    return s.ok() ? 0 : Fail(s);
  }
  if (volume_files->parsed()) {
    auto r = Call(api, "GET", "/v1/volumes/" + Escape(ref) + "/dir?path=" + Escape(volume_path) +
                                  "&depth=" + std::to_string(volume_depth));
    if (!r.ok()) return Fail(r.status());
    if (json_out) {
      std::printf("%s\n", r->dump(2).c_str());
    } else {
      for (const auto& e : *r)
        std::printf("%04o %5d %5d %10s %s%s%s\n", e.value("mode", 0), e.value("uid", 0), e.value("gid", 0),
                    HumanBytes(e.value("size", int64_t{0})).c_str(), e.value("path", "").c_str(),
                    e.value("type", "") == "directory" ? "/" : "",
                    e.contains("target") ? (" -> " + e.value("target", "")).c_str() : "");
    }
    return 0;
  }
  if (archive_ls->parsed()) {
    auto r = Call(api, "GET", "/v1/archives");
    if (!r.ok()) return Fail(r.status());
    if (json_out) {
      std::printf("%s\n", (*r)["archives"].dump(2).c_str());
    } else {
      std::printf("%-20s %-24s %-24s %-16s %10s %s\n", "ID", "SANDBOX", "TEMPLATE", "PATH", "SIZE", "CREATED");
      for (const auto& a : (*r)["archives"])
        std::printf("%-20s %-24s %-24s %-16s %10s %s\n", a.value("id", "").c_str(), a.value("sandbox_name", "").c_str(),
                    a.value("template", "").c_str(), a.value("path", "").c_str(),
                    HumanBytes(a.value("size", int64_t{0})).c_str(), a.value("created_at", "").c_str());
    }
    return 0;
  }
  if (archive_inspect->parsed()) {
    auto r = Call(api, "GET", "/v1/archives/" + Escape(ref));
    if (!r.ok()) return Fail(r.status());
    std::printf("%s\n", r->dump(2).c_str());
    return 0;
  }
  if (archive_rm->parsed()) {
    int rc = 0;
    for (const auto& a : refs) {
      auto res = Call(api, "DELETE", "/v1/archives/" + Escape(a));
      if (!res.ok()) rc = Fail(res.status());
      else std::printf("%s\n", a.c_str());
    }
    return rc;
  }
  if (archive_files->parsed()) {
    auto r = Call(api, "POST", sandbox_path(id) + "/archive");
    if (!r.ok()) return Fail(r.status());
    std::printf("%s %s\n", id.c_str(), HumanBytes(r->value("archive_size", int64_t{0})).c_str());
    return 0;
  }
  if (template_build->parsed()) {
    Status s = BuildTemplate(api, build_file, no_cache);
    return s.ok() ? 0 : Fail(s);
  }
  if (template_ls->parsed()) {
    auto r = Call(api, "GET", "/v1/templates");
    if (!r.ok()) return Fail(r.status());
    if (json_out) {
      std::printf("%s\n", (*r)["templates"].dump(2).c_str());
    } else {
      std::printf("%-32s %-18s %-24s %s\n", "NAME", "SNAPSHOT", "BASE", "CREATED");
      for (const auto& t : (*r)["templates"])
        std::printf("%-32s %-18s %-24s %s\n", t.value("name", "").c_str(), t.value("snapshot", "").c_str(),
                    t.value("base", "").c_str(), t.value("created_at", "").c_str());
    }
    return 0;
  }
  if (template_inspect->parsed()) {
    auto r = Call(api, "GET", "/v1/templates/" + Escape(ref));
    if (!r.ok()) return Fail(r.status());
    std::printf("%s\n", r->dump(2).c_str());
    return 0;
  }
  if (template_rm->parsed()) {
    int rc = 0;
    for (const auto& r : refs) {
      auto res = Call(api, "DELETE", "/v1/templates/" + Escape(r));
      if (!res.ok()) rc = Fail(res.status());
      else std::printf("%s\n", r.c_str());
    }
    return rc;
  }
  if (template_prune->parsed()) {
    auto r = Call(api, "POST", "/v1/templates:prune");
    if (!r.ok()) return Fail(r.status());
    std::printf("removed %d snapshots (%s), %d uploaded archives\n", r->value("snapshots_removed", 0),
                HumanBytes(r->value("bytes_freed", int64_t{0})).c_str(), r->value("files_removed", 0));
    return 0;
  }
  if (image_ls->parsed()) {
    auto r = Call(api, "GET", "/v1/images");
    if (!r.ok()) return Fail(r.status());
    if (json_out) std::printf("%s\n", (*r)["images"].dump(2).c_str());
    else PrintImages((*r)["images"]);
    return 0;
  }
  if (image_inspect->parsed()) {
    auto r = Call(api, "GET", "/v1/images/" + Escape(ref));
    if (!r.ok()) return Fail(r.status());
    std::printf("%s\n", r->dump(2).c_str());
    return 0;
  }
  if (image_rm->parsed()) {
    int rc = 0;
    for (const auto& r : refs) {
      auto res = Call(api, "DELETE", "/v1/images/" + Escape(r));
      if (!res.ok()) rc = Fail(res.status());
      else std::printf("%s\n", r.c_str());
    }
    return rc;
  }
  if (image_import->parsed()) {
    auto sent = api.SendFile("POST", "/v1/images/import" + (ref.empty() ? "" : "?ref=" + Escape(ref)),
                             archive, "application/x-tar");
    if (!sent.ok()) return Fail(sent.status());
    if (Status s = sent->AsStatus(); !s.ok()) return Fail(s);
    json answer = sent->Json();
    for (const auto& img : answer["images"]) {
      std::string names;
      for (const auto& n : img.value("refs", std::vector<std::string>{})) names += (names.empty() ? "" : ", ") + n;
      std::printf("%s %s\n", img.value("id", "").c_str(), names.empty() ? "<none>" : names.c_str());
    }
    return 0;
  }
  if (image_prune->parsed()) {
    auto r = Call(api, "POST", "/v1/images/prune");
    if (!r.ok()) return Fail(r.status());
    std::printf("removed %d images, %d layers\n", r->value("images_removed", 0), r->value("layers_removed", 0));
    return 0;
  }
  if (login->parsed()) {
    std::string password;
    std::getline(std::cin, password);
    if (!password.empty() && password.back() == '\r') password.pop_back();
    auto r = Call(api, "POST", "/v1/registries/login",
                  json{{"registry", registry}, {"username", user}, {"password", password}});
    if (!r.ok()) return Fail(r.status());
    std::printf("logged in to %s as %s\n", r->value("registry", "").c_str(), user.c_str());
    return 0;
  }
  if (logout->parsed()) {
    auto r = Call(api, "DELETE", "/v1/registries/" + Escape(registry) + "/login");
    if (!r.ok()) return Fail(r.status());
    std::printf("logged out of %s\n", registry.c_str());
    return 0;
  }
  if (status->parsed()) {
    auto h = Call(api, "GET", "/v1/health");
    if (!h.ok()) return Fail(h.status());
    auto l = Call(api, "GET", "/v1/sandboxes");
    if (!l.ok()) return Fail(l.status());
    std::map<std::string, int> by_state;
    for (const auto& s : (*l)["sandboxes"]) ++by_state[s.value("state", "")];
    std::printf("paddockd: up at %s (cgroup %s)\nsandboxes: %zu (running %d, paused %d, stopped %d)\n",
                api.endpoint().c_str(), h->value("cgroup", "").c_str(), (*l)["sandboxes"].size(),
                by_state["running"], by_state["paused"], by_state["stopped"]);
    return 0;
  }
  return 0;
}
