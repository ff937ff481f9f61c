// The main guard on Windows (security issue 8): mproc__pal_boot_link_check (src/win32/guard.c) white-box,
// and forged "--mproc-spawn=<handle>" flags aimed at this test program end to end. Every forged flag
// comes with a well-formed bootstrap whose target (t_write_marker) would create a marker file, so a
// guard that trusted the flag would leave the marker; a control shows that the same bootstrap on a
// boot link this process made does run the target. Built and run only on Windows (wine here).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

extern "C" {
#include "bootstrap.h"
#include "internal.h"
#include "pal.h"
}
#include "guard_util.h"
#include "test_util.h"

using namespace mproc_guard_test;

namespace {

HANDLE H(mproc_os_handle h) { return (HANDLE)(intptr_t)h; }

// A fresh path in the temporary directory; the file does not exist.
std::string temp_path(const char *tag) {
  static int serial = 0;
  char dir[MAX_PATH + 1];
  DWORD n = GetTempPathA(sizeof dir, dir);
  std::string s = std::string(dir, n) + "mproc-guard-" + std::to_string(GetCurrentProcessId()) + "-" +
                  std::to_string(++serial) + "-" + tag;
  DeleteFileA(s.c_str());
  return s;
}

bool exists(const std::string &path) { return GetFileAttributesA(path.c_str()) != INVALID_FILE_ATTRIBUTES; }

// The forged bootstrap of these tests, framed as a spawned child reads it, aimed at t_write_marker(marker).
std::string framed_bootstrap(const std::string &marker) { return spawn_frame(marker_ref(), marker); }

void write_handle(HANDLE h, const std::string &data) {
  OVERLAPPED ov{}; // works on overlapped and synchronous handles alike
  ov.hEvent = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  DWORD n = 0;
  BOOL ok = WriteFile(h, data.data(), (DWORD)data.size(), nullptr, &ov);
  if (!ok && GetLastError() == ERROR_IO_PENDING) ok = TRUE;
  ASSERT_TRUE(ok) << GetLastError();
  ASSERT_TRUE(GetOverlappedResult(h, &ov, &n, TRUE)) << GetLastError();
  CloseHandle(ov.hEvent);
  ASSERT_EQ(n, data.size());
}

struct Ran {
  int rc = -1;
  int code = -1000;
  std::string out, err;
};

// Run argv (argv[0] an absolute path) with pass_fds and stdin, capturing stdout and stderr.
Ran run(std::vector<std::string> args, std::vector<mproc_os_handle> pass, mproc_os_handle in = MPROC_NO_HANDLE,
        const char *env = nullptr) {
  std::vector<const char *> argv;
  for (auto &a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  const char *extra[] = {env, nullptr};
  mproc_popen_opts o{};
  o.argv = argv.data();
  o.pass_fds = pass.data();
  o.pass_fds_count = pass.size();
  o.capture_output = true;
  if (env) o.env_extra = extra;
  if (in != MPROC_NO_HANDLE) {
    o.stdin_mode = MPROC_HANDLE;
    o.stdin_handle = in;
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

// This test program with a forged flag; "--gtest_filter=-*" makes a guard that wrongly returned run no
// test (exit 0, which fails the check for 77) rather than this whole suite again.
Ran run_self(const std::string &flag, std::vector<mproc_os_handle> pass, mproc_os_handle in = MPROC_NO_HANDLE) {
  return run({self_exe(), flag, "--gtest_filter=-*"}, pass, in);
}

#define EXPECT_REFUSED(ran, marker, why)                                                        \
  do {                                                                                          \
    EXPECT_EQ((ran).rc, 0) << mproc_last_error();                                               \
    EXPECT_EQ((ran).code, MPROC_EXIT_GUARD_REFUSED) << (ran).err;                               \
    EXPECT_NE((ran).err.find("mproc: refusing --mproc-spawn"), std::string::npos) << (ran).err; \
    EXPECT_NE((ran).err.find(why), std::string::npos) << (ran).err;                             \
    EXPECT_FALSE(exists(marker)) << "the forged target ran";                                    \
    EXPECT_EQ((ran).err.find('\n'), (ran).err.size() - 1) << "one line: " << (ran).err;         \
  } while (0)

std::string check_message(mproc_os_handle h) {
  int rc = mproc__pal_boot_link_check(h);
  return rc == 0 ? std::string("accepted") : std::to_string(rc) + " " + mproc_last_error();
}

} // namespace

// ---- mproc__pal_boot_link_check, white-box -----------------------------------------------------------

TEST(Win32BootLink, AFreshPairInThisProcessIsRefusedEitherEnd) {
  for (bool duplex : {true, false}) {
    LinkPair p(duplex);
    for (mproc_os_handle h : {p.a, p.b}) {
      EXPECT_EQ(mproc__pal_boot_link_check(h), MPROC_EPERM);
      EXPECT_NE(std::string(mproc_last_error()).find("peer is this process itself"), std::string::npos)
          << mproc_last_error();
    }
  }
}

TEST(Win32BootLink, AnonymousAndStdioPipesAreRefused) {
  HANDLE r, w;
  ASSERT_TRUE(CreatePipe(&r, &w, nullptr, 0));
  for (HANDLE h : {r, w}) {
    EXPECT_EQ(mproc__pal_boot_link_check((mproc_os_handle)(intptr_t)h), MPROC_EPERM);
    EXPECT_NE(std::string(mproc_last_error()).find("not an mproc connection pipe"), std::string::npos)
        << mproc_last_error();
  }
  CloseHandle(r);
  CloseHandle(w);
  for (bool child_writes : {true, false}) { // mproc's own stdio pipes (a Popen's) are no boot links
    mproc_os_handle parent, child;
    ASSERT_EQ(mproc__pal_pipe(child_writes, &parent, &child), 0);
    for (mproc_os_handle h : {parent, child}) {
      EXPECT_EQ(mproc__pal_boot_link_check(h), MPROC_EPERM);
      EXPECT_NE(std::string(mproc_last_error()).find("not an mproc connection pipe"), std::string::npos)
          << mproc_last_error();
    }
    mproc__pal_close(parent);
    mproc__pal_close(child);
  }
}

TEST(Win32BootLink, FilesDevicesAndNonHandlesAreRefused) {
  std::string path = temp_path("file");
  mproc_os_handle f = MPROC_NO_HANDLE, nul = MPROC_NO_HANDLE;
  ASSERT_EQ(mproc__pal_open_path(path.c_str(), true, false, &f), 0) << mproc_last_error();
  ASSERT_EQ(mproc__pal_open_devnull(false, &nul), 0);
  for (mproc_os_handle h : {f, nul}) {
    EXPECT_EQ(mproc__pal_boot_link_check(h), MPROC_EPERM);
    EXPECT_NE(std::string(mproc_last_error()).find("is not a pipe"), std::string::npos) << mproc_last_error();
  }
  mproc__pal_close(f);
  mproc__pal_close(nul);
  DeleteFileA(path.c_str());
  // a closed handle, handle 0, the pseudo handles of this process and thread, an event
  HANDLE ev = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE gone = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  CloseHandle(gone);
  for (HANDLE h : {gone, (HANDLE)0, GetCurrentProcess(), GetCurrentThread(), ev}) {
    EXPECT_EQ(mproc__pal_boot_link_check((mproc_os_handle)(intptr_t)h), MPROC_EPERM) << h;
    EXPECT_NE(std::string(mproc_last_error()).find("the boot handle"), std::string::npos) << mproc_last_error();
  }
  CloseHandle(ev);
}

// The child side of the next test: check the handle that MPROC_TEST_BOOT_LINK names and print the
// result. Skipped in an ordinary run.
TEST(Win32BootLink, ChildSide) {
  std::optional<std::string> v = mproc_test::env_get("MPROC_TEST_BOOT_LINK");
  if (!v) GTEST_SKIP() << "only in a child of CheckedInAChild";
  std::printf("[[%s]]\n", check_message((mproc_os_handle)std::strtoll(v->c_str(), nullptr, 10)).c_str());
  std::fflush(stdout);
}

// In a child of this program, which this process started: either end of a connection pipe that this
// process made is accepted (the other end is the parent, same user, same image); a stdio pipe, an
// anonymous pipe and a pipe between the child and itself are not.
TEST(Win32BootLink, CheckedInAChild) {
  auto in_child = [](mproc_os_handle h) {
    Ran r = run({self_exe(), "--gtest_filter=Win32BootLink.ChildSide"}, {h}, MPROC_NO_HANDLE,
                ("MPROC_TEST_BOOT_LINK=" + std::to_string((long long)h)).c_str());
    EXPECT_EQ(r.rc, 0) << mproc_last_error();
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    size_t open = r.out.find("[["), close = r.out.find("]]");
    return open == std::string::npos || close == std::string::npos ? "no answer: " + r.out
                                                                   : r.out.substr(open + 2, close - open - 2);
  };
  {
    LinkPair p;
    EXPECT_EQ(in_child(p.b), "accepted"); // the client end, as a spawned child gets it
    EXPECT_EQ(in_child(p.a), "accepted"); // the server end: its client is the parent too
  }
  {
    LinkPair p(false);
    EXPECT_EQ(in_child(p.b), "accepted");
  }
  mproc_os_handle parent, child;
  ASSERT_EQ(mproc__pal_pipe(false, &parent, &child), 0);
  EXPECT_NE(in_child(child).find("not an mproc connection pipe"), std::string::npos);
  mproc__pal_close(parent);
  mproc__pal_close(child);
  HANDLE r, w;
  ASSERT_TRUE(CreatePipe(&r, &w, nullptr, 0));
  EXPECT_NE(in_child((mproc_os_handle)(intptr_t)r).find("not an mproc connection pipe"), std::string::npos);
  CloseHandle(r);
  CloseHandle(w);
}

// ---- forged flags, end to end ----------------------------------------------------------------------

// The control: the forged bootstrap on a boot link that this process (the child's parent, the same
// program) made is taken, and its target runs. Without this, "no marker" below would prove nothing.
TEST(Win32GuardForged, ControlABootLinkFromTheParentRunsTheTarget) {
  std::string marker = temp_path("control");
  LinkPair p;
  write_handle(H(p.a), framed_bootstrap(marker));
  Ran r = run_self("--mproc-spawn=" + std::to_string((long long)p.b), {p.b});
  EXPECT_EQ(r.rc, 0) << mproc_last_error();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(exists(marker)) << r.err;
  DeleteFileA(marker.c_str());
}

// (a) the handle is a file (stdin too) holding the bootstrap: `prog --mproc-spawn=<h> < bootstrap`
TEST(Win32GuardForged, AFileIsRefused) {
  std::string marker = temp_path("marker-a"), boot = temp_path("boot");
  {
    std::ofstream f(boot, std::ios::binary);
    ASSERT_TRUE(f.good());
    std::string b = framed_bootstrap(marker);
    f.write(b.data(), (std::streamsize)b.size());
    ASSERT_TRUE(f.good());
  }
  mproc_os_handle h = MPROC_NO_HANDLE;
  ASSERT_EQ(mproc__pal_open_path(boot.c_str(), false, false, &h), 0);
  Ran r = run_self("--mproc-spawn=" + std::to_string((long long)h), {h}, h);
  EXPECT_REFUSED(r, marker, "is not a pipe");
  mproc__pal_close(h);
  DeleteFileA(boot.c_str());
}

// (b) the handle is an anonymous pipe of the parent (the same program, same user: only the kind of
// pipe tells), or one of mproc's stdio pipes (what a parent hands to a program it runs with Popen)
TEST(Win32GuardForged, AnAnonymousOrStdioPipeIsRefused) {
  std::string marker = temp_path("marker-b");
  HANDLE r, w;
  ASSERT_TRUE(CreatePipe(&r, &w, nullptr, 1 << 20));
  write_handle(w, framed_bootstrap(marker));
  Ran x = run_self("--mproc-spawn=" + std::to_string((long long)(intptr_t)r), {(mproc_os_handle)(intptr_t)r});
  EXPECT_REFUSED(x, marker, "not an mproc connection pipe");
  CloseHandle(r);
  CloseHandle(w);
  mproc_os_handle parent, child;
  ASSERT_EQ(mproc__pal_pipe(false, &parent, &child), 0);
  write_handle(H(parent), framed_bootstrap(marker));
  x = run_self("--mproc-spawn=" + std::to_string((long long)child), {child});
  EXPECT_REFUSED(x, marker, "not an mproc connection pipe");
  mproc__pal_close(parent);
  mproc__pal_close(child);
}

// (c) a same-user parent that is not the same executable relays a bootstrap: the helper program makes
// a pipe named like mproc's connection pipes, writes the bootstrap and starts us with its client end.
// Every check but the image passes (pipe, name, the peer is our parent, alive, older, same user), so
// the refusal names the executable.
TEST(Win32GuardForged, ARelayFromAnotherExecutableIsRefused) {
  std::string marker = temp_path("marker-c"), boot = temp_path("boot");
  {
    std::ofstream f(boot, std::ios::binary);
    ASSERT_TRUE(f.good());
    std::string b = framed_bootstrap(marker);
    f.write(b.data(), (std::streamsize)b.size());
    ASSERT_TRUE(f.good());
  }
  Ran r = run({mproc_test::helper_path(), "relay-boot", boot, self_exe(), "--gtest_filter=-*"}, {});
  EXPECT_REFUSED(r, marker, "the parent runs another executable");
  DeleteFileA(boot.c_str());
}

// A boot link that this process made, handed on to our grandchild by a middleman (the helper): the
// link's peer is not the grandchild's parent.
TEST(Win32GuardForged, ALinkFromTheGrandparentIsRefused) {
  std::string marker = temp_path("marker-g");
  LinkPair p;
  write_handle(H(p.a), framed_bootstrap(marker));
  Ran r = run({mproc_test::helper_path(), "run", self_exe(), "--mproc-spawn=" + std::to_string((long long)p.b),
               "--gtest_filter=-*"},
              {p.b});
  EXPECT_REFUSED(r, marker, "is not this process's parent");
}

// (d) malformed handle numbers, each next to a real boot link (from the parent, holding the bootstrap)
// whose number a lax parser would find in it (strtoll, a 32-bit truncation, a sign, spaces, hex).
TEST(Win32GuardForged, MalformedHandleNumbersAreRefused) {
  struct Case {
    std::string value;
    const char *why;
  };
  auto cases = [](mproc_os_handle link) {
    std::string h = std::to_string((long long)link);
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%llx", (unsigned long long)link);
    return std::vector<Case>{
        {"", "no handle number"},
        {"4294967296", "out of range"},
        {"-1", "not a decimal number"},
        {"12abc", "not a decimal number"},
        {h + "abc", "not a decimal number"},
        {std::to_string(4294967296LL + (long long)link), "out of range"},
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
    std::string marker = temp_path("marker-d");
    LinkPair p;
    Case c = cases(p.b)[i];
    SCOPED_TRACE("--mproc-spawn=" + c.value);
    write_handle(H(p.a), framed_bootstrap(marker));
    Ran r = run_self("--mproc-spawn=" + c.value, {p.b});
    EXPECT_REFUSED(r, marker, c.why);
  }
}
