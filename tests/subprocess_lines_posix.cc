// subprocess for applications, POSIX specifics (white-box build): a terminal (MPROC_PTY) is the child's
// controlling terminal with the system's default modes, makes stdio line-buffered, ends input with its
// end-of-file character; and the exit handle's fallback where there is no pidfd (a watcher thread's pipe),
// forced here on Linux.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <string>

extern "C" {
#include "internal.h"
#include "pal.h"
#include "posix/posix.h"
}

#include "mproc.h"
#include "test_util.h"

using mproc_test::Argv;
using mproc_test::ptr;

namespace {

// All of stdout (a terminal or a pipe) until end of file.
std::string read_all(mproc_popen *p) {
  std::string out;
  char buf[4096];
  for (;;) {
    size_t n = 0;
    int rc = mproc_popen_read(p, 1, buf, sizeof buf, 60000, &n);
    EXPECT_EQ(rc, 0) << mproc_last_error();
    if (rc || n == 0) return out;
    out.append(buf, n);
  }
}

std::string run_on_terminal(const Argv &a, mproc_popen_opts o, const char *input = nullptr) {
  o.argv = a.get();
  mproc_popen *p = nullptr;
  EXPECT_EQ(mproc_popen_create(&p, &o), 0) << mproc_last_error();
  if (!p) return "";
  char *out = nullptr;
  size_t len = 0;
  EXPECT_EQ(mproc_popen_communicate(p, input, input ? strlen(input) : 0, 60000, &out, &len, nullptr, nullptr), 0)
      << mproc_last_error();
  std::string s(out ? out : "", len);
  mproc_free(out);
  mproc_popen_destroy(p);
  return s;
}

bool readable(int fd, int ms) {
  struct pollfd pfd = {fd, POLLIN, 0};
  return poll(&pfd, 1, ms) == 1;
}

} // namespace

TEST(PtyPosix, TheChildLeadsASessionWithTheTerminalAsControllingTerminal) {
  Argv a({"tty", "printx", "|", "ctty"});
  EXPECT_EQ(run_on_terminal(a, {.stdin_mode = MPROC_PTY, .stdout_mode = MPROC_PTY, .stderr_mode = MPROC_PTY}),
            "in=tty out=tty err=tty|yes");
  // stdout alone; new_process_group is implied and does not fail (a session leader leads its group)
  EXPECT_EQ(run_on_terminal(a, {.stdout_mode = MPROC_PTY, .new_process_group = true}), "in=no out=tty err=no|yes");
  EXPECT_EQ(run_on_terminal(a, {.stdout_mode = MPROC_PTY, .stderr_mode = MPROC_STDOUT}), "in=no out=tty err=tty|yes");
}

TEST(PtyPosix, OutputProcessingAndTheWindowSize) {
  Argv a({"printx", "a\\nb\\r\\n", "winsize"});
  EXPECT_EQ(run_on_terminal(a, {.stdout_mode = MPROC_PTY}), "a\r\nb\r\r\n80x24"); // "\n" becomes "\r\n"
  EXPECT_EQ(run_on_terminal(a, {.stdout_mode = MPROC_PTY, .pty_columns = 132, .pty_rows = 50}), "a\r\nb\r\r\n132x50");
}

TEST(PtyPosix, StdioIsLineBufferedOnATerminal) {
  // "first\n" sits in the C runtime's buffer on a pipe until the program ends; on a terminal it is sent
  // at the end of its line. The child waits for a byte of stdin meanwhile.
  Argv a({"bprint", "first\\n", "read", "1", "bprint", "second\\n"});
  for (mproc_stdio_mode mode : {MPROC_PTY, MPROC_PIPE}) {
    mproc_popen *p = nullptr;
    ASSERT_EQ(
        mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = a.get(), .stdin_mode = MPROC_PIPE, .stdout_mode = mode})),
        0)
        << mproc_last_error();
    char buf[64];
    size_t len = 0;
    mproc_line_end end = MPROC_LINE_EOF;
    int rc = mproc_popen_readline(p, 1, buf, sizeof buf, mode == MPROC_PTY ? 60000 : 300, &len, &end);
    if (mode == MPROC_PTY) {
      ASSERT_EQ(rc, 0) << mproc_last_error();
      EXPECT_EQ(std::string(buf, len), "first");
      EXPECT_EQ(end, MPROC_LINE_CRLF);
    } else {
      EXPECT_EQ(rc, MPROC_ETIMEDOUT); // still in the child's buffer
    }
    size_t w = 0;
    ASSERT_EQ(mproc_popen_write(p, "x", 1, MPROC_INFINITE, &w), 0);
    EXPECT_EQ(read_all(p), mode == MPROC_PTY ? "second\r\n" : "first\nsecond\n");
    mproc_popen_destroy(p);
  }
}

