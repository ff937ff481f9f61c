// Processes on POSIX only: what the fork start method promises about stdio and atexit.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <chrono>
#include <thread>
#include <vector>

#ifdef __linux__
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <unistd.h>
#endif

#include "mproc.h"
#include "test_util.h"

using mproc_test::ptr;

namespace {

FILE *g_file; // set by the test before the fork; the child sees its copy

int t_write_child_line(const mproc_args *a) {
  (void)a;
  fputs("child\n", g_file); // flushed when the child ends
  return 0;
}

void parent_atexit_handler() {
  if (g_file) fputs("atexit ran\n", g_file);
}

int t_nothing(const mproc_args *a) {
  (void)a;
  return 0;
}

// Create, start and join a child with these options: its exit code, or -1000 and below on failure.
int run_child(const mproc_process_opts &o) {
  mproc_process *p = nullptr;
  if (mproc_process_create(&p, &o) != 0) return -1000;
  int code = -1001;
  if (mproc_process_start(p) != 0 || mproc_process_join(p, MPROC_INFINITE) != 0 || !mproc_process_exitcode(p, &code))
    code = -1002;
  mproc_process_destroy(p);
  return code;
}

std::string slurp(FILE *f) {
  std::string s;
  rewind(f);
  char buf[256];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  return s;
}

#ifdef __linux__
int t_report_pdeathsig(const mproc_args *a) {
  (void)a;
  int sig = -1;
  if (prctl(PR_GET_PDEATHSIG, &sig) != 0) return 100;
  return sig;
}

// Descriptors of this process that are pidfds.
int count_pidfds() {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  while (struct dirent *e = readdir(d)) {
    char link[64] = {0};
    std::string path = std::string("/proc/self/fd/") + e->d_name;
    if (readlink(path.c_str(), link, sizeof link - 1) > 0 && std::string(link) == "anon_inode:[pidfd]") ++n;
  }
  closedir(d);
  return n;
}

int t_until_stopped(const mproc_args *a) {
  char b[8];
  size_t n = 0;
  mproc_connection_recv_bytes_into(a->connections[0], b, sizeof b, MPROC_INFINITE, &n); // never comes
  return 0;
}

// Whether the initial environment of process pid (what it was executed with) holds the entry `kv`.
bool exec_env_has(pid_t pid, const char *kv) {
  FILE *f = fopen(("/proc/" + std::to_string(pid) + "/environ").c_str(), "rb");
  if (!f) return false;
  std::string all, entry;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) all.append(buf, n);
  fclose(f);
  for (size_t at = 0; at < all.size(); at += entry.size() + 1) {
    entry = all.substr(at, all.find('\0', at) - at);
    if (entry == kv) return true;
  }
  return false;
}

// A child's report on eager binding, as bits: 1 its OS parent (under forkserver: the server) was not
// started with LD_BIND_NOW=1; 2 and 4 it has LD_BIND_NOW or mproc's marker in its own environment;
// 8 it was itself executed with LD_BIND_NOW=1.
int t_report_binding(const mproc_args *a) {
  (void)a;
  return (exec_env_has(getppid(), "LD_BIND_NOW=1") ? 0 : 1) | (getenv("LD_BIND_NOW") ? 2 : 0) |
         (getenv("MPROC_EAGER_BINDING") ? 4 : 0) | (exec_env_has(getpid(), "LD_BIND_NOW=1") ? 8 : 0);
}

// The exit code of a child running t_report_pdeathsig: the parent-death signal it was given.
int pdeathsig_of_child(mproc_start_method m, mproc_option kill) {
  return run_child(mproc_process_opts{.target = t_report_pdeathsig, .start_method = m, .kill_on_parent_death = kill});
}
#endif

} // namespace

#ifdef __linux__
// Kill on parent death uses the kernel's PR_SET_PDEATHSIG where it is right (beside the watchdog
// thread, which the hard-kill test in process_test.cc covers): children started from the main thread.
TEST(ProcessLinux, KillOnParentDeathSetsPdeathsigFromTheMainThread) {
  for (mproc_start_method m : {MPROC_START_FORK, MPROC_START_SPAWN, MPROC_START_FORKSERVER}) {
    SCOPED_TRACE(m);
    EXPECT_EQ(pdeathsig_of_child(m, MPROC_OPTION_ON), SIGKILL);
    EXPECT_EQ(pdeathsig_of_child(m, MPROC_OPTION_OFF), 0);
  }
}

