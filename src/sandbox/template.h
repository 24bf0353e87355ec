// Templates: what a sandbox's root filesystem is made of. A template is an
// ordered list of read-only layers plus read-only binds of host folders.
// Built-in: `host` (the host's /usr read-only, a synthesized /etc with no host
// secrets) and `busybox` (Debian's static busybox). Images come later.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace paddock {

struct Template {
  std::string name;
  std::vector<std::string> layers;  // host folders, top-most first
  std::vector<std::pair<std::string, std::string>> readonly_binds;  // host path -> sandbox path
};

class TemplateStore {
 public:
  // Templates live under `root`; new ones are assembled in `staging` and
  // renamed into place, so a crash never leaves a half-built template.
  TemplateStore(std::string root, std::string staging, std::string busybox_path = "/bin/busybox")
      : root_(std::move(root)), staging_(std::move(staging)), busybox_(std::move(busybox_path)) {}

  // The template `name`, building a built-in one on first use. Thread-safe;
  // concurrent first uses build once.
  Result<Template> Get(const std::string& name);

 private:
  Status BuildHost(const std::string& layer);
  Status BuildBusybox(const std::string& layer);

  std::string root_, staging_, busybox_;
  std::mutex mu_;  // guards cache_ and building
  std::map<std::string, Template> cache_;
};

}  // namespace paddock
