/* Pools (mproc/pool.h): the parent's side. Workers and the messages they speak: pool_internal.h.
 *
 * One mutex (in a core shared with the results, which may outlive the pool) guards everything. Any
 * thread that submits work, and the result thread after each reply, sends pending tasks to workers
 * that have room (pump): a worker takes one task, and a second one ahead when both are small, so
 * that a send never waits on a worker that is itself waiting to send its reply (a deadlock between
 * two full pipes). The result thread waits (mproc_wait) on every worker's connection and process
 * and on a wake-up connection, takes replies, completes results, runs callbacks (outside the mutex),
 * replaces dead workers, and ends workers whose task ran out of time. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../atomic.h"
#include "../connection_internal.h"
#include "../pal.h"
#include "../process/zygote.h"
#include "../wire.h"
#include "mproc/pool_backend.h"
#include "mproc/shared.h"
#include "pool_internal.h"

enum { RUN = 0, CLOSED = 1, TERMINATED = 2 };
#define SMALL_TASK (16u << 10)   /* a task is sent ahead of another only when both are at most this */
#define WINDOW MPROC__POOL_RING  /* tasks in flight to one worker whose tasks are quick (its ring's slots) */
#define WINDOW_BYTES (32u << 10) /* and their bytes: never more than a connection's buffer holds */
#define QUICK_NS 100000          /* quick: a worker's tasks took under 100 us each, lately */
/* While a quick worker has tasks, the result thread looks at the rings HOLD_MS after it last found a reply
 * there, then at twice the interval while it finds none (a slow task runs), up to HOLD_MS_MAX. */
#define HOLD_MS 1
#define HOLD_MS_MAX 16
/* Workers that end before their first task, this many in a row with no reply between, break the pool
 * (an initializer that fails, a worker that cannot start): restarting them for ever would hang every
 * caller, as CPython's Pool does. */
#define EARLY_DEATHS_MAX 8

#define INNER_INPUT_MAX 128        /* a one-input submission's input up to this: its task lies in its result's block */
#define CACHE_KEEP_NS 1000000000LL /* kept result blocks go back once the pool is idle this long */
static volatile uint64_t keep_ns = CACHE_KEEP_NS; /* (tests set it: mproc__pool_set_keep_ns) */

typedef struct core {
  mproc__mutex *mu;
  mproc__cond *cv;
  size_t refs;       /* the pool and each result */
  bool calling_back; /* the result thread runs a callback */
  /* While the result thread takes replies (its id here), its broadcasts of cv wait until it lets go of mu
   * (result_notify, notify_due), so a waiter it wakes does not at once sleep again on the mutex. Other
   * threads broadcast at once (the result thread may let go of mu midway, as worker_died does). */
  uint32_t notify_later;
  bool notify_due;
  struct mproc_pool *pool; /* NULL once the pool is freed (results outlive it) */
  /* The blocks of one-input results (an apply's), kept for the next ones once freed (result_block): one
   * list per class of the input's room, 16 bytes a class. A burst of calls then reuses the last burst's
   * blocks, warm, instead of the allocator's, which gave the freed heap back to the system and took it
   * again, a page fault every few calls. Given back once the pool has been idle keep_ns (result_thread). */
  void *cache[INNER_INPUT_MAX / 16 + 1];
  uint64_t cache_takes;
  /* The result thread sleeps for good, the pool idle a whole keep_ns and its kept blocks given back: the next
   * block kept wakes it (once), to be given back keep_ns later. */
  bool cache_watch;
} core;

/* An array map's arena (pool_internal.h): a shared block a process pool keeps and reuses, or a heap block
 * for a ThreadPool. */
typedef struct arena {
  struct arena *next; /* in the pool's cache of free arenas */
  uint64_t id;
  mproc_value *v;      /* a process pool's block */
  void *heap;          /* a ThreadPool's */
  unsigned char *base; /* either */
  size_t cap;
  size_t users; /* the array tasks that use it */
  bool lent;    /* lent to the caller (mproc_pool_array_alloc) */
  core *k;
} arena;

typedef struct task {
  struct task *next;
  mproc_async_result *r;
  size_t fn;                /* index in the pool's table */
  size_t first, n;          /* the result's items it computes (an array task: none) */
  mproc__buf msg;           /* the task message */
  int64_t started;          /* when its worker began it */
  arena *arena;             /* an array task ('A'): its map's arena (the header, and what was copied) */
  arena *lent[2];           /* ... and the caller's blocks where its inputs, its outputs lie (or NULL) */
  size_t chunk;             /* an array task: the records per claim */
  struct task_block *block; /* a map's tasks built at once: the block it and its message lie in (or NULL) */
  bool lone;                /* its result's only task (pump: that result cannot fail while it waits) */
  bool inner;               /* it and its message lie in its result's block (submit: one small input) */
} task;

/* A map's tasks and their messages in one allocation (task_block_new): one malloc for a map of many
 * small tasks instead of two per task. Freed with its last task. */
typedef struct task_block {
  volatile uint64_t live; /* its tasks not freed yet */
} task_block;

struct mproc_async_result {
  core *k;
  size_t tasks; /* tasks that still refer to it */
  bool user_gone;
  size_t n, done;
  struct item {
    void *data;
    size_t len;
    bool ready;
    bool live;     /* lazy imap: taken and not freed yet */
    bool borrowed; /* data lies in the block of its task's first item (which frees it), or in a slab */
  } * items;
  /* A result of one item (an apply) keeps it here, and its output too where it fits: an apply_async
   * allocated four blocks, two of them this small. */
  struct item one;
  union {
    long double align; /* (as malloc aligns: an output is any type's) */
    unsigned char b[16];
  } one_out;
  /* Small outputs of lone-item tasks (a map at chunksize 1) are carved from slabs the result frees as a
   * whole: a malloc and a free per item were a third of such a map's time. */
  struct slab *slabs; /* the current one first */
  char *slab_at;
  size_t slab_left;
  bool ready, ok;
  unsigned char cls;       /* a one-input result's block: its class in the core's cache + 1 (0: not such a block) */
  volatile uint32_t whole; /* ready and ok, not an imap: its items are final (read without the mutex) */
  int code;
  char *message;
  size_t failed_at; /* the first item that failed (SIZE_MAX: none) */
  mproc_async_opts opts;
  bool imap, ordered;
  size_t next;           /* imap: the next item to hand out (ordered), or position in order[] */
  size_t *order, norder; /* imap unordered: items in the order they completed */
  mproc_os_handle flag;  /* for mproc_wait, made on its first use (MPROC_NO_HANDLE: none) */
  bool flag_set;
  /* Ready, and its callback (or error callback) is still to run: waiters other than the thread running
   * it wait for it, as in CPython, where get() returns once the callback has run. */
  bool calling;
  uint32_t cb_thread; /* the thread running its callback */
  /* A lazy imap (mproc_pool_imap_lazy): n counts the inputs taken so far; item i lives in items[i % nslots]
   * from when it is taken until the next call after next() handed it out (held, live). */
  bool lazy;
  size_t nslots;        /* items[] and order[] (the window); n for the others */
  mproc_input_fn input; /* NULL once it has ended */
  void *input_user;
  size_t fn, chunk; /* the task function's index, inputs per task */
  size_t base;      /* the oldest input whose slot is not free yet */
  size_t held;      /* the item next() handed out last (SIZE_MAX: none) */
  bool pulling;     /* a thread is taking inputs (outside the mutex) */
  /* An array map: its arena while tasks use it, and where its outputs go (items[] is not used). */
  arena *arena;
  unsigned char *out;
  size_t out_size, out_off;
};

typedef struct worker {
  mproc_process *proc; /* a process worker */
  mproc__thread *thr;  /* a thread worker */
  mproc_connection *conn;
  mproc__pool_ring *ring;      /* its replies (or NULL: they come on conn) */
  mproc_pool_replies *replies; /* a backend's worker's ring, shared with the backend (or NULL) */
  bool ended;                  /* its connection ended, perhaps with replies left in the ring */
  /* A reply its ring's slot sends on the connection, received before the replies ahead of it in the ring
   * were taken (the ring looked empty, then filled while the message came): kept until its slot is next. */
  char *held;
  size_t held_len;
  task *inflight[WINDOW]; /* a circle, oldest first from infirst: inflight_at(w, 0) is running (or next to) */
  size_t infirst;
  size_t ninflight;
  size_t inbytes;   /* the task messages in flight */
  int64_t avg_ns;   /* how long its tasks took lately (from its previous reply, or the send, to the reply) */
  uint64_t sent;    /* tasks sent (maxtasksperchild) */
  uint64_t replied; /* replies received */
  size_t fns_known; /* functions defined to it */
  bool broken;      /* a send failed: it is dying */
  bool timed_out;   /* killed for its task's time */
  uint64_t gen;     /* which worker of this slot (each replacement is the next) */
  uint64_t *arenas; /* the arenas sent to it ('S') */
  size_t narenas;
  mproc__buf batch; /* tasks for it gathered in one pump ('B'), sent at its end */
  size_t nbatch;
  bool fed; /* pump(ahead false): gets tasks in this pump */
} worker;

/* w's i-th task in flight, oldest first. */
static inline task *inflight_at(const worker *w, size_t i) { return w->inflight[(w->infirst + i) % WINDOW]; }

typedef struct thread_worker { /* what a thread worker's thread gets */
  mproc_connection *conn;
  mproc__pool_worker_cfg cfg;
} thread_worker;

struct mproc_pool {
  core *k;
  mproc_pool_opts o;
  mproc__buf worker_arg;   /* a process worker's argument bytes, but its slot */
  mproc_value *slots;      /* process workers: each slot's reply ring (pool_internal.h), shared */
  mproc__pool_ring *rings; /* those rings (a ThreadPool's: on the heap); NULL for a backend's workers */
  bool ringed;             /* the workers reply through rings (rings, or a backend's hands_replies) */
  mproc__zygote *zygote;   /* fork workers: forks those started once the result thread runs (zygote.h) */
  bool threaded;           /* the result thread is (about to be) running */
  bool polls;              /* the result thread polls the backend (backend->poll: a task is in flight) */
  bool poll_due;           /* a backend's worker was started: the result thread polls (backend->poll) */
  worker *w;
  size_t nw;
  task *head, *tail; /* pending */
  void **fns;
  mproc__buf *refs;
  size_t nfns;
  mproc__thread *thr;
  volatile uint32_t thr_id; /* the result thread's id (callbacks run there) */
  mproc_connection *wake_tx, *wake_rx;
  struct callback_call *later; /* callbacks for the result thread to run (a cancelled result's) */
  size_t nlater, caplater;
  arena *arenas; /* free arenas, kept for the next array map */
  arena *lent;   /* arenas lent to the caller */
  uint64_t arena_ids;
  int state;
  bool finished;       /* the result thread has ended */
  size_t early_deaths; /* workers in a row that ended before their first task (EARLY_DEATHS_MAX) */
  char broken[320];    /* why the pool takes no more work (its workers kept dying); "": it does */
};

/* ---- the core, results -------------------------------------------------------------------------- */

static void wake_result_thread(mproc_pool *p);

static void core_release(core *k) { /* with k->mu held; unlocks it */
  bool last = --k->refs == 0;
  mproc__pal_mutex_unlock(k->mu);
  if (!last) return;
  mproc__pal_mutex_free(k->mu);
  mproc__pal_cond_free(k->cv);
  free(k);
}

struct slab {
  struct slab *next;
};

#define SLAB_HEAD 16           /* a slab's head, rounded to the outputs' alignment */
#define SLAB_BYTES (64u << 10) /* a slab's room at most */
#define SLAB_OUTPUT_MAX 256    /* a larger output has a block of its own */

static void result_free_items(mproc_async_result *r) {
  if (r->flag != MPROC_NO_HANDLE) mproc__pal_close(r->flag);
  r->flag = MPROC_NO_HANDLE;
  for (size_t i = 0; r->items && i < r->nslots; ++i)
    if (!r->items[i].borrowed) free(r->items[i].data);
  while (r->slabs) {
    struct slab *s = r->slabs;
    r->slabs = s->next;
    free(s);
  }
  if (r->items != &r->one) free(r->items);
  free(r->order);
  free(r->message);
}

/* With k's mutex held: free r's block, or keep it for the next one-input submission while the pool takes work
 * (its first bytes then link the class's list). */
static void result_block_free(core *k, mproc_async_result *r) {
  if (!r->cls || !k->pool || k->pool->state != RUN) {
    free(r);
    return;
  }
  void **list = &k->cache[r->cls - 1];
  memcpy((void *)r, (const void *)list, sizeof *list);
  *list = r;
  if (k->cache_watch) { /* (the result thread sleeps for good: it gives the block back keep_ns from now) */
    k->cache_watch = false;
    wake_result_thread(k->pool);
  }
}

/* With k's mutex held: a kept block of class c, off its list, or NULL. */
static void *cache_pop(core *k, size_t c) {
  void *b = k->cache[c];
  if (!b) return NULL;
  memcpy((void *)&k->cache[c], b, sizeof k->cache[c]);
  return b;
}

/* With k's mutex held: free the kept blocks. */
static void cache_drain(core *k) {
  for (size_t c = 0; c < MPROC__ARRAY_LEN(k->cache); ++c)
    for (void *b; (b = cache_pop(k, c)) != NULL;) free(b);
}

/* Free a result that submit made and will not hand out (NULL: nothing). */
static void result_discard(mproc_async_result *r) {
  if (!r) return;
  result_free_items(r);
  free(r);
}

size_t mproc__pool_kept_blocks(mproc_pool *p) {
  size_t n = 0;
  mproc__pal_mutex_lock(p->k->mu);
  for (size_t c = 0; c < MPROC__ARRAY_LEN(p->k->cache); ++c)
    for (void *b = p->k->cache[c]; b; memcpy(&b, b, sizeof b)) ++n;
  mproc__pal_mutex_unlock(p->k->mu);
  return n;
}

void mproc__pool_set_keep_ns(uint64_t ns) { mproc__atomic_store64(&keep_ns, ns ? ns : CACHE_KEEP_NS); }

/* With the mutex held: drop one reference (a task's or the user's); the last frees it. Unlocks. */
static void result_release(mproc_async_result *r, bool user) {
  core *k = r->k;
  if (user)
    r->user_gone = true;
  else
    --r->tasks;
  if (r->user_gone && r->tasks == 0) {
    result_free_items(r);
    result_block_free(k, r);
    core_release(k);
    return;
  }
  mproc__pal_mutex_unlock(k->mu);
}

/* With the mutex held: a task lets go of r (freed when the user has too). */
static void task_unref(core *k, mproc_async_result *r) {
  if (--r->tasks || !r->user_gone) return;
  result_free_items(r);
  result_block_free(k, r);
  --k->refs; /* never the last: the pool holds one */
}

/* Item i of r (a lazy imap keeps a window of them). */
static struct item *item_at(mproc_async_result *r, size_t i) { return &r->items[r->lazy ? i % r->nslots : i]; }

/* With the mutex held: whether a waiter on r can make progress: it is ready; for imap, the next item
 * (or the end, or the failure) is there. */
