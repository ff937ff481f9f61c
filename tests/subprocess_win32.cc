// White-box tests of the Windows subprocess PAL (src/win32/pipe.c, src/win32/spawn.c): command-line
// quoting proved by round trip through CommandLineToArgvW (and through a real child), the environment
// block, handle inheritance, exact accounting of cancelled pipe I/O, and spawn/wait/signal. Built and run
// only on Windows (under wine here).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <shellapi.h>

extern "C" {
#include "internal.h"
#include "pal.h"
#include "win32/spawn.h"
}
#include "test_util.h"

using mproc_test::helper_path;
using mproc_test::is_pattern;
namespace fs = std::filesystem;

namespace {

// ---- helpers -------------------------------------------------------------------------------------

std::string narrow(const std::wstring &w) {
  if (w.empty()) return std::string();
  int n = WideCharToMultiByte(CP_UTF8, 0, w.data(), (int)w.size(), nullptr, 0, nullptr, nullptr);
  std::string s((size_t)n, '\0');
  WideCharToMultiByte(CP_UTF8, 0, w.data(), (int)w.size(), &s[0], n, nullptr, nullptr);
  return s;
}

// Whether we run under wine (for its documented deviations only).
bool under_wine() {
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  return ntdll && GetProcAddress(ntdll, "wine_get_version") != nullptr;
}

// Quote argv with the PAL, split it back with CommandLineToArgvW, and compare.
::testing::AssertionResult round_trips(const std::vector<std::wstring> &args) {
  std::vector<const wchar_t *> ptrs;
  for (auto &a : args) ptrs.push_back(a.c_str());
  ptrs.push_back(nullptr);
  wchar_t *cmd = nullptr;
  int rc = mproc__win32_quote_args(ptrs.data(), &cmd);
  if (rc != 0) return ::testing::AssertionFailure() << "quote_args failed: " << mproc_last_error();
  std::wstring line(cmd);
  free(cmd);
  int argc = 0;
  wchar_t **back = CommandLineToArgvW(line.c_str(), &argc);
  if (!back) return ::testing::AssertionFailure() << "CommandLineToArgvW failed";
  std::vector<std::wstring> got(back, back + argc);
  LocalFree(back);
  if (got != args) {
    auto show = [](const std::vector<std::wstring> &v) {
      std::string s;
      for (auto &a : v) s += "[" + narrow(a) + "] ";
      return s;
    };
    return ::testing::AssertionFailure() << "command line [" << narrow(line) << "]\n  gave " << show(got) << "\n  want "
                                         << show(args);
  }
  return ::testing::AssertionSuccess();
}

// A spawned helper with its stdout (and optionally stdin) as PAL pipes; reads everything to the end.
struct Child {
  mproc__child child{};
  mproc_os_handle out = MPROC_NO_HANDLE, in = MPROC_NO_HANDLE;
  ~Child() {
    mproc__pal_close(out);
    mproc__pal_close(in);
    if (child.handle != MPROC_NO_HANDLE) {
      if (!child.reaped) {
        mproc__pal_signal(&child, MPROC_SIGKILL);
        mproc__pal_wait(&child, INT64_MAX);
      }
      mproc__pal_child_release(&child);
    }
  }
};

// Start the helper with `script`; req may preset stdio and other fields (argv is filled here).
int start(Child &c, const std::vector<std::string> &script, mproc__spawn_req req = mproc__spawn_req{},
          bool pipe_stdin = false, bool pipe_stdout = true) {
  std::vector<std::string> words{helper_path()};
  words.insert(words.end(), script.begin(), script.end());
  std::vector<const char *> argv;
  for (auto &w : words) argv.push_back(w.c_str());
  argv.push_back(nullptr);
  if (!req.argv && !req.command) req.argv = argv.data();
  mproc_os_handle child_in = MPROC_NO_HANDLE, child_out = MPROC_NO_HANDLE;
  if (req.stdio[0] == 0 && req.stdio[1] == 0 && req.stdio[2] == 0)
    req.stdio[0] = req.stdio[1] = req.stdio[2] = MPROC_NO_HANDLE;
  int rc = 0;
  if (pipe_stdin) {
    rc = mproc__pal_pipe(false, &c.in, &child_in);
    if (rc) return rc;
    req.stdio[0] = child_in;
  }
  if (pipe_stdout) {
    rc = mproc__pal_pipe(true, &c.out, &child_out);
    if (rc) return rc;
    req.stdio[1] = child_out;
  }
  rc = mproc__pal_spawn(&req, &c.child);
  mproc__pal_close(child_in);
  mproc__pal_close(child_out);
  return rc;
}

// Read a parent pipe end to end of file.
std::string read_all(mproc_os_handle h) {
  std::string s;
  char buf[65536];
  for (;;) {
    size_t n = 0;
    int rc = mproc__pal_read(h, buf, sizeof buf, INT64_MAX, &n);
    EXPECT_EQ(rc, 0) << mproc_last_error();
    if (rc || n == 0) return s;
    s.append(buf, n);
  }
}

// Run the helper with `script`, stdout captured; returns the output (and the exit code).
std::string run_out(const std::vector<std::string> &script, int *code = nullptr,
                    mproc__spawn_req req = mproc__spawn_req{}) {
  Child c;
  int rc = start(c, script, req);
  EXPECT_EQ(rc, 0) << mproc_last_error();
  if (rc) return "<start failed>";
  std::string out = read_all(c.out);
  EXPECT_EQ(mproc__pal_wait(&c.child, INT64_MAX), 0) << mproc_last_error();
  if (code) *code = c.child.returncode;
  return out;
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = mproc_test::pattern_at(i);
  return s;
}

} // namespace

// ---- command-line quoting ---------------------------------------------------------------------------

TEST(Win32Quote, FixedCasesRoundTrip) {
  const std::vector<std::wstring> tricky = {L"",
                                            L" ",
                                            L"a b",
                                            L"\t",
                                            L"\"",
                                            L"\\",
                                            L"\\\\",
                                            L"a\\",
                                            L"a\\\\",
                                            L"\\\"",
                                            L"a\\\\\"b",
                                            L"\"quoted\"",
                                            L"x\"y z\"",
                                            L"trailing\\",
                                            L"a b\\",
                                            L"a b\\\\",
                                            L"\\\\\\\"",
                                            L"%PATH%",
                                            L"*.c",
                                            L"a\"\"b",
                                            L"\"\"",
                                            L"new\nline",
                                            L"\x00e9t\x00e9",
                                            L"\x4e2d\xd83d\xde00",
                                            L"back\\\\slash \\\"q",
                                            L"a\\b\\c d\\e",
                                            L"--flag=\"x y\"",
                                            L"\\\\server\\share\\",
                                            L"ends with space ",
                                            L" starts with space"};
  for (auto &a : tricky) EXPECT_TRUE(round_trips({L"prog", a})) << narrow(a);
  EXPECT_TRUE(round_trips({L"prog"}));
  EXPECT_TRUE(round_trips({L"prog", L"", L"", L""}));
  EXPECT_TRUE(round_trips({L"prog", L"\\", L"\"", L"\\\""}));
  EXPECT_TRUE(round_trips({L"prog", L"a", L"b c", L"d\\\"e"}));
  // argv[0]: no escapes, quoted whole when needed, including a trailing backslash
  for (const wchar_t *p0 : {L"C:\\Program Files\\app.exe", L"C:\\dir with space\\", L"", L"a\tb", L"plain.exe",
                            L"C:\\trailing\\", L"\\\\server\\share\\x y.exe", L"\x4e2d\x6587 \x00e9.exe"})
    EXPECT_TRUE(round_trips({p0, L"arg 1", L"x\\\""})) << narrow(p0);
}

TEST(Win32Quote, RandomArgumentsRoundTrip) {
  // An alphabet of everything the parsers treat specially, plus non-ASCII (a surrogate pair too).
  const std::vector<std::wstring> alphabet = {L"a", L" ", L"\t", L"\"", L"\\", L"\x00e9", L"\x4e2d", L"\xd83d\xde00"};
  std::mt19937 rng(20240607); // fixed seed: a failure reproduces
  int checked = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::vector<std::wstring> args;
    size_t argc = 1 + rng() % 6;
    for (size_t i = 0; i < argc; ++i) {
      std::wstring a;
      size_t len = rng() % 12;
      for (size_t k = 0; k < len; ++k) {
        const std::wstring &piece = alphabet[rng() % alphabet.size()];
        if (i == 0 && piece == L"\"") continue; // a program name cannot hold a quote
        a += piece;
      }
      args.push_back(a);
    }
    ASSERT_TRUE(round_trips(args)) << "iteration " << iter;
    checked += (int)argc;
  }
  EXPECT_GT(checked, 15000);
}

TEST(Win32Quote, QuoteInProgramNameIsRejected) {
  const wchar_t *argv[] = {L"pro\"g", L"x", nullptr};
  wchar_t *cmd = nullptr;
  EXPECT_EQ(mproc__win32_quote_args(argv, &cmd), MPROC_EINVAL);
  EXPECT_EQ(cmd, nullptr);
  EXPECT_NE(std::string(mproc_last_error()).find("argv[0]"), std::string::npos) << mproc_last_error();
}

// ---- environment block --------------------------------------------------------------------------

namespace {
std::vector<std::wstring> block_entries(const wchar_t *b) {
  std::vector<std::wstring> v;
  for (const wchar_t *e = b; *e; e += wcslen(e) + 1) v.push_back(e);
  return v;
}
} // namespace

