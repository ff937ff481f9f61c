/* Benchmark area "pool": a pool of 2 worker processes running a trivial task, mproc's Pool beside the raw C
 * program an expert writes for the same job and CPython's multiprocessing.Pool (bench/py/bench_pool.py).
 *
 *   pool.map.c1.bytes.<placement>       map over 100,000 items of 8 bytes, chunksize 1; op = one item
 *   pool.map.default.bytes.<placement>  the same with the default chunksize (about 4 chunks per worker:
 *                                       12,500 items); op = one item
 *   pool.apply_async.<placement>        20,000 apply_async calls, one task each, then every result got;
 *                                       op = one task
 *   pool.create_join.fork.<placement>   create a pool of 2 workers (fork), run one task on each, close, join;
 *   pool.create_join.spawn.<placement>  op = the whole; the same with spawn
 *   pool.map.c1.array.<placement>       map over an array of 100,000 records of 8 bytes into an array of
 *   pool.map.default.array.<placement>  100,000 records, chunksize 1 / the default; op = one item (mproc:
 *                                       mproc_pool_map_array_chunks, whose function loops over its chunk's
 *                                       records as c-raw's worker does, with the inputs and outputs in
 *                                       blocks of mproc_pool_array_alloc, filled once, as c-raw's mapping:
 *                                       nothing copied; MPROC_BENCH_ARRAY_COPY=1 maps from and to the heap
 *                                       instead, the inputs and outputs then copied once each per map;
 *                                       the variant .record-fn, mproc only: mproc_pool_map_array on the same
 *                                       pool and arrays, a function per record, which calls the task: two
 *                                       indirect calls a record)
 *
 * The task: bench_trivial_task (bench.c: 8 bytes in, the input plus one out), called through a pointer in
 * every implementation (python: a module-level function doing the same on 8-byte bytes). Every output is
 * checked.
 *
 * c-raw (bytes lines and apply_async): WORKERS fork children, each fed through a pipe of its own, results
 * back on another. A record is [u64 index][u64 len][len bytes] both ways. The parent keeps a window of
 * items in flight per worker (RAW_WINDOW for chunksize 1 and apply_async; two chunks of the chunksize for
 * the default), writes whole windows with non-blocking writes, and waits in poll() on every pipe; it
 * reads every result a pipe holds in one read (64 KiB). A worker reads every record its pipe holds in one
 * read, runs them, and writes all their results in one write. So a system call carries many records
 * whenever there are many: the best a program can do on these channels without giving up per-item
 * dispatch. The results land in one preallocated array.
 * c-raw (array lines): the input and output arrays and a counter in one MAP_SHARED mapping, made once; the
 * workers (fork children) claim `chunksize` indices at a time from the counter (atomic fetch-and-add) and
 * write their outputs in place, so nothing is copied per task and there is no round trip per chunk. A
 * repetition: the parent resets the counter and writes a go byte to every worker's pipe; each worker
 * claims until the counter passes the end and answers with a done byte.
 * c-raw (create_join): fork (.fork) or posix_spawn of this program (.spawn) per worker; each child pins
 * itself, runs the task, writes its 8 bytes to a pipe, exits; the parent reads both and waits (waitpid).
 *
 * Placement (bench/README.md, house rule 5): the parent pins itself before timing; every worker pins
 * itself as its first work (mproc and python: the pool's initializer; c-raw: the child's first call), to
 * the parent's CPU in .same-cpu and to the other one in .cross-cpu (both workers there). mproc's result
 * thread is started by the pinned parent and runs on its CPU. The map and apply_async lines use the fork
 * start method for every implementation; the pool is created once, before timing. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
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

extern char **environ;

#define WORKERS 2
#define MAP_ITEMS 100000
#define APPLY_TASKS 20000
#define RAW_WINDOW 64 /* c-raw, chunksize 1: items in flight per worker */
#define REC 24        /* c-raw record of an 8-byte item: index, length, bytes */
#define RAW_BUF 65536
#define RAW_TASK_FLAG "--bench-raw-task"

