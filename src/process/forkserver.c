/* The forkserver start method (POSIX), both sides of its protocol. A clean, single-threaded server
 * process (this program started again; its guard runs mproc__forkserver_serve) forks the children on
 * request: fork's speed without forking a multi-threaded parent. The parent sends it the bootstrap
 * message with the child's boot end and the handed connections' descriptors attached; the server forks,
 * replies with the child's pid (and a pidfd of it where the system has them), and the child answers
 * "ok<pid>" on the boot link as under spawn. The server is the OS parent, so it reaps the child and
 * writes "X<exitcode>" on the boot link (self.c reads it).
 *
 * Protocol on the control socket: the server first sends its pid (8 bytes, little-endian); a request is
 * a u64 length and that many bytes; the reply is the child's pid (8 bytes; negative: -errno, the fork
 * failed). The server exits at end of file on it, and accepts requests from its parent alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../wire.h"
#include "process_internal.h"

#define EXIT_BOOT_FAILED MPROC_EXIT_BOOT_FAILED

/* The fork server this process uses (under the global lock): our end of its control socket. */
static mproc_os_handle g_fs_ctl = MPROC_NO_HANDLE;
static mproc__child g_fs_child = {.handle = MPROC_NO_HANDLE};

/* In a fork child: our fork server is not the child's (after-fork hook). */
static void forget_server(void) {
  if (g_fs_ctl == MPROC_NO_HANDLE) return;
  mproc__pal_close(g_fs_ctl);
  g_fs_ctl = MPROC_NO_HANDLE;
  mproc__pal_child_release(&g_fs_child);
}

/* ---- the client side --------------------------------------------------------------------------- */

static bool recv_all(mproc_os_handle h, void *buf, size_t n) {
  for (size_t got = 0, k = 0; got < n; got += k)
    if (mproc__pal_conn_recv(h, (char *)buf + got, n - got, INT64_MAX, &k) != 0 || k == 0) return false;
  return true;
}

static bool recv_i64(mproc_os_handle h, int64_t *v) {
  unsigned char b[8];
  if (!recv_all(h, b, 8)) return false;
  *v = (int64_t)mproc__wire_get_le64(b);
  return true;
}

/* The server's reply to a request: the child's pid (or -errno), and with it, where the system has
 * them, a pidfd of the child (*pidfd, else MPROC_NO_HANDLE). */
static bool recv_reply(mproc_os_handle h, int64_t *pid, mproc_os_handle *pidfd) {
  unsigned char b[8];
  *pidfd = MPROC_NO_HANDLE;
  for (size_t got = 0; got < 8;) {
    size_t k = 0, nf = 0;
    mproc_os_handle f = MPROC_NO_HANDLE;
    int rc = mproc__pal_conn_recv_fds(h, b + got, 8 - got, &k, &f, 1, &nf);
    if (nf) {
      mproc__pal_close(*pidfd);
      *pidfd = f;
    }
    if (rc || k == 0) {
      mproc__pal_close(*pidfd);
      *pidfd = MPROC_NO_HANDLE;
      return false;
    }
    got += k;
  }
  *pid = (int64_t)mproc__wire_get_le64(b);
  return true;
}

/* Forget a dead (or broken) server; reap it. Under the global lock. */
static void server_drop(void) {
  mproc__pal_close(g_fs_ctl);
  g_fs_ctl = MPROC_NO_HANDLE;
  if (g_fs_child.pid > 0) {
    mproc__pal_signal(&g_fs_child, MPROC_SIGKILL);
    mproc__pal_wait(&g_fs_child, INT64_MAX);
  }
  mproc__pal_child_release(&g_fs_child);
  memset(&g_fs_child, 0, sizeof g_fs_child);
  g_fs_child.handle = MPROC_NO_HANDLE;
}

/* Start the fork server: this program re-executed with FORKSERVER_FLAG; its guard says hello (its
 * pid) on the control socket. Under the global lock. */
static int server_start(void) {
  mproc_os_handle mine, theirs;
  int rc = mproc__pal_conn_pair(true, &mine, &theirs);
  if (rc) return rc;
  rc = mproc__respawn_self(MPROC__FORKSERVER_FLAG, theirs, &theirs, 1, false, &g_fs_child);
  mproc__pal_close(theirs);
  if (rc) {
    mproc__pal_close(mine);
    return rc;
  }
  g_fs_ctl = mine;
  int64_t hello = 0;
  if (!recv_i64(mine, &hello) || hello != g_fs_child.pid) {
    server_drop();
    return mproc__fail(MPROC_ESTATE,
                       "start: the fork server exited before serving: does the program's main() call "
                       "mproc_main_guard(argc, argv) first?");
  }
  return 0;
}

/* One request to the server (started if needed; restarted once if it had died): the child's pid.
 * *lost: the server died after the request reached it (it may have forked the child or not). */
