#include "base/ids.h"

#include <sys/random.h>

#include <cerrno>

namespace paddock {

static void FillRandom(unsigned char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::getrandom(buf + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      __builtin_trap();  // no entropy source means no safe ids; never happens on Linux >= 3.17
    }
    got += static_cast<size_t>(r);
  }
}

std::string RandomHex(size_t bytes) {
  static const char kHex[] = "0123456789abcdef";
  unsigned char buf[64];
  std::string out;
  while (bytes > 0) {
    size_t n = bytes < sizeof buf ? bytes : sizeof buf;
    FillRandom(buf, n);
    for (size_t i = 0; i < n; ++i) {
      out += kHex[buf[i] >> 4];
      out += kHex[buf[i] & 15];
    }
    bytes -= n;
  }
  return out;
}

std::string NewSandboxId() {
  static const char kAlnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char buf[20];
  FillRandom(buf, sizeof buf);
  std::string id;
  id += kAlnum[buf[0] % 26];
  for (size_t i = 1; i < sizeof buf; ++i) id += kAlnum[buf[i] % 36];
  return id;
}

}  // namespace paddock
