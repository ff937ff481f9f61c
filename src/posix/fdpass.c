/* POSIX PAL: handing handles to other processes and the fork server's mechanisms (pal.h, "handing handles
 * to other processes, and the fork server"): descriptors over a connection (SCM_RIGHTS) for the object
 * frames of connections and for the fork server, the sender of what arrives (SO_PASSCRED), and
 * children's exits as an event (a SIGCHLD signalfd, or self-pipe) with reaping of any child. The server's loop, its
 * protocol and its policy are src/process/forkserver.c's. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* pipe2 (posix.h), struct ucred */
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#if defined(__linux__)
#include <sys/signalfd.h>
#endif
#include <unistd.h>

#include "../pal.h"
#include "../wire.h"
#include "posix.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif
#ifndef MSG_CMSG_CLOEXEC
#define MSG_CMSG_CLOEXEC 0
#endif

int mproc__pal_conn_send_fds(mproc_os_handle h, const void *buf, size_t len, const mproc_os_handle *fds, size_t nfds) {
  if (len == 0) return mproc__fail(MPROC_EINVAL, "send_fds: at least one byte must carry the descriptors");
  if (nfds > MPROC__PAL_MAX_FDS)
    return mproc__fail(MPROC_EINVAL, "send_fds: %zu descriptors (at most %d)", nfds, MPROC__PAL_MAX_FDS);
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * MPROC__PAL_MAX_FDS)];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {(void *)buf, len};
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (nfds) {
    m.msg_control = ctl.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    int *out = (int *)(void *)CMSG_DATA(c);
    for (size_t i = 0; i < nfds; ++i) out[i] = (int)fds[i];
  }
  ssize_t w;
  do {
    w = sendmsg((int)h, &m, MSG_NOSIGNAL);
  } while (w < 0 && errno == EINTR);
  if (w < 0) {
    if (errno == EPIPE || errno == ECONNRESET)
      return mproc__fail_os(MPROC_EPIPE, errno, "send: the peer has closed the connection");
    return mproc__fail_os(0, errno, "sendmsg with %zu descriptors on fd %d", nfds, (int)h);
  }
  /* the descriptors went with the first byte; the rest is plain data */
  return (size_t)w < len ? mproc__pal_conn_send(h, (const char *)buf + w, len - (size_t)w, NULL, 0) : 0;
}

/* recvmsg with descriptors and, where the socket has SO_PASSCRED (Linux; the fork server's control
 * socket), the sender's pid as the kernel saw it (*sender, else -1). */
static int recv_fds_from(int h, void *buf, size_t cap, size_t *n, mproc_os_handle *fds, size_t maxfds, size_t *nfds,
                         int64_t *sender) {
  *n = 0;
  *nfds = 0;
  if (sender) *sender = -1;
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * MPROC__PAL_MAX_FDS) + CMSG_SPACE(64)];
  } ctl;
  struct iovec iov = {buf, cap};
  struct msghdr m;
  for (;;) {
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof ctl.buf;
    ssize_t r = recvmsg(h, &m, MSG_CMSG_CLOEXEC);
    if (r >= 0) {
      *n = (size_t)r;
      break;
    }
    if (errno == EINTR || errno == EAGAIN) continue;
    if (errno == ECONNRESET) return 0;
    return mproc__fail_os(0, errno, "recvmsg on fd %d", h);
  }
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
#if defined(__linux__) && defined(SCM_CREDENTIALS)
    if (c->cmsg_type == SCM_CREDENTIALS && sender && c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
      struct ucred cr;
      memcpy(&cr, CMSG_DATA(c), sizeof cr);
      *sender = (int64_t)cr.pid;
      continue;
    }
#endif
    if (c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int *in = (const int *)(const void *)CMSG_DATA(c);
    for (size_t i = 0; i < k; ++i) {
      int fd = in[i];
      if (MSG_CMSG_CLOEXEC == 0) (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
      if (*nfds < maxfds)
        fds[(*nfds)++] = fd;
      else
        close(fd);
    }
  }
  if (m.msg_flags & MSG_CTRUNC) return mproc__fail(MPROC_ESYS, "recvmsg on fd %d: descriptors were dropped", h);
  return 0;
}

int mproc__pal_conn_recv_fds(mproc_os_handle h, void *buf, size_t cap, size_t *n, mproc_os_handle *fds, size_t maxfds,
                             size_t *nfds, int64_t *sender) {
  return recv_fds_from((int)h, buf, cap, n, fds, maxfds, nfds, sender);
}

/* ---- handles to a running process -------------------------------------------------------------- */

int mproc__pal_conn_send_handles(const mproc__conn_end *e, const void *hdr, size_t hlen, unsigned char *body,
                                 size_t blen, size_t at, const mproc_os_handle *hs, size_t n) {
  (void)at;
  if (e->bulk == MPROC_NO_HANDLE || e->wr == MPROC_NO_HANDLE)
    return mproc__fail(MPROC_ENOTSUP,
                       "this connection cannot carry descriptors (only the ends of a Pipe() can: "
                       "they travel on its socket pair)");
  int rc = mproc__pal_conn_send(e->wr, hdr, hlen, NULL, 0);
  return rc ? rc : mproc__pal_conn_send_fds(e->bulk, body, blen, hs, n);
}

