/* Benchmark area "queue": items between processes through a queue, mproc beside the raw C program an
 * expert writes for the same job and CPython's multiprocessing (bench/py/bench_queue.py).
 *
 *   queue.put_get.8b.spsc.<placement>  one producer puts N items of 8 bytes, one consumer gets them;
 *                                      op = one item put and got | c-raw: a lock-free single-producer
 *                                      single-consumer ring of 8-byte slots in shared memory
 *   queue.put_get.8b.mpmc.<placement>  the same with two producers and two consumers | c-raw: a ring of
 *                                      8-byte slots under a robust process-shared pthread mutex
 *   queue.simple.8b.<placement>        one producer, one consumer, through a SimpleQueue | c-raw: the
 *                                      mutex ring
 *   queue.bw.1m.<placement>            items of 1 MiB one way, then a 1-byte item, answered by a 1-byte
 *                                      acknowledgement (process.bw.conn's protocol), GB/s | c-raw: a socket
 *                                      pair with 1 MiB SO_SNDBUF/SO_RCVBUF (rawpair.c); c-shm: a ring of 4
 *                                      slots of 1 MiB in shared memory, futex wake-ups (rawpair.c)
 *
 * The 8-byte lines: the parent coordinates, each producer and consumer is a fork child (mproc's through
 * mproc_process_create with MPROC_START_FORK and the queue in opts.objects) that pins itself as its
 * first work: producers on the parent's CPU, consumers on the other one in .cross-cpu (all on one CPU in
 * .same-cpu). A repetition of N items: the parent writes N to every child's control pipe; the producers
 * share the N items, each a sequence number tagged with its producer, then put one 0 item (the
 * sentinel: as many producers as consumers); each consumer gets until a sentinel, checks that each
 * producer's items come in order, and writes back how many it got; the parent checks that they add up
 * to N. Blocking calls throughout: a side that has nothing to do sleeps in the kernel (futex), and its
 * peer pays a wake-up only while it sleeps; nobody spins (bench/README.md).
 *
 * The bw line: the parent puts, one fork child gets (pinned as the consumer above), as process.bw.conn.
 *
 * Every queue holds the same number of bytes for every implementation: QUEUE_BYTES for the 8-byte lines
 * (mproc's Queue: max_bytes; c-raw: QUEUE_BYTES / 8 slots; mproc's SimpleQueue takes no bound and has the
 * default 128 MiB), BW_QUEUE_BYTES for bw (mproc: max_bytes, four items of 1 MiB; c-shm: four slots of
 * 1 MiB; the socket pair's buffers are 1 MiB each way, as mproc's bulk channel). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"
#include "rawpair.h"

#ifndef QUEUE_BYTES
#define QUEUE_BYTES (1u << 20)
#endif
#define SLOTS (QUEUE_BYTES / 8u) /* c-raw rings: 8-byte slots, a power of two */
#ifndef BW_QUEUE_BYTES
#define BW_QUEUE_BYTES (4u * (BENCH_MSG_1M + 64u)) /* four records of 1 MiB (mproc's header: 32 bytes, to 64) */
#endif
#define MAX_WORKERS 4
#define PRODUCER_SHIFT 56 /* an item: (producer + 1) << PRODUCER_SHIFT | its sequence number; 0 ends */

typedef enum line_kind { LINE_SPSC, LINE_MPMC, LINE_SIMPLE } line_kind;
typedef enum impl_kind { IMPL_MPROC, IMPL_RAW } impl_kind;
static const char *const impl_names[] = {"mproc", "c-raw"};

static void die(const char *what) {
  fprintf(stderr, "bench_queue: %s: %s\n", what, mproc_last_error());
  exit(1);
}

/* ---- c-raw of spsc: a lock-free single-producer single-consumer ring ----------------------------------
 * head (items put) is moved by the producer only, tail (items got) by the consumer only; each side keeps
 * its own copy of the other's counter and reads the shared one only when the ring looks full (producer)
 * or empty (consumer). A side that finds it so sleeps on the other's counter (bench_seq, rawpair.h: a
 * futex, a wake call only when the sleeper announced itself). Linux (futexes). */
#if defined(__linux__)
#define HAVE_RAW 1

static void futex_wait(_Atomic uint32_t *word, uint32_t seen) {
  syscall(SYS_futex, (void *)word, FUTEX_WAIT, seen, NULL, NULL, 0);
}
static void futex_wake(_Atomic uint32_t *word) { syscall(SYS_futex, (void *)word, FUTEX_WAKE, 1, NULL, NULL, 0); }

