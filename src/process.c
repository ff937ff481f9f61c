/* Processes that run a C function: start methods, the main guard (spawn bootstrap), the list of
 * children, at-exit handling, and waiting on many objects. Portable: the OS work is in the PAL.
 *
 * A started child is linked to its parent by a "boot" connection (a socket pair / named pipe):
 *   - under spawn the parent sends the bootstrap message over it (target reference, argument bytes,
 *     name, handed connections) and the child's guard answers "ok" or an error once it has found the
 *     target: start() returns only then, so start errors are reported in the parent;
 *   - the parent's end is the sentinel on POSIX: it reaches end of file when the child has gone;
 *   - the child's end tells the child that the parent has gone (kill_on_parent_death).
 * Fork children close every boot end they inherited, so no child keeps another child's link open.
 *
 * Under forkserver a server process (this program re-executed; its guard serves) forks the child on
 * request: the parent sends it the spawn bootstrap message with the child's boot end and the handed
 * connections attached, and the child answers "ok<pid>" on the boot link as under spawn. The server
 * is the OS parent, so it reaps the child and writes "X<exitcode>" on the boot link (reap() reads it:
 * the one place that learns that a child ended, either way). */
#include "mproc/process.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "connection_internal.h"
#include "internal.h"
#include "pal.h"

#define SPAWN_FLAG "--mproc-spawn="
#define FORKSERVER_FLAG "--mproc-forkserver="
#define SPAWN_ENV "MPROC_SPAWN_CHILD"
#define EXIT_BOOT_FAILED MPROC_EXIT_BOOT_FAILED

struct mproc_context {
  mproc_start_method method;
};
static const mproc_context k_contexts[4] = {{MPROC_START_DEFAULT}, {MPROC_START_FORK}, {MPROC_START_SPAWN},
                                            {MPROC_START_FORKSERVER}};

struct mproc_process {
  mproc_target target;
  char *arg;
  size_t arg_size;
  mproc_connection **conns;
  size_t nconns;
  char *name;
  char ident[64]; /* "1", "1:2": names this child's own children */
  bool daemon;
  mproc_start_method req_method;
  const mproc_context *context;
  bool kill_on_parent_death;
  int64_t creator; /* the pid of the process that created it: only it may start, join or signal it */
  /* after start */
  bool started, closed, detached;
  mproc__child child;
  mproc_connection *boot; /* the parent's end of the boot link */
  bool via_server;        /* forkserver: the server is the OS parent; the exit status comes on `boot` */
  struct mproc_process *next;
};

/* ---- this process's state ---------------------------------------------------------------------- */

static mproc_start_method g_method = MPROC_START_SPAWN;
static const char *g_name = "MainProcess";
static const char *g_ident = ""; /* "" in the main process */
static const char *g_parent_name; /* NULL in the main process */
static int64_t g_parent_pid;    /* 0 in the main process */
static bool g_daemon;
static unsigned g_counter;      /* children created so far (for default names) */
static mproc_process *g_children; /* started and not destroyed (reaped or not) */
static bool g_atexit_registered;
static bool g_guard_ran;
static mproc_os_handle g_parent_link = MPROC_NO_HANDLE; /* in a child: our end of the boot link */
/* The fork server this process uses (under the global lock): our end of its control socket. */
static mproc_os_handle g_fs_ctl = MPROC_NO_HANDLE;
static mproc__child g_fs_child = {0, MPROC_NO_HANDLE, false, false, 0, NULL, false};

/* ---- start methods and contexts ---------------------------------------------------------------- */

const char *mproc_start_method_name(mproc_start_method m) {
  switch (m) {
    case MPROC_START_DEFAULT:
      return "default";
    case MPROC_START_FORK:
      return "fork";
    case MPROC_START_SPAWN:
      return "spawn";
    case MPROC_START_FORKSERVER:
      return "forkserver";
  }
  return "unknown";
}

static int method_available(mproc_start_method m) {
  if (m < MPROC_START_DEFAULT || m > MPROC_START_FORKSERVER)
    return mproc__fail(MPROC_EINVAL, "start method %d is not an mproc_start_method", (int)m);
  /* probe without forking: the PAL says ENOTSUP where fork does not exist */
  if ((m == MPROC_START_FORK || m == MPROC_START_FORKSERVER) && !mproc__pal_fork_supported())
    return mproc__fail(MPROC_ENOTSUP, "the %s start method does not exist on this OS", mproc_start_method_name(m));
  /* A set-id program's child would be the program re-executed with its privileges, and the guard there
   * never acts on a bootstrap (it cannot tell a parent's from a caller's forgery): fork only. */
  if ((m == MPROC_START_SPAWN || m == MPROC_START_FORKSERVER) && mproc__pal_secure_exec())
    return mproc__fail(MPROC_ENOTSUP,
                       "the %s start method is refused in a program running set-user-ID, set-group-ID or with file "
                       "capabilities (secure-execution mode): its children would re-execute it with those "
                       "privileges; use fork",
                       mproc_start_method_name(m));
  return 0;
}

int mproc_set_start_method(mproc_start_method m) {
  int rc = method_available(m);
  if (rc) return rc;
  g_method = m == MPROC_START_DEFAULT ? MPROC_START_SPAWN : m;
  return 0;
}

mproc_start_method mproc_get_start_method(void) { return g_method; }

int mproc_get_context(mproc_start_method m, const mproc_context **ctx) {
  if (!ctx) return mproc__fail(MPROC_EINVAL, "get_context: ctx is NULL");
  *ctx = NULL;
  int rc = method_available(m);
  if (rc) return rc;
  *ctx = &k_contexts[m];
  return 0;
}

mproc_start_method mproc_context_start_method(const mproc_context *ctx) {
  return ctx ? ctx->method : MPROC_START_DEFAULT;
}

/* ---- the list of children ----------------------------------------------------------------------- */

static void list_add(mproc_process *p) {
  mproc__pal_global_lock();
  p->next = g_children;
  g_children = p;
  mproc__pal_global_unlock();
}