static bool result_can_progress(const mproc_async_result *r) {
  if (r->ready || !r->imap) return r->ready && !r->calling;
  if (r->next >= r->n) return true; /* the end, or (lazy) next() takes more input */
  size_t at = r->ordered ? r->next : r->next < r->norder ? r->order[r->next % r->nslots] : SIZE_MAX;
  return at != SIZE_MAX && item_at((mproc_async_result *)r, at)->ready;
}

/* With the mutex held: r changed (an item or its end came): wake its waiters, and its flag for mproc_wait
 * when they can make progress now. */
static void result_notify(mproc_async_result *r) {
  if (r->k->notify_later && r->k->notify_later == mproc__pal_thread_id())
    r->k->notify_due = true;
  else
    mproc__pal_cond_broadcast(r->k->cv);
  if (r->flag != MPROC_NO_HANDLE && !r->flag_set && result_can_progress(r)) {
    mproc__pal_flag_set(r->flag);
    r->flag_set = true;
  }
}

/* With the mutex held: r has every item (its callback, if any, still to run). */
static void result_succeed(mproc_async_result *r) {
  r->ready = r->ok = true;
  r->calling = r->opts.callback != NULL;
  if (!r->imap) mproc__atomic_store32(&r->whole, 1); /* after its items: they no longer change */
}

/* With the mutex held: fail r (the first failure wins). Returns whether it became ready now. calls_back:
 * the caller has its error callback run (all but terminate, which runs none). */
static bool result_fail(mproc_async_result *r, int code, size_t item, const char *message, bool calls_back) {
  if (r->ready) return false;
  r->ready = true;
  r->ok = false;
  r->code = code;
  r->failed_at = item;
  r->message = mproc__strdup(message);
  r->calling = calls_back && r->opts.error_callback;
  if (r->arena) mproc__atomic_store32(&((mproc__pool_array_hdr *)(void *)r->arena->base)->stop, 1);
  result_notify(r);
  return true;
}

/* ---- tasks ---------------------------------------------------------------------------------------- */

static int put_u64(mproc__buf *b, uint64_t v) {
  unsigned char w[8];
  mproc__wire_put_le64(w, v);
  return mproc__buf_append(b, w, 8);
}

/* The table index of fn (with the mutex held), located on first use. */
static int fn_index(mproc_pool *p, void *fn, size_t *index) {
  for (size_t i = 0; i < p->nfns; ++i)
    if (p->fns[i] == fn) {
      *index = i;
      return 0;
    }
  mproc__buf ref = {0};
  int rc = mproc__pal_fn_locate(fn, &ref);
  if (rc) {
    mproc__buf_free(&ref);
    return mproc__fail(rc, "pool: the task function cannot be found in a worker: %s", mproc_last_error());
  }
  void **fns = (void **)realloc(p->fns, (p->nfns + 1) * sizeof *fns);
  if (fns) p->fns = fns;
  mproc__buf *refs = fns ? (mproc__buf *)realloc(p->refs, (p->nfns + 1) * sizeof *refs) : NULL;
  if (refs) p->refs = refs;
  if (!fns || !refs) {
    mproc__buf_free(&ref);
    return mproc__fail(MPROC_ENOMEM, "pool: out of memory");
  }
  p->fns[p->nfns] = fn;
  p->refs[p->nfns] = ref;
  *index = p->nfns++;
  return 0;
}

static void arena_unuse(arena *a);

static void task_free(task *t) {
  if (t->arena) /* what its worker wrote comes before the arena's next use */
    (void)mproc__atomic_load64(&((const mproc__pool_array_hdr *)(const void *)t->arena->base)->parts);
  if (t->arena && t->arena->users == 1) t->r->arena = NULL; /* the map's last task: the arena goes back */
  if (t->arena) arena_unuse(t->arena);
  for (int i = 0; i < 2; ++i)
    if (t->lent[i]) arena_unuse(t->lent[i]);
  if (t->block) {
    if (mproc__atomic_add64(&t->block->live, (uint64_t)-1) == 1) free(t->block);
    return;
  }
  if (t->inner) return; /* (its result, which outlives it, frees it) */
  mproc__buf_free(&t->msg);
  free(t);
}

/* A task of r's inputs from `first` on, without inputs yet (task_add adds them). NULL: out of memory. */
static task *task_begin(mproc_async_result *r, size_t fn, size_t first) {
  task *t = (task *)calloc(1, sizeof *t);
  if (!t) return NULL;
  t->r = r;
  t->fn = fn;
  t->first = first;
  int rc = mproc__buf_append(&t->msg, "T", 1);
  if (!rc) rc = put_u64(&t->msg, fn);
  if (!rc) rc = put_u64(&t->msg, 0); /* the count, kept up by task_add */
  if (rc) {
    task_free(t);
    return NULL;
  }
  return t;
}

static int task_add(task *t, const void *data, size_t len) {
  int rc = put_u64(&t->msg, len);
  if (!rc && len) rc = mproc__buf_append(&t->msg, data, len);
  if (!rc) mproc__wire_put_le64((unsigned char *)t->msg.data + 9, ++t->n);
  return rc;
}

/* A task of the n inputs in[0..n), r's items from `first` on. NULL: out of memory. */
static task *task_new(mproc_async_result *r, size_t fn, size_t first, size_t n, const mproc_bytes *in) {
  task *t = task_begin(r, fn, first);
  for (size_t i = 0; i < n && t; ++i)
    if (task_add(t, in[i].data, in[i].len) != 0) {
      task_free(t);
      t = NULL;
    }
  return t;
}

#define BLOCK_MAX ((size_t)16 << 20) /* a map whose task messages take more: a buffer per task */

/* The bytes an input takes in a task message: its length word, then itself. */
static size_t task_input_bytes(size_t len) { return 8 + len; }

#define TASK_HEAD 17 /* a task message's head: 'T', the function, the count */

/* Write a task message's head ('T', the function, the count) at `at`, then the inputs in[0..n) after it;
 * returns the end. */
static char *task_message_put(char *at, size_t fn, const mproc_bytes *in, size_t n) {
  *at = MPROC__POOL_TASK;
  mproc__wire_put_le64((unsigned char *)at + 1, fn);
  mproc__wire_put_le64((unsigned char *)at + 9, n);
  at += TASK_HEAD;
  for (size_t i = 0; i < n; ++i) {
    mproc__wire_put_le64((unsigned char *)at, in[i].len);
    mproc__copy(at + 8, in[i].data, in[i].len);
    at += task_input_bytes(in[i].len);
  }
  return at;
}

_Static_assert(_Alignof(struct mproc_async_result) % _Alignof(task) == 0, "a task may follow a result");

/* The task of r's one input, in r's block after r itself (room made by submit; zeroed). */
static task *task_inner(mproc_async_result *r, size_t fn, const mproc_bytes *in) {
  task *t = (task *)(void *)(r + 1); /* (r's size is a multiple of its alignment, which a task's divides) */
  t->r = r;
  t->fn = fn;
  t->n = 1;
  t->inner = true;
  t->msg.data = (char *)(t + 1);
  t->msg.len = t->msg.cap = (size_t)(task_message_put(t->msg.data, fn, in, 1) - t->msg.data);
  return t;
}

/* A new result of n items (r from calloc, or result_block; NULL: nothing): false when r is NULL or memory
 * ran out (then the caller lets r go: result_discard). */
static bool result_init(mproc_async_result *r, size_t n, bool imap, bool ordered, const mproc_async_opts *o) {
  if (!r) return false;
  r->flag = MPROC_NO_HANDLE;
  r->n = r->nslots = n;
  r->held = SIZE_MAX;
  r->failed_at = SIZE_MAX;
  r->imap = imap;
  r->ordered = ordered;
  if (o) r->opts = *o;
  r->items = n == 1 ? &r->one : (struct item *)calloc(n ? n : 1, sizeof *r->items);
  r->order = imap && !ordered ? (size_t *)calloc(n ? n : 1, sizeof *r->order) : NULL;
  return r->items && (!imap || ordered || r->order);
}

/* With k's mutex held: a one-input result's block, for an input of len bytes (up to INNER_INPUT_MAX), its
 * result and task zeroed: a kept one (result_block_free) or a new one (allocated under the lock: the first
 * burst's calls). NULL: out of memory. */
static mproc_async_result *result_block(core *k, size_t len) {
  size_t c = (len + 15) / 16;
  mproc_async_result *r = (mproc_async_result *)cache_pop(k, c);
  if (r) {
    ++k->cache_takes;
    memset(r, 0, sizeof *r + sizeof(task)); /* (its message is written whole) */
  } else {
    r = (mproc_async_result *)calloc(1, sizeof *r + sizeof(task) + TASK_HEAD + task_input_bytes(c * 16));
  }
  if (r) r->cls = (unsigned char)(c + 1);
  return r;
}

/* The tasks of r's inputs in[0..n), `chunk` a task, in one block, linked from *first; how many there are
 * in *ntasks. in_bytes: the bytes the inputs take in messages, their length words included (more than
 * BLOCK_MAX for any count above it). 0; 1 when the block would take more than BLOCK_MAX (build them one
 * by one instead); or MPROC_ENOMEM. */
static int task_block_new(mproc_async_result *r, size_t fn, const mproc_bytes *in, size_t n, size_t chunk,
                          size_t in_bytes, task **first, size_t *ntasks) {
  size_t nt = (n + chunk - 1) / chunk, head = (sizeof(task_block) + 15) / 16 * 16; /* (a task's alignment divides 16) */
  size_t bytes = head + nt * sizeof(task);
  if (in_bytes > BLOCK_MAX || bytes + in_bytes > BLOCK_MAX) return 1;
  bytes += in_bytes + nt * TASK_HEAD;
  task_block *b = (task_block *)malloc(bytes);
  if (!b) return MPROC_ENOMEM;
  memset(b, 0, head + nt * sizeof(task)); /* (every byte of the messages is written below) */
  b->live = nt;
  task *ts = (task *)(void *)((unsigned char *)b + head);
  char *at = (char *)(ts + nt);
  for (size_t k = 0, i = 0; k < nt; ++k) {
    task *t = &ts[k];
    t->r = r;
    t->fn = fn;
    t->first = i;
    t->n = n - i < chunk ? n - i : chunk;
    t->block = b;
    t->next = k + 1 < nt ? &ts[k + 1] : NULL;
    t->msg.data = at;
    at = task_message_put(at, fn, in + i, t->n);
    i += t->n;
    t->msg.len = t->msg.cap = (size_t)(at - t->msg.data);
  }
  *first = ts;
  *ntasks = nt;
  return 0;
}

static bool worker_live(const struct worker *w);

/* ---- arenas (the array path) ---------------------------------------------------------------------- */

#define ARENA_MIN ((size_t)64 << 10)
#define ARENAS_KEPT 2 /* free arenas a pool keeps */

/* Free an arena (with the mutex held): the workers that have it let it go. */
static void arena_free(arena *a) {
  mproc_pool *p = a->k->pool;
  for (size_t i = 0; p && a->v && i < p->nw; ++i) {
    worker *w = &p->w[i];
    for (size_t j = 0; j < w->narenas; ++j) {
      if (w->arenas[j] != a->id) continue;
      w->arenas[j] = w->arenas[--w->narenas];
      unsigned char m[9] = {MPROC__POOL_UNMAP};
      mproc__wire_put_le64(m + 1, a->id);
      if (worker_live(w) && mproc_connection_send_bytes(w->conn, m, sizeof m, 0, sizeof m) != 0) {
        mproc_clear_error();
        w->broken = true;
      }
      break;
    }
  }
  mproc_value_destroy(a->v);
  free(a->heap);
  free(a);
}

/* An array task is done with its arena (with the mutex held): the last one gives it back to the pool's
 * cache (or frees it). */
static void arena_unuse(arena *a) {
  if (--a->users || a->lent) return;
  mproc_pool *p = a->k->pool;
  if (!p || p->state != RUN) {
    arena_free(a);
    return;
  }
  a->next = p->arenas;
  p->arenas = a;
  size_t kept = 0;
  arena **smallest = NULL;
  for (arena **at = &p->arenas; *at; at = &(*at)->next) {
    ++kept;
    if (!smallest || (*at)->cap < (*smallest)->cap) smallest = at;
  }
  if (kept > ARENAS_KEPT) {
    arena *x = *smallest;
    *smallest = x->next;
    arena_free(x);
  }
}

/* An arena of at least `need` bytes (with the mutex held): a free one of the pool's, else a new one. */
static int arena_take(mproc_pool *p, size_t need, arena **out) {
  for (arena **at = &p->arenas; *at; at = &(*at)->next)
    if ((*at)->cap >= need) {
      *out = *at;
      *at = (*at)->next;
      (*out)->next = NULL;
      return 0;
    }
  arena *a = (arena *)calloc(1, sizeof *a);
  if (!a) return mproc__fail(MPROC_ENOMEM, "pool: out of memory");
  a->cap = need < ARENA_MIN ? ARENA_MIN : (need + 4095) / 4096 * 4096;
  a->k = p->k;
  a->id = ++p->arena_ids;
  int rc = 0;
  if (p->o.threads) {
    if (!(a->base = (unsigned char *)(a->heap = malloc(a->cap))))
      rc = mproc__fail(MPROC_ENOMEM, "pool: out of memory for an array of %zu bytes", a->cap);
  } else {
    mproc_shared_opts so;
    memset(&so, 0, sizeof so);
    so.elem_size = 1;
    so.align = 4096;
    so.length = a->cap;
    so.raw = true;
    rc = mproc_shared_create(&a->v, &so);
    if (!rc) a->base = (unsigned char *)mproc_value_ptr(a->v);
  }
  if (rc) {
    free(a);
    return rc;
  }
  *out = a;
  return 0;
}

/* ---- sending tasks ------------------------------------------------------------------------------- */

static bool worker_live(const struct worker *w) { return w->conn && !w->broken; }

/* Whether p takes new work (with the mutex held): 0, or why not. */
static int takes_work(const mproc_pool *p, const char *call) {
  if (p->state != RUN)
    return mproc__fail(MPROC_ESTATE, "%s: the pool is %s", call, p->state == CLOSED ? "closed" : "terminated");
  if (p->broken[0]) return mproc__fail(MPROC_EWORKERDIED, "%s: %s", call, p->broken);
  return 0;
}

/* Whether w's tasks took less than the pool's `quick` lately. */
static bool worker_quick(const mproc_pool *p, const worker *w) {
  int64_t quick = p->o.backend && p->o.backend->quick_ns > QUICK_NS ? p->o.backend->quick_ns : QUICK_NS;
  return w->avg_ns && w->avg_ns < quick;
}

static bool has_room(const mproc_pool *p, const worker *w, const task *t) {
  if (!worker_live(w) || (p->o.maxtasksperchild && w->sent >= p->o.maxtasksperchild)) return false;
  if (w->ninflight == 0) return true;
  /* Ahead of what it runs: a small task, while the bytes in flight stay under what a connection holds
   * (so a send never waits on a worker that waits to send its reply: two full pipes). One ahead, or a
   * window of them when its tasks are quick, so a worker never waits for the parent between tasks and
   * the parent's sends, the worker's reads and the replies come many at a time. */
  bool fast = worker_quick(p, w);
  /* A quick worker is topped up once half its window has come back, not after every reply: one send
   * brings it many tasks (while the other half runs), where one a reply cost a system call a task. */
  if (fast && !w->nbatch && w->ninflight > WINDOW / 2) return false;
  return w->ninflight < (fast ? WINDOW : 2) && t->msg.len <= SMALL_TASK && inflight_at(w, 0)->msg.len <= SMALL_TASK &&
         w->inbytes + t->msg.len <= WINDOW_BYTES;
}

