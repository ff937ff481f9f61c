/* The manager's server: the table of objects (dicts, lists, namespaces, locks) and one thread serving
 * every client over mproc_wait, with deferred replies for lock acquires that wait (see manager.h, "THE
 * SERVER"). Portable: the Listener, Connection and mproc_wait do the OS's part. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager_internal.h"
#include "mproc/connection.h"
#include "mproc/listener.h"
#include "../pal.h"

#define DEFERRED 1 /* a handler's result: the reply comes later */
/* The listener is accepted from only when mproc_wait reports it ready. Until December 2026 the server
 * also tried every 100 ms whatever the wait said: without that, under wine, a second client's authkey
 * handshake sometimes never moved. The cause was the Listener's (issue 13, src/listener.c's admit): a
 * client admitted in the same accept as an older handshake that finished was left before its challenge
 * went out, so its connection never became readable and no wait reported it. */

typedef struct bstr {
  char *p;
  size_t n;
} bstr;

/* A dict: entries in insertion order (dead ones skipped until the next rebuild) and an open-addressing
 * index of entry numbers + 1 (0: empty, TOMB: deleted). */
#define TOMB UINT32_MAX
typedef struct dentry {
  bstr k, v;
  uint64_t h;
  bool live;
} dentry;
typedef struct dict {
  dentry *e;
  size_t n, cap, live;
  uint32_t *slot;
  size_t nslot; /* a power of two, or 0 */
} dict;

typedef struct list {
  bstr *v;
  size_t n, cap;
} list;

/* A first-in first-out queue of byte strings: a ring. */
typedef struct ring {
  bstr *v;
  size_t head, n, cap;
  size_t maxsize;    /* 0: none */
  size_t got_undone; /* a joinable queue: items got whose task_done has not come */
} ring;

struct client;
typedef struct mlock { /* a Lock or an RLock */
  bool locked, owner_dead;
  struct client *holder;
  uint32_t count; /* an RLock's recursion */
} mlock;
typedef struct msem {
  uint32_t value, bound; /* bound 0: not bounded */
} msem;
typedef struct mcond {
  uint64_t lock;
  bool own_lock; /* made with the condition, dropped with it */
} mcond;
typedef struct mbarrier {
  uint32_t parties, count;
  bool broken;
} mbarrier;
typedef struct mvalue {
  uint8_t type; /* MGR_VALUE_*, 0 for an array */
  bstr v;
} mvalue;

typedef struct obj {
  uint32_t gen;
  uint8_t kind; /* 0: free */
  uint32_t next_free;
  union {
    dict d;
    list l;
    mlock k;
    msem sem;
    bool event;
    mcond cond;
    mbarrier bar;
    mvalue val;
    ring q;
    struct {
      const mproc_mtype *type;
      void *state;
    } cu;
  } u;
} obj;

/* A client whose request waits (a deferred reply) has waiting set: it sends nothing until answered (its
 * connection is watched for its end only). wait_op is what it waits for on wait_obj: MGR_LOCK_ACQUIRE (a condition's
 * waiter taking its lock back too: wait_status is then its answer, wait_count the RLock count it gets back),
 * MGR_SEM_ACQUIRE, MGR_EVENT_WAIT, MGR_COND_WAIT (a notify), MGR_BARRIER_WAIT (wait_count: its index),
 * MGR_QUEUE_GET, MGR_QUEUE_PUT (wait_item: the item), MGR_QUEUE_JOIN. Waiters are served in ticket
 * order. */
typedef struct client {
  mproc_connection *conn;
  bool dead;
  bool waiting;
  uint32_t wait_op;
  uint64_t wait_obj;
  uint32_t wait_seq;
  int64_t deadline;
  uint64_t ticket;
  int wait_status;
  uint32_t wait_count;
  bstr wait_item;
} client;

struct mproc__mgr_server {
  mproc_listener *l;
  mproc_connection *control;
  client **cl;
  size_t ncl, capcl;
  obj *objs;
  size_t nobj, capobj;
  uint32_t free_head; /* index + 1 of a free slot, 0: none */
  dict names;         /* name -> the 8-byte id of the object it names */
  uint64_t seed, tickets;
  const mproc_mtype *types; /* custom types */
  size_t ntypes;
  bool stop;
};
typedef struct mproc__mgr_server server;

/* ---- the codec (shared with client.c) ---------------------------------------------------------- */

void mproc__mgr_put_u32(mproc__buf *b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b->data[b->len++] = (char)(v >> (8 * i));
}
uint32_t mproc__mgr_get_u32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}
uint64_t mproc__mgr_get_u64(const char *p) {
  return (uint64_t)mproc__mgr_get_u32(p) | (uint64_t)mproc__mgr_get_u32(p + 4) << 32;
}
int mproc__mgr_put_item(mproc__buf *b, const void *p, size_t n) {
  if (n > UINT32_MAX) return mproc__fail(MPROC_EMSGSIZE, "manager: an item of %zu bytes is too long", n);
  if (mproc__buf_reserve(b, 4 + n) != 0) return MPROC_ENOMEM;
  mproc__mgr_put_u32(b, (uint32_t)n);
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}
int mproc__mgr_put_i64_item(mproc__buf *b, int64_t v) {
  char x[8];
  for (int i = 0; i < 8; ++i) x[i] = (char)((uint64_t)v >> (8 * i));
  return mproc__mgr_put_item(b, x, 8);
}
int mproc__mgr_item_i64(mproc__mgr_item it, int64_t *v) {
  if (it.n != 8) return mproc__fail(MPROC_EINVAL, "manager: an integer item has %zu bytes, not 8", it.n);
  *v = (int64_t)mproc__mgr_get_u64(it.p);
  return 0;
}
int mproc__mgr_parse_items(const char *p, size_t n, uint32_t count, mproc__mgr_item **items) {
  *items = NULL;
  if (count > n / 4) return mproc__fail(MPROC_EINVAL, "manager: %u items cannot fit in %zu bytes", count, n);
  if (count == 0) return n == 0 ? 0 : mproc__fail(MPROC_EINVAL, "manager: %zu bytes after the last item", n);
  mproc__mgr_item *it = (mproc__mgr_item *)malloc(count * sizeof *it);
  if (!it) return mproc__fail(MPROC_ENOMEM, "manager: out of memory parsing %u items", count);
  size_t at = 0;
  for (uint32_t i = 0; i < count; ++i) {
    size_t len = n - at >= 4 ? mproc__mgr_get_u32(p + at) : 0;
    if (n - at < 4 || len > n - at - 4) {
      free(it);
      return mproc__fail(MPROC_EINVAL, "manager: item %u runs past the end of the message", i);
    }
    it[i].p = p + at + 4;
    it[i].n = len;
    at += 4 + len;
  }
  if (at != n) {
    free(it);
    return mproc__fail(MPROC_EINVAL, "manager: %zu bytes after the last item", n - at);
  }
  *items = it;
  return 0;
}

/* ---- byte strings, dicts, lists ----------------------------------------------------------------- */

static int bstr_set(bstr *s, const char *p, size_t n) {
  char *c = (char *)malloc(n ? n : 1);
  if (!c) return mproc__fail(MPROC_ENOMEM, "manager: out of memory for %zu bytes", n);
  if (n) memcpy(c, p, n);
  free(s->p);
  s->p = c;
  s->n = n;
  return 0;
}
static bool bstr_eq(const bstr *s, const char *p, size_t n) { return s->n == n && (n == 0 || !memcmp(s->p, p, n)); }

static uint64_t hash(uint64_t seed, const char *p, size_t n) {
  uint64_t h = 14695981039346656037ull ^ seed;
  for (size_t i = 0; i < n; ++i) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
  return h ^ (h >> 29);
}

/* The entry of key, or -1. */
static ptrdiff_t dict_find(const dict *d, const char *k, size_t kn, uint64_t h) {
  if (!d->nslot) return -1;
  for (size_t i = h & (d->nslot - 1);; i = (i + 1) & (d->nslot - 1)) {
    uint32_t s = d->slot[i];
    if (s == 0) return -1;
    if (s != TOMB && d->e[s - 1].h == h && bstr_eq(&d->e[s - 1].k, k, kn)) return (ptrdiff_t)(s - 1);
  }
}
static void dict_index(dict *d, size_t e) {
  for (size_t i = d->e[e].h & (d->nslot - 1);; i = (i + 1) & (d->nslot - 1))
    if (d->slot[i] == 0 || d->slot[i] == TOMB) {
      d->slot[i] = (uint32_t)(e + 1);
      return;
    }
}
/* Compact the entries and rebuild the index with room for one more. */
static int dict_rebuild(dict *d) {
  size_t live = 0;
  for (size_t i = 0; i < d->n; ++i)
    if (d->e[i].live) d->e[live++] = d->e[i];
  d->n = live;
  size_t nslot = 8;
  while (nslot < 2 * (live + 1)) nslot *= 2;
  if (nslot >= TOMB) return mproc__fail(MPROC_ENOMEM, "manager: a dict of %zu keys is too large", live);
  uint32_t *slot = (uint32_t *)calloc(nslot, sizeof *slot);
  if (!slot) return mproc__fail(MPROC_ENOMEM, "manager: out of memory for a dict of %zu keys", live);
  free(d->slot);
  d->slot = slot;
  d->nslot = nslot;
  for (size_t i = 0; i < live; ++i) dict_index(d, i);
  return 0;
}
static int dict_set(dict *d, uint64_t seed, const char *k, size_t kn, const char *v, size_t vn) {
  uint64_t h = hash(seed, k, kn);
  ptrdiff_t at = dict_find(d, k, kn, h);
  if (at >= 0) return bstr_set(&d->e[at].v, v, vn);
  if (d->n + 1 > d->nslot / 2 && dict_rebuild(d) != 0) return MPROC_ENOMEM;
  if (d->n == d->cap) {
    size_t cap = d->cap ? 2 * d->cap : 8;
    dentry *e = (dentry *)realloc(d->e, cap * sizeof *e);
    if (!e) return mproc__fail(MPROC_ENOMEM, "manager: out of memory for a dict of %zu keys", d->n);
    d->e = e;
    d->cap = cap;
  }
  dentry *e = &d->e[d->n];
  memset(e, 0, sizeof *e);
  if (bstr_set(&e->k, k, kn) != 0) return MPROC_ENOMEM;
  if (bstr_set(&e->v, v, vn) != 0) {
    free(e->k.p);
    return MPROC_ENOMEM;
  }
  e->h = h;
  e->live = true;
  dict_index(d, d->n++);
  d->live++;
  return 0;
}
static void dict_remove(dict *d, size_t at) {
  for (size_t i = d->e[at].h & (d->nslot - 1);; i = (i + 1) & (d->nslot - 1))
    if (d->slot[i] == at + 1) {
      d->slot[i] = TOMB;
      break;
    }
  free(d->e[at].k.p);
  free(d->e[at].v.p);
  d->e[at].k.p = d->e[at].v.p = NULL;
  d->e[at].live = false;
  d->live--;
  if (d->live == 0) { /* start afresh: no tombstones */
    d->n = 0;
    memset(d->slot, 0, d->nslot * sizeof *d->slot);
  }
}
static void dict_free(dict *d) {
  for (size_t i = 0; i < d->n; ++i)
    if (d->e[i].live) {
      free(d->e[i].k.p);
      free(d->e[i].v.p);
    }
  free(d->e);
  free(d->slot);
  memset(d, 0, sizeof *d);
}

