/* Benchmark area "process": children running a function, and connections between processes, mproc
 * beside the raw POSIX calls and CPython's multiprocessing (bench/py/bench_process.py).
 *
 *   process.child.fork.<placement>        start a child that pins itself, join it | fork, pin, _exit, waitpid
 *   process.child.spawn.<placement>       the same with the spawn method          | posix_spawn of this program
 *                                                                                   (pins, exits in main) + waitpid
 *   process.child.forkserver.<placement>  the same with the forkserver method     | fork, pin, _exit, waitpid
 *                                         (the server is started before timing, on the parent's CPU)
 *   process.pingpong.conn.<placement>  1-byte round trip over a Pipe   | two raw pipes, 1-byte write/read
 *   process.bw.conn.1m.<placement>     1 MiB messages one way, then a 1-byte acknowledgement, GB/s:
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
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#define HAVE_SHM_RING 1
#endif

#include "bench.h"
#include "mproc.h"

extern char **environ;

#define RAW_CHILD_FLAG "--bench-raw-child"
#define MSG_1M (1u << 20)

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

typedef struct shm_ring shm_ring;

typedef struct pair_ctx {
  bench_placement placement;
  mproc_connection *mine;   /* mproc: our end */
  int to_child, from_child; /* c-raw, c-raw-pipe: our fds (a socket pair: the same fd twice) */
  shm_ring *ring;           /* c-shm */
  char *buf;
} pair_ctx;

