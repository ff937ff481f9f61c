// The main guard on POSIX (Linux): forged "--mproc-spawn=<fd>" and "--mproc-forkserver=<fd>" flags aimed
// at this test program end to end, the module identity check that comes before any dlopen
// (src/posix/process.c, mproc__pal_fn_resolve), a set-user-ID copy of an mproc program, and the fork
// server's check of who sends it requests (src/posix/fdpass.c). Every forged flag comes with a
// well-formed bootstrap whose target would create a marker file, so a guard that trusted the flag would
// leave the marker; the controls show that the same bytes on a boot link from the real parent do run the
// target. The POSIX counterpart of guard_win32.cc; built and run only on POSIX.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <dlfcn.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern "C" {
#include "bootstrap.h"
#include "internal.h"
#include "pal.h"
}
#include "guard_util.h"
#include "test_util.h"

using namespace mproc_guard_test;

namespace {

// A fresh path in /tmp; the file does not exist.
std::string temp_path(const char *tag) {
  static int serial = 0;
  std::string s = "/tmp/mproc-guard-" + std::to_string(getpid()) + "-" + std::to_string(++serial) + "-" + tag;
  unlink(s.c_str());
  return s;
}

bool exists(const std::string &path) { return access(path.c_str(), F_OK) == 0; }

void write_file(const std::string &path, const std::string &data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), (std::streamsize)data.size());
  ASSERT_TRUE(f.good()) << path;
}

std::string read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Sock {
  int a = -1, b = -1; // a: ours, b: the child's
  Sock() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, &a), 0) << strerror(errno); }
  ~Sock() {
    if (a >= 0) close(a);
    if (b >= 0) close(b);
  }
  Sock(const Sock &) = delete;
  Sock &operator=(const Sock &) = delete;
};

void write_all(int fd, const std::string &data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = write(fd, data.data() + done, data.size() - done);
    if (w < 0 && errno == EINTR) continue;
    ASSERT_GT(w, 0) << strerror(errno);
    done += (size_t)w;
  }
}

// Send a fork server request with `fd` attached, as mproc's client does. Whether all of it went (no
// gtest assertion inside: a fork child calls it too).
bool send_with_fd(int sock, const std::string &data, int fd) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {(void *)data.data(), data.size()};
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl.buf;
  m.msg_controllen = sizeof ctl.buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &m, MSG_NOSIGNAL) == (ssize_t)data.size();
}

// Everything `fd` delivers until end of file (a bound on the wait, not a synchronisation: the peer's
// exit gives the end of file).
std::string read_to_eof(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 60000);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      ADD_FAILURE() << "no end of file within 60 s";
      return out;
    }
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, (size_t)n);
  }
}

struct Ran {
  int rc = -1;
  int code = -1000;
  std::string out, err;
};

