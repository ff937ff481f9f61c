// subprocess: process trees (process_tree, mproc_popen_*_tree) and kill on parent death for programs;
// platform-neutral, run on Linux and under wine. Trees are built by tests/helpers/mproc_helper ("child",
// "child-detached": one leaves the group and session with setsid on POSIX, and tries to break away from
// the job on Windows). Whether a process has ended is checked through a handle opened while it lived (a
// pidfd on Linux, a process handle on Windows), never by its pid; nothing waits with a sleep.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "mproc.h"
#include "test_util.h"
#include "tree_util.h"

using mproc_test::Argv;
using mproc_test::helper_path;
using mproc_test::kWindows;
using mproc_test::ptr;
using mproc_test::read_lines;
using mproc_test::to_pids;
using mproc_test::Watch;

namespace {

// The tree every test builds: P prints its pid, then
//   G1 (prints, sleeps) with a detached child D1 (prints, sleeps): D1 left the group, its parent lives;
//   G2 (silent, exits at once) with a detached child D2 (prints; starts E2, which prints and sleeps):
//   D2 and E2 left the group and D2's parent has ended, so they are orphans of the tree.
// `prog_tail` ends P's script: what P does once everything has started; `each` starts every process's
// script; the others then `wait` (sleep a minute by default). Five pids: P, G1, D1, D2, E2 in some order
// (P's first).
std::vector<std::string> tree_script(std::vector<std::string> prog_tail, std::vector<std::string> each = {},
                                     std::vector<std::string> wait = {"sleep", "60000"}) {
  std::vector<std::string> s;
  auto add = [&s](const std::vector<std::string> &words) { s.insert(s.end(), words.begin(), words.end()); };
  add(each);
  add({"pidln", "child"}); // G1
  add(each);
  add({"pidln", "child-detached"}); // D1
  add(each);
  add({"pidln"});
  add(wait);
  add({"end"});
  add(wait);
  add({"end", "child"}); // G2
  add(each);
  add({"child-detached"}); // D2
  add(each);
  add({"pidln", "child"}); // E2
  add(each);
  add({"pidln"});
  add(wait);
  add({"end"});
  add(wait);
  add({"end", "end"});
  add(prog_tail);
  return s;
}
const size_t kTreeSize = 5;

struct Tree {
  mproc_popen *p = nullptr;
  std::vector<std::unique_ptr<Watch>> watches; // [0] is the program
  ~Tree() { mproc_popen_destroy(p); }
  bool all_ended(int timeout_ms = 0) const {
    for (auto &w : watches)
      if (!w->ended(timeout_ms)) return false;
    return true;
  }
  size_t running() const {
    size_t n = 0;
    for (auto &w : watches) n += !w->ended(0);
    return n;
  }
};

// Start the tree and watch all of it; fails the test (returns false) if it did not come up.
::testing::AssertionResult start_tree(Tree &t, mproc_popen_opts o, std::vector<std::string> prog_tail,
                                      std::vector<std::string> each = {},
                                      std::vector<std::string> wait = {"sleep", "60000"}) {
  Argv a(tree_script(std::move(prog_tail), std::move(each), std::move(wait)));
  o.argv = a.get();
  o.process_tree = true;
  o.stdout_mode = MPROC_PIPE;
  if (mproc_popen_create(&t.p, &o) != 0) return ::testing::AssertionFailure() << mproc_last_error();
  std::vector<std::string> lines = read_lines(t.p, kTreeSize);
  if (lines.size() != kTreeSize) return ::testing::AssertionFailure() << "only " << lines.size() << " pids came";
  std::vector<long long> pids = to_pids(lines);
  if (pids[0] != mproc_popen_pid(t.p))
    return ::testing::AssertionFailure() << "the first pid " << pids[0] << " is not the program's "
                                         << mproc_popen_pid(t.p);
  for (long long pid : pids) {
    t.watches.push_back(std::make_unique<Watch>(pid));
    if (!t.watches.back()->valid()) return ::testing::AssertionFailure() << "cannot watch " << pid;
    if (t.watches.back()->ended(0)) return ::testing::AssertionFailure() << pid << " ended already";
  }
  return ::testing::AssertionSuccess();
}

int killed_code() { return kWindows ? 1 : -MPROC_SIGKILL; }

} // namespace

// ---- stopping a tree -------------------------------------------------------------------------------

