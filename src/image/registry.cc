#include "image/registry.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "base/fd.h"
#include "image/digest.h"

namespace paddock::image {

using nlohmann::json;

struct RegistryClient::Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string error_body;                      // a non-2xx answer's body, capped
};

namespace {

constexpr size_t kMaxErrorBody = 64 << 10;
constexpr int kMaxRedirects = 5;

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string Base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// scheme, host:port (default port filled in) of `url`; empty on a bad URL.
struct Authority {
  std::string scheme, host_port;
};
Authority AuthorityOf(const std::string& url) {
  Authority a;
  CURLU* u = curl_url();
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char *scheme = nullptr, *host = nullptr, *port = nullptr;
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    if (scheme && host) a = {Lower(scheme), Lower(host) + ":" + (port ? port : "")};
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return a;
}

// `location` resolved against `base`; empty if it is not a URL.
std::string Resolve(const std::string& base, const std::string& location) {
  std::string out;
  CURLU* u = curl_url();
  if (curl_url_set(u, CURLUPART_URL, base.c_str(), 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_URL, location.c_str(), CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK) {
    char* full = nullptr;
    if (curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK) out = full;
    curl_free(full);
  }
  curl_url_cleanup(u);
  return out;
}

// The registry's own words from an error body ({"errors":[{"code","message"}]}).
std::string RegistrySays(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  std::string out;
  if (j.is_object() && j.contains("errors") && j["errors"].is_array())
    for (const auto& e : j["errors"])
      if (e.is_object())
        out += (out.empty() ? "" : "; ") + e.value("code", std::string("ERROR")) + ": " +
               (e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>()
                                                                  : "");
  if (out.empty()) out = Trim(body.substr(0, 200));
  return out;
}

struct Transfer {
  CURL* curl = nullptr;
  RegistryClient::Response* response = nullptr;
  const std::function<bool(const char*, size_t)>* sink = nullptr;
  const std::function<void()>* on_restart = nullptr;
  bool ranged = false;
  bool aborted = false;
};

size_t OnHeader(char* data, size_t size, size_t n, void* ctx) {
  auto* t = static_cast<Transfer*>(ctx);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) t->response->headers.clear();
  size_t colon = line.find(':');
  if (colon != std::string::npos)
    t->response->headers[Lower(Trim(line.substr(0, colon)))] = Trim(line.substr(colon + 1));
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* ctx) {
  auto* t = static_cast<Transfer*>(ctx);
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  size_t bytes = size * n;
  if (status >= 200 && status < 300) {
    if (t->ranged && status == 200 && t->on_restart && *t->on_restart) {
      (*t->on_restart)();  // the server ignored the range: start over
      t->ranged = false;
    }
    if (!(*t->sink)(data, bytes)) {
      t->aborted = true;
      return 0;
    }
  } else if (t->response->error_body.size() < kMaxErrorBody) {
    t->response->error_body.append(data,
                                   std::min(bytes, kMaxErrorBody - t->response->error_body.size()));
  }
  return bytes;
}

// A new easy handle for one GET of `url` into `t` (which must outlive it):
// no automatic redirects, bounded connect time, the answer's headers and
// body to OnHeader and OnBody.
CURL* StartTransfer(const std::string& url, Transfer& t) {
  CURL* curl = curl_easy_init();
  if (!curl) return nullptr;
  t.curl = curl;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 15L);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "paddock");
  return curl;
}

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t FileSize(int fd) {
  struct stat st;
  return ::fstat(fd, &st) == 0 ? st.st_size : 0;
}

}  // namespace

std::pair<std::string, std::map<std::string, std::string>> ParseChallenge(
    const std::string& header) {
  std::string h = Trim(header);
  size_t space = h.find(' ');
  std::string scheme = Lower(h.substr(0, space));
  std::map<std::string, std::string> params;
  size_t i = space == std::string::npos ? h.size() : space + 1;
  while (i < h.size()) {
    while (i < h.size() && (h[i] == ' ' || h[i] == ',')) ++i;
    size_t eq = h.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = Lower(Trim(h.substr(i, eq - i)));
    std::string value;
    i = eq + 1;
    if (i < h.size() && h[i] == '"') {
      for (++i; i < h.size() && h[i] != '"'; ++i) {
        if (h[i] == '\\' && i + 1 < h.size()) ++i;
        value += h[i];
      }
      ++i;  // the closing quote
    } else {
      size_t end = h.find(',', i);
      if (end == std::string::npos) end = h.size();
      value = Trim(h.substr(i, end - i));
      i = end;
    }
    params[key] = value;
  }
  return {scheme, params};
}

