// Handles and connections sent to a running process over a connection (Python's reduction.send_handle /
// recv_handle, and a Connection sent over a Connection): in one process, to a running child under every
// start method, each receive taking only its own kind, the destination checked, nothing left in a
// receiver that never receives, and the kinds of what arrives checked. White-box where it needs the
// PAL's handle count or a connection with CPython's framing.
#include <cstring>
#include <sstream>
#include <string>

extern "C" {
#include "connection_internal.h"
#include "handable.h"
#include "pal.h"
}
#include "test_util.h"

using mproc_test::kWindows;

namespace {

const int64_t kLong = 60000;

// A connected pair of plain handles (a socket pair on POSIX, a named pipe on Windows): the handle to
// send, and the one that proves the copy that arrived is the same object.
struct Link {
  mproc_os_handle mine = MPROC_NO_HANDLE, theirs = MPROC_NO_HANDLE;
  Link() { EXPECT_EQ(mproc__pal_conn_pair(true, &mine, &theirs), 0) << mproc_last_error(); }
  ~Link() {
    mproc__pal_close(mine);
    mproc__pal_close(theirs);
  }
};

std::string read_some(mproc_os_handle h, size_t want) {
  std::string got;
  char buf[64];
  while (got.size() < want) {
    size_t n = 0;
    if (mproc__pal_conn_recv(h, buf, sizeof buf, mproc__deadline_from_timeout(kLong), &n) != 0 || n == 0) break;
    got.append(buf, n);
  }
  return got;
}

std::string recv_str(mproc_connection *c) {
  char *m = nullptr;
  size_t len = 0;
  if (mproc_connection_recv_bytes(c, 0, kLong, &m, &len) != 0) return std::string("error: ") + mproc_last_error();
  std::string s(m, len);
  mproc_free(m);
  return s;
}

int64_t self_pid() { return mproc__pal_getpid(); }

TEST(SendObject, AHandleArrivesAsACopyOfTheSameObject) {
  mproc_connection *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  Link l;
  ASSERT_EQ(mproc_connection_send_os_handle(a, l.theirs, self_pid()), 0) << mproc_last_error();
  mproc_os_handle h = MPROC_NO_HANDLE;
  ASSERT_EQ(mproc_connection_recv_os_handle(b, kLong, &h), 0) << mproc_last_error();
  EXPECT_NE(h, l.theirs);
  EXPECT_TRUE(mproc__pal_get_cloexec(h)); // never inherited by accident
  ASSERT_EQ(mproc__pal_conn_send(h, "via copy", 8, nullptr, 0), 0);
  EXPECT_EQ(read_some(l.mine, 8), "via copy");
  mproc__pal_close(h);
  EXPECT_TRUE(mproc__pal_handle_valid(l.theirs)); // the sender keeps its own
  ASSERT_EQ(mproc__pal_conn_send(l.theirs, "original", 8, nullptr, 0), 0);
  EXPECT_EQ(read_some(l.mine, 8), "original");
  // destination 0: whichever process receives
  ASSERT_EQ(mproc_connection_send_os_handle(a, l.theirs, 0), 0) << mproc_last_error();
  ASSERT_EQ(mproc_connection_recv_os_handle(b, kLong, &h), 0) << mproc_last_error();
  mproc__pal_close(h);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
}

TEST(SendObject, EachReceiveTakesOnlyItsOwnKindAndLeavesTheRestUnread) {
  mproc_connection *a = nullptr, *b = nullptr, *x = nullptr, *y = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  ASSERT_EQ(mproc_pipe(true, &x, &y), 0);
  Link l;
  ASSERT_EQ(mproc_connection_send_bytes(a, "one", 3, 0, MPROC_ALL), 0);
  ASSERT_EQ(mproc_connection_send_os_handle(a, l.theirs, self_pid()), 0) << mproc_last_error();
  ASSERT_EQ(mproc_connection_send_connection(a, y, self_pid()), 0) << mproc_last_error();
  ASSERT_EQ(mproc_connection_send_bytes(a, "two", 3, 0, MPROC_ALL), 0);

  mproc_os_handle h = MPROC_NO_HANDLE;
  mproc_connection *got = nullptr;
  EXPECT_EQ(mproc_connection_recv_os_handle(b, kLong, &h), MPROC_ESTATE); // bytes come first
  EXPECT_NE(std::string(mproc_last_error()).find("bytes of data"), std::string::npos) << mproc_last_error();
  EXPECT_EQ(recv_str(b), "one");
  EXPECT_EQ(mproc_connection_recv_connection(b, kLong, &got), MPROC_ESTATE); // a handle, not a connection
  EXPECT_NE(std::string(mproc_last_error()).find("OS handle"), std::string::npos) << mproc_last_error();
  char *m = nullptr;
  size_t len = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(b, 0, kLong, &m, &len), MPROC_ESTATE);
  char into[8];
  EXPECT_EQ(mproc_connection_recv_bytes_into(b, into, sizeof into, kLong, &len), MPROC_ESTATE);
  EXPECT_EQ(mproc_connection_poll(b, 0), 0); // it is there to receive
  ASSERT_EQ(mproc_connection_recv_os_handle(b, kLong, &h), 0) << mproc_last_error();
  ASSERT_EQ(mproc__pal_conn_send(h, "h", 1, nullptr, 0), 0);
  EXPECT_EQ(read_some(l.mine, 1), "h");
  mproc__pal_close(h);
  EXPECT_EQ(mproc_connection_recv_os_handle(b, kLong, &h), MPROC_ESTATE); // a connection, not a handle
  ASSERT_EQ(mproc_connection_recv_connection(b, kLong, &got), 0) << mproc_last_error();
  EXPECT_EQ(recv_str(b), "two");
  // the connection that came works both ways with x, large messages too (its bulk handle came along)
  std::string big(300 * 1024, 'z');
  ASSERT_EQ(mproc_connection_send_bytes(x, big.data(), big.size(), 0, MPROC_ALL), 0);
  EXPECT_EQ(recv_str(got), big);
  ASSERT_EQ(mproc_connection_send_bytes(got, "back", 4, 0, MPROC_ALL), 0);
  EXPECT_EQ(recv_str(x), "back");
  EXPECT_EQ(mproc_connection_recv_os_handle(b, 0, &h), MPROC_ETIMEDOUT);
  mproc_connection_destroy(got);
  for (mproc_connection *c : {a, b, x, y}) mproc_connection_destroy(c);
}

