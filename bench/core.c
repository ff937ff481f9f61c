/* Benchmark area "core": the cheapest calls of mproc/core.h beside the system call they wrap.
 * Python side: bench/py/bench_core.py.
 *
 *   core.clock.monotonic  mproc_monotonic_ns()   vs clock_gettime(CLOCK_MONOTONIC)  vs time.monotonic_ns()
 *   core.getpid           mproc_getpid()         vs getpid()                        vs os.getpid()
 */
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

static inline int64_t raw_monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A measured loop: `expr` evaluated iters times, summed into bench_sink so it cannot be dropped. */
#define CORE_LOOP(fn, expr)                                     \
  static void fn(void *ctx, int64_t iters) {                    \
    (void)ctx;                                                  \
    int64_t acc = 0;                                            \
    for (int64_t i = 0; i < iters; i++) acc += (int64_t)(expr); \
    bench_sink = acc;                                           \
  }

CORE_LOOP(clock_mproc, mproc_monotonic_ns())
CORE_LOOP(clock_raw, raw_monotonic_ns())
CORE_LOOP(getpid_mproc, mproc_getpid())
CORE_LOOP(getpid_raw, getpid())

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  bench_init(argc, argv);
  int rc = 0;
  rc |= bench_run(&(bench_spec){.name = "core.clock.monotonic", .impl = "mproc", .unit = "ns/op", .iters = 5000000},
                  clock_mproc, NULL) < 0;
  rc |= bench_run(&(bench_spec){.name = "core.clock.monotonic", .impl = "c-raw", .unit = "ns/op", .iters = 5000000},
                  clock_raw, NULL) < 0;
  rc |= bench_run(&(bench_spec){.name = "core.getpid", .impl = "mproc", .unit = "ns/op", .iters = 5000000},
                  getpid_mproc, NULL) < 0;
  rc |= bench_run(&(bench_spec){.name = "core.getpid", .impl = "c-raw", .unit = "ns/op", .iters = 5000000}, getpid_raw,
                  NULL) < 0;
  return rc;
}
