// The exit handle of a started child (pal.h, mproc__child.handle): not ready while the program runs, ready
// once it has ended, and still ready after mproc__pal_wait has collected its status. The same on every path
// a start can take: a plain start, a process tree (POSIX: the tree helper's exit pipe), kill_on_parent_death
// from the main thread (Linux: PR_SET_PDEATHSIG) and from another thread (POSIX: the helper again).
// White-box: it drives the PAL directly; the public exit handle (mproc_popen_exit_handle) is this handle.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "test_util.h"

extern "C" {
#include "internal.h"
#include "pal.h"
}

using mproc_test::helper_path;

namespace {

struct Case {
  const char *name;
  bool tree, kill_on_parent_death, from_thread;
};

class ExitHandle : public ::testing::TestWithParam<Case> {};

bool ready(mproc_os_handle h, int64_t timeout_ms) {
  mproc__wait_item item = {h, MPROC__WAIT_SENTINEL};
  bool r = false;
  return mproc__pal_wait_ready(&item, 1, mproc__deadline_from_timeout(timeout_ms), &r) == 0 && r;
}

} // namespace

TEST_P(ExitHandle, ReadyOnceTheProgramHasEndedAndFromThenOn) {
  Case c = GetParam();
  std::string helper = helper_path();
  const char *argv[] = {helper.c_str(), "read", "1", "exit", "3", nullptr};
  mproc_os_handle ours = MPROC_NO_HANDLE, theirs = MPROC_NO_HANDLE;
  ASSERT_EQ(mproc__pal_pipe(false, &ours, &theirs), 0) << mproc_last_error();
  mproc__spawn_req req{};
  req.argv = argv;
  req.stdio[0] = theirs;
  req.stdio[1] = req.stdio[2] = MPROC_NO_HANDLE;
  req.process_tree = c.tree;
  req.kill_on_parent_death = c.kill_on_parent_death;
  mproc__child child{};
  int rc = -1;
  if (c.from_thread) {
    std::thread t([&] { rc = mproc__pal_spawn(&req, &child); });
    t.join();
  } else {
    rc = mproc__pal_spawn(&req, &child);
  }
  mproc__pal_close(theirs);
  ASSERT_EQ(rc, 0) << mproc_last_error();
  if (child.handle == MPROC_NO_HANDLE) {
    mproc__pal_close(ours);
    mproc__pal_wait(&child, INT64_MAX);
    mproc__pal_child_release(&child);
    GTEST_SKIP() << "no exit handle here (no pidfd)";
  }
  mproc_os_handle exit_handle = MPROC_NO_HANDLE;
  ASSERT_EQ(mproc__pal_child_exit_handle(&child, &exit_handle), 0) << mproc_last_error();
  EXPECT_EQ(exit_handle, child.handle) << "the exit handle an application gets is the one the wait uses";
  EXPECT_FALSE(ready(child.handle, 0)) << "ready while the program runs";
  mproc__pal_close(ours); // the program reads end of file and exits 3
  EXPECT_TRUE(ready(child.handle, 60000)) << "not ready after the program ended";
  ASSERT_EQ(mproc__pal_wait(&child, 0), 0) << "ready, so the status is there without blocking: " << mproc_last_error();
  EXPECT_TRUE(child.reaped);
  EXPECT_EQ(child.returncode, 3);
  EXPECT_TRUE(ready(child.handle, 0)) << "no longer ready once the status was collected";
  EXPECT_EQ(mproc__pal_wait(&child, 0), 0);
  mproc__pal_child_release(&child);
}

INSTANTIATE_TEST_SUITE_P(Paths, ExitHandle,
                         ::testing::Values(Case{"Plain", false, false, false}, Case{"Tree", true, false, false},
                                           Case{"KillOnParentDeath", false, true, false},
                                           Case{"KillOnParentDeathFromAThread", false, true, true},
                                           Case{"TreeKillOnParentDeathFromAThread", true, true, true}),
                         [](const ::testing::TestParamInfo<Case> &i) { return std::string(i.param.name); });
