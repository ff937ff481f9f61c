/* POSIX PAL: connections (pipes for Pipe(), Unix-domain socket pairs for links), waiting on many handles, fork, threads, the
 * global lock, and finding a function again in a re-executed child (dladdr / dl_iterate_phdr).
 * Linux is tested here; the macOS/BSD branches follow their documentation and are untested. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* dladdr, dl_iterate_phdr */
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include "../pal.h"
#include "posix.h"

/* ---- connections ------------------------------------------------------------------------------- */

int mproc__pal_conn_pair(bool duplex, mproc_os_handle *a, mproc_os_handle *b) {
  int sv[2];
  *a = *b = MPROC_NO_HANDLE;
#ifdef SOCK_CLOEXEC
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) return mproc__fail_os(0, errno, "socketpair");
#else
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) return mproc__fail_os(0, errno, "socketpair");
  fcntl(sv[0], F_SETFD, FD_CLOEXEC);
  fcntl(sv[1], F_SETFD, FD_CLOEXEC);
#endif
#ifdef SO_NOSIGPIPE
  int one = 1;
  setsockopt(sv[0], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
  setsockopt(sv[1], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  if (!duplex) {
    shutdown(sv[0], SHUT_WR);
    shutdown(sv[1], SHUT_RD);
  }
  *a = sv[0];
  *b = sv[1];
  return 0;
}

int mproc__pal_conn_ends(bool duplex, mproc__conn_end *a, mproc__conn_end *b) {
  int p1[2] = {-1, -1}, p2[2] = {-1, -1};
  a->rd = a->wr = a->bulk = b->rd = b->wr = b->bulk = MPROC_NO_HANDLE;
  int rc = 0;
  if (mproc__posix_pipe_cloexec(p1) == -1 || (duplex && mproc__posix_pipe_cloexec(p2) == -1))
    rc = mproc__fail_os(0, errno, "pipe2");
  else
    rc = mproc__pal_conn_pair(duplex, &a->bulk, &b->bulk); /* one-way: a's end only reads */
  if (!rc) {
    /* Room for a 1 MiB message in flight each way: fewer wake-ups, and two peers that each send one
     * before receiving do not block each other. Best effort (a lower limit is kept). */
    int sz = 1 << 20;
    for (int i = 0; i < 2; ++i) {
      int s = (int)(i ? b->bulk : a->bulk);
      (void)setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
      (void)setsockopt(s, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    }
  }
  if (rc) {
    int fds[] = {p1[0], p1[1], p2[0], p2[1]};
    for (size_t i = 0; i < 4; ++i)
      if (fds[i] != -1) close(fds[i]);
    return rc;
  }
  a->rd = p1[0]; /* b -> a */
  b->wr = p1[1];
  if (duplex) { /* a -> b */
    b->rd = p2[0];
    a->wr = p2[1];
  }
  return 0;
}

int mproc__pal_conn_send(mproc_os_handle h, const void *p1, size_t n1, const void *p2, size_t n2) {
  struct iovec iov[2] = {{(void *)p1, n1}, {(void *)p2, n2}};
  struct iovec *v = iov;
  int nv = 2;
  for (;;) {
    while (nv && v->iov_len == 0) {
      ++v;
      --nv;
    }
    if (!nv) return 0;
    ssize_t w = mproc__posix_writev_nosigpipe((int)h, v, nv);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET)
        return mproc__fail_os(MPROC_EPIPE, errno, "send: the peer has closed the connection");
      return mproc__fail_os(0, errno, "send on fd %d", (int)h);
    }
    for (size_t done = (size_t)w; done;) {
      size_t k = done < v->iov_len ? done : v->iov_len;
      v->iov_base = (char *)v->iov_base + k;
      v->iov_len -= k;
      done -= k;
      if (v->iov_len == 0 && done) {
        ++v;
        --nv;
      }
    }
  }
}

