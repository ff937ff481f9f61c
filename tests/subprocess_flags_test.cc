// subprocess options that belong to one system but are checked on both: Windows' creationflags and
// startupinfo (POSIX ignores them), POSIX credentials and limits (Windows refuses them with
// MPROC_ENOTSUP), and MPROC_SIGBREAK (a console's CTRL_BREAK: Windows only, where it can arrive).
// What a child gets from each is checked by the platform's own suite (subprocess_console_win32.cc,
// subprocess_credentials_posix.cc); this one holds what must read the same everywhere.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mproc.h"
#include "test_util.h"

using mproc_test::Captured;
using mproc_test::helper_path;
using mproc_test::kWindows;
using mproc_test::open_handle_count;
using mproc_test::ptr;
using mproc_test::run_helper;

namespace {

bool contains(const std::string &s, const std::string &part) { return s.find(part) != std::string::npos; }

// popen_create with opts (argv: the helper, printing "ran"): its return code. The callers check that
// refused starts left no handle open.
int start_code(mproc_popen_opts o) {
  std::string h = helper_path();
  const char *argv[] = {h.c_str(), "print", "ran", nullptr};
  o.argv = argv;
  if (o.stdout_mode == MPROC_INHERIT) o.stdout_mode = MPROC_DEVNULL;
  mproc_popen *p = nullptr;
  int rc = mproc_popen_create(&p, &o);
  if (rc == 0) {
    mproc_popen_wait(p, MPROC_INFINITE, nullptr);
    mproc_popen_destroy(p);
  } else {
    EXPECT_EQ(p, nullptr);
  }
  return rc;
}

// A start that must be refused with MPROC_EINVAL, and what the message must say.
struct Refused {
  const char *why;
  mproc_popen_opts o;
  const char *says;
};

void expect_refused(const std::vector<Refused> &cases) {
  int fds = open_handle_count();
  for (auto &c : cases) {
    EXPECT_EQ(start_code(c.o), MPROC_EINVAL) << c.why;
    EXPECT_TRUE(contains(mproc_last_error(), c.says)) << c.why << ": " << mproc_last_error();
  }
  EXPECT_EQ(open_handle_count(), fds) << "a refused start left a handle open";
}

} // namespace

TEST(PopenWindowFlags, MistakesAreRefusedOnEverySystem) {
  std::vector<Refused> cases = {
      {"suspended", mproc_popen_opts{.creationflags = MPROC_CREATE_SUSPENDED}, "CREATE_SUSPENDED"},
      {"debugged", mproc_popen_opts{.creationflags = MPROC_DEBUG_PROCESS}, "DEBUG_PROCESS"},
      {"debugged alone", mproc_popen_opts{.creationflags = MPROC_DEBUG_ONLY_THIS_PROCESS}, "DEBUG_PROCESS"},
      {"mproc's own flag", mproc_popen_opts{.creationflags = MPROC_EXTENDED_STARTUPINFO_PRESENT},
       "EXTENDED_STARTUPINFO_PRESENT"},
      {"detached with a new console",
       mproc_popen_opts{.creationflags = MPROC_DETACHED_PROCESS | MPROC_CREATE_NEW_CONSOLE}, "refuses the pair"},
      {"two priority classes", mproc_popen_opts{.creationflags = MPROC_IDLE_PRIORITY_CLASS | MPROC_HIGH_PRIORITY_CLASS},
       "more than one priority class"},
      {"a startupinfo flag needing fields mproc lacks", mproc_popen_opts{.startupinfo = {0x4 /* USEPOSITION */, 0}},
       "startupinfo.flags"},
      {"show_window out of range", mproc_popen_opts{.startupinfo = {MPROC_STARTF_USESHOWWINDOW, 12}},
       "not an SW_ value"},
      {"show_window without its flag", mproc_popen_opts{.startupinfo = {0, MPROC_SW_SHOWMINNOACTIVE}},
       "lack STARTF_USESHOWWINDOW"},
  };
  expect_refused(cases);
}

