/* This process and the children it started: who we are (current_process, parent_process), the list of
 * children (active_children), how we learn that one ended (reap), what happens to them at exit, and
 * the after-fork hooks that make a fork child drop its parent's state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process_internal.h"

mproc__self mproc__me = {"MainProcess", "", NULL, 0, false, 0, false, MPROC_NO_HANDLE, NULL};

static bool g_atexit_registered;

MPROC__CHILD_PATH void mproc__self_become(const char *name, const char *ident, const char *parent_name,
                                          int64_t parent_pid, bool daemon) {
  mproc__me.name = name;
  mproc__me.ident = ident;
  mproc__me.parent_name = parent_name;
  mproc__me.parent_pid = parent_pid;
  mproc__me.daemon = daemon;
  mproc__me.counter = 0;
}

const char *mproc_current_process_name(void) { return mproc__me.name; }
bool mproc_current_process_daemon(void) { return mproc__me.daemon; }
int64_t mproc_parent_process_pid(void) { return mproc__me.parent_pid; }
const char *mproc_parent_process_name(void) { return mproc__me.parent_name; }

/* ---- the authkey ---------------------------------------------------------------------------------- */

/* current_process().authkey, under the global lock. The main process draws it on first use; a child
 * has it set before its target runs (its Process object's: the bootstrap, or the fork's copy). */
static unsigned char g_key[MPROC_AUTHKEY_MAX];
static size_t g_key_len;
static bool g_key_ready;

#define AUTHKEY_DRAWN 32 /* os.urandom(32), as CPython's main process */

/* Draw the main process's key if it was not yet; with the global lock held. 0 or MPROC_ESYS. */
static int key_ready_locked(void) {
  if (g_key_ready) return 0;
  int rc = mproc__pal_random(g_key, AUTHKEY_DRAWN);
  if (rc) return rc;
  g_key_len = AUTHKEY_DRAWN;
  g_key_ready = true;
  return 0;
}

int mproc__authkey_copy(unsigned char *buf, size_t *len) {
  mproc__pal_global_lock();
  int rc = key_ready_locked();
  if (!rc) {
    memcpy(buf, g_key, g_key_len);
    *len = g_key_len;
  }
  mproc__pal_global_unlock();
  return rc;
}

int mproc__authkey_dup(unsigned char **out, size_t *len) {
  unsigned char *key = NULL;
  int rc = 0;
  mproc__pal_global_lock();
  if ((rc = key_ready_locked()) == 0 && (key = (unsigned char *)malloc(g_key_len ? g_key_len : 1)) != NULL) {
    if (g_key_len) memcpy(key, g_key, g_key_len);
    *len = g_key_len;
  }
  mproc__pal_global_unlock();
  if (rc) return rc;
  if (!key) return mproc__fail(MPROC_ENOMEM, "out of memory");
  *out = key;
  return 0;
}

/* Set the key unless it is `key` already (a fork child with its parent's key writes nothing: each page
 * it writes is a copy-on-write fault). Compared byte by byte: memcmp would be one more library function
 * a fork child may be the first to call, bound lazily in every child (a third of its page faults). */
MPROC__CHILD_PATH static void key_set(const unsigned char *key, size_t len) {
  bool same = g_key_ready && g_key_len == len;
  for (size_t i = 0; same && i < len; ++i) same = g_key[i] == key[i];
  if (same) return;
  if (len) memcpy(g_key, key, len);
  g_key_len = len;
  g_key_ready = true;
}

void mproc__authkey_become(const void *key, size_t len) {
  mproc__pal_global_lock();
  key_set((const unsigned char *)key, len);
  mproc__pal_global_unlock();
}

MPROC__CHILD_PATH void mproc__authkey_become_forked(const void *key, size_t len) {
  key_set((const unsigned char *)key, len);
}