TEST(Tree, StopAtOnceLeavesNothing) {
  NEED_WATCHES();
  Tree t;
  ASSERT_TRUE(start_tree(t, {}, {"sleep", "60000"}));
  int code = 0;
  ASSERT_EQ(mproc_popen_stop_tree(t.p, 0, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, killed_code());
  EXPECT_EQ(t.running(), 0u) << "processes of the tree outlived stop_tree";
  int rc = 0;
  EXPECT_TRUE(mproc_popen_returncode(t.p, &rc));
  EXPECT_EQ(rc, killed_code());
  EXPECT_EQ(mproc_popen_wait_tree(t.p, 0), 0);
}

TEST(Tree, GracefulStopAsksFirst) {
  NEED_WATCHES();
  // POSIX: everything obeys SIGTERM, the program with exit code 42, so the grace is never used up (a
  // kill after it would give -9). Windows: a console program without a console of ours gets no polite
  // request, so the grace passes and the job is ended.
  Tree t;
  ASSERT_TRUE(start_tree(t, {}, {"on-term", "42", "sleep", "60000"}));
  int code = 0;
  ASSERT_EQ(mproc_popen_stop_tree(t.p, kWindows ? 300 : 60000, &code), 0) << mproc_last_error();
  if (kWindows)
    EXPECT_TRUE(code == 1 || code == 42) << code;
  else
    EXPECT_EQ(code, 42);
  EXPECT_EQ(t.running(), 0u);
}

TEST(Tree, GracefulStopKillsWhatIgnoresTheRequest) {
  NEED_WATCHES();
  Tree t;
  ASSERT_TRUE(start_tree(t, {}, {"sleep", "60000"}, {"ignore-term"}));
  int code = 0;
  ASSERT_EQ(mproc_popen_stop_tree(t.p, 300, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, killed_code());
  EXPECT_EQ(t.running(), 0u);
}

TEST(Tree, KillTreeThenWait) {
  NEED_WATCHES();
  Tree t;
  ASSERT_TRUE(start_tree(t, {}, {"sleep", "60000"}));
  EXPECT_EQ(mproc_popen_wait_tree(t.p, 0), MPROC_ETIMEDOUT);
  ASSERT_EQ(mproc_popen_kill_tree(t.p), 0) << mproc_last_error();
  ASSERT_EQ(mproc_popen_wait_tree(t.p, MPROC_INFINITE), 0) << mproc_last_error();
  EXPECT_EQ(t.running(), 0u);
  int code = 0;
  ASSERT_EQ(mproc_popen_wait(t.p, 0, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, killed_code());
  EXPECT_EQ(mproc_popen_kill_tree(t.p), 0) << "a tree that has ended is no error";
  EXPECT_EQ(mproc_popen_signal_tree(t.p, MPROC_SIGTERM), 0);
}

TEST(Tree, SignalTreeReachesEveryProcess) {
  NEED_WATCHES();
  Tree t;
  ASSERT_TRUE(start_tree(t, {}, {"sleep", "60000"}));
  ASSERT_EQ(mproc_popen_signal_tree(t.p, MPROC_SIGTERM), 0) << mproc_last_error();
  EXPECT_TRUE(t.all_ended(60000));
  int code = 0;
  ASSERT_EQ(mproc_popen_wait(t.p, MPROC_INFINITE, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, kWindows ? 1 : -MPROC_SIGTERM);
  EXPECT_EQ(mproc_popen_wait_tree(t.p, MPROC_INFINITE), 0) << mproc_last_error();
  if (kWindows) {
    EXPECT_EQ(mproc_popen_signal_tree(t.p, MPROC_SIGINT), MPROC_ENOTSUP);
  }
}

// ---- what the program leaves behind ------------------------------------------------------------------

TEST(Tree, WhatTheProgramLeftStaysInTheTree) {
  NEED_WATCHES();
  Tree t;
  ASSERT_TRUE(start_tree(t, {.stdin_mode = MPROC_PIPE}, {"read", "1", "exit", "7"}));
  ASSERT_EQ(mproc_popen_close_stdin(t.p), 0); // the program ends; the rest sleeps on
  int code = 0;
  ASSERT_EQ(mproc_popen_wait(t.p, MPROC_INFINITE, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, 7);
  EXPECT_TRUE(t.watches[0]->ended(0));
  EXPECT_EQ(t.running(), kTreeSize - 1);
  EXPECT_EQ(mproc_popen_wait_tree(t.p, 0), MPROC_ETIMEDOUT);
  // still stoppable: the stop reaches the orphans, and the returncode stays the program's
  int again = 0;
  ASSERT_EQ(mproc_popen_stop_tree(t.p, 0, &again), 0) << mproc_last_error();
  EXPECT_EQ(again, 7);
  EXPECT_EQ(t.running(), 0u);
}

TEST(Tree, ATreeEndsByItself) {
  NEED_WATCHES();
  // Every process of the tree waits for stdin's end of file: closing it ends them all, in no order.
  Tree t;
  ASSERT_TRUE(start_tree(t, {.stdin_mode = MPROC_PIPE}, {"read", "1"}, {}, {"read", "1"}));
  EXPECT_EQ(mproc_popen_wait_tree(t.p, 0), MPROC_ETIMEDOUT);
  ASSERT_EQ(mproc_popen_close_stdin(t.p), 0);
  ASSERT_EQ(mproc_popen_wait_tree(t.p, MPROC_INFINITE), 0) << mproc_last_error();
  EXPECT_EQ(t.running(), 0u);
  int code = -1;
  ASSERT_EQ(mproc_popen_wait(t.p, 0, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, 0);
}

TEST(Tree, DestroyKillsARunningTree) {
  NEED_WATCHES();
  Tree t;
  ASSERT_TRUE(start_tree(t, {}, {"sleep", "60000"}));
  mproc_popen_destroy(t.p);
  t.p = nullptr;
  EXPECT_EQ(t.running(), 0u);
}

TEST(Tree, DestroyLetsGoOfWhatAnEndedProgramLeft) {
  NEED_WATCHES();
  Tree t;
  ASSERT_TRUE(start_tree(t, {.stdin_mode = MPROC_PIPE}, {"read", "1", "exit", "0"}));
  ASSERT_EQ(mproc_popen_close_stdin(t.p), 0);
  ASSERT_EQ(mproc_popen_wait(t.p, MPROC_INFINITE, nullptr), 0) << mproc_last_error();
  mproc_popen_destroy(t.p);
  t.p = nullptr;
  EXPECT_EQ(t.running(), kTreeSize - 1) << "destroy ended what the program left (it should let it go)";
  // (the watches kill them at the end of the test)
}

TEST(Tree, DestroyKillsWhatAnEndedProgramLeftWithKillOnParentDeath) {
  NEED_WATCHES();
  Tree t;
  ASSERT_TRUE(start_tree(t, {.stdin_mode = MPROC_PIPE, .kill_on_parent_death = true}, {"read", "1", "exit", "0"}));
  ASSERT_EQ(mproc_popen_close_stdin(t.p), 0);
  ASSERT_EQ(mproc_popen_wait(t.p, MPROC_INFINITE, nullptr), 0) << mproc_last_error();
  mproc_popen_destroy(t.p);
  t.p = nullptr;
  EXPECT_TRUE(t.all_ended(60000));
}

// ---- the Popen is the program's, as ever -----------------------------------------------------------------

TEST(Tree, PopenIsTheProgramsAsEver) {
  Argv a({"pidln", "count", "eprint", "e", "exit", "3"});
  mproc_popen *p = nullptr;
  ASSERT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = a.get(),
                                                        .stdin_mode = MPROC_PIPE,
                                                        .stdout_mode = MPROC_PIPE,
                                                        .stderr_mode = MPROC_PIPE,
                                                        .process_tree = true})),
            0)
      << mproc_last_error();
  EXPECT_EQ(mproc_popen_poll(p, nullptr), MPROC_ETIMEDOUT);
  std::string input(200000, 'x');
  char *out = nullptr, *err = nullptr;
  size_t out_len = 0, err_len = 0;
  ASSERT_EQ(mproc_popen_communicate(p, input.data(), input.size(), 60000, &out, &out_len, &err, &err_len), 0)
      << mproc_last_error();
  EXPECT_EQ(std::string(out, out_len), std::to_string(mproc_popen_pid(p)) + "\n200000");
  EXPECT_EQ(std::string(err, err_len), "e");
  mproc_free(out);
  mproc_free(err);
  int code = 0;
  EXPECT_TRUE(mproc_popen_returncode(p, &code));
  EXPECT_EQ(code, 3);
  EXPECT_EQ(mproc_popen_wait_tree(p, MPROC_INFINITE), 0) << mproc_last_error();
  mproc_popen_destroy(p);
}

TEST(Tree, WaitTimesOutAndSignalsReachTheProgramAlone) {
  NEED_WATCHES();
  Tree t;
  ASSERT_TRUE(start_tree(t, {}, {"sleep", "60000"}));
  EXPECT_EQ(mproc_popen_wait(t.p, 0, nullptr), MPROC_ETIMEDOUT);
  ASSERT_EQ(mproc_popen_terminate(t.p), 0) << mproc_last_error();
  int code = 0;
  ASSERT_EQ(mproc_popen_wait(t.p, MPROC_INFINITE, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, kWindows ? 1 : -MPROC_SIGTERM);
  EXPECT_EQ(t.running(), kTreeSize - 1) << "terminate reaches the program alone";
  ASSERT_EQ(mproc_popen_stop_tree(t.p, 0, &code), 0) << mproc_last_error();
  EXPECT_EQ(t.running(), 0u);
}

TEST(Tree, RunWithATimeoutKillsTheTree) {
  // run's timeout kills the whole tree: the grandchildren hold stdout, and run still returns.
  Argv a(tree_script({"sleep", "60000"}));
  mproc_completed r{};
  ASSERT_EQ(mproc_run(ptr(mproc_popen_opts{.argv = a.get(), .process_tree = true, .capture_output = true}), 2000, &r),
            MPROC_ETIMEDOUT)
      << mproc_last_error();
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.returncode, killed_code());
  mproc_completed_free(&r);
}

TEST(Tree, NoDescendantMayLeaveTheJob) {
  // Windows: a descendant that asks to leave the tree's job (CREATE_BREAKAWAY_FROM_JOB) fails to start;
  // kill_on_parent_death alone holds the program only, so there it may.
  mproc_test::Captured tree = mproc_test::run_helper({"breakaway"}, mproc_popen_opts{.process_tree = true});
  mproc_test::Captured alone = mproc_test::run_helper({"breakaway"}, mproc_popen_opts{.kill_on_parent_death = true});
  EXPECT_EQ(tree.rc, 0) << mproc_last_error();
  EXPECT_EQ(tree.out, kWindows ? "refused" : "posix");
  EXPECT_EQ(alone.out, kWindows ? "allowed" : "posix");
}

TEST(Tree, CallsOnAPopenWithoutATreeAreStateErrors) {
  Argv a({"exit", "0"});
  mproc_popen *p = nullptr;
  ASSERT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = a.get()})), 0) << mproc_last_error();
  EXPECT_EQ(mproc_popen_kill_tree(p), MPROC_ESTATE);
  EXPECT_EQ(mproc_popen_signal_tree(p, MPROC_SIGTERM), MPROC_ESTATE);
  EXPECT_EQ(mproc_popen_wait_tree(p, 0), MPROC_ESTATE);
  EXPECT_EQ(mproc_popen_stop_tree(p, 0, nullptr), MPROC_ESTATE);
  EXPECT_NE(std::string(mproc_last_error()).find("process_tree"), std::string::npos) << mproc_last_error();
  mproc_popen_destroy(p);
  EXPECT_EQ(mproc_popen_kill_tree(nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_popen_stop_tree(nullptr, 0, nullptr), MPROC_EINVAL);
}

