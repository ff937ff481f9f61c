// subprocess on POSIX: the child's credentials and limits (user, group, extra_groups, umask, rlimits).
// The child reports what it got through the helper (ids, umask, rlimit). Changing to another user takes
// root: those tests run as root (CI runs as root) with the system's "nobody" and skip otherwise; the
// refusal path runs as an unprivileged parent (as root: in a fork child that dropped to nobody first).
#include <gtest/gtest.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "mproc.h"
#include "test_util.h"

using mproc_test::Captured;
using mproc_test::helper_path;
using mproc_test::open_handle_count;
using mproc_test::ptr;

namespace {

struct Nobody {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string group; // the name of its primary group
};

// The system's "nobody" and its primary group, or false.
bool find_nobody(Nobody *n) {
  struct passwd *pw = getpwnam("nobody");
  if (!pw) return false;
  n->uid = pw->pw_uid;
  n->gid = pw->pw_gid;
  struct group *gr = getgrgid(n->gid);
  n->group = gr ? gr->gr_name : std::to_string(n->gid);
  return true;
}

// A copy of the helper that any user may run (the build tree may sit where nobody cannot reach).
class PublicHelper {
 public:
  PublicHelper() {
    char tmpl[] = "/tmp/mproc-cred-XXXXXX";
    if (!mkdtemp(tmpl)) return;
    dir_ = tmpl;
    chmod(dir_.c_str(), 0755);
    path_ = dir_ + "/mproc_helper";
    std::ifstream in(helper_path(), std::ios::binary);
    std::ofstream out(path_, std::ios::binary);
    out << in.rdbuf();
    out.close();
    chmod(path_.c_str(), 0755);
  }
  ~PublicHelper() {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  const std::string &path() const { return path_; }

 private:
  std::string dir_, path_;
};

// Run the public helper with `script` (as the file to execute; argv[0] stays the helper's path) and
// capture its output.
Captured run_public(const PublicHelper &h, std::vector<std::string> script, mproc_popen_opts o) {
  o.executable = h.path().c_str();
  return mproc_test::run_helper(std::move(script), o);
}

std::string ids(unsigned long uid, unsigned long gid, const std::string &groups) {
  return "uid=" + std::to_string(uid) + " euid=" + std::to_string(uid) + " gid=" + std::to_string(gid) +
         " egid=" + std::to_string(gid) + " groups=" + groups;
}

// Nothing of a failed start is left: no child to reap, no fd open.
void expect_nothing_left(int fds_before) {
  errno = 0;
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_EQ(open_handle_count(), fds_before);
}

bool contains(const std::string &s, const std::string &part) { return s.find(part) != std::string::npos; }

// Whether this process may raise its hard RLIMIT_NOFILE (root with CAP_SYS_RESOURCE; containers often
// drop it), tried in a fork child.
bool can_raise_hard_limit() {
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max == RLIM_INFINITY) _exit(1);
    rl.rlim_max += 1;
    _exit(setrlimit(RLIMIT_NOFILE, &rl) == 0 ? 0 : 1);
  }
  int st = 0;
  return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

} // namespace

#define SKIP_UNLESS_ROOT_WITH_NOBODY(n)                    \
  Nobody n;                                                \
  if (geteuid() != 0) {                                    \
    GTEST_SKIP() << "changing to another user takes root"; \
  }                                                        \
  if (!find_nobody(&n)) {                                  \
    GTEST_SKIP() << "this system has no user \"nobody\"";  \
  }                                                        \
  PublicHelper helper;                                     \
  ASSERT_FALSE(helper.path().empty())

TEST(PosixCredentials, UserTakesItsPrimaryGroupAndDropsTheParentsGroups) {
  SKIP_UNLESS_ROOT_WITH_NOBODY(nobody);
  Captured c = run_public(helper, {"ids"}, mproc_popen_opts{.user = "nobody"});
  ASSERT_EQ(c.rc, 0) << mproc_last_error();
  EXPECT_EQ(c.out, ids(nobody.uid, nobody.gid, "")); // not root's gid 0, nor root's groups
  // a numeric uid that the user database knows gets the same
  std::string uid = std::to_string(nobody.uid);
  Captured n = run_public(helper, {"ids"}, mproc_popen_opts{.user = uid.c_str()});
  EXPECT_EQ(n.out, ids(nobody.uid, nobody.gid, ""));
}

