/* A pool's worker (pool_internal.h): runs tasks received on its connection and sends back their
 * outputs, the same loop for a process worker and a thread worker. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../atomic.h"
#include "../pal.h"
#include "mproc/pool_backend.h"
#include "mproc/shared.h"
#include "../wire.h"
#include "pool_internal.h"

struct mproc_task {
  mproc__buf *reply; /* where an item's output goes: its reply, after the output's length word */
  size_t mark;       /* ... at this offset (the output so far: reply->len - mark) */
  mproc__buf own;    /* (no reply: an array map's record task, whose output is its record) */
  char *message;     /* mproc_task_fail's */
};

int mproc_task_return(mproc_task *t, const void *data, size_t len) {
  MPROC__CHECK_ARG(!t || (!data && len), "task and data must be set");
  mproc__buf *b = t->reply ? t->reply : &t->own;
  b->len = t->reply ? t->mark : 0; /* (a second return replaces the first) */
  return mproc__buf_append(b, data, len);
}

int mproc_task_fail(mproc_task *t, const char *fmt, ...) {
  if (!t || !fmt) return MPROC_ETASK;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  free(t->message);
  t->message = mproc__strdup(buf);
  return MPROC_ETASK;
}

/* A task succeeded: a message it set is read by nobody (and must not name a later failure). */
static void drop_message(mproc_task *t) {
  free(t->message);
  t->message = NULL;
}

static int put_u64(mproc__buf *b, uint64_t v) {
  unsigned char w[8];
  mproc__wire_put_le64(w, v);
  return mproc__buf_append(b, w, 8);
}

/* A task failed with status st at `item`: its reply, from offset `at` of *reply on (after the 'R'), says
 * so: MPROC_ETASK, the item, and the message - `head`, then mproc_task_fail's or "the task returned N". */
static int failure_reply(mproc__buf *reply, size_t at, int st, const mproc_task *t, uint64_t item, const char *head) {
  char buf[64];
  if (!t->message) snprintf(buf, sizeof buf, "the task returned %d", st);
  const char *m = t->message ? t->message : buf;
  reply->len = at;
  int rc = put_u64(reply, (uint64_t)-MPROC_ETASK);
  if (!rc) rc = put_u64(reply, item);
  if (!rc) rc = put_u64(reply, strlen(head) + strlen(m));
  if (!rc) rc = mproc__buf_append(reply, head, strlen(head));
  if (!rc) rc = mproc__buf_append(reply, m, strlen(m));
  return rc;
}

/* Run the n items of a task; the reply in *reply. t: the task's output buffer, kept from item to item. */
static int run_task(mproc_task_fn fn, mproc__wire_reader *r, mproc_task *t, mproc__buf *reply) {
  uint64_t n = mproc__wire_get_u64(r, "a task's item count");
  int rc = mproc__buf_append(reply, "R", 1);
  size_t at = reply->len;
  if (!rc) rc = put_u64(reply, 0);
  if (!rc) rc = put_u64(reply, n);
  for (uint64_t i = 0; i < n && !rc && !r->bad; ++i) {
    size_t len;
    const void *in = mproc__wire_get_bytes(r, &len, "a task's item");
    if (r->bad) break;
    rc = put_u64(reply, 0); /* the output's length, filled in after it */
    if (rc) break;
    t->reply = reply; /* the output is written into the reply where it belongs: no copy */
    t->mark = reply->len;
    int st = fn(in, len, t);
    t->reply = NULL;
    if (st) { /* the first failure ends the task: the reply says which item and why */
      rc = failure_reply(reply, at, st, t, i, "");
      drop_message(t);
      return rc;
    }
    mproc__wire_put_le64(reply->data + t->mark - 8, reply->len - t->mark);
    if (t->message) drop_message(t);
  }
  if (r->bad) return mproc__fail(MPROC_ESYS, "pool worker: a malformed task (%s)", r->bad);
  return rc;
}

/* The arenas a process worker holds mapped (pool_internal.h: 'S', 'U'). */
typedef struct arena_view {
  uint64_t id;
  mproc_value *v;
} arena_view;

typedef struct arenas {
  arena_view *a;
  size_t n;
} arenas;

static unsigned char *arena_base(const arenas *as, uint64_t id) {
  for (size_t i = 0; i < as->n; ++i)
    if (as->a[i].id == id) return (unsigned char *)mproc_value_ptr(as->a[i].v);
  return NULL;
}