static void list_free(list *l) {
  for (size_t i = 0; i < l->n; ++i) free(l->v[i].p);
  free(l->v);
  memset(l, 0, sizeof *l);
}
static int list_insert(list *l, size_t at, const char *p, size_t n) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 8;
    bstr *v = (bstr *)realloc(l->v, cap * sizeof *v);
    if (!v) return mproc__fail(MPROC_ENOMEM, "manager: out of memory for a list of %zu items", l->n);
    l->v = v;
    l->cap = cap;
  }
  bstr s = {NULL, 0};
  if (bstr_set(&s, p, n) != 0) return MPROC_ENOMEM;
  memmove(l->v + at + 1, l->v + at, (l->n - at) * sizeof *l->v);
  l->v[at] = s;
  l->n++;
  return 0;
}
static void list_remove(list *l, size_t at) {
  free(l->v[at].p);
  memmove(l->v + at, l->v + at + 1, (l->n - at - 1) * sizeof *l->v);
  l->n--;
}
/* Python's index: negative counts from the end. 0 with *at, or MPROC_ENOENT. */
static int list_at(const list *l, int64_t i, size_t *at) {
  if (i < 0) i += (int64_t)l->n;
  if (i < 0 || (uint64_t)i >= l->n) return mproc__fail(MPROC_ENOENT, "manager: list index out of range");
  *at = (size_t)i;
  return 0;
}
/* Python's clamping of a slice bound or an insert position into [0, n]. */
static size_t clamp(int64_t i, size_t n) {
  if (i < 0) {
    i += (int64_t)n;
    return i < 0 ? 0 : (size_t)i;
  }
  return (uint64_t)i > n ? n : (size_t)i;
}

/* ---- queues ------------------------------------------------------------------------------------ */

/* Append s (moved in). 0 or MPROC_ENOMEM (s untouched). */
static int ring_push(ring *q, bstr *s) {
  if (q->n == q->cap) {
    size_t cap = q->cap ? 2 * q->cap : 8;
    bstr *v = (bstr *)malloc(cap * sizeof *v);
    if (!v) return mproc__fail(MPROC_ENOMEM, "manager: out of memory for a queue of %zu items", q->n);
    for (size_t i = 0; i < q->n; ++i) v[i] = q->v[(q->head + i) % q->cap];
    free(q->v);
    q->v = v;
    q->cap = cap;
    q->head = 0;
  }
  q->v[(q->head + q->n++) % q->cap] = *s;
  s->p = NULL;
  s->n = 0;
  return 0;
}
static bstr ring_pop(ring *q) {
  bstr s = q->v[q->head];
  q->head = (q->head + 1) % q->cap;
  q->n--;
  return s;
}
static void ring_free(ring *q) {
  while (q->n) free(ring_pop(q).p);
  free(q->v);
  memset(q, 0, sizeof *q);
}
static bool ring_full(const ring *q) { return q->maxsize && q->n >= q->maxsize; }

/* ---- the table ---------------------------------------------------------------------------------- */

static const char *const kind_names[MGR_KIND_END_] = {
    "object", "dict",      "list",    "namespace", "lock",  "rlock", "semaphore",      "bounded semaphore",
    "event",  "condition", "barrier", "value",     "array", "queue", "joinable queue", "custom object"};

static obj *lookup(server *s, uint64_t id, int kind, int kind2) {
  uint32_t idx = (uint32_t)id;
  obj *o = idx && idx <= s->nobj ? &s->objs[idx - 1] : NULL;
  if (!o || !o->kind || o->gen != (uint32_t)(id >> 32) || (kind && o->kind != kind && o->kind != kind2)) {
    mproc__fail(MPROC_EINVAL, "manager: object %016llx is no %s", (unsigned long long)id,
                kind > 0 && kind < MGR_KIND_END_ ? kind_names[kind] : "object");
    return NULL;
  }
  return o;
}
static uint64_t id_of(const server *s, const obj *o) { return (uint64_t)o->gen << 32 | (uint64_t)(o - s->objs + 1); }

static void drop_object(server *s, obj *o);
static int create(server *s, int kind, const mproc__mgr_item *p, uint32_t np, uint64_t *id);

/* A parameter of MGR_CREATE: an integer in [lo, hi]. */
static int param(const mproc__mgr_item *p, uint32_t np, uint32_t i, int64_t lo, int64_t hi, int64_t *v) {
  if (i >= np) return mproc__fail(MPROC_EINVAL, "manager: a parameter is missing");
  if (mproc__mgr_item_i64(p[i], v) != 0) return MPROC_EINVAL;
  if (*v < lo || *v > hi)
    return mproc__fail(MPROC_EINVAL, "manager: %lld is out of range (%lld..%lld)", (long long)*v, (long long)lo,
                       (long long)hi);
  return 0;
}

/* Make the new object o of kind with its parameters p[0..np). */
static int init_object(server *s, obj *o, int kind, const mproc__mgr_item *p, uint32_t np) {
  int64_t v = 0;
  int rc = 0;
  uint32_t want = 0;
  switch (kind) {
    case MGR_KIND_SEMAPHORE:
    case MGR_KIND_BOUNDED_SEMAPHORE:
      want = 1;
      if (!(rc = param(p, np, 0, 0, MPROC_SEM_VALUE_MAX, &v))) {
        o->u.sem.value = (uint32_t)v;
        o->u.sem.bound = kind == MGR_KIND_BOUNDED_SEMAPHORE ? (uint32_t)v : 0;
      }
      break;
    case MGR_KIND_CONDITION: {
      want = 1;
      if ((rc = param(p, np, 0, INT64_MIN, INT64_MAX, &v)) != 0) break;
      if (v == 0) { /* a new RLock of its own, as Python's Condition() */
        uint64_t lock = 0;
        size_t at = (size_t)(o - s->objs);
        rc = create(s, MGR_KIND_RLOCK, NULL, 0, &lock);
        o = &s->objs[at]; /* the table may have moved */
        if (!rc) {
          o->u.cond.lock = lock;
          o->u.cond.own_lock = true;
        }
      } else if (!lookup(s, (uint64_t)v, MGR_KIND_LOCK, MGR_KIND_RLOCK)) {
        rc = MPROC_EINVAL;
      } else {
        o->u.cond.lock = (uint64_t)v;
      }
      break;
    }
    case MGR_KIND_BARRIER:
      want = 1;
      if (!(rc = param(p, np, 0, 1, INT32_MAX, &v))) o->u.bar.parties = (uint32_t)v;
      break;
    case MGR_KIND_VALUE:
      want = 2;
      if (np != 2 || p[0].n != 1 || p[0].p[0] < MGR_VALUE_I64 || p[0].p[0] > MGR_VALUE_BYTES ||
          (p[0].p[0] != MGR_VALUE_BYTES && p[1].n != 8)) {
        rc = mproc__fail(MPROC_EINVAL, "manager: a value's type or initial value is malformed");
        break;
      }
      o->u.val.type = (uint8_t)p[0].p[0];
      rc = bstr_set(&o->u.val.v, p[1].p, p[1].n);
      break;
    case MGR_KIND_ARRAY:
      want = 1;
      if (np == 1) rc = bstr_set(&o->u.val.v, p[0].p, p[0].n);
      break;
    case MGR_KIND_QUEUE:
    case MGR_KIND_JOINABLE_QUEUE:
      want = 1;
      if (!(rc = param(p, np, 0, 0, INT64_MAX, &v))) o->u.q.maxsize = (size_t)v;
      break;
    case MGR_KIND_CUSTOM: {
      want = 1;
      const mproc_mtype *t = NULL;
      for (size_t i = 0; np == 1 && i < s->ntypes && !t; ++i)
        if (strlen(s->types[i].name) == p[0].n && !memcmp(s->types[i].name, p[0].p, p[0].n)) t = &s->types[i];
      if (np == 1 && !t) {
        rc = mproc__fail(MPROC_ENOENT, "manager: no type '%.*s' is registered", (int)(p[0].n > 200 ? 200 : p[0].n),
                         p[0].p);
      } else if (t && !(o->u.cu.state = calloc(1, t->state_size ? t->state_size : 1))) {
        rc = mproc__fail(MPROC_ENOMEM, "manager: out of memory for a %s", t->name);
      } else {
        o->u.cu.type = t;
      }
      break;
    }
  }
  if (!rc && np != want)
    rc = mproc__fail(MPROC_EINVAL, "manager: a %s takes %u parameters, not %u", kind_names[kind], want, np);
  return rc;
}