static void list_remove(mproc_process *p) {
  mproc__pal_global_lock();
  for (mproc_process **pp = &g_children; *pp; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  mproc__pal_global_unlock();
}

static void free_process(mproc_process *p) {
  mproc_connection_destroy(p->boot);
  mproc__pal_child_release(&p->child);
  free(p->name);
  free(p); /* with its connection list and argument bytes */
}

/* Python's "can only start/join/test a process object created by the current process": a fork child
 * has a copy of its parent's Process objects, whose children are not its own (and whose handles it
 * closed). And nothing but destroy works on a closed one. */
static int usable(const mproc_process *p, const char *call) {
  if (!p) return mproc__fail(MPROC_EINVAL, "%s: p is NULL", call);
  if (p->creator != mproc__pal_getpid())
    return mproc__fail(MPROC_ESTATE, "%s: '%s' was created by process %lld, not by this one (%lld): only its creator "
                       "can start, join or signal it", call, p->name, (long long)p->creator,
                       (long long)mproc__pal_getpid());
  if (p->closed) return mproc__fail(MPROC_ESTATE, "%s: '%s' is closed", call, p->name);
  return 0;
}

/* ident = "<our ident>:<n>" ("<n>" in the main process, or when nested deeper than ident can show).
 * Not snprintf: its deep stack would be more pages written (see free_process). */
static void set_ident(char *ident, size_t cap, unsigned n) {
  char num[16];
  size_t k = sizeof num;
  num[--k] = '\0';
  do num[--k] = (char)('0' + n % 10);
  while ((n /= 10) != 0);
  size_t nlen = sizeof num - 1 - k, plen = strlen(g_ident);
  size_t at = 0;
  if (plen && plen + 1 + nlen < cap) {
    memcpy(ident, g_ident, plen);
    ident[plen] = ':';
    at = plen + 1;
  }
  memcpy(ident + at, num + k, nlen + 1);
}

/* A forkserver child's end: the server writes "X<code>" on the boot link once it has reaped it. End
 * of file without it means the server died first: the code is unknown, 255 (as CPython). */
static int server_child_status(mproc_process *p, int64_t deadline) {
  int64_t timeout = deadline == INT64_MAX ? MPROC_INFINITE : mproc__ms_until(deadline);
  char *msg = NULL;
  size_t len = 0;
  int rc = mproc_connection_recv_bytes(p->boot, 64, timeout, &msg, &len);
  if (rc == MPROC_ETIMEDOUT) return rc;
  p->child.returncode = rc == 0 && len > 1 && msg[0] == 'X' ? atoi(msg + 1) : 255;
  p->child.reaped = true;
  mproc_free(msg);
  return 0;
}

/* Reap p if it has ended by the deadline. 0 (reaped), MPROC_ETIMEDOUT, or an error. The one place
 * that learns that a child ended: its OS parent (us) waits for it, or its fork server tells us. */
static int reap(mproc_process *p, int64_t deadline) {
  if (p->child.reaped) return 0;
  if (p->via_server) return server_child_status(p, deadline);
  return mproc__pal_wait(&p->child, deadline);
}

/* Signal p unless it is known to have ended (a forkserver child: check for its status first, since
 * the server may have reaped it already and the pid may be reused). */
static int signal_child(mproc_process *p, int sig) {
  if (p->via_server) reap(p, 0);
  return mproc__pal_signal(&p->child, sig);
}

/* At normal exit: terminate daemon children, then join every child (Python's _exit_function). */
static void at_exit(void) {
  if (!g_children) return; /* nothing started: not even the lock (a fork child's usual case) */
  mproc__pal_global_lock();
  mproc_process *list = g_children;
  mproc__pal_global_unlock();
  for (mproc_process *p = list; p; p = p->next)
    if (!p->child.reaped && p->daemon) signal_child(p, MPROC_SIGTERM);
  for (mproc_process *p = list; p; p = p->next) reap(p, INT64_MAX);
}

/* ---- create and accessors ----------------------------------------------------------------------- */

int mproc_process_create(mproc_process **out, const mproc_process_opts *o) {
  if (!out) return mproc__fail(MPROC_EINVAL, "process_create: out is NULL");
  *out = NULL;
  if (!o) return mproc__fail(MPROC_EINVAL, "process_create: opts is NULL");
  if (!o->target) return mproc__fail(MPROC_EINVAL, "process_create: target is NULL");
  if (!o->arg && o->arg_size) return mproc__fail(MPROC_EINVAL, "process_create: arg is NULL but arg_size is %zu", o->arg_size);
  if (o->connection_count && !o->connections)
    return mproc__fail(MPROC_EINVAL, "process_create: connections is NULL but connection_count is %zu", o->connection_count);
  for (size_t i = 0; i < o->connection_count; ++i)
    if (!o->connections[i]) return mproc__fail(MPROC_EINVAL, "process_create: connections[%zu] is NULL", i);
  if (o->start_method < MPROC_START_DEFAULT || o->start_method > MPROC_START_FORKSERVER)
    return mproc__fail(MPROC_EINVAL, "process_create: start method %d is not an mproc_start_method", (int)o->start_method);
  if (o->kill_on_parent_death < MPROC_OPTION_DEFAULT || o->kill_on_parent_death > MPROC_OPTION_OFF)
    return mproc__fail(MPROC_EINVAL, "process_create: kill_on_parent_death %d is not an mproc_option",
                       (int)o->kill_on_parent_death);
  size_t room = (size_t)PTRDIFF_MAX - sizeof(mproc_process); /* no C object is larger than PTRDIFF_MAX */
  if (o->arg_size > room || o->connection_count > (room - o->arg_size) / sizeof(mproc_connection *))
    return mproc__fail(MPROC_ENOMEM, "process_create: an argument of %zu bytes and %zu connections do not fit in memory",
                       o->arg_size, o->connection_count);

  /* One block: the object, the connection list, the argument bytes (fewer pages written per start: after
   * a fork each one the parent writes is a copy-on-write fault). */
  mproc_process *p = (mproc_process *)calloc(1, sizeof *p + o->connection_count * sizeof *p->conns + o->arg_size);
  if (!p) return mproc__fail(MPROC_ENOMEM, "process_create: out of memory");
  p->conns = (mproc_connection **)(void *)(p + 1);
  p->arg = (char *)(p->conns + o->connection_count);
  p->child.handle = MPROC_NO_HANDLE;
  p->target = o->target;
  p->daemon = o->daemon;
  p->req_method = o->start_method;
  p->context = o->context;
  p->creator = mproc__pal_getpid();
  p->kill_on_parent_death = o->kill_on_parent_death == MPROC_OPTION_DEFAULT ? o->daemon
                                                                            : o->kill_on_parent_death == MPROC_OPTION_ON;
  mproc__pal_global_lock();
  unsigned n = ++g_counter;
  mproc__pal_global_unlock();
  set_ident(p->ident, sizeof p->ident, n);
  char defname[96] = "Process-";
  memcpy(defname + 8, p->ident, strlen(p->ident) + 1);
  p->name = mproc__strdup(o->name ? o->name : defname);
  if (!p->name) {
    free_process(p);
    return mproc__fail(MPROC_ENOMEM, "process_create: out of memory");
  }
  if (o->arg_size) memcpy(p->arg, o->arg, o->arg_size);
  p->arg_size = o->arg_size;
  for (size_t i = 0; i < o->connection_count; ++i) p->conns[i] = o->connections[i];
  p->nconns = o->connection_count;
  *out = p;
  return 0;
}

int64_t mproc_process_pid(const mproc_process *p) { return p && p->started ? p->child.pid : 0; }

bool mproc_process_exitcode(const mproc_process *p, int *exitcode) {
  if (!p || !p->started || !p->child.reaped) return false;
  if (exitcode) *exitcode = p->child.returncode;
  return true;
}

const char *mproc_process_name(const mproc_process *p) { return p ? p->name : NULL; }

int mproc_process_set_name(mproc_process *p, const char *name) {
  if (!p || !name) return mproc__fail(MPROC_EINVAL, "process_set_name: p and name must be set");
  char *n = mproc__strdup(name);
  if (!n) return MPROC_ENOMEM;
  free(p->name);
  p->name = n;
  return 0;
}

bool mproc_process_daemon(const mproc_process *p) { return p && p->daemon; }

int mproc_process_set_daemon(mproc_process *p, bool daemon) {
  if (!p) return mproc__fail(MPROC_EINVAL, "process_set_daemon: p is NULL");
  if (p->started) return mproc__fail(MPROC_ESTATE, "process_set_daemon: '%s' has already been started", p->name);
  p->daemon = daemon;
  return 0;
}

mproc_os_handle mproc_process_sentinel(const mproc_process *p) {
  if (!p || !p->started || p->closed) return MPROC_NO_HANDLE;
  return mproc__pal_sentinel(&p->child, mproc_connection_handle(p->boot));
}

/* ---- bootstrap message (src/bootstrap.c) ---------------------------------------------------------- */

static int boot_message(const mproc_process *p, mproc__buf *b) {
  mproc__buf ref = {NULL, 0, 0};
  int rc = mproc__pal_fn_locate((void *)p->target, &ref);
  mproc__conn_end *ends = NULL;
  if (!rc && p->nconns && !(ends = (mproc__conn_end *)malloc(p->nconns * sizeof *ends)))
    rc = mproc__fail(MPROC_ENOMEM, "start: out of memory");
  if (!rc) {
    for (size_t i = 0; i < p->nconns; ++i) ends[i] = p->conns[i]->e;
    mproc__boot boot = {ref.data, ref.len, p->arg, p->arg_size, p->name, p->ident, g_name,
                        mproc__pal_getpid(),
                        (p->daemon ? MPROC__BOOT_DAEMON : 0u) |
                            (p->kill_on_parent_death ? MPROC__BOOT_KILL_ON_PARENT_DEATH : 0u) |
                            (mproc__pal_is_main_thread() ? MPROC__BOOT_MAIN_THREAD : 0u),
                        p->nconns, ends};
    rc = mproc__boot_encode(&boot, b);
  }
  free(ends);
  mproc__buf_free(&ref);
  return rc;
}

/* The handles of connection end e in the order they are handed over: rd, then wr and bulk unless they
 * are none or repeat an earlier one (a single-handle end). Their number. */
static size_t end_handles(mproc__conn_end e, mproc_os_handle out[3]) {
  mproc_os_handle h[3] = {e.rd, e.wr, e.bulk};
  size_t n = 0;
  for (int k = 0; k < 3; ++k)
    if (h[k] != MPROC_NO_HANDLE && (k < 1 || h[k] != h[0]) && (k < 2 || h[k] != h[1])) out[n++] = h[k];
  return n;
}

/* The handles of the connections handed to p, in order: what a spawned child must be given, and what
 * goes to the fork server. out NULL: only count them. */
static size_t handed_handles(const mproc_process *p, mproc_os_handle *out) {
  size_t n = 0;
  for (size_t i = 0; i < p->nconns; ++i) {
    const mproc_connection *c = p->conns[i];
    mproc_os_handle h[3];
    size_t k = end_handles(c->e, h);
    if (out) memcpy(out + n, h, k * sizeof *h);
    n += k;
  }
  return n;
}

/* ---- the child side ------------------------------------------------------------------------------- */

/* kill_on_parent_death: a small thread blocked on our end of the boot link; end of file there means
 * the parent has gone, however it went. */
static void parent_watch(void *arg) {
  mproc_connection *link = (mproc_connection *)arg;
  for (;;) {
    if (mproc_connection_poll(link, MPROC_INFINITE) != 0) break;
    char buf[64];
    size_t n = 0;
    int rc = mproc__pal_conn_recv(link->e.rd, buf, sizeof buf, INT64_MAX, &n);
    if (rc || n == 0) break; /* end of file (or the link broke): the parent is gone */
  }
  mproc__pal_exit_now(1);
}

/* Who this process is. The strings must outlive the process: under fork they are the parent's
 * objects (the child's copy of them never changes), under spawn they are the bootstrap's, kept.
 * Nothing is allocated or formatted here, so a fork child touches as few pages as it can: each page
 * it writes is a copy-on-write fault, and each code page it runs first is a fault too (fork does not
 * copy the page tables of file mappings), the bulk of the cost of starting a fork child. */
static void set_identity(const char *name, const char *ident, const char *parent_name, int64_t parent_pid, bool daemon) {
  g_name = name;
  g_ident = ident;
  g_parent_name = parent_name;
  g_parent_pid = parent_pid;
  g_daemon = daemon;
  g_counter = 0;
}

/* The end of a child: join its own children (daemons terminated), flush stdio, exit with `code`
 * without running the parent's atexit handlers (fork). */
static void child_finish_fork(int code) {
  at_exit();
  fflush(NULL);
  mproc__pal_exit_now(code);
}

/* The handed connections of a parsed bootstrap, as connections of this process. Spawn (fds NULL): the
 * handles are the numbers in the message, inherited; each must be an open handle other than the boot
 * link. Forkserver: they are fds[0..nfds), received with the request in the order of handed_handles();
 * the parent's numbers only tell which of an end's handles repeat. */
static int adopt_connections(const mproc__boot *b, mproc_os_handle link, const mproc_os_handle *fds, size_t nfds,
                             mproc_connection ***out) {
  mproc_connection **conns = (mproc_connection **)calloc(b->nconns ? b->nconns : 1, sizeof *conns);
  if (!conns) return mproc__fail(MPROC_ENOMEM, "child: out of memory");
  size_t used = 0;
  int rc = 0;
  for (size_t i = 0; i < b->nconns && !rc; ++i) {
    mproc__conn_end e = b->conns[i];
    mproc_os_handle h[3];
    size_t k = end_handles(e, h);
    if (fds) {
      if (used + k > nfds) {
        rc = mproc__fail(MPROC_ESYS, "child: the bootstrap names more handles than came with it");
        break;
      }
      mproc_os_handle *f[3] = {&e.rd, &e.wr, &e.bulk};
      for (int j = 0; j < 3; ++j)
        for (size_t m = 0; m < k; ++m)
          if (*f[j] == h[m] && *f[j] != MPROC_NO_HANDLE) {
            *f[j] = fds[used + m];
            break;
          }
      k = end_handles(e, h);
      used += k;
    } else {
      for (size_t m = 0; m < k && !rc; ++m)
        if (h[m] == link || !mproc__pal_handle_valid(h[m]))
          rc = mproc__fail(MPROC_ESYS, "child: connection %zu's handle %lld was not inherited", i, (long long)h[m]);
      if (rc) break;
    }
    for (size_t m = 0; m < k; ++m) mproc__pal_set_cloexec(h[m], true);
    conns[i] = mproc__connection_wrap(e);
    if (!conns[i]) rc = MPROC_ENOMEM;
  }
  if (!rc && fds && used != nfds) rc = mproc__fail(MPROC_ESYS, "child: more handles came than the bootstrap names");
  if (rc) {
    for (size_t i = 0; i < b->nconns; ++i)
      if (conns[i]) free(conns[i]); /* the handles stay: the process is about to end */
    free(conns);
    return rc;
  }
  *out = conns;
  return 0;
}

/* A child that cannot run its target tells its parent why (the parent is trusted: the guard checked it)
 * and ends. */
static void boot_failed(mproc_connection *link, bool forked, int rc) {
  char reply[1100];
  int n = snprintf(reply, sizeof reply, "E%d:%s", rc, mproc_last_error());
  mproc_connection_send_bytes(link, reply, (size_t)(n < 0 ? 0 : n >= (int)sizeof reply ? (int)sizeof reply - 1 : n), 0,
                              MPROC_ALL);
  fflush(NULL);
  if (forked) mproc__pal_exit_now(EXIT_BOOT_FAILED);
  exit(EXIT_BOOT_FAILED);
}

/* Run a child from its bootstrap message: find the target, acknowledge on the boot link ("ok" or an
 * error), run it, end. `fds` NULL (spawn): the handed connections are the handle numbers in the
 * message; else (forkserver) they are fds[i], received with the request. Never returns. */
static void boot_run(mproc_connection *link, const char *msg, size_t len, const mproc_os_handle *fds, size_t nfds) {
  bool forked = fds != NULL;
  mproc__boot b;
  mproc_connection **conns = NULL;
  void *fn = NULL;
  int rc = mproc__boot_parse(msg, len, &b);
  if (!rc) rc = adopt_connections(&b, link->e.rd, fds, nfds, &conns);
  if (!rc) rc = mproc__pal_fn_resolve(b.ref, b.ref_len, &fn);
  if (rc) boot_failed(link, forked, rc);
  if (b.flags & MPROC__BOOT_KILL_ON_PARENT_DEATH) /* a forkserver child's OS parent is the server, whose one
                                                     thread forked it */
    mproc__pal_die_with_parent(forked ? mproc__pal_getppid() : b.parent_pid,
                               forked || (b.flags & MPROC__BOOT_MAIN_THREAD) != 0);
  set_identity(b.name, b.ident, b.parent_name, b.parent_pid, (b.flags & MPROC__BOOT_DAEMON) != 0); /* kept for life */
  g_parent_link = link->e.rd;
  char ok[32] = "ok"; /* a forkserver child adds its pid: its parent may not have it from the server */
  if (forked) snprintf(ok, sizeof ok, "ok%lld", (long long)mproc__pal_getpid());
  if (mproc_connection_send_bytes(link, ok, strlen(ok), 0, MPROC_ALL) != 0) {
    if (forked) mproc__pal_exit_now(EXIT_BOOT_FAILED);
    exit(EXIT_BOOT_FAILED);
  }
  if (b.flags & MPROC__BOOT_KILL_ON_PARENT_DEATH) mproc__pal_thread_start(parent_watch, link);
  mproc_args args = {b.arg, b.arg_len, conns, b.nconns};
  int code = ((mproc_target)fn)(&args);
  if (forked) child_finish_fork(code); /* a fork of the server: the server's atexit handlers are not ours */
  fflush(NULL);
  exit(code); /* atexit: this child's own children are joined (at_exit is registered if it had any) */
}

/* The guard refuses a flag: one line on stderr (naming the flag, not echoing what followed it), and
 * the process ends at once, running nothing else (no atexit handler either). */
static void refuse(const char *prefix, const char *why) {
  fprintf(stderr, "mproc: refusing %.*s: %s\n", (int)strlen(prefix) - 1, prefix, why);
  fflush(stderr);
  mproc__pal_exit_now(MPROC_EXIT_GUARD_REFUSED);
}

/* The handle of a "--mproc-...=<handle>" argument, once it is proven to be a boot link that our parent
 * made for us (see mproc_main_guard in core.h); otherwise the process ends here. */
static mproc_os_handle trusted_handle(const char *flag, const char *prefix) {
  mproc__pal_unsetenv(SPAWN_ENV);
  if (mproc__pal_secure_exec())
    refuse(prefix, "this program runs set-user-ID, set-group-ID or with file capabilities, and such a program "
                   "never acts as an mproc child");
  const char *s = flag + strlen(prefix);
  uint64_t v = 0, max = mproc__pal_handle_max();
  size_t n = 0;
  for (; s[n]; ++n) {
    if (s[n] < '0' || s[n] > '9') refuse(prefix, "the handle is not a decimal number");
    v = v * 10 + (uint64_t)(s[n] - '0');
    if (v > max) refuse(prefix, "the handle number is out of range");
  }
  if (n == 0) refuse(prefix, "no handle number");
  if (mproc__pal_boot_link_check((mproc_os_handle)v) != 0) refuse(prefix, mproc_last_error());
  return (mproc_os_handle)v;
}

/* The guard in a spawned child: receive the bootstrap, then boot_run. */
static void spawn_child_main(const char *flag) {
  mproc_os_handle h = trusted_handle(flag, SPAWN_FLAG);
  mproc_connection *link = mproc__connection_wrap(mproc__conn_end_link(h));
  if (!link) exit(EXIT_BOOT_FAILED);
  mproc__pal_set_cloexec(h, true);
  char *msg = NULL;
  size_t len = 0;
  if (mproc_connection_recv_bytes(link, 0, MPROC_INFINITE, &msg, &len) != 0) {
    fprintf(stderr, "mproc: spawned child could not receive its bootstrap: %s\n", mproc_last_error());
    exit(EXIT_BOOT_FAILED);
  }
  boot_run(link, msg, len, NULL, 0);
}

/* ---- the fork server (its side) ------------------------------------------------------------------ */

/* In a child forked by the server. */
static void server_child(mproc_os_handle boot, char *msg, size_t len, const mproc_os_handle *fds, size_t nfds) {
  mproc_connection *link = mproc__connection_wrap(mproc__conn_end_link(boot));
  if (!link) mproc__pal_exit_now(EXIT_BOOT_FAILED);
  boot_run(link, msg, len, fds, nfds);
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

static void forkserver_main(const char *flag) {
  mproc__pal_forkserver_serve(trusted_handle(flag, FORKSERVER_FLAG), server_child, server_status);
  mproc__pal_exit_now(EXIT_BOOT_FAILED);
}

int mproc_main_guard(int argc, char **argv) {
  g_guard_ran = true;
  if (argc >= 2 && argv && argv[1] && strncmp(argv[1], SPAWN_FLAG, strlen(SPAWN_FLAG)) == 0) spawn_child_main(argv[1]);
  if (argc >= 2 && argv && argv[1] && strncmp(argv[1], FORKSERVER_FLAG, strlen(FORKSERVER_FLAG)) == 0)
    forkserver_main(argv[1]);
  return 0;
}

/* ---- start ------------------------------------------------------------------------------------- */

static int start_fork(mproc_process *p, mproc_os_handle child_end) {
  fflush(NULL); /* what the parent buffered must not be printed twice */
  int64_t parent_pid = mproc__pal_getpid();
  bool main_thread = p->kill_on_parent_death && mproc__pal_is_main_thread();
  int64_t pid = 0;
  int rc = mproc__pal_fork(&pid);
  if (rc) return rc;
  if (pid == 0) { /* the child */
    /* close every link (and pidfd) of our parent's other children, and our parent's own link to its
     * parent */
    for (mproc_process *q = g_children; q; q = q->next) {
      if (q->boot) mproc__conn_end_close(&q->boot->e); /* the numbers are gone too: no double close later */
      mproc__pal_child_release(&q->child);
    }
    g_children = NULL;
    mproc__pal_close(g_parent_link);
    if (p->boot) mproc__conn_end_close(&p->boot->e);
    if (g_fs_ctl != MPROC_NO_HANDLE) { /* our fork server is not the child's */
      mproc__pal_close(g_fs_ctl);
      g_fs_ctl = MPROC_NO_HANDLE;
      mproc__pal_child_release(&g_fs_child);
    }
    set_identity(p->name, p->ident, g_name, parent_pid, p->daemon);
    g_parent_link = child_end;
    if (p->kill_on_parent_death) {
      mproc__pal_die_with_parent(parent_pid, main_thread);
      mproc_connection *link = mproc__connection_wrap(mproc__conn_end_link(child_end));
      if (link) mproc__pal_thread_start(parent_watch, link);
    }
    mproc_args args = {p->arg, p->arg_size, p->conns, p->nconns};
    child_finish_fork(p->target(&args));
  }
  p->child.pid = pid;
  if (!p->boot && (rc = mproc__pal_fork_sentinel(&p->child)) != 0) { /* out of descriptors: undo */
    mproc__pal_signal(&p->child, MPROC_SIGKILL);
    mproc__pal_wait(&p->child, INT64_MAX);
    return rc;
  }
  return 0;
}

static int start_spawn(mproc_process *p, mproc_os_handle child_end) {
  mproc__buf msg = {NULL, 0, 0};
  int rc = boot_message(p, &msg);
  char *exe = NULL;
  if (!rc) rc = mproc__pal_self_exe(&exe);
  mproc_os_handle *pass = (mproc_os_handle *)calloc(1 + handed_handles(p, NULL), sizeof *pass);
  if (!rc && !pass) rc = mproc__fail(MPROC_ENOMEM, "start: out of memory");
  if (!rc) {
    char flag[64];
    snprintf(flag, sizeof flag, "%s%lld", SPAWN_FLAG, (long long)child_end);
    const char *argv[] = {exe, flag, NULL};
    const char *extra[] = {SPAWN_ENV "=1", NULL};
    pass[0] = child_end;
    size_t npass = 1 + handed_handles(p, pass + 1);
    mproc__spawn_req req = {argv,  NULL, NULL,  NULL,  NULL, extra, {MPROC_NO_HANDLE, MPROC_NO_HANDLE, MPROC_NO_HANDLE},
                            false, pass, npass, false, false};
    p->child.signal_exitcodes = true;
    rc = mproc__pal_spawn(&req, &p->child);
    p->child.signal_exitcodes = true;
    /* before the bootstrap goes: the child cannot run its target outside the job */
    if (!rc && p->kill_on_parent_death) mproc__pal_child_bind(&p->child);
  }
  free(pass);
  free(exe);
  mproc__pal_close(child_end);
  if (!rc) {
    rc = mproc_connection_send_bytes(p->boot, msg.data, msg.len, 0, MPROC_ALL);
    /* EPIPE: the child is already gone (a main() without the guard can exit first). Let the answer
     * below report that, with the child's exit code, instead of a bare broken pipe. */
    if (rc == MPROC_EPIPE) rc = 0;
  }
  mproc__buf_free(&msg);
  if (rc) {
    if (p->child.pid > 0) {
      mproc__pal_signal(&p->child, MPROC_SIGKILL);
      mproc__pal_wait(&p->child, INT64_MAX);
    }
    return rc;
  }
  /* Wait for the child's guard to answer: "ok", an error, or end of file (it died first). */
  char *reply = NULL;
  size_t rlen = 0;
  rc = mproc_connection_recv_bytes(p->boot, 4096, MPROC_INFINITE, &reply, &rlen);
  if (rc == 0 && rlen == 2 && memcmp(reply, "ok", 2) == 0) {
    mproc_free(reply);
    return 0;
  }
  mproc__pal_wait(&p->child, INT64_MAX);
  if (rc == 0 && rlen > 1 && reply[0] == 'E') {
    int code = atoi(reply + 1);
    const char *colon = strchr(reply, ':');
    rc = mproc__fail(code < 0 ? code : MPROC_ESYS, "start '%s': the spawned child could not run the target: %s", p->name,
                     colon ? colon + 1 : reply);
  } else if (p->child.returncode == MPROC_EXIT_GUARD_REFUSED) {
    rc = mproc__fail(MPROC_ESTATE,
                     "start '%s': the spawned child's guard refused its bootstrap (exit code %d): it does not run "
                     "the same executable file as this process (replaced on disk?), or cannot tell (see its stderr)",
                     p->name, p->child.returncode);
  } else {
    rc = mproc__fail(MPROC_ESTATE,
                     "start '%s': the spawned child exited (code %d) before running its target: does the program's "
                     "main() call mproc_main_guard(argc, argv) first?",
                     p->name, p->child.returncode);
  }
  mproc_free(reply);
  return rc;
}

/* ---- start: forkserver ----------------------------------------------------------------------- */

static bool recv_all(mproc_os_handle h, void *buf, size_t n) {
  for (size_t got = 0, k = 0; got < n; got += k)
    if (mproc__pal_conn_recv(h, (char *)buf + got, n - got, INT64_MAX, &k) != 0 || k == 0) return false;
  return true;
}

static int64_t get_i64(const unsigned char b[8]) {
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u |= (uint64_t)b[i] << (8 * i);
  return (int64_t)u;
}

static bool recv_i64(mproc_os_handle h, int64_t *v) {
  unsigned char b[8];
  if (!recv_all(h, b, 8)) return false;
  *v = get_i64(b);
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
  *pid = get_i64(b);
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
  char *exe = NULL;
  rc = mproc__pal_self_exe(&exe);
  if (!rc) {
    char flag[64];
    snprintf(flag, sizeof flag, "%s%lld", FORKSERVER_FLAG, (long long)theirs);
    const char *argv[] = {exe, flag, NULL};
    const char *extra[] = {SPAWN_ENV "=1", NULL};
    mproc__spawn_req req = {argv,  NULL,    NULL, NULL,  NULL, extra, {MPROC_NO_HANDLE, MPROC_NO_HANDLE, MPROC_NO_HANDLE},
                            false, &theirs, 1,    false, false};
    memset(&g_fs_child, 0, sizeof g_fs_child);
    g_fs_child.handle = MPROC_NO_HANDLE;
    rc = mproc__pal_spawn(&req, &g_fs_child);
  }
  free(exe);
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
      rc = mproc__fail(MPROC_ESYS, "start '%s': the fork server could not fork (errno %lld)", p->name, (long long)-*pid);
    }
    break;
  }
  mproc__pal_global_unlock();
  return rc;
}

