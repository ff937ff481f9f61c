/* Benchmark area "mpi": the Pool over MPI (mproc/mpi.h) beside a hand-written MPI master/worker loop and
 * mpi4py.futures.MPIPoolExecutor (bench/py/bench_mpi.py). bench/run.sh runs each under
 * `mpirun --oversubscribe --mca mpi_yield_when_idle 1 -np 4` (4 ranks on this machine's 2 CPUs: rank 0
 * the master, three workers), twice for this binary: as it is (impl=mproc) and with --raw first
 * (impl=c-raw; then mproc is not used at all).
 *
 *   mpi.map.c1     a map of a trivial task over 100,000 items of 8 bytes, chunksize 1; op = one item
 *   mpi.map.sum    a CPU-bound map: 2,000 items, each xorshift64 run 200,000 times from its seed (about
 *                  half a millisecond of CPU), chunksize 1; the sum of the outputs is checked; op = one item
 *   mpi.map.*.local   the same on a local pool (fork) of three workers on rank 0, the other ranks idle
 *                  in mproc's serve loop (impl=mproc only; python's local pool is bench_pool.py's area)
 *
 * The trivial task is bench_trivial_task (bench.c), called through a pointer by every implementation.
 *
 * c-raw: the strongest plain MPI program for per-item dispatch: rank 0 keeps a window of items in flight
 * per worker (64 for mpi.map.c1, as mproc's window of quick tasks; 2 for mpi.map.sum), each item one
 * 16-byte MPI_Send ([u64 index][u64 input], eager: it never waits), and takes the results with a
 * blocking MPI_Recv from any rank, sending that rank its next item; a worker loops MPI_Recv, the task,
 * MPI_Send of [u64 index][u64 output]. Its blocking calls busy-poll, yielding (mpi_yield_when_idle).
 *
 * Placement: none of house rule 5's pinning (4 ranks on 2 CPUs are left to the scheduler, the same way
 * for every implementation): these lines measure the dispatch across ranks, not a CPU pair. */
#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "mproc.h"
#include "mproc/mpi.h"

#define C1_ITEMS 100000
#define SUM_ITEMS 2000
#define SUM_ROUNDS 200000
#define RAW_C1_WINDOW 64
#define RAW_SUM_WINDOW 2

enum { TAG_C1 = 1, TAG_SUM = 2, TAG_STOP = 3, TAG_RESULT = 4 };

static uint64_t (*volatile g_trivial)(uint64_t) = bench_trivial_task;

static uint64_t sum_work(uint64_t seed) {
  uint64_t x = seed * 2654435761u + 1;
  for (int i = 0; i < SUM_ROUNDS; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

static uint64_t *g_x;   /* the inputs */
static uint64_t g_want; /* the sum of sum_work over the first n inputs, for the n of a full run */
static size_t g_want_n;

static uint64_t want_sum(size_t n) {
  if (g_want_n != n) {
    g_want = 0;
    for (size_t i = 0; i < n; ++i) g_want += sum_work(g_x[i]);
    g_want_n = n;
  }
  return g_want;
}

static void fail(const char *what) {
  fprintf(stderr, "bench_mpi: %s: %s\n", what, mproc_last_error());
  exit(1);
}

/* ---- mproc ----------------------------------------------------------------------------------------- */

static int t_trivial(const void *in, size_t len, mproc_task *t) {
  uint64_t x;
  if (len != sizeof x) return mproc_task_fail(t, "8 bytes");
  memcpy(&x, in, sizeof x);
  x = g_trivial(x);
  return mproc_task_return(t, &x, sizeof x);
}

static int t_sum(const void *in, size_t len, mproc_task *t) {
  uint64_t x;
  if (len != sizeof x) return mproc_task_fail(t, "8 bytes");
  memcpy(&x, in, sizeof x);
  x = sum_work(x);
  return mproc_task_return(t, &x, sizeof x);
}

typedef struct mproc_ctx {
  mproc_pool *pool;
  bool sum;
  mproc_bytes *in;
} mproc_ctx;

static void map_mproc(void *arg, int64_t iters) {
  mproc_ctx *c = (mproc_ctx *)arg;
  mproc_async_result *r = NULL;
  if (mproc_pool_map(c->pool, c->sum ? t_sum : t_trivial, c->in, (size_t)iters, 1, MPROC_INFINITE, &r) != 0)
    fail("map");
  uint64_t total = 0;
  for (size_t i = 0; i < (size_t)iters; ++i) {
    const void *d;
    size_t len;
    uint64_t y;
    if (mproc_async_result_item(r, i, &d, &len) != 0 || len != 8) fail("an item");
    memcpy(&y, d, 8);
    if (!c->sum && y != g_x[i] + 1) fail("a wrong output");
    total += y;
  }
  if (c->sum && total != want_sum((size_t)iters)) fail("a wrong sum");
  bench_sink += (int64_t)total;
  mproc_async_result_destroy(r);
}

static int run_mproc(bool local) {
  mproc_pool_opts o;
  memset(&o, 0, sizeof o);
  o.backend = local ? NULL : mproc_mpi_pool_backend();
  o.processes = local ? (size_t)(mproc_mpi_size() > 1 ? mproc_mpi_size() - 1 : 2) : 0;
  o.start_method = MPROC_START_FORK;
  if (!local && !o.backend) {
    printf("# mpi.map.*: skipped (not under mpirun with more than one rank)\n");
    return 0;
  }
  mproc_bytes *in = (mproc_bytes *)malloc(C1_ITEMS * sizeof *in);
  if (!in) return 1;
  for (size_t i = 0; i < C1_ITEMS; ++i) in[i] = (mproc_bytes){&g_x[i], sizeof g_x[i]};
  mproc_ctx c = {NULL, false, in};
  if (mproc_pool_create(&c.pool, &o) != 0) fail("pool_create");
  int rc = 0;
  bench_spec c1 = {.name = local ? "mpi.map.c1.local" : "mpi.map.c1",
                   .impl = "mproc",
                   .unit = "ns/op",
                   .iters = C1_ITEMS,
                   .smoke_iters = 100};
  rc |= bench_run(&c1, map_mproc, &c) < 0;
  c.sum = true;
  bench_spec sum = {.name = local ? "mpi.map.sum.local" : "mpi.map.sum",
                    .impl = "mproc",
                    .unit = "ns/op",
                    .iters = SUM_ITEMS,
                    .smoke_iters = 20,
                    .reps = 5};
  rc |= bench_run(&sum, map_mproc, &c) < 0;
  mproc_pool_destroy(c.pool);
  free(in);
  return rc;
}

/* ---- c-raw ----------------------------------------------------------------------------------------- */

typedef struct raw_ctx {
  int size;
  bool sum;
  uint64_t *out;
} raw_ctx;

static void raw_send(int to, uint64_t index, int tag) {
  uint64_t m[2] = {index, g_x[index]};
  MPI_Send(m, 2, MPI_UINT64_T, to, tag, MPI_COMM_WORLD);
}

static void map_raw(void *arg, int64_t iters) {
  raw_ctx *c = (raw_ctx *)arg;
  size_t n = (size_t)iters, next = 0;
  int tag = c->sum ? TAG_SUM : TAG_C1, window = c->sum ? RAW_SUM_WINDOW : RAW_C1_WINDOW;
  for (int w = 1; w < c->size; ++w)
    for (int k = 0; k < window && next < n; ++k) raw_send(w, next++, tag);
  for (size_t done = 0; done < n; ++done) {
    uint64_t m[2];
    MPI_Status st;
    MPI_Recv(m, 2, MPI_UINT64_T, MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &st);
    c->out[m[0]] = m[1];
    if (next < n) raw_send(st.MPI_SOURCE, next++, tag);
  }
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!c->sum && c->out[i] != g_x[i] + 1) fail("c-raw: a wrong output");
    total += c->out[i];
  }
  if (c->sum && total != want_sum(n)) fail("c-raw: a wrong sum");
  bench_sink += (int64_t)total;
}

