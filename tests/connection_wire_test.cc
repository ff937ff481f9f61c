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
  mproc_connection *a = nullptr, *b = nullptr; // a receives, b's handles are written raw
  Pair() { EXPECT_EQ(mproc_pipe(true, &a, &b), 0) << mproc_last_error(); }
  ~Pair() {
    mproc_connection_destroy(a);
    mproc_connection_destroy(b);
  }
  void raw(const void *p, size_t n) const {
    ASSERT_EQ(mproc__pal_conn_send(b->e.wr, p, n, nullptr, 0), 0) << mproc_last_error();
  }
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
  EXPECT_EQ(mproc_connection_poll(p.a, MPROC_INFINITE), 0); // new bytes: progress
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
    EXPECT_EQ(mproc_connection_poll(p.a, 0), MPROC_ETIMEDOUT); // nothing new since
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
  for (uint64_t len : {(uint64_t)0xFFFFFFFCu, (uint64_t)1 << 40, (uint64_t)1 << 62}) {
    Pair p;
    p.raw(len <= 0xFFFFFFFCu ? le32((uint32_t)len) : le32(0xFFFFFFFFu) + le64(len));
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
  EXPECT_EQ(mproc_connection_poll(p.a, 0), 0); // a receive answers at once
}

// An object frame's body is small and has a fixed part: a length outside that range cannot be one.
TEST(ConnectionWire, ObjectFramesOfImpossibleLengthsAreCorrupt) {
  for (uint64_t len : {(uint64_t)0, (uint64_t)8, (uint64_t)1 << 20}) {
    Pair p;
    p.raw(le32(0xFFFFFFFDu) + le64(len));
    mproc_os_handle h = MPROC_NO_HANDLE;
    EXPECT_EQ(mproc_connection_recv_os_handle(p.a, 1000, &h), MPROC_ESYS);
    EXPECT_NE(std::string(mproc_last_error()).find("object frame"), std::string::npos) << mproc_last_error();
    std::string got;
    EXPECT_EQ(recv_str(p.a, 0, &got), MPROC_ESYS);
  }
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

// ---- frame formats: mproc's and CPython's multiprocessing.connection ------------------------------
//
// The expected headers are written out here byte by byte (not by the codec under test): mproc's as
// little-endian words, CPython's as struct.pack("!i", n) and, above 0x7FFFFFFF, struct.pack("!i", -1) +
// struct.pack("!Q", n), as CPython 3.8+ Connection._send_bytes writes them.

std::string be32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = (char)(v >> (8 * (3 - i)));
  return s;
}
std::string be64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = (char)(v >> (8 * (7 - i)));
  return s;
}

std::string put(const mproc__frame_format *f, uint64_t len, mproc__frame_kind kind = MPROC__FRAME_INLINE) {
  unsigned char h[MPROC__FRAME_HEADER_MAX];
  size_t n = mproc__frame_put(f, h, len, kind);
  return std::string((const char *)h, n);
}

// Parses h whole (1, with its length and form), and every proper prefix of it as "more bytes needed".
void expect_parses(const mproc__frame_format *f, const std::string &h, uint64_t len, mproc__frame_kind kind) {
  mproc__frame fr;
  const char *why = nullptr;
  for (size_t k = 0; k < h.size(); ++k) {
    ASSERT_EQ(mproc__frame_get(f, (const unsigned char *)h.data(), k, &fr, &why), 0) << "prefix " << k;
    EXPECT_GT(fr.hlen, k);
  }
  ASSERT_EQ(mproc__frame_get(f, (const unsigned char *)h.data(), h.size(), &fr, &why), 1);
  EXPECT_EQ(fr.hlen, h.size());
  EXPECT_EQ(fr.len, len);
  EXPECT_EQ(fr.kind, kind);
}

const uint64_t kBoundaries[] = {0,           1,           0x7FFFFFFFu, 0x80000000u,  0xFFFFFFFCu,
                                0xFFFFFFFDu, 0xFFFFFFFEu, 0xFFFFFFFFu, 0x100000000u, (uint64_t)1 << 40};