static int arena_keep(mproc_connection *c, arenas *as, uint64_t id) {
  void *v = NULL;
  int rc = mproc_connection_recv_object(c, MPROC_OBJECT_VALUE, MPROC_INFINITE, &v);
  if (rc) return rc;
  arena_view *more = (arena_view *)realloc(as->a, (as->n + 1) * sizeof *more);
  if (!more) {
    mproc_value_destroy((mproc_value *)v);
    return mproc__fail(MPROC_ENOMEM, "pool worker: out of memory");
  }
  as->a = more;
  as->a[as->n].id = id;
  as->a[as->n++].v = (mproc_value *)v;
  return 0;
}

static void arena_drop(arenas *as, uint64_t id) {
  for (size_t i = 0; i < as->n; ++i)
    if (as->a[i].id == id) {
      mproc_value_destroy(as->a[i].v);
      as->a[i] = as->a[--as->n];
      return;
    }
}

/* An array map failed with status st at records first..last (one record, or a chunk): its reply, naming
 * them. */
static int array_failed(mproc__buf *reply, int st, const mproc_task *t, uint64_t first, uint64_t last) {
  char head[80];
  if (first == last)
    snprintf(head, sizeof head, "record %llu: ", (unsigned long long)first);
  else
    snprintf(head, sizeof head, "records %llu to %llu: ", (unsigned long long)first, (unsigned long long)last);
  return failure_reply(reply, 1, st, t, first, head);
}

/* Run an array map's part ('A'): claim chunks and run fn on their records where they lie (on each record,
 * or once on the chunk); the reply in *reply. */
static int run_array(void (*fn)(void), mproc__wire_reader *r, const arenas *as, mproc__buf *reply) {
  uint64_t v[12];
  for (int i = 0; i < 12; ++i) v[i] = mproc__wire_get_u64(r, "an array map's field");
  if (r->bad) return mproc__fail(MPROC_ESYS, "pool worker: a malformed array map (%s)", r->bad);
  uint64_t slot = v[0], n = v[1], chunk = v[2] ? v[2] : 1, in_size = v[3], out_size = v[4];
  bool timed = (v[5] & MPROC__POOL_ARRAY_TIMED) != 0;
  mproc_record_fn per_record = (v[5] & MPROC__POOL_ARRAY_CHUNKS) ? NULL : (mproc_record_fn)fn;
  mproc_chunk_fn per_chunk = (mproc_chunk_fn)fn;
  unsigned char *at[3]; /* the header, the inputs, the outputs: arena id and offset (id 0: an address) */
  for (int i = 0; i < 3; ++i) {
    uint64_t id = v[6 + 2 * i];
    unsigned char *base = id ? arena_base(as, id) : NULL;
    if (id && !base) return mproc__fail(MPROC_ESYS, "pool worker: an array map in an unknown arena");
    at[i] = id ? base + v[7 + 2 * i] : (unsigned char *)(uintptr_t)v[7 + 2 * i];
  }
  mproc__pool_array_hdr *h = (mproc__pool_array_hdr *)(void *)at[0];
  if (!mproc__atomic_load32(&h->go)) return mproc__fail(MPROC_ESYS, "pool worker: an array map not set up");
  const unsigned char *in = at[1];
  unsigned char *out = at[2];
  mproc__pool_claim *claim = &h->claims[slot];
  int rc = mproc__buf_append(reply, "R", 1);
  if (!rc) rc = put_u64(reply, 0);
  if (!rc) rc = put_u64(reply, 0);
  mproc_task t;
  memset(&t, 0, sizeof t);
  bool failed = false;
  while (!rc && !failed && !mproc__atomic_load32(&h->stop)) {
    uint64_t s = mproc__atomic_add64(&h->next, chunk);
    if (s >= n) break;
    uint64_t e = n - s < chunk ? n : s + chunk;
    if (timed) mproc__atomic_store64_relaxed(&claim->since, (uint64_t)mproc__pal_monotonic_ns());
    mproc__atomic_store64_relaxed(&claim->at, s + 1); /* read by the parent for a death or a timeout only */
    uint64_t i = s;                                   /* (per record: the one that failed) */
    int st = 0;
    if (per_record) {
      for (; i < e; ++i) {
        if ((st = per_record(in + i * in_size, out + i * out_size, &t)) != 0) break;
        if (t.message) drop_message(&t);
      }
    } else {
      st = per_chunk(in + s * in_size, out + s * out_size, (size_t)(e - s), &t);
      if (!st && t.message) drop_message(&t);
    }
    if (st) {
      mproc__atomic_store32(&h->stop, 1); /* the map fails: the others claim no more */
      rc = array_failed(reply, st, &t, i, per_record ? i : e - 1);
      failed = true;
    }
  }
  mproc__atomic_store64(&claim->at, 0);
  mproc__atomic_add64(&h->parts, 1); /* after every output it wrote */
  mproc__buf_free(&t.own);
  free(t.message);
  return rc;
}

