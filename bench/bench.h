/*
 * bench.h: the shared machinery of mproc's benchmarks (bench/<area>.c), see bench/README.md.
 *
 * A benchmark binary measures one area three ways in one run, mproc beside the raw OS primitive
 * ("c-raw") here and CPython in bench/py/<area>.py, and prints one line per result (DESIGN.md section 6):
 *
 *   name=<area>.<variant> impl=<impl> value=<median> unit=<unit> [op=<noun>] min=<v> max=<v> reps=<R>
 *
 * with unit one of ns/op, us/op (lower is better), ops/s, GB/s, MB/s (higher is better). impl is
 * mproc, c-raw (the strongest program an expert writes with the same OS facilities), python, or a
 * physical ceiling beyond c-raw under its own name (c-shm, c-robust, ...): see bench/README.md,
 * "House rules". op names the operation a rate counts (task, item, line): required with ops/s.
 * Lines starting with '#' are comments (notes, skipped variants); bench/report.py ignores them.
 *
 * Command line of every bench binary (parsed by bench_init):
 *   --smoke        tiny iteration and repetition counts: proves the benchmark runs, measures nothing
 *   --reps N       repetitions per result (default: the spec's, else 7)
 *   --filter S     only the results whose name contains S
 *
 * POSIX only (the numbers that matter are measured on Linux; CPU pinning is Linux only and a no-op
 * returning -1 elsewhere).
 */
#ifndef MPROC_BENCH_H
#define MPROC_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* Parse the command line (see above). Exits with status 2 on an unknown argument. */
void bench_init(int argc, char **argv);

/* 1 under --smoke. */
int bench_smoke(void);

/* 1 if a result with this name should run (no --filter, or the name contains it). */
int bench_wanted(const char *name);

/* Monotonic clock, nanoseconds. */
int64_t bench_now_ns(void);

/* Write results here to keep the compiler from optimising measured work away. */
extern volatile int64_t bench_sink;

/* Runs the measured operation `iters` times. */
typedef void (*bench_fn)(void *ctx, int64_t iters);

typedef struct bench_spec {
  const char *name;    /* "<area>.<variant>", e.g. "core.clock.monotonic" */
  const char *impl;    /* "mproc", "c-raw", or a ceiling such as "c-shm" */
  const char *unit;    /* "ns/op", "us/op", "ops/s", "GB/s" or "MB/s" */
  const char *op;      /* the operation counted, e.g. "line", "task": required for ops/s, else optional */
  int64_t iters;       /* operations per repetition in a full run */
  int64_t smoke_iters; /* ... under --smoke (0: iters / 1000, at least 1) */
  double bytes_per_op; /* for GB/s and MB/s: bytes moved by one operation */
  int reps;            /* repetitions (0: 7; --reps overrides; --smoke uses 2) */
} bench_spec;

/* Measure: one untimed warm-up call of fn(ctx, iters / 10 + 1), then `reps` timed calls of
 * fn(ctx, iters); convert each to the unit, print the result line. Returns 0, 1 if filtered out,
 * -1 on a bad spec (message on stderr). */
int bench_run(const bench_spec *spec, bench_fn fn, void *ctx);

/* How many repetitions a benchmark that times itself makes: --reps if given, else dflt (7 when 0); 2
 * under --smoke. */
int bench_reps(int dflt);

/* For benchmarks that time themselves (e.g. a child reports its own figures): print the result line
 * for `n` per-repetition values already in `unit`. Returns 0, -1 if n < 1. */
int bench_report(const char *name, const char *impl, const char *unit, const double *values, int n);

/* The same with the operation named (op=<noun> in the line; NULL: none). */
int bench_report_op(const char *name, const char *impl, const char *unit, const char *op, const double *values, int n);

/* Read exactly n bytes from fd (a control pipe between the sides of a benchmark), again after EINTR:
 * 0, or -1 at end of file or on an error. */
int bench_read_full(int fd, void *p, size_t n);

/* Statistics over n >= 1 values (the array is not modified). */
void bench_stats(const double *values, int n, double *median, double *min, double *max);

/* ---- CPU placement for two-process benchmarks ------------------------------------------------
 * On a 2-vCPU VM a two-process round trip lands on one CPU (context switches) or on two (hypervisor
 * wake-ups), and which one happens flips between runs (docs/performance-baseline.md). So every
 * implementation of a two-process benchmark is pinned the same way, and both placements are
 * measured: BENCH_SAME_CPU (parent and child on CPU 0), BENCH_CROSS_CPU (parent CPU 0, child CPU 1).
 * "CPU 0" and "CPU 1" are the first and second CPU of the affinity mask at bench_init. Every
 * implementation pays the same pinning calls: the parent pins itself once before timing; each child
 * pins itself with one sched_setaffinity call, in both placements (to CPU 0 too), before its work. */
typedef enum bench_placement { BENCH_SAME_CPU = 0, BENCH_CROSS_CPU = 1 } bench_placement;

/* "same-cpu" / "cross-cpu", for variant names such as "pingpong.1b.cross-cpu". */
const char *bench_placement_name(bench_placement p);

/* Number of CPUs this process may run on (its affinity mask at bench_init). */
int bench_cpus(void);

/* Pin the calling process (thread) to one CPU. Returns 0, or -1 if not possible (no such CPU,
 * not Linux). */
int bench_pin_cpu(int cpu);

/* Pin the calling side of a two-process benchmark: side 0 = parent, 1 = child. Returns 0, or -1 if
 * the placement is impossible here (cross-cpu with one CPU): skip the variant then. */
int bench_pin_side(bench_placement p, int side);

/* The CPU number side (0 = parent, 1 = child) runs on in placement p, or -1 if impossible here. A
 * child that does not share this process's memory (a fork server's child, a re-executed program) is
 * given this number and pins itself with bench_pin_cpu. */
int bench_side_cpu(bench_placement p, int side);

/* The start of a two-process line in placement p: writes its name, "<prefix>.<placement>", to name and
 * returns 1 with the parent pinned (side 0) if it is to run; 0 if --filter leaves it out or it cannot be
 * placed here (then it prints "# <name>: skipped, needs two CPUs"). */
int bench_pair_begin(char *name, size_t size, const char *prefix, bench_placement p);

/* Print the "# cpu map: ..." comment line: which CPU each side of each placement runs on. */
void bench_print_cpu_map(void);

/* Restore the affinity the process had at bench_init. */
void bench_unpin(void);

/* Path of a program that lives beside this benchmark binary (e.g. "mproc_helper", the scripted
 * child program of the tests, which bench/CMakeLists.txt builds into the same directory).
 * Writes it to buf and returns 0; -1 if it does not fit or the own path is unknown. */
int bench_sibling_path(const char *program, char *buf, size_t size);

/* ---- the pool lines' task -------------------------------------------------------------------------
 * The trivial task of bench/pool.c: 8 bytes in, 8 bytes out (the input plus one). It lives here, in
 * another translation unit, and every implementation calls it through a pointer (never inlined). */
uint64_t bench_trivial_task(uint64_t x);

/* ---- mproc connections: the ping-pong lines of several areas ---------------------------------- */
struct mproc_connection;
/* iters 1-byte round trips on c: send "x", receive the echo (exits the process on an error). */
void bench_conn_pingpong(struct mproc_connection *c, int64_t iters);
/* The other side: echo every message back, until an empty one, end of file or an error. */
void bench_conn_echo(struct mproc_connection *c);

#endif /* MPROC_BENCH_H */
