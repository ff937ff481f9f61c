// subprocess on POSIX only: zombies, fd inheritance per spawn engine, sessions, signal dispositions
// and masks, SIGCHLD left alone, SIGPIPE never delivered.
#include <gtest/gtest.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mproc.h"
#include "test_util.h"

using mproc_test::Captured;
using mproc_test::helper_path;
using mproc_test::ptr;
using mproc_test::run_helper;

namespace {

// A non-close-on-exec copy of stdout: a descriptor a careless application might leak.
struct LeakyFd {
  int fd;
  LeakyFd() : fd(dup(1)) {}
  ~LeakyFd() { close(fd); }
};

std::string sorted_fds_of_child(mproc_popen_opts o) {
  Captured c = run_helper({"fds"}, o);
  EXPECT_EQ(c.rc, 0) << mproc_last_error();
  return c.out;
}

} // namespace

TEST(PosixSpawn, DestroyLeavesNoZombie) {
  std::string h = helper_path();
  const char *argv[] = {h.c_str(), "sleep", "60000", nullptr};
  mproc_popen *p = nullptr;
  ASSERT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv})), 0);
  pid_t pid = (pid_t)mproc_popen_pid(p);
  mproc_popen_destroy(p);
  errno = 0;
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD); // reaped already: no zombie left
  EXPECT_EQ(kill(pid, 0), -1);
}

TEST(PosixSpawn, ChildGetsOnlyStdioByDefault) {
  LeakyFd leak;
  EXPECT_EQ(sorted_fds_of_child(mproc_popen_opts{}), "0 1 2");
  std::string with = sorted_fds_of_child(mproc_popen_opts{.inherit_fds = true});
  EXPECT_NE(with.find(" " + std::to_string(leak.fd)), std::string::npos) << with;
}

TEST(PosixSpawn, PassFdsWithCloseFdsUsesTheFallbackEngine) {
  LeakyFd leak, passed;
  fcntl(passed.fd, F_SETFD, FD_CLOEXEC); // close-on-exec in the parent: pass_fds must still pass it
  mproc_os_handle keep[] = {passed.fd};
  std::string fds = sorted_fds_of_child(mproc_popen_opts{.pass_fds = keep, .pass_fds_count = 1});
  EXPECT_EQ(fds, "0 1 2 " + std::to_string(passed.fd));
  EXPECT_EQ(fds.find(" " + std::to_string(leak.fd) + " "), std::string::npos);
}

TEST(PosixSpawn, PassFdsWithInheritFds) {
  LeakyFd passed;
  fcntl(passed.fd, F_SETFD, FD_CLOEXEC);
  mproc_os_handle keep[] = {passed.fd};
  Captured c = run_helper({"hasfd", std::to_string(passed.fd)},
                          mproc_popen_opts{.inherit_fds = true, .pass_fds = keep, .pass_fds_count = 1});
  EXPECT_EQ(c.out, "yes");
}

TEST(PosixSpawn, ExecFailureIsReportedByBothEngines) {
  char dir[] = "/tmp/mproc-noexec-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string f = std::string(dir) + "/garbage";
  FILE *fp = fopen(f.c_str(), "w");
  fputs(
      "\x7f"
      "ELF-but-not-really",
      fp);
  fclose(fp);
  chmod(f.c_str(), 0755); // executable bit set, but the kernel cannot run it (ENOEXEC)
  const char *argv[] = {f.c_str(), nullptr};
  LeakyFd passed;
  mproc_os_handle keep[] = {passed.fd};
  mproc_popen *p = nullptr;
  EXPECT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv})), MPROC_EPERM);
  EXPECT_NE(std::string(mproc_last_error()).find("ENOEXEC"), std::string::npos) << mproc_last_error();
  EXPECT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .pass_fds = keep, .pass_fds_count = 1})),
            MPROC_EPERM); // the vfork engine, through its error pipe
  EXPECT_NE(std::string(mproc_last_error()).find("ENOEXEC"), std::string::npos) << mproc_last_error();
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1); // nothing left to reap
  unlink(f.c_str());
  rmdir(dir);
}

TEST(PosixSpawn, NewSessionAndProcessGroup) {
  std::string me = std::to_string(getpgrp());
  Captured plain = run_helper({"pgid"});
  EXPECT_EQ(plain.out, me);
  Captured sess = run_helper({"pid", "print", " ", "sid", "print", " ", "pgid"}, mproc_popen_opts{.new_session = true});
  std::string pid = sess.out.substr(0, sess.out.find(' '));
  EXPECT_EQ(sess.out, pid + " " + pid + " " + pid);
  Captured grp = run_helper({"pid", "print", " ", "pgid"}, mproc_popen_opts{.new_process_group = true});
  pid = grp.out.substr(0, grp.out.find(' '));
  EXPECT_EQ(grp.out, pid + " " + pid);
}

TEST(PosixSignals, IgnoredSigpipeIsRestoredAndMaskIsEmptyInTheChild) {
  struct sigaction ign = {}, old_pipe = {}, old_int = {};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old_pipe);
  sigaction(SIGINT, &ign, &old_int); // other ignored signals are inherited, as exec specifies (nohup)
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  LeakyFd passed; // and the same through the vfork engine
  mproc_os_handle keep[] = {passed.fd};
  for (int engine = 0; engine < 2; ++engine) {
    mproc_popen_opts o{};
    if (engine) {
      o.pass_fds = keep;
      o.pass_fds_count = 1;
    }
    Captured c = run_helper({"sigdisp", std::to_string(SIGPIPE), "print", " ", "sigdisp", std::to_string(SIGINT),
                             "print", " ", "sigdisp", std::to_string(SIGTERM)},
                            o);
    EXPECT_EQ(c.out, "dfl ign dfl") << "engine " << engine;
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  sigaction(SIGINT, &old_int, nullptr);
}