TEST(PosixCredentials, GroupAndExtraGroupsByNameAndNumber) {
  SKIP_UNLESS_ROOT_WITH_NOBODY(nobody);
  const char *extra[] = {"0", "12345", nullptr};
  Captured c = run_public(helper, {"ids"},
                          mproc_popen_opts{.user = "nobody", .group = nobody.group.c_str(), .extra_groups = extra});
  ASSERT_EQ(c.rc, 0) << mproc_last_error();
  EXPECT_EQ(c.out, ids(nobody.uid, nobody.gid, "0,12345"));
  // group alone: the user stays, the groups are cleared
  Captured g = run_public(helper, {"ids"}, mproc_popen_opts{.group = "4242"});
  ASSERT_EQ(g.rc, 0) << mproc_last_error();
  EXPECT_EQ(g.out, "uid=0 euid=0 gid=4242 egid=4242 groups=");
  // extra_groups alone: only the groups change; an empty list clears them
  const char *none[] = {nullptr};
  Captured e = run_public(helper, {"ids"}, mproc_popen_opts{.extra_groups = none});
  ASSERT_EQ(e.rc, 0) << mproc_last_error();
  EXPECT_EQ(e.out, ids(getuid(), getgid(), ""));
  // a uid the user database does not know: with a group it runs, without one its group is unknown
  Captured u = run_public(helper, {"ids"}, mproc_popen_opts{.user = "54321", .group = "54321"});
  ASSERT_EQ(u.rc, 0) << mproc_last_error();
  EXPECT_EQ(u.out, ids(54321, 54321, ""));
  int fds = open_handle_count();
  mproc_popen *p = nullptr;
  const char *argv[] = {helper.path().c_str(), nullptr};
  if (getpwuid(54321) == nullptr) {
    EXPECT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .user = "54321"})), MPROC_EINVAL);
    EXPECT_TRUE(contains(mproc_last_error(), "set group too")) << mproc_last_error();
    expect_nothing_left(fds);
  }
}

TEST(PosixCredentials, UnknownNamesFailInTheParentAndLeaveNothing) {
  std::string h = helper_path();
  const char *argv[] = {h.c_str(), nullptr};
  const char *bad_extra[] = {"0", "no-such-group-mproc", nullptr};
  int fds = open_handle_count();
  mproc_popen *p = nullptr;
  EXPECT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .user = "no-such-user-mproc"})), MPROC_ENOENT);
  EXPECT_TRUE(contains(mproc_last_error(), "user 'no-such-user-mproc' does not exist")) << mproc_last_error();
  EXPECT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .group = "no-such-group-mproc"})), MPROC_ENOENT);
  EXPECT_TRUE(contains(mproc_last_error(), "group 'no-such-group-mproc' does not exist")) << mproc_last_error();
  EXPECT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .extra_groups = bad_extra})), MPROC_ENOENT);
  EXPECT_TRUE(contains(mproc_last_error(), "extra_groups[1] 'no-such-group-mproc'")) << mproc_last_error();
  EXPECT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .user = "4294967295"})), MPROC_EINVAL);
  EXPECT_EQ(p, nullptr);
  expect_nothing_left(fds);
}

TEST(PosixCredentials, UmaskIsAppliedOrLeftAlone) {
  mode_t mine = umask(022);
  umask(mine);
  Captured keep = mproc_test::run_helper({"umask"});
  char expect[16];
  snprintf(expect, sizeof expect, "%o", (unsigned)mine);
  EXPECT_EQ(keep.out, expect);
  EXPECT_EQ(mproc_test::run_helper({"umask"}, mproc_popen_opts{.umask = -1}).out, expect); // Python's "unchanged"
  EXPECT_EQ(mproc_test::run_helper({"umask"}, mproc_popen_opts{.umask = MPROC_UMASK(027)}).out, "27");
  EXPECT_EQ(mproc_test::run_helper({"umask"}, mproc_popen_opts{.umask = MPROC_UMASK(0)}).out, "0");
  EXPECT_EQ(mproc_test::run_helper({"umask"}, mproc_popen_opts{.umask = MPROC_UMASK(0777)}).out, "777");
  // and through the fallback engine (pass_fds with close_fds), where it is applied the same way
  int fd = dup(1);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  mproc_os_handle keepfd[] = {fd};
  Captured c =
      mproc_test::run_helper({"umask", "print", " ", "hasfd", std::to_string(fd)},
                             mproc_popen_opts{.pass_fds = keepfd, .pass_fds_count = 1, .umask = MPROC_UMASK(077)});
  EXPECT_EQ(c.out, "77 yes");
  close(fd);
  umask(mine);
}

