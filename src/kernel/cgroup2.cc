// cgroup v2: one folder per sandbox in the unified hierarchy.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>
#include <utility>

#include "base/fs.h"
#include "kernel/cgroup.h"

namespace paddock::kernel {

namespace {

Result<std::string> KeyValue(const std::string& file, const std::string& key) {
  PDK_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  std::istringstream in(text);
  std::string k, v;
  while (in >> k >> v)
    if (k == key) return v;
  return NotFound("no '" + key + "' in " + file);
}

class CgroupV2 : public Cgroup {
 public:
  // Which limit controllers the parent hands down.
  struct Controllers {
    bool memory = false, cpu = false, pids = false;
  };
  // `device_program`: the filter attached to it, attached again on a rename (-1: none).
  // `made`: just made here, so without limits; else (opened) unknown.
  CgroupV2(std::string name, std::string dir, Controllers controllers, int device_program = -1, bool made = false)
      : name_(std::move(name)), dir_(std::move(dir)), controllers_(controllers),
        device_program_(device_program < 0 ? -1 : ::fcntl(device_program, F_DUPFD_CLOEXEC, 0)) {
    if (made) set_ = CgroupLimits{};
  }
  ~CgroupV2() override {
    if (!keep_) (void)Destroy();
  }
  const std::string& name() const override { return name_; }

  Status AddProcess(pid_t pid) override {
    return WriteExisting(dir_ + "/cgroup.procs", std::to_string(pid));
  }

  Status SetLimits(const CgroupLimits& limits) override {
    std::optional<CgroupLimits> was = std::exchange(set_, std::nullopt);  // unknown until written
    PDK_TRY(WriteLimits(dir_, limits, was ? &*was : nullptr));
    set_ = limits;
    return Status::Ok();
  }

  // Writes into `dir` the limits that differ from `was` (all without it).
  Status WriteLimits(const std::string& dir, const CgroupLimits& limits, const CgroupLimits* was) const {
    if (limits.memory_bytes > 0 && !controllers_.memory)
      return Unimplemented("the memory controller is not available (cgroup v2)");
    if (limits.cpu_millicores > 0 && !controllers_.cpu)
      return Unimplemented("the cpu controller is not available (cgroup v2)");
    if (limits.pids > 0 && !controllers_.pids)
      return Unimplemented("the pids controller is not available (cgroup v2)");
    auto changed = [&](int64_t CgroupLimits::*field) { return !was || was->*field != limits.*field; };
    if (controllers_.memory && changed(&CgroupLimits::memory_bytes)) {
      PDK_TRY(WriteExisting(dir + "/memory.max",
                            limits.memory_bytes > 0 ? std::to_string(limits.memory_bytes) : "max"));
      if (PathExists(dir + "/memory.swap.max"))  // no swap beyond a memory limit
        PDK_TRY(WriteExisting(dir + "/memory.swap.max", limits.memory_bytes > 0 ? "0" : "max"));
    }
    if (controllers_.cpu && changed(&CgroupLimits::cpu_millicores))
      PDK_TRY(WriteExisting(dir + "/cpu.max",
                            (limits.cpu_millicores > 0 ? std::to_string(limits.cpu_millicores * 100)
                                                       : std::string("max")) + " 100000"));
    if (controllers_.pids && changed(&CgroupLimits::pids))
      PDK_TRY(WriteExisting(dir + "/pids.max", limits.pids > 0 ? std::to_string(limits.pids) : "max"));
    return Status::Ok();
  }

