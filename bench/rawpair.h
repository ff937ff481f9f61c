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
#include <stdint.h>

#include "bench.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- a counter one process sleeps on until another moves it (Linux: a futex) ---------------------
 * One poster advances value; one sleeper waits for it to leave a value it has seen. No spinning, and a
 * wake call only when the sleeper announced itself: bench_seq_wait stores the value it sleeps on in
 * `sleeper` (with BENCH_SEQ_ASLEEP) before it looks at the counter a last time and calls FUTEX_WAIT;
 * bench_seq_post, after moving the counter, takes that announcement back with a compare-and-swap and
 * makes the FUTEX_WAKE call only when it was for an older value. Taking back exactly the announcement
 * read (not any) matters: a poster that read an announcement and was then delayed must not take the
 * sleeper's next one, made after the sleeper saw this post's value, whose wake is the next post's job
 * (with a flag that the poster clears by exchange, that wake is lost and both sides can sleep for
 * ever). The sleeper takes back its own announcement after the wait, so a post while it runs makes no
 * call. */
#define BENCH_SEQ_ASLEEP ((uint64_t)1 << 32)
typedef struct bench_seq {
  _Atomic uint32_t value; /* the futex word; only grows (modulo 2^32) */
  uint32_t reserved;
  _Atomic uint64_t sleeper; /* 0, or BENCH_SEQ_ASLEEP | the value the sleeper sleeps on */
} bench_seq;

/* Sleep until value is no longer seen (it may return early: look again). */
static inline void bench_seq_wait(bench_seq *s, uint32_t seen) {
  uint64_t me = BENCH_SEQ_ASLEEP | seen;
  atomic_store(&s->sleeper, me);
  if (atomic_load(&s->value) == seen) syscall(SYS_futex, (void *)&s->value, FUTEX_WAIT, seen, NULL, NULL, 0);
  atomic_compare_exchange_strong(&s->sleeper, &me, 0);
}

/* Advance value by one; wake the sleeper if it sleeps on an older value. */
static inline void bench_seq_post(bench_seq *s) {
  uint32_t now = atomic_fetch_add(&s->value, 1) + 1;
  uint64_t w = atomic_load(&s->sleeper);
  if (w && (uint32_t)w != now && atomic_compare_exchange_strong(&s->sleeper, &w, 0))
    syscall(SYS_futex, (void *)&s->value, FUTEX_WAKE, 1, NULL, NULL, 0);
}
#endif

#define BENCH_MSG_1M (1u << 20)

typedef enum bench_raw_channel {
  BENCH_RAW_PIPES,    /* two pipes of the default size (ping-pong) */
  BENCH_RAW_PIPES_1M, /* two pipes, the data one grown to 1 MiB (F_SETPIPE_SZ) */
  BENCH_RAW_SOCKET    /* a Unix stream socket pair, 1 MiB SO_SNDBUF and SO_RCVBUF on both ends (mproc's bulk channel) */
} bench_raw_channel;

/* bw (the child reads msg-byte messages from buf's sender and acknowledges each batch) or, when buf is
 * NULL, ping-pong (the child echoes 1 byte; msg is ignored). */
int bench_raw_pair(bench_spec spec, bench_placement pl, bench_raw_channel ch, const char *buf, size_t msg);

/* bw's physical ceiling (c-shm): two processes copying msg-byte messages through a ring of 4 slots of
 * 1 MiB in a shared memfd (a longer message fills several slots, a shorter one takes one), one memcpy in and one out,
 * futex wake-ups only when the peer announced it sleeps, no spinning. Linux; elsewhere it prints a "#" line and returns
 * 0. */
int bench_shm_bw(bench_spec spec, bench_placement pl, const char *buf, size_t msg);

#endif /* MPROC_BENCH_RAWPAIR_H */
