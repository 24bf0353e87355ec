// The image tests' kit: OCI image layouts built from scratch (tar layers
// made with libarchive, gzip, zstd or plain), and a real registry (Debian's
// docker-registry) on 127.0.0.1 that skopeo pushes them to.
#pragma once

#include <sys/types.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace paddock::testing {

// One tar entry. type: 'f' file, 'd' folder, 'l' symlink, 'h' hardlink
// (`data` is the target in both), 'p' fifo.
struct TarEntry {
  std::string path;
  char type = 'f';
  std::string data;
  mode_t mode = 0644;
  uid_t uid = 0;
  gid_t gid = 0;
  std::map<std::string, std::string> xattrs;
};
std::string MakeTar(const std::vector<TarEntry>& entries);

enum class LayerCompression { kNone, kGzip, kZstd };

struct LayerSpec {
  std::vector<TarEntry> entries;
  LayerCompression compression = LayerCompression::kGzip;
  std::string tar_file;  // if set, the layer is this tar (entries are ignored)
};

struct ImageSpec {
  std::vector<LayerSpec> layers;                     // bottom first
  nlohmann::json config = nlohmann::json::object();  // the config's "config" (Env, Cmd, ...)
  std::string os = "linux", architecture;            // empty: this host's
};

// Writes blobs for `image` into the OCI layout at `dir` (made if missing)
// and returns its manifest's descriptor.
nlohmann::json AddImage(const std::string& dir, const ImageSpec& image);
// Writes an index of `manifests` (descriptors with "platform") as a blob,
// returns its descriptor.
nlohmann::json AddIndex(const std::string& dir, const std::vector<nlohmann::json>& manifests);
// Names `descriptor` as `tag` in the layout's index.json.
void TagLayout(const std::string& dir, const std::string& tag, const nlohmann::json& descriptor);

// A docker-registry process on 127.0.0.1, storage and log in `dir`.
class Registry {
 public:
  // `auth_yaml`: the config's auth section, if any.
  explicit Registry(const std::string& dir, const std::string& auth_yaml = "");
  ~Registry();
  const std::string& host() const { return host_; }  // 127.0.0.1:PORT
  // skopeo copy of the layout's `tag` to host()/repo_tag; "" on success, else skopeo's output.
  std::string Push(const std::string& layout, const std::string& tag, const std::string& repo_tag,
                   const std::string& creds = "") const;
  // Requests in the access log whose line holds `what` ("GET /v2/x/manifests/").
  int CountRequests(const std::string& what) const;
  std::string Log() const;
  std::string storage() const { return dir_ + "/storage"; }

 private:
  std::string dir_, host_;
  pid_t pid_ = -1;
};

// tests/registry/servers.py in one of its modes, on free loopback ports;
// killed by the destructor.
class TestServer {
 public:
  // `ports` free ports are picked; "{port0}", "{port1}" in `args` name them.
  TestServer(const std::string& mode, std::vector<std::string> args, int ports,
             const std::string& log);
  ~TestServer();
  int port(int i = 0) const { return ports_[i]; }
  std::string Log() const;
  int Count(const std::string& what) const;  // log lines holding `what`

 private:
  std::vector<int> ports_;
  std::string log_;
  pid_t pid_ = -1;
};

// Runs argv, returns {exit code, stdout+stderr}.
std::pair<int, std::string> RunProgram(const std::vector<std::string>& argv);
std::string HostArchitecture();

}  // namespace paddock::testing
