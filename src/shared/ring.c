/* A ring of records in shared memory (ring.h). */
#include "ring.h"

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
    if (x->state != MPROC__REC_FREE) break;
    p += x->size;
  }
  mproc__atomic_store64(&r->pos->rpos, p);
}

uint64_t mproc__ring_find(const mproc__ring *r, bool ready) {
  MPROC__RING_EACH(r, p) {
    const mproc__rec *x = mproc__ring_at(r, p);
    if (ready ? x->state == MPROC__REC_READY : mproc__rec_in_flight(x)) return p;
  }
  return UINT64_MAX;
}

void mproc__ring_repair(mproc__ring *r) {
  if (r->pos->rpos > r->pos->wpos) mproc__atomic_store64(&r->pos->wpos, r->pos->rpos);
}