TEST(PopenWindowFlags, AcceptedEverywhereAndIgnoredOnPosix) {
  mproc_popen_opts accepted[] = {
      mproc_popen_opts{.creationflags = MPROC_CREATE_NO_WINDOW},
      mproc_popen_opts{.creationflags = MPROC_DETACHED_PROCESS | MPROC_BELOW_NORMAL_PRIORITY_CLASS},
      mproc_popen_opts{.creationflags = MPROC_CREATE_NEW_PROCESS_GROUP | MPROC_CREATE_DEFAULT_ERROR_MODE},
      mproc_popen_opts{.startupinfo = {MPROC_STARTF_USESHOWWINDOW, MPROC_SW_HIDE}},
      mproc_popen_opts{
          .startupinfo = {MPROC_STARTF_USESHOWWINDOW | MPROC_STARTF_FORCEOFFFEEDBACK | MPROC_STARTF_USESTDHANDLES,
                          MPROC_SW_SHOWMINNOACTIVE}},
  };
  for (auto &o : accepted) {
    Captured c = run_helper({"print", "ran ", "startupinfo"}, o);
    EXPECT_EQ(c.rc, 0) << mproc_last_error();
    EXPECT_TRUE(contains(c.out, "ran ")) << c.out;
    if (!kWindows) {
      EXPECT_EQ(c.out, "ran posix"); // nothing of them reached a POSIX child
    }
  }
}

TEST(PopenCredentials, MistakesAreRefusedOnEverySystem) {
  mproc_rlimit unknown[] = {{(mproc_rlimit_resource)99, 1, 1}};
  mproc_rlimit upside_down[] = {{MPROC_RLIMIT_NOFILE, 10, 5}};
  const char *empty_group[] = {"", nullptr};
  std::vector<Refused> cases = {
      {"a bare mask, as Python takes it", mproc_popen_opts{.umask = 022}, "MPROC_UMASK"},
      {"a negative umask", mproc_popen_opts{.umask = -2}, "MPROC_UMASK"},
      {"a umask beyond 0777", mproc_popen_opts{.umask = MPROC_UMASK(01000)}, "MPROC_UMASK"},
      {"an unknown resource", mproc_popen_opts{.rlimits = unknown, .rlimits_count = 1}, "not an mproc_rlimit_resource"},
      {"soft above hard", mproc_popen_opts{.rlimits = upside_down, .rlimits_count = 1}, "above the hard limit"},
      {"limits without their array", mproc_popen_opts{.rlimits_count = 1}, "rlimits is NULL"},
      {"an empty user", mproc_popen_opts{.user = ""}, "user is an empty string"},
      {"an empty group", mproc_popen_opts{.group = ""}, "group is an empty string"},
      {"an empty extra group", mproc_popen_opts{.extra_groups = empty_group}, "extra_groups[0]"},
  };
  expect_refused(cases);
}

TEST(PopenCredentials, WindowsRefusesThemPosixAppliesThem) {
  mproc_rlimit core[] = {{MPROC_RLIMIT_CORE, 0, 0}};
  const char *groups[] = {nullptr};
  struct Case {
    const char *field;
    mproc_popen_opts o;
  } cases[] = {
      {"user", mproc_popen_opts{.user = "nobody"}},
      {"group", mproc_popen_opts{.group = "0"}},
      {"extra_groups", mproc_popen_opts{.extra_groups = groups}},
      {"umask", mproc_popen_opts{.umask = MPROC_UMASK(077)}},
      {"rlimits", mproc_popen_opts{.rlimits = core, .rlimits_count = 1}},
  };
  int fds = open_handle_count();
  for (auto &c : cases) {
    if (kWindows) {
      EXPECT_EQ(start_code(c.o), MPROC_ENOTSUP) << c.field;
      EXPECT_TRUE(contains(mproc_last_error(), std::string(c.field) + " is POSIX only")) << mproc_last_error();
    } else if (std::string(c.field) == "umask" || std::string(c.field) == "rlimits") {
      EXPECT_EQ(start_code(c.o), 0) << c.field << ": " << mproc_last_error(); // any user may do these
    }
  }
  EXPECT_EQ(open_handle_count(), fds) << "a refused start left a handle open";
  // the defaults (0) and Python's "unchanged" (-1) are no request at all, on Windows too
  EXPECT_EQ(start_code(mproc_popen_opts{.umask = -1}), 0) << mproc_last_error();
}

