#include "image/image_store.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "base/fd.h"
#include "base/fs.h"
#include "image/digest.h"

namespace paddock::image {

using nlohmann::json;

const char* LayerStateName(LayerState s) {
  switch (s) {
    case LayerState::kWaiting:
      return "waiting";
    case LayerState::kDownloading:
      return "downloading";
    case LayerState::kVerifying:
      return "verifying";
    case LayerState::kExtracting:
      return "extracting";
    case LayerState::kDone:
      return "done";
    case LayerState::kCached:
      return "cached";
  }
  return "waiting";
}

namespace {

json LayersToJson(const std::vector<ImageLayer>& layers) {
  json all = json::array();
  for (const auto& l : layers)
    all.push_back({{"digest", l.digest},
                   {"size", l.size},
                   {"media_type", l.media_type},
                   {"diff_id", l.diff_id},
                   {"chain_id", l.chain_id}});
  return all;
}

Result<Image> FromRecord(const ImageRecord& r) {
  Image img;
  img.id = r.id;
  img.manifest_digest = r.manifest_digest;
  img.refs = r.refs;
  img.size = r.size;
  img.created_at_ms = r.created_at_ms;
  img.last_used_ms = r.last_used_ms;
  PDK_ASSIGN_OR_RETURN(img.config, ParseConfig(json::parse(r.config, nullptr, false)));
  json layers = json::parse(r.layers, nullptr, false);
  if (!layers.is_array()) return Internal("image " + r.id + " has a malformed layer list");
  for (const auto& l : layers)
    img.layers.push_back({l.value("digest", ""), l.value("size", int64_t{0}),
                          l.value("media_type", ""), l.value("diff_id", ""),
                          l.value("chain_id", "")});
  return img;
}

int64_t NowMillis() { return WallClockMillis(); }

// A download is reported every this many bytes (and at its end).
constexpr int64_t kProgressStep = 1 << 20;

}  // namespace

ImageStore::ImageStore(ImageStoreOptions opts, std::shared_ptr<Store> store, LayerStore layers,
                       std::unique_ptr<CredentialStore> logins)
    : opts_(std::move(opts)),
      store_(std::move(store)),
      layers_(std::move(layers)),
      registry_(opts_.registry),
      logins_(std::move(logins)) {}

Result<std::unique_ptr<ImageStore>> ImageStore::Open(ImageStoreOptions opts,
                                                     std::shared_ptr<Store> store) {
  PDK_ASSIGN_OR_RETURN(LayerStore layers, LayerStore::Open(opts.root));
  PDK_ASSIGN_OR_RETURN(auto logins, CredentialStore::Open(opts.root + "/auth.json"));
  std::unique_ptr<ImageStore> s(
      new ImageStore(std::move(opts), std::move(store), std::move(layers), std::move(logins)));
  PDK_ASSIGN_OR_RETURN(std::vector<ImageRecord> records, s->store_->ListImages());
  for (const auto& r : records) {
    auto img = FromRecord(r);
    if (!img.ok()) return img.status().Annotate("loading image " + r.id);
    for (const auto& ref : img->refs) s->refs_[ref] = img->id;
    s->images_[img->id] = std::move(*img);
  }
  // What a crash mid-pull left: layers no record names. Partial downloads
  // stay for the next pull of their blob to resume (prune removes them).
  s->layers_.Sweep(s->ChainIdsInUse(), false);
  return s;
}

std::shared_ptr<std::mutex> ImageStore::LockFor(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& weak = locks_[key];
  auto strong = weak.lock();
  if (!strong) {
    strong = std::make_shared<std::mutex>();
    weak = strong;
  }
  // Forget the locks nobody holds any more.
  for (auto it = locks_.begin(); it != locks_.end();)
    it = it->second.expired() ? locks_.erase(it) : std::next(it);
  return strong;
}

namespace {

// How many of an image's bottom layers are merged into one folder (0: none).
size_t FlattenedLayers(const Image& img) {
  return img.layers.size() > ImageStore::kMaxStackedLayers
             ? img.layers.size() - (ImageStore::kMaxStackedLayers - 1)
             : 0;
}

}  // namespace

std::vector<std::string> ImageStore::KeepKeys(const Image& img) {
  std::vector<std::string> keys;
  for (const auto& l : img.layers) keys.push_back(l.chain_id);
  if (size_t flat = FlattenedLayers(img))
    keys.push_back(LayerStore::FlatKey(img.layers[flat - 1].chain_id));
  return keys;
}

std::set<std::string> ImageStore::ChainIdsInUse() const {
  std::set<std::string> keep(pulling_.begin(), pulling_.end());
  for (const auto& [id, img] : images_)
    for (auto& k : KeepKeys(img)) keep.insert(std::move(k));
  return keep;
}

Status ImageStore::FlattenIfDeep(const Image& img) {
  size_t flat = FlattenedLayers(img);
  if (flat == 0) return Status::Ok();
  std::vector<std::string> chains;
  for (size_t i = 0; i < flat; ++i) chains.push_back(img.layers[i].chain_id);
  auto lock = LockFor("flat:" + chains.back());
  std::lock_guard<std::mutex> g(*lock);
  return layers_.Flatten(chains);
}

Result<Image> ImageStore::FindLocked(const std::string& text) const {
  if (ValidDigest(text)) {
    if (auto it = images_.find(text); it != images_.end()) return it->second;
  }
  std::string hex = text.rfind("sha256:", 0) == 0 ? text.substr(7) : text;
  if (hex.size() >= 12 && hex.size() <= 64 &&
      hex.find_first_not_of("0123456789abcdef") == std::string::npos) {
    const Image* match = nullptr;
    for (const auto& [id, img] : images_)
      if (id.compare(7, hex.size(), hex) == 0) {
        if (match)
          return InvalidArgument("image id prefix '" + text + "' names more than one image");
        match = &img;
      }
    if (match) return *match;
  }
  auto ref = ImageRef::Parse(text);
  if (ref.ok()) {
    if (auto it = refs_.find(ref->String()); it != refs_.end()) return images_.at(it->second);
    if (!ref->digest.empty())  // name@digest of an image pulled by tag
      for (const auto& [id, img] : images_)
        if (img.manifest_digest == ref->digest)
          for (const auto& r : img.refs)
            if (r.rfind(ref->Name() + ":", 0) == 0 || r.rfind(ref->Name() + "@", 0) == 0)
              return img;
  }
  return NotFound("image '" + text + "' is not on this host" +
                  (ref.ok() ? " (paddock image pull " + ref->String() + ")" : ""));
}

Result<Image> ImageStore::Find(const std::string& ref_or_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return FindLocked(ref_or_id);
}

std::vector<Image> ImageStore::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Image> out;
  for (const auto& [id, img] : images_) out.push_back(img);
  std::sort(out.begin(), out.end(),
            [](const Image& a, const Image& b) { return a.created_at_ms < b.created_at_ms; });
  return out;
}

