/* The forkserver start method (POSIX), both sides of its protocol. A clean, single-threaded server
 * process (this program started again; its guard runs mproc__forkserver_serve) forks the children on
 * request: fork's speed without forking a multi-threaded parent. The parent sends it the bootstrap
 * message with the child's boot end and the handed connections' descriptors attached; the server forks,
 * replies with the child's pid (and a pidfd of it where the system has them), and the child answers
 * "ok<pid>" on the boot link as under spawn. The server is the OS parent, so it reaps the child and
 * writes "X<exitcode>" on the boot link (self.c reads it, where the child's own "x" did not tell).
 *
 * When it reaps. Where the parent has a pidfd of every child (Linux), an exit does not wake the server
 * while it is busy: a start on one CPU is three processes taking turns, and that wake-up was a quarter
 * of the server's time per start. It reaps the ended children at each request, instead, and when no
 * request has come for LAZY_NS (then it waits for exits again, until the next request, so an idle
 * server wakes for nothing else). A parent whose child ended without its "x" (a signal, an exit of its
 * own) and who has not had the "X" asks for it: a status request, which the server answers once it has
 * reaped that child and written its "X" (or at once where the child is not its own, or not reapable,
 * the "X" to come with the next sweep). Without pidfds every exit wakes the server, as it must.
 *
 * Protocol on the control socket: the server first sends its pid (8 bytes, little-endian); a request is
 * a u64 length and that many bytes; the reply is the child's pid (8 bytes; negative: -errno, the fork
 * failed). A status request is one u64: STATUS_ASK with the child's pid, and the reply 8 zero bytes.
 * The server exits at end of file on it, and accepts requests from its parent alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bootstrap.h"
#include "../wire.h"
#include "process_internal.h"

#define EXIT_BOOT_FAILED MPROC_EXIT_BOOT_FAILED
#define REQ_FIRST 4096                 /* the request buffer's first size: a bootstrap message is a few hundred bytes */
#define STATUS_ASK (UINT64_C(1) << 63) /* in a request's length: a status request, the pid in the rest */
#define LAZY_NS 50000000               /* with no request for this long, exits wake the server again */

/* A fork server this process talks to: the one the forkserver start method uses (g_fs, started on
 * first use), or a pool's zygote (forked from this process, mproc__zygote_start). All under the global
 * lock. */
struct mproc__zygote {
  mproc_os_handle ctl; /* our end of its control socket; MPROC_NO_HANDLE: not running */
  mproc__child child;
  struct mproc__zygote *next; /* the zygotes, listed so that a fork child closes their sockets */
};
typedef struct mproc__zygote fserver;

static fserver g_fs = {MPROC_NO_HANDLE, {.handle = MPROC_NO_HANDLE}, NULL};
static fserver *g_zygotes;

/* In a fork child: no fork server of ours is the child's (after-fork hook). The zygotes' structures are
 * the parent's objects' copies: only their descriptors are closed. */
