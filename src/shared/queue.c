/* Queue, SimpleQueue and JoinableQueue (mproc/queue.h).
 *
 * A queue is one shared object (shared_internal.h): a header, the consumer slots of a joinable queue,
 * and a ring of records, all in one block of shared memory. Everything in the header changes under
 * the queue's lock word (a robust lock: a holder that dies leaves it to the next process, which then
 * repairs the counters: see repair()).
 *
 * The ring (ring.h) holds the items. A record is WRITING while a big item is put outside the lock,
 * READY in the queue, TAKING while a big item is got outside the lock, FREE once got. What a dead
 * process leaves in flight is put right by whoever notices the death: a WRITING record is dropped, a
 * TAKING one is READY again at its old place, so it is the oldest item.
 *
 * Waiting. Consumers sleep on cons.seq, producers on prod.seq, join on join.seq (futex words; beside
 * each, the count of its sleepers and how many of them were sent a wake and have not run yet, so that a
 * put or get makes no system call when no one sleeps, nor while the sleeper it woke has not run: on one
 * CPU a woken consumer runs only once the producer yields, and a wake call per put until then would
 * cost more than the put). A sleeper watches the owner of the oldest record in flight, so that its death ends the
 * sleep (the PAL's owner wait). The flag for mproc_wait is set by a put only while someone waits on it
 * (poll_waiters), and cleared when the last READY item is taken. */
#include <stdlib.h>
#include <string.h>

#include "mproc/queue.h"
#include "ring.h"
#include "shared_internal.h"

enum { FLAVOR_QUEUE = 1, FLAVOR_SIMPLE = 2, FLAVOR_JOINABLE = 3 };

#define SLOTS 256u
#define MIN_BYTES 4096u

typedef struct slot { /* a joinable queue's consumer: the tasks it got and has not said done */
  volatile uint64_t owner;
  volatile uint64_t outstanding;
} slot;

typedef struct sleepers { /* processes sleeping on seq (a futex word); all three change under the lock */
  volatile uint32_t seq;
  volatile uint32_t waiting; /* from before their last look until they have the lock again */
  volatile uint32_t woken;   /* of them, those sent a wake (a count: it need not be they who took it) */
} sleepers;

typedef struct queue_shared {
  mproc__sobj_header head;
  uint32_t flavor;
  volatile uint32_t shut;
  uint64_t maxsize; /* 0: none */
  uint64_t cap;     /* the ring's bytes */
  uint64_t data_off;
  mproc__lockword lock;
  mproc__ring_pos pos;
  volatile uint64_t count;        /* records not FREE: items put and not yet got whole */
  volatile uint64_t ready;        /* READY records */
  volatile uint64_t outstanding;  /* joinable: the sum of the slots' */
  sleepers cons, prod, join;      /* gets waiting for an item, puts waiting for room, joins */
  volatile uint32_t poll_waiters; /* in mproc_wait on the flag */
  volatile uint32_t flag_set;     /* the flag's state (changed under the lock) */
  uint32_t reserved;
  slot slots[SLOTS];
} queue_shared;

struct mproc_queue {
  mproc__sobj o;
  mproc_os_handle flag; /* MPROC_NO_HANDLE where the OS has none */
  mproc__ring ring;
  uint32_t slot; /* this process's slot, a hint (read and written under the lock) */
  volatile uint32_t closed;
};

/* Counters change under the lock; readers outside it (qsize, empty, mproc_wait) load them atomically.
 * `ready` is stored with a full barrier: a put then reads poll_waiters (see flag_update). */
static void set64(volatile uint64_t *p, uint64_t v) { mproc__atomic_store64_relaxed(p, v); }

static queue_shared *qs(const mproc_queue *q) { return (queue_shared *)q->o.shm.base; }
static mproc__rec *rec_at(const mproc_queue *q, uint64_t pos) { return mproc__ring_at(&q->ring, pos); }

/* The view's ring over the block's. */
static void ring_view(mproc_queue *q) {
  queue_shared *s = qs(q);
  q->ring.pos = &s->pos;
  q->ring.data = (unsigned char *)q->o.shm.base + s->data_off;
  q->ring.cap = s->cap;
}

/* ---- creating ------------------------------------------------------------------------------------ */

