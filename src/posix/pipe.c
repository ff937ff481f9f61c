/* POSIX PAL: pipes, files and the communicate pump (poll). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* pipe2, F_SETPIPE_SZ */
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../pal.h"
#include "posix.h"

/* preadv2 / pwritev2 with per-call flags: Linux with glibc (2.26 and later declare them with RWF_NOWAIT);
 * musl declares neither, and its programs take the portable paths. */
#if defined(__linux__) && defined(RWF_NOWAIT)
#define HAVE_RWF 1
#else
#define HAVE_RWF 0
#endif

/* Bytes a read asks for at once; captured output grows geometrically around it. */
#define READ_CHUNK (256 * 1024)

int mproc__pal_set_blocking(mproc_os_handle h, bool blocking) {
  int fd = (int)h;
  int fl = fcntl(fd, F_GETFL);
  int want = blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK;
  if (fl == -1 || (want != fl && fcntl(fd, F_SETFL, want) == -1))
    return mproc__fail_os(0, errno, "fcntl(O_NONBLOCK) on fd %d", fd);
  return 0;
}

/* Reading a pipe without waiting, call by call: preadv2 with RWF_NOWAIT (Linux, once the kernel reads
 * pipes so; probed on the first output pipe: 0 unknown, 1 yes, -1 no). Where it works, the parent's read
 * end of an output pipe stays blocking, and a read that may wait as long as it takes sleeps in read()
 * itself: one system call per wake-up, as a plain read loop makes, where a non-blocking end costs a
 * failed read and a poll more (measured here: a child writing 100,000 short lines, read as they come,
 * took a third longer that way). Reads that must not wait (with a deadline, the communicate pump) ask
 * for it with the flag; elsewhere, and for a terminal's master (which does not take the flag), the end
 * is non-blocking and they are plain reads. */
#if HAVE_RWF
static _Atomic int g_read_nowait;
#endif

static ssize_t read_nowait(int fd, void *buf, size_t cap) {
#if HAVE_RWF
  if (atomic_load_explicit(&g_read_nowait, memory_order_relaxed) > 0) {
    struct iovec v = {buf, cap};
    ssize_t r = preadv2(fd, &v, 1, -1, RWF_NOWAIT);
    if (r >= 0 || errno != EOPNOTSUPP) return r;
    /* not a pipe (a terminal's master): such ends are non-blocking */
  }
#endif
  return read(fd, buf, cap);
}

/* A read that may wait as long as it takes. On a blocking end (see g_read_nowait) that finds the pipe
 * empty, it yields the CPU once before it sleeps in read(): a writer sharing this CPU then writes on
 * instead of waking a reader per line, and the reader takes a batch at its next turn (a child writing
 * 100,000 lines of 64 bytes, one write each, both on one CPU: 2.6x faster than a plain read loop).
 * Only an empty pipe yields, so no byte that has arrived waits; with nothing else runnable on the CPU
 * sched_yield returns at once, and across two CPUs it costs a system call per wake-up (measured: no
 * change). The price: while a busy program shares the reader's CPU, a line written just after the
 * yield is read at the reader's next turn (up to a scheduler slice) rather than at once. */
static ssize_t read_waiting(int fd, void *buf, size_t cap) {
#if HAVE_RWF
  if (atomic_load_explicit(&g_read_nowait, memory_order_relaxed) > 0) {
    struct iovec v = {buf, cap};
    ssize_t r = preadv2(fd, &v, 1, -1, RWF_NOWAIT);
    if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EOPNOTSUPP)) return r;
    if (errno != EOPNOTSUPP) (void)sched_yield(); /* else a terminal's master: non-blocking, read below */
  }
#endif
  return read(fd, buf, cap);
}