static void forget_one(fserver *fs) {
  if (fs->ctl == MPROC_NO_HANDLE) return;
  mproc__pal_close(fs->ctl);
  fs->ctl = MPROC_NO_HANDLE;
  mproc__pal_child_release(&fs->child);
}
static void forget_server(void) {
  forget_one(&g_fs);
  for (fserver *z = g_zygotes; z; z = z->next) forget_one(z);
  g_zygotes = NULL;
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
    /* Wait for the reply by readiness first: a receive that sleeps is woken also when the server takes
     * the request off the socket (the sender's write space: a context switch to sleep again, two on one
     * CPU), a readiness wait only when the reply is there. */
    mproc__wait_item it = {h, MPROC__WAIT_CONN};
    bool ready = false;
    if (mproc__pal_wait_ready(&it, 1, INT64_MAX, &ready) != 0) mproc_clear_error(); /* the receive says why */
    int rc = mproc__pal_conn_recv_fds(h, b + got, 8 - got, &k, &f, 1, &nf, NULL);
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
static void server_drop(fserver *fs) {
  mproc__pal_close(fs->ctl);
  fs->ctl = MPROC_NO_HANDLE;
  if (fs->child.pid > 0) {
    mproc__pal_signal(&fs->child, MPROC_SIGKILL);
    mproc__pal_wait(&fs->child, INT64_MAX);
  }
  mproc__pal_child_release(&fs->child);
  memset(&fs->child, 0, sizeof fs->child);
  fs->child.handle = MPROC_NO_HANDLE;
}

/* A server started says hello: its pid. 0, or it is dropped and `why` is the error. */
static int server_hello(fserver *fs, const char *why) {
  int64_t hello = 0;
  if (!recv_i64(fs->ctl, &hello) || hello != fs->child.pid) {
    server_drop(fs);
    return mproc__fail(MPROC_ESTATE, "%s", why);
  }
  return 0;
}

/* Start the fork server: this program re-executed with FORKSERVER_FLAG; its guard says hello (its
 * pid) on the control socket. It is asked to bind eagerly (mproc__respawn_self); a program that cannot
 * load so (a library referring to a symbol nothing defines, harmless while never called) would end
 * before its hello: then it is started again as programs load by default, and so on from then on.
 * Under the global lock. */
static int server_start(void) {
  static bool lazy_only;
  int rc = 0;
  for (;;) {
    mproc_os_handle mine, theirs;
    if ((rc = mproc__pal_conn_pair(true, &mine, &theirs)) != 0) return rc;
    rc = mproc__respawn_self(MPROC__FORKSERVER_FLAG, theirs, &theirs, 1, false, !lazy_only, &g_fs.child);
    mproc__pal_close(theirs);
    if (rc) {
      mproc__pal_close(mine);
      return rc;
    }
    g_fs.ctl = mine;
    rc = server_hello(&g_fs,
                      "start: the fork server exited before serving: does the program's main() call "
                      "mproc_main_guard(argc, argv) first?");
    if (rc == 0 || lazy_only) return rc;
    lazy_only = true;
    mproc_clear_error();
  }
}

/* One request to p's server (the start method's: started if needed, restarted once if it had died; a
 * zygote is never restarted): the child's pid. *lost: the server died after the request reached it (it
 * may have forked the child or not). */
static int server_request(const mproc_process *p, const mproc__buf *req, const mproc_os_handle *fds, size_t nfds,
                          int64_t *pid, mproc_os_handle *pidfd, bool *lost) {
  *lost = false;
  *pidfd = MPROC_NO_HANDLE;
  int rc = 0;
  fserver *fs = p->zygote ? p->zygote : &g_fs;
  mproc__pal_global_lock();
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (fs->ctl == MPROC_NO_HANDLE && fs != &g_fs) {
      rc = mproc__fail(MPROC_ESTATE, "start '%s': the pool's fork server (its zygote) has ended", p->name);
      break;
    }
    if (fs->ctl == MPROC_NO_HANDLE && (rc = server_start()) != 0) break;
    rc = mproc__pal_conn_send_fds(fs->ctl, req->data, req->len, fds, nfds);
    if (rc == MPROC_EPIPE) { /* the server has died since the last start: nothing was delivered */
      server_drop(fs);
      continue;
    }
    if (rc) break;
    if (!recv_reply(fs->ctl, pid, pidfd)) {
      server_drop(fs);
      *lost = true;
      rc = mproc__fail(MPROC_ESYS, "start '%s': the fork server died while starting it", p->name);
    } else if (*pid < 0) {
      rc = mproc__fail(MPROC_ESYS, "start '%s': the fork server could not fork (%s)", p->name,
                       mproc_strerror((int)*pid));
    }
    break;
  }
  mproc__pal_global_unlock();
  return rc;
}