int mproc__pool_ring_put(mproc__pool_ring *g, const void *reply, size_t len, bool wake) {
  uint64_t t = mproc__atomic_load64_relaxed(&g->tail); /* (the writer's own) */
  if (t - mproc__atomic_load64(&g->head) >= MPROC__POOL_RING)
    return mproc__fail(MPROC_ESTATE, "pool worker: more replies than tasks in flight");
  mproc__pool_reply *s = &g->slot[t % MPROC__POOL_RING];
  bool fits = len <= sizeof s->data;
  if (fits) memcpy(s->data, reply, len);
  s->len = fits ? len : MPROC__POOL_RING_ELSEWHERE;
  mproc__atomic_store64(&g->tail, t + 1);  /* publishes it; and before `asleep` is read */
  if (!fits) return MPROC_POOL_REPLY_SEND; /* (its message wakes the parent) */
  return wake ? mproc__pool_ring_wake(g) : MPROC_POOL_REPLY_TAKEN;
}

int mproc__pool_ring_wake(mproc__pool_ring *g) {
  if (mproc__atomic_load32(&g->asleep) && mproc__atomic_xchg32(&g->asleep, 0)) return MPROC_POOL_REPLY_WAKE;
  return MPROC_POOL_REPLY_TAKEN;
}

/* A worker loop's state. */
typedef struct loop_state {
  mproc_connection *c; /* (NULL: a worker driven by its caller, which gets the replies from reply) */
  const mproc__pool_worker_cfg *cfg;
  mproc_pool_reply_fn reply_fn;
  void *reply_ctx;
  mproc_task_fn *fns; /* the functions defined to it ('F'), by index */
  size_t nfns;
  arenas as;
  uint64_t done;    /* tasks run */
  bool quick;       /* running a quick batch's tasks ('K') */
  bool unwoken;     /* replies are in the ring that the parent was not woken for */
  mproc_task task;  /* a task's state (its output goes into the reply) */
  mproc__buf reply; /* a reply, the same */
} loop_state;

/* What ring_put or ring_wake said: the message to send, if any. */
static int reply_act(loop_state *s, int act, const mproc__buf *reply) {
  if (act == MPROC_POOL_REPLY_SEND) return mproc_connection_send_bytes(s->c, reply->data, reply->len, 0, reply->len);
  if (act == MPROC_POOL_REPLY_WAKE) return mproc_connection_send_bytes(s->c, "W", 1, 0, 1);
  return act;
}

/* Wake the parent for the replies put in the ring without it, if it sleeps. */
static int wake_parent(loop_state *s) {
  if (!s->unwoken) return 0;
  s->unwoken = false;
  return reply_act(s, mproc__pool_ring_wake(s->cfg->ring), NULL);
}

/* Whether the parent sleeps on the CPU this worker runs on. */
static bool parent_here(const mproc__pool_ring *g) {
  int cpu = mproc__pal_current_cpu();
  return cpu >= 0 && mproc__atomic_load32(&g->asleep_cpu) == (uint32_t)cpu;
}

/* Send the parent a task's reply: to the caller's function, or into the worker's ring where it has one
 * (pool_internal.h), else, or when it does not fit a slot, on its connection. In a quick batch, with the
 * parent asleep on this CPU, it is woken once the batch ends (pool_internal.h 'K'). */
static int send_reply(loop_state *s, const mproc__buf *reply) {
  if (s->reply_fn) return s->reply_fn(s->reply_ctx, reply->data, reply->len);
  mproc__pool_ring *g = s->cfg->ring;
  int act = g ? mproc__pool_ring_put(g, reply->data, reply->len, false) : MPROC_POOL_REPLY_SEND;
  if (act != MPROC_POOL_REPLY_TAKEN) {
    if (act == MPROC_POOL_REPLY_SEND) s->unwoken = false; /* (its message wakes the parent) */
    return reply_act(s, act, reply);
  }
  s->unwoken = true;
  return s->quick && parent_here(g) ? 0 : wake_parent(s);
}

#define KEEP_BUFFER (256u << 10) /* a buffer the loop keeps for the next task: at most this */

static void keep_or_free(mproc__buf *b) {
  b->len = 0;
  if (b->cap > KEEP_BUFFER) mproc__buf_free(b);
}

