/* Queue, SimpleQueue and JoinableQueue (mproc/queue.h).
 *
 * A queue is one shared object (shared_internal.h): a header, a table of the processes that use it, a
 * ring of 64-byte slots (the queue's order) and a ring of records (the store of items over
 * MPROC_QUEUE_INLINE bytes, ring.h), all in one block of shared memory.
 *
 * The order. Every item takes one slot, at a position that only grows (the slot is the position modulo
 * the slot count, its lap the quotient). A slot's word holds its lap, a state and, while the state is
 * WRITING or TAKING, the index of its owner in the process table (which names the process: the PAL's
 * id). A put claims the first unclaimed position with one compare-and-swap FREE(lap) -> WRITING(lap,
 * me), fills the slot (an item of up to 48 bytes in place; a larger one goes to the record ring and the
 * slot holds its position) and stores READY(lap). Positions are claimed in order (one is claimed only
 * once all below it are), so the first unclaimed is the position after the handle's last claim when
 * that slot is free at its lap (put_next: one compare-and-swap, no other shared line written); else a
 * put reads on from `tail` over claimed slots. tail only says that every position below it is claimed:
 * it lags the claims (moved on, by compare-and-swap and never back, every TAIL_EVERY positions and by
 * each put that read its way from it). A get looks from `head` for the first READY slot:
 * an item in place is copied out first and taken with one compare-and-swap READY(lap) -> FREE(lap + 1)
 * (the commit: a get killed after it has got the item; the common case, an item in place READY at
 * head, is get_fast); a record is claimed READY -> TAKING(lap, me),
 * copied, and then freed with its slot under the lock. head moves over the slots got (a later lap). No
 * lock for items in place; the lock only for the record ring, for a process's first call (its index)
 * and for what is rare (a death, the flag of mproc_wait, JoinableQueue's task_done and join).
 *
 * Order. A get takes the first READY slot from head, past TAKING ones (another get is copying them
 * out), and stops at a WRITING one: a put claimed it and has not published yet, so the get waits for
 * it (watching its owner) rather than take a later slot. Items of one producer come out in the order
 * of their slots, which is the order of their puts, and the queue as a whole is FIFO in slot order. What a dead
 * process leaves is put right by whoever notices the death (settle_dead): a WRITING slot is dropped (it
 * becomes got: the item never was), a TAKING one is READY again at its place, so it is the oldest item.
 * The slot's word names the owner at every moment after the claim: no position is ever taken by an
 * unknown process.
 *
 * Waiting. Consumers sleep on cons.seq, producers on prod.seq, join on join.seq (futex words), as an
 * eventcount: a sleeper reads seq, counts itself in (one atomic add), looks again, and sleeps if
 * nothing changed; a put or get publishes, then reads the count of sleepers and makes a wake call only
 * when one is counted and not sent a wake yet (so none while the sleeper it woke has not run: on one
 * CPU a woken consumer runs only once the producer yields). A sleeper watches the owner of the slot it
 * waits on, so that its death ends the sleep (the PAL's owner wait). The flag for mproc_wait is set by a
 * put only while someone waits on it (poll_waiters), and cleared by a get once nothing is READY. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mproc/queue.h"
#include "queue_testing.h"
#include "ring.h"
#include "shared_internal.h"

#if defined(_MSC_VER)
#define QUEUE_NOINLINE __declspec(noinline)
#else
#define QUEUE_NOINLINE __attribute__((noinline))
#endif

enum { FLAVOR_QUEUE = 1, FLAVOR_SIMPLE = 2, FLAVOR_JOINABLE = 3 };
enum { S_FREE = 0, S_WRITING = 1, S_READY = 2, S_TAKING = 3 }; /* a slot's states */

#define PROCS 1024u /* the process table's entries */
#define MIN_BYTES 4096u
#define INLINE_WORDS 6u
#define SLOT_BYTES 64u

typedef struct proc {            /* one process that used the queue: its id, and (joinable) the tasks it got */
  volatile uint64_t owner;       /* the PAL id; 0: a free entry */
  volatile uint64_t outstanding; /* got, task_done not yet called */
  unsigned char pad[48];         /* a cache line each: a joinable get counts in its own */
} proc;

typedef struct qslot {
  volatile uint64_t word; /* lap << 32 | owner index + 1 << 8 | state */
  volatile uint64_t len;
  volatile uint64_t data[INLINE_WORDS]; /* the item, or (over MPROC_QUEUE_INLINE) data[0]: its record */
} qslot;

typedef struct sleepers { /* an eventcount: on a cache line of its own */
  volatile uint32_t seq;
  uint32_t reserved;
  volatile uint64_t count; /* sleepers counted in << 32 | of them, those sent a wake not yet out */
  unsigned char pad[48];
} sleepers;

typedef struct pos_line {
  volatile uint64_t v;
  unsigned char pad[56];
} pos_line;

typedef struct queue_shared {
  mproc__sobj_header head;
  unsigned char pad0[64 - sizeof(mproc__sobj_header)];
  pos_line tail, hd;         /* the next position to put at, the first not yet got */
  sleepers cons, prod, room; /* gets waiting for an item, puts for a slot, puts for bytes in the store */
  sleepers join;
  uint32_t flavor;
  volatile uint32_t shut;
  uint64_t maxsize;   /* 0: none */
  uint64_t nslots;    /* the slot ring's slots */
  uint64_t cap;       /* the record ring's bytes */
  uint64_t slots_off; /* where the slots and the records start */
  uint64_t data_off;
  mproc__lockword lock;
  mproc__ring_pos pos;
  volatile uint64_t outstanding;  /* joinable: the sum of the table's */
  volatile uint32_t poll_waiters; /* in mproc_wait on the flag */
  volatile uint32_t flag_set;     /* the flag's state (changed under the lock) */
  uint32_t nprocs;                /* the table's entries in use (PROCS but in tests) */
  unsigned char pad1[36];
  proc procs[PROCS];
} queue_shared;

_Static_assert(sizeof(qslot) == SLOT_BYTES, "a slot is one cache line");
_Static_assert(sizeof(sleepers) == 64 && sizeof(pos_line) == 64 && sizeof(proc) == 64, "one cache line each");
_Static_assert(offsetof(queue_shared, procs) % 64 == 0, "the table on cache lines of its own");

struct mproc_queue {
  mproc__sobj o;
  mproc_os_handle flag; /* MPROC_NO_HANDLE where the OS has none */
  mproc__ring ring;
  qslot *slots;
  uint64_t nslots;
  uint32_t shift;          /* nslots a power of two: log2 of it (a place by mask and shift), else 64 (by division) */
  volatile uint32_t me;    /* this process's table index + 1, valid while me_id is this process's id */
  volatile uint64_t me_id; /* the PAL id of the process that took `me` (a fork child finds its parent's) */
  volatile uint32_t closed;
  volatile uint64_t put_next; /* the position after this handle's last claim: where a put looks first */
};