TEST(PosixCredentials, ResourceLimitsAreApplied) {
  struct rlimit mine;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &mine), 0);
  uint64_t hard = mine.rlim_max == RLIM_INFINITY ? MPROC_RLIM_INFINITY : (uint64_t)mine.rlim_max;
  mproc_rlimit limits[] = {{MPROC_RLIMIT_NOFILE, 64, hard},
                           {MPROC_RLIMIT_CORE, 0, 0},
                           {MPROC_RLIMIT_CPU, 100, MPROC_RLIM_INFINITY},
                           {MPROC_RLIMIT_FSIZE, 1 << 20, 1 << 20}};
  // the CPU hard limit can only stay where it is without privileges: keep the parent's
  struct rlimit cpu;
  ASSERT_EQ(getrlimit(RLIMIT_CPU, &cpu), 0);
  if (cpu.rlim_max != RLIM_INFINITY) limits[2].hard = cpu.rlim_max;
  if (limits[2].soft > limits[2].hard) limits[2].soft = limits[2].hard;
  Captured c = mproc_test::run_helper({"rlimit", "nofile", "print", "|", "rlimit", "core", "print", "|", "rlimit",
                                       "cpu", "print", "|", "rlimit", "fsize"},
                                      mproc_popen_opts{.rlimits = limits, .rlimits_count = 4});
  ASSERT_EQ(c.rc, 0) << mproc_last_error();
  auto text = [](uint64_t v) { return v == MPROC_RLIM_INFINITY ? std::string("inf") : std::to_string(v); };
  EXPECT_EQ(c.out,
            "64 " + text(hard) + "|0 0|" + text(limits[2].soft) + " " + text(limits[2].hard) + "|1048576 1048576");
  // the parent's own limits did not move
  struct rlimit after;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &after), 0);
  EXPECT_EQ(after.rlim_cur, mine.rlim_cur);
  // a child that hits its limit: RLIMIT_FSIZE makes a big write fail (SIGXFSZ is reset to default, so
  // it dies of it), here through a file of its own
  char dir[] = "/tmp/mproc-fsize-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string file = std::string(dir) + "/out";
  mproc_rlimit small[] = {{MPROC_RLIMIT_FSIZE, 4096, 4096}};
  Captured big = mproc_test::run_helper(
      {"out", "100000"},
      mproc_popen_opts{.stdout_mode = MPROC_PATH, .stdout_path = file.c_str(), .rlimits = small, .rlimits_count = 1});
  EXPECT_EQ(big.rc, 0) << mproc_last_error();
  EXPECT_EQ(big.returncode, -SIGXFSZ);
  struct stat st;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4096);
  unlink(file.c_str());
  rmdir(dir);
}

TEST(PosixCredentials, RootRaisesAHardLimitForAnUnprivilegedChild) {
  SKIP_UNLESS_ROOT_WITH_NOBODY(nobody);
  struct rlimit mine;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &mine), 0);
  if (mine.rlim_max == RLIM_INFINITY || mine.rlim_max > (1u << 20) - 100) {
    GTEST_SKIP() << "no room above the hard limit";
  }
  if (!can_raise_hard_limit()) {
    GTEST_SKIP() << "this root may not raise a hard limit (no CAP_SYS_RESOURCE)";
  }
  uint64_t raised = (uint64_t)mine.rlim_max + 64; // limits come before the user changes
  mproc_rlimit limits[] = {{MPROC_RLIMIT_NOFILE, raised, raised}};
  Captured c = run_public(helper, {"ids", "print", "|", "rlimit", "nofile"},
                          mproc_popen_opts{.user = "nobody", .rlimits = limits, .rlimits_count = 1});
  ASSERT_EQ(c.rc, 0) << mproc_last_error();
  EXPECT_EQ(c.out, ids(nobody.uid, nobody.gid, "") + "|" + std::to_string(raised) + " " + std::to_string(raised));
}