static int queue_new(mproc_queue **out, const mproc_queue_opts *opts, uint32_t flavor, const char *call) {
  MPROC__CHECK_ARG_AS(call, !out, "out is NULL");
  *out = NULL;
  size_t max_bytes = opts && opts->max_bytes ? opts->max_bytes : MPROC_QUEUE_DEFAULT_MAX_BYTES;
  MPROC__CHECK_ARG_AS(call, max_bytes < MIN_BYTES, "max_bytes is %zu; at least %u", max_bytes, MIN_BYTES);
  uint64_t cap = (uint64_t)max_bytes / MPROC__REC_ALIGN * MPROC__REC_ALIGN;
  uint64_t data_off = (sizeof(queue_shared) + 4095) / 4096 * 4096;
  if (cap > SIZE_MAX - data_off) return mproc__fail(MPROC_ENOMEM, "%s: max_bytes %zu is too large", call, max_bytes);
  mproc_queue *q = (mproc_queue *)calloc(1, sizeof *q);
  if (!q) return mproc__fail(MPROC_ENOMEM, "%s: out of memory", call);
  q->flag = MPROC_NO_HANDLE;
  int rc = mproc__sobj_create(&q->o, MPROC_OBJECT_QUEUE, (size_t)(data_off + cap));
  if (rc) {
    free(q);
    return rc;
  }
  rc = mproc__pal_flag_open(&q->flag);
  if (rc == MPROC_ENOTSUP) { /* no flag: the queue works, mproc_wait on it says why not */
    mproc_clear_error();
    rc = 0;
  }
  if (rc) {
    mproc__sobj_close(&q->o);
    free(q);
    return rc;
  }
  queue_shared *s = qs(q);
  s->flavor = flavor;
  s->maxsize = opts ? opts->maxsize : 0;
  s->cap = cap;
  s->data_off = data_off;
  ring_view(q);
  *out = q;
  return 0;
}

int mproc_queue_create(mproc_queue **out, const mproc_queue_opts *opts) {
  return queue_new(out, opts, FLAVOR_QUEUE, "queue_create");
}
int mproc_simple_queue_create(mproc_queue **out) { return queue_new(out, NULL, FLAVOR_SIMPLE, "simple_queue_create"); }
int mproc_joinable_queue_create(mproc_queue **out, const mproc_queue_opts *opts) {
  return queue_new(out, opts, FLAVOR_JOINABLE, "joinable_queue_create");
}

void mproc_queue_destroy(mproc_queue *q) {
  if (!q) return;
  mproc__pal_close(q->flag);
  mproc__sobj_close(&q->o);
  free(q);
}

/* ---- the ring, under the lock --------------------------------------------------------------------- */

/* The owner of the first record in flight (what a waiter watches: its death ends the wait), or 0. */
static uint64_t first_in_flight(const mproc_queue *q) {
  uint64_t p = mproc__ring_find(&q->ring, false);
  return p == UINT64_MAX ? 0 : rec_at(q, p)->owner;
}

/* Under the lock: bump w's word, and wake up to n of its sleepers not sent a wake yet (none: no system
 * call). A sleeper read seq and counted itself under the lock too, so the lock orders both. Every sleeper
 * counts itself out of both counts once it has the lock again, for whatever reason it woke: a wake that
 * another sleeper took (Windows' semaphore cannot choose) then lowers `woken` as well. */
static void wake(mproc_queue *q, sleepers *w, uint32_t n) {
  mproc__atomic_store32_relaxed(&w->seq, w->seq + 1);
  uint32_t idle = w->waiting - w->woken;
  if (idle == 0) return;
  w->woken += n < idle ? n : idle;
  mproc__sobj_wake(&q->o, &w->seq, n);
}

/* The flag follows `ready` (set only while someone waits on it; kept set once shut down). */
static void flag_update(mproc_queue *q) {
  queue_shared *s = qs(q);
  if (q->flag == MPROC_NO_HANDLE) return;
  bool want = s->shut || mproc__atomic_load64(&s->ready) > 0;
  if (want && !s->flag_set && mproc__atomic_load32(&s->poll_waiters)) {
    s->flag_set = 1;
    mproc__pal_flag_set(q->flag);
  } else if (!want && s->flag_set) {
    s->flag_set = 0;
    mproc__pal_flag_clear(q->flag);
  }
}