void mproc__forkserver_ask_status(const mproc_process *p) {
  fserver *fs = p->zygote ? p->zygote : &g_fs;
  unsigned char ask[8];
  mproc__wire_put_le64(ask, STATUS_ASK | (uint64_t)p->child.pid);
  mproc__pal_global_lock();
  int64_t zero = 0;
  mproc_os_handle none = MPROC_NO_HANDLE;
  /* a server gone: nobody holds the child's link but us, and its end of file tells */
  if (fs->ctl != MPROC_NO_HANDLE &&
      (mproc__pal_conn_send(fs->ctl, ask, 8, NULL, 0) != 0 || !recv_reply(fs->ctl, &zero, &none))) {
    mproc_clear_error();
    server_drop(fs);
  }
  mproc__pal_close(none);
  mproc__pal_global_unlock();
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
  if (pid == 0) { /* no child: the server could not find the target, and says why on the boot link */
    p->child.reaped = true;
    rc = mproc__boot_answer(p, "forkserver", &answered_pid);
    return rc ? rc : mproc__fail(MPROC_ESYS, "start '%s': the fork server forked no child", p->name);
  }
  /* The server found the target before it forked: with a pidfd, the child's "ok" is left for its end to
   * read (self.c), and start returns now, one wake-up sooner. Without, the link is the child's sentinel,
   * and the answer is taken now. */
  if (pidfd != MPROC_NO_HANDLE) return 0;
  rc = mproc__boot_answer(p, "forkserver", &answered_pid); /* the child's answer, as under spawn */
  if (rc == 0 && answered_pid > 0) p->child.pid = answered_pid;
  return rc;
}

/* ---- zygotes ------------------------------------------------------------------------------------ */

int mproc__zygote_start(mproc__zygote **out) {
  *out = NULL;
  if (!mproc__pal_fork_supported()) return mproc__fail(MPROC_ENOTSUP, "zygote: this system has no fork");
  mproc__after_fork_register(forget_server);
  fserver *z = (fserver *)calloc(1, sizeof *z);
  if (!z) return mproc__fail(MPROC_ENOMEM, "zygote: out of memory");
  mproc_os_handle mine, theirs;
  int rc = mproc__pal_conn_pair(true, &mine, &theirs);
  if (rc) {
    free(z);
    return rc;
  }
  fflush(NULL); /* what we buffered must not be printed twice */
  int64_t pid = 0;
  rc = mproc__pal_fork(&pid);
  if (rc == 0 && pid == 0) {         /* the zygote */
    mproc__after_fork_run();         /* drop our children, links and the other servers */
    mproc__pal_close(mine);          /* not listed yet: closed here */
    mproc__forkserver_serve(theirs); /* never returns */
  }
  mproc__pal_close(theirs);
  if (rc) {
    mproc__pal_close(mine);
    free(z);
    return rc;
  }
  z->ctl = mine;
  z->child.pid = pid;
  if (mproc__pal_fork_sentinel(&z->child) != 0) {
    mproc_clear_error();
    z->child.handle = MPROC_NO_HANDLE; /* waited for by pid */
  }
  mproc__pal_global_lock();
  rc = server_hello(z, "zygote: the fork server forked from this process ended before serving");
  if (!rc) {
    z->next = g_zygotes;
    g_zygotes = z;
  }
  mproc__pal_global_unlock();
  if (rc) {
    free(z);
    return rc;
  }
  *out = z;
  return 0;
}

void mproc__zygote_stop(mproc__zygote *z) {
  if (!z) return;
  mproc__pal_global_lock();
  for (fserver **pp = &g_zygotes; *pp; pp = &(*pp)->next)
    if (*pp == z) {
      *pp = z->next;
      break;
    }
  /* At the end of its control socket the server exits; its children are the pool's workers, joined
   * before. A server that has not ended within a second is killed. */
  mproc__pal_close(z->ctl);
  z->ctl = MPROC_NO_HANDLE;
  mproc__pal_global_unlock();
  if (z->child.pid > 0 && mproc__pal_wait(&z->child, mproc__pal_monotonic_ns() + 1000000000) != 0) {
    mproc_clear_error();
    mproc__pal_signal(&z->child, MPROC_SIGKILL);
    mproc__pal_wait(&z->child, INT64_MAX);
  }
  mproc__pal_child_release(&z->child);
  free(z);
}

/* ---- the server side ------------------------------------------------------------------------------- */

typedef struct server {
  mproc_os_handle ctl;    /* the control socket: requests from our parent, replies */
  mproc_os_handle events; /* readable when a child of ours may have ended */
  bool check_sender;      /* every request's sender is told by the kernel: it must be our parent */
  struct kid {
    int64_t pid;
    mproc_os_handle boot; /* our copy of the child's end of its boot link: its status goes there */
    bool watched;         /* the parent has a pidfd of it: it asks for a status it needs at once */
  } * kids;
  size_t nkids, capkids;
  size_t unwatched;   /* kids without: every exit must wake us while there is one */
  unsigned char *req; /* the request being served: its length (8 bytes), then its message */
  size_t reqcap;
  mproc__buf last_ref; /* the target found last (its reference) and where: a pool asks for one again and again */
  void *last_fn;
} server;