/* Receive one framed message without reading ahead (the exit status may follow it on the link and
 * must stay there, so that the sentinel becomes readable when it arrives). */
static int recv_one_frame(mproc_os_handle h, char *buf, size_t cap, size_t *len) {
  unsigned char hdr[4];
  if (!recv_all(h, hdr, 4)) return MPROC_EPIPE;
  uint32_t n = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
  if (n >= cap || !recv_all(h, buf, n)) return MPROC_EPIPE;
  buf[n] = '\0';
  *len = n;
  return 0;
}

static int start_forkserver(mproc_process *p, mproc_os_handle child_end) {
  mproc_os_handle fds[MPROC__PAL_MAX_FDS];
  size_t need = handed_handles(p, NULL);
  if (need + 1 > MPROC__PAL_MAX_FDS) {
    mproc__pal_close(child_end);
    return mproc__fail(MPROC_EINVAL,
                       "start '%s': the handed connections need %zu descriptors, a forkserver child can be given "
                       "at most %d (a duplex connection end has three on POSIX)",
                       p->name, need, MPROC__PAL_MAX_FDS - 1);
  }
  size_t nfds = 1 + handed_handles(p, fds + 1);
  mproc__buf msg = {NULL, 0, 0};
  static const unsigned char len0[8] = {0};
  int rc = mproc__buf_append(&msg, len0, 8); /* the length, set below */
  if (!rc) rc = boot_message(p, &msg);
  if (!rc) {
    uint64_t body = msg.len - 8;
    for (int i = 0; i < 8; ++i) ((unsigned char *)msg.data)[i] = (unsigned char)(body >> (8 * i));
  }
  char reply[1200];
  size_t rlen = 0;
  bool have_reply = false;
  int64_t pid = 0;
  mproc_os_handle pidfd = MPROC_NO_HANDLE;
  for (int attempt = 0; !rc; ++attempt) {
    bool lost = false;
    fds[0] = child_end;
    rc = server_request(p, &msg, fds, nfds, &pid, &pidfd, &lost);
    mproc__pal_close(child_end);
    child_end = MPROC_NO_HANDLE;
    if (rc == 0 || !lost) break;
    /* The server died after the request reached it. If it forked the child, the child answers on the
     * boot link (with its pid); end of file there means no process has the child's end. */
    if (recv_one_frame(p->boot->e.rd, reply, sizeof reply, &rlen) == 0) {
      have_reply = true;
      rc = 0;
      break;
    }
    if (attempt) break;
    mproc_os_handle parent_end;
    if ((rc = mproc__pal_conn_pair(true, &parent_end, &child_end)) != 0) break;
    mproc_connection *boot = mproc__connection_wrap(mproc__conn_end_link(parent_end));
    if (!boot) {
      mproc__pal_close(parent_end);
      rc = MPROC_ENOMEM;
      break;
    }
    mproc_connection_destroy(p->boot);
    p->boot = boot;
  }
  mproc__buf_free(&msg);
  mproc__pal_close(child_end);
  if (rc) {
    mproc__pal_close(pidfd);
    return rc;
  }
  p->child.pid = pid;
  p->child.handle = pidfd; /* signals reach this very process (mproc__pal_signal), never a reused pid */
  p->via_server = true;
  /* the child's answer, as under spawn */
  if (!have_reply) rc = recv_one_frame(p->boot->e.rd, reply, sizeof reply, &rlen);
  if (rc == 0 && rlen >= 2 && memcmp(reply, "ok", 2) == 0) {
    p->child.pid = atoll(reply + 2);
    return 0;
  }
  reap(p, INT64_MAX);
  if (rc == 0 && rlen > 1 && reply[0] == 'E') {
    int code = atoi(reply + 1);
    const char *colon = strchr(reply, ':');
    return mproc__fail(code < 0 ? code : MPROC_ESYS, "start '%s': the forkserver child could not run the target: %s",
                       p->name, colon ? colon + 1 : reply);
  }
  return mproc__fail(MPROC_ESYS, "start '%s': the forkserver child ended (code %d) before running its target", p->name,
                     p->child.returncode);
}

