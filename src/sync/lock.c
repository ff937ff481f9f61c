/* Lock and RLock (mproc/sync.h), and the lock word they and the other shared objects use
 * (shared_internal.h).
 *
 * The word: low half = the holder's process number | WAITERS, high half = the holder's birth token,
 * changed together by one 64-bit compare-and-swap. Uncontended, acquire and release are one CAS each.
 * A waiter sets WAITERS and sleeps on the low half (a futex on Linux); the releaser that sees WAITERS
 * wakes one. While it waits, the PAL watches the holder (its process handle on Windows; a check every
 * 20 ms on Linux); when the holder has ended, the waiter takes the word over with one CAS from the
 * very value it saw, and returns MPROC_EOWNERDEAD. Recovery is automatic: the word is an ordinary held
 * lock again. */
#include <stdlib.h>
#include <string.h>

#include "../shared/shared_internal.h"
#include "mproc/sync.h"

/* ---- the word ---------------------------------------------------------------------------------- */

/* The low half's address (the futex word), whatever the byte order. */
static volatile uint32_t *low_half(mproc__lockword *w) {
  union {
    uint64_t v;
    uint32_t h[2];
  } probe = {1};
  return (volatile uint32_t *)(void *)&w->all + (probe.h[0] == 1 ? 0 : 1);
}

static uint64_t my_word(bool waiters) {
  uint64_t id = mproc__pal_self_id(); /* process number << 32 | token */
  return ((uint64_t)(uint32_t)id << 32) | (uint32_t)(id >> 32) | (waiters ? MPROC__LW_WAITERS : 0);
}

/* The holder of a word value as a PAL process id. */
static uint64_t holder_id(uint64_t v) { return ((uint64_t)((uint32_t)v & MPROC__LW_PROC) << 32) | (uint32_t)(v >> 32); }

int mproc__lw_try(mproc__lockword *w, bool check_holder) {
  uint64_t v = 0;
  if (mproc__atomic_cas64(&w->all, &v, my_word(false))) return 0;
  /* held: only when its holder has ended is it ours (a kernel call, on this failing path alone) */
  if (!check_holder || ((uint32_t)v & MPROC__LW_PROC) == 0 || mproc__pal_id_alive(holder_id(v))) return MPROC_ETIMEDOUT;
  return mproc__atomic_cas64(&w->all, &v, my_word(((uint32_t)v & MPROC__LW_WAITERS) != 0)) ? MPROC_EOWNERDEAD
                                                                                           : MPROC_ETIMEDOUT;
}

int mproc__lw_acquire(mproc__sobj *o, mproc__lockword *w, int64_t deadline) {
  uint64_t v = 0;
  if (mproc__atomic_cas64(&w->all, &v, my_word(false))) return 0;
  for (;;) {
    if (((uint32_t)v & MPROC__LW_PROC) == 0) { /* free: take it, WAITERS kept (others may sleep) */
      if (mproc__atomic_cas64(&w->all, &v, my_word(true))) return 0;
      continue;
    }
    if (!((uint32_t)v & MPROC__LW_WAITERS)) {
      uint64_t flagged = v | MPROC__LW_WAITERS;
      if (!mproc__atomic_cas64(&w->all, &v, flagged)) continue;
      v = flagged;
    }
    int rc = mproc__sobj_wait(o, low_half(w), (uint32_t)v, holder_id(v), deadline);
    if (rc == MPROC_EOWNERDEAD) { /* take it from the dead holder, if it is still the word it left */
      if (mproc__atomic_cas64(&w->all, &v, my_word(true))) return MPROC_EOWNERDEAD;
      continue;
    }
    if (rc == MPROC_ETIMEDOUT) return rc;
    if (rc) return rc;
    v = mproc__atomic_load64(&w->all);
  }
}

int mproc__lw_release(mproc__sobj *o, mproc__lockword *w) {
  uint64_t v = mproc__atomic_load64(&w->all);
  do {
    if (((uint32_t)v & MPROC__LW_PROC) == 0) return MPROC_ESTATE;
  } while (!mproc__atomic_cas64(&w->all, &v, 0));
  if ((uint32_t)v & MPROC__LW_WAITERS) mproc__sobj_wake(o, low_half(w), 1);
  return 0;
}

bool mproc__lw_mine(const mproc__lockword *w) {
  uint64_t v = mproc__atomic_load64(&w->all), me = my_word(false);
  return (v & ~(uint64_t)MPROC__LW_WAITERS) == me;
}

bool mproc__lw_locked(const mproc__lockword *w) { return (mproc__atomic_load64(&w->all) & MPROC__LW_PROC) != 0; }

/* ---- Lock and RLock ------------------------------------------------------------------------------ */

typedef struct lock_shared {
  mproc__sobj_header head;
  mproc__lockword word;
  uint32_t recursive;    /* an RLock */
  volatile uint32_t tid; /* RLock: the holding thread (0 while none: cleared before the word) */
  uint32_t count;        /* RLock: levels held, touched by the holder alone */
  uint32_t reserved;
} lock_shared;

