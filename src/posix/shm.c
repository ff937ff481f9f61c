/* POSIX PAL: shared memory and waiting on words in it (pal.h, "shared memory, and waiting on words in
 * it"): sealed memfds (Linux) or unlinked shm_open blocks, named shm_open blocks, this process's
 * identity as a lock owner, and futexes (Linux). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* memfd_create, F_ADD_SEALS, gettid */
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/eventfd.h>
#include <sys/syscall.h>
/* The futex operations used here, from <linux/futex.h> (kernel ABI, fixed): that header is not in
 * every C library's include path (musl's compiler wrapper has no kernel headers). */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#endif

#include "../atomic.h"
#include "../pal.h"
#include "posix.h"

/* ---- blocks --------------------------------------------------------------------------------------- */

static int map_fd(int fd, size_t size, mproc__shm *out) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return mproc__fail_os(0, errno, "mmap of a %zu-byte shared block", size);
  out->h = fd;
  out->base = p;
  out->size = out->mapped = size;
  return 0;
}

static uint32_t g_shm_counter;

/* A name no one uses yet for a block unlinked at once: "/mproc-<pid>-<n>-<clock>". */
static void scratch_name(char *buf, size_t cap) {
  unsigned n = mproc__atomic_add32(&g_shm_counter, 1);
  snprintf(buf, cap, "/mproc-%ld-%u-%llx", (long)getpid(), n, (unsigned long long)mproc__pal_monotonic_ns());
}

bool mproc__pal_shm_conn_ok(void) {
#if defined(__linux__) && defined(MFD_ALLOW_SEALING)
  return true;
#else
  return false;
#endif
}

int mproc__pal_shm_anon(size_t size, mproc__shm *out) {
  memset(out, 0, sizeof *out);
  out->h = MPROC_NO_HANDLE;
  if (size == 0 || size > (size_t)PTRDIFF_MAX) return mproc__fail(MPROC_EINVAL, "shared block of %zu bytes", size);
  int fd = -1;
#if defined(__linux__) && defined(MFD_ALLOW_SEALING)
  fd = memfd_create("mproc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd >= 0) {
    if (ftruncate(fd, (off_t)size) != 0) {
      int e = errno;
      close(fd);
      return mproc__fail_os(e == EFBIG || e == EINVAL ? MPROC_ENOMEM : 0, e, "ftruncate of a %zu-byte block", size);
    }
    /* no peer can resize it under the others (their next access would fault) */
    (void)fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
  }
#endif
  for (int tries = 0; fd < 0 && tries < 16; ++tries) {
    char name[96];
    scratch_name(name, sizeof name);
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 && errno != EEXIST) return mproc__fail_os(0, errno, "shm_open of a %zu-byte block", size);
    if (fd >= 0) {
      shm_unlink(name);
      (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
      if (ftruncate(fd, (off_t)size) != 0) {
        int e = errno;
        close(fd);
        return mproc__fail_os(0, e, "ftruncate of a %zu-byte block", size);
      }
    }
  }
  if (fd < 0) return mproc__fail(MPROC_ESYS, "no free name for a shared block");
  int rc = map_fd(fd, size, out);
  if (rc) close(fd);
  return rc;
}

int mproc__pal_shm_map(mproc_os_handle h, size_t need, mproc__shm *out) {
  memset(out, 0, sizeof *out);
  out->h = MPROC_NO_HANDLE;
  struct stat st;
  if (h < 0 || h > INT_MAX || fstat((int)h, &st) != 0) return mproc__fail_os(MPROC_ESYS, errno, "a handed block");
  if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size < need)
    return mproc__fail(MPROC_ESYS, "a handed block is no shared memory of at least %zu bytes", need);
  return map_fd((int)h, (size_t)st.st_size, out);
}

