/* Windows PAL: the core (pal.h, "core"): OS errors, the thread's error state, clocks, CPU counts,
 * identity, handle flags, threads, the global lock, the environment, and UTF-8 <-> UTF-16. */
#include "win32.h"

#include "spawn.h" /* mproc__win32_wait_ms */

#include <process.h> /* _beginthreadex */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tlhelp32.h>

int mproc__pal_os_error(void) { return (int)GetLastError(); }

int mproc__pal_map_os_error(int e) {
  switch ((DWORD)e) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
    case ERROR_DIRECTORY:
    case ERROR_INVALID_NAME:
    case ERROR_MOD_NOT_FOUND:
      return MPROC_ENOENT;
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
    case ERROR_BAD_EXE_FORMAT:
    case ERROR_EXE_MACHINE_TYPE_MISMATCH:
    case ERROR_PRIVILEGE_NOT_HELD:
      return MPROC_EPERM;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
      return MPROC_ENOMEM;
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED:
      return MPROC_EPIPE;
    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS:
      return MPROC_EEXIST;
    case ERROR_TIMEOUT:
    case WAIT_TIMEOUT:
      return MPROC_ETIMEDOUT;
    case ERROR_INVALID_HANDLE:
    case ERROR_INVALID_PARAMETER:
      return MPROC_EINVAL;
    case ERROR_NOT_SUPPORTED:
    case ERROR_CALL_NOT_IMPLEMENTED:
      return MPROC_ENOTSUP;
    default:
      return MPROC_ESYS;
  }
}

static const char *error_name(DWORD e) {
  switch (e) {
// clang-format off
#define N(x) \
  case x:    \
    return #x;
    N(ERROR_SUCCESS) N(ERROR_INVALID_FUNCTION) N(ERROR_FILE_NOT_FOUND) N(ERROR_PATH_NOT_FOUND)
    N(ERROR_TOO_MANY_OPEN_FILES) N(ERROR_ACCESS_DENIED) N(ERROR_INVALID_HANDLE) N(ERROR_NOT_ENOUGH_MEMORY)
    N(ERROR_INVALID_DATA) N(ERROR_OUTOFMEMORY) N(ERROR_INVALID_DRIVE) N(ERROR_NOT_SUPPORTED)
    N(ERROR_BAD_NETPATH) N(ERROR_SHARING_VIOLATION) N(ERROR_FILE_EXISTS) N(ERROR_INVALID_PARAMETER)
    N(ERROR_BROKEN_PIPE) N(ERROR_CALL_NOT_IMPLEMENTED) N(ERROR_INSUFFICIENT_BUFFER) N(ERROR_INVALID_NAME)
    N(ERROR_MOD_NOT_FOUND) N(ERROR_ALREADY_EXISTS) N(ERROR_BAD_EXE_FORMAT) N(ERROR_DIRECTORY)
    N(ERROR_EXE_MACHINE_TYPE_MISMATCH) N(ERROR_PIPE_BUSY) N(ERROR_NO_DATA) N(ERROR_PIPE_NOT_CONNECTED)
    N(ERROR_MORE_DATA) N(WAIT_TIMEOUT) N(ERROR_OPERATION_ABORTED) N(ERROR_IO_INCOMPLETE) N(ERROR_IO_PENDING)
    N(ERROR_PIPE_CONNECTED) N(ERROR_TIMEOUT) N(ERROR_PRIVILEGE_NOT_HELD) N(ERROR_COMMITMENT_LIMIT)
    N(ERROR_TOO_MANY_POSTS) N(ERROR_NOT_OWNER) N(ERROR_SEM_TIMEOUT)
    N(ERROR_ENVVAR_NOT_FOUND) N(ERROR_NO_UNICODE_TRANSLATION) N(ERROR_ABANDONED_WAIT_0)
    N(ERROR_NETNAME_DELETED) N(ERROR_CONNECTION_ABORTED)
#undef N
/* winsock's (listen.c): <winsock2.h> is not included here, so by number */
#define W(n, x) \
  case n:       \
    return #x;
    W(10013, WSAEACCES) W(10035, WSAEWOULDBLOCK) W(10047, WSAEAFNOSUPPORT) W(10048, WSAEADDRINUSE)
    W(10049, WSAEADDRNOTAVAIL) W(10051, WSAENETUNREACH) W(10053, WSAECONNABORTED) W(10054, WSAECONNRESET)
    W(10060, WSAETIMEDOUT) W(10061, WSAECONNREFUSED) W(10065, WSAEHOSTUNREACH) W(10093, WSANOTINITIALISED)
    W(11001, WSAHOST_NOT_FOUND) W(11004, WSANO_DATA)
#undef W
    default:
      return "ERROR_?";
    // clang-format on
  }
}