static int poll_ms(int64_t deadline) {
  int64_t ms = mproc__ms_until(deadline);
  return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

int mproc__pal_conn_recv(mproc_os_handle h, void *buf, size_t cap, int64_t deadline, size_t *n) {
  *n = 0;
  for (;;) {
    if (deadline != INT64_MAX) {
      struct pollfd pfd = {(int)h, POLLIN, 0};
      int ms = poll_ms(deadline);
      int r = poll(&pfd, 1, ms);
      if (r < 0) {
        if (errno == EINTR) continue;
        return mproc__fail_os(0, errno, "poll on fd %d", (int)h);
      }
      if (r == 0) {
        if (ms == 0 || mproc__ms_until(deadline) == 0) return MPROC_ETIMEDOUT;
        continue;
      }
    }
    /* A blocking read: after poll said readable it returns at once (one reader per end), and with no
     * deadline it sleeps in the kernel (a non-blocking read that fails first, then poll, costs a
     * system call more per message). */
    ssize_t r = read((int)h, buf, cap);
    if (r >= 0) {
      *n = (size_t)r;
      return 0;
    }
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
    if (errno == ECONNRESET) return 0; /* the peer died with unread data: end of file */
    return mproc__fail_os(0, errno, "read from fd %d", (int)h);
  }
}

int mproc__pal_wait_ready(const mproc__wait_item *items, size_t n, int64_t deadline, bool *ready) {
  struct pollfd small[16];
  struct pollfd *pfd = n <= 16 ? small : (struct pollfd *)malloc(n * sizeof *pfd);
  if (!pfd) return mproc__fail(MPROC_ENOMEM, "wait: out of memory");
  for (size_t i = 0; i < n; ++i) pfd[i] = (struct pollfd){(int)items[i].h, POLLIN, 0};
  int rc;
  for (;;) {
    int ms = poll_ms(deadline);
    int r = poll(pfd, (nfds_t)n, ms);
    if (r > 0) {
      for (size_t i = 0; i < n; ++i) ready[i] = pfd[i].revents != 0;
      rc = 0;
      break;
    }
    if (r == 0 && (ms == 0 || mproc__ms_until(deadline) == 0)) {
      rc = MPROC_ETIMEDOUT;
      break;
    }
    if (r < 0 && errno != EINTR) {
      rc = mproc__fail_os(0, errno, "poll on %zu handles", n);
      break;
    }
  }
  if (pfd != small) free(pfd);
  return rc;
}

mproc_os_handle mproc__pal_sentinel(const mproc__child *child, mproc_os_handle boot) {
  return boot != MPROC_NO_HANDLE ? boot : child->handle;
}

int mproc__posix_pidfd_open(int64_t pid) {
#if defined(__linux__) && defined(SYS_pidfd_open)
  long fd = syscall(SYS_pidfd_open, (pid_t)pid, 0);
  if (fd >= 0) (void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
  return (int)fd;
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

bool mproc__pal_fork_sentinel_supported(void) {
#if defined(__linux__) && defined(SYS_pidfd_open)
  static _Atomic int known; /* 0 unknown, 1 yes, -1 no */
  int k = atomic_load_explicit(&known, memory_order_relaxed);
  if (k == 0) {
    int fd = mproc__posix_pidfd_open(getpid());
    k = fd >= 0 ? 1 : -1;
    if (fd >= 0) close(fd);
    atomic_store_explicit(&known, k, memory_order_relaxed);
  }
  return k > 0;
#else
  return false;
#endif
}

int mproc__pal_fork_sentinel(mproc__child *child) {
#if defined(__linux__) && defined(SYS_pidfd_open)
  int fd = mproc__posix_pidfd_open(child->pid);
  if (fd < 0) return mproc__fail_os(0, errno, "pidfd_open(%lld)", (long long)child->pid);
  child->handle = (mproc_os_handle)fd;
  return 0;
#else
  (void)child;
  return mproc__fail(MPROC_ENOTSUP, "no pidfd here");
#endif
}

/* ---- fork, exit, threads, lock, environment ------------------------------------------------------ */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
void mproc__pal_global_lock(void) { pthread_mutex_lock(&g_lock); }
void mproc__pal_global_unlock(void) { pthread_mutex_unlock(&g_lock); }

bool mproc__pal_fork_supported(void) { return true; }

int mproc__pal_fork(int64_t *pid) {
  mproc__pal_global_lock(); /* never let the child inherit the lock held by another thread */
  pid_t p = fork();
  if (p == 0) {
    /* The child is single-threaded and the lock is ours: a fresh one is the same as unlocking, and a
     * store touches no code page the child would otherwise fault in (see set_identity). */
    static const pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    g_lock = fresh;
    *pid = 0;
    return 0;
  }
  if (p < 0) {
    int e = errno;
    mproc__pal_global_unlock();
    return mproc__fail_os(0, e, "fork");
  }
  mproc__pal_global_unlock();
  *pid = p;
  return 0;
}

/* Called through a pointer, which the dynamic linker fills when it loads us (a data relocation is never
 * lazy). Called through the PLT instead, _exit would be bound at its first call in every fork child
 * (the parent never calls it): a symbol lookup that writes the GOT and runs through pages of the
 * linker, six page faults per child here, a third of a raw fork's. */
static void (*volatile const g_exit)(int) = _exit;
void mproc__pal_exit_now(int code) { g_exit(code); }

/* ---- kill on parent death (the kernel's part; see pal.h) ------------------------------------------ */

void mproc__pal_child_bind(mproc__child *child) { (void)child; }

bool mproc__pal_is_main_thread(void) {
#ifdef __linux__
  return (pid_t)syscall(SYS_gettid) == getpid();
#else
  return false;
#endif
}

void mproc__pal_die_with_parent(int64_t parent_pid, bool by_main_thread) {
#ifdef __linux__
  if (!by_main_thread || prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return; /* the watchdog alone */
  /* The parent may have died before the prctl: then we have been re-parented and no signal comes. */
  if ((int64_t)getppid() != parent_pid) _exit(1);
#else
  (void)parent_pid;
  (void)by_main_thread;
#endif
}

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

/* ---- finding a function again in a re-executed child --------------------------------------------- */

/* The address where the main executable's image starts (dladdr's dli_fbase for its functions). */
static int main_image_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  uintptr_t lo = UINTPTR_MAX;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_LOAD && info->dlpi_phdr[i].p_vaddr < lo) lo = info->dlpi_phdr[i].p_vaddr;
  long page = sysconf(_SC_PAGESIZE);
  *(uintptr_t *)data = (info->dlpi_addr + lo) & ~(uintptr_t)(page - 1);
  return 1; /* the first object reported is the main program */
}

static uintptr_t main_image_base(void) {
  uintptr_t base = 0;
  dl_iterate_phdr(main_image_cb, &base);
  return base;
}

typedef struct find_lib {
  const char *path; /* NULL: the main program (the first object reported) */
  uintptr_t base;   /* where its image starts (page-aligned lowest PT_LOAD) */
  uintptr_t target; /* an address to check ... */
  bool in_code;     /* ... lies in one of its executable PT_LOAD segments */
} find_lib;

static int lib_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  find_lib *f = (find_lib *)data;
  if (f->path && (!info->dlpi_name || strcmp(info->dlpi_name, f->path) != 0)) return 0;
  uintptr_t lo = UINTPTR_MAX;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_LOAD && info->dlpi_phdr[i].p_vaddr < lo) lo = info->dlpi_phdr[i].p_vaddr;
  long page = sysconf(_SC_PAGESIZE);
  f->base = (info->dlpi_addr + lo) & ~(uintptr_t)(page - 1);
  uintptr_t at = f->base + f->target;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && at >= info->dlpi_addr + ph->p_vaddr &&
        at - (info->dlpi_addr + ph->p_vaddr) < ph->p_memsz)
      f->in_code = f->target < UINTPTR_MAX - f->base;
  }
  return 1;
}