static int create(server *s, int kind, const mproc__mgr_item *p, uint32_t np, uint64_t *id) {
  if (kind < MGR_KIND_DICT || kind >= MGR_KIND_END_)
    return mproc__fail(MPROC_EINVAL, "manager: no such kind of object");
  if (!s->free_head) {
    if (s->nobj >= UINT32_MAX - 1) return mproc__fail(MPROC_ENOMEM, "manager: the object table is full");
    if (s->nobj == s->capobj) {
      size_t cap = s->capobj ? 2 * s->capobj : 16;
      obj *o = (obj *)realloc(s->objs, cap * sizeof *o);
      if (!o) return mproc__fail(MPROC_ENOMEM, "manager: out of memory for %zu objects", cap);
      s->objs = o;
      s->capobj = cap;
    }
    memset(&s->objs[s->nobj], 0, sizeof *s->objs);
    s->free_head = (uint32_t)++s->nobj;
  }
  uint32_t slot = s->free_head;
  obj *o = &s->objs[slot - 1];
  s->free_head = o->next_free;
  o->kind = (uint8_t)kind;
  o->gen++;
  memset(&o->u, 0, sizeof o->u);
  int rc = init_object(s, o, kind, p, np);
  o = &s->objs[slot - 1]; /* a condition's lock may have moved the table */
  if (rc) {
    drop_object(s, o);
    return rc;
  }
  *id = id_of(s, o);
  return 0;
}

/* ---- replies ------------------------------------------------------------------------------------ */

typedef struct reply {
  mproc__buf b;
  uint32_t n;
} reply;

static int rep_item(reply *r, const void *p, size_t n) {
  r->n++;
  return mproc__mgr_put_item(&r->b, p, n);
}
static int rep_i64(reply *r, int64_t v) {
  r->n++;
  return mproc__mgr_put_i64_item(&r->b, v);
}
static void send_reply(client *c, uint32_t seq, int status, reply *r) {
  mproc__buf b = {0};
  mproc__buf *out = r ? &r->b : &b;
  if (mproc__buf_reserve(out, MGR_REP_HEADER) != 0) {
    c->dead = true;
    return;
  }
  const char *msg = status < 0 ? mproc_last_error() : NULL;
  if (status < 0) {
    out->len = MGR_REP_HEADER;
    mproc__mgr_put_item(out, msg, strlen(msg));
  }
  if (out->len < MGR_REP_HEADER) out->len = MGR_REP_HEADER;
  if (status >= 0 && out->len > MPROC_MANAGER_MAX_MESSAGE) { /* the client would refuse it */
    status = mproc__fail(MPROC_EMSGSIZE, "manager: the reply (%zu bytes) is longer than MPROC_MANAGER_MAX_MESSAGE",
                         out->len);
    out->len = MGR_REP_HEADER;
    mproc__mgr_put_item(out, mproc_last_error(), strlen(mproc_last_error()));
  }
  size_t len = out->len;
  out->len = 0;
  mproc__mgr_put_u32(out, seq);
  mproc__mgr_put_u32(out, (uint32_t)status);
  mproc__mgr_put_u32(out, status < 0 ? 1 : r ? r->n : 0);
  out->len = len;
  if (mproc_connection_send_bytes(c->conn, out->data, out->len, 0, MPROC_ALL) != 0) c->dead = true;
  mproc__buf_free(&b);
}

int mproc_mreply_add(mproc_mreply *r, const void *data, size_t size) {
  MPROC__CHECK_ARG(!r, "the reply is NULL");
  MPROC__CHECK_ARG(!data && size, "data is NULL with a size");
  return rep_item((reply *)r, data, size);
}

static void reply_start(reply *r) {
  r->n = 0;
  memset(&r->b, 0, sizeof r->b);
  if (mproc__buf_reserve(&r->b, 64) == 0) r->b.len = MGR_REP_HEADER;
}

/* ---- waiters ------------------------------------------------------------------------------------ */

/* c waits for op on object o, up to timeout_ms. */
static void wait_on(server *s, client *c, obj *o, uint32_t op, uint32_t seq, int64_t timeout_ms) {
  c->waiting = true;
  c->wait_op = op;
  c->wait_obj = id_of(s, o);
  c->wait_seq = seq;
  c->deadline = mproc__deadline_from_timeout(timeout_ms);
  c->ticket = ++s->tickets;
  c->wait_status = 0;
  c->wait_count = 1;
}
/* Wait for op on object o: the reply is deferred (DEFERRED), or MPROC_ETIMEDOUT for a timeout of 0. */
static int defer(server *s, client *c, obj *o, uint32_t op, uint32_t seq, int64_t timeout_ms, const char *what) {
  if (timeout_ms == 0) return mproc__fail(MPROC_ETIMEDOUT, "manager: %s", what);
  wait_on(s, c, o, op, seq, timeout_ms);
  return DEFERRED;
}

/* The longest waiting live client waiting for op on id, or NULL. */
static client *first_waiter(server *s, uint64_t id, uint32_t op) {
  client *next = NULL;
  for (size_t i = 0; i < s->ncl; ++i) {
    client *c = s->cl[i];
    if (c->waiting && !c->dead && c->wait_op == op && c->wait_obj == id && (!next || c->ticket < next->ticket))
      next = c;
  }
  return next;
}

/* Answer a waiter: it reads requests again. */
static void wake(client *c, int status, reply *r) {
  c->waiting = false;
  free(c->wait_item.p);
  c->wait_item.p = NULL;
  send_reply(c, c->wait_seq, status, r);
}
static void wake_i64(client *c, int64_t v) {
  reply r;
  reply_start(&r);
  if (rep_i64(&r, v) != 0) c->dead = true;
  wake(c, 0, &r);
  mproc__buf_free(&r.b);
}

/* ---- locks, semaphores, conditions, barriers, queues ---------------------------------------------- */

static const char kOwnerDead[] = "manager: lock acquired; its previous holder's connection ended holding it";

/* Give lock `o` to its first waiter with `status` (0 or MPROC_EOWNERDEAD); none: it is free (and
 * remembers a dead owner). */
static void pass_on(server *s, obj *o, int status) {
  client *next = first_waiter(s, id_of(s, o), MGR_LOCK_ACQUIRE);
  mlock *k = &o->u.k;
  if (!next) {
    k->locked = false;
    k->holder = NULL;
    k->count = 0;
    k->owner_dead = status == MPROC_EOWNERDEAD;
    return;
  }
  k->locked = true;
  k->holder = next;
  k->count = next->wait_count;
  k->owner_dead = false;
  if (status) mproc__fail(status, kOwnerDead);
  if (!status && next->wait_status) mproc__fail(next->wait_status, "manager: the condition's wait timed out");
  wake(next, status ? status : next->wait_status, NULL);
}

/* Take the free lock o for c with `count` levels: 0 or MPROC_EOWNERDEAD. */
static int lock_take(obj *o, client *c, uint32_t count) {
  mlock *k = &o->u.k;
  k->locked = true;
  k->holder = c;
  k->count = count;
  int rc = k->owner_dead ? mproc__fail(MPROC_EOWNERDEAD, kOwnerDead) : 0;
  k->owner_dead = false;
  return rc;
}

static int lock_acquire(server *s, client *c, obj *o, uint32_t seq, int64_t timeout_ms) {
  mlock *k = &o->u.k;
  if (!k->locked) return lock_take(o, c, 1);
  if (o->kind == MGR_KIND_RLOCK && k->holder == c) {
    if (k->count == UINT32_MAX) return mproc__fail(MPROC_EINVAL, "manager: the rlock's count would overflow");
    k->count++;
    return 0;
  }
  return defer(s, c, o, MGR_LOCK_ACQUIRE, seq, timeout_ms, "the lock is held");
}

static int lock_release(server *s, client *c, obj *o) {
  mlock *k = &o->u.k;
  if (o->kind == MGR_KIND_RLOCK && (!k->locked || k->holder != c))
    return mproc__fail(MPROC_ENOTOWNER, "manager: release of an rlock this connection does not hold");
  if (!k->locked) return mproc__fail(MPROC_ESTATE, "manager: release of a lock that is not locked");
  if (o->kind == MGR_KIND_RLOCK && --k->count > 0) return 0;
  pass_on(s, o, 0);
  return 0;
}

/* A condition's waiter c (notified, or its time up: status) takes the lock back, with the count it had:
 * now if it is free, else as the lock's last waiter. */
static void cond_retake(server *s, client *c, int status) {
  obj *cond = lookup(s, c->wait_obj, MGR_KIND_CONDITION, 0);
  obj *k = cond ? lookup(s, cond->u.cond.lock, MGR_KIND_LOCK, MGR_KIND_RLOCK) : NULL;
  if (!k) {
    wake(c, mproc__fail(MPROC_EINVAL, "manager: the condition's lock was dropped"), NULL);
    return;
  }
  c->wait_op = MGR_LOCK_ACQUIRE;
  c->wait_obj = id_of(s, k);
  c->wait_status = status;
  c->deadline = INT64_MAX; /* as Python's: the lock is taken back however long that takes */
  c->ticket = ++s->tickets;
  if (!k->u.k.locked) {
    int rc = lock_take(k, c, c->wait_count);
    if (!rc && status) rc = mproc__fail(status, "manager: the condition's wait timed out");
    wake(c, rc, NULL);
  }
}

