/* The Process object (Python's multiprocessing.Process): create, accessors, start, join, is_alive,
 * terminate, kill, close, destroy. How a child comes to exist is the start method's (start_*.c,
 * forkserver.c); how we learn that it ended is self.c's. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "process_internal.h"

void mproc__process_free(mproc_process *p) {
  free(p->authkey);
  free(p->handed);
  free(p->objs);
  mproc_connection_destroy(p->boot);
  mproc__pal_child_release(&p->child);
  free(p->name);
  free(p); /* with its connection list and argument bytes */
}

/* Python's "can only start/join/test a process object created by the current process": a fork child
 * has a copy of its parent's Process objects, whose children are not its own (and whose handles it
 * closed). And nothing but destroy works on a closed one. */
int mproc__process_check(const mproc_process *p, const char *call) {
  if (!p) return mproc__fail(MPROC_EINVAL, "%s: p is NULL", call);
  if (p->creator != mproc__pal_getpid())
    return mproc__fail(MPROC_ESTATE,
                       "%s: '%s' was created by process %lld, not by this one (%lld): only its creator "
                       "can start, join or signal it",
                       call, p->name, (long long)p->creator, (long long)mproc__pal_getpid());
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
  size_t nlen = sizeof num - 1 - k, plen = strlen(mproc__me.ident);
  size_t at = 0;
  if (plen && plen + 1 + nlen < cap) {
    memcpy(ident, mproc__me.ident, plen);
    ident[plen] = ':';
    at = plen + 1;
  }
  memcpy(ident + at, num + k, nlen + 1);
}

int mproc_process_create(mproc_process **out, const mproc_process_opts *o) {
  MPROC__CHECK_ARG(!out, "out is NULL");
  *out = NULL;
  MPROC__CHECK_ARG(!o, "opts is NULL");
  MPROC__CHECK_ARG(!o->target, "target is NULL");
  MPROC__CHECK_ARG(!o->arg && o->arg_size, "arg is NULL but arg_size is %zu", o->arg_size);
  MPROC__CHECK_ARG(o->connection_count && !o->connections, "connections is NULL but connection_count is %zu",
                   o->connection_count);
  for (size_t i = 0; i < o->connection_count; ++i) MPROC__CHECK_ARG(!o->connections[i], "connections[%zu] is NULL", i);
  MPROC__CHECK_ARG(o->object_count && !o->objects, "objects is NULL but object_count is %zu", o->object_count);
  for (size_t i = 0; i < o->object_count; ++i) {
    const mproc__handable_type *t = mproc__handable_find((uint32_t)o->objects[i].kind);
    MPROC__CHECK_ARG(!t || o->objects[i].kind == MPROC_OBJECT_OS_HANDLE,
                     "objects[%zu] has kind %d, which cannot be handed to a child", i, (int)o->objects[i].kind);
    MPROC__CHECK_ARG(!o->objects[i].object, "objects[%zu] is NULL", i);
  }
  MPROC__CHECK_ARG(o->start_method < MPROC_START_DEFAULT || o->start_method > MPROC_START_FORKSERVER,
                   "start method %d is not an mproc_start_method", (int)o->start_method);
  MPROC__CHECK_ARG(o->kill_on_parent_death < MPROC_OPTION_DEFAULT || o->kill_on_parent_death > MPROC_OPTION_OFF,
                   "kill_on_parent_death %d is not an mproc_option", (int)o->kill_on_parent_death);
  MPROC__CHECK_ARG(!o->authkey && o->authkey_size, "authkey is NULL but authkey_size is %zu", o->authkey_size);
  MPROC__CHECK_ARG(o->authkey_size > MPROC_AUTHKEY_MAX, "an authkey of %zu bytes (at most MPROC_AUTHKEY_MAX, %d)",
                   o->authkey_size, MPROC_AUTHKEY_MAX);
  size_t room = (size_t)PTRDIFF_MAX - sizeof(mproc_process); /* no C object is larger than PTRDIFF_MAX */
  if (o->arg_size > room || o->connection_count > (room - o->arg_size) / sizeof(mproc_connection *))
    return mproc__fail(MPROC_ENOMEM,
                       "process_create: an argument of %zu bytes and %zu connections do not fit in memory", o->arg_size,
                       o->connection_count);

  /* One block: the object, the connection list, the argument bytes (fewer pages written per start: after
   * a fork each one the parent writes is a copy-on-write fault). malloc, not calloc: glibc's calloc
   * bypasses its per-thread cache, so each start and destroy wrote the arena's state (in libc's data,
   * one more page written after a fork). The list and the bytes are filled below. */
  mproc_process *p =
      (mproc_process *)malloc(sizeof *p + o->connection_count * sizeof(mproc_connection *) + o->arg_size);
  if (!p) return mproc__fail(MPROC_ENOMEM, "process_create: out of memory");
  memset(p, 0, sizeof *p);
  p->conns = (mproc_connection **)(void *)(p + 1);
  p->arg = (char *)(p->conns + o->connection_count);
  p->child.handle = MPROC_NO_HANDLE;
  p->target = o->target;
  p->daemon = o->daemon;
  p->req_method = o->start_method;
  p->context = o->context;
  p->creator = mproc__pal_getpid();
  p->kill_on_parent_death =
      o->kill_on_parent_death == MPROC_OPTION_DEFAULT ? o->daemon : o->kill_on_parent_death == MPROC_OPTION_ON;
  mproc__pal_global_lock();
  unsigned n = ++mproc__me.counter;
  mproc__pal_global_unlock();
  set_ident(p->ident, sizeof p->ident, n);
  char defname[96] = "Process-";
  memcpy(defname + 8, p->ident, strlen(p->ident) + 1);
  p->name = mproc__strdup(o->name ? o->name : defname);
  if (!p->name) {
    mproc__process_free(p);
    return mproc__fail(MPROC_ENOMEM, "process_create: out of memory");
  }
  /* Python: the creator's config, copied (no key buffer on the stack: see mproc__authkey_dup) */
  size_t klen = o->authkey_size;
  int rc = 0;
  if (!o->authkey) {
    rc = mproc__authkey_dup(&p->authkey, &klen);
  } else if ((p->authkey = (unsigned char *)malloc(klen ? klen : 1)) == NULL) {
    rc = mproc__fail(MPROC_ENOMEM, "process_create: out of memory");
  } else if (klen) {
    memcpy(p->authkey, o->authkey, klen);
  }
  if (rc) {
    mproc__process_free(p);
    return rc;
  }
  p->authkey_len = klen;
  if (o->arg_size) memcpy(p->arg, o->arg, o->arg_size);
  p->arg_size = o->arg_size;
  for (size_t i = 0; i < o->connection_count; ++i) {
    p->conns[i] = o->connections[i];
    if (mproc__process_hand(p, &mproc__connection_handable, o->connections[i]) != 0) {
      mproc__process_free(p);
      return MPROC_ENOMEM;
    }
  }
  p->nconns = o->connection_count;
  for (size_t i = 0; i < o->object_count; ++i) {
    if (mproc__process_hand(p, mproc__handable_find((uint32_t)o->objects[i].kind), o->objects[i].object) != 0) {
      mproc__process_free(p);
      return MPROC_ENOMEM;
    }
  }
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
  MPROC__CHECK_ARG(!p || !name, "p and name must be set");
  char *n = mproc__strdup(name);
  if (!n) return MPROC_ENOMEM;
  free(p->name);
  p->name = n;
  return 0;
}

