// White-box tests of the Windows PAL for connections and the process module (src/win32/conn.c,
// src/win32/process.c): overlapped connection ends, the zero-byte-read wait, waits over more than
// MAXIMUM_WAIT_OBJECTS objects, no lost bytes on a timed-out receive, handle leaks, finding a target
// again (and refusing a different binary), unsetenv, threads, and the kill-on-close job object of
// kill_on_parent_death (src/win32/process.c). Built and run only on Windows (wine here).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

extern "C" {
#include "internal.h"
#include "pal.h"
#include "win32/spawn.h"
}
#include "guard_util.h"
#include "test_util.h"

using mproc_guard_test::LinkPair;

#if defined(__MINGW32__)
// msvcrt.dll exports it (and MSVC's <stdlib.h> declares it), but mingw-w64's headers do not.
extern "C" _CRTIMP errno_t __cdecl _wgetenv_s(size_t *, wchar_t *, size_t, const wchar_t *);
#endif

namespace {

// The kill-on-close job the PAL keeps for a child (mproc__pal_child_bind), or nullptr.
void *job_of(const mproc__child &c) { return c.os ? ((const mproc__win32_child *)c.os)->job : nullptr; }

HANDLE H(mproc_os_handle h) { return (HANDLE)(intptr_t)h; }

int64_t in_ms(int64_t ms) { return mproc__deadline_from_timeout(ms); }

std::string recv_all(mproc_os_handle h, size_t want) {
  std::string s;
  while (s.size() < want) {
    char buf[4096];
    size_t n = 0;
    if (mproc__pal_conn_recv(h, buf, sizeof buf, INT64_MAX, &n) != 0 || n == 0) break;
    s.append(buf, n);
  }
  return s;
}

int exe_function(int x) { return x + 1; }

int target_returns_0(const mproc_args *) { return 0; }

// Whether we run under wine (for its documented deviations only).
bool under_wine() {
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  return ntdll && GetProcAddress(ntdll, "wine_get_version") != nullptr;
}

constexpr DWORD kJobFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK;

// This process's job as it sees it: 0 if it is in no job, else 1 | the kill-on-close and
// silent-breakaway flags of its innermost job (QueryInformationJobObject(NULL) reads that one).
int own_job_state() {
  BOOL in = FALSE;
  if (!IsProcessInJob(GetCurrentProcess(), nullptr, &in) || !in) return 0;
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION li{};
  int state = 1;
  if (QueryInformationJobObject(nullptr, JobObjectExtendedLimitInformation, &li, sizeof li, nullptr))
    state |= (int)(li.BasicLimitInformation.LimitFlags & kJobFlags);
  return state;
}

// The target that reports own_job_state() as its exit code.
int t_report_job(const mproc_args *) { return own_job_state(); }

// own_job_state() of a child started through the public API with these options; -1 if it failed.
int child_job_state(mproc_option kill_on_parent_death, bool daemon) {
  mproc_process *p = nullptr;
  mproc_process_opts o{};
  o.target = t_report_job;
  o.daemon = daemon;
  o.kill_on_parent_death = kill_on_parent_death;
  int seen = -1;
  if (mproc_process_create(&p, &o) != 0) return -1;
  bool ok = mproc_process_start(p) == 0;
  EXPECT_TRUE(ok) << mproc_last_error();
  if (ok && mproc_process_join(p, MPROC_INFINITE) == 0) {
    EXPECT_TRUE(mproc_process_exitcode(p, &seen));
  }
  mproc_process_destroy(p);
  return seen;
}

// A started mproc__child of the helper, killed and released at scope exit.
struct Helper {
  mproc__child c{};
  Helper() { c.handle = MPROC_NO_HANDLE; }
  int start(std::vector<const char *> args, mproc_os_handle in = MPROC_NO_HANDLE,
            mproc_os_handle out = MPROC_NO_HANDLE) {
    static std::string helper = mproc_test::helper_path();
    args.insert(args.begin(), helper.c_str());
    args.push_back(nullptr);
    mproc__spawn_req req{};
    req.argv = args.data();
    req.stdio[0] = in;
    req.stdio[1] = out;
    req.stdio[2] = MPROC_NO_HANDLE;
    return mproc__pal_spawn(&req, &c);
  }
  ~Helper() {
    if (c.handle != MPROC_NO_HANDLE && !c.reaped) {
      mproc__pal_signal(&c, MPROC_SIGKILL);
      mproc__pal_wait(&c, INT64_MAX);
    }
    mproc__pal_child_release(&c);
  }
  Helper(const Helper &) = delete;
  Helper &operator=(const Helper &) = delete;
};

// A handle of ours to a process (opened by id, or a copy of another handle), terminated if the
// process still runs and closed at scope exit, so that a failed test leaves nothing running.
struct Opened {
  HANDLE h = nullptr;
  explicit Opened(DWORD pid)
      : h(OpenProcess(SYNCHRONIZE | PROCESS_TERMINATE | PROCESS_QUERY_INFORMATION, FALSE, pid)) {}
  explicit Opened(mproc_os_handle process) {
    if (!DuplicateHandle(GetCurrentProcess(), H(process), GetCurrentProcess(), &h,
                         SYNCHRONIZE | PROCESS_TERMINATE | PROCESS_QUERY_INFORMATION, FALSE, 0))
      h = nullptr;
  }
  ~Opened() {
    if (!h) return;
    TerminateProcess(h, 1);
    WaitForSingleObject(h, 60000);
    CloseHandle(h);
  }
  Opened(const Opened &) = delete;
  Opened &operator=(const Opened &) = delete;
};

// In a spawned child (the middle of three): start the helper as a plain child, which has no watchdog
// of its own, put it in a kill-on-close job when the argument is "bind", report its pid on the
// connection, then wait (until the parent kills us, or closes its end).
int t_hold_a_plain_child(const mproc_args *a) {
  bool bind = a->size == 4 && std::memcmp(a->data, "bind", 4) == 0;
  mproc_os_handle nul = MPROC_NO_HANDLE;
  if (mproc__pal_open_devnull(true, &nul) != 0) return 10;
  std::string helper = mproc_test::helper_path();
  const char *argv[] = {helper.c_str(), "sleep", "600000", nullptr};
  mproc__spawn_req req{};
  req.argv = argv;
  req.stdio[0] = req.stdio[1] = req.stdio[2] = nul; // nothing of ours (ctest's pipe) is held by it
  mproc__child child{};
  int rc = mproc__pal_spawn(&req, &child);
  mproc__pal_close(nul);
  if (rc != 0) return 11;
  if (bind) mproc__pal_child_bind(&child);
  std::string pid = std::to_string(child.pid);
  if (bind && !job_of(child)) pid = "no job";
  mproc_connection *c = a->connections[0];
  if (mproc_connection_send_bytes(c, pid.data(), pid.size(), 0, MPROC_ALL) == 0) {
    char *m = nullptr;
    size_t n = 0;
    if (mproc_connection_recv_bytes(c, 0, MPROC_INFINITE, &m, &n) == 0) mproc_free(m);
  }
  mproc__pal_signal(&child, MPROC_SIGKILL); // not killed with us: the parent's test is over
  mproc__pal_wait(&child, INT64_MAX);
  mproc__pal_child_release(&child);
  return 0;
}

} // namespace