RegistryClient::RegistryClient(RegistryOptions opts) : opts_(std::move(opts)) { InitCurlOnce(); }
RegistryClient::~RegistryClient() = default;

int64_t RegistryClient::requests_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

bool RegistryClient::ListedInsecure(const std::string& registry) const {
  return std::find(opts_.insecure.begin(), opts_.insecure.end(), registry) != opts_.insecure.end();
}

std::string RegistryClient::V2Url(const ImageRef& ref) const {
  bool plain = IsLoopbackRegistry(ref.registry) || ListedInsecure(ref.registry);
  return (plain ? "http://" : "https://") + ref.ApiHost() + "/v2/";
}

std::string RegistryClient::BaseUrl(const ImageRef& ref) const {
  return V2Url(ref) + ref.repository;
}

Result<RegistryClient::Token> RegistryClient::FetchToken(const Remote& remote,
                                                         const std::string& realm,
                                                         const std::string& service,
                                                         const std::string& scope) {
  const ImageRef& ref = remote.ref;
  Authority realm_at = AuthorityOf(realm);
  if (realm_at.scheme != "https" && realm_at.scheme != "http")
    return Unavailable("registry " + ref.registry + " names a token service that is not a URL: '" +
                       realm + "'");
  char* s = curl_easy_escape(nullptr, service.c_str(), static_cast<int>(service.size()));
  char* sc = curl_easy_escape(nullptr, scope.c_str(), static_cast<int>(scope.size()));
  std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&") + "service=" + s +
                    (scope.empty() ? "" : std::string("&scope=") + sc);
  curl_free(s);
  curl_free(sc);
  const std::optional<Credentials>& creds = remote.creds;
  std::string body;
  Response resp;
  std::function<bool(const char*, size_t)> sink = [&](const char* d, size_t n) {
    body.append(d, n);
    return body.size() <= kMaxManifestBytes;
  };
  Transfer t{nullptr, &resp, &sink, nullptr, false, false};
  CURL* curl = StartTransfer(url, t);
  if (!curl) return Internal("curl_easy_init");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
  bool secure_realm = realm_at.scheme == "https" || IsLoopbackRegistry(realm_at.host_port) ||
                      ListedInsecure(ref.registry);
  if (creds && secure_realm) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME, creds->username.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, creds->password.c_str());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_;
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp.status);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK)
    return Unavailable("cannot reach the token service of registry " + ref.registry + " (" + realm +
                       "): " + curl_easy_strerror(rc));
  if (resp.status == 401 || resp.status == 403)
    return Status(resp.status == 401 ? StatusCode::kUnauthenticated : StatusCode::kPermissionDenied,
                  "registry " + ref.registry + " refused " +
                      (creds ? "the credentials" : "anonymous access") + " for " + scope + ": " +
                      RegistrySays(resp.error_body));
  if (resp.status != 200)
    return Unavailable("the token service of registry " + ref.registry + " answered HTTP " +
                       std::to_string(resp.status) + ": " + RegistrySays(resp.error_body));
  json j = json::parse(body, nullptr, false);
  Token tok;
  if (j.is_object() && j.contains("token") && j["token"].is_string())
    tok.value = j["token"];
  else if (j.is_object() && j.contains("access_token") && j["access_token"].is_string())
    tok.value = j["access_token"];
  if (tok.value.empty())
    return Unavailable("the token service of registry " + ref.registry + " gave no token");
  int64_t expires_in = j.contains("expires_in") && j["expires_in"].is_number_integer()
                           ? j["expires_in"].get<int64_t>()
                           : 60;
  if (expires_in < 60) expires_in = 60;  // the spec's minimum
  tok.expires_ms = NowMillis() + (expires_in - 5) * 1000;
  return tok;
}

