#include "kernel/device_filter.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>

namespace paddock::kernel {

namespace {

// The offsets of struct bpf_cgroup_dev_ctx's fields.
constexpr int16_t kAccessType = 0, kMajor = 4, kMinor = 8;
constexpr uint8_t kCtx = 1, kType = 3, kAccess = 4, kMaj = 5, kMin = 6, kScratch = 7;

bpf_insn Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i = {};
  i.code = code;
  i.dst_reg = dst;
  i.src_reg = src;
  i.off = off;
  i.imm = imm;
  return i;
}
bpf_insn LoadWord(uint8_t dst, int16_t off) { return Insn(BPF_LDX | BPF_MEM | BPF_W, dst, kCtx, off, 0); }
bpf_insn MovReg(uint8_t dst, uint8_t src) { return Insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
bpf_insn AluImm(uint8_t op, uint8_t dst, int32_t imm) { return Insn(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm); }
bpf_insn JumpIfNot(uint8_t reg, int32_t imm) { return Insn(BPF_JMP | BPF_JNE | BPF_K, reg, 0, 0, imm); }  // off: set by Rule
bpf_insn Return(int32_t value) { return AluImm(BPF_MOV, 0, value); }
bpf_insn Exit() { return Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

// One rule: its checks, then "allow". A check that fails jumps past the
// rest of the rule, to the next one.
std::vector<bpf_insn> Rule(const DeviceAccess& d) {
  int32_t allowed = (d.read ? BPF_DEVCG_ACC_READ : 0) | (d.write ? BPF_DEVCG_ACC_WRITE : 0);
  std::vector<bpf_insn> out = {JumpIfNot(kType, d.type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR),
                               JumpIfNot(kMaj, static_cast<int32_t>(d.major))};
  if (d.minor >= 0) out.push_back(JumpIfNot(kMin, static_cast<int32_t>(d.minor)));
  // The access asked for, less what the rule allows, must be nothing.
  out.push_back(MovReg(kScratch, kAccess));
  out.push_back(AluImm(BPF_AND, kScratch, ~allowed));
  out.push_back(JumpIfNot(kScratch, 0));
  out.push_back(Return(1));
  out.push_back(Exit());
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i].code == (BPF_JMP | BPF_JNE | BPF_K)) out[i].off = static_cast<int16_t>(out.size() - i - 1);
  return out;
}

long Bpf(int cmd, bpf_attr* attr) { return ::syscall(SYS_bpf, cmd, attr, sizeof *attr); }

}  // namespace

const std::vector<DeviceAccess>& StandardDevices() {
  static const std::vector<DeviceAccess> standard = [] {
    std::vector<DeviceAccess> v = {{'c', 1, 3}, {'c', 1, 5}, {'c', 1, 7}, {'c', 1, 8}, {'c', 1, 9},  // null zero full random urandom
                                   {'c', 5, 0}, {'c', 5, 2}};                                          // tty ptmx
    for (uint32_t major = 136; major < 144; ++major) v.push_back({'c', major, -1});                   // pts/*
    return v;
  }();
  return standard;
}

Result<DeviceAccess> DeviceAccessOf(const std::string& path, const std::string& permissions) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::Errno("stat " + path);
  if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) return InvalidArgument(path + " is not a device node");
  DeviceAccess d{S_ISBLK(st.st_mode) ? 'b' : 'c', major(st.st_rdev), static_cast<int64_t>(minor(st.st_rdev))};
  if (!permissions.empty()) {
    if (permissions.find_first_not_of("rwm") != std::string::npos)
      return InvalidArgument("device permissions '" + permissions + "' must be of r, w and m");
    d.read = permissions.find('r') != std::string::npos;
    d.write = permissions.find('w') != std::string::npos;
  }
  return d;
}

std::string V1DeviceRule(const DeviceAccess& d) {
  std::string access = std::string(d.read ? "r" : "") + (d.write ? "w" : "");
  return std::string(1, d.type) + " " + std::to_string(d.major) + ":" +
         (d.minor < 0 ? std::string("*") : std::to_string(d.minor)) + " " + access;
}

Result<UniqueFd> LoadDeviceProgram(const std::vector<DeviceAccess>& allowed) {
  std::vector<bpf_insn> prog = {
      LoadWord(kType, kAccessType), MovReg(kAccess, kType), AluImm(BPF_AND, kType, 0xffff),
      AluImm(BPF_RSH, kAccess, 16), LoadWord(kMaj, kMajor), LoadWord(kMin, kMinor),
  };
  for (const auto& d : allowed) {
    if (!d.read && !d.write) continue;
    std::vector<bpf_insn> rule = Rule(d);
    prog.insert(prog.end(), rule.begin(), rule.end());
  }
  prog.push_back(Return(0));
  prog.push_back(Exit());

  static const char kLicense[] = "Apache-2.0";
  std::vector<char> log;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bpf_attr attr = {};
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = reinterpret_cast<uint64_t>(prog.data());
    attr.insn_cnt = static_cast<uint32_t>(prog.size());
    attr.license = reinterpret_cast<uint64_t>(kLicense);
    std::strncpy(attr.prog_name, "paddock_dev", sizeof attr.prog_name - 1);
    if (!log.empty()) {  // the second try only says why the first failed
      attr.log_level = 1;
      attr.log_buf = reinterpret_cast<uint64_t>(log.data());
      attr.log_size = static_cast<uint32_t>(log.size());
    }
    int fd = static_cast<int>(Bpf(BPF_PROG_LOAD, &attr));
    if (fd >= 0) return UniqueFd(fd);
    if (errno != EINVAL || !log.empty()) break;
    log.assign(16384, '\0');
  }
  Status s = Status::Errno("load the BPF device program");
  if (!log.empty() && log[0]) return s.Annotate(std::string("verifier: ") + log.data());
  return s;
}

Status AttachDeviceProgram(const std::string& dir, int program) {
  UniqueFd cgroup(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroup) return Status::Errno("open " + dir);
  bpf_attr attr = {};
  attr.target_fd = static_cast<uint32_t>(cgroup.get());
  attr.attach_bpf_fd = static_cast<uint32_t>(program);
  attr.attach_type = BPF_CGROUP_DEVICE;
  if (Bpf(BPF_PROG_ATTACH, &attr) != 0) return Status::Errno("attach the BPF device program to " + dir);
  return Status::Ok();
}

}  // namespace paddock::kernel