TEST(FrameFormat, MprocHeadersAtTheBoundaries) {
  for (uint64_t n : kBoundaries) {
    SCOPED_TRACE(n);
    std::string want = n <= 0xFFFFFFFCu ? le32((uint32_t)n) : le32(0xFFFFFFFFu) + le64(n);
    EXPECT_EQ(put(&mproc__frame_mproc, n), want);
    expect_parses(&mproc__frame_mproc, want, n, MPROC__FRAME_INLINE);
    std::string bulk = le32(0xFFFFFFFEu) + le64(n); // the bulk form, whatever the length
    EXPECT_EQ(put(&mproc__frame_mproc, n, MPROC__FRAME_BULK), bulk);
    expect_parses(&mproc__frame_mproc, bulk, n, MPROC__FRAME_BULK);
    std::string obj = le32(0xFFFFFFFDu) + le64(n); // an object frame, whatever the length
    EXPECT_EQ(put(&mproc__frame_mproc, n, MPROC__FRAME_OBJECT), obj);
    expect_parses(&mproc__frame_mproc, obj, n, MPROC__FRAME_OBJECT);
  }
  // the long form with a length the short form could carry is accepted (the readers always did)
  expect_parses(&mproc__frame_mproc, le32(0xFFFFFFFFu) + le64(5), 5, MPROC__FRAME_INLINE);
}

// A shared-memory frame: the bulk mark, the length with bit 63 set, then its ticket (position, ring tag,
// flags); every proper prefix asks for more bytes, and the length comes back without the bit.
TEST(FrameFormat, MprocSharedMemoryFrames) {
  for (uint64_t n : kBoundaries) {
    SCOPED_TRACE(n);
    mproc__frame_ticket t = {0x0102030405060708ull + n, 0xA1B2C3D4u, MPROC__TICKET_NEW_RING};
    unsigned char h[MPROC__FRAME_HEADER_MAX];
    size_t hl = mproc__frame_put_shm(&mproc__frame_mproc, h, n, &t);
    std::string want = le32(0xFFFFFFFEu) + le64(n | (uint64_t(1) << 63)) + le64(t.pos) + le32(t.tag) + le32(t.flags);
    ASSERT_EQ(std::string((const char *)h, hl), want);
    expect_parses(&mproc__frame_mproc, want, n, MPROC__FRAME_SHM);
    mproc__frame fr;
    const char *why = nullptr;
    ASSERT_EQ(mproc__frame_get(&mproc__frame_mproc, h, hl, &fr, &why), 1);
    EXPECT_EQ(fr.ticket.pos, t.pos);
    EXPECT_EQ(fr.ticket.tag, t.tag);
    EXPECT_EQ(fr.ticket.flags, t.flags);
  }
}

TEST(FrameFormat, CPythonHeadersAtTheBoundaries) {
  for (uint64_t n : kBoundaries) {
    SCOPED_TRACE(n);
    std::string want = n <= 0x7FFFFFFFu ? be32((uint32_t)n) : be32(0xFFFFFFFFu) + be64(n);
    EXPECT_EQ(put(&mproc__frame_cpython, n), want);
    EXPECT_EQ(put(&mproc__frame_cpython, n, MPROC__FRAME_BULK), want);   // no bulk form: the same header
    EXPECT_EQ(put(&mproc__frame_cpython, n, MPROC__FRAME_OBJECT), want); // no object frames either
    expect_parses(&mproc__frame_cpython, want, n, MPROC__FRAME_INLINE);
  }
  EXPECT_EQ(put(&mproc__frame_cpython, 0x12345678u), std::string("\x12\x34\x56\x78", 4));
  EXPECT_EQ(put(&mproc__frame_cpython, 0x80000000u), std::string("\xff\xff\xff\xff\0\0\0\0\x80\0\0\0", 12));
  expect_parses(&mproc__frame_cpython, be32(0xFFFFFFFFu) + be64(5), 5, MPROC__FRAME_INLINE);
}

TEST(FrameFormat, CPythonNegativeLengthsOtherThanMinusOneAreCorrupt) {
  for (uint32_t w : {0x80000000u, 0x80000001u, 0xFFFFFFFEu, 0xC0000000u}) {
    SCOPED_TRACE(w);
    std::string h = be32(w) + be64(1);
    mproc__frame fr;
    const char *why = nullptr;
    EXPECT_EQ(mproc__frame_get(&mproc__frame_cpython, (const unsigned char *)h.data(), 3, &fr, &why), 0);
    EXPECT_EQ(mproc__frame_get(&mproc__frame_cpython, (const unsigned char *)h.data(), 4, &fr, &why), -1);
    EXPECT_NE(why, nullptr);
    EXPECT_EQ(mproc__frame_get(&mproc__frame_cpython, (const unsigned char *)h.data(), h.size(), &fr, &why), -1);
  }
}