int mproc__pal_shm_named(const char *name, bool create, size_t size, mproc__shm *out) {
  memset(out, 0, sizeof *out);
  out->h = MPROC_NO_HANDLE;
  char path[128];
  snprintf(path, sizeof path, "/%s", name);
  int fd = shm_open(path, create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR, 0600);
  if (fd < 0) return mproc__fail_os(0, errno, "shared memory '%s'", name);
  (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
  int rc = 0;
  if (create) {
    if (ftruncate(fd, (off_t)size) != 0) rc = mproc__fail_os(0, errno, "shared memory '%s': ftruncate", name);
  } else {
    struct stat st;
    if (fstat(fd, &st) != 0) rc = mproc__fail_os(0, errno, "shared memory '%s': fstat", name);
    if (!rc && st.st_size <= 0) rc = mproc__fail(MPROC_ESYS, "shared memory '%s' is empty", name);
    size = rc ? 0 : (size_t)st.st_size;
  }
  if (!rc) rc = map_fd(fd, size, out);
  if (rc) {
    close(fd);
    if (create) shm_unlink(path);
  }
  return rc;
}

int mproc__pal_shm_unlink(const char *name) {
  char path[128];
  snprintf(path, sizeof path, "/%s", name);
  if (shm_unlink(path) != 0) return mproc__fail_os(0, errno, "shared memory '%s': unlink", name);
  return 0;
}

void mproc__pal_shm_close(mproc__shm *s) {
  if (s->base) munmap(s->base, s->mapped);
  if (s->h != MPROC_NO_HANDLE) close((int)s->h);
  memset(s, 0, sizeof *s);
  s->h = MPROC_NO_HANDLE;
}

/* ---- tracking ------------------------------------------------------------------------------------ */

static int g_track_fd = -1; /* the write end of the tracker's pipe */
static pthread_mutex_t g_track_lock = PTHREAD_MUTEX_INITIALIZER;

#define TRACK_MAX 1024
#define TRACK_NAME 40

/* The tracker: requests "+name\n" / "-name\n" until end of file, then remove what is left. It runs in
 * the child of a fork of a process that may have other threads: no malloc, no locks, no stdio. */
static void tracker_main(int fd) {
  static char names[TRACK_MAX][TRACK_NAME];
  static char line[TRACK_NAME + 2];
  size_t len = 0;
  char buf[512];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] != '\n') {
        if (len < sizeof line - 1) line[len++] = buf[i];
        continue;
      }
      line[len] = '\0';
      if (len >= 2 && len - 1 < TRACK_NAME) {
        int free_slot = -1, found = -1;
        for (int k = 0; k < TRACK_MAX && found < 0; ++k) {
          if (!names[k][0] && free_slot < 0) free_slot = k;
          if (names[k][0] && strcmp(names[k], line + 1) == 0) found = k;
        }
        if (line[0] == '+' && found < 0 && free_slot >= 0) memcpy(names[free_slot], line + 1, len);
        if (line[0] == '-' && found >= 0) names[found][0] = '\0';
      }
      len = 0;
    }
  }
  for (int k = 0; k < TRACK_MAX; ++k) {
    if (!names[k][0]) continue;
    char path[TRACK_NAME + 2] = "/";
    memcpy(path + 1, names[k], strlen(names[k]) + 1);
    shm_unlink(path);
  }
}

static int start_tracker(void) {
  int p[2];
  if (mproc__posix_pipe_cloexec(p) != 0) return mproc__fail_os(0, errno, "a pipe for the shared memory tracker");
  pid_t mid = fork();
  if (mid < 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    return mproc__fail_os(0, e, "fork of the shared memory tracker");
  }
  if (mid == 0) { /* the middle process: fork the tracker and go, so the tracker is nobody's child */
    if (fork() == 0) {
      signal(SIGINT, SIG_IGN);
      signal(SIGTERM, SIG_IGN);
      signal(SIGPIPE, SIG_IGN);
      setsid();
      for (int fd = 0; fd < 1024; ++fd) /* keep the pipe alone: others' ends of pipes must close */
        if (fd != p[0]) close(fd);
#if defined(__linux__) && defined(SYS_close_range)
      syscall(SYS_close_range, 1024U, ~0U, 0);
#endif
      tracker_main(p[0]);
    }
    _exit(0);
  }
  close(p[0]);
  int st;
  while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {
  }
  g_track_fd = p[1];
  return 0;
}

int mproc__pal_shm_track(const char *name, bool track) {
  char line[TRACK_NAME + 3];
  size_t n = strlen(name);
  if (n == 0 || n >= TRACK_NAME) return mproc__fail(MPROC_EINVAL, "shared memory name '%s' is too long", name);
  line[0] = track ? '+' : '-';
  memcpy(line + 1, name, n);
  line[n + 1] = '\n';
  pthread_mutex_lock(&g_track_lock);
  int rc = 0;
  if (g_track_fd < 0 && track) rc = start_tracker();
  if (!rc && g_track_fd >= 0) rc = mproc__pal_conn_send(g_track_fd, line, n + 2, NULL, 0);
  pthread_mutex_unlock(&g_track_lock);
  return rc;
}

/* ---- identity ------------------------------------------------------------------------------------- */

volatile uint64_t mproc__pal_self_id_cache; /* read and written atomically: threads race to fill it */
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;
static __thread uint32_t t_tid;

static void forget_ids(void) { /* in a fork child: another process, another thread */
  mproc__atomic_store64(&mproc__pal_self_id_cache, 0);
  t_tid = 0;
}
static void register_atfork(void) { pthread_atfork(NULL, NULL, forget_ids); }

/* The start time of process pid in clock ticks since boot (Linux /proc/<pid>/stat, field 22), 1 if the
 * system cannot tell; 0 if the process does not exist or has ended (a zombie). */
static uint64_t start_time(long pid) {
#if defined(__linux__)
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  if (!p || p[1] != ' ') return 0;
  char state = p[2];
  if (state == 'Z' || state == 'X' || state == 'x') return 0;
  p += 2; /* field 3 */
  for (int field = 3; field < 22 && *p; ++p)
    if (*p == ' ') ++field;
  uint64_t t = strtoull(p, NULL, 10);
  return t ? t : 1;
#else
  return kill((pid_t)pid, 0) == 0 || errno == EPERM ? 1 : 0;
#endif
}