TEST(PtyPosix, StdinEndsWithTheEndOfFileCharacter) {
  // communicate: the input, echoed by the terminal, read by the program, then end of file
  Argv echo({"echo"});
  EXPECT_EQ(run_on_terminal(echo, {.stdin_mode = MPROC_PTY, .stdout_mode = MPROC_PTY}, "hello\n"),
            "hello\r\nhello\r\n");
  // close_stdin after an unfinished line: the first Ctrl-D hands the line over, the second ends input
  Argv count({"count"});
  mproc_popen *p = nullptr;
  ASSERT_EQ(mproc_popen_create(
                &p, ptr(mproc_popen_opts{.argv = count.get(), .stdin_mode = MPROC_PTY, .stdout_mode = MPROC_PTY})),
            0)
      << mproc_last_error();
  size_t w = 0;
  ASSERT_EQ(mproc_popen_write(p, "abc", 3, MPROC_INFINITE, &w), 0);
  ASSERT_EQ(mproc_popen_close_stdin(p), 0);
  EXPECT_EQ(read_all(p), "abc3"); // the echo, then the count
  int code = -1;
  EXPECT_EQ(mproc_popen_wait(p, 60000, &code), 0);
  EXPECT_EQ(code, 0);
  mproc_popen_destroy(p);
}

TEST(PtyPosix, EverythingIsReadAfterTheProgramHasEnded) {
  // the program ends before a byte is read: the terminal keeps its output, then reads end of file (EIO)
  Argv a({"lines", "40", "50", "exit", "2"});
  mproc_popen *p = nullptr;
  ASSERT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = a.get(), .stdout_mode = MPROC_PTY})), 0)
      << mproc_last_error();
  int code = -1;
  ASSERT_EQ(mproc_popen_wait(p, 60000, &code), 0);
  EXPECT_EQ(code, 2);
  EXPECT_EQ(read_all(p).size(), 40u * 51); // each "\n" became "\r\n"
  mproc_popen_destroy(p);
}

TEST(PumpPosix, OutputAsItComesIsOneReadAtATime) {
  // the callback forms' exchange (return_on_output) returns after one read, however much waits in the
  // pipe, so lines are handed on as they come and the read-ahead stays small (a writer faster than the
  // reader once made it read everything before handing anything on)
  mproc_os_handle parent, child;
  ASSERT_EQ(mproc__pal_pipe(true, &parent, &child), 0) << mproc_last_error();
  ASSERT_EQ(mproc__pal_set_blocking(child, false), 0);
  static char block[65536];
  memset(block, 'x', sizeof block);
  size_t filled = 0;
  for (ssize_t w; (w = write((int)child, block, sizeof block)) > 0;) filled += (size_t)w;
  if (filled < (600u << 10)) GTEST_SKIP() << "the pipe holds only " << filled << " bytes here";
  mproc__buf b = {nullptr, 0, 0};
  mproc__comm c = {};
  c.in = c.err = MPROC_NO_HANDLE;
  c.out = parent;
  c.out_buf = &b;
  c.return_on_output = true;
  ASSERT_EQ(mproc__pal_communicate(&c, INT64_MAX), 0) << mproc_last_error();
  EXPECT_NE(c.out, MPROC_NO_HANDLE); // still open: it came back with output
  EXPECT_GT(b.len, 0u);
  EXPECT_LE(b.len, filled / 2) << "of " << filled;
  mproc__pal_close(child);
  c.return_on_output = false;
  ASSERT_EQ(mproc__pal_communicate(&c, INT64_MAX), 0) << mproc_last_error(); // the rest, to end of file
  EXPECT_EQ(c.out, MPROC_NO_HANDLE);
  EXPECT_EQ(b.len, filled);
  mproc__buf_free(&b);
}

TEST(ExitWatcherPosix, APipeThatAWatcherThreadClosesWhenTheChildEnds) {
  mproc__posix_force_exit_watcher(true);
  Argv a({"read", "1", "exit", "6"});
  mproc_popen *p = nullptr;
  ASSERT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = a.get(), .stdin_mode = MPROC_PIPE})), 0)
      << mproc_last_error();
  mproc_os_handle h = MPROC_NO_HANDLE, again = MPROC_NO_HANDLE;
  ASSERT_EQ(mproc_popen_exit_handle(p, &h), 0) << mproc_last_error();
  ASSERT_EQ(mproc_popen_exit_handle(p, &again), 0);
  EXPECT_EQ(h, again);
  EXPECT_EQ(mproc__pal_handle_kind(h), MPROC__HK_PIPE); // not the pidfd
  EXPECT_FALSE(readable((int)h, 0));
  int code = -1;
  EXPECT_EQ(mproc_popen_wait(p, 50, &code), MPROC_ETIMEDOUT); // waits on the pipe, reaps nothing
  ASSERT_EQ(mproc_popen_close_stdin(p), 0);
  EXPECT_TRUE(readable((int)h, 60000));
  EXPECT_EQ(mproc_popen_poll(p, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, 6);
  mproc_popen_destroy(p);

  // asked after the reap: ready at once; destroyed while running: killed, reaped, nothing left open
  int before = mproc_test::open_handle_count();
  Argv quick({"exit", "1"}), slow({"sleep", "60000"});
  ASSERT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = quick.get()})), 0);
  ASSERT_EQ(mproc_popen_wait(p, 60000, &code), 0);
  ASSERT_EQ(mproc_popen_exit_handle(p, &h), 0);
  EXPECT_TRUE(readable((int)h, 0));
  mproc_popen_destroy(p);
  ASSERT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = slow.get()})), 0);
  ASSERT_EQ(mproc_popen_exit_handle(p, &h), 0);
  mproc_waitable w = mproc_waitable_popen(p);
  size_t n = 0;
  EXPECT_EQ(mproc_wait(&w, 1, 50, &n), MPROC_ETIMEDOUT);
  mproc_popen_destroy(p);
  EXPECT_EQ(mproc_test::open_handle_count(), before);
  mproc__posix_force_exit_watcher(false);
}