bool mproc_process_daemon(const mproc_process *p) { return p && p->daemon; }

int mproc_process_set_daemon(mproc_process *p, bool daemon) {
  MPROC__CHECK_ARG(!p, "p is NULL");
  if (p->started) return mproc__fail(MPROC_ESTATE, "process_set_daemon: '%s' has already been started", p->name);
  p->daemon = daemon;
  return 0;
}

mproc_os_handle mproc_process_sentinel(const mproc_process *p) {
  if (!p || !p->started || p->closed) return MPROC_NO_HANDLE;
  return mproc__pal_sentinel(&p->child, mproc_connection_handle(p->boot));
}

/* ---- start ------------------------------------------------------------------------------------- */

int mproc_process_start(mproc_process *p) {
  int rc = mproc__process_check(p, "process_start");
  if (rc) return rc;
  if (p->started) return mproc__fail(MPROC_ESTATE, "process_start: '%s' can only be started once", p->name);
  if (mproc__me.daemon)
    return mproc__fail(MPROC_ESTATE, "process_start: daemonic processes are not allowed to have children");
  if (!mproc__me.guard_ran && mproc__pal_env_is_set(MPROC__SPAWN_ENV))
    return mproc__fail(MPROC_ESTATE,
                       "process_start: this process was spawned by mproc but its main() did not call "
                       "mproc_main_guard(argc, argv) first; refusing to start '%s' (that would start children "
                       "without end)",
                       p->name);
  mproc_start_method m = mproc__method_of(p);
  rc = mproc__method_available(m);
  if (rc) return rc;
  for (size_t i = 0; i < p->nconns; ++i)
    if (mproc_connection_closed(p->conns[i]))
      return mproc__fail(MPROC_ECLOSED, "process_start: connection %zu handed to '%s' is closed", i, p->name);

  /* A fork child needs its boot link only to watch for its parent's death; its sentinel can be the
   * system's own where there is one (mproc__pal_fork_sentinel). */
  bool link = p->zygote || m != MPROC_START_FORK || p->kill_on_parent_death || !mproc__pal_fork_sentinel_supported();
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
  mproc__children_join_at_exit();
  mproc__children_add(p); /* listed before the child exists: see mproc__children_add */
  rc = p->zygote                     ? mproc__start_forkserver(p, child_end)
       : m == MPROC_START_FORK       ? mproc__start_fork(p, child_end)
       : m == MPROC_START_FORKSERVER ? mproc__start_forkserver(p, child_end)
                                     : mproc__start_spawn(p, child_end);
  if (rc) {
    mproc__children_remove(p);
    mproc_connection_destroy(p->boot);
    p->boot = NULL;
    mproc__pal_child_release(&p->child);
    memset(&p->child, 0, sizeof p->child);
    p->child.handle = MPROC_NO_HANDLE;
    p->via_server = false;
    return rc;
  }
  p->started = true;
  mproc__children_listed(p);
  return 0;
}

