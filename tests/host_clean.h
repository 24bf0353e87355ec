// What an integration test checks after every case: the host holds no
// Paddock mount, cgroup, process or state folder the test did not expect.
#pragma once

#include <string>
#include <vector>

namespace paddock::testing {

struct HostSnapshot {
  std::vector<std::string> mounts;         // mountinfo lines naming paddock or pdk
  std::vector<std::string> cgroups;        // sandbox cgroup folders under any paddock parent
  std::vector<std::string> init_processes; // live paddock-init processes (launched sandboxes)
  std::vector<std::string> shell_processes; // inits still waiting for a launch (warm shells)
  std::vector<std::string> links;          // network devices named pdk*
  std::vector<std::string> nft_tables;     // nftables tables named paddock*
};

HostSnapshot TakeHostSnapshot();
// Empty if `after` holds nothing more than `before`; else a description of the leak.
std::string DescribeLeaks(const HostSnapshot& before, const HostSnapshot& after);

// A fresh state folder under /tmp, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace paddock::testing
