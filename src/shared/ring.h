/* A ring of records in shared memory: the store of a queue's items over MPROC_QUEUE_INLINE bytes
 * (src/shared/queue.c), and the transport that large messages between two local processes can share
 * later (a connection's shared-memory path).
 *
 * Records lie one after another from the read position rpos to the write position wpos: 64-bit
 * positions that only grow; a record's place is its position modulo the ring's size. A record is a
 * 32-byte header and the item's bytes, rounded up to 64; one that would cross the ring's end is
 * preceded by a FREE record that fills the rest, and an empty ring starts again at its beginning (what a
 * short queue touches stays small and warm in the cache).
 *
 * Not thread-safe: the positions and the headers change under the lock of the object that owns the
 * ring (a robust lock word, shared_internal.h), but for one store the owner allows outside it: the
 * writer of a record it reserved (WRITING) may mark it READY with an atomic store, which is why states
 * are read atomically. Every change that a death could cut in two commits with one store: a writer
 * fills its record header beyond wpos and then moves wpos (killed before, the record never was); a
 * reader copies an item out and then marks its record FREE (killed before, the item is still there). */
#ifndef MPROC_RING_H
#define MPROC_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "../atomic.h"

/* A record's states. */
enum {
  MPROC__REC_FREE = 1,    /* got, or filler; rpos moves over FREE records at its front */
  MPROC__REC_WRITING = 2, /* being written by `owner` outside the lock */
  MPROC__REC_READY = 3    /* holds an item */
};

#define MPROC__REC_HEADER 32u
#define MPROC__REC_ALIGN 64u

typedef struct mproc__rec {
  volatile uint32_t state;
  volatile uint32_t tag; /* the owner's: a queue keeps the low bits of the item's place in its order */
  uint64_t len;          /* the item's bytes, after the header */
  uint64_t owner;        /* the PAL id of the process that wrote it */
  uint64_t size;         /* the record's bytes: to the next record */
} mproc__rec;

/* The positions, in shared memory (with the owner's other state). */
typedef struct mproc__ring_pos {
  volatile uint64_t wpos, rpos;
} mproc__ring_pos;

/* This process's view of a ring. */
typedef struct mproc__ring {
  mproc__ring_pos *pos;
  unsigned char *data; /* cap bytes, 64-byte aligned */
  uint64_t cap;        /* a multiple of MPROC__REC_ALIGN */
} mproc__ring;

static inline mproc__rec *mproc__ring_at(const mproc__ring *r, uint64_t pos) {
  return (mproc__rec *)(void *)(r->data + pos % r->cap);
}
/* The bytes of a record for an item of len bytes (UINT64_MAX when it could never fit the ring). */
static inline uint64_t mproc__ring_rec_size(const mproc__ring *r, uint64_t len) {
  if (len > r->cap) return UINT64_MAX;
  uint64_t size = (MPROC__REC_HEADER + len + MPROC__REC_ALIGN - 1) / MPROC__REC_ALIGN * MPROC__REC_ALIGN;
  return size <= r->cap ? size : UINT64_MAX;
}
static inline uint32_t mproc__rec_state(const mproc__rec *x) { return mproc__atomic_load32(&x->state); }
static inline uint64_t mproc__ring_used(const mproc__ring *r) {
  return mproc__atomic_load64(&r->pos->wpos) - mproc__atomic_load64(&r->pos->rpos);
}

/* Where a record of `size` bytes can go now: its position (after a filler written if needed), or
 * UINT64_MAX when there is no room. Nothing is visible until mproc__ring_commit. */
uint64_t mproc__ring_reserve(mproc__ring *r, uint64_t size);
/* Make the record at pos (filled in: header and bytes) part of the ring: the one store of a write. */
void mproc__ring_commit(mproc__ring *r, uint64_t pos, uint64_t size);
/* Move rpos over the FREE records at its front (after a record was freed). */
void mproc__ring_advance(mproc__ring *r);
/* The record that starts at pos, or NULL when none does (pos outside rpos..wpos, or inside a record). */
mproc__rec *mproc__ring_record(const mproc__ring *r, uint64_t pos);
/* After a process died holding the owner's lock: put right a cut between the two stores of a reset. */
void mproc__ring_repair(mproc__ring *r);

/* Every record from rpos to wpos, oldest first. */
#define MPROC__RING_EACH(r, p) \
  for (uint64_t p = (r)->pos->rpos, p##_end = (r)->pos->wpos; p < p##_end; p += mproc__ring_at((r), p)->size)

#endif