/* Put right what processes that have ended left in flight: `dead` (or, for 0, every owner found
 * ended). Returns whether anything changed. */
static bool settle_dead(mproc_queue *q, uint64_t dead) {
  queue_shared *s = qs(q);
  bool changed = false;
  MPROC__RING_EACH(&q->ring, p) {
    mproc__rec *r = rec_at(q, p);
    if (!mproc__rec_in_flight(r)) continue;
    if (dead ? r->owner != dead : mproc__pal_id_alive(r->owner)) continue;
    if (r->state == MPROC__REC_WRITING) { /* half an item: never was */
      r->state = MPROC__REC_FREE;
      set64(&s->count, s->count - 1);
    } else { /* not got whole: back in the queue, the oldest item */
      r->state = MPROC__REC_READY;
      mproc__atomic_store64(&s->ready, s->ready + 1);
    }
    changed = true;
  }
  if (changed) {
    mproc__ring_advance(&q->ring);
    flag_update(q);
    wake(q, &s->cons, UINT32_MAX);
    wake(q, &s->prod, UINT32_MAX);
    wake(q, &s->join, UINT32_MAX);
  }
  return changed;
}

/* After a process died holding the lock: the ring is consistent (each change commits with one store),
 * the counters beside it may be one step behind: count them again, and settle what the dead left. */
static void repair(mproc_queue *q) {
  queue_shared *s = qs(q);
  mproc__ring_repair(&q->ring);
  settle_dead(q, 0);
  uint64_t count = 0, ready = 0;
  MPROC__RING_EACH(&q->ring, p) {
    uint32_t st = rec_at(q, p)->state;
    count += st != MPROC__REC_FREE;
    ready += st == MPROC__REC_READY;
  }
  uint64_t outstanding = 0;
  for (uint32_t i = 0; i < SLOTS; ++i) outstanding += s->slots[i].outstanding;
  set64(&s->count, count);
  mproc__atomic_store64(&s->ready, ready);
  set64(&s->outstanding, outstanding);
  flag_update(q);
  /* the dead may have been between a sleeper's two stores: wake every sleeper, counted afresh */
  s->cons.woken = s->prod.woken = s->join.woken = 0;
  wake(q, &s->cons, UINT32_MAX);
  wake(q, &s->prod, UINT32_MAX);
  wake(q, &s->join, UINT32_MAX);
}

static void q_lock(mproc_queue *q) {
  /* No deadline: the lock is held for one copy of at most MPROC_QUEUE_BIG bytes, and a dead holder
   * gives it up (EOWNERDEAD). */
  if (mproc__lw_acquire(&q->o, &qs(q)->lock, INT64_MAX) == MPROC_EOWNERDEAD) repair(q);
}
static void q_unlock(mproc_queue *q) { mproc__lw_release(&q->o, &qs(q)->lock); }

/* Sleep on w (its seq read under the lock, which the caller holds) watching `owner`, until the deadline;
 * the lock is released meanwhile and held again on return. 0 (look again), or MPROC_ETIMEDOUT. */
static int sleep_on(mproc_queue *q, sleepers *w, uint64_t owner, int64_t deadline) {
  uint32_t seen = mproc__atomic_load32(&w->seq);
  w->waiting++;
  q_unlock(q);
  int rc = mproc__sobj_wait(&q->o, &w->seq, seen, owner, deadline);
  q_lock(q);
  w->waiting--;
  if (w->woken) w->woken--;
  if (rc == MPROC_EOWNERDEAD) {
    settle_dead(q, owner);
    return 0;
  }
  if (rc == MPROC_ETIMEDOUT) return rc;
  if (rc) mproc_clear_error(); /* a failed wait: look again rather than fail the call */
  return 0;
}

/* ---- put and get ------------------------------------------------------------------------------- */

static int check_open(const mproc_queue *q, const char *call) {
  if (mproc__atomic_load32(&q->closed))
    return mproc__fail(MPROC_ECLOSED, "%s: the queue was closed in this process", call);
  return 0;
}