// Both ends of an mproc_pipe(true), re-wrapped with a frame format (the bulk handle stays with them:
// a format without a bulk mark must never use it).
struct FormatPair {
  mproc_connection *a = nullptr, *b = nullptr; // a receives, b's handles are written raw
  explicit FormatPair(const mproc__frame_format *f) {
    EXPECT_EQ(mproc_pipe(true, &a, &b), 0) << mproc_last_error();
    a = rewrap(a, f);
    b = rewrap(b, f);
  }
  static mproc_connection *rewrap(mproc_connection *c, const mproc__frame_format *f) {
    mproc__conn_end e = c->e;
    c->e.rd = c->e.wr = c->e.bulk = MPROC_NO_HANDLE;
    mproc_connection_destroy(c);
    mproc_connection *w = mproc__connection_wrap_format(e, f);
    EXPECT_NE(w, nullptr);
    return w;
  }
  ~FormatPair() {
    mproc_connection_destroy(a);
    mproc_connection_destroy(b);
  }
  void raw(const std::string &s) const {
    ASSERT_EQ(mproc__pal_conn_send(b->e.wr, s.data(), s.size(), nullptr, 0), 0) << mproc_last_error();
  }
  std::string raw_read(size_t n) const { // exactly n bytes off a's read handle (within 10 s)
    std::string s(n, '\0');
    int64_t deadline = mproc__deadline_from_timeout(10000);
    for (size_t got = 0, k = 0; got < n; got += k) {
      EXPECT_EQ(mproc__pal_conn_recv(a->e.rd, &s[got], n - got, deadline, &k), 0) << mproc_last_error();
      if (k == 0) return s.substr(0, got);
    }
    return s;
  }
};

TEST(FrameFormat, ACPythonStreamWrittenRawIsReceivedWhole) {
  FormatPair p(&mproc__frame_cpython);
  std::string big = payload(100000);
  // what Connection.send_bytes writes: b"", b"hello", 100000 bytes; then a long-form header for a short
  // message (CPython's reader accepts it; so must ours)
  std::string stream = be32(0) + be32(5) + "hello" + be32(100000) + big + be32(0xFFFFFFFFu) + be64(3) + "end";
  std::thread writer([&] { p.raw(stream); });
  std::string got[3];
  int rc[4];
  for (int i = 0; i < 3; ++i) rc[i] = recv_str(p.a, 5000, &got[i]);
  char buf[8];
  size_t n = 0;
  rc[3] = mproc_connection_recv_bytes_into(p.a, buf, sizeof buf, 5000, &n);
  writer.join();
  for (int r : rc) ASSERT_EQ(r, 0);
  EXPECT_EQ(got[0], "");
  EXPECT_EQ(got[1], "hello");
  EXPECT_EQ(got[2], big);
  EXPECT_EQ(std::string(buf, n), "end");
  EXPECT_EQ(mproc_connection_poll(p.a, 0), MPROC_ETIMEDOUT);
}

TEST(FrameFormat, ACPythonFormatConnectionSendsCPythonFrames) {
  FormatPair p(&mproc__frame_cpython);
  std::string big = payload(70000); // above BULK_MIN: mproc's format would use the bulk handle
  for (const std::string &m : {std::string("hi"), big}) {
    std::thread writer([&] { EXPECT_EQ(mproc_connection_send_bytes(p.b, m.data(), m.size(), 0, MPROC_ALL), 0); });
    EXPECT_EQ(p.raw_read(4), be32((uint32_t)m.size()));
    EXPECT_EQ(p.raw_read(m.size()), m);
    writer.join();
  }
  // and a round trip through both ends
  std::thread writer([&] { EXPECT_EQ(mproc_connection_send_bytes(p.b, big.data(), big.size(), 0, MPROC_ALL), 0); });
  std::string got;
  int rc = recv_str(p.a, 5000, &got);
  writer.join();
  ASSERT_EQ(rc, 0) << mproc_last_error();
  EXPECT_EQ(got, big);
}