TEST(SendObject, AReceiverThatIsNotTheDestinationGetsNothing) {
  mproc_connection *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  Link l;
  int before = mproc__pal_handle_count();
  int64_t other = self_pid() + 4000000; // a pid that is not ours (only compared, never looked up)
  ASSERT_EQ(mproc_connection_send_os_handle(a, l.theirs, other), 0) << mproc_last_error();
  mproc_os_handle h = MPROC_NO_HANDLE;
  EXPECT_EQ(mproc_connection_recv_os_handle(b, kLong, &h), MPROC_ESTATE);
  EXPECT_NE(std::string(mproc_last_error()).find("not to this one"), std::string::npos) << mproc_last_error();
  EXPECT_EQ(h, MPROC_NO_HANDLE);
  if (!kWindows) {
    EXPECT_EQ(mproc__pal_handle_count(), before); // the descriptor that came was closed
  }
  // the message was consumed; the next one is received as usual
  ASSERT_EQ(mproc_connection_send_bytes(a, "next", 4, 0, MPROC_ALL), 0);
  EXPECT_EQ(recv_str(b), "next");
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
}

TEST(SendObject, ArgumentsAndTransportsThatCannotCarryHandles) {
  mproc_connection *a = nullptr, *b = nullptr, *r = nullptr, *w = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  ASSERT_EQ(mproc_pipe(false, &r, &w), 0);
  Link l;
  mproc_os_handle h;
  mproc_connection *got;
  EXPECT_EQ(mproc_connection_send_os_handle(a, MPROC_NO_HANDLE, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_connection_send_os_handle(a, l.theirs, -5), MPROC_EINVAL);
  EXPECT_EQ(mproc_connection_send_os_handle(nullptr, l.theirs, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_connection_send_os_handle(r, l.theirs, 0), MPROC_ESTATE); // a receive-only end
  EXPECT_EQ(mproc_connection_recv_os_handle(w, 0, &h), MPROC_ESTATE);       // a send-only end
  EXPECT_EQ(mproc_connection_recv_os_handle(b, 0, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_connection_send_connection(a, a, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_connection_send_connection(a, nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_connection_recv_connection(b, 0, nullptr), MPROC_EINVAL);
  mproc_connection_close(w);
  EXPECT_EQ(mproc_connection_send_connection(a, w, 0), MPROC_ECLOSED);
  mproc_connection_close(b);
  EXPECT_EQ(mproc_connection_recv_connection(b, 0, &got), MPROC_ECLOSED);
  // the receiver has gone: the send says so, and on Windows takes its parked copy back
  int before = mproc__pal_handle_count();
  EXPECT_EQ(mproc_connection_send_os_handle(a, l.theirs, 0), MPROC_EPIPE);
  EXPECT_EQ(mproc__pal_handle_count(), before);

  // a connection speaking CPython's framing has no object frames
  mproc__conn_end e1, e2;
  ASSERT_EQ(mproc__pal_conn_ends(true, &e1, &e2), 0);
  mproc_connection *cp = mproc__connection_wrap_format(e1, &mproc__frame_cpython);
  ASSERT_NE(cp, nullptr);
  EXPECT_EQ(mproc_connection_send_os_handle(cp, l.theirs, 0), MPROC_ENOTSUP);
  EXPECT_NE(std::string(mproc_last_error()).find("CPython"), std::string::npos) << mproc_last_error();
  mproc_connection_destroy(cp);
  mproc__conn_end_close(&e2);
  for (mproc_connection *c : {a, b, r, w}) mproc_connection_destroy(c);
}

// What arrives is checked before use: a handle of another kind than the one sent, or a connection
// made of handles that are no pipes or sockets, is refused (the import functions themselves, fed what
// a forged message would carry).
TEST(SendObject, TheKindsOfWhatArrivesAreChecked) {
  Link l;
  unsigned char file_kind = MPROC__HK_FILE;
  void *obj = nullptr;
  EXPECT_EQ(mproc__os_handle_handable.import_obj(&file_kind, 1, &l.theirs, 1, &obj), MPROC_ESYS);
  EXPECT_EQ(obj, nullptr);
  unsigned char own_kind = (unsigned char)mproc__pal_handle_kind(l.theirs);
  ASSERT_EQ(mproc__os_handle_handable.import_obj(&own_kind, 1, &l.theirs, 1, &obj), 0);
  free(obj);
  std::string self = mproc_test::helper_path(); // a regular file
  mproc_os_handle f = MPROC_NO_HANDLE;
  ASSERT_EQ(mproc__pal_open_path(self.c_str(), false, false, &f), 0) << mproc_last_error();
  EXPECT_EQ(mproc__pal_handle_kind(f), MPROC__HK_FILE);
  const unsigned char roles[4] = {0, 0, 0xFF, 0}; // rd = wr = handle 0, no bulk, mproc's frames
  EXPECT_EQ(mproc__connection_handable.import_obj(roles, 4, &f, 1, &obj), MPROC_ESYS);
  EXPECT_NE(std::string(mproc_last_error()).find("wrong kind"), std::string::npos) << mproc_last_error();
  ASSERT_EQ(mproc__connection_handable.import_obj(roles, 4, &l.theirs, 1, &obj), 0);
  mproc_connection *c = (mproc_connection *)obj;
  c->e.rd = c->e.wr = MPROC_NO_HANDLE; // still the Link's
  mproc_connection_destroy(c);
  mproc__pal_close(f);
}

// ---- to a running child ------------------------------------------------------------------------------

// The child: a connection and a handle arrive on its connection while it runs; it answers through both.
int t_receive_both(const mproc_args *a) {
  if (a->connection_count != 1) return 10;
  mproc_connection *via = a->connections[0], *c = nullptr;
  mproc_os_handle h = MPROC_NO_HANDLE;
  if (mproc_connection_recv_connection(via, kLong, &c) != 0) return 11;
  if (mproc_connection_recv_os_handle(via, kLong, &h) != 0) return 12;
  if (mproc__pal_conn_send(h, "handle", 6, nullptr, 0) != 0) return 13;
  if (mproc_connection_send_bytes(c, "conn", 4, 0, MPROC_ALL) != 0) return 14;
  mproc__pal_close(h);
  mproc_connection_destroy(c);
  return 0;
}

// The child: counts its handles while a batch of handles sent to it is unreceived, then after closing
// its end, then after receiving one.
int t_never_receives(const mproc_args *a) {
  if (a->connection_count != 2) return 10;
  mproc_connection *objs = a->connections[0], *ctl = a->connections[1];
  int c0 = mproc__pal_handle_count();
  if (mproc_connection_send_bytes(ctl, "ready", 5, 0, MPROC_ALL) != 0) return 11;
  char *m = nullptr;
  size_t len = 0;
  if (mproc_connection_recv_bytes(ctl, 0, kLong, &m, &len) != 0) return 12; // "sent"
  mproc_free(m);
  if (mproc_connection_poll(objs, kLong) != 0) return 13; // they have arrived
  int c1 = mproc__pal_handle_count();
  mproc_os_handle h = MPROC_NO_HANDLE;
  if (mproc_connection_recv_os_handle(objs, kLong, &h) != 0) return 14;
  int c2 = mproc__pal_handle_count();
  mproc__pal_close(h);
  mproc_connection_destroy(objs);
  int c3 = mproc__pal_handle_count();
  char out[64];
  int n = snprintf(out, sizeof out, "%d %d %d", c1 - c0, c2 - c0, c3 - c0);
  return mproc_connection_send_bytes(ctl, out, (size_t)n, 0, MPROC_ALL) == 0 ? 0 : 15;
}

class SendToChild : public ::testing::TestWithParam<mproc_start_method> {};

TEST_P(SendToChild, AConnectionAndAHandleReachARunningChild) {
  mproc_connection *a = nullptr, *b = nullptr, *x = nullptr, *y = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  ASSERT_EQ(mproc_pipe(true, &x, &y), 0);
  mproc_connection *hand[] = {b};
  mproc_process_opts o{};
  o.target = t_receive_both;
  o.connections = hand;
  o.connection_count = 1;
  o.start_method = GetParam();
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, &o), 0) << mproc_last_error();
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  mproc_connection_destroy(b);
  Link l;
  int64_t pid = mproc_process_pid(p);
  ASSERT_EQ(mproc_connection_send_connection(a, y, pid), 0) << mproc_last_error();
  ASSERT_EQ(mproc_connection_send_os_handle(a, l.theirs, pid), 0) << mproc_last_error();
  mproc_connection_destroy(y); // the child's copy is the only one left: end of file follows it
  mproc__pal_close(l.theirs);
  l.theirs = MPROC_NO_HANDLE;
  EXPECT_EQ(read_some(l.mine, 6), "handle");
  EXPECT_EQ(recv_str(x), "conn");
  ASSERT_EQ(mproc_process_join(p, kLong), 0);
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  EXPECT_EQ(code, 0);
  char *m = nullptr;
  size_t len = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(x, 0, kLong, &m, &len), MPROC_EEOF); // the child's copy closed
  mproc_process_destroy(p);
  mproc_connection_destroy(a);
  mproc_connection_destroy(x);
}

TEST_P(SendToChild, HandlesNeverReceivedAreNotInTheReceiver) {
  mproc_connection *a = nullptr, *b = nullptr, *ca = nullptr, *cb = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  ASSERT_EQ(mproc_pipe(true, &ca, &cb), 0);
  mproc_connection *hand[] = {b, cb};
  mproc_process_opts o{};
  o.target = t_never_receives;
  o.connections = hand;
  o.connection_count = 2;
  o.start_method = GetParam();
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, &o), 0) << mproc_last_error();
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  mproc_connection_destroy(b);
  mproc_connection_destroy(cb);
  EXPECT_EQ(recv_str(ca), "ready");
  Link l;
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(mproc_connection_send_os_handle(a, l.theirs, mproc_process_pid(p)), 0) << mproc_last_error();
  ASSERT_EQ(mproc_connection_send_bytes(ca, "sent", 4, 0, MPROC_ALL), 0);
  // unreceived: none in the child; one received: one more; its end closed: the rest never arrive
  std::string counts = recv_str(ca);
  int before = 0, received = 0, closed = 0;
  std::istringstream in(counts);
  ASSERT_TRUE(in >> before >> received >> closed) << counts;
  EXPECT_EQ(before, 0) << counts;
  EXPECT_EQ(received, 1) << counts;
  EXPECT_LE(closed, 0) << counts; // the end it closed held handles of its own
  ASSERT_EQ(mproc_process_join(p, kLong), 0);
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  EXPECT_EQ(code, 0);
  mproc_process_destroy(p);
  mproc_connection_destroy(a);
  mproc_connection_destroy(ca);
}

