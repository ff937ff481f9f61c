/* The boot-link protocol. A child started by spawn or forkserver is linked to its parent by a "boot"
 * connection (a socket pair / named pipe):
 *   - the parent sends the bootstrap message over it (bootstrap.h: the target's reference, the argument
 *     bytes, names, the handles of the handed connections); the child's side (mproc__boot_run) finds the
 *     target and answers "ok" ("ok<pid>" from a forkserver child) or "E<code>:<message>", so start()
 *     returns only then, and start errors are reported in the parent (mproc__boot_answer); under
 *     forkserver the server parses the message and finds the target before it forks (or answers "E..."
 *     itself, forking none), and the child runs from what it parsed (mproc__boot_run_parsed);
 *     where the parent has a pidfd of the child start does not wait for the "ok";
 *   - the parent's end is the sentinel on POSIX where the child has no pidfd (mproc__pal_sentinel): it
 *     reaches end of file when the child has gone;
 *   - the child's end tells the child that the parent has gone (kill_on_parent_death: the watchdog);
 *   - a forkserver child's last word on it is "x<exit status>", right before it ends; the server writes
 *     "X<exit status>" on it once it has reaped the child (self.c reads the one that tells).
 * A spawned child is this program started again with a guard flag naming its end (mproc__respawn_self). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bootstrap.h"
#include "process_internal.h"

#define EXIT_BOOT_FAILED MPROC_EXIT_BOOT_FAILED

int mproc__boot_message(const mproc_process *p, mproc__buf *b, mproc_os_handle **handles, size_t *nhandles) {
  *handles = NULL;
  *nhandles = 0;
  mproc__buf ref = {NULL, 0, 0}, bytes = {NULL, 0, 0};
  int rc = mproc__pal_fn_locate((void *)p->target, &ref);
  struct mproc__boot_obj *objs = NULL;
  mproc_os_handle *hs = NULL;
  size_t *offs = NULL; /* where each object's bytes start in `bytes` (it may move as it grows) */
  if (!rc && p->nhanded) {
    objs = (struct mproc__boot_obj *)calloc(p->nhanded, sizeof *objs);
    hs = (mproc_os_handle *)malloc(p->nhanded * MPROC__HANDABLE_MAX_HANDLES * sizeof *hs);
    offs = (size_t *)malloc(p->nhanded * sizeof *offs);
    if (!objs || !hs || !offs) rc = mproc__fail(MPROC_ENOMEM, "start: out of memory");
  }
  size_t nh = 0;
  for (size_t i = 0; i < p->nhanded && !rc; ++i) {
    const mproc__handed *h = &p->handed[i];
    size_t k = 0;
    offs[i] = bytes.len;
    rc = h->type->export_obj(h->obj, hs + nh, &k, &bytes);
    if (!rc && k > MPROC__HANDABLE_MAX_HANDLES)
      rc = mproc__fail(MPROC_ESYS, "start: a %s exported %zu handles", h->type->name, k);
    objs[i].type = h->type->id;
    objs[i].len = bytes.len - offs[i];
    objs[i].first = nh;
    objs[i].count = k;
    nh += k;
  }
  for (size_t i = 0; i < p->nhanded && !rc; ++i) objs[i].bytes = bytes.data ? bytes.data + offs[i] : "";
  if (!rc) {
    uint32_t flags = (p->daemon ? MPROC__BOOT_DAEMON : 0u) |
                     (p->kill_on_parent_death ? MPROC__BOOT_KILL_ON_PARENT_DEATH : 0u) |
                     /* asked only where it counts: two system calls on Linux */
                     (p->kill_on_parent_death && mproc__pal_is_main_thread() ? MPROC__BOOT_MAIN_THREAD : 0u);
    mproc__boot boot = {.ref = ref.data,
                        .ref_len = ref.len,
                        .arg = p->arg,
                        .arg_len = p->arg_size,
                        .name = p->name,
                        .ident = p->ident,
                        .parent_name = mproc__me.name,
                        .authkey = p->authkey,
                        .authkey_len = p->authkey_len,
                        .parent_pid = mproc__pal_getpid(),
                        .flags = flags,
                        .nobjs = p->nhanded,
                        .objs = objs,
                        .nhandles = nh,
                        .handles = hs};
    rc = mproc__boot_encode(&boot, b);
  }
  free(objs);
  free(offs);
  mproc__buf_free(&ref);
  mproc__buf_free(&bytes);
  if (rc) {
    free(hs);
    return rc;
  }
  *handles = hs;
  *nhandles = nh;
  return 0;
}

/* kill_on_parent_death: a small thread blocked on our end of the boot link; end of file there means
 * the parent has gone, however it went. */