/* Send w a message of the engine: on its connection, or through the backend's send. */
static int worker_send(const mproc_pool *p, worker *w, const char *msg, size_t len) {
  const mproc_pool_backend *be = p->o.backend;
  if (be && be->send) return be->send(be->ctx, w->replies, msg, len);
  return mproc_connection_send_bytes(w->conn, msg, len, 0, len);
}

/* End the engine's side c of w's connection (NULL: nothing); a backend that sends is told first. */
static void worker_conn_end(const mproc_pool *p, const worker *w, mproc_connection *c) {
  const mproc_pool_backend *be = p->o.backend;
  if (c && be && be->send && be->send(be->ctx, w->replies, NULL, 0) != 0) mproc_clear_error();
  mproc_connection_destroy(c);
}

/* Send arena a to worker w unless w has it. */
static int send_one_arena(worker *w, arena *a) {
  if (!a || !a->v) return 0; /* a ThreadPool's: addresses */
  for (size_t i = 0; i < w->narenas; ++i)
    if (w->arenas[i] == a->id) return 0;
  uint64_t *more = (uint64_t *)realloc(w->arenas, (w->narenas + 1) * sizeof *more);
  if (!more) return mproc__fail(MPROC_ENOMEM, "pool: out of memory");
  w->arenas = more;
  unsigned char m[9] = {MPROC__POOL_ARENA};
  mproc__wire_put_le64(m + 1, a->id);
  int rc = mproc_connection_send_bytes(w->conn, m, sizeof m, 0, sizeof m);
  if (!rc)
    rc = mproc_connection_send_object(w->conn, mproc_object_make(MPROC_OBJECT_VALUE, a->v), mproc_process_pid(w->proc));
  if (!rc) w->arenas[w->narenas++] = a->id;
  return rc;
}

/* An array task about to go to w: its slot in the message, and its arenas sent to w unless w has them. */
static int send_arena(mproc_pool *p, worker *w, task *t) {
  mproc__wire_put_le64((unsigned char *)t->msg.data + 9, (uint64_t)(w - p->w));
  int rc = send_one_arena(w, t->arena);
  for (int i = 0; i < 2 && !rc; ++i) rc = send_one_arena(w, t->lent[i]);
  return rc;
}

/* Send to w the definitions of functions up to t's that it lacks (with the mutex held). */
static int send_defs(mproc_pool *p, worker *w, const task *t) {
  int rc = 0;
  for (; w->fns_known <= t->fn && !rc; ++w->fns_known) {
    mproc__buf d = {0};
    rc = mproc__buf_append(&d, "F", 1);
    if (!rc) rc = put_u64(&d, w->fns_known);
    if (!rc) rc = mproc__buf_append(&d, p->refs[w->fns_known].data, p->refs[w->fns_known].len);
    if (!rc) rc = worker_send(p, w, d.data, d.len);
    mproc__buf_free(&d);
  }
  return rc;
}

/* Send w the tasks gathered for it ('B', 'K' to a quick worker, or the one task as it is): one system call. */
static int batch_flush(const mproc_pool *p, worker *w) {
  if (!w->nbatch) return 0;
  const size_t head = 1 + 8; /* 'B' [u64 k] */
  mproc__buf *b = &w->batch;
  int rc;
  if (w->nbatch == 1) {
    rc = worker_send(p, w, b->data + head + 8, b->len - head - 8);
  } else {
    b->data[0] = worker_quick(p, w) ? MPROC__POOL_QUICK_BATCH : MPROC__POOL_BATCH;
    mproc__wire_put_le64((unsigned char *)b->data + 1, w->nbatch);
    rc = worker_send(p, w, b->data, b->len);
  }
  w->nbatch = 0;
  b->len = 0;
  return rc;
}

/* Send t to w (with the mutex held): a plain task joins w's batch (sent at the end of the pump, in
 * order); anything else goes now, after the batch. */
static int send_task(mproc_pool *p, worker *w, task *t) {
  int rc = send_defs(p, w, t); /* (a definition may go before the batch: it has no reply) */
  if (!rc && !t->arena && t->msg.len && t->msg.data[0] == MPROC__POOL_TASK) {
    mproc__buf *b = &w->batch;
    size_t at = b->len;
    unsigned char len[8];
    mproc__wire_put_le64(len, t->msg.len);
    if ((at || mproc__buf_append(b, "B\0\0\0\0\0\0\0\0", 9) == 0) && mproc__buf_append(b, len, 8) == 0 &&
        mproc__buf_append(b, t->msg.data, t->msg.len) == 0) {
      ++w->nbatch;
      return 0;
    }
    b->len = at; /* out of memory: sent alone */
    mproc_clear_error();
  }
  if (!rc) rc = batch_flush(p, w);
  if (!rc && t->arena) rc = send_arena(p, w, t);
  if (!rc) rc = worker_send(p, w, t->msg.data, t->msg.len);
  return rc;
}

/* Hand pending tasks to workers with room (with the mutex held): idle workers first, and a task ahead to a
 * busy one only when none is idle (else a task would wait behind a long one while a worker idles).
 * ahead false (a caller's submit): a busy worker whose tasks are quick gets nothing; the result thread,
 * which pumps after it takes replies, tops it up: one send then carries what many calls gave, where a
 * send per call woke the worker, and with it the result thread, at every call. */
static void pump(mproc_pool *p, bool ahead) {
  for (size_t i = 0; i < p->nw && !ahead; ++i) p->w[i].fed = p->w[i].ninflight == 0 || !worker_quick(p, &p->w[i]);
  bool any = false; /* a task went to a worker */
  for (bool sent = true; sent && p->head;) {
    sent = false;
    bool idle_only = false;
    for (size_t i = 0; i < p->nw && !idle_only; ++i)
      idle_only = has_room(p, &p->w[i], p->head) && p->w[i].ninflight == 0;
    for (size_t i = 0; i < p->nw && p->head; ++i) {
      worker *w = &p->w[i];
      task *t = p->head;
      if (!has_room(p, w, t) || (idle_only && w->ninflight) || (!ahead && !w->fed)) continue;
      if (t->next) MPROC__PREFETCH(t->next, sizeof *t->next + 64); /* (and its message, when it follows) */
      /* Its result failed already (another chunk): drop it. (A result's lone task: the result fails only
       * once its task is dropped or running, and its line, cold when many tasks wait, is not read.) */
      if (!t->lone && t->r->ready) {
        p->head = t->next;
        if (!p->head) p->tail = NULL;
        mproc_async_result *r = t->r;
        task_free(t);
        task_unref(p->k, r);
        sent = true;
        continue;
      }
      if (send_task(p, w, t) != 0) { /* it is dying: the result thread replaces it */
        mproc_clear_error();
        w->broken = true;
        continue;
      }
      p->head = t->next;
      if (!p->head) p->tail = NULL;
      t->next = NULL;
      if (w->ninflight == 0) t->started = mproc__pal_monotonic_ns();
      w->inflight[(w->infirst + w->ninflight++) % WINDOW] = t;
      w->inbytes += t->msg.len;
      ++w->sent;
      sent = any = true;
    }
  }
  for (size_t i = 0; i < p->nw; ++i)
    if (p->w[i].nbatch && batch_flush(p, &p->w[i]) != 0) { /* it is dying: its tasks come back as it ends */
      mproc_clear_error();
      p->w[i].broken = true;
    }
  /* A backend polled for its replies: a result thread that does not poll yet (it sleeps until woken) must. */
  if (any && !p->polls && p->o.backend && p->o.backend->poll) {
    p->polls = true;
    wake_result_thread(p);
  }
}

static void wake_result_thread(mproc_pool *p) {
  if (mproc_connection_send_bytes(p->wake_tx, "w", 1, 0, 1) != 0) mproc_clear_error();
}

/* ---- workers --------------------------------------------------------------------------------------- */

static void thread_worker_main(void *arg) {
  thread_worker *tw = (thread_worker *)arg;
  if (mproc__pool_worker_loop(tw->conn, &tw->cfg) != 0) mproc_clear_error();
  mproc_connection_destroy(tw->conn); /* the parent sees the end */
  free(tw);
}

/* A backend's worker's ring (mproc/pool_backend.h), with a reference for the engine and one for the
 * backend. */
struct mproc_pool_replies {
  volatile uint32_t refs;
  mproc__pool_ring ring;
};

int mproc_pool_replies_put(mproc_pool_replies *r, const void *reply, size_t len) {
  MPROC__CHECK_ARG(!r || (!reply && len), "r and reply must be set");
  return mproc__pool_ring_put(&r->ring, reply, len, true);
}

void mproc_pool_replies_release(mproc_pool_replies *r) {
  if (r && mproc__atomic_add32(&r->refs, (uint32_t)-1) == 1) free(r);
}

static int start_worker(mproc_pool *p, size_t slot) {
  worker *w = &p->w[slot];
  uint64_t gen = w->gen;
  mproc_pool_replies_release(w->replies); /* the last worker's: every reply in it was taken */
  free(w->arenas);                        /* the new worker has none */
  mproc__buf_free(&w->batch);
  mproc_free(w->held); /* (NULL: whatever the last worker sent was taken, unless it ended inside a run) */
  memset(w, 0, sizeof *w);
  w->gen = gen + 1;
  mproc_connection *mine = NULL, *theirs = NULL;
  int rc = mproc_pipe(true, &mine, &theirs);
  if (rc) return rc;
  if (p->rings) { /* no reply of the last worker of the slot is left: it was taken before it was replaced */
    w->ring = &p->rings[slot];
    memset(w->ring, 0, offsetof(mproc__pool_ring, slot));
    w->ring->asleep_cpu = UINT32_MAX;
  }
  if (p->o.backend) {
    mproc_pool_replies *rep = NULL;
    if (p->o.backend->hands_replies) {
      rep = (mproc_pool_replies *)calloc(1, sizeof *rep);
      if (!rep) {
        mproc_connection_destroy(mine);
        mproc_connection_destroy(theirs);
        return mproc__fail(MPROC_ENOMEM, "pool: out of memory");
      }
      rep->refs = 2;
      w->replies = rep;
      w->ring = &rep->ring;
    }
    rc = p->o.backend->start(p->o.backend->ctx, slot, p->worker_arg.data, p->worker_arg.len, theirs, rep);
    if (!rc) theirs = NULL;                            /* the backend's, and its reference to rep */
    if (!rc) p->poll_due = p->o.backend->poll != NULL; /* (until the backend awaits nothing: its start) */
    if (rc) mproc_pool_replies_release(rep);
  } else if (p->o.threads) {
    thread_worker *tw = (thread_worker *)calloc(1, sizeof *tw);
    if (!tw) rc = mproc__fail(MPROC_ENOMEM, "pool: out of memory");
    if (!rc) {
      tw->conn = theirs;
      tw->cfg.maxtasks = p->o.maxtasksperchild;
      tw->cfg.ring = w->ring;
      tw->cfg.initializer = p->o.initializer;
      tw->cfg.initarg = p->o.initarg;
      tw->cfg.initarg_size = p->o.initarg_size;
      rc = mproc__pal_thread_create(&w->thr, thread_worker_main, tw);
      if (rc)
        free(tw);
      else
        theirs = NULL; /* the thread's */
    }
  } else {
    mproc__buf arg = {0};
    rc = mproc__buf_append(&arg, p->worker_arg.data, 8); /* maxtasks, then the slot */
    if (!rc) rc = put_u64(&arg, slot);
    if (!rc) rc = mproc__buf_append(&arg, p->worker_arg.data + 8, p->worker_arg.len - 8);
    mproc_object objs[1] = {{MPROC_OBJECT_VALUE, p->slots}};
    mproc_process_opts po;
    memset(&po, 0, sizeof po);
    po.target = mproc__pool_worker_main;
    po.arg = arg.data;
    po.arg_size = arg.len;
    po.connections = &theirs;
    po.connection_count = 1;
    po.objects = objs;
    po.object_count = 1;
    po.daemon = true;
    po.start_method = p->o.start_method;
    po.context = p->o.context;
    if (!rc) rc = mproc_process_create(&w->proc, &po);
    if (!rc && p->zygote && p->threaded) rc = mproc__process_set_zygote(w->proc, p->zygote); /* not from here */
    if (!rc) rc = mproc_process_start(w->proc);
    mproc__buf_free(&arg);
    if (rc) {
      mproc_process_destroy(w->proc);
      w->proc = NULL;
    }
  }
  mproc_connection_destroy(theirs);
  if (rc) {
    mproc_connection_destroy(mine);
    return rc;
  }
  w->conn = mine;
  return 0;
}

/* Wait for an ended (or ending) worker and release it: a description of how it ended. */
static void reap_worker(const mproc_pool *p, worker *w, char *how, size_t size) {
  if (w->conn) { /* (worker_died takes it under the mutex first: no write here that pump could race) */
    worker_conn_end(p, w, w->conn);
    w->conn = NULL;
  }
  snprintf(how, size, "ended");
  if (w->thr) {
    mproc__pal_thread_join(w->thr);
    w->thr = NULL;
  }
  if (w->proc) {
    int code = 0;
    char d[MPROC_EXIT_DESC_SIZE];
    if (mproc_process_join(w->proc, MPROC_INFINITE) == 0 && mproc_process_exitcode(w->proc, &code))
      snprintf(how, size, "ended (%s)", mproc_describe_exit(code, d, sizeof d));
    mproc_process_destroy(w->proc);
    w->proc = NULL;
  }
}

/* ---- replies and deaths (the result thread) --------------------------------------------------------- */

typedef struct callback_call {
  mproc_async_result *r;
  bool ok;
} callback_call;

/* Run a result's callback (outside the mutex), then drop the task's reference. */
static void run_callback(core *k, callback_call c) {
  if (!c.r) return;
  mproc__pal_mutex_lock(k->mu);
  c.r->cb_thread = mproc__pal_thread_id(); /* its calls do not wait for the callback */
  k->calling_back = true;
  mproc__pal_mutex_unlock(k->mu);
  const mproc_async_opts *o = &c.r->opts;
  if (c.ok && o->callback) o->callback(o->user, c.r);
  if (!c.ok && o->error_callback) o->error_callback(o->user, c.r);
  mproc__pal_mutex_lock(k->mu);
  k->calling_back = false;
  c.r->calling = false;
  result_notify(c.r);
  mproc__pal_mutex_unlock(k->mu);
}

/* On the result thread: run the callbacks other threads left for it, in order (each holds a reference). */
static void run_later(mproc_pool *p) {
  mproc__pal_mutex_lock(p->k->mu);
  callback_call *list = p->later;
  size_t n = p->nlater;
  p->later = NULL;
  p->nlater = p->caplater = 0;
  mproc__pal_mutex_unlock(p->k->mu);
  for (size_t i = 0; i < n; ++i) {
    run_callback(p->k, list[i]);
    mproc__pal_mutex_lock(p->k->mu);
    result_release(list[i].r, false);
  }
  free(list);
}