// The kernel sends the signal when the *thread* that created the child ends: a child started from a
// short-lived thread must not get it (it would die with that thread); the watchdog alone guards it.
// Under forkserver the server's single thread forks the child, so the signal is always right there.
TEST(ProcessLinux, NoPdeathsigForChildrenStartedFromOtherThreads) {
  for (mproc_start_method m : {MPROC_START_FORK, MPROC_START_SPAWN, MPROC_START_FORKSERVER}) {
    SCOPED_TRACE(m);
    // TSan refuses a fork child of a multi-threaded process that starts a thread (the watchdog)
    if (m == MPROC_START_FORK && mproc_test::kThreadSanitizer) continue;
    int code = -1;
    std::thread([&] { code = pdeathsig_of_child(m, MPROC_OPTION_ON); }).join();
    EXPECT_EQ(code, m == MPROC_START_FORKSERVER ? SIGKILL : 0);
  }
}
#endif

TEST(ProcessFork, StdioBufferedBeforeStartIsNotWrittenTwice) {
  g_file = tmpfile();
  ASSERT_NE(g_file, nullptr);
  setvbuf(g_file, nullptr, _IOFBF, 4096);
  fputs("parent before start\n", g_file); // still in the buffer at fork time
  mproc_process *p = nullptr;
  ASSERT_EQ(
      mproc_process_create(&p, ptr(mproc_process_opts{.target = t_write_child_line, .start_method = MPROC_START_FORK})),
      0);
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  ASSERT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  fflush(g_file);
  EXPECT_EQ(slurp(g_file), "parent before start\nchild\n"); // once, then the child's own line
  mproc_process_destroy(p);
  fclose(g_file);
  g_file = nullptr;
}

TEST(ProcessFork, ParentAtexitHandlersDoNotRunInTheChild) {
  g_file = tmpfile();
  ASSERT_NE(g_file, nullptr);
  static bool registered = false;
  if (!registered) {
    atexit(parent_atexit_handler); // at this process's own exit g_file is NULL again: a no-op
    registered = true;
  }
  EXPECT_EQ(run_child(mproc_process_opts{.target = t_nothing, .start_method = MPROC_START_FORK}), 0);
  fflush(g_file);
  EXPECT_EQ(slurp(g_file), ""); // the child ended without running the parent's handler
  fclose(g_file);
  g_file = nullptr;
}

#ifdef __linux__
// The fork server, the OS parent of a forkserver child, reaps it: its pid alone could be reused before
// the parent hears of the exit. So the server sends a pidfd of the child with its reply, and the parent
// signals through it (pidfd_send_signal); it is closed with the process object.
TEST(ProcessLinux, ForkserverChildIsSignalledThroughItsPidfd) {
  // start the server first: its own handles are not counted below
  ASSERT_EQ(run_child(mproc_process_opts{.target = t_nothing, .start_method = MPROC_START_FORKSERVER}), 0);
  const int before = count_pidfds();
  mproc_connection *a, *b;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  mproc_connection *conns[] = {b};
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, ptr(mproc_process_opts{.target = t_until_stopped,
                                                            .connections = conns,
                                                            .connection_count = 1,
                                                            .start_method = MPROC_START_FORKSERVER})),
            0);
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  EXPECT_EQ(count_pidfds(), before + 1);
  ASSERT_EQ(mproc_process_terminate(p), 0) << mproc_last_error();
  ASSERT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  int code = 0;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  EXPECT_EQ(code, -SIGTERM);
  mproc_process_destroy(p);
  EXPECT_EQ(count_pidfds(), before);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
}
#endif

#ifdef __linux__
int t_abort(const mproc_args *a) {
  (void)a;
  abort();
}