// Run argv (argv[0] an absolute path) with pass_fds, stdin from a path, extra environment, capturing
// stdout and stderr. A guard that wrongly accepted a forged fork server flag would serve forever: the
// timeout makes that a failure, not a hang.
Ran run(std::vector<std::string> args, std::vector<mproc_os_handle> pass = {}, const char *stdin_path = nullptr,
        std::vector<std::string> env = {}) {
  std::vector<const char *> argv;
  for (auto &a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  std::vector<const char *> extra;
  for (auto &e : env) extra.push_back(e.c_str());
  extra.push_back(nullptr);
  mproc_popen_opts o{};
  o.argv = argv.data();
  o.pass_fds = pass.data();
  o.pass_fds_count = pass.size();
  o.capture_output = true;
  if (!env.empty()) o.env_extra = extra.data();
  if (stdin_path) {
    o.stdin_mode = MPROC_PATH;
    o.stdin_path = stdin_path;
  }
  mproc_completed r{};
  Ran x;
  x.rc = mproc_run(&o, 60000, &r);
  x.code = r.returncode;
  if (r.stdout_data) x.out.assign(r.stdout_data, r.stdout_len);
  if (r.stderr_data) x.err.assign(r.stderr_data, r.stderr_len);
  mproc_completed_free(&r);
  return x;
}

// This test program with a flag; "--gtest_filter=-*" makes a guard that wrongly returned run no test
// (exit 0, which fails the check for 77) rather than this whole suite again.
Ran run_self(const std::string &flag, std::vector<mproc_os_handle> pass = {}, const char *stdin_path = nullptr,
             std::vector<std::string> env = {}) {
  return run({self_exe(), flag, "--gtest_filter=-*"}, pass, stdin_path, env);
}

#define EXPECT_REFUSED_AS(ran, flag, marker, why)                                       \
  do {                                                                                  \
    EXPECT_EQ((ran).rc, 0) << mproc_last_error();                                       \
    EXPECT_EQ((ran).code, MPROC_EXIT_GUARD_REFUSED) << (ran).err;                       \
    EXPECT_EQ((ran).err.rfind("mproc: refusing " flag ": ", 0), 0u) << (ran).err;       \
    EXPECT_NE((ran).err.find(why), std::string::npos) << (ran).err;                     \
    EXPECT_FALSE(exists(marker)) << "the forged target ran";                            \
    EXPECT_EQ((ran).err.find('\n'), (ran).err.size() - 1) << "one line: " << (ran).err; \
  } while (0)
#define EXPECT_REFUSED(ran, marker, why) EXPECT_REFUSED_AS(ran, "--mproc-spawn", marker, why)

} // namespace

// ---- spawn: the control and forged flags ---------------------------------------------------------------

// The control: the bootstrap on a boot link that this process (the child's parent, the same program)
// made is taken, and its target runs. Without this, "no marker" below would prove nothing.
TEST(PosixGuardForged, ControlABootLinkFromTheParentRunsTheTarget) {
  std::string marker = temp_path("control");
  Sock s;
  write_all(s.a, spawn_frame(marker_ref(), marker));
  Ran r = run_self("--mproc-spawn=" + std::to_string(s.b), {s.b});
  EXPECT_EQ(r.rc, 0) << mproc_last_error();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(exists(marker)) << r.err;
  unlink(marker.c_str());
}

// A user types the flag: `prog --mproc-spawn=0 < bootstrap` (stdin is a file holding the bootstrap).
TEST(PosixGuardForged, AFileOnStdinIsRefused) {
  std::string marker = temp_path("marker-stdin"), boot = temp_path("boot");
  write_file(boot, spawn_frame(marker_ref(), marker));
  Ran r = run_self("--mproc-spawn=0", {}, boot.c_str());
  EXPECT_REFUSED(r, marker, "the boot handle 0 is not a socket");
  unlink(boot.c_str());
}

// An inherited OS pipe holding the bootstrap (from the parent, the same program and user: only the kind
// of descriptor tells).
TEST(PosixGuardForged, AnInheritedPipeIsRefused) {
  std::string marker = temp_path("marker-pipe");
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  write_all(p[1], spawn_frame(marker_ref(), marker));
  Ran r = run_self("--mproc-spawn=" + std::to_string(p[0]), {p[0]});
  EXPECT_REFUSED(r, marker, "is not a socket");
  close(p[0]);
  close(p[1]);
}

// A Unix socket of the caller's own from a different executable: the helper makes a socket pair the way
// mproc does, writes the bootstrap and starts us with its end. Every check but the executable passes
// (a Unix stream socket, made by our parent, same user), so the refusal names the executable.
TEST(PosixGuardForged, ARelayFromAnotherExecutableIsRefused) {
  std::string marker = temp_path("marker-relay"), boot = temp_path("boot");
  write_file(boot, spawn_frame(marker_ref(), marker));
  Ran r = run({mproc_test::helper_path(), "relay-boot", boot, self_exe(), "--gtest_filter=-*"});
  EXPECT_REFUSED(r, marker, "the parent runs another executable");
  unlink(boot.c_str());
}

