// Connections (Pipe): message boundaries, EOF, size limits, poll, direction, errors, in one process.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "mproc.h"
#include "test_util.h"

#ifndef _WIN32
#include <pthread.h>
#include <signal.h>
#include <time.h>
#endif

namespace {

using mproc_test::PipePair;

std::vector<char> pattern(size_t n, unsigned seed) {
  std::vector<char> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = (char)((i * 131 + seed) & 0xFF);
  return v;
}

} // namespace

TEST(Connection, DuplexBothWays) {
  PipePair p;
  ASSERT_EQ(mproc_connection_send_bytes(p.a, "ping", 4, 0, MPROC_ALL), 0);
  char *m = nullptr;
  size_t n = 0;
  ASSERT_EQ(mproc_connection_recv_bytes(p.b, 0, MPROC_INFINITE, &m, &n), 0);
  EXPECT_EQ(std::string(m, n), "ping");
  mproc_free(m);
  ASSERT_EQ(mproc_connection_send_bytes(p.b, "pong", 4, 0, MPROC_ALL), 0);
  ASSERT_EQ(mproc_connection_recv_bytes(p.a, 0, MPROC_INFINITE, &m, &n), 0);
  EXPECT_EQ(std::string(m, n), "pong");
  mproc_free(m);
  EXPECT_TRUE(mproc_connection_readable(p.a) && mproc_connection_writable(p.a));
  EXPECT_NE(mproc_connection_handle(p.a), MPROC_NO_HANDLE);
  EXPECT_NE(mproc_connection_send_handle(p.a), MPROC_NO_HANDLE);
  // POSIX: a pipe each way; Windows: one named pipe serves both directions
  EXPECT_EQ(mproc_connection_handle(p.a) == mproc_connection_send_handle(p.a), mproc_test::kWindows);
  mproc_connection_close(p.a);
  EXPECT_EQ(mproc_connection_handle(p.a), MPROC_NO_HANDLE);
  EXPECT_EQ(mproc_connection_send_handle(p.a), MPROC_NO_HANDLE);
}

TEST(Connection, HandlesOfOneWayEnds) {
  PipePair p(false); // a receives, b sends
  EXPECT_NE(mproc_connection_handle(p.a), MPROC_NO_HANDLE);
  EXPECT_EQ(mproc_connection_send_handle(p.a), MPROC_NO_HANDLE);
  EXPECT_NE(mproc_connection_handle(p.b), MPROC_NO_HANDLE); // a send-only end: its send handle
  EXPECT_EQ(mproc_connection_send_handle(p.b), mproc_connection_handle(p.b));
}

TEST(Connection, SimplexEndsRefuseTheWrongDirection) {
  PipePair p(false); // a receives, b sends
  EXPECT_TRUE(mproc_connection_readable(p.a));
  EXPECT_FALSE(mproc_connection_writable(p.a));
  EXPECT_FALSE(mproc_connection_readable(p.b));
  EXPECT_EQ(mproc_connection_send_bytes(p.a, "x", 1, 0, 1), MPROC_ESTATE);
  EXPECT_NE(std::string(mproc_last_error()).find("receive-only"), std::string::npos) << mproc_last_error();
  char *m = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(p.b, 0, 0, &m, &n), MPROC_ESTATE);
  EXPECT_EQ(mproc_connection_poll(p.b, 0), MPROC_ESTATE);
  ASSERT_EQ(mproc_connection_send_bytes(p.b, "one-way", 7, 0, MPROC_ALL), 0);
  ASSERT_EQ(mproc_connection_recv_bytes(p.a, 0, MPROC_INFINITE, &m, &n), 0);
  EXPECT_EQ(std::string(m, n), "one-way");
  mproc_free(m);
}

// Sizes around every switch of the transport: the one-write path (16 KiB), the POSIX bulk handle
// (48 KiB), a pipe's capacity (64 KiB); small and large interleaved, on duplex and one-way pipes.
void boundaries(bool duplex) {
  SCOPED_TRACE(duplex ? "duplex" : "one-way");
  PipePair p(duplex);
  if (!duplex) std::swap(p.a, p.b); // a sends, b receives
  const size_t sizes[] = {0, 1,     2,     3,     4,       5, 100,   4095, 4096, 16384,   16385, 49151, 49152, 49153,
                          7, 65535, 65536, 65537, 1000000, 1, 49152, 0,    7,    1 << 22, 3,     16384, 49151};
  std::thread sender([&] {
    unsigned seed = 0;
    for (size_t s : sizes) {
      auto v = pattern(s, seed++);
      ASSERT_EQ(mproc_connection_send_bytes(p.a, v.data(), v.size(), 0, MPROC_ALL), 0) << mproc_last_error();
    }
  });
  unsigned seed = 0;
  for (size_t s : sizes) {
    char *m = nullptr;
    size_t n = 99;
    ASSERT_EQ(mproc_connection_recv_bytes(p.b, 0, MPROC_INFINITE, &m, &n), 0) << mproc_last_error();
    ASSERT_EQ(n, s);
    auto v = pattern(s, seed++);
    if (s) {
      EXPECT_EQ(memcmp(m, v.data(), s), 0) << "message of " << s << " bytes";
    }
    EXPECT_EQ(m[n], '\0');
    mproc_free(m);
  }
  sender.join();
}