void mproc__pal_describe_os_error(int oserr, char *buf, size_t size) {
  DWORD e = (DWORD)oserr;
  wchar_t wtext[256];
  char text[512];
  text[0] = '\0';
  DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, e,
                           MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), wtext, 256, NULL);
  while (n > 0 && (wtext[n - 1] == L'\r' || wtext[n - 1] == L'\n' || wtext[n - 1] == L' ' || wtext[n - 1] == L'.')) --n;
  if (n > 0) {
    int m = WideCharToMultiByte(CP_UTF8, 0, wtext, (int)n, text, (int)sizeof text - 1, NULL, NULL);
    text[m > 0 ? m : 0] = '\0';
  }
  snprintf(buf, size, "%s, error %lu: %s", error_name(e), (unsigned long)e, text);
}

int64_t mproc__pal_monotonic_ns(void) {
  static LARGE_INTEGER freq; /* benign race: every thread computes the same value */
  LARGE_INTEGER c;
  if (freq.QuadPart == 0) QueryPerformanceFrequency(&freq);
  QueryPerformanceCounter(&c);
  /* split to avoid overflow of c * 1e9 */
  int64_t sec = c.QuadPart / freq.QuadPart, rem = c.QuadPart % freq.QuadPart;
  return sec * 1000000000 + rem * 1000000000 / freq.QuadPart;
}

int mproc__pal_cpu_count(void) {
  DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  return n ? (int)n : 1;
}

int mproc__pal_process_cpu_count(void) {
  DWORD_PTR proc_mask = 0, sys_mask = 0;
  if (!GetProcessAffinityMask(GetCurrentProcess(), &proc_mask, &sys_mask) || proc_mask == 0)
    return mproc__pal_cpu_count();
  /* A process in one processor group: the mask covers that group (<= 64 CPUs). */
  int n = 0;
  for (; proc_mask; proc_mask &= proc_mask - 1) ++n;
  return n;
}

int mproc__pal_current_cpu(void) {
  PROCESSOR_NUMBER n;
  GetCurrentProcessorNumberEx(&n);
  return (int)n.Group * 64 + (int)n.Number;
}

int64_t mproc__pal_getpid(void) { return (int64_t)GetCurrentProcessId(); }
int64_t mproc__pal_getpid_uncached(void) { return (int64_t)GetCurrentProcessId(); }

int64_t mproc__pal_getppid(void) {
  /* The creator's pid as recorded at creation; walk a process snapshot (no ntdll internals). */
  static volatile LONG64 cached = -1;
  if (cached >= 0) return cached;
  DWORD self = GetCurrentProcessId(), parent = 0;
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
  if (snap != INVALID_HANDLE_VALUE) {
    PROCESSENTRY32W pe;
    pe.dwSize = sizeof pe;
    for (BOOL ok = Process32FirstW(snap, &pe); ok; ok = Process32NextW(snap, &pe)) {
      if (pe.th32ProcessID == self) {
        parent = pe.th32ParentProcessID;
        break;
      }
    }
    CloseHandle(snap);
  }
  cached = (LONG64)parent;
  return (int64_t)parent;
}

void mproc__pal_advise_huge(void *p, size_t len) { /* large pages need SeLockMemoryPrivilege: none */
  (void)p;
  (void)len;
}

void mproc__pal_close(mproc_os_handle h) {
  if (h == MPROC_NO_HANDLE || h == 0) return;
  mproc__win32_conn_forget(MPROC__H(h));    /* a wait's zero read still pending on it (conn.c) */
  if (mproc__win32_close_socket(h)) return; /* a socket wants closesocket, which frees winsock's part too */
  CloseHandle(MPROC__H(h));
}

bool mproc__pal_handle_valid(mproc_os_handle h) {
  DWORD fl;
  return h != MPROC_NO_HANDLE && h != 0 && GetHandleInformation(MPROC__H(h), &fl);
}

mproc__handle_kind mproc__pal_handle_kind(mproc_os_handle h) {
  if (!mproc__pal_handle_valid(h)) return MPROC__HK_INVALID;
  switch (GetFileType(MPROC__H(h))) {
    case FILE_TYPE_DISK:
      return MPROC__HK_FILE;
    case FILE_TYPE_PIPE:
      return MPROC__HK_PIPE;
    case FILE_TYPE_CHAR:
      return MPROC__HK_CHAR;
    default:
      return MPROC__HK_OTHER;
  }
}