int mproc_process_start(mproc_process *p) {
  int rc = usable(p, "process_start");
  if (rc) return rc;
  if (p->started) return mproc__fail(MPROC_ESTATE, "process_start: '%s' can only be started once", p->name);
  if (g_daemon) return mproc__fail(MPROC_ESTATE, "process_start: daemonic processes are not allowed to have children");
  if (!g_guard_ran && mproc__pal_env_is_set(SPAWN_ENV))
    return mproc__fail(MPROC_ESTATE,
                       "process_start: this process was spawned by mproc but its main() did not call "
                       "mproc_main_guard(argc, argv) first; refusing to start '%s' (that would start children "
                       "without end)",
                       p->name);
  mproc_start_method m = p->req_method;
  if (m == MPROC_START_DEFAULT && p->context) m = p->context->method;
  if (m == MPROC_START_DEFAULT) m = g_method;
  rc = method_available(m);
  if (rc) return rc;
  for (size_t i = 0; i < p->nconns; ++i)
    if (mproc_connection_closed(p->conns[i]))
      return mproc__fail(MPROC_ECLOSED, "process_start: connection %zu handed to '%s' is closed", i, p->name);

  /* A fork child needs its boot link only to watch for its parent's death; its sentinel can be the
   * system's own where there is one (mproc__pal_fork_sentinel). */
  bool link = m != MPROC_START_FORK || p->kill_on_parent_death || !mproc__pal_fork_sentinel_supported();
  mproc_os_handle parent_end = MPROC_NO_HANDLE, child_end = MPROC_NO_HANDLE;
  if (link) {
    rc = mproc__pal_conn_pair(true, &parent_end, &child_end);
    if (rc) return rc;
    p->boot = mproc__connection_wrap(mproc__conn_end_link(parent_end));
    if (!p->boot) {
      mproc__pal_close(parent_end);
      mproc__pal_close(child_end);
      return MPROC_ENOMEM;
    }
  }
  if (!g_atexit_registered) {
    g_atexit_registered = true;
    atexit(at_exit);
  }
  rc = m == MPROC_START_FORK         ? start_fork(p, child_end)
       : m == MPROC_START_FORKSERVER ? start_forkserver(p, child_end)
                                     : start_spawn(p, child_end);
  if (m == MPROC_START_FORK) mproc__pal_close(child_end);
  if (rc) {
    mproc_connection_destroy(p->boot);
    p->boot = NULL;
    mproc__pal_child_release(&p->child);
    memset(&p->child, 0, sizeof p->child);
    p->child.handle = MPROC_NO_HANDLE;
    p->via_server = false;
    return rc;
  }
  p->started = true;
  list_add(p);
  return 0;
}

