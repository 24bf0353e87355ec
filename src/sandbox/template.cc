#include "sandbox/template.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "base/fd.h"
#include "base/fs.h"
#include "base/ids.h"
#include "kernel/process.h"

extern char** environ;

namespace paddock {

namespace {

// Bump when the layout of a built-in template changes: a new folder is built.
constexpr const char* kHostLayer = "host-v1";
constexpr const char* kBusyboxLayer = "busybox-v1";

constexpr uid_t kUserUid = 1000;  // the unprivileged "user" every template has

const char* const kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "user:x:1000:1000:user:/home/user:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const char* const kGroup =
    "root:x:0:\n"
    "tty:x:5:user\n"
    "users:x:100:user\n"
    "user:x:1000:\n"
    "nogroup:x:65534:\n";
const char* const kNsswitch =
    "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
    "protocols: files\nservices: files\n";
const char* const kHosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

Status WriteFile(const std::string& path, const std::string& data, mode_t mode = 0644) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) return Status::Errno("create " + path);
  if (::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size()))
    return Status::Errno("write " + path);
  return Status::Ok();
}

Status Symlink(const std::string& target, const std::string& path) {
  if (::symlink(target.c_str(), path.c_str()) != 0) return Status::Errno("symlink " + path);
  return Status::Ok();
}

// Copies a host tree of folders, regular files and symlinks (nothing else).
Status CopyTree(const std::string& from, const std::string& to) {
  struct stat st;
  if (::lstat(from.c_str(), &st) != 0) return Status::Ok();  // absent on this host: skip
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = ::readlink(from.c_str(), target, sizeof target - 1);
    if (n < 0) return Status::Errno("readlink " + from);
    return Symlink(std::string(target, static_cast<size_t>(n)), to);
  }
  if (S_ISREG(st.st_mode)) {
    PDK_ASSIGN_OR_RETURN(std::string data, ReadFile(from));
    return WriteFile(to, data, st.st_mode & 0755);
  }
  if (!S_ISDIR(st.st_mode)) return Status::Ok();
  if (::mkdir(to.c_str(), st.st_mode & 0755) != 0 && errno != EEXIST)
    return Status::Errno("mkdir " + to);
  DIR* d = ::opendir(from.c_str());
  if (!d) return Status::Errno("opendir " + from);
  Status s;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    s = CopyTree(from + "/" + name, to + "/" + name);
    if (!s.ok()) break;
  }
  ::closedir(d);
  return s;
}

// The folders every root filesystem needs, and a synthesized /etc.
Status MakeSkeleton(const std::string& layer) {
  for (const char* dir : {"dev", "proc", "sys", "run", "mnt", "opt", "srv", "etc", "home", "var",
                          "var/lib", "var/log", "var/cache", "usr", "usr/local"})
    PDK_TRY(MakeDirs(layer + "/" + dir, 0755));
  for (const char* dir : {"tmp", "var/tmp"}) {
    PDK_TRY(MakeDirs(layer + "/" + dir));
    if (::chmod((layer + "/" + dir).c_str(), 01777) != 0) return Status::Errno("chmod " + layer + "/" + dir);
  }
  PDK_TRY(MakeDirs(layer + "/root", 0700));
  PDK_TRY(MakeDirs(layer + "/home/user", 0755));
  if (::chown((layer + "/home/user").c_str(), kUserUid, kUserUid) != 0)
    return Status::Errno("chown " + layer + "/home/user");
  std::string etc = layer + "/etc";
  PDK_TRY(WriteFile(etc + "/passwd", kPasswd));
  PDK_TRY(WriteFile(etc + "/group", kGroup));
  PDK_TRY(WriteFile(etc + "/nsswitch.conf", kNsswitch));
  PDK_TRY(WriteFile(etc + "/hosts", kHosts));
  PDK_TRY(WriteFile(etc + "/hostname", "sandbox\n"));
  // Resolvers: the host's nameserver lines only (no search domains or options).
  std::string resolv;
  if (auto host = ReadFile("/etc/resolv.conf"); host.ok()) {
    std::istringstream in(*host);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("nameserver", 0) == 0) resolv += line + "\n";
  }
  return WriteFile(etc + "/resolv.conf", resolv);
}

}  // namespace

