/* POSIX PAL: the core (pal.h, "core"): OS errors, the thread's error state, clocks, CPU counts, identity,
 * handle flags, threads, the global lock and the environment.
 * Tested on Linux (glibc). The macOS/BSD branches are written to their documentation but untested. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT, sched_getcpu */
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../pal.h"
#include "posix.h"

int mproc__pal_os_error(void) { return errno; }

int mproc__pal_map_os_error(int e) {
  switch (e) {
    case ENOENT:
    case ENOTDIR:
    case ESRCH:
      return MPROC_ENOENT;
    case EACCES:
    case EPERM:
    case ENOEXEC:
      return MPROC_EPERM;
    case ENOMEM:
      return MPROC_ENOMEM;
    case EPIPE:
      return MPROC_EPIPE;
    case EEXIST:
      return MPROC_EEXIST;
    case ETIMEDOUT:
      return MPROC_ETIMEDOUT;
    case EINVAL:
    case EBADF:
      return MPROC_EINVAL;
    case EINTR:
      return MPROC_EINTR;
    default:
      return MPROC_ESYS;
  }
}

static const char *errno_name(int e) {
  switch (e) {
// clang-format off
#define N(x) \
  case x:    \
    return #x;
    N(EPERM) N(ENOENT) N(ESRCH) N(EINTR) N(EIO) N(ENXIO) N(E2BIG) N(ENOEXEC) N(EBADF) N(ECHILD)
    N(EAGAIN) N(ENOMEM) N(EACCES) N(EFAULT) N(EBUSY) N(EEXIST) N(EXDEV) N(ENODEV) N(ENOTDIR)
    N(EISDIR) N(EINVAL) N(ENFILE) N(EMFILE) N(ENOTTY) N(ETXTBSY) N(EFBIG) N(ENOSPC) N(ESPIPE)
    N(EROFS) N(EMLINK) N(EPIPE) N(EDOM) N(ERANGE) N(EDEADLK) N(ENAMETOOLONG) N(ENOSYS)
    N(ENOTEMPTY) N(ELOOP) N(ETIMEDOUT) N(ECONNREFUSED) N(ECONNRESET) N(EOVERFLOW) N(ENOTSUP)
    N(ENOTSOCK) N(EMSGSIZE) N(EADDRINUSE) N(ECANCELED) N(EOWNERDEAD) N(ENOTRECOVERABLE)
#undef N
    default:
      return "E?";
    // clang-format on
  }
}

void mproc__pal_describe_os_error(int e, char *buf, size_t size) {
  char text[160];
  text[0] = '\0';
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  const char *t = strerror_r(e, text, sizeof text); /* GNU variant returns the string */
  if (t != text) snprintf(text, sizeof text, "%s", t ? t : "");
#else
  if (strerror_r(e, text, sizeof text) != 0) text[0] = '\0';
#endif
  snprintf(buf, size, "%s, errno %d: %s", errno_name(e), e, text);
}

int64_t mproc__pal_monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mproc__pal_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int mproc__pal_process_cpu_count(void) {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    /* more than CPU_SETSIZE CPUs: fall back to the machine count */
#endif
  return mproc__pal_cpu_count(); /* macOS/BSD: no per-process affinity query (untested here) */
}

int mproc__pal_current_cpu(void) {
#if defined(__linux__)
  return sched_getcpu(); /* (glibc: from the thread's rseq area, no system call) */
#else
  return -1;
#endif
}

/* ---- state a fork child must not inherit: the global lock and the cached pid ---------------------
 *
 * On Linux (4.14+) both live in a page advised MADV_WIPEONFORK: every child the kernel makes of this
 * process, by whatever fork, finds it zero-filled, while the parent's page is left out of the fork's
 * copy-on-write. So
 * - the pid is asked of the kernel once per process, not at each call (five calls a start and join), and
 *   no fork can leave a child with its parent's pid (glibc dropped its own cache for want of that);
 * - the global lock, held across mproc's forks (process.c), is released in the parent without a write
 *   fault (a page copied while the child still shares it: about a tenth of a fork start's cost on one
 *   CPU here), and is found unlocked in the child, where PTHREAD_MUTEX_INITIALIZER is all zero bytes
 *   (glibc, musl; checked at run time).
 * Elsewhere, or where the page cannot be had, a static mutex that the child of mproc__pal_fork makes
 * fresh, and getpid() at each call. The choice is made once, before any thread can take the lock. */
