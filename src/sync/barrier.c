/* Barrier (mproc/sync.h). In shared memory: an internal lock word, the count of arrivals, the waiters'
 * process ids, and a generation word the waiters sleep on. Every end of a generation (passed, broken,
 * reset) moves the generation on, after writing how it ended in a ring of outcomes that the waiters of
 * that generation read when they wake, so a waiter needs nobody else to leave before the next generation
 * fills. A waiter checks the other waiters' processes while it waits (every 50 ms): one that died breaks
 * the barrier, so no one is left stuck; so does a waiter whose time is up. */
#include <stdlib.h>
#include <string.h>

#include "../shared/shared_internal.h"
#include "mproc/sync.h"

#define RING 256
#define CHECK_NS (50 * 1000 * 1000LL)
enum { OUT_PASSED = 1, OUT_BROKEN = 2 };

typedef struct barrier_shared {
  mproc__sobj_header head;
  mproc__lockword lock;
  uint32_t parties;
  volatile uint32_t count;      /* arrived in this generation */
  volatile uint32_t generation; /* the waiters' word */
  volatile uint32_t broken;
  int64_t timeout_ms;
  uint64_t ids[MPROC_BARRIER_MAX_PARTIES]; /* the processes waiting in this generation */
  volatile unsigned char outcome[RING];    /* how generation g ended: outcome[g % RING] */
} barrier_shared;

struct mproc_barrier {
  mproc__sobj o;
  mproc_barrier_action action; /* found again in this process */
};

static barrier_shared *bs(const mproc_barrier *b) { return (barrier_shared *)b->o.shm.base; }

int mproc_barrier_create(mproc_barrier **out, uint32_t parties, mproc_barrier_action action, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!out, "out is NULL");
  *out = NULL;
  MPROC__CHECK_ARG(parties == 0 || parties > MPROC_BARRIER_MAX_PARTIES, "parties %u is not 1..%d", (unsigned)parties,
                   MPROC_BARRIER_MAX_PARTIES);
  MPROC__CHECK_ARG(timeout_ms < 0 && timeout_ms != MPROC_INFINITE, "timeout %lld ms", (long long)timeout_ms);
  mproc_barrier *b = (mproc_barrier *)calloc(1, sizeof *b);
  if (!b) return mproc__fail(MPROC_ENOMEM, "barrier_create: out of memory");
  int rc = mproc__sobj_create(&b->o, MPROC_OBJECT_BARRIER, sizeof(barrier_shared));
  if (rc) {
    free(b);
    return rc;
  }
  bs(b)->parties = parties;
  bs(b)->timeout_ms = timeout_ms;
  b->action = action;
  *out = b;
  return 0;
}

/* Under the internal lock: end generation gen with this outcome and wake its waiters. */
static void end_generation(mproc_barrier *b, uint32_t gen, unsigned char outcome) {
  barrier_shared *sh = bs(b);
  sh->outcome[gen % RING] = outcome;
  mproc__atomic_store32(&sh->count, 0);
  mproc__atomic_store32(&sh->generation, gen + 1);
  mproc__sobj_wake(&b->o, &sh->generation, UINT32_MAX);
}

static int take_lock(mproc_barrier *b) {
  int rc = mproc__lw_acquire(&b->o, &bs(b)->lock, INT64_MAX);
  if (rc == MPROC_EOWNERDEAD) { /* a process died inside the barrier's bookkeeping: its state is suspect */
    barrier_shared *sh = bs(b);
    mproc__atomic_store32(&sh->broken, 1);
    end_generation(b, mproc__atomic_load32(&sh->generation), OUT_BROKEN);
    rc = 0;
  }
  return rc;
}

/* Break generation gen (a timeout, a dead waiter) unless it has ended already. */
static void break_generation(mproc_barrier *b, uint32_t gen) {
  if (take_lock(b)) return;
  barrier_shared *sh = bs(b);
  if (mproc__atomic_load32(&sh->generation) == gen) {
    mproc__atomic_store32(&sh->broken, 1);
    end_generation(b, gen, OUT_BROKEN);
  }
  mproc__lw_release(&b->o, &sh->lock);
}

/* Whether a waiter of generation gen has died. */
static bool a_waiter_died(mproc_barrier *b, uint32_t gen) {
  barrier_shared *sh = bs(b);
  if (take_lock(b)) return false;
  bool died = false;
  if (mproc__atomic_load32(&sh->generation) == gen)
    for (uint32_t i = 0; i < sh->count && !died; ++i) died = !mproc__pal_id_alive(sh->ids[i]);
  mproc__lw_release(&b->o, &sh->lock);
  return died;
}

static int broken_error(const char *why) { return mproc__fail(MPROC_EBROKEN, "barrier_wait: %s", why); }