/* Whether the parent's read end `fd` (a new, empty pipe) may stay blocking: see g_read_nowait. */
static bool reads_without_waiting(int fd) {
#if HAVE_RWF
  int known = atomic_load_explicit(&g_read_nowait, memory_order_relaxed);
  if (known == 0) {
    char c;
    struct iovec v = {&c, 1};
    known = preadv2(fd, &v, 1, -1, RWF_NOWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : -1;
    atomic_store_explicit(&g_read_nowait, known, memory_order_relaxed);
  }
  return known > 0;
#else
  (void)fd;
  return false;
#endif
}

int mproc__pal_pipe(bool child_writes, mproc_os_handle *parent_end, mproc_os_handle *child_end) {
  int fds[2];
  *parent_end = *child_end = MPROC_NO_HANDLE;
  /* O_CLOEXEC at creation: another thread's spawn can never inherit either end. */
  if (mproc__posix_pipe_cloexec(fds) == -1) return mproc__fail_os(0, errno, "pipe2");
  int parent = child_writes ? fds[0] : fds[1];
  int child = child_writes ? fds[1] : fds[0];
  /* The parent's end never waits past a deadline: reads and writes wait in poll with one, or it is a
   * blocking read end read without waiting on request (g_read_nowait). The child's end stays blocking,
   * as programs expect. */
  int rc = child_writes && reads_without_waiting(parent) ? 0 : mproc__pal_set_blocking(parent, false);
  if (rc) {
    close(fds[0]);
    close(fds[1]);
    return rc;
  }
#ifdef F_SETPIPE_SZ
  /* A larger pipe halves the context switches of a bulk capture; failure (a limit) is harmless. */
  if (child_writes) (void)fcntl(parent, F_SETPIPE_SZ, 1024 * 1024);
#endif
  *parent_end = parent;
  *child_end = child;
  return 0;
}

static int open_cloexec(const char *path, int flags, mproc_os_handle *out, const char *what) {
  int fd;
  do fd = open(path, flags | O_CLOEXEC, 0666);
  while (fd == -1 && errno == EINTR);
  if (fd == -1) return mproc__fail_os(0, errno, "open %s '%s'", what, path);
  *out = fd;
  return 0;
}

int mproc__pal_open_devnull(bool for_write, mproc_os_handle *out) {
  return open_cloexec("/dev/null", for_write ? O_WRONLY : O_RDONLY, out, "null device");
}

int mproc__pal_open_path(const char *path, bool for_write, bool append, mproc_os_handle *out) {
  int flags = for_write ? (O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC)) : O_RDONLY;
  return open_cloexec(path, flags, out, for_write ? "output file" : "input file");
}

int mproc__posix_wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t ms = mproc__ms_until(deadline);
    struct pollfd pfd = {fd, events, 0};
    int n = poll(&pfd, 1, ms > INT32_MAX ? INT32_MAX : (int)ms);
    if (n > 0) return 0;
    if (n == 0) {
      if (ms == 0 || mproc__ms_until(deadline) == 0) return MPROC_ETIMEDOUT;
      continue;
    }
    if (errno != EINTR) return mproc__fail_os(0, errno, "poll on fd %d", fd);
  }
}

int mproc__pal_read(mproc_os_handle h, void *buf, size_t cap, int64_t deadline, size_t *n) {
  int fd = (int)h;
  *n = 0;
  for (;;) {
    /* with no deadline a blocking end sleeps in read() (see read_waiting) */
    ssize_t r = deadline == INT64_MAX ? read_waiting(fd, buf, cap) : read_nowait(fd, buf, cap);
    if (r >= 0) {
      *n = (size_t)r;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EIO) return 0; /* a pseudo-terminal's master once the terminal side has closed: EOF */
    if (errno != EAGAIN && errno != EWOULDBLOCK) return mproc__fail_os(0, errno, "read from fd %d", fd);
    int rc = mproc__posix_wait_fd(fd, POLLIN, deadline);
    if (rc == MPROC_ETIMEDOUT) return mproc__fail(rc, "read from fd %d: nothing arrived before the timeout", fd);
    if (rc) return rc;
  }
}

void mproc__posix_sigpipe_block(mproc__sigpipe_guard *g) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &g->old);
  g->was_blocked = sigismember(&g->old, SIGPIPE) == 1;
}

