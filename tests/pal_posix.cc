// White-box tests of the POSIX PAL: writes to a pipe or socket whose reader has gone never raise
// SIGPIPE, whichever way the kernel lets us prevent it (pwritev2 with RWF_NOSIGNAL on Linux 6.18 and
// later, else blocking the signal in the calling thread around the write). Both ways are run here.
#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>
#include <time.h>

extern "C" {
#include "internal.h"
#include "pal.h"
#include "posix/posix.h"
}

namespace {

bool sigpipe_blocked() {
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  return sigismember(&mask, SIGPIPE) == 1;
}

bool sigpipe_pending() {
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  return sigismember(&pending, SIGPIPE) == 1;
}

void drain_sigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  struct timespec zero = {0, 0};
  while (sigtimedwait(&set, nullptr, &zero) == SIGPIPE) {
  }
}

// A Pipe() whose receiving side has gone, a boot-link socket pair likewise, and a subprocess pipe:
// each write fails with MPROC_EPIPE. The process survives (SIGPIPE's default action would end it).
void writes_to_gone_readers_fail_cleanly() {
  mproc__conn_end a, b;
  ASSERT_EQ(mproc__pal_conn_ends(true, &a, &b), 0) << mproc_last_error();
  mproc__pal_close(b.rd);
  mproc__pal_close(b.bulk);
  EXPECT_EQ(mproc__pal_conn_send(a.wr, "x", 1, nullptr, 0), MPROC_EPIPE);
  EXPECT_EQ(mproc__pal_conn_send(a.bulk, "y", 1, "z", 1), MPROC_EPIPE);
  mproc__pal_close(a.rd);
  mproc__pal_close(a.wr);
  mproc__pal_close(a.bulk);
  mproc__pal_close(b.wr);

  mproc_os_handle parent, child;
  ASSERT_EQ(mproc__pal_pipe(false, &parent, &child), 0); // the child would read: parent writes
  mproc__pal_close(child);
  size_t n = 99;
  EXPECT_EQ(mproc__pal_write(parent, "abc", 3, INT64_MAX, &n), MPROC_EPIPE);
  EXPECT_EQ(n, 0u);
  mproc__pal_close(parent);
}

class NoSigpipe : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { mproc__posix_force_sigpipe_guard(GetParam()); }
  void TearDown() override { mproc__posix_force_sigpipe_guard(false); }
};

} // namespace

TEST_P(NoSigpipe, NothingLeftPendingOrBlocked) {
  ASSERT_FALSE(sigpipe_blocked());
  writes_to_gone_readers_fail_cleanly();
  EXPECT_FALSE(sigpipe_pending()); // the guard consumed what the writes raised
  EXPECT_FALSE(sigpipe_blocked()); // and restored the mask
}

// A thread that blocks SIGPIPE itself keeps its mask as it was.
TEST_P(NoSigpipe, ACallerThatBlocksSigpipeKeepsItsMask) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  writes_to_gone_readers_fail_cleanly();
  EXPECT_TRUE(sigpipe_blocked());
  drain_sigpipe(); // under the guard the signals stay pending, as the thread's own writes leave them
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

INSTANTIATE_TEST_SUITE_P(Ways, NoSigpipe, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool> &i) { return i.param ? "guard" : "kernel"; });