Status TemplateStore::BuildHost(const std::string& layer) {
  PDK_TRY(MakeSkeleton(layer));
  // Merged-/usr hosts: the top-level program folders are links into /usr.
  for (const char* dir : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    std::string host = std::string("/") + dir;
    struct stat st;
    if (::lstat(host.c_str(), &st) != 0) continue;
    if (!S_ISLNK(st.st_mode))
      return Unimplemented("host template needs a merged-/usr host; " + host + " is a folder");
    PDK_TRY(CopyTree(host, layer + "/" + dir));
  }
  // What programs read from /etc and is no secret. Never shadow, ssh keys,
  // ssl/private, machine-id or the host's own configuration.
  std::string etc = layer + "/etc";
  for (const char* item : {"alternatives", "ssl/certs", "ssl/openssl.cnf", "ca-certificates",
                           "ca-certificates.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
                           "localtime", "timezone", "protocols", "services", "mime.types",
                           "os-release", "debian_version", "bash.bashrc", "profile", "inputrc",
                           "python3", "python3.11", "gai.conf", "host.conf", "magic", "magic.mime",
                           "login.defs", "shells", "environment", "perl", "terminfo", "vim"}) {
    std::string to = etc + "/" + item;
    PDK_TRY(MakeDirs(to.substr(0, to.rfind('/'))));
    PDK_TRY(CopyTree(std::string("/etc/") + item, to));
  }
  return Status::Ok();
}

Status TemplateStore::BuildBusybox(const std::string& layer) {
  PDK_TRY(MakeSkeleton(layer));
  PDK_TRY(MakeDirs(layer + "/bin"));
  PDK_TRY(Symlink("bin", layer + "/sbin"));
  PDK_TRY(Symlink("../bin", layer + "/usr/bin"));
  PDK_TRY(Symlink("../bin", layer + "/usr/sbin"));
  PDK_ASSIGN_OR_RETURN(std::string binary, ReadFile(busybox_));
  if (binary.size() < 64 || binary.compare(0, 4, "\x7f" "ELF") != 0)
    return FailedPrecondition(busybox_ + " is not an ELF binary (install busybox-static)");
  PDK_TRY(WriteFile(layer + "/bin/busybox", binary, 0755));
  PDK_ASSIGN_OR_RETURN(std::string applets, kernel::RunProgram(busybox_, {"busybox", "--list"}));
  std::istringstream in(applets);
  std::string applet;
  while (in >> applet)
    if (applet != "busybox") PDK_TRY(Symlink("busybox", layer + "/bin/" + applet));
  return Status::Ok();
}

Template TemplateStore::FromImage(const image::Image& img, std::string name) const {
  Template t;
  t.name = std::move(name);
  t.layers = images_->LayerDirs(img);
  t.image_id = img.id;
  t.config = std::make_shared<const image::ImageConfig>(img.config);
  return t;
}

Result<Template> TemplateStore::ForImage(const std::string& id) {
  if (!images_) return NotFound("image " + id + ": this paddockd has no image store");
  PDK_ASSIGN_OR_RETURN(image::Image img, images_->Find(id));
  return FromImage(img, img.refs.empty() ? img.id : img.refs.front());
}

bool TemplateStore::Has(const std::string& name) const {
  return name == "host" || name == "busybox" || (images_ && images_->Find(name).ok());
}

Result<Template> TemplateStore::Get(const std::string& name) {
  if (name != "host" && name != "busybox") {
    if (!images_) return NotFound("template '" + name + "' does not exist (built-in: host, busybox)");
    PDK_ASSIGN_OR_RETURN(image::Image img, images_->Ensure(name));
    auto ref = image::ImageRef::Parse(name);
    bool by_ref = ref.ok() && std::find(img.refs.begin(), img.refs.end(), ref->String()) != img.refs.end();
    return FromImage(img, by_ref ? ref->String() : img.refs.empty() ? img.id : img.refs.front());
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = cache_.find(name); it != cache_.end()) return it->second;
  Template t;
  t.name = name;
  std::string folder;
  Status (TemplateStore::*build)(const std::string&) = nullptr;
  if (name == "host") {
    folder = kHostLayer;
    build = &TemplateStore::BuildHost;
    t.readonly_binds = {{"/usr", "/usr"}};
  } else {
    folder = kBusyboxLayer;
    build = &TemplateStore::BuildBusybox;
  }
  std::string layer = root_ + "/" + folder;
  if (!PathExists(layer)) {
    std::string tmp = staging_ + "/" + folder + "-" + RandomHex(4);
    Status s = (this->*build)(tmp);
    if (s.ok() && ::rename(tmp.c_str(), layer.c_str()) != 0) s = Status::Errno("rename " + layer);
    if (!s.ok()) {
      (void)RemoveTree(tmp);
      return s.Annotate("building template '" + name + "'");
    }
  }
  t.layers = {layer};
  cache_[name] = t;
  return t;
}

}  // namespace paddock