int mproc__pal_set_cloexec(mproc_os_handle h, bool cloexec) {
  if (!SetHandleInformation(MPROC__H(h), HANDLE_FLAG_INHERIT, cloexec ? 0 : HANDLE_FLAG_INHERIT))
    return mproc__fail_os(0, (int)GetLastError(), "SetHandleInformation on handle %p", (void *)MPROC__H(h));
  return 0;
}

bool mproc__pal_get_cloexec(mproc_os_handle h) {
  DWORD fl = 0;
  return GetHandleInformation(MPROC__H(h), &fl) && !(fl & HANDLE_FLAG_INHERIT);
}

int mproc__pal_handle_count(void) {
  DWORD n = 0;
  int kept = mproc__win32_conn_kept_handles(); /* they go with their connection handles (conn.c) */
  if (GetProcessHandleCount(GetCurrentProcess(), &n) && n > 0) return (int)n - kept;
  /* Wine answers 0. Handle values are multiples of 4 in a per-process table: probe it. Only leak
   * tests use this, so the cost (65536 / 4 queries, about a millisecond) does not matter. */
  int count = 0;
  for (uintptr_t v = 4; v < 0x10000; v += 4) {
    DWORD fl;
    if (GetHandleInformation((HANDLE)v, &fl)) ++count;
  }
  return count - kept;
}

wchar_t *mproc__utf8_to_wide(const char *s, const char *what) {
  if (!s) return NULL;
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  if (n <= 0) {
    mproc__fail(MPROC_EINVAL, "%s is not valid UTF-8", what ? what : "string");
    return NULL;
  }
  wchar_t *w = (wchar_t *)malloc(sizeof(wchar_t) * (size_t)n);
  if (!w) {
    mproc__fail(MPROC_ENOMEM, "out of memory converting %s to UTF-16", what ? what : "string");
    return NULL;
  }
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n);
  return w;
}

char *mproc__wide_to_utf8(const wchar_t *w, int n) {
  /* WC_ERR_INVALID_CHARS: a lone surrogate (a name Windows allows but UTF-8 cannot carry) is an error,
   * never silently turned into U+FFFD, which would name another file */
  int m = WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, n, NULL, 0, NULL, NULL);
  if (m < 0 || (m == 0 && n != 0)) {
    mproc__fail_os(MPROC_EINVAL, (int)GetLastError(),
                   "UTF-16 to UTF-8: not valid UTF-16 (a lone surrogate?), so it cannot be given as UTF-8");
    return NULL;
  }
  char *s = (char *)malloc((size_t)m + 1);
  if (!s) {
    mproc__fail(MPROC_ENOMEM, "out of memory converting to UTF-8");
    return NULL;
  }
  if (m) WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, n, s, m, NULL, NULL);
  s[m] = '\0';
  return s;
}

int mproc__pal_self_exe(char **out) {
  DWORD cap = MAX_PATH;
  for (;;) {
    wchar_t *w = (wchar_t *)malloc(sizeof(wchar_t) * cap);
    if (!w) return mproc__fail(MPROC_ENOMEM, "out of memory reading the module path");
    DWORD n = GetModuleFileNameW(NULL, w, cap);
    if (n == 0) {
      DWORD e = GetLastError();
      free(w);
      return mproc__fail_os(MPROC_ESYS, (int)e, "GetModuleFileNameW");
    }
    if (n < cap) {
      *out = mproc__wide_to_utf8(w, (int)n);
      free(w);
      return *out ? 0 : MPROC_ENOMEM;
    }
    free(w);
    if (cap >= 32768) return mproc__fail(MPROC_ESYS, "GetModuleFileNameW: path longer than 32767 units");
    cap *= 2;
  }
}

mproc_os_handle mproc__pal_std_handle(int which) {
  static const DWORD ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
  if (which < 0 || which > 2) return MPROC_NO_HANDLE;
  HANDLE h = GetStdHandle(ids[which]);
  return (h == NULL || h == INVALID_HANDLE_VALUE) ? MPROC_NO_HANDLE : MPROC__OSH(h);
}

/* Per-thread error state in fiber-local storage, allocated on a thread's first use and freed by the FLS
 * callback when the thread exits. MinGW's GCC has no native TLS (it emulates _Thread_local through
 * libgcc and winpthread), and a static mproc must not make its users ship libwinpthread. The module is
 * pinned once the callback is registered, so a DLL build can never be unloaded under a live callback. */