// The exit handle of a child run through the tree helper is the helper's exit socket, also where the
// watcher thread is forced: one exit handle per child (pal.h), never a watcher on a pid the helper reaps.
TEST(ExitWatcherPosix, AChildWithATreeHelperKeepsTheHelpersSocket) {
  mproc__posix_force_exit_watcher(true);
  Argv a({"read", "1", "exit", "6"});
  mproc_popen *p = nullptr;
  ASSERT_EQ(
      mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = a.get(), .stdin_mode = MPROC_PIPE, .process_tree = true})), 0)
      << mproc_last_error();
  mproc_os_handle h = MPROC_NO_HANDLE;
  ASSERT_EQ(mproc_popen_exit_handle(p, &h), 0) << mproc_last_error();
  EXPECT_EQ(mproc__pal_handle_kind(h), MPROC__HK_SOCKET); // not a watcher's pipe
  EXPECT_FALSE(readable((int)h, 0));
  int code = -1;
  EXPECT_EQ(mproc_popen_wait(p, 50, &code), MPROC_ETIMEDOUT);
  ASSERT_EQ(mproc_popen_close_stdin(p), 0);
  EXPECT_TRUE(readable((int)h, 60000));
  EXPECT_EQ(mproc_popen_poll(p, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, 6);
  EXPECT_TRUE(readable((int)h, 0)) << "the status was only peeked at: still ready";
  mproc_waitable w = mproc_waitable_popen(p);
  size_t n = 0;
  EXPECT_EQ(mproc_wait(&w, 1, 0, &n), 0) << mproc_last_error();
  mproc_popen_destroy(p);
  mproc__posix_force_exit_watcher(false);
}

// A terminal for a process tree: the program leads its session on the terminal, which is also the
// tree's process group; stop_tree ends it and what it started on the terminal, whose output then ends.
TEST(PtyPosix, ATerminalForAProcessTree) {
  Argv a({"tty", "print", "|", "ctty", "print", "|", "pgid", "print", "|", "pid", "print", "\n", "grandchild", "60000",
          "sleep", "60000"});
  mproc_popen *p = nullptr;
  ASSERT_EQ(
      mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = a.get(), .stdout_mode = MPROC_PTY, .process_tree = true})), 0)
      << mproc_last_error();
  char line[256];
  size_t len = 0;
  mproc_line_end end;
  ASSERT_EQ(mproc_popen_readline(p, 1, line, sizeof line, 60000, &len, &end), 0) << mproc_last_error();
  std::string s(line, len);
  EXPECT_NE(s.find("out=tty"), std::string::npos) << s;
  EXPECT_NE(s.find("|yes|"), std::string::npos) << s;
  long long pgid = 0, pid = 0;
  ASSERT_EQ(sscanf(s.c_str() + s.rfind("yes|") + 4, "%lld|%lld", &pgid, &pid), 2) << s;
  EXPECT_EQ(pid, (long long)mproc_popen_pid(p));
  EXPECT_EQ(pgid, pid) << "the session leader leads the tree's group";
  ASSERT_EQ(mproc_popen_readline(p, 1, line, sizeof line, 60000, &len, &end), 0) << mproc_last_error();
  long long grandchild = atoll(std::string(line, len).c_str()); // it says its pid, holding the terminal
  ASSERT_GT(grandchild, 0) << std::string(line, len);
  int code = 0;
  ASSERT_EQ(mproc_popen_stop_tree(p, 60000, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, -SIGTERM);
  EXPECT_EQ(read_all(p), ""); // end of file: nothing of the tree holds the terminal any more
  EXPECT_NE(kill((pid_t)grandchild, 0), 0) << "the grandchild outlived its tree";
  mproc_popen_destroy(p);
}

// A terminal with credentials (the fork engine): the terminal becomes the controlling one before the
// group changes, and stays so.
TEST(PtyPosix, ATerminalWithCredentials) {
  if (geteuid() != 0) GTEST_SKIP() << "changing the group takes root";
  Argv a({"ids", "print", "|", "ctty"});
  std::string out = run_on_terminal(a, {.stdout_mode = MPROC_PTY, .group = "4242"});
  EXPECT_NE(out.find("gid=4242 egid=4242"), std::string::npos) << out;
  EXPECT_NE(out.find("|yes"), std::string::npos) << out;
}