// A boot link that this process made, handed on to our grandchild by a middleman (the helper): the
// link's maker is not the grandchild's parent.
TEST(PosixGuardForged, ALinkFromTheGrandparentIsRefused) {
  std::string marker = temp_path("marker-grand");
  Sock s;
  write_all(s.a, spawn_frame(marker_ref(), marker));
  Ran r =
      run({mproc_test::helper_path(), "run", self_exe(), "--mproc-spawn=" + std::to_string(s.b), "--gtest_filter=-*"},
          {s.b});
  EXPECT_REFUSED(r, marker, "is not this process's parent");
}

// Malformed handle numbers, each next to a real boot link (from the parent, holding the bootstrap) whose
// number a lax parser would find in it (strtol, a 32-bit truncation, a sign, spaces, hex).
TEST(PosixGuardForged, MalformedHandleNumbersAreRefused) {
  struct Case {
    std::string value;
    const char *why;
  };
  auto cases = [](int link) {
    std::string h = std::to_string(link);
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%x", (unsigned)link);
    return std::vector<Case>{
        {"", "no handle number"},
        {"4294967296", "out of range"},
        {"-1", "not a decimal number"},
        {"12abc", "not a decimal number"},
        {"+3", "not a decimal number"},
        {" 3", "not a decimal number"},
        {"0x3", "not a decimal number"},
        {h + "abc", "not a decimal number"},
        {std::to_string(4294967296LL + link), "out of range"},
        {"18446744073709551616" + h, "out of range"},
        {"+" + h, "not a decimal number"},
        {"-" + h, "not a decimal number"},
        {" " + h, "not a decimal number"},
        {h + " ", "not a decimal number"},
        {hex, "not a decimal number"},
    };
  };
  size_t n = cases(0).size();
  for (size_t i = 0; i < n; ++i) {
    std::string marker = temp_path("marker-num");
    Sock s;
    Case c = cases(s.b)[i];
    SCOPED_TRACE("--mproc-spawn=" + c.value);
    write_all(s.a, spawn_frame(marker_ref(), marker));
    Ran r = run_self("--mproc-spawn=" + c.value, {s.b});
    EXPECT_REFUSED(r, marker, c.why);
  }
}

// ---- the fork server flag ------------------------------------------------------------------------------