/* ---- join, terminate, close ------------------------------------------------------------------- */

int mproc_process_join(mproc_process *p, int64_t timeout_ms) {
  int rc = usable(p, "process_join");
  if (rc) return rc;
  if (!p->started) return mproc__fail(MPROC_ESTATE, "process_join: '%s' has not been started", p->name);
  rc = reap(p, mproc__deadline_from_timeout(timeout_ms));
  if (rc == MPROC_ETIMEDOUT)
    return mproc__fail(rc, "process_join: '%s' (pid %lld) is still running after %lld ms", p->name,
                       (long long)p->child.pid, (long long)timeout_ms);
  return rc;
}

bool mproc_process_is_alive(mproc_process *p) {
  if (!p || !p->started || p->closed || p->child.reaped || p->creator != mproc__pal_getpid()) return false;
  return reap(p, 0) == MPROC_ETIMEDOUT;
}

static int send_sig(mproc_process *p, int sig, const char *call) {
  int rc = usable(p, call);
  if (rc) return rc;
  if (!p->started) return mproc__fail(MPROC_ESTATE, "%s: '%s' has not been started", call, p->name);
  p->child.signal_exitcodes = true;
  return signal_child(p, sig);
}

int mproc_process_terminate(mproc_process *p) { return send_sig(p, MPROC_SIGTERM, "process_terminate"); }
int mproc_process_kill(mproc_process *p) { return send_sig(p, MPROC_SIGKILL, "process_kill"); }