/* Room for one more callback in p->later (with the mutex held): false when out of memory. */
static bool later_room(mproc_pool *p) {
  if (p->nlater < p->caplater) return true;
  size_t cap = p->caplater * 2 + 4;
  callback_call *more = (callback_call *)realloc(p->later, cap * sizeof *more);
  if (!more) return false;
  p->later = more;
  p->caplater = cap;
  return true;
}

/* Leave r's error callback for the result thread (room made by later_room); it holds a reference. */
static void later_push(mproc_pool *p, mproc_async_result *r) {
  ++r->tasks;
  p->later[p->nlater].r = r;
  p->later[p->nlater++].ok = false;
}

/* Every pending task fails with code (with the mutex held): the pool broke (on the result thread, each
 * error callback left for it: calls_back; none where memory ran out), or was terminated (no callback). */
static void fail_pending(mproc_pool *p, int code, const char *message, bool calls_back) {
  bool left = false;
  while (p->head) {
    task *t = p->head;
    p->head = t->next;
    mproc_async_result *r = t->r;
    bool cb = calls_back && !r->ready && r->opts.error_callback && later_room(p);
    if (result_fail(r, code, t->first, message, cb) && cb) {
      later_push(p, r);
      left = true;
    }
    task_free(t);
    task_unref(p->k, r);
  }
  p->tail = NULL;
  if (left) wake_result_thread(p);
}

/* The room an output of olen bytes takes in its chunk's block: aligned as malloc's blocks are, and never
 * none (each item's data is its own address). */
static size_t output_room(size_t olen) { return (olen + 15) / 16 * 16 + 16 * (olen == 0); }

/* The room for one output of olen bytes of r's that is not part of a chunk's block (with the mutex held):
 * from a slab where r has many items and keeps them all (*borrowed: freed with the slab), else a block of
 * its own. NULL: out of memory. */
static void *output_alloc(mproc_async_result *r, size_t olen, bool *borrowed) {
  size_t room = output_room(olen);
  *borrowed = r->items == &r->one && olen <= sizeof r->one_out.b;
  if (*borrowed) return r->one_out.b;
  if (r->lazy || r->n < 2 || olen > SLAB_OUTPUT_MAX) return malloc(olen ? olen : 1);
  if (r->slab_left < room) { /* a new slab, for the items still to come as far as they fit */
    size_t left = r->n - r->done, size = left < SLAB_BYTES / room ? left * room : SLAB_BYTES;
    if (size < room) size = room;
    struct slab *s = (struct slab *)malloc(SLAB_HEAD + size);
    if (!s) return NULL;
    s->next = r->slabs;
    r->slabs = s;
    r->slab_at = (char *)s + SLAB_HEAD;
    r->slab_left = size;
  }
  void *d = r->slab_at;
  r->slab_at += room;
  r->slab_left -= room;
  *borrowed = true;
  return d;
}

/* With the mutex held: the reply to w's oldest task, taken at `now` (one clock read for a run of replies:
 * the first of the run counts the run's time, the others none, which averages the same). What to call
 * back, in *cb (its reference kept). */
static void take_reply(mproc_pool *p, worker *w, const char *msg, size_t len, int64_t now, callback_call *cb) {
  task *t = inflight_at(w, 0);
  w->infirst = (w->infirst + 1) % WINDOW;
  --w->ninflight;
  w->inbytes -= t->msg.len;
  ++w->replied;
  p->early_deaths = 0;
  int64_t took = now - t->started;
  int64_t avg = w->avg_ns ? (w->avg_ns * 7 + took) / 8 : took;
  w->avg_ns = avg > 0 ? avg : 1; /* (0: not measured yet; the replies of a run after the first count 0) */
  if (w->ninflight) {
    task *next = inflight_at(w, 0);
    next->started = now;
    MPROC__PREFETCH(next->r, sizeof *next->r); /* its reply comes next: its result, made long ago, is cold */
  }
  mproc_async_result *r = t->r;
  mproc__wire_reader rd = mproc__wire_reader_make(msg + 1, len ? len - 1 : 0);
  uint64_t code = mproc__wire_get_u64(&rd, "a status");
  bool became = false;
  if (!len || msg[0] != MPROC__POOL_RESULT) rd.bad = "a reply";
  if (!rd.bad && code == 0) {
    uint64_t n = mproc__wire_get_u64(&rd, "a count");
    if (n != t->n) rd.bad = "a count";
    /* A chunk's outputs share one block (freed with the result, through its first item), but a lazy
     * imap's, freed one by one. The block is sized from the reply: its outputs' rooms come to at most the
     * bytes left plus 8 an item (an output of olen bytes takes 8 + olen there, output_room(olen) <= olen +
     * 16 here), so one pass over the reply does. */
    char *base = NULL;
    if (!rd.bad && !r->lazy && n > 1 && !r->ready) base = (char *)malloc(rd.n - rd.off + 8 * n);
    size_t at = 0, first = t->first;
    for (size_t i = 0; i < n && !rd.bad && !r->ready; ++i) {
      size_t olen;
      const void *out = mproc__wire_get_bytes(&rd, &olen, "an output");
      if (rd.bad) break;
      struct item *it = item_at(r, first + i);
      if (base) {
        it->data = base + at;
        it->borrowed = i > 0;
        at += output_room(olen);
      } else {
        it->data = output_alloc(r, olen, &it->borrowed);
      }
      if (!it->data) {
        became = result_fail(r, MPROC_ENOMEM, first + i, "pool: out of memory for a task's output", true);
        break;
      }
      mproc__copy(it->data, out, olen);
      it->len = olen;
      it->ready = true;
      if (r->order) r->order[r->norder++ % r->nslots] = first + i;
      if (++r->done == r->n && !r->input) {
        result_succeed(r);
        became = true;
      }
    }
    if (base && at == 0) free(base);                         /* (no item took it) */
    if (!rd.bad && t->arena && !r->ready && r->tasks == 1) { /* an array map's last part: done */
      const mproc__pool_array_hdr *h = (const mproc__pool_array_hdr *)(const void *)t->arena->base;
      (void)mproc__atomic_load64(&h->parts); /* after every worker's outputs */
      if (mproc__atomic_load32(&h->stop)) {  /* (never: a stop fails it) */
        became = result_fail(r, MPROC_ESYS, 0, "pool: an array map stopped before its end", true);
      } else {
        if (!r->user_gone && r->n && r->out_off != SIZE_MAX)
          memcpy(r->out, t->arena->base + r->out_off, r->n * r->out_size);
        r->done = r->n;
        result_succeed(r);
        became = true;
      }
    }
    if (!rd.bad && (became || r->imap)) result_notify(r); /* get() waits for the whole, next() for items */
  } else if (!rd.bad) {
    uint64_t item = mproc__wire_get_u64(&rd, "an item");
    size_t mlen;
    const char *m = (const char *)mproc__wire_get_bytes(&rd, &mlen, "a message");
    if (!rd.bad) {
      char *text = (char *)malloc(mlen + 1);
      if (text) { /* (an array map's worker names the record or chunk) */
        memcpy(text, m, mlen);
        text[mlen] = 0;
      }
      became = result_fail(r, (int)-(int64_t)code, t->first + (size_t)item, text ? text : "the task failed", true);
      free(text);
    }
  }
  if (rd.bad) became = result_fail(r, MPROC_ESYS, t->first, "pool: a worker sent a malformed reply", true);
  task_free(t);
  /* A result with a callback to run is left to the caller, with the task's reference; one without is done
   * here (its waiters were woken), so a run of replies goes on under one lock. */
  became = became && r->calling;
  cb->r = became ? r : NULL;
  cb->ok = became && r->ok;
  if (!became) task_unref(p->k, r);
}

/* With the mutex held: w has ended. Fail its running task, put the rest back, replace it. */
static void worker_died(mproc_pool *p, worker *w, callback_call *cb) {
  char how[160];
  bool timed_out = w->timed_out;
  mproc_connection *conn = w->conn; /* taken while the mutex is held: no other thread sends on it now */
  w->conn = NULL;
  mproc__pal_mutex_unlock(p->k->mu); /* joining may take a moment */
  worker_conn_end(p, w, conn);
  reap_worker(p, w, how, sizeof how);
  mproc__pal_mutex_lock(p->k->mu);
  cb->r = NULL;
  uint64_t begun = p->slots ? mproc__atomic_load64(&w->ring->begun) : UINT64_MAX; /* (threads: everything sent) */
  /* before its first task (where the pool cannot see what it began: idle, never having replied) */
  bool early = w->replied == 0 && (p->slots ? begun == 0 : w->ninflight == 0);
  p->early_deaths = early ? p->early_deaths + 1 : 0;
  if (w->ninflight && begun <= w->replied) { /* it died before it began its next task: not that task's fault */
    for (size_t j = w->ninflight; j-- > 0;) {
      task *u = inflight_at(w, j);
      u->next = p->head;
      p->head = u;
      if (!p->tail) p->tail = u;
    }
    w->ninflight = 0;
  }
  w->inbytes = 0;
  if (w->ninflight) {
    task *t = inflight_at(w, 0);
    mproc_async_result *r = t->r;
    char msg[256];
    if (timed_out)
      snprintf(msg, sizeof msg, "pool: a task ran out of its time (%lld ms per item); its worker was killed",
               (long long)p->o.task_timeout_ms);
    else
      snprintf(msg, sizeof msg, "pool: the worker running the task %s", how);
    size_t item = t->first;
    if (t->arena) { /* the chunk it was running, if it had claimed one in this map */
      const mproc__pool_claim *c = &((mproc__pool_array_hdr *)(void *)t->arena->base)->claims[w - p->w];
      uint64_t at = mproc__atomic_load64(&c->at);
      if (at) item = (size_t)at - 1;
      size_t k = strlen(msg);
      if (at) snprintf(msg + k, sizeof msg - k, " (in the chunk from record %zu)", item);
    }
    bool became = result_fail(r, timed_out ? MPROC_ETIMEDOUT : MPROC_EWORKERDIED, item, msg, true);
    for (size_t j = w->ninflight; j-- > 1;) { /* not started: back to the front, in order */
      task *u = inflight_at(w, j);
      u->next = p->head;
      p->head = u;
      if (!p->tail) p->tail = u;
    }
    w->ninflight = 0; /* (terminate, which may come next, must not meet them again) */
    task_free(t);
    if (became) {
      cb->r = r;
      cb->ok = false;
    } else {
      task_unref(p->k, r);
    }
  }
  if (p->state == TERMINATED) return;
  if (!p->broken[0] && p->early_deaths >= EARLY_DEATHS_MAX)
    snprintf(p->broken, sizeof p->broken,
             "pool: %d workers in a row %s before their first task (does the initializer fail, or can a worker "
             "not start?): the pool starts no more and takes no more work",
             EARLY_DEATHS_MAX, how);
  if (!p->broken[0] && start_worker(p, (size_t)(w - p->w)) != 0) { /* the pool goes on with one worker less */
    bool any = false;
    for (size_t i = 0; i < p->nw && !any; ++i) any = p->w[i].conn != NULL;
    if (!any) /* none left to run what waits */
      snprintf(p->broken, sizeof p->broken, "pool: its last worker %s and no other could start (%s)", how,
               mproc_last_error());
    mproc_clear_error();
  }
  if (p->broken[0]) fail_pending(p, MPROC_EWORKERDIED, p->broken, true);
}

/* ---- the result thread ------------------------------------------------------------------------------- */

/* base + per x k (base, per >= 0), INT64_MAX where that would not fit: a long timeout is never a past one. */
static int64_t deadline_add(int64_t base, int64_t per, uint64_t k) {
  if (k && (uint64_t)per > (uint64_t)(INT64_MAX - base) / k) return INT64_MAX;
  return base + per * (int64_t)k;
}

/* When w's running task runs out of time (with the mutex held): its time per item from when it began; an
 * array task's, from when its worker claimed its chunk (or, when it has none claimed, when to look
 * again). */
static int64_t task_deadline(const mproc_pool *p, const worker *w) {
  const task *t = inflight_at(w, 0);
  int64_t per = deadline_add(0, 1000000, (uint64_t)p->o.task_timeout_ms);
  if (!t->arena) return deadline_add(t->started, per, t->n);
  const mproc__pool_claim *c = &((mproc__pool_array_hdr *)(void *)t->arena->base)->claims[w - p->w];
  uint64_t at = mproc__atomic_load64(&c->at);
  int64_t since = (int64_t)mproc__atomic_load64(&c->since);
  if (!at) return deadline_add(mproc__pal_monotonic_ns(), per, 1); /* (the header is zeroed for each map) */
  return deadline_add(since, per, t->chunk);
}

static bool all_idle(const mproc_pool *p) {
  for (size_t i = 0; i < p->nw; ++i)
    if (p->w[i].ninflight) return false;
  return true;
}

/* The slot of w's ring that holds its next reply, or NULL: no ring, or nothing in it (on the result thread,
 * its only reader). */
static const mproc__pool_reply *ring_head(const worker *w) {
  const mproc__pool_ring *g = w->ring;
  if (!g) return NULL;
  uint64_t head = mproc__atomic_load64_relaxed(&g->head);
  return head != mproc__atomic_load64(&g->tail) ? &g->slot[head % MPROC__POOL_RING] : NULL;
}

/* What next_reply found. */
enum { REPLY_NONE, REPLY_RING, REPLY_CONN, REPLY_END };

/* The next reply of w (on the result thread, outside the mutex): from its ring, in order, or from its
 * connection, where a ring's slot may send it (and where a worker without a ring sends every reply).
 * REPLY_RING: the ring's next reply, whose head the caller moves on once it took it: *data and *len lie
 * in the ring, or in *msg (to free) when its slot sent it on the connection; REPLY_CONN: in *msg (a
 * worker without a ring); REPLY_NONE: nothing now; REPLY_END: the connection ended, or said what
 * it must not, with nothing left before it in the ring. *conn_ready: the connection was reported ready
 * and not read since. */
