// cgroup v1: one folder per hierarchy (memory, cpu, cpuacct, pids, freezer,
// and devices where it is mounted; co-mounted controllers share one folder).
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "base/fs.h"
#include "kernel/cgroup.h"

namespace paddock::kernel {

namespace {

constexpr const char* kControllers[] = {"memory", "cpu", "cpuacct", "pids", "freezer"};
constexpr const char* kDevices = "devices";  // optional: without it, no device filter

Result<std::vector<pid_t>> ReadPids(const std::string& file) {
  PDK_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  std::vector<pid_t> pids;
  std::istringstream in(text);
  pid_t pid;
  while (in >> pid) pids.push_back(pid);
  return pids;
}

Result<uint64_t> ReadNumber(const std::string& file) {
  PDK_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  return std::strtoull(text.c_str(), nullptr, 10);
}

class CgroupV1 : public Cgroup {
 public:
  // `made`: just made here, so without limits; else (opened) unknown.
  CgroupV1(std::string name, std::map<std::string, std::string> dirs, bool made = false)
      : name_(std::move(name)), dirs_(std::move(dirs)) {
    if (made) set_ = CgroupLimits{};
  }
  ~CgroupV1() override {
    if (!keep_) (void)Destroy();
  }
  const std::string& name() const override { return name_; }

  Status AddProcess(pid_t pid) override {
    std::string p = std::to_string(pid);
    for (const auto& dir : UniqueDirs()) PDK_TRY(WriteExisting(dir + "/cgroup.procs", p));
    return Status::Ok();
  }

  Status SetLimits(const CgroupLimits& limits) override {
    std::optional<CgroupLimits> was = std::exchange(set_, std::nullopt);  // unknown until written
    auto changed = [&](int64_t CgroupLimits::*field) { return !was || (*was).*field != limits.*field; };
    if (changed(&CgroupLimits::memory_bytes)) {
      // No swap beyond the limit, where the kernel accounts swap at all. The
      // kernel keeps memsw at or above the memory limit, so a limit raised
      // (or lifted) above it is refused until memsw goes first.
      std::string memory = limits.memory_bytes > 0 ? std::to_string(limits.memory_bytes) : "-1";
      std::string mem = Dir("memory") + "/memory.limit_in_bytes", memsw = Dir("memory") + "/memory.memsw.limit_in_bytes";
      bool swap = PathExists(memsw);
      Status s = WriteExisting(mem, memory);
      if (s.ok() && swap) s = WriteExisting(memsw, memory);
      else if (!s.ok() && swap && WriteExisting(memsw, memory).ok()) s = WriteExisting(mem, memory);
      PDK_TRY(s);
    }
    if (changed(&CgroupLimits::cpu_millicores)) {
      PDK_TRY(WriteExisting(Dir("cpu") + "/cpu.cfs_period_us", "100000"));
      PDK_TRY(WriteExisting(Dir("cpu") + "/cpu.cfs_quota_us",
                            limits.cpu_millicores > 0 ? std::to_string(limits.cpu_millicores * 100) : "-1"));
    }
    if (changed(&CgroupLimits::pids))
      PDK_TRY(WriteExisting(Dir("pids") + "/pids.max", limits.pids > 0 ? std::to_string(limits.pids) : "max"));
    set_ = limits;
    return Status::Ok();
  }

  // One rename per hierarchy; a failure part-way renames the done ones back.
  Status Rename(const std::string& new_name) override {
    std::map<std::string, std::string> renamed;  // old folder -> new folder
    for (const auto& dir : UniqueDirs()) {
      std::string to = dir.substr(0, dir.rfind('/') + 1) + new_name;
      if (::rename(dir.c_str(), to.c_str()) != 0) {
        Status s = Status::Errno("rename cgroup " + dir + " to " + new_name);
        for (const auto& [from, done] : renamed) (void)::rename(done.c_str(), from.c_str());
        return s;
      }
      renamed[dir] = to;
    }
    for (auto& [controller, dir] : dirs_) dir = renamed.at(dir);
    name_ = new_name;
    return Status::Ok();
  }