static uint64_t (*volatile trivial)(uint64_t) = bench_trivial_task;

static uint64_t *g_x;       /* the inputs */
static mproc_bytes *g_in;   /* ... as mproc's */
static uint64_t *g_raw_out; /* c-raw's results */

static void die(const char *what) {
  fprintf(stderr, "bench_pool: %s: %s\n", what, mproc_last_error());
  exit(1);
}

/* ---- mproc ------------------------------------------------------------------------------------------ */

static int task_mproc(const void *in, size_t len, mproc_task *t) {
  uint64_t x;
  if (len != sizeof x) return 1;
  memcpy(&x, in, sizeof x);
  x = trivial(x);
  return mproc_task_return(t, &x, sizeof x);
}

/* Every worker's initializer: pin itself to the CPU it is given (one call). */
static void pin_init(const void *arg, size_t size) {
  int cpu = 0;
  if (size == sizeof cpu) memcpy(&cpu, arg, sizeof cpu);
  bench_pin_cpu(cpu);
}

typedef struct mproc_ctx {
  mproc_pool *pool;
  size_t chunk;
  mproc_start_method method; /* create_join */
  int cpu;                   /* the workers' */
  mproc_async_result **rs;   /* apply_async */
  uint64_t *in, *out;        /* the array lines' records */
  bool per_record;           /* the array lines: mproc_pool_map_array (else _chunks) */
} mproc_ctx;

static void check(uint64_t i, uint64_t y) {
  if (y != g_x[i] + 1) {
    fprintf(stderr, "bench_pool: item %llu: %llu, not %llu\n", (unsigned long long)i, (unsigned long long)y,
            (unsigned long long)(g_x[i] + 1));
    exit(1);
  }
}

static uint64_t item_u64(mproc_async_result *r, size_t i) {
  const void *d;
  size_t len;
  uint64_t y = 0;
  if (mproc_async_result_item(r, i, &d, &len) != 0 || len != sizeof y) die("an item");
  memcpy(&y, d, sizeof y);
  return y;
}

static int rec_mproc(const void *in, void *out, mproc_task *t) {
  (void)t;
  uint64_t x;
  memcpy(&x, in, sizeof x);
  x = trivial(x);
  memcpy(out, &x, sizeof x);
  return 0;
}

static int chunk_mproc(const void *in, void *out, size_t count, mproc_task *t) {
  (void)t;
  for (size_t i = 0; i < count; ++i) {
    uint64_t x;
    memcpy(&x, (const char *)in + i * sizeof x, sizeof x);
    x = trivial(x);
    memcpy((char *)out + i * sizeof x, &x, sizeof x);
  }
  return 0;
}

static void map_array_mproc(void *vctx, int64_t iters) {
  mproc_ctx *c = (mproc_ctx *)vctx;
  mproc_array_map m = {c->in, sizeof *c->in, c->out, sizeof *c->out, (size_t)iters};
  if ((c->per_record ? mproc_pool_map_array(c->pool, rec_mproc, &m, c->chunk, MPROC_INFINITE)
                     : mproc_pool_map_array_chunks(c->pool, chunk_mproc, &m, c->chunk, MPROC_INFINITE)) != 0)
    die("map_array");
  for (int64_t i = 0; i < iters; ++i) check((uint64_t)i, c->out[i]);
}

static void map_mproc(void *vctx, int64_t iters) {
  mproc_ctx *c = (mproc_ctx *)vctx;
  mproc_async_result *r = NULL;
  if (mproc_pool_map(c->pool, task_mproc, g_in, (size_t)iters, c->chunk, MPROC_INFINITE, &r) != 0) die("map");
  for (int64_t i = 0; i < iters; ++i) check((uint64_t)i, item_u64(r, (size_t)i));
  mproc_async_result_destroy(r);
}