static int next_reply(worker *w, bool *conn_ready, const char **data, size_t *len, char **msg) {
  for (;;) {
    mproc__pool_ring *g = w->ring;
    bool elsewhere = false; /* the ring's next reply is on the connection */
    const mproc__pool_reply *r = ring_head(w);
    if (r) {
      uint64_t l = r->len;
      elsewhere = l == MPROC__POOL_RING_ELSEWHERE;
      if (!elsewhere && l > sizeof r->data) return REPLY_END;
      if (!elsewhere) {
        *data = (const char *)r->data;
        *len = (size_t)l;
        return REPLY_RING;
      }
      if (w->held) { /* it came already */
        *data = *msg = w->held;
        *len = w->held_len;
        w->held = NULL;
        return REPLY_RING;
      }
    }
    if (w->ended) return REPLY_END;
    if (!elsewhere && !*conn_ready && !mproc__connection_buffered(w->conn)) return REPLY_NONE;
    *conn_ready = false;
    int rc = mproc_connection_recv_bytes(w->conn, 0, 0, msg, len);
    if (rc) mproc_clear_error();
    if (rc == MPROC_ETIMEDOUT) return REPLY_NONE;
    if (rc) { /* the end: what the ring got before it still counts */
      w->ended = true;
      continue;
    }
    if (g && *len == 1 && (*msg)[0] == 'W') { /* a wake-up: the ring has replies */
      mproc_free(*msg);
      *msg = NULL;
      continue;
    }
    if (g && !elsewhere) {
      /* The ring was empty when read; the worker puts a reply in its slot before it sends it, so the slot is
       * there now, perhaps behind replies put in the ring since: the message waits for its turn. */
      r = ring_head(w);
      if (!r) return REPLY_END; /* a reply its ring does not announce */
      if (r->len != MPROC__POOL_RING_ELSEWHERE) {
        w->held = *msg;
        w->held_len = *len;
        *msg = NULL;
        continue;
      }
    }
    *data = *msg;
    return g ? REPLY_RING : REPLY_CONN;
  }
}

/* Whether a worker's ring holds a reply to take now (on the result thread): not one whose slot sends it on
 * the connection, whose readiness tells when it has come (no spinning while a long one arrives). */
static bool ring_has(const worker *w) {
  const mproc__pool_reply *r = ring_head(w);
  return r && (r->len != MPROC__POOL_RING_ELSEWHERE || w->held);
}

/* Tell every worker with a ring that the result thread is about to sleep (asleep true), or that it is
 * awake again; going to sleep: whether a ring had a reply by then (then it must not). timed: its sleep
 * is bounded (hold_ms), and it says on which CPU (a quick batch's worker there may hold its replies till the end
 * of the batch); otherwise it says none, and a worker wakes it at its first reply. */
static bool say_asleep(mproc_pool *p, bool asleep, bool timed) {
  bool any = false;
  int cpu = asleep && timed ? mproc__pal_current_cpu() : -1;
  for (size_t i = 0; i < p->nw; ++i) {
    worker *w = &p->w[i];
    if (!w->ring) continue;
    if (asleep) mproc__atomic_store32(&w->ring->asleep_cpu, (uint32_t)cpu);
    mproc__atomic_store32(&w->ring->asleep, asleep); /* then the tail is read: a reply after it wakes us */
    any = any || (asleep && ring_has(w));
  }
  return any;
}

/* Take what worker w has for the result thread: its replies, its end. */
static void serve_worker(mproc_pool *p, worker *w, bool conn_ready, bool proc_ended) {
  const uint64_t gen = w->gen;
  for (bool more = true; more && w->gen == gen && w->conn;) {
    const char *data = NULL;
    char *msg = NULL;
    size_t len = 0;
    int got = next_reply(w, &conn_ready, &data, &len, &msg);
    callback_call cb = {NULL, false};
    more = false;
    mproc__pal_mutex_lock(p->k->mu);
    p->k->notify_later = mproc__pal_thread_id();
    if (got != REPLY_NONE && got != REPLY_END && w->ninflight) {
      int64_t now = mproc__pal_monotonic_ns();
      take_reply(p, w, data, len, now, &cb);
      if (got == REPLY_RING) mproc__atomic_store64(&w->ring->head, w->ring->head + 1); /* its slot is free */
      more = true;
      /* the ring's next replies too, while no callback waits: one lock and one pump for a run of them */
      while (!cb.r && w->ninflight && w->gen == gen && ring_has(w)) {
        mproc_free(msg); /* (a reply taken: a held one may come next) */
        msg = NULL;
        if (next_reply(w, &conn_ready, &data, &len, &msg) != REPLY_RING) break;
        take_reply(p, w, data, len, now, &cb);
        mproc__atomic_store64(&w->ring->head, w->ring->head + 1);
      }
    } else if (got != REPLY_NONE || (proc_ended && w->proc && w->ninflight == 0)) {
      worker_died(p, w, &cb); /* its end (or a reply nobody asked for); with a task in flight, a process's
                                 end is seen on its connection, after any last reply */
    }
    pump(p, true);
    bool notify = p->k->notify_due;
    p->k->notify_later = 0;
    p->k->notify_due = false;
    mproc__pal_mutex_unlock(p->k->mu);
    if (notify) mproc__pal_cond_broadcast(p->k->cv); /* (the core outlives the result thread) */
    mproc_free(msg);
    if (cb.r) {
      run_callback(p->k, cb);
      mproc__pal_mutex_lock(p->k->mu);
      result_release(cb.r, false);
    }
  }
}

static void result_thread(void *arg) {
  mproc_pool *p = (mproc_pool *)arg;
  mproc__atomic_store32(&p->thr_id, mproc__pal_thread_id());
  mproc_waitable *ws = (mproc_waitable *)calloc(1 + 2 * p->nw, sizeof *ws);
  size_t *who = (size_t *)calloc(1 + 2 * p->nw, sizeof *who);
  uint64_t *gen = (uint64_t *)calloc(1 + 2 * p->nw, sizeof *gen);       /* the worker each entry was for */
  unsigned char *ready = (unsigned char *)calloc(p->nw ? p->nw : 1, 1); /* per worker: 1 connection, 2 process */
  int64_t hold_ms = HOLD_MS;
  int64_t keep_since = 0; /* the pool idle: since when (and no kept block taken since: keep_takes) */
  uint64_t keep_takes = 0;
  const mproc_pool_backend *be = p->o.backend;
  bool polling = false, poll_more = false; /* a polled backend (be->poll): polled now; it awaits more */
  int64_t poll_last = 0, poll_ms = 0;      /* its state, and how long to wait before polling it again */
  mproc__pal_mutex_lock(p->k->mu);
  while (ws && who && gen && ready) {
    if (p->state == TERMINATED || (p->state == CLOSED && !p->head && all_idle(p))) break;
    size_t n = 0;
    ws[n++] = mproc_waitable_connection(p->wake_rx);
    int64_t soonest = INT64_MAX;
    bool busy = false, held = false;
    for (size_t i = 0; i < p->nw; ++i) {
      worker *w = &p->w[i];
      busy = busy || ring_has(w);
      held = held || (w->ring && !w->replies && w->ninflight && worker_quick(p, w));
      if (w->conn) {
        who[n] = i;
        gen[n] = w->gen;
        ws[n++] = mproc_waitable_connection(w->conn);
      }
      if (w->proc) {
        who[n] = i;
        gen[n] = w->gen;
        ws[n++] = mproc_waitable_process(w->proc);
      }
      if (p->o.task_timeout_ms > 0 && w->ninflight && !w->timed_out) {
        int64_t end = task_deadline(p, w);
        if (end < soonest) soonest = end;
      }
    }
    /* The kept result blocks go back once the pool has been idle keep_ns with none taken; then this thread
     * sleeps for good, and the next block kept wakes it to time that one (cache_watch). A pool in use, even
     * one call at a time, is never woken for them. */
    if (!p->head && all_idle(p)) {
      if (!p->k->cache_watch) {
        int64_t now = mproc__pal_monotonic_ns(), keep = (int64_t)mproc__atomic_load64(&keep_ns);
        if (!keep_since || keep_takes != p->k->cache_takes) {
          keep_since = now;
          keep_takes = p->k->cache_takes;
        } else if (now - keep_since >= keep) {
          cache_drain(p->k);
          p->k->cache_watch = true;
          keep_since = 0;
        }
        if (keep_since && keep_since + keep < soonest) soonest = keep_since + keep;
      }
    } else {
      keep_since = 0;
      p->k->cache_watch = false;
    }
    if (be && be->poll) {
      bool polls = p->poll_due || poll_more || !all_idle(p);
      if (polls && !polling) poll_ms = 0; /* (tasks went out: the first poll comes at once) */
      polling = p->polls = polls;
      p->poll_due = false;
    }
    bool slept = !busy && p->ringed;
    if (slept) busy = say_asleep(p, true, held);
    mproc__pal_mutex_unlock(p->k->mu);
    int64_t ms = busy ? 0 : soonest == INT64_MAX ? MPROC_INFINITE : mproc__ms_until(soonest);
    if (held && (ms < 0 || ms > hold_ms)) ms = hold_ms; /* (replies a worker may hold: pool_internal.h 'K') */
    if (polling && (ms < 0 || ms > poll_ms)) ms = poll_ms;
    size_t nready = 0;
    int rc = mproc_wait(ws, n, ms, &nready);
    if (rc && rc != MPROC_ETIMEDOUT) mproc_clear_error();
    if (slept) say_asleep(p, false, false);
    if (polling) poll_ms = be->poll(be->ctx, &poll_last, &poll_more); /* (its replies are taken below) */
    if (ws[0].ready) {                                                /* drain the wake-ups */
      char *b = NULL;
      size_t bl = 0;
      while (mproc_connection_recv_bytes(p->wake_rx, 0, 0, &b, &bl) == 0) mproc_free(b);
      mproc_clear_error();
      run_later(p);
    }
    memset(ready, 0, p->nw);
    for (size_t j = 1; j < n; ++j)
      if (ws[j].ready && p->w[who[j]].gen == gen[j]) ready[who[j]] |= ws[j].kind == MPROC_WAIT_CONNECTION ? 1 : 2;
    bool rung = false;                   /* a ring had replies */
    for (size_t i = 0; i < p->nw; ++i) { /* every reply read ahead or in a ring is taken in this round */
      bool has = ring_has(&p->w[i]);
      rung = rung || has;
      if (ready[i] || has || (p->w[i].conn && mproc__connection_buffered(p->w[i].conn)))
        serve_worker(p, &p->w[i], ready[i] & 1, ready[i] & 2);
    }
    if (rung || !held)
      hold_ms = HOLD_MS;
    else if (rc == MPROC_ETIMEDOUT && hold_ms < HOLD_MS_MAX)
      hold_ms *= 2;
    mproc__pal_mutex_lock(p->k->mu);
    int64_t now = p->o.task_timeout_ms > 0 ? mproc__pal_monotonic_ns() : 0;
    for (size_t i = 0; i < p->nw && p->o.task_timeout_ms > 0; ++i) {
      worker *w = &p->w[i];
      if (!w->proc || !w->ninflight || w->timed_out) continue;
      if (now >= task_deadline(p, w)) {
        w->timed_out = true;
        if (mproc_process_kill(w->proc) != 0) mproc_clear_error();
      }
    }
  }
  /* closed and done, or terminated: end the workers (and give back the kept blocks: no call comes) */
  cache_drain(p->k);
  for (size_t i = 0; i < p->nw; ++i) {
    worker *w = &p->w[i];
    if (p->state == TERMINATED && w->proc && mproc_process_kill(w->proc) != 0) mproc_clear_error();
    /* a 'Q' (idle: never blocks), but where the backend carries the messages: its end alone says it */
    if (w->conn && !(be && be->send) && worker_send(p, w, "Q", 1) != 0) mproc_clear_error();
    worker_conn_end(p, w, w->conn);
    w->conn = NULL;
  }
  mproc__pal_mutex_unlock(p->k->mu);
  for (size_t i = 0; i < p->nw; ++i) {
    char how[160];
    reap_worker(p, &p->w[i], how, sizeof how);
  }
  run_later(p);
  mproc__pal_mutex_lock(p->k->mu);
  p->finished = true;
  mproc__pal_cond_broadcast(p->k->cv);
  mproc__pal_mutex_unlock(p->k->mu);
  free(ws);
  free(who);
  free(gen);
  free(ready);
}

/* ---- creating ----------------------------------------------------------------------------------------- */

static int core_new(core **out) {
  core *k = (core *)calloc(1, sizeof *k);
  if (!k) return mproc__fail(MPROC_ENOMEM, "pool: out of memory");
  int rc = mproc__pal_mutex_new(&k->mu);
  if (!rc) rc = mproc__pal_cond_new(&k->cv);
  if (rc) {
    mproc__pal_mutex_free(k->mu);
    free(k);
    return rc;
  }
  k->refs = 1;
  *out = k;
  return 0;
}

/* The start method of the pool's process workers. */
static mproc_start_method pool_method(const mproc_pool *p) {
  mproc_start_method m = p->o.start_method;
  if (m == MPROC_START_DEFAULT) m = mproc_context_start_method(p->o.context);
  return m == MPROC_START_DEFAULT ? mproc_get_start_method() : m;
}

static void pool_free(mproc_pool *p) {
  if (p->k) { /* the results that outlive the pool see it no more (nor keep blocks for it, nor wake it) */
    mproc__pal_mutex_lock(p->k->mu);
    p->k->pool = NULL;
    cache_drain(p->k);
    mproc__pal_mutex_unlock(p->k->mu);
  }
  for (arena **list = &p->arenas; list; list = list == &p->arenas ? &p->lent : NULL)
    while (*list) { /* the workers are gone: nothing to tell them */
      arena *a = *list;
      *list = a->next;
      arena_free(a);
    }
  for (size_t i = 0; p->w && i < p->nw; ++i) {
    mproc_pool_replies_release(p->w[i].replies);
    free(p->w[i].arenas);
    mproc__buf_free(&p->w[i].batch);
    mproc_free(p->w[i].held);
  }
  for (size_t i = 0; i < p->nfns; ++i) mproc__buf_free(&p->refs[i]);
  free(p->refs);
  free(p->fns);
  free(p->w);
  mproc__buf_free(&p->worker_arg);
  if (p->slots)
    mproc_value_destroy(p->slots);
  else
    free(p->rings);
  mproc__zygote_stop(p->zygote); /* after the workers it forked */
  mproc_connection_destroy(p->wake_tx);
  mproc_connection_destroy(p->wake_rx);
  free(p->later);
  if (p->k) {
    mproc__pal_mutex_lock(p->k->mu);
    core_release(p->k);
  }
  free(p);
}

