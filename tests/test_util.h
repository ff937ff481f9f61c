// Small utilities shared by the test suites.
#ifndef MPROC_TEST_UTIL_H
#define MPROC_TEST_UTIL_H

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "mproc.h"

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#else
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#endif

namespace mproc_test {

// Whether this build targets Windows (the tests themselves stay platform-neutral; a few expectations,
// such as signal numbers, differ and say so).
#ifdef _WIN32
constexpr bool kWindows = true;
#else
constexpr bool kWindows = false;
#endif

// Whether mproc was built without OpenSSL's libcrypto (POSIX, MPROC_WITH_LIBCRYPTO off or not found): then
// every authkey is refused with MPROC_ENOTSUP (the suites that use keys define MPROC_TEST_NO_CRYPTO so).
#ifdef MPROC_TEST_NO_CRYPTO
constexpr bool kNoCrypto = true;
#else
constexpr bool kNoCrypto = false;
#endif

// Whether this build runs under ThreadSanitizer (GCC says so with a macro, Clang with a feature test).
#if defined(__SANITIZE_THREAD__)
constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kThreadSanitizer = true;
#else
constexpr bool kThreadSanitizer = false;
#endif
#else
constexpr bool kThreadSanitizer = false;
#endif

// Whether this build runs under AddressSanitizer (GCC: a macro; Clang: a feature test).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif
// A sanitizer build, several times slower: long stress tests run shorter there (full length elsewhere).
constexpr bool kSanitizer = kAddressSanitizer || kThreadSanitizer;

#ifdef _WIN32
// Whether we run under wine (for its documented deviations only).
inline bool under_wine() {
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  return ntdll && GetProcAddress(ntdll, "wine_get_version") != nullptr;
}
#endif

// What abort() makes of a process's exit status on Windows: 3 under msvcrt (MinGW's default C runtime;
// also the UCRT once _set_abort_behavior has cleared _CALL_REPORTFAULT, as tests/helpers/quiet_crashes.h
// does), 0xC0000409 (STATUS_STACK_BUFFER_OVERRUN, a fast fail) under the UCRT otherwise.
inline bool is_windows_abort_status(int code) { return code == 3 || (unsigned)code == 0xC0000409u; }

// Absolute path of the helper program, which the build puts beside every test executable.
inline std::string helper_path() {
  char *self = nullptr;
  if (mproc_self_exe(&self) != 0) return "mproc_helper";
  std::string s(self);
  mproc_free(self);
  size_t slash = s.find_last_of(kWindows ? "\\/" : "/");
  return s.substr(0, slash + 1) + (kWindows ? "mproc_helper.exe" : "mproc_helper");
}

// argv for the helper (helper_path(): helpers/mproc_helper.c) with a script; keeps the strings alive.
struct Argv {
  std::vector<std::string> words;
  std::vector<const char *> ptrs;
  explicit Argv(std::vector<std::string> script) : words(std::move(script)) {
    words.insert(words.begin(), helper_path());
    for (auto &w : words) ptrs.push_back(w.c_str());
    ptrs.push_back(nullptr);
  }
  const char *const *get() const { return ptrs.data(); }
};

// The address of a temporary, for passing option structs inline as C code does with compound
// literals: mproc_run(ptr(mproc_popen_opts{.argv = argv}), ...). Valid for the full expression.
template <class T>
const T *ptr(const T &v) {
  return &v;
}

// Expected byte i of the helper's "out N" / "err N" pattern.
inline char pattern_at(size_t i) { return (char)('a' + i % 26); }

// Whether `s` is exactly the helper's pattern of s.size() bytes; on failure says where it breaks.
inline ::testing::AssertionResult is_pattern(const char *data, size_t len, size_t expect_len) {
  if (len != expect_len) return ::testing::AssertionFailure() << "length " << len << ", expected " << expect_len;
  for (size_t i = 0; i < len; ++i)
    if (data[i] != pattern_at(i)) return ::testing::AssertionFailure() << "byte " << i << " is '" << data[i] << "'";
  return ::testing::AssertionSuccess();
}

// Kill a process by pid (test cleanup of grandchildren the library does not own).
inline void kill_pid(long long pid) {
#ifdef _WIN32
  HANDLE h = OpenProcess(PROCESS_TERMINATE, FALSE, (DWORD)pid);
  if (h) {
    TerminateProcess(h, 1);
    CloseHandle(h);
  }
#else
  kill((pid_t)pid, SIGKILL);
#endif
}

// The environment without the C runtime calls MSVC deprecates (getenv, _wgetenv: C4996).
//
// env_get: the value of `name` in this process's environment as the OS keeps it (what children
// inherit): UTF-8 on Windows (read as UTF-16), the bytes as they are on POSIX; nullopt when unset.
// crt_env_get: the value in the C runtime's narrow copy (getenv_s on Windows), which _putenv changes.
// env_set: set `name` to the UTF-8 `value` in the OS environment, or remove it when value is NULL.
#ifdef _WIN32
inline std::wstring to_wide(const std::string &s) {
  if (s.empty()) return std::wstring();
  int n = MultiByteToWideChar(CP_UTF8, 0, s.data(), (int)s.size(), nullptr, 0);
  std::wstring w((size_t)n, L'\0');
  MultiByteToWideChar(CP_UTF8, 0, s.data(), (int)s.size(), &w[0], n);
  return w;
}
inline std::string to_utf8(const std::wstring &w) {
  if (w.empty()) return std::string();
  int n = WideCharToMultiByte(CP_UTF8, 0, w.data(), (int)w.size(), nullptr, 0, nullptr, nullptr);
  std::string s((size_t)n, '\0');
  WideCharToMultiByte(CP_UTF8, 0, w.data(), (int)w.size(), &s[0], n, nullptr, nullptr);
  return s;
}
inline std::optional<std::string> env_get(const char *name) {
  std::wstring wn = to_wide(name);
  SetLastError(ERROR_SUCCESS);
  DWORD n = GetEnvironmentVariableW(wn.c_str(), nullptr, 0);
  if (n == 0) return GetLastError() == ERROR_ENVVAR_NOT_FOUND ? std::nullopt : std::optional<std::string>("");
  std::wstring v(n, L'\0');
  n = GetEnvironmentVariableW(wn.c_str(), &v[0], n);
  v.resize(n);
  return to_utf8(v);
}
inline std::optional<std::string> crt_env_get(const char *name) {
  size_t n = 0;
  // the size query: 0 from the UCRT, ERANGE from wine's msvcrt; n = 0 means unset either way
  errno_t e = getenv_s(&n, nullptr, 0, name);
  if ((e != 0 && e != ERANGE) || n == 0) return std::nullopt;
  std::string v(n, '\0');
  if (getenv_s(&n, &v[0], v.size(), name) != 0) return std::nullopt;
  v.resize(n - 1);
  return v;
}
inline void env_set(const char *name, const char *value) {
  SetEnvironmentVariableW(to_wide(name).c_str(), value ? to_wide(value).c_str() : nullptr);
}
#else
inline std::optional<std::string> env_get(const char *name) {
  const char *v = std::getenv(name); // POSIX only: not compiled by MSVC
  return v ? std::optional<std::string>(v) : std::nullopt;
}
inline std::optional<std::string> crt_env_get(const char *name) { return env_get(name); }
inline void env_set(const char *name, const char *value) {
  if (value)
    setenv(name, value, 1);
  else
    unsetenv(name);
}
#endif

// Number of open fds / handles of this process (leak checks).
inline int open_handle_count() {
#ifdef _WIN32
  DWORD n = 0;
  if (GetProcessHandleCount(GetCurrentProcess(), &n) && n > 0) return (int)n;
  int count = 0; // wine answers 0: probe the handle table
  for (uintptr_t v = 4; v < 0x10000; v += 4) {
    DWORD fl;
    if (GetHandleInformation((HANDLE)v, &fl)) ++count;
  }
  return count;
#else
  int count = 0;
  for (int fd = 0; fd < 4096; ++fd)
    if (fcntl(fd, F_GETFD) != -1) ++count;
  return count;
#endif
}

// Run the helper with the given script and capture both streams. Fails the test on a start error.
struct Captured {
  int rc = 0;
  int returncode = -1000;
  std::string out, err;
};

inline Captured run_helper(std::vector<std::string> script, mproc_popen_opts opts = mproc_popen_opts{},
                           int64_t timeout_ms = 60000) {
  std::string helper = helper_path();
  std::vector<const char *> argv{helper.c_str()};
  for (auto &a : script) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  opts.argv = argv.data();
  if (opts.stdout_mode == MPROC_INHERIT && opts.stderr_mode == MPROC_INHERIT) opts.capture_output = true;
  mproc_completed r;
  Captured c;
  c.rc = mproc_run(&opts, timeout_ms, &r);
  c.returncode = r.returncode;
  if (r.stdout_data) c.out.assign(r.stdout_data, r.stdout_len);
  if (r.stderr_data) c.err.assign(r.stderr_data, r.stderr_len);
  mproc_completed_free(&r);
  return c;
}

// Both ends of an mproc_pipe(duplex), destroyed with the pair.
struct PipePair {
  mproc_connection *a = nullptr, *b = nullptr;
  explicit PipePair(bool duplex = true) { EXPECT_EQ(mproc_pipe(duplex, &a, &b), 0) << mproc_last_error(); }
  ~PipePair() {
    mproc_connection_destroy(a);
    mproc_connection_destroy(b);
  }
};

// A child running target under `method`, with these objects handed to it and arg[0..arg_size) as its
// argument bytes: started, or nullptr with a failed expectation.
inline mproc_process *start_child(mproc_target target, std::vector<mproc_object> objs, const void *arg, size_t arg_size,
                                  mproc_start_method method) {
  mproc_process_opts o{};
  o.target = target;
  o.objects = objs.data();
  o.object_count = objs.size();
  o.start_method = method;
  o.arg = arg;
  o.arg_size = arg_size;
  mproc_process *p = nullptr;
  EXPECT_EQ(mproc_process_create(&p, &o), 0) << mproc_last_error();
  if (!p) return nullptr;
  EXPECT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  return p;
}
// Join a child started so (up to timeout_ms) and destroy it: its exit code (-1: none).
inline int join_child(mproc_process *p, int64_t timeout_ms) {
  EXPECT_EQ(mproc_process_join(p, timeout_ms), 0);
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  mproc_process_destroy(p);
  return code;
}

} // namespace mproc_test

#endif
