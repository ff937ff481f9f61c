// White-box tests of the Windows PAL for connections and the process module (src/win32/conn.c,
// src/win32/process.c): overlapped connection ends, the zero-byte-read wait, waits over more than
// MAXIMUM_WAIT_OBJECTS objects, no lost bytes on a timed-out receive, handle leaks, finding a target
// again (and refusing a different binary), unsetenv, threads. Built and run only on Windows (wine here).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
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
}
#include "test_util.h"

namespace {

struct Pair {
  mproc_os_handle a = MPROC_NO_HANDLE, b = MPROC_NO_HANDLE;
  explicit Pair(bool duplex = true) { EXPECT_EQ(mproc__pal_conn_pair(duplex, &a, &b), 0) << mproc_last_error(); }
  ~Pair() {
    mproc__pal_close(a);
    mproc__pal_close(b);
  }
  Pair(const Pair &) = delete;
  Pair &operator=(const Pair &) = delete;
};

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

}  // namespace

TEST(Win32Conn, EndsAreOverlappedNonInheritableAndSimplexIsOneWay) {
  Pair d(true);
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
  Pair s(false);  // a reads, b writes
  DWORD flags = 0;
  ASSERT_TRUE(GetNamedPipeInfo(H(s.a), &flags, nullptr, nullptr, nullptr));
  EXPECT_TRUE(flags & PIPE_SERVER_END);
  EXPECT_NE(mproc__pal_conn_send(s.a, "x", 1, nullptr, 0), 0);  // the read end has no write access
  ASSERT_EQ(mproc__pal_conn_send(s.b, "he", 2, "llo", 3), 0) << mproc_last_error();
  EXPECT_EQ(recv_all(s.a, 5), "hello");
  char c;
  size_t n = 0;
  EXPECT_NE(mproc__pal_conn_recv(s.b, &c, 1, 0, &n), 0);  // the write end has no read access
}

TEST(Win32Conn, WaitReadyWakesOnDataAndConsumesNothing) {
  Pair p;
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
  EXPECT_EQ(avail, 3u);  // the zero-byte read took nothing
  EXPECT_EQ(recv_all(p.b, 3), "abc");
  // ready again only when more arrives
  EXPECT_EQ(mproc__pal_wait_ready(&it, 1, in_ms(0), &ready), MPROC_ETIMEDOUT);
}

TEST(Win32Conn, PeerGoneIsReadyAndEndOfFileBothWays) {
  for (bool close_server : {true, false}) {
    Pair p;
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
  Pair p;
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
  std::vector<std::unique_ptr<Pair>> pairs;
  std::vector<mproc__wait_item> items;
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(std::make_unique<Pair>());
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
  EXPECT_EQ(mproc__pal_handle_count(), before);  // helper threads, events: all gone
  ASSERT_EQ(mproc__pal_wait(&child, INT64_MAX), 0);
  mproc__pal_child_release(&child);
}

TEST(Win32Conn, WaitOnAnInvalidHandleIsAnErrorNotAHang) {
  for (size_t count : {2u, 100u}) {
    std::vector<std::unique_ptr<Pair>> pairs;
    std::vector<mproc__wait_item> items;
    for (size_t i = 0; i + 1 < count; ++i) {
      pairs.push_back(std::make_unique<Pair>());
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
    if (i == 1) before = mproc__pal_handle_count();  // after one round: the system's own first-use handles

    Pair p(i % 2 == 0);
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
    if (fn != fns[0]) {  // a DLL is named by its path; the executable is not
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
  past[8 + 7] = 0x40;  // an offset past the image
  void *fn = nullptr;
  EXPECT_EQ(mproc__pal_fn_resolve(past.data(), past.size(), &fn), MPROC_ENOENT);
  EXPECT_EQ(mproc__pal_fn_resolve(ref.data, 20, &fn), MPROC_EINVAL);  // truncated
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
  fs::path other = me.parent_path() / "mproc_pal_tests.exe";  // white-box: static, needs no DLL
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
  const char *with = getenv("MPROC_W32_REPLACE_WITH");
  ASSERT_NE(with, nullptr) << "run by Win32Spawn.ReplacedExecutableIsRefused";
  char *self = nullptr;
  ASSERT_EQ(mproc_self_exe(&self), 0);
  fs::path me(self);
  mproc_free(self);
  fs::rename(me, fs::path(me).replace_filename("replaced-old.exe"));  // a running executable can be renamed
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

TEST(Win32Proc, UnsetenvReachesTheCrtAndTheProcessEnvironment) {
  ASSERT_EQ(_putenv("MPROC_W32_UNSET=1"), 0);
  ASSERT_NE(getenv("MPROC_W32_UNSET"), nullptr);
  ASSERT_GT(GetEnvironmentVariableW(L"MPROC_W32_UNSET", nullptr, 0), 0u);
  mproc__pal_unsetenv("MPROC_W32_UNSET");
  EXPECT_EQ(getenv("MPROC_W32_UNSET"), nullptr);
  EXPECT_EQ(_wgetenv(L"MPROC_W32_UNSET"), nullptr);
  EXPECT_EQ(GetEnvironmentVariableW(L"MPROC_W32_UNSET", nullptr, 0), 0u);
  mproc__pal_unsetenv("MPROC_W32_NEVER_SET");  // harmless
}

TEST(Win32Proc, NoForkAndDetachedThreads) {
  EXPECT_FALSE(mproc__pal_fork_supported());
  int64_t pid = 99;
  EXPECT_EQ(mproc__pal_fork(&pid), MPROC_ENOTSUP);
  HANDLE ev = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  int before = mproc__pal_handle_count();
  ASSERT_EQ(mproc__pal_thread_start([](void *e) { SetEvent((HANDLE)e); }, ev), 0);
  EXPECT_EQ(WaitForSingleObject(ev, 60000), WAIT_OBJECT_0);
  EXPECT_EQ(mproc__pal_handle_count(), before);  // the thread handle was closed at once
  CloseHandle(ev);
  mproc__pal_global_lock();
  mproc__pal_global_unlock();
}
