/*
 * rawpair.h: the raw two-process exchanges that several areas measure mproc against (bench/README.md,
 * table of lines): a 1-byte ping-pong over two pipes, and the one-way transfer of 1 MiB messages
 * ("bw": an 8-byte count, N messages, a 1-byte acknowledgement) over a socket pair, a pipe, or shared
 * memory. process.{pingpong,bw}.conn.* and queue.bw.1m.* use them.
 *
 * Each call forks a child that pins itself (bench_pin_side(pl, 1), house rule 5), measures with
 * bench_run(spec, ...) (spec.impl names the line's implementation), stops the child and collects it.
 * The parent must already be pinned (bench_pair_begin). Returns 0, or 1 on a failure (or -1 from
 * bench_run); nothing runs when --filter leaves spec.name out.
 */
#ifndef MPROC_BENCH_RAWPAIR_H
#define MPROC_BENCH_RAWPAIR_H

#include <stdbool.h>

#include "bench.h"

#define BENCH_MSG_1M (1u << 20)

typedef enum bench_raw_channel {
  BENCH_RAW_PIPES,    /* two pipes of the default size (ping-pong) */
  BENCH_RAW_PIPES_1M, /* two pipes, the data one grown to 1 MiB (F_SETPIPE_SZ) */
  BENCH_RAW_SOCKET    /* a Unix stream socket pair, 1 MiB SO_SNDBUF and SO_RCVBUF on both ends (mproc's bulk channel) */
} bench_raw_channel;

/* bw (the child reads BENCH_MSG_1M-byte messages from buf's sender and acknowledges each batch) or, when
 * buf is NULL, ping-pong (the child echoes 1 byte). */
int bench_raw_pair(bench_spec spec, bench_placement pl, bench_raw_channel ch, const char *buf);

/* bw's physical ceiling (c-shm): two processes copying through a ring of 4 slots of 1 MiB in a shared
 * memfd, one memcpy in and one out, futex wake-ups only when the peer announced it sleeps, no spinning.
 * Linux; elsewhere it prints a "#" line and returns 0. */
int bench_shm_bw(bench_spec spec, bench_placement pl, const char *buf);

#endif /* MPROC_BENCH_RAWPAIR_H */