int mproc_barrier_wait(mproc_barrier *b, int64_t timeout_ms, uint32_t *index) {
  MPROC__CHECK_ARG(!b, "barrier is NULL");
  barrier_shared *sh = bs(b);
  if (timeout_ms < 0 && timeout_ms != MPROC_INFINITE) timeout_ms = sh->timeout_ms;
  int rc = take_lock(b);
  if (rc) return rc;
  if (mproc__atomic_load32(&sh->broken)) {
    mproc__lw_release(&b->o, &sh->lock);
    return broken_error("the barrier is broken");
  }
  uint32_t gen = mproc__atomic_load32(&sh->generation), idx = mproc__atomic_load32(&sh->count);
  sh->ids[idx] = mproc__pal_self_id();
  mproc__atomic_store32(&sh->count, idx + 1);
  if (index) *index = idx;
  if (idx + 1 == sh->parties) { /* the last: run the action, then release everyone */
    bool ok = !b->action || b->action() == 0;
    if (!ok) mproc__atomic_store32(&sh->broken, 1);
    end_generation(b, gen, ok ? OUT_PASSED : OUT_BROKEN);
    mproc__lw_release(&b->o, &sh->lock);
    return ok ? 0 : broken_error("the barrier's action failed");
  }
  mproc__lw_release(&b->o, &sh->lock);
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  int64_t check = mproc__pal_monotonic_ns() + CHECK_NS; /* when to look at the other waiters next */
  for (;;) {
    if (mproc__atomic_load32(&sh->generation) != gen)
      return sh->outcome[gen % RING] == OUT_PASSED ? 0 : broken_error("the barrier was broken, aborted or reset");
    int w = mproc__sobj_wait(&b->o, &sh->generation, gen, 0, deadline < check ? deadline : check);
    if (w && w != MPROC_ETIMEDOUT) return w;
    if (mproc__atomic_load32(&sh->generation) != gen) continue;
    int64_t now = mproc__pal_monotonic_ns();
    if (deadline != INT64_MAX && now >= deadline) {
      break_generation(b, gen);
      continue; /* it ended: broken, or passed just before */
    }
    if (now >= check) { /* a wait may end early (a wake-up for another word): the checks keep their pace */
      check = now + CHECK_NS;
      if (a_waiter_died(b, gen)) break_generation(b, gen);
    }
  }
}

int mproc_barrier_abort(mproc_barrier *b) {
  MPROC__CHECK_ARG(!b, "barrier is NULL");
  int rc = take_lock(b);
  if (rc) return rc;
  barrier_shared *sh = bs(b);
  mproc__atomic_store32(&sh->broken, 1);
  end_generation(b, mproc__atomic_load32(&sh->generation), OUT_BROKEN);
  mproc__lw_release(&b->o, &sh->lock);
  return 0;
}

int mproc_barrier_reset(mproc_barrier *b) {
  MPROC__CHECK_ARG(!b, "barrier is NULL");
  int rc = take_lock(b);
  if (rc) return rc;
  barrier_shared *sh = bs(b);
  if (mproc__atomic_load32(&sh->count) > 0) end_generation(b, mproc__atomic_load32(&sh->generation), OUT_BROKEN);
  mproc__atomic_store32(&sh->broken, 0);
  mproc__lw_release(&b->o, &sh->lock);
  return 0;
}

uint32_t mproc_barrier_parties(const mproc_barrier *b) { return b ? bs(b)->parties : 0; }
uint32_t mproc_barrier_n_waiting(const mproc_barrier *b) {
  return b && !mproc__atomic_load32(&bs(b)->broken) ? mproc__atomic_load32(&bs(b)->count) : 0;
}
bool mproc_barrier_broken(const mproc_barrier *b) { return b && mproc__atomic_load32(&bs(b)->broken); }

void mproc_barrier_destroy(mproc_barrier *b) {
  if (!b) return;
  mproc__sobj_close(&b->o);
  free(b);
}

/* ---- handing it on: the block, and where the action is ----------------------------------------------- */

static int barrier_export(const void *obj, mproc_os_handle *hs, size_t *n, mproc__buf *bytes) {
  const mproc_barrier *b = (const mproc_barrier *)obj;
  *n = 0;
  int rc = mproc__sobj_export(&b->o, hs, n, bytes);
  if (rc || !b->action) return rc;
  rc = mproc__pal_fn_locate((void *)b->action, bytes);
  if (rc == MPROC_ENOENT)
    return mproc__fail(rc, "the barrier's action cannot be found again in another process: %s", mproc_last_error());
  return rc;
}

static int barrier_import(const void *bytes, size_t len, const mproc_os_handle *hs, size_t n, void **obj) {
  mproc_barrier *b = (mproc_barrier *)calloc(1, sizeof *b);
  if (!b) return mproc__fail(MPROC_ENOMEM, "out of memory");
  size_t used = 0, at = 0;
  const unsigned char *p = (const unsigned char *)bytes;
  int rc = mproc__sobj_import(&b->o, MPROC_OBJECT_BARRIER, sizeof(barrier_shared), hs, n, &used, p, len, &at);
  if (rc) {
    free(b);
    return rc;
  }
  if (used != n) rc = mproc__fail(MPROC_ESYS, "a handed barrier is malformed");
  void *fn = NULL;
  if (!rc && at < len) rc = mproc__pal_fn_resolve(p + at, len - at, &fn);
  if (rc) {
    mproc__sobj_unmap(&b->o);
    free(b);
    return rc;
  }
  *(void **)(void *)&b->action = fn;
  *obj = b;
  return 0;
}

const mproc__handable_type mproc__barrier_handable = {MPROC_OBJECT_BARRIER, "barrier", barrier_export, barrier_import};
