/* The shared machinery of mproc's benchmarks: options, timing, statistics, the result line, CPU
 * placement. See bench.h. */
#include "bench.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"

volatile int64_t bench_sink;

static int g_smoke;
static int g_reps;
static const char *g_filter;
#if defined(__linux__)
static cpu_set_t g_initial_mask;
static int g_have_mask;
#endif

static void usage(const char *prog) {
  fprintf(stderr, "usage: %s [--smoke] [--reps N] [--filter SUBSTRING]\n", prog);
  exit(2);
}

void bench_init(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--smoke") == 0) {
      g_smoke = 1;
    } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      g_reps = atoi(argv[++i]);
      if (g_reps < 1) usage(argv[0]);
    } else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
      g_filter = argv[++i];
    } else {
      usage(argv[0]);
    }
  }
#if defined(__linux__)
  CPU_ZERO(&g_initial_mask);
  g_have_mask = sched_getaffinity(0, sizeof g_initial_mask, &g_initial_mask) == 0;
#endif
  /* results are read by a pipe; keep them in order with any child output */
  setvbuf(stdout, NULL, _IOLBF, 0);
}

int bench_smoke(void) { return g_smoke; }

int bench_reps(int dflt) { return g_smoke ? 2 : g_reps ? g_reps : dflt ? dflt : 7; }

int bench_wanted(const char *name) { return g_filter == NULL || strstr(name, g_filter) != NULL; }

int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void bench_stats(const double *values, int n, double *median, double *min, double *max) {
  double *s = malloc((size_t)n * sizeof *s);
  if (s == NULL) {
    *median = *min = *max = values[0];
    return;
  }
  memcpy(s, values, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, cmp_double);
  *median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  *min = s[0];
  *max = s[n - 1];
  free(s);
}

int bench_report_op(const char *name, const char *impl, const char *unit, const char *op, const double *values, int n) {
  if (n < 1) return -1;
  double med, lo, hi;
  bench_stats(values, n, &med, &lo, &hi);
  printf("name=%s impl=%s value=%.6g unit=%s%s%s min=%.6g max=%.6g reps=%d\n", name, impl, med, unit, op ? " op=" : "",
         op ? op : "", lo, hi, n);
  fflush(stdout);
  return 0;
}

int bench_report(const char *name, const char *impl, const char *unit, const double *values, int n) {
  return bench_report_op(name, impl, unit, NULL, values, n);
}

/* Convert one repetition (iters operations in ns nanoseconds) to the unit; -1 for an unknown unit. */
static double convert(const bench_spec *s, int64_t iters, int64_t ns) {
  double per_op_ns = (double)ns / (double)iters;
  double secs = (double)ns / 1e9;
  if (secs <= 0) secs = 1e-9;
  if (strcmp(s->unit, "ns/op") == 0) return per_op_ns;
  if (strcmp(s->unit, "us/op") == 0) return per_op_ns / 1e3;
  if (strcmp(s->unit, "ops/s") == 0) return (double)iters / secs;
  if (strcmp(s->unit, "GB/s") == 0) return s->bytes_per_op * (double)iters / secs / 1e9;
  if (strcmp(s->unit, "MB/s") == 0) return s->bytes_per_op * (double)iters / secs / 1e6;
  return -1;
}

int bench_run(const bench_spec *s, bench_fn fn, void *ctx) {
  if (!bench_wanted(s->name)) return 1;
  int need_op = strcmp(s->unit, "ops/s") == 0 && (s->op == NULL || s->op[0] == '\0');
  if (convert(s, 1, 1) < 0 || s->iters < 1 || need_op || (s->op && strpbrk(s->op, " \t\n="))) {
    fprintf(stderr, "bench: %s: bad spec (unit '%s', op '%s', iters %lld; ops/s needs an op, one word)\n", s->name,
            s->unit, s->op ? s->op : "", (long long)s->iters);
    return -1;
  }
  int64_t iters = s->iters;
  int reps = bench_reps(s->reps);
  if (g_smoke) {
    iters = s->smoke_iters ? s->smoke_iters : s->iters / 1000;
    if (iters < 1) iters = 1;
  }
  double *values = malloc((size_t)reps * sizeof *values);
  if (values == NULL) return -1;
  fn(ctx, iters / 10 + 1); /* warm-up: page in code and data, settle the CPU frequency */
  for (int r = 0; r < reps; r++) {
    int64_t t0 = bench_now_ns();
    fn(ctx, iters);
    int64_t t1 = bench_now_ns();
    values[r] = convert(s, iters, t1 - t0);
  }
  int rc = bench_report_op(s->name, s->impl, s->unit, s->op, values, reps);
  free(values);
  return rc;
}

