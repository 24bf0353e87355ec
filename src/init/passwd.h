// User lookup from the sandbox's own /etc/passwd and /etc/group, without NSS
// (paddock-init is static and must not load the sandbox's libraries).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/status.h"

namespace paddock::init {

struct User {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
  std::string home = "/";
  std::string shell = "/bin/sh";
  std::vector<gid_t> groups;  // supplementary groups from /etc/group
};

// `spec` is a user name or a numeric uid; empty means root.
Result<User> LookupUser(const std::string& spec, const std::string& etc_dir = "/etc");
// `spec` is a group name or a numeric gid.
Result<gid_t> LookupGroup(const std::string& spec, const std::string& etc_dir = "/etc");

}  // namespace paddock::init
