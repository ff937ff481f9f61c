// The pipeline idiom on Windows (p2 = Popen(..., stdin=p1.stdout)), at the PAL level: the parent's end
// of a child stdio pipe is the OVERLAPPED server end of a named pipe (src/win32/pipe.c). Handed to an
// ordinary program as its stdin (or stdout), that program does synchronous I/O on it: the C runtime's
// _read / _write call ReadFile / WriteFile with no OVERLAPPED, which on an overlapped handle return
// STATUS_PENDING inside kernelbase, which then waits on the file handle itself until the I/O completes.
// That is correct as long as nobody else does I/O on the same handle (file object) at the same time:
// the parent has dropped its copy. These tests check it end to end with the helper (C runtime reads and
// writes), with several MiB and end of file, and with the overlapped end on the writing side too.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

extern "C" {
#include "internal.h"
#include "pal.h"
}
#include "test_util.h"

namespace {

bool overlapped_handle(mproc_os_handle h) {
  // An overlapped read on an empty pipe is pending (a synchronous handle would block instead, so only
  // call this on the parent's ends, which are overlapped or fail at once).
  OVERLAPPED ov{};
  ov.hEvent = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  char c;
  BOOL ok = ReadFile((HANDLE)(intptr_t)h, &c, 0, nullptr, &ov);
  DWORD e = GetLastError();
  if (!ok && e == ERROR_IO_PENDING) {
    CancelIoEx((HANDLE)(intptr_t)h, &ov);
    DWORD n;
    GetOverlappedResult((HANDLE)(intptr_t)h, &ov, &n, TRUE);
  }
  CloseHandle(ov.hEvent);
  return !ok && e == ERROR_IO_PENDING;
}

// Start the helper with the script and stdio handles (MPROC_NO_HANDLE: NUL for stdin/out, ours for err).
int start(mproc__child *c, std::vector<const char *> script, mproc_os_handle in, mproc_os_handle out) {
  static std::string helper = mproc_test::helper_path();
  script.insert(script.begin(), helper.c_str());
  script.push_back(nullptr);
  mproc_os_handle nul_in = MPROC_NO_HANDLE, nul_out = MPROC_NO_HANDLE;
  if (in == MPROC_NO_HANDLE) {
    EXPECT_EQ(mproc__pal_open_devnull(false, &nul_in), 0);
  }
  if (out == MPROC_NO_HANDLE) {
    EXPECT_EQ(mproc__pal_open_devnull(true, &nul_out), 0);
  }
  mproc__spawn_req req{};
  req.argv = script.data();
  req.stdio[0] = in != MPROC_NO_HANDLE ? in : nul_in;
  req.stdio[1] = out != MPROC_NO_HANDLE ? out : nul_out;
  req.stdio[2] = MPROC_NO_HANDLE;
  c->handle = MPROC_NO_HANDLE;
  int rc = mproc__pal_spawn(&req, c);
  mproc__pal_close(nul_in);
  mproc__pal_close(nul_out);
  return rc;
}

// Everything until end of file from a parent's (overlapped) end.
std::string read_to_eof(mproc_os_handle h) {
  std::string s;
  std::vector<char> buf(1 << 20);
  for (;;) {
    size_t n = 0;
    if (mproc__pal_read(h, buf.data(), buf.size(), INT64_MAX, &n) != 0 || n == 0) break;
    s.append(buf.data(), n);
  }
  return s;
}

int finish(mproc__child *c) {
  mproc__pal_wait(c, INT64_MAX);
  mproc__pal_child_release(c);
  return c->returncode;
}

} // namespace

