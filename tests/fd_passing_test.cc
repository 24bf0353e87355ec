#include "base/fd_passing.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/fd.h"

namespace paddock {
namespace {

TEST(FdPassingTest, FdsArriveCloseOnExecAndThoseBeyondRoomAreClosed) {
  int sp[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
  UniqueFd a(sp[0]), b(sp[1]);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  UniqueFd r(p[0]), w(p[1]);
  int sent[2] = {r.get(), w.get()};
  ASSERT_EQ(SendWithFds(a.get(), "hello", 5, sent, 2), 0);
  char buf[16];
  int got[1] = {-1};
  size_t count = 9;
  ASSERT_EQ(RecvWithFds(b.get(), buf, sizeof buf, got, 1, &count), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
  ASSERT_EQ(count, 1u);
  UniqueFd kept(got[0]);
  EXPECT_EQ(::fcntl(kept.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  // The one kept is the pipe's read end: what the write end carries arrives.
  ASSERT_EQ(::write(w.get(), "x", 1), 1);
  char x = 0;
  EXPECT_EQ(::read(kept.get(), &x, 1), 1);
  EXPECT_EQ(x, 'x');

  EXPECT_EQ(SendWithFds(a.get(), "", 0, nullptr, 0), EINVAL);  // a message holds a byte at least
  a.reset();
  EXPECT_EQ(RecvWithFds(b.get(), buf, sizeof buf, got, 1, &count), 0);  // EOF
  EXPECT_EQ(count, 0u);
}

}  // namespace
}  // namespace paddock