TEST(Connection, MessageBoundariesHoldForEverySize) {
  boundaries(true);
  boundaries(false);
}

// One message of 1 GiB keeps its boundary and every byte: a mark every MiB (its own index), so a
// lost, repeated or shifted stretch shows; the small message behind it comes whole after it.
TEST(Connection, OneGibibyteMessage) {
  if (mproc_test::kThreadSanitizer)
    GTEST_SKIP() << "TSan shadows each byte fourfold: 2 GiB of buffers would take over 8 GiB";
  const size_t kSize = size_t(1) << 30, kStep = size_t(1) << 20;
  std::vector<char> big(kSize, 'g');
  for (size_t off = 0; off < kSize; off += kStep) memcpy(&big[off], &off, sizeof off);
  PipePair p;
  std::thread sender([&] {
    ASSERT_EQ(mproc_connection_send_bytes(p.a, big.data(), big.size(), 0, MPROC_ALL), 0) << mproc_last_error();
    ASSERT_EQ(mproc_connection_send_bytes(p.a, "next", 4, 0, MPROC_ALL), 0) << mproc_last_error();
  });
  char *m = nullptr;
  size_t n = 0;
  ASSERT_EQ(mproc_connection_recv_bytes(p.b, 0, MPROC_INFINITE, &m, &n), 0) << mproc_last_error();
  EXPECT_EQ(n, kSize);
  EXPECT_TRUE(n == kSize && memcmp(m, big.data(), kSize) == 0);
  mproc_free(m);
  ASSERT_EQ(mproc_connection_recv_bytes(p.b, 0, MPROC_INFINITE, &m, &n), 0) << mproc_last_error();
  EXPECT_EQ(std::string(m, n), "next");
  mproc_free(m);
  sender.join();
}

// A large message refused for its size stays whole and in order, ahead of the small ones behind it.
TEST(Connection, RefusedLargeMessageStaysAheadOfSmallOnes) {
  PipePair p;
  auto big = pattern(1 << 20, 5);
  std::thread sender([&] {
    ASSERT_EQ(mproc_connection_send_bytes(p.a, big.data(), big.size(), 0, MPROC_ALL), 0) << mproc_last_error();
    ASSERT_EQ(mproc_connection_send_bytes(p.a, "after", 5, 0, MPROC_ALL), 0) << mproc_last_error();
  });
  char small[16];
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes_into(p.b, small, sizeof small, MPROC_INFINITE, &n), MPROC_EMSGSIZE);
  EXPECT_EQ(n, big.size());
  char *m = nullptr;
  EXPECT_EQ(mproc_connection_recv_bytes(p.b, 1000, MPROC_INFINITE, &m, &n), MPROC_EMSGSIZE);
  EXPECT_EQ(mproc_connection_poll(p.b, 0), 0);
  std::vector<char> got(big.size());
  ASSERT_EQ(mproc_connection_recv_bytes_into(p.b, got.data(), got.size(), MPROC_INFINITE, &n), 0) << mproc_last_error();
  EXPECT_EQ(n, big.size());
  EXPECT_TRUE(got == big);
  ASSERT_EQ(mproc_connection_recv_bytes_into(p.b, small, sizeof small, MPROC_INFINITE, &n), 0);
  EXPECT_EQ(std::string(small, n), "after");
  sender.join();
}

TEST(Connection, SixtyFourMebibyteMessage) {
  PipePair p;
  auto big = pattern(64u << 20, 9);
  std::thread sender([&] { EXPECT_EQ(mproc_connection_send_bytes(p.a, big.data(), big.size(), 0, MPROC_ALL), 0); });
  char *m = nullptr;
  size_t n = 0;
  ASSERT_EQ(mproc_connection_recv_bytes(p.b, 0, MPROC_INFINITE, &m, &n), 0) << mproc_last_error();
  sender.join();
  ASSERT_EQ(n, big.size());
  EXPECT_EQ(memcmp(m, big.data(), n), 0);
  mproc_free(m);
}