Remote ImageStore::RemoteFor(const ImageRef& ref, const std::optional<Credentials>& creds) const {
  return Remote{ref, creds ? creds : logins_->Get(ref.registry)};
}

Result<Image> ImageStore::Pull(const std::string& text, const PullProgress& progress,
                               const std::optional<Credentials>& creds) {
  PDK_ASSIGN_OR_RETURN(ImageRef ref, ImageRef::Parse(text));
  auto lock = LockFor("ref:" + ref.String());
  std::lock_guard<std::mutex> g(*lock);
  return PullLocked(RemoteFor(ref, creds), progress);
}

Result<std::string> ImageStore::Login(const std::string& registry, const Credentials& creds) {
  PDK_ASSIGN_OR_RETURN(std::string name, NormalizeRegistry(registry));
  if (creds.username.empty()) return InvalidArgument("a login needs a user name");
  PDK_TRY(registry_.CheckLogin(name, creds));
  PDK_TRY(logins_->Set(name, creds));
  return name;
}

Status ImageStore::Logout(const std::string& registry) {
  PDK_ASSIGN_OR_RETURN(std::string name, NormalizeRegistry(registry));
  return logins_->Remove(name);
}

Result<Image> ImageStore::Ensure(const std::string& text) {
  if (auto found = Find(text); found.ok()) return found;
  PDK_ASSIGN_OR_RETURN(ImageRef ref, ImageRef::Parse(text));
  auto lock = LockFor("ref:" + ref.String());
  std::lock_guard<std::mutex> g(*lock);
  if (auto found = Find(ref.String()); found.ok()) return found;  // pulled while this waited
  return PullLocked(RemoteFor(ref, std::nullopt), nullptr);
}