int mproc_queue_put(mproc_queue *q, const void *data, size_t len, int64_t timeout_ms) {
  MPROC__CHECK_ARG_AS("queue_put", !q, "queue is NULL");
  MPROC__CHECK_ARG_AS("queue_put", !data && len, "data is NULL with len %zu", len);
  int rc = check_open(q, "queue_put");
  if (rc) return rc;
  queue_shared *s = qs(q);
  uint64_t size = mproc__ring_rec_size(&q->ring, len);
  if (size == UINT64_MAX)
    return mproc__fail(MPROC_EMSGSIZE, "queue_put: an item of %zu bytes can never fit (at most %zu)", len,
                       mproc_queue_max_item(q));
  int64_t deadline = 0;
  uint64_t pos;
  q_lock(q);
  for (;;) {
    if (s->shut) {
      q_unlock(q);
      return mproc__fail(MPROC_ECLOSED, "queue_put: the queue was shut down");
    }
    pos = !s->maxsize || s->count < s->maxsize ? mproc__ring_reserve(&q->ring, size) : UINT64_MAX;
    if (pos != UINT64_MAX) break;
    if (timeout_ms == 0) {
      q_unlock(q);
      return mproc__fail(MPROC_EFULL, "queue_put: the queue is full");
    }
    if (!deadline) deadline = mproc__deadline_from_timeout(timeout_ms);
    /* room is held up by the oldest record while it is in flight: watch its owner */
    const mproc__rec *front = s->pos.rpos < s->pos.wpos ? rec_at(q, s->pos.rpos) : NULL;
    uint64_t watch = front && mproc__rec_in_flight(front) ? front->owner : 0;
    if (sleep_on(q, &s->prod, watch, deadline) == MPROC_ETIMEDOUT) {
      q_unlock(q);
      return mproc__fail(MPROC_EFULL, "queue_put: the queue stayed full for %lld ms", (long long)timeout_ms);
    }
  }
  mproc__rec *r = rec_at(q, pos);
  r->len = len;
  r->size = size;
  r->owner = mproc__pal_self_id();
  bool big = len >= MPROC_QUEUE_BIG;
  if (big) { /* reserve now, copy outside the lock, then publish */
    r->state = MPROC__REC_WRITING;
    mproc__ring_commit(&q->ring, pos, size);
    set64(&s->count, s->count + 1);
    q_unlock(q);
    memcpy(r + 1, data, len);
    q_lock(q);
  } else {
    r->state = MPROC__REC_READY;
    if (len) memcpy(r + 1, data, len);
    mproc__ring_commit(&q->ring, pos, size); /* the commit */
    set64(&s->count, s->count + 1);
  }
  r->state = MPROC__REC_READY;
  mproc__atomic_store64(&s->ready, s->ready + 1);
  flag_update(q);
  wake(q, &s->cons, big ? UINT32_MAX : 1);
  q_unlock(q);
  return 0;
}

int mproc_queue_put_nowait(mproc_queue *q, const void *data, size_t len) { return mproc_queue_put(q, data, len, 0); }

/* This process's consumer slot in a joinable queue (under the lock): its index, or SLOTS when every
 * slot is held by a live process or a dead one with tasks still to report. */
static uint32_t my_slot(mproc_queue *q) {
  queue_shared *s = qs(q);
  uint64_t me = mproc__pal_self_id();
  uint32_t hint = q->slot;
  if (hint < SLOTS && s->slots[hint].owner == me) return hint;
  uint32_t empty = SLOTS;
  for (uint32_t i = 0; i < SLOTS; ++i) {
    if (s->slots[i].owner == me) return q->slot = i;
    if (empty == SLOTS && s->slots[i].owner == 0) empty = i;
  }
  for (uint32_t i = 0; i < SLOTS && empty == SLOTS; ++i) /* reuse the slot of an ended process with none */
    if (s->slots[i].outstanding == 0 && !mproc__pal_id_alive(s->slots[i].owner)) empty = i;
  if (empty < SLOTS) {
    s->slots[empty].outstanding = 0;
    s->slots[empty].owner = me;
    q->slot = empty;
  }
  return empty;
}

