// subprocess on POSIX: the tree helper (src/posix/tree.c) seen from outside: it is the program's parent and
// never the application's reaper of strangers; the program leads its own group and gets the application's
// signal dispositions, not the helper's; the helper holds no fd of the application, shrugs off the signals a
// terminal sends, is reaped by destroy, and a killed helper is reported, not waited for; a set-ID program
// with kill_on_parent_death takes the helper (PR_SET_PDEATHSIG would not survive its exec).
#include <gtest/gtest.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "mproc.h"
#include "test_util.h"
#include "tree_util.h"

using mproc_test::Argv;
using mproc_test::helper_path;
using mproc_test::ptr;
using mproc_test::read_lines;
using mproc_test::Watch;
namespace fs = std::filesystem;

namespace {

// Start the helper program with `script` as a process tree, stdin and stdout piped.
mproc_popen *start(std::vector<std::string> script, mproc_popen_opts o = {}) {
  Argv a(std::move(script));
  o.argv = a.get();
  o.stdin_mode = MPROC_PIPE;
  o.stdout_mode = MPROC_PIPE;
  o.process_tree = true;
  mproc_popen *p = nullptr;
  EXPECT_EQ(mproc_popen_create(&p, &o), 0) << mproc_last_error();
  return p;
}

bool no_children_left() {
  errno = 0;
  return waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD;
}

} // namespace

TEST(PosixTree, TheHelperIsTheParentAndTheProgramLeadsItsGroup) {
  mproc_popen *p = start({"ppid", "print", " ", "pgid", "print", " ", "sid", "print", "\n", "read", "1"});
  ASSERT_NE(p, nullptr);
  auto lines = read_lines(p, 1);
  ASSERT_EQ(lines.size(), 1u);
  long long ppid = 0, pgid = 0, sid = 0;
  ASSERT_EQ(sscanf(lines[0].c_str(), "%lld %lld %lld", &ppid, &pgid, &sid), 3) << lines[0];
  EXPECT_NE(ppid, (long long)getpid()) << "a helper stands between";
  EXPECT_EQ(pgid, mproc_popen_pid(p)) << "the program leads a group of its own";
  EXPECT_EQ(sid, (long long)getsid(0)) << "and stays in our session";
  mproc_popen_destroy(p);
  EXPECT_TRUE(no_children_left()) << "destroy left the helper or a zombie behind";
}

TEST(PosixTree, TheProgramGetsOurDispositionsAndAnEmptyMask) {
  // The helper blocks every signal but SIGCHLD and handles SIGCHLD itself; the program must not notice.
  struct sigaction ign = {}, old_chld = {}, old_usr = {};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGCHLD, &ign, &old_chld);
  sigaction(SIGUSR1, &ign, &old_usr);
  for (bool tree : {false, true}) {
    mproc_popen_opts o{};
    o.process_tree = tree;
    mproc_test::Captured c = mproc_test::run_helper({"sigdisp", "15", "print", " ", "sigdisp", "2", "print", " ",
                                                     "sigdisp", "17", "print", " ", "sigdisp", "10", "exit", "5"},
                                                    o);
    EXPECT_EQ(c.rc, 0) << mproc_last_error();
    // With SIGCHLD ignored the kernel reaps our children itself, so a plain child's status is lost (0, as
    // in Python); the helper is the tree program's parent and relays its status all the same.
    EXPECT_EQ(c.returncode, tree ? 5 : 0);
    EXPECT_EQ(c.out, "dfl dfl ign ign") << (tree ? "tree" : "plain");
  }
  sigaction(SIGCHLD, &old_chld, nullptr);
  sigaction(SIGUSR1, &old_usr, nullptr);
}

TEST(PosixTree, TheHelperHoldsNoFdOfOurs) {
  // A pipe of ours whose write end we close after the start must see end of file at once: a helper that
  // kept a copy (it is a fork of this process) would hold it open for the tree's whole life.
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  int inheritable = dup(fds[1]); // not close-on-exec: the helper must still not keep it
  mproc_popen *p = start({"read", "1"});
  ASSERT_NE(p, nullptr);
  close(fds[1]);
  close(inheritable);
  char b;
  EXPECT_EQ(read(fds[0], &b, 1), 0) << "someone still holds the write end";
  close(fds[0]);
  int code = 0;
  ASSERT_EQ(mproc_popen_stop_tree(p, 0, &code), 0) << mproc_last_error();
  mproc_popen_destroy(p);
}