/* In the server: our copy of a child's end of its boot link, as a connection to say one thing on (the
 * parent may have gone: no matter). NULL (the handle closed) when out of memory. */
static mproc_connection *boot_link(mproc_os_handle boot) {
  mproc_connection *c = mproc__connection_wrap(mproc__conn_end_link(boot));
  if (!c) mproc__pal_close(boot);
  return c;
}

/* In the server: a child ended; tell its parent on the boot link ("X<code>": one frame of the link's
 * format, written straight to the handle), and close our copy. Nothing allocated: each page the server
 * writes while its children share it is a copy-on-write fault. The parent has often closed its end by
 * now (the child's own "x" told it): then nothing is sent (a failed send would format its error, a few
 * microseconds and a page of the locale's data). */
static void report_status(mproc_os_handle boot, int code) {
  char body[32];
  size_t n = mproc__tagged_number(body, code < 0 ? "X-" : "X", code < 0 ? 0u - (unsigned)code : (unsigned)code);
  unsigned char h[MPROC__FRAME_HEADER_MAX];
  size_t hl = mproc__frame_put(&mproc__frame_mproc, h, n, MPROC__FRAME_INLINE);
  if (!mproc__pal_conn_peer_gone(boot) && mproc__pal_conn_send(boot, h, hl, body, n) != 0) mproc_clear_error();
  mproc__pal_close(boot);
}

/* In the server: no child for a request; tell its parent why on the boot link ("E<rc>:<the last error>",
 * as a child would have), and close our copy. */
static void report_failure(mproc_os_handle boot, int rc) {
  mproc_connection *c = boot_link(boot);
  if (!c) return;
  mproc__boot_tell_failure(c, rc);
  mproc_connection_destroy(c);
}

/* Reap `which` (a kid's pid), or every child of ours that has ended (-1), and tell each one's parent. */
static void reap_children(server *s, int64_t which) {
  int64_t pid;
  int code;
  if (which < 0) mproc__pal_child_events_drain(); /* once: an exit after it makes the handle readable again */
  /* every child of ours is a kid: with none left there is none to reap (no waitpid only to hear ECHILD) */
  while (s->nkids && mproc__pal_reap(which, &pid, &code) == 1) {
    for (size_t i = 0; i < s->nkids; ++i)
      if (s->kids[i].pid == pid) {
        report_status(s->kids[i].boot, code);
        s->unwatched -= !s->kids[i].watched;
        s->kids[i] = s->kids[--s->nkids];
        break;
      }
    if (which >= 0) break;
  }
}

/* A status request for `pid`: reap it if it is a kid of ours (its "X" is on its link before our reply),
 * then reply. */
static void serve_status(server *s, uint64_t pid) {
  for (size_t i = 0; i < s->nkids; ++i)
    if ((uint64_t)s->kids[i].pid == pid) {
      reap_children(s, s->kids[i].pid);
      break;
    }
  static const unsigned char zero[8];
  if (mproc__pal_conn_send(s->ctl, zero, 8, NULL, 0) != 0) mproc__pal_exit_now(0);
}

/* Read at least min and at most cap bytes of a request into p (*got: how many; the descriptors that come
 * with them are appended to fds). false at end of file or on an error. Every byte must come from our
 * parent (the process that started this server and made the control socket, proven by the guard): where
 * the kernel tells each sender, a byte from anyone else (a process the parent's end leaked to) ends the
 * server. Reading past one request is safe: a client sends the next only after our reply. */
