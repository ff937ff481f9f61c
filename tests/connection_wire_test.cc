// White-box tests of the connection receive path against a hostile or stalled peer: the peer's bytes
// are written raw (mproc__pal_conn_send on the connection's own handles), so headers can stop anywhere,
// lie about their length, or never be followed by their payload. Linux and Windows alike.
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "connection_internal.h"
#include "pal.h"
}
#include "test_util.h"

namespace {

struct Pair {
  mproc_connection *a = nullptr, *b = nullptr;  // a receives, b's handles are written raw
  Pair() { EXPECT_EQ(mproc_pipe(true, &a, &b), 0) << mproc_last_error(); }
  ~Pair() {
    mproc_connection_destroy(a);
    mproc_connection_destroy(b);
  }
  void raw(const void *p, size_t n) const { ASSERT_EQ(mproc__pal_conn_send(b->e.wr, p, n, nullptr, 0), 0) << mproc_last_error(); }
  void raw(const std::string &s) const { raw(s.data(), s.size()); }
};

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = (char)(v >> (8 * i));
  return s;
}
std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = (char)(v >> (8 * i));
  return s;
}
std::string payload(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = (char)('A' + (i * 7 + i / 251) % 26);
  return s;
}

int recv_str(mproc_connection *c, int64_t ms, std::string *out, size_t maxlength = 0) {
  char *d = nullptr;
  size_t n = 0;
  int rc = mproc_connection_recv_bytes(c, maxlength, ms, &d, &n);
  if (rc == 0) out->assign(d, n);
  mproc_free(d);
  return rc;
}

TEST(ConnectionWire, StalledMidHeaderTimesOutAndLosesNothing) {
  Pair p;
  std::string msg = payload(100), frame = le32(100) + msg;
  p.raw(frame.substr(0, 2));
  std::string got;
  EXPECT_EQ(recv_str(p.a, 0, &got), MPROC_ETIMEDOUT);
  EXPECT_EQ(recv_str(p.a, 200, &got), MPROC_ETIMEDOUT);
  // half a header is not "ready": a receive would make no progress
  EXPECT_EQ(mproc_connection_poll(p.a, 0), MPROC_ETIMEDOUT);
  p.raw(frame.substr(2, 3));
  EXPECT_EQ(mproc_connection_poll(p.a, MPROC_INFINITE), 0);  // new bytes: progress
  EXPECT_EQ(recv_str(p.a, 0, &got), MPROC_ETIMEDOUT);
  p.raw(frame.substr(5));
  ASSERT_EQ(recv_str(p.a, 5000, &got), 0) << mproc_last_error();
  EXPECT_EQ(got, msg);
}

TEST(ConnectionWire, StalledMidPayloadTimesOutAndTheNextReceiveContinues) {
  for (int into = 0; into < 2; ++into) {
    SCOPED_TRACE(into ? "recv_bytes_into" : "recv_bytes");
    Pair p;
    std::string msg = payload(1000), frame = le32(1000) + msg + le32(3) + "end";
    p.raw(frame.substr(0, 404));
    char buf[2000];
    size_t n = 0;
    std::string got;
    for (int64_t ms : {0, 200}) {
      int rc = into ? mproc_connection_recv_bytes_into(p.a, buf, sizeof buf, ms, &n) : recv_str(p.a, ms, &got);
      EXPECT_EQ(rc, MPROC_ETIMEDOUT);
    }
    EXPECT_EQ(mproc_connection_poll(p.a, 0), MPROC_ETIMEDOUT);  // nothing new since
    p.raw(frame.substr(404, 300));
    // one kind of receive may continue what the other began
    EXPECT_EQ(into ? recv_str(p.a, 0, &got) : mproc_connection_recv_bytes_into(p.a, buf, sizeof buf, 0, &n),
              MPROC_ETIMEDOUT);
    p.raw(frame.substr(704));
    if (into) {
      ASSERT_EQ(mproc_connection_recv_bytes_into(p.a, buf, sizeof buf, 5000, &n), 0) << mproc_last_error();
      got.assign(buf, n);
    } else {
      ASSERT_EQ(recv_str(p.a, 5000, &got), 0) << mproc_last_error();
    }
    EXPECT_EQ(got, msg);
    ASSERT_EQ(recv_str(p.a, 5000, &got), 0);
    EXPECT_EQ(got, "end");
  }
}