Result<std::string> RegistryClient::Authorization(const Remote& remote, bool refresh) {
  const ImageRef& ref = remote.ref;
  Challenge ch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = challenges_.find(ref.registry);
    if (it == challenges_.end()) return std::string();  // anonymous until challenged
    ch = it->second;
  }
  const std::optional<Credentials>& creds = remote.creds;
  if (ch.scheme == "basic") {
    if (!creds)
      return Status(StatusCode::kUnauthenticated,
                    "registry " + ref.registry +
                        " asks for a user name and password (paddock login " + ref.registry + ")");
    return "Basic " + Base64(creds->username + ":" + creds->password);
  }
  if (ch.scheme != "bearer")
    return Unimplemented("registry " + ref.registry + " asks for '" + ch.scheme +
                         "' authentication");
  std::string realm = ch.params["realm"], service = ch.params["service"];
  std::string scope =
      ref.repository.empty() ? "" : "repository:" + ref.repository + ":pull";  // none: a login
  std::string key = realm + "|" + service + "|" + scope + "|" + (creds ? creds->username : "");
  if (!refresh) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tokens_.find(key);
    if (it != tokens_.end() && it->second.expires_ms > NowMillis())
      return "Bearer " + it->second.value;
  }
  PDK_ASSIGN_OR_RETURN(Token tok, FetchToken(remote, realm, service, scope));
  std::lock_guard<std::mutex> lock(mu_);
  tokens_[key] = tok;
  return "Bearer " + tok.value;
}

Result<RegistryClient::Response> RegistryClient::Get(
    const Remote& remote, const std::string& url, const std::string& accept,
    const std::function<bool(const char*, size_t)>& sink, int64_t range_from,
    const std::function<void()>& on_restart) {
  const ImageRef& ref = remote.ref;
  Authority home = AuthorityOf(url);
  std::string current = url;
  bool challenged = false;
  int attempts = 0, hops = 0;
  PDK_ASSIGN_OR_RETURN(std::string auth, Authorization(remote, false));
  while (true) {
    Authority at = AuthorityOf(current);
    Response resp;
    Transfer t{nullptr, &resp, &sink, &on_restart, range_from > 0, false};
    CURL* curl = StartTransfer(current, t);
    if (!curl) return Internal("curl_easy_init");
    struct curl_slist* headers = nullptr;
    if (!accept.empty()) headers = curl_slist_append(headers, ("Accept: " + accept).c_str());
    // Credentials go to the registry itself, never to where it redirects.
    if (!auth.empty() && at.host_port == home.host_port && at.scheme == home.scheme)
      headers = curl_slist_append(headers, ("Authorization: " + auth).c_str());
    std::string range = std::to_string(range_from) + "-";  // curl adds "bytes="
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);  // a stalled transfer ends after 60 s
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 256L << 10);
    if (range_from > 0) curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++requests_;
    }
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp.status);
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    if (t.aborted)
      return ResourceExhausted("the answer of registry " + ref.registry + " to " + current +
                               " is too large");
    if (rc != CURLE_OK)
      return Unavailable("cannot fetch " + current + " from registry " + ref.registry + ": " +
                         curl_easy_strerror(rc));

    if (resp.status >= 300 && resp.status < 400 && resp.headers.count("location")) {
      std::string next = Resolve(current, resp.headers["location"]);
      Authority to = AuthorityOf(next);
      if (next.empty() || (to.scheme != "http" && to.scheme != "https"))
        return Unavailable("registry " + ref.registry + " redirected to '" +
                           resp.headers["location"] + "', not a URL");
      if (at.scheme == "https" && to.scheme == "http")
        return Unavailable("registry " + ref.registry + " redirected from https down to http (" +
                           next + "); refused");
      if (++hops > kMaxRedirects)
        return Unavailable("registry " + ref.registry + " redirected more than 5 times");
      current = next;
      continue;
    }
    if (resp.status == 401 && !challenged && at.host_port == home.host_port) {
      challenged = true;  // learn how to authenticate, or get a fresh token, once
      auto [scheme, params] = ParseChallenge(resp.headers["www-authenticate"]);
      if (scheme.empty())
        return Status(StatusCode::kUnauthenticated, "registry " + ref.registry +
                                                        " refused the request (HTTP 401) " +
                                                        "without saying how to authenticate");
      {
        std::lock_guard<std::mutex> lock(mu_);
        challenges_[ref.registry] = {scheme, params};
      }
      PDK_ASSIGN_OR_RETURN(auth, Authorization(remote, true));
      continue;
    }
    if ((resp.status == 429 || resp.status == 503) && ++attempts < opts_.max_attempts) {
      int wait_s = std::min(opts_.max_backoff_s, 1 << std::min(attempts - 1, 5));
      if (auto it = resp.headers.find("retry-after"); it != resp.headers.end()) {
        int given = std::atoi(it->second.c_str());
        if (given >= 0) wait_s = std::min(opts_.max_backoff_s, given);
      }
      std::this_thread::sleep_for(std::chrono::seconds(wait_s));
      continue;
    }
    return resp;
  }
}

