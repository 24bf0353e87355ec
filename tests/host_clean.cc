#include "host_clean.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nftables/libnftables.h>

#include "base/fs.h"
#include "kernel/cgroup.h"

namespace paddock::testing {

namespace {

std::vector<std::string> ListDirs(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent* e = ::readdir(d))
    if (e->d_type == DT_DIR && e->d_name[0] != '.') out.push_back(dir + "/" + e->d_name);
  ::closedir(d);
  return out;
}

}  // namespace

HostSnapshot TakeHostSnapshot() {
  HostSnapshot s;
  std::ifstream mi("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mi, line))
    if (line.find("paddock") != std::string::npos || line.find("pdk") != std::string::npos)
      s.mounts.push_back(line);
  // Sandbox cgroups sit one level under a paddock* parent at the top of each
  // hierarchy: <v1 controller mount>/paddock/ID, and <cgroup2 mount>/paddock/ID
  // on v2 (the hybrid layout's is /sys/fs/cgroup/unified).
  auto hierarchies = kernel::ReadCgroupMounts();
  for (const auto& hierarchy : hierarchies.ok() ? *hierarchies : std::vector<kernel::CgroupMount>{})
    for (const auto& parent : ListDirs(hierarchy.mount_point))
      if (parent.substr(parent.rfind('/') + 1).rfind("paddock", 0) == 0)
        for (const auto& cg : ListDirs(parent)) s.cgroups.push_back(cg);
  for (const auto& proc : ListDirs("/proc")) {
    std::ifstream comm(proc + "/comm");
    std::string name;
    if (!std::getline(comm, name) || (name != "paddock-init" && name != "paddock-shell")) continue;
    // A warm shell's init is named paddock-shell only once its start-up
    // has run: until then its cgroup (warm-<hex>) tells it apart.
    auto cgroup = ReadFile(proc + "/cgroup");
    bool warm = name == "paddock-shell" || (cgroup.ok() && cgroup->find("/warm-") != std::string::npos);
    (warm ? s.shell_processes : s.init_processes).push_back(proc);
  }
  for (const auto& link : ListDir("/sys/class/net"))
    if (link.rfind("pdk", 0) == 0) s.links.push_back(link);
  if (nft_ctx* nft = nft_ctx_new(NFT_CTX_DEFAULT)) {
    nft_ctx_buffer_output(nft);
    nft_ctx_buffer_error(nft);
    if (nft_run_cmd_from_buffer(nft, "list tables") == 0) {
      std::istringstream out(nft_ctx_get_output_buffer(nft));
      while (std::getline(out, line))
        if (line.find("paddock") != std::string::npos) s.nft_tables.push_back(line);
    }
    nft_ctx_free(nft);
  }
  return s;
}

std::string DescribeLeaks(const HostSnapshot& before, const HostSnapshot& after) {
  std::ostringstream out;
  auto diff = [&](const char* what, const std::vector<std::string>& a,
                  const std::vector<std::string>& b) {
    for (const auto& x : b)
      if (std::find(a.begin(), a.end(), x) == a.end()) out << "leaked " << what << ": " << x << "\n";
  };
  diff("mount", before.mounts, after.mounts);
  diff("cgroup", before.cgroups, after.cgroups);
  diff("process", before.init_processes, after.init_processes);
  diff("waiting shell", before.shell_processes, after.shell_processes);
  diff("network device", before.links, after.links);
  diff("nftables table", before.nft_tables, after.nft_tables);
  return out.str();
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/pdk-test-XXXXXX";
  path_ = ::mkdtemp(tmpl);
  ::chmod(path_.c_str(), 0711);  // sandboxes' own root must reach state folders inside
}

TempDir::~TempDir() { (void)RemoveTree(path_); }

}  // namespace paddock::testing