static int cond_wait(server *s, client *c, obj *o, uint32_t seq, int64_t timeout_ms) {
  obj *k = lookup(s, o->u.cond.lock, MGR_KIND_LOCK, MGR_KIND_RLOCK);
  if (!k) return MPROC_EINVAL;
  if (!k->u.k.locked || k->u.k.holder != c)
    return mproc__fail(MPROC_ENOTOWNER, "manager: a condition's wait without holding its lock");
  uint32_t count = k->u.k.count;
  pass_on(s, k, 0); /* every level of an RLock */
  wait_on(s, c, o, MGR_COND_WAIT, seq, timeout_ms);
  c->wait_count = count;
  if (timeout_ms == 0) cond_retake(s, c, MPROC_ETIMEDOUT);
  return DEFERRED;
}

static int cond_notify(server *s, client *c, obj *o, int64_t n) {
  obj *k = lookup(s, o->u.cond.lock, MGR_KIND_LOCK, MGR_KIND_RLOCK);
  if (!k) return MPROC_EINVAL;
  if (!k->u.k.locked || k->u.k.holder != c)
    return mproc__fail(MPROC_ENOTOWNER, "manager: a condition's notify without holding its lock");
  client *w;
  for (; n != 0 && (w = first_waiter(s, id_of(s, o), MGR_COND_WAIT)) != NULL; n = n > 0 ? n - 1 : n)
    cond_retake(s, w, 0);
  return 0;
}

static void sem_wake(server *s, obj *o) {
  client *w;
  while (o->u.sem.value > 0 && (w = first_waiter(s, id_of(s, o), MGR_SEM_ACQUIRE)) != NULL) {
    o->u.sem.value--;
    wake(w, 0, NULL);
  }
}

/* Break barrier o: every waiter gets MPROC_EBROKEN. */
static void barrier_break(server *s, obj *o, bool broken) {
  client *w;
  while ((w = first_waiter(s, id_of(s, o), MGR_BARRIER_WAIT)) != NULL)
    wake(w, mproc__fail(MPROC_EBROKEN, "manager: the barrier is broken"), NULL);
  o->u.bar.count = 0;
  o->u.bar.broken = broken;
}

static int barrier_wait(server *s, client *c, obj *o, uint32_t seq, int64_t timeout_ms, reply *r) {
  mbarrier *b = &o->u.bar;
  if (b->broken) return mproc__fail(MPROC_EBROKEN, "manager: the barrier is broken");
  uint32_t index = b->count++;
  if (b->count == b->parties) { /* the last: release the others, each with its index */
    client *w;
    while ((w = first_waiter(s, id_of(s, o), MGR_BARRIER_WAIT)) != NULL) wake_i64(w, w->wait_count);
    b->count = 0;
    return rep_i64(r, index);
  }
  if (timeout_ms == 0) { /* a waiter whose time runs out breaks it, as Python's */
    b->count--;
    barrier_break(s, o, true);
    return mproc__fail(MPROC_EBROKEN, "manager: the barrier's wait timed out: the barrier is broken");
  }
  defer(s, c, o, MGR_BARRIER_WAIT, seq, timeout_ms, "");
  c->wait_count = index;
  return DEFERRED;
}

/* Match a queue's waiting getters with its items and its waiting putters with room, in order; answer
 * joiners when every task is done. */
static void queue_settle(server *s, obj *o) {
  ring *q = &o->u.q;
  uint64_t id = id_of(s, o);
  for (bool more = true; more;) {
    more = false;
    client *w;
    if (q->n && (w = first_waiter(s, id, MGR_QUEUE_GET)) != NULL) {
      bstr item = ring_pop(q);
      reply r;
      reply_start(&r);
      if (rep_item(&r, item.p, item.n) != 0) w->dead = true;
      if (o->kind == MGR_KIND_JOINABLE_QUEUE) q->got_undone++;
      free(item.p);
      wake(w, 0, &r);
      mproc__buf_free(&r.b);
      more = true;
    }
    if (!ring_full(q) && (w = first_waiter(s, id, MGR_QUEUE_PUT)) != NULL) {
      if (ring_push(q, &w->wait_item) != 0) {
        wake(w, MPROC_ENOMEM, NULL);
      } else {
        wake(w, 0, NULL);
      }
      more = true;
    }
  }
  client *w;
  if (o->kind == MGR_KIND_JOINABLE_QUEUE && !q->n && !q->got_undone)
    while ((w = first_waiter(s, id, MGR_QUEUE_JOIN)) != NULL) wake(w, 0, NULL);
}

/* The memory an object holds. */
static void obj_free(obj *o) {
  if (o->kind == MGR_KIND_CUSTOM && o->u.cu.state) {
    if (o->u.cu.type->destroy) o->u.cu.type->destroy(o->u.cu.state);
    free(o->u.cu.state);
  }
  switch (o->kind) {
    case MGR_KIND_DICT:
    case MGR_KIND_NAMESPACE:
      dict_free(&o->u.d);
      break;
    case MGR_KIND_LIST:
      list_free(&o->u.l);
      break;
    case MGR_KIND_VALUE:
    case MGR_KIND_ARRAY:
      free(o->u.val.v.p);
      break;
    case MGR_KIND_QUEUE:
    case MGR_KIND_JOINABLE_QUEUE:
      ring_free(&o->u.q);
      break;
  }
}

/* Free o and answer what waits on it (MPROC_EINVAL); its name, if it has one, names nothing now. */
static void drop_object(server *s, obj *o) {
  uint64_t id = id_of(s, o);
  obj_free(o);
  for (size_t i = 0; i < s->ncl; ++i)
    if (s->cl[i]->waiting && s->cl[i]->wait_obj == id)
      wake(s->cl[i], mproc__fail(MPROC_EINVAL, "manager: the object was dropped while this call waited"), NULL);
  for (size_t i = 0; i < s->names.n; ++i)
    if (s->names.e[i].live && mproc__mgr_get_u64(s->names.e[i].v.p) == id) {
      dict_remove(&s->names, i);
      break;
    }
  uint64_t own = o->kind == MGR_KIND_CONDITION && o->u.cond.own_lock ? o->u.cond.lock : 0;
  o->kind = 0;
  o->next_free = s->free_head;
  s->free_head = (uint32_t)(o - s->objs + 1);
  obj *k = own ? lookup(s, own, MGR_KIND_RLOCK, 0) : NULL;
  if (k) drop_object(s, k);
}

/* ---- requests ----------------------------------------------------------------------------------- */

#define NARGS(k)                                                                                     \
  do {                                                                                               \
    if (na != (k)) {                                                                                 \
      rc = mproc__fail(MPROC_EINVAL, "manager: request %u takes %u arguments, not %u", op, (k), na); \
      goto out;                                                                                      \
    }                                                                                                \
  } while (0)
#define OBJ(kind, kind2)                         \
  do {                                           \
    if (!(o = lookup(s, id, (kind), (kind2)))) { \
      rc = MPROC_EINVAL;                         \
      goto out;                                  \
    }                                            \
  } while (0)
#define I64(i, v)                                              \
  do {                                                         \
    if ((rc = mproc__mgr_item_i64(a[i], &(v))) != 0) goto out; \
  } while (0)

static int parse_int(const bstr *v, int64_t *out) {
  size_t i = v->n && v->p[0] == '-' ? 1 : 0;
  bool neg = i == 1;
  uint64_t x = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  if (i == v->n || v->n - i > 19) return mproc__fail(MPROC_EINVAL, "manager: the value is not a decimal integer");
  for (; i < v->n; ++i) {
    if (v->p[i] < '0' || v->p[i] > '9' || x > (lim - (uint64_t)(v->p[i] - '0')) / 10)
      return mproc__fail(MPROC_EINVAL, "manager: the value is not a decimal integer of int64_t's range");
    x = x * 10 + (uint64_t)(v->p[i] - '0');
  }
  *out = neg ? (int64_t)(0 - x) : (int64_t)x;
  return 0;
}

/* Handle one request: 0 or an error (replied), DEFERRED, or -1000 + code: the request does not parse
 * (the client is dropped). */
