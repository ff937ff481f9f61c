// Core module: version, error names, CPU counts, process identity, the executable path.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>

#include "mproc.h"
#include "test_util.h"

TEST(Core, VersionOfLibraryMatchesHeader) {
  EXPECT_EQ(mproc_version(), (unsigned)MPROC_VERSION_NUMBER);
  EXPECT_STREQ(mproc_version_string(), MPROC_VERSION_STRING);
  EXPECT_EQ(MPROC_VERSION_NUMBER, (0 << 16) | (1 << 8) | 0);
}

TEST(Core, EveryErrorCodeHasItsOwnName) {
  for (int code = 0; code >= MPROC_ERROR_MIN_; --code) {
    std::string s = mproc_strerror(code);
    EXPECT_EQ(s.rfind("MPROC_", 0), 0u) << code << ": " << s;
    for (int other = code - 1; other >= MPROC_ERROR_MIN_; --other)
      EXPECT_STRNE(mproc_strerror(code), mproc_strerror(other));
  }
  EXPECT_EQ(std::string(mproc_strerror(MPROC_ETIMEDOUT)).rfind("MPROC_ETIMEDOUT:", 0), 0u);
  EXPECT_STREQ(mproc_strerror(1), "unknown mproc error");
  EXPECT_STREQ(mproc_strerror(MPROC_ERROR_MIN_ - 1), "unknown mproc error");
  EXPECT_STREQ(mproc_strerror(-100000), "unknown mproc error");
}

TEST(Core, BadArgumentGivesCodeAndMessageNotACrash) {
  mproc_clear_error();
  EXPECT_STREQ(mproc_last_error(), "");
  EXPECT_EQ(mproc_self_exe(nullptr), MPROC_EINVAL);
  EXPECT_NE(std::string(mproc_last_error()).find("path_out"), std::string::npos) << mproc_last_error();
  EXPECT_EQ(mproc_last_os_error(), 0);
}

TEST(Core, LastErrorIsPerThread) {
  mproc_clear_error();
  std::string other;
  std::thread t([&] {
    EXPECT_EQ(mproc_self_exe(nullptr), MPROC_EINVAL);
    other = mproc_last_error();
  });
  t.join();
  EXPECT_FALSE(other.empty());
  EXPECT_STREQ(mproc_last_error(), "");  // this thread saw no failure
}

TEST(Core, CpuCounts) {
  int n = mproc_cpu_count();
  int p = mproc_process_cpu_count();
  EXPECT_GE(n, 1);
  EXPECT_GE(p, 1);
  EXPECT_LE(p, n);
  EXPECT_EQ(n, mproc_cpu_count());
}

TEST(Core, ProcessIds) {
  int64_t pid = mproc_getpid();
  int64_t ppid = mproc_getppid();
  EXPECT_GT(pid, 0);
  // A program started by wine from a Linux shell has no Windows parent, so ppid may be 0 there;
  // the subprocess tests check that a child's ppid is its parent's pid on both platforms.
  if (mproc_test::kWindows)
    EXPECT_GE(ppid, 0);
  else
    EXPECT_GT(ppid, 0);
  EXPECT_NE(pid, ppid);
  EXPECT_EQ(pid, mproc_getpid());
}

TEST(Core, MonotonicClockNeverGoesBack) {
  int64_t prev = mproc_monotonic_ns();
  for (int i = 0; i < 10000; ++i) {
    int64_t now = mproc_monotonic_ns();
    ASSERT_GE(now, prev);
    prev = now;
  }
  EXPECT_GT(prev, 0);
}

TEST(Core, SelfExeIsThisTestProgram) {
  char *path = nullptr;
  ASSERT_EQ(mproc_self_exe(&path), 0) << mproc_last_error();
  ASSERT_NE(path, nullptr);
  std::string s(path);
  mproc_free(path);
  EXPECT_NE(s.find("mproc_core_tests"), std::string::npos) << s;
  if (mproc_test::kWindows)
    EXPECT_TRUE(s.size() > 2 && s[1] == ':') << s;  // drive-qualified
  else
    EXPECT_EQ(s[0], '/') << s;
}

TEST(Core, FreeAcceptsNull) { mproc_free(nullptr); }

TEST(Core, MainGuardReturnsInOrdinaryRun) {
  char arg0[] = "prog";
  char *argv[] = {arg0, nullptr};
  EXPECT_EQ(mproc_main_guard(1, argv), 0);
}