std::vector<mproc_start_method> methods() {
  if (kWindows) return {MPROC_START_SPAWN};
  return {MPROC_START_FORK, MPROC_START_SPAWN, MPROC_START_FORKSERVER};
}

INSTANTIATE_TEST_SUITE_P(Methods, SendToChild, ::testing::ValuesIn(methods()),
                         [](const ::testing::TestParamInfo<mproc_start_method> &i) {
                           return std::string(mproc_start_method_name(i.param));
                         });

// The child sends a handle to its parent and ends before the parent receives it. POSIX: the descriptor
// was in flight in the kernel and arrives. Windows: the receiver pulls from the sender, which is gone:
// the receive says so (and nothing is left anywhere).
int t_send_and_end(const mproc_args *a) {
  if (a->connection_count != 1) return 10;
  mproc_connection *via = a->connections[0];
  mproc_os_handle mine, theirs;
  if (mproc__pal_conn_pair(true, &mine, &theirs) != 0) return 11;
  if (mproc_connection_send_os_handle(via, theirs, mproc_parent_process_pid()) != 0) return 12;
  if (mproc__pal_conn_send(mine, "from a child that has ended", 27, nullptr, 0) != 0) return 13;
  return 0;
}

TEST(SendObject, FromASenderThatEndedBeforeTheReceive) {
  mproc_connection *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  mproc_connection *hand[] = {b};
  mproc_process_opts o{};
  o.target = t_send_and_end;
  o.connections = hand;
  o.connection_count = 1;
  o.start_method = MPROC_START_SPAWN;
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, &o), 0) << mproc_last_error();
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  ASSERT_EQ(mproc_process_join(p, kLong), 0);
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  ASSERT_EQ(code, 0);
  mproc_os_handle h = MPROC_NO_HANDLE;
  int rc = mproc_connection_recv_os_handle(a, kLong, &h);
  if (kWindows) {
    EXPECT_EQ(rc, MPROC_ESYS);
    EXPECT_NE(std::string(mproc_last_error()).find("has ended"), std::string::npos) << mproc_last_error();
  } else {
    ASSERT_EQ(rc, 0) << mproc_last_error();
    EXPECT_EQ(read_some(h, 27), "from a child that has ended");
    mproc__pal_close(h);
  }
  mproc_process_destroy(p);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
}

} // namespace