/* get: into buf (cap bytes) when buf is set, else into an allocation (*out). */
static int queue_get(mproc_queue *q, void *buf, size_t cap, int64_t timeout_ms, void **out, size_t *len,
                     const char *call) {
  int rc = check_open(q, call);
  if (rc) return rc;
  queue_shared *s = qs(q);
  int64_t deadline = 0;
  uint64_t pos = UINT64_MAX;
  q_lock(q);
  for (;;) {
    if (s->ready) pos = mproc__ring_find(&q->ring, true);
    if (pos != UINT64_MAX) break;
    if (s->shut && s->count == 0) {
      q_unlock(q);
      return mproc__fail(MPROC_EEOF, "%s: the queue was shut down and is drained", call);
    }
    if (timeout_ms == 0) {
      q_unlock(q);
      return mproc__fail(MPROC_EEMPTY, "%s: the queue is empty", call);
    }
    if (!deadline) deadline = mproc__deadline_from_timeout(timeout_ms);
    if (sleep_on(q, &s->cons, first_in_flight(q), deadline) == MPROC_ETIMEDOUT) {
      q_unlock(q);
      return mproc__fail(MPROC_EEMPTY, "%s: the queue stayed empty for %lld ms", call, (long long)timeout_ms);
    }
  }
  mproc__rec *r = rec_at(q, pos);
  size_t n = (size_t)r->len;
  *len = n;
  if (buf && cap < n) {
    q_unlock(q);
    return mproc__fail(MPROC_EMSGSIZE, "%s: the item has %zu bytes, the buffer %zu", call, n, cap);
  }
  uint32_t sl = SLOTS;
  if (s->flavor == FLAVOR_JOINABLE) { /* counted as this process's before the item leaves (see join) */
    sl = my_slot(q);
    if (sl == SLOTS) {
      q_unlock(q);
      return mproc__fail(MPROC_ENOMEM, "%s: %u processes hold unfinished tasks of this queue already", call, SLOTS);
    }
    set64(&s->slots[sl].outstanding, s->slots[sl].outstanding + 1);
    set64(&s->outstanding, s->outstanding + 1);
  }
  bool big = n >= MPROC_QUEUE_BIG;
  if (big) { /* take it, copy outside the lock */
    r->owner = mproc__pal_self_id();
    r->state = MPROC__REC_TAKING;
    mproc__atomic_store64(&s->ready, s->ready - 1);
    flag_update(q);
    q_unlock(q);
  }
  void *dst = buf ? buf : malloc(n ? n : 1);
  if (!dst) {
    if (big) {
      q_lock(q);
      r->state = MPROC__REC_READY;
      mproc__atomic_store64(&s->ready, s->ready + 1);
      flag_update(q);
      wake(q, &s->cons, 1);
    }
    if (sl < SLOTS) {
      set64(&s->slots[sl].outstanding, s->slots[sl].outstanding - 1);
      set64(&s->outstanding, s->outstanding - 1);
    }
    q_unlock(q);
    return mproc__fail(MPROC_ENOMEM, "%s: out of memory for an item of %zu bytes", call, n);
  }
  if (n) memcpy(dst, r + 1, n);
  if (big) q_lock(q);
  r->state = MPROC__REC_FREE; /* the commit */
  set64(&s->count, s->count - 1);
  if (!big) mproc__atomic_store64(&s->ready, s->ready - 1);
  mproc__ring_advance(&q->ring);
  flag_update(q);
  wake(q, &s->prod, 1);
  if (big) wake(q, &s->cons, UINT32_MAX); /* sleepers watching this take look again */
  if (s->count == 0 && s->outstanding == 0) wake(q, &s->join, UINT32_MAX);
  q_unlock(q);
  if (out) *out = dst;
  return 0;
}

int mproc_queue_get(mproc_queue *q, int64_t timeout_ms, void **data, size_t *len) {
  MPROC__CHECK_ARG_AS("queue_get", !q || !data || !len, "queue, data and len must be set");
  *data = NULL;
  *len = 0;
  return queue_get(q, NULL, 0, timeout_ms, data, len, "queue_get");
}

int mproc_queue_get_nowait(mproc_queue *q, void **data, size_t *len) { return mproc_queue_get(q, 0, data, len); }

int mproc_queue_get_into(mproc_queue *q, void *buf, size_t cap, int64_t timeout_ms, size_t *len) {
  MPROC__CHECK_ARG_AS("queue_get_into", !q || !len, "queue and len must be set");
  MPROC__CHECK_ARG_AS("queue_get_into", !buf && cap, "buf is NULL with cap %zu", cap);
  static unsigned char none;
  *len = 0;
  return queue_get(q, buf ? buf : &none, cap, timeout_ms, NULL, len, "queue_get_into");
}