static DWORD g_fls = FLS_OUT_OF_INDEXES;
static INIT_ONCE g_fls_once = INIT_ONCE_STATIC_INIT;
static mproc__thread_state g_fallback_state;

static void WINAPI free_thread_state(void *p) { free(p); }

static BOOL CALLBACK init_fls(PINIT_ONCE once, PVOID param, PVOID *ctx) {
  (void)once;
  (void)param;
  (void)ctx;
  g_fls = FlsAlloc(free_thread_state);
  HMODULE self;
  GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
                     (LPCWSTR)(void *)&free_thread_state, &self);
  return TRUE;
}

mproc__thread_state *mproc__pal_thread_state(void) {
  DWORD saved = GetLastError(); /* callers read GetLastError() around this: leave it untouched */
  InitOnceExecuteOnce(&g_fls_once, init_fls, NULL, NULL);
  mproc__thread_state *st = NULL;
  if (g_fls != FLS_OUT_OF_INDEXES) {
    st = (mproc__thread_state *)FlsGetValue(g_fls);
    if (!st) {
      st = (mproc__thread_state *)calloc(1, sizeof *st);
      if (st && !FlsSetValue(g_fls, st)) {
        free(st);
        st = NULL;
      }
    }
  }
  SetLastError(saved);
  return st ? st : &g_fallback_state;
}

/* ---- threads, the global lock, the environment --------------------------------------------------- */

static SRWLOCK g_lock = SRWLOCK_INIT;
void mproc__pal_global_lock(void) { AcquireSRWLockExclusive(&g_lock); }
void mproc__pal_global_unlock(void) { ReleaseSRWLockExclusive(&g_lock); }

typedef struct thread_start {
  void (*fn)(void *);
  void *arg;
} thread_start;

static unsigned __stdcall thread_main(void *p) {
  thread_start ts = *(thread_start *)p;
  free(p);
  ts.fn(ts.arg);
  return 0;
}

int mproc__pal_thread_start(void (*fn)(void *), void *arg) {
  thread_start *ts = (thread_start *)malloc(sizeof *ts);
  if (!ts) return mproc__fail(MPROC_ENOMEM, "thread: out of memory");
  ts->fn = fn;
  ts->arg = arg;
  /* _beginthreadex rather than CreateThread: the thread uses the C runtime. */
  uintptr_t t = _beginthreadex(NULL, 64 * 1024, thread_main, ts, STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
  if (t == 0) {
    DWORD e = GetLastError();
    free(ts);
    return mproc__fail_os(0, (int)e, "_beginthreadex");
  }
  CloseHandle((HANDLE)t); /* detached */
  return 0;
}

struct mproc__thread {
  HANDLE h;
  thread_start start;
};

static unsigned __stdcall joinable_main(void *p) {
  thread_start *ts = (thread_start *)p;
  ts->fn(ts->arg);
  return 0;
}

int mproc__pal_thread_create(mproc__thread **out, void (*fn)(void *), void *arg) {
  mproc__thread *t = (mproc__thread *)calloc(1, sizeof *t);
  if (!t) return mproc__fail(MPROC_ENOMEM, "thread: out of memory");
  t->start.fn = fn;
  t->start.arg = arg;
  uintptr_t h = _beginthreadex(NULL, 0, joinable_main, &t->start, 0, NULL);
  if (h == 0) {
    DWORD e = GetLastError();
    free(t);
    return mproc__fail_os(0, (int)e, "_beginthreadex");
  }
  t->h = (HANDLE)h;
  *out = t;
  return 0;
}

void mproc__pal_thread_join(mproc__thread *t) {
  if (!t) return;
  WaitForSingleObject(t->h, INFINITE);
  CloseHandle(t->h);
  free(t);
}

struct mproc__mutex {
  SRWLOCK l;
};
struct mproc__cond {
  CONDITION_VARIABLE c;
};

int mproc__pal_mutex_new(mproc__mutex **out) {
  mproc__mutex *m = (mproc__mutex *)malloc(sizeof *m);
  if (!m) return mproc__fail(MPROC_ENOMEM, "mutex: out of memory");
  InitializeSRWLock(&m->l);
  *out = m;
  return 0;
}

void mproc__pal_mutex_free(mproc__mutex *m) { free(m); }
void mproc__pal_mutex_lock(mproc__mutex *m) { AcquireSRWLockExclusive(&m->l); }
void mproc__pal_mutex_unlock(mproc__mutex *m) { ReleaseSRWLockExclusive(&m->l); }

int mproc__pal_cond_new(mproc__cond **out) {
  mproc__cond *c = (mproc__cond *)malloc(sizeof *c);
  if (!c) return mproc__fail(MPROC_ENOMEM, "condition: out of memory");
  InitializeConditionVariable(&c->c);
  *out = c;
  return 0;
}

void mproc__pal_cond_free(mproc__cond *c) { free(c); }

int mproc__pal_cond_wait(mproc__cond *c, mproc__mutex *m, int64_t deadline_ns) {
  DWORD ms = (DWORD)mproc__win32_wait_ms(deadline_ns);
  if (SleepConditionVariableSRW(&c->c, &m->l, ms, 0)) return 0;
  return GetLastError() == ERROR_TIMEOUT ? MPROC_ETIMEDOUT : 0;
}

void mproc__pal_cond_broadcast(mproc__cond *c) { WakeAllConditionVariable(&c->c); }

void mproc__pal_unsetenv(const char *name) {
  wchar_t *w = mproc__utf8_to_wide(name, "environment variable name");
  if (!w) return;
  size_t n = wcslen(w);
  wchar_t *entry = (wchar_t *)malloc((n + 2) * sizeof(wchar_t));
  if (entry) { /* "NAME=" removes NAME from the C runtime's copies (wide and narrow); the CRT copies it */
    memcpy(entry, w, n * sizeof(wchar_t));
    entry[n] = L'=';
    entry[n + 1] = L'\0';
    _wputenv(entry);
    free(entry);
  }
  SetEnvironmentVariableW(w, NULL); /* and from the process environment that children inherit */
  free(w);
}

/* The name as UTF-16, or NULL with the error set: *rc = MPROC_EINVAL (bad name) or MPROC_ENOMEM. */
static wchar_t *env_name(const char *name, int *rc) {
  if (!name || !*name || strchr(name, '=')) {
    *rc = mproc__fail(MPROC_EINVAL, "getenv: the name must be non-empty and hold no '='");
    return NULL;
  }
  wchar_t *w = mproc__utf8_to_wide(name, "environment variable name");
  if (!w) *rc = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, -1, NULL, 0) > 0 ? MPROC_ENOMEM : MPROC_EINVAL;
  return w;
}