  // cgroup2 refuses rename(2): make the new folder, move every task, remove the old.
  Status Rename(const std::string& new_name) override {
    std::string to = dir_.substr(0, dir_.rfind('/') + 1) + new_name;
    if (::mkdir(to.c_str(), 0755) != 0) return Status::Errno("mkdir " + to);
    if (set_ && set_->any()) {  // the limits hold before the tasks move in
      const CgroupLimits none;  // a new folder's
      if (Status s = WriteLimits(to, *set_, &none); !s.ok()) {
        ::rmdir(to.c_str());
        return s;
      }
    }
    if (device_program_) {
      if (Status s = AttachDeviceProgram(to, device_program_.get()); !s.ok()) {
        ::rmdir(to.c_str());
        return s;
      }
    }
    PDK_ASSIGN_OR_RETURN(std::vector<pid_t> pids, Pids());
    for (pid_t pid : pids) {
      Status s = WriteExisting(to + "/cgroup.procs", std::to_string(pid));
      if (!s.ok() && s.code() != StatusCode::kNotFound) {  // ESRCH: it exited meanwhile
        for (pid_t back : pids) (void)WriteExisting(dir_ + "/cgroup.procs", std::to_string(back));
        ::rmdir(to.c_str());
        return s;
      }
    }
    if (::rmdir(dir_.c_str()) != 0) return Status::Errno("rmdir " + dir_);
    dir_ = to;
    name_ = new_name;
    if (!set_) set_ = CgroupLimits{};  // a new folder: none
    return Status::Ok();
  }

  // A cgroup that will not freeze is thawed again: a failed pause leaves
  // the sandbox running, not half frozen.
  Status Freeze() override {
    PDK_TRY(WriteExisting(dir_ + "/cgroup.freeze", "1"));
    Status s = WaitUntil([this] { return IsFrozen(); }, 5000, "freezing cgroup");
    if (!s.ok()) (void)Thaw();
    return s;
  }

  Status Thaw() override { return WriteExisting(dir_ + "/cgroup.freeze", "0"); }

  Result<bool> IsFrozen() override {
    auto frozen = KeyValue(dir_ + "/cgroup.events", "frozen");
    if (!frozen.ok()) return frozen.status();
    return *frozen == "1";
  }

  Result<std::vector<pid_t>> Pids() override {
    PDK_ASSIGN_OR_RETURN(std::string text, ReadFile(dir_ + "/cgroup.procs"));
    std::vector<pid_t> pids;
    std::istringstream in(text);
    pid_t pid;
    while (in >> pid) pids.push_back(pid);
    return pids;
  }

  Result<CgroupStats> Stats() override {
    CgroupStats s;
    if (auto v = KeyValue(dir_ + "/cpu.stat", "usage_usec"); v.ok())
      s.cpu_usage_ns = std::strtoull(v->c_str(), nullptr, 10) * 1000;
    if (auto v = ReadFile(dir_ + "/memory.current"); v.ok())
      s.memory_bytes = std::strtoull(v->c_str(), nullptr, 10);
    if (auto v = KeyValue(dir_ + "/memory.events", "oom_kill"); v.ok())
      s.oom_kills = std::strtoull(v->c_str(), nullptr, 10);
    if (auto v = ReadFile(dir_ + "/pids.current"); v.ok())
      s.pids = std::strtoull(v->c_str(), nullptr, 10);
    return s;
  }

  Status Destroy() override {
    if (destroyed_) return Status::Ok();
    if (::access(dir_.c_str(), F_OK) != 0) {
      destroyed_ = true;
      return Status::Ok();
    }
    // cgroup.kill (5.14+) also kills frozen tasks; older kernels get one signal each.
    if (WriteExisting(dir_ + "/cgroup.kill", "1").ok() == false) {
      for (int round = 0; round < 100; ++round) {
        auto pids = Pids();
        if (!pids.ok() || pids->empty()) break;
        for (pid_t pid : *pids) ::kill(pid, SIGKILL);
        (void)Thaw();
        ::usleep(round < 10 ? 200 : 2000);
      }
    }
    Status s = WaitUntil(
        [this]() -> Result<bool> {
          if (::rmdir(dir_.c_str()) == 0 || errno == ENOENT) return true;
          if (errno == EBUSY) return false;
          return Status::Errno("rmdir " + dir_);
        },
        5000, "removing cgroup");
    destroyed_ = s.ok();
    return s;
  }