Result<Image> ImageStore::PullLocked(const Remote& remote, const PullProgress& progress) {
  const ImageRef& ref = remote.ref;
  auto parse = [&](const FetchedManifest& m) -> Result<json> {
    json j = json::parse(m.body, nullptr, false);
    if (j.is_discarded())
      return DataLoss("registry " + ref.registry + " served a manifest that is not JSON");
    return j;
  };
  PDK_ASSIGN_OR_RETURN(FetchedManifest fetched,
                       registry_.GetManifest(remote, ref.ManifestReference()));
  PDK_ASSIGN_OR_RETURN(json body, parse(fetched));
  if (IsIndex(fetched.media_type, body)) {
    PDK_ASSIGN_OR_RETURN(std::vector<Descriptor> entries, ParseIndex(body));
    auto entry = SelectPlatform(entries, opts_.platform);
    if (!entry.ok()) return entry.status().Annotate(ref.String());
    PDK_ASSIGN_OR_RETURN(fetched, registry_.GetManifest(remote, entry->digest));
    PDK_ASSIGN_OR_RETURN(body, parse(fetched));
    if (IsIndex(fetched.media_type, body))
      return Unimplemented(ref.String() + ": an index whose entry for " + opts_.platform.String() +
                           " is another index");
  }
  PDK_ASSIGN_OR_RETURN(Manifest manifest, ParseManifest(fetched.media_type, body));
  std::string name = ref.String();

  {  // Known already (another tag, or the same one unchanged): only the ref is new.
    std::unique_lock<std::mutex> lock(mu_);
    auto it = images_.find(manifest.config.digest);
    bool complete = it != images_.end();
    if (complete)
      for (const auto& l : it->second.layers) complete = complete && layers_.Has(l.chain_id);
    if (complete) {
      Image img = it->second;
      lock.unlock();
      if (progress)
        for (const auto& l : img.layers) progress({l.digest, LayerState::kCached, l.size, l.size});
      if (std::find(img.refs.begin(), img.refs.end(), name) == img.refs.end())
        img.refs.push_back(name);
      PDK_TRY(Save(img, ""));
      return Find(img.id);
    }
  }

  PDK_ASSIGN_OR_RETURN(std::string config_json, registry_.GetBlob(remote, manifest.config));
  PDK_ASSIGN_OR_RETURN(ImageConfig config, ParseConfig(json::parse(config_json, nullptr, false)));
  if (config.diff_ids.size() != manifest.layers.size())
    return DataLoss(name + ": the manifest lists " + std::to_string(manifest.layers.size()) +
                    " layers but the config " + std::to_string(config.diff_ids.size()) +
                    " diff ids");
  if ((!config.platform.os.empty() && config.platform.os != opts_.platform.os) ||
      (!config.platform.architecture.empty() &&
       config.platform.architecture != opts_.platform.architecture))
    return FailedPrecondition(name + " is an image for " + config.platform.String() +
                              "; this host runs " + opts_.platform.String());
  Image img;
  img.id = manifest.config.digest;
  img.manifest_digest = fetched.digest;
  img.refs = {name};
  img.config = config;
  img.size = manifest.config.size;
  img.created_at_ms = NowMillis();
  std::vector<std::string> chains = ChainIds(config.diff_ids);
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    const Layer& l = manifest.layers[i];
    img.layers.push_back(
        {l.blob.digest, l.blob.size, l.blob.media_type, config.diff_ids[i], chains[i]});
    img.size += l.blob.size;
  }
  PDK_TRY(Commit(img, config_json, [&] { return FetchLayers(remote, img.layers, progress); }));
  return Find(img.id);
}