TEST(Win32Env, ReplacedEnvironmentIsSortedAndKeepsSystemVariables) {
  const char *env[] = {"zeta=1", "Alpha=2", "MIDDLE=3", "alpha=4", "_under=5", "b=", nullptr};
  wchar_t *block = nullptr;
  ASSERT_EQ(mproc__win32_env_block(env, nullptr, &block), 0) << mproc_last_error();
  std::vector<std::wstring> v = block_entries(block);
  // sorted case-insensitively by name, as Windows requires
  for (size_t i = 1; i < v.size(); ++i) {
    std::wstring a = v[i - 1].substr(0, v[i - 1].find(L'=', 1)), b = v[i].substr(0, v[i].find(L'=', 1));
    EXPECT_EQ(CompareStringOrdinal(a.c_str(), -1, b.c_str(), -1, TRUE), CSTR_LESS_THAN)
        << narrow(a) << " / " << narrow(b);
  }
  // the later of Alpha / alpha wins, once
  EXPECT_STREQ(mproc__win32_env_find(block, L"ALPHA"), L"4");
  int alphas = 0;
  for (auto &e : v) alphas += _wcsnicmp(e.c_str(), L"alpha=", 6) == 0;
  EXPECT_EQ(alphas, 1);
  EXPECT_STREQ(mproc__win32_env_find(block, L"b"), L"");
  // system variables the parent has are kept, PATH is not
  wchar_t sysroot[MAX_PATH];
  ASSERT_GT(GetEnvironmentVariableW(L"SystemRoot", sysroot, MAX_PATH), 0u);
  ASSERT_NE(mproc__win32_env_find(block, L"SYSTEMROOT"), nullptr);
  EXPECT_STREQ(mproc__win32_env_find(block, L"SystemRoot"), sysroot);
  EXPECT_EQ(mproc__win32_env_find(block, L"PATH"), nullptr);
  free(block);
}

TEST(Win32Env, CallerSettingsOfSystemVariablesWin) {
  const char *env[] = {"systemroot=C:\\elsewhere", nullptr};
  const char *extra[] = {"WINDIR", "TEMP=C:\\t", nullptr};
  wchar_t *block = nullptr;
  ASSERT_EQ(mproc__win32_env_block(env, extra, &block), 0) << mproc_last_error();
  EXPECT_STREQ(mproc__win32_env_find(block, L"SYSTEMROOT"), L"C:\\elsewhere");
  EXPECT_EQ(mproc__win32_env_find(block, L"WINDIR"), nullptr); // removed on purpose by env_extra
  EXPECT_STREQ(mproc__win32_env_find(block, L"temp"), L"C:\\t");
  int roots = 0;
  for (auto &e : block_entries(block)) roots += _wcsnicmp(e.c_str(), L"systemroot=", 11) == 0;
  EXPECT_EQ(roots, 1);
  free(block);
}

TEST(Win32Env, ExtraAppliesCaseInsensitivelyOnTheParentEnvironment) {
  ASSERT_TRUE(SetEnvironmentVariableW(L"MPROC_W32_CASE", L"parent"));
  const char *extra[] = {"mproc_w32_case=child", "MPROC_W32_NEW=\xc3\xa9", "Path", nullptr};
  wchar_t *block = nullptr;
  ASSERT_EQ(mproc__win32_env_block(nullptr, extra, &block), 0) << mproc_last_error();
  SetEnvironmentVariableW(L"MPROC_W32_CASE", nullptr);
  EXPECT_STREQ(mproc__win32_env_find(block, L"MPROC_W32_CASE"), L"child");
  EXPECT_STREQ(mproc__win32_env_find(block, L"MPROC_W32_NEW"), L"\x00e9");
  EXPECT_EQ(mproc__win32_env_find(block, L"PATH"), nullptr); // "Path" removed "PATH"
  EXPECT_NE(mproc__win32_env_find(block, L"SYSTEMROOT"), nullptr);
  int cases = 0;
  for (auto &e : block_entries(block)) cases += _wcsnicmp(e.c_str(), L"mproc_w32_case=", 15) == 0;
  EXPECT_EQ(cases, 1);
  free(block);
}

