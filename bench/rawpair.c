/* The raw two-process exchanges of several areas: ping-pong over pipes, bulk messages over a socket
 * pair, a pipe or shared memory. See rawpair.h. */
#include "rawpair.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#define HAVE_SHM_RING 1
#endif

typedef struct shm_ring shm_ring;

typedef struct raw_ctx {
  int to_child, from_child; /* our fds (a socket pair: the same fd twice) */
  shm_ring *ring;           /* c-shm */
  const char *buf;          /* bw: the message sent */
  size_t msg;               /* bw: its size */
} raw_ctx;

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
  raw_ctx *c = (raw_ctx *)vctx;
  char b = 'x';
  for (int64_t i = 0; i < iters; i++)
    if (write(c->to_child, &b, 1) != 1 || read_full(c->from_child, &b, 1, false) != 0) exit(1);
}

/* bw: announce the batch (an 8-byte count), write `iters` messages of c->msg bytes, wait for the child's
 * 1-byte acknowledgement. */
static void bw_raw(void *vctx, int64_t iters) {
  raw_ctx *c = (raw_ctx *)vctx;
  if (write(c->to_child, &iters, sizeof iters) != (ssize_t)sizeof iters) exit(1);
  for (int64_t i = 0; i < iters; i++) {
    size_t off = 0;
    while (off < c->msg) {
      ssize_t w = write(c->to_child, c->buf + off, c->msg - off);
      if (w <= 0) exit(1);
      off += (size_t)w;
    }
  }
  char b;
  if (read_full(c->from_child, &b, 1, false) != 0) exit(1); /* the child has read everything */
}

/* The raw child: ping-pong echoes bytes; bw reads `count` messages of msg bytes per batch announced as an
 * 8-byte count. */
static void raw_child(int in, int out, size_t msg, bool sock) {
  bool bw = msg != 0;
  char *buf = malloc(bw ? msg : 1);
  if (!bw) {
    char b;
    while (read_full(in, &b, 1, sock) == 0)
      if (write(out, &b, 1) != 1) break;
  } else {
    int64_t count;
    while (read_full(in, (char *)&count, sizeof count, sock) == 0) {
      for (int64_t i = 0; i < count; i++)
        if (read_full(in, buf, msg, sock) != 0) _exit(1);
      if (write(out, "k", 1) != 1) break;
    }
  }
  free(buf);
  _exit(0);
}

int bench_raw_pair(bench_spec spec, bench_placement pl, bench_raw_channel ch, const char *buf, size_t msg) {
  if (!bench_wanted(spec.name)) return 0;
  bool bw = buf != NULL;
  if (!bw) msg = 0;
  int down[2], up[2]; /* [0] read end, [1] write end; a socket pair: down[1] = up[0] = ours */
  if (ch == BENCH_RAW_SOCKET) {
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
    if (ch == BENCH_RAW_PIPES_1M) (void)fcntl(down[1], F_SETPIPE_SZ, 1 << 20);
#endif
  }
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    bench_pin_side(pl, 1);
    close(down[1]);
    if (ch != BENCH_RAW_SOCKET) close(up[0]);
    raw_child(down[0], up[1], msg, ch == BENCH_RAW_SOCKET);
  }
  close(down[0]);
  if (ch != BENCH_RAW_SOCKET) close(up[1]);
  raw_ctx c = {down[1], up[0], NULL, buf, msg};
  int rc = bench_run(&spec, bw ? bw_raw : pingpong_raw, &c) < 0;
  close(down[1]); /* EOF: the child leaves */
  if (ch != BENCH_RAW_SOCKET) close(up[0]);
  waitpid(pid, NULL, 0);
  return rc;
}