Status ImageStore::FetchLayers(const Remote& remote, const std::vector<ImageLayer>& layers,
                               const PullProgress& progress) {
  std::mutex progress_mu;
  auto emit = [&](const PullEvent& e) {
    if (!progress) return;
    std::lock_guard<std::mutex> lock(progress_mu);
    progress(e);
  };
  std::vector<const ImageLayer*> todo;
  for (const auto& l : layers) {
    if (layers_.Has(l.chain_id)) {
      emit({l.digest, LayerState::kCached, l.size, l.size});
    } else {
      emit({l.digest, LayerState::kWaiting, 0, l.size});
      todo.push_back(&l);
    }
  }
  std::atomic<size_t> next{0};
  std::mutex error_mu;
  Status first_error;
  auto fetch_one = [&](const ImageLayer& l) -> Status {
    // One download per blob and one extraction per chain id, whoever asks.
    auto blob_lock = LockFor("blob:" + l.digest);
    std::lock_guard<std::mutex> bg(*blob_lock);
    auto chain_lock = LockFor("layer:" + l.chain_id);
    std::lock_guard<std::mutex> cg(*chain_lock);
    if (layers_.Has(l.chain_id)) {
      emit({l.digest, LayerState::kCached, l.size, l.size});
      return Status::Ok();
    }
    std::string partial = layers_.PartialBlob(l.digest);
    Descriptor d;
    d.digest = l.digest;
    d.size = l.size;
    d.media_type = l.media_type;
    emit({l.digest, LayerState::kDownloading, 0, l.size});
    int64_t reported = 0;
    Status s = registry_.DownloadBlob(remote, d, partial, [&](int64_t n) {
      if (n - reported >= kProgressStep || n == l.size) {
        reported = n;
        emit({l.digest, LayerState::kDownloading, n, l.size});
      }
    });
    if (!s.ok()) {
      // A broken connection leaves the bytes for the next pull to resume from.
      if (s.code() != StatusCode::kUnavailable) ::unlink(partial.c_str());
      return s;
    }
    emit({l.digest, LayerState::kVerifying, l.size, l.size});
    emit({l.digest, LayerState::kExtracting, l.size, l.size});
    s = layers_.Extract(partial, l.diff_id, l.chain_id);
    ::unlink(partial.c_str());  // extracted, or not worth keeping
    if (s.ok()) emit({l.digest, LayerState::kDone, l.size, l.size});
    return s;
  };
  auto worker = [&] {
    for (size_t k = next++; k < todo.size(); k = next++) {
      {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!first_error.ok()) return;
      }
      Status s = fetch_one(*todo[k]);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (first_error.ok()) first_error = s;
      }
    }
  };
  size_t n = std::min<size_t>(std::max(1, opts_.parallel_layers), todo.size());
  std::vector<std::thread> threads;
  for (size_t i = 1; i < n; ++i) threads.emplace_back(worker);
  if (n > 0) worker();
  for (auto& t : threads) t.join();
  return first_error;
}

namespace {

// A file of an unpacked archive by its path there; symlinks may be followed
// but never out of `root`.
Result<std::string> ArchiveFile(const std::string& root, const std::string& rel, size_t cap = 0) {
  if (rel.empty() || rel[0] == '/' || rel.find("..") != std::string::npos)
    return InvalidArgument("the archive names a file outside itself: '" + rel + "'");
  char real[PATH_MAX], base[PATH_MAX];
  if (!::realpath((root + "/" + rel).c_str(), real) || !::realpath(root.c_str(), base))
    return InvalidArgument("the archive lacks " + rel);
  std::string r = real;
  if (r.rfind(std::string(base) + "/", 0) != 0)
    return InvalidArgument("the archive's " + rel + " links outside it");
  struct stat st;
  if (::stat(r.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return InvalidArgument("the archive's " + rel + " is not a file");
  if (cap && static_cast<size_t>(st.st_size) > cap)
    return InvalidArgument("the archive's " + rel + " is over the " + std::to_string(cap) +
                           "-byte cap");
  return r;
}

Result<json> ArchiveJson(const std::string& root, const std::string& rel, size_t cap) {
  PDK_ASSIGN_OR_RETURN(std::string path, ArchiveFile(root, rel, cap));
  PDK_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return InvalidArgument("the archive's " + rel + " is not JSON");
  return j;
}

std::string FileDigest(const std::string& path) {
  Sha256 h;
  std::vector<char> buf(1 << 20);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ssize_t n;
  while (fd && (n = ::read(fd.get(), buf.data(), buf.size())) > 0)
    h.Update(buf.data(), static_cast<size_t>(n));
  return h.Digest();
}

}  // namespace

Status ImageStore::Commit(const Image& img, const std::string& config_json,
                          const std::function<Status()>& fill) {
  std::vector<std::string> keys = KeepKeys(img);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& k : keys) pulling_.insert(k);
  }
  Status s = fill();
  if (s.ok()) s = FlattenIfDeep(img);
  if (s.ok()) s = layers_.Sync();
  if (s.ok()) s = Save(img, config_json);
  std::set<std::string> keep;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& k : keys) pulling_.erase(pulling_.find(k));
    keep = ChainIdsInUse();
  }
  if (!s.ok()) layers_.Sweep(keep, false);  // what this left that nothing names
  return s;
}