TEST(Win32Conn, EndsAreOverlappedNonInheritableAndSimplexIsOneWay) {
  LinkPair d(true);
  for (auto h : {d.a, d.b}) EXPECT_TRUE(mproc__pal_get_cloexec(h));
  // An overlapped read on an empty pipe is pending: the handle is overlapped (a synchronous one blocks).
  for (auto h : {d.a, d.b}) {
    OVERLAPPED ov{};
    ov.hEvent = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    char c;
    EXPECT_FALSE(ReadFile(H(h), &c, 1, nullptr, &ov));
    EXPECT_EQ(GetLastError(), (DWORD)ERROR_IO_PENDING);
    CancelIoEx(H(h), &ov);
    DWORD n;
    EXPECT_FALSE(GetOverlappedResult(H(h), &ov, &n, TRUE));
    EXPECT_EQ(GetLastError(), (DWORD)ERROR_OPERATION_ABORTED);
    CloseHandle(ov.hEvent);
  }
  LinkPair s(false); // a reads, b writes
  DWORD flags = 0;
  ASSERT_TRUE(GetNamedPipeInfo(H(s.a), &flags, nullptr, nullptr, nullptr));
  EXPECT_TRUE(flags & PIPE_SERVER_END);
  EXPECT_NE(mproc__pal_conn_send(s.a, "x", 1, nullptr, 0), 0); // the read end has no write access
  ASSERT_EQ(mproc__pal_conn_send(s.b, "he", 2, "llo", 3), 0) << mproc_last_error();
  EXPECT_EQ(recv_all(s.a, 5), "hello");
  char c;
  size_t n = 0;
  EXPECT_NE(mproc__pal_conn_recv(s.b, &c, 1, 0, &n), 0); // the write end has no read access
}