int mproc_pool_create(mproc_pool **out, const mproc_pool_opts *opts) {
  MPROC__CHECK_ARG(!out, "out is NULL");
  *out = NULL;
  MPROC__CHECK_ARG(opts && opts->task_timeout_ms < 0, "task_timeout_ms is negative");
  MPROC__CHECK_ARG(opts && !opts->initarg && opts->initarg_size, "initarg is NULL with initarg_size %zu",
                   opts->initarg_size);
  MPROC__CHECK_ARG(opts && opts->threads && opts->task_timeout_ms > 0,
                   "a ThreadPool cannot end a task that runs too long (a thread cannot be killed)");
  const mproc_pool_backend *be = opts ? opts->backend : NULL;
  MPROC__CHECK_ARG(be && (!be->start || !be->workers), "the backend has no start or no workers");
  MPROC__CHECK_ARG(be && (!be->send != !be->poll || (be->poll && !be->hands_replies)),
                   "the backend has one of send and poll without the other, or poll without hands_replies");
  MPROC__CHECK_ARG(be && opts->threads, "a ThreadPool has no backend");
  MPROC__CHECK_ARG(be && opts->processes > be->workers, "%zu processes, and the %s backend has %zu workers",
                   opts->processes, be->name ? be->name : "pool", be->workers);
  if (be && (opts->maxtasksperchild || opts->task_timeout_ms))
    return mproc__fail(MPROC_ENOTSUP,
                       "pool_create: the %s backend cannot replace or kill its workers (maxtasksperchild, "
                       "task_timeout_ms)",
                       be->name ? be->name : "pool");
  mproc_pool *p = (mproc_pool *)calloc(1, sizeof *p);
  if (!p) return mproc__fail(MPROC_ENOMEM, "pool_create: out of memory");
  if (opts) p->o = *opts;
  p->nw = p->o.processes ? p->o.processes : be ? be->workers : (size_t)mproc_process_cpu_count();
  int rc = core_new(&p->k);
  if (!rc) p->k->pool = p;
  if (!rc) rc = mproc_pipe(true, &p->wake_tx, &p->wake_rx);
  p->w = rc ? NULL : (worker *)calloc(p->nw, sizeof *p->w);
  if (!rc && !p->w) rc = mproc__fail(MPROC_ENOMEM, "pool_create: out of memory");
  if (!rc && !p->o.threads && !be) { /* the slots, and the workers' argument: maxtasks, the initializer, its argument */
    mproc_shared_opts so;
    memset(&so, 0, sizeof so);
    so.elem_size = sizeof(mproc__pool_ring);
    so.align = 64;
    so.length = p->nw;
    so.raw = true;
    rc = mproc_shared_create(&p->slots, &so);
    if (!rc) p->rings = (mproc__pool_ring *)mproc_value_ptr(p->slots);
  }
  if (!rc && p->o.threads && !(p->rings = (mproc__pool_ring *)calloc(p->nw, sizeof *p->rings)))
    rc = mproc__fail(MPROC_ENOMEM, "pool_create: out of memory");
  p->ringed = p->rings || (be && be->hands_replies);
  if (!rc && !p->o.threads) {
    mproc__buf ref = {0};
    if (p->o.initializer) rc = mproc__pal_fn_locate((void *)p->o.initializer, &ref);
    if (rc) rc = mproc__fail(rc, "pool_create: the initializer cannot be found in a worker: %s", mproc_last_error());
    if (!rc) rc = put_u64(&p->worker_arg, p->o.maxtasksperchild);
    if (!rc) rc = put_u64(&p->worker_arg, ref.len);
    if (!rc && ref.len) rc = mproc__buf_append(&p->worker_arg, ref.data, ref.len);
    if (!rc) rc = put_u64(&p->worker_arg, p->o.initarg_size);
    if (!rc && p->o.initarg_size) rc = mproc__buf_append(&p->worker_arg, p->o.initarg, p->o.initarg_size);
    mproc__buf_free(&ref);
  }
  if (!rc && !p->o.threads && !be && pool_method(p) == MPROC_START_FORK) rc = mproc__zygote_start(&p->zygote);
  size_t started = 0;
  for (; !rc && started < p->nw; ++started) rc = start_worker(p, started);
  p->threaded = true;
  if (!rc) rc = mproc__pal_thread_create(&p->thr, result_thread, p);
  if (rc) {
    for (size_t i = 0; i < started; ++i) {
      char how[160];
      if (p->w[i].proc && mproc_process_kill(p->w[i].proc) != 0) mproc_clear_error();
      reap_worker(p, &p->w[i], how, sizeof how);
    }
    pool_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

int mproc_thread_pool_create(mproc_pool **out, size_t threads) {
  mproc_pool_opts o;
  memset(&o, 0, sizeof o);
  o.processes = threads;
  o.threads = true;
  return mproc_pool_create(out, &o);
}

/* A map's chunksize when the caller gives none: as Python, about four chunks per worker (n / (4 x
 * workers), rounded up), at least one record. */
static size_t default_chunk(const mproc_pool *p, size_t n) {
  size_t parts = p->nw * 4, chunk = n / parts;
  return chunk == 0 || n % parts ? chunk + 1 : chunk;
}

size_t mproc_pool_size(const mproc_pool *p) { return p ? p->nw : 0; }

/* ---- submitting ------------------------------------------------------------------------------------- */

static bool in_callback(mproc_pool *p) { return mproc__atomic_load32(&p->thr_id) == mproc__pal_thread_id(); }

/* Submit n inputs in chunks of `chunk` as one result. */
static int submit(mproc_pool *p, mproc_task_fn fn, const mproc_bytes *in, size_t n, size_t chunk,
                  const mproc_async_opts *o, bool imap, bool ordered, mproc_async_result **out, const char *call) {
  MPROC__CHECK_ARG_AS(call, !p || !fn || !out, "pool, fn and out must be set");
  *out = NULL;
  MPROC__CHECK_ARG_AS(call, !in && n, "inputs is NULL with n %zu", n);
  size_t in_bytes = 0; /* task_block_new's, counted in the same pass over the inputs */
  for (size_t i = 0; i < n; ++i) {
    MPROC__CHECK_ARG_AS(call, !in[i].data && in[i].len, "inputs[%zu] is NULL with len %zu", i, in[i].len);
    if (in_bytes <= BLOCK_MAX) in_bytes += in[i].len > BLOCK_MAX ? BLOCK_MAX + 1 : task_input_bytes(in[i].len);
  }
  /* One small input (an apply): its task and the message lie in the result's block (result_block: one kept from an
   * earlier call, or a new one), made under the pool's lock, which is taken once (an apply_async took three
   * blocks, two of them freed by another thread, and the lock twice). */
  bool inner = n == 1 && in[0].len <= INNER_INPUT_MAX;
  mproc_async_result *r = inner ? NULL : (mproc_async_result *)calloc(1, sizeof *r);
  if (!inner && !result_init(r, n, imap, ordered, o)) {
    result_discard(r);
    return mproc__fail(MPROC_ENOMEM, "%s: out of memory", call);
  }
  if (!chunk) chunk = default_chunk(p, n);
  if (chunk > n) chunk = n ? n : 1; /* (one chunk: (n + chunk - 1) / chunk must not wrap) */
  /* the tasks, built before the pool is touched */
  task *first = NULL, *last = NULL, **link = &first;
  size_t ntasks = 0;
  int rc = 0;
  mproc__pal_mutex_lock(p->k->mu);
  rc = takes_work(p, call);
  size_t fn_i = 0;
  if (!rc) rc = fn_index(p, (void *)fn, &fn_i);
  if (inner) { /* built under the lock: a few stores */
    if (!rc) r = result_block(p->k, in[0].len);
    if (!rc && !result_init(r, n, imap, ordered, o)) rc = mproc__fail(MPROC_ENOMEM, "%s: out of memory", call);
    if (!rc) {
      first = last = task_inner(r, fn_i, &in[0]);
      ntasks = 1;
    } else {
      mproc__pal_mutex_unlock(p->k->mu);
    }
  } else {
    mproc__pal_mutex_unlock(p->k->mu);
    int blocked = rc || !n ? 1 : task_block_new(r, fn_i, in, n, chunk, in_bytes, &first, &ntasks);
    if (blocked == MPROC_ENOMEM) rc = mproc__fail(MPROC_ENOMEM, "%s: out of memory", call);
    if (!blocked) last = &first[ntasks - 1];
    for (size_t at = 0; at < n && !rc && blocked == 1; at += chunk) {
      task *t = task_new(r, fn_i, at, n - at < chunk ? n - at : chunk, in + at);
      if (!t) {
        rc = mproc__fail(MPROC_ENOMEM, "%s: out of memory", call);
        break;
      }
      *link = last = t;
      link = &t->next;
      ++ntasks;
    }
    if (!rc) {
      mproc__pal_mutex_lock(p->k->mu);
      rc = takes_work(p, call); /* (closed, or broken, while building) */
      if (rc) mproc__pal_mutex_unlock(p->k->mu);
    }
  }
  if (rc) {
    while (first) {
      task *t = first;
      first = t->next;
      task_free(t);
    }
    result_discard(r);
    return rc;
  }
  r->k = p->k;
  ++p->k->refs;
  r->tasks = ntasks;
  if (ntasks == 1) first->lone = true;
  callback_call cb = {NULL, false};
  if (n == 0) { /* nothing to do: ready at once */
    result_succeed(r);
    if (r->opts.callback) {
      cb.r = r;
      cb.ok = true;
      ++r->tasks;
    }
  }
  if (first) {
    if (p->tail)
      p->tail->next = first;
    else
      p->head = first;
    p->tail = last;
  }
  pump(p, p->k->calling_back);                         /* (a callback holds the result thread: it pumps later) */
  if (p->o.task_timeout_ms > 0) wake_result_thread(p); /* it waits for the earliest deadline */
  mproc__pal_mutex_unlock(p->k->mu);
  if (cb.r) { /* an empty map's callback: here, as there is no task to report it */
    run_callback(p->k, cb);
    mproc__pal_mutex_lock(p->k->mu);
    --r->tasks;
    mproc__pal_mutex_unlock(p->k->mu);
  }
  *out = r;
  return 0;
}

int mproc_pool_apply_async(mproc_pool *p, mproc_task_fn fn, const void *in, size_t len, const mproc_async_opts *opts,
                           mproc_async_result **out) {
  MPROC__CHECK_ARG(!in && len, "in is NULL with len %zu", len);
  mproc_bytes b = {in, len};
  return submit(p, fn, &b, 1, 1, opts, false, false, out, "pool_apply_async");
}

int mproc_pool_map_async(mproc_pool *p, mproc_task_fn fn, const mproc_bytes *inputs, size_t n,
                         const mproc_async_opts *opts, mproc_async_result **out) {
  return submit(p, fn, inputs, n, opts ? opts->chunksize : 0, opts, false, false, out, "pool_map_async");
}

int mproc_pool_imap(mproc_pool *p, mproc_task_fn fn, const mproc_bytes *inputs, size_t n, size_t chunksize,
                    bool ordered, mproc_async_result **out) {
  return submit(p, fn, inputs, n, chunksize ? chunksize : 1, NULL, true, ordered, out, "pool_imap");
}

/* A call that waits for its result, made from one of p's callbacks: refused, since the result thread that
 * runs the callback is the one that would take the result (the _async form and a callback do). */
static int refuse_sync_in_callback(mproc_pool *p, const char *call) {
  if (!p || !in_callback(p)) return 0;
  return mproc__fail(MPROC_ESTATE,
                     "%s: called from a callback of the same pool, it would wait for ever (use the "
                     "_async form)",
                     call);
}

/* A synchronous call's end: wait for *out; a result that fails (or is not ready in time) is destroyed and
 * its error returned. */
static int finish_sync(mproc_async_result **out, int64_t timeout_ms) {
  int rc = mproc_async_result_get(*out, timeout_ms);
  if (rc) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", mproc_last_error());
    mproc_async_result_destroy(*out);
    *out = NULL;
    return mproc__fail(rc, "%s", msg);
  }
  return 0;
}

int mproc_pool_map(mproc_pool *p, mproc_task_fn fn, const mproc_bytes *inputs, size_t n, size_t chunksize,
                   int64_t timeout_ms, mproc_async_result **out) {
  MPROC__CHECK_ARG(!out, "out is NULL");
  *out = NULL;
  mproc_async_opts o;
  memset(&o, 0, sizeof o);
  o.chunksize = chunksize;
  int rc = refuse_sync_in_callback(p, "pool_map");
  if (!rc) rc = submit(p, fn, inputs, n, chunksize, &o, false, false, out, "pool_map");
  return rc ? rc : finish_sync(out, timeout_ms);
}

int mproc_pool_apply(mproc_pool *p, mproc_task_fn fn, const void *in, size_t len, int64_t timeout_ms, void **out,
                     size_t *out_len) {
  MPROC__CHECK_ARG(!out || !out_len, "out and out_len must be set");
  *out = NULL;
  *out_len = 0;
  mproc_async_result *r = NULL;
  int rc = refuse_sync_in_callback(p, "pool_apply");
  if (!rc) rc = mproc_pool_apply_async(p, fn, in, len, NULL, &r);
  if (!rc) rc = mproc_async_result_get(r, timeout_ms);
  if (!rc) {
    mproc__pal_mutex_lock(r->k->mu);
    struct item *it = &r->items[0];
    *out = it->borrowed ? malloc(it->len ? it->len : 1) : it->data; /* taken over, or copied out */
    *out_len = it->len;
    if (it->borrowed && *out) mproc__copy(*out, it->data, it->len);
    if (!it->borrowed) it->data = NULL;
    mproc__pal_mutex_unlock(r->k->mu);
    if (!*out) rc = mproc__fail(MPROC_ENOMEM, "pool_apply: out of memory for the output");
  }
  if (r) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", mproc_last_error());
    mproc_async_result_destroy(r);
    if (rc) mproc__fail(rc, "%s", msg);
  }
  return rc;
}

/* ---- the array path ---------------------------------------------------------------------------------- */

static size_t round64(size_t x) { return (x + 63) / 64 * 64; }

/* The caller's block holding [ptr, ptr + len) whole, with ptr's offset in it (with the mutex held). */
static arena *lent_find(mproc_pool *p, const void *ptr, size_t len, size_t *off) {
  for (arena *a = p->lent; a; a = a->next) {
    uintptr_t b = (uintptr_t)a->base, x = (uintptr_t)ptr;
    if (x >= b && x - b <= a->cap && len <= a->cap - (x - b)) {
      *off = (size_t)(x - b);
      return a;
    }
  }
  return NULL;
}

/* The array path needs memory the workers share: a backend's need not. */
static int array_unsupported(const mproc_pool *p, const char *call) {
  const char *name = p->o.backend->name ? p->o.backend->name : "this";
  return mproc__fail(MPROC_ENOTSUP,
                     "%s: the array path needs shared memory, which the %s backend's workers do not have; "
                     "map the records as byte strings",
                     call, name);
}

int mproc_pool_array_alloc(mproc_pool *p, size_t size, void **buf) {
  MPROC__CHECK_ARG_AS("pool_array_alloc", !p || !buf, "pool and buf must be set");
  *buf = NULL;
  MPROC__CHECK_ARG_AS("pool_array_alloc", !size || size > SIZE_MAX / 2, "size %zu", size);
  if (p->o.backend) return array_unsupported(p, "pool_array_alloc");
  arena *a = NULL;
  mproc__pal_mutex_lock(p->k->mu);
  int rc = arena_take(p, size, &a);
  if (!rc) {
    a->lent = true;
    a->next = p->lent;
    p->lent = a;
    *buf = a->base;
  }
  mproc__pal_mutex_unlock(p->k->mu);
  return rc;
}

void mproc_pool_array_free(mproc_pool *p, void *buf) {
  if (!p || !buf) return;
  mproc__pal_mutex_lock(p->k->mu);
  for (arena **at = &p->lent; *at; at = &(*at)->next) {
    arena *a = *at;
    if (a->base != buf) continue;
    *at = a->next;
    a->next = NULL;
    a->lent = false;
    ++a->users; /* given back as any arena: to the cache, or freed, once no map uses it */
    arena_unuse(a);
    break;
  }
  mproc__pal_mutex_unlock(p->k->mu);
}

