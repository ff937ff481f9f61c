// White-box tests of a queue's wake-ups on POSIX, where a sleeping consumer can be held stopped: a put
// wakes a sleeper with one kernel call, and makes none while that sleeper has not run yet (on one CPU a
// woken consumer runs only once the producer yields; here it is stopped with SIGSTOP).
#include <gtest/gtest.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"

extern "C" {
#include "pal.h"
}

namespace {

const int64_t kLong = 60000;

// The state letter of /proc/<pid>/stat ('S': asleep), or 0.
char proc_state(pid_t pid) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char state = 0;
  if (fgets(line, sizeof line, f)) {
    const char *paren = strrchr(line, ')');
    if (paren && paren[1] == ' ') state = paren[2];
  }
  fclose(f);
  return state;
}

TEST(QueuePosix, APutWakesASleeperOnceAndNotAgainBeforeItRuns) {
#if !defined(__linux__)
  GTEST_SKIP() << "sees the consumer asleep through /proc";
#else
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_queue_create(&q, nullptr), 0);
  char buf[16];
  size_t n = 0;
  ASSERT_EQ(mproc_queue_put(q, "warm", 4, 0), 0); // the identity is cached on first use
  ASSERT_EQ(mproc_queue_get_into(q, buf, sizeof buf, 0, &n), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) { // its only blocking call is the get: asleep means asleep in it
    int got = 0;
    while (got < 101 && mproc_queue_get_into(q, buf, sizeof buf, kLong, &n) == 0) ++got;
    _exit(got == 101 ? 0 : 1);
  }
  struct timespec pause = {0, 1000000};
  for (int i = 0; i < 10000 && proc_state(pid) != 'S'; ++i) nanosleep(&pause, nullptr);
  ASSERT_EQ(proc_state(pid), 'S');
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, WUNTRACED), pid);
  ASSERT_TRUE(WIFSTOPPED(st));

  uint64_t before = mproc__pal_sync_calls();
  ASSERT_EQ(mproc_queue_put(q, "x", 1, 0), 0);
  EXPECT_EQ(mproc__pal_sync_calls() - before, 1u); // the wake
  for (int i = 0; i < 100; ++i) ASSERT_EQ(mproc_queue_put(q, "y", 1, 0), 0);
  EXPECT_EQ(mproc__pal_sync_calls() - before, 1u); // none more: the sleeper it woke has not run

  ASSERT_EQ(kill(pid, SIGCONT), 0);
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_EQ(mproc_queue_qsize(q), 0u);
  mproc_queue_destroy(q);
#endif
}

} // namespace
