/* Semaphore, BoundedSemaphore and Event (mproc/sync.h): a count or a flag word in shared memory,
 * changed by compare-and-swap; waiters sleep on the word through the PAL, and the changer wakes them
 * only when the queue has any (no system call otherwise). */
#include <stdlib.h>

#include "../shared/shared_internal.h"
#include "mproc/sync.h"

/* ---- Semaphore ------------------------------------------------------------------------------- */

typedef struct sem_shared {
  mproc__sobj_header head;
  volatile uint32_t value;
  uint32_t bound; /* BoundedSemaphore: its initial value; else MPROC_SEM_VALUE_MAX */
} sem_shared;

struct mproc_semaphore {
  mproc__sobj o;
};

static sem_shared *ss(const mproc_semaphore *s) { return (sem_shared *)s->o.shm.base; }

static int sem_new(mproc_semaphore **out, uint32_t value, bool bounded, const char *call) {
  MPROC__CHECK_ARG_AS(call, !out, "out is NULL");
  *out = NULL;
  MPROC__CHECK_ARG_AS(call, value > MPROC_SEM_VALUE_MAX, "value %u is above MPROC_SEM_VALUE_MAX", (unsigned)value);
  mproc_semaphore *s = (mproc_semaphore *)calloc(1, sizeof *s);
  if (!s) return mproc__fail(MPROC_ENOMEM, "%s: out of memory", call);
  int rc = mproc__sobj_create(&s->o, MPROC_OBJECT_SEMAPHORE, sizeof(sem_shared));
  if (rc) {
    free(s);
    return rc;
  }
  ss(s)->value = value;
  ss(s)->bound = bounded ? value : MPROC_SEM_VALUE_MAX;
  *out = s;
  return 0;
}

int mproc_semaphore_create(mproc_semaphore **out, uint32_t value) {
  return sem_new(out, value, false, "semaphore_create");
}
int mproc_bounded_semaphore_create(mproc_semaphore **out, uint32_t value) {
  return sem_new(out, value, true, "bounded_semaphore_create");
}

int mproc_semaphore_acquire(mproc_semaphore *s, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!s, "semaphore is NULL");
  sem_shared *sh = ss(s);
  int64_t deadline = 0; /* made on the first wait */
  uint32_t v = mproc__atomic_load32(&sh->value);
  for (;;) {
    if (v > 0) {
      if (mproc__atomic_cas32(&sh->value, &v, v - 1)) return 0;
      continue;
    }
    if (timeout_ms == 0) break;
    if (!deadline) deadline = mproc__deadline_from_timeout(timeout_ms);
    int rc = mproc__sobj_wait(&s->o, &sh->value, 0, 0, deadline);
    if (rc == MPROC_ETIMEDOUT) break;
    if (rc) return rc;
    v = mproc__atomic_load32(&sh->value);
  }
  return mproc__fail(MPROC_ETIMEDOUT, "semaphore_acquire: not acquired within %lld ms", (long long)timeout_ms);
}

int mproc_semaphore_release(mproc_semaphore *s) {
  MPROC__CHECK_ARG(!s, "semaphore is NULL");
  sem_shared *sh = ss(s);
  uint32_t v = mproc__atomic_load32(&sh->value);
  do {
    if (v >= sh->bound)
      return mproc__fail(MPROC_ESTATE, "semaphore_release: released too many times (the value would pass %u)",
                         (unsigned)sh->bound);
  } while (!mproc__atomic_cas32(&sh->value, &v, v + 1));
  mproc__sobj_wake(&s->o, &sh->value, 1);
  return 0;
}

uint32_t mproc_semaphore_value(const mproc_semaphore *s) { return s ? mproc__atomic_load32(&ss(s)->value) : 0; }

void mproc_semaphore_destroy(mproc_semaphore *s) {
  if (!s) return;
  mproc__sobj_close(&s->o);
  free(s);
}

/* ---- Event ------------------------------------------------------------------------------------- */

typedef struct event_shared {
  mproc__sobj_header head;
  volatile uint32_t flag;
  uint32_t reserved;
} event_shared;

struct mproc_event {
  mproc__sobj o;
};

static event_shared *es(const mproc_event *e) { return (event_shared *)e->o.shm.base; }

int mproc_event_create(mproc_event **out) {
  MPROC__CHECK_ARG(!out, "out is NULL");
  *out = NULL;
  mproc_event *e = (mproc_event *)calloc(1, sizeof *e);
  if (!e) return mproc__fail(MPROC_ENOMEM, "event_create: out of memory");
  int rc = mproc__sobj_create(&e->o, MPROC_OBJECT_EVENT, sizeof(event_shared));
  if (rc) {
    free(e);
    return rc;
  }
  *out = e;
  return 0;
}

int mproc_event_set(mproc_event *e) {
  MPROC__CHECK_ARG(!e, "event is NULL");
  if (mproc__atomic_xchg32(&es(e)->flag, 1) == 0) mproc__sobj_wake(&e->o, &es(e)->flag, UINT32_MAX);
  return 0;
}

int mproc_event_clear(mproc_event *e) {
  MPROC__CHECK_ARG(!e, "event is NULL");
  mproc__atomic_store32(&es(e)->flag, 0);
  return 0;
}

bool mproc_event_is_set(const mproc_event *e) { return e && mproc__atomic_load32(&es(e)->flag) != 0; }

int mproc_event_wait(mproc_event *e, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!e, "event is NULL");
  int64_t deadline = 0;
  while (!mproc__atomic_load32(&es(e)->flag)) {
    if (timeout_ms == 0) return mproc__fail(MPROC_ETIMEDOUT, "event_wait: not set");
    if (!deadline) deadline = mproc__deadline_from_timeout(timeout_ms);
    int rc = mproc__sobj_wait(&e->o, &es(e)->flag, 0, 0, deadline);
    if (rc == MPROC_ETIMEDOUT) return mproc__fail(rc, "event_wait: not set within %lld ms", (long long)timeout_ms);
    if (rc) return rc;
  }
  return 0;
}

void mproc_event_destroy(mproc_event *e) {
  if (!e) return;
  mproc__sobj_close(&e->o);
  free(e);
}

/* ---- handing them on ------------------------------------------------------------------------------- */

static int sem_import(const void *bytes, size_t len, const mproc_os_handle *hs, size_t n, void **obj) {
  return mproc__sobj_import_view(MPROC_OBJECT_SEMAPHORE, sizeof(mproc_semaphore), sizeof(sem_shared), bytes, len, hs, n,
                                 obj);
}
static int event_import(const void *bytes, size_t len, const mproc_os_handle *hs, size_t n, void **obj) {
  return mproc__sobj_import_view(MPROC_OBJECT_EVENT, sizeof(mproc_event), sizeof(event_shared), bytes, len, hs, n, obj);
}

const mproc__handable_type mproc__semaphore_handable = {MPROC_OBJECT_SEMAPHORE, "semaphore", mproc__sobj_export_view,
                                                        sem_import};
const mproc__handable_type mproc__event_handable = {MPROC_OBJECT_EVENT, "event", mproc__sobj_export_view, event_import};