namespace {

// A fork server of this program started by this process on a control socket it made (what mproc does):
// the guard takes it. `ctl` is our end.
struct OwnServer {
  Sock ctl;
  mproc_popen *p = nullptr;
  OwnServer() {
    std::string exe = self_exe(), flag = "--mproc-forkserver=" + std::to_string(ctl.b);
    const char *argv[] = {exe.c_str(), flag.c_str(), "--gtest_filter=-*", nullptr};
    mproc_popen_opts o{};
    o.argv = argv;
    mproc_os_handle pass[] = {ctl.b};
    o.pass_fds = pass;
    o.pass_fds_count = 1;
    EXPECT_EQ(mproc_popen_create(&p, &o), 0) << mproc_last_error();
    close(ctl.b);
    ctl.b = -1;
    // Its hello (its pid) says it is serving; like mproc's client, send nothing before it: the server
    // asks the kernel for each sender's credentials only from then on, and takes a request without them
    // for one from somebody else.
    unsigned char hello[8];
    size_t got = 0;
    while (p && got < sizeof hello) {
      ssize_t n = read(ctl.a, hello + got, sizeof hello - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += (size_t)n;
    }
    EXPECT_EQ(got, sizeof hello) << "no hello from the fork server";
    int64_t pid = 0;
    for (int i = 0; i < 8; ++i) pid |= (int64_t)hello[i] << (8 * i);
    if (p) {
      EXPECT_EQ(pid, mproc_popen_pid(p));
    }
  }
  // Close our end (the server exits at end of file, unless it already has) and wait: its exit code.
  int finish() {
    close(ctl.a);
    ctl.a = -1;
    int code = -1000;
    EXPECT_EQ(mproc_popen_wait(p, 60000, &code), 0) << mproc_last_error();
    return code;
  }
  ~OwnServer() {
    if (p) {
      if (ctl.a >= 0) finish();
      mproc_popen_destroy(p);
    }
  }
  OwnServer(const OwnServer &) = delete;
  OwnServer &operator=(const OwnServer &) = delete;
};

} // namespace

// The control: a fork server that this process started serves our request; the child it forks runs the
// target (the boot link reaches end of file once the child has exited and the server has reported it).
TEST(PosixGuardForged, ControlAForkServerFromTheParentRunsTheTarget) {
  std::string marker = temp_path("fs-control");
  OwnServer s;
  ASSERT_NE(s.p, nullptr);
  Sock boot;
  ASSERT_TRUE(send_with_fd(s.ctl.a, fs_request(marker_ref(), marker), boot.b)) << strerror(errno);
  close(boot.b);
  boot.b = -1;
  std::string said = read_to_eof(boot.a);
  EXPECT_NE(said.find("ok"), std::string::npos) << said;
  EXPECT_NE(said.find("X0"), std::string::npos) << said; // the server's report: the child exited with 0
  EXPECT_TRUE(exists(marker));
  EXPECT_EQ(s.finish(), 0);
  unlink(marker.c_str());
}

// `prog --mproc-forkserver=0 < request`, and the helper (another executable) relaying a request with a
// boot link attached on a socket pair of its own.
TEST(PosixGuardForged, AForgedForkServerFlagIsRefused) {
  std::string marker = temp_path("marker-fs"), req = temp_path("req");
  write_file(req, fs_request(marker_ref(), marker));
  Ran r = run_self("--mproc-forkserver=0", {}, req.c_str());
  EXPECT_REFUSED_AS(r, "--mproc-forkserver", marker, "the boot handle 0 is not a socket");
  r = run({mproc_test::helper_path(), "relay-forkserver", req, self_exe(), "--gtest_filter=-*"});
  EXPECT_REFUSED_AS(r, "--mproc-forkserver", marker, "the parent runs another executable");
  for (const char *v : {"", "-1", "+0", "0x0", "4294967296"}) {
    SCOPED_TRACE(v);
    r = run_self(std::string("--mproc-forkserver=") + v, {}, req.c_str());
    EXPECT_REFUSED_AS(r, "--mproc-forkserver", marker, "handle");
  }
  unlink(req.c_str());
}

// The fork server takes requests only from its parent: a process that got hold of the parent's end of
// the control socket (here a fork of this process, which inherits it) sends a well-formed request with a
// boot link, and the server ends (exit 77) without forking. The same server has just served the parent.
TEST(PosixGuardForged, TheForkServerServesOnlyItsParent) {
  std::string ok_marker = temp_path("fs-parent"), forged = temp_path("fs-other");
  OwnServer s;
  ASSERT_NE(s.p, nullptr);
  {
    Sock boot;
    ASSERT_TRUE(send_with_fd(s.ctl.a, fs_request(marker_ref(), ok_marker), boot.b)) << strerror(errno);
    close(boot.b);
    boot.b = -1;
    std::string said = read_to_eof(boot.a);
    EXPECT_NE(said.find("X0"), std::string::npos) << said;
    EXPECT_TRUE(exists(ok_marker));
  }
  // The server's reply to the parent (its child's pid and a pidfd) is on our end: read it.
  {
    char reply[8];
    struct iovec iov = {reply, sizeof reply};
    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE(sizeof(int) * 4)];
    } ctl;
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof ctl.buf;
    { // the reply: 8 bytes, with the pidfd
      ASSERT_EQ(recvmsg(s.ctl.a, &m, MSG_CMSG_CLOEXEC), 8) << strerror(errno);
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
          int fd;
          memcpy(&fd, CMSG_DATA(c), sizeof fd);
          close(fd);
        }
    }
  }
  std::string req = fs_request(marker_ref(), forged);
  Sock boot;
  fflush(nullptr);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) // another process holding the parent's end: send one request, end
    _exit(send_with_fd(s.ctl.a, req, boot.b) ? 0 : 1);
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  close(boot.b);
  boot.b = -1;
  // The server ends on its own: wait for it before closing our end (which would end it with 0).
  int code = -1000;
  EXPECT_EQ(mproc_popen_wait(s.p, 60000, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, MPROC_EXIT_GUARD_REFUSED);
  EXPECT_EQ(read_to_eof(boot.a), "") << "the server forked a child for the other process";
  EXPECT_FALSE(exists(forged)) << "the other process's target ran";
  s.finish();
  unlink(ok_marker.c_str());
}

