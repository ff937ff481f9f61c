/* Benchmark area "process": children running a function, and connections between processes, mproc
 * beside the raw POSIX calls and CPython's multiprocessing (bench/py/bench_process.py).
 *
 *   process.child.fork        start a child running an empty function, join it  | fork + _exit + waitpid
 *   process.child.spawn       the same with the spawn method                    | posix_spawn of this program
 *                                                                                  (exits in main) + waitpid
 *   process.child.forkserver  the same with the forkserver method (the server   | fork + _exit + waitpid
 *                             is started before timing)
 *   process.pingpong.conn.<placement>  1-byte round trip over a Pipe            | two raw pipes, 1-byte write/read
 *   process.bw.conn.1m.<placement>     1 MiB messages, one way, GB/s            | a raw pipe, 1 MiB write/read
 * Two-process figures pin parent and child the same way for every implementation (same-cpu and
 * cross-cpu), as docs/performance-baseline.md explains.
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

extern char **environ;

#define RAW_CHILD_FLAG "--bench-raw-child"
#define MSG_1M (1u << 20)

static int noop(const mproc_args *a) {
  (void)a;
  return 0;
}

/* ---- starting children ---- */

typedef struct start_ctx {
  mproc_start_method method;
  char self[4096];
} start_ctx;

static void start_mproc(void *vctx, int64_t iters) {
  start_ctx *c = (start_ctx *)vctx;
  for (int64_t i = 0; i < iters; i++) {
    mproc_process *p;
    if (mproc_process_create(&p, &(mproc_process_opts){.target = noop, .start_method = c->method}) != 0 ||
        mproc_process_start(p) != 0 || mproc_process_join(p, MPROC_INFINITE) != 0) {
      fprintf(stderr, "start_mproc: %s\n", mproc_last_error());
      exit(1);
    }
    mproc_process_destroy(p);
  }
}

static void fork_raw(void *vctx, int64_t iters) {
  (void)vctx;
  for (int64_t i = 0; i < iters; i++) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
}

static void reexec_raw(void *vctx, int64_t iters) {
  start_ctx *c = (start_ctx *)vctx;
  static char flag[] = RAW_CHILD_FLAG;
  char *const argv[] = {c->self, flag, NULL};
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
  bench_placement placement;
  mproc_connection *mine;   /* mproc: our end */
  int to_child, from_child; /* c-raw: pipe fds */
  char *buf;
} pair_ctx;

/* mproc child: echo every message back (ping-pong), or acknowledge each batch of 1 MiB messages (bw). */
static int echo_child(const mproc_args *a) {
  bench_pin_side(*(const bench_placement *)a->data, 1);
  mproc_connection *c = a->connections[0];
  char b[8];
  size_t n;
  /* an empty message ends it: under fork the child also holds the parent's end, so no EOF comes */
  while (mproc_connection_recv_bytes_into(c, b, sizeof b, MPROC_INFINITE, &n) == 0 && n > 0)
    if (mproc_connection_send_bytes(c, b, n, 0, MPROC_ALL) != 0) break;
  return 0;
}

static int sink_child(const mproc_args *a) {
  bench_pin_side(*(const bench_placement *)a->data, 1);
  mproc_connection *c = a->connections[0];
  char *buf = malloc(MSG_1M);
  size_t n;
  for (;;) { /* a 1-byte message ends a batch: acknowledge it */
    if (mproc_connection_recv_bytes_into(c, buf, MSG_1M, MPROC_INFINITE, &n) != 0 || n == 0) break;
    if (n == 1 && mproc_connection_send_bytes(c, "k", 1, 0, 1) != 0) break;
  }
  free(buf);
  return 0;
}

static void pingpong_mproc(void *vctx, int64_t iters) {
  pair_ctx *c = (pair_ctx *)vctx;
  char b[8];
  size_t n;
  for (int64_t i = 0; i < iters; i++) {
    if (mproc_connection_send_bytes(c->mine, "x", 1, 0, 1) != 0 ||
        mproc_connection_recv_bytes_into(c->mine, b, sizeof b, MPROC_INFINITE, &n) != 0)
      exit(1);
  }
}

static void bw_mproc(void *vctx, int64_t iters) {
  pair_ctx *c = (pair_ctx *)vctx;
  char b[8];
  size_t n;
  for (int64_t i = 0; i < iters; i++)
    if (mproc_connection_send_bytes(c->mine, c->buf, MSG_1M, 0, MPROC_ALL) != 0) exit(1);
  if (mproc_connection_send_bytes(c->mine, "e", 1, 0, 1) != 0 ||
      mproc_connection_recv_bytes_into(c->mine, b, sizeof b, MPROC_INFINITE, &n) != 0)
    exit(1);
}

static int read_full(int fd, char *p, size_t n) {
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return -1;
    }
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static void pingpong_raw(void *vctx, int64_t iters) {
  pair_ctx *c = (pair_ctx *)vctx;
  char b = 'x';
  for (int64_t i = 0; i < iters; i++)
    if (write(c->to_child, &b, 1) != 1 || read_full(c->from_child, &b, 1) != 0) exit(1);
}

static void bw_raw(void *vctx, int64_t iters) {
  pair_ctx *c = (pair_ctx *)vctx;
  for (int64_t i = 0; i < iters; i++) {
    size_t off = 0;
    while (off < MSG_1M) {
      ssize_t w = write(c->to_child, c->buf + off, MSG_1M - off);
      if (w <= 0) exit(1);
      off += (size_t)w;
    }
  }
  char b;
  if (read_full(c->from_child, &b, 1) != 0) exit(1); /* the child has read everything */
}