uint64_t mproc__pal_self_id(void) {
  uint64_t id = mproc__atomic_load64(&mproc__pal_self_id_cache);
  if (id) return id;
  pthread_once(&g_atfork_once, register_atfork);
  long pid = (long)getpid();
  uint32_t token = (uint32_t)start_time(pid);
  id = ((uint64_t)(uint32_t)pid << 32) | (token ? token : 1);
  mproc__atomic_store64(&mproc__pal_self_id_cache, id);
  return id;
}

bool mproc__pal_id_alive(uint64_t id) {
  long pid = (long)(id >> 32);
  uint64_t t = start_time(pid);
  if (t == 0) return false;
  uint32_t token = (uint32_t)t ? (uint32_t)t : 1;
  return t == 1 || token == (uint32_t)id;
}

uint32_t mproc__pal_thread_id(void) {
  if (!t_tid) {
#if defined(__linux__)
    t_tid = (uint32_t)syscall(SYS_gettid);
#else
    static uint32_t next;
    t_tid = mproc__atomic_add32(&next, 1) + 1;
#endif
  }
  return t_tid;
}

/* ---- waiting on words ---------------------------------------------------------------------------- */

static uint64_t g_sync_calls;

int mproc__pal_wq_handle(mproc_os_handle *h) {
  *h = MPROC_NO_HANDLE;
  return 0;
}

#define OWNER_CHECK_NS (20 * 1000 * 1000LL)

int mproc__pal_word_wait(mproc_os_handle h, mproc__wq *q, const volatile uint32_t *word, uint32_t val, uint64_t owner,
                         int64_t deadline) {
  (void)h;
  mproc__atomic_add32(&q->waiters, 1);
  int rc = 0;
  if (mproc__atomic_load32(word) == val) {
    int64_t now = mproc__pal_monotonic_ns(), until = deadline;
    if (owner && (until == INT64_MAX || until - now > OWNER_CHECK_NS)) until = now + OWNER_CHECK_NS;
    mproc__atomic_add64(&g_sync_calls, 1);
#if defined(__linux__)
    struct timespec ts = {0, 0}, *tp = NULL;
    if (until != INT64_MAX) {
      int64_t left = until - now;
      if (left < 0) left = 0;
      ts.tv_sec = (time_t)(left / 1000000000);
      ts.tv_nsec = (long)(left % 1000000000);
      tp = &ts;
    }
    long r = syscall(SYS_futex, word, FUTEX_WAIT, val, tp, NULL, 0);
    int e = errno;
    if (r != 0 && e != EAGAIN && e != EINTR && e != ETIMEDOUT) rc = mproc__fail_os(0, e, "futex wait");
#else /* no futex (untested): sleep in slices of at most 1 ms, checking the word between them */
    int64_t left = until == INT64_MAX ? 1000000 : until - now;
    struct timespec ts = {0, (long)(left < 0 ? 0 : left > 1000000 ? 1000000 : left)};
    nanosleep(&ts, NULL);
#endif
    if (!rc && until != INT64_MAX && mproc__pal_monotonic_ns() >= until) {
      if (owner && !mproc__pal_id_alive(owner))
        rc = MPROC_EOWNERDEAD;
      else if (deadline != INT64_MAX && mproc__pal_monotonic_ns() >= deadline)
        rc = MPROC_ETIMEDOUT;
    }
  }
  mproc__atomic_add32(&q->waiters, (uint32_t)-1);
  return rc;
}

void mproc__pal_word_wake(mproc_os_handle h, mproc__wq *q, volatile uint32_t *word, uint32_t n) {
  (void)h;
  if (mproc__atomic_load32(&q->waiters) == 0) return;
  mproc__atomic_add64(&g_sync_calls, 1);
#if defined(__linux__)
  syscall(SYS_futex, word, FUTEX_WAKE, n > INT_MAX ? INT_MAX : (int)n, NULL, NULL, 0);
#endif
}

uint64_t mproc__pal_sync_calls(void) { return mproc__atomic_load64(&g_sync_calls); }

/* ---- a flag for mproc_wait ----------------------------------------------------------------------- */

int mproc__pal_flag_open(mproc_os_handle *h) {
  *h = MPROC_NO_HANDLE;
#if defined(__linux__)
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return mproc__fail_os(0, errno, "eventfd");
  *h = fd;
  return 0;
#else
  return mproc__fail(MPROC_ENOTSUP, "waiting on shared objects with other handles needs Linux's eventfd");
#endif
}

void mproc__pal_flag_set(mproc_os_handle h) {
  uint64_t one = 1;
  mproc__atomic_add64(&g_sync_calls, 1);
  ssize_t r = write((int)h, &one, sizeof one); /* EAGAIN: the counter is full, so set already */
  (void)r;
}

void mproc__pal_flag_clear(mproc_os_handle h) {
  uint64_t v;
  mproc__atomic_add64(&g_sync_calls, 1);
  ssize_t r = read((int)h, &v, sizeof v); /* EAGAIN: clear already */
  (void)r;
}