static int handle(server *s, client *c, const char *msg, size_t len) {
  if (len < MGR_REQ_HEADER) return mproc__fail(MPROC_EINVAL, "manager: a request of %zu bytes", len), -1;
  uint32_t op = mproc__mgr_get_u32(msg), seq = mproc__mgr_get_u32(msg + 4), na = mproc__mgr_get_u32(msg + 16);
  uint64_t id = mproc__mgr_get_u64(msg + 8);
  mproc__mgr_item *a;
  if (mproc__mgr_parse_items(msg + MGR_REQ_HEADER, len - MGR_REQ_HEADER, na, &a) != 0) return -1;
  reply r = {{0}, 0};
  int rc = mproc__buf_reserve(&r.b, 64);
  if (rc) goto out;
  r.b.len = MGR_REP_HEADER;
  obj *o = NULL;
  int64_t i1 = 0, i2 = 0;
  size_t at = 0;
  switch (op) {
    case MGR_SHUTDOWN:
      NARGS(0);
      s->stop = true;
      break;
    case MGR_CREATE: { /* kind [, name [, parameters]]: a name gives the object of that name, made on first use */
      if (na < 1) NARGS(1u);
      uint64_t nid = 0;
      int kind = a[0].n == 1 ? a[0].p[0] : 0;
      bool named = na >= 2 && a[1].n > 0;
      if (kind < MGR_KIND_DICT || kind >= MGR_KIND_END_) {
        rc = mproc__fail(MPROC_EINVAL, "manager: no such kind of object");
        goto out;
      }
      ptrdiff_t e = named ? dict_find(&s->names, a[1].p, a[1].n, hash(s->seed, a[1].p, a[1].n)) : -1;
      if (e >= 0) {
        nid = mproc__mgr_get_u64(s->names.e[e].v.p);
        if (!lookup(s, nid, kind, 0)) {
          rc = mproc__fail(MPROC_EINVAL, "manager: the name '%.*s' belongs to an object of another kind",
                           (int)(a[1].n > 200 ? 200 : a[1].n), a[1].p);
          goto out;
        }
      } else if (!(rc = create(s, kind, na > 2 ? a + 2 : NULL, na > 2 ? na - 2 : 0, &nid)) && named) {
        char v[8];
        for (int i = 0; i < 8; ++i) v[i] = (char)(nid >> (8 * i));
        if ((rc = dict_set(&s->names, s->seed, a[1].p, a[1].n, v, 8)) != 0) drop_object(s, lookup(s, nid, 0, 0));
      }
      if (!rc) rc = rep_i64(&r, (int64_t)nid);
      if (!rc && kind == MGR_KIND_CONDITION) rc = rep_i64(&r, (int64_t)lookup(s, nid, 0, 0)->u.cond.lock);
      break;
    }
    case MGR_DROP:
      NARGS(0);
      OBJ(0, 0);
      drop_object(s, o);
      break;
    case MGR_DICT_GET: /* key [, default] */
    case MGR_DICT_POP:
    case MGR_DICT_SETDEFAULT: {
      if (op != MGR_DICT_GET || na != 2) NARGS(op == MGR_DICT_SETDEFAULT ? 2u : 1u);
      OBJ(MGR_KIND_DICT, MGR_KIND_NAMESPACE);
      ptrdiff_t e = dict_find(&o->u.d, a[0].p, a[0].n, hash(s->seed, a[0].p, a[0].n));
      if (e < 0 && na == 1) {
        rc = mproc__fail(MPROC_ENOENT, "manager: no such key (%zu bytes)", a[0].n);
      } else if (e < 0 && op == MGR_DICT_SETDEFAULT) {
        if (!(rc = dict_set(&o->u.d, s->seed, a[0].p, a[0].n, a[1].p, a[1].n))) rc = rep_item(&r, a[1].p, a[1].n);
      } else if (e < 0) {
        rc = rep_item(&r, a[1].p, a[1].n);
      } else {
        rc = rep_item(&r, o->u.d.e[e].v.p, o->u.d.e[e].v.n);
        if (!rc && op == MGR_DICT_POP) dict_remove(&o->u.d, (size_t)e);
      }
      break;
    }
    case MGR_DICT_SET:
      NARGS(2);
      OBJ(MGR_KIND_DICT, MGR_KIND_NAMESPACE);
      rc = dict_set(&o->u.d, s->seed, a[0].p, a[0].n, a[1].p, a[1].n);
      break;
    case MGR_DICT_DEL:
    case MGR_DICT_CONTAINS: {
      NARGS(1);
      OBJ(MGR_KIND_DICT, MGR_KIND_NAMESPACE);
      ptrdiff_t e = dict_find(&o->u.d, a[0].p, a[0].n, hash(s->seed, a[0].p, a[0].n));
      if (op == MGR_DICT_CONTAINS)
        rc = rep_item(&r, e >= 0 ? "\1" : "\0", 1);
      else if (e < 0)
        rc = mproc__fail(MPROC_ENOENT, "manager: no such key (%zu bytes)", a[0].n);
      else
        dict_remove(&o->u.d, (size_t)e);
      break;
    }
    case MGR_DICT_LEN:
      NARGS(0);
      OBJ(MGR_KIND_DICT, MGR_KIND_NAMESPACE);
      rc = rep_i64(&r, (int64_t)o->u.d.live);
      break;
    case MGR_DICT_KEYS:
    case MGR_DICT_VALUES:
    case MGR_DICT_ITEMS:
      NARGS(0);
      OBJ(MGR_KIND_DICT, MGR_KIND_NAMESPACE);
      for (size_t i = 0; i < o->u.d.n && !rc; ++i) {
        const dentry *e = &o->u.d.e[i];
        if (!e->live) continue;
        if (op != MGR_DICT_VALUES) rc = rep_item(&r, e->k.p, e->k.n);
        if (!rc && op != MGR_DICT_KEYS) rc = rep_item(&r, e->v.p, e->v.n);
      }
      break;
    case MGR_DICT_UPDATE:
      if (na % 2) {
        rc = mproc__fail(MPROC_EINVAL, "manager: update takes pairs, not %u items", na);
        goto out;
      }
      OBJ(MGR_KIND_DICT, 0);
      for (uint32_t i = 0; i < na && !rc; i += 2)
        rc = dict_set(&o->u.d, s->seed, a[i].p, a[i].n, a[i + 1].p, a[i + 1].n);
      break;
    case MGR_DICT_CLEAR:
      NARGS(0);
      OBJ(MGR_KIND_DICT, 0);
      dict_free(&o->u.d);
      break;
    case MGR_DICT_INCR: {
      NARGS(2);
      OBJ(MGR_KIND_DICT, 0);
      I64(1, i1);
      ptrdiff_t e = dict_find(&o->u.d, a[0].p, a[0].n, hash(s->seed, a[0].p, a[0].n));
      int64_t v = 0;
      if (e >= 0 && (rc = parse_int(&o->u.d.e[e].v, &v)) != 0) goto out;
      if ((i1 > 0 && v > INT64_MAX - i1) || (i1 < 0 && v < INT64_MIN - i1)) {
        rc = mproc__fail(MPROC_EINVAL, "manager: %lld + %lld leaves int64_t", (long long)v, (long long)i1);
        goto out;
      }
      char text[24];
      int tn = snprintf(text, sizeof text, "%lld", (long long)(v + i1));
      if (!(rc = dict_set(&o->u.d, s->seed, a[0].p, a[0].n, text, (size_t)tn))) rc = rep_i64(&r, v + i1);
      break;
    }
    case MGR_DICT_CAS: {
      NARGS(4);
      OBJ(MGR_KIND_DICT, 0);
      ptrdiff_t e = dict_find(&o->u.d, a[0].p, a[0].n, hash(s->seed, a[0].p, a[0].n));
      bool want = a[1].n == 1 && a[1].p[0];
      bool match = want ? e >= 0 && bstr_eq(&o->u.d.e[e].v, a[2].p, a[2].n) : e < 0;
      if (match) rc = dict_set(&o->u.d, s->seed, a[0].p, a[0].n, a[3].p, a[3].n);
      if (!rc) rc = rep_item(&r, match ? "\1" : "\0", 1);
      break;
    }
    case MGR_LIST_APPEND:
    case MGR_LIST_EXTEND:
      if (op == MGR_LIST_APPEND) NARGS(1);
      OBJ(MGR_KIND_LIST, 0);
      for (uint32_t i = 0; i < na && !rc; ++i) rc = list_insert(&o->u.l, o->u.l.n, a[i].p, a[i].n);
      break;
    case MGR_LIST_INSERT:
      NARGS(2);
      OBJ(MGR_KIND_LIST, 0);
      I64(0, i1);
      rc = list_insert(&o->u.l, clamp(i1, o->u.l.n), a[1].p, a[1].n);
      break;
    case MGR_LIST_INDEX:
    case MGR_LIST_COUNT:
    case MGR_LIST_REMOVE: {
      NARGS(1);
      OBJ(MGR_KIND_LIST, 0);
      size_t count = 0, first = SIZE_MAX;
      for (size_t i = 0; i < o->u.l.n && (op == MGR_LIST_COUNT || first == SIZE_MAX); ++i)
        if (bstr_eq(&o->u.l.v[i], a[0].p, a[0].n)) {
          if (first == SIZE_MAX) first = i;
          count++;
        }
      if (op == MGR_LIST_COUNT)
        rc = rep_i64(&r, (int64_t)count);
      else if (first == SIZE_MAX)
        rc = mproc__fail(MPROC_ENOENT, "manager: the value is not in the list");
      else if (op == MGR_LIST_INDEX)
        rc = rep_i64(&r, (int64_t)first);
      else
        list_remove(&o->u.l, first);
      break;
    }
    case MGR_LIST_POP:
    case MGR_LIST_GET:
    case MGR_LIST_DEL:
      NARGS(1);
      OBJ(MGR_KIND_LIST, 0);
      I64(0, i1);
      if ((rc = list_at(&o->u.l, i1, &at)) != 0) goto out;
      if (op != MGR_LIST_DEL) rc = rep_item(&r, o->u.l.v[at].p, o->u.l.v[at].n);
      if (!rc && op != MGR_LIST_GET) list_remove(&o->u.l, at);
      break;
    case MGR_LIST_SET:
      NARGS(2);
      OBJ(MGR_KIND_LIST, 0);
      I64(0, i1);
      if (!(rc = list_at(&o->u.l, i1, &at))) rc = bstr_set(&o->u.l.v[at], a[1].p, a[1].n);
      break;
    case MGR_LIST_SLICE: {
      NARGS(2);
      OBJ(MGR_KIND_LIST, 0);
      I64(0, i1);
      I64(1, i2);
      size_t from = clamp(i1, o->u.l.n), to = clamp(i2, o->u.l.n);
      for (size_t i = from; i < to && !rc; ++i) rc = rep_item(&r, o->u.l.v[i].p, o->u.l.v[i].n);
      break;
    }
    case MGR_LIST_LEN:
      NARGS(0);
      OBJ(MGR_KIND_LIST, 0);
      rc = rep_i64(&r, (int64_t)o->u.l.n);
      break;
    case MGR_LOCK_ACQUIRE:
      NARGS(1);
      OBJ(MGR_KIND_LOCK, MGR_KIND_RLOCK);
      I64(0, i1);
      rc = lock_acquire(s, c, o, seq, i1);
      break;
    case MGR_LOCK_RELEASE:
      NARGS(0);
      OBJ(MGR_KIND_LOCK, MGR_KIND_RLOCK);
      rc = lock_release(s, c, o);
      break;
    case MGR_SEM_ACQUIRE:
      NARGS(1);
      OBJ(MGR_KIND_SEMAPHORE, MGR_KIND_BOUNDED_SEMAPHORE);
      I64(0, i1);
      if (o->u.sem.value > 0)
        o->u.sem.value--;
      else
        rc = defer(s, c, o, MGR_SEM_ACQUIRE, seq, i1, "the semaphore is 0");
      break;
    case MGR_SEM_RELEASE:
      NARGS(0);
      OBJ(MGR_KIND_SEMAPHORE, MGR_KIND_BOUNDED_SEMAPHORE);
      if (o->u.sem.value >= MPROC_SEM_VALUE_MAX || (o->u.sem.bound && o->u.sem.value >= o->u.sem.bound)) {
        rc = mproc__fail(MPROC_ESTATE, "manager: the semaphore would go above %u",
                         o->u.sem.bound ? o->u.sem.bound : MPROC_SEM_VALUE_MAX);
        goto out;
      }
      o->u.sem.value++;
      sem_wake(s, o);
      break;
    case MGR_SEM_VALUE:
      NARGS(0);
      OBJ(MGR_KIND_SEMAPHORE, MGR_KIND_BOUNDED_SEMAPHORE);
      rc = rep_i64(&r, o->u.sem.value);
      break;
    case MGR_EVENT_SET:
    case MGR_EVENT_CLEAR:
    case MGR_EVENT_IS_SET: {
      NARGS(0);
      OBJ(MGR_KIND_EVENT, 0);
      client *w;
      if (op == MGR_EVENT_IS_SET) rc = rep_item(&r, o->u.event ? "\1" : "\0", 1);
      if (op != MGR_EVENT_IS_SET) o->u.event = op == MGR_EVENT_SET;
      if (op == MGR_EVENT_SET)
        while ((w = first_waiter(s, id, MGR_EVENT_WAIT)) != NULL) wake(w, 0, NULL);
      break;
    }
    case MGR_EVENT_WAIT:
      NARGS(1);
      OBJ(MGR_KIND_EVENT, 0);
      I64(0, i1);
      if (!o->u.event) rc = defer(s, c, o, MGR_EVENT_WAIT, seq, i1, "the event is not set");
      break;
    case MGR_COND_WAIT:
      NARGS(1);
      OBJ(MGR_KIND_CONDITION, 0);
      I64(0, i1);
      rc = cond_wait(s, c, o, seq, i1);
      break;
    case MGR_COND_NOTIFY:
      NARGS(1);
      OBJ(MGR_KIND_CONDITION, 0);
      I64(0, i1);
      rc = cond_notify(s, c, o, i1);
      break;
    case MGR_BARRIER_WAIT:
      NARGS(1);
      OBJ(MGR_KIND_BARRIER, 0);
      I64(0, i1);
      rc = barrier_wait(s, c, o, seq, i1, &r);
      break;
    case MGR_BARRIER_ABORT:
    case MGR_BARRIER_RESET:
      NARGS(0);
      OBJ(MGR_KIND_BARRIER, 0);
      barrier_break(s, o, op == MGR_BARRIER_ABORT);
      break;
    case MGR_BARRIER_STATE:
      NARGS(0);
      OBJ(MGR_KIND_BARRIER, 0);
      if (!(rc = rep_i64(&r, o->u.bar.parties)) && !(rc = rep_i64(&r, o->u.bar.count)))
        rc = rep_item(&r, o->u.bar.broken ? "\1" : "\0", 1);
      break;
    case MGR_VALUE_GET:
    case MGR_VALUE_SET:
    case MGR_VALUE_ADD: {
      NARGS(op == MGR_VALUE_GET ? 1u : 2u);
      OBJ(MGR_KIND_VALUE, 0);
      bstr *v = &o->u.val.v;
      if (a[0].n != 1 || a[0].p[0] != o->u.val.type ||
          (op != MGR_VALUE_GET && o->u.val.type != MGR_VALUE_BYTES && a[1].n != 8)) {
        rc = mproc__fail(MPROC_EINVAL, "manager: the value is of another type");
        goto out;
      }
      if (op == MGR_VALUE_GET) {
        rc = rep_item(&r, v->p, v->n);
      } else if (op == MGR_VALUE_SET) {
        rc = bstr_set(v, a[1].p, a[1].n);
      } else if (o->u.val.type == MGR_VALUE_I64) {
        int64_t x = (int64_t)mproc__mgr_get_u64(v->p), d = (int64_t)mproc__mgr_get_u64(a[1].p);
        if ((d > 0 && x > INT64_MAX - d) || (d < 0 && x < INT64_MIN - d)) {
          rc = mproc__fail(MPROC_EINVAL, "manager: %lld + %lld leaves int64_t", (long long)x, (long long)d);
          goto out;
        }
        for (int i = 0; i < 8; ++i) v->p[i] = (char)((uint64_t)(x + d) >> (8 * i));
        rc = rep_item(&r, v->p, 8);
      } else if (o->u.val.type == MGR_VALUE_F64) {
        uint64_t xb = mproc__mgr_get_u64(v->p), db = mproc__mgr_get_u64(a[1].p);
        double x, d;
        memcpy(&x, &xb, 8);
        memcpy(&d, &db, 8);
        x += d;
        memcpy(&xb, &x, 8);
        for (int i = 0; i < 8; ++i) v->p[i] = (char)(xb >> (8 * i));
        rc = rep_item(&r, v->p, 8);
      } else {
        rc = mproc__fail(MPROC_EINVAL, "manager: add on a bytes value");
      }
      break;
    }
    case MGR_ARRAY_GET:
    case MGR_ARRAY_SET: {
      NARGS(2);
      OBJ(MGR_KIND_ARRAY, 0);
      I64(0, i1);
      if (op == MGR_ARRAY_GET) I64(1, i2);
      uint64_t n = op == MGR_ARRAY_GET ? (uint64_t)i2 : a[1].n, size = o->u.val.v.n;
      if (i1 < 0 || i2 < 0 || (uint64_t)i1 > size || n > size - (uint64_t)i1) {
        rc = mproc__fail(MPROC_ENOENT, "manager: the range [%lld, +%llu) is outside the array of %llu bytes",
                         (long long)i1, (unsigned long long)n, (unsigned long long)size);
        goto out;
      }
      if (op == MGR_ARRAY_GET)
        rc = rep_item(&r, o->u.val.v.p + i1, (size_t)n);
      else if (n)
        memcpy(o->u.val.v.p + i1, a[1].p, (size_t)n);
      break;
    }
    case MGR_ARRAY_LEN:
      NARGS(0);
      OBJ(MGR_KIND_ARRAY, 0);
      rc = rep_i64(&r, (int64_t)o->u.val.v.n);
      break;
    case MGR_QUEUE_PUT:
    case MGR_QUEUE_GET: {
      NARGS(op == MGR_QUEUE_PUT ? 2u : 1u);
      OBJ(MGR_KIND_QUEUE, MGR_KIND_JOINABLE_QUEUE);
      I64(0, i1);
      ring *q = &o->u.q;
      bstr item = {NULL, 0};
      bool waits = op == MGR_QUEUE_PUT ? ring_full(q) || first_waiter(s, id, MGR_QUEUE_PUT)
                                       : !q->n || first_waiter(s, id, MGR_QUEUE_GET);
      if (waits) { /* behind those who wait already */
        if (op == MGR_QUEUE_PUT && i1 != 0 && (rc = bstr_set(&c->wait_item, a[1].p, a[1].n)) != 0) goto out;
        rc = defer(s, c, o, op, seq, i1, op == MGR_QUEUE_PUT ? "the queue is full" : "the queue is empty");
        if (rc == MPROC_ETIMEDOUT)
          rc = mproc__fail(op == MGR_QUEUE_PUT ? MPROC_EFULL : MPROC_EEMPTY, "%s",
                           op == MGR_QUEUE_PUT ? "manager: the queue is full" : "manager: the queue is empty");
      } else if (op == MGR_QUEUE_PUT) {
        if (!(rc = bstr_set(&item, a[1].p, a[1].n)) && (rc = ring_push(q, &item)) != 0) free(item.p);
      } else {
        item = ring_pop(q);
        rc = rep_item(&r, item.p, item.n);
        free(item.p);
        if (o->kind == MGR_KIND_JOINABLE_QUEUE) q->got_undone++;
      }
      if (rc != DEFERRED) queue_settle(s, o);
      break;
    }
    case MGR_QUEUE_SIZE:
      NARGS(0);
      OBJ(MGR_KIND_QUEUE, MGR_KIND_JOINABLE_QUEUE);
      if (!(rc = rep_i64(&r, (int64_t)o->u.q.n))) rc = rep_i64(&r, (int64_t)o->u.q.maxsize);
      break;
    case MGR_QUEUE_TASK_DONE:
    case MGR_QUEUE_JOIN:
      NARGS(op == MGR_QUEUE_JOIN ? 1u : 0u);
      OBJ(MGR_KIND_QUEUE, MGR_KIND_JOINABLE_QUEUE);
      if (o->kind != MGR_KIND_JOINABLE_QUEUE) {
        rc = mproc__fail(MPROC_ESTATE, "manager: the queue is not joinable");
      } else if (op == MGR_QUEUE_TASK_DONE) {
        if (!o->u.q.got_undone)
          rc = mproc__fail(MPROC_ESTATE, "manager: task_done called more times than items were got");
        else if (--o->u.q.got_undone == 0)
          queue_settle(s, o);
      } else {
        I64(0, i1);
        if (o->u.q.n || o->u.q.got_undone) rc = defer(s, c, o, MGR_QUEUE_JOIN, seq, i1, "tasks remain unfinished");
      }
      break;
    case MGR_CUSTOM_CALL: {
      if (na < 1) NARGS(1u);
      OBJ(MGR_KIND_CUSTOM, 0);
      const mproc_mtype *t = o->u.cu.type;
      const mproc_mmethod *f = NULL;
      for (size_t i = 0; i < t->method_count && !f; ++i)
        if (strlen(t->methods[i].name) == a[0].n && !memcmp(t->methods[i].name, a[0].p, a[0].n)) f = &t->methods[i];
      if (!f) {
        rc = mproc__fail(MPROC_ENOENT, "manager: type %s has no method '%.*s'", t->name,
                         (int)(a[0].n > 200 ? 200 : a[0].n), a[0].p);
        goto out;
      }
      mproc_bytes *args = na > 1 ? (mproc_bytes *)malloc((na - 1) * sizeof *args) : NULL;
      if (na > 1 && !args) {
        rc = mproc__fail(MPROC_ENOMEM, "manager: out of memory for %u arguments", na - 1);
        goto out;
      }
      for (uint32_t i = 1; i < na; ++i) args[i - 1] = (mproc_bytes){a[i].p, a[i].n};
      rc = f->fn(o->u.cu.state, args, na - 1, (mproc_mreply *)&r);
      free(args);
      if (rc > 0 || rc < MPROC_ERROR_MIN_) rc = MPROC_ESYS;
      if (rc) rc = mproc__fail(rc, "manager: method %s of type %s failed (%s)", f->name, t->name, mproc_strerror(rc));
      break;
    }
    default:
      rc = mproc__fail(MPROC_EINVAL, "manager: no such request (%u)", op);
  }
out:
  if (rc != DEFERRED) send_reply(c, seq, rc, &r);
  mproc__buf_free(&r.b);
  free(a);
  return 0;
}