/* mproc child: echo every message back (ping-pong), or acknowledge each batch of 1 MiB messages (bw). */
static int echo_child(const mproc_args *a) {
  bench_pin_side(*(const bench_placement *)a->data, 1);
  bench_conn_echo(a->connections[0]);
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

static void pingpong_mproc(void *vctx, int64_t iters) { bench_conn_pingpong(((pair_ctx *)vctx)->mine, iters); }

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

/* Read exactly n bytes. On a socket MSG_WAITALL makes that one call per message while the sender
 * keeps up; on a pipe a loop of reads. */
static int read_full(int fd, char *p, size_t n, bool sock) {
  while (n) {
    ssize_t r = sock ? recv(fd, p, n, MSG_WAITALL) : read(fd, p, n);
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
    if (write(c->to_child, &b, 1) != 1 || read_full(c->from_child, &b, 1, false) != 0) exit(1);
}

/* c-raw and c-raw-pipe: announce the batch (an 8-byte count), write `iters` 1 MiB messages, wait for the
 * child's 1-byte acknowledgement. */
static void bw_raw(void *vctx, int64_t iters) {
  pair_ctx *c = (pair_ctx *)vctx;
  if (write(c->to_child, &iters, sizeof iters) != (ssize_t)sizeof iters) exit(1);
  for (int64_t i = 0; i < iters; i++) {
    size_t off = 0;
    while (off < MSG_1M) {
      ssize_t w = write(c->to_child, c->buf + off, MSG_1M - off);
      if (w <= 0) exit(1);
      off += (size_t)w;
    }
  }
  char b;
  if (read_full(c->from_child, &b, 1, false) != 0) exit(1); /* the child has read everything */
}

/* The raw child: ping-pong echoes bytes; bw reads `count` MiB per batch announced as an 8-byte count. */
static void raw_child(int in, int out, bool bw, bool sock) {
  char *buf = malloc(MSG_1M);
  if (!bw) {
    char b;
    while (read_full(in, &b, 1, sock) == 0)
      if (write(out, &b, 1) != 1) break;
  } else {
    int64_t count;
    while (read_full(in, (char *)&count, sizeof count, sock) == 0) {
      for (int64_t i = 0; i < count; i++)
        if (read_full(in, buf, MSG_1M, sock) != 0) _exit(1);
      if (write(out, "k", 1) != 1) break;
    }
  }
  free(buf);
  _exit(0);
}

typedef enum raw_channel {
  RAW_PIPES,    /* two pipes of the default size (ping-pong) */
  RAW_PIPES_1M, /* two pipes, the data one grown to 1 MiB (F_SETPIPE_SZ) */
  RAW_SOCKET    /* a Unix stream socket pair, 1 MiB SO_SNDBUF and SO_RCVBUF on both ends (mproc's bulk channel) */
} raw_channel;

/* One raw implementation of a pair line: the channel, a forked child that pins itself, the measurement. */
static int run_raw(bench_spec spec, const char *impl, raw_channel ch, bool bw, bench_fn fn, pair_ctx *c) {
  if (!bench_wanted(spec.name)) return 0;
  int down[2], up[2]; /* [0] read end, [1] write end; a socket pair: down[1] = up[0] = ours */
  if (ch == RAW_SOCKET) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
    int sz = 1 << 20;
    for (int i = 0; i < 2; ++i) {
      (void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
      (void)setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    }
    down[1] = up[0] = sv[0];
    down[0] = up[1] = sv[1];
  } else {
    if (pipe(down) || pipe(up)) return 1;
#ifdef F_SETPIPE_SZ
    if (ch == RAW_PIPES_1M) (void)fcntl(down[1], F_SETPIPE_SZ, 1 << 20);
#endif
  }
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    bench_pin_side(c->placement, 1);
    if (ch != RAW_SOCKET) {
      close(down[1]);
      close(up[0]);
    } else {
      close(down[1]);
    }
    raw_child(down[0], up[1], bw, ch == RAW_SOCKET);
  }
  if (ch == RAW_SOCKET) {
    close(down[0]);
  } else {
    close(down[0]);
    close(up[1]);
  }
  c->to_child = down[1];
  c->from_child = up[0];
  spec.impl = impl;
  int rc = bench_run(&spec, fn, c) < 0;
  close(down[1]); /* EOF: the child leaves */
  if (ch != RAW_SOCKET) close(up[0]);
  waitpid(pid, NULL, 0);
  return rc;
}

/* ---- c-shm: the physical ceiling of bw, two processes copying through shared memory ----------
 * A single-producer single-consumer ring of 4 MiB in a memfd mapped by both (MAP_SHARED, inherited
 * by fork), cut into SHM_SLOTS slots of SHM_SLOT bytes (4 of 1 MiB: one message per slot, so the
 * receiver copies a message out while the sender copies the next ones in). Sending is one memcpy
 * into the slots, receiving one memcpy out of them into the receiver's own buffer: the two copies a
 * socket pair makes too, without the kernel.
 * Wake-ups are futexes on the ring's counters (FUTEX_WAIT / FUTEX_WAKE, shared), with no spinning:
 * a side that finds nothing to do announces that it sleeps (a waiter flag) and the other side makes
 * the wake call only then. The protocol is bw's: N messages, a 1-byte message, a 1-byte
 * acknowledgement (the `acks` counter); a 0-byte message stops the child. */
#ifdef HAVE_SHM_RING
#ifndef SHM_SLOT
/* Bytes per slot; a longer message fills several. 1 MiB (one message per slot) measured best on one
 * CPU here and no worse across two than 256 KiB or 64 KiB; -DSHM_SLOT=... to try others. */
#define SHM_SLOT (1024u * 1024)
#endif
#define SHM_SLOTS ((4u << 20) / SHM_SLOT) /* a 4 MiB ring */
#define SHM_HDR 4096u
#define SHM_LAST 0x80000000u /* in len[]: the message's last chunk */

struct shm_ring {
  _Atomic uint32_t head; /* chunks published (producer) */
  char pad0[60];
  _Atomic uint32_t tail; /* chunks consumed (consumer) */
  char pad1[60];
  _Atomic uint32_t acks; /* batches acknowledged (consumer) */
  char pad2[60];
  _Atomic uint32_t head_waiter, tail_waiter, acks_waiter; /* 1: the one side that waits on it sleeps */
  uint32_t len[SHM_SLOTS];
};

static char *shm_slot(shm_ring *r, uint32_t i) { return (char *)r + SHM_HDR + (size_t)(i % SHM_SLOTS) * SHM_SLOT; }

/* Sleep until *word is no longer `seen` (one side only waits on each word). */
static void shm_wait(_Atomic uint32_t *word, uint32_t seen, _Atomic uint32_t *waiter) {
  while (atomic_load(word) == seen) {
    atomic_store(waiter, 1);
    if (atomic_load(word) != seen) break; /* the poster may have missed the flag: no wake needed */
    syscall(SYS_futex, (void *)word, FUTEX_WAIT, seen, NULL, NULL, 0);
  }
  atomic_store_explicit(waiter, 0, memory_order_relaxed); /* awake: no wake call for the next post */
}

/* Advance *word; wake its sleeper if one announced itself. */
static void shm_post(_Atomic uint32_t *word, _Atomic uint32_t *waiter) {
  atomic_fetch_add(word, 1);
  if (atomic_load(waiter) && atomic_exchange(waiter, 0)) syscall(SYS_futex, (void *)word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void shm_send(shm_ring *r, const char *p, uint32_t n) {
  uint32_t off = 0;
  do {
    uint32_t chunk = n - off < SHM_SLOT ? n - off : SHM_SLOT;
    uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed), t;
    while (h - (t = atomic_load(&r->tail)) >= SHM_SLOTS) shm_wait(&r->tail, t, &r->tail_waiter);
    memcpy(shm_slot(r, h), p + off, chunk);
    off += chunk;
    r->len[h % SHM_SLOTS] = chunk | (off == n ? SHM_LAST : 0);
    shm_post(&r->head, &r->head_waiter);
  } while (off < n);
}

static uint32_t shm_recv(shm_ring *r, char *p) {
  uint32_t got = 0, l;
  do {
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    shm_wait(&r->head, t, &r->head_waiter);
    l = r->len[t % SHM_SLOTS];
    memcpy(p + got, shm_slot(r, t), l & ~SHM_LAST);
    got += l & ~SHM_LAST;
    shm_post(&r->tail, &r->tail_waiter);
  } while (!(l & SHM_LAST));
  return got;
}

static void bw_shm(void *vctx, int64_t iters) {
  pair_ctx *c = (pair_ctx *)vctx;
  for (int64_t i = 0; i < iters; i++) shm_send(c->ring, c->buf, MSG_1M);
  uint32_t acks = atomic_load(&c->ring->acks);
  shm_send(c->ring, "e", 1);
  shm_wait(&c->ring->acks, acks, &c->ring->acks_waiter);
}

static int run_shm(bench_spec spec, pair_ctx *c) {
  if (!bench_wanted(spec.name)) return 0;
  size_t size = SHM_HDR + (size_t)SHM_SLOTS * SHM_SLOT;
  int fd = memfd_create("mproc-bench-ring", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
    perror("bench_process: memfd");
    return 1;
  }
  void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (mem == MAP_FAILED) return 1;
  c->ring = (shm_ring *)mem;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    bench_pin_side(c->placement, 1);
    char *buf = malloc(MSG_1M);
    for (;;) {
      uint32_t n = shm_recv(c->ring, buf);
      if (n == 0) break;
      if (n == 1) shm_post(&c->ring->acks, &c->ring->acks_waiter);
    }
    _exit(0);
  }
  spec.impl = "c-shm";
  int rc = bench_run(&spec, bw_shm, c) < 0;
  shm_send(c->ring, "", 0); /* stop */
  waitpid(pid, NULL, 0);
  munmap(mem, size);
  c->ring = NULL;
  return rc;
}
#endif

static int run_pair(const char *what, bench_placement pl, int64_t iters, double bytes, const char *unit) {
  char name[96], prefix[64];
  snprintf(prefix, sizeof prefix, "process.%s", what);
  if (!bench_pair_begin(name, sizeof name, prefix, pl)) return 0;
  bool bw = strcmp(what, "pingpong.conn") != 0;
  int rc = 0;
  pair_ctx c = {pl, NULL, -1, -1, NULL, malloc(MSG_1M)};
  if (c.buf == NULL) return 1;
  /* Real pages: an untouched calloc'ed buffer reads as the kernel's one zero page, always in cache,
   * which flatters every sender (most of all c-shm's memcpy). */
  memset(c.buf, 'x', MSG_1M);
  bench_spec spec = {
      .name = name, .impl = "mproc", .unit = unit, .iters = iters, .smoke_iters = bw ? 4 : 100, .bytes_per_op = bytes};
  /* mproc: a Pipe and a fork child */
  mproc_connection *a, *b;
  mproc_process *p;
  if (mproc_pipe(true, &a, &b) != 0) return 1;
  mproc_connection *conns[] = {b};
  if (mproc_process_create(&p, &(mproc_process_opts){.target = bw ? sink_child : echo_child,
                                                     .arg = &pl,
                                                     .arg_size = sizeof pl,
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
    rc |= run_raw(spec, "c-raw", RAW_PIPES, false, pingpong_raw, &c);
  } else {
    rc |= run_raw(spec, "c-raw", RAW_SOCKET, true, bw_raw, &c);
    rc |= run_raw(spec, "c-raw-pipe", RAW_PIPES_1M, true, bw_raw, &c);
#ifdef HAVE_SHM_RING
    rc |= run_shm(spec, &c);
#endif
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

  for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) {
    rc |= run_pair("pingpong.conn", (bench_placement)pl, 20000, 0, "us/op");
    rc |= run_pair("bw.conn.1m", (bench_placement)pl, 2000, (double)MSG_1M, "GB/s");
  }
  return rc;
}
