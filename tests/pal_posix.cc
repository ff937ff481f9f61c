// White-box tests of the POSIX PAL: writes to a pipe or socket whose reader has gone never raise
// SIGPIPE, whichever way the kernel lets us prevent it (pwritev2 with RWF_NOSIGNAL on Linux 6.18 and
// later, else blocking the signal in the calling thread around the write). Both ways are run here.
#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

// The pid mproc keeps (pal_core.c) is the caller's in a child of any fork, mproc's or not, and in its
// children: a fork child never answers with its parent's pid.
TEST(ForkState, APlainForkChildAndGrandchildKnowTheirOwnPid) {
  int64_t mine = mproc__pal_getpid();
  ASSERT_EQ(mine, (int64_t)getpid());
  ASSERT_EQ(mine, mproc__pal_getpid()); // kept now, if it is kept at all
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (mproc__pal_getpid() != (int64_t)getpid() || mproc__pal_getpid() == mine) _exit(1);
    int64_t child = mproc__pal_getpid();
    pid_t g = fork();
    if (g < 0) _exit(2);
    if (g == 0) _exit(mproc__pal_getpid() == (int64_t)getpid() && mproc__pal_getpid() != child ? 0 : 3);
    int st = 0;
    if (waitpid(g, &st, 0) != g || !WIFEXITED(st)) _exit(4);
    _exit(WEXITSTATUS(st) ? 5 : 0);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0); // 1: the child's pid; 3, 5: the grandchild's; others: fork or wait failed
  EXPECT_EQ(mproc__pal_getpid(), mine);
}

#if defined(__linux__)
namespace {
struct holder {
  int held[2], release[2];
};
void *hold_global_lock(void *arg) {
  holder *h = (holder *)arg;
  char c = 0;
  mproc__pal_global_lock();
  (void)!write(h->held[1], "h", 1);
  (void)!read(h->release[0], &c, 1);
  mproc__pal_global_unlock();
  return nullptr;
}
} // namespace

// Linux: the global lock lives in a page every fork child finds zero-filled, so even a plain fork()
// made while another thread holds the lock leaves the child a lock it can take (mproc's own forks hold
// it across the fork on every system). The child would hang on a copy of the held lock: its alarm then
// ends it by a signal, and the test fails instead of hanging.
TEST(ForkState, APlainForkWhileAnotherThreadHoldsTheGlobalLockLeavesTheChildALockItCanTake) {
  holder h;
  ASSERT_EQ(pipe(h.held), 0);
  ASSERT_EQ(pipe(h.release), 0);
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, hold_global_lock, &h), 0);
  char c = 0;
  ASSERT_EQ(read(h.held[0], &c, 1), 1); // the thread holds the lock now
  pid_t pid = fork();
  if (pid == 0) {
    alarm(20);
    mproc__pal_global_lock();
    mproc__pal_global_unlock();
    _exit(0);
  }
  int st = 0;
  pid_t got = pid > 0 ? waitpid(pid, &st, 0) : -1;
  EXPECT_EQ(write(h.release[1], "r", 1), 1);
  pthread_join(t, nullptr);
  for (int fd : {h.held[0], h.held[1], h.release[0], h.release[1]}) close(fd);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(got, pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "the child could not take the lock (status " << st << ")";
}
#endif