  // v1 can leave a cgroup FREEZING when a task was mid-fork; writing FROZEN
  // again retries it. If it still will not freeze, it is thawed again, so a
  // failed pause leaves the sandbox running rather than half frozen.
  Status Freeze() override {
    std::string state = Dir("freezer") + "/freezer.state";
    Status s;
    for (int attempt = 0; attempt < 5; ++attempt) {
      PDK_TRY(WriteExisting(state, "FROZEN"));
      s = WaitUntil([this] { return IsFrozen(); }, 1000, "freezing cgroup");
      if (s.ok()) return s;
    }
    (void)Thaw();
    return s;
  }

  Status Thaw() override { return WriteExisting(Dir("freezer") + "/freezer.state", "THAWED"); }

  Result<bool> IsFrozen() override {
    PDK_ASSIGN_OR_RETURN(std::string state, ReadFile(Dir("freezer") + "/freezer.state"));
    return state.rfind("FROZEN", 0) == 0;
  }

  Result<std::vector<pid_t>> Pids() override { return ReadPids(Dir("pids") + "/cgroup.procs"); }

  Result<CgroupStats> Stats() override {
    CgroupStats s;
    if (auto v = ReadNumber(Dir("cpuacct") + "/cpuacct.usage"); v.ok()) s.cpu_usage_ns = *v;
    if (auto v = ReadNumber(Dir("memory") + "/memory.usage_in_bytes"); v.ok()) s.memory_bytes = *v;
    if (auto v = ReadNumber(Dir("pids") + "/pids.current"); v.ok()) s.pids = *v;
    if (auto oom = ReadFile(Dir("memory") + "/memory.oom_control"); oom.ok()) {
      size_t at = oom->find("oom_kill ");
      if (at != std::string::npos) s.oom_kills = std::strtoull(oom->c_str() + at + 9, nullptr, 10);
    }
    return s;
  }

  Status Destroy() override {
    if (destroyed_) return Status::Ok();
    std::string freezer = Dir("freezer");
    // Frozen tasks cannot act on SIGKILL: send it, then thaw so it lands.
    // Any hierarchy's folder lists the tasks; after a crash mid-create some may be missing.
    std::string procs;
    for (const auto& dir : UniqueDirs())
      if (PathExists(dir)) procs = dir + "/cgroup.procs";
    for (int round = 0; round < 100 && !procs.empty(); ++round) {
      auto pids = ReadPids(procs);
      if (!pids.ok() || pids->empty()) break;
      for (pid_t pid : *pids) ::kill(pid, SIGKILL);
      if (PathExists(freezer)) (void)WriteExisting(freezer + "/freezer.state", "THAWED");
      ::usleep(round < 10 ? 200 : 2000);
    }
    Status result;
    for (const auto& dir : UniqueDirs()) {
      Status s = WaitUntil(
          [&dir]() -> Result<bool> {
            if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
            if (errno == EBUSY) return false;  // a task is still exiting
            return Status::Errno("rmdir " + dir);
          },
          5000, "removing cgroup");
      if (!s.ok()) result = s;
    }
    destroyed_ = result.ok();
    return result;
  }

 private:
  std::string Dir(const std::string& controller) const { return dirs_.at(controller); }
  std::vector<std::string> UniqueDirs() const {
    std::vector<std::string> out;
    for (const auto& [c, d] : dirs_)
      if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
    return out;
  }
  std::string name_;
  std::optional<CgroupLimits> set_;  // as last written (rename keeps them); unknown when opened
  std::map<std::string, std::string> dirs_;  // controller -> this cgroup's folder
  bool destroyed_ = false;
};

class CgroupV1Driver : public CgroupDriver {
 public:
  CgroupV1Driver(std::map<std::string, std::string> mounts, std::string parent)
      : mounts_(std::move(mounts)), parent_(std::move(parent)) {}
  const char* version() const override { return "v1"; }
  bool SupportsLimits() const override { return true; }
  std::string device_filter() const override { return mounts_.count(kDevices) ? "devices controller" : ""; }
  std::string device_filter_error() const override {
    return mounts_.count(kDevices) ? "" : "the cgroup v1 devices controller is not mounted";
  }