static int raw_main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank != 0) { /* a worker */
    for (;;) {
      uint64_t m[2];
      MPI_Status st;
      MPI_Recv(m, 2, MPI_UINT64_T, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
      if (st.MPI_TAG == TAG_STOP) break;
      m[1] = st.MPI_TAG == TAG_SUM ? sum_work(m[1]) : g_trivial(m[1]);
      MPI_Send(m, 2, MPI_UINT64_T, 0, TAG_RESULT, MPI_COMM_WORLD);
    }
    MPI_Finalize();
    return 0;
  }
  bench_init(argc, argv);
  int rc = 0;
  if (size < 2) {
    printf("# mpi.map.* c-raw: skipped (not under mpirun with more than one rank)\n");
  } else {
    raw_ctx c = {size, false, (uint64_t *)calloc(C1_ITEMS, sizeof(uint64_t))};
    if (!c.out) return 1;
    bench_spec c1 = {.name = "mpi.map.c1", .impl = "c-raw", .unit = "ns/op", .iters = C1_ITEMS, .smoke_iters = 100};
    rc |= bench_run(&c1, map_raw, &c) < 0;
    c.sum = true;
    bench_spec sum = {
        .name = "mpi.map.sum", .impl = "c-raw", .unit = "ns/op", .iters = SUM_ITEMS, .smoke_iters = 20, .reps = 5};
    rc |= bench_run(&sum, map_raw, &c) < 0;
    free(c.out);
  }
  for (int w = 1; w < size; ++w) {
    uint64_t m[2] = {0, 0};
    MPI_Send(m, 2, MPI_UINT64_T, w, TAG_STOP, MPI_COMM_WORLD);
  }
  MPI_Finalize();
  return rc;
}

int main(int argc, char **argv) {
  g_x = (uint64_t *)malloc(C1_ITEMS * sizeof *g_x);
  if (!g_x) return 1;
  for (size_t i = 0; i < C1_ITEMS; ++i) g_x[i] = i * 7919u + 3u;
  if (argc > 1 && strcmp(argv[1], "--raw") == 0) { /* c-raw: plain MPI, no mproc */
    argv[1] = argv[0];
    return raw_main(argc - 1, argv + 1);
  }
  mproc_mpi_main_guard(&argc, &argv); /* ranks > 0 serve the pools from here on */
  bench_init(argc, argv);
  printf("# mpi: %d ranks (rank 0 the master, the others workers), no pinning\n", mproc_mpi_size());
  int rc = run_mproc(false);
  rc |= run_mproc(true);
  free(g_x);
  mproc_mpi_finalize();
  return rc;
}