TEST(PosixCredentials, ChildFailuresComeBackAsTheStartError) {
  SKIP_UNLESS_ROOT_WITH_NOBODY(nobody);
  int fds = open_handle_count();
  // a program nobody may not execute: the exec fails in the fork child, reported through the error pipe
  std::string secret = helper.path() + "-root-only";
  {
    std::ifstream in(helper.path(), std::ios::binary);
    std::ofstream out(secret, std::ios::binary);
    out << in.rdbuf();
  }
  chmod(secret.c_str(), 0700);
  const char *argv[] = {secret.c_str(), "ids", nullptr};
  mproc_popen *p = nullptr;
  EXPECT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .user = "nobody"})), MPROC_EPERM);
  EXPECT_TRUE(contains(mproc_last_error(), "EACCES")) << mproc_last_error();
  // a hard limit that the kernel refuses even to root: RLIMIT_NOFILE above fs.nr_open
  long nr_open = 1 << 20;
  if (FILE *f = fopen("/proc/sys/fs/nr_open", "r")) {
    if (fscanf(f, "%ld", &nr_open) != 1) nr_open = 1 << 20;
    fclose(f);
  }
  mproc_rlimit too_many[] = {{MPROC_RLIMIT_NOFILE, (uint64_t)nr_open + 1, (uint64_t)nr_open + 1}};
  const char *ok_argv[] = {helper.path().c_str(), nullptr};
  EXPECT_EQ(mproc_popen_create(
                &p, ptr(mproc_popen_opts{.argv = ok_argv, .user = "nobody", .rlimits = too_many, .rlimits_count = 1})),
            MPROC_EPERM);
  EXPECT_TRUE(contains(mproc_last_error(), "rlimits[0], RLIMIT_NOFILE")) << mproc_last_error();
  EXPECT_EQ(p, nullptr);
  unlink(secret.c_str());
  expect_nothing_left(fds);
}

// What an unprivileged parent gets when it asks for another user, group or groups, or a higher hard
// limit: MPROC_EPERM naming the call, and nothing left behind. Its own user still works.
namespace {
struct Refusals {
  int user = 1, group = 1, groups = 1, limit = 1, own = 1, leftover = 1;
  std::string user_msg, group_msg, groups_msg, limit_msg;
};

Refusals refusals_here(const Nobody &me) {
  Refusals r;
  const char *argv[] = {"/bin/true", nullptr};
  int fds = open_handle_count();
  mproc_popen *p = nullptr;
  r.user = mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .user = "root"}));
  r.user_msg = mproc_last_error();
  r.group = mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .group = "0"}));
  r.group_msg = mproc_last_error();
  const char *groups[] = {"0", nullptr};
  r.groups = mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .extra_groups = groups}));
  r.groups_msg = mproc_last_error();
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  mproc_rlimit raise[] = {{MPROC_RLIMIT_NOFILE, (uint64_t)rl.rlim_max + 1, (uint64_t)rl.rlim_max + 1}};
  if (rl.rlim_max != RLIM_INFINITY) {
    r.limit = mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv, .rlimits = raise, .rlimits_count = 1}));
    r.limit_msg = mproc_last_error();
  }
  std::string uid = std::to_string(me.uid), gid = std::to_string(me.gid);
  r.own = mproc_call(ptr(mproc_popen_opts{.argv = argv, .user = uid.c_str(), .group = gid.c_str()}), 60000, nullptr);
  errno = 0;
  r.leftover = waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD && open_handle_count() == fds ? 0 : 1;
  return r;
}
} // namespace

