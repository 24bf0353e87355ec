#include "oci_kit.h"

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "base/fs.h"
#include "image/digest.h"
#include "image/manifest.h"

extern char** environ;

namespace paddock::testing {

using nlohmann::json;

namespace {

la_ssize_t Append(struct archive*, void* ctx, const void* b, size_t n) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(b), n);
  return static_cast<la_ssize_t>(n);
}

std::string Compress(const std::string& data, LayerCompression c) {
  if (c == LayerCompression::kNone) return data;
  std::string out;
  struct archive* a = archive_write_new();
  if (c == LayerCompression::kGzip)
    archive_write_add_filter_gzip(a);
  else
    archive_write_add_filter_zstd(a);
  archive_write_set_format_raw(a);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(a, &out, nullptr, Append, nullptr);
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
  archive_write_header(a, e);
  archive_write_data(a, data.data(), data.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

json WriteBlob(const std::string& dir, const std::string& data, const std::string& media_type) {
  std::string digest = image::Sha256::Of(data);
  if (!MakeDirs(dir + "/blobs/sha256").ok()) throw std::runtime_error("mkdir blobs");
  if (!WriteFileAtomic(dir + "/blobs/sha256/" + image::DigestHex(digest), data).ok())
    throw std::runtime_error("write blob");
  return {{"mediaType", media_type}, {"digest", digest}, {"size", data.size()}};
}

}  // namespace

std::string HostArchitecture() { return image::HostPlatform().architecture; }

std::string MakeTar(const std::vector<TarEntry>& entries) {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(a, &out, nullptr, Append, nullptr);
  for (const auto& t : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.path.c_str());
    archive_entry_set_uid(e, t.uid);
    archive_entry_set_gid(e, t.gid);
    archive_entry_set_mtime(e, 1700000000, 0);
    switch (t.type) {
      case 'd':
        archive_entry_set_filetype(e, AE_IFDIR);
        break;
      case 'l':
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_symlink(e, t.data.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_hardlink(e, t.data.c_str());
        break;
      case 'p':
        archive_entry_set_filetype(e, AE_IFIFO);
        break;
      default:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, static_cast<la_int64_t>(t.data.size()));
    }
    archive_entry_set_perm(e, t.mode);
    for (const auto& [k, v] : t.xattrs)
      archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    archive_write_header(a, e);
    if (t.type == 'f') archive_write_data(a, t.data.data(), t.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

json AddImage(const std::string& dir, const ImageSpec& image) {
  json layers = json::array(), diff_ids = json::array();
  for (const auto& l : image.layers) {
    std::string tar = l.tar_file.empty() ? MakeTar(l.entries) : ReadFile(l.tar_file).value();
    diff_ids.push_back(image::Sha256::Of(tar));
    const char* type =
        l.compression == LayerCompression::kGzip   ? "application/vnd.oci.image.layer.v1.tar+gzip"
        : l.compression == LayerCompression::kZstd ? "application/vnd.oci.image.layer.v1.tar+zstd"
                                                   : "application/vnd.oci.image.layer.v1.tar";
    layers.push_back(WriteBlob(dir, Compress(tar, l.compression), type));
  }
  std::string arch = image.architecture.empty() ? HostArchitecture() : image.architecture;
  json config = {{"architecture", arch},
                 {"os", image.os},
                 {"created", "2026-01-01T00:00:00Z"},
                 {"config", image.config},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  json config_desc = WriteBlob(dir, config.dump(), "application/vnd.oci.image.config.v1+json");
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", image::media::kOciManifest},
                   {"config", config_desc},
                   {"layers", layers}};
  json desc = WriteBlob(dir, manifest.dump(), image::media::kOciManifest);
  desc["platform"] = {{"os", image.os}, {"architecture", arch}};
  return desc;
}

json AddIndex(const std::string& dir, const std::vector<json>& manifests) {
  json index = {
      {"schemaVersion", 2}, {"mediaType", image::media::kOciIndex}, {"manifests", manifests}};
  return WriteBlob(dir, index.dump(), image::media::kOciIndex);
}

void TagLayout(const std::string& dir, const std::string& tag, const json& descriptor) {
  json index = {{"schemaVersion", 2}, {"manifests", json::array()}};
  if (auto old = ReadFile(dir + "/index.json"); old.ok()) index = json::parse(*old);
  json d = descriptor;
  d.erase("platform");
  d["annotations"] = {{"org.opencontainers.image.ref.name", tag}};
  index["manifests"].push_back(d);
  (void)WriteFileAtomic(dir + "/index.json", index.dump());
  (void)WriteFileAtomic(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
}

std::pair<int, std::string> RunProgram(const std::vector<std::string>& args) {
  int p[2];
  if (::pipe(p) != 0) return {-1, "pipe"};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(p[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while (rc == 0 && (n = ::read(p[0], buf, sizeof buf)) > 0)
    out.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  if (rc != 0) return {-1, "cannot run " + args[0]};
  int status;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

namespace {

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool Accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

TestServer::TestServer(const std::string& mode, std::vector<std::string> args, int ports,
                       const std::string& log)
    : log_(log) {
  for (int i = 0; i < ports; ++i) ports_.push_back(FreePort());
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   PADDOCK_TEST_SOURCE_DIR "/registry/servers.py", mode};
  for (auto a : args) {
    for (int i = 0; i < ports; ++i) {
      std::string key = "{port" + std::to_string(i) + "}";
      for (size_t at; (at = a.find(key)) != std::string::npos;)
        a.replace(at, key.size(), std::to_string(ports_[i]));
    }
    argv.push_back(a);
  }
  argv.insert(argv.end(), {"--log", log});
  std::vector<char*> raw;
  for (auto& a : argv) raw.push_back(a.data());
  raw.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  std::string err = log + ".stderr";
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (::posix_spawn(&pid_, raw[0], &fa, nullptr, raw.data(), environ) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&fa);
  for (int p : ports_)
    for (int i = 0; i < 500 && pid_ > 0 && !Accepts(p); ++i) ::usleep(10000);
}

TestServer::~TestServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string TestServer::Log() const {
  auto log = ReadFile(log_);
  return log.ok() ? *log : "";
}

int TestServer::Count(const std::string& what) const {
  std::istringstream in(Log());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find(what) != std::string::npos;
  return n;
}

Registry::Registry(const std::string& dir, const std::string& auth_yaml) : dir_(dir) {
  int port = FreePort();
  host_ = "127.0.0.1:" + std::to_string(port);
  std::ostringstream cfg;
  cfg << "version: 0.1\n"
      << "log:\n  level: info\n  accesslog:\n    disabled: false\n"
      << "storage:\n  filesystem:\n    rootdirectory: " << dir_
      << "/storage\n  delete:\n    enabled: true\n"
      << "http:\n  addr: " << host_ << "\n"
      << auth_yaml;
  (void)MakeDirs(dir_ + "/storage");
  (void)WriteFileAtomic(dir_ + "/config.yml", cfg.str());
  std::string log = dir_ + "/registry.log";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::string config = dir_ + "/config.yml";
  const char* argv[] = {"/usr/bin/docker-registry", "serve", config.c_str(), nullptr};
  if (::posix_spawn(&pid_, argv[0], &fa, nullptr, const_cast<char**>(argv), environ) != 0)
    pid_ = -1;
  posix_spawn_file_actions_destroy(&fa);
  for (int i = 0; i < 500 && pid_ > 0 && !Accepts(port); ++i) ::usleep(10000);
}

Registry::~Registry() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string Registry::Push(const std::string& layout, const std::string& tag,
                           const std::string& repo_tag, const std::string& creds) const {
  std::vector<std::string> args = {
      "skopeo",       "copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests",
      "--multi-arch", "all"};
  if (!creds.empty()) args.insert(args.end(), {"--dest-creds", creds});
  args.push_back("oci:" + layout + ":" + tag);
  args.push_back("docker://" + host_ + "/" + repo_tag);
  auto [rc, out] = RunProgram(args);
  return rc == 0 ? "" : "skopeo failed (" + std::to_string(rc) + "): " + out;
}

std::string Registry::Log() const {
  auto log = ReadFile(dir_ + "/registry.log");
  return log.ok() ? *log : "";
}

int Registry::CountRequests(const std::string& what) const {
  std::istringstream in(Log());
  std::string line;
  int n = 0;
  while (std::getline(in, line))
    if (line.find("\"" + what) != std::string::npos || line.find(" " + what) != std::string::npos) {
      // Access-log lines only (they carry the HTTP version and status).
      if (line.find("HTTP/1.1\"") != std::string::npos) ++n;
    }
  return n;
}

}  // namespace paddock::testing
