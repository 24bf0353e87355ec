#include "image/reference.h"

#include <cctype>

#include "image/digest.h"

namespace paddock::image {

namespace {

constexpr const char* kDockerHub = "docker.io";

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+ joined by '.', '_', '__' or runs of '-'.
bool ValidComponent(const std::string& c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  for (size_t i = 0; i < c.size(); ++i) {
    char ch = c[i];
    if (IsLowerAlnum(ch)) continue;
    if (ch == '-') continue;
    if (ch == '.' && IsLowerAlnum(c[i - 1]) && IsLowerAlnum(c[i + 1])) continue;
    if (ch == '_') {
      if (IsLowerAlnum(c[i - 1]) && IsLowerAlnum(c[i + 1])) continue;
      if (c[i + 1] == '_' && IsLowerAlnum(c[i - 1]) && i + 2 < c.size() && IsLowerAlnum(c[i + 2])) {
        ++i;
        continue;
      }
    }
    return false;
  }
  return true;
}

// host[:port]: letters, digits, '-', '.', or a bracketed IPv6 address.
bool ValidRegistry(const std::string& r) {
  if (r.empty() || r.size() > 255) return false;
  std::string host = r, port;
  if (r.front() == '[') {
    size_t close = r.find(']');
    if (close == std::string::npos) return false;
    for (char c : r.substr(1, close - 1))
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':') return false;
    host = "";
    port = r.size() > close + 1 ? r.substr(close + 1) : "";
    if (!port.empty() && port[0] != ':') return false;
    if (!port.empty()) port = port.substr(1);
  } else if (size_t colon = r.find(':'); colon != std::string::npos) {
    host = r.substr(0, colon);
    port = r.substr(colon + 1);
    if (host.empty()) return false;
  }
  for (char c : host)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  if (r.find(':') != std::string::npos && r.front() != '[' && port.empty()) return false;
  for (char c : port)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return port.size() <= 5;
}

bool ValidTag(const std::string& t) {
  if (t.empty() || t.size() > 128) return false;
  if (!std::isalnum(static_cast<unsigned char>(t[0])) && t[0] != '_') return false;
  for (char c : t)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-')
      return false;
  return true;
}

}  // namespace

Result<ImageRef> ImageRef::Parse(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("image reference '" + text + "' is not valid: " + why);
  };
  if (text.empty()) return bad("it is empty");
  if (text.size() > 512) return bad("it is longer than 512 characters");
  ImageRef ref;
  std::string rest = text;
  if (size_t at = rest.find('@'); at != std::string::npos) {
    ref.digest = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (!ValidDigest(ref.digest))
      return bad("the digest must be sha256: and 64 lowercase hex digits");
  }
  // A tag follows the last ':' that comes after the last '/'.
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    ref.tag = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    if (!ValidTag(ref.tag))
      return bad("tag '" + ref.tag +
                 "' must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'");
  }
  // The first component is a registry if it looks like a host.
  size_t first = rest.find('/');
  if (first != std::string::npos) {
    std::string head = rest.substr(0, first);
    if (head.find('.') != std::string::npos || head.find(':') != std::string::npos ||
        head == "localhost" || head.front() == '[') {
      if (!ValidRegistry(head)) return bad("registry '" + head + "' is not a host[:port]");
      ref.registry = head;
      rest = rest.substr(first + 1);
    }
  }
  if (ref.registry.empty()) ref.registry = kDockerHub;
  if (ref.registry == "index.docker.io" || ref.registry == "registry-1.docker.io")
    ref.registry = kDockerHub;
  if (rest.empty()) return bad("it names no repository");
  if (rest.size() > 255) return bad("the repository name is longer than 255 characters");
  for (size_t i = 0; i <= rest.size();) {
    size_t j = rest.find('/', i);
    if (j == std::string::npos) j = rest.size();
    std::string component = rest.substr(i, j - i);
    if (!ValidComponent(component))
      return bad("repository component '" + component +
                 "' must be lowercase letters and digits, separated by '.', '_', '__' or '-'");
    i = j + 1;
  }
  if (ref.registry == kDockerHub && rest.find('/') == std::string::npos) rest = "library/" + rest;
  ref.repository = rest;
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

std::string ImageRef::String() const {
  std::string s = Name();
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

std::string ImageRef::ApiHost() const {
  return registry == kDockerHub ? "registry-1.docker.io" : registry;
}

Result<std::string> NormalizeRegistry(const std::string& host) {
  // Two path components keep Docker Hub's "library/" out of the way.
  auto ref = ImageRef::Parse(host + "/x/y");
  if (host.find('/') != std::string::npos || !ref.ok() || ref->repository != "x/y" ||
      (ref->registry == kDockerHub && host != kDockerHub && host != "index.docker.io" &&
       host != "registry-1.docker.io"))
    return InvalidArgument("registry '" + host + "' is not a host[:port]");
  return ref->registry;
}

bool IsLoopbackRegistry(const std::string& host) {
  std::string h = host;
  if (!h.empty() && h.front() == '[') return h.rfind("[::1]", 0) == 0;
  if (size_t colon = h.find(':'); colon != std::string::npos) h = h.substr(0, colon);
  return h == "localhost" || h.rfind("127.", 0) == 0;
}

}  // namespace paddock::image
