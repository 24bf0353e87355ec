// RegistryClient: the pull side of the OCI distribution API (v2) over
// libcurl. Anonymous, Basic and Bearer-token auth (the WWW-Authenticate
// challenge flow, tokens cached per realm, service and scope and fetched
// anew once on a 401); redirects followed by hand, with no Authorization
// sent to another host and never from https down to http; 429 and 503
// retried honouring Retry-After; blobs resumed with ranges and verified
// against their digest and size. Plain HTTP only for loopback registries
// and those the operator listed as insecure.
//
// Thread-safe: each call uses its own connection; the token cache is shared.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "image/manifest.h"
#include "image/reference.h"

namespace paddock::image {

struct Credentials {
  std::string username, password;
};

// A repository to pull from, and as whom.
struct Remote {
  ImageRef ref;
  std::optional<Credentials> creds;  // none: anonymous
};

struct RegistryOptions {
  std::vector<std::string> insecure;  // host:port reached over plain HTTP
  int max_attempts = 5;               // per request, for 429/503 and broken transfers
  int max_backoff_s = 30;
};

struct FetchedManifest {
  std::string media_type;
  std::string digest;  // sha256 of the body, checked against the reference's digest if it had one
  std::string body;
};

class RegistryClient {
 public:
  explicit RegistryClient(RegistryOptions opts);
  ~RegistryClient();

  // The manifest or index `reference` (a tag or a digest) of ref's repository.
  Result<FetchedManifest> GetManifest(const Remote& remote, const std::string& reference);
  // A small blob (an image config) into memory, verified against `d`.
  Result<std::string> GetBlob(const Remote& remote, const Descriptor& d);
  // A blob into `path`, resuming after what `path` already holds (a range
  // request; if the whole then fails its digest, once more from the start);
  // verified against d.digest and d.size, else `path` is removed.
  // `progress(bytes)` is called as bytes arrive.
  Status DownloadBlob(const Remote& remote, const Descriptor& d, const std::string& path,
                      const std::function<void(int64_t)>& progress);
  // Checks that `creds` open `registry` (as `docker login` does): ok, or
  // kUnauthenticated naming the registry.
  Status CheckLogin(const std::string& registry, const Credentials& creds);

  // Requests sent so far (every hop and token fetch), for metrics.
  int64_t requests_sent() const;

  struct Response;  // one HTTP answer (registry.cc)

 private:
  struct Token {
    std::string value;
    int64_t expires_ms = 0;
  };
  // One GET of `url` with auth, redirects and retries; `sink` takes the body
  // of a 2xx answer and returns false to abort. `range_from` > 0 asks for
  // the bytes from there on.
  Result<Response> Get(const Remote& remote, const std::string& url, const std::string& accept,
                       const std::function<bool(const char*, size_t)>& sink, int64_t range_from,
                       const std::function<void()>& on_restart);
  Result<std::string> Authorization(const Remote& remote, bool refresh);
  Result<Token> FetchToken(const Remote& remote, const std::string& realm,
                           const std::string& service, const std::string& scope);
  bool ListedInsecure(const std::string& registry) const;  // named by --insecure-registry
  std::string V2Url(const ImageRef& ref) const;            // scheme://host/v2/
  std::string BaseUrl(const ImageRef& ref) const;          // ... and the repository

  RegistryOptions opts_;
  mutable std::mutex mu_;  // guards challenges_, tokens_, requests_
  struct Challenge {
    std::string scheme;  // "bearer" or "basic"
    std::map<std::string, std::string> params;
  };
  std::map<std::string, Challenge> challenges_;  // by registry
  std::map<std::string, Token> tokens_;          // by realm|service|scope|user
  int64_t requests_ = 0;
};

// The parameters of a WWW-Authenticate header: its scheme (lowercase) and
// key="value" pairs, where quoted values may hold commas.
std::pair<std::string, std::map<std::string, std::string>> ParseChallenge(
    const std::string& header);

}  // namespace paddock::image
