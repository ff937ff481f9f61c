/* POSIX PAL: descriptor passing and the fork server (pal.h, "descriptor passing and the fork server"):
 * passing descriptors over a connection (SCM_RIGHTS) and, for now, the fork server's loop.
 *
 * The fork server is the program re-executed (see src/process.c); once its main guard has recognised
 * it, it calls mproc__pal_forkserver_serve, which never returns. It is single-threaded: it waits
 * (poll) on its control socket and on a SIGCHLD self-pipe; it forks one child per request and reaps
 * its children, handing each exit status to the portable code, which writes it on that child's boot
 * link. It exits when the control socket reaches end of file (the client has gone). With each reply
 * it sends a pidfd of the child it forked (Linux), so the client can signal exactly that process. */
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
                         long *sender) {
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
      *sender = (long)cr.pid;
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
                             size_t *nfds) {
  return recv_fds_from((int)h, buf, cap, n, fds, maxfds, nfds, NULL);
}

/* ---- the server -------------------------------------------------------------------------------- */

static int g_sigpipe[2] = {-1, -1};

static void on_sigchld(int sig) {
  (void)sig;
  int e = errno;
  ssize_t w = write(g_sigpipe[1], "c", 1);
  (void)w;
  errno = e;
}

typedef struct fs_kid {
  pid_t pid;
  int boot; /* the server's copy of the child's end of its boot link */
} fs_kid;

/* Whether requests are checked one by one: SO_PASSCRED on the control socket (Linux). */
static bool g_check_sender;

/* Read exactly n bytes (the descriptors that come with them are appended to fds). false at end of
 * file or on an error. Every byte must come from our parent (the process that started this server and
 * made the control socket, checked by the guard): where the kernel tells each sender (SO_PASSCRED), a
 * byte from anyone else (a process the parent's end leaked to) ends the server. */
static bool read_exact(int h, unsigned char *p, size_t n, int *fds, size_t maxfds, size_t *nfds) {
  size_t got = 0;
  while (got < n) {
    size_t k = 0, kf = 0;
    long sender = -1;
    mproc_os_handle f[MPROC__PAL_MAX_FDS];
    int rc = recv_fds_from(h, p + got, n - got, &k, f, MPROC__PAL_MAX_FDS, &kf, g_check_sender ? &sender : NULL);
    if (g_check_sender && k && sender != (long)getppid()) {
      for (size_t i = 0; i < kf; ++i) close((int)f[i]);
      _exit(MPROC_EXIT_GUARD_REFUSED);
    }
    if (rc != 0 && k == 0) return false;
    for (size_t i = 0; i < kf; ++i) {
      if (fds && *nfds < maxfds)
        fds[(*nfds)++] = (int)f[i];
      else
        close((int)f[i]);
    }
    if (k == 0) return false;
    got += k;
  }
  return true;
}

void mproc__pal_forkserver_serve(mproc_os_handle ctl_h, mproc__fs_child_fn child_fn, mproc__fs_status_fn status_fn) {
  int ctl = (int)ctl_h;
  (void)fcntl(ctl, F_SETFD, FD_CLOEXEC);
#if defined(__linux__) && defined(SO_PASSCRED)
  int one = 1;
  g_check_sender = setsockopt(ctl, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) == 0;
#endif
  if (pipe(g_sigpipe) != 0) _exit(70);
  for (int i = 0; i < 2; ++i) {
    (void)fcntl(g_sigpipe[i], F_SETFD, FD_CLOEXEC);
    (void)fcntl(g_sigpipe[i], F_SETFL, O_NONBLOCK);
  }
  struct sigaction sa, old_chld, old_int;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, &old_chld);
  /* Ctrl-C goes to the whole process group: the children decide, the server carries on (as CPython's) */
  sa.sa_handler = SIG_IGN;
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, &old_int);

  fs_kid *kids = NULL;
  size_t nkids = 0, capkids = 0;
  /* hello: the server's pid */
  unsigned char hello[8];
  mproc__wire_put_le64(hello, (uint64_t)getpid());
  if (mproc__pal_conn_send(ctl, hello, 8, NULL, 0) != 0) _exit(0);

  for (;;) {
    struct pollfd pfd[2] = {{ctl, POLLIN, 0}, {g_sigpipe[0], POLLIN, 0}};
    int r = poll(pfd, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      _exit(70);
    }
    if (pfd[1].revents) {
      char drain[64];
      while (read(g_sigpipe[0], drain, sizeof drain) > 0) {
      }
      int st;
      pid_t pid;
      while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        int code = WIFSIGNALED(st) ? -WTERMSIG(st) : WIFEXITED(st) ? WEXITSTATUS(st) : 255;
        for (size_t i = 0; i < nkids; ++i) {
          if (kids[i].pid != pid) continue;
          status_fn(kids[i].boot, code); /* writes the status and closes the descriptor */
          kids[i] = kids[--nkids];
          break;
        }
      }
    }
    if (!pfd[0].revents) continue;
    /* a request: u64 length, the bootstrap message; the descriptors come with the first bytes */
    unsigned char hdr[8];
    int fds[MPROC__PAL_MAX_FDS];
    size_t nfds = 0;
    if (!read_exact(ctl, hdr, 8, fds, MPROC__PAL_MAX_FDS, &nfds)) _exit(0); /* the client has gone */
    uint64_t len = mproc__wire_get_le64(hdr);
    char *msg = len < SIZE_MAX ? (char *)malloc((size_t)len + 1) : NULL;
    if (!msg || !read_exact(ctl, (unsigned char *)msg, (size_t)len, fds, MPROC__PAL_MAX_FDS, &nfds)) _exit(70);
    int64_t reply = -1;
    int pidfd = -1; /* sent with the reply: the client signals the child through it */
    if (nfds >= 1 &&
        (nkids < capkids || (kids = (fs_kid *)realloc(kids, (capkids = capkids * 2 + 16) * sizeof *kids)))) {
      pid_t pid = fork();
      if (pid == 0) {
        close(ctl);
        close(g_sigpipe[0]);
        close(g_sigpipe[1]);
        for (size_t i = 0; i < nkids; ++i) close(kids[i].boot);
        free(kids);
        sigaction(SIGCHLD, &old_chld, NULL);
        sigaction(SIGINT, &old_int, NULL);
        mproc_os_handle hf[MPROC__PAL_MAX_FDS];
        for (size_t i = 0; i < nfds; ++i) hf[i] = fds[i];
        child_fn(hf[0], msg, (size_t)len, hf + 1, nfds - 1); /* never returns */
        _exit(70);
      }
      reply = pid > 0 ? (int64_t)pid : -(int64_t)errno;
      if (pid > 0) {
        kids[nkids].pid = pid;
        kids[nkids].boot = fds[0];
        ++nkids;
        fds[0] = -1;
        pidfd = mproc__posix_pidfd_open(pid); /* we have not reaped it: it is the child */
      }
    }
    free(msg);
    for (size_t i = 0; i < nfds; ++i)
      if (fds[i] >= 0) close(fds[i]);
    unsigned char out[8];
    mproc__wire_put_le64(out, (uint64_t)reply);
    mproc_os_handle ph = pidfd;
    int sent = mproc__pal_conn_send_fds(ctl, out, 8, &ph, pidfd >= 0 ? 1 : 0);
    if (pidfd >= 0) close(pidfd);
    if (sent != 0) _exit(0);
  }
}