/* Identity of a module file: device, inode, size, modification time. */
static int file_identity(const char *path, uint64_t id[4]) {
  struct stat st;
  if (stat(path, &st) != 0) return mproc__fail_os(MPROC_ENOENT, errno, "stat of module '%s'", path);
  id[0] = (uint64_t)st.st_dev;
  id[1] = (uint64_t)st.st_ino;
  id[2] = (uint64_t)st.st_size;
#if defined(__APPLE__)
  id[3] = (uint64_t)st.st_mtimespec.tv_sec * 1000000000u + (uint64_t)st.st_mtimespec.tv_nsec;
#else
  id[3] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
#endif
  return 0;
}

static const char *exe_link(void) { return "/proc/self/exe"; }

/* Reference layout: u64 is_main | u64 offset | u64 id[4] | path bytes (to the end). */
int mproc__pal_fn_locate(void *fn, mproc__buf *out) {
  Dl_info info;
  if (!dladdr(fn, &info) || !info.dli_fbase)
    return mproc__fail(MPROC_ENOENT, "target %p is not inside a module of this program: it cannot be found again "
                                     "in a spawned child", fn);
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t base = (uintptr_t)info.dli_fbase & ~(page - 1);
  bool is_main = base == main_image_base();
  char resolved[PATH_MAX];
  const char *path = is_main ? exe_link() : info.dli_fname;
  if (!is_main && realpath(info.dli_fname, resolved)) path = resolved;
  uint64_t hdr[6] = {is_main, (uint64_t)((uintptr_t)fn - base), 0, 0, 0, 0};
  int rc = file_identity(path, hdr + 2);
  if (rc) return rc;
  rc = mproc__buf_append(out, hdr, sizeof hdr);
  if (!rc && !is_main) rc = mproc__buf_append(out, path, strlen(path));
  return rc;
}

