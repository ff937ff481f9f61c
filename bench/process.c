/* Benchmark area "process": children running a function, and connections between processes, mproc
 * beside the raw POSIX calls and CPython's multiprocessing (bench/py/bench_process.py).
 *
 *   process.child.fork.<placement>        start a child that pins itself, join it | fork, pin, _exit, waitpid
 *   process.child.spawn.<placement>       the same with the spawn method          | posix_spawn of this program
 *                                                                                   (pins, exits in main) + waitpid
 *   process.child.forkserver.<placement>  the same with the forkserver method     | fork, pin, _exit, waitpid
 *                                         (the server is started before timing, on the parent's CPU)
 *   process.child.<method>.<rss256m|rss1g>.<placement>
 *                                         the same from a parent holding 256 MiB / 1 GiB of touched memory
 *   process.pingpong.conn.<placement>  1-byte round trip over a Pipe   | two raw pipes, 1-byte write/read
 *   process.bw.conn.<size>.<placement> messages of 4k, 64k, 1m or 16m bytes one way, then a 1-byte
 *                                      acknowledgement, GB/s (the sweep the bandwidth chart draws):
 *                                      c-raw:      a socket pair with 1 MiB SO_SNDBUF/SO_RCVBUF (mproc's bulk
 *                                                  channel), 1 MiB writes, MSG_WAITALL reads
 *                                      c-raw-pipe: a pipe grown to 1 MiB, 1 MiB writes and reads
 *                                      c-shm:      the ceiling: a ring of 4 slots of 1 MiB in a shared memfd,
 *                                                  one memcpy in, one memcpy out, futex wake-ups
 * Every line has two processes, so every implementation is pinned the same way in both placements
 * (bench.h, docs/performance-baseline.md): the parent pins itself before timing, each child pins
 * itself with one call, to the CPU number it is given.
 */
#include <errno.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"
#include "rawpair.h"

extern char **environ;

#define RAW_CHILD_FLAG "--bench-raw-child"
#define MSG_1M BENCH_MSG_1M

/* The child's whole work: pin itself to the CPU it is given (one sched_setaffinity call). */
static int pin_target(const mproc_args *a) {
  int cpu;
  memcpy(&cpu, a->data, sizeof cpu);
  bench_pin_cpu(cpu);
  return 0;
}

/* ---- starting children ---- */

typedef struct start_ctx {
  mproc_start_method method;
  int child_cpu;
  char cpu_arg[16];
  char self[4096];
} start_ctx;

static void start_mproc(void *vctx, int64_t iters) {
  start_ctx *c = (start_ctx *)vctx;
  for (int64_t i = 0; i < iters; i++) {
    mproc_process *p;
    if (mproc_process_create(&p, &(mproc_process_opts){.target = pin_target,
                                                       .arg = &c->child_cpu,
                                                       .arg_size = sizeof c->child_cpu,
                                                       .start_method = c->method}) != 0 ||
        mproc_process_start(p) != 0 || mproc_process_join(p, MPROC_INFINITE) != 0) {
      fprintf(stderr, "start_mproc: %s\n", mproc_last_error());
      exit(1);
    }
    mproc_process_destroy(p);
  }
}