typedef struct spsc_ring {
  bench_seq head;
  char pad0[48];
  bench_seq tail;
  char pad1[48];
  uint64_t slot[SLOTS];
} spsc_ring;

static void spsc_put(spsc_ring *r, uint64_t v, uint32_t *tail_seen) {
  uint32_t h = atomic_load_explicit(&r->head.value, memory_order_relaxed);
  while (h - *tail_seen == SLOTS) {
    *tail_seen = atomic_load_explicit(&r->tail.value, memory_order_acquire);
    if (h - *tail_seen == SLOTS) bench_seq_wait(&r->tail, *tail_seen);
  }
  r->slot[h % SLOTS] = v;
  bench_seq_post(&r->head);
}

static uint64_t spsc_get(spsc_ring *r, uint32_t *head_seen) {
  uint32_t t = atomic_load_explicit(&r->tail.value, memory_order_relaxed);
  while (t == *head_seen) {
    *head_seen = atomic_load_explicit(&r->head.value, memory_order_acquire);
    if (t == *head_seen) bench_seq_wait(&r->head, t);
  }
  uint64_t v = r->slot[t % SLOTS];
  bench_seq_post(&r->tail);
  return v;
}

/* ---- c-raw of mpmc and simple: a ring under a robust process-shared mutex ------------------------------
 * The mutex (PTHREAD_MUTEX_ROBUST, as mproc's queue lock survives a holder's death) guards the ring's
 * counters and slots. A getter that finds it empty counts itself in cons.waiting, notes cons.seq, unlocks
 * and sleeps in FUTEX_WAIT on it; a put that finds a sleeper not woken yet (waiting > woken) counts one
 * more woken, bumps seq and, after unlocking, makes one FUTEX_WAKE of one sleeper; a sleeper that has the
 * mutex again counts itself out of both. So a put makes no call while the sleeper it woke has not run
 * yet (the woken count of glibc's condition variables), and the same holds the other way round for a
 * full ring. Two condition variables would do the same with more work on every call. */
typedef struct sleepers {
  _Atomic uint32_t seq; /* the futex word */
  uint32_t waiting;     /* processes sleeping on it, until they have the mutex again */
  uint32_t woken;       /* of them, those a wake was sent to */
} sleepers;

typedef struct mutex_ring {
  pthread_mutex_t mutex;
  uint64_t head, tail; /* items put, got */
  sleepers cons, prod; /* getters that wait for an item, putters that wait for room */
  char pad[64];
  uint64_t slot[SLOTS];
} mutex_ring;

static void ring_lock(mutex_ring *r) {
  int rc = pthread_mutex_lock(&r->mutex);
  if (rc == EOWNERDEAD) rc = pthread_mutex_consistent(&r->mutex);
  if (rc) exit(1);
}

/* Under the mutex: sleep on s (the mutex released meanwhile). */
static void ring_sleep(mutex_ring *r, sleepers *s) {
  uint32_t seen = atomic_load_explicit(&s->seq, memory_order_relaxed);
  ++s->waiting;
  pthread_mutex_unlock(&r->mutex);
  futex_wait(&s->seq, seen);
  ring_lock(r);
  --s->waiting;
  if (s->woken) --s->woken;
}

/* Under the mutex: whether a sleeper of s is to be woken (after unlocking: futex_wake(&s->seq)). */
static bool ring_signal(sleepers *s) {
  if (s->waiting <= s->woken) return false;
  ++s->woken;
  atomic_store_explicit(&s->seq, s->seq + 1, memory_order_relaxed);
  return true;
}

static void ring_put(mutex_ring *r, uint64_t v) {
  ring_lock(r);
  while (r->head - r->tail == SLOTS) ring_sleep(r, &r->prod);
  r->slot[r->head % SLOTS] = v;
  r->head++;
  bool wake = ring_signal(&r->cons);
  pthread_mutex_unlock(&r->mutex);
  if (wake) futex_wake(&r->cons.seq);
}

static uint64_t ring_get(mutex_ring *r) {
  ring_lock(r);
  while (r->head == r->tail) ring_sleep(r, &r->cons);
  uint64_t v = r->slot[r->tail % SLOTS];
  r->tail++;
  bool wake = ring_signal(&r->prod);
  pthread_mutex_unlock(&r->mutex);
  if (wake) futex_wake(&r->prod.seq);
  return v;
}

static size_t raw_ring_size(line_kind line) { return line == LINE_SPSC ? sizeof(spsc_ring) : sizeof(mutex_ring); }