Result<std::vector<Image>> ImageStore::Import(const std::string& path,
                                              const std::string& ref_text) {
  std::optional<ImageRef> given;
  if (!ref_text.empty()) {
    PDK_ASSIGN_OR_RETURN(ImageRef r, ImageRef::Parse(ref_text));
    given = r;
  }
  PDK_ASSIGN_OR_RETURN(std::string dir, layers_.Scratch("import"));
  // Leaves nothing in staging; a corrupt archive is the caller's bad input.
  auto done = [&](Status s) {
    (void)RemoveTree(dir);
    return s.code() == StatusCode::kDataLoss ? InvalidArgument(s.message()) : s;
  };
  if (Status s = LayerStore::UnpackArchive(path, dir); !s.ok()) return done(s);

  // Each image of the archive: its config, its layers' files and its names.
  struct Found {
    std::string config_path, config_digest, manifest_digest;
    std::vector<std::string> blobs, blob_digests, media_types;
    std::vector<std::string> names;
  };
  std::vector<Found> found;
  auto blob = [&](const std::string& digest) -> Result<std::string> {
    if (!ValidDigest(digest))
      return InvalidArgument("the archive names a blob by '" + digest + "'");
    return ArchiveFile(dir, "blobs/sha256/" + DigestHex(digest));
  };
  if (PathExists(dir + "/index.json")) {  // an OCI layout
    auto index = ArchiveJson(dir, "index.json", kMaxManifestBytes);
    if (!index.ok()) return done(index.status());
    auto entries = ParseIndex(*index);
    if (!entries.ok()) return done(entries.status());
    for (const auto& raw : (*index)["manifests"]) {
      auto d = [&]() -> Result<Found> {
        Found f;
        std::string digest = raw.value("digest", "");
        PDK_ASSIGN_OR_RETURN(std::string mpath, blob(digest));
        if (FileDigest(mpath) != digest)
          return InvalidArgument("the archive's manifest " + digest + " fails its digest");
        PDK_ASSIGN_OR_RETURN(std::string mtext, ReadFile(mpath));
        json body = json::parse(mtext, nullptr, false);
        std::string type = raw.value("mediaType", "");
        if (IsIndex(type, body)) {  // a multi-platform image: this host's entry
          PDK_ASSIGN_OR_RETURN(auto sub, ParseIndex(body));
          PDK_ASSIGN_OR_RETURN(Descriptor mine, SelectPlatform(sub, opts_.platform));
          digest = mine.digest;
          type = mine.media_type;
          PDK_ASSIGN_OR_RETURN(mpath, blob(digest));
          if (FileDigest(mpath) != digest)
            return InvalidArgument("the archive's manifest " + digest + " fails its digest");
          PDK_ASSIGN_OR_RETURN(mtext, ReadFile(mpath));
          body = json::parse(mtext, nullptr, false);
        }
        PDK_ASSIGN_OR_RETURN(Manifest m, ParseManifest(type, body));
        f.manifest_digest = digest;
        f.config_digest = m.config.digest;
        PDK_ASSIGN_OR_RETURN(f.config_path, blob(m.config.digest));
        for (const auto& l : m.layers) {
          PDK_ASSIGN_OR_RETURN(std::string p, blob(l.blob.digest));
          if (FileDigest(p) != l.blob.digest)
            return InvalidArgument("the archive's layer " + l.blob.digest + " fails its digest");
          f.blobs.push_back(p);
          f.blob_digests.push_back(l.blob.digest);
          f.media_types.push_back(l.blob.media_type);
        }
        const json& ann = raw.value("annotations", json::object());
        for (const char* key : {"io.containerd.image.name", "org.opencontainers.image.ref.name"})
          if (ann.contains(key) && ann[key].is_string())
            f.names.push_back(ann[key].get<std::string>());
        return f;
      }();
      if (!d.ok()) return done(d.status());
      found.push_back(std::move(*d));
    }
  } else if (PathExists(dir + "/manifest.json")) {  // docker save, legacy form
    auto manifest = ArchiveJson(dir, "manifest.json", kMaxManifestBytes);
    if (!manifest.ok()) return done(manifest.status());
    if (!manifest->is_array())
      return done(InvalidArgument("the archive's manifest.json is not a list"));
    for (const auto& e : *manifest) {
      Found f;
      auto cfg = ArchiveFile(dir, e.value("Config", ""), kMaxConfigBytes);
      if (!cfg.ok()) return done(cfg.status());
      f.config_path = *cfg;
      f.config_digest = FileDigest(*cfg);
      for (const auto& l : e.value("Layers", json::array())) {
        auto p = ArchiveFile(dir, l.is_string() ? l.get<std::string>() : "");
        if (!p.ok()) return done(p.status());
        f.blobs.push_back(*p);
        f.blob_digests.push_back(FileDigest(*p));
        f.media_types.push_back("application/vnd.docker.image.rootfs.diff.tar");
      }
      for (const auto& t : e.value("RepoTags", json::array()))
        if (t.is_string()) f.names.push_back(t.get<std::string>());
      found.push_back(std::move(f));
    }
  } else {
    return done(InvalidArgument(
        "the archive is neither an OCI layout (index.json) nor a docker save (manifest.json)"));
  }
  if (found.empty()) return done(InvalidArgument("the archive holds no image"));
  if (given && found.size() > 1)
    return done(InvalidArgument("the archive holds " + std::to_string(found.size()) +
                                " images; a ref names one"));

  std::vector<Image> out;
  for (auto& f : found) {
    Image img;
    auto config_text = ReadFile(f.config_path);
    if (!config_text.ok()) return done(config_text.status());
    if (Sha256::Of(*config_text) != f.config_digest)
      return done(InvalidArgument("the archive's config " + f.config_digest + " fails its digest"));
    auto config = ParseConfig(json::parse(*config_text, nullptr, false));
    if (!config.ok()) return done(config.status());
    if (config->diff_ids.size() != f.blobs.size())
      return done(InvalidArgument("the archive's image lists " + std::to_string(f.blobs.size()) +
                                  " layers but its config " +
                                  std::to_string(config->diff_ids.size()) + " diff ids"));
    img.id = f.config_digest;
    img.manifest_digest = f.manifest_digest;
    img.config = *config;
    img.created_at_ms = NowMillis();
    img.size = static_cast<int64_t>(config_text->size());
    std::vector<std::string> chains = ChainIds(config->diff_ids);
    for (size_t i = 0; i < f.blobs.size(); ++i) {
      struct stat st;
      int64_t size = ::stat(f.blobs[i].c_str(), &st) == 0 ? st.st_size : 0;
      img.layers.push_back(
          {f.blob_digests[i], size, f.media_types[i], config->diff_ids[i], chains[i]});
      img.size += size;
    }
    if (given) {
      img.refs = {given->String()};
    } else {
      for (const auto& n : f.names) {
        if (n.find('/') == std::string::npos && n.find(':') == std::string::npos &&
            n.find('@') == std::string::npos)
          return done(InvalidArgument("the archive names its image only '" + n +
                                      "', a tag without a repository; "
                                      "give the ref to import it as"));
        auto r = ImageRef::Parse(n);
        if (!r.ok()) return done(r.status());
        img.refs.push_back(r->String());
      }
    }
    if (auto known = Find(img.id); known.ok())  // keep the refs it has
      for (const auto& r : known->refs)
        if (std::find(img.refs.begin(), img.refs.end(), r) == img.refs.end()) img.refs.push_back(r);
    Status s = Commit(img, *config_text, [&]() -> Status {
      for (size_t i = 0; i < img.layers.size(); ++i) {
        const ImageLayer& l = img.layers[i];
        auto chain_lock = LockFor("layer:" + l.chain_id);
        std::lock_guard<std::mutex> g(*chain_lock);
        if (!layers_.Has(l.chain_id)) PDK_TRY(layers_.Extract(f.blobs[i], l.diff_id, l.chain_id));
      }
      return Status::Ok();
    });
    if (!s.ok()) return done(s);
    auto stored = Find(img.id);
    if (!stored.ok()) return done(stored.status());
    out.push_back(*stored);
  }
  (void)done(Status::Ok());
  return out;
}

