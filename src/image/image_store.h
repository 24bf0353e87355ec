// ImageStore: the images this host holds. Pulls from registries (references
// resolved to one manifest for this host's platform), keeps the records in
// the Store (SQLite) and the layers in a LayerStore, and answers which
// folders a sandbox of an image stacks.
//
// Concurrent pulls of one reference are done once (a lock per reference:
// the others wait, then find the image); concurrent pulls of one layer by
// different images are too (a lock per chain id). A failed pull stores no
// record and no half layer; a download broken by the network or by a
// restart of paddockd is resumed by the next pull (a range request).
//
// Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "image/credentials.h"
#include "image/layer_store.h"
#include "image/manifest.h"
#include "image/reference.h"
#include "image/registry.h"
#include "store/store.h"

namespace paddock::image {

struct ImageLayer {
  std::string digest;  // the blob as the registry stores it
  int64_t size = 0;
  std::string media_type;
  std::string diff_id;   // of the uncompressed tar
  std::string chain_id;  // names its folder
};

struct Image {
  std::string id;  // the config's digest
  std::string manifest_digest;
  std::vector<std::string> refs;
  ImageConfig config;
  std::vector<ImageLayer> layers;  // bottom first
  int64_t size = 0;
  int64_t created_at_ms = 0, last_used_ms = 0;
};

enum class LayerState { kWaiting, kDownloading, kVerifying, kExtracting, kDone, kCached };
const char* LayerStateName(LayerState s);

// One step of a pull, for progress displays. `digest` is a layer's blob
// digest; `current`/`total` are bytes while downloading.
struct PullEvent {
  std::string digest;
  LayerState state = LayerState::kWaiting;
  int64_t current = 0, total = 0;
};
// Called from the pulling threads, one call at a time.
using PullProgress = std::function<void(const PullEvent&)>;

struct ImageStoreOptions {
  std::string root;  // <state>/images
  RegistryOptions registry;
  int parallel_layers = 4;  // layers downloaded and extracted at once
  Platform platform = HostPlatform();
};

struct PruneReport {
  int images = 0;
  int layers = 0;
};

class ImageStore {
 public:
  // Opens the layer store, loads the records and removes layer folders no
  // record names (what a crash mid-pull left); partial downloads stay, to
  // be resumed.
  static Result<std::unique_ptr<ImageStore>> Open(ImageStoreOptions opts,
                                                  std::shared_ptr<Store> store);

  // Pulls `ref` (always asks the registry: a tag may have moved), as
  // `creds`, else as the registry's stored login, else anonymously.
  Result<Image> Pull(const std::string& ref, const PullProgress& progress = nullptr,
                     const std::optional<Credentials>& creds = std::nullopt);
  // The local image named by a reference, an id ("sha256:…") or an id
  // prefix of at least 12 hex digits; kNotFound otherwise.
  Result<Image> Find(const std::string& ref_or_id) const;
  // Imports every image of the archive at `path`: a `docker save` tarball
  // (legacy manifest.json, or the OCI form of Docker 25+) or an OCI archive
  // (an OCI layout, tarred). `ref`, if given, names the image (the archive
  // must then hold one); else the archive's own names are used (an OCI
  // layout's bare tags are refused without `ref`). Every blob and diff id
  // is verified; a bad archive stores nothing (kInvalidArgument).
  Result<std::vector<Image>> Import(const std::string& path, const std::string& ref);

  // Find, else Pull (as a create does).
  Result<Image> Ensure(const std::string& ref);
  std::vector<Image> List() const;

  // Removes a reference; the image goes with its last one (or at once when
  // named by id). `in_use(id)` true: kFailedPrecondition, nothing removed.
  // Layers no image names any more are removed too.
  Status Remove(const std::string& ref_or_id,
                const std::function<bool(const std::string&)>& in_use);
  // Removes every image for which `in_use(id)` is false, then layers and
  // partial downloads nothing names.
  Result<PruneReport> Prune(const std::function<bool(const std::string&)>& in_use);
  // Checks `creds` against `registry` and stores them for its pulls; a
  // registry is named as in references ("docker.io", "127.0.0.1:5000").
  // Returns the registry's normalised name.
  Result<std::string> Login(const std::string& registry, const Credentials& creds);
  Status Logout(const std::string& registry);
  std::vector<std::string> Logins() const { return logins_->Registries(); }

  // Records that a sandbox was created from the image (in the store at most
  // once a minute; in memory every time).
  void Touch(const std::string& id);

  // The most layers a sandbox's root stacks: deeper images have their bottom
  // layers merged into one folder at pull (each stacked layer costs every
  // create a mount step; the kernel stacks 500 at most).
  static constexpr size_t kMaxStackedLayers = 128;
  // The folders a sandbox of `image` stacks, top-most first.
  std::vector<std::string> LayerDirs(const Image& image) const;
  const RegistryClient& registry() const { return registry_; }

 private:
  ImageStore(ImageStoreOptions opts, std::shared_ptr<Store> store, LayerStore layers,
             std::unique_ptr<CredentialStore> logins);
  Result<Image> PullLocked(const Remote& remote, const PullProgress& progress);
  Status FetchLayers(const Remote& remote, const std::vector<ImageLayer>& layers,
                     const PullProgress& progress);
  Remote RemoteFor(const ImageRef& ref, const std::optional<Credentials>& creds) const;
  Status Save(const Image& image, const std::string& config_json);
  // Merges the bottom layers of an image deeper than kMaxStackedLayers.
  Status FlattenIfDeep(const Image& image);
  // Registers img's layers as in flight (never swept), runs `fill` to put
  // them in place, merges a deep image's bottom layers, syncs and saves the
  // record; on failure, sweeps what it left that nothing names.
  Status Commit(const Image& img, const std::string& config_json,
                const std::function<Status()>& fill);
  // The layer store keys an image holds on to: chain ids and a flat folder's.
  static std::vector<std::string> KeepKeys(const Image& img);
  Result<Image> FindLocked(const std::string& ref_or_id) const;  // requires mu_
  std::set<std::string> ChainIdsInUse() const;                   // requires mu_: every KeepKeys
  std::shared_ptr<std::mutex> LockFor(const std::string& key);

  ImageStoreOptions opts_;
  std::shared_ptr<Store> store_;
  LayerStore layers_;
  RegistryClient registry_;
  std::unique_ptr<CredentialStore> logins_;  // <root>/auth.json

  mutable std::mutex mu_;  // guards images_, refs_, locks_; never held during I/O but the store's
  std::map<std::string, Image> images_;                     // by id
  std::map<std::string, std::string> refs_;                 // normalised ref -> id
  std::map<std::string, std::weak_ptr<std::mutex>> locks_;  // per ref, per blob and per chain id
  std::multiset<std::string> pulling_;  // KeepKeys of pulls and imports in flight: never swept
};

}  // namespace paddock::image