namespace {

// A non-2xx answer as a Status naming the registry and what it said.
Status HttpError(const ImageRef& ref, const std::string& what, const RegistryClient::Response& r) {
  std::string says = RegistrySays(r.error_body);
  std::string tail = " (HTTP " + std::to_string(r.status) + (says.empty() ? "" : ": " + says) + ")";
  switch (r.status) {
    case 401:
      return {StatusCode::kUnauthenticated,
              "registry " + ref.registry + " refused access to " + what + tail};
    case 403:
      return {StatusCode::kPermissionDenied,
              "registry " + ref.registry + " forbids " + what + tail};
    case 404:
      return NotFound("registry " + ref.registry + " has no " + what + tail);
    default:
      return Unavailable("registry " + ref.registry + " failed to serve " + what + tail);
  }
}

}  // namespace

Result<FetchedManifest> RegistryClient::GetManifest(const Remote& remote,
                                                    const std::string& reference) {
  const ImageRef& ref = remote.ref;
  FetchedManifest m;
  auto sink = [&](const char* d, size_t n) {
    m.body.append(d, n);
    return m.body.size() <= kMaxManifestBytes;
  };
  auto r = Get(remote, BaseUrl(ref) + "/manifests/" + reference, media::kAcceptManifests, sink, 0,
               nullptr);
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kResourceExhausted)
      return DataLoss("the manifest " + ref.Name() + ":" + reference + " is over the " +
                      std::to_string(kMaxManifestBytes) + "-byte cap");
    return r.status();
  }
  if (r->status != 200)
    return HttpError(ref,
                     "manifest " + ref.Name() +
                         (reference[0] == 's' && ValidDigest(reference) ? "@" : ":") + reference,
                     *r);
  m.media_type = r->headers["content-type"];
  if (size_t semi = m.media_type.find(';'); semi != std::string::npos)
    m.media_type = Trim(m.media_type.substr(0, semi));
  m.digest = Sha256::Of(m.body);
  if (ValidDigest(reference) && m.digest != reference)
    return DataLoss("registry " + ref.registry + " served a manifest whose digest is " + m.digest +
                    ", not the " + reference + " asked for");
  return m;
}

Result<std::string> RegistryClient::GetBlob(const Remote& remote, const Descriptor& d) {
  const ImageRef& ref = remote.ref;
  std::string body;
  auto sink = [&](const char* p, size_t n) {
    body.append(p, n);
    return static_cast<int64_t>(body.size()) <= d.size;
  };
  auto r = Get(remote, BaseUrl(ref) + "/blobs/" + d.digest, "", sink, 0, nullptr);
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kResourceExhausted)
      return DataLoss("blob " + d.digest + " is larger than the " + std::to_string(d.size) +
                      " bytes its manifest gives");
    return r.status();
  }
  if (r->status != 200) return HttpError(ref, "blob " + d.digest, *r);
  if (static_cast<int64_t>(body.size()) != d.size)
    return DataLoss("blob " + d.digest + " is " + std::to_string(body.size()) + " bytes, not the " +
                    std::to_string(d.size) + " its manifest gives");
  if (Sha256::Of(body) != d.digest)
    return DataLoss("blob " + d.digest + " from registry " + ref.registry +
                    " does not match its digest");
  return body;
}

