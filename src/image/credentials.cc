#include "image/credentials.h"

#include <nlohmann/json.hpp>

#include "base/fs.h"

namespace paddock::image {

using nlohmann::json;

Result<std::unique_ptr<CredentialStore>> CredentialStore::Open(const std::string& path) {
  std::unique_ptr<CredentialStore> store(new CredentialStore(path));
  if (!PathExists(path)) return store;
  PDK_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("auths") || !j["auths"].is_object())
    return FailedPrecondition("registry logins file " + path +
                              " is malformed (want {\"auths\": {...}})");
  for (const auto& [registry, a] : j["auths"].items()) {
    if (!a.is_object() || !a.contains("username") || !a["username"].is_string() ||
        !a.contains("password") || !a["password"].is_string())
      return FailedPrecondition("registry logins file " + path + ": the entry for " + registry +
                                " needs a username and a password");
    store->auths_[registry] = {a["username"].get<std::string>(), a["password"].get<std::string>()};
  }
  return store;
}

std::optional<Credentials> CredentialStore::Get(const std::string& registry) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = auths_.find(registry);
  if (it == auths_.end()) return std::nullopt;
  return it->second;
}

Status CredentialStore::Set(const std::string& registry, const Credentials& creds) {
  std::lock_guard<std::mutex> lock(mu_);
  auto before = auths_;
  auths_[registry] = creds;
  Status s = Save();
  if (!s.ok()) auths_ = std::move(before);
  return s;
}

Status CredentialStore::Remove(const std::string& registry) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = auths_.find(registry);
  if (it == auths_.end()) return NotFound("there is no login for registry " + registry);
  Credentials gone = it->second;
  auths_.erase(it);
  Status s = Save();
  if (!s.ok()) auths_[registry] = gone;
  return s;
}

std::vector<std::string> CredentialStore::Registries() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [r, c] : auths_) out.push_back(r);
  return out;
}

Status CredentialStore::Save() const {
  json auths = json::object();
  for (const auto& [r, c] : auths_) auths[r] = {{"username", c.username}, {"password", c.password}};
  return WriteFileAtomic(path_, json{{"auths", auths}}.dump(2) + "\n", 0600);
}

}  // namespace paddock::image