// On Linux a child's sentinel is a pidfd under every start method: once poll says it is readable, the
// child can be reaped, so join(0) succeeds and the exitcode is known, however the child ended. Under
// forkserver the server, busy with starts, reaps lazily: the parent asks it for the status of a child
// that could not leave its own on its link (a signal), instead of waiting for the server's next sweep.
TEST(ProcessLinux, AReadySentinelMeansJoinSucceedsAtOnceHoweverTheChildEnded) {
  for (mproc_start_method m : {MPROC_START_FORK, MPROC_START_SPAWN, MPROC_START_FORKSERVER}) {
    for (int round = 0; round < 5; ++round) {
      for (int how = 0; how < 3; ++how) {
        SCOPED_TRACE(std::string(mproc_start_method_name(m)) + ", round " + std::to_string(round) + ", end " +
                     std::to_string(how));
        mproc_connection *a = nullptr, *b = nullptr;
        ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
        mproc_connection *conns[] = {b};
        mproc_process *p = nullptr;
        ASSERT_EQ(mproc_process_create(&p, ptr(mproc_process_opts{.target = how == 0   ? t_nothing
                                                                            : how == 1 ? t_abort
                                                                                       : t_until_stopped,
                                                                  .connections = conns,
                                                                  .connection_count = 1,
                                                                  .start_method = m})),
                  0);
        ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
        if (how == 2) {
          ASSERT_EQ(mproc_process_kill(p), 0) << mproc_last_error();
        }
        struct pollfd pfd = {(int)mproc_process_sentinel(p), POLLIN, 0};
        ASSERT_EQ(poll(&pfd, 1, 60000), 1);
        ASSERT_EQ(mproc_process_join(p, 0), 0) << mproc_last_error();
        int code = 1;
        EXPECT_TRUE(mproc_process_exitcode(p, &code));
        static const int expected[] = {0, -SIGABRT, -SIGKILL};
        EXPECT_EQ(code, expected[how]);
        mproc_process_destroy(p);
        mproc_connection_destroy(a);
        mproc_connection_destroy(b);
      }
    }
  }
}

// A fork server that is busy starting children reaps the ended ones at its next request (the parent has
// their status from the child, or asks for it), and once no request has come for a while: a child that
// ended does not stay a zombie after its parent stopped starting children.
TEST(ProcessLinux, TheForkServerReapsItsEndedChildrenThoughNoStartFollows) {
  std::vector<int64_t> pids;
  for (int i = 0; i < 3; ++i) {
    mproc_process *p = nullptr;
    ASSERT_EQ(
        mproc_process_create(&p, ptr(mproc_process_opts{.target = t_nothing, .start_method = MPROC_START_FORKSERVER})),
        0);
    ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
    ASSERT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
    pids.push_back(mproc_process_pid(p));
    mproc_process_destroy(p);
  }
  // no notice comes of a reap by another process: look until the kernel has forgotten each pid
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int64_t pid : pids) {
    const std::string stat = "/proc/" + std::to_string(pid) + "/stat";
    while (access(stat.c_str(), F_OK) == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_NE(access(stat.c_str(), F_OK), 0) << "child " << pid << " is still a zombie of the fork server";
  }
}
#endif

#ifdef __linux__
// The fork server is started with eager binding (LD_BIND_NOW=1), so that its children, forks of it, find
// every library function resolved instead of each resolving lazily again the ones it calls; its guard
// takes the setting out of its environment, so that neither its children nor what they start inherit it,
// and a spawned child is not started with it.
TEST(ProcessLinux, TheForkServerBindsEagerlyAndNothingItStartsInheritsTheSetting) {
  if (getenv("LD_BIND_NOW")) GTEST_SKIP() << "LD_BIND_NOW is set for the test itself: everything binds eagerly";
  // (a fork of the server has the memory of the server's initial environment: bit 8 is not for it)
  EXPECT_EQ(run_child(mproc_process_opts{.target = t_report_binding, .start_method = MPROC_START_FORKSERVER}) & 7, 0);
  EXPECT_EQ(run_child(mproc_process_opts{.target = t_report_binding, .start_method = MPROC_START_SPAWN}) & 14, 0);
  EXPECT_EQ(getenv("LD_BIND_NOW"), nullptr);
}