TEST(Win32Conn, WaitReadyWakesOnDataAndConsumesNothing) {
  LinkPair p;
  mproc__wait_item it = {p.b, MPROC__WAIT_CONN};
  bool ready = true;
  EXPECT_EQ(mproc__pal_wait_ready(&it, 1, in_ms(0), &ready), MPROC_ETIMEDOUT);
  EXPECT_FALSE(ready);
  EXPECT_EQ(mproc__pal_wait_ready(&it, 1, in_ms(30), &ready), MPROC_ETIMEDOUT);
  std::thread t([&] { EXPECT_EQ(mproc__pal_conn_send(p.a, "abc", 3, nullptr, 0), 0); });
  ASSERT_EQ(mproc__pal_wait_ready(&it, 1, INT64_MAX, &ready), 0) << mproc_last_error();
  t.join();
  EXPECT_TRUE(ready);
  DWORD avail = 0;
  ASSERT_TRUE(PeekNamedPipe(H(p.b), nullptr, 0, nullptr, &avail, nullptr));
  EXPECT_EQ(avail, 3u); // the zero-byte read took nothing
  EXPECT_EQ(recv_all(p.b, 3), "abc");
  // ready again only when more arrives
  EXPECT_EQ(mproc__pal_wait_ready(&it, 1, in_ms(0), &ready), MPROC_ETIMEDOUT);
}

TEST(Win32Conn, PeerGoneIsReadyAndEndOfFileBothWays) {
  for (bool close_server : {true, false}) {
    LinkPair p;
    mproc_os_handle gone = close_server ? p.a : p.b, kept = close_server ? p.b : p.a;
    mproc__pal_close(gone);
    (close_server ? p.a : p.b) = MPROC_NO_HANDLE;
    mproc__wait_item it = {kept, MPROC__WAIT_CONN};
    bool ready = false;
    ASSERT_EQ(mproc__pal_wait_ready(&it, 1, in_ms(5000), &ready), 0);
    EXPECT_TRUE(ready);
    char buf[8];
    size_t n = 99;
    EXPECT_EQ(mproc__pal_conn_recv(kept, buf, sizeof buf, INT64_MAX, &n), 0);
    EXPECT_EQ(n, 0u);
    EXPECT_EQ(mproc__pal_conn_send(kept, "x", 1, nullptr, 0), MPROC_EPIPE);
  }
}

TEST(Win32Conn, TimedOutReceiveLosesNoBytes) {
  LinkPair p;
  char buf[64];
  size_t n = 7;
  EXPECT_EQ(mproc__pal_conn_recv(p.b, buf, sizeof buf, in_ms(20), &n), MPROC_ETIMEDOUT);
  EXPECT_EQ(n, 0u);
  // Many short receives racing a writer: every byte arrives exactly once, in order.
  std::string sent;
  for (int i = 0; i < 2000; ++i) sent += std::to_string(i) + ",";
  std::thread t([&] {
    for (size_t off = 0; off < sent.size(); off += 7)
      EXPECT_EQ(mproc__pal_conn_send(p.a, sent.data() + off, std::min<size_t>(7, sent.size() - off), nullptr, 0), 0);
  });
  std::string got;
  while (got.size() < sent.size()) {
    size_t k = 0;
    int rc = mproc__pal_conn_recv(p.b, buf, 5, in_ms(0), &k);
    ASSERT_TRUE(rc == 0 || rc == MPROC_ETIMEDOUT) << mproc_last_error();
    if (rc == 0) {
      ASSERT_GT(k, 0u);
      got.append(buf, k);
    }
  }
  t.join();
  EXPECT_EQ(got, sent);
}

