// Interop with real CPython: a connection in CPython's frame format (mproc__frame_cpython) talks to
// multiprocessing.connection.Connection over a socket pair, python3 on the other end. POSIX only; the
// test is skipped where python3 cannot be run.
#include <gtest/gtest.h>

#include <string>
#include <thread>

extern "C" {
#include "connection_internal.h"
#include "pal.h"
}
#include "mproc.h"
#include "test_util.h"

using mproc_test::ptr;

namespace {

// Says hello, then sends back each message reversed, then at end of file how many it got.
const char *kScript =
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "c = Connection(int(sys.argv[1]))\n"
    "c.send_bytes(b'hello from CPython')\n"
    "n = 0\n"
    "while True:\n"
    "    try:\n"
    "        m = c.recv_bytes()\n"
    "    except EOFError:\n"
    "        break\n"
    "    n += 1\n"
    "    c.send_bytes(m[::-1])\n"
    "    if m == b'last':\n"
    "        break\n"
    "c.send_bytes(str(n).encode())\n";

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = (char)(i * 31 + i / 7);
  return s;
}

int recv_str(mproc_connection *c, std::string *out) {
  char *d = nullptr;
  size_t n = 0;
  int rc = mproc_connection_recv_bytes(c, 0, 20000, &d, &n);
  if (rc == 0) out->assign(d, n);
  mproc_free(d);
  return rc;
}

TEST(ConnectionCPython, TalksToMultiprocessingConnection) {
  mproc_os_handle mine = MPROC_NO_HANDLE, theirs = MPROC_NO_HANDLE;
  ASSERT_EQ(mproc__pal_conn_pair(true, &mine, &theirs), 0) << mproc_last_error();
  std::string fd = std::to_string((long long)theirs);
  const char *argv[] = {"python3", "-c", kScript, fd.c_str(), nullptr};
  mproc_popen *py = nullptr;
  int rc = mproc_popen_create(&py, ptr(mproc_popen_opts{.argv = argv, .pass_fds = &theirs, .pass_fds_count = 1}));
  mproc__pal_close(theirs);
  if (rc == MPROC_ENOENT) {
    mproc__pal_close(mine);
    GTEST_SKIP() << "python3 cannot be run: " << mproc_last_error();
  }
  ASSERT_EQ(rc, 0) << mproc_last_error();
  mproc_connection *c = mproc__connection_wrap_format(mproc__conn_end_link(mine), &mproc__frame_cpython);
  ASSERT_NE(c, nullptr);

  std::string got;
  ASSERT_EQ(recv_str(c, &got), 0) << mproc_last_error();
  EXPECT_EQ(got, "hello from CPython");
  // sizes around CPython's own cut-offs (16384: header and payload sent apart) and our read-ahead buffer
  const size_t sizes[] = {0, 1, 16384, 16385, 70000, 1 << 20};
  for (size_t n : sizes) {
    SCOPED_TRACE(n);
    std::string m = pattern(n);
    std::thread writer([&] { EXPECT_EQ(mproc_connection_send_bytes(c, m.data(), m.size(), 0, MPROC_ALL), 0); });
    rc = recv_str(c, &got);
    writer.join(); // (the peer gone, the send fails: no thread is left behind by a failing test)
    ASSERT_EQ(rc, 0) << mproc_last_error();
    EXPECT_EQ(got, std::string(m.rbegin(), m.rend()));
  }
  ASSERT_EQ(mproc_connection_send_bytes(c, "last", 4, 0, MPROC_ALL), 0) << mproc_last_error();
  ASSERT_EQ(recv_str(c, &got), 0) << mproc_last_error();
  EXPECT_EQ(got, "tsal");
  ASSERT_EQ(recv_str(c, &got), 0) << mproc_last_error();
  EXPECT_EQ(got, std::to_string(sizeof sizes / sizeof sizes[0] + 1));
  char *d = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(c, 0, 20000, &d, &n), MPROC_EEOF); // it has exited
  int code = -1;
  EXPECT_EQ(mproc_popen_wait(py, 20000, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, 0);
  mproc_connection_destroy(c);
  mproc_popen_destroy(py);
}

} // namespace