int mproc_current_process_authkey(void *buf, size_t cap, size_t *len) {
  MPROC__CHECK_ARG(!len, "len is NULL");
  MPROC__CHECK_ARG(!buf && cap, "buf is NULL but cap is %zu", cap);
  unsigned char key[MPROC_AUTHKEY_MAX];
  size_t n = 0;
  int rc = mproc__authkey_copy(key, &n);
  *len = n;
  if (rc) return rc;
  if (n > cap)
    return mproc__fail(MPROC_EMSGSIZE, "current_process_authkey: the key has %zu bytes, the buffer %zu", n, cap);
  if (n) memcpy(buf, key, n);
  return 0;
}

int mproc_current_process_set_authkey(const void *key, size_t len) {
  MPROC__CHECK_ARG(!key && len, "key is NULL but len is %zu", len);
  MPROC__CHECK_ARG(len > MPROC_AUTHKEY_MAX, "a key of %zu bytes (at most MPROC_AUTHKEY_MAX, %d)", len,
                   MPROC_AUTHKEY_MAX);
  mproc__authkey_become(key, len);
  return 0;
}

/* ---- the list of children ----------------------------------------------------------------------- */

/* In a fork child: the parent's children are not ours. Close their links (and pidfds), and forget them;
 * the numbers go too, so that no later close can hit a descriptor reused since. And our parent's link to
 * its own parent is not ours either. */
MPROC__CHILD_PATH static void forget_parents_children(void) {
  for (mproc_process *q = mproc__me.children; q; q = q->next) {
    if (q->boot) mproc__conn_end_close(&q->boot->e);
    /* only where there is something to release: the one being started has nothing yet, and a write
     * to its page would be a copy-on-write fault in every fork child */
    if (q->child.handle != MPROC_NO_HANDLE || q->child.os) mproc__pal_child_release(&q->child);
  }
  mproc__me.children = NULL;
  mproc__pal_close(mproc__me.parent_link);
  mproc__me.parent_link = MPROC_NO_HANDLE;
}

void mproc__children_add(mproc_process *p) {
  mproc__pal_global_lock();
  p->next = mproc__me.children;
  mproc__me.children = p;
  mproc__pal_global_unlock();
}

void mproc__children_listed(mproc_process *p) { mproc__atomic_store32(&p->listed, 1); }

/* Whether p is one of our children to the list's readers: started, not a start under way. */
static bool started(mproc_process *p) { return mproc__atomic_load32(&p->listed) != 0; }