int mproc_process_close(mproc_process *p) {
  if (!p) return mproc__fail(MPROC_EINVAL, "process_close: p is NULL");
  if (p->closed) return 0; /* closing twice is harmless, as Python's */
  int rc = usable(p, "process_close");
  if (rc) return rc;
  if (p->started && !p->child.reaped && reap(p, 0) != 0)
    return mproc__fail(MPROC_ESTATE, "process_close: '%s' is still running", p->name);
  if (p->started && !p->closed) list_remove(p);
  mproc_connection_destroy(p->boot);
  p->boot = NULL;
  mproc__pal_child_release(&p->child);
  p->closed = true;
  return 0;
}

void mproc_process_destroy(mproc_process *p) {
  if (!p) return;
  if (p->creator != mproc__pal_getpid()) { /* a fork child's copy: the process is not ours to reap */
    free_process(p);
    return;
  }
  if (p->started && !p->closed && !p->child.reaped && reap(p, 0) != 0) {
    p->detached = true; /* still running: the list keeps it until it is reaped */
    return;
  }
  if (p->started && !p->closed) list_remove(p);
  free_process(p);
}

/* ---- this process, children, wait ---------------------------------------------------------------- */

const char *mproc_current_process_name(void) { return g_name; }
bool mproc_current_process_daemon(void) { return g_daemon; }
int64_t mproc_parent_process_pid(void) { return g_parent_pid; }
const char *mproc_parent_process_name(void) { return g_parent_name; }