TEST(PosixCredentials, AnUnprivilegedParentIsRefusedWithEperm) {
  Refusals r;
  if (geteuid() != 0) {
    Nobody me{getuid(), getgid(), ""};
    r = refusals_here(me);
  } else {
    // become an unprivileged parent first: a fork child that drops to nobody, then reports
    Nobody nobody;
    if (!find_nobody(&nobody)) GTEST_SKIP() << "this system has no user \"nobody\"";
    int pfd[2];
    ASSERT_EQ(pipe(pfd), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(pfd[0]);
      if (setgroups(0, nullptr) != 0 || setgid(nobody.gid) != 0 || setuid(nobody.uid) != 0) _exit(3);
      Refusals mine = refusals_here(nobody);
      std::string text = std::to_string(mine.user) + " " + std::to_string(mine.group) + " " +
                         std::to_string(mine.groups) + " " + std::to_string(mine.limit) + " " +
                         std::to_string(mine.own) + " " + std::to_string(mine.leftover) + "\n" + mine.user_msg + "\n" +
                         mine.group_msg + "\n" + mine.groups_msg + "\n" + mine.limit_msg + "\n";
      (void)!write(pfd[1], text.data(), text.size());
      _exit(0);
    }
    close(pfd[1]);
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = read(pfd[0], buf, sizeof buf)) > 0) text.append(buf, (size_t)n);
    close(pfd[0]);
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "the unprivileged parent failed: " << st;
    std::vector<std::string> lines;
    for (size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1)
      lines.push_back(text.substr(at, nl - at));
    ASSERT_EQ(lines.size(), 5u) << text;
    sscanf(lines[0].c_str(), "%d %d %d %d %d %d", &r.user, &r.group, &r.groups, &r.limit, &r.own, &r.leftover);
    r.user_msg = lines[1];
    r.group_msg = lines[2];
    r.groups_msg = lines[3];
    r.limit_msg = lines[4];
  }
  EXPECT_EQ(r.user, MPROC_EPERM) << r.user_msg;
  EXPECT_TRUE(contains(r.user_msg, "EPERM")) << r.user_msg;
  EXPECT_TRUE(contains(r.user_msg, "could not change its group")) << r.user_msg; // root's group comes first
  EXPECT_EQ(r.group, MPROC_EPERM) << r.group_msg;
  EXPECT_TRUE(contains(r.group_msg, "could not change its group to 0")) << r.group_msg;
  EXPECT_EQ(r.groups, MPROC_EPERM) << r.groups_msg;
  EXPECT_TRUE(contains(r.groups_msg, "supplementary groups")) << r.groups_msg;
  if (!r.limit_msg.empty()) {
    EXPECT_EQ(r.limit, MPROC_EPERM) << r.limit_msg;
    EXPECT_TRUE(contains(r.limit_msg, "RLIMIT_NOFILE")) << r.limit_msg;
  }
  EXPECT_EQ(r.own, 0) << "its own user and group must work";
  EXPECT_EQ(r.leftover, 0) << "a refused start left a child or an fd behind";
}

// Credentials need fork, not vfork: glibc's set*id calls change every thread the C library knows of,
// so from a vfork child they would reach the parent's threads. Spawning as nobody from several threads
// at once never changes any parent thread's ids.
TEST(PosixCredentials, ConcurrentSpawnsAsAnotherUserNeverChangeTheParentsThreads) {
  SKIP_UNLESS_ROOT_WITH_NOBODY(nobody);
  std::atomic<int> bad{0}, failed{0};
  std::atomic<bool> stop{false};
  std::thread watcher([&] { // a thread that only looks at its own ids
    while (!stop)
      if (getuid() != 0 || geteuid() != 0 || getgid() != 0) bad++;
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < 3; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 8; ++i) {
        Captured c = run_public(helper, {"ids"}, mproc_popen_opts{.user = "nobody"});
        if (c.rc != 0 || c.out != ids(nobody.uid, nobody.gid, "")) failed++;
        if (getuid() != 0 || geteuid() != 0) bad++;
      }
    });
  for (auto &t : ts) t.join();
  stop = true;
  watcher.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(bad.load(), 0) << "a parent thread's ids changed";
  EXPECT_EQ(getuid(), 0u);
}