TEST(Tree, StartErrorsLeaveNothing) {
  const char *argv[] = {"mproc-no-such-program-anywhere", nullptr};
  mproc_popen *p = nullptr;
  EXPECT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .process_tree = true})), MPROC_ENOENT);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .kill_on_parent_death = true})), MPROC_ENOENT);
}

// ---- kill on parent death ----------------------------------------------------------------------------------

namespace {
#if defined(__linux__)
constexpr bool kLinux = true;
#else
constexpr bool kLinux = false;
#endif

struct DeathCase {
  bool tree, thread;
};

class KillOnParentDeath : public ::testing::TestWithParam<DeathCase> {};

} // namespace

TEST_P(KillOnParentDeath, TheProgramDiesWithItsParent) {
  NEED_WATCHES();
  DeathCase c = GetParam();
  mproc_test::ParentDeath d = mproc_test::kill_parent_of(c.tree, c.thread, helper_path());
  ASSERT_EQ(d.error, "");
  // Which mechanism served: PR_SET_PDEATHSIG leaves the program the intermediate's own child; the tree
  // helper stands between them (POSIX). Windows: a job, and the program is the intermediate's child.
  if (kWindows || (kLinux && !c.tree && !c.thread))
    EXPECT_EQ(d.ppid, d.mid) << "the program should be the intermediate's own child";
  else
    EXPECT_NE(d.ppid, d.mid) << "the program should run under a tree helper";
  EXPECT_TRUE(d.prog->ended(60000)) << "the program outlived its parent";
  if (c.tree)
    EXPECT_TRUE(d.kid->ended(60000)) << "the program's child outlived the tree's parent";
  else
    EXPECT_FALSE(d.kid->ended(0)) << "without process_tree the program's child is not ended";
}

INSTANTIATE_TEST_SUITE_P(Cases, KillOnParentDeath,
                         ::testing::Values(DeathCase{false, false}, DeathCase{false, true}, DeathCase{true, false},
                                           DeathCase{true, true}),
                         [](const ::testing::TestParamInfo<DeathCase> &i) {
                           return std::string(i.param.tree ? "Tree" : "Program") +
                                  (i.param.thread ? "FromAThread" : "FromTheMainThread");
                         });

TEST(KillOnParentDeath, OffByDefault) {
  mproc_popen_opts o{};
  EXPECT_FALSE(o.kill_on_parent_death);
  EXPECT_FALSE(o.process_tree);
}