int mproc__pal_conn_recv_handles(mproc_os_handle h, void *buf, size_t cap, int64_t deadline_ns, size_t *n,
                                 mproc_os_handle *fds, size_t maxfds, size_t *nfds) {
  *n = *nfds = 0;
  while (deadline_ns != INT64_MAX) {
    struct pollfd pfd = {(int)h, POLLIN, 0};
    int64_t ms = mproc__ms_until(deadline_ns);
    int r = poll(&pfd, 1, ms > INT32_MAX ? INT32_MAX : (int)ms);
    if (r > 0) break;
    if (r < 0 && errno != EINTR) return mproc__fail_os(0, errno, "poll on fd %d", (int)h);
    if (r == 0 && mproc__ms_until(deadline_ns) == 0) return MPROC_ETIMEDOUT;
  }
  return recv_fds_from((int)h, buf, cap, n, fds, maxfds, nfds, NULL);
}

int mproc__pal_handles_take(const unsigned char *pal_part, size_t n, const mproc_os_handle *fds, size_t nfds,
                            mproc_os_handle *out) {
  (void)pal_part;
  if (nfds != n) {
    for (size_t i = 0; i < nfds; ++i) close((int)fds[i]);
    return mproc__fail(MPROC_ESYS, "%zu descriptors came with a message that names %zu", nfds, n);
  }
  for (size_t i = 0; i < n; ++i) out[i] = fds[i];
  return 0;
}

/* ---- descriptor passing for the fork server ----------------------------------------------------- */

bool mproc__pal_conn_tell_senders(mproc_os_handle h) {
#if defined(__linux__) && defined(SO_PASSCRED)
  int one = 1;
  return setsockopt((int)h, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) == 0;
#else
  (void)h;
  return false;
#endif
}

/* ---- children's exits as an event (a server that forks) ---------------------------------------- */

/* Linux: a signalfd of SIGCHLD (blocked): an exit wakes the server's poll directly. Elsewhere: a
 * handler writing to a self-pipe, which costs the server a signal delivery and two more system calls
 * per exit. Either way SIGCHLD is set to its default, so that an inherited SIG_IGN cannot make the
 * kernel reap the children before their status is read. */
static int g_events[2] = {-1, -1}; /* the readable end (and the pipe's write end) */
static struct sigaction g_old_chld, g_old_int;
static bool g_chld_set; /* SIGCHLD's disposition was changed (and each child puts it back) */
#if defined(__linux__)
static sigset_t g_old_mask;
#else
static void on_sigchld(int sig) {
  (void)sig;
  int e = errno;
  ssize_t w = write(g_events[1], "c", 1);
  (void)w;
  errno = e;
}
#endif

int mproc__pal_child_events_open(mproc_os_handle *h) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
#if defined(__linux__)
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &g_old_mask);
  g_events[0] = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (g_events[0] < 0) {
    int e = errno;
    sigprocmask(SIG_SETMASK, &g_old_mask, NULL);
    return mproc__fail_os(0, e, "signalfd for SIGCHLD");
  }
  sa.sa_handler = SIG_DFL;
  sa.sa_flags = SA_NOCLDSTOP;
#else
  if (mproc__posix_pipe_cloexec(g_events) != 0) return mproc__fail_os(0, errno, "pipe for SIGCHLD");
  for (int i = 0; i < 2; ++i) (void)fcntl(g_events[i], F_SETFL, O_NONBLOCK);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
#endif
#if defined(__linux__)
  /* Already the default, and no SA_NOCLDWAIT: nothing to change, nor for each child to put back (a system
   * call per start) */
  struct sigaction cur;
  g_chld_set = sigaction(SIGCHLD, NULL, &cur) != 0 || cur.sa_handler != SIG_DFL || (cur.sa_flags & SA_NOCLDWAIT);
#else
  g_chld_set = true;
#endif
  if (g_chld_set) sigaction(SIGCHLD, &sa, &g_old_chld);
  sa.sa_handler = SIG_IGN;
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, &g_old_int);
  *h = g_events[0];
  return 0;
}

MPROC__CHILD_PATH void mproc__pal_child_events_close(void) {
  if (g_chld_set) sigaction(SIGCHLD, &g_old_chld, NULL);
  sigaction(SIGINT, &g_old_int, NULL);
#if defined(__linux__)
  sigprocmask(SIG_SETMASK, &g_old_mask, NULL);
#endif
  for (int i = 0; i < 2; ++i)
    if (g_events[i] >= 0) close(g_events[i]);
  g_events[0] = g_events[1] = -1;
}

void mproc__pal_child_events_drain(void) {
  if (g_events[0] < 0) return;
  /* Pipe bytes, or signalfd records (128 bytes each; SIGCHLD, a standard signal, is pending once at most).
   * A read that does not fill the buffer took all there was: no second read only to hear EAGAIN. */
  char drain[256];
  ssize_t n;
  do n = read(g_events[0], drain, sizeof drain);
  while (n == (ssize_t)sizeof drain || (n < 0 && errno == EINTR));
}

int mproc__pal_reap(int64_t which, int64_t *pid, int *code) {
  int st;
  pid_t p;
  do p = waitpid(which > 0 ? (pid_t)which : -1, &st, WNOHANG);
  while (p < 0 && errno == EINTR);
  if (p <= 0) return 0;
  *pid = p;
  *code = WIFSIGNALED(st) ? -WTERMSIG(st) : WIFEXITED(st) ? WEXITSTATUS(st) : 255;
  return 1;
}