/* GetEnvironmentVariableW and not getenv: getenv reads the C runtime's copy in the ANSI code page (so
 * not UTF-8, and lossy), and the UCRT declares it deprecated (C4996). The process environment is
 * what children inherit, and what mproc__pal_unsetenv changes too. */
int mproc__pal_getenv(const char *name, char **value) {
  if (value) *value = NULL;
  if (!value) return mproc__fail(MPROC_EINVAL, "getenv: value is NULL");
  int rc = 0;
  wchar_t *w = env_name(name, &rc);
  if (!w) return rc;
  wchar_t *buf = NULL;
  DWORD cap = 0;
  for (;;) {
    SetLastError(ERROR_SUCCESS);
    DWORD n = GetEnvironmentVariableW(w, buf, cap); /* cap 0: the size needed, NUL included */
    DWORD e = GetLastError();
    if (n == 0) { /* unset, or set to "" (then no error is set) */
      if (e == ERROR_ENVVAR_NOT_FOUND) break;
      if (e != ERROR_SUCCESS) {
        rc = mproc__fail_os(MPROC_ESYS, (int)e, "GetEnvironmentVariableW");
        break;
      }
      *value = mproc__strdup("");
      rc = *value ? 0 : MPROC_ENOMEM;
      break;
    }
    if (n < cap) { /* it fitted: n units without the NUL */
      *value = mproc__wide_to_utf8(buf, (int)n);
      if (!*value) rc = MPROC_ENOMEM;
      break;
    }
    /* too small (the value may also have grown between the calls): n is the size needed */
    free(buf);
    cap = n;
    buf = (wchar_t *)malloc(sizeof(wchar_t) * cap);
    if (!buf) {
      rc = mproc__fail(MPROC_ENOMEM, "getenv: out of memory");
      break;
    }
  }
  free(buf);
  free(w);
  return rc;
}

const char *mproc__pal_eager_binding_var(void) { return NULL; /* the loader binds imports at load */ }

bool mproc__pal_env_is_set(const char *name) {
  int rc = 0;
  wchar_t *w = env_name(name, &rc);
  if (!w) return false;
  SetLastError(ERROR_SUCCESS);
  bool set = GetEnvironmentVariableW(w, NULL, 0) > 0 || GetLastError() != ERROR_ENVVAR_NOT_FOUND;
  free(w);
  return set;
}