int mproc__pal_fn_resolve(const void *ref, size_t len, void **fn) {
  uint64_t hdr[6];
  if (len < sizeof hdr) return mproc__fail(MPROC_EINVAL, "target reference is truncated");
  memcpy(hdr, ref, sizeof hdr);
  if (hdr[0] > 1) return mproc__fail(MPROC_EINVAL, "target reference: bad module kind");
  char path[PATH_MAX];
  size_t plen = len - sizeof hdr;
  if (hdr[0] ? plen != 0 : (plen == 0 || plen >= sizeof path))
    return mproc__fail(MPROC_EINVAL, "target reference: bad module path");
  memcpy(path, (const char *)ref + sizeof hdr, plen);
  path[plen] = '\0';
  if (!hdr[0] && (path[0] != '/' || memchr(path, '\0', plen)))
    return mproc__fail(MPROC_EINVAL, "target reference: the module path is not absolute");
  /* The module's identity first: nothing is loaded (no constructor runs) unless it is the very file the
   * parent had. */
  uint64_t id[4];
  const char *idpath = hdr[0] ? exe_link() : path;
  int rc = file_identity(idpath, id);
  if (rc) return rc;
  if (memcmp(id, hdr + 2, sizeof id) != 0)
    return mproc__fail(MPROC_ENOENT, "the child runs a different binary than the parent ('%s' changed on disk?): "
                                     "the target cannot be found again", hdr[0] ? "the executable" : path);
  if (!hdr[0] && !dlopen(path, RTLD_NOW | RTLD_NOLOAD) && !dlopen(path, RTLD_NOW))
    return mproc__fail(MPROC_ENOENT, "cannot load module '%s' of the target: %s", path, dlerror());
  find_lib f = {hdr[0] ? NULL : path, 0, hdr[1] > UINTPTR_MAX ? UINTPTR_MAX : (uintptr_t)hdr[1], false};
  dl_iterate_phdr(lib_cb, &f);
  if (!f.base) return mproc__fail(MPROC_ENOENT, "module '%s' of the target is not mapped", hdr[0] ? "the executable" : path);
  if (!f.in_code)
    return mproc__fail(MPROC_EINVAL, "target reference: offset %#llx is not in the code of %s",
                       (unsigned long long)hdr[1], hdr[0] ? "the executable" : path);
  *fn = (void *)(f.base + (uintptr_t)hdr[1]);
  return 0;
}