/* One message from the parent (pool_internal.h): 0 to go on, 1 at the end ('Q', or maxtasks run), or
 * an error. A batch ('B', 'K') holds tasks only. */
static int serve_message(loop_state *s, const char *msg, size_t len, bool in_batch) {
  if (!in_batch && len == 1 && msg[0] == MPROC__POOL_QUIT) return 1;
  mproc__wire_reader r = mproc__wire_reader_make(msg + (len > 0), len ? len - 1 : 0);
  uint64_t index = mproc__wire_get_u64(&r, "a function index");
  char kind = len && !r.bad ? msg[0] : 0;
  if (in_batch && kind != MPROC__POOL_TASK) kind = 0;
  int rc = 0;
  if (kind == MPROC__POOL_BATCH || kind == MPROC__POOL_QUICK_BATCH) { /* index: how many tasks */
    s->quick = kind == MPROC__POOL_QUICK_BATCH;
    for (uint64_t i = 0; i < index && !rc; ++i) {
      size_t tl;
      const char *t = (const char *)mproc__wire_get_bytes(&r, &tl, "a task of a batch");
      rc = r.bad ? 0 : serve_message(s, t, tl, true);
      if (r.bad) break;
    }
    s->quick = false;
    int woke = wake_parent(s); /* (also after a failure: the replies put are the parent's) */
    if (!rc) rc = woke;
    if (!rc && (r.bad || mproc__wire_left(&r))) rc = mproc__fail(MPROC_ESYS, "pool worker: a malformed batch");
  } else if (kind == MPROC__POOL_DEFINE) {
    void *fn = NULL;
    rc = mproc__pal_fn_resolve(r.p + r.off, mproc__wire_left(&r), &fn);
    mproc_task_fn *more = rc ? NULL : (mproc_task_fn *)realloc(s->fns, (size_t)(index + 1) * sizeof *s->fns);
    if (!rc && !more) rc = mproc__fail(MPROC_ENOMEM, "pool worker: out of memory");
    if (more) {
      s->fns = more;
      for (size_t i = s->nfns; i <= index; ++i) s->fns[i] = NULL;
      s->nfns = s->nfns > index + 1 ? s->nfns : (size_t)index + 1;
      s->fns[index] = (mproc_task_fn)fn;
    }
  } else if (kind == MPROC__POOL_ARENA) {
    rc = s->c ? arena_keep(s->c, &s->as, index)
              : mproc__fail(MPROC_ENOTSUP, "pool worker: shared memory (the array path) needs a connection");
  } else if (kind == MPROC__POOL_UNMAP) {
    arena_drop(&s->as, index);
  } else if ((kind == MPROC__POOL_TASK || kind == MPROC__POOL_ARRAY) && index < s->nfns && s->fns[index]) {
    mproc__buf *reply = &s->reply;
    if (s->cfg->begun) mproc__atomic_store64(s->cfg->begun, s->done + 1);
    if (kind == MPROC__POOL_TASK)
      rc = run_task(s->fns[index], &r, &s->task, reply);
    else
      rc = run_array((void (*)(void))s->fns[index], &r, &s->as, reply);
    if (!rc) rc = send_reply(s, reply);
    keep_or_free(reply);
    keep_or_free(&s->task.own);
    ++s->done;
    if (!rc && s->cfg->maxtasks && s->done >= s->cfg->maxtasks) return 1; /* replaced by a new worker */
  } else {
    rc = mproc__fail(MPROC_ESYS, "pool worker: a malformed message");
  }
  return rc;
}

static void loop_begin(loop_state *s, mproc_connection *c, const mproc__pool_worker_cfg *cfg) {
  memset(s, 0, sizeof *s);
  s->c = c;
  s->cfg = cfg;
  if (cfg->initializer) cfg->initializer(cfg->initarg, cfg->initarg_size);
}

static void loop_end(loop_state *s) {
  free(s->fns);
  mproc__buf_free(&s->task.own);
  mproc__buf_free(&s->reply);
  while (s->as.n) arena_drop(&s->as, s->as.a[0].id);
  free(s->as.a);
}

int mproc__pool_worker_loop(mproc_connection *c, const mproc__pool_worker_cfg *cfg) {
  loop_state s;
  loop_begin(&s, c, cfg);
  int rc = 0;
  while (!rc) {
    char *msg = NULL;
    size_t len = 0;
    rc = mproc_connection_recv_bytes(c, 0, MPROC_INFINITE, &msg, &len);
    if (rc == MPROC_EEOF) {
      rc = 1;
    } else if (!rc) {
      rc = serve_message(&s, msg, len, false);
      mproc_free(msg);
    }
  }
  loop_end(&s);
  return rc == 1 ? 0 : rc;
}