/* map_array_async and map_array_chunks_async: fn runs per record, or per chunk (`chunks`). */
static int map_array(mproc_pool *p, const char *call, void *fn, bool chunks, const mproc_array_map *m,
                     const mproc_async_opts *o, mproc_async_result **out) {
  MPROC__CHECK_ARG_AS(call, !p || !fn || !m || !out, "pool, fn, the array and out must be set");
  *out = NULL;
  size_t n = m->n;
  MPROC__CHECK_ARG_AS(call, !m->in_size || !m->out_size, "a record size is 0 (in %zu, out %zu)", m->in_size,
                      m->out_size);
  MPROC__CHECK_ARG_AS(call, n && (!m->in || !m->out), "in or out is NULL with n %zu", n);
  if (p->o.backend) return array_unsupported(p, call);
  size_t hdr = round64(mproc__pool_array_hdr_size(p->nw));
  MPROC__CHECK_ARG_AS(call, n > (SIZE_MAX / 4 - hdr) / m->in_size || n > (SIZE_MAX / 4 - hdr) / m->out_size,
                      "%zu records of %zu and %zu bytes are too many", n, m->in_size, m->out_size);
  size_t chunk = o && o->chunksize ? o->chunksize : default_chunk(p, n);
  if (chunk > n) chunk = n ? n : 1; /* (a worker's claims must not wrap the counter) */
  mproc_async_result *r = (mproc_async_result *)calloc(1, sizeof *r);
  if (!r) return mproc__fail(MPROC_ENOMEM, "%s: out of memory", call);
  r->flag = MPROC_NO_HANDLE;
  r->n = r->nslots = n;
  r->held = r->failed_at = SIZE_MAX;
  if (o) r->opts = *o;
  r->out = (unsigned char *)m->out;
  r->out_size = m->out_size;
  task **ts = (task **)calloc(p->nw, sizeof *ts);
  if (!ts) {
    free(r);
    return mproc__fail(MPROC_ENOMEM, "%s: out of memory", call);
  }
  arena *a = NULL, *lent[2] = {NULL, NULL}; /* the map's arena; the caller's blocks holding in, out */
  size_t off[3] = {0, 0, 0};                /* the header, in, out: offsets in their arenas */
  size_t fn_i = 0;
  mproc__pal_mutex_lock(p->k->mu);
  int rc = takes_work(p, call);
  if (!rc) rc = fn_index(p, fn, &fn_i);
  if (!rc && n) { /* in place where the caller's block holds them (held by the map's tasks from here) */
    lent[0] = lent_find(p, m->in, n * m->in_size, &off[1]);
    lent[1] = lent_find(p, m->out, n * m->out_size, &off[2]);
  }
  size_t out_at = hdr + (lent[0] ? 0 : round64(n * m->in_size)); /* after what is copied in */
  if (!lent[0]) off[1] = hdr;
  if (!lent[1]) off[2] = out_at;
  if (!rc) rc = arena_take(p, lent[1] ? out_at : out_at + n * m->out_size, &a);
  for (int i = 0; i < 2; ++i)
    if (lent[i]) lent[i]->users += p->nw;
  mproc__pal_mutex_unlock(p->k->mu);
  r->out_off = lent[1] ? SIZE_MAX : off[2]; /* SIZE_MAX: written in place, nothing to copy out */
  /* the arena is this map's alone now: its header reset, the inputs copied in, outside the lock */
  if (!rc) {
    memset(a->base, 0, hdr);
    if (n && !lent[0]) memcpy(a->base + off[1], m->in, n * m->in_size);
    mproc__atomic_store32(&((mproc__pool_array_hdr *)(void *)a->base)->go, 1);
  }
  for (size_t i = 0; i < p->nw && !rc; ++i) { /* one part per worker: each claims until the end */
    task *t = (task *)calloc(1, sizeof *t);
    if (!t) {
      rc = mproc__fail(MPROC_ENOMEM, "%s: out of memory", call);
      break;
    }
    t->r = r;
    t->fn = fn_i;
    t->chunk = chunk;
    uint64_t how = (p->o.task_timeout_ms > 0 ? MPROC__POOL_ARRAY_TIMED : 0) | (chunks ? MPROC__POOL_ARRAY_CHUNKS : 0);
    uint64_t v[13] = {fn_i, 0, n, chunk, m->in_size, m->out_size, how};
    for (int j = 0; j < 3; ++j) { /* where each part lies: (arena id, offset), or (0, an address) */
      const arena *x = j && lent[j - 1] ? lent[j - 1] : a;
      v[7 + 2 * j] = x->v ? x->id : 0;
      v[8 + 2 * j] = (x->v ? 0 : (uint64_t)(uintptr_t)x->base) + off[j];
    }
    rc = mproc__buf_append(&t->msg, "A", 1);
    for (int j = 0; j < 13 && !rc; ++j) rc = put_u64(&t->msg, v[j]);
    ts[i] = t;
    if (rc) rc = mproc__fail(MPROC_ENOMEM, "%s: out of memory", call);
  }
  mproc__pal_mutex_lock(p->k->mu);
  if (!rc) rc = takes_work(p, call);
  if (rc) {
    for (size_t i = 0; i < p->nw; ++i)
      if (ts[i]) task_free(ts[i]); /* no arena yet */
    if (a) {
      a->users = 1;
      arena_unuse(a);
    }
    for (int i = 0; i < 2; ++i)
      for (size_t j = 0; lent[i] && j < p->nw; ++j) arena_unuse(lent[i]);
    mproc__pal_mutex_unlock(p->k->mu);
    free(ts);
    free(r);
    return rc;
  }
  r->k = p->k;
  ++p->k->refs;
  r->arena = a;
  a->users = r->tasks = p->nw;
  for (size_t i = 0; i < p->nw; ++i) {
    task *t = ts[i];
    t->arena = a;
    t->lent[0] = lent[0];
    t->lent[1] = lent[1];
    if (p->tail)
      p->tail->next = t;
    else
      p->head = t;
    p->tail = t;
  }
  free(ts);
  pump(p, true);
  if (p->o.task_timeout_ms > 0) wake_result_thread(p);
  mproc__pal_mutex_unlock(p->k->mu);
  *out = r;
  return 0;
}

int mproc_pool_map_array_async(mproc_pool *p, mproc_record_fn fn, const mproc_array_map *m, const mproc_async_opts *o,
                               mproc_async_result **out) {
  return map_array(p, "pool_map_array", (void *)fn, false, m, o, out);
}

int mproc_pool_map_array_chunks_async(mproc_pool *p, mproc_chunk_fn fn, const mproc_array_map *m,
                                      const mproc_async_opts *o, mproc_async_result **out) {
  return map_array(p, "pool_map_array_chunks", (void *)fn, true, m, o, out);
}

/* map_array and map_array_chunks: start it, then wait. */
static int map_array_sync(mproc_pool *p, const char *call, void *fn, bool chunks, const mproc_array_map *m,
                          size_t chunksize, int64_t timeout_ms) {
  mproc_async_opts o;
  memset(&o, 0, sizeof o);
  o.chunksize = chunksize;
  mproc_async_result *r = NULL;
  int rc = refuse_sync_in_callback(p, call);
  if (!rc) rc = map_array(p, call, fn, chunks, m, &o, &r);
  if (!rc) rc = finish_sync(&r, timeout_ms); /* a failed result is destroyed there */
  mproc_async_result_destroy(r);
  return rc;
}

int mproc_pool_map_array(mproc_pool *p, mproc_record_fn fn, const mproc_array_map *m, size_t chunksize,
                         int64_t timeout_ms) {
  return map_array_sync(p, "pool_map_array", (void *)fn, false, m, chunksize, timeout_ms);
}

int mproc_pool_map_array_chunks(mproc_pool *p, mproc_chunk_fn fn, const mproc_array_map *m, size_t chunksize,
                                int64_t timeout_ms) {
  return map_array_sync(p, "pool_map_array_chunks", (void *)fn, true, m, chunksize, timeout_ms);
}

/* ---- lifecycle ---------------------------------------------------------------------------------------- */

int mproc_pool_close(mproc_pool *p) {
  MPROC__CHECK_ARG(!p, "pool is NULL");
  mproc__pal_mutex_lock(p->k->mu);
  if (p->state == RUN) p->state = CLOSED;
  wake_result_thread(p);
  mproc__pal_mutex_unlock(p->k->mu);
  return 0;
}

/* Wait until the result thread has ended, and join it: whichever of join, terminate and destroy takes it
 * (under the mutex) joins it; one that finds it taken waits for its end (p->finished) instead, so two
 * threads never join it both. */
static void end_result_thread(mproc_pool *p) {
  mproc__pal_mutex_lock(p->k->mu);
  mproc__thread *thr = p->thr;
  p->thr = NULL;
  while (!thr && !p->finished) mproc__pal_cond_wait(p->k->cv, p->k->mu, INT64_MAX);
  mproc__pal_mutex_unlock(p->k->mu);
  if (thr) mproc__pal_thread_join(thr);
}

int mproc_pool_terminate(mproc_pool *p) {
  MPROC__CHECK_ARG(!p, "pool is NULL");
  if (in_callback(p)) return mproc__fail(MPROC_ESTATE, "pool_terminate: called from a callback");
  mproc__pal_mutex_lock(p->k->mu);
  p->state = TERMINATED;
  for (size_t i = 0; i < p->nw; ++i)               /* array maps fail now, so their workers claim no more (a thread */
    for (size_t j = 0; j < p->w[i].ninflight; ++j) /* worker is joined, not killed) */
      if (inflight_at(&p->w[i], j)->arena)
        result_fail(inflight_at(&p->w[i], j)->r, MPROC_ECLOSED, 0, "pool: the pool was terminated", false);
  wake_result_thread(p);
  mproc__pal_mutex_unlock(p->k->mu);
  end_result_thread(p); /* it kills and reaps the workers */
  /* what was not done fails; tasks let go of their results */
  mproc__pal_mutex_lock(p->k->mu);
  for (size_t i = 0; i < p->nw; ++i)
    for (size_t j = 0; j < p->w[i].ninflight; ++j) {
      task *t = inflight_at(&p->w[i], j);
      t->next = p->head;
      p->head = t;
    }
  fail_pending(p, MPROC_ECLOSED, "pool: the pool was terminated", false);
  mproc__pal_mutex_unlock(p->k->mu);
  return 0;
}

int mproc_pool_join(mproc_pool *p, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!p, "pool is NULL");
  if (in_callback(p)) return mproc__fail(MPROC_ESTATE, "pool_join: called from a callback");
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  mproc__pal_mutex_lock(p->k->mu);
  if (p->state == RUN) {
    mproc__pal_mutex_unlock(p->k->mu);
    return mproc__fail(MPROC_ESTATE, "pool_join: close or terminate the pool first");
  }
  int rc = 0;
  while (!p->finished && !rc) rc = mproc__pal_cond_wait(p->k->cv, p->k->mu, deadline);
  mproc__pal_mutex_unlock(p->k->mu);
  if (rc) return mproc__fail(rc, "pool_join: the workers still run after %lld ms", (long long)timeout_ms);
  end_result_thread(p);
  return 0;
}

void mproc_pool_destroy(mproc_pool *p) {
  if (!p || in_callback(p)) return;
  if (p->thr) {
    mproc__pal_mutex_lock(p->k->mu);
    bool open = p->state == RUN;
    mproc__pal_mutex_unlock(p->k->mu);
    if (open) {
      mproc_pool_terminate(p);
    } else if (p->thr) {
      mproc_pool_join(p, MPROC_INFINITE);
    }
  }
  mproc__pal_mutex_lock(p->k->mu);
  while (p->head) { /* closed but never joined: nothing is left after join */
    task *t = p->head;
    p->head = t->next;
    task_free(t);
  }
  mproc__pal_mutex_unlock(p->k->mu);
  pool_free(p);
}

/* ---- results ------------------------------------------------------------------------------------------ */

/* ---- lazy imap ---------------------------------------------------------------------------------- */

/* With the mutex held (released while the input runs): take inputs of a lazy imap into tasks until its
 * window is full or the input ends, and hand them to the pool. */
static void pull_inputs(mproc_async_result *r) {
  core *k = r->k;
  if (!r->lazy || !r->input || r->pulling || r->ready || !k->pool) return;
  while (r->base < r->n && !item_at(r, r->base)->live) ++r->base;
  size_t room = r->nslots - (r->n - r->base), first = r->n, taken = 0, chunk = r->chunk, fn = r->fn;
  if (!room) return;
  mproc_input_fn input = r->input;
  void *user = r->input_user;
  r->pulling = true;
  mproc__pal_mutex_unlock(k->mu);
  task *head = NULL, **link = &head, *cur = NULL;
  int status = 1;
  char msg[512] = "";
  while (taken < room) {
    mproc_bytes b = {NULL, 0};
    status = input(user, &b);
    if (status < 0) snprintf(msg, sizeof msg, "imap: the input failed: %s", mproc_last_error());
    if (status == 1 && !b.data && b.len) {
      status = MPROC_EINVAL;
      snprintf(msg, sizeof msg, "imap: input %zu is NULL with len %zu", first + taken, b.len);
    }
    if (status != 1) break;
    if (!cur && (cur = task_begin(r, fn, first + taken)) != NULL) {
      *link = cur;
      link = &cur->next;
    }
    if (!cur || task_add(cur, b.data, b.len) != 0) {
      status = MPROC_ENOMEM;
      snprintf(msg, sizeof msg, "imap: out of memory for input %zu", first + taken);
      break;
    }
    ++taken;
    if (cur->n == chunk) cur = NULL;
  }
  mproc__pal_mutex_lock(k->mu);
  r->pulling = false;
  mproc_pool *p = k->pool;
  bool refused = false;
  if (!r->ready && (!p || p->state != RUN || p->broken[0]) && (taken || status == 1)) {
    refused = true;
    status = p && p->state == RUN ? MPROC_EWORKERDIED : MPROC_ECLOSED;
    snprintf(msg, sizeof msg, "imap: %s",
             status == MPROC_ECLOSED ? "the pool was closed before the input ended" : p->broken);
  }
  for (task *t = head; t;) {
    task *next = t->next;
    t->next = NULL;
    if (refused || r->ready || t->n == 0) {
      task_free(t);
    } else {
      for (size_t i = 0; i < t->n; ++i) item_at(r, t->first + i)->live = true;
      ++r->tasks;
      if (p->tail)
        p->tail->next = t;
      else
        p->head = t;
      p->tail = t;
    }
    t = next;
  }
  if (!refused && !r->ready) r->n += taken;
  if (status == 0) {
    r->input = NULL; /* the end */
    if (r->done == r->n && !r->ready) {
      r->ready = r->ok = true;
      result_notify(r);
    }
  } else if (status < 0) {
    r->input = NULL;
    result_fail(r, status, r->n, msg, true);
  }
  if (p && p->state == RUN) {
    pump(p, p->k->calling_back);
    if (p->o.task_timeout_ms > 0) wake_result_thread(p);
  }
  mproc__pal_cond_broadcast(k->cv); /* another next() may wait for this one's inputs */
}