// ---- a bootstrap aimed at a library --------------------------------------------------------------------

namespace {

const char *kLibEnv = "MPROC_TEST_LIB_MARKER";

// The reference of marker_lib_target in the marker library (loaded here with the marker variable unset:
// its constructor leaves nothing).
std::string lib_ref() {
  unsetenv(kLibEnv);
  void *h = dlopen(MPROC_TEST_MARKER_LIB, RTLD_NOW);
  EXPECT_NE(h, nullptr) << dlerror();
  if (!h) return "";
  void *fn = dlsym(h, "marker_lib_target");
  EXPECT_NE(fn, nullptr) << dlerror();
  return fn ? ref_of(fn) : "";
}

// The reference layout (src/posix/process.c): u64 is_main | u64 offset | u64 id[4] | the module's path.
std::string ref_with(const std::string &ref, const std::string &path, const uint64_t id[4]) {
  std::string out = ref.substr(0, 16);
  out.append((const char *)id, 32);
  return out + path;
}

// The identity words mproc__pal_fn_locate records: device, inode, size, modification time in ns.
void identity(const std::string &path, uint64_t id[4]) {
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0) << path;
  id[0] = (uint64_t)st.st_dev;
  id[1] = (uint64_t)st.st_ino;
  id[2] = (uint64_t)st.st_size;
  id[3] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
}

} // namespace

// The control: a child started by this process on its boot link resolves the library target, which
// loads the library (its constructor leaves the marker) and runs the target there.
TEST(PosixGuardLibrary, ControlABootLinkFromTheParentLoadsTheLibrary) {
  std::string ref = lib_ref();
  ASSERT_FALSE(ref.empty());
  ASSERT_EQ(ref.compare(0, 8, std::string(8, '\0')), 0) << "a library, not the executable";
  std::string ctor = temp_path("lib-ctor"), target = temp_path("lib-target");
  Sock s;
  write_all(s.a, spawn_frame(ref, target));
  Ran r = run_self("--mproc-spawn=" + std::to_string(s.b), {s.b}, nullptr, {std::string(kLibEnv) + "=" + ctor});
  EXPECT_EQ(r.rc, 0) << mproc_last_error();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(exists(ctor)) << r.err;
  EXPECT_TRUE(exists(target)) << r.err;
  unlink(ctor.c_str());
  unlink(target.c_str());
}

// The same bootstrap relayed by another executable: refused before anything is loaded.
TEST(PosixGuardLibrary, ARelayFromAnotherExecutableLoadsNothing) {
  std::string ref = lib_ref();
  ASSERT_FALSE(ref.empty());
  std::string ctor = temp_path("lib-ctor"), target = temp_path("lib-target"), boot = temp_path("boot");
  write_file(boot, spawn_frame(ref, target));
  Ran r = run({mproc_test::helper_path(), "relay-boot", boot, self_exe(), "--gtest_filter=-*"}, {}, nullptr,
              {std::string(kLibEnv) + "=" + ctor});
  EXPECT_REFUSED(r, target, "the parent runs another executable");
  EXPECT_FALSE(exists(ctor)) << "the library was loaded";
  unlink(boot.c_str());
}