static std::atomic<int> g_chld{0};
static void on_chld(int) { g_chld++; }

TEST(PosixSignals, SigchldIsNeverTakenOver) {
  struct sigaction mine = {}, old = {}, now = {};
  mine.sa_handler = on_chld;
  sigemptyset(&mine.sa_mask);
  mine.sa_flags = SA_RESTART;
  sigaction(SIGCHLD, &mine, &old);
  g_chld = 0;
  for (int i = 0; i < 5; ++i) {
    Captured c = run_helper({"print", "x"});
    ASSERT_EQ(c.rc, 0);
  }
  sigaction(SIGCHLD, nullptr, &now);
  EXPECT_EQ(now.sa_handler, &on_chld); // still the application's handler
  EXPECT_GE(g_chld.load(), 1);         // and the application still sees its SIGCHLDs
  sigaction(SIGCHLD, &old, nullptr);
}

TEST(PosixSignals, BrokenPipeLeavesNoPendingSigpipe) {
  std::string h = helper_path();
  const char *argv[] = {h.c_str(), "exit", "0", nullptr};
  std::vector<char> big(4 << 20, 'x');
  mproc_completed r;
  ASSERT_EQ(
      mproc_run(ptr(mproc_popen_opts{.argv = argv, .input = big.data(), .input_len = big.size()}), MPROC_INFINITE, &r),
      0);
  mproc_completed_free(&r);
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
  struct sigaction now = {};
  sigaction(SIGPIPE, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL); // the disposition was never changed
}

TEST(PosixThreads, ConcurrentSpawnsLeakNoFdIntoTheWrongChild) {
  constexpr int kThreads = 4, kEach = 10;
  // What a child may legitimately inherit with inherit_fds: the parent's fds without close-on-exec
  // (0, 1, 2 and whatever the test runner passed down). Anything else came from another thread.
  std::string expect;
  for (int fd = 0; fd < 1024; ++fd) {
    int fl = fcntl(fd, F_GETFD);
    if (fl != -1 && !(fl & FD_CLOEXEC)) expect += (expect.empty() ? "" : " ") + std::to_string(fd);
  }
  std::atomic<int> bad{0};
  std::string last_bad;
  std::mutex mu;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        std::string h = helper_path();
        const char *argv[] = {h.c_str(), "fds", nullptr};
        mproc_completed r;
        // stdin and stdout are pipes: while other threads hold their own pipe ends open, none of
        // them may show up in this child (all are created close-on-exec and closed by closefrom)
        int rc = mproc_run(ptr(mproc_popen_opts{
                               .argv = argv, .inherit_fds = true, .input = "", .input_len = 0, .capture_output = true}),
                           MPROC_INFINITE, &r);
        std::string got = r.stdout_data ? r.stdout_data : "";
        if (rc != 0 || got != expect) {
          bad++;
          std::lock_guard<std::mutex> lock(mu);
          last_bad = got;
        }
        mproc_completed_free(&r);
      }
    });
  for (auto &t : ts) t.join();
  EXPECT_EQ(bad.load(), 0) << "expected fds '" << expect << "', a child had '" << last_bad << "'";
}

#ifdef __linux__
// A child the caller reaped itself (waitpid behind mproc's back) is never signalled through its pid,
// which the system may have given to another process since: mproc signals through the pidfd it opened
// at start, which still names the dead child. The pid is reused on purpose (ns_last_pid, as root) to
// show it; the returncode of such a child is unknown and reads as 0 (Python's choice), documented.
TEST(PosixSignals, AChildReapedBehindOurBackIsNeverSignalledThroughAReusedPid) {
  std::string h = helper_path();
  const char *argv[] = {h.c_str(), nullptr};
  mproc_popen *p = nullptr;
  ASSERT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv})), 0);
  pid_t pid = (pid_t)mproc_popen_pid(p);
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid); // behind mproc's back
  // Make the next fork get the same pid, where the system lets us.
  pid_t other = -1;
  for (int attempt = 0; attempt < 20 && other != pid; ++attempt) {
    if (other > 0) {
      kill(other, SIGKILL);
      waitpid(other, nullptr, 0);
    }
    FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");
    if (!f) break;
    bool ok = fprintf(f, "%d", (int)pid - 1) > 0;
    ok = fclose(f) == 0 && ok;
    if (!ok) break;
    other = fork();
    if (other == 0) {
      pause();
      _exit(0);
    }
  }
  if (other != pid) {
    if (other > 0) {
      kill(other, SIGKILL);
      waitpid(other, nullptr, 0);
    }
    mproc_popen_destroy(p);
    GTEST_SKIP() << "could not make the system reuse pid " << pid << " (needs root and ns_last_pid)";
  }
  EXPECT_EQ(mproc_popen_terminate(p), 0);
  EXPECT_EQ(mproc_popen_kill(p), 0);
  int rc = -1;
  EXPECT_EQ(mproc_popen_wait(p, 5000, &rc), 0);
  EXPECT_EQ(rc, 0);
  // the process now holding the pid was not touched
  EXPECT_EQ(waitpid(other, &st, WNOHANG), 0) << "the unrelated process with the reused pid was signalled";
  kill(other, SIGKILL);
  waitpid(other, nullptr, 0);
  mproc_popen_destroy(p);
}
#endif