static void apply_mproc(void *vctx, int64_t iters) {
  mproc_ctx *c = (mproc_ctx *)vctx;
  for (int64_t i = 0; i < iters; ++i)
    if (mproc_pool_apply_async(c->pool, task_mproc, &g_x[i], sizeof g_x[i], NULL, &c->rs[i]) != 0) die("apply_async");
  for (int64_t i = 0; i < iters; ++i) {
    if (mproc_async_result_get(c->rs[i], MPROC_INFINITE) != 0) die("get");
    check((uint64_t)i, item_u64(c->rs[i], 0));
    mproc_async_result_destroy(c->rs[i]);
  }
}

static mproc_pool *new_pool(mproc_start_method method, int cpu) {
  mproc_pool *p = NULL;
  if (mproc_pool_create(&p, &(mproc_pool_opts){.processes = WORKERS,
                                               .initializer = pin_init,
                                               .initarg = &cpu,
                                               .initarg_size = sizeof cpu,
                                               .start_method = method}) != 0)
    die("pool_create");
  return p;
}

static void create_join_mproc(void *vctx, int64_t iters) {
  mproc_ctx *c = (mproc_ctx *)vctx;
  for (int64_t k = 0; k < iters; ++k) {
    mproc_pool *p = new_pool(c->method, c->cpu);
    mproc_async_result *r = NULL; /* 2 items, chunksize 1: one on each worker */
    if (mproc_pool_map(p, task_mproc, g_in, WORKERS, 1, MPROC_INFINITE, &r) != 0) die("map");
    for (size_t i = 0; i < WORKERS; ++i) check(i, item_u64(r, i));
    mproc_async_result_destroy(r);
    if (mproc_pool_close(p) != 0 || mproc_pool_join(p, MPROC_INFINITE) != 0) die("close/join");
    mproc_pool_destroy(p);
  }
}

/* ---- c-raw: forked workers, a pipe each way ------------------------------------------------------------ */

typedef struct raw_worker {
  pid_t pid;
  int to, from; /* the parent's ends */
  char *out;    /* records not written yet */
  size_t out_off, out_len, out_cap;
  char in[RAW_BUF]; /* results not parsed yet */
  size_t in_len;
  size_t inflight; /* items sent, result not read */
} raw_worker;

typedef struct raw_pool {
  raw_worker w[WORKERS];
  size_t window, chunk; /* items in flight per worker; items added at once */
} raw_pool;

static void write_full(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) _exit(3);
    p += k;
    n -= (size_t)k;
  }
}

/* A worker: every record its pipe holds, run, and all their results in one write. */
static void raw_worker_main(int in_fd, int out_fd, int cpu) {
  bench_pin_cpu(cpu);
  static char buf[RAW_BUF], out[RAW_BUF];
  size_t have = 0;
  for (;;) {
    ssize_t k = read(in_fd, buf + have, sizeof buf - have);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) _exit(0);
    have += (size_t)k;
    size_t at = 0, olen = 0;
    while (have - at >= 16) {
      uint64_t idx, len, x = 0;
      memcpy(&idx, buf + at, 8);
      memcpy(&len, buf + at + 8, 8);
      if (have - at < 16 + len) break;
      if (len == 8) memcpy(&x, buf + at + 16, 8);
      uint64_t y = trivial(x);
      if (olen + REC > sizeof out) {
        write_full(out_fd, out, olen);
        olen = 0;
      }
      uint64_t eight = 8;
      memcpy(out + olen, &idx, 8);
      memcpy(out + olen + 8, &eight, 8);
      memcpy(out + olen + 16, &y, 8);
      olen += REC;
      at += 16 + len;
    }
    memmove(buf, buf + at, have - at);
    have -= at;
    if (olen) write_full(out_fd, out, olen);
  }
}