Status RegistryClient::DownloadBlob(const Remote& remote, const Descriptor& d,
                                    const std::string& path,
                                    const std::function<void(int64_t)>& progress) {
  const ImageRef& ref = remote.ref;
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return Status::Errno("open " + path);
  int64_t have = FileSize(fd.get());
  Sha256 hash;
  if (have > d.size) {
    if (::ftruncate(fd.get(), 0) != 0) return Status::Errno("truncate " + path);
    have = 0;
  }
  {  // What an earlier, interrupted download left: hash it, then go on after it.
    std::vector<char> buf(1 << 20);
    int64_t off = 0;
    while (off < have) {
      ssize_t n = ::pread(fd.get(), buf.data(), std::min<int64_t>(buf.size(), have - off), off);
      if (n <= 0) return Status::Errno("read " + path);
      hash.Update(buf.data(), static_cast<size_t>(n));
      off += n;
    }
  }
  Status write_error;
  auto sink = [&](const char* p, size_t n) {
    if (have + static_cast<int64_t>(n) > d.size) return false;
    // A short write (a disk filling up) is followed by one that says why.
    for (size_t done = 0; done < n;) {
      ssize_t w = ::pwrite(fd.get(), p + done, n - done, have + static_cast<int64_t>(done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        write_error = Status::Errno("write " + path, w < 0 ? errno : ENOSPC);
        return false;
      }
      done += static_cast<size_t>(w);
    }
    hash.Update(p, n);
    have += static_cast<int64_t>(n);
    if (progress) progress(have);
    return true;
  };
  auto restart = [&] {
    (void)!::ftruncate(fd.get(), 0);
    hash = Sha256();
    have = 0;
  };
  // Bytes kept from an earlier download may be wrong: a mismatch then
  // earns one more pass from the start.
  for (bool resumed = have > 0;; resumed = false) {
    for (int attempt = 0; have < d.size || d.size == 0; ++attempt) {
      int64_t before = have;
      auto r = Get(remote, BaseUrl(ref) + "/blobs/" + d.digest, "", sink, have, restart);
      if (!write_error.ok()) return write_error;
      if (!r.ok()) {
        if (r.status().code() == StatusCode::kResourceExhausted) {
          ::unlink(path.c_str());
          return DataLoss("blob " + d.digest + " is larger than the " + std::to_string(d.size) +
                          " bytes its manifest gives");
        }
        // A transfer broken after some bytes: go on from there.
        if (r.status().code() == StatusCode::kUnavailable && have > before &&
            attempt < opts_.max_attempts)
          continue;
        return r.status();
      }
      if (r->status == 416 && have > 0) {  // the range was not satisfiable: start over
        restart();
        continue;
      }
      if (r->status != 200 && r->status != 206) return HttpError(ref, "blob " + d.digest, *r);
      if (have == before || d.size == 0) break;  // nothing more to come
    }
    std::string got = hash.Digest();
    if (have == d.size && got == d.digest) break;
    if (resumed) {
      restart();
      continue;
    }
    ::unlink(path.c_str());
    return DataLoss("blob " + d.digest + " from registry " + ref.registry +
                    (have != d.size
                         ? " is " + std::to_string(have) + " bytes, not " + std::to_string(d.size)
                         : " does not match its digest") +
                    "; nothing was stored");
  }
  if (::fsync(fd.get()) != 0) return Status::Errno("fsync " + path);
  return Status::Ok();
}

Status RegistryClient::CheckLogin(const std::string& registry, const Credentials& creds) {
  // Any repository will do: the registry's answer to /v2/ says how to log in.
  Remote remote{ImageRef{registry, "", "", ""}, creds};
  std::string url = V2Url(remote.ref);
  auto ignore = [](const char*, size_t) { return true; };
  PDK_ASSIGN_OR_RETURN(Response r, Get(remote, url, "", ignore, 0, nullptr));
  if (r.status == 200) return Status::Ok();
  return Status(StatusCode::kUnauthenticated,
                "registry " + registry + " refused the login of '" + creds.username + "' (HTTP " +
                    std::to_string(r.status) + ": " + RegistrySays(r.error_body) + ")");
}

}  // namespace paddock::image