TEST(Win32Env, EdgeCases) {
  wchar_t *block = (wchar_t *)1;
  EXPECT_EQ(mproc__win32_env_block(nullptr, nullptr, &block), 0);
  EXPECT_EQ(block, nullptr); // inherit as it is
  const char *bad[] = {"NOVALUE", nullptr};
  EXPECT_EQ(mproc__win32_env_block(bad, nullptr, &block), MPROC_EINVAL);
  EXPECT_NE(std::string(mproc_last_error()).find("NOVALUE"), std::string::npos);
  const char *bad_utf8[] = {"X=\xff\xfe", nullptr};
  EXPECT_EQ(mproc__win32_env_block(bad_utf8, nullptr, &block), MPROC_EINVAL);
  // an environment emptied by env_extra is still a valid (double-NUL) block
  const char *one[] = {"ONLY=1", nullptr};
  const char *rm[] = {"ONLY", "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "TEMP", "TMP", nullptr};
  ASSERT_EQ(mproc__win32_env_block(one, rm, &block), 0);
  EXPECT_EQ(block[0], L'\0');
  EXPECT_EQ(block[1], L'\0');
  free(block);
}

TEST(Win32Env, ChildSeesTheBlock) {
  const char *env[] = {"MPROC_A=alpha", "mproc_b=beta", nullptr};
  const char *extra[] = {"MPROC_B=BETA", nullptr};
  mproc__spawn_req req{};
  req.env = env;
  req.env_extra = extra;
  EXPECT_EQ(run_out({"env", "MPROC_A", "print", "|", "env", "MPROC_B", "print", "|", "env", "SYSTEMROOT"}, nullptr, req)
                .substr(0, 17),
            "alpha|BETA|C:\\win");
}

// ---- pipes: exact accounting of cancelled I/O ----------------------------------------------------

TEST(Win32Pipe, EndsAreNotInheritableAndNamesAreUnique) {
  mproc_os_handle p1, c1, p2, c2;
  ASSERT_EQ(mproc__pal_pipe(true, &p1, &c1), 0) << mproc_last_error();
  ASSERT_EQ(mproc__pal_pipe(false, &p2, &c2), 0) << mproc_last_error();
  for (mproc_os_handle h : {p1, c1, p2, c2}) EXPECT_TRUE(mproc__pal_get_cloexec(h));
  DWORD flags = 0, out_size = 0, in_size = 0;
  ASSERT_TRUE(GetNamedPipeInfo((HANDLE)p1, &flags, &out_size, &in_size, nullptr));
  EXPECT_TRUE(flags & PIPE_SERVER_END);
  EXPECT_EQ(in_size, (DWORD)MPROC__WIN32_PIPE_IN_BUFFER);
  ASSERT_TRUE(GetNamedPipeInfo((HANDLE)p2, &flags, &out_size, &in_size, nullptr));
  EXPECT_EQ(out_size, (DWORD)MPROC__WIN32_PIPE_OUT_BUFFER);
  for (mproc_os_handle h : {p1, c1, p2, c2}) mproc__pal_close(h);
}

TEST(Win32Pipe, NobodyElseCanOpenOrServeTheName) {
  mproc_os_handle parent, child;
  ASSERT_EQ(mproc__pal_pipe(true, &parent, &child), 0);
  alignas(8) char info[1024];
  ASSERT_TRUE(GetFileInformationByHandleEx((HANDLE)parent, FileNameInfo, info, sizeof info)) << GetLastError();
  const FILE_NAME_INFO *fni = (const FILE_NAME_INFO *)info;
  std::wstring name = L"\\\\.\\pipe" + std::wstring(fni->FileName, fni->FileNameLength / sizeof(wchar_t));
  EXPECT_NE(name.find(L"\\mproc-io-" + std::to_wstring(GetCurrentProcessId()) + L"-"), std::wstring::npos)
      << narrow(name);
  // a second client: the one instance is taken (ours is connected)
  HANDLE c2 = CreateFileW(name.c_str(), GENERIC_READ, 0, nullptr, OPEN_EXISTING, 0, nullptr);
  EXPECT_EQ(c2, INVALID_HANDLE_VALUE);
  if (c2 != INVALID_HANDLE_VALUE) CloseHandle(c2);
  EXPECT_EQ(GetLastError(), (DWORD)ERROR_PIPE_BUSY);
  // a second server instance: refused (nMaxInstances = 1)
  HANDLE s2 = CreateNamedPipeW(name.c_str(), PIPE_ACCESS_INBOUND, PIPE_TYPE_BYTE, 1, 0, 0, 0, nullptr);
  EXPECT_EQ(s2, INVALID_HANDLE_VALUE);
  if (s2 != INVALID_HANDLE_VALUE) CloseHandle(s2);
  mproc__pal_close(parent);
  mproc__pal_close(child);
  // The squatting defence proper: a name someone else created first is refused to us. Wine 8 does not
  // enforce FILE_FLAG_FIRST_PIPE_INSTANCE (docs/windows-and-packaging.md section 2), so only Windows checks it.
  if (under_wine()) GTEST_SKIP() << "wine does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE";
  std::wstring squat = L"\\\\.\\pipe\\mproc-squat-test-" + std::to_wstring(GetCurrentProcessId());
  HANDLE theirs =
      CreateNamedPipeW(squat.c_str(), PIPE_ACCESS_DUPLEX, PIPE_TYPE_BYTE, PIPE_UNLIMITED_INSTANCES, 0, 0, 0, nullptr);
  ASSERT_NE(theirs, INVALID_HANDLE_VALUE);
  HANDLE ours = CreateNamedPipeW(squat.c_str(), PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE, PIPE_TYPE_BYTE,
                                 PIPE_UNLIMITED_INSTANCES, 0, 0, 0, nullptr);
  EXPECT_EQ(ours, INVALID_HANDLE_VALUE);
  EXPECT_EQ(GetLastError(), (DWORD)ERROR_ACCESS_DENIED);
  if (ours != INVALID_HANDLE_VALUE) CloseHandle(ours);
  CloseHandle(theirs);
}

TEST(Win32Pipe, ReadTimesOutThenGetsDataThenEndOfFile) {
  mproc_os_handle parent, child;
  ASSERT_EQ(mproc__pal_pipe(true, &parent, &child), 0);
  char buf[16];
  size_t n = 99;
  EXPECT_EQ(mproc__pal_read(parent, buf, sizeof buf, mproc__deadline_from_timeout(30), &n), MPROC_ETIMEDOUT);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(mproc__pal_read(parent, buf, sizeof buf, mproc__deadline_from_timeout(0), &n), MPROC_ETIMEDOUT);
  DWORD w = 0;
  ASSERT_TRUE(WriteFile((HANDLE)child, "", 0, &w, nullptr)); // a zero-length write is not end of file
  ASSERT_TRUE(WriteFile((HANDLE)child, "hello", 5, &w, nullptr));
  ASSERT_EQ(mproc__pal_read(parent, buf, sizeof buf, mproc__deadline_from_timeout(0), &n), 0) << mproc_last_error();
  EXPECT_EQ(std::string(buf, n), "hello");
  mproc__pal_close(child);
  EXPECT_EQ(mproc__pal_read(parent, buf, sizeof buf, INT64_MAX, &n), 0);
  EXPECT_EQ(n, 0u); // end of file
  mproc__pal_close(parent);
}

TEST(Win32Pipe, WriteToAClosedReaderIsBrokenPipe) {
  mproc_os_handle parent, child;
  ASSERT_EQ(mproc__pal_pipe(false, &parent, &child), 0);
  mproc__pal_close(child);
  size_t n = 99;
  EXPECT_EQ(mproc__pal_write(parent, "x", 1, INT64_MAX, &n), MPROC_EPIPE);
  EXPECT_EQ(n, 0u);
  mproc__pal_close(parent);
}

TEST(Win32Pipe, TimedOutWritesNeitherLoseNorRepeatBytes) {
  // A slow reader takes the data in irregular pieces and pauses (first 50 ms, then 5-20 ms every few
  // reads) while the writer keeps hitting deadlines of 0-2 ms, so writes are cancelled with the pipe
  // full, partly drained and empty. The reader must get the data exactly.
  mproc_os_handle parent, child;
  ASSERT_EQ(mproc__pal_pipe(false, &parent, &child), 0);
  const std::string data = pattern(3u << 20);
  std::string got;
  std::thread reader([&] {
    std::mt19937 rng(7);
    std::vector<char> buf(200000);
    Sleep(50);
    for (;;) {
      DWORD n = 0;
      DWORD want = 1 + rng() % (DWORD)buf.size();
      if (!ReadFile((HANDLE)child, buf.data(), want, &n, nullptr) || n == 0) break;
      got.append(buf.data(), n);
      if (rng() % 8 == 0) Sleep(5 + rng() % 16);
    }
  });
  size_t off = 0;
  int timeouts = 0, calls = 0;
  std::mt19937 rng(11);
  while (off < data.size()) {
    size_t n = 0;
    int rc =
        mproc__pal_write(parent, data.data() + off, data.size() - off, mproc__deadline_from_timeout(rng() % 3), &n);
    ASSERT_TRUE(rc == 0 || rc == MPROC_ETIMEDOUT) << mproc_last_error();
    timeouts += n < data.size() - off;
    off += n;
    ++calls;
  }
  mproc__pal_close(parent);
  reader.join();
  mproc__pal_close(child);
  EXPECT_GT(timeouts, 0); // the test did exercise cancellation
  ASSERT_EQ(got.size(), data.size()) << calls << " calls, " << timeouts << " cut short";
  EXPECT_TRUE(got == data);
}

TEST(Win32Pipe, WriteWithPastDeadlineMovesWhatFits) {
  mproc_os_handle parent, child;
  ASSERT_EQ(mproc__pal_pipe(false, &parent, &child), 0);
  std::string data = pattern(1u << 20);
  size_t n = 0;
  ASSERT_EQ(mproc__pal_write(parent, data.data(), 1000, 0, &n), 0); // fits: goes at once
  EXPECT_EQ(n, 1000u);
  ASSERT_EQ(mproc__pal_write(parent, data.data() + 1000, data.size() - 1000, 0, &n), 0) << mproc_last_error();
  EXPECT_GT(n, 0u); // filled the rest of the buffer, without waiting
  EXPECT_LE(n + 1000, (size_t)MPROC__WIN32_PIPE_OUT_BUFFER);
  size_t first = n + 1000;
  EXPECT_EQ(mproc__pal_write(parent, data.data() + first, 10, 0, &n), MPROC_ETIMEDOUT); // full
  EXPECT_EQ(n, 0u);
  std::string got(first, '\0');
  DWORD r = 0, total = 0;
  while (total < first && ReadFile((HANDLE)child, &got[total], (DWORD)first - total, &r, nullptr)) total += r;
  EXPECT_EQ(got, data.substr(0, first));
  mproc__pal_close(parent);
  mproc__pal_close(child);
}

namespace {
// The helper with all three streams on PAL pipes and an mproc__comm over them, as the engine sets it up.
struct Exchange {
  Child c;
  std::string input;
  mproc__buf out = {nullptr, 0, 0}, err = {nullptr, 0, 0};
  mproc__comm comm{};
  int rc = 0;
  Exchange(const std::vector<std::string> &script, size_t input_len) : input(pattern(input_len)) {
    comm.in = comm.out = comm.err = MPROC_NO_HANDLE;
    mproc_os_handle err_child = MPROC_NO_HANDLE;
    rc = mproc__pal_pipe(true, &comm.err, &err_child);
    mproc__spawn_req req{};
    req.stdio[0] = req.stdio[1] = MPROC_NO_HANDLE;
    req.stdio[2] = err_child;
    if (rc == 0) rc = start(c, script, req, true, true);
    mproc__pal_close(err_child);
    comm.in = c.in;
    comm.out = c.out;
    c.in = c.out = MPROC_NO_HANDLE; // communicate owns them now
    comm.input = input.data();
    comm.input_len = input.size();
    comm.out_buf = &out;
    comm.err_buf = &err;
  }
  ~Exchange() {
    mproc__pal_close(comm.in);
    mproc__pal_close(comm.out);
    mproc__pal_close(comm.err);
    mproc__buf_free(&out);
    mproc__buf_free(&err);
  }
};
} // namespace

TEST(Win32Communicate, RepeatedTimeoutsLoseAndRepeatNothing) {
  // echo: everything written comes back. Deadlines of 0-3 ms cut the exchange again and again: while the
  // child sleeps (pending writes cancelled with the pipe full, pending reads cancelled empty) and then
  // wherever the child happens to be slower than us.
  Exchange x({"err", "300000", "sleep", "100", "echo"}, 4u << 20);
  ASSERT_EQ(x.rc, 0) << mproc_last_error();
  std::mt19937 rng(3);
  int calls = 0, rc;
  while ((rc = mproc__pal_communicate(&x.comm, mproc__deadline_from_timeout(rng() % 4))) == MPROC_ETIMEDOUT) ++calls;
  ASSERT_EQ(rc, 0) << mproc_last_error();
  EXPECT_GT(calls, 0);
  EXPECT_EQ(x.comm.in, MPROC_NO_HANDLE);
  EXPECT_EQ(x.comm.out, MPROC_NO_HANDLE);
  EXPECT_EQ(x.comm.err, MPROC_NO_HANDLE);
  EXPECT_EQ(x.comm.input_off, x.input.size());
  ASSERT_EQ(x.out.len, x.input.size());
  EXPECT_TRUE(std::string(x.out.data, x.out.len) == x.input);
  EXPECT_TRUE(is_pattern(x.err.data, x.err.len, 300000));
  EXPECT_EQ(mproc__pal_wait(&x.c.child, INT64_MAX), 0);
}

TEST(Win32Communicate, BigTransfersInAllDirections) {
  // 64 MiB each way at once; MPROC_BIG=<bytes> overrides (300000000 was checked: 3 x 286 MiB, 5 s).
  const std::optional<std::string> big_env = mproc_test::env_get("MPROC_BIG");
  const size_t big = big_env ? strtoull(big_env->c_str(), nullptr, 10) : (64u << 20);
  Exchange x({"err", std::to_string(big), "echo"}, big);
  ASSERT_EQ(x.rc, 0) << mproc_last_error();
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(mproc__pal_communicate(&x.comm, INT64_MAX), 0) << mproc_last_error();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(is_pattern(x.out.data, x.out.len, big));
  EXPECT_TRUE(is_pattern(x.err.data, x.err.len, big));
  printf("3 x %zu MiB through communicate in %.2f s\n", big >> 20, s);
  EXPECT_EQ(mproc__pal_wait(&x.c.child, INT64_MAX), 0);
}

TEST(Win32Communicate, ChildThatStopsReadingDropsTheRestOfTheInput) {
  Exchange x({"read", "1000", "print", "done"}, 8u << 20);
  ASSERT_EQ(x.rc, 0) << mproc_last_error();
  ASSERT_EQ(mproc__pal_communicate(&x.comm, INT64_MAX), 0) << mproc_last_error();
  EXPECT_EQ(std::string(x.out.data, x.out.len), "done");
  EXPECT_LT(x.comm.input_off, x.input.size()); // not an error: the rest is dropped
  EXPECT_EQ(x.comm.in, MPROC_NO_HANDLE);
  EXPECT_EQ(mproc__pal_wait(&x.c.child, INT64_MAX), 0);
}

// ---- end to end: arguments through CreateProcessW into a real child -----------------------------------

namespace {

// Child mode of Win32Argv.UnicodeArgumentsArriveIntact: started with MPROC_WIN32_ARGV_CHILD set, this
// program prints the arguments after "--mproc-args" as UTF-8 "<length>:<bytes>\n" lines, once as
// CommandLineToArgvW splits its command line and (MinGW) once as the msvcrt wide argv parser does, and
// exits before main() runs. (The helper program's main() gets ANSI argv, which cannot carry non-ASCII.)
#ifdef __MINGW32__
extern "C" __declspec(dllimport) int __cdecl __wgetmainargs(int *, wchar_t ***, wchar_t ***, int, int *);
#endif

void print_args_after_marker(std::string &out, int argc, wchar_t **argv) {
  int k = 0;
  while (k < argc && wcscmp(argv[k], L"--mproc-args") != 0) ++k;
  for (++k; k < argc; ++k) {
    std::string a = narrow(argv[k]);
    out += std::to_string(a.size()) + ":" + a + "\n";
  }
  out += "--\n";
}

struct ArgvChildMode {
  ArgvChildMode() {
    if (GetEnvironmentVariableW(L"MPROC_WIN32_ARGV_CHILD", nullptr, 0) == 0) return;
    std::string out;
    int argc = 0;
    wchar_t **argv = CommandLineToArgvW(GetCommandLineW(), &argc);
    print_args_after_marker(out, argc, argv);
    LocalFree(argv);
#ifdef __MINGW32__
    wchar_t **wargv = nullptr, **wenv = nullptr;
    int newmode = 0;
    if (__wgetmainargs(&argc, &wargv, &wenv, 0, &newmode) == 0) print_args_after_marker(out, argc, wargv);
#endif
    DWORD n = 0;
    WriteFile(GetStdHandle(STD_OUTPUT_HANDLE), out.data(), (DWORD)out.size(), &n, nullptr);
    ExitProcess(0);
  }
} g_argv_child_mode;

std::vector<std::string> random_args(std::mt19937 &rng, const std::vector<std::string> &alphabet, size_t count) {
  std::vector<std::string> args;
  for (size_t i = 0; i < count; ++i) {
    std::string a;
    for (size_t k = rng() % 10; k > 0; --k) a += alphabet[rng() % alphabet.size()];
    args.push_back(a);
  }
  return args;
}

std::string as_lines(const std::vector<std::string> &args) {
  std::string s;
  for (auto &a : args) s += std::to_string(a.size()) + ":" + a + "\n";
  return s;
}

} // namespace

TEST(Win32Argv, RandomAsciiArgumentsReachTheHelperThroughRun) {
  // mproc_run -> the portable engine -> this PAL -> CreateProcessW -> the helper's msvcrt main().
  std::mt19937 rng(99);
  std::string helper = helper_path();
  for (int run = 0; run < 8; ++run) {
    std::vector<std::string> args = random_args(rng, {"a", " ", "\t", "\"", "\\", "\\\\", "b"}, 40);
    std::vector<const char *> argv{helper.c_str(), "argv"};
    for (auto &a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    mproc_completed r;
    mproc_popen_opts o{};
    o.argv = argv.data();
    o.capture_output = true;
    ASSERT_EQ(mproc_run(&o, 60000, &r), 0) << mproc_last_error();
    EXPECT_EQ(std::string(r.stdout_data, r.stdout_len), as_lines(args)) << "run " << run;
    mproc_completed_free(&r);
  }
}

TEST(Win32Argv, UnicodeArgumentsArriveIntact) {
  char *self = nullptr;
  ASSERT_EQ(mproc_self_exe(&self), 0);
  std::string exe(self);
  mproc_free(self);
  std::mt19937 rng(5);
  const std::vector<std::string> alphabet = {"a",  " ",        "\t",           "\"",
                                             "\\", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80"};
  for (int run = 0; run < 6; ++run) {
    std::vector<std::string> args = random_args(rng, alphabet, 30);
    if (run == 0)
      args = {"", "h\xc3\xa9llo w\xc3\xb6rld", "\xe4\xb8\xad\xe6\x96\x87\\", "\"\xf0\x9f\x98\x80\"", "a\\\\\"b"};
    std::vector<const char *> argv{exe.c_str(), "--mproc-args"};
    for (auto &a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    const char *extra[] = {"MPROC_WIN32_ARGV_CHILD=1", nullptr};
    mproc_completed r;
    mproc_popen_opts o{};
    o.argv = argv.data();
    o.env_extra = extra;
    o.capture_output = true;
    ASSERT_EQ(mproc_run(&o, 60000, &r), 0) << mproc_last_error();
    std::string expect = as_lines(args) + "--\n";
#ifdef __MINGW32__
    expect += as_lines(args) + "--\n"; // the msvcrt parser agrees
#endif
    EXPECT_EQ(std::string(r.stdout_data, r.stdout_len), expect) << "run " << run;
    mproc_completed_free(&r);
  }
}

// ---- handle inheritance ------------------------------------------------------------------------------

namespace {
// An event whose handle value is far above anything a fresh child has open, so that "hasfd" in the
// child cannot answer yes by accident.
HANDLE high_value_event(bool inheritable) {
  std::vector<HANDLE> filler;
  for (int i = 0; i < 600; ++i) filler.push_back(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  SECURITY_ATTRIBUTES sa = {sizeof sa, nullptr, inheritable ? TRUE : FALSE};
  HANDLE h = CreateEventW(&sa, TRUE, FALSE, nullptr);
  for (HANDLE f : filler) CloseHandle(f);
  return h;
}
} // namespace

TEST(Win32Inherit, ChildGetsOnlyItsStdioAndPassFds) {
  HANDLE stray = high_value_event(true);   // inheritable, but not ours to give
  HANDLE passed = high_value_event(false); // given on purpose through pass_fds
  ASSERT_TRUE(stray && passed);
  ASSERT_GE((uintptr_t)stray, 0x800u);
  std::string sv = std::to_string((uintptr_t)stray), pv = std::to_string((uintptr_t)passed);
  // default: the handle list keeps the stray handle out
  EXPECT_EQ(run_out({"hasfd", sv, "print", "|", "hasfd", pv}), "no|no");
  // pass_fds: that handle arrives with its value; its flag in the parent is restored afterwards
  mproc__spawn_req req{};
  mproc_os_handle pass[] = {(mproc_os_handle)(uintptr_t)passed,
                            (mproc_os_handle)(uintptr_t)passed}; // twice: listed once
  req.pass_fds = pass;
  req.pass_fds_count = 2;
  req.stdio[0] = req.stdio[2] = MPROC_NO_HANDLE;
  EXPECT_EQ(run_out({"hasfd", sv, "print", "|", "hasfd", pv}, nullptr, req), "no|yes");
  EXPECT_TRUE(mproc__pal_get_cloexec((mproc_os_handle)(uintptr_t)passed));
  // inherit_fds (close_fds=False): every inheritable handle goes
  mproc__spawn_req all{};
  all.inherit_fds = true;
  all.stdio[0] = all.stdio[2] = MPROC_NO_HANDLE;
  EXPECT_EQ(run_out({"hasfd", sv, "print", "|", "hasfd", pv}, nullptr, all), "yes|no");
  // a handle that is not open is an error naming it, and leaves nothing behind
  mproc__spawn_req bad{};
  mproc_os_handle closed[] = {(mproc_os_handle)0x7ff0};
  bad.pass_fds = closed;
  bad.pass_fds_count = 1;
  bad.stdio[0] = bad.stdio[2] = MPROC_NO_HANDLE;
  Child c;
  EXPECT_EQ(start(c, {"exit", "0"}, bad), MPROC_EINVAL);
  EXPECT_NE(std::string(mproc_last_error()).find("pass_fds[0]"), std::string::npos) << mproc_last_error();
  CloseHandle(stray);
  CloseHandle(passed);
}

TEST(Win32Inherit, StdoutAndStderrOnOneHandle) {
  mproc__spawn_req req{};
  mproc_os_handle parent, child;
  ASSERT_EQ(mproc__pal_pipe(true, &parent, &child), 0);
  req.stdio[0] = MPROC_NO_HANDLE;
  req.stdio[1] = req.stdio[2] = child; // listed once, or CreateProcessW would fail
  Child c;
  ASSERT_EQ(start(c, {"print", "a", "eprint", "b", "print", "c"}, req, false, false), 0) << mproc_last_error();
  mproc__pal_close(child);
  EXPECT_EQ(read_all(parent), "abc");
  mproc__pal_close(parent);
}

// Long-lived children are started on one thread (`sleepers` of them, with `sleeper_req`) while
// `threads` x `runs` short ones print a tag on others. If a long-lived child held a short one's pipe,
// that short run would see end of file only when the long one ends (a minute): every short run must end
// well before, with its own output. *late counts the runs that did not; the result says what failed.
struct ConcurrentSpawns {
  int late = 0, failed = 0;
  std::string why;
};
static ConcurrentSpawns run_concurrent_spawns(size_t sleepers_max, bool inherit_fds, int threads, int runs) {
  std::atomic<bool> stop{false};
  std::atomic<int> late{0}, failed{0};
  std::mutex why_lock;
  std::string why;
  auto note = [&](const std::string &what) {
    failed++;
    std::lock_guard<std::mutex> g(why_lock);
    why += what + "\n";
  };
  std::vector<Child *> sleepers;
  std::thread starter([&] {
    while (!stop && sleepers.size() < sleepers_max) {
      Child *c = new Child;
      mproc__spawn_req req{};
      req.inherit_fds = inherit_fds;
      req.stdio[0] = req.stdio[1] = req.stdio[2] = MPROC_NO_HANDLE;
      int rc = inherit_fds ? start(*c, {"sleep", "60000"}, req, false, false)
                           : start(*c, {"sleep", "60000"}, mproc__spawn_req{}, true, true);
      if (rc != 0) note(std::string("long-lived start: ") + mproc_last_error());
      sleepers.push_back(c);
    }
  });
  std::vector<std::thread> runners;
  for (int t = 0; t < threads; ++t)
    runners.emplace_back([&, t] {
      for (int i = 0; i < runs; ++i) {
        Child c;
        std::string tag = std::to_string(t) + "/" + std::to_string(i);
        if (start(c, {"print", tag}, mproc__spawn_req{}, true, true) != 0) {
          note("start " + tag + ": " + mproc_last_error());
          continue;
        }
        mproc__pal_close(c.in);
        c.in = MPROC_NO_HANDLE;
        std::string out;
        char buf[64];
        int64_t deadline = mproc__deadline_from_timeout(20000);
        for (;;) {
          size_t n = 0;
          int rc = mproc__pal_read(c.out, buf, sizeof buf, deadline, &n);
          if (rc == MPROC_ETIMEDOUT) late++;
          if (rc && rc != MPROC_ETIMEDOUT) note("read " + tag + ": " + mproc_last_error());
          if (rc || n == 0) break;
          out.append(buf, n);
        }
        if (out != tag) note("output of " + tag + ": '" + out + "'");
      }
    });
  for (auto &r : runners) r.join();
  stop = true;
  starter.join();
  for (Child *c : sleepers) delete c; // kills and reaps
  return {late.load(), failed.load(), why};
}

TEST(Win32Inherit, ConcurrentSpawnsNeverHoldEachOthersPipes) {
  ConcurrentSpawns r = run_concurrent_spawns(12, false, 3, 8);
  EXPECT_EQ(r.failed, 0) << r.why;
  EXPECT_EQ(r.late, 0);
}

// ---- program lookup, cwd, shell -----------------------------------------------------------------------

TEST(Win32Spawn, ProgramsAreFoundInThePathOfTheChildEnvironment) {
  int code = -1;
  mproc__spawn_req req{};
  const char *cmd_exit[] = {"cmd", "/c", "exit 7", nullptr}; // no extension: .exe appended
  req.argv = cmd_exit;
  req.stdio[0] = req.stdio[2] = MPROC_NO_HANDLE;
  run_out({}, &code, req);
  EXPECT_EQ(code, 7);
  // a replaced environment without PATH: the system directories
  const char *no_path[] = {"MPROC_X=1", nullptr};
  req.env = no_path;
  run_out({}, &code, req);
  EXPECT_EQ(code, 7);
  // the child's PATH decides (env_extra included), and a miss names the program
  const char *bad_path[] = {"PATH=C:\\mproc-no-such-dir", nullptr};
  req.env = nullptr;
  req.env_extra = bad_path;
  Child c;
  EXPECT_EQ(start(c, {}, req), MPROC_ENOENT);
  EXPECT_NE(std::string(mproc_last_error()).find("'cmd'"), std::string::npos) << mproc_last_error();
  // a directory part: no search, but the extension is still completed
  wchar_t sys[MAX_PATH];
  UINT n = GetSystemDirectoryW(sys, MAX_PATH);
  ASSERT_GT(n, 0u);
  std::string full = narrow(std::wstring(sys, n)) + "\\cmd";
  const char *by_path[] = {full.c_str(), "/c", "exit 8", nullptr};
  mproc__spawn_req req2{};
  req2.argv = by_path;
  req2.stdio[0] = req2.stdio[2] = MPROC_NO_HANDLE;
  run_out({}, &code, req2);
  EXPECT_EQ(code, 8);
}

TEST(Win32Spawn, StartErrorsNameWhatIsMissing) {
  Child c;
  mproc__spawn_req req{};
  req.stdio[0] = req.stdio[1] = req.stdio[2] = MPROC_NO_HANDLE;
  const char *missing[] = {"C:\\mproc\\no\\such\\prog", nullptr};
  req.argv = missing;
  EXPECT_EQ(mproc__pal_spawn(&req, &c.child), MPROC_ENOENT);
  EXPECT_NE(std::string(mproc_last_error()).find("C:\\mproc\\no\\such\\prog"), std::string::npos) << mproc_last_error();
  mproc__spawn_req r2{};
  r2.cwd = "C:\\mproc-no-such-cwd";
  EXPECT_EQ(start(c, {"exit", "0"}, r2), MPROC_ENOENT);
  EXPECT_NE(std::string(mproc_last_error()).find("C:\\mproc-no-such-cwd"), std::string::npos) << mproc_last_error();
  std::string file = helper_path(); // a file, not a directory
  r2.cwd = file.c_str();
  EXPECT_EQ(start(c, {"exit", "0"}, r2), MPROC_ENOENT);
  EXPECT_NE(std::string(mproc_last_error()).find("not a directory"), std::string::npos) << mproc_last_error();
  r2.cwd = "."; // relative: the parent's
  EXPECT_EQ(start(c, {"exit", "0"}, r2), 0) << mproc_last_error();
  const char *quote0[] = {"a\"b", nullptr};
  mproc__spawn_req r3{};
  std::string helper = helper_path();
  r3.argv = quote0;
  r3.executable = helper.c_str();
  r3.stdio[0] = r3.stdio[1] = r3.stdio[2] = MPROC_NO_HANDLE;
  EXPECT_EQ(mproc__pal_spawn(&r3, &c.child), MPROC_EINVAL);
  EXPECT_EQ(c.child.handle, MPROC_NO_HANDLE);
}

TEST(Win32Spawn, ShellRunsAQuotedProgramPathWithSpaces) {
  fs::path dir = fs::temp_directory_path() / ("mproc dir with spaces " + std::to_string(GetCurrentProcessId()));
  fs::create_directories(dir);
  fs::path exe = dir / "mproc helper.exe";
  fs::copy_file(helper_path(), exe, fs::copy_options::overwrite_existing);
  // cmd.exe /c "CMD": the outer quotes go, the inner ones stay
  std::string command = "\"" + exe.string() + "\" print \"a b\" print & exit 3";
  mproc__spawn_req req{};
  req.command = command.c_str();
  req.stdio[0] = req.stdio[2] = MPROC_NO_HANDLE;
  int code = -1;
  EXPECT_EQ(run_out({}, &code, req), "a b");
  EXPECT_EQ(code, 3);
  // and the executable override names the shell
  wchar_t sys[MAX_PATH];
  UINT n = GetSystemDirectoryW(sys, MAX_PATH);
  std::string shell = narrow(std::wstring(sys, n)) + "\\cmd.exe";
  std::string cmd2 = "exit 5";
  mproc__spawn_req req2{};
  req2.command = cmd2.c_str();
  req2.executable = shell.c_str();
  req2.stdio[0] = req2.stdio[2] = MPROC_NO_HANDLE;
  run_out({}, &code, req2);
  EXPECT_EQ(code, 5);
  fs::remove_all(dir);
}

// ---- wait, signal, process group, leaks -----------------------------------------------------------------

TEST(Win32Spawn, WaitAndSignals) {
  Child c;
  mproc__spawn_req req{};
  req.new_process_group = true; // CREATE_NEW_PROCESS_GROUP (console events are not usable under wine)
  ASSERT_EQ(start(c, {"sleep", "60000"}, req, false, false), 0) << mproc_last_error();
  EXPECT_GT(c.child.pid, 0);
  EXPECT_EQ(mproc__pal_wait(&c.child, mproc__deadline_from_timeout(0)), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc__pal_wait(&c.child, mproc__deadline_from_timeout(30)), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc__pal_signal(&c.child, MPROC_SIGINT), MPROC_ENOTSUP);
  EXPECT_NE(std::string(mproc_last_error()).find("signal 2"), std::string::npos);
  EXPECT_EQ(mproc__pal_signal(&c.child, MPROC_SIGTERM), 0);
  EXPECT_EQ(mproc__pal_signal(&c.child, MPROC_SIGKILL), 0); // already ending: still fine
  ASSERT_EQ(mproc__pal_wait(&c.child, INT64_MAX), 0);
  EXPECT_TRUE(c.child.reaped);
  EXPECT_EQ(c.child.returncode, 1);
  EXPECT_EQ(mproc__pal_signal(&c.child, MPROC_SIGKILL), 0); // reaped: a no-op
  EXPECT_EQ(mproc__pal_wait(&c.child, 0), 0);
  mproc__child none{}; // never started: refused, never taken for the current process
  none.handle = MPROC_NO_HANDLE;
  EXPECT_EQ(mproc__pal_signal(&none, MPROC_SIGKILL), MPROC_EINVAL);
  EXPECT_EQ(mproc__pal_wait(&none, INT64_MAX), MPROC_EINVAL);
  int code = -1;
  run_out({"exit", "300"}, &code);
  EXPECT_EQ(code, 300); // 32-bit exit codes are kept
}

TEST(Win32Spawn, NoHandleLeaksOnAnyPath) {
  auto cycle = [] {
    run_out({"print", "x"});
    Child bad1, bad2;
    mproc__spawn_req req{};
    req.cwd = "C:\\mproc-no-such-cwd";
    EXPECT_EQ(start(bad1, {"exit", "0"}, req, true, true), MPROC_ENOENT);
    const char *missing[] = {"mproc-no-such-program", nullptr};
    mproc__spawn_req r2{};
    r2.argv = missing;
    EXPECT_EQ(start(bad2, {}, r2, true, true), MPROC_ENOENT);
    Child killed;
    EXPECT_EQ(start(killed, {"sleep", "60000"}, mproc__spawn_req{}, true, true), 0);
  };
  cycle();
  int before = mproc__pal_handle_count();
  for (int i = 0; i < 10; ++i) cycle();
  EXPECT_EQ(mproc__pal_handle_count(), before);
}

// ---- issue 17: batch files, shell children, pipes, long and invalid paths ---------------------------------

extern "C" {
#include "win32/win32.h" // mproc__utf8_to_wide, mproc__wide_to_utf8
}

namespace {

std::wstring widen(const std::string &s) {
  if (s.empty()) return std::wstring();
  int n = MultiByteToWideChar(CP_UTF8, 0, s.data(), (int)s.size(), nullptr, 0);
  std::wstring w((size_t)n, L'\0');
  MultiByteToWideChar(CP_UTF8, 0, s.data(), (int)s.size(), &w[0], n);
  return w;
}

// A fresh directory of its own under the temp directory, removed with everything in it at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string &tag) {
    static int serial = 0;
    path = fs::temp_directory_path() /
           ("mproc-w17-" + tag + "-" + std::to_string(GetCurrentProcessId()) + "-" + std::to_string(++serial));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
  std::string operator/(const std::string &name) const { return (path / name).string(); }
};

void write_file(const std::string &path, const std::string &text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

bool exists(const std::string &path) { return GetFileAttributesW(widen(path).c_str()) != INVALID_FILE_ATTRIBUTES; }

std::string lines_of(const std::vector<std::string> &args) {
  std::string s;
  for (auto &a : args) s += std::to_string(a.size()) + ":" + a + "\n";
  return s;
}

// mproc_run with stdout captured; returns the rc, fills out.
int run_capture(const std::vector<std::string> &argv, std::string *out, const char *executable = nullptr,
                const char *const *env_extra = nullptr, const char *cwd = nullptr) {
  std::vector<const char *> v;
  for (auto &a : argv) v.push_back(a.c_str());
  v.push_back(nullptr);
  mproc_popen_opts o{};
  o.argv = v.data();
  o.executable = executable;
  o.env_extra = env_extra;
  o.cwd = cwd;
  o.capture_output = true;
  mproc_completed r{};
  int rc = mproc_run(&o, 60000, &r);
  if (out) *out = r.stdout_data ? std::string(r.stdout_data, r.stdout_len) : std::string();
  mproc_completed_free(&r);
  return rc;
}

} // namespace

// ---- batch files (BatBadBut, CVE-2024-24576) --------------------------------------------------------

TEST(Win32Batch, CommandLineIsBuiltForCmdRules) {
  const wchar_t *args[] = {L"plain-#$*+.:?@_/x\\y", L"a b", L"", L"x\"y", L"tr\\", L"a\\\"b", L"&", L"a=b", L"^|<>()!",
                           L"\x00e9\x4e2d",         nullptr};
  wchar_t *cmd = nullptr;
  ASSERT_EQ(mproc__win32_batch_cmdline(L"C:\\Windows\\System32\\cmd.exe", L"C:\\d i r\\t.bat", args, &cmd), 0)
      << mproc_last_error();
  EXPECT_EQ(narrow(cmd), narrow(L"C:\\Windows\\System32\\cmd.exe /d /e:ON /v:OFF /c \"\"C:\\d i r\\t.bat\" "
                                L"plain-#$*+.:?@_/x\\y \"a b\" \"\" \"x\"\"y\" \"tr\\\\\" \"a\\\\\"\"b\" \"&\" \"a=b\" "
                                L"\"^|<>()!\" \x00e9\x4e2d\""));
  free(cmd);
  // what cmd.exe would expand or end the line at is refused, with the reason
  for (const wchar_t *bad : {L"%PATH%", L"100%", L"a\nb", L"a\rb"}) {
    const wchar_t *one[] = {L"ok", bad, nullptr};
    cmd = (wchar_t *)1;
    EXPECT_EQ(mproc__win32_batch_cmdline(L"cmd.exe", L"C:\\t.bat", one, &cmd), MPROC_EINVAL) << narrow(bad);
    EXPECT_EQ(cmd, nullptr);
    std::string msg = mproc_last_error();
    EXPECT_NE(msg.find("argument 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find(wcschr(bad, L'%') ? "'%'" : "a "), std::string::npos) << msg;
  }
  const wchar_t *none[] = {nullptr};
  EXPECT_EQ(mproc__win32_batch_cmdline(L"cmd.exe", L"C:\\100%\\t.bat", none, &cmd), MPROC_EINVAL);
  EXPECT_EQ(mproc__win32_batch_cmdline(L"cmd.exe", L"C:\\a\"b\\t.bat", none, &cmd), MPROC_EINVAL);
  // cmd.exe cuts a command line after 8191 characters: refused, not cut
  std::wstring big(8200, L'x');
  const wchar_t *huge[] = {big.c_str(), nullptr};
  EXPECT_EQ(mproc__win32_batch_cmdline(L"cmd.exe", L"C:\\t.bat", huge, &cmd), MPROC_EINVAL);
  EXPECT_NE(std::string(mproc_last_error()).find("8191"), std::string::npos) << mproc_last_error();
}

TEST(Win32Batch, BatchFilesAreRecognisedAsCreateProcessWouldRunThem) {
  for (const wchar_t *p : {L"C:\\x\\t.bat", L"C:\\x\\T.BAT", L"t.cmd", L"C:\\x\\t.Cmd", L"C:\\x\\t.bat. ",
                           L"C:\\x\\t.bat . .", L"C:\\x\\t.bat...", L"C:\\x\\t.bat::$DATA", L"C:\\x\\.bat"})
    EXPECT_TRUE(mproc__win32_is_batch(p)) << narrow(p);
  for (const wchar_t *p : {L"C:\\x\\t.exe", L"C:\\x.bat\\t.exe", L"C:\\x\\t.batx", L"C:\\x\\tbat", L"bat",
                           L"C:\\x\\t.com", L"C:\\x\\t.bat.exe"})
    EXPECT_FALSE(mproc__win32_is_batch(p)) << narrow(p);
}

namespace {
// A batch file that passes its arguments on to the helper's "argv" command, and a marker file that any
// injected command below would create.
struct ForwardingBatch {
  TempDir dir{"bat"};
  std::string bat, marker;
  explicit ForwardingBatch(const std::string &name = "fwd.bat") {
    bat = dir / name;
    marker = dir / "INJECTED";
    write_file(bat, "@\"" + helper_path() + "\" argv %*\r\n");
  }
  std::vector<std::string> hostile() const {
    // Everything here must reach the helper unchanged. Non-ASCII is left out only because the helper's
    // main() gets ANSI argv (the quoting of non-ASCII is covered by CommandLineIsBuiltForCmdRules).
    return {"\"&echo INJECTED>\"" + marker,
            "&echo INJECTED>" + marker,
            "a\"&echo INJECTED>" + marker + "&\"b",
            "\\\"&echo INJECTED>" + marker,
            "\\\\\"&echo INJECTED>" + marker + " \\",
            "x\" | echo INJECTED>" + marker,
            "^",
            "^^&echo INJECTED>" + marker,
            "|",
            "<",
            ">",
            "&",
            "(",
            ")",
            "!PATH!",
            "a b",
            "",
            "\"",
            "\"\"",
            "\"\"\"",
            "a\\",
            "a\\\\",
            "\\\"",
            "\". \"",
            "x. ",
            ". ",
            ";",
            ",",
            "=",
            "a=b",
            "'",
            "`",
            "\t",
            "a\\b c\\",
            "-x:y/z"};
  }
};
} // namespace

TEST(Win32Batch, HostileArgumentsInjectNothingAndArriveExactly) {
  ForwardingBatch fb;
  std::vector<std::string> args = fb.hostile();
  // argv[0] as the batch file itself, with a ". " suffix (still the batch file for Windows), as another
  // case, and as the executable with an unrelated argv[0]
  // Windows drops trailing dots and spaces of a file name; wine 8 drops them only in some cases (". "
  // yes, "." alone no), and a name it does not resolve is simply not found, which starts nothing.
  int ran = 0;
  for (const std::string &prog : {fb.bat, fb.bat + ". ", fb.bat + ".", fb.bat + " ", fb.bat + " . ."}) {
    std::vector<std::string> argv{prog};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    int rc = run_capture(argv, &out);
    if (rc == MPROC_ENOENT && under_wine() && prog != fb.bat) continue;
    ASSERT_EQ(rc, 0) << prog << ": " << mproc_last_error();
    EXPECT_EQ(out, lines_of(args)) << prog;
    ++ran;
  }
  EXPECT_GE(ran, 2); // the plain name and at least ". ", also under wine
  std::vector<std::string> argv{"not-the-program"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  ASSERT_EQ(run_capture(argv, &out, fb.bat.c_str()), 0) << mproc_last_error();
  EXPECT_EQ(out, lines_of(args));
  EXPECT_FALSE(exists(fb.marker));
  // control: an argument of that list handed to CreateProcessW's own batch handling does inject (Windows
  // and wine alike), so the checks above can fail. (Wine's cmd runs the injected echo but not always its
  // redirection, so the control looks for its output.)
  std::vector<std::wstring> wargs{widen(fb.bat), L"a&echo INJECTED"}; // C-runtime quoting leaves it bare
  std::vector<const wchar_t *> ptrs;
  for (auto &a : wargs) ptrs.push_back(a.c_str());
  ptrs.push_back(nullptr);
  wchar_t *line = nullptr;
  ASSERT_EQ(mproc__win32_quote_args(ptrs.data(), &line), 0);
  mproc_os_handle parent, child;
  ASSERT_EQ(mproc__pal_pipe(true, &parent, &child), 0);
  SetHandleInformation((HANDLE)child, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
  STARTUPINFOW si{};
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdOutput = si.hStdError = (HANDLE)child;
  PROCESS_INFORMATION pi{};
  BOOL started = CreateProcessW(wargs[0].c_str(), line, nullptr, nullptr, TRUE, 0, nullptr, nullptr, &si, &pi);
  DWORD err = GetLastError();
  free(line);
  mproc__pal_close(child);
  ASSERT_TRUE(started) << err;
  std::string control = read_all(parent);
  mproc__pal_close(parent);
  WaitForSingleObject(pi.hProcess, 60000);
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  EXPECT_NE(control.find("INJECTED"), std::string::npos) << "the control did not inject: " << control;
}

TEST(Win32Batch, NoInjectionMarkerAfterMprocRuns) {
  // the marker check on its own, after every way of naming the batch file above
  ForwardingBatch fb;
  std::vector<std::string> argv{fb.bat};
  for (auto &a : fb.hostile()) argv.push_back(a);
  std::string out;
  ASSERT_EQ(run_capture(argv, &out), 0) << mproc_last_error();
  EXPECT_FALSE(exists(fb.marker));
}

TEST(Win32Batch, ArgumentsCmdWouldExpandAreRefusedAndNothingRuns) {
  TempDir dir("batref");
  std::string bat = dir / "ran.cmd", marker = dir / "RAN";
  write_file(bat, "@echo ran>\"" + marker + "\"\r\n");
  for (const std::string &bad :
       {std::string("%PATH%"), std::string("100%"), std::string("a\nb"), std::string("a\rb")}) {
    std::string out;
    EXPECT_EQ(run_capture({bat, "fine", bad}, &out), MPROC_EINVAL);
    std::string msg = mproc_last_error();
    EXPECT_NE(msg.find("ran.cmd"), std::string::npos) << msg;
    EXPECT_NE(msg.find("batch file"), std::string::npos) << msg;
  }
  EXPECT_FALSE(exists(marker));
  std::string out;
  ASSERT_EQ(run_capture({bat, "fine"}, &out), 0) << mproc_last_error(); // control: it does run
  EXPECT_TRUE(exists(marker));
}

TEST(Win32Batch, TheBatchFileFoundIsTheOneRunNeverOneInTheCurrentDirectory) {
  TempDir cwd_dir("batcwd"), path_dir("batpath");
  write_file(cwd_dir / "tool.bat", "@echo cwd-copy\r\n");
  write_file(cwd_dir / "only.bat", "@echo cwd-only\r\n");
  write_file(path_dir / "tool.bat", "@echo path-copy\r\n");
  std::string path_var = "PATH=" + path_dir.str();
  const char *extra[] = {path_var.c_str(), nullptr};
  std::string out;
  // the child's cwd holds a tool.bat too
  ASSERT_EQ(run_capture({"tool.bat"}, &out, nullptr, extra, cwd_dir.str().c_str()), 0) << mproc_last_error();
  EXPECT_EQ(out, "path-copy\r\n");
  // and so does the parent's
  wchar_t saved[MAX_PATH * 2];
  GetCurrentDirectoryW(MAX_PATH * 2, saved);
  ASSERT_TRUE(SetCurrentDirectoryW(widen(cwd_dir.str()).c_str()));
  int rc = run_capture({"tool.bat"}, &out, nullptr, extra);
  std::string msg = mproc_last_error();
  int rc_only = run_capture({"only.bat"}, nullptr, nullptr, extra); // in the current directory alone
  SetCurrentDirectoryW(saved);
  ASSERT_EQ(rc, 0) << msg;
  EXPECT_EQ(out, "path-copy\r\n");
  EXPECT_EQ(rc_only, MPROC_ENOENT);
  // a script path holding '&', spaces and parentheses is one quoted path to cmd.exe
  TempDir odd("bat&x (1)");
  std::string marker = odd / "INJECTED";
  write_file(odd / "t.bat", "@echo odd-ok\r\n");
  ASSERT_EQ(run_capture({odd / "t.bat"}, &out), 0) << mproc_last_error();
  EXPECT_EQ(out, "odd-ok\r\n");
}

// ---- shell commands: the system cmd.exe, /d, and the whole tree ends with the child ------------------

TEST(Win32Shell, CommandLineHasSlashDForCmdOnly) {
  wchar_t *cmd = nullptr;
  ASSERT_EQ(mproc__win32_shell_cmdline(L"C:\\Windows\\System32\\cmd.exe", L"echo \"a b\" & exit 3", &cmd), 0);
  EXPECT_EQ(narrow(cmd), "C:\\Windows\\System32\\cmd.exe /d /c \"echo \"a b\" & exit 3\"");
  free(cmd);
  ASSERT_EQ(mproc__win32_shell_cmdline(L"C:\\dir x\\CMD.EXE", L"x", &cmd), 0);
  EXPECT_EQ(narrow(cmd), "\"C:\\dir x\\CMD.EXE\" /d /c \"x\"");
  free(cmd);
  ASSERT_EQ(mproc__win32_shell_cmdline(L"C:\\tools\\other-shell.exe", L"x", &cmd), 0);
  EXPECT_EQ(narrow(cmd), "C:\\tools\\other-shell.exe /c \"x\""); // not cmd.exe: no /d
  free(cmd);
}

TEST(Win32Shell, ComSpecFromTheEnvironmentIsNotTrusted) {
  // %ComSpec% names a program that is not cmd.exe (the helper, which would fail on "/c"): the system
  // cmd.exe runs the command all the same
  std::wstring helper = widen(helper_path());
  wchar_t saved[MAX_PATH * 2];
  DWORD had = GetEnvironmentVariableW(L"ComSpec", saved, MAX_PATH * 2);
  ASSERT_TRUE(SetEnvironmentVariableW(L"ComSpec", helper.c_str()));
  mproc_popen_opts o{};
  o.command = "echo shell-ok";
  o.capture_output = true;
  mproc_completed r{};
  int rc = mproc_run(&o, 60000, &r);
  SetEnvironmentVariableW(L"ComSpec", had ? saved : nullptr);
  ASSERT_EQ(rc, 0) << mproc_last_error();
  EXPECT_EQ(std::string(r.stdout_data, r.stdout_len), "shell-ok\r\n");
  EXPECT_EQ(r.returncode, 0);
  mproc_completed_free(&r);
}

namespace {
// The pid the helper printed, opened for waiting (nullptr if it cannot be opened: it has gone).
HANDLE open_reported(const std::string &out, DWORD *pid_out = nullptr) {
  DWORD pid = (DWORD)strtoul(out.c_str(), nullptr, 10);
  if (pid_out) *pid_out = pid;
  return pid ? OpenProcess(SYNCHRONIZE | PROCESS_QUERY_INFORMATION | PROCESS_TERMINATE, FALSE, pid) : nullptr;
}

// Start `command` with stdout piped; read until the grandchild's pid has arrived; return it opened.
HANDLE start_shell_with_grandchild(mproc_popen **p, const std::string &command) {
  mproc_popen_opts o{};
  o.command = command.c_str();
  o.stdout_mode = MPROC_PIPE;
  if (mproc_popen_create(p, &o) != 0) {
    ADD_FAILURE() << mproc_last_error();
    return nullptr;
  }
  // the helper prints "<pid>" in one write, then sleeps: one read that returns data has all of it
  std::string got;
  char buf[64];
  int64_t deadline = mproc__deadline_from_timeout(30000);
  while (got.empty()) {
    size_t n = 0;
    int rc = mproc_popen_read(*p, 1, buf, sizeof buf, mproc__ms_until(deadline), &n);
    if (rc || n == 0) break;
    got.append(buf, n);
  }
  HANDLE h = open_reported(got);
  EXPECT_NE(h, nullptr) << "grandchild pid '" << got << "'";
  return h;
}

// The rest of the child's stdout reaches end of file: every holder of the pipe (the grandchild too) is gone.
bool stdout_reaches_eof(mproc_popen *p) {
  char buf[256];
  int64_t deadline = mproc__deadline_from_timeout(30000);
  for (;;) {
    size_t n = 0;
    int rc = mproc_popen_read(p, 1, buf, sizeof buf, mproc__ms_until(deadline), &n);
    if (rc) return false;
    if (n == 0) return true;
  }
}
} // namespace

TEST(Win32Shell, KillAndTerminateEndWhatTheShellStarted) {
  std::string command = "\"" + helper_path() + "\" pid sleep 60000";
  for (bool use_kill : {true, false}) {
    mproc_popen *p = nullptr;
    HANDLE gc = start_shell_with_grandchild(&p, command);
    ASSERT_NE(gc, nullptr);
    EXPECT_EQ(WaitForSingleObject(gc, 0), (DWORD)WAIT_TIMEOUT);
    ASSERT_EQ(use_kill ? mproc_popen_kill(p) : mproc_popen_terminate(p), 0) << mproc_last_error();
    int code = -1;
    ASSERT_EQ(mproc_popen_wait(p, 30000, &code), 0) << mproc_last_error();
    EXPECT_EQ(code, 1);
    EXPECT_EQ(WaitForSingleObject(gc, 30000), (DWORD)WAIT_OBJECT_0) << (use_kill ? "kill" : "terminate");
    EXPECT_TRUE(stdout_reaches_eof(p));
    CloseHandle(gc);
    mproc_popen_destroy(p);
  }
}

TEST(Win32Shell, ControlKillingCmdAloneLeavesTheGrandchild) {
  // What the job is for: TerminateProcess of cmd.exe alone does not reach what it started.
  std::string command = "\"" + helper_path() + "\" pid sleep 60000";
  mproc_popen *p = nullptr;
  HANDLE gc = start_shell_with_grandchild(&p, command);
  ASSERT_NE(gc, nullptr);
  HANDLE shell = OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE, FALSE, (DWORD)mproc_popen_pid(p));
  ASSERT_NE(shell, nullptr);
  ASSERT_TRUE(TerminateProcess(shell, 7));
  ASSERT_EQ(WaitForSingleObject(shell, 30000), (DWORD)WAIT_OBJECT_0);
  CloseHandle(shell);
  EXPECT_EQ(WaitForSingleObject(gc, 0), (DWORD)WAIT_TIMEOUT) << "the grandchild died with cmd.exe";
  // the Popen's kill still ends it (cmd.exe has ended but is not reaped: the job remains)
  EXPECT_EQ(mproc_popen_kill(p), 0) << mproc_last_error();
  EXPECT_EQ(WaitForSingleObject(gc, 30000), (DWORD)WAIT_OBJECT_0);
  CloseHandle(gc);
  mproc_popen_destroy(p);
}

TEST(Win32Shell, RunTimeoutEndsWhatTheShellStarted) {
  std::string command = "\"" + helper_path() + "\" pid sleep 60000";
  mproc_popen_opts o{};
  o.command = command.c_str();
  o.capture_output = true;
  mproc_completed r{};
  ASSERT_EQ(mproc_run(&o, 3000, &r), MPROC_ETIMEDOUT) << mproc_last_error();
  EXPECT_TRUE(r.timed_out);
  std::string out = r.stdout_data ? std::string(r.stdout_data, r.stdout_len) : "";
  mproc_completed_free(&r);
  DWORD pid = 0;
  HANDLE gc = open_reported(out, &pid);
  ASSERT_NE(pid, 0u) << "the grandchild did not report its pid within the timeout: '" << out << "'";
  // gone already (no such process), or ending: it must not keep running
  if (gc) {
    EXPECT_EQ(WaitForSingleObject(gc, 30000), (DWORD)WAIT_OBJECT_0) << "grandchild " << pid << " outlived the timeout";
    CloseHandle(gc);
  } else {
    EXPECT_EQ(GetLastError(), (DWORD)ERROR_INVALID_PARAMETER) << "grandchild " << pid;
  }
}

TEST(Win32Shell, WhatTheShellStartsOnPurposeOutlivesANormalEnd) {
  // `start` leaves a program running after cmd.exe exits; once cmd.exe has ended by itself, destroying
  // the Popen lifts kill-on-close from the job, so that program keeps running (as on POSIX with '&').
  std::string command = "start \"\" /b \"" + helper_path() + "\" pid sleep 60000";
  mproc_popen *p = nullptr;
  HANDLE gc = start_shell_with_grandchild(&p, command);
  ASSERT_NE(gc, nullptr);
  int code = -1;
  ASSERT_EQ(mproc_popen_wait(p, 30000, &code), 0) << mproc_last_error();
  EXPECT_EQ(code, 0);
  mproc_popen_destroy(p);
  // Nothing left to synchronise with: a program the job would kill is dead within milliseconds, so a
  // second of life shows it was spared.
  EXPECT_EQ(WaitForSingleObject(gc, 1000), (DWORD)WAIT_TIMEOUT);
  TerminateProcess(gc, 0);
  CloseHandle(gc);
}

// ---- one lock among mproc's spawns: inherit_fds never takes another spawn's handles in flight ---------

TEST(Win32Inherit, InheritFdsSpawnsNeverHoldOtherSpawnsPipes) {
  // As ConcurrentSpawnsNeverHoldEachOthersPipes, but the long-lived children are started with
  // inherit_fds (close_fds=False): every inheritable handle of the process at that moment goes to them.
  // The short runs' inheritable pipe duplicates exist while their CreateProcessW runs; without the spawn
  // lock a long-lived child started meanwhile holds one, and that short run sees end of file only when
  // the long-lived child ends (a minute).
  ConcurrentSpawns r = run_concurrent_spawns(16, true, 2, 10);
  EXPECT_EQ(r.failed, 0) << r.why;
  EXPECT_EQ(r.late, 0) << "short runs whose pipe a long-lived inherit_fds child held";
}

// ---- pipes admit only the current user ---------------------------------------------------------------

TEST(Win32Pipe, TheDaclAdmitsTheCurrentUserAlone) {
  mproc_os_handle parent, child;
  ASSERT_EQ(mproc__pal_pipe(true, &parent, &child), 0) << mproc_last_error();
  DWORD need = 0;
  GetKernelObjectSecurity((HANDLE)parent, DACL_SECURITY_INFORMATION, nullptr, 0, &need);
  ASSERT_GT(need, 0u) << GetLastError();
  std::vector<unsigned char> sd(need);
  ASSERT_TRUE(GetKernelObjectSecurity((HANDLE)parent, DACL_SECURITY_INFORMATION, sd.data(), need, &need))
      << GetLastError();
  BOOL present = FALSE, defaulted = FALSE;
  PACL dacl = nullptr;
  ASSERT_TRUE(GetSecurityDescriptorDacl(sd.data(), &present, &dacl, &defaulted));
  ASSERT_TRUE(present);
  ASSERT_NE(dacl, nullptr); // a NULL DACL would admit everyone
  EXPECT_EQ(dacl->AceCount, 1);
  void *ace = nullptr;
  ASSERT_TRUE(GetAce(dacl, 0, &ace));
  auto *allowed = (ACCESS_ALLOWED_ACE *)ace;
  EXPECT_EQ(allowed->Header.AceType, ACCESS_ALLOWED_ACE_TYPE);
  HANDLE token = nullptr;
  ASSERT_TRUE(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token));
  unsigned char tu[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  DWORD got = 0;
  ASSERT_TRUE(GetTokenInformation(token, TokenUser, tu, sizeof tu, &got));
  CloseHandle(token);
  EXPECT_TRUE(EqualSid((PSID)&allowed->SidStart, ((TOKEN_USER *)tu)->User.Sid));
  EXPECT_TRUE((allowed->Mask & FILE_ALL_ACCESS) == FILE_ALL_ACCESS || (allowed->Mask & GENERIC_ALL))
      << std::hex << allowed->Mask;
  mproc__pal_close(parent);
  mproc__pal_close(child);
}

// ---- program lookup: .com before .exe; long paths; names that are not valid UTF-8 / UTF-16 --------------

TEST(Win32Spawn, ComIsTriedBeforeExe) {
  TempDir dir("comexe");
  fs::copy_file(helper_path(), dir / "prog.com");
  fs::copy_file(helper_path(), dir / "prog.exe");
  std::string path_var = "PATH=" + dir.str();
  const char *extra[] = {path_var.c_str(), nullptr};
  std::string out;
  ASSERT_EQ(run_capture({"prog", "exe"}, &out, nullptr, extra), 0) << mproc_last_error();
  EXPECT_EQ(_stricmp(fs::path(out).filename().string().c_str(), "prog.com"), 0) << out;
  ASSERT_EQ(run_capture({"prog.exe", "exe"}, &out, nullptr, extra), 0) << mproc_last_error();
  EXPECT_EQ(_stricmp(fs::path(out).filename().string().c_str(), "prog.exe"), 0) << out;
  ASSERT_EQ(run_capture({dir / "prog", "exe"}, &out), 0) << mproc_last_error(); // with a directory too
  EXPECT_EQ(_stricmp(fs::path(out).filename().string().c_str(), "prog.com"), 0) << out;
}

namespace {
// Create every directory of a path longer than MAX_PATH (through its \\?\ form).
bool make_long_dirs(const std::wstring &full) {
  for (size_t i = 3; i <= full.size(); ++i)
    if (i == full.size() || full[i] == L'\\') {
      std::wstring part = L"\\\\?\\" + full.substr(0, i);
      if (!CreateDirectoryW(part.c_str(), nullptr) && GetLastError() != ERROR_ALREADY_EXISTS) return false;
    }
  return true;
}
} // namespace

namespace {
std::wstring short_form(const std::wstring &full) {
  wchar_t buf[2048];
  DWORD n = GetShortPathNameW((L"\\\\?\\" + full).c_str(), buf, 2048);
  std::wstring s = n && n < 2048 ? std::wstring(buf, n) : full;
  return s.rfind(L"\\\\?\\", 0) == 0 ? s.substr(4) : s;
}
} // namespace

TEST(Win32Spawn, LongWorkingDirectoriesAndProgramPaths) {
  TempDir base("long");
  std::wstring dir = widen(base.str());
  for (int i = 0; dir.size() < 300; ++i) dir += L"\\a-rather-long-directory-name-" + std::to_wstring(i);
  ASSERT_TRUE(make_long_dirs(dir)) << GetLastError();
  std::wstring prog = dir + L"\\mproc helper copy.exe";
  ASSERT_GT(prog.size(), (size_t)MAX_PATH);
  ASSERT_TRUE(CopyFileW(widen(helper_path()).c_str(), (L"\\\\?\\" + prog).c_str(), FALSE)) << GetLastError();
  auto cleanup = [&] { // through the \\?\ form (std::filesystem may not manage paths this long)
    DeleteFileW((L"\\\\?\\" + prog).c_str());
    for (std::wstring d = dir; d.size() > widen(base.str()).size(); d = d.substr(0, d.rfind(L'\\')))
      RemoveDirectoryW((L"\\\\?\\" + d).c_str());
  };
  // A working directory of 300 characters: Windows (and wine) refuse it to CreateProcessW in every form,
  // so its short (8.3) form is given, and the child runs there.
  std::string out;
  int rc = run_capture({helper_path(), "cwd"}, &out, nullptr, nullptr, narrow(dir).c_str());
  EXPECT_EQ(rc, 0) << mproc_last_error();
  if (rc == 0) {
    bool same =
        _wcsicmp(widen(out).c_str(), dir.c_str()) == 0 || _wcsicmp(widen(out).c_str(), short_form(dir).c_str()) == 0;
    EXPECT_TRUE(same) << out << "\n  want " << narrow(dir) << "\n  or   " << narrow(short_form(dir));
  }
  // a long cwd that does not exist is reported as such
  std::string missing = narrow(dir) + "\\missing";
  EXPECT_EQ(run_capture({helper_path(), "exit", "0"}, &out, nullptr, nullptr, missing.c_str()), MPROC_ENOENT);
  EXPECT_NE(std::string(mproc_last_error()).find("missing"), std::string::npos) << mproc_last_error();
  // A program path of over MAX_PATH characters, with and without its extension: found through the long
  // form (\\?\...), then run by its short form or its long form (Windows takes either).
  if (under_wine()) {
    cleanup();
    GTEST_SKIP() << "wine 8's CreateProcessW cannot start a program whose path is MAX_PATH or longer in any form "
                    "(plain: ERROR_FILE_NOT_FOUND, \\\\?\\: ERROR_INVALID_NAME, 8.3: ERROR_NOACCESS)";
  }
  for (const std::wstring &p : {prog, prog.substr(0, prog.size() - 4)}) {
    ASSERT_EQ(run_capture({narrow(p), "exe"}, &out), 0) << mproc_last_error();
    std::wstring got = widen(out);
    if (got.rfind(L"\\\\?\\", 0) == 0) got = got.substr(4);
    EXPECT_TRUE(_wcsicmp(got.c_str(), prog.c_str()) == 0 || _wcsicmp(got.c_str(), short_form(prog).c_str()) == 0)
        << out;
  }
  cleanup();
}

TEST(Win32Utf, StringsThatAreNotValidUtf8OrUtf16AreErrors) {
  // UTF-16 from Windows with a lone surrogate: an error, never U+FFFD (which would name another file)
  const wchar_t lone[] = {L'a', (wchar_t)0xD800, L'b', 0};
  EXPECT_EQ(mproc__wide_to_utf8(lone, -1), nullptr);
  EXPECT_NE(std::string(mproc_last_error()).find("not valid UTF-16"), std::string::npos) << mproc_last_error();
  char *ok = mproc__wide_to_utf8(L"\x00e9\xd83d\xde00", -1); // a valid pair is fine
  ASSERT_NE(ok, nullptr);
  EXPECT_STREQ(ok, "\xc3\xa9\xf0\x9f\x98\x80");
  free(ok);
  // UTF-8 that is not valid, including an encoded surrogate (CESU-8 / WTF-8): an error
  for (const char *bad : {"\xff", "a\xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"}) {
    EXPECT_EQ(mproc__utf8_to_wide(bad, "test"), nullptr) << bad;
    std::string out;
    std::string prog = std::string("C:\\mproc-") + bad;
    EXPECT_EQ(run_capture({prog}, &out), MPROC_EINVAL);
    EXPECT_EQ(run_capture({helper_path(), "exit", "0"}, &out, nullptr, nullptr, prog.c_str()), MPROC_EINVAL);
    EXPECT_NE(std::string(mproc_last_error()).find("cwd"), std::string::npos) << mproc_last_error();
  }
}
