// Listener's POSIX specifics: the generated address in a directory only the user can open, what close
// removes (and what it leaves), and the peer check of listeners without an authkey: a Linux abstract
// socket and TCP refuse a client that runs as another user (run as root: the client switches user).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "mproc.h"
#include "test_util.h"

using mproc_test::ptr;

namespace {

std::string dir_of(const std::string &path) { return path.substr(0, path.rfind('/')); }

// In a fork child: become `nobody`, connect to addr, report the outcome as the exit code (0 served, 1
// refused or closed before the first message, 2 could not connect or switch user).
int client_as_nobody(const std::string &addr) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    mproc_connection *c = nullptr;
    if (mproc_client(&c, ptr(mproc_client_opts{.address = addr.c_str()}), 20000) != 0) _exit(2);
    char *m = nullptr;
    size_t n = 0;
    int rc = mproc_connection_recv_bytes(c, 0, 20000, &m, &n);
    _exit(rc == 0 ? 0 : 1);
  }
  return pid;
}

int exit_code(pid_t pid) {
  int st = 0;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

} // namespace

TEST(ListenerPosix, TheGeneratedAddressLivesInAPrivateDirectoryThatCloseRemoves) {
  mproc_listener *l = nullptr;
  ASSERT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{})), 0) << mproc_last_error();
  std::string path = mproc_listener_address(l), dir = dir_of(path);
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0) << dir;
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u) << dir;
  EXPECT_EQ(st.st_uid, geteuid());
  ASSERT_EQ(lstat(path.c_str(), &st), 0) << path;
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  mproc_listener_destroy(l);
  EXPECT_NE(lstat(path.c_str(), &st), 0);
  EXPECT_NE(stat(dir.c_str(), &st), 0);
}

TEST(ListenerPosix, ClosingRemovesOnlyTheSocketItMade) {
  char tmpl[] = "/tmp/mproc-listener-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/app.sock";
  mproc_listener *l = nullptr;
  ASSERT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.address = path.c_str()})), 0) << mproc_last_error();
  EXPECT_EQ(mproc_listener_address(l), path);
  // someone replaces the file: close must not remove theirs
  ASSERT_EQ(unlink(path.c_str()), 0);
  FILE *f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  mproc_listener_destroy(l);
  struct stat st;
  EXPECT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  unlink(path.c_str());
  EXPECT_EQ(rmdir(tmpl), 0); // and the user's own directory stays (now empty)
}

TEST(ListenerPosix, WithoutAKeyAnotherUserIsRefusedOnAbstractSocketsAndTCP) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (a client of another user)";
  for (const char *where : {"@", "127.0.0.1:0"}) {
    SCOPED_TRACE(where);
    mproc_listener *l = nullptr;
    int rc = mproc_listener_create(&l, ptr(mproc_listener_opts{.address = where}));
    if (rc == MPROC_ENOTSUP) continue; // no abstract namespace here
    ASSERT_EQ(rc, 0) << mproc_last_error();
    std::string addr = mproc_listener_address(l);
    pid_t pid = client_as_nobody(addr);
    mproc_connection *c = nullptr;
    EXPECT_EQ(mproc_listener_accept(l, 20000, &c), MPROC_EAUTH) << mproc_last_error();
    EXPECT_NE(std::string(mproc_last_error()).find("another user"), std::string::npos) << mproc_last_error();
    EXPECT_EQ(c, nullptr);
    EXPECT_EQ(exit_code(pid), 1); // its connection was closed unserved
    mproc_listener_destroy(l);
  }
  // and a path socket is its file's business: nobody can reach one in a private directory at all
  mproc_listener *l = nullptr;
  ASSERT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{})), 0) << mproc_last_error();
  pid_t pid = client_as_nobody(mproc_listener_address(l));
  EXPECT_EQ(exit_code(pid), 2);
  mproc_listener_destroy(l);
}

TEST(ListenerPosix, WithoutAKeyTheSameUserIsServedOnTCP) {
  // the other half of the test above: the lookup in /proc/net/tcp that refuses another user serves our own
  mproc_listener *l = nullptr;
  ASSERT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.address = "127.0.0.1:0"})), 0) << mproc_last_error();
  std::string addr = mproc_listener_address(l);
  mproc_connection *c = nullptr, *s = nullptr;
  ASSERT_EQ(mproc_client(&c, ptr(mproc_client_opts{.address = addr.c_str()}), 20000), 0) << mproc_last_error();
  ASSERT_EQ(mproc_listener_accept(l, 20000, &s), 0) << mproc_last_error();
  mproc_connection_destroy(c);
  mproc_connection_destroy(s);
  mproc_listener_destroy(l);
}
