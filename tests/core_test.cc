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
  EXPECT_STREQ(mproc_last_error(), ""); // this thread saw no failure
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
    EXPECT_TRUE(s.size() > 2 && s[1] == ':') << s; // drive-qualified
  else
    EXPECT_EQ(s[0], '/') << s;
}

TEST(Core, FreeAcceptsNull) { mproc_free(nullptr); }

TEST(Core, MainGuardReturnsInOrdinaryRun) {
  char arg0[] = "prog";
  char *argv[] = {arg0, nullptr};
  EXPECT_EQ(mproc_main_guard(1, argv), 0);
}

// ---- exit statuses: exit code, -signal and Windows crash codes never overlap ----------------------

namespace {
std::string describe(int code) {
  char buf[MPROC_EXIT_DESC_SIZE];
  return mproc_describe_exit(code, buf, sizeof buf);
}
} // namespace

TEST(Core, ExitCodesSignalsAndCrashesAreTold) {
  // ordinary exit codes
  for (int code : {0, 1, 3, 127, 255, 256, 70000, INT32_MAX}) {
    EXPECT_FALSE(mproc_exit_is_crash(code)) << code;
    EXPECT_EQ(mproc_exit_signal(code), 0) << code;
    EXPECT_EQ(describe(code), "exit code " + std::to_string(code));
  }
  // -N = signal N
  EXPECT_EQ(mproc_exit_signal(-MPROC_SIGKILL), 9);
  EXPECT_EQ(mproc_exit_signal(-MPROC_SIGTERM), 15);
  EXPECT_EQ(mproc_exit_signal(-1), 1);
  EXPECT_EQ(mproc_exit_signal(-127), 127);
  EXPECT_EQ(mproc_exit_signal(-128), 0); // below the signal range: a (Windows) negative exit code
  for (int code : {-1, -6, -9, -11, -15, -64, -127}) EXPECT_FALSE(mproc_exit_is_crash(code)) << code;
  EXPECT_EQ(describe(-9), "signal 9 (SIGKILL)");
  EXPECT_EQ(describe(-15), "signal 15 (SIGTERM)");
  EXPECT_EQ(describe(-11), "signal 11 (SIGSEGV)");
  EXPECT_EQ(describe(-6), "signal 6 (SIGABRT)");
  EXPECT_EQ(describe(-10), "signal 10"); // SIGUSR1 on Linux, SIGBUS on macOS: no name
  // Windows exception codes: large negative ints
  const unsigned crashes[] = {0xC0000005u, 0xC0000409u, 0xC00000FDu, 0xC0000374u, 0x80000003u,
                              0xE06D7363u, 0x80000000u, 0xEFFFFFFFu, 0xC0001234u};
  for (unsigned u : crashes) {
    int code = (int)u;
    EXPECT_LT(code, -127);
    EXPECT_TRUE(mproc_exit_is_crash(code)) << std::hex << u;
    EXPECT_EQ(mproc_exit_signal(code), 0) << std::hex << u;
    EXPECT_EQ(describe(code).rfind("crash 0x", 0), 0u) << describe(code);
  }
  EXPECT_EQ((int)0xC0000005u, -1073741819); // what the header documents
  EXPECT_EQ((int)0xC0000409u, -1073740791);
  EXPECT_EQ((int)0xC00000FDu, -1073741571);
  EXPECT_EQ(describe((int)0xC0000005u), "crash 0xC0000005 (STATUS_ACCESS_VIOLATION)");
  EXPECT_EQ(describe((int)0xC0000409u).rfind("crash 0xC0000409 (STATUS_STACK_BUFFER_OVERRUN", 0), 0u);
  EXPECT_EQ(describe((int)0xC0001234u), "crash 0xC0001234");
  // the boundary between a negative exit code and a crash
  EXPECT_TRUE(mproc_exit_is_crash(MPROC_EXIT_CRASH_MAX));
  EXPECT_FALSE(mproc_exit_is_crash(MPROC_EXIT_CRASH_MAX + 1));
  EXPECT_EQ((unsigned)MPROC_EXIT_CRASH_MAX, 0xEFFFFFFFu);
  for (int code : {-128, -300, (int)0xF0000000u, (int)0xFFFFFF00u}) {
    EXPECT_FALSE(mproc_exit_is_crash(code)) << code;
    EXPECT_EQ(mproc_exit_signal(code), 0) << code;
    EXPECT_EQ(describe(code), "exit code " + std::to_string(code));
  }
}

TEST(Core, DescribeExitFitsAndTruncates) {
  // MPROC_EXIT_DESC_SIZE is enough for the longest description
  for (unsigned u = 0x80000000u; u <= 0xF0000000u; u += 0x00100000u) {
    char buf[MPROC_EXIT_DESC_SIZE + 8];
    std::memset(buf, 'x', sizeof buf);
    mproc_describe_exit((int)u, buf, MPROC_EXIT_DESC_SIZE);
    EXPECT_LT(std::strlen(buf), (size_t)MPROC_EXIT_DESC_SIZE);
  }
  char big[MPROC_EXIT_DESC_SIZE];
  for (unsigned u : {0xC0000409u, 0xC0000417u, 0xE06D7363u, 0xC00000FDu}) {
    std::string d = mproc_describe_exit((int)u, big, sizeof big);
    EXPECT_EQ(d.back(), ')') << "no name for " << std::hex << u; // every listed code has its name
    EXPECT_LT(d.size() + 1, sizeof big) << d;                    // and it was not cut short
  }
  char small[10];
  std::memset(small, 'x', sizeof small);
  EXPECT_EQ(mproc_describe_exit(-9, small, sizeof small), small);
  EXPECT_STREQ(small, "signal 9 "); // truncated, NUL-terminated within the buffer
  char one[1] = {'x'};
  EXPECT_STREQ(mproc_describe_exit(3, one, 1), "");
  EXPECT_STREQ(mproc_describe_exit(3, nullptr, 10), "");
  EXPECT_STREQ(mproc_describe_exit(3, big, 0), "");
}
