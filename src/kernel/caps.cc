#include "kernel/caps.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <initializer_list>

namespace paddock::kernel::caps {

uint64_t DefaultSet() {
  uint64_t set = 0;
  for (int cap : {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_KILL, CAP_SETGID,
                  CAP_SETUID, CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SYS_CHROOT,
                  CAP_MKNOD, CAP_AUDIT_WRITE, CAP_SETFCAP})
    set |= uint64_t{1} << cap;
  return set;
}

int Restrict(uint64_t keep) {
  for (int cap = 0; cap <= 63; ++cap) {
    if (keep & (uint64_t{1} << cap)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return errno;
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; ++i) {
    auto word = static_cast<uint32_t>(keep >> (32 * i));
    data[i].effective = data[i].permitted = word;
    data[i].inheritable = 0;  // as Docker since CVE-2022-24769: nothing passes through exec by it
  }
  if (::syscall(SYS_capset, &hdr, data) != 0) return errno;
  return 0;
}

}  // namespace paddock::kernel::caps