// helper1 "out N" | helper2 "echo": helper2's stdin is the overlapped server end of helper1's stdout
// pipe (the parent keeps no copy); helper2's stdout goes to a pipe the parent reads. Every byte, in
// order, then end of file in helper2 (it exits) and for us.
TEST(Win32Pipeline, AChildReadsAnOverlappedServerEndAsItsStdin) {
  for (unsigned long long size : {0ull, 1ull, 65536ull, 6ull << 20}) {
    SCOPED_TRACE(size);
    mproc_os_handle p1_out_parent, p1_out_child; // p1.stdout: the parent's end reads
    ASSERT_EQ(mproc__pal_pipe(true, &p1_out_parent, &p1_out_child), 0);
    ASSERT_TRUE(overlapped_handle(p1_out_parent));
    mproc__child c1{}, c2{};
    std::string n = std::to_string(size);
    ASSERT_EQ(start(&c1, {"out", n.c_str()}, MPROC_NO_HANDLE, p1_out_child), 0) << mproc_last_error();
    mproc__pal_close(p1_out_child);
    mproc_os_handle p2_out_parent, p2_out_child;
    ASSERT_EQ(mproc__pal_pipe(true, &p2_out_parent, &p2_out_child), 0);
    ASSERT_EQ(start(&c2, {"echo"}, p1_out_parent, p2_out_child), 0) << mproc_last_error();
    mproc__pal_close(p1_out_parent); // the parent's copy is dropped: helper2 alone reads it
    mproc__pal_close(p2_out_child);
    std::string got = read_to_eof(p2_out_parent);
    mproc__pal_close(p2_out_parent);
    EXPECT_TRUE(mproc_test::is_pattern(got.data(), got.size(), (size_t)size));
    EXPECT_EQ(finish(&c1), 0);
    EXPECT_EQ(finish(&c2), 0);
  }
}

// The same with "count", and with the reader started first (its reads wait, pending, for the writer).
TEST(Win32Pipeline, ReaderStartedBeforeTheWriterSeesAllThenEndOfFile) {
  mproc_os_handle a_parent, a_child, out_parent, out_child;
  ASSERT_EQ(mproc__pal_pipe(true, &a_parent, &a_child), 0);
  ASSERT_EQ(mproc__pal_pipe(true, &out_parent, &out_child), 0);
  mproc__child reader{}, writer{};
  ASSERT_EQ(start(&reader, {"count"}, a_parent, out_child), 0) << mproc_last_error();
  mproc__pal_close(a_parent);
  mproc__pal_close(out_child);
  ASSERT_EQ(start(&writer, {"sleep", "200", "out", "5000000"}, MPROC_NO_HANDLE, a_child), 0);
  mproc__pal_close(a_child);
  EXPECT_EQ(read_to_eof(out_parent), "5000000");
  mproc__pal_close(out_parent);
  EXPECT_EQ(finish(&writer), 0);
  EXPECT_EQ(finish(&reader), 0);
}

// The other direction: a child's stdout is the overlapped server end of another child's stdin pipe
// (Popen(stdout=p2.stdin)): helper1 "out N" writes through WriteFile with no OVERLAPPED on it.
TEST(Win32Pipeline, AChildWritesAnOverlappedServerEndAsItsStdout) {
  mproc_os_handle in_parent, in_child, out_parent, out_child;
  ASSERT_EQ(mproc__pal_pipe(false, &in_parent, &in_child), 0); // p2.stdin: the parent's end writes
  ASSERT_EQ(mproc__pal_pipe(true, &out_parent, &out_child), 0);
  mproc__child reader{}, writer{};
  ASSERT_EQ(start(&reader, {"echo"}, in_child, out_child), 0) << mproc_last_error();
  mproc__pal_close(in_child);
  mproc__pal_close(out_child);
  ASSERT_EQ(start(&writer, {"out", "4000000"}, MPROC_NO_HANDLE, in_parent), 0) << mproc_last_error();
  mproc__pal_close(in_parent);
  std::string got = read_to_eof(out_parent);
  mproc__pal_close(out_parent);
  EXPECT_TRUE(mproc_test::is_pattern(got.data(), got.size(), 4000000));
  EXPECT_EQ(finish(&writer), 0);
  EXPECT_EQ(finish(&reader), 0);
}