// A program that cannot load with eager binding (a library of it refers to a symbol nothing defines)
// still gets its fork server: the server that ends before its hello is started again, lazily.
TEST(ProcessLinux, AProgramThatLoadsOnlyLazilyStillGetsItsForkServer) {
  if (getenv("LD_BIND_NOW")) GTEST_SKIP() << "LD_BIND_NOW is set for the test itself: the program cannot load";
  std::string prog = mproc_test::helper_path();
  prog = prog.substr(0, prog.find_last_of('/') + 1) + "mproc_lazy_only";
  const char *argv[] = {prog.c_str(), nullptr};
  mproc_completed r{};
  ASSERT_EQ(mproc_run(ptr(mproc_popen_opts{.argv = argv, .capture_output = true}), 60000, &r), 0) << mproc_last_error();
  EXPECT_EQ(r.returncode, 7) << std::string(r.stderr_data ? r.stderr_data : "", r.stderr_len);
  mproc_completed_free(&r);
}
#endif

#ifdef __linux__
// The executable's identity is taken once per process (a stat of /proc/self/exe costs tens of us):
// a touch of the running program (its time changes, nothing else can while it runs) must not make the
// starts after it fail as "a different binary", under spawn (a fresh child stats the file) nor under
// the forkserver (whose server took the identity before the touch).
TEST(ProcessPosix, TouchingTheRunningProgramDoesNotFailItsStarts) {
  for (mproc_start_method m : {MPROC_START_SPAWN, MPROC_START_FORKSERVER}) // identities taken before
    ASSERT_EQ(run_child(mproc_process_opts{.target = t_nothing, .start_method = m}), 0) << mproc_last_error();
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  ASSERT_GT(n, 0);
  self[n] = '\0';
  struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
  ASSERT_EQ(utimensat(AT_FDCWD, self, now, 0), 0) << strerror(errno);
  for (mproc_start_method m : {MPROC_START_SPAWN, MPROC_START_FORKSERVER, MPROC_START_FORK})
    EXPECT_EQ(run_child(mproc_process_opts{.target = t_nothing, .start_method = m}), 0)
        << "method " << m << ": " << mproc_last_error();
}
#endif

#ifdef __linux__
namespace {
mproc_process *g_sibling; // a Process of the parent, seen by a fork child through its copy of memory

// In a fork child: every use of the parent's Process object is refused; 0 when all were.
int t_use_parents_process(const mproc_args *a) {
  (void)a;
  int bad = 0;
  bad |= (mproc_process_join(g_sibling, 0) != MPROC_ESTATE) << 0;
  bad |= (mproc_process_terminate(g_sibling) != MPROC_ESTATE) << 1;
  bad |= (mproc_process_kill(g_sibling) != MPROC_ESTATE) << 2;
  bad |= (mproc_process_is_alive(g_sibling) ? 1 : 0) << 3;
  bad |= (mproc_process_close(g_sibling) != MPROC_ESTATE) << 4;
  mproc_waitable w = mproc_waitable_process(g_sibling);
  bad |= (mproc_wait(&w, 1, 0, nullptr) != MPROC_ESTATE) << 5;
  return bad;
}
} // namespace

// Python refuses: "can only join a child process" / "can only test a child process".
TEST(ProcessFork, AForkChildCannotJoinOrSignalItsParentsProcesses) {
  mproc_connection *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  mproc_connection *hand[] = {b};
  mproc_process *sib = nullptr;
  ASSERT_EQ(mproc_process_create(&sib, ptr(mproc_process_opts{.target = t_until_stopped,
                                                              .connections = hand,
                                                              .connection_count = 1,
                                                              .start_method = MPROC_START_FORK})),
            0);
  ASSERT_EQ(mproc_process_start(sib), 0) << mproc_last_error();
  g_sibling = sib;
  EXPECT_EQ(run_child(mproc_process_opts{.target = t_use_parents_process, .start_method = MPROC_START_FORK}), 0);
  EXPECT_TRUE(mproc_process_is_alive(sib)); // the child's attempts did not reach it
  EXPECT_EQ(mproc_connection_send_bytes(a, "stop", 4, 0, MPROC_ALL), 0);
  EXPECT_EQ(mproc_process_join(sib, MPROC_INFINITE), 0);
  mproc_process_destroy(sib);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
}
#endif