 private:
  std::string name_;
  std::optional<CgroupLimits> set_;  // as last written (a rename copies them); unknown when opened
  std::string dir_;
  Controllers controllers_;
  UniqueFd device_program_;
  bool destroyed_ = false;
};

class CgroupV2Driver : public CgroupDriver {
 public:
  CgroupV2Driver(std::string mount, std::string parent)
      : mount_(std::move(mount)), parent_dir_(mount_ + "/" + parent) {}
  const char* version() const override { return "v2"; }
  bool SupportsLimits() const override {
    return controllers_.memory && controllers_.cpu && controllers_.pids;
  }
  std::string device_filter() const override { return standard_program_ ? "BPF device program" : ""; }
  std::string device_filter_error() const override { return device_filter_error_; }

  void RemoveParentIfEmpty() override { ::rmdir(parent_dir_.c_str()); }

  Status Init() {
    PDK_TRY(MakeDirs(parent_dir_));
    auto available = ReadFile(mount_ + "/cgroup.controllers");
    std::string enable;
    if (available.ok()) {
      std::istringstream in(*available);
      std::string c;
      while (in >> c) {
        if (c == "memory") controllers_.memory = true;
        if (c == "cpu") controllers_.cpu = true;
        if (c == "pids") controllers_.pids = true;
        if (c == "memory" || c == "cpu" || c == "pids") enable += "+" + c + " ";
      }
    }
    if (!enable.empty()) {
      PDK_TRY(WriteExisting(mount_ + "/cgroup.subtree_control", enable));
      PDK_TRY(WriteExisting(parent_dir_ + "/cgroup.subtree_control", enable));
    }
    // Loaded once, attached to every sandbox's cgroup that holds no device.
    // A kernel without it (no CONFIG_CGROUP_BPF, or bpf(2) refused) still
    // runs sandboxes: their user namespace keeps them from making nodes.
    auto program = LoadDeviceProgram(StandardDevices());
    if (program.ok()) standard_program_ = std::move(*program);
    else device_filter_error_ = program.status().message();
    return Status::Ok();
  }

  Result<std::unique_ptr<Cgroup>> Create(const std::string& name, const CgroupLimits& limits,
                                         const std::vector<DeviceAccess>& devices) override {
    UniqueFd own_program;
    if (!devices.empty()) {
      if (!standard_program_) return FailedPrecondition("device access cannot be limited here: " + device_filter_error_);
      std::vector<DeviceAccess> allowed = StandardDevices();
      allowed.insert(allowed.end(), devices.begin(), devices.end());
      PDK_ASSIGN_OR_RETURN(own_program, LoadDeviceProgram(allowed));
    }
    int program = own_program ? own_program.get() : standard_program_.get();
    std::string dir = parent_dir_ + "/" + name;
    if (::mkdir(dir.c_str(), 0755) != 0) return Status::Errno("mkdir " + dir);
    auto cg = std::make_unique<CgroupV2>(name, dir, controllers_, program, true);  // removes itself on failure
    if (limits.any()) PDK_TRY(cg->SetLimits(limits));
    if (program >= 0) PDK_TRY(AttachDeviceProgram(dir, program));
    return std::unique_ptr<Cgroup>(std::move(cg));
  }

  Result<std::unique_ptr<Cgroup>> Open(const std::string& name) override {
    std::string dir = parent_dir_ + "/" + name;
    if (!PathExists(dir)) return NotFound("cgroup " + dir + " does not exist");
    auto cg = std::make_unique<CgroupV2>(name, dir, controllers_);
    cg->Keep();
    return std::unique_ptr<Cgroup>(std::move(cg));
  }

  std::vector<std::string> List() override { return ListDir(parent_dir_, true); }

 private:
  std::string mount_;
  std::string parent_dir_;
  CgroupV2::Controllers controllers_;
  UniqueFd standard_program_;
  std::string device_filter_error_;
};

}  // namespace

Result<std::unique_ptr<CgroupDriver>> NewCgroupV2Driver(const std::string& mount,
                                                        const std::string& parent) {
  auto driver = std::make_unique<CgroupV2Driver>(mount, parent);
  PDK_TRY(driver->Init());
  return std::unique_ptr<CgroupDriver>(std::move(driver));
}

}  // namespace paddock::kernel