// recv_bytes times out after the header with no payload yet (its buffer holds nothing), then
// recv_bytes_into gets part of the payload and times out too: recv_bytes' empty buffer is released,
// not leaked under the one that keeps the part (found by tests/fuzz/fuzz_frames.c; ASan's leak check).
TEST(ConnectionWire, IntoContinuesAfterRecvBytesGotOnlyTheHeader) {
  Pair p;
  std::string got;
  p.raw(le32(3));
  EXPECT_EQ(recv_str(p.a, 0, &got), MPROC_ETIMEDOUT);
  p.raw("x");
  char buf[16];
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes_into(p.a, buf, sizeof buf, 0, &n), MPROC_ETIMEDOUT);
  EXPECT_EQ(p.a->mgot, 1u);
  p.raw("yz");
  ASSERT_EQ(mproc_connection_recv_bytes_into(p.a, buf, sizeof buf, 5000, &n), 0) << mproc_last_error();
  EXPECT_EQ(std::string(buf, n), "xyz");
}

// A large message whose payload stops half way (POSIX: on the bulk socket; Windows: on the pipe).
TEST(ConnectionWire, StalledMidLargePayloadTimesOut) {
  Pair p;
  const size_t len = 3 << 20;
  std::string msg = payload(len);
  bool bulk = p.b->e.bulk != MPROC_NO_HANDLE;
  if (bulk) {
    p.raw(le32(0xFFFFFFFEu) + le64(len));
  } else {
    p.raw(le32((uint32_t)len));
  }
  mproc_os_handle to = bulk ? p.b->e.bulk : p.b->e.wr;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    EXPECT_EQ(mproc__pal_conn_send(to, msg.data(), len / 2, nullptr, 0), 0);
    done = true;
  });
  std::string got;
  // keep receiving with short deadlines while the first half arrives: each one times out, none fails
  while (!done) ASSERT_EQ(recv_str(p.a, 50, &got), MPROC_ETIMEDOUT) << mproc_last_error();
  writer.join();
  EXPECT_EQ(recv_str(p.a, 200, &got), MPROC_ETIMEDOUT);
  EXPECT_EQ(p.a->mgot, len / 2);
  std::thread rest([&] { EXPECT_EQ(mproc__pal_conn_send(to, msg.data() + len / 2, len - len / 2, nullptr, 0), 0); });
  ASSERT_EQ(recv_str(p.a, 60000, &got), 0) << mproc_last_error();
  rest.join();
  EXPECT_TRUE(got == msg);
}

// A sender that gives its message in pieces while the receiver uses tiny deadlines: every byte arrives
// once, in order, for every size around the transport's thresholds.
TEST(ConnectionWire, ShortDeadlinesNeverLoseOrRepeatBytes) {
  Pair p;
  std::vector<size_t> sizes = {0, 1, 100, 16 << 10, 47 << 10, 48 << 10, 200 << 10, 5 << 20};
  std::thread sender([&] {
    for (size_t n : sizes) {
      std::string m = payload(n);
      EXPECT_EQ(mproc_connection_send_bytes(p.b, m.data(), m.size(), 0, MPROC_ALL), 0);
    }
  });
  std::vector<char> buf(6 << 20);
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::string got;
    int rc;
    for (;;) {
      if (i % 2) {
        size_t n = 0;
        rc = mproc_connection_recv_bytes_into(p.a, buf.data(), buf.size(), 1, &n);
        if (rc == 0) got.assign(buf.data(), n);
      } else {
        rc = recv_str(p.a, 1, &got);
      }
      if (rc != MPROC_ETIMEDOUT) break;
    }
    ASSERT_EQ(rc, 0) << mproc_last_error();
    EXPECT_TRUE(got == payload(sizes[i])) << "message " << i << " of " << sizes[i] << " bytes";
  }
  sender.join();
}