// MPROC_SIGBREAK: refused where it cannot arrive, delivered where it can. The helper says "ready" once
// its console handler is in place (so a delivered event is handled, not fatal), and exits 42 on a
// CTRL_BREAK.
TEST(PopenSignals, SigbreakArrivesOnlyWhereAConsoleCanDeliverIt) {
  std::string h = helper_path();
  const char *argv[] = {h.c_str(), "breakwait", "60000", nullptr};
  auto start = [&](mproc_popen_opts o) {
    o.argv = argv;
    o.stdout_mode = MPROC_PIPE;
    mproc_popen *p = nullptr;
    EXPECT_EQ(mproc_popen_create(&p, &o), 0) << mproc_last_error();
    char buf[16] = {};
    size_t n = 0;
    if (p) {
      EXPECT_EQ(mproc_popen_read(p, 1, buf, 5, 60000, &n), 0) << mproc_last_error();
    }
    EXPECT_EQ(std::string(buf, n), kWindows ? "ready" : "posix");
    return p;
  };
  auto still_runs_then_kill = [](mproc_popen *p) {
    if (kWindows) {
      EXPECT_EQ(mproc_popen_poll(p, nullptr), MPROC_ETIMEDOUT) << "a refused CTRL_BREAK reached the child";
    }
    mproc_popen_kill(p);
    mproc_popen_destroy(p);
  };
  if (!kWindows) {
    mproc_popen *p = start(mproc_popen_opts{.new_process_group = true});
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(mproc_popen_send_signal(p, MPROC_SIGBREAK), MPROC_ENOTSUP);
    EXPECT_TRUE(contains(mproc_last_error(), "Windows console event")) << mproc_last_error();
    mproc_popen_destroy(p);
    return;
  }
  // not in a process group of its own: the event would reach this process too
  mproc_popen *p = start(mproc_popen_opts{});
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(mproc_popen_send_signal(p, MPROC_SIGBREAK), MPROC_ESTATE);
  EXPECT_TRUE(contains(mproc_last_error(), "not started in a new process group")) << mproc_last_error();
  still_runs_then_kill(p);
  // a console of its own: none of our events reach it
  p = start(mproc_popen_opts{.creationflags = MPROC_CREATE_NO_WINDOW | MPROC_CREATE_NEW_PROCESS_GROUP});
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(mproc_popen_send_signal(p, MPROC_SIGBREAK), MPROC_ENOTSUP);
  EXPECT_TRUE(contains(mproc_last_error(), "console of its own or none")) << mproc_last_error();
  still_runs_then_kill(p);
  // a new process group sharing our console: delivered when this process has a console that takes it;
  // otherwise (no console: wine from ctest, a GUI parent; or wine's console) MPROC_ENOTSUP saying why
  p = start(mproc_popen_opts{.new_process_group = true});
  ASSERT_NE(p, nullptr);
  int rc = mproc_popen_send_signal(p, MPROC_SIGBREAK);
  if (rc == 0) {
    char buf[16] = {};
    size_t n = 0;
    EXPECT_EQ(mproc_popen_read(p, 1, buf, 5, 60000, &n), 0);
    EXPECT_EQ(std::string(buf, n), "break");
    int code = -1;
    EXPECT_EQ(mproc_popen_wait(p, 60000, &code), 0);
    EXPECT_EQ(code, 42);
    mproc_popen_destroy(p);
  } else {
    EXPECT_EQ(rc, MPROC_ENOTSUP) << mproc_last_error();
    EXPECT_TRUE(contains(mproc_last_error(), "no console") || contains(mproc_last_error(), "did not take CTRL_BREAK"))
        << mproc_last_error();
    still_runs_then_kill(p);
  }
}