Status ImageStore::Save(const Image& image, const std::string& config_json) {
  ImageRecord r;
  r.id = image.id;
  r.manifest_digest = image.manifest_digest;
  r.config = config_json;  // empty: a known image, whose stored config stays
  r.layers = LayersToJson(image.layers).dump();
  r.size = image.size;
  r.created_at_ms = image.created_at_ms;
  r.last_used_ms = image.last_used_ms;
  r.refs = image.refs;
  PDK_TRY(store_->PutImage(r));
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& ref : image.refs) {
    auto old = refs_.find(ref);
    if (old != refs_.end() && old->second != image.id) {  // the ref moved here
      auto& refs = images_[old->second].refs;
      refs.erase(std::remove(refs.begin(), refs.end(), ref), refs.end());
    }
    refs_[ref] = image.id;
  }
  images_[image.id] = image;
  return Status::Ok();
}

Status ImageStore::Remove(const std::string& ref_or_id,
                          const std::function<bool(const std::string&)>& in_use) {
  std::set<std::string> keep;
  {
    std::lock_guard<std::mutex> lock(mu_);
    PDK_ASSIGN_OR_RETURN(Image img, FindLocked(ref_or_id));
    auto ref = ImageRef::Parse(ref_or_id);
    std::string name = ref.ok() ? ref->String() : "";
    bool by_ref = ref.ok() && refs_.count(name) && refs_[name] == img.id;
    if (by_ref && img.refs.size() > 1) {  // untag: other refs still name it
      PDK_TRY(store_->RemoveImageRef(name));
      refs_.erase(name);
      auto& refs = images_[img.id].refs;
      refs.erase(std::remove(refs.begin(), refs.end(), name), refs.end());
      return Status::Ok();
    }
    if (in_use && in_use(img.id))
      return FailedPrecondition("image " + (img.refs.empty() ? img.id : img.refs.front()) +
                                " is used by a sandbox or a snapshot; remove those first");
    PDK_TRY(store_->RemoveImage(img.id));
    for (const auto& r : img.refs) refs_.erase(r);
    images_.erase(img.id);
    keep = ChainIdsInUse();
  }
  layers_.Sweep(keep, false);
  return Status::Ok();
}

