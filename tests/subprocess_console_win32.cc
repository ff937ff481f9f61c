// subprocess on Windows: what a child gets from creationflags and startupinfo, read back by the helper
// (GetStartupInfoW, GetConsoleWindow, GetConsoleProcessList, the types of its standard handles), and
// CTRL_BREAK sent from a process that has a console.
//
// Where wine 8 differs from Windows (docs/PLATFORMS.md): headless wine gives no console a window, so
// GetConsoleWindow() is NULL even for a new console (Windows: a window, hidden with SW_HIDE); a program
// that wine starts from a pipe or a terminal has no console, so its children share none; and wine's
// consoles deliver CTRL_C but not CTRL_BREAK (GenerateConsoleCtrlEvent fails with ERROR_INVALID_HANDLE).
// The tests expect each side's behaviour by name.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mproc.h"
#include "test_util.h"

using mproc_test::Captured;
using mproc_test::helper_path;
using mproc_test::ptr;
using mproc_test::run_helper;
using mproc_test::under_wine;

namespace {

bool has_console() {
  DWORD one;
  return GetConsoleProcessList(&one, 1) > 0;
}

std::string read_file(const std::string &path) {
  std::string out;
  FILE *f = nullptr;
  if (fopen_s(&f, path.c_str(), "rb") != 0 || !f) return "<missing>";
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  fclose(f);
  return out;
}

std::string temp_file(const char *name) {
  char dir[MAX_PATH + 1];
  DWORD n = GetTempPathA(MAX_PATH, dir);
  return std::string(dir, n) + "mproc-console-" + std::to_string(GetCurrentProcessId()) + "-" + name;
}

} // namespace

TEST(Win32Console, StartupinfoReachesTheChild) {
  struct Case {
    mproc_startupinfo si;
    const char *expect; // with STARTF_USESTDHANDLES (0x100): run_helper captures both streams
  } cases[] = {
      {{0, 0}, "flags=100 show=0"},
      {{MPROC_STARTF_USESHOWWINDOW, MPROC_SW_HIDE}, "flags=101 show=0"},
      {{MPROC_STARTF_USESHOWWINDOW, MPROC_SW_SHOWMINNOACTIVE}, "flags=101 show=7"},
      {{MPROC_STARTF_USESHOWWINDOW | MPROC_STARTF_FORCEOFFFEEDBACK, MPROC_SW_SHOWMAXIMIZED}, "flags=181 show=3"},
  };
  for (auto &c : cases) {
    Captured r = run_helper({"startupinfo"}, mproc_popen_opts{.startupinfo = c.si});
    EXPECT_EQ(r.rc, 0) << mproc_last_error();
    EXPECT_EQ(r.out, c.expect);
  }
}

TEST(Win32Console, EachConsoleFlagGivesTheConsoleAsked) {
  // no flag: our console, shared; without one (wine from ctest) wine gives none, Windows a new one
  Captured plain = run_helper({"console"});
  if (has_console()) {
    size_t at = plain.out.find("procs=");
    ASSERT_NE(at, std::string::npos) << plain.out;
    EXPECT_GE(atoi(plain.out.c_str() + at + 6), 2) << plain.out; // shared with us
  } else {
    EXPECT_EQ(plain.out, under_wine() ? "window=none procs=0" : "window=visible procs=1");
  }
  // CREATE_NO_WINDOW: a console of its own, without a window (the console tool a GUI program runs)
  Captured no_window = run_helper({"console"}, mproc_popen_opts{.creationflags = MPROC_CREATE_NO_WINDOW});
  EXPECT_EQ(no_window.out, "window=none procs=1");
  // DETACHED_PROCESS: no console at all
  Captured detached = run_helper({"console"}, mproc_popen_opts{.creationflags = MPROC_DETACHED_PROCESS});
  EXPECT_EQ(detached.out, "window=none procs=0");
  // CREATE_NEW_CONSOLE: a console of its own with a window, which startupinfo can hide (wine: no window)
  Captured shown = run_helper({"console"}, mproc_popen_opts{.creationflags = MPROC_CREATE_NEW_CONSOLE});
  EXPECT_EQ(shown.out, under_wine() ? "window=none procs=1" : "window=visible procs=1");
  Captured hidden =
      run_helper({"console"}, mproc_popen_opts{.creationflags = MPROC_CREATE_NEW_CONSOLE,
                                               .startupinfo = {MPROC_STARTF_USESHOWWINDOW, MPROC_SW_HIDE}});
  EXPECT_EQ(hidden.out, under_wine() ? "window=none procs=1" : "window=hidden procs=1");
}