/* ---- the loop ----------------------------------------------------------------------------------- */

/* c has left s->cl: let go of what it held, and break a barrier it waited at (as a local barrier whose
 * waiter's process died). */
static void drop_client(server *s, client *c) {
  obj *b = c->waiting && c->wait_op == MGR_BARRIER_WAIT ? lookup(s, c->wait_obj, MGR_KIND_BARRIER, 0) : NULL;
  c->waiting = false;
  if (b) barrier_break(s, b, true);
  for (size_t i = 0; i < s->nobj; ++i)
    if ((s->objs[i].kind == MGR_KIND_LOCK || s->objs[i].kind == MGR_KIND_RLOCK) && s->objs[i].u.k.holder == c)
      pass_on(s, &s->objs[i], MPROC_EOWNERDEAD);
  free(c->wait_item.p);
  mproc_connection_destroy(c->conn);
  free(c);
}

static void sweep(server *s) {
  for (bool again = true; again;) {
    again = false;
    for (size_t i = 0; i < s->ncl; ++i)
      if (s->cl[i]->dead) {
        client *c = s->cl[i];
        s->cl[i--] = s->cl[--s->ncl];
        drop_client(s, c); /* passing its locks on may find another dead one */
        again = true;
      }
  }
}

/* Answer the waits whose time is up. */
static void expire(server *s) {
  int64_t now = mproc_monotonic_ns();
  for (size_t i = 0; i < s->ncl; ++i) {
    client *c = s->cl[i];
    if (!c->waiting || c->deadline > now) continue;
    obj *o = lookup(s, c->wait_obj, 0, 0);
    switch (c->wait_op) {
      case MGR_COND_WAIT:
        cond_retake(s, c, MPROC_ETIMEDOUT);
        break;
      case MGR_BARRIER_WAIT: /* a waiter whose time runs out breaks the barrier, as Python's */
        if (o) barrier_break(s, o, true);
        break;
      case MGR_QUEUE_GET:
        wake(c, mproc__fail(MPROC_EEMPTY, "manager: the queue stayed empty for the get's timeout"), NULL);
        break;
      case MGR_QUEUE_PUT:
        wake(c, mproc__fail(MPROC_EFULL, "manager: the queue stayed full for the put's timeout"), NULL);
        break;
      default:
        wake(c, mproc__fail(MPROC_ETIMEDOUT, "manager: the wait timed out"), NULL);
    }
  }
}