  Result<std::unique_ptr<Cgroup>> Create(const std::string& name, const CgroupLimits& limits,
                                         const std::vector<DeviceAccess>& devices) override {
    if (!devices.empty() && !mounts_.count(kDevices))
      return FailedPrecondition("device access cannot be limited here: " + device_filter_error());
    auto dirs = DirsFor(name);
    std::vector<std::string> made;
    for (const auto& [c, d] : dirs) {
      if (std::find(made.begin(), made.end(), d) != made.end()) continue;
      if (::mkdir(d.c_str(), 0755) != 0) {
        Status s = Status::Errno("mkdir " + d);
        for (const auto& m : made) ::rmdir(m.c_str());
        return s;
      }
      made.push_back(d);
    }
    auto cg = std::make_unique<CgroupV1>(name, dirs, true);  // removes itself if a limit fails
    if (limits.any()) PDK_TRY(cg->SetLimits(limits));
    if (auto d = dirs.find(kDevices); d != dirs.end()) {  // deny all, then allow the list
      PDK_TRY(WriteExisting(d->second + "/devices.deny", "a"));
      for (const auto* list : {&StandardDevices(), &devices})
        for (const auto& dev : *list)
          if (dev.read || dev.write) PDK_TRY(WriteExisting(d->second + "/devices.allow", V1DeviceRule(dev)));
    }
    return std::unique_ptr<Cgroup>(std::move(cg));
  }

  // Succeeds if the cgroup exists in any hierarchy: a crash between the
  // mkdirs of Create leaves it in some only, and it must still be removable.
  Result<std::unique_ptr<Cgroup>> Open(const std::string& name) override {
    auto dirs = DirsFor(name);
    bool any = false;
    for (const auto& [c, d] : dirs) any = any || PathExists(d);
    if (!any) return NotFound("cgroup " + name + " does not exist");
    auto cg = std::make_unique<CgroupV1>(name, dirs);
    cg->Keep();
    return std::unique_ptr<Cgroup>(std::move(cg));
  }

  // Names present in any hierarchy (see Open).
  std::vector<std::string> List() override {
    std::set<std::string> names;
    for (const auto& [c, mount] : mounts_)
      for (auto& n : ListDir(mount + "/" + parent_, true)) names.insert(std::move(n));
    return {names.begin(), names.end()};
  }

  void RemoveParentIfEmpty() override {
    for (const auto& [c, mount] : mounts_) ::rmdir((mount + "/" + parent_).c_str());
  }

  Status Init() {
    for (const char* c : kControllers) {
      if (!mounts_.count(c)) return Unimplemented(std::string("cgroup v1 controller '") + c +
                                                  "' is not mounted");
      PDK_TRY(MakeDirs(mounts_[c] + "/" + parent_));
    }
    if (mounts_.count(kDevices)) PDK_TRY(MakeDirs(mounts_[kDevices] + "/" + parent_));
    return Status::Ok();
  }

 private:
  std::map<std::string, std::string> DirsFor(const std::string& name) {
    std::map<std::string, std::string> dirs;
    for (const auto& [c, mount] : mounts_) dirs[c] = mount + "/" + parent_ + "/" + name;
    return dirs;
  }
  std::map<std::string, std::string> mounts_;  // controller -> hierarchy mount point
  std::string parent_;
};

}  // namespace

Result<std::unique_ptr<CgroupDriver>> NewCgroupV1Driver(const std::string& parent) {
  PDK_ASSIGN_OR_RETURN(std::vector<CgroupMount> all, ReadCgroupMounts());
  std::map<std::string, std::string> mounts;
  for (const auto& m : all) {
    if (m.fstype != "cgroup") continue;
    std::istringstream o(m.super_options);
    std::string opt;
    while (std::getline(o, opt, ',')) {
      for (const char* c : kControllers)
        if (opt == c && !mounts.count(c)) mounts[c] = m.mount_point;
      if (opt == kDevices && !mounts.count(kDevices)) mounts[kDevices] = m.mount_point;
    }
  }
  auto driver = std::make_unique<CgroupV1Driver>(std::move(mounts), parent);
  PDK_TRY(driver->Init());
  return std::unique_ptr<CgroupDriver>(std::move(driver));
}

}  // namespace paddock::kernel