void mproc__children_remove(mproc_process *p) {
  mproc__pal_global_lock();
  for (mproc_process **pp = &mproc__me.children; *pp; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  mproc__pal_global_unlock();
}

/* A forkserver child's end. With a pidfd of it (Linux): once that says the child has gone, its link holds
 * its "ok" (which start did not wait for) and, when it ended by returning from its target, "x<status>",
 * its last word before it ended; otherwise (a signal, an exit of its own) the server writes "X<status>"
 * once it has reaped it, which a busy server does lazily: if the link holds no status, we ask for it
 * (forkserver.c, head comment). Without a pidfd only the server's "X" tells: "x" comes a moment before the
 * end. End of file first means the server died before it could tell: the status is unknown, 255 (as
 * CPython). */
static int server_child_status(mproc_process *p, int64_t deadline) {
  bool pidfd = p->child.handle != MPROC_NO_HANDLE, asked = !pidfd;
  if (pidfd) {
    mproc__wait_item gone = {p->child.handle, MPROC__WAIT_SENTINEL};
    bool ready = false;
    int rc = mproc__pal_wait_ready(&gone, 1, deadline, &ready);
    if (rc) return rc;
  }
  for (;;) {
    char *msg = NULL;
    size_t len = 0;
    int64_t until = asked ? deadline : 0; /* the child has gone: what it said is on the link already */
    int rc = mproc__connection_recv_until(p->boot, 2048, until, mproc__ms_until(until), &msg, &len);
    if (rc == MPROC_ETIMEDOUT && !asked) {
      mproc_clear_error();
      mproc__forkserver_ask_status(p);
      asked = true;
      continue;
    }
    if (rc == MPROC_ETIMEDOUT) return rc;
    char kind = rc == 0 && len > 1 ? msg[0] : '\0';
    if (kind == 'o' || kind == 'E' || (kind == 'x' && !pidfd)) { /* the start's answer, or not the last word */
      mproc_free(msg);
      continue;
    }
    p->child.returncode = kind == 'x' || kind == 'X' ? atoi(msg + 1) : 255;
    p->child.reaped = true;
    mproc_free(msg);
    return 0;
  }
}

int mproc__child_reap(mproc_process *p, int64_t deadline) {
  if (p->child.reaped) return 0;
  if (p->via_server) return server_child_status(p, deadline);
  return mproc__pal_wait(&p->child, deadline);
}

int mproc__child_signal(mproc_process *p, int sig) {
  /* a forkserver child: its status first, since the server may have reaped it already (the pidfd still
   * names it, but where there is none the pid alone may have been reused) */
  if (p->via_server) mproc__child_reap(p, 0);
  return mproc__pal_signal(&p->child, sig);
}

/* At normal exit: terminate daemon children, then join every child (Python's _exit_function). */
MPROC__CHILD_PATH static void at_exit(void) {
  if (!mproc__me.children) return; /* nothing started: not even the lock (a fork child's usual case) */
  mproc__pal_global_lock();
  mproc_process *list = mproc__me.children;
  mproc__pal_global_unlock();
  for (mproc_process *p = list; p; p = p->next)
    if (started(p) && !p->child.reaped && p->daemon) mproc__child_signal(p, MPROC_SIGTERM);
  for (mproc_process *p = list; p; p = p->next)
    if (started(p)) mproc__child_reap(p, INT64_MAX);
}

void mproc__children_join_at_exit(void) {
  if (g_atexit_registered) return;
  g_atexit_registered = true;
  atexit(at_exit);
}

MPROC__CHILD_PATH void mproc__child_before_exit(void) {
  at_exit();
  fflush(NULL);
}

MPROC__CHILD_PATH void mproc__child_finish_fork(int code) {
  mproc__child_before_exit();
  mproc__pal_exit_now(code);
}

int mproc_active_children(mproc_process ***list, size_t *count) {
  MPROC__CHECK_ARG(!list || !count, "list and count must be set");
  *list = NULL;
  *count = 0;
  mproc__pal_global_lock();
  size_t n = 0;
  for (mproc_process *p = mproc__me.children; p; p = p->next) n += started(p);
  mproc_process **all = (mproc_process **)malloc((n ? n : 1) * sizeof *all);
  n = 0;
  if (all)
    for (mproc_process *p = mproc__me.children; p; p = p->next)
      if (started(p)) all[n++] = p;
  mproc__pal_global_unlock();
  if (!all) return mproc__fail(MPROC_ENOMEM, "active_children: out of memory");
  size_t live = 0;
  for (size_t i = 0; i < n; ++i) {
    mproc_process *p = all[i];
    if (mproc__child_reap(p, 0) == MPROC_ETIMEDOUT) {
      all[live++] = p;
    } else if (p->detached) { /* destroyed while running, now finished: release it */
      mproc__children_remove(p);
      mproc__process_free(p);
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

/* ---- after-fork hooks ------------------------------------------------------------------------------- */

/* A fixed array: the fork child runs them without allocating, and registration never fails. */
static void (*g_after_fork[MPROC__AFTER_FORK_MAX])(void);
static size_t g_after_fork_n;

void mproc__after_fork_register(void (*fn)(void)) {
  mproc__pal_global_lock();
  bool known = false;
  for (size_t i = 0; i < g_after_fork_n && !known; ++i) known = g_after_fork[i] == fn;
  if (!known && g_after_fork_n < MPROC__AFTER_FORK_MAX) g_after_fork[g_after_fork_n++] = fn;
  mproc__pal_global_unlock();
}

MPROC__CHILD_PATH void mproc__after_fork_run(void) {
  forget_parents_children(); /* this file's own, always first */
  for (size_t i = 0; i < g_after_fork_n; ++i) g_after_fork[i]();
}