/* Serve conn (owned by the server from here, destroyed if it cannot be added): its client, or NULL. */
static client *add_client(server *s, mproc_connection *conn) {
  client *c = (client *)calloc(1, sizeof *c);
  if (s->ncl == s->capcl) {
    size_t cap = s->capcl ? 2 * s->capcl : 8;
    client **cl = (client **)realloc(s->cl, cap * sizeof *cl);
    if (cl) {
      s->cl = cl;
      s->capcl = cap;
    }
  }
  if (!c || s->ncl == s->capcl) {
    free(c);
    mproc_connection_destroy(conn);
    return NULL;
  }
  c->conn = conn;
  s->cl[s->ncl++] = c;
  return c;
}

/* Every client and object of the server. */
static void server_release(server *s) {
  for (size_t i = 0; i < s->ncl; ++i) {
    mproc_connection_destroy(s->cl[i]->conn);
    free(s->cl[i]->wait_item.p);
    free(s->cl[i]);
  }
  free(s->cl);
  for (size_t i = 0; i < s->nobj; ++i) obj_free(&s->objs[i]);
  free(s->objs);
  dict_free(&s->names);
  memset(s, 0, sizeof *s);
}

static void accept_one(server *s) {
  mproc_connection *conn;
  if (mproc_listener_accept(s->l, 0, &conn) != 0) return; /* a refused client, or one still to finish */
  add_client(s, conn);
}

static int serve(server *s) {
  mproc_waitable *ws = NULL;
  client **who = NULL;
  size_t cap = 0;
  int rc = 0;
  s->seed = (uint64_t)mproc_monotonic_ns() ^ (uint64_t)mproc_getpid() << 32;
  while (!s->stop) {
    if (cap < s->ncl + 2) {
      cap = 2 * (s->ncl + 2);
      free(ws);
      free(who);
      ws = (mproc_waitable *)malloc(cap * sizeof *ws);
      who = (client **)malloc(cap * sizeof *who);
      if (!ws || !who) {
        rc = mproc__fail(MPROC_ENOMEM, "manager: out of memory serving %zu clients", s->ncl);
        break;
      }
    }
    size_t n = 0;
    int64_t deadline = INT64_MAX;
    ws[n] = mproc_waitable_listener(s->l);
    who[n++] = NULL;
    if (s->control) {
      ws[n] = mproc_waitable_connection(s->control);
      who[n++] = NULL;
    }
    for (size_t i = 0; i < s->ncl; ++i) {
      if (s->cl[i]->waiting && s->cl[i]->deadline < deadline) deadline = s->cl[i]->deadline;
      ws[n] = mproc_waitable_connection(s->cl[i]->conn); /* a waiting client's too: for its end */
      who[n++] = s->cl[i];
    }
    size_t nready;
    int w = mproc_wait(ws, n, mproc__ms_until(deadline), &nready);
    if (w != 0 && w != MPROC_ETIMEDOUT) {
      rc = w;
      break;
    }
    for (size_t i = 0; i < n && w == 0; ++i) {
      if (!ws[i].ready) continue;
      if (ws[i].kind == MPROC_WAIT_LISTENER) {
        accept_one(s);
      } else if (!who[i]) { /* the control pipe: a word from the starter, or its end */
        s->stop = true;
      } else {
        char *msg;
        size_t len;
        int r = mproc_connection_recv_bytes(who[i]->conn, MPROC_MANAGER_MAX_MESSAGE, 0, &msg, &len);
        if (r == 0 && who[i]->waiting) { /* a request while its call waits: not this protocol */
          who[i]->dead = true;
          mproc_free(msg);
        } else if (r == 0) {
          if (handle(s, who[i], msg, len) != 0) who[i]->dead = true;
          mproc_free(msg);
        } else if (r != MPROC_ETIMEDOUT) {
          who[i]->dead = true; /* gone, or a stream or a request we will not take */
        }
      }
    }
    expire(s);
    sweep(s);
  }
  free(ws);
  free(who);
  server_release(s);
  return rc;
}