int mproc_pool_imap_lazy(mproc_pool *p, mproc_task_fn fn, mproc_input_fn input, void *user, size_t chunksize,
                         size_t window, bool ordered, mproc_async_result **out) {
  MPROC__CHECK_ARG(!p || !fn || !input || !out, "pool, fn, input and out must be set");
  *out = NULL;
  size_t chunk = chunksize ? chunksize : 1;
  if (!window) window = chunk > SIZE_MAX / 4 / p->nw ? SIZE_MAX : 4 * chunk * p->nw; /* (too large: refused below) */
  MPROC__CHECK_ARG(window > SIZE_MAX / 2 / sizeof(struct item), "window %zu is too large", window);
  mproc_async_result *r = (mproc_async_result *)calloc(1, sizeof *r);
  if (!r) return mproc__fail(MPROC_ENOMEM, "pool_imap_lazy: out of memory");
  r->flag = MPROC_NO_HANDLE;
  r->held = r->failed_at = SIZE_MAX;
  r->imap = r->lazy = true;
  r->ordered = ordered;
  r->nslots = window;
  r->chunk = chunk;
  r->items = (struct item *)calloc(window, sizeof *r->items);
  r->order = ordered ? NULL : (size_t *)calloc(window, sizeof *r->order);
  int rc = r->items && (ordered || r->order) ? 0 : mproc__fail(MPROC_ENOMEM, "pool_imap_lazy: out of memory");
  mproc__pal_mutex_lock(p->k->mu);
  if (!rc) rc = takes_work(p, "pool_imap_lazy");
  if (!rc) rc = fn_index(p, (void *)fn, &r->fn);
  if (rc) {
    mproc__pal_mutex_unlock(p->k->mu);
    result_free_items(r);
    free(r);
    return rc;
  }
  r->k = p->k;
  ++p->k->refs;
  r->input = input;
  r->input_user = user;
  pull_inputs(r); /* the first window */
  mproc__pal_mutex_unlock(p->k->mu);
  *out = r;
  return 0;
}

/* With the mutex held: ready for the calling thread (its callback has run, or this thread runs it). */
static bool ready_here(const mproc_async_result *r) {
  return r->ready && (!r->calling || r->cb_thread == mproc__pal_thread_id());
}

static int wait_ready(mproc_async_result *r, int64_t timeout_ms) {
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  int rc = 0;
  while (!ready_here(r) && !rc)
    rc = timeout_ms == 0 ? MPROC_ETIMEDOUT : mproc__pal_cond_wait(r->k->cv, r->k->mu, deadline);
  return rc;
}

int mproc_async_result_wait(mproc_async_result *r, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!r, "result is NULL");
  mproc__pal_mutex_lock(r->k->mu);
  int rc = wait_ready(r, timeout_ms);
  mproc__pal_mutex_unlock(r->k->mu);
  return rc ? mproc__fail(rc, "async_result_wait: not ready after %lld ms", (long long)timeout_ms) : 0;
}

int mproc_async_result_get(mproc_async_result *r, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!r, "result is NULL");
  if (!r->opts.callback && mproc__atomic_load32(&r->whole)) return 0; /* done, and no callback to wait for */
  mproc__pal_mutex_lock(r->k->mu);
  int rc = wait_ready(r, timeout_ms);
  if (rc) {
    mproc__pal_mutex_unlock(r->k->mu);
    return mproc__fail(rc, "async_result_get: not ready after %lld ms", (long long)timeout_ms);
  }
  if (!r->ok) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", r->message ? r->message : "the task failed");
    rc = r->code;
    mproc__pal_mutex_unlock(r->k->mu);
    return mproc__fail(rc, "%s", msg);
  }
  mproc__pal_mutex_unlock(r->k->mu);
  return 0;
}

bool mproc_async_result_ready(mproc_async_result *r) {
  if (!r) return false;
  mproc__pal_mutex_lock(r->k->mu);
  bool ready = ready_here(r);
  mproc__pal_mutex_unlock(r->k->mu);
  return ready;
}

int mproc_async_result_successful(mproc_async_result *r, bool *ok) {
  MPROC__CHECK_ARG(!r || !ok, "result and ok must be set");
  mproc__pal_mutex_lock(r->k->mu);
  bool ready = ready_here(r);
  *ok = ready && r->ok;
  mproc__pal_mutex_unlock(r->k->mu);
  return ready ? 0 : mproc__fail(MPROC_ESTATE, "async_result_successful: not ready");
}

size_t mproc_async_result_count(const mproc_async_result *r) {
  if (!r) return 0;
  mproc__pal_mutex_lock(r->k->mu);
  size_t n = r->n;
  mproc__pal_mutex_unlock(r->k->mu);
  return n;
}

/* mproc_async_result_item of an item that is not final yet, or with bad arguments. */
static MPROC__NOINLINE int result_item_locked(mproc_async_result *r, size_t i, const void **data, size_t *len) {
  const char *call = "mproc_async_result_item";
  MPROC__CHECK_ARG_AS(call, !r || !data || !len, "result, data and len must be set");
  MPROC__CHECK_ARG_AS(call, r->lazy, "a lazy imap's items are read with mproc_async_result_next");
  MPROC__CHECK_ARG_AS(call, i >= r->n, "item %zu of %zu", i, r->n);
  mproc__pal_mutex_lock(r->k->mu);
  bool there = r->out ? r->ready && r->ok : r->items[i].ready && (r->ok || !r->ready || r->imap);
  *data = !there ? NULL : r->out ? (const void *)(r->out + i * r->out_size) : r->items[i].data;
  *len = !there ? 0 : r->out ? r->out_size : r->items[i].len;
  mproc__pal_mutex_unlock(r->k->mu);
  return there ? 0 : mproc__fail(MPROC_ESTATE, "async_result_item: item %zu is not ready", i);
}

int mproc_async_result_item(mproc_async_result *r, size_t i, const void **data, size_t *len) {
  /* final: no lock per item for a caller reading a whole map (and no more than this on its way) */
  if (r && data && len && !r->lazy && i < r->n && mproc__atomic_load32(&r->whole)) {
    *data = r->out ? (const void *)(r->out + i * r->out_size) : r->items[i].data;
    *len = r->out ? r->out_size : r->items[i].len;
    return 0;
  }
  return result_item_locked(r, i, data, len);
}

int mproc_async_result_next(mproc_async_result *r, int64_t timeout_ms, const void **data, size_t *len, size_t *index) {
  MPROC__CHECK_ARG(!r || !data || !len, "result, data and len must be set");
  MPROC__CHECK_ARG(!r->imap, "async_result_next: not an imap result");
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  mproc__pal_mutex_lock(r->k->mu);
  int rc = 0;
  size_t at = SIZE_MAX;
  if (r->held != SIZE_MAX) { /* a lazy imap's item handed out last: its slot is free again */
    struct item *it = item_at(r, r->held);
    free(it->data);
    it->data = NULL;
    it->ready = it->live = false;
    r->held = SIZE_MAX;
  }
  for (;;) {
    pull_inputs(r);
    if (r->next >= r->n && !r->input) { /* the end, or a lazy input's failure there */
      rc = r->ready && !r->ok ? r->code : MPROC_EEOF;
      break;
    }
    at = r->ordered ? r->next : r->next < r->norder ? r->order[r->next % r->nslots] : SIZE_MAX;
    if (at != SIZE_MAX && item_at(r, at)->ready) break;
    if (r->ready && !r->ok) { /* the failure, where it comes in the iteration */
      rc = r->code;
      break;
    }
    if (timeout_ms == 0) rc = MPROC_ETIMEDOUT;
    if (!rc) rc = mproc__pal_cond_wait(r->k->cv, r->k->mu, deadline);
    if (rc) break;
  }
  if (!rc) {
    *data = item_at(r, at)->data;
    *len = item_at(r, at)->len;
    if (index) *index = at;
    ++r->next;
    if (r->lazy) r->held = at;
  }
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", rc && r->message ? r->message : "");
  mproc__pal_mutex_unlock(r->k->mu);
  if (rc == MPROC_EEOF) return mproc__fail(rc, "async_result_next: no more items");
  if (rc == MPROC_ETIMEDOUT && !*msg)
    return mproc__fail(rc, "async_result_next: no item within %lld ms", (long long)timeout_ms);
  if (rc) return mproc__fail(rc, "%s", msg);
  return 0;
}

void mproc_async_result_destroy(mproc_async_result *r) {
  if (!r) return;
  mproc__pal_mutex_lock(r->k->mu);
  result_release(r, true);
}

int mproc_async_result_cancel(mproc_async_result *r) {
  MPROC__CHECK_ARG(!r, "result is NULL");
  core *k = r->k;
  mproc__pal_mutex_lock(k->mu);
  mproc_pool *p = k->pool;
  if (r->ready || !p) {
    mproc__pal_mutex_unlock(k->mu);
    return mproc__fail(MPROC_ESTATE, "async_result_cancel: the result is ready already");
  }
  if (r->opts.error_callback && !later_room(p)) { /* room first: nothing is undone after */
    mproc__pal_mutex_unlock(k->mu);
    return mproc__fail(MPROC_ENOMEM, "async_result_cancel: out of memory");
  }
  size_t dropped = 0, first = SIZE_MAX;
  for (task **at = &p->head, *prev = NULL; *at;) {
    task *t = *at;
    if (t->r != r) {
      prev = t;
      at = &t->next;
      continue;
    }
    *at = t->next;
    if (p->tail == t) p->tail = prev;
    if (t->first < first) first = t->first;
    task_free(t);
    --r->tasks; /* never the last reference: the caller holds r */
    ++dropped;
  }
  if (!dropped) {
    mproc__pal_mutex_unlock(k->mu);
    return mproc__fail(MPROC_ESTATE,
                       "async_result_cancel: its tasks have all been given to workers (a task that may have begun "
                       "is not cancelled)");
  }
  result_fail(r, MPROC_ECANCELED, first, "pool: cancelled before it ran", true);
  if (r->opts.error_callback) { /* on the result thread, as every callback */
    later_push(p, r);
    wake_result_thread(p);
  }
  mproc__pal_mutex_unlock(k->mu);
  return 0;
}

int mproc__pool_result_wait_prepare(void *obj, mproc__wait_item *item, bool *ready_now) {
  mproc_async_result *r = (mproc_async_result *)obj;
  int rc = 0;
  mproc__pal_mutex_lock(r->k->mu);
  *ready_now = result_can_progress(r);
  if (!*ready_now && r->flag == MPROC_NO_HANDLE) {
    rc = mproc__pal_flag_open(&r->flag);
    if (rc) r->flag = MPROC_NO_HANDLE;
  } else if (!*ready_now && r->flag_set) { /* set for what a waiter has taken since */
    mproc__pal_flag_clear(r->flag);
    r->flag_set = false;
  }
  item->h = r->flag;
  item->kind = MPROC__WAIT_SENTINEL;
  mproc__pal_mutex_unlock(r->k->mu);
  if (rc == MPROC_ENOTSUP)
    return mproc__fail(rc, "wait: a pool's result cannot be waited on with other handles on this system");
  return rc;
}

/* ---- starmap: several arguments in one input ------------------------------------------------------- */

/* An input of several arguments: [u64 count] [u64 length] x count, then the arguments' bytes in order. */
static int pack_args(const mproc_bytes *args, size_t nargs, mproc__buf *b) {
  int rc = put_u64(b, nargs);
  for (size_t i = 0; i < nargs && !rc; ++i) rc = put_u64(b, args[i].len);
  for (size_t i = 0; i < nargs && !rc; ++i)
    if (args[i].len) rc = mproc__buf_append(b, args[i].data, args[i].len);
  return rc;
}

int mproc_task_args(const void *in, size_t len, mproc_bytes *args, size_t max, size_t *count) {
  MPROC__CHECK_ARG(!in && len, "in is NULL with len %zu", len);
  MPROC__CHECK_ARG(!count || (!args && max), "count must be set, and args with max %zu", max);
  *count = 0;
  mproc__wire_reader rd = mproc__wire_reader_make((const char *)in, len);
  uint64_t n = mproc__wire_get_u64(&rd, "a count");
  if (rd.bad || n > (len - 8) / 8)
    return mproc__fail(MPROC_EINVAL, "task_args: %zu bytes are not arguments packed by a starmap", len);
  uint64_t total = 8 + 8 * n;
  const unsigned char *data = (const unsigned char *)in + total;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t l = mproc__wire_get_u64(&rd, "a length");
    if (l > len - total)
      return mproc__fail(MPROC_EINVAL, "task_args: argument %llu overruns the input", (unsigned long long)i);
    if (i < max) {
      args[i].data = data;
      args[i].len = (size_t)l;
    }
    data += l;
    total += l;
  }
  if (total != len)
    return mproc__fail(MPROC_EINVAL, "task_args: %zu bytes left after the arguments", (size_t)(len - total));
  *count = (size_t)n;
  return n > max ? mproc__fail(MPROC_EMSGSIZE, "task_args: %zu arguments, room for %zu", (size_t)n, max) : 0;
}

int mproc_pool_starmap_async(mproc_pool *p, mproc_task_fn fn, const mproc_bytes *args, size_t nargs, size_t n,
                             const mproc_async_opts *opts, mproc_async_result **out) {
  MPROC__CHECK_ARG(!out, "out is NULL");
  *out = NULL;
  MPROC__CHECK_ARG(!args && n && nargs, "args is NULL with n %zu and nargs %zu", n, nargs);
  MPROC__CHECK_ARG(n && nargs > SIZE_MAX / n, "n %zu x nargs %zu overflows", n, nargs);
  for (size_t i = 0; i < n * nargs; ++i)
    MPROC__CHECK_ARG(!args[i].data && args[i].len, "args[%zu] is NULL with len %zu", i, args[i].len);
  mproc__buf packed = {0};
  size_t *ends = (size_t *)malloc((n ? n : 1) * sizeof *ends);
  mproc_bytes *in = (mproc_bytes *)malloc((n ? n : 1) * sizeof *in);
  int rc = ends && in ? 0 : mproc__fail(MPROC_ENOMEM, "pool_starmap_async: out of memory");
  for (size_t i = 0; i < n && !rc; ++i) {
    rc = pack_args(nargs ? args + i * nargs : NULL, nargs, &packed);
    if (rc) rc = mproc__fail(MPROC_ENOMEM, "pool_starmap_async: out of memory");
    ends[i] = packed.len;
  }
  for (size_t i = 0; i < n && !rc; ++i) { /* the buffer has stopped moving */
    size_t start = i ? ends[i - 1] : 0;
    in[i].data = packed.data + start;
    in[i].len = ends[i] - start;
  }
  if (!rc) rc = submit(p, fn, in, n, opts ? opts->chunksize : 0, opts, false, false, out, "pool_starmap_async");
  mproc__buf_free(&packed);
  free(ends);
  free(in);
  return rc;
}

int mproc_pool_starmap(mproc_pool *p, mproc_task_fn fn, const mproc_bytes *args, size_t nargs, size_t n,
                       size_t chunksize, int64_t timeout_ms, mproc_async_result **out) {
  MPROC__CHECK_ARG(!out, "out is NULL");
  *out = NULL;
  mproc_async_opts o;
  memset(&o, 0, sizeof o);
  o.chunksize = chunksize;
  int rc = refuse_sync_in_callback(p, "pool_starmap");
  if (!rc) rc = mproc_pool_starmap_async(p, fn, args, nargs, n, &o, out);
  return rc ? rc : finish_sync(out, timeout_ms);
}
