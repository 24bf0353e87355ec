// Content digests ("sha256:<64 hex>") and a streaming SHA-256 (OpenSSL).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace paddock::image {

// True for "sha256:" followed by 64 lowercase hex digits (the only
// algorithm Paddock accepts: every registry and image serves it).
bool ValidDigest(std::string_view digest);
// The 64 hex digits of a valid digest.
inline std::string DigestHex(std::string_view digest) { return std::string(digest.substr(7)); }

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void Update(const void* data, size_t size);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  // "sha256:<hex>" of everything given; the hasher starts over afterwards.
  std::string Digest();

  static std::string Of(std::string_view data);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// The chain ids of a stack of layers, bottom first: the first is its diff id,
// each next one sha256("<previous chain id> <diff id>") (image-spec config.md).
std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids);

}  // namespace paddock::image