TEST(Connection, OffsetAndSize) {
  PipePair p;
  const char buf[] = "0123456789";
  ASSERT_EQ(mproc_connection_send_bytes(p.a, buf, 10, 3, 4), 0);
  ASSERT_EQ(mproc_connection_send_bytes(p.a, buf, 10, 8, MPROC_ALL), 0);
  ASSERT_EQ(mproc_connection_send_bytes(p.a, buf, 10, 10, MPROC_ALL), 0); // empty, at the end
  EXPECT_EQ(mproc_connection_send_bytes(p.a, buf, 10, 11, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_connection_send_bytes(p.a, buf, 10, 5, 6), MPROC_EINVAL);
  EXPECT_EQ(mproc_connection_send_bytes(p.a, nullptr, 10, 0, 1), MPROC_EINVAL);
  char *m = nullptr;
  size_t n = 0;
  ASSERT_EQ(mproc_connection_recv_bytes(p.b, 0, MPROC_INFINITE, &m, &n), 0);
  EXPECT_EQ(std::string(m, n), "3456");
  mproc_free(m);
  ASSERT_EQ(mproc_connection_recv_bytes(p.b, 0, MPROC_INFINITE, &m, &n), 0);
  EXPECT_EQ(std::string(m, n), "89");
  mproc_free(m);
  ASSERT_EQ(mproc_connection_recv_bytes(p.b, 0, MPROC_INFINITE, &m, &n), 0);
  EXPECT_EQ(n, 0u);
  mproc_free(m);
}

TEST(Connection, MaxlengthRefusesButKeepsTheMessage) {
  PipePair p;
  std::string msg(1000, 'q');
  ASSERT_EQ(mproc_connection_send_bytes(p.a, msg.data(), msg.size(), 0, MPROC_ALL), 0);
  char *m = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(p.b, 999, MPROC_INFINITE, &m, &n), MPROC_EMSGSIZE);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(mproc_last_error()).find("1000"), std::string::npos) << mproc_last_error();
  EXPECT_EQ(mproc_connection_poll(p.b, 0), 0); // still there
  ASSERT_EQ(mproc_connection_recv_bytes(p.b, 1000, MPROC_INFINITE, &m, &n), 0);
  EXPECT_EQ(std::string(m, n), msg);
  mproc_free(m);
}

TEST(Connection, RecvIntoTooSmallTellsTheSizeAndKeepsTheMessage) {
  PipePair p;
  ASSERT_EQ(mproc_connection_send_bytes(p.a, "hello world", 11, 0, MPROC_ALL), 0);
  ASSERT_EQ(mproc_connection_send_bytes(p.a, "next", 4, 0, MPROC_ALL), 0);
  char small[5];
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes_into(p.b, small, sizeof small, MPROC_INFINITE, &n), MPROC_EMSGSIZE);
  EXPECT_EQ(n, 11u);
  char big[32];
  ASSERT_EQ(mproc_connection_recv_bytes_into(p.b, big, sizeof big, MPROC_INFINITE, &n), 0);
  EXPECT_EQ(std::string(big, n), "hello world");
  ASSERT_EQ(mproc_connection_recv_bytes_into(p.b, small, sizeof small, MPROC_INFINITE, &n), 0);
  EXPECT_EQ(std::string(small, n), "next");
}

TEST(Connection, EndOfFileAfterPeerClosesAndDataIsDrained) {
  PipePair p;
  ASSERT_EQ(mproc_connection_send_bytes(p.a, "last", 4, 0, MPROC_ALL), 0);
  ASSERT_EQ(mproc_connection_close(p.a), 0);
  EXPECT_TRUE(mproc_connection_closed(p.a));
  EXPECT_EQ(mproc_connection_close(p.a), 0); // twice is harmless
  EXPECT_EQ(mproc_connection_send_bytes(p.a, "x", 1, 0, 1), MPROC_ECLOSED);
  char *m = nullptr;
  size_t n = 0;
  ASSERT_EQ(mproc_connection_recv_bytes(p.b, 0, MPROC_INFINITE, &m, &n), 0);
  EXPECT_EQ(std::string(m, n), "last");
  mproc_free(m);
  EXPECT_EQ(mproc_connection_poll(p.b, 0), 0); // EOF counts as ready
  EXPECT_EQ(mproc_connection_recv_bytes(p.b, 0, MPROC_INFINITE, &m, &n), MPROC_EEOF);
  EXPECT_EQ(mproc_connection_recv_bytes(p.b, 0, MPROC_INFINITE, &m, &n), MPROC_EEOF);
}