static queue_shared *qs(const mproc_queue *q) { return (queue_shared *)q->o.shm.base; }

void (*mproc__queue_test_hook)(int where);
uint32_t mproc__queue_test_procs;
static void test_hook(int where) {
  if (mproc__queue_test_hook) mproc__queue_test_hook(where);
}

/* ---- slots --------------------------------------------------------------------------------------- */

static uint64_t mkword(uint32_t lap, uint32_t state, uint32_t owner) {
  return (uint64_t)lap << 32 | (uint64_t)owner << 8 | state;
}
static uint32_t w_lap(uint64_t w) { return (uint32_t)(w >> 32); }
static uint32_t w_state(uint64_t w) { return (uint32_t)(w & 0xff); }
static uint32_t w_owner(uint64_t w) { return (uint32_t)(w >> 8) & 0xffffffu; }
static qslot *slot_at(const mproc_queue *q, uint64_t pos) {
  return &q->slots[q->shift < 64 ? pos & (q->nslots - 1) : pos % q->nslots];
}
static uint32_t lap_of(const mproc_queue *q, uint64_t pos) {
  return (uint32_t)(q->shift < 64 ? pos >> q->shift : pos / q->nslots);
}
/* Where a slot's word stands to the lap of a position: > 0 got (a later lap), 0 this lap, < 0 earlier. */
static int32_t lap_cmp(uint64_t w, uint32_t lap) { return (int32_t)(w_lap(w) - lap); }

/* The PAL id of the owner named in a word (0: none). */
static uint64_t owner_id(const mproc_queue *q, uint64_t w) {
  uint32_t i = w_owner(w);
  return i && i <= PROCS ? mproc__atomic_load64(&qs(q)->procs[i - 1].owner) : 0;
}

/* Move head over the slots got. */
static void advance_head(mproc_queue *q) {
  queue_shared *s = qs(q);
  uint64_t h = mproc__atomic_load64(&s->hd.v);
  for (uint64_t i = 0; i < q->nslots; ++i) {
    if (lap_cmp(mproc__atomic_load64(&slot_at(q, h)->word), lap_of(q, h)) <= 0) return;
    if (mproc__atomic_cas64(&s->hd.v, &h, h + 1)) ++h;
  }
}

/* The claimed part of the order, from head: calls fn on each slot not yet got, until fn returns true
 * (then true) or the first slot not claimed (then false). */
typedef bool (*slot_fn)(mproc_queue *q, uint64_t pos, qslot *sl, uint64_t w, void *ctx);
static bool each_slot(mproc_queue *q, slot_fn fn, void *ctx) {
  uint64_t h = mproc__atomic_load64(&qs(q)->hd.v);
  for (uint64_t p = h; p - h < 2 * q->nslots; ++p) {
    qslot *sl = slot_at(q, p);
    uint32_t lap = lap_of(q, p);
    uint64_t w = mproc__atomic_load64(&sl->word);
    int32_t c = lap_cmp(w, lap);
    if (c > 0) continue;                      /* got */
    if (c < 0 || w_state(w) == S_FREE) break; /* not claimed yet: the end */
    if (fn(q, p, sl, w, ctx)) return true;
  }
  return false;
}

typedef struct look {
  bool ready;     /* a READY slot */
  bool in_flight; /* a WRITING or TAKING one */
  uint64_t watch; /* the owner of the first in flight */
} look;

static bool look_fn(mproc_queue *q, uint64_t pos, qslot *sl, uint64_t w, void *ctx) {
  (void)pos;
  (void)sl;
  look *l = (look *)ctx;
  if (w_state(w) == S_READY) return l->ready = true;
  if (!l->in_flight) l->watch = owner_id(q, w);
  l->in_flight = true;
  return w_state(w) == S_WRITING; /* nothing after an unfinished put can be got before it */
}

/* What the order holds now (approximate: others change it meanwhile). */
static look look_now(mproc_queue *q) {
  look l = {false, false, 0};
  each_slot(q, look_fn, &l);
  return l;
}

/* ---- sleepers ------------------------------------------------------------------------------------ */

/* Count in: returns seq as read before. The caller then looks again, and sleeps only if nothing changed. */
static uint32_t ec_in(sleepers *w) {
  uint32_t seen = mproc__atomic_load32(&w->seq);
  mproc__atomic_add64(&w->count, (uint64_t)1 << 32);
  return seen;
}
/* Count out, for whatever reason the sleeper woke: a wake that another sleeper took lowers `woken` too. */
static void ec_out(sleepers *w) {
  uint64_t c = mproc__atomic_load64(&w->count);
  for (;;) {
    uint64_t woken = (uint32_t)c;
    uint64_t next = (c - ((uint64_t)1 << 32)) - (woken ? 1 : 0);
    if (mproc__atomic_cas64(&w->count, &c, next)) return;
  }
}
/* After publishing: wake up to n sleepers not sent a wake yet (none: no system call, one load). */
static void ec_wake(mproc_queue *q, sleepers *w, uint32_t n) {
  uint64_t c = mproc__atomic_load64(&w->count);
  for (;;) {
    uint32_t waiting = (uint32_t)(c >> 32), woken = (uint32_t)c;
    if (waiting <= woken) return;
    uint32_t k = n < waiting - woken ? n : waiting - woken;
    if (mproc__atomic_cas64(&w->count, &c, c + k)) break;
  }
  mproc__atomic_add32(&w->seq, 1);
  mproc__sobj_wake(&q->o, &w->seq, n);
}
static void wake_all(mproc_queue *q) {
  queue_shared *s = qs(q);
  ec_wake(q, &s->cons, UINT32_MAX);
  ec_wake(q, &s->prod, UINT32_MAX);
  ec_wake(q, &s->room, UINT32_MAX);
  ec_wake(q, &s->join, UINT32_MAX);
}

/* ---- creating ------------------------------------------------------------------------------------ */

static void view(mproc_queue *q) {
  queue_shared *s = qs(q);
  q->ring.pos = &s->pos;
  q->ring.data = (unsigned char *)q->o.shm.base + s->data_off;
  q->ring.cap = s->cap;
  q->slots = (qslot *)(void *)((unsigned char *)q->o.shm.base + s->slots_off);
  q->nslots = s->nslots;
  q->shift = 64;
  if ((q->nslots & (q->nslots - 1)) == 0)
    for (q->shift = 0; ((uint64_t)1 << q->shift) < q->nslots;) ++q->shift;
}

