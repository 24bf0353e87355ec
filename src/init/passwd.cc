#include "init/passwd.h"

#include <charconv>
#include <sstream>

#include "base/fs.h"

namespace paddock::init {

static std::vector<std::string> Split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, sep)) out.push_back(field);
  if (!line.empty() && line.back() == sep) out.emplace_back();
  return out;
}

static bool ParseId(const std::string& s, unsigned* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

Result<User> LookupUser(const std::string& spec, const std::string& etc_dir) {
  std::string want = spec.empty() ? "root" : spec;
  unsigned want_uid = 0;
  bool numeric = ParseId(want, &want_uid);
  User user;
  bool found = false;
  if (auto passwd = ReadFile(etc_dir + "/passwd"); passwd.ok()) {
    std::istringstream in(*passwd);
    std::string line;
    while (std::getline(in, line)) {
      auto f = Split(line, ':');
      unsigned uid, gid;
      if (f.size() < 7 || !ParseId(f[2], &uid) || !ParseId(f[3], &gid)) continue;
      if (numeric ? uid != want_uid : f[0] != want) continue;
      user = User{uid, gid, f[0], f[5].empty() ? "/" : f[5], f[6].empty() ? "/bin/sh" : f[6], {}};
      found = true;
      break;
    }
  }
  if (!found) {
    // root needs no entry (images built FROM scratch often have no
    // /etc/passwd at all), and a bare uid neither, as docker exec -u allows.
    if (want == "root") numeric = true;
    if (!numeric) return NotFound("user '" + want + "' not found in /etc/passwd");
    user.uid = want_uid;
    user.gid = want_uid;
    user.name = want;
    return user;
  }
  if (auto group = ReadFile(etc_dir + "/group"); group.ok()) {
    std::istringstream in(*group);
    std::string line;
    while (std::getline(in, line)) {
      auto f = Split(line, ':');
      unsigned gid;
      if (f.size() < 4 || !ParseId(f[2], &gid)) continue;
      for (const auto& member : Split(f[3], ','))
        if (member == user.name && gid != user.gid) user.groups.push_back(gid);
    }
  }
  return user;
}

Result<gid_t> LookupGroup(const std::string& spec, const std::string& etc_dir) {
  unsigned gid = 0;
  if (ParseId(spec, &gid)) return static_cast<gid_t>(gid);
  if (auto group = ReadFile(etc_dir + "/group"); group.ok()) {
    std::istringstream in(*group);
    std::string line;
    while (std::getline(in, line)) {
      auto f = Split(line, ':');
      if (f.size() >= 3 && f[0] == spec && ParseId(f[2], &gid)) return static_cast<gid_t>(gid);
    }
  }
  return NotFound("group '" + spec + "' not found in /etc/group");
}

}  // namespace paddock::init
