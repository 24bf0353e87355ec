#include "api/volume_content.h"

#include <unistd.h>

#include <vector>

#include "base/units.h"
#include "sandbox/volume_files.h"

namespace paddock::api {

namespace vf = volume_files;
using nlohmann::json;

namespace {

std::string Rfc3339(int64_t ns) { return FormatTime(ns / 1000000); }

json EntryJson(const vf::Entry& e) {
  json j = {{"name", e.name},
            {"path", e.path},
            {"type", vf::EntryTypeName(e.type)},
            {"mode", e.mode},
            {"uid", e.uid},
            {"gid", e.gid},
            {"size", e.size},
            {"atime", Rfc3339(e.atime_ns)},
            {"mtime", Rfc3339(e.mtime_ns)},
            {"ctime", Rfc3339(e.ctime_ns)}};
  if (e.type == vf::EntryType::kSymlink) j["target"] = e.target;
  return j;
}

// A non-negative decimal number of query `key`, if given.
Result<std::optional<uint32_t>> Number(const Target& t, const char* key) {
  if (!t.Has(key) || t.Q(key).empty()) return std::optional<uint32_t>();
  const std::string v = t.Q(key);
  char* end = nullptr;
  errno = 0;
  unsigned long n = std::strtoul(v.c_str(), &end, 10);
  if (errno || *end || v[0] == '-' || n > 0xffffffffUL)
    return InvalidArgument(std::string("query '") + key + "' must be a non-negative number, not '" + v + "'");
  return std::optional<uint32_t>(static_cast<uint32_t>(n));
}

Result<vf::Owner> OwnerFromQuery(const Target& t) {
  vf::Owner o;
  PDK_ASSIGN_OR_RETURN(o.uid, Number(t, "uid"));
  PDK_ASSIGN_OR_RETURN(o.gid, Number(t, "gid"));
  PDK_ASSIGN_OR_RETURN(o.mode, Number(t, "mode"));
  return o;
}

Result<vf::Owner> OwnerFromBody(const Request& req) {
  PDK_ASSIGN_OR_RETURN(json b, JsonObjectBody(req, true));
  vf::Owner o;
  for (auto [key, into] : {std::pair{"uid", &o.uid}, std::pair{"gid", &o.gid}, std::pair{"mode", &o.mode}}) {
    if (!b.contains(key) || b[key].is_null()) continue;
    if (!b[key].is_number_unsigned() || b[key].get<uint64_t>() > 0xffffffffULL)
      return InvalidArgument(std::string("field '") + key + "' must be a non-negative number");
    *into = b[key].get<uint32_t>();
  }
  return o;
}

bool TrueQuery(const Target& t, const char* key) {
  std::string v = t.Q(key);
  return v == "true" || v == "1";
}

// Streams the file's bytes in 1 MiB pieces: its size never sits in memory.
Result<std::optional<Response>> SendFile(UniqueFd file, StreamWriter& out) {
  std::vector<char> buf(1 << 20);
  if (!out.Begin(http::status::ok, "application/octet-stream")) return std::optional<Response>();
  for (;;) {
    ssize_t n = ::read(file.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::optional<Response>();  // cut short: the connection closes
    if (n == 0) break;
    if (!out.Write(std::string_view(buf.data(), static_cast<size_t>(n)))) return std::optional<Response>();
  }
  out.End();
  return std::optional<Response>();
}

}  // namespace

bool IsVolumeUpload(const Request& req, std::string_view prefix) {
  if (req.method() != http::verb::put) return false;
  std::string_view t(req.target().data(), req.target().size());
  t = t.substr(0, t.find('?'));
  if (t.substr(0, prefix.size()) != prefix) return false;
  t = t.substr(prefix.size());
  size_t slash = t.find('/');
  return slash != 0 && slash != std::string_view::npos && t.substr(slash) == "/file";
}

Result<std::optional<Response>> VolumeContent(SandboxManager& manager, const std::string& volume,
                                              const std::string& what, const Request& req, const Target& target,
                                              StreamWriter& out) {
  using R = std::optional<Response>;
  auto method = req.method();
  if (!target.Has("path")) return InvalidArgument("query 'path' is required (\"/\" is the volume's top)");
  const std::string path = target.Q("path");
  PDK_ASSIGN_OR_RETURN(UniqueFd root, manager.OpenVolume(volume));
  if (what == "file" && method == http::verb::get) {
    PDK_ASSIGN_OR_RETURN(UniqueFd file, vf::OpenFile(root.get(), path));
    return SendFile(std::move(file), out);
  }
  if (what == "file" && method == http::verb::put) {
    PDK_ASSIGN_OR_RETURN(vf::Owner owner, OwnerFromQuery(target));
    PDK_ASSIGN_OR_RETURN(vf::Entry e, vf::WriteFile(root.get(), path, out.body_file(), req.body(), owner));
    return R(JsonResponse(http::status::ok, EntryJson(e), req));
  }
  if (what == "dir" && method == http::verb::get) {
    int depth = 1;
    if (target.Has("depth") && !target.Q("depth").empty()) {
      PDK_ASSIGN_OR_RETURN(std::optional<uint32_t> d, Number(target, "depth"));
      depth = static_cast<int>(std::min<uint32_t>(*d, vf::kMaxDepth));
    }
    PDK_ASSIGN_OR_RETURN(std::vector<vf::Entry> entries, vf::List(root.get(), path, depth));
    json all = json::array();
    for (const auto& e : entries) all.push_back(EntryJson(e));
    return R(JsonResponse(http::status::ok, all, req));
  }
  if (what == "dir" && method == http::verb::post) {
    PDK_ASSIGN_OR_RETURN(vf::Owner owner, OwnerFromQuery(target));
    PDK_ASSIGN_OR_RETURN(vf::Entry e, vf::MakeDir(root.get(), path, owner, TrueQuery(target, "force")));
    return R(JsonResponse(http::status::created, EntryJson(e), req));
  }
  if (what == "path" && method == http::verb::get) {
    PDK_ASSIGN_OR_RETURN(vf::Entry e, vf::Stat(root.get(), path));
    return R(JsonResponse(http::status::ok, EntryJson(e), req));
  }
  if (what == "path" && method == http::verb::patch) {
    PDK_ASSIGN_OR_RETURN(vf::Owner owner, OwnerFromBody(req));
    PDK_ASSIGN_OR_RETURN(vf::Entry e, vf::SetMetadata(root.get(), path, owner));
    return R(JsonResponse(http::status::ok, EntryJson(e), req));
  }
  if (what == "path" && method == http::verb::delete_) {
    PDK_TRY(vf::Remove(root.get(), path));
    return R(EmptyResponse(http::status::no_content, req));
  }
  return NotFound("no route for " + std::string(req.method_string()) + " " + std::string(req.target()));
}

}  // namespace paddock::api
