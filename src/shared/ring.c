/* A ring of records in shared memory (ring.h). */
#include "ring.h"

#include <stddef.h>

uint64_t mproc__ring_reserve(mproc__ring *r, uint64_t size) {
  uint64_t w = r->pos->wpos, used = w - r->pos->rpos, off = w % r->cap;
  if (used == 0 && off) { /* empty: start again at the beginning (rpos first: see mproc__ring_repair) */
    w += r->cap - off;
    mproc__atomic_store64(&r->pos->rpos, w);
    mproc__atomic_store64(&r->pos->wpos, w);
    off = 0;
  }
  uint64_t room = r->cap - off; /* before the ring's end */
  if ((size <= room ? size : room + size) > r->cap - used) return UINT64_MAX;
  if (size > room) {
    mproc__rec *f = mproc__ring_at(r, w);
    f->state = MPROC__REC_FREE;
    f->size = room;
    w += room;
  }
  return w;
}

void mproc__ring_commit(mproc__ring *r, uint64_t pos, uint64_t size) {
  mproc__atomic_store64(&r->pos->wpos, pos + size);
}

void mproc__ring_advance(mproc__ring *r) {
  uint64_t p = r->pos->rpos, w = r->pos->wpos;
  while (p < w) {
    const mproc__rec *x = mproc__ring_at(r, p);
    if (mproc__rec_state(x) != MPROC__REC_FREE) break;
    p += x->size;
  }
  mproc__atomic_store64(&r->pos->rpos, p);
}

mproc__rec *mproc__ring_record(const mproc__ring *r, uint64_t pos) {
  MPROC__RING_EACH(r, p) {
    if (p == pos) return mproc__ring_at(r, p);
    if (p > pos) break;
  }
  return NULL;
}

void mproc__ring_repair(mproc__ring *r) {
  if (r->pos->rpos > r->pos->wpos) mproc__atomic_store64(&r->pos->wpos, r->pos->rpos);
}