static bool read_request(server *s, unsigned char *p, size_t min, size_t cap, size_t *got, mproc_os_handle *fds,
                         size_t *nfds) {
  for (*got = 0; *got < min;) {
    size_t k = 0, kf = 0;
    int64_t sender = -1;
    mproc_os_handle f[MPROC__PAL_MAX_FDS];
    int rc = mproc__pal_conn_recv_fds(s->ctl, p + *got, cap - *got, &k, f, MPROC__PAL_MAX_FDS, &kf, &sender);
    if (s->check_sender && k && sender != mproc__pal_getppid()) {
      for (size_t i = 0; i < kf; ++i) mproc__pal_close(f[i]);
      mproc__pal_exit_now(MPROC_EXIT_GUARD_REFUSED);
    }
    for (size_t i = 0; i < kf; ++i) {
      if (*nfds < MPROC__PAL_MAX_FDS)
        fds[(*nfds)++] = f[i];
      else
        mproc__pal_close(f[i]);
    }
    if (rc != 0 || k == 0) return false;
    *got += k;
  }
  return true;
}

/* In a child forked by the server: run the request, parsed and its target found by the server (the child
 * has copies of both). Never returns. */
MPROC__CHILD_PATH static void serve_child(server *s, mproc_os_handle *fds, size_t nfds, const mproc__boot *b,
                                          void *fn) {
  mproc__pal_close(s->ctl);
  mproc__pal_child_events_close();
  for (size_t i = 0; i < s->nkids; ++i) mproc__pal_close(s->kids[i].boot);
  /* s->kids is not freed: a free writes the allocator's state, pages the child shares with the server
   * (three page faults); the block stays reachable from the server's frame below us */
  mproc_connection *link = mproc__connection_wrap(mproc__conn_end_link(fds[0]));
  if (!link) mproc__pal_exit_now(EXIT_BOOT_FAILED);
  mproc__boot_run_parsed(link, b, fds + 1, nfds - 1, fn);
}

/* Parse a bootstrap message (into *b, pointing into msg: the strict parser every child's bootstrap goes
 * through) and find the target it names in this process (the child, a fork of it, has it at the same
 * place): 0 with *b (mproc__boot_free it) and *fn, or an error (the message says why; *b is empty). */
static int find_target(server *s, const char *msg, size_t len, mproc__boot *b, void **fn) {
  int rc = mproc__boot_parse(msg, len, b);
  if (rc) return rc;
  if (s->last_fn && b->ref_len == s->last_ref.len && memcmp(b->ref, s->last_ref.data, b->ref_len) == 0) {
    *fn = s->last_fn;
  } else if ((rc = mproc__pal_fn_resolve(b->ref, b->ref_len, fn)) == 0) {
    s->last_ref.len = 0;
    s->last_fn = mproc__buf_append(&s->last_ref, b->ref, b->ref_len) == 0 ? *fn : NULL;
  } else {
    mproc__boot_free(b);
  }
  return rc;
}

/* One request: find its target, fork its child and reply with its pid (and a pidfd of it where the system
 * has them). A target that cannot be found: no child, the reply is 0, and the parent reads why on the
 * child's boot link, as a child would have told it. The request usually comes whole with the first
 * receive, into a buffer kept for the next. */
