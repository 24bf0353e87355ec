// IPv4 addresses and prefixes, as values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace paddock::net {

struct Ipv4 {
  uint32_t value = 0;  // host byte order
  static Result<Ipv4> Parse(std::string_view text);
  std::string ToString() const;
  uint32_t network_order() const;
  auto operator<=>(const Ipv4&) const = default;
};

struct Cidr {
  Ipv4 base;           // with the host bits cleared
  int prefix = 32;
  // "a.b.c.d/n" or a bare address (/32). Host bits must be zero.
  static Result<Cidr> Parse(std::string_view text);
  std::string ToString() const;
  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  uint64_t size() const { return uint64_t{1} << (32 - prefix); }
  bool Contains(Ipv4 a) const { return (a.value & mask()) == base.value; }
  Ipv4 At(uint64_t offset) const { return {base.value + static_cast<uint32_t>(offset)}; }
  auto operator<=>(const Cidr&) const = default;
};

}  // namespace paddock::net