int mproc__manager_server_main(const mproc_args *a) {
  mproc__mgr_item *it = NULL;
  if (a->connection_count != 1 || a->size < 4 ||
      mproc__mgr_parse_items((const char *)a->data + 4, a->size - 4, 2, &it) != 0)
    return MPROC_EXIT_BOOT_FAILED;
  mproc_connection *control = a->connections[0];
  uint32_t family = mproc__mgr_get_u32((const char *)a->data);
  char *address = it[0].n ? (char *)calloc(1, it[0].n + 1) : NULL;
  mproc_mtype *types = NULL;
  size_t ntypes = 0;
  int trc = mproc__mgr_types_decode(it[1].p, it[1].n, &types, &ntypes);
  if (address) memcpy(address, it[0].p, it[0].n);
  bool bad = it[0].n && !address;
  free(it);
  if (bad) return MPROC_EXIT_BOOT_FAILED;
  server s = {0};
  s.control = control;
  s.types = types;
  s.ntypes = ntypes;
  int rc = trc ? trc
               : mproc_listener_create(
                     &s.l, &(mproc_listener_opts){
                               .address = address, .family = (mproc_family)family, .process_authkey = true});
  free(address);
  /* the answer: i32 status | the address, or the message */
  const char *text = rc ? mproc_last_error() : mproc_listener_address(s.l);
  mproc__buf b = {0};
  if (mproc__buf_reserve(&b, 4 + strlen(text)) != 0) return MPROC_EXIT_BOOT_FAILED;
  mproc__mgr_put_u32(&b, (uint32_t)rc);
  mproc__buf_append(&b, text, strlen(text));
  int sent = mproc_connection_send_bytes(control, b.data, b.len, 0, MPROC_ALL);
  mproc__buf_free(&b);
  if (!rc && sent) mproc_listener_destroy(s.l);
  if (!rc && !sent) {
    mproc_listener *l = s.l; /* serve forgets it with the rest */
    rc = serve(&s);
    mproc_listener_destroy(l);
  } else {
    rc = 1;
  }
  mproc__mgr_types_free(types, ntypes); /* after the objects, whose destroy it holds */
  return rc ? 1 : 0;
}

int mproc_manager_serve_forever(const mproc_manager_opts *opts) {
  const mproc_manager_opts none = {0};
  if (!opts) opts = &none;
  int trc = mproc__mgr_types_check(opts->types, opts->type_count, "manager_serve_forever");
  if (trc) return trc;
  server s = {0};
  s.types = opts->types;
  s.ntypes = opts->type_count;
  int rc =
      mproc_listener_create(&s.l, &(mproc_listener_opts){.address = opts->address,
                                                         .family = opts->family,
                                                         .authkey = opts->authkey,
                                                         .authkey_size = opts->authkey_size,
                                                         .process_authkey = !opts->authkey && !opts->authkey_size});
  if (rc) return rc;
  mproc_listener *l = s.l; /* serve forgets it with the rest */
  if (opts->on_listening) opts->on_listening(mproc_listener_address(l), opts->on_listening_arg);
  rc = serve(&s);
  mproc_listener_destroy(l);
  return rc;
}

/* ---- custom types for the server process -------------------------------------------------------- */

int mproc__mgr_types_check(const mproc_mtype *types, size_t n, const char *call) {
  MPROC__CHECK_ARG_AS(call, !types && n, "types is NULL with a count");
  for (size_t i = 0; i < n; ++i) {
    const mproc_mtype *t = &types[i];
    MPROC__CHECK_ARG_AS(call, !t->name || !*t->name, "types[%zu] has no name", i);
    MPROC__CHECK_ARG_AS(call, !t->methods && t->method_count, "type %s: methods is NULL with a count", t->name);
    for (size_t j = 0; j < i; ++j) MPROC__CHECK_ARG_AS(call, !strcmp(types[j].name, t->name), "type %s twice", t->name);
    for (size_t k = 0; k < t->method_count; ++k)
      MPROC__CHECK_ARG_AS(call, !t->methods[k].name || !*t->methods[k].name || !t->methods[k].fn,
                          "type %s: methods[%zu] has no name or no function", t->name, k);
  }
  return 0;
}

/* An item holding a function's reference (empty for NULL). */
static int put_fn(mproc__buf *b, void *fn) {
  if (!fn) return mproc__mgr_put_item(b, NULL, 0);
  mproc__buf ref = {0};
  int rc = mproc__pal_fn_locate(fn, &ref);
  if (!rc) rc = mproc__mgr_put_item(b, ref.data, ref.len);
  mproc__buf_free(&ref);
  return rc;
}

int mproc__mgr_types_encode(const mproc_mtype *types, size_t n, mproc__buf *out) {
  int rc = mproc__mgr_types_check(types, n, "manager_start");
  size_t count = 0, at = out->len;
  if (!rc) rc = mproc__buf_reserve(out, 4);
  if (rc) return rc;
  out->len += 4;
  for (size_t i = 0; i < n && !rc; ++i) {
    const mproc_mtype *t = &types[i];
    rc = mproc__mgr_put_item(out, t->name, strlen(t->name));
    if (!rc) rc = mproc__mgr_put_i64_item(out, (int64_t)t->state_size);
    if (!rc) rc = put_fn(out, *(void **)(void *)&t->destroy);
    if (!rc) rc = mproc__mgr_put_i64_item(out, (int64_t)t->method_count);
    count += 4;
    for (size_t k = 0; k < t->method_count && !rc; ++k, count += 2)
      if (!(rc = mproc__mgr_put_item(out, t->methods[k].name, strlen(t->methods[k].name))))
        rc = put_fn(out, *(void **)(void *)&t->methods[k].fn);
  }
  if (rc == MPROC_ENOENT)
    return mproc__fail_prefix(rc, "manager_start: a custom type's function cannot be found again");
  size_t end = out->len;
  out->len = at;
  mproc__mgr_put_u32(out, (uint32_t)count);
  out->len = end;
  return rc;
}

/* A copy of an item as a string. */
static char *item_str(mproc__mgr_item it) {
  char *c = (char *)malloc(it.n + 1);
  if (c) {
    memcpy(c, it.p, it.n);
    c[it.n] = 0;
  }
  return c;
}

int mproc__mgr_types_decode(const char *p, size_t len, mproc_mtype **types, size_t *n) {
  *types = NULL;
  *n = 0;
  mproc__mgr_item *it = NULL;
  if (len < 4 || mproc__mgr_parse_items(p + 4, len - 4, mproc__mgr_get_u32(p), &it) != 0)
    return mproc__fail(MPROC_EINVAL, "manager: the custom types are malformed");
  uint32_t count = mproc__mgr_get_u32(p), at = 0;
  int rc = 0;
  size_t cap = 0;
  while (at < count && !rc) {
    int64_t size = 0, nm = 0;
    if (count - at < 4 || mproc__mgr_item_i64(it[at + 1], &size) || mproc__mgr_item_i64(it[at + 3], &nm) || nm < 0 ||
        (uint64_t)nm > (count - at - 4) / 2) {
      rc = mproc__fail(MPROC_EINVAL, "manager: the custom types are malformed");
      break;
    }
    if (*n == cap) {
      cap = cap ? 2 * cap : 4;
      mproc_mtype *t = (mproc_mtype *)realloc(*types, cap * sizeof *t);
      if (!t) {
        rc = mproc__fail(MPROC_ENOMEM, "manager: out of memory for the custom types");
        break;
      }
      *types = t;
    }
    mproc_mtype *t = &(*types)[(*n)++];
    memset(t, 0, sizeof *t);
    t->state_size = (size_t)size;
    mproc_mmethod *ms = nm ? (mproc_mmethod *)calloc((size_t)nm, sizeof *ms) : NULL;
    t->methods = ms;
    if (!(t->name = item_str(it[at])) || (nm && !ms)) rc = mproc__fail(MPROC_ENOMEM, "manager: out of memory");
    void *fn = NULL;
    if (!rc && it[at + 2].n && !(rc = mproc__pal_fn_resolve(it[at + 2].p, it[at + 2].n, &fn)))
      *(void **)(void *)&t->destroy = fn;
    at += 4;
    for (int64_t k = 0; k < nm && !rc; ++k, at += 2) {
      t->method_count++;
      if (!(ms[k].name = item_str(it[at]))) rc = mproc__fail(MPROC_ENOMEM, "manager: out of memory");
      if (!rc && !(rc = mproc__pal_fn_resolve(it[at + 1].p, it[at + 1].n, &fn))) *(void **)(void *)&ms[k].fn = fn;
    }
  }
  free(it);
  if (rc) {
    mproc__mgr_types_free(*types, *n);
    *types = NULL;
    *n = 0;
  }
  return rc;
}

void mproc__mgr_types_free(mproc_mtype *types, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    for (size_t k = 0; k < types[i].method_count; ++k) free((char *)types[i].methods[k].name);
    free((void *)types[i].methods);
    free((char *)types[i].name);
  }
  free(types);
}

/* ---- the request handler without the loop (tests/fuzz/fuzz_manager.c) --------------------------- */

mproc__mgr_server *mproc__mgr_server_new(void) {
  server *s = (server *)calloc(1, sizeof *s);
  if (s) s->seed = 0x5eed;
  return s;
}

void mproc__mgr_server_set_types(mproc__mgr_server *s, const mproc_mtype *types, size_t n) {
  s->types = types;
  s->ntypes = n;
}

int mproc__mgr_server_feed(mproc__mgr_server *s, mproc_connection *conn, const void *msg, size_t len) {
  client *c = NULL;
  for (size_t i = 0; i < s->ncl && !c; ++i)
    if (s->cl[i]->conn == conn) c = s->cl[i];
  if (!c && !(c = add_client(s, conn))) return MPROC_ECLOSED;
  if (!c->waiting && handle(s, c, (const char *)msg, len) != 0) c->dead = true;
  expire(s);
  sweep(s);
  for (size_t i = 0; i < s->ncl; ++i)
    if (s->cl[i]->conn == conn) return s->cl[i]->waiting ? MPROC_ETIMEDOUT : 0;
  return MPROC_ECLOSED;
}

void mproc__mgr_server_free(mproc__mgr_server *s) {
  if (!s) return;
  server_release(s);
  free(s);
}
