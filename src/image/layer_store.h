// LayerStore: image layers on disk, each extracted once into a read-only
// folder named by its chain id and shared by every image and sandbox that
// stacks it (as containerd and podman do):
//
//   <root>/layers/<chain id hex>   an extracted layer, in overlayfs form
//   <root>/blobs/<digest hex>.partial   a download in progress (resumable)
//   <root>/staging/                 extractions in progress; emptied at start-up
//
// A layer folder appears by rename only once its diff id was verified, so a
// crash of paddockd never leaves half a layer where a sandbox could use it.
//
// Thread-safe; callers serialise work on one chain id (ImageStore locks it).
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>

#include "base/status.h"

namespace paddock::image {

class LayerStore {
 public:
  // Makes the folders under `root` and empties staging. The root must not
  // be on overlayfs (a layer is a lower directory of sandboxes' overlays).
  static Result<LayerStore> Open(const std::string& root);

  std::string Dir(const std::string& chain_id) const;
  // The folder holding the layers up to and including `chain_id` merged
  // into one (see Flatten).
  std::string FlatDir(const std::string& chain_id) const;
  // Keys for Sweep's `keep`: a layer's chain id, or a flat folder's.
  static std::string FlatKey(const std::string& chain_id) { return "flat:" + chain_id; }
  bool Has(const std::string& chain_id) const;
  std::string PartialBlob(const std::string& digest) const;

  // Extracts the layer blob at `blob` (gzip, zstd or plain tar) into
  // Dir(chain_id). Whiteouts become overlayfs whiteouts (`.wh.NAME` a 0/0
  // character device, `.wh..wh..opq` the trusted.overlay.opaque xattr, in
  // whatever order the tar holds them); owners, modes, times, xattrs and
  // file capabilities are kept; trusted.overlay.* xattrs the tar brings are
  // dropped; device nodes are skipped. Refuses `..`, absolute paths and
  // hardlinks out of the layer, and a stream whose sha256 is not `diff_id`;
  // then nothing is left behind. `progress(bytes)` counts uncompressed bytes.
  Status Extract(const std::string& blob, const std::string& diff_id, const std::string& chain_id,
                 const std::function<void(int64_t)>& progress = nullptr) const;

  // A new, empty folder under staging (removed at the next start-up at the
  // latest); the caller removes it when done.
  Result<std::string> Scratch(const std::string& what) const;
  // Unpacks the tar (any compression) at `archive` into the folder `dir`:
  // folders, regular files (0600) and symlinks, owned by root; refuses
  // '..', absolute paths and hardlinks out of it (kInvalidArgument).
  static Status UnpackArchive(const std::string& archive, const std::string& dir);

  // Merges the extracted layers `chain_ids` (bottom first) into
  // FlatDir(chain_ids.back()), once: their overlay, read-only, copied with
  // owners, modes, times and xattrs (whiteouts and opaque folders applied,
  // so gone). For images deeper than a sandbox's root should stack.
  Status Flatten(const std::vector<std::string>& chain_ids) const;

  // Flushes every extracted layer to disk: callers sync once before a
  // record names new layers (a power loss then never leaves a record over
  // a layer whose files were lost), not once per layer.
  Status Sync() const;

  // Removes every layer folder whose chain id is not in `keep`, and every
  // partial download if `partials`; returns how many layers went.
  int Sweep(const std::set<std::string>& keep, bool partials) const;

 private:
  explicit LayerStore(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

}  // namespace paddock::image