/* ---- state -------------------------------------------------------------------------------------------- */

size_t mproc_queue_qsize(const mproc_queue *q) { return q ? (size_t)mproc__atomic_load64(&qs(q)->count) : 0; }
bool mproc_queue_empty(const mproc_queue *q) { return !q || mproc__atomic_load64(&qs(q)->ready) == 0; }
bool mproc_queue_full(const mproc_queue *q) {
  if (!q) return false;
  const queue_shared *s = qs(q);
  return (s->maxsize && mproc__atomic_load64(&s->count) >= s->maxsize) ||
         q->ring.cap - mproc__ring_used(&q->ring) < MPROC__REC_ALIGN;
}
size_t mproc_queue_max_item(const mproc_queue *q) { return q ? (size_t)(q->ring.cap - MPROC__REC_HEADER) : 0; }
bool mproc_queue_is_shutdown(const mproc_queue *q) { return q && mproc__atomic_load32(&qs(q)->shut); }

int mproc_queue_close(mproc_queue *q) {
  MPROC__CHECK_ARG(!q, "queue is NULL");
  mproc__atomic_store32(&q->closed, 1);
  return 0;
}

int mproc_queue_shutdown(mproc_queue *q) {
  MPROC__CHECK_ARG(!q, "queue is NULL");
  queue_shared *s = qs(q);
  q_lock(q);
  mproc__atomic_store32(&s->shut, 1);
  flag_update(q);
  wake(q, &s->cons, UINT32_MAX);
  wake(q, &s->prod, UINT32_MAX);
  q_unlock(q);
  return 0;
}

/* ---- JoinableQueue ------------------------------------------------------------------------------ */

static int check_joinable(const mproc_queue *q, const char *call) {
  if (qs(q)->flavor != FLAVOR_JOINABLE) return mproc__fail(MPROC_ESTATE, "%s: the queue is not joinable", call);
  return 0;
}

int mproc_queue_task_done(mproc_queue *q) {
  MPROC__CHECK_ARG(!q, "queue is NULL");
  int rc = check_joinable(q, "queue_task_done");
  if (rc) return rc;
  queue_shared *s = qs(q);
  q_lock(q);
  uint32_t sl = q->slot; /* this process's, else any (any process may say done) */
  if (sl >= SLOTS || s->slots[sl].owner != mproc__pal_self_id() || !s->slots[sl].outstanding) sl = 0;
  while (sl < SLOTS && !s->slots[sl].outstanding) ++sl;
  if (sl == SLOTS) {
    q_unlock(q);
    return mproc__fail(MPROC_ESTATE, "queue_task_done: called more times than items were got");
  }
  set64(&s->slots[sl].outstanding, s->slots[sl].outstanding - 1);
  set64(&s->outstanding, s->outstanding - 1);
  if (s->count == 0 && s->outstanding == 0) wake(q, &s->join, UINT32_MAX);
  q_unlock(q);
  return 0;
}

/* Write off the tasks of consumers that have ended (under the lock): how many. */
static uint64_t write_off_dead(mproc_queue *q) {
  queue_shared *s = qs(q);
  uint64_t lost = 0;
  for (uint32_t i = 0; i < SLOTS; ++i) {
    slot *c = &s->slots[i];
    if (!c->outstanding || mproc__pal_id_alive(c->owner)) continue;
    lost += c->outstanding;
    set64(&s->outstanding, s->outstanding - c->outstanding);
    set64(&c->outstanding, 0);
  }
  return lost;
}

/* A join's sleeps end at least this often, to look for dead consumers beyond the one it watches. */
#define JOIN_CHECK_NS (100 * 1000 * 1000LL)