TEST(ConnectionWire, AnnouncedSizesDoNotAllocate) {
  // 4-byte frames: about 4 GB announced; 12-byte frames: 1 TiB and 2^62. Nothing arrives after them:
  // the receive waits for data (a timeout), it does not allocate what the peer claims.
  for (uint64_t len : {(uint64_t)0xFFFFFFFDu, (uint64_t)1 << 40, (uint64_t)1 << 62}) {
    Pair p;
    p.raw(len < 0xFFFFFFFEu ? le32((uint32_t)len) : le32(0xFFFFFFFFu) + le64(len));
    std::string got;
    EXPECT_EQ(recv_str(p.a, 0, &got), MPROC_ETIMEDOUT);
    EXPECT_EQ(recv_str(p.a, 100, &got), MPROC_ETIMEDOUT);
    EXPECT_LE(p.a->mcap, (size_t)1 << 20);
    char small[16];
    size_t n = 0;
    EXPECT_EQ(mproc_connection_recv_bytes_into(p.a, small, sizeof small, 0, &n), MPROC_EMSGSIZE);
    EXPECT_EQ((uint64_t)n, len);
  }
}

TEST(ConnectionWire, LengthAbovePtrdiffMaxIsACorruptStreamForGood) {
  Pair p;
  p.raw(le32(0xFFFFFFFFu) + le64(((uint64_t)1 << 63) + 5) + le32(2) + "ok");
  std::string got;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(recv_str(p.a, 0, &got), MPROC_ESYS);
    EXPECT_NE(std::string(mproc_last_error()).find("cannot receive any more"), std::string::npos) << mproc_last_error();
  }
  EXPECT_EQ(mproc_connection_poll(p.a, 0), 0);  // a receive answers at once
}

TEST(ConnectionWire, BulkMarkWithoutABulkHandleIsCorrupt) {
  mproc_os_handle x, y;
  ASSERT_EQ(mproc__pal_conn_pair(true, &x, &y), 0);
  mproc_connection *a = mproc__connection_wrap(mproc__conn_end_link(x));
  ASSERT_NE(a, nullptr);
  std::string f = le32(0xFFFFFFFEu) + le64(10);
  ASSERT_EQ(mproc__pal_conn_send(y, f.data(), f.size(), nullptr, 0), 0);
  std::string got;
  EXPECT_EQ(recv_str(a, 1000, &got), MPROC_ESYS);
  EXPECT_EQ(recv_str(a, 0, &got), MPROC_ESYS);
  mproc_connection_destroy(a);
  mproc__pal_close(y);
}

TEST(ConnectionWire, PeerClosingMidMessageIsAnErrorNotAHang) {
  Pair p;
  p.raw(le32(50) + "only twenty bytes...");
  mproc_connection_close(p.b);
  std::string got;
  EXPECT_EQ(recv_str(p.a, MPROC_INFINITE, &got), MPROC_ESYS);
  EXPECT_EQ(recv_str(p.a, MPROC_INFINITE, &got), MPROC_ESYS);
}

// In a child: send a header and half of a 1000-byte payload raw, then wait to be killed.
int t_half_message(const mproc_args *a) {
  mproc_connection *c = a->connections[0];
  std::string half = le32(1000) + payload(500);
  if (mproc__pal_conn_send(c->e.wr, half.data(), half.size(), nullptr, 0) != 0) return 1;
  char b[8];
  size_t n = 0;
  mproc_connection_recv_bytes_into(c, b, sizeof b, MPROC_INFINITE, &n);  // never comes
  return 0;
}

// A sender killed in the middle of a message while another copy of its end stays open (here: ours,
// the parent's b): the receive times out at its deadline, with 0 and with 200 ms, and never hangs.
TEST(ConnectionWire, SenderKilledMidMessageWhileACopyOfItsEndStaysOpen) {
  Pair p;
  mproc_connection *hand[] = {p.b};
  mproc_process *child = nullptr;
  ASSERT_EQ(mproc_process_create(&child, mproc_test::ptr(mproc_process_opts{.target = t_half_message,
                                                                              .connections = hand,
                                                                              .connection_count = 1})),
            0);
  ASSERT_EQ(mproc_process_start(child), 0) << mproc_last_error();
  ASSERT_EQ(mproc_connection_poll(p.a, MPROC_INFINITE), 0);  // the half message has arrived
  ASSERT_EQ(mproc_process_kill(child), 0);
  ASSERT_EQ(mproc_process_join(child, MPROC_INFINITE), 0);
  std::string got;
  EXPECT_EQ(recv_str(p.a, 0, &got), MPROC_ETIMEDOUT);
  EXPECT_EQ(recv_str(p.a, 200, &got), MPROC_ETIMEDOUT);
  EXPECT_NE(std::string(mproc_last_error()).find("within 200 ms"), std::string::npos) << mproc_last_error();
  mproc_process_destroy(child);
}

}  // namespace