static void parent_watch_thread(void *arg) {
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

void mproc__parent_watch(mproc_connection *link) { mproc__pal_thread_start(parent_watch_thread, link); }

/* The objects of a parsed bootstrap, rebuilt in this process by their types. Spawn (fds NULL): the
 * handles are the numbers in the message, inherited; each must be an open handle other than the boot
 * link. Forkserver: they are fds[0..nfds), received with the request in the order the message names
 * them. *objs (all objects) and *conns (the connections among them) are malloc'ed, kept for life. */
MPROC__CHILD_PATH static int adopt_objects(const mproc__boot *b, mproc_os_handle link, const mproc_os_handle *fds,
                                           size_t nfds, void ***objs_out, mproc_connection ***conns_out,
                                           size_t *nconns) {
  const mproc_os_handle *hs = fds ? fds : b->handles;
  if (fds && nfds != b->nhandles)
    return mproc__fail(MPROC_ESYS, "child: %zu handles came with a bootstrap that names %zu", nfds, b->nhandles);
  for (size_t i = 0; i < b->nhandles; ++i) {
    if (!fds && (hs[i] == link || !mproc__pal_handle_valid(hs[i])))
      return mproc__fail(MPROC_ESYS, "child: handle %lld of a handed object was not inherited", (long long)hs[i]);
    mproc__pal_set_cloexec(hs[i], true);
  }
  void **objs = (void **)calloc(b->nobjs ? b->nobjs : 1, sizeof *objs);
  mproc_connection **conns = (mproc_connection **)calloc(b->nobjs ? b->nobjs : 1, sizeof *conns);
  if (!objs || !conns) {
    free(objs);
    free(conns);
    return mproc__fail(MPROC_ENOMEM, "child: out of memory");
  }
  size_t nc = 0;
  int rc = 0;
  for (size_t i = 0; i < b->nobjs && !rc; ++i) {
    const struct mproc__boot_obj *o = &b->objs[i];
    const mproc__handable_type *t = mproc__handable_find(o->type);
    if (!t) {
      rc = mproc__fail(MPROC_ESYS, "child: handed object %zu has type %u, which this program does not know", i,
                       (unsigned)o->type);
      break;
    }
    rc = t->import_obj(o->bytes, o->len, hs + o->first, o->count, &objs[i]);
    if (!rc && t == &mproc__connection_handable) conns[nc++] = (mproc_connection *)objs[i];
  }
  if (rc) { /* the process is about to end: what was rebuilt goes with it */
    free(objs);
    free(conns);
    return rc;
  }
  *objs_out = objs;
  *conns_out = conns;
  *nconns = nc;
  return 0;
}

/* Tell the parent on a boot link why the target cannot run: "E<code>:<the last error>". */
void mproc__boot_tell_failure(mproc_connection *link, int rc) {
  char reply[1100];
  int n = snprintf(reply, sizeof reply, "E%d:%s", rc, mproc_last_error());
  size_t len = n < 0 ? 0 : (size_t)n < sizeof reply ? (size_t)n : sizeof reply - 1;
  mproc_connection_send_bytes(link, reply, len, 0, MPROC_ALL);
}

/* A child that cannot run its target tells its parent why (the parent is trusted: the guard checked it)
 * and ends. */
static void boot_failed(mproc_connection *link, bool forked, int rc) {
  mproc__boot_tell_failure(link, rc);
  fflush(NULL);
  if (forked) mproc__pal_exit_now(EXIT_BOOT_FAILED);
  exit(EXIT_BOOT_FAILED);
}

/* tag (two bytes at most) and the decimal v into out, without printf's machinery: a child of the fork
 * server runs every code page it touches for the first time (a page fault each, ~5 us here), and
 * snprintf's are four. The length. */
MPROC__CHILD_PATH size_t mproc__tagged_number(char out[32], const char *tag, uint64_t v) {
  char digits[20];
  size_t n = 0, t = strlen(tag);
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  memcpy(out, tag, t);
  for (size_t i = 0; i < n; ++i) out[t + i] = digits[n - 1 - i];
  out[t + n] = '\0';
  return t + n;
}

/* Run a child from its parsed bootstrap: take the handed objects, acknowledge on the boot link ("ok" or
 * an error), run the target, end. `fds` NULL (spawn): the handed objects' handles are the numbers in the
 * message, and the target is resolved here; else (forkserver) they are fds[i], received with the
 * request, and fn is the target, which the server found before it forked; a forkserver child's last
 * word on the link is "x<exit status>", right before it ends (self.c reads it once the pidfd says the
 * child has gone). b's strings are kept for life. Never returns. */
MPROC__CHILD_PATH void mproc__boot_run_parsed(mproc_connection *link, const mproc__boot *b, const mproc_os_handle *fds,
                                              size_t nfds, void *fn) {
  bool forked = fds != NULL;
  mproc_connection **conns = NULL;
  void **objs = NULL;
  size_t nconns = 0;
  int rc = adopt_objects(b, link->e.rd, fds, nfds, &objs, &conns, &nconns);
  if (!rc && !fn) rc = mproc__pal_fn_resolve(b->ref, b->ref_len, &fn);
  if (rc) boot_failed(link, forked, rc);
  if (b->flags & MPROC__BOOT_KILL_ON_PARENT_DEATH) /* a forkserver child's OS parent is the server, whose one
                                                      thread forked it */
    mproc__pal_die_with_parent(forked ? mproc__pal_getppid() : b->parent_pid,
                               forked || (b->flags & MPROC__BOOT_MAIN_THREAD) != 0);
  mproc__self_become(b->name, b->ident, b->parent_name, b->parent_pid, (b->flags & MPROC__BOOT_DAEMON) != 0);
  if (forked) /* a fork of the server, whose one thread held the global lock across the fork */
    mproc__authkey_become_forked(b->authkey, b->authkey_len);
  else
    mproc__authkey_become(b->authkey, b->authkey_len);
  mproc__me.parent_link = link->e.rd;
  char ok[32] = "ok"; /* a forkserver child adds its pid: its parent may not have it from the server */
  size_t ok_len = forked ? mproc__tagged_number(ok, "ok", (uint64_t)mproc__pal_getpid_uncached()) : 2;
  if (mproc_connection_send_bytes(link, ok, ok_len, 0, MPROC_ALL) != 0) {
    if (forked) mproc__pal_exit_now(EXIT_BOOT_FAILED);
    exit(EXIT_BOOT_FAILED);
  }
  if (b->flags & MPROC__BOOT_KILL_ON_PARENT_DEATH) mproc__parent_watch(link);
  mproc_args args = {b->arg, b->arg_len, conns, nconns, objs, b->nobjs};
  int code = ((mproc_target)fn)(&args);
  if (forked) { /* a fork of the server: the server's atexit handlers are not ours */
    mproc__child_before_exit();
    char x[32];
    size_t x_len = mproc__tagged_number(x, "x", (unsigned)code & 255u); /* what the system will report */
    mproc_connection_send_bytes(link, x, x_len, 0, MPROC_ALL);
    mproc__pal_exit_now(code);
  }
  fflush(NULL);
  exit(code); /* atexit: this child's own children are joined (at_exit is registered if it had any) */
}

void mproc__boot_run(mproc_connection *link, const char *msg, size_t len) {
  mproc__boot b;
  int rc = mproc__boot_parse(msg, len, &b);
  if (rc) boot_failed(link, false, rc);
  mproc__boot_run_parsed(link, &b, NULL, 0, NULL);
}

int mproc__boot_answer(mproc_process *p, const char *how, int64_t *pid_out) {
  *pid_out = 0;
  char reply[1200];
  size_t rlen = 0;
  int rc = mproc__connection_recv_exact(p->boot, reply, sizeof reply - 1, INT64_MAX, &rlen);
  if (rc == 0) reply[rlen] = '\0';
  if (rc == 0 && rlen >= 2 && memcmp(reply, "ok", 2) == 0) {
    *pid_out = rlen > 2 ? atoll(reply + 2) : 0;
    return 0;
  }
  mproc__child_reap(p, INT64_MAX);
  if (rc == 0 && rlen > 1 && reply[0] == 'E') {
    int code = atoi(reply + 1);
    const char *colon = strchr(reply, ':');
    return mproc__fail(code < 0 ? code : MPROC_ESYS, "start '%s': the %s child could not run the target: %s", p->name,
                       how, colon ? colon + 1 : reply);
  }
  if (p->child.returncode == MPROC_EXIT_GUARD_REFUSED)
    return mproc__fail(MPROC_ESTATE,
                       "start '%s': the %s child's guard refused its bootstrap (exit code %d): it does not run the "
                       "same executable file as this process (replaced on disk?), or cannot tell (see its stderr)",
                       p->name, how, p->child.returncode);
  return mproc__fail(MPROC_ESTATE,
                     "start '%s': the %s child exited (code %d) before running its target: does the program's main() "
                     "call mproc_main_guard(argc, argv) first?",
                     p->name, how, p->child.returncode);
}

int mproc__respawn_self(const char *flag, mproc_os_handle handle, const mproc_os_handle *pass, size_t npass,
                        bool signal_exitcodes, bool eager, mproc__child *child) {
  char *exe = NULL;
  int rc = mproc__pal_self_exe(&exe);
  if (rc) return rc;
  char arg[64];
  snprintf(arg, sizeof arg, "%s%lld", flag, (long long)handle);
  const char *argv[] = {exe, arg, NULL};
  const char *extra[] = {MPROC__SPAWN_ENV "=1", NULL, NULL, NULL};
  /* eager: the program binds every symbol at load (the dynamic linker's eager binding, asked for through
   * the environment: only this process's, its guard takes it out again). The fork server is started so,
   * so that its children do not each resolve again, lazily, every library function they call: a fork
   * inherits the server's bindings. */
  char bind_now[64];
  const char *var = mproc__pal_eager_binding_var();
  if (eager && var && !mproc__pal_env_is_set(var)) {
    snprintf(bind_now, sizeof bind_now, "%s=1", var);
    extra[1] = bind_now;
    extra[2] = MPROC__EAGER_ENV "=1";
  }
  mproc__spawn_req req = {.argv = argv,
                          .env_extra = extra,
                          .stdio = {MPROC_NO_HANDLE, MPROC_NO_HANDLE, MPROC_NO_HANDLE},
                          .pass_fds = pass,
                          .pass_fds_count = npass,
                          .signal_exitcodes = signal_exitcodes};
  rc = mproc__pal_spawn(&req, child);
  free(exe);
  return rc;
}