static int queue_new(mproc_queue **out, const mproc_queue_opts *opts, uint32_t flavor, const char *call) {
  MPROC__CHECK_ARG_AS(call, !out, "out is NULL");
  *out = NULL;
  size_t max_bytes = opts && opts->max_bytes ? opts->max_bytes : MPROC_QUEUE_DEFAULT_MAX_BYTES;
  MPROC__CHECK_ARG_AS(call, max_bytes < MIN_BYTES, "max_bytes is %zu; at least %u", max_bytes, MIN_BYTES);
  uint64_t cap = (uint64_t)max_bytes / MPROC__REC_ALIGN * MPROC__REC_ALIGN;
  uint64_t maxsize = opts ? opts->maxsize : 0;
  uint64_t nslots = cap / MPROC__REC_ALIGN; /* as many items as the store holds records */
  if (!maxsize && nslots > MPROC_QUEUE_DEFAULT_SLOTS) nslots = MPROC_QUEUE_DEFAULT_SLOTS;
  if (maxsize && maxsize < nslots) nslots = maxsize;
  uint64_t slots_off = (sizeof(queue_shared) + SLOT_BYTES - 1) / SLOT_BYTES * SLOT_BYTES;
  uint64_t data_off = (slots_off + nslots * SLOT_BYTES + 4095) / 4096 * 4096;
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
  s->maxsize = maxsize;
  s->nprocs = mproc__queue_test_procs && mproc__queue_test_procs < PROCS ? mproc__queue_test_procs : PROCS;
  s->nslots = nslots;
  s->cap = cap;
  s->slots_off = slots_off;
  s->data_off = data_off;
  view(q); /* the slots are zero: FREE at lap 0 */
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

/* ---- under the lock: the flag, deaths, the process table ----------------------------------------- */

/* The flag follows whether an item is READY (set only while someone waits on it; kept set once shut). */
static void flag_update(mproc_queue *q) {
  queue_shared *s = qs(q);
  if (q->flag == MPROC_NO_HANDLE) return;
  bool want = mproc__atomic_load32(&s->shut) || look_now(q).ready;
  if (want && !s->flag_set && mproc__atomic_load32(&s->poll_waiters)) {
    mproc__atomic_store32(&s->flag_set, 1);
    mproc__pal_flag_set(q->flag);
  } else if (!want && s->flag_set) {
    mproc__atomic_store32(&s->flag_set, 0);
    mproc__pal_flag_clear(q->flag);
  }
}

typedef struct settle_ctx {
  uint64_t dead;       /* the process that ended, or 0: every owner found ended */
  uint64_t last_alive; /* an id found alive (settle(0) asks the OS once per owner met) */
  bool changed;
} settle_ctx;

static bool is_dead(settle_ctx *c, uint64_t id) {
  if (c->dead) return id == c->dead;
  if (!id || id == c->last_alive) return false;
  if (mproc__pal_id_alive(id)) {
    c->last_alive = id;
    return false;
  }
  return true;
}

static bool settle_fn(mproc_queue *q, uint64_t pos, qslot *sl, uint64_t w, void *ctx) {
  settle_ctx *c = (settle_ctx *)ctx;
  if (w_state(w) == S_READY) return false;
  uint64_t id = owner_id(q, w);
  if (!is_dead(c, id)) return false;
  uint32_t lap = lap_of(q, pos);
  mproc__rec *r = mproc__ring_record(&q->ring, mproc__atomic_load64_relaxed(&sl->data[0]));
  if (r && (mproc__atomic_load32(&r->tag) != (uint32_t)pos || mproc__rec_state(r) == MPROC__REC_FREE))
    r = NULL; /* not this slot's */
  uint64_t next;
  if (w_state(w) == S_WRITING) { /* half an item: never was (and its record goes) */
    if (r && r->owner == id) mproc__atomic_store32(&r->state, MPROC__REC_FREE);
    next = mkword(lap + 1, S_FREE, 0);
  } else { /* TAKING, not got whole: READY again at its place; unless its record was freed (got) */
    next = r && mproc__rec_state(r) == MPROC__REC_READY ? mkword(lap, S_READY, 0) : mkword(lap + 1, S_FREE, 0);
  }
  if (mproc__atomic_cas64(&sl->word, &w, next)) c->changed = true;
  return false;
}

/* Put right what processes that have ended left in flight: `dead` (or, for 0, every owner found
 * ended). Under the lock. Returns whether anything changed. */
static bool settle_dead(mproc_queue *q, uint64_t dead) {
  settle_ctx c = {dead, 0, false};
  each_slot(q, settle_fn, &c);
  MPROC__RING_EACH(&q->ring, p) { /* records reserved by a dead put that never reached its slot */
    mproc__rec *r = mproc__ring_at(&q->ring, p);
    if (mproc__rec_state(r) == MPROC__REC_WRITING && is_dead(&c, r->owner)) {
      mproc__atomic_store32(&r->state, MPROC__REC_FREE);
      c.changed = true;
    }
  }
  if (c.changed) {
    mproc__ring_advance(&q->ring);
    advance_head(q);
    flag_update(q);
    wake_all(q);
  }
  return c.changed;
}

/* After a process died holding the lock: the rings are consistent (each change commits with one
 * store); settle what the dead left and count the tasks again. */
static void repair(mproc_queue *q) {
  queue_shared *s = qs(q);
  mproc__ring_repair(&q->ring);
  settle_dead(q, 0);
  uint64_t outstanding = 0;
  for (uint32_t i = 0; i < PROCS; ++i) outstanding += mproc__atomic_load64(&s->procs[i].outstanding);
  mproc__atomic_store64(&s->outstanding, outstanding);
  flag_update(q);
  wake_all(q);
}

static void q_lock(mproc_queue *q) {
  /* No deadline: the lock is held for a reservation or a short look, and a dead holder gives it up
   * (EOWNERDEAD). */
  if (mproc__lw_acquire(&q->o, &qs(q)->lock, INT64_MAX) == MPROC_EOWNERDEAD) repair(q);
}
static void q_unlock(mproc_queue *q) { mproc__lw_release(&q->o, &qs(q)->lock); }

/* This process's index in the table + 1 (taken once, under the lock), or 0 with the error set when
 * every entry is held by a live process or a dead one with tasks still to report. An entry passes to
 * another process only once its owner has ended, so the index this process took stays its own: a call
 * checks the handle's me_id against its id (a fork child holds a copy of its parent's handle), not the
 * table, whose line the call then need not read. */
static uint32_t take_index(mproc_queue *q, uint64_t me, const char *call);
static inline uint32_t my_index(mproc_queue *q, const char *call) {
  uint64_t me = mproc__pal_self_id();
  if (mproc__atomic_load64(&q->me_id) == me) { /* me_id first, then me (stored in the other order) */
    uint32_t i = mproc__atomic_load32(&q->me);
    if (i) return i;
  }
  return take_index(q, me, call);
}
/* This process's index + 1 when taken already, else 0. */
static inline uint32_t my_index_now(const mproc_queue *q) {
  uint64_t id = mproc__atomic_load64(&mproc__pal_self_id_cache);
  if (!id) id = mproc__pal_self_id();
  return mproc__atomic_load64(&q->me_id) == id ? mproc__atomic_load32(&q->me) : 0;
}
/* my_index's first call in a process: the entry found or taken under the lock. */
static uint32_t take_index(mproc_queue *q, uint64_t me, const char *call) {
  queue_shared *s = qs(q);
  uint32_t i;
  q_lock(q);
  uint32_t n = s->nprocs, empty = n, dead = n;
  for (i = 0; i < n; ++i) {
    uint64_t o = mproc__atomic_load64(&s->procs[i].owner);
    if (o == me) break;
    if (empty == n && o == 0) empty = i;
  }
  if (i == n && empty == n) /* reuse the entry of an ended process with no tasks */
    for (uint32_t k = 0; k < n && dead == n; ++k)
      if (mproc__atomic_load64(&s->procs[k].outstanding) == 0 &&
          !mproc__pal_id_alive(mproc__atomic_load64(&s->procs[k].owner)))
        dead = k;
  if (i == n && dead < n) settle_dead(q, mproc__atomic_load64(&s->procs[dead].owner)); /* nothing in flight names it */
  if (i == n) i = empty < n ? empty : dead;
  if (i < n && mproc__atomic_load64(&s->procs[i].owner) != me) {
    mproc__atomic_store64(&s->procs[i].outstanding, 0);
    mproc__atomic_store64(&s->procs[i].owner, me);
  }
  q_unlock(q);
  if (i == n) {
    mproc__fail(MPROC_ENOMEM, "%s: %u live processes use this queue already", call, n);
    return 0;
  }
  mproc__atomic_store32(&q->me, i + 1);
  mproc__atomic_store64(&q->me_id, me); /* after me: a thread that reads this id reads this index */
  return i + 1;
}

/* Sleep on w after ec_in (seen), watching `owner`, until the deadline, then count out. 0 (look
 * again), or MPROC_ETIMEDOUT. The lock is not held. */
static int ec_sleep(mproc_queue *q, sleepers *w, uint32_t seen, uint64_t owner, int64_t deadline) {
  int rc = mproc__sobj_wait(&q->o, &w->seq, seen, owner, deadline);
  ec_out(w);
  if (rc == MPROC_EOWNERDEAD) {
    q_lock(q);
    settle_dead(q, owner);
    q_unlock(q);
    return 0;
  }
  if (rc == MPROC_ETIMEDOUT) return rc;
  if (rc) mproc_clear_error(); /* a failed wait: look again rather than fail the call */
  return 0;
}

/* ---- put ------------------------------------------------------------------------------------------ */

static int check_open(const mproc_queue *q, const char *call) {
  if (mproc__atomic_load32(&q->closed))
    return mproc__fail(MPROC_ECLOSED, "%s: the queue was closed in this process", call);
  return 0;
}

static bool bytes_full(const mproc_queue *q) { return q->ring.cap - mproc__ring_used(&q->ring) < MPROC__REC_ALIGN; }

/* Move tail on to `to` unless it is there or beyond already (tail never goes back: every position
 * below it is claimed). */
static void tail_to(queue_shared *s, uint64_t to) {
  uint64_t t = mproc__atomic_load64(&s->tail.v);
  while (t < to && !mproc__atomic_cas64(&s->tail.v, &t, to)) {
  }
}

/* A search for the first unclaimed position, at t after `steps` slots read, all claimed: goes on at
 * t, or (once a lap was read: others claimed as fast) from tail when tail has moved past it. */
static uint64_t past_tail(const mproc_queue *q, uint64_t t, uint64_t steps) {
  if (steps % q->nslots) return t;
  uint64_t tail = mproc__atomic_load64(&qs(q)->tail.v);
  return tail > t + 1 ? tail - 1 : t;
}

/* Claim a slot for `me`: true with *pos, or false when the order is full (*watch: the owner of the slot
 * that holds the place, 0 for none). Claims are made in position order (a position is claimed only
 * once every position below it is), so the first place tried is the one after this handle's last
 * claim (put_next): when its slot is free at that lap it is the first unclaimed position (and claimed
 * with one compare-and-swap; tail, which may lag behind the claims, is moved on once every
 * TAIL_EVERY claims); else the search reads its way over claimed slots from tail (or put_next). */
#define TAIL_EVERY 16u
static inline bool claim_next(mproc_queue *q, uint32_t me, uint64_t *pos) {
  uint64_t t = mproc__atomic_load64_relaxed(&q->put_next);
  qslot *sl = slot_at(q, t);
  uint32_t lap = lap_of(q, t);
  uint64_t w = mproc__atomic_load64(&sl->word);
  if (w != mkword(lap, S_FREE, 0) || !mproc__atomic_cas64(&sl->word, &w, mkword(lap, S_WRITING, me))) return false;
  *pos = t;
  mproc__atomic_store64_relaxed(&q->put_next, t + 1);
  if ((t + 1) % TAIL_EVERY == 0) tail_to(qs(q), t + 1);
  return true;
}
static bool claim(mproc_queue *q, uint32_t me, uint64_t *pos, uint64_t *watch) {
  queue_shared *s = qs(q);
  if (claim_next(q, me, pos)) return true;
  /* Every position below tail is claimed, and below put_next (this handle's last claim + 1) too: the
   * search reads on from the larger (tail lags the claims made by way of put_next). */
  uint64_t t = mproc__atomic_load64(&s->tail.v), own = mproc__atomic_load64_relaxed(&q->put_next);
  if (own > t) t = own;
  for (uint64_t steps = 1;; ++t, ++steps) {
    qslot *sl = slot_at(q, t);
    uint32_t lap = lap_of(q, t);
    uint64_t w = mproc__atomic_load64(&sl->word);
    int32_t c = lap_cmp(w, lap);
    if (c == 0 && w_state(w) == S_FREE) {
      if (!mproc__atomic_cas64(&sl->word, &w, mkword(lap, S_WRITING, me))) {
        --t; /* taken meanwhile: read on from it */
        continue;
      }
      *pos = t;
      mproc__atomic_store64_relaxed(&q->put_next, t + 1);
      tail_to(s, t + 1);
      return true;
    }
    if (c < 0) { /* the last lap's item is still there, and every position below t is claimed: full */
      *watch = w_state(w) == S_READY ? 0 : owner_id(q, w);
      return false;
    }
    t = past_tail(q, t, steps); /* claimed at this lap, or got: read on */
  }
}

/* The first position not yet claimed (tail may lag behind it; approximate, as others claim meanwhile). */
static uint64_t tail_now(const mproc_queue *q) {
  uint64_t t = mproc__atomic_load64(&qs(q)->tail.v);
  for (uint64_t steps = 1;; ++t, ++steps) {
    uint64_t w = mproc__atomic_load64(&slot_at(q, t)->word);
    int32_t c = lap_cmp(w, lap_of(q, t));
    if (c < 0 || (c == 0 && w_state(w) == S_FREE)) return t;
    t = past_tail(q, t, steps);
  }
}

/* A claimed slot that will hold no item: got at once. */
static void drop_slot(mproc_queue *q, uint64_t pos) {
  queue_shared *s = qs(q);
  mproc__atomic_store64(&slot_at(q, pos)->word, mkword(lap_of(q, pos) + 1, S_FREE, 0));
  advance_head(q);
  ec_wake(q, &s->prod, 1);
  if (mproc__atomic_load32(&s->shut)) ec_wake(q, &s->cons, UINT32_MAX); /* gets waiting for the end */
}

/* For a record put: the owner to watch while the store is full (the taker of its oldest record, or the
 * writer of its slot). */
static bool taker_fn(mproc_queue *q, uint64_t pos, qslot *sl, uint64_t w, void *ctx) {
  (void)pos;
  uint64_t *watch = (uint64_t *)ctx;
  if (w_state(w) == S_READY || mproc__atomic_load64_relaxed(&sl->data[0]) != q->ring.pos->rpos) return false;
  *watch = owner_id(q, w);
  return true;
}

/* Who holds up room in the record store, under the lock: the oldest record's writer (a put that has
 * not claimed its place yet) or its taker, or 0. A put waiting for room watches it, so that its death
 * gives the room back (settle_dead): no get ever meets a record whose put died before taking a place. */
static uint64_t room_watch(mproc_queue *q) {
  queue_shared *s = qs(q);
  uint64_t watch = 0;
  const mproc__rec *front = s->pos.rpos < s->pos.wpos ? mproc__ring_at(&q->ring, s->pos.rpos) : NULL;
  if (front && mproc__rec_state(front) == MPROC__REC_WRITING)
    watch = front->owner;
  else if (front)
    each_slot(q, taker_fn, &watch);
  return watch;
}

/* Write an item over MPROC_QUEUE_INLINE bytes into a record of its own, before it takes a place in the
 * order: reserve the record under the lock (waiting for room), copy outside it. 0 with *rp, or an error. */
static int write_record(mproc_queue *q, const void *data, size_t len, uint64_t size, int64_t timeout_ms,
                        int64_t *deadline, uint64_t *rp) {
  queue_shared *s = qs(q);
  bool counted = false;
  uint32_t seen = 0;
  q_lock(q);
  for (;;) {
    bool shut = mproc__atomic_load32(&s->shut);
    *rp = shut ? UINT64_MAX : mproc__ring_reserve(&q->ring, size);
    if (*rp != UINT64_MAX) break;
    int rc = shut ? MPROC_ECLOSED : timeout_ms == 0 ? MPROC_EFULL : 0;
    if (!rc && counted) {
      uint64_t watch = room_watch(q);
      q_unlock(q);
      counted = false;
      if (!*deadline) *deadline = mproc__deadline_from_timeout(timeout_ms);
      rc = ec_sleep(q, &s->room, seen, watch, *deadline) == MPROC_ETIMEDOUT ? MPROC_EFULL : 0;
      q_lock(q);
    } else if (!rc) { /* count in, then look again */
      seen = ec_in(&s->room);
      counted = true;
    }
    if (rc) {
      if (counted) ec_out(&s->room);
      q_unlock(q);
      if (rc == MPROC_ECLOSED) return mproc__fail(rc, "queue_put: the queue was shut down");
      if (timeout_ms == 0) return mproc__fail(rc, "queue_put: the queue is full");
      return mproc__fail(rc, "queue_put: the queue stayed full for %lld ms", (long long)timeout_ms);
    }
  }
  if (counted) ec_out(&s->room);
  mproc__rec *r = mproc__ring_at(&q->ring, *rp);
  r->len = len;
  r->size = size;
  r->owner = mproc__pal_self_id();
  mproc__atomic_store32(&r->tag, 0);
  mproc__atomic_store32(&r->state, MPROC__REC_WRITING); /* killed from here to its slot's READY: settle_dead */
  mproc__ring_commit(&q->ring, *rp, size);
  q_unlock(q);
  test_hook(MPROC__QHOOK_RESERVED);
  memcpy(r + 1, data, len);
  return 0;
}

/* A record that will not be put after all. */
static void release_record(mproc_queue *q, uint64_t rp) {
  q_lock(q);
  mproc__atomic_store32(&mproc__ring_at(&q->ring, rp)->state, MPROC__REC_FREE);
  mproc__ring_advance(&q->ring);
  q_unlock(q);
  ec_wake(q, &qs(q)->room, UINT32_MAX);
}

/* Fill the slot claimed at pos with the item (in place, or rp: its record) and publish it. 0, or
 * MPROC_ECLOSED with the slot dropped (and the record freed) when the queue was shut down meanwhile. */
static inline int fill(mproc_queue *q, uint64_t pos, const void *data, size_t len, uint64_t rp) {
  queue_shared *s = qs(q);
  if (mproc__atomic_load32(&s->shut)) { /* shut down meanwhile: a get may have ended seeing no claim */
    drop_slot(q, pos);
    if (rp != UINT64_MAX) release_record(q, rp);
    return mproc__fail(MPROC_ECLOSED, "queue_put: the queue was shut down");
  }
  qslot *sl = slot_at(q, pos);
  if (rp == UINT64_MAX && len == 8) { /* a word: the copy inline */
    uint64_t word;
    memcpy(&word, data, 8);
    mproc__atomic_store64_relaxed(&sl->data[0], word);
  } else if (rp == UINT64_MAX) {
    uint64_t words[INLINE_WORDS] = {0};
    if (len) memcpy(words, data, len);
    for (uint32_t i = 0; i < (len + 7) / 8; ++i) mproc__atomic_store64_relaxed(&sl->data[i], words[i]);
  } else {
    mproc__rec *r = mproc__ring_at(&q->ring, rp);
    mproc__atomic_store64_relaxed(&sl->data[0], rp);
    mproc__atomic_store32(&r->tag, (uint32_t)pos);
    mproc__atomic_store32(&r->state, MPROC__REC_READY); /* killed from here to the slot's READY: its drop frees it */
  }
  mproc__atomic_store64_relaxed(&sl->len, len);
  test_hook(MPROC__QHOOK_PUBLISHING);
  mproc__atomic_store64(&sl->word, mkword(lap_of(q, pos), S_READY, 0)); /* the commit */
  ec_wake(q, &s->cons, 1);
  if (mproc__atomic_load32(&s->poll_waiters)) {
    q_lock(q);
    flag_update(q);
    q_unlock(q);
  }
  return 0;
}

/* The common put: an item in place (len <= MPROC_QUEUE_INLINE), this process's table index taken,
 * the queue open, room in the store, and the position after this handle's last claim free: claimed
 * with one compare-and-swap, filled and published. 0 or an error of fill; 1: nothing done (the long
 * way). */
static inline int put_fast(mproc_queue *q, const void *data, size_t len) {
  queue_shared *s = qs(q);
  uint64_t pos;
  uint32_t me = my_index_now(q);
  if (!me || mproc__atomic_load32(&q->closed) || mproc__atomic_load32(&s->shut) || bytes_full(q) ||
      !claim_next(q, me, &pos))
    return 1;
  return fill(q, pos, data, len, UINT64_MAX);
}

/* Every put but put_fast's: out of line, so that the common one needs none of its frame. */
static QUEUE_NOINLINE int put_long(mproc_queue *q, const void *data, size_t len, int64_t timeout_ms) {
  MPROC__CHECK_ARG_AS("queue_put", !q, "queue is NULL");
  MPROC__CHECK_ARG_AS("queue_put", !data && len, "data is NULL with len %zu", len);
  int rc = check_open(q, "queue_put");
  if (rc) return rc;
  queue_shared *s = qs(q);
  bool inline_item = len <= MPROC_QUEUE_INLINE;
  uint64_t size = inline_item ? 0 : mproc__ring_rec_size(&q->ring, len);
  if (size == UINT64_MAX)
    return mproc__fail(MPROC_EMSGSIZE, "queue_put: an item of %zu bytes can never fit (at most %zu)", len,
                       mproc_queue_max_item(q));
  uint32_t me = my_index(q, "queue_put");
  if (!me) return MPROC_ENOMEM;
  int64_t deadline = 0;
  uint64_t pos = 0, rp = UINT64_MAX;
  if (!inline_item && (rc = write_record(q, data, len, size, timeout_ms, &deadline, &rp)) != 0) return rc;
  bool counted = false;
  uint32_t seen = 0;
  for (;;) {
    rc = mproc__atomic_load32(&s->shut) ? MPROC_ECLOSED : 0;
    uint64_t watch = 0;
    bool no_bytes = !rc && inline_item && bytes_full(q);
    if (!rc && !no_bytes && claim(q, me, &pos, &watch)) break;
    if (no_bytes) { /* the store is full, an item in place waits with the records: watch what holds it */
      q_lock(q);
      watch = room_watch(q);
      q_unlock(q);
    }
    if (!rc && timeout_ms == 0) rc = MPROC_EFULL;
    if (!rc && !counted) { /* count in, then look again */
      seen = ec_in(&s->prod);
      counted = true;
      continue;
    }
    if (!rc) {
      counted = false;
      if (!deadline) deadline = mproc__deadline_from_timeout(timeout_ms);
      if (ec_sleep(q, &s->prod, seen, watch, deadline) == MPROC_ETIMEDOUT) rc = MPROC_ETIMEDOUT;
    }
    if (rc) {
      if (counted) ec_out(&s->prod);
      if (rp != UINT64_MAX) release_record(q, rp);
      if (rc == MPROC_ECLOSED) return mproc__fail(rc, "queue_put: the queue was shut down");
      if (rc == MPROC_EFULL) return mproc__fail(rc, "queue_put: the queue is full");
      return mproc__fail(MPROC_EFULL, "queue_put: the queue stayed full for %lld ms", (long long)timeout_ms);
    }
  }
  if (counted) ec_out(&s->prod);
  return fill(q, pos, data, len, rp);
}

int mproc_queue_put(mproc_queue *q, const void *data, size_t len, int64_t timeout_ms) {
  if (q && (data || !len) && len <= MPROC_QUEUE_INLINE) {
    int rc = put_fast(q, data, len);
    if (rc <= 0) return rc;
  }
  return put_long(q, data, len, timeout_ms);
}

int mproc_queue_put_nowait(mproc_queue *q, const void *data, size_t len) { return mproc_queue_put(q, data, len, 0); }

/* ---- get ------------------------------------------------------------------------------------------ */

typedef struct take {
  uint32_t me;
  bool joinable;
  size_t cap; /* SIZE_MAX: any size (an allocation follows) */
  int result; /* 0: nothing READY; 1: an item in place, copied to words; 2: a record, TAKING; 3: too big */
  uint64_t pos;
  uint64_t len;
  uint64_t words[INLINE_WORDS];
  look seen; /* what was met on the way */
} take;

static bool take_fn(mproc_queue *q, uint64_t pos, qslot *sl, uint64_t w, void *ctx) {
  take *t = (take *)ctx;
  queue_shared *s = qs(q);
  uint32_t lap = lap_of(q, pos);
  for (;;) {
    if (w_state(w) != S_READY) return look_fn(q, pos, sl, w, &t->seen); /* WRITING: the end, result 0 */
    uint64_t len = mproc__atomic_load64_relaxed(&sl->len);
    if (len <= MPROC_QUEUE_INLINE)
      for (uint32_t i = 0; i < (len + 7) / 8; ++i) t->words[i] = mproc__atomic_load64_relaxed(&sl->data[i]);
    uint64_t again = mproc__atomic_load64(&sl->word);
    if (again != w) { /* changed while read: look at it again */
      w = again;
      if (lap_cmp(w, lap) != 0) return false;
      continue;
    }
    t->pos = pos;
    t->len = len;
    if (len > t->cap) return t->result = 3, true; /* stays in the queue */
    if (len > MPROC_QUEUE_INLINE) {
      if (mproc__atomic_cas64(&sl->word, &w, mkword(lap, S_TAKING, t->me))) return t->result = 2, true;
    } else {
      proc *pr = &s->procs[t->me - 1];
      if (t->joinable) { /* counted as this process's before the item leaves (see join) */
        mproc__atomic_add64(&pr->outstanding, 1);
        mproc__atomic_add64(&s->outstanding, 1);
      }
      if (mproc__atomic_cas64(&sl->word, &w, mkword(lap + 1, S_FREE, 0))) return t->result = 1, true; /* the commit */
      if (t->joinable) {
        mproc__atomic_add64(&pr->outstanding, (uint64_t)-1);
        mproc__atomic_add64(&s->outstanding, (uint64_t)-1);
      }
    }
    if (lap_cmp(w, lap) != 0) return false;
  }
}

/* After a get of the item at pos: head, room for producers (a record: bytes for every waiting put), the
 * flag. */
static inline void after_get(mproc_queue *q, uint64_t pos, bool record) {
  queue_shared *s = qs(q);
  uint64_t h = pos;
  /* Got at head (the usual case): move it by one without reading the next slot, whose line the
   * producer is writing. Slots after it got meanwhile are passed over by the next get that finds head
   * behind (or by qsize). */
  if (mproc__atomic_load64(&s->hd.v) != pos || !mproc__atomic_cas64(&s->hd.v, &h, pos + 1)) advance_head(q);
  ec_wake(q, &s->prod, record ? UINT32_MAX : 1);
  if (record) ec_wake(q, &s->room, UINT32_MAX);
  /* Pass the wake on: a sleeper woken by a put behind an unfinished one found nothing to get and slept
   * again, so the put that ends that one wakes one get only. One load when nobody sleeps. */
  uint64_t c = mproc__atomic_load64(&s->cons.count);
  if ((uint32_t)(c >> 32) > (uint32_t)c && look_now(q).ready) ec_wake(q, &s->cons, 1);
  if (mproc__atomic_load32(&s->flag_set)) {
    q_lock(q);
    flag_update(q);
    q_unlock(q);
  }
}

/* The common get: the item at head is in place and READY and fits buf; it is copied out and taken
 * with one compare-and-swap (the commit), and head moved on. True with *len; false with nothing
 * changed for anything else (head behind or at a slot in flight, a record, an empty queue, a joinable
 * queue, a buffer too small, this process's first call), which the long way (each_slot, take_fn)
 * handles. It takes the item the long way would take: the first READY one from head. */
static inline bool get_fast(mproc_queue *q, void *buf, size_t cap, size_t *len) {
  queue_shared *s = qs(q);
  if (s->flavor == FLAVOR_JOINABLE || !my_index_now(q) || mproc__atomic_load32(&q->closed)) return false;
  uint64_t h = mproc__atomic_load64(&s->hd.v);
  qslot *sl = slot_at(q, h);
  uint32_t lap = lap_of(q, h);
  uint64_t w = mproc__atomic_load64(&sl->word);
  if (w != mkword(lap, S_READY, 0)) return false;
  uint64_t n = mproc__atomic_load64_relaxed(&sl->len);
  if (n > MPROC_QUEUE_INLINE || n > cap) return false;
  /* An item in place is not written while READY at this lap (it leaves it only for FREE at the next):
   * what is read now is what the compare-and-swap takes. */
  uint64_t words[INLINE_WORDS];
  if (n == 8)
    words[0] = mproc__atomic_load64_relaxed(&sl->data[0]);
  else
    for (uint32_t i = 0; i < (n + 7) / 8; ++i) words[i] = mproc__atomic_load64_relaxed(&sl->data[i]);
  if (!mproc__atomic_cas64(&sl->word, &w, mkword(lap + 1, S_FREE, 0))) return false; /* the commit */
  if (n == 8)
    memcpy(buf, words, 8);
  else if (n)
    memcpy(buf, words, n);
  *len = (size_t)n;
  after_get(q, h, false);
  return true;
}

/* get: into buf (cap bytes) when buf is set, else into an allocation (*out). */
static int queue_get(mproc_queue *q, void *buf, size_t cap, int64_t timeout_ms, void **out, size_t *len,
                     const char *call) {
  int rc = check_open(q, call);
  if (rc) return rc;
  queue_shared *s = qs(q);
  take t;
  t.me = my_index(q, call);
  if (!t.me) return MPROC_ENOMEM;
  t.joinable = s->flavor == FLAVOR_JOINABLE;
  t.cap = buf ? cap : SIZE_MAX;
  void *small = NULL; /* an allocation's room for an item in place, made before taking it */
  if (!buf && !(small = malloc(MPROC_QUEUE_INLINE)))
    return mproc__fail(MPROC_ENOMEM, "%s: out of memory for an item", call);
  int64_t deadline = 0;
  bool counted = false;
  uint32_t seen = 0;
  for (;;) {
    t.result = 0;
    t.seen.ready = t.seen.in_flight = false;
    t.seen.watch = 0;
    bool shut = mproc__atomic_load32(&s->shut);
    if (each_slot(q, take_fn, &t) && t.result) break;
    rc = shut && !t.seen.in_flight ? MPROC_EEOF : timeout_ms == 0 ? MPROC_EEMPTY : 0;
    if (!rc && !counted) { /* count in, then look again */
      seen = ec_in(&s->cons);
      counted = true;
      continue;
    }
    if (!rc) {
      counted = false;
      if (!deadline) deadline = mproc__deadline_from_timeout(timeout_ms);
      if (ec_sleep(q, &s->cons, seen, t.seen.watch, deadline) == MPROC_ETIMEDOUT) rc = MPROC_ETIMEDOUT;
    }
    if (rc) {
      if (counted) ec_out(&s->cons);
      free(small);
      if (rc == MPROC_EEOF) return mproc__fail(rc, "%s: the queue was shut down and is drained", call);
      if (rc == MPROC_EEMPTY) return mproc__fail(rc, "%s: the queue is empty", call);
      return mproc__fail(MPROC_EEMPTY, "%s: the queue stayed empty for %lld ms", call, (long long)timeout_ms);
    }
  }
  if (counted) ec_out(&s->cons);
  size_t n = (size_t)t.len;
  *len = n;
  if (t.result == 3) return mproc__fail(MPROC_EMSGSIZE, "%s: the item has %zu bytes, the buffer %zu", call, n, cap);
  qslot *sl = slot_at(q, t.pos);
  uint32_t lap = lap_of(q, t.pos);
  void *dst = buf ? buf : small;
  if (t.result == 2 && !buf) {
    free(small);
    if (!(dst = malloc(n))) { /* back, at its place */
      mproc__atomic_store64(&sl->word, mkword(lap, S_READY, 0));
      ec_wake(q, &s->cons, 1);
      return mproc__fail(MPROC_ENOMEM, "%s: out of memory for an item of %zu bytes", call, n);
    }
  }
  if (t.result == 1) {
    if (n) memcpy(dst, t.words, n);
  } else {
    test_hook(MPROC__QHOOK_TAKING);
    uint64_t rp = mproc__atomic_load64_relaxed(&sl->data[0]);
    mproc__rec *r = mproc__ring_at(&q->ring, rp);
    if (n) memcpy(dst, r + 1, n);
    q_lock(q);
    if (t.joinable) { /* counted as this process's before the item leaves (see join) */
      mproc__atomic_add64(&s->procs[t.me - 1].outstanding, 1);
      mproc__atomic_add64(&s->outstanding, 1);
    }
    mproc__atomic_store32(&r->state, MPROC__REC_FREE); /* the commit (a death after it: settle_fn) */
    mproc__ring_advance(&q->ring);
    mproc__atomic_store64(&sl->word, mkword(lap + 1, S_FREE, 0));
    q_unlock(q);
    if (mproc__atomic_load32(&s->shut)) ec_wake(q, &s->cons, UINT32_MAX); /* gets waiting for the end */
  }
  after_get(q, t.pos, t.result == 2);
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

/* Every get_into but get_fast's: out of line, so that the common one needs none of its frame. */
static QUEUE_NOINLINE int get_into_long(mproc_queue *q, void *buf, size_t cap, int64_t timeout_ms, size_t *len) {
  MPROC__CHECK_ARG_AS("queue_get_into", !q || !len, "queue and len must be set");
  MPROC__CHECK_ARG_AS("queue_get_into", !buf && cap, "buf is NULL with cap %zu", cap);
  static unsigned char none;
  *len = 0;
  return queue_get(q, buf ? buf : &none, cap, timeout_ms, NULL, len, "queue_get_into");
}

int mproc_queue_get_into(mproc_queue *q, void *buf, size_t cap, int64_t timeout_ms, size_t *len) {
  if (q && buf && len && get_fast(q, buf, cap, len)) return 0;
  return get_into_long(q, buf, cap, timeout_ms, len);
}

/* ---- state -------------------------------------------------------------------------------------------- */

size_t mproc_queue_qsize(const mproc_queue *q) {
  if (!q) return 0;
  const queue_shared *s = qs(q);
  advance_head((mproc_queue *)q); /* over slots got behind one got last */
  uint64_t h = mproc__atomic_load64(&s->hd.v), t = tail_now(q);
  return t > h ? (size_t)(t - h) : 0;
}
bool mproc_queue_empty(const mproc_queue *q) { return !q || !look_now((mproc_queue *)q).ready; }
bool mproc_queue_full(const mproc_queue *q) {
  if (!q) return false;
  uint64_t t = tail_now(q);
  return lap_cmp(mproc__atomic_load64(&slot_at(q, t)->word), lap_of(q, t)) < 0 || bytes_full(q);
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
  q_unlock(q);
  wake_all(q);
  return 0;
}

/* ---- JoinableQueue ------------------------------------------------------------------------------ */

static int check_joinable(const mproc_queue *q, const char *call) {
  if (qs(q)->flavor != FLAVOR_JOINABLE) return mproc__fail(MPROC_ESTATE, "%s: the queue is not joinable", call);
  return 0;
}

/* Nothing left: no item in the order and no task unfinished. */
static bool all_done(mproc_queue *q) {
  look l = look_now(q);
  return !l.ready && !l.in_flight && mproc__atomic_load64(&qs(q)->outstanding) == 0;
}

int mproc_queue_task_done(mproc_queue *q) {
  MPROC__CHECK_ARG(!q, "queue is NULL");
  int rc = check_joinable(q, "queue_task_done");
  if (rc) return rc;
  queue_shared *s = qs(q);
  q_lock(q);
  uint32_t i = mproc__atomic_load32(&q->me); /* this process's, else any (any process may say done) */
  uint32_t k = i && mproc__atomic_load64(&s->procs[i - 1].owner) == mproc__pal_self_id() &&
                       mproc__atomic_load64(&s->procs[i - 1].outstanding)
                   ? i - 1
                   : 0;
  while (k < PROCS && !mproc__atomic_load64(&s->procs[k].outstanding)) ++k;
  if (k == PROCS) {
    q_unlock(q);
    return mproc__fail(MPROC_ESTATE, "queue_task_done: called more times than items were got");
  }
  mproc__atomic_add64(&s->procs[k].outstanding, (uint64_t)-1);
  mproc__atomic_add64(&s->outstanding, (uint64_t)-1);
  bool done = all_done(q);
  q_unlock(q);
  if (done) ec_wake(q, &s->join, UINT32_MAX);
  return 0;
}

/* Write off the tasks of consumers that have ended (under the lock): how many. */
static uint64_t write_off_dead(mproc_queue *q) {
  queue_shared *s = qs(q);
  uint64_t lost = 0;
  for (uint32_t i = 0; i < PROCS; ++i) {
    proc *c = &s->procs[i];
    uint64_t n = mproc__atomic_load64(&c->outstanding);
    if (!n || mproc__pal_id_alive(mproc__atomic_load64(&c->owner))) continue;
    lost += n;
    mproc__atomic_add64(&s->outstanding, (uint64_t)0 - n);
    mproc__atomic_store64(&c->outstanding, 0);
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
  for (;;) {
    uint32_t seen = ec_in(&s->join); /* then look */
    if (all_done(q)) {
      ec_out(&s->join);
      return 0;
    }
    q_lock(q);
    settle_dead(q, 0); /* a dead producer's half item would hold join for ever */
    uint64_t lost = write_off_dead(q);
    uint64_t watch = 0;
    for (uint32_t i = 0; i < PROCS && !watch; ++i)
      if (mproc__atomic_load64(&s->procs[i].outstanding)) watch = mproc__atomic_load64(&s->procs[i].owner);
    q_unlock(q);
    if (lost) {
      ec_out(&s->join);
      if (all_done(q)) ec_wake(q, &s->join, UINT32_MAX);
      return mproc__fail(MPROC_EWORKERDIED, "queue_join: a consumer died with %llu unfinished tasks (written off)",
                         (unsigned long long)lost);
    }
    if (timeout_ms == 0 || mproc__ms_until(deadline) == 0) {
      ec_out(&s->join);
      return mproc__fail(MPROC_ETIMEDOUT, "queue_join: tasks were unfinished after %lld ms", (long long)timeout_ms);
    }
    if (!watch) watch = look_now(q).watch;
    int64_t until = mproc__pal_monotonic_ns() + JOIN_CHECK_NS;
    ec_sleep(q, &s->join, seen, watch, deadline < until ? deadline : until);
  }
}

/* ---- waiting with mproc_wait, handing on -------------------------------------------------------- */

int mproc__queue_wait_prepare(void *obj, mproc__wait_item *item, bool *ready_now) {
  mproc_queue *q = (mproc_queue *)obj;
  if (q->flag == MPROC_NO_HANDLE)
    return mproc__fail(MPROC_ENOTSUP, "wait: a queue cannot be waited on with other handles on this system");
  if (mproc__atomic_load32(&q->closed)) return mproc__fail(MPROC_ECLOSED, "wait: the queue was closed in this process");
  queue_shared *s = qs(q);
  mproc__atomic_add32(&s->poll_waiters, 1); /* then look: a put after this sets the flag */
  *ready_now = mproc__atomic_load32(&s->shut) || look_now(q).ready;
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
  uint64_t size = q->o.shm.size;
  bool has_flag = at < len && b[at] == 1;
  bool ok = at + 1 == len && b[at] <= 1 && used + has_flag == n && s->cap % MPROC__REC_ALIGN == 0 &&
            s->cap >= MIN_BYTES && s->nprocs >= 1 && s->nprocs <= PROCS && s->nslots >= 1 &&
            s->nslots <= s->cap / MPROC__REC_ALIGN && s->slots_off >= sizeof(queue_shared) &&
            s->slots_off % SLOT_BYTES == 0 && s->slots_off <= size && (size - s->slots_off) / SLOT_BYTES >= s->nslots &&
            s->data_off >= s->slots_off + s->nslots * SLOT_BYTES && s->data_off <= size &&
            size - s->data_off >= s->cap && (!has_flag || mproc__pal_handle_kind(hs[used]) != MPROC__HK_INVALID);
  if (!ok) {
    mproc__sobj_unmap(&q->o);
    free(q);
    return mproc__fail(MPROC_ESYS, "a handed queue is malformed");
  }
  q->flag = has_flag ? hs[used] : MPROC_NO_HANDLE;
  view(q);
  *obj = q;
  return 0;
}

const mproc__handable_type mproc__queue_handable = {MPROC_OBJECT_QUEUE, "queue", queue_export, queue_import};