// White-box: mproc__pal_fn_resolve checks the module's identity before dlopen. A copy of the library
// that this process never loaded, referred to with wrong identity words, then after its file was
// replaced: an error, and its constructor does not run. The control: the right words load it.
TEST(PosixGuardLibrary, ResolveChecksTheIdentityBeforeLoading) {
  std::string ref = lib_ref();
  ASSERT_GE(ref.size(), 48u);
  std::string dir = temp_path("libdir");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0) << strerror(errno);
  std::string lib = dir + "/libcopy.so", other = dir + "/libother.so", ctor = temp_path("lib-ctor");
  std::string bytes = read_file(MPROC_TEST_MARKER_LIB);
  ASSERT_FALSE(bytes.empty());
  write_file(lib, bytes);
  uint64_t id[4];
  identity(lib, id);
  ASSERT_EQ(setenv(kLibEnv, ctor.c_str(), 1), 0);
  void *fn = nullptr;
  // wrong words, one at a time
  for (int w = 0; w < 4; ++w) {
    SCOPED_TRACE(w);
    uint64_t bad[4] = {id[0], id[1], id[2], id[3]};
    bad[w] ^= 1;
    std::string r = ref_with(ref, lib, bad);
    EXPECT_EQ(mproc__pal_fn_resolve(r.data(), r.size(), &fn), MPROC_ENOENT);
    EXPECT_NE(std::string(mproc_last_error()).find("different binary"), std::string::npos) << mproc_last_error();
    EXPECT_FALSE(exists(ctor)) << "the library was loaded";
  }
  // the file replaced after the reference was made (another inode at the same path)
  std::string before = ref_with(ref, lib, id);
  write_file(other, bytes);
  ASSERT_EQ(rename(other.c_str(), lib.c_str()), 0);
  EXPECT_EQ(mproc__pal_fn_resolve(before.data(), before.size(), &fn), MPROC_ENOENT);
  EXPECT_NE(std::string(mproc_last_error()).find("different binary"), std::string::npos) << mproc_last_error();
  EXPECT_FALSE(exists(ctor)) << "the library was loaded";
  // the control: the file's own identity words load it (its constructor leaves the marker)
  identity(lib, id);
  std::string now = ref_with(ref, lib, id);
  EXPECT_EQ(mproc__pal_fn_resolve(now.data(), now.size(), &fn), 0) << mproc_last_error();
  EXPECT_NE(fn, nullptr);
  EXPECT_TRUE(exists(ctor)) << "the control did not load the library";
  unsetenv(kLibEnv);
  unlink(ctor.c_str());
  unlink(lib.c_str());
  rmdir(dir.c_str());
}

// ---- a set-user-ID program -----------------------------------------------------------------------------