/* ---- c-shm: the physical ceiling of bw, two processes copying through shared memory ----------
 * A single-producer single-consumer ring of 4 MiB in a memfd mapped by both (MAP_SHARED, inherited
 * by fork), cut into SHM_SLOTS slots of SHM_SLOT bytes (4 of 1 MiB: one message per slot, so the
 * receiver copies a message out while the sender copies the next ones in). Sending is one memcpy
 * into the slots, receiving one memcpy out of them into the receiver's own buffer: the two copies a
 * socket pair makes too, without the kernel.
 * Wake-ups are futexes on the ring's counters (bench_seq: FUTEX_WAIT / FUTEX_WAKE, shared), with no
 * spinning: a side that finds nothing to do announces that it sleeps and the other side makes the wake
 * call only then. The protocol is bw's: N messages, a 1-byte message, a 1-byte
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
  bench_seq head; /* chunks published (sender) */
  char pad0[48];
  bench_seq tail; /* chunks consumed (receiver) */
  char pad1[48];
  bench_seq acks; /* batches acknowledged (receiver) */
  char pad2[48];
  uint32_t len[SHM_SLOTS];
};

static char *shm_slot(shm_ring *r, uint32_t i) { return (char *)r + SHM_HDR + (size_t)(i % SHM_SLOTS) * SHM_SLOT; }

static void shm_send(shm_ring *r, const char *p, uint32_t n) {
  uint32_t off = 0;
  do {
    uint32_t chunk = n - off < SHM_SLOT ? n - off : SHM_SLOT;
    uint32_t h = atomic_load_explicit(&r->head.value, memory_order_relaxed), t;
    while (h - (t = atomic_load(&r->tail.value)) >= SHM_SLOTS) bench_seq_wait(&r->tail, t);
    memcpy(shm_slot(r, h), p + off, chunk);
    off += chunk;
    r->len[h % SHM_SLOTS] = chunk | (off == n ? SHM_LAST : 0);
    bench_seq_post(&r->head);
  } while (off < n);
}

static uint32_t shm_recv(shm_ring *r, char *p) {
  uint32_t got = 0, l;
  do {
    uint32_t t = atomic_load_explicit(&r->tail.value, memory_order_relaxed);
    while (atomic_load(&r->head.value) == t) bench_seq_wait(&r->head, t);
    l = r->len[t % SHM_SLOTS];
    memcpy(p + got, shm_slot(r, t), l & ~SHM_LAST);
    got += l & ~SHM_LAST;
    bench_seq_post(&r->tail);
  } while (!(l & SHM_LAST));
  return got;
}

static void bw_shm(void *vctx, int64_t iters) {
  raw_ctx *c = (raw_ctx *)vctx;
  for (int64_t i = 0; i < iters; i++) shm_send(c->ring, c->buf, (uint32_t)c->msg);
  uint32_t acks = atomic_load(&c->ring->acks.value);
  shm_send(c->ring, "e", 1);
  while (atomic_load(&c->ring->acks.value) == acks) bench_seq_wait(&c->ring->acks, acks);
}

int bench_shm_bw(bench_spec spec, bench_placement pl, const char *buf, size_t msg) {
  if (!bench_wanted(spec.name)) return 0;
  size_t size = SHM_HDR + (size_t)SHM_SLOTS * SHM_SLOT;
  int fd = memfd_create("mproc-bench-ring", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
    perror("bench: memfd");
    return 1;
  }
  void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (mem == MAP_FAILED) return 1;
  raw_ctx c = {-1, -1, (shm_ring *)mem, buf, msg};
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    bench_pin_side(pl, 1);
    char *in = malloc(msg);
    for (;;) {
      uint32_t n = shm_recv(c.ring, in);
      if (n == 0) break;
      if (n == 1) bench_seq_post(&c.ring->acks);
    }
    _exit(0);
  }
  int rc = bench_run(&spec, bw_shm, &c) < 0;
  shm_send(c.ring, "", 0); /* stop */
  waitpid(pid, NULL, 0);
  munmap(mem, size);
  return rc;
}
#else
int bench_shm_bw(bench_spec spec, bench_placement pl, const char *buf, size_t msg) {
  (void)pl;
  (void)buf;
  (void)msg;
  if (bench_wanted(spec.name))
    printf("# %s impl=%s: skipped, its ring wakes by futexes (Linux)\n", spec.name, spec.impl);
  return 0;
}
#endif