/* ---- join, terminate, close ------------------------------------------------------------------- */

int mproc_process_join(mproc_process *p, int64_t timeout_ms) {
  int rc = mproc__process_check(p, "process_join");
  if (rc) return rc;
  if (!p->started) return mproc__fail(MPROC_ESTATE, "process_join: '%s' has not been started", p->name);
  rc = mproc__child_reap(p, mproc__deadline_from_timeout(timeout_ms));
  if (rc == MPROC_ETIMEDOUT)
    return mproc__fail(rc, "process_join: '%s' (pid %lld) is still running after %lld ms", p->name,
                       (long long)p->child.pid, (long long)timeout_ms);
  return rc;
}

bool mproc_process_is_alive(mproc_process *p) {
  if (!p || !p->started || p->closed || p->child.reaped || p->creator != mproc__pal_getpid()) return false;
  return mproc__child_reap(p, 0) == MPROC_ETIMEDOUT;
}

static int send_sig(mproc_process *p, int sig, const char *call) {
  int rc = mproc__process_check(p, call);
  if (rc) return rc;
  if (!p->started) return mproc__fail(MPROC_ESTATE, "%s: '%s' has not been started", call, p->name);
  return mproc__child_signal(p, sig);
}

int mproc_process_terminate(mproc_process *p) { return send_sig(p, MPROC_SIGTERM, "process_terminate"); }
int mproc_process_kill(mproc_process *p) { return send_sig(p, MPROC_SIGKILL, "process_kill"); }

int mproc_process_close(mproc_process *p) {
  MPROC__CHECK_ARG(!p, "p is NULL");
  if (p->closed) return 0; /* closing twice is harmless, as Python's */
  int rc = mproc__process_check(p, "process_close");
  if (rc) return rc;
  if (p->started && !p->child.reaped && mproc__child_reap(p, 0) != 0)
    return mproc__fail(MPROC_ESTATE, "process_close: '%s' is still running", p->name);
  if (p->started && !p->closed) mproc__children_remove(p);
  mproc_connection_destroy(p->boot);
  p->boot = NULL;
  mproc__pal_child_release(&p->child);
  p->closed = true;
  return 0;
}

void mproc_process_destroy(mproc_process *p) {
  if (!p) return;
  if (p->creator != mproc__pal_getpid()) { /* a fork child's copy: the process is not ours to reap */
    mproc__process_free(p);
    return;
  }
  if (p->started && !p->closed && !p->child.reaped && mproc__child_reap(p, 0) != 0) {
    p->detached = true; /* still running: the list keeps it until it is reaped */
    return;
  }
  if (p->started && !p->closed) mproc__children_remove(p);
  mproc__process_free(p);
}

/* ---- mproc_wait's process kind (src/wait.c) ---------------------------------------------------------- */

int mproc__process_wait_prepare(void *obj, mproc__wait_item *item, bool *ready_now) {
  mproc_process *p = (mproc_process *)obj;
  int rc = mproc__process_check(p, "wait");
  if (rc) return rc;
  if (!p->started) return mproc__fail(MPROC_ESTATE, "wait: process '%s' is not started", p->name);
  *ready_now = p->child.reaped;
  item->h = mproc_process_sentinel(p);
  item->kind = MPROC__WAIT_SENTINEL;
  return 0;
}

void mproc__process_wait_ready(void *obj) {
  /* The sentinel closes as the child exits, a moment before the OS lets it be reaped: reap it now (a
   * short wait), so join(0), is_alive and active_children agree with what wait said. */
  mproc__child_reap((mproc_process *)obj, INT64_MAX);
}

int mproc__process_hand(mproc_process *p, const mproc__handable_type *t, void *obj) {
  MPROC__CHECK_ARG(!p || !t || !obj, "p, t and obj must be set");
  if (p->started) return mproc__fail(MPROC_ESTATE, "hand: '%s' has been started", p->name);
  if (p->nhanded == p->handed_cap) {
    size_t cap = p->handed_cap ? 2 * p->handed_cap : 4;
    mproc__handed *h = (mproc__handed *)realloc(p->handed, cap * sizeof *h);
    if (h) p->handed = h;
    void **o = h ? (void **)realloc(p->objs, cap * sizeof *o) : NULL;
    if (o) p->objs = o;
    if (!h || !o) return mproc__fail(MPROC_ENOMEM, "hand: out of memory");
    p->handed_cap = cap;
  }
  p->handed[p->nhanded].type = t;
  p->handed[p->nhanded].obj = obj;
  p->objs[p->nhanded++] = obj;
  return 0;
}

int mproc__process_set_zygote(mproc_process *p, mproc__zygote *z) {
  int rc = mproc__process_check(p, "process_start");
  if (rc) return rc;
  if (p->started) return mproc__fail(MPROC_ESTATE, "process_start: '%s' was started already", p->name);
  p->zygote = z;
  return 0;
}