TEST(Win32Conn, WaitOverMoreThanSixtyFourObjects) {
  constexpr int kPairs = 150;
  std::vector<std::unique_ptr<LinkPair>> pairs;
  std::vector<mproc__wait_item> items;
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(std::make_unique<LinkPair>());
    items.push_back({pairs.back()->b, MPROC__WAIT_CONN});
  }
  // and a process sentinel: a child that waits for us
  mproc__child child{};
  std::string helper = mproc_test::helper_path();
  const char *argv[] = {helper.c_str(), "sleep", "60000", nullptr};
  mproc__spawn_req req{};
  req.argv = argv;
  req.stdio[0] = req.stdio[1] = req.stdio[2] = MPROC_NO_HANDLE;
  ASSERT_EQ(mproc__pal_spawn(&req, &child), 0) << mproc_last_error();
  items.push_back({mproc__pal_sentinel(&child, MPROC_NO_HANDLE), MPROC__WAIT_SENTINEL});

  int before = mproc__pal_handle_count();
  std::unique_ptr<bool[]> ready(new bool[items.size()]);
  bool *r = ready.get();
  EXPECT_EQ(mproc__pal_wait_ready(items.data(), items.size(), in_ms(30), r), MPROC_ETIMEDOUT);
  std::thread t([&] { EXPECT_EQ(mproc__pal_conn_send(pairs[137]->a, "x", 1, nullptr, 0), 0); });
  ASSERT_EQ(mproc__pal_wait_ready(items.data(), items.size(), INT64_MAX, r), 0) << mproc_last_error();
  t.join();
  for (size_t i = 0; i < items.size(); ++i) EXPECT_EQ(r[i], i == 137) << i;
  char c;
  size_t n = 0;
  ASSERT_EQ(mproc__pal_conn_recv(pairs[137]->b, &c, 1, INT64_MAX, &n), 0);
  // the sentinel, beyond the first groups
  ASSERT_EQ(mproc__pal_signal(&child, MPROC_SIGKILL), 0);
  ASSERT_EQ(mproc__pal_wait_ready(items.data(), items.size(), INT64_MAX, r), 0) << mproc_last_error();
  for (size_t i = 0; i < items.size(); ++i) EXPECT_EQ(r[i], i == (size_t)kPairs) << i;
  EXPECT_EQ(mproc__pal_handle_count(), before); // helper threads, events: all gone
  ASSERT_EQ(mproc__pal_wait(&child, INT64_MAX), 0);
  mproc__pal_child_release(&child);
}

TEST(Win32Conn, WaitOnAnInvalidHandleIsAnErrorNotAHang) {
  for (size_t count : {2u, 100u}) {
    std::vector<std::unique_ptr<LinkPair>> pairs;
    std::vector<mproc__wait_item> items;
    for (size_t i = 0; i + 1 < count; ++i) {
      pairs.push_back(std::make_unique<LinkPair>());
      items.push_back({pairs.back()->b, MPROC__WAIT_CONN});
    }
    // a value far above any handle this process has (a closed handle's value would soon be reused)
    HANDLE bogus = (HANDLE)(intptr_t)0x0FFFFFF0;
    ASSERT_FALSE(mproc__pal_handle_valid((mproc_os_handle)(intptr_t)bogus));
    items.push_back({(mproc_os_handle)(intptr_t)bogus, MPROC__WAIT_SENTINEL});
    std::unique_ptr<bool[]> ready(new bool[items.size()]);
    int rc = mproc__pal_wait_ready(items.data(), items.size(), INT64_MAX, ready.get());
    EXPECT_NE(rc, 0) << count;
    EXPECT_NE(rc, MPROC_ETIMEDOUT) << count;
    EXPECT_NE(std::string(mproc_last_error()).find("WaitForMultipleObjects"), std::string::npos) << mproc_last_error();
  }
}

TEST(Win32Conn, NoHandleLeaks) {
  int before = -1;
  for (int i = 0; i < 41; ++i) {
    if (i == 1) before = mproc__pal_handle_count(); // after one round: the system's own first-use handles

    LinkPair p(i % 2 == 0);
    char buf[16];
    size_t n = 0;
    EXPECT_EQ(mproc__pal_conn_recv(p.a, buf, sizeof buf, in_ms(0), &n), MPROC_ETIMEDOUT);
    mproc__wait_item it = {p.a, MPROC__WAIT_CONN};
    bool ready;
    EXPECT_EQ(mproc__pal_wait_ready(&it, 1, in_ms(0), &ready), MPROC_ETIMEDOUT);
    EXPECT_EQ(mproc__pal_conn_send(p.b, "abc", 3, "de", 2), 0);
    EXPECT_EQ(mproc__pal_wait_ready(&it, 1, INT64_MAX, &ready), 0);
    EXPECT_EQ(recv_all(p.a, 5), "abcde");
  }
  EXPECT_EQ(mproc__pal_handle_count(), before);
}

// ---- finding a target again ----------------------------------------------------------------------

TEST(Win32Fn, FunctionsOfTheExecutableAndOfADllRoundTrip) {
  void *fns[] = {reinterpret_cast<void *>(&exe_function),
                 reinterpret_cast<void *>(GetProcAddress(GetModuleHandleW(L"kernel32.dll"), "GetTickCount"))};
  for (void *fn : fns) {
    ASSERT_NE(fn, nullptr);
    mproc__buf ref = {nullptr, 0, 0};
    ASSERT_EQ(mproc__pal_fn_locate(fn, &ref), 0) << mproc_last_error();
    void *back = nullptr;
    ASSERT_EQ(mproc__pal_fn_resolve(ref.data, ref.len, &back), 0) << mproc_last_error();
    EXPECT_EQ(back, fn);
    std::string r(ref.data, ref.len);
    if (fn != fns[0]) { // a DLL is named by its path; the executable is not
      EXPECT_NE(r.find("kernel32.dll"), std::string::npos);
    }
    mproc__buf_free(&ref);
  }
}