TEST(Connection, SendToAClosedPeerIsBrokenPipeNotASignal) {
  PipePair p;
  mproc_connection_close(p.b);
  std::vector<char> v(1 << 20, 'x');
  EXPECT_EQ(mproc_connection_send_bytes(p.a, v.data(), v.size(), 0, MPROC_ALL), MPROC_EPIPE);
  EXPECT_EQ(mproc_connection_send_bytes(p.a, "x", 1, 0, 1), MPROC_EPIPE);
#ifndef _WIN32
  // The SIGPIPE the write raised was consumed and the thread's mask is as it was: nothing pending,
  // nothing left blocked (the process-wide disposition was never touched: this test would die).
  sigset_t pending, mask;
  sigemptyset(&pending);
  sigpending(&pending);
  EXPECT_FALSE(sigismember(&pending, SIGPIPE));
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  EXPECT_FALSE(sigismember(&mask, SIGPIPE));
#endif
}

#ifndef _WIN32
// A thread that blocks SIGPIPE itself keeps its mask (tests/pal_posix.cc runs both ways of
// preventing the signal).
TEST(Connection, SendToAClosedPeerWithSigpipeAlreadyBlocked) {
  PipePair p;
  mproc_connection_close(p.b);
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  EXPECT_EQ(mproc_connection_send_bytes(p.a, "x", 1, 0, 1), MPROC_EPIPE);
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  EXPECT_TRUE(sigismember(&mask, SIGPIPE));
  struct timespec zero = {0, 0};
  while (sigtimedwait(&set, nullptr, &zero) == SIGPIPE) { // pending only where the guard was used
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}
#endif

TEST(Connection, PollAndRecvTimeout) {
  PipePair p;
  EXPECT_EQ(mproc_connection_poll(p.b, 0), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_connection_poll(p.b, 30), MPROC_ETIMEDOUT);
  char *m = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(p.b, 0, 20, &m, &n), MPROC_ETIMEDOUT);
  ASSERT_EQ(mproc_connection_send_bytes(p.a, "late", 4, 0, MPROC_ALL), 0);
  EXPECT_EQ(mproc_connection_poll(p.b, MPROC_INFINITE), 0);
  ASSERT_EQ(mproc_connection_recv_bytes(p.b, 0, 0, &m, &n), 0);
  EXPECT_EQ(std::string(m, n), "late");
  mproc_free(m);
}

TEST(Connection, BadArguments) {
  mproc_connection *a = nullptr;
  EXPECT_EQ(mproc_pipe(true, &a, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_connection_send_bytes(nullptr, "x", 1, 0, 1), MPROC_EINVAL);
  EXPECT_EQ(mproc_connection_poll(nullptr, 0), MPROC_EINVAL);
  PipePair p;
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(p.b, 0, 0, nullptr, &n), MPROC_EINVAL);
  EXPECT_TRUE(mproc_connection_closed(nullptr));
  mproc_connection_destroy(nullptr);
}

TEST(Connection, WaitReportsReadyConnections) {
  PipePair p1, p2, p3;
  ASSERT_EQ(mproc_connection_send_bytes(p2.a, "x", 1, 0, 1), 0);
  mproc_waitable w[3] = {mproc_waitable_connection(p1.b), mproc_waitable_connection(p2.b),
                         mproc_waitable_connection(p3.b)};
  size_t nready = 0;
  ASSERT_EQ(mproc_wait(w, 3, MPROC_INFINITE, &nready), 0);
  EXPECT_EQ(nready, 1u);
  EXPECT_FALSE(w[0].ready);
  EXPECT_TRUE(w[1].ready);
  EXPECT_FALSE(w[2].ready);
  char *m = nullptr;
  size_t n = 0;
  ASSERT_EQ(mproc_connection_recv_bytes(p2.b, 0, 0, &m, &n), 0);
  mproc_free(m);
  EXPECT_EQ(mproc_wait(w, 3, 20, &nready), MPROC_ETIMEDOUT);
  EXPECT_EQ(nready, 0u);
  mproc_waitable bad[1] = {mproc_waitable_connection(nullptr)};
  EXPECT_EQ(mproc_wait(bad, 1, 0, &nready), MPROC_EINVAL);
  mproc_waitable none[1] = {};
  EXPECT_EQ(mproc_wait(none, 1, 0, &nready), MPROC_EINVAL); // MPROC_WAIT_NONE
  mproc_waitable unknown[1] = {mproc_waitable_connection(p1.b)};
  unknown[0].kind = (mproc_wait_kind)99;
  EXPECT_EQ(mproc_wait(unknown, 1, 0, &nready), MPROC_EINVAL);
}