static int server_request(const mproc_process *p, const mproc__buf *req, const mproc_os_handle *fds, size_t nfds,
                          int64_t *pid, mproc_os_handle *pidfd, bool *lost) {
  *lost = false;
  *pidfd = MPROC_NO_HANDLE;
  int rc = 0;
  mproc__pal_global_lock();
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (g_fs_ctl == MPROC_NO_HANDLE && (rc = server_start()) != 0) break;
    rc = mproc__pal_conn_send_fds(g_fs_ctl, req->data, req->len, fds, nfds);
    if (rc == MPROC_EPIPE) { /* the server has died since the last start: nothing was delivered */
      server_drop();
      continue;
    }
    if (rc) break;
    if (!recv_reply(g_fs_ctl, pid, pidfd)) {
      server_drop();
      *lost = true;
      rc = mproc__fail(MPROC_ESYS, "start '%s': the fork server died while starting it", p->name);
    } else if (*pid <= 0) {
      rc =
          mproc__fail(MPROC_ESYS, "start '%s': the fork server could not fork (errno %lld)", p->name, (long long)-*pid);
    }
    break;
  }
  mproc__pal_global_unlock();
  return rc;
}

int mproc__start_forkserver(mproc_process *p, mproc_os_handle child_end) {
  mproc__after_fork_register(forget_server); /* not under the global lock, which it takes */
  mproc_os_handle fds[MPROC__PAL_MAX_FDS];
  mproc__buf msg = {NULL, 0, 0};
  mproc_os_handle *hs = NULL;
  size_t nh = 0;
  static const unsigned char len0[8] = {0};
  int rc = mproc__buf_append(&msg, len0, 8); /* the length, set below */
  if (!rc) rc = mproc__boot_message(p, &msg, &hs, &nh);
  if (!rc && nh + 1 > MPROC__PAL_MAX_FDS)
    rc = mproc__fail(MPROC_EINVAL,
                     "start '%s': the handed objects need %zu descriptors, a forkserver child can be given at most "
                     "%d (a duplex connection end has three on POSIX)",
                     p->name, nh, MPROC__PAL_MAX_FDS - 1);
  size_t nfds = 1 + nh;
  if (!rc && nh) memcpy(fds + 1, hs, nh * sizeof *hs);
  free(hs);
  if (!rc) mproc__wire_put_le64((unsigned char *)msg.data, msg.len - 8);
  int64_t pid = 0, answered_pid = 0;
  bool answered = false;
  mproc_os_handle pidfd = MPROC_NO_HANDLE, end = child_end; /* ours to close once sent */
  for (int attempt = 0; !rc; ++attempt) {
    bool lost = false;
    fds[0] = end;
    rc = server_request(p, &msg, fds, nfds, &pid, &pidfd, &lost);
    mproc__pal_close(end); /* the server has its copy (or nobody needs it): an answer or end of file follows */
    end = MPROC_NO_HANDLE;
    if (rc == 0 || !lost) break;
    /* The server died after the request reached it. If it forked the child, the child answers on the
     * boot link (with its pid); end of file there means no process has the child's end. */
    p->via_server = true;
    if (mproc__boot_answer(p, "forkserver", &answered_pid) == 0) {
      answered = true;
      rc = 0;
      break;
    }
    memset(&p->child, 0, sizeof p->child);
    p->child.handle = MPROC_NO_HANDLE;
    p->via_server = false;
    if (attempt) break;
    mproc_os_handle parent_end;
    if ((rc = mproc__pal_conn_pair(true, &parent_end, &end)) != 0) break;
    mproc_connection *boot = mproc__connection_wrap(mproc__conn_end_link(parent_end));
    if (!boot) {
      mproc__pal_close(parent_end);
      rc = MPROC_ENOMEM;
      break;
    }
    mproc_connection_destroy(p->boot);
    p->boot = boot;
  }
  mproc__pal_close(end);
  mproc__buf_free(&msg);
  if (rc) {
    mproc__pal_close(pidfd);
    return rc;
  }
  p->child.pid = answered ? answered_pid : pid;
  p->child.handle = pidfd; /* signals reach this very process (mproc__pal_signal), never a reused pid */
  p->via_server = true;
  if (answered) return 0;
  rc = mproc__boot_answer(p, "forkserver", &answered_pid); /* the child's answer, as under spawn */
  if (rc == 0 && answered_pid > 0) p->child.pid = answered_pid;
  return rc;
}

/* ---- the server side ------------------------------------------------------------------------------- */

/* In a child forked by the server. */
static void server_child(mproc_os_handle boot, char *msg, size_t len, const mproc_os_handle *fds, size_t nfds) {
  mproc_connection *link = mproc__connection_wrap(mproc__conn_end_link(boot));
  if (!link) mproc__pal_exit_now(EXIT_BOOT_FAILED);
  mproc__boot_run(link, msg, len, fds, nfds);
}

/* In the server: a child ended; tell its parent on the boot link. */
static void server_status(mproc_os_handle boot, int code) {
  char buf[32];
  int n = snprintf(buf, sizeof buf, "X%d", code);
  mproc_connection *c = mproc__connection_wrap(mproc__conn_end_link(boot));
  if (!c) {
    mproc__pal_close(boot);
    return;
  }
  mproc_connection_send_bytes(c, buf, (size_t)n, 0, MPROC_ALL); /* the parent may have gone: no matter */
  mproc_connection_destroy(c);
}

void mproc__forkserver_serve(mproc_os_handle ctl) {
  mproc__pal_forkserver_serve(ctl, server_child, server_status);
  mproc__pal_exit_now(EXIT_BOOT_FAILED);
}
