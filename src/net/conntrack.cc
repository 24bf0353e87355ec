#include "net/conntrack.h"

#include <arpa/inet.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include <cerrno>
#include <memory>
#include <vector>

namespace paddock::net {
namespace {

struct HandleCloser {
  void operator()(nfct_handle* h) const { nfct_close(h); }
};
struct CtDeleter {
  void operator()(nf_conntrack* ct) const { nfct_destroy(ct); }
};
struct FilterDeleter {
  void operator()(nfct_filter_dump* f) const { nfct_filter_dump_destroy(f); }
};
using Handle = std::unique_ptr<nfct_handle, HandleCloser>;
using Conntrack = std::unique_ptr<nf_conntrack, CtDeleter>;

struct Matches {
  uint32_t address;  // network order
  std::vector<Conntrack> found;
};

int Collect(enum nf_conntrack_msg_type, nf_conntrack* ct, void* data) {
  auto* m = static_cast<Matches*>(data);
  for (nf_conntrack_attr a : {ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV4_DST, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV4_DST}) {
    if (nfct_attr_is_set(ct, a) > 0 && nfct_get_attr_u32(ct, a) == m->address) {
      m->found.emplace_back(nfct_clone(ct));
      break;
    }
  }
  return NFCT_CB_CONTINUE;
}

}  // namespace

Result<int> ForgetConnections(Ipv4 address) {
  Handle dump(nfct_open(CONNTRACK, 0));
  if (!dump) return Status::Errno("open ctnetlink");
  Matches m{address.network_order(), {}};
  std::unique_ptr<nfct_filter_dump, FilterDeleter> filter(nfct_filter_dump_create());
  if (!filter) return Internal("conntrack: out of memory");
  nfct_filter_dump_set_attr_u8(filter.get(), NFCT_FILTER_DUMP_L3NUM, AF_INET);
  nfct_callback_register(dump.get(), NFCT_T_ALL, Collect, &m);
  if (nfct_query(dump.get(), NFCT_Q_DUMP_FILTER, filter.get()) != 0)
    return Status::Errno("dump the conntrack table");
  // Deletes go through a handle of their own: the dump's has Collect
  // registered, which must not run (and grow m.found) meanwhile.
  Handle deleter(nfct_open(CONNTRACK, 0));
  if (!deleter) return Status::Errno("open ctnetlink");
  int deleted = 0;
  for (auto& ct : m.found) {
    if (!ct) return Internal("conntrack: out of memory");
    // Gone meanwhile (it timed out) is as good as deleted.
    if (nfct_query(deleter.get(), NFCT_Q_DESTROY, ct.get()) == 0) ++deleted;
    else if (errno != ENOENT) return Status::Errno("delete a tracked connection of " + address.ToString());
  }
  return deleted;
}

}  // namespace paddock::net
