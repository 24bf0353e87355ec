#include "net/address.h"

#include <arpa/inet.h>

#include <charconv>

namespace paddock::net {

Result<Ipv4> Ipv4::Parse(std::string_view text) {
  std::string s(text);
  in_addr a;
  if (::inet_pton(AF_INET, s.c_str(), &a) != 1)
    return InvalidArgument("'" + s + "' is not an IPv4 address");
  return Ipv4{ntohl(a.s_addr)};
}

std::string Ipv4::ToString() const {
  in_addr a{htonl(value)};
  char buf[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

uint32_t Ipv4::network_order() const { return htonl(value); }

Result<Cidr> Cidr::Parse(std::string_view text) {
  Cidr c;
  size_t slash = text.find('/');
  PDK_ASSIGN_OR_RETURN(c.base, Ipv4::Parse(text.substr(0, slash)));
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), c.prefix);
    if (ec != std::errc() || end != p.data() + p.size() || p.empty() || c.prefix < 0 || c.prefix > 32)
      return InvalidArgument("'" + std::string(text) + "' has no valid prefix length (0-32)");
  }
  if ((c.base.value & ~c.mask()) != 0)
    return InvalidArgument("'" + std::string(text) + "' has host bits set (did you mean " +
                           Cidr{{c.base.value & c.mask()}, c.prefix}.ToString() + "?)");
  return c;
}

std::string Cidr::ToString() const { return base.ToString() + "/" + std::to_string(prefix); }

}  // namespace paddock::net