TEST(Win32Fn, ADifferentBinaryIsRefused) {
  mproc__buf ref = {nullptr, 0, 0};
  ASSERT_EQ(mproc__pal_fn_locate(reinterpret_cast<void *>(&exe_function), &ref), 0) << mproc_last_error();
  // words: is_main, offset, image hash, file identity x4
  for (size_t word : {2u, 3u, 4u, 5u, 6u}) {
    std::string bad(ref.data, ref.len);
    bad[word * 8] ^= 1;
    void *fn = nullptr;
    EXPECT_EQ(mproc__pal_fn_resolve(bad.data(), bad.size(), &fn), MPROC_ENOENT) << word;
    EXPECT_NE(std::string(mproc_last_error()).find("different binary"), std::string::npos) << mproc_last_error();
  }
  std::string past(ref.data, ref.len);
  past[8 + 7] = 0x40; // an offset past the image
  void *fn = nullptr;
  EXPECT_EQ(mproc__pal_fn_resolve(past.data(), past.size(), &fn), MPROC_ENOENT);
  EXPECT_EQ(mproc__pal_fn_resolve(ref.data, 20, &fn), MPROC_EINVAL); // truncated
  mproc__buf_free(&ref);
}

TEST(Win32Fn, OutsideAnyModuleAndMissingDll) {
  std::vector<char> heap(64);
  mproc__buf ref = {nullptr, 0, 0};
  EXPECT_EQ(mproc__pal_fn_locate(heap.data(), &ref), MPROC_ENOENT);
  EXPECT_NE(std::string(mproc_last_error()).find("module"), std::string::npos) << mproc_last_error();
  EXPECT_EQ(ref.len, 0u);
  // a reference to a DLL that is not there
  std::string missing(7 * 8, '\0');
  missing += "C:\\no\\such\\dir\\mproc-missing.dll";
  void *fn = nullptr;
  EXPECT_EQ(mproc__pal_fn_resolve(missing.data(), missing.size(), &fn), MPROC_ENOENT);
  EXPECT_NE(std::string(mproc_last_error()).find("cannot load module"), std::string::npos) << mproc_last_error();
}

