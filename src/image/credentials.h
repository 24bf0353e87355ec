// CredentialStore: registry logins, kept in one JSON file readable by root
// alone (0600, written by rename): {"auths": {"REGISTRY": {"username",
// "password"}}}. Registries are named as ImageRef::registry names them
// ("docker.io", "ghcr.io", "127.0.0.1:5000").
//
// Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "image/registry.h"

namespace paddock::image {

class CredentialStore {
 public:
  // Reads `path` if it exists; a malformed file is an error naming it.
  static Result<std::unique_ptr<CredentialStore>> Open(const std::string& path);

  std::optional<Credentials> Get(const std::string& registry) const;
  Status Set(const std::string& registry, const Credentials& creds);
  // kNotFound if there is no login for `registry`.
  Status Remove(const std::string& registry);
  std::vector<std::string> Registries() const;  // with a login, sorted

 private:
  explicit CredentialStore(std::string path) : path_(std::move(path)) {}
  Status Save() const;  // requires mu_

  std::string path_;
  mutable std::mutex mu_;  // guards auths_ and the file
  std::map<std::string, Credentials> auths_;
};

}  // namespace paddock::image