// A new console with every stream left to inherit: the child uses its console for them (as Python);
// once one stream is redirected, the child is handed all three, the others the parent's. The parent's,
// as a child sees them, come from a child started with no flag.
TEST(Win32Console, ANewConsoleServesTheStreamsNobodyRedirected) {
  std::string report = temp_file("report"), out = temp_file("out");
  std::string h = helper_path();
  const char *argv[] = {h.c_str(), "stdtypes-to", report.c_str(), nullptr};
  auto types = [&](mproc_popen_opts o) {
    o.argv = argv;
    int code = -1;
    EXPECT_EQ(mproc_call(&o, 60000, &code), 0) << mproc_last_error();
    EXPECT_EQ(code, 0);
    std::string got = read_file(report);
    DeleteFileA(report.c_str());
    return got;
  };
  auto stream = [](const std::string &line, const char *name) { // "in=char out=pipe ..." -> the type of name
    size_t at = line.find(std::string(name) + "=");
    return at == std::string::npos ? "?" : line.substr(at, line.find(' ', at) - at);
  };
  std::string parents = types(mproc_popen_opts{});
  std::string own = types(mproc_popen_opts{.creationflags = MPROC_CREATE_NEW_CONSOLE});
  EXPECT_EQ(own.substr(0, own.find(" window=")), "in=char out=char err=char") << own;
  EXPECT_NE(own.find("procs=1"), std::string::npos) << own;
  std::string mixed = types(mproc_popen_opts{
      .stdout_mode = MPROC_PATH, .stdout_path = out.c_str(), .creationflags = MPROC_CREATE_NEW_CONSOLE});
  EXPECT_EQ(mixed.substr(0, mixed.find(" window=")), stream(parents, "in") + " out=disk " + stream(parents, "err"))
      << mixed << " (the parent's: " << parents << ")";
  DeleteFileA(out.c_str());
  // a detached child with nothing redirected keeps the parent's streams (it has no console to use)
  std::string apart = types(mproc_popen_opts{.creationflags = MPROC_DETACHED_PROCESS});
  EXPECT_EQ(apart, parents.substr(0, parents.find(" window=")) + " window=none procs=0");
}

// CTRL_BREAK needs a console in this process. ctest under wine gives none, so the test runs this very
// suite again with a console of its own (CREATE_NO_WINDOW: hidden), where Win32Console.InnerSendsCtrlBreak
// sends CTRL_BREAK to a helper that shares it, in a new process group. Windows delivers it; wine's
// console refuses it, which mproc reports as MPROC_ENOTSUP.
TEST(Win32Console, CtrlBreakFromAProcessWithAConsole) {
  char *self = nullptr;
  ASSERT_EQ(mproc_self_exe(&self), 0);
  std::string exe = self;
  mproc_free(self);
  const char *argv[] = {exe.c_str(), "--gtest_filter=Win32Console.InnerSendsCtrlBreak", nullptr};
  const char *extra[] = {"MPROC_TEST_BREAK_INNER=1", nullptr};
  mproc_completed r;
  int rc =
      mproc_run(ptr(mproc_popen_opts{
                    .argv = argv, .env_extra = extra, .creationflags = MPROC_CREATE_NO_WINDOW, .capture_output = true}),
                120000, &r);
  std::string out = r.stdout_data ? r.stdout_data : "";
  EXPECT_EQ(rc, 0) << mproc_last_error();
  EXPECT_EQ(r.returncode, 0) << out;
  mproc_completed_free(&r);
  EXPECT_NE(out.find(under_wine() ? "inner: refused by the console" : "inner: delivered"), std::string::npos) << out;
}

TEST(Win32Console, InnerSendsCtrlBreak) {
  if (!mproc_test::env_get("MPROC_TEST_BREAK_INNER")) {
    GTEST_SKIP() << "run by Win32Console.CtrlBreakFromAProcessWithAConsole";
  }
  ASSERT_TRUE(has_console()) << "the outer test gives this process a console of its own";
  std::string h = helper_path();
  const char *argv[] = {h.c_str(), "breakwait", "60000", nullptr};
  mproc_popen *p = nullptr;
  ASSERT_EQ(
      mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .stdout_mode = MPROC_PIPE, .new_process_group = true})),
      0)
      << mproc_last_error();
  char buf[16] = {};
  size_t n = 0;
  ASSERT_EQ(mproc_popen_read(p, 1, buf, 5, 60000, &n), 0);
  ASSERT_EQ(std::string(buf, n), "ready"); // its handler is in place
  int rc = mproc_popen_send_signal(p, MPROC_SIGBREAK);
  if (rc == 0) {
    n = 0;
    EXPECT_EQ(mproc_popen_read(p, 1, buf, 5, 60000, &n), 0);
    EXPECT_EQ(std::string(buf, n), "break");
    int code = -1;
    EXPECT_EQ(mproc_popen_wait(p, 60000, &code), 0);
    EXPECT_EQ(code, 42);
    printf("inner: delivered\n");
  } else {
    EXPECT_EQ(rc, MPROC_ENOTSUP);
    EXPECT_NE(std::string(mproc_last_error()).find("did not take CTRL_BREAK"), std::string::npos) << mproc_last_error();
    EXPECT_EQ(mproc_popen_poll(p, nullptr), MPROC_ETIMEDOUT); // nothing reached it
    printf("inner: refused by the console: %s\n", mproc_last_error());
    mproc_popen_kill(p);
  }
  fflush(stdout);
  mproc_popen_destroy(p);
}