namespace {

std::string find_in_path(const char *name) {
  const char *path = getenv("PATH");
  std::string dirs = std::string(path ? path : "") + ":/usr/bin:/bin:/usr/sbin:/sbin";
  std::stringstream ss(dirs);
  std::string d;
  while (std::getline(ss, d, ':')) {
    if (d.empty()) continue;
    std::string p = d + "/" + name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

} // namespace

// A copy of mproc_guard_setid owned by root with mode 4755, run by "nobody": the kernel starts it in
// secure-execution mode (AT_SECURE 1), its guard refuses a forged flag for that reason alone, and it can
// start processes with fork but not with spawn or forkserver (MPROC_ENOTSUP, naming the reason).
TEST(PosixGuardSetuid, ASetUserIdProgramNeverActsOnTheFlags) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to make a set-user-ID root copy";
  struct passwd *pw = getpwnam("nobody");
  if (!pw) GTEST_SKIP() << "no user 'nobody'";
  std::string setpriv = find_in_path("setpriv"), runuser = find_in_path("runuser");
  if (setpriv.empty() && runuser.empty()) GTEST_SKIP() << "neither setpriv nor runuser is installed";
  char tmpl[] = "/tmp/mproc-setid-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr) << strerror(errno);
  std::string dir = tmpl, prog = dir + "/mproc_guard_setid";
  struct statvfs vfs;
  ASSERT_EQ(statvfs(dir.c_str(), &vfs), 0);
  if (vfs.f_flag & ST_NOSUID) {
    rmdir(dir.c_str());
    GTEST_SKIP() << "/tmp is mounted nosuid";
  }
  ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
  std::string bytes = read_file(MPROC_TEST_GUARD_SETID);
  ASSERT_FALSE(bytes.empty());
  write_file(prog, bytes);
  ASSERT_EQ(chown(prog.c_str(), 0, 0), 0) << strerror(errno);
  ASSERT_EQ(chmod(prog.c_str(), 04755), 0) << strerror(errno);
  std::string marker = temp_path("marker-setid"), boot = temp_path("boot");
  write_file(boot, spawn_frame(marker_ref(), marker));
  ASSERT_EQ(chmod(boot.c_str(), 0644), 0);
  auto as_nobody = [&](std::vector<std::string> args) {
    std::vector<std::string> v;
    if (!setpriv.empty())
      v = {setpriv, "--reuid=" + std::to_string(pw->pw_uid), "--regid=" + std::to_string(pw->pw_gid), "--clear-groups"};
    else
      v = {runuser, "-u", "nobody", "--"};
    v.insert(v.end(), args.begin(), args.end());
    return run(v, {}, boot.c_str());
  };
  Ran r = as_nobody({prog, "secure"});
  bool skip = false;
  std::string why;
  if (r.rc != 0 || r.code != 0) {
    skip = true;
    why = "cannot run a program as nobody here: " + r.err;
  } else if (r.out.find("AT_SECURE=0") != std::string::npos) {
    skip = true; // no_new_privs, a user namespace without the file's owner mapped, ...
    why = "the kernel did not honour the set-user-ID bit here: " + r.out;
  }
  if (!skip) {
    EXPECT_NE(r.out.find("AT_SECURE=1 euid=0 uid=" + std::to_string(pw->pw_uid)), std::string::npos) << r.out;
    for (const char *flag : {"--mproc-spawn=0", "--mproc-forkserver=0"}) {
      SCOPED_TRACE(flag);
      Ran x = as_nobody({prog, flag});
      EXPECT_EQ(x.rc, 0) << mproc_last_error();
      EXPECT_EQ(x.code, MPROC_EXIT_GUARD_REFUSED) << x.err;
      std::string prefix =
          std::string("mproc: refusing ") + (flag[8] == 's' ? "--mproc-spawn: " : "--mproc-forkserver: ");
      EXPECT_EQ(x.err.rfind(prefix, 0), 0u) << x.err;
      EXPECT_NE(x.err.find("set-user-ID"), std::string::npos) << x.err;
      EXPECT_EQ(x.err.find('\n'), x.err.size() - 1) << "one line: " << x.err;
      EXPECT_FALSE(exists(marker));
    }
    Ran st = as_nobody({prog, "start"});
    EXPECT_EQ(st.code, 0) << st.out << st.err;
    EXPECT_NE(st.out.find("fork start=0 exitcode=7\n"), std::string::npos) << st.out;
    for (const char *m : {"spawn", "forkserver"}) {
      std::string line = std::string(m) + " start=" + std::to_string(MPROC_ENOTSUP) + " ";
      size_t at = st.out.find("\n" + line);
      EXPECT_NE(at, std::string::npos) << st.out;
      if (at != std::string::npos) {
        std::string rest = st.out.substr(at + 1, st.out.find('\n', at + 1) - at - 1);
        EXPECT_NE(rest.find("set-user-ID"), std::string::npos) << rest;
      }
    }
  }
  unlink(prog.c_str());
  unlink(boot.c_str());
  rmdir(dir.c_str());
  if (skip) GTEST_SKIP() << why;
}
