/* POSIX PAL: connections (pal.h, "connections and waiting"): pipes for Pipe(), Unix-domain socket pairs for
 * links and bulk payloads, and waiting on connections and process sentinels at once (poll).
 * Linux is tested here; the macOS/BSD branches follow their documentation and are untested. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* pipe2 */
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

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

MPROC__CHILD_PATH int mproc__pal_conn_send(mproc_os_handle h, const void *p1, size_t n1, const void *p2, size_t n2) {
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

bool mproc__pal_conn_peer_gone(mproc_os_handle h) {
  struct pollfd pfd = {(int)h, 0, 0};
  int r;
  do r = poll(&pfd, 1, 0);
  while (r < 0 && errno == EINTR);
  return r > 0 && (pfd.revents & (POLLERR | POLLHUP)) != 0;
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

/* ---- waiting on connections and processes ---------------------------------------------------- */

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
  return child->handle != MPROC_NO_HANDLE ? child->handle : boot;
}