/* A new c-raw ring for the line, in a MAP_SHARED mapping that fork children inherit (NULL: failed). */
static void *raw_ring_new(line_kind line) {
  void *ring = mmap(NULL, raw_ring_size(line), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (ring == MAP_FAILED) return NULL;
  if (line == LINE_SPSC) return ring;
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  int rc = pthread_mutex_init(&((mutex_ring *)ring)->mutex, &ma);
  pthread_mutexattr_destroy(&ma);
  if (rc == 0) return ring;
  munmap(ring, raw_ring_size(line));
  return NULL;
}

static void raw_ring_free(line_kind line, void *ring) {
  if (line != LINE_SPSC) pthread_mutex_destroy(&((mutex_ring *)ring)->mutex);
  munmap(ring, raw_ring_size(line));
}
#else
static void *raw_ring_new(line_kind line) {
  (void)line;
  return NULL;
}
static void raw_ring_free(line_kind line, void *ring) {
  (void)line;
  (void)ring;
}
#endif

/* ---- the workers ----------------------------------------------------------------------------------- */

typedef struct worker {
  line_kind line;
  impl_kind impl;
  bench_placement placement;
  bool producer;
  int index;        /* producers: 0 .. nprod - 1 */
  int nprod;        /* producers in the line */
  int in, out;      /* control pipes: a repetition's item count in, this worker's count out */
  void *ring;       /* c-raw: the ring (spsc_ring or mutex_ring), MAP_SHARED */
  mproc_queue *q;   /* mproc */
  uint64_t seq;     /* producer: the last sequence number put */
  uint32_t seen;    /* c-raw spsc: this side's copy of the other's counter */
  uint64_t last[4]; /* consumer: the last sequence number got from each producer */
} worker;

static void put_item(worker *w, uint64_t v) {
  if (w->impl == IMPL_MPROC) {
    if (mproc_queue_put(w->q, &v, sizeof v, MPROC_INFINITE) != 0) die("queue_put");
    return;
  }
#ifdef HAVE_RAW
  if (w->line == LINE_SPSC)
    spsc_put((spsc_ring *)w->ring, v, &w->seen);
  else
    ring_put((mutex_ring *)w->ring, v);
#endif
}

static uint64_t get_item(worker *w) {
  uint64_t v;
  if (w->impl == IMPL_MPROC) {
    size_t len;
    if (mproc_queue_get_into(w->q, &v, sizeof v, MPROC_INFINITE, &len) != 0 || len != sizeof v) die("queue_get_into");
    return v;
  }
#ifdef HAVE_RAW
  if (w->line == LINE_SPSC) return spsc_get((spsc_ring *)w->ring, &w->seen);
  return ring_get((mutex_ring *)w->ring);
#else
  return 0;
#endif
}

/* One repetition of `total` items: this worker's part; returns the items it put or got. */
static int64_t work(worker *w, int64_t total) {
  if (w->producer) {
    int64_t n = total / w->nprod + (w->index < total % w->nprod);
    uint64_t tag = (uint64_t)(w->index + 1) << PRODUCER_SHIFT;
    for (int64_t i = 0; i < n; ++i) put_item(w, tag | ++w->seq);
    put_item(w, 0);
    return n;
  }
  int64_t got = 0;
  for (uint64_t v; (v = get_item(w)) != 0; ++got) {
    unsigned p = (unsigned)(v >> PRODUCER_SHIFT) - 1;
    uint64_t s = v & (((uint64_t)1 << PRODUCER_SHIFT) - 1);
    if (p >= 4 || s <= w->last[p]) {
      fprintf(stderr, "bench_queue: item %llu of producer %u after %llu: lost order\n", (unsigned long long)s, p,
              (unsigned long long)w->last[p]);
      exit(1);
    }
    w->last[p] = s;
  }
  return got;
}

/* A worker's life: pin itself (producers beside the parent, consumers on the other CPU in cross-cpu),
 * then one repetition per count read, until a negative one. */
static int serve(worker *w) {
  bench_pin_side(w->placement, w->producer ? 0 : 1);
  int64_t total;
  while (bench_read_full(w->in, &total, sizeof total) == 0 && total >= 0) {
    int64_t done = work(w, total);
    if (write(w->out, &done, sizeof done) != (ssize_t)sizeof done) return 1;
  }
  return 0;
}

static int mproc_worker(const mproc_args *a) {
  worker w;
  memcpy(&w, a->data, sizeof w);
  w.q = (mproc_queue *)a->objects[0];
  return serve(&w);
}

/* ---- the parent ------------------------------------------------------------------------------------ */

typedef struct pair_ctx {
  int n;                                  /* workers */
  bool producer[MAX_WORKERS];             /* which are producers */
  int to[MAX_WORKERS], from[MAX_WORKERS]; /* control pipes */
  const char *name;
} pair_ctx;

/* One repetition: iters items from the producers to the consumers, every one counted. */
static void pair_run(void *vctx, int64_t iters) {
  pair_ctx *c = (pair_ctx *)vctx;
  for (int i = 0; i < c->n; ++i)
    if (write(c->to[i], &iters, sizeof iters) != (ssize_t)sizeof iters) exit(1);
  int64_t got = 0, put = 0;
  for (int i = 0; i < c->n; ++i) {
    int64_t done;
    if (bench_read_full(c->from[i], &done, sizeof done) != 0) exit(1);
    *(c->producer[i] ? &put : &got) += done;
  }
  if (got != iters || put != iters) {
    fprintf(stderr, "bench_queue: %s: %lld items put, %lld got, not %lld\n", c->name, (long long)put, (long long)got,
            (long long)iters);
    exit(1);
  }
}

static int run_impl(const char *name, line_kind line, impl_kind impl, bench_placement pl, int nprod, int64_t iters,
                    int64_t smoke_iters) {
  void *ring = NULL;
  mproc_queue *q = NULL;
  if (impl == IMPL_MPROC) {
    mproc_queue_opts o = {.maxsize = 0, .max_bytes = QUEUE_BYTES};
    if ((line == LINE_SIMPLE ? mproc_simple_queue_create(&q) : mproc_queue_create(&q, &o)) != 0) die("queue_create");
  } else if (!(ring = raw_ring_new(line))) {
    return 1;
  }

  pair_ctx c = {.n = 2 * nprod, .name = name};
  mproc_process *procs[MAX_WORKERS] = {NULL};
  pid_t pids[MAX_WORKERS];
  int rc = 0;
  for (int i = 0; i < c.n; ++i) {
    int down[2], up[2];
    if (pipe(down) != 0 || pipe(up) != 0) return 1;
    c.producer[i] = i < nprod;
    worker w = {.line = line,
                .impl = impl,
                .placement = pl,
                .producer = c.producer[i],
                .index = i < nprod ? i : i - nprod,
                .nprod = nprod,
                .in = down[0],
                .out = up[1],
                .ring = ring};
    if (impl == IMPL_MPROC) {
      mproc_object obj = mproc_object_queue(q);
      if (mproc_process_create(&procs[i], &(mproc_process_opts){.target = mproc_worker,
                                                                .arg = &w,
                                                                .arg_size = sizeof w,
                                                                .objects = &obj,
                                                                .object_count = 1,
                                                                .start_method = MPROC_START_FORK}) != 0 ||
          mproc_process_start(procs[i]) != 0)
        die("process_start");
    } else {
      pids[i] = fork();
      if (pids[i] < 0) return 1;
      if (pids[i] == 0) _exit(serve(&w));
    }
    close(down[0]);
    close(up[1]);
    c.to[i] = down[1];
    c.from[i] = up[0];
  }

  rc |= bench_run(
            &(bench_spec){
                .name = name, .impl = impl_names[impl], .unit = "ns/op", .iters = iters, .smoke_iters = smoke_iters},
            pair_run, &c) < 0;
  int64_t stop = -1;
  for (int i = 0; i < c.n; ++i) {
    if (write(c.to[i], &stop, sizeof stop) != (ssize_t)sizeof stop) rc = 1;
    close(c.to[i]);
  }
  for (int i = 0; i < c.n; ++i) {
    if (impl == IMPL_MPROC) {
      int code = -1;
      mproc_process_join(procs[i], MPROC_INFINITE);
      mproc_process_exitcode(procs[i], &code);
      rc |= code != 0;
      mproc_process_destroy(procs[i]);
    } else {
      int st = 0;
      while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR) {
      }
      rc |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    close(c.from[i]);
  }
  mproc_queue_destroy(q);
  if (ring) raw_ring_free(line, ring);
  return rc;
}

static int run_items(const char *what, line_kind line, bench_placement pl, int nprod, int64_t iters) {
  char name[96], prefix[64];
  snprintf(prefix, sizeof prefix, "queue.%s", what);
  if (!bench_pair_begin(name, sizeof name, prefix, pl)) return 0;
  int rc = run_impl(name, line, IMPL_MPROC, pl, nprod, iters, 200);
#ifdef HAVE_RAW
  rc |= run_impl(name, line, IMPL_RAW, pl, nprod, iters, 200);
#else
  printf("# %s impl=c-raw: skipped, its rings sleep on futexes (Linux)\n", name);
#endif
  bench_unpin();
  return rc;
}

/* ---- bw: 1 MiB items one way --------------------------------------------------------------------------- */

typedef struct bw_ctx {
  mproc_queue *q, *ack;
  const char *buf;
} bw_ctx;

/* The consumer: gets items; a 1-byte item is answered with a 1-byte acknowledgement, an empty one stops. */
static int bw_child(const mproc_args *a) {
  bench_pin_side(*(const bench_placement *)a->data, 1);
  mproc_queue *q = (mproc_queue *)a->objects[0], *ack = (mproc_queue *)a->objects[1];
  char *buf = malloc(BENCH_MSG_1M);
  size_t n;
  while (buf && mproc_queue_get_into(q, buf, BENCH_MSG_1M, MPROC_INFINITE, &n) == 0 && n > 0)
    if (n == 1 && mproc_queue_put(ack, "k", 1, MPROC_INFINITE) != 0) return 1;
  free(buf);
  return buf ? 0 : 1;
}

static void bw_mproc(void *vctx, int64_t iters) {
  bw_ctx *c = (bw_ctx *)vctx;
  char b[8];
  size_t n;
  for (int64_t i = 0; i < iters; i++)
    if (mproc_queue_put(c->q, c->buf, BENCH_MSG_1M, MPROC_INFINITE) != 0) die("queue_put");
  if (mproc_queue_put(c->q, "e", 1, MPROC_INFINITE) != 0 ||
      mproc_queue_get_into(c->ack, b, sizeof b, MPROC_INFINITE, &n) != 0)
    die("queue ack");
}

static int run_bw(bench_placement pl, int64_t iters) {
  char name[96];
  if (!bench_pair_begin(name, sizeof name, "queue.bw.1m", pl)) return 0;
  char *buf = malloc(BENCH_MSG_1M);
  if (!buf) return 1;
  memset(buf, 'x', BENCH_MSG_1M); /* real pages (an untouched buffer reads as the one zero page) */
  bench_spec spec = {.name = name,
                     .impl = "mproc",
                     .unit = "GB/s",
                     .iters = iters,
                     .smoke_iters = 4,
                     .bytes_per_op = (double)BENCH_MSG_1M};
  bw_ctx c = {NULL, NULL, buf};
  mproc_queue_opts o = {.maxsize = 0, .max_bytes = BW_QUEUE_BYTES};
  if (mproc_queue_create(&c.q, &o) != 0 || mproc_queue_create(&c.ack, NULL) != 0) die("queue_create");
  mproc_object objs[] = {mproc_object_queue(c.q), mproc_object_queue(c.ack)};
  mproc_process *p;
  if (mproc_process_create(&p, &(mproc_process_opts){.target = bw_child,
                                                     .arg = &pl,
                                                     .arg_size = sizeof pl,
                                                     .objects = objs,
                                                     .object_count = 2,
                                                     .start_method = MPROC_START_FORK}) != 0 ||
      mproc_process_start(p) != 0)
    die("process_start");
  int rc = bench_run(&spec, bw_mproc, &c) < 0;
  if (mproc_queue_put(c.q, "", 0, MPROC_INFINITE) != 0) rc = 1; /* stop */
  int code = -1;
  mproc_process_join(p, MPROC_INFINITE);
  mproc_process_exitcode(p, &code);
  rc |= code != 0;
  mproc_process_destroy(p);
  mproc_queue_destroy(c.q);
  mproc_queue_destroy(c.ack);
  spec.impl = "c-raw";
  rc |= bench_raw_pair(spec, pl, BENCH_RAW_SOCKET, buf, BENCH_MSG_1M);
  spec.impl = "c-shm";
  rc |= bench_shm_bw(spec, pl, buf, BENCH_MSG_1M);
  free(buf);
  bench_unpin();
  return rc;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  bench_init(argc, argv);
  bench_print_cpu_map();
  int rc = 0;
  for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) {
    rc |= run_items("put_get.8b.spsc", LINE_SPSC, (bench_placement)pl, 1, 1000000);
    rc |= run_items("put_get.8b.mpmc", LINE_MPMC, (bench_placement)pl, 2, 1000000);
    rc |= run_items("simple.8b", LINE_SIMPLE, (bench_placement)pl, 1, 1000000);
    rc |= run_bw((bench_placement)pl, 2000);
  }
  return rc;
}