static lock_shared *ls(const mproc_lock *l) { return (lock_shared *)l->o.shm.base; }

static int lock_new(mproc_lock **out, bool recursive) {
  MPROC__CHECK_ARG_AS(recursive ? "rlock_create" : "lock_create", !out, "out is NULL");
  *out = NULL;
  mproc_lock *l = (mproc_lock *)calloc(1, sizeof *l);
  if (!l) return mproc__fail(MPROC_ENOMEM, "lock_create: out of memory");
  int rc = mproc__sobj_create(&l->o, MPROC_OBJECT_LOCK, sizeof(lock_shared));
  if (rc) {
    free(l);
    return rc;
  }
  ls(l)->recursive = recursive;
  *out = l;
  return 0;
}

int mproc_lock_create(mproc_lock **out) { return lock_new(out, false); }
int mproc_rlock_create(mproc_lock **out) { return lock_new(out, true); }

/* The thread id first: only the holding thread ever finds its own id there (it is cleared before the
 * word is released), so the word is read only when it may be ours. */
static bool my_thread_holds(const lock_shared *s) {
  return mproc__atomic_load32(&s->tid) == mproc__pal_thread_id() && mproc__lw_mine(&s->word);
}

int mproc_lock_acquire(mproc_lock *l, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!l, "lock is NULL");
  lock_shared *s = ls(l);
  int rc = mproc__lw_try(&s->word, false); /* the common case first: a free lock */
  if (rc && s->recursive && my_thread_holds(s)) {
    if (s->count == UINT32_MAX) return mproc__fail(MPROC_ESTATE, "lock_acquire: an RLock held 2^32 - 1 times");
    ++s->count;
    return 0;
  }
  if (rc && timeout_ms == 0) rc = mproc__lw_try(&s->word, true);
  if (rc == MPROC_ETIMEDOUT && timeout_ms != 0)
    rc = mproc__lw_acquire(&l->o, &s->word, mproc__deadline_from_timeout(timeout_ms));
  if (rc == MPROC_ETIMEDOUT) return mproc__fail(rc, "lock_acquire: not acquired within %lld ms", (long long)timeout_ms);
  if (rc && rc != MPROC_EOWNERDEAD) return rc;
  if (s->recursive) {
    s->count = 1;
    mproc__atomic_store32_relaxed(&s->tid, mproc__pal_thread_id());
  }
  if (rc) mproc__fail(rc, "lock_acquire: acquired, but its holder died holding it: check the data it protects");
  return rc;
}

int mproc_lock_release(mproc_lock *l) {
  MPROC__CHECK_ARG(!l, "lock is NULL");
  lock_shared *s = ls(l);
  if (s->recursive) {
    if (!my_thread_holds(s)) return mproc__fail(MPROC_ENOTOWNER, "lock_release: this thread does not hold the RLock");
    if (--s->count > 0) return 0;
    /* before the word's release (which orders it): another thread never finds this id stale */
    mproc__atomic_store32_relaxed(&s->tid, 0);
  }
  int rc = mproc__lw_release(&l->o, &s->word);
  if (rc) return mproc__fail(rc, "lock_release: the lock is not locked");
  return 0;
}

bool mproc_lock_locked(const mproc_lock *l) { return l && mproc__lw_locked(&ls(l)->word); }
bool mproc_lock_is_recursive(const mproc_lock *l) { return l && ls(l)->recursive; }

void mproc_lock_destroy(mproc_lock *l) {
  if (!l) return;
  mproc__sobj_close(&l->o);
  free(l);
}

bool mproc__lock_held_by_caller(const mproc_lock *l) {
  const lock_shared *s = ls(l);
  return s->recursive ? my_thread_holds(s) : mproc__lw_mine(&s->word);
}

int mproc__lock_release_save(mproc_lock *l, uint32_t *saved) {
  lock_shared *s = ls(l);
  *saved = s->recursive ? s->count : 1;
  if (s->recursive) mproc__atomic_store32(&s->tid, 0);
  return mproc__lw_release(&l->o, &s->word);
}

int mproc__lock_acquire_restore(mproc_lock *l, uint32_t saved) {
  lock_shared *s = ls(l);
  int rc = mproc__lw_acquire(&l->o, &s->word, INT64_MAX);
  if (rc && rc != MPROC_EOWNERDEAD) return rc;
  if (s->recursive) {
    s->count = saved;
    mproc__atomic_store32(&s->tid, mproc__pal_thread_id());
  }
  return rc;
}

/* ---- handing it on --------------------------------------------------------------------------------- */

static int lock_import(const void *bytes, size_t len, const mproc_os_handle *hs, size_t n, void **obj) {
  return mproc__sobj_import_view(MPROC_OBJECT_LOCK, sizeof(mproc_lock), sizeof(lock_shared), bytes, len, hs, n, obj);
}

const mproc__handable_type mproc__lock_handable = {MPROC_OBJECT_LOCK, "lock", mproc__sobj_export_view, lock_import};
