/* Condition (mproc/sync.h): a table of waiter slots in shared memory beside the user's lock. A waiter
 * takes a free slot under the lock (with a ticket: the order of arrival and its process id), releases
 * the lock and sleeps on its slot's word; notify, under the lock, moves the oldest waiting slots to
 * NOTIFIED one compare-and-swap each, while a waiter whose time is up moves its own slot to LEFT: the
 * two never both win, so at most n waiters report "notified". A slot whose process died is found by
 * notify (it checks the process before spending a notification on it) and freed. */
#include <stdlib.h>

#include "../shared/shared_internal.h"
#include "mproc/sync.h"

enum { SLOT_FREE = 0, SLOT_WAITING = 1, SLOT_NOTIFIED = 2, SLOT_LEFT = 3 };

typedef struct cond_slot {
  volatile uint32_t state;
  uint32_t ticket;
  uint64_t waiter; /* its process id (mproc__pal_self_id) */
} cond_slot;

typedef struct cond_shared {
  mproc__sobj_header head;
  uint32_t next_ticket;
  uint32_t reserved;
  cond_slot slots[MPROC_CONDITION_MAX_WAITERS];
} cond_shared;

struct mproc_condition {
  mproc__sobj o;
  mproc_lock *lock;
  bool own_lock; /* destroyed with the condition */
};

static cond_shared *cs(const mproc_condition *c) { return (cond_shared *)c->o.shm.base; }

int mproc_condition_create(mproc_condition **out, mproc_lock *lock) {
  MPROC__CHECK_ARG(!out, "out is NULL");
  *out = NULL;
  mproc_condition *c = (mproc_condition *)calloc(1, sizeof *c);
  if (!c) return mproc__fail(MPROC_ENOMEM, "condition_create: out of memory");
  int rc = mproc__sobj_create(&c->o, MPROC_OBJECT_CONDITION, sizeof(cond_shared));
  if (!rc && !lock) {
    rc = mproc_rlock_create(&c->lock);
    c->own_lock = true;
  } else {
    c->lock = lock;
  }
  if (rc) {
    mproc__sobj_close(&c->o);
    free(c);
    return rc;
  }
  *out = c;
  return 0;
}

mproc_lock *mproc_condition_lock(mproc_condition *c) { return c ? c->lock : NULL; }

int mproc_condition_wait(mproc_condition *c, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!c, "condition is NULL");
  if (!mproc__lock_held_by_caller(c->lock))
    return mproc__fail(MPROC_ENOTOWNER, "condition_wait: the caller does not hold the condition's lock");
  cond_shared *sh = cs(c);
  cond_slot *slot = NULL;
  for (size_t i = 0; i < MPROC_CONDITION_MAX_WAITERS && !slot; ++i)
    if (mproc__atomic_load32(&sh->slots[i].state) == SLOT_FREE) slot = &sh->slots[i];
  if (!slot) return mproc__fail(MPROC_EFULL, "condition_wait: %d threads wait already", MPROC_CONDITION_MAX_WAITERS);
  slot->waiter = mproc__pal_self_id();
  slot->ticket = sh->next_ticket++;
  mproc__atomic_store32(&slot->state, SLOT_WAITING);
  uint32_t saved = 0;
  int rc = mproc__lock_release_save(c->lock, &saved);
  if (rc) {
    mproc__atomic_store32(&slot->state, SLOT_FREE);
    return rc;
  }
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  bool notified = true;
  while (mproc__atomic_load32(&slot->state) == SLOT_WAITING) {
    int w = timeout_ms == 0 ? MPROC_ETIMEDOUT : mproc__sobj_wait(&c->o, &slot->state, SLOT_WAITING, 0, deadline);
    if (w == MPROC_ETIMEDOUT) {
      uint32_t st = SLOT_WAITING;
      notified = !mproc__atomic_cas32(&slot->state, &st, SLOT_LEFT); /* lost to a notify: notified */
      break;
    }
    if (w) { /* cannot wait any more: leave as if timed out, unless a notify came first */
      uint32_t st = SLOT_WAITING;
      notified = !mproc__atomic_cas32(&slot->state, &st, SLOT_LEFT);
      rc = w;
      break;
    }
  }
  int back = mproc__lock_acquire_restore(c->lock, saved);
  mproc__atomic_store32(&slot->state, SLOT_FREE); /* under the lock (or the lock is lost anyway) */
  if (back && back != MPROC_EOWNERDEAD) return back;
  if (rc) return rc;
  if (back) return mproc__fail(back, "condition_wait: the lock was taken back from a holder that died");
  if (!notified)
    return mproc__fail(MPROC_ETIMEDOUT, "condition_wait: not notified within %lld ms", (long long)timeout_ms);
  return 0;
}