TEST(PosixTree, TheHelperShrugsOffTerminalSignals) {
  mproc_popen *p = start({"ppid", "print", "\n", "read", "1", "exit", "4"});
  ASSERT_NE(p, nullptr);
  auto lines = read_lines(p, 1);
  ASSERT_EQ(lines.size(), 1u);
  pid_t helper = (pid_t)std::stoll(lines[0]);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGPIPE}) EXPECT_EQ(kill(helper, sig), 0);
  ASSERT_EQ(mproc_popen_close_stdin(p), 0);
  int code = 0;
  ASSERT_EQ(mproc_popen_wait(p, 60000, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, 4) << "the helper relayed the status after all those signals";
  EXPECT_EQ(mproc_popen_wait_tree(p, MPROC_INFINITE), 0) << mproc_last_error();
  mproc_popen_destroy(p);
  EXPECT_TRUE(no_children_left());
}

TEST(PosixTree, AKilledHelperIsReportedNotWaitedFor) {
  NEED_WATCHES();
  mproc_popen *p = start({"ppid", "print", "\n", "read", "1"});
  ASSERT_NE(p, nullptr);
  auto lines = read_lines(p, 1);
  ASSERT_EQ(lines.size(), 1u);
  Watch prog(mproc_popen_pid(p)); // killed by the watch at the end: nobody else will
  ASSERT_EQ(kill((pid_t)std::stoll(lines[0]), SIGKILL), 0);
  EXPECT_EQ(mproc_popen_wait(p, 60000, nullptr), MPROC_ESYS);
  EXPECT_NE(std::string(mproc_last_error()).find("helper"), std::string::npos) << mproc_last_error();
  EXPECT_EQ(mproc_popen_wait_tree(p, 60000), 0) << "the tree is let go";
  EXPECT_FALSE(prog.ended(0)) << "the program itself was not killed";
  mproc_popen_destroy(p);
  EXPECT_TRUE(no_children_left());
}

TEST(PosixTree, ExecFailureComesBackThroughTheHelper) {
  // A file that exists and is executable but cannot be run (its interpreter is missing): execve fails in
  // the helper's child, after the lookup that a missing program would fail.
  fs::path dir = fs::temp_directory_path() / ("mproc-tree-" + std::to_string(getpid()));
  fs::create_directories(dir);
  fs::path script = dir / "no-interpreter";
  std::ofstream(script) << "#!/nonexistent/interpreter\n";
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  const char *argv[] = {script.c_str(), nullptr};
  for (bool tree : {false, true}) {
    mproc_popen *p = nullptr;
    EXPECT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .process_tree = tree})), MPROC_ENOENT);
    EXPECT_NE(std::string(mproc_last_error()).find("no-interpreter"), std::string::npos) << mproc_last_error();
    EXPECT_EQ(p, nullptr);
    EXPECT_TRUE(no_children_left());
  }
  fs::remove_all(dir);
}

TEST(PosixTree, ASetIdProgramTakesTheHelperForKillOnParentDeath) {
  NEED_WATCHES();
  // execve of a set-user-ID program clears PR_SET_PDEATHSIG, so even from the main thread such a program
  // is started under the helper, which kills it when the parent dies.
  char tmpl[] = "/tmp/mproc-tree-setid-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl, prog = dir + "/mproc_helper";
  struct statvfs vfs;
  ASSERT_EQ(statvfs(dir.c_str(), &vfs), 0);
  if (vfs.f_flag & ST_NOSUID) {
    fs::remove_all(dir);
    GTEST_SKIP() << "/tmp is mounted nosuid";
  }
  fs::copy_file(helper_path(), prog);
  ASSERT_EQ(chmod(prog.c_str(), 04755), 0) << strerror(errno);
  mproc_test::ParentDeath d = mproc_test::kill_parent_of(false, false, prog);
  ASSERT_EQ(d.error, "");
  EXPECT_NE(d.ppid, d.mid) << "a set-ID program must run under the helper";
  EXPECT_TRUE(d.prog->ended(60000)) << "the program outlived its parent";
  fs::remove_all(dir);
}