void mproc__posix_sigpipe_unblock(mproc__sigpipe_guard *g, bool got_epipe) {
  if (g->was_blocked) return; /* the mask is as it was */
  if (got_epipe) {
    /* Ours: it was not pending before (an unblocked SIGPIPE would have been delivered already). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) == -1 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

#ifndef RWF_NOSIGNAL
#define RWF_NOSIGNAL 0x00000100 /* <linux/fs.h> of Linux 6.18; older headers lack it */
#endif

/* Whether pwritev2(RWF_NOSIGNAL) works here: 0 not known yet, 1 yes, -1 no (or forced off). */
static _Atomic int g_nosignal;

void mproc__posix_force_sigpipe_guard(bool force) { atomic_store(&g_nosignal, force ? -1 : 0); }

MPROC__CHILD_PATH ssize_t mproc__posix_writev_nosigpipe(int fd, const struct iovec *iov, int n) {
#if HAVE_RWF
  int known = atomic_load_explicit(&g_nosignal, memory_order_relaxed);
  if (known >= 0) {
    ssize_t w = pwritev2(fd, iov, n, -1, RWF_NOSIGNAL); /* offset -1: the current position, as writev */
    if (w >= 0 || (errno != EOPNOTSUPP && errno != ENOSYS)) {
      if (!known) atomic_store_explicit(&g_nosignal, 1, memory_order_relaxed);
      return w;
    }
    /* An older kernel does not know the flag. Once it has worked, this is a file without the vector
     * write the flag needs (not a pipe or socket): the guard for this call only. */
    if (!known) atomic_store_explicit(&g_nosignal, -1, memory_order_relaxed);
  }
#endif
  mproc__sigpipe_guard g;
  mproc__posix_sigpipe_block(&g);
  ssize_t w = writev(fd, iov, n);
  int e = errno;
  mproc__posix_sigpipe_unblock(&g, w < 0 && e == EPIPE);
  errno = e;
  return w;
}

int mproc__pal_write(mproc_os_handle h, const void *buf, size_t len, int64_t deadline, size_t *n) {
  int fd = (int)h;
  int rc = 0;
  *n = 0;
  while (*n < len) {
    struct iovec iov = {(char *)buf + *n, len - *n};
    ssize_t w = mproc__posix_writev_nosigpipe(fd, &iov, 1);
    if (w >= 0) {
      *n += (size_t)w;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EPIPE) {
      rc = mproc__fail_os(MPROC_EPIPE, EPIPE, "write to fd %d: the reader has gone", fd);
      break;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      rc = mproc__fail_os(0, errno, "write to fd %d", fd);
      break;
    }
    rc = mproc__posix_wait_fd(fd, POLLOUT, deadline);
    if (rc == MPROC_ETIMEDOUT) {
      rc = *n ? 0 : mproc__fail(rc, "write to fd %d: no room before the timeout", fd);
      break;
    }
    if (rc) break;
  }
  return rc;
}

/* Read what is ready from *h into b (once: a single read, so the caller hands it on before more comes
 * and b stays small); at end of file close *h. 0, or an error. */
static int pump_read(mproc_os_handle *h, mproc__buf *b, bool once) {
  for (;;) {
    int rc = mproc__buf_reserve(b, READ_CHUNK);
    if (rc) return rc;
    ssize_t r = read_nowait((int)*h, b->data + b->len, b->cap - b->len - 1);
    if (r > 0) {
      b->len += (size_t)r;
      if (once || (size_t)r < READ_CHUNK / 2) return 0; /* likely drained: go back to poll */
      continue;
    }
    if (r == 0 || errno == EIO) { /* EIO: a pseudo-terminal's master after the terminal side closed */
      mproc__pal_close(*h);
      *h = MPROC_NO_HANDLE;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return mproc__fail_os(0, errno, "read from child pipe fd %d", (int)*h);
  }
}

/* Write what fits of the input; when all is written or the reader has gone, close. */
static int pump_write(mproc__comm *c, bool *epipe) {
  while (c->input_off < c->input_len) {
    size_t chunk = c->input_len - c->input_off;
    if (chunk > 1024 * 1024) chunk = 1024 * 1024;
    ssize_t w = write((int)c->in, c->input + c->input_off, chunk);
    if (w > 0) {
      c->input_off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (w < 0 && errno == EPIPE) {
      *epipe = true;
      break; /* the child stopped reading: drop the rest, as Python does */
    }
    return mproc__fail_os(0, errno, "write to child stdin fd %d", (int)c->in);
  }
  mproc__pal_close(c->in);
  c->in = MPROC_NO_HANDLE;
  return 0;
}

int mproc__pal_communicate(mproc__comm *c, int64_t deadline) {
  int rc = 0;
  bool epipe = false;
  mproc__sigpipe_guard g;
  int drain_passes = 0;
  size_t out_len0 = c->out_buf ? c->out_buf->len : 0, err_len0 = c->err_buf ? c->err_buf->len : 0;
  mproc__posix_sigpipe_block(&g);
  for (;;) {
    struct pollfd pfd[3];
    mproc_os_handle *owner[3];
    int n = 0;
    if (c->in != MPROC_NO_HANDLE) {
      pfd[n] = (struct pollfd){(int)c->in, POLLOUT, 0};
      owner[n++] = &c->in;
    }
    if (c->out != MPROC_NO_HANDLE) {
      pfd[n] = (struct pollfd){(int)c->out, POLLIN, 0};
      owner[n++] = &c->out;
    }
    if (c->err != MPROC_NO_HANDLE) {
      pfd[n] = (struct pollfd){(int)c->err, POLLIN, 0};
      owner[n++] = &c->err;
    }
    if (n == 0) break;
    int64_t ms = mproc__ms_until(deadline);
    /* Past the deadline only what is ready moves, and only for a bounded number of passes, so a
     * grandchild that writes without end cannot keep us here. */
    if (ms == 0 && ++drain_passes > 64) {
      rc = MPROC_ETIMEDOUT;
      break;
    }
    int ready = poll(pfd, (nfds_t)n, ms > INT32_MAX ? INT32_MAX : (int)ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      rc = mproc__fail_os(0, errno, "poll on child pipes");
      break;
    }
    if (ready == 0) {
      if (ms != 0 && mproc__ms_until(deadline) != 0) continue;
      rc = MPROC_ETIMEDOUT;
      break;
    }
    for (int i = 0; i < n && rc == 0; ++i) {
      if (!pfd[i].revents) continue;
      if (owner[i] == &c->in)
        rc = pump_write(c, &epipe);
      else
        rc = pump_read(owner[i], owner[i] == &c->out ? c->out_buf : c->err_buf, c->return_on_output);
    }
    if (rc) break;
    if (c->return_on_output &&
        ((c->out_buf && c->out_buf->len != out_len0) || (c->err_buf && c->err_buf->len != err_len0)))
      break; /* output arrived: the caller hands it on and calls again */
  }
  mproc__posix_sigpipe_unblock(&g, epipe);
  return rc;
}
