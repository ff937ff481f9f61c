/* The Pool over MPI (mproc/mpi.h), checked against the local pool on the same inputs. Run by CTest under
 * `mpirun -np 4` and alone (then both pools are local). Exit status 0 when every check passed.
 *
 *   mpi_pool_check            every Pool call, twice (two MPI pools in a row), 64 MiB in and out
 *   mpi_pool_check --part N ...  the same with messages longer than N bytes sent as MPI sends them
 *                             when longer than a count of bytes can say (2 GiB): their length, then a body
 *   mpi_pool_check --held     a reply of 4 MiB, and one just under 64 KiB, does not wait for the task
 *                             after it (run over TCP)
 *   mpi_pool_check --kill     a map whose task kills rank 2: the job must end (mpirun names the rank)
 *   mpi_pool_check --mismatch rank 0 with other ranks running a different file (mpirun's MPMD form,
 *                             tests/mpi/mismatch.cmake): creating a pool over MPI must fail, naming
 *                             the rank, and the job still ends cleanly */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mproc/mpi.h"
#include "mproc/pool.h"

static int failures, checks;

#define CHECK(cond, ...)                                                \
  do {                                                                  \
    ++checks;                                                           \
    if (!(cond)) {                                                      \
      ++failures;                                                       \
      fprintf(stderr, "FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                     \
      fprintf(stderr, " (last error: %s)\n", mproc_last_error());       \
    }                                                                   \
  } while (0)

/* ---- tasks ---- */

static int square(const void *in, size_t len, mproc_task *t) {
  int64_t x;
  if (len != sizeof x) return mproc_task_fail(t, "want 8 bytes, got %zu", len);
  memcpy(&x, in, sizeof x);
  if (x < 0) return mproc_task_fail(t, "negative: %lld", (long long)x);
  x = x * x + mproc_mpi_rank() * 0; /* the same result on any rank */
  return mproc_task_return(t, &x, sizeof x);
}

static int rank_of(const void *in, size_t len, mproc_task *t) {
  (void)in;
  (void)len;
  int r = mproc_mpi_rank();
  return mproc_task_return(t, &r, sizeof r);
}

static int add(const void *in, size_t len, mproc_task *t) {
  mproc_bytes a[2];
  size_t n = 0;
  if (mproc_task_args(in, len, a, 2, &n) != 0 || n != 2) return mproc_task_fail(t, "want 2 arguments");
  int64_t x, y;
  memcpy(&x, a[0].data, 8);
  memcpy(&y, a[1].data, 8);
  x += y;
  return mproc_task_return(t, &x, sizeof x);
}

/* The input with one byte of every 4 KiB plus one (cheap under the sanitizers): 64 MiB in and out. */
static void bump_pages(unsigned char *p, size_t len) {
  for (size_t i = 0; i < len; i += 4096) p[i] = (unsigned char)(p[i] + 1);
}

static int plus_one(const void *in, size_t len, mproc_task *t) {
  unsigned char *out = (unsigned char *)malloc(len ? len : 1);
  if (!out) return mproc_task_fail(t, "out of memory");
  memcpy(out, in, len);
  bump_pages(out, len);
  int rc = mproc_task_return(t, out, len);
  free(out);
  return rc;
}

static int spin(const void *in, size_t len, mproc_task *t) { /* a task that takes a while */
  (void)in;
  (void)len;
  volatile uint64_t x = 0;
  for (uint64_t i = 0; i < 20000000u; ++i) x += i;
  uint64_t y = x;
  return mproc_task_return(t, &y, sizeof y);
}

static int die_on_rank2(const void *in, size_t len, mproc_task *t) {
  (void)in;
  (void)len;
  if (mproc_mpi_rank() == 2) raise(SIGKILL);
  return mproc_task_return(t, NULL, 0);
}

/* Two tasks in one: 'A' [u64 n]: take a few milliseconds, then return n bytes (i % 251); 'W' [path]: wait
 * until the file at path exists, for up to HELD_WAIT_NS, and return "came" or "late". */
#define HELD_WAIT_NS 20000000000ll
static int a_then_wait(const void *in, size_t len, mproc_task *t) {
  const char *b = (const char *)in;
  if (len == 9 && b[0] == 'A') {
    uint64_t n;
    memcpy(&n, b + 1, 8);
    int64_t until = mproc_monotonic_ns() + 3000000;
    while (mproc_monotonic_ns() < until) {
    }
    unsigned char *out = (unsigned char *)malloc(n ? n : 1);
    if (!out) return mproc_task_fail(t, "out of memory");
    for (uint64_t i = 0; i < n; ++i) out[i] = (unsigned char)(i % 251);
    int rc = mproc_task_return(t, out, n);
    free(out);
    return rc;
  }
  if (len < 2 || b[0] != 'W' || memchr(b, 0, len) != b + len - 1) return mproc_task_fail(t, "a malformed input");
  for (int64_t until = mproc_monotonic_ns() + HELD_WAIT_NS; mproc_monotonic_ns() < until;) {
    FILE *f = fopen(b + 1, "rb"); /* (polled: the file is the only news from rank 0 this task can see) */
    if (f) {
      fclose(f);
      return mproc_task_return(t, "came", 4);
    }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return mproc_task_return(t, "late", 4);
}

static int twice_record(const void *in, void *out, mproc_task *t) {
  (void)t;
  int64_t x;
  memcpy(&x, in, 8);
  x *= 2;
  memcpy(out, &x, 8);
  return 0;
}

static int twice_chunk(const void *in, void *out, size_t count, mproc_task *t) {
  for (size_t i = 0; i < count; ++i) twice_record((const char *)in + 8 * i, (char *)out + 8 * i, t);
  return 0;
}

/* ---- callbacks ---- */

static int called, errored;
static void on_ok(void *user, mproc_async_result *r) {
  (void)user;
  (void)r;
  ++called; /* one result thread: no race */
}
static void on_err(void *user, mproc_async_result *r) {
  (void)user;
  (void)r;
  ++errored;
}

/* ---- the checks ---- */

#define N 1000

/* What one pool computes, to compare the MPI pool's with the local pool's. */
typedef struct outcome {
  int64_t map[N], imap_ordered[N], imap_unordered_sum, starmap[N], apply;
  char fail_msg[128];
  int fail_code;
} outcome;

static void run_pool(mproc_pool *p, bool mpi, outcome *o) {
  int64_t in[N];
  mproc_bytes bin[N];
  for (int i = 0; i < N; ++i) {
    in[i] = i - 3 * (i / 7);
    bin[i].data = &in[i];
    bin[i].len = 8;
  }
  /* apply */
  void *out = NULL;
  size_t olen = 0;
  int64_t x = 12;
  CHECK(mproc_pool_apply(p, square, &x, 8, MPROC_INFINITE, &out, &olen) == 0 && olen == 8, "apply");
  if (out) memcpy(&o->apply, out, 8);
  mproc_free(out);
  /* map, chunksize 1 and default */
  for (size_t chunk = 0; chunk < 2; ++chunk) {
    mproc_async_result *r = NULL;
    CHECK(mproc_pool_map(p, square, bin, N, chunk, MPROC_INFINITE, &r) == 0, "map chunksize %zu", chunk);
    for (size_t i = 0; r && i < N; ++i) {
      const void *d;
      size_t l;
      CHECK(mproc_async_result_item(r, i, &d, &l) == 0 && l == 8, "item %zu", i);
      memcpy(&o->map[i], d, 8);
    }
    mproc_async_result_destroy(r);
  }
  /* imap, ordered and unordered */
  for (int ordered = 1; ordered >= 0; --ordered) {
    mproc_async_result *r = NULL;
    CHECK(mproc_pool_imap(p, square, bin, N, 3, ordered, &r) == 0, "imap");
    size_t got = 0;
    int64_t sum = 0;
    const void *d;
    size_t l, idx;
    int rc;
    while (r && (rc = mproc_async_result_next(r, MPROC_INFINITE, &d, &l, &idx)) == 0) {
      int64_t v;
      memcpy(&v, d, 8);
      if (ordered) {
        CHECK(idx == got, "ordered imap gave %zu at %zu", idx, got);
        o->imap_ordered[idx] = v;
      }
      sum += v;
      ++got;
    }
    CHECK(got == N, "imap gave %zu items", got);
    if (!ordered) o->imap_unordered_sum = sum;
    mproc_async_result_destroy(r);
  }
  /* starmap */
  mproc_bytes args[2 * N];
  for (int i = 0; i < N; ++i) {
    args[2 * i] = bin[i];
    args[2 * i + 1] = bin[N - 1 - i];
  }
  mproc_async_result *r = NULL;
  CHECK(mproc_pool_starmap(p, add, args, 2, N, 0, MPROC_INFINITE, &r) == 0, "starmap");
  for (size_t i = 0; r && i < N; ++i) {
    const void *d;
    size_t l;
    if (mproc_async_result_item(r, i, &d, &l) == 0) memcpy(&o->starmap[i], d, 8);
  }
  mproc_async_result_destroy(r);
  /* a failing task: its message reaches the caller */
  int64_t neg[3] = {1, -5, 2};
  mproc_bytes bneg[3] = {{&neg[0], 8}, {&neg[1], 8}, {&neg[2], 8}};
  r = NULL;
  o->fail_code = mproc_pool_map(p, square, bneg, 3, 1, MPROC_INFINITE, &r);
  snprintf(o->fail_msg, sizeof o->fail_msg, "%s", mproc_last_error());
  CHECK(o->fail_code == MPROC_ETASK && strstr(o->fail_msg, "negative: -5"), "failure: %d %s", o->fail_code,
        o->fail_msg);
  /* callbacks */
  called = errored = 0;
  mproc_async_opts ao;
  memset(&ao, 0, sizeof ao);
  ao.callback = on_ok;
  ao.error_callback = on_err;
  mproc_async_result *ra = NULL, *rb = NULL, *rc = NULL;
  CHECK(mproc_pool_apply_async(p, square, &x, 8, &ao, &ra) == 0, "apply_async");
  CHECK(mproc_pool_apply_async(p, square, &neg[1], 8, &ao, &rb) == 0, "apply_async failing");
  CHECK(mproc_pool_map_async(p, square, bin, N, &ao, &rc) == 0, "map_async");
  CHECK(mproc_async_result_get(ra, MPROC_INFINITE) == 0, "apply_async get");
  CHECK(mproc_async_result_get(rb, MPROC_INFINITE) == MPROC_ETASK, "apply_async failing get");
  CHECK(mproc_async_result_get(rc, MPROC_INFINITE) == 0, "map_async get");
  CHECK(called == 2 && errored == 1, "callbacks %d, error callbacks %d", called, errored);
  mproc_async_result_destroy(ra);
  mproc_async_result_destroy(rb);
  mproc_async_result_destroy(rc);
  /* the array path: local only */
  int64_t rec_out[N];
  mproc_array_map m = {in, 8, rec_out, 8, N};
  int arc = mproc_pool_map_array(p, twice_record, &m, 0, MPROC_INFINITE);
  if (mpi)
    CHECK(arc == MPROC_ENOTSUP, "map_array over MPI: %d", arc);
  else
    CHECK(arc == 0 && rec_out[N - 1] == 2 * in[N - 1], "map_array: %d", arc);
  rec_out[N - 1] = 0;
  arc = mproc_pool_map_array_chunks(p, twice_chunk, &m, 0, MPROC_INFINITE);
  if (mpi)
    CHECK(arc == MPROC_ENOTSUP, "map_array_chunks over MPI: %d", arc);
  else
    CHECK(arc == 0 && rec_out[N - 1] == 2 * in[N - 1], "map_array_chunks: %d", arc);
  /* where the tasks ran: on the other ranks over MPI, here otherwise */
  int seen[64] = {0};
  for (int k = 0; k < 200; ++k) {
    int rk = -1;
    out = NULL;
    if (mproc_pool_apply(p, rank_of, NULL, 0, MPROC_INFINITE, &out, &olen) == 0 && olen == sizeof rk)
      memcpy(&rk, out, 4);
    mproc_free(out);
    if (rk >= 0 && rk < 64) seen[rk] = 1;
  }
  CHECK(mpi ? !seen[0] && seen[1] : seen[0], "tasks ran on rank 0: %d, rank 1: %d", seen[0], seen[1]);
}

/* 64 MiB in and out, twice at once. */
static void run_big(mproc_pool *p) {
  size_t len = (size_t)64 << 20;
  unsigned char *a = (unsigned char *)malloc(len), *b = (unsigned char *)malloc(len);
  if (!a || !b) {
    CHECK(false, "out of memory");
    free(a);
    free(b);
    return;
  }
  for (size_t i = 0; i < len; i += 8) { /* every byte differs from its neighbours */
    uint64_t x = i * 0x9E3779B97F4A7C15ull, y = ~x;
    memcpy(a + i, &x, 8);
    memcpy(b + i, &y, 8);
  }
  mproc_bytes in[2] = {{a, len}, {b, len}};
  mproc_async_result *r = NULL;
  CHECK(mproc_pool_map(p, plus_one, in, 2, 1, MPROC_INFINITE, &r) == 0, "64 MiB map");
  for (size_t k = 0; r && k < 2; ++k) {
    const void *d;
    size_t l;
    CHECK(mproc_async_result_item(r, k, &d, &l) == 0 && l == len, "64 MiB item %zu: %zu bytes", k, l);
    unsigned char *src = k ? b : a;
    bump_pages(src, len); /* what the task made of it */
    CHECK(l == len && memcmp(d, src, len) == 0, "64 MiB item %zu differs", k);
  }
  mproc_async_result_destroy(r);
  /* More long tasks than workers: long tasks go out while long replies come back (a thread of rank 0
   * that waited on one to write the other would hang here). */
  enum { MANY = 9 };
  size_t part = (size_t)8 << 20;
  mproc_bytes many[MANY];
  for (int k = 0; k < MANY; ++k) many[k] = (mproc_bytes){a + (size_t)k * part / 2, part};
  r = NULL;
  CHECK(mproc_pool_map(p, plus_one, many, MANY, 1, MPROC_INFINITE, &r) == 0, "9 x 8 MiB map");
  for (size_t k = 0; r && k < MANY; ++k) {
    const void *d;
    size_t l;
    CHECK(mproc_async_result_item(r, k, &d, &l) == 0 && l == part, "8 MiB item %zu: %zu bytes", k, l);
    unsigned char *want = (unsigned char *)malloc(part);
    if (!want) break;
    memcpy(want, many[k].data, part);
    bump_pages(want, part);
    CHECK(l == part && memcmp(d, want, part) == 0, "8 MiB item %zu differs", k);
    free(want);
  }
  mproc_async_result_destroy(r);
  free(a);
  free(b);
}

static void run_terminate(mproc_pool *p) {
  mproc_bytes in[40];
  for (int i = 0; i < 40; ++i) in[i] = (mproc_bytes){NULL, 0};
  mproc_async_result *r = NULL;
  mproc_async_opts ao;
  memset(&ao, 0, sizeof ao);
  ao.chunksize = 1;
  CHECK(mproc_pool_map_async(p, spin, in, 40, &ao, &r) == 0, "map_async to terminate");
  CHECK(mproc_pool_terminate(p) == 0, "terminate");
  CHECK(mproc_async_result_get(r, MPROC_INFINITE) == MPROC_ECLOSED, "terminated result");
  CHECK(mproc_pool_join(p, MPROC_INFINITE) == 0, "join after terminate");
  mproc_async_result_destroy(r);
}

static int make_pool(mproc_pool **p, bool mpi) {
  mproc_pool_opts o;
  memset(&o, 0, sizeof o);
  o.processes = mpi ? 0 : 2;
  o.backend = mpi ? mproc_mpi_pool_backend() : NULL;
  return mproc_pool_create(p, &o);
}

/* Two pools at once on the same ranks: each one's result thread polls MPI and takes whatever came,
 * the other pool's replies too (which it hands to that pool's ring, waking it): both maps complete,
 * right, while the other runs. */
static void run_overlap(bool mpi) {
  enum { M = 2000 };
  static int64_t xs[M];
  static mproc_bytes in[M];
  for (int i = 0; i < M; ++i) {
    xs[i] = i;
    in[i] = (mproc_bytes){&xs[i], 8};
  }
  mproc_pool *a = NULL, *b = NULL;
  CHECK(make_pool(&a, mpi) == 0 && make_pool(&b, mpi) == 0, "two pools at once");
  mproc_async_result *ra = NULL, *rb = NULL, *rs = NULL;
  if (a && b) {
    CHECK(mproc_pool_map_async(a, square, in, M, NULL, &ra) == 0, "map_async on pool a");
    CHECK(mproc_pool_apply_async(b, spin, NULL, 0, NULL, &rs) == 0, "a long apply on pool b");
    CHECK(mproc_pool_map_async(b, square, in, M, NULL, &rb) == 0, "map_async on pool b");
  }
  mproc_async_result *rr[2] = {ra, rb};
  for (int k = 0; k < 2; ++k) {
    CHECK(rr[k] && mproc_async_result_get(rr[k], MPROC_INFINITE) == 0, "overlapping map %d: %s", k, mproc_last_error());
    for (int i = 0; rr[k] && i < M; ++i) {
      const void *d;
      size_t l;
      int64_t y = 0;
      if (mproc_async_result_item(rr[k], (size_t)i, &d, &l) == 0 && l == 8) memcpy(&y, d, 8);
      if (y != xs[i] * xs[i]) {
        CHECK(false, "overlapping map %d, item %d: %lld", k, i, (long long)y);
        break;
      }
    }
    mproc_async_result_destroy(rr[k]);
  }
  CHECK(rs && mproc_async_result_get(rs, MPROC_INFINITE) == 0, "the long apply beside them");
  mproc_async_result_destroy(rs);
  mproc_pool_destroy(a);
  mproc_pool_destroy(b);
}

/* A reply does not wait for the task after it (the next of the same message to the worker): one worker,
 * two tasks sent together; the first returns `n` bytes after a few milliseconds, the second waits until
 * rank 0 has the first's result (it makes a file then). Under TCP with n long, MPI moves the reply only
 * while the rank makes MPI calls: it must be gone before the second task runs. */
static void run_held(bool mpi, size_t n) {
  char path[256], a[9] = {'A'}, w[260];
  snprintf(path, sizeof path, "%s/mpi_pool_check.%lld.%zu", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
           (long long)mproc_getpid(), n);
  remove(path);
  uint64_t n64 = n;
  memcpy(a + 1, &n64, 8);
  snprintf(w, sizeof w, "W%s", path);
  mproc_bytes in[2] = {{a, sizeof a}, {w, strlen(w) + 1}};
  mproc_pool_opts o;
  memset(&o, 0, sizeof o);
  o.processes = 1;
  o.backend = mpi ? mproc_mpi_pool_backend() : NULL;
  mproc_pool *p = NULL;
  mproc_async_result *r = NULL;
  CHECK(mproc_pool_create(&p, &o) == 0, "a pool of one worker");
  CHECK(p && mproc_pool_imap(p, a_then_wait, in, 2, 1, true, &r) == 0, "imap");
  const void *d = NULL;
  size_t l = 0, at = 9;
  int got = r ? mproc_async_result_next(r, HELD_WAIT_NS / 1000000 + 30000, &d, &l, &at) : -1;
  CHECK(got == 0 && at == 0 && l == n, "the first result (%zu bytes, index %zu): %d", l, at, got);
  for (size_t i = 0; got == 0 && i < l; ++i)
    if (((const unsigned char *)d)[i] != i % 251) {
      CHECK(false, "byte %zu of the first result", i);
      break;
    }
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL, "make %s", path);
  if (f) fclose(f);
  got = r ? mproc_async_result_next(r, HELD_WAIT_NS / 1000000 + 30000, &d, &l, &at) : -1;
  CHECK(got == 0 && at == 1 && l == 4 && memcmp(d, "came", 4) == 0,
        "the second task saw the file (%d, %.*s): the first's reply came only after it", got, (int)l,
        got == 0 ? (const char *)d : "");
  mproc_async_result_destroy(r);
  mproc_pool_destroy(p);
  remove(path);
}

void mproc__mpi_set_part(size_t bytes); /* (src/mpi/mpi.c, for tests) */
uint64_t mproc__mpi_long_messages(void);

int main(int argc, char **argv) {
  bool parts = argc > 2 && strcmp(argv[1], "--part") == 0;
  if (parts) { /* every rank, before the guard */
    mproc__mpi_set_part((size_t)strtoull(argv[2], NULL, 10));
    argv[2] = argv[0];
    argc -= 2;
    argv += 2;
  }
  if (mproc_mpi_main_guard(&argc, &argv) != 0) fprintf(stderr, "MPI: %s\n", mproc_last_error());
  bool mpi = mproc_mpi_pool_backend() != NULL;
  printf("mpi_pool_check: %d rank(s), %s\n", mproc_mpi_size(), mpi ? "the MPI backend" : "local pools only");
  if (argc > 1 && strcmp(argv[1], "--kill") == 0) {
    mproc_pool *p = NULL;
    if (make_pool(&p, mpi) != 0) return 2;
    mproc_bytes in[64];
    for (int i = 0; i < 64; ++i) in[i] = (mproc_bytes){NULL, 0};
    mproc_async_result *r = NULL;
    int rc = mproc_pool_map(p, die_on_rank2, in, 64, 1, MPROC_INFINITE, &r);
    printf("the map ended: %d %s\n", rc, rc ? mproc_last_error() : "");
    return 3; /* under mpirun the job ends before this */
  }
  if (argc > 1 && strcmp(argv[1], "--held") == 0) { /* (tests/CMakeLists.txt runs it over TCP) */
    run_held(mpi, (size_t)4 << 20);
    run_held(mpi, 65480); /* (a message just under TCP's eager limit of 64 KiB, past it with MPI's header) */
    printf("%d passed, %d failed\n", checks - failures, failures);
    mproc_mpi_finalize();
    return failures ? 1 : 0;
  }
  if (argc > 1 && strcmp(argv[1], "--mismatch") == 0) {
    mproc_pool *p = NULL;
    int rc = make_pool(&p, mpi);
    printf("pool_create over MPI: %d (%s)\n", rc, rc ? mproc_last_error() : "created");
    mproc_pool_destroy(p);
    mproc_mpi_finalize();
    return mpi && rc == MPROC_EINVAL && strstr(mproc_last_error(), "rank 1 runs a different program") ? 0 : 1;
  }
  outcome local, remote;
  memset(&local, 0, sizeof local);
  mproc_pool *p = NULL;
  CHECK(make_pool(&p, false) == 0, "local pool");
  if (p) run_pool(p, false, &local);
  mproc_pool_destroy(p);
  for (int round = 0; round < 2; ++round) { /* two pools in a row */
    memset(&remote, 0, sizeof remote);
    p = NULL;
    CHECK(make_pool(&p, mpi) == 0, "pool %d", round);
    if (!p) break;
    CHECK(mproc_pool_size(p) == (mpi ? (size_t)mproc_mpi_size() - 1 : 2), "size %zu", mproc_pool_size(p));
    run_pool(p, mpi, &remote);
    CHECK(memcmp(&local, &remote, sizeof local) == 0, "round %d: the results differ from the local pool's", round);
    if (round == 0) {
      run_big(p);
      CHECK(mproc_pool_close(p) == 0 && mproc_pool_join(p, MPROC_INFINITE) == 0, "close, join");
    } else {
      run_terminate(p);
    }
    mproc_pool_destroy(p);
  }
  run_overlap(mpi);
  run_held(mpi, 50000); /* (past the 32 KiB that shared memory sends at once when it cannot copy) */
  /* a pool right after a terminated one still works */
  p = NULL;
  CHECK(make_pool(&p, mpi) == 0, "pool after terminate");
  if (p) {
    void *out = NULL;
    size_t olen = 0;
    int64_t x = 9, y = 0;
    CHECK(mproc_pool_apply(p, square, &x, 8, MPROC_INFINITE, &out, &olen) == 0 && olen == 8, "apply");
    if (out) memcpy(&y, out, 8);
    CHECK(y == 81, "apply after terminate: %lld", (long long)y);
    mproc_free(out);
    mproc_pool_destroy(p);
  }
  if (parts && mpi) /* (the messages longer than a part went as their length and a body) */
    CHECK(mproc__mpi_long_messages() > 0, "no message went in parts");
  printf("%d passed, %d failed\n", checks - failures, failures);
  mproc_mpi_finalize();
  return failures ? 1 : 0;
}