int mproc_active_children(mproc_process ***list, size_t *count) {
  if (!list || !count) return mproc__fail(MPROC_EINVAL, "active_children: list and count must be set");
  *list = NULL;
  *count = 0;
  mproc__pal_global_lock();
  size_t n = 0;
  for (mproc_process *p = g_children; p; p = p->next) ++n;
  mproc_process **all = (mproc_process **)malloc((n ? n : 1) * sizeof *all);
  n = 0;
  if (all)
    for (mproc_process *p = g_children; p; p = p->next) all[n++] = p;
  mproc__pal_global_unlock();
  if (!all) return mproc__fail(MPROC_ENOMEM, "active_children: out of memory");
  size_t live = 0;
  for (size_t i = 0; i < n; ++i) {
    mproc_process *p = all[i];
    if (reap(p, 0) == MPROC_ETIMEDOUT) {
      all[live++] = p;
    } else if (p->detached) { /* destroyed while running, now finished: release it */
      list_remove(p);
      free_process(p);
    }
  }
  if (live == 0) {
    free(all);
    return 0;
  }
  *list = all;
  *count = live;
  return 0;
}

int mproc_wait(mproc_waitable *objs, size_t count, int64_t timeout_ms, size_t *nready) {
  if (nready) *nready = 0;
  if (!objs || count == 0) return mproc__fail(MPROC_EINVAL, "wait: no objects");
  mproc__wait_item *items = (mproc__wait_item *)malloc(count * sizeof *items);
  bool *ready = (bool *)calloc(count, sizeof *ready);
  int rc = (!items || !ready) ? mproc__fail(MPROC_ENOMEM, "wait: out of memory") : 0;
  size_t pre = 0; /* already ready without waiting: buffered messages, processes already reaped */
  for (size_t i = 0; i < count && !rc; ++i) {
    mproc_waitable *w = &objs[i];
    w->ready = false;
    if (!w->connection == !w->process) {
      rc = mproc__fail(MPROC_EINVAL, "wait: objects[%zu] must set exactly one of connection and process", i);
    } else if (w->connection) {
      rc = mproc_connection_poll(w->connection, 0);
      if (rc == 0) {
        ready[i] = true;
        ++pre;
      } else if (rc == MPROC_ETIMEDOUT) {
        rc = 0;
      }
      items[i].h = mproc__connection_wait_handle(w->connection);
      items[i].kind = MPROC__WAIT_CONN;
    } else {
      rc = usable(w->process, "wait");
      if (!rc && !w->process->started) {
        rc = mproc__fail(MPROC_ESTATE, "wait: process '%s' is not started", w->process->name);
      } else if (!rc && w->process->child.reaped) {
        ready[i] = true;
        ++pre;
      }
      items[i].h = mproc_process_sentinel(w->process);
      items[i].kind = MPROC__WAIT_SENTINEL;
    }
  }
  if (!rc && !pre) rc = mproc__pal_wait_ready(items, count, mproc__deadline_from_timeout(timeout_ms), ready);
  size_t n = 0;
  for (size_t i = 0; i < count && !rc; ++i)
    if (ready[i]) {
      objs[i].ready = true;
      ++n;
      /* The sentinel closes as the child exits, a moment before the OS lets it be reaped: reap it
       * now (a short wait), so join(0), is_alive and active_children agree with what wait said. */
      if (objs[i].process) reap(objs[i].process, INT64_MAX);
    }
  free(items);
  free(ready);
  if (rc == MPROC_ETIMEDOUT) return mproc__fail(rc, "wait: nothing became ready within %lld ms", (long long)timeout_ms);
  if (nready) *nready = n;
  return rc;
}