int mproc_queue_join(mproc_queue *q, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!q, "queue is NULL");
  int rc = check_joinable(q, "queue_join");
  if (rc) return rc;
  queue_shared *s = qs(q);
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  q_lock(q);
  for (;;) {
    if (s->count == 0 && s->outstanding == 0) break;
    settle_dead(q, 0); /* a dead producer's half item would hold join for ever */
    uint64_t lost = write_off_dead(q);
    if (lost) {
      if (s->count == 0 && s->outstanding == 0) wake(q, &s->join, UINT32_MAX);
      q_unlock(q);
      return mproc__fail(MPROC_EWORKERDIED, "queue_join: a consumer died with %llu unfinished tasks (written off)",
                         (unsigned long long)lost);
    }
    if (timeout_ms == 0 || mproc__ms_until(deadline) == 0) {
      q_unlock(q);
      return mproc__fail(MPROC_ETIMEDOUT, "queue_join: tasks were unfinished after %lld ms", (long long)timeout_ms);
    }
    uint64_t watch = 0;
    for (uint32_t i = 0; i < SLOTS && !watch; ++i)
      if (s->slots[i].outstanding) watch = s->slots[i].owner;
    int64_t until = mproc__pal_monotonic_ns() + JOIN_CHECK_NS;
    sleep_on(q, &s->join, watch, deadline < until ? deadline : until);
  }
  q_unlock(q);
  return 0;
}

/* ---- waiting with mproc_wait, handing on -------------------------------------------------------- */

int mproc__queue_wait_prepare(void *obj, mproc__wait_item *item, bool *ready_now) {
  mproc_queue *q = (mproc_queue *)obj;
  if (q->flag == MPROC_NO_HANDLE)
    return mproc__fail(MPROC_ENOTSUP, "wait: a queue cannot be waited on with other handles on this system");
  if (mproc__atomic_load32(&q->closed)) return mproc__fail(MPROC_ECLOSED, "wait: the queue was closed in this process");
  queue_shared *s = qs(q);
  mproc__atomic_add32(&s->poll_waiters, 1); /* then look: a put after this sets the flag */
  *ready_now = mproc__atomic_load64(&s->ready) > 0 || mproc__atomic_load32(&s->shut);
  item->h = q->flag;
  item->kind = MPROC__WAIT_SENTINEL;
  return 0;
}

void mproc__queue_wait_done(void *obj) { mproc__atomic_add32(&qs((mproc_queue *)obj)->poll_waiters, (uint32_t)-1); }

static int queue_export(const void *obj, mproc_os_handle *hs, size_t *n, mproc__buf *bytes) {
  const mproc_queue *q = (const mproc_queue *)obj;
  *n = 0;
  int rc = mproc__sobj_export(&q->o, hs, n, bytes);
  unsigned char has_flag = q->flag != MPROC_NO_HANDLE;
  if (has_flag) hs[(*n)++] = q->flag;
  return rc ? rc : mproc__buf_append(bytes, &has_flag, 1);
}

static int queue_import(const void *bytes, size_t len, const mproc_os_handle *hs, size_t n, void **obj) {
  mproc_queue *q = (mproc_queue *)calloc(1, sizeof *q);
  if (!q) return mproc__fail(MPROC_ENOMEM, "out of memory");
  const unsigned char *b = (const unsigned char *)bytes;
  size_t used = 0, at = 0;
  int rc = mproc__sobj_import(&q->o, MPROC_OBJECT_QUEUE, sizeof(queue_shared), hs, n, &used, b, len, &at);
  if (rc) {
    free(q);
    return rc;
  }
  const queue_shared *s = qs(q);
  bool has_flag = at < len && b[at] == 1;
  bool ok = at + 1 == len && b[at] <= 1 && used + has_flag == n && s->cap % MPROC__REC_ALIGN == 0 &&
            s->cap >= MIN_BYTES && s->data_off >= sizeof(queue_shared) && s->data_off <= q->o.shm.size &&
            q->o.shm.size - s->data_off >= s->cap &&
            (!has_flag || mproc__pal_handle_kind(hs[used]) != MPROC__HK_INVALID);
  if (!ok) {
    mproc__sobj_unmap(&q->o);
    free(q);
    return mproc__fail(MPROC_ESYS, "a handed queue is malformed");
  }
  q->flag = has_flag ? hs[used] : MPROC_NO_HANDLE;
  ring_view(q);
  q->slot = SLOTS;
  *obj = q;
  return 0;
}

const mproc__handable_type mproc__queue_handable = {MPROC_OBJECT_QUEUE, "queue", queue_export, queue_import};