/* The raw child: ping-pong echoes bytes; bw reads `iters` MiB per batch announced as a 8-byte count. */
static void raw_child(int in, int out, bool bw) {
  char *buf = malloc(MSG_1M);
  if (!bw) {
    char b;
    while (read_full(in, &b, 1) == 0)
      if (write(out, &b, 1) != 1) break;
  } else {
    int64_t count;
    while (read_full(in, (char *)&count, sizeof count) == 0) {
      for (int64_t i = 0; i < count; i++)
        if (read_full(in, buf, MSG_1M) != 0) _exit(1);
      if (write(out, "k", 1) != 1) break;
    }
  }
  free(buf);
  _exit(0);
}

static void bw_raw_counted(void *vctx, int64_t iters) {
  pair_ctx *c = (pair_ctx *)vctx;
  if (write(c->to_child, &iters, sizeof iters) != (ssize_t)sizeof iters) exit(1);
  bw_raw(vctx, iters);
}

static int run_pair(const char *what, bench_placement pl, int64_t iters, double bytes, const char *unit) {
  char name[96];
  snprintf(name, sizeof name, "process.%s.%s", what, bench_placement_name(pl));
  if (!bench_wanted(name)) return 0;
  if (bench_pin_side(pl, 0) != 0) {
    printf("# %s: skipped, needs two CPUs\n", name);
    return 0;
  }
  bool bw = strcmp(what, "pingpong.conn") != 0;
  int rc = 0;
  pair_ctx c = {pl, NULL, -1, -1, calloc(1, MSG_1M)};
  /* mproc: a Pipe and a fork child */
  mproc_connection *a, *b;
  mproc_process *p;
  if (mproc_pipe(true, &a, &b) != 0) return 1;
  mproc_connection *conns[] = {b};
  if (mproc_process_create(&p, &(mproc_process_opts){.target = bw ? sink_child : echo_child, .arg = &pl,
                                                     .arg_size = sizeof pl, .connections = conns,
                                                     .connection_count = 1, .start_method = MPROC_START_FORK}) != 0 ||
      mproc_process_start(p) != 0)
    return 1;
  c.mine = a;
  rc |= bench_run(&(bench_spec){.name = name, .impl = "mproc", .unit = unit, .iters = iters, .smoke_iters = bw ? 4 : 100,
                                .bytes_per_op = bytes},
                  bw ? bw_mproc : pingpong_mproc, &c) < 0;
  mproc_connection_send_bytes(a, "", 0, 0, 0); /* stop */
  mproc_process_join(p, MPROC_INFINITE);
  mproc_process_destroy(p);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
  /* c-raw: two pipes and a forked child */
  int down[2], up[2];
  if (pipe(down) || pipe(up)) return 1;
  pid_t pid = fork();
  if (pid == 0) {
    bench_pin_side(pl, 1);
    close(down[1]);
    close(up[0]);
    raw_child(down[0], up[1], bw);
  }
  close(down[0]);
  close(up[1]);
  c.to_child = down[1];
  c.from_child = up[0];
  rc |= bench_run(&(bench_spec){.name = name, .impl = "c-raw", .unit = unit, .iters = iters, .smoke_iters = bw ? 4 : 100,
                                .bytes_per_op = bytes},
                  bw ? bw_raw_counted : pingpong_raw, &c) < 0;
  close(down[1]);
  close(up[0]);
  waitpid(pid, NULL, 0);
  free(c.buf);
  bench_unpin();
  return rc;
}

/* A child running an empty function, started by `method`, beside `raw`. */
static int run_child(const char *name, mproc_start_method method, int64_t iters, bench_fn raw, start_ctx *sc) {
  sc->method = method;
  int rc = bench_run(&(bench_spec){.name = name, .impl = "mproc", .unit = "us/op", .iters = iters, .smoke_iters = 3},
                     start_mproc, sc) < 0;
  rc |= bench_run(&(bench_spec){.name = name, .impl = "c-raw", .unit = "us/op", .iters = iters, .smoke_iters = 3}, raw,
                  sc) < 0;
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], RAW_CHILD_FLAG) == 0) return 0; /* the raw re-exec: as little as possible */
  mproc_main_guard(argc, argv);
  bench_init(argc, argv);
  int rc = 0;
  start_ctx sc = {MPROC_START_FORK, ""};
  char *self = NULL;
  if (mproc_self_exe(&self) != 0) return 1;
  snprintf(sc.self, sizeof sc.self, "%s", self);
  mproc_free(self);

  rc |= run_child("process.child.fork", MPROC_START_FORK, 300, fork_raw, &sc);
  rc |= run_child("process.child.spawn", MPROC_START_SPAWN, 200, reexec_raw, &sc);
  /* the fork server starts on the first start, in bench_run's warm-up: not part of the figure */
  rc |= run_child("process.child.forkserver", MPROC_START_FORKSERVER, 300, fork_raw, &sc);

  for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) {
    rc |= run_pair("pingpong.conn", (bench_placement)pl, 20000, 0, "us/op");
    rc |= run_pair("bw.conn.1m", (bench_placement)pl, 2000, (double)MSG_1M, "GB/s");
  }
  return rc;
}