// End to end: the executable is replaced on disk while the parent runs, so the spawned child is another
// program. A copy of this test binary renames itself and puts another mproc test program (with the main
// guard) in its place, then starts a process (the inner test below). Both processes stat the same new
// file, so only the image identity can tell: the start must fail in the parent with "different binary".
TEST(Win32Spawn, ReplacedExecutableIsRefused) {
  namespace fs = std::filesystem;
  char *self = nullptr;
  ASSERT_EQ(mproc_self_exe(&self), 0);
  fs::path me(self);
  mproc_free(self);
  fs::path other = me.parent_path() / "mproc_pal_tests.exe"; // white-box: static, needs no DLL
  ASSERT_TRUE(fs::exists(other)) << other;
  fs::path dir = fs::temp_directory_path() / ("mproc-replaced-" + std::to_string(mproc_getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::path copy = dir / "replaced.exe";
  fs::copy_file(me, copy);
  std::string c = copy.string(), o = other.string();
  const char *argv[] = {c.c_str(), "--gtest_filter=Win32Spawn.DISABLED_ReplacedExecutableInner",
                        "--gtest_also_run_disabled_tests", nullptr};
  const char *env[] = {nullptr, nullptr};
  std::string envvar = "MPROC_W32_REPLACE_WITH=" + o;
  env[0] = envvar.c_str();
  mproc_completed r{};
  mproc_popen_opts opts{};
  opts.argv = argv;
  opts.env_extra = env;
  opts.capture_output = true;
  ASSERT_EQ(mproc_run(&opts, 120000, &r), 0) << mproc_last_error();
  std::string out = r.stdout_data ? r.stdout_data : "";
  EXPECT_EQ(r.returncode, 0) << out;
  EXPECT_NE(out.find("[  PASSED  ] 1 test"), std::string::npos) << out;
  mproc_completed_free(&r);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST(Win32Spawn, DISABLED_ReplacedExecutableInner) {
  namespace fs = std::filesystem;
  std::optional<std::string> with_env = mproc_test::env_get("MPROC_W32_REPLACE_WITH");
  ASSERT_TRUE(with_env.has_value()) << "run by Win32Spawn.ReplacedExecutableIsRefused";
  const char *with = with_env->c_str();
  char *self = nullptr;
  ASSERT_EQ(mproc_self_exe(&self), 0);
  fs::path me(self);
  mproc_free(self);
  fs::rename(me, fs::path(me).replace_filename("replaced-old.exe")); // a running executable can be renamed
  fs::copy_file(with, me);
  mproc_process *p = nullptr;
  mproc_process_opts o{};
  o.target = target_returns_0;
  ASSERT_EQ(mproc_process_create(&p, &o), 0);
  EXPECT_EQ(mproc_process_start(p), MPROC_ENOENT);
  std::string msg = mproc_last_error();
  std::printf("inner: start said: %s\n", msg.c_str());
  EXPECT_NE(msg.find("different binary"), std::string::npos) << msg;
  mproc_process_destroy(p);
}

// ---- the rest --------------------------------------------------------------------------------------

// The target that reports the child's error mode as its exit code.
int t_report_error_mode(const mproc_args *) {
  UINT mode = SetErrorMode(0);
  SetErrorMode(mode);
  return (int)mode;
}

TEST(Win32Proc, SpawnedTestChildrenTurnOffCrashDialogs) {
  // A spawned child re-executes this test program, whose main turns crash dialogs off before the main
  // guard runs the target (helpers/quiet_crashes.h); GoogleTest's own SetErrorMode never runs there.
  mproc_process *p = nullptr;
  mproc_process_opts o{};
  o.target = t_report_error_mode;
  ASSERT_EQ(mproc_process_create(&p, &o), 0) << mproc_last_error();
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  ASSERT_EQ(mproc_process_join(p, MPROC_INFINITE), 0) << mproc_last_error();
  int mode = 0;
  ASSERT_TRUE(mproc_process_exitcode(p, &mode));
  const int want = SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX | SEM_NOOPENFILEERRORBOX;
  EXPECT_EQ(mode & want, want) << std::hex << mode;
  mproc_process_destroy(p);
}

TEST(Win32Proc, UnsetenvReachesTheCrtAndTheProcessEnvironment) {
  // the C runtime's narrow and wide copies, read without the deprecated getenv / _wgetenv
  auto crt_wide_set = [](const wchar_t *name) {
    size_t n = 0;
    errno_t e = _wgetenv_s(&n, nullptr, 0, name); // the size query: 0 (UCRT) or ERANGE (wine's msvcrt)
    return (e == 0 || e == ERANGE) && n > 0;
  };
  ASSERT_EQ(_putenv("MPROC_W32_UNSET=1"), 0);
  ASSERT_EQ(mproc_test::crt_env_get("MPROC_W32_UNSET"), std::optional<std::string>("1"));
  ASSERT_TRUE(crt_wide_set(L"MPROC_W32_UNSET"));
  ASSERT_GT(GetEnvironmentVariableW(L"MPROC_W32_UNSET", nullptr, 0), 0u);
  mproc__pal_unsetenv("MPROC_W32_UNSET");
  EXPECT_EQ(mproc_test::crt_env_get("MPROC_W32_UNSET"), std::nullopt);
  EXPECT_FALSE(crt_wide_set(L"MPROC_W32_UNSET"));
  EXPECT_EQ(GetEnvironmentVariableW(L"MPROC_W32_UNSET", nullptr, 0), 0u);
  mproc__pal_unsetenv("MPROC_W32_NEVER_SET"); // harmless
}

TEST(Win32Proc, NoForkAndDetachedThreads) {
  EXPECT_FALSE(mproc__pal_fork_supported());
  int64_t pid = 99;
  EXPECT_EQ(mproc__pal_fork(&pid), MPROC_ENOTSUP);
  HANDLE ev = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  int before = mproc__pal_handle_count();
  ASSERT_EQ(mproc__pal_thread_start([](void *e) { SetEvent((HANDLE)e); }, ev), 0);
  EXPECT_EQ(WaitForSingleObject(ev, 60000), WAIT_OBJECT_0);
  EXPECT_EQ(mproc__pal_handle_count(), before); // the thread handle was closed at once
  CloseHandle(ev);
  mproc__pal_global_lock();
  mproc__pal_global_unlock();
}

// ---- kill on parent death: the kill-on-close job object ------------------------------------------

// mproc__pal_child_bind puts the child, and only the child, in a job of its own whose only handle the
// parent holds (not inheritable); mproc__pal_child_release closes it, which kills a child that still
// runs, and not the child's own children (silent breakaway).
TEST(Win32Job, BindPutsTheChildAloneInAJobThatReleaseCloses) {
  mproc_os_handle in_parent, in_child, out_parent, out_child;
  ASSERT_EQ(mproc__pal_pipe(false, &in_parent, &in_child), 0) << mproc_last_error();
  ASSERT_EQ(mproc__pal_pipe(true, &out_parent, &out_child), 0) << mproc_last_error();
  Helper h;
  // waits for a byte on stdin, so that its own child is started only once it is in the job
  int rc = h.start({"read", "1", "grandchild", "600000", "sleep", "600000"}, in_child, out_child);
  mproc__pal_close(in_child);
  mproc__pal_close(out_child);
  ASSERT_EQ(rc, 0) << mproc_last_error();
  EXPECT_EQ(job_of(h.c), nullptr);
  mproc__pal_child_bind(&h.c);
  ASSERT_NE(job_of(h.c), nullptr) << "AssignProcessToJobObject failed";
  HANDLE job = (HANDLE)job_of(h.c);
  DWORD hflags = 0;
  ASSERT_TRUE(GetHandleInformation(job, &hflags));
  EXPECT_EQ(hflags & HANDLE_FLAG_INHERIT, 0u) << "the job handle must not be inheritable";
  BOOL in = FALSE;
  ASSERT_TRUE(IsProcessInJob(H(h.c.handle), job, &in));
  EXPECT_TRUE(in);
  mproc__pal_child_bind(&h.c); // a second bind keeps the job
  EXPECT_EQ(job_of(h.c), job);

  size_t n = 0;
  ASSERT_EQ(mproc__pal_write(in_parent, "g", 1, in_ms(60000), &n), 0) << mproc_last_error();
  std::string line;
  while (line.find('\n') == std::string::npos) {
    char buf[64];
    ASSERT_EQ(mproc__pal_read(out_parent, buf, sizeof buf, in_ms(60000), &n), 0) << mproc_last_error();
    ASSERT_GT(n, 0u) << "the helper ended before naming its child: " << line;
    line.append(buf, n);
  }
  Opened grandchild((DWORD)std::strtoul(line.c_str(), nullptr, 10));
  ASSERT_NE(grandchild.h, nullptr) << line;
  in = TRUE;
  ASSERT_TRUE(IsProcessInJob(grandchild.h, job, &in));
  EXPECT_FALSE(in) << "the child's own child must not be in its job (silent breakaway)";

  Opened child(h.c.handle); // our own handle to the child: release closes the mproc__child's
  ASSERT_NE(child.h, nullptr);
  mproc__pal_child_release(&h.c);
  EXPECT_EQ(job_of(h.c), nullptr);
  EXPECT_EQ(h.c.handle, MPROC_NO_HANDLE);
  EXPECT_EQ(WaitForSingleObject(child.h, 60000), WAIT_OBJECT_0) << "closing the job did not kill the child";
  // the grandchild was not killed with it: it still runs, and ends with the code we give it
  EXPECT_EQ(WaitForSingleObject(grandchild.h, 0), (DWORD)WAIT_TIMEOUT);
  ASSERT_TRUE(TerminateProcess(grandchild.h, 77));
  ASSERT_EQ(WaitForSingleObject(grandchild.h, 60000), WAIT_OBJECT_0);
  DWORD code = 0;
  ASSERT_TRUE(GetExitCodeProcess(grandchild.h, &code));
  EXPECT_EQ(code, 77u);
  mproc__pal_close(in_parent);
  mproc__pal_close(out_parent);
}

// Best effort: a child that cannot be put in a job (here: one that has already ended) is left without
// one, and no error is reported.
TEST(Win32Job, BindFailureLeavesNoJob) {
  Helper h;
  ASSERT_EQ(h.start({"exit", "0"}), 0) << mproc_last_error();
  ASSERT_EQ(mproc__pal_wait(&h.c, INT64_MAX), 0) << mproc_last_error();
  mproc_clear_error();
  mproc__pal_child_bind(&h.c); // AssignProcessToJobObject: ERROR_ACCESS_DENIED for an ended process
  EXPECT_EQ(job_of(h.c), nullptr);
  EXPECT_STREQ(mproc_last_error(), "");
  int before = mproc__pal_handle_count();
  mproc__pal_child_bind(&h.c);
  EXPECT_EQ(mproc__pal_handle_count(), before) << "the job of a failed bind must be closed";
}

// The job's limits: kill on close, and silent breakaway. Wine 8.0 applies both limits (the other
// tests here see their effects) but its QueryInformationJobObject returns zeroed limit information
// (a stub in ntdll), so under wine the flags themselves can only be read where wine reports them.
TEST(Win32Job, JobLimitsAreKillOnCloseAndSilentBreakaway) {
  Helper h;
  ASSERT_EQ(h.start({"sleep", "600000"}), 0) << mproc_last_error();
  mproc__pal_child_bind(&h.c);
  ASSERT_NE(job_of(h.c), nullptr);
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION li{};
  ASSERT_TRUE(
      QueryInformationJobObject((HANDLE)job_of(h.c), JobObjectExtendedLimitInformation, &li, sizeof li, nullptr));
  DWORD flags = li.BasicLimitInformation.LimitFlags;
  // and as the child sees its own job, started through the public API
  int seen = child_job_state(MPROC_OPTION_ON, false);
  ASSERT_GE(seen, 0);
  EXPECT_EQ(seen & 1, 1) << "the child is in no job";
  if (under_wine() && flags == 0 && seen == 1)
    GTEST_SKIP() << "wine's QueryInformationJobObject returns zeroed job limits (a stub): the flags cannot be read";
  EXPECT_EQ(flags & kJobFlags, kJobFlags) << std::hex << flags;
  EXPECT_EQ(seen, (int)kJobFlags | 1) << std::hex << seen;
}

// Through the public API: with kill_on_parent_death on (explicitly, or by default for a daemon) the
// child runs in a job of ours; with it off the child is in no job of ours (it sees what we see, or
// no job when ours lets children break away).
TEST(Win32Job, KillOnParentDeathPutsTheChildInAJobAndOffDoesNot) {
  int mine = own_job_state();
  struct Case {
    mproc_option option;
    bool daemon, want_job;
  } cases[] = {{MPROC_OPTION_ON, false, true},
               {MPROC_OPTION_DEFAULT, true, true},
               {MPROC_OPTION_OFF, false, false},
               {MPROC_OPTION_DEFAULT, false, false},
               {MPROC_OPTION_OFF, true, false}};
  for (const Case &c : cases) {
    SCOPED_TRACE("option " + std::to_string((int)c.option) + (c.daemon ? ", daemon" : ""));
    int seen = child_job_state(c.option, c.daemon);
    ASSERT_GE(seen, 0);
    if (c.want_job) {
      EXPECT_EQ(seen & 1, 1) << "not in a job";
    } else {
      EXPECT_TRUE(seen == mine || seen == 0) << std::hex << "child " << seen << ", parent " << mine;
    }
  }
}

// The job kills by itself: the middle process puts a plain helper (no watchdog in it, no link to
// anyone) in a job and is then killed hard; the system closes the job's only handle and the helper
// dies. The control, without the job, shows that nothing else kills it.
TEST(Win32Job, APlainChildInTheJobDiesWhenItsParentIsKilledHard) {
  for (bool bind : {true, false}) {
    SCOPED_TRACE(bind ? "in a job" : "control: no job");
    mproc_connection *a = nullptr, *b = nullptr;
    ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
    mproc_process *mid = nullptr;
    mproc_process_opts o{};
    o.target = t_hold_a_plain_child;
    o.arg = bind ? "bind" : "none";
    o.arg_size = 4;
    mproc_connection *conns[] = {b};
    o.connections = conns;
    o.connection_count = 1;
    o.kill_on_parent_death = MPROC_OPTION_OFF; // the middle itself: nothing to do with what is tested
    ASSERT_EQ(mproc_process_create(&mid, &o), 0);
    ASSERT_EQ(mproc_process_start(mid), 0) << mproc_last_error();
    char *m = nullptr;
    size_t n = 0;
    ASSERT_EQ(mproc_connection_recv_bytes(a, 0, 60000, &m, &n), 0) << mproc_last_error();
    std::string pid(m, n);
    mproc_free(m);
    Opened plain((DWORD)std::strtoul(pid.c_str(), nullptr, 10));
    ASSERT_NE(plain.h, nullptr) << pid;
    ASSERT_EQ(mproc_process_kill(mid), 0); // TerminateProcess: no cleanup of any kind in the middle
    ASSERT_EQ(mproc_process_join(mid, MPROC_INFINITE), 0);
    if (bind) {
      EXPECT_EQ(WaitForSingleObject(plain.h, 60000), WAIT_OBJECT_0) << "the job did not kill the plain child";
    } else {
      EXPECT_EQ(WaitForSingleObject(plain.h, 0), (DWORD)WAIT_TIMEOUT);
      ASSERT_TRUE(TerminateProcess(plain.h, 77));
      ASSERT_EQ(WaitForSingleObject(plain.h, 60000), WAIT_OBJECT_0);
      DWORD code = 0;
      ASSERT_TRUE(GetExitCodeProcess(plain.h, &code));
      EXPECT_EQ(code, 77u) << "the plain child was ended by something else than us";
    }
    mproc_process_destroy(mid);
    mproc_connection_destroy(a);
    mproc_connection_destroy(b);
  }
}