MPROC__CHILD_PATH static void serve_request(server *s) {
  mproc_os_handle fds[MPROC__PAL_MAX_FDS];
  size_t nfds = 0, got = 0;
  if (!s->req) {
    s->req = (unsigned char *)malloc(REQ_FIRST);
    if (!s->req) mproc__pal_exit_now(EXIT_BOOT_FAILED);
    s->reqcap = REQ_FIRST;
  }
  if (!read_request(s, s->req, 8, s->reqcap, &got, fds, &nfds)) mproc__pal_exit_now(got ? EXIT_BOOT_FAILED : 0);
  uint64_t len = mproc__wire_get_le64(s->req);
  if (s->nkids) reap_children(s, -1); /* the children that ended since the last request */
  if (len & STATUS_ASK) {
    for (size_t i = 0; i < nfds; ++i) mproc__pal_close(fds[i]);
    if (got != 8 || nfds) mproc__pal_exit_now(EXIT_BOOT_FAILED); /* not from our client */
    serve_status(s, len & ~STATUS_ASK);
    return;
  }
  if (len > SIZE_MAX - 16) mproc__pal_exit_now(EXIT_BOOT_FAILED);
  size_t whole = 8 + (size_t)len, more = 0;
  if (whole + 1 > s->reqcap) { /* room for a terminating byte too */
    unsigned char *b = (unsigned char *)realloc(s->req, whole + 1);
    if (!b) mproc__pal_exit_now(EXIT_BOOT_FAILED);
    s->req = b;
    s->reqcap = whole + 1;
  }
  if (got > whole || (got < whole && !read_request(s, s->req + got, whole - got, whole - got, &more, fds, &nfds)))
    mproc__pal_exit_now(EXIT_BOOT_FAILED); /* (more than one request: not from our client) */
  char *msg = (char *)s->req + 8;
  int64_t reply = -(int64_t)MPROC_EINVAL;
  mproc__child child = {.handle = MPROC_NO_HANDLE};
  if (nfds >= 1 && s->nkids == s->capkids) {
    size_t cap = s->capkids * 2 + 16;
    struct kid *k = (struct kid *)realloc(s->kids, cap * sizeof *k);
    if (k) {
      s->kids = k;
      s->capkids = cap;
    }
  }
  void *fn = NULL;
  mproc__boot b;
  memset(&b, 0, sizeof b);
  int found = nfds >= 1 ? find_target(s, msg, (size_t)len, &b, &fn) : 0;
  if (found) {
    report_failure(fds[0], found);
    fds[0] = MPROC_NO_HANDLE;
    reply = 0;
  } else if (nfds >= 1 && s->nkids < s->capkids) {
    int64_t pid = 0;
    int rc = mproc__pal_fork(&pid);
    if (rc == 0 && pid == 0) serve_child(s, fds, nfds, &b, fn);
    reply = rc ? (int64_t)rc : pid;
    if (rc == 0) {
      child.pid = pid;
      if (mproc__pal_fork_sentinel(&child) != 0) { /* not reaped: still ours */
        mproc_clear_error();
        child.handle = MPROC_NO_HANDLE;
      }
      struct kid *k = &s->kids[s->nkids++];
      k->pid = pid;
      k->boot = fds[0];
      k->watched = child.handle != MPROC_NO_HANDLE;
      s->unwatched += !k->watched;
      fds[0] = MPROC_NO_HANDLE;
    }
  }
  mproc__boot_free(&b);
  for (size_t i = 0; i < nfds; ++i) mproc__pal_close(fds[i]);
  unsigned char out[8];
  mproc__wire_put_le64(out, (uint64_t)reply);
  int sent = mproc__pal_conn_send_fds(s->ctl, out, 8, &child.handle, child.handle != MPROC_NO_HANDLE ? 1 : 0);
  mproc__pal_close(child.handle);
  if (sent != 0) mproc__pal_exit_now(0);
}

void mproc__forkserver_serve(mproc_os_handle ctl) {
  server s = {.ctl = ctl, .events = MPROC_NO_HANDLE};
  mproc__pal_set_cloexec(ctl, true);
  s.check_sender = mproc__pal_conn_tell_senders(ctl); /* before the hello: nothing has been sent yet */
  if (mproc__pal_child_events_open(&s.events) != 0) mproc__pal_exit_now(EXIT_BOOT_FAILED);
  unsigned char hello[8]; /* our pid: the client knows then that we serve */
  mproc__wire_put_le64(hello, (uint64_t)mproc__pal_getpid());
  if (mproc__pal_conn_send(ctl, hello, 8, NULL, 0) != 0) mproc__pal_exit_now(0);
  bool busy = false; /* a request came less than LAZY_NS ago: exits of watched kids wait for the next */
  for (;;) {
    mproc__wait_item items[2] = {{ctl, MPROC__WAIT_CONN}, {s.events, MPROC__WAIT_CONN}};
    bool ready[2] = {false, false};
    bool lazy = busy && s.unwatched == 0;
    int rc = mproc__pal_wait_ready(items, lazy ? 1 : 2, lazy ? mproc__pal_monotonic_ns() + LAZY_NS : INT64_MAX, ready);
    if (rc == MPROC_ETIMEDOUT) {
      busy = false;
      if (s.nkids) reap_children(&s, -1);
      continue;
    }
    if (rc != 0) mproc__pal_exit_now(EXIT_BOOT_FAILED);
    if (ready[1]) reap_children(&s, -1);
    if (ready[0]) {
      serve_request(&s);
      busy = true;
    }
  }
}