Result<PruneReport> ImageStore::Prune(const std::function<bool(const std::string&)>& in_use) {
  PruneReport report;
  std::set<std::string> keep;
  bool pulling;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> unused;
    for (const auto& [id, img] : images_)
      if (!in_use || !in_use(id)) unused.push_back(id);
    for (const auto& id : unused) {
      PDK_TRY(store_->RemoveImage(id));
      for (const auto& r : images_[id].refs) refs_.erase(r);
      images_.erase(id);
      ++report.images;
    }
    keep = ChainIdsInUse();
    pulling = !pulling_.empty();
  }
  report.layers = layers_.Sweep(keep, !pulling);
  return report;
}

void ImageStore::Touch(const std::string& id) {
  constexpr int64_t kPersistEveryMs =
      60000;  // a write per create would cost every create a transaction
  int64_t now = NowMillis();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = images_.find(id);
    if (it == images_.end()) return;
    bool persist = now - it->second.last_used_ms >= kPersistEveryMs;
    it->second.last_used_ms = now;
    if (!persist) return;
  }
  (void)store_->TouchImage(id, now);
}

std::vector<std::string> ImageStore::LayerDirs(const Image& image) const {
  size_t flat = FlattenedLayers(image);
  std::vector<std::string> dirs;
  for (size_t i = image.layers.size(); i > flat; --i)
    dirs.push_back(layers_.Dir(image.layers[i - 1].chain_id));
  if (flat) dirs.push_back(layers_.FlatDir(image.layers[flat - 1].chain_id));
  return dirs;
}

}  // namespace paddock::image