static void raw_start(raw_pool *rp, int cpu, size_t window, size_t chunk) {
  memset(rp, 0, sizeof *rp);
  rp->window = window;
  rp->chunk = chunk;
  for (int i = 0; i < WORKERS; ++i) {
    int a[2], b[2];
    if (pipe(a) != 0 || pipe(b) != 0) exit(1);
    pid_t pid = fork();
    if (pid < 0) exit(1);
    if (pid == 0) {
      for (int j = 0; j < i; ++j) { /* the other workers' parent ends */
        close(rp->w[j].to);
        close(rp->w[j].from);
      }
      close(a[1]);
      close(b[0]);
      raw_worker_main(a[0], b[1], cpu);
    }
    close(a[0]);
    close(b[1]);
    raw_worker *w = &rp->w[i];
    w->pid = pid;
    w->to = a[1];
    w->from = b[0];
    fcntl(w->to, F_SETFL, fcntl(w->to, F_GETFL) | O_NONBLOCK);
    w->out_cap = (window + chunk) * REC;
    w->out = malloc(w->out_cap);
    if (!w->out) exit(1);
  }
}

static void raw_stop(raw_pool *rp) {
  for (int i = 0; i < WORKERS; ++i) {
    close(rp->w[i].to);
    close(rp->w[i].from);
    int st;
    while (waitpid(rp->w[i].pid, &st, 0) < 0 && errno == EINTR) {
    }
    free(rp->w[i].out);
  }
}

