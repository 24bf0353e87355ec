// Image references as users write them, normalised as Docker does:
// `python:3.12` is `docker.io/library/python:3.12`, `ghcr.io/org/img@sha256:…`
// names a manifest by digest, `127.0.0.1:5000/team/img:v1` a registry on loopback.
#pragma once

#include <string>

#include "base/status.h"

namespace paddock::image {

struct ImageRef {
  std::string registry;    // "docker.io", "ghcr.io", "127.0.0.1:5000"
  std::string repository;  // "library/python", "org/img"
  std::string tag;         // "latest" when neither tag nor digest was given
  std::string digest;      // "sha256:<64 hex>", or empty

  // Parses and normalises `text`; kInvalidArgument naming what is wrong.
  static Result<ImageRef> Parse(const std::string& text);
  // registry/repository[:tag][@digest], the form stored and shown.
  std::string String() const;
  // registry/repository.
  std::string Name() const { return registry + "/" + repository; }
  // The tag, or the digest when one was given: what the manifest URL names.
  const std::string& ManifestReference() const { return digest.empty() ? tag : digest; }
  // The host the API is served on (Docker Hub's is registry-1.docker.io).
  std::string ApiHost() const;
};

// `host[:port]` as references name a registry ("index.docker.io" and
// "registry-1.docker.io" are "docker.io"); kInvalidArgument if it is not one.
Result<std::string> NormalizeRegistry(const std::string& host);

// True for host[:port] on a loopback address (localhost, 127.0.0.0/8, [::1]).
bool IsLoopbackRegistry(const std::string& host);

}  // namespace paddock::image