typedef struct wiped_state {
  pthread_mutex_t lock;
  _Atomic int64_t pid; /* 0: not known in this process yet */
} wiped_state;

pthread_mutex_t mproc__posix_static_lock = PTHREAD_MUTEX_INITIALIZER;
#define WIPED_NONE ((wiped_state *)(uintptr_t)1)
static wiped_state *_Atomic g_wiped; /* NULL: not chosen yet; WIPED_NONE: the static lock */
_Atomic bool mproc__posix_static_lock_used;

static wiped_state *wiped(void) {
  wiped_state *w = atomic_load_explicit(&g_wiped, memory_order_acquire);
  if (w) return w;
  wiped_state *mine = WIPED_NONE;
#if defined(__linux__) && defined(MADV_WIPEONFORK)
  static const pthread_mutex_t init = PTHREAD_MUTEX_INITIALIZER;
  static const pthread_mutex_t zero;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (memcmp(&init, &zero, sizeof init) == 0) {
    void *m = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED && madvise(m, page, MADV_WIPEONFORK) == 0)
      mine = (wiped_state *)m;
    else if (m != MAP_FAILED)
      munmap(m, page);
  }
#endif
  /* Before the choice is published: whoever sees it (acquire) sees this too, a fork child as well. Set by
   * a thread whose choice loses, it only makes children reset a lock nobody uses. */
  if (mine == WIPED_NONE) atomic_store_explicit(&mproc__posix_static_lock_used, true, memory_order_relaxed);
  w = NULL;
  if (!atomic_compare_exchange_strong_explicit(&g_wiped, &w, mine, memory_order_acq_rel, memory_order_acquire)) {
#if defined(__linux__) && defined(MADV_WIPEONFORK)
    if (mine != WIPED_NONE) munmap(mine, page); /* another thread chose first */
#endif
    return w;
  }
  return mine;
}

static pthread_mutex_t *global_mutex(void) {
  wiped_state *w = wiped();
  return w == WIPED_NONE ? &mproc__posix_static_lock : &w->lock;
}

int64_t mproc__pal_getpid(void) {
  wiped_state *w = wiped();
  if (w == WIPED_NONE) return (int64_t)getpid();
  int64_t pid = atomic_load_explicit(&w->pid, memory_order_relaxed);
  if (pid == 0) {
    pid = (int64_t)getpid();
    atomic_store_explicit(&w->pid, pid, memory_order_relaxed);
  }
  return pid;
}
MPROC__CHILD_PATH int64_t mproc__pal_getpid_uncached(void) { return (int64_t)getpid(); }
int64_t mproc__pal_getppid(void) { return (int64_t)getppid(); }

void mproc__pal_advise_huge(void *p, size_t len) {
#ifdef MADV_HUGEPAGE
  /* Every page that holds a byte of [p, p + len): a large block is a mapping of its own, and advice on
   * the whole of it keeps it one mapping, which realloc can still grow with mremap (advice on a part
   * would split it, and mremap refuses a range that spans two). */
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t from = (uintptr_t)p & ~(page - 1), to = ((uintptr_t)p + len + page - 1) & ~(page - 1);
  (void)madvise((void *)from, to - from, MADV_HUGEPAGE); /* EINVAL where THP is absent: no matter */
#else
  (void)p;
  (void)len;
#endif
}

void mproc__pal_close(mproc_os_handle h) {
  if (h < 0) return;
  /* POSIX leaves the fd state unspecified after EINTR; on Linux it is always closed, so never retry. */
  (void)close((int)h);
}

bool mproc__pal_handle_valid(mproc_os_handle h) { return h >= 0 && h <= INT32_MAX && fcntl((int)h, F_GETFD) != -1; }

mproc__handle_kind mproc__pal_handle_kind(mproc_os_handle h) {
  struct stat st;
  if (h < 0 || h > INT32_MAX || fstat((int)h, &st) != 0) return MPROC__HK_INVALID;
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return MPROC__HK_FILE;
  if (S_ISFIFO(st.st_mode)) return MPROC__HK_PIPE;
  if (S_ISSOCK(st.st_mode)) return MPROC__HK_SOCKET;
  if (S_ISCHR(st.st_mode)) return MPROC__HK_CHAR;
  return MPROC__HK_OTHER;
}

