// Templates: what a sandbox's root filesystem is made of. A template is an
// ordered list of read-only layers plus read-only binds of host folders.
// Built-in: `host` (the host's /usr read-only, a synthesized /etc with no host
// secrets) and `busybox` (Debian's static busybox). Any other name is an
// image reference (or id), pulled into the ImageStore on first use.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "image/image_store.h"
#include "sandbox/run_config.h"

namespace paddock {

struct Template {
  std::string name;
  std::vector<std::string> layers;  // host folders, top-most first
  std::vector<std::pair<std::string, std::string>> readonly_binds;  // host path -> sandbox path
  std::string image_id;                                  // empty for built-ins
  std::string snapshot_id;                               // the top layer is this snapshot's
  std::shared_ptr<const image::ImageConfig> config;      // the image's defaults; null for built-ins
  std::shared_ptr<const RunConfig> run;                  // a built template's; null otherwise
};

class TemplateStore {
 public:
  // Templates live under `root`; new ones are assembled in `staging` and
  // renamed into place, so a crash never leaves a half-built template.
  TemplateStore(std::string root, std::string staging, std::string busybox_path = "/bin/busybox")
      : root_(std::move(root)), staging_(std::move(staging)), busybox_(std::move(busybox_path)) {}

  // Images resolve through `images` (not owned); without it only the
  // built-ins exist.
  void SetImages(image::ImageStore* images) { images_ = images; }

  // The template `name`, building a built-in one on first use, pulling an
  // image that is not here yet. Thread-safe; concurrent first uses build
  // (or pull) once. An image's template is named by the normalised form of
  // `name` (by its first ref when `name` is an id).
  Result<Template> Get(const std::string& name);
  // The template of the local image `id`; never pulls.
  Result<Template> ForImage(const std::string& id);
  // Whether Get(name) would find it here: a built-in or a local image.
  bool Has(const std::string& name) const;

 private:
  Template FromImage(const image::Image& img, std::string name) const;
  Status BuildHost(const std::string& layer);
  Status BuildBusybox(const std::string& layer);

  std::string root_, staging_, busybox_;
  image::ImageStore* images_ = nullptr;
  std::mutex mu_;  // guards cache_ and building
  std::map<std::string, Template> cache_;
};

}  // namespace paddock