/* The initializer and its argument, the tail of a worker's settings (pool_internal.h): 0, or -1 when they
 * are malformed or the initializer is not found here. */
static int read_initializer(mproc__wire_reader *r, mproc__pool_worker_cfg *cfg) {
  size_t ref_len;
  const void *ref = mproc__wire_get_bytes(r, &ref_len, "the initializer");
  cfg->initarg = mproc__wire_get_bytes(r, &cfg->initarg_size, "the initializer's argument");
  if (r->bad) return -1;
  if (ref_len) {
    void *fn = NULL;
    if (mproc__pal_fn_resolve(ref, ref_len, &fn) != 0) return -1;
    cfg->initializer = (void (*)(const void *, size_t))fn;
  }
  return 0;
}

int mproc__pool_worker_main(const mproc_args *a) {
  if (a->connection_count != 1 || a->object_count != 2) return 70;
  mproc__wire_reader r = mproc__wire_reader_make(a->data, a->size);
  mproc__pool_worker_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.maxtasks = mproc__wire_get_u64(&r, "maxtasks");
  uint64_t slot = mproc__wire_get_u64(&r, "the slot");
  mproc_value *slots = (mproc_value *)a->objects[1];
  if (r.bad || slot >= mproc_value_length(slots) || mproc_value_elem_size(slots) != sizeof *cfg.ring) return 71;
  cfg.ring = (mproc__pool_ring *)mproc_value_ptr(slots) + slot;
  cfg.begun = &cfg.ring->begun;
  if (read_initializer(&r, &cfg) != 0) return r.bad ? 71 : 72;
  return mproc__pool_worker_loop(a->connections[0], &cfg) ? 73 : 0;
}

/* A backend's worker's settings (what its start was given, pool_internal.h): 0, or an error. */
static int read_boot(const void *boot, size_t boot_len, mproc__pool_worker_cfg *cfg, const char *call) {
  mproc__wire_reader r = mproc__wire_reader_make(boot, boot_len);
  memset(cfg, 0, sizeof *cfg);
  cfg->maxtasks = mproc__wire_get_u64(&r, "maxtasks");
  if (read_initializer(&r, cfg) == 0) return 0;
  return r.bad ? mproc__fail(MPROC_EINVAL, "%s: malformed settings (%s)", call, r.bad)
               : mproc__fail(MPROC_ENOENT, "%s: the initializer is not found here: %s", call, mproc_last_error());
}

int mproc_pool_worker_serve(mproc_connection *c, const void *boot, size_t boot_len) {
  MPROC__CHECK_ARG(!c || (!boot && boot_len), "c and boot must be set");
  mproc__pool_worker_cfg cfg;
  int rc = read_boot(boot, boot_len, &cfg, "pool_worker_serve");
  return rc ? rc : mproc__pool_worker_loop(c, &cfg);
}

struct mproc_pool_worker {
  mproc__pool_worker_cfg cfg;
  loop_state s;
};

int mproc_pool_worker_open(const void *boot, size_t boot_len, mproc_pool_reply_fn reply, void *ctx,
                           mproc_pool_worker **out) {
  MPROC__CHECK_ARG(!out || !reply || (!boot && boot_len), "out, reply and boot must be set");
  *out = NULL;
  mproc_pool_worker *w = (mproc_pool_worker *)calloc(1, sizeof *w);
  if (!w) return mproc__fail(MPROC_ENOMEM, "pool_worker_open: out of memory");
  int rc = read_boot(boot, boot_len, &w->cfg, "pool_worker_open");
  if (rc) {
    free(w);
    return rc;
  }
  loop_begin(&w->s, NULL, &w->cfg);
  w->s.reply_fn = reply;
  w->s.reply_ctx = ctx;
  *out = w;
  return 0;
}

int mproc_pool_worker_feed(mproc_pool_worker *w, const void *msg, size_t len) {
  MPROC__CHECK_ARG(!w || (!msg && len), "w and msg must be set");
  return serve_message(&w->s, (const char *)msg, len, false);
}

void mproc_pool_worker_close(mproc_pool_worker *w) {
  if (!w) return;
  loop_end(&w->s);
  free(w);
}

bool mproc_pool_worker_may_serve(void) { return !mproc__pal_secure_exec(); }

int mproc_pool_backend_fail(int code, const char *message) { return mproc__fail(code, "%s", message ? message : ""); }