int mproc__pal_set_cloexec(mproc_os_handle h, bool cloexec) {
  int fd = (int)h;
  int fl = fcntl(fd, F_GETFD);
  if (fl == -1) return mproc__fail_os(0, errno, "fcntl(F_GETFD) on fd %d", fd);
  int want = cloexec ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
  if (want != fl && fcntl(fd, F_SETFD, want) == -1) return mproc__fail_os(0, errno, "fcntl(F_SETFD) on fd %d", fd);
  return 0;
}

bool mproc__pal_get_cloexec(mproc_os_handle h) {
  int fl = fcntl((int)h, F_GETFD);
  return fl != -1 && (fl & FD_CLOEXEC);
}

int mproc__pal_handle_count(void) {
  const char *dirs[] = {"/proc/self/fd", "/dev/fd"};
  for (size_t i = 0; i < MPROC__ARRAY_LEN(dirs); ++i) {
    DIR *d = opendir(dirs[i]);
    if (!d) continue;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
      if (e->d_name[0] != '.') ++n;
    closedir(d);
    return n - 1; /* the directory's own fd */
  }
  return -1;
}

#if defined(__APPLE__)
#include <mach-o/dyld.h>
#endif
#include <limits.h>
#include <stdlib.h>

int mproc__pal_self_exe(char **out) {
#if defined(__linux__)
  size_t cap = 256;
  for (;;) {
    char *buf = (char *)malloc(cap);
    if (!buf) return mproc__fail(MPROC_ENOMEM, "out of memory reading /proc/self/exe");
    ssize_t n = readlink("/proc/self/exe", buf, cap);
    if (n < 0) {
      int e = errno;
      free(buf);
      return mproc__fail_os(MPROC_ESYS, e, "readlink(/proc/self/exe)");
    }
    if ((size_t)n < cap) {
      buf[n] = '\0';
      *out = buf;
      return 0;
    }
    free(buf);
    cap *= 2;
  }
#elif defined(__APPLE__) /* untested here */
  uint32_t size = 0;
  _NSGetExecutablePath(NULL, &size);
  char *raw = (char *)malloc(size + 1);
  if (!raw) return mproc__fail(MPROC_ENOMEM, "out of memory");
  if (_NSGetExecutablePath(raw, &size) != 0) {
    free(raw);
    return mproc__fail(MPROC_ESYS, "_NSGetExecutablePath failed");
  }
  char *real = realpath(raw, NULL);
  free(raw);
  if (!real) return mproc__fail_os(MPROC_ESYS, errno, "realpath of the executable");
  *out = real;
  return 0;
#else
  return mproc__fail(MPROC_ENOTSUP, "mproc_self_exe: not implemented on this OS");
#endif
}

mproc_os_handle mproc__pal_std_handle(int which) { return (mproc_os_handle)which; }

mproc__thread_state *mproc__pal_thread_state(void) {
  static _Thread_local mproc__thread_state state; /* native TLS: no allocation, nothing to free */
  return &state;
}

/* ---- threads, the global lock, the environment --------------------------------------------------- */

void mproc__pal_global_lock(void) { pthread_mutex_lock(global_mutex()); }
void mproc__pal_global_unlock(void) { pthread_mutex_unlock(global_mutex()); }

typedef struct thread_start {
  void (*fn)(void *);
  void *arg;
} thread_start;

static void *thread_main(void *p) {
  thread_start ts = *(thread_start *)p;
  free(p);
  ts.fn(ts.arg);
  return NULL;
}

int mproc__pal_thread_start(void (*fn)(void *), void *arg) {
  thread_start *ts = (thread_start *)malloc(sizeof *ts);
  if (!ts) return mproc__fail(MPROC_ENOMEM, "thread: out of memory");
  ts->fn = fn;
  ts->arg = arg;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&at, 64 * 1024);
  pthread_t t;
  int e = pthread_create(&t, &at, thread_main, ts);
  pthread_attr_destroy(&at);
  if (e) {
    free(ts);
    return mproc__fail_os(0, e, "pthread_create");
  }
  return 0;
}