/* n items through the workers, every result checked. */
static void raw_run(raw_pool *rp, size_t n) {
  size_t next = 0, done = 0;
  while (done < n) {
    struct pollfd fds[2 * WORKERS];
    for (int i = 0; i < WORKERS; ++i) {
      raw_worker *w = &rp->w[i];
      while (next < n && w->inflight + rp->chunk <= rp->window) { /* top up its window */
        size_t k = n - next < rp->chunk ? n - next : rp->chunk;
        if (w->out_off) { /* keep what is not written yet at the front */
          memmove(w->out, w->out + w->out_off, w->out_len - w->out_off);
          w->out_len -= w->out_off;
          w->out_off = 0;
        }
        if (w->out_len + k * REC > w->out_cap) break;
        for (size_t j = 0; j < k; ++j, ++next) {
          char *r = w->out + w->out_len;
          uint64_t idx = next, eight = 8;
          memcpy(r, &idx, 8);
          memcpy(r + 8, &eight, 8);
          memcpy(r + 16, &g_x[next], 8);
          w->out_len += REC;
        }
        w->inflight += k;
      }
      if (w->out_off < w->out_len) { /* as much as the pipe takes */
        ssize_t k = write(w->to, w->out + w->out_off, w->out_len - w->out_off);
        if (k > 0) w->out_off += (size_t)k;
        if (k < 0 && errno != EAGAIN && errno != EINTR) exit(1);
      }
      fds[2 * i] = (struct pollfd){w->from, POLLIN, 0};
      fds[2 * i + 1] = (struct pollfd){w->out_off < w->out_len ? w->to : -1, POLLOUT, 0};
    }
    if (poll(fds, 2 * WORKERS, -1) < 0 && errno != EINTR) exit(1);
    for (int i = 0; i < WORKERS; ++i) {
      raw_worker *w = &rp->w[i];
      if (!(fds[2 * i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t k = read(w->from, w->in + w->in_len, sizeof w->in - w->in_len);
      if (k <= 0) {
        if (k < 0 && errno == EINTR) continue;
        fprintf(stderr, "bench_pool: c-raw: a worker ended\n");
        exit(1);
      }
      w->in_len += (size_t)k;
      size_t at = 0;
      for (; w->in_len - at >= REC; at += REC) {
        uint64_t idx, y;
        memcpy(&idx, w->in + at, 8);
        memcpy(&y, w->in + at + 16, 8);
        if (idx >= n) exit(1);
        check(idx, y);
        g_raw_out[idx] = y;
        --w->inflight;
        ++done;
      }
      memmove(w->in, w->in + at, w->in_len - at);
      w->in_len -= at;
    }
  }
}

static void map_raw(void *vctx, int64_t iters) { raw_run((raw_pool *)vctx, (size_t)iters); }

typedef struct raw_cj_ctx {
  int cpu;
  bool spawn;
  char self[4096];
} raw_cj_ctx;

static void create_join_raw(void *vctx, int64_t iters) {
  raw_cj_ctx *c = (raw_cj_ctx *)vctx;
  char cpu_arg[16], x_arg[32];
  snprintf(cpu_arg, sizeof cpu_arg, "%d", c->cpu);
  static char flag[] = RAW_TASK_FLAG;
  for (int64_t k = 0; k < iters; ++k) {
    int fds[2];
    if (pipe(fds) != 0) exit(1);
    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; ++i) {
      if (c->spawn) {
        snprintf(x_arg, sizeof x_arg, "%llu", (unsigned long long)g_x[i]);
        char *const argv[] = {c->self, flag, cpu_arg, x_arg, NULL};
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        posix_spawn_file_actions_addclose(&fa, fds[0]);
        if (posix_spawn(&pids[i], c->self, &fa, NULL, argv, environ) != 0) exit(1);
        posix_spawn_file_actions_destroy(&fa);
      } else if ((pids[i] = fork()) == 0) {
        bench_pin_cpu(c->cpu);
        uint64_t y = trivial(g_x[i]);
        write_full(fds[1], (const char *)&y, sizeof y);
        _exit(0);
      }
    }
    close(fds[1]);
    uint64_t ys[WORKERS];
    if (bench_read_full(fds[0], ys, sizeof ys) != 0) exit(1);
    close(fds[0]);
    for (int i = 0; i < WORKERS; ++i) { /* in the order the workers wrote them */
      check(ys[i] == g_x[0] + 1 ? 0 : 1, ys[i]);
      int st;
      while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR) {
      }
    }
  }
}

/* ---- c-raw of the array lines: indices claimed from a shared counter ---------------------------------------- */

typedef struct arr_shared {
  _Alignas(64) _Atomic uint64_t next; /* the next index to claim */
  _Alignas(64) uint64_t n, chunk;
  uint64_t in[MAP_ITEMS], out[MAP_ITEMS];
} arr_shared;

typedef struct arr_pool {
  arr_shared *sh;
  pid_t pid[WORKERS];
  int go[WORKERS], done[WORKERS]; /* the parent's ends */
} arr_pool;

static void arr_worker_main(arr_shared *sh, int go, int done, int cpu) {
  bench_pin_cpu(cpu);
  char b;
  while (bench_read_full(go, &b, 1) == 0) {
    uint64_t n = sh->n, chunk = sh->chunk;
    for (;;) {
      uint64_t s = atomic_fetch_add_explicit(&sh->next, chunk, memory_order_relaxed);
      if (s >= n) break;
      uint64_t e = n - s < chunk ? n : s + chunk;
      for (uint64_t i = s; i < e; ++i) sh->out[i] = trivial(sh->in[i]);
    }
    write_full(done, &b, 1); /* a pipe write orders the outputs before the parent's read */
  }
  _exit(0);
}

static void arr_start(arr_pool *ap, uint64_t chunk, int cpu) {
  ap->sh = mmap(NULL, sizeof *ap->sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (ap->sh == MAP_FAILED) exit(1);
  memcpy(ap->sh->in, g_x, sizeof ap->sh->in);
  ap->sh->chunk = chunk;
  for (int i = 0; i < WORKERS; ++i) {
    int a[2], b[2];
    if (pipe(a) != 0 || pipe(b) != 0) exit(1);
    if ((ap->pid[i] = fork()) == 0) {
      for (int j = 0; j < i; ++j) {
        close(ap->go[j]);
        close(ap->done[j]);
      }
      close(a[1]);
      close(b[0]);
      arr_worker_main(ap->sh, a[0], b[1], cpu);
    }
    close(a[0]);
    close(b[1]);
    ap->go[i] = a[1];
    ap->done[i] = b[0];
  }
}

static void arr_stop(arr_pool *ap) {
  for (int i = 0; i < WORKERS; ++i) {
    close(ap->go[i]);
    close(ap->done[i]);
    int st;
    while (waitpid(ap->pid[i], &st, 0) < 0 && errno == EINTR) {
    }
  }
  munmap(ap->sh, sizeof *ap->sh);
}

static void map_arr(void *vctx, int64_t iters) {
  arr_pool *ap = (arr_pool *)vctx;
  ap->sh->n = (uint64_t)iters;
  atomic_store(&ap->sh->next, 0);
  for (int i = 0; i < WORKERS; ++i) write_full(ap->go[i], "g", 1);
  for (int i = 0; i < WORKERS; ++i) {
    char b;
    if (bench_read_full(ap->done[i], &b, 1) != 0) exit(1);
  }
  for (int64_t i = 0; i < iters; ++i) check((uint64_t)i, ap->sh->out[i]);
}

static int run_array(const char *line, bench_placement pl, size_t chunk) {
  char name[96], prefix[64];
  snprintf(prefix, sizeof prefix, "pool.%s", line);
  if (!bench_pair_begin(name, sizeof name, prefix, pl)) return 0;
  bench_spec spec = {.name = name, .impl = "mproc", .unit = "ns/op", .iters = MAP_ITEMS, .smoke_iters = 100};
  int cpu = bench_side_cpu(pl, 1);
  mproc_ctx c = {new_pool(MPROC_START_FORK, cpu), chunk, MPROC_START_FORK, cpu, NULL, g_x, g_raw_out, false};
  const char *copy = getenv("MPROC_BENCH_ARRAY_COPY");
  void *in = NULL, *out = NULL;
  if (!(copy && *copy == '1')) {
    if (mproc_pool_array_alloc(c.pool, MAP_ITEMS * sizeof *g_x, &in) != 0 ||
        mproc_pool_array_alloc(c.pool, MAP_ITEMS * sizeof *g_x, &out) != 0)
      die("array_alloc");
    memcpy(in, g_x, MAP_ITEMS * sizeof *g_x);
    c.in = (uint64_t *)in;
    c.out = (uint64_t *)out;
  }
  int rc = bench_run(&spec, map_array_mproc, &c) < 0;
  char record_name[112]; /* the same map with a function per record: a variant of the line, mproc only */
  snprintf(record_name, sizeof record_name, "pool.%s.record-fn.%s", line, bench_placement_name(pl));
  if (bench_wanted(record_name)) {
    bench_spec rs = spec;
    rs.name = record_name;
    c.per_record = true;
    rc |= bench_run(&rs, map_array_mproc, &c) < 0;
  }
  mproc_pool_array_free(c.pool, in);
  mproc_pool_array_free(c.pool, out);
  if (mproc_pool_close(c.pool) != 0 || mproc_pool_join(c.pool, MPROC_INFINITE) != 0) die("close/join");
  mproc_pool_destroy(c.pool);
  spec.impl = "c-raw";
  size_t n = bench_smoke() ? (size_t)spec.smoke_iters : MAP_ITEMS;
  arr_pool ap;
  arr_start(&ap, chunk ? chunk : (n + WORKERS * 4 - 1) / (WORKERS * 4), cpu);
  rc |= bench_run(&spec, map_arr, &ap) < 0;
  arr_stop(&ap);
  bench_unpin();
  return rc;
}

/* ---- the lines -------------------------------------------------------------------------------------------- */

static int run_bytes(const char *line, bench_placement pl, size_t chunk, int64_t iters, bool apply) {
  char name[96], prefix[64];
  snprintf(prefix, sizeof prefix, "pool.%s", line);
  if (!bench_pair_begin(name, sizeof name, prefix, pl)) return 0;
  int cpu = bench_side_cpu(pl, 1), rc = 0;
  bench_spec spec = {.name = name, .impl = "mproc", .unit = "ns/op", .iters = iters, .smoke_iters = 100};
  mproc_ctx c = {new_pool(MPROC_START_FORK, cpu), chunk, MPROC_START_FORK, cpu, NULL, NULL, NULL, false};
  if (apply && !(c.rs = calloc((size_t)iters, sizeof *c.rs))) exit(1);
  rc |= bench_run(&spec, apply ? apply_mproc : map_mproc, &c) < 0;
  if (mproc_pool_close(c.pool) != 0 || mproc_pool_join(c.pool, MPROC_INFINITE) != 0) die("close/join");
  mproc_pool_destroy(c.pool);
  free(c.rs);
  /* c-raw: chunk 0 is the default: mproc's (and Python's) size, two chunks in flight per worker */
  size_t n = bench_smoke() ? (size_t)spec.smoke_iters : (size_t)iters;
  size_t raw_chunk = chunk ? chunk : (n + WORKERS * 4 - 1) / (WORKERS * 4);
  raw_pool rp;
  raw_start(&rp, cpu, chunk ? RAW_WINDOW : 2 * raw_chunk, raw_chunk);
  spec.impl = "c-raw";
  rc |= bench_run(&spec, map_raw, &rp) < 0;
  raw_stop(&rp);
  bench_unpin();
  return rc;
}

static int run_create_join(const char *what, mproc_start_method method, bench_placement pl, int64_t iters,
                           const char *self) {
  char name[96], prefix[64];
  snprintf(prefix, sizeof prefix, "pool.create_join.%s", what);
  if (!bench_pair_begin(name, sizeof name, prefix, pl)) return 0;
  int cpu = bench_side_cpu(pl, 1);
  bench_spec spec = {.name = name, .impl = "mproc", .unit = "us/op", .iters = iters, .smoke_iters = 2};
  mproc_ctx c = {NULL, 1, method, cpu, NULL, NULL, NULL, false};
  int rc = bench_run(&spec, create_join_mproc, &c) < 0;
  raw_cj_ctx rc_ctx = {cpu, method == MPROC_START_SPAWN, ""};
  snprintf(rc_ctx.self, sizeof rc_ctx.self, "%s", self);
  spec.impl = "c-raw";
  rc |= bench_run(&spec, create_join_raw, &rc_ctx) < 0;
  bench_unpin();
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], RAW_TASK_FLAG) == 0) { /* c-raw's spawned worker: pin, one task, exit */
    bench_pin_cpu(atoi(argv[2]));
    uint64_t y = trivial(strtoull(argv[3], NULL, 10));
    return write(1, &y, sizeof y) == (ssize_t)sizeof y ? 0 : 1;
  }
  mproc_main_guard(argc, argv);
  bench_init(argc, argv);
  bench_print_cpu_map();
  g_x = malloc(MAP_ITEMS * sizeof *g_x);
  g_in = malloc(MAP_ITEMS * sizeof *g_in);
  g_raw_out = malloc(MAP_ITEMS * sizeof *g_raw_out);
  if (!g_x || !g_in || !g_raw_out) return 1;
  for (size_t i = 0; i < MAP_ITEMS; ++i) {
    g_x[i] = i * 7919u + 3u;
    g_in[i] = (mproc_bytes){&g_x[i], sizeof g_x[i]};
  }
  char *self = NULL;
  if (mproc_self_exe(&self) != 0) return 1;
  int rc = 0;
  for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) {
    rc |= run_bytes("map.c1.bytes", (bench_placement)pl, 1, MAP_ITEMS, false);
    rc |= run_bytes("map.default.bytes", (bench_placement)pl, 0, MAP_ITEMS, false);
    rc |= run_bytes("apply_async", (bench_placement)pl, 1, APPLY_TASKS, true);
    rc |= run_create_join("fork", MPROC_START_FORK, (bench_placement)pl, 40, self);
    rc |= run_create_join("spawn", MPROC_START_SPAWN, (bench_placement)pl, 20, self);
    rc |= run_array("map.c1.array", (bench_placement)pl, 1);
    rc |= run_array("map.default.array", (bench_placement)pl, 0);
  }
  mproc_free(self);
  free(g_x);
  free(g_in);
  free(g_raw_out);
  return rc;
}