int mproc_condition_wait_for(mproc_condition *c, bool (*pred)(void *ctx), void *ctx, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!c || !pred, "condition and pred must be set");
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  int dead = 0;
  while (!pred(ctx)) {
    int64_t left = mproc__ms_until(deadline);
    if (timeout_ms != MPROC_INFINITE && left == 0)
      return mproc__fail(MPROC_ETIMEDOUT, "condition_wait_for: the predicate is still false after %lld ms",
                         (long long)timeout_ms);
    int rc = mproc_condition_wait(c, timeout_ms == MPROC_INFINITE ? MPROC_INFINITE : left);
    if (rc == MPROC_EOWNERDEAD)
      dead = rc;
    else if (rc && rc != MPROC_ETIMEDOUT)
      return rc;
  }
  return dead;
}

/* Wake at most n of the waiting, oldest first; a dead waiter is freed and not counted; a notification
 * a dead waiter took (NOTIFIED, its process gone before it left) is given again. */
static int notify(mproc_condition *c, uint32_t n, const char *call) {
  MPROC__CHECK_ARG_AS(call, !c, "condition is NULL");
  if (!mproc__lock_held_by_caller(c->lock))
    return mproc__fail(MPROC_ENOTOWNER, "%s: the caller does not hold the condition's lock", call);
  cond_shared *sh = cs(c);
  for (size_t i = 0; i < MPROC_CONDITION_MAX_WAITERS && n != UINT32_MAX; ++i) {
    cond_slot *s = &sh->slots[i];
    uint32_t st = SLOT_NOTIFIED;
    if (mproc__atomic_load32(&s->state) == SLOT_NOTIFIED && !mproc__pal_id_alive(s->waiter) &&
        mproc__atomic_cas32(&s->state, &st, SLOT_FREE))
      ++n;
  }
  for (uint32_t given = 0; given < n;) {
    cond_slot *best = NULL;
    for (size_t i = 0; i < MPROC_CONDITION_MAX_WAITERS; ++i) {
      cond_slot *s = &sh->slots[i];
      if (mproc__atomic_load32(&s->state) == SLOT_WAITING && (!best || (int32_t)(s->ticket - best->ticket) < 0))
        best = s;
    }
    if (!best) break;
    uint32_t st = SLOT_WAITING;
    if (!mproc__pal_id_alive(best->waiter)) {
      (void)mproc__atomic_cas32(&best->state, &st, SLOT_FREE);
      continue;
    }
    if (mproc__atomic_cas32(&best->state, &st, SLOT_NOTIFIED)) {
      mproc__sobj_wake(&c->o, &best->state, 1);
      ++given;
    }
  }
  return 0;
}

int mproc_condition_notify(mproc_condition *c, uint32_t n) { return notify(c, n, "condition_notify"); }
int mproc_condition_notify_all(mproc_condition *c) { return notify(c, UINT32_MAX - 1, "condition_notify_all"); }

void mproc_condition_destroy(mproc_condition *c) {
  if (!c) return;
  if (c->own_lock) mproc_lock_destroy(c->lock);
  mproc__sobj_close(&c->o);
  free(c);
}

/* ---- handing it on: its slots and its lock ---------------------------------------------------------- */

static int cond_export(const void *obj, mproc_os_handle *hs, size_t *n, mproc__buf *bytes) {
  const mproc_condition *c = (const mproc_condition *)obj;
  *n = 0;
  int rc = mproc__sobj_export(&c->o, hs, n, bytes);
  return rc ? rc : mproc__sobj_export(&c->lock->o, hs, n, bytes);
}

static int cond_import(const void *bytes, size_t len, const mproc_os_handle *hs, size_t n, void **obj) {
  mproc_condition *c = (mproc_condition *)calloc(1, sizeof *c);
  mproc_lock *l = (mproc_lock *)calloc(1, sizeof *l);
  size_t used = 0, at = 0;
  const unsigned char *b = (const unsigned char *)bytes;
  int rc = c && l ? 0 : mproc__fail(MPROC_ENOMEM, "out of memory");
  bool have_c = false;
  if (!rc) rc = mproc__sobj_import(&c->o, MPROC_OBJECT_CONDITION, sizeof(cond_shared), hs, n, &used, b, len, &at);
  have_c = !rc;
  if (!rc) rc = mproc__sobj_import(&l->o, MPROC_OBJECT_LOCK, sizeof(mproc__sobj_header), hs, n, &used, b, len, &at);
  if (!rc && (used != n || at != len)) {
    rc = mproc__fail(MPROC_ESYS, "a handed condition is malformed");
    mproc__sobj_unmap(&l->o);
  }
  if (rc) {
    if (have_c) {
      mproc__sobj_unmap(&c->o);
    }
    free(c);
    free(l);
    return rc;
  }
  c->lock = l;
  c->own_lock = true;
  *obj = c;
  return 0;
}

const mproc__handable_type mproc__condition_handable = {MPROC_OBJECT_CONDITION, "condition", cond_export, cond_import};