struct mproc__thread {
  pthread_t t;
  thread_start start;
};

static void *joinable_main(void *p) {
  thread_start *ts = (thread_start *)p;
  ts->fn(ts->arg);
  return NULL;
}

int mproc__pal_thread_create(mproc__thread **out, void (*fn)(void *), void *arg) {
  mproc__thread *t = (mproc__thread *)calloc(1, sizeof *t);
  if (!t) return mproc__fail(MPROC_ENOMEM, "thread: out of memory");
  t->start.fn = fn;
  t->start.arg = arg;
  int e = pthread_create(&t->t, NULL, joinable_main, &t->start);
  if (e) {
    free(t);
    return mproc__fail_os(0, e, "pthread_create");
  }
  *out = t;
  return 0;
}

void mproc__pal_thread_join(mproc__thread *t) {
  if (!t) return;
  pthread_join(t->t, NULL);
  free(t);
}

struct mproc__mutex {
  pthread_mutex_t m;
};
struct mproc__cond {
  pthread_cond_t c;
};

int mproc__pal_mutex_new(mproc__mutex **out) {
  mproc__mutex *m = (mproc__mutex *)malloc(sizeof *m);
  if (!m) return mproc__fail(MPROC_ENOMEM, "mutex: out of memory");
  pthread_mutex_init(&m->m, NULL);
  *out = m;
  return 0;
}

void mproc__pal_mutex_free(mproc__mutex *m) {
  if (!m) return;
  pthread_mutex_destroy(&m->m);
  free(m);
}

void mproc__pal_mutex_lock(mproc__mutex *m) { pthread_mutex_lock(&m->m); }
void mproc__pal_mutex_unlock(mproc__mutex *m) { pthread_mutex_unlock(&m->m); }

int mproc__pal_cond_new(mproc__cond **out) {
  mproc__cond *c = (mproc__cond *)malloc(sizeof *c);
  if (!c) return mproc__fail(MPROC_ENOMEM, "condition: out of memory");
  pthread_condattr_t a;
  pthread_condattr_init(&a);
#if !defined(__APPLE__)
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC); /* the clock of mproc__pal_monotonic_ns */
#endif
  pthread_cond_init(&c->c, &a);
  pthread_condattr_destroy(&a);
  *out = c;
  return 0;
}

void mproc__pal_cond_free(mproc__cond *c) {
  if (!c) return;
  pthread_cond_destroy(&c->c);
  free(c);
}

int mproc__pal_cond_wait(mproc__cond *c, mproc__mutex *m, int64_t deadline_ns) {
  if (deadline_ns == INT64_MAX) {
    pthread_cond_wait(&c->c, &m->m);
    return 0;
  }
#if defined(__APPLE__)
  int64_t left = deadline_ns - mproc__pal_monotonic_ns();
  if (left <= 0) return MPROC_ETIMEDOUT;
  struct timespec rel = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
  return pthread_cond_timedwait_relative_np(&c->c, &m->m, &rel) == ETIMEDOUT ? MPROC_ETIMEDOUT : 0;
#else
  struct timespec ts = {(time_t)(deadline_ns / 1000000000), (long)(deadline_ns % 1000000000)};
  return pthread_cond_timedwait(&c->c, &m->m, &ts) == ETIMEDOUT ? MPROC_ETIMEDOUT : 0;
#endif
}

void mproc__pal_cond_broadcast(mproc__cond *c) { pthread_cond_broadcast(&c->c); }

void mproc__pal_unsetenv(const char *name) { unsetenv(name); }

int mproc__pal_getenv(const char *name, char **value) {
  if (value) *value = NULL;
  if (!value || !name || !*name || strchr(name, '='))
    return mproc__fail(MPROC_EINVAL, "getenv: the name must be non-empty and hold no '='");
  const char *v = getenv(name);
  if (!v) return 0;
  *value = mproc__strdup(v);
  return *value ? 0 : MPROC_ENOMEM;
}

bool mproc__pal_env_is_set(const char *name) { return name && *name && !strchr(name, '=') && getenv(name); }

const char *mproc__pal_eager_binding_var(void) {
#if defined(__APPLE__)
  return NULL; /* dyld: not asked for */
#else
  return "LD_BIND_NOW";
#endif
}