const char *bench_placement_name(bench_placement p) { return p == BENCH_CROSS_CPU ? "cross-cpu" : "same-cpu"; }

int bench_cpus(void) {
#if defined(__linux__)
  if (g_have_mask) return CPU_COUNT(&g_initial_mask);
#endif
  return mproc_process_cpu_count();
}

/* The n-th CPU (0-based) of the initial affinity mask, or -1. */
static int nth_cpu(int n) {
#if defined(__linux__)
  if (!g_have_mask) return n;
  for (int c = 0; c < CPU_SETSIZE; c++) {
    if (CPU_ISSET(c, &g_initial_mask) && n-- == 0) return c;
  }
#else
  (void)n;
#endif
  return -1;
}

int bench_pin_cpu(int cpu) {
#if defined(__linux__)
  if (cpu < 0 || cpu >= CPU_SETSIZE) return -1;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : -1;
#else
  (void)cpu;
  return -1;
#endif
}

int bench_side_cpu(bench_placement p, int side) {
  if (p == BENCH_CROSS_CPU && bench_cpus() < 2) return -1;
  return nth_cpu(p == BENCH_CROSS_CPU && side == 1 ? 1 : 0);
}

int bench_pin_side(bench_placement p, int side) {
  int cpu = bench_side_cpu(p, side);
  return cpu < 0 ? -1 : bench_pin_cpu(cpu);
}

int bench_pair_begin(char *name, size_t size, const char *prefix, bench_placement p) {
  snprintf(name, size, "%s.%s", prefix, bench_placement_name(p));
  if (!bench_wanted(name)) return 0;
  if (bench_side_cpu(p, 1) < 0 || bench_pin_side(p, 0) != 0) {
    printf("# %s: skipped, needs two CPUs\n", name);
    return 0;
  }
  return 1;
}

void bench_print_cpu_map(void) {
  printf("# cpu map:");
  for (int p = BENCH_SAME_CPU; p <= BENCH_CROSS_CPU; ++p) {
    int parent = bench_side_cpu((bench_placement)p, 0), child = bench_side_cpu((bench_placement)p, 1);
    if (parent < 0 || child < 0)
      printf(" %s: impossible (%d CPU);", bench_placement_name((bench_placement)p), bench_cpus());
    else
      printf(" %s: parent CPU %d, child CPU %d;", bench_placement_name((bench_placement)p), parent, child);
  }
  printf(" a fork server runs on the parent's CPU; every child pins itself with one call\n");
  fflush(stdout);
}

void bench_unpin(void) {
#if defined(__linux__)
  if (g_have_mask) (void)sched_setaffinity(0, sizeof g_initial_mask, &g_initial_mask);
#endif
}

int bench_sibling_path(const char *program, char *buf, size_t size) {
  char *self = NULL;
  if (mproc_self_exe(&self) != 0) return -1;
  char *slash = strrchr(self, '/');
  size_t dirlen = slash ? (size_t)(slash - self) : 0;
  int n = snprintf(buf, size, "%.*s/%s", (int)dirlen, self, program);
  mproc_free(self);
  return n > 0 && (size_t)n < size ? 0 : -1;
}

int bench_read_full(int fd, void *p, size_t n) {
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return -1;
    }
    p = (char *)p + r;
    n -= (size_t)r;
  }
  return 0;
}

/* ---- mproc connections ------------------------------------------------------------------------ */

void bench_conn_pingpong(struct mproc_connection *c, int64_t iters) {
  char b[8];
  size_t n;
  for (int64_t i = 0; i < iters; i++)
    if (mproc_connection_send_bytes(c, "x", 1, 0, 1) != 0 ||
        mproc_connection_recv_bytes_into(c, b, sizeof b, MPROC_INFINITE, &n) != 0)
      exit(1);
}

void bench_conn_echo(struct mproc_connection *c) {
  char b[8];
  size_t n;
  /* an empty message ends it: under fork a child also holds the parent's end, so no end of file comes */
  while (mproc_connection_recv_bytes_into(c, b, sizeof b, MPROC_INFINITE, &n) == 0 && n > 0)
    if (mproc_connection_send_bytes(c, b, n, 0, MPROC_ALL) != 0) break;
}

uint64_t bench_trivial_task(uint64_t x) { return x + 1; }
