/* Seed notes (from Fluent Python, 2nd ed., ch. 19): check numbers for primality in one process per
 * CPU, with a SimpleQueue of jobs and a SimpleQueue of results:
 *   def worker(jobs, results):
 *       while n := jobs.get(): results.put(check(n))      # 0: the sentinel, stop
 *       results.put(PrimeResult(0, False, 0.0))            # this worker is done
 *   for n in NUMBERS: jobs.put(n)
 *   for _ in range(procs): Process(target=worker, args=(jobs, results)).start(); jobs.put(0)
 *   report: results.get() until every worker has sent its 0; print n, 'P' if prime, elapsed
 * In C an item is bytes: a job is a uint64_t and a result a struct, each got into a variable of its
 * type (mproc_queue_get_into: nothing allocated). The sentinels stay as in Python, whose SimpleQueue
 * has only put, get, empty and close (mproc_queue_shutdown would end the workers too: see
 * queue_joinable.c). Usage: example_queue_simple_primes [PROCESSES] (default: one per CPU). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

static const struct {
  uint64_t n;
  int prime;
} fixture[] = {
    {2, 1},
    {142702110479723, 1},
    {299593572317531, 1},
    {3333333333333301, 1},
    {3333333333333333, 0},
    {3333335652092209, 0},
    {4444444444444423, 1},
    {4444444444444444, 0},
    {4444444488888889, 0},
    {5555553133149889, 0},
    {5555555555555503, 1},
    {5555555555555555, 0},
    {6666666666666666, 0},
    {6666666666666719, 1},
    {6666667141414921, 0},
    {7777777536340681, 0},
    {7777777777777753, 1},
    {7777777777777777, 0},
    {9999999999999917, 1},
    {9999999999999999, 0},
};
#define NUMBERS (sizeof fixture / sizeof fixture[0])

typedef struct prime_result {
  uint64_t n; /* 0: a worker is done */
  int32_t prime;
  int32_t reserved;
  double elapsed; /* seconds */
} prime_result;

static int is_prime(uint64_t n) {
  if (n < 2) return 0;
  if (n == 2) return 1;
  if (n % 2 == 0) return 0;
  for (uint64_t i = 3; i * i <= n; i += 2) /* n < 2^63: i * i does not overflow */
    if (n % i == 0) return 0;
  return 1;
}

static int worker(const mproc_args *a) {
  mproc_queue *jobs = (mproc_queue *)a->objects[0], *results = (mproc_queue *)a->objects[1];
  for (;;) {
    uint64_t n = 0;
    size_t len = 0;
    if (mproc_queue_get_into(jobs, &n, sizeof n, MPROC_INFINITE, &len) != 0 || len != sizeof n) return 1;
    prime_result r = {n, 0, 0, 0.0};
    if (n != 0) { /* check(n) */
      int64_t t0 = mproc_monotonic_ns();
      r.prime = is_prime(n);
      r.elapsed = (double)(mproc_monotonic_ns() - t0) / 1e9;
    }
    if (mproc_queue_put(results, &r, sizeof r, MPROC_INFINITE) != 0) return 1;
    if (n == 0) return 0;
  }
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  int procs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : mproc_cpu_count();
  if (procs < 1 || procs > 256) {
    fprintf(stderr, "usage: %s [PROCESSES (1-256)]\n", argv[0]);
    return 2;
  }
  printf("Checking %zu numbers with %d processes:\n", NUMBERS, procs);
  fflush(stdout);
  int64_t t0 = mproc_monotonic_ns();
  mproc_queue *jobs = NULL, *results = NULL;
  if (mproc_simple_queue_create(&jobs) != 0 || mproc_simple_queue_create(&results) != 0) {
    fprintf(stderr, "create: %s\n", mproc_last_error());
    return 1;
  }
  for (size_t i = 0; i < NUMBERS; ++i)
    if (mproc_queue_put(jobs, &fixture[i].n, sizeof fixture[i].n, MPROC_INFINITE) != 0) {
      fprintf(stderr, "put: %s\n", mproc_last_error());
      return 1;
    }
  mproc_object objs[] = {mproc_object_queue(jobs), mproc_object_queue(results)};
  mproc_process **ps = calloc((size_t)procs, sizeof *ps);
  if (!ps) return 1;
  for (int i = 0; i < procs; ++i) {
    uint64_t sentinel = 0;
    if (mproc_process_create(&ps[i], &(mproc_process_opts){.target = worker, .objects = objs, .object_count = 2}) !=
            0 ||
        mproc_process_start(ps[i]) != 0 || mproc_queue_put(jobs, &sentinel, sizeof sentinel, MPROC_INFINITE) != 0) {
      fprintf(stderr, "start: %s\n", mproc_last_error());
      return 1;
    }
  }

  /* report: a result per number, then a done (n == 0) per worker */
  int ok = 1, checked = 0, wrong = 0;
  for (int done = 0; done < procs;) {
    prime_result r;
    size_t len = 0;
    if (mproc_queue_get_into(results, &r, sizeof r, 50000, &len) != 0 || len != sizeof r) {
      fprintf(stderr, "results: %s\n", mproc_last_error());
      return 1;
    }
    if (r.n == 0) {
      ++done;
      continue;
    }
    ++checked;
    for (size_t i = 0; i < NUMBERS; ++i) wrong += fixture[i].n == r.n && fixture[i].prime != r.prime;
    printf("%16llu %c %9.6fs\n", (unsigned long long)r.n, r.prime ? 'P' : ' ', r.elapsed);
  }
  printf("%d checks in %.2fs\n", checked, (double)(mproc_monotonic_ns() - t0) / 1e9);
  ok &= checked == (int)NUMBERS && wrong == 0 && mproc_queue_empty(jobs) && mproc_queue_empty(results);
  for (int i = 0; i < procs; ++i) {
    int code = -1;
    ok &= mproc_process_join(ps[i], MPROC_INFINITE) == 0 && mproc_process_exitcode(ps[i], &code) && code == 0;
    mproc_process_destroy(ps[i]);
  }
  free(ps);
  mproc_queue_destroy(jobs);
  mproc_queue_destroy(results);
  return ok ? 0 : 1;
}