TEST(FrameFormat, HostileCPythonHeadersMakeTheStreamCorrupt) {
  struct Case {
    const char *what;
    std::string bytes;
  } cases[] = {
      {"negative length", be32(0x80000000u) + "xxxx"},
      {"-2", be32(0xFFFFFFFEu) + be64(1) + "x"},
      {"long length past PTRDIFF_MAX", be32(0xFFFFFFFFu) + be64(UINT64_MAX)},
  };
  for (const Case &k : cases) {
    SCOPED_TRACE(k.what);
    FormatPair p(&mproc__frame_cpython);
    p.raw(k.bytes);
    EXPECT_EQ(mproc_connection_poll(p.a, 5000), 0);
    std::string got;
    EXPECT_EQ(recv_str(p.a, 5000, &got), MPROC_ESYS);
    EXPECT_EQ(mproc_connection_poll(p.a, 0), 0); // a receive answers at once: it stays corrupt
    char buf[4];
    size_t n = 0;
    EXPECT_EQ(mproc_connection_recv_bytes_into(p.a, buf, sizeof buf, 0, &n), MPROC_ESYS);
  }
}

TEST(FrameFormat, TruncatedCPythonHeaders) {
  // cut anywhere inside a long-form header: a receive waits (and loses nothing) while the peer is open
  std::string frame = be32(0xFFFFFFFFu) + be64(4) + "abcd";
  for (size_t cut : {2, 4, 7, 11}) {
    SCOPED_TRACE(cut);
    FormatPair p(&mproc__frame_cpython);
    p.raw(frame.substr(0, cut));
    std::string got;
    EXPECT_EQ(recv_str(p.a, 0, &got), MPROC_ETIMEDOUT);
    EXPECT_EQ(mproc_connection_poll(p.a, 0), MPROC_ETIMEDOUT);
    p.raw(frame.substr(cut));
    ASSERT_EQ(recv_str(p.a, 5000, &got), 0) << mproc_last_error();
    EXPECT_EQ(got, "abcd");
  }
  // and the peer closing there: corrupt, not end of file
  for (size_t cut : {1, 4, 9}) {
    SCOPED_TRACE(cut);
    FormatPair p(&mproc__frame_cpython);
    p.raw(frame.substr(0, cut));
    mproc_connection_destroy(p.b);
    p.b = nullptr;
    std::string got;
    EXPECT_EQ(recv_str(p.a, 5000, &got), MPROC_ESYS);
    EXPECT_NE(std::string(mproc_last_error()).find("middle of a message header"), std::string::npos)
        << mproc_last_error();
  }
}

// In a child: send a header and half of a 1000-byte payload raw, then wait to be killed.
int t_half_message(const mproc_args *a) {
  mproc_connection *c = a->connections[0];
  std::string half = le32(1000) + payload(500);
  if (mproc__pal_conn_send(c->e.wr, half.data(), half.size(), nullptr, 0) != 0) return 1;
  char b[8];
  size_t n = 0;
  mproc_connection_recv_bytes_into(c, b, sizeof b, MPROC_INFINITE, &n); // never comes
  return 0;
}

// A sender killed in the middle of a message while another copy of its end stays open (here: ours,
// the parent's b): the receive times out at its deadline, with 0 and with 200 ms, and never hangs.
TEST(ConnectionWire, SenderKilledMidMessageWhileACopyOfItsEndStaysOpen) {
  Pair p;
  mproc_connection *hand[] = {p.b};
  mproc_process *child = nullptr;
  ASSERT_EQ(mproc_process_create(&child, mproc_test::ptr(mproc_process_opts{
                                             .target = t_half_message, .connections = hand, .connection_count = 1})),
            0);
  ASSERT_EQ(mproc_process_start(child), 0) << mproc_last_error();
  ASSERT_EQ(mproc_connection_poll(p.a, MPROC_INFINITE), 0); // the half message has arrived
  ASSERT_EQ(mproc_process_kill(child), 0);
  ASSERT_EQ(mproc_process_join(child, MPROC_INFINITE), 0);
  std::string got;
  EXPECT_EQ(recv_str(p.a, 0, &got), MPROC_ETIMEDOUT);
  EXPECT_EQ(recv_str(p.a, 200, &got), MPROC_ETIMEDOUT);
  EXPECT_NE(std::string(mproc_last_error()).find("within 200 ms"), std::string::npos) << mproc_last_error();
  mproc_process_destroy(child);
}

} // namespace