static void fork_raw(void *vctx, int64_t iters) {
  start_ctx *c = (start_ctx *)vctx;
  for (int64_t i = 0; i < iters; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      bench_pin_cpu(c->child_cpu);
      _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
}

static void reexec_raw(void *vctx, int64_t iters) {
  start_ctx *c = (start_ctx *)vctx;
  static char flag[] = RAW_CHILD_FLAG;
  char *const argv[] = {c->self, flag, c->cpu_arg, NULL};
  for (int64_t i = 0; i < iters; i++) {
    pid_t pid;
    if (posix_spawn(&pid, c->self, NULL, NULL, argv, environ) != 0) exit(1);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
}

/* ---- two-process exchanges ---- */

typedef struct pair_ctx {
  mproc_connection *mine; /* our end */
  char *buf;
  size_t msg; /* bw: the message size */
} pair_ctx;

/* mproc child: echo every message back (ping-pong), or acknowledge each batch of 1 MiB messages (bw). */
static int echo_child(const mproc_args *a) {
  bench_pin_side(*(const bench_placement *)a->data, 1);
  bench_conn_echo(a->connections[0]);
  return 0;
}

typedef struct pair_arg {
  bench_placement pl;
  size_t msg; /* bw: the message size */
} pair_arg;

static int sink_child(const mproc_args *a) {
  pair_arg arg;
  memcpy(&arg, a->data, sizeof arg);
  bench_pin_side(arg.pl, 1);
  mproc_connection *c = a->connections[0];
  char *buf = malloc(arg.msg);
  size_t n;
  for (;;) { /* a 1-byte message ends a batch: acknowledge it */
    if (mproc_connection_recv_bytes_into(c, buf, arg.msg, MPROC_INFINITE, &n) != 0 || n == 0) break;
    if (n == 1 && mproc_connection_send_bytes(c, "k", 1, 0, 1) != 0) break;
  }
  free(buf);
  return 0;
}

static void pingpong_mproc(void *vctx, int64_t iters) { bench_conn_pingpong(((pair_ctx *)vctx)->mine, iters); }

static void bw_mproc(void *vctx, int64_t iters) {
  pair_ctx *c = (pair_ctx *)vctx;
  char b[8];
  size_t n;
  for (int64_t i = 0; i < iters; i++)
    if (mproc_connection_send_bytes(c->mine, c->buf, c->msg, 0, MPROC_ALL) != 0) exit(1);
  if (mproc_connection_send_bytes(c->mine, "e", 1, 0, 1) != 0 ||
      mproc_connection_recv_bytes_into(c->mine, b, sizeof b, MPROC_INFINITE, &n) != 0)
    exit(1);
}

/* what: "pingpong.conn", or "bw.conn.<size>" with msg bytes per message. */
static int run_pair(const char *what, bench_placement pl, int64_t iters, size_t msg, const char *unit) {
  char name[96], prefix[64];
  snprintf(prefix, sizeof prefix, "process.%s", what);
  if (!bench_pair_begin(name, sizeof name, prefix, pl)) return 0;
  bool bw = strcmp(what, "pingpong.conn") != 0;
  int rc = 0;
  if (!bw) msg = 1;
  pair_ctx c = {NULL, malloc(msg), msg};
  if (c.buf == NULL) return 1;
  /* Real pages: an untouched calloc'ed buffer reads as the kernel's one zero page, always in cache,
   * which flatters every sender (most of all c-shm's memcpy). */
  memset(c.buf, 'x', msg);
  bench_spec spec = {.name = name,
                     .impl = "mproc",
                     .unit = unit,
                     .iters = iters,
                     .smoke_iters = bw ? 4 : 100,
                     .bytes_per_op = bw ? (double)msg : 0};
  pair_arg arg = {pl, msg};
  /* mproc: a Pipe and a fork child */
  mproc_connection *a, *b;
  mproc_process *p;
  if (mproc_pipe(true, &a, &b) != 0) return 1;
  mproc_connection *conns[] = {b};
  if (mproc_process_create(&p, &(mproc_process_opts){.target = bw ? sink_child : echo_child,
                                                     .arg = &arg,
                                                     .arg_size = sizeof arg,
                                                     .connections = conns,
                                                     .connection_count = 1,
                                                     .start_method = MPROC_START_FORK}) != 0 ||
      mproc_process_start(p) != 0)
    return 1;
  c.mine = a;
  rc |= bench_run(&spec, bw ? bw_mproc : pingpong_mproc, &c) < 0;
  mproc_connection_send_bytes(a, "", 0, 0, 0); /* stop */
  mproc_process_join(p, MPROC_INFINITE);
  mproc_process_destroy(p);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
  if (!bw) {
    spec.impl = "c-raw";
    rc |= bench_raw_pair(spec, pl, BENCH_RAW_PIPES, NULL, 0);
  } else {
    spec.impl = "c-raw";
    rc |= bench_raw_pair(spec, pl, BENCH_RAW_SOCKET, c.buf, msg);
    spec.impl = "c-raw-pipe";
    rc |= bench_raw_pair(spec, pl, BENCH_RAW_PIPES_1M, c.buf, msg);
    spec.impl = "c-shm";
    rc |= bench_shm_bw(spec, pl, c.buf, msg);
  }
  free(c.buf);
  bench_unpin();
  return rc;
}

/* A child pinning itself, started by `method`, beside `raw`, in placement pl. The parent stays pinned
 * afterwards: the fork server, started by the first forkserver start, inherits the parent's CPU. */
static int run_child(const char *what, mproc_start_method method, bench_placement pl, int64_t iters, bench_fn raw,
                     start_ctx *sc) {
  char name[96], prefix[64];
  snprintf(prefix, sizeof prefix, "process.child.%s", what);
  if (!bench_pair_begin(name, sizeof name, prefix, pl)) return 0;
  int cpu = bench_side_cpu(pl, 1);
  sc->method = method;
  sc->child_cpu = cpu;
  snprintf(sc->cpu_arg, sizeof sc->cpu_arg, "%d", cpu);
  int rc = bench_run(&(bench_spec){.name = name, .impl = "mproc", .unit = "us/op", .iters = iters, .smoke_iters = 3},
                     start_mproc, sc) < 0;
  rc |= bench_run(&(bench_spec){.name = name, .impl = "c-raw", .unit = "us/op", .iters = iters, .smoke_iters = 3}, raw,
                  sc) < 0;
  return rc;
}

/* The starts again from a parent holding 256 MiB, then 1 GiB, of touched memory (the lines above are
 * rss0): process.child.<method>.<rss256m|rss1g>.<placement>, fewer starts per repetition (a fork copies
 * the parent's page tables: milliseconds at 1 GiB). The memory is real pages, written once. */
static int starts_by_parent_size(start_ctx *sc) {
  static const struct {
    const char *tag;
    size_t bytes;
  } sizes[] = {{"rss256m", 256u << 20}, {"rss1g", 1u << 30}};
  static const struct {
    const char *method_name;
    mproc_start_method method;
    int64_t iters;
    bench_fn raw;
  } methods[] = {{"fork", MPROC_START_FORK, 100, fork_raw},
                 {"spawn", MPROC_START_SPAWN, 50, reexec_raw},
                 {"forkserver", MPROC_START_FORKSERVER, 100, fork_raw}};
  int rc = 0;
  char *mem = NULL;
  size_t have = 0;
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; ++k) {
    bool wanted = false;
    char what[64], name[96];
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; ++m)
      for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) {
        snprintf(name, sizeof name, "process.child.%s.%s.%s", methods[m].method_name, sizes[k].tag,
                 pl == BENCH_SAME_CPU ? "same-cpu" : "cross-cpu");
        wanted |= bench_wanted(name);
      }
    if (!wanted) continue;
    size_t bytes = bench_smoke() ? sizes[k].bytes / 16 : sizes[k].bytes;
    char *grown = realloc(mem, bytes);
    if (!grown) break;
    mem = grown;
    memset(mem + have, 1, bytes - have);
    have = bytes;
    for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl)
      for (size_t m = 0; m < sizeof methods / sizeof methods[0]; ++m) {
        snprintf(what, sizeof what, "%s.%s", methods[m].method_name, sizes[k].tag);
        rc |= run_child(what, methods[m].method, (bench_placement)pl, methods[m].iters, methods[m].raw, sc);
      }
    bench_unpin();
  }
  bench_sink += mem ? mem[have / 2] : 0;
  free(mem);
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], RAW_CHILD_FLAG) == 0) { /* the raw re-exec: as little as possible */
    if (argc >= 3) bench_pin_cpu(atoi(argv[2]));
    return 0;
  }
  mproc_main_guard(argc, argv);
  bench_init(argc, argv);
  bench_print_cpu_map();
  int rc = 0;
  start_ctx sc = {MPROC_START_FORK, 0, "0", ""};
  char *self = NULL;
  if (mproc_self_exe(&self) != 0) return 1;
  snprintf(sc.self, sizeof sc.self, "%s", self);
  mproc_free(self);

  for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) {
    rc |= run_child("fork", MPROC_START_FORK, (bench_placement)pl, 300, fork_raw, &sc);
    rc |= run_child("spawn", MPROC_START_SPAWN, (bench_placement)pl, 200, reexec_raw, &sc);
    /* the fork server starts on the first start, in bench_run's warm-up: not part of the figure */
    rc |= run_child("forkserver", MPROC_START_FORKSERVER, (bench_placement)pl, 300, fork_raw, &sc);
  }
  bench_unpin();
  rc |= starts_by_parent_size(&sc);

  for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) {
    rc |= run_pair("pingpong.conn", (bench_placement)pl, 20000, 0, "us/op");
    /* about 512 MiB a repetition, 2 GiB from 1 MiB up (the 1m line's count since it was set) */
    static const struct {
      const char *what;
      size_t msg;
      int64_t iters;
    } sweep[] = {{"bw.conn.4k", 4096, 131072},
                 {"bw.conn.64k", 64 << 10, 8192},
                 {"bw.conn.1m", MSG_1M, 2000},
                 {"bw.conn.16m", 16u << 20, 128}};
    for (size_t k = 0; k < sizeof sweep / sizeof sweep[0]; ++k)
      rc |= run_pair(sweep[k].what, (bench_placement)pl, sweep[k].iters, sweep[k].msg, "GB/s");
  }
  return rc;
}
