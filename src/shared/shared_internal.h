/* Internal view of shared objects: the base every synchronization object and shared value is built on
 * (a block of shared memory of its own, with a header, and the PAL's wait queue), and the lock word
 * algorithm (src/sync/lock.c) that Lock, RLock, Condition, Barrier and Value use. */
#ifndef MPROC_SHARED_INTERNAL_H
#define MPROC_SHARED_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../atomic.h"
#include "../handable.h"
#include "../internal.h"
#include "../pal.h"

/* ---- the base of a shared object ------------------------------------------------------------------
 * In shared memory every object starts with this header; the rest is the kind's own layout. */
#define MPROC__SOBJ_MAGIC 0x6A626F6Du /* "mobj" */
typedef struct mproc__sobj_header {
  uint32_t magic;
  uint32_t kind; /* mproc_object_kind */
  mproc__wq q;   /* the PAL's wait queue of the object's words */
} mproc__sobj_header;

/* This process's view of one: the mapping and the wait queue's handle. */
typedef struct mproc__sobj {
  mproc__shm shm;
  mproc_os_handle wq; /* Windows: a semaphore; Linux: MPROC_NO_HANDLE */
} mproc__sobj;

/* A new object of `kind` with `size` bytes of layout (the header included), zeroed. */
int mproc__sobj_create(mproc__sobj *o, uint32_t kind, size_t size);
/* This process's view goes (the object lives on in the others). An empty one is ignored. */
void mproc__sobj_close(mproc__sobj *o);
/* The same for a view whose handles are still the caller's (an import that failed after mapping):
 * unmap, close nothing. */
void mproc__sobj_unmap(mproc__sobj *o);
static inline mproc__sobj_header *mproc__sobj_head(const mproc__sobj *o) { return (mproc__sobj_header *)o->shm.base; }
/* For export_obj: append the object's handles to hs[*n ..] and one byte to bytes saying which. */
int mproc__sobj_export(const mproc__sobj *o, mproc_os_handle *hs, size_t *n, mproc__buf *bytes);
/* For import_obj: rebuild from the handles at hs[*used ..] and the byte at bytes[*at] (both advanced),
 * checking the block is an object of `kind` with at least `size` bytes. The handles are the view's
 * on success only. */
int mproc__sobj_import(mproc__sobj *o, uint32_t kind, size_t size, const mproc_os_handle *hs, size_t nhs, size_t *used,
                       const unsigned char *bytes, size_t len, size_t *at);

/* export_obj / import_obj for kinds whose view is a base and nothing else (its first member): import
 * allocates a view of `view` bytes and checks a layout of `layout` bytes. */
int mproc__sobj_export_view(const void *obj, mproc_os_handle *hs, size_t *n, mproc__buf *bytes);
int mproc__sobj_import_view(uint32_t kind, size_t view, size_t layout, const void *bytes, size_t len,
                            const mproc_os_handle *hs, size_t n, void **obj);

/* Wait on / wake a word of the object. */
static inline int mproc__sobj_wait(mproc__sobj *o, const volatile uint32_t *word, uint32_t val, uint64_t owner,
                                   int64_t deadline) {
  return mproc__pal_word_wait(o->wq, &mproc__sobj_head(o)->q, word, val, owner, deadline);
}
static inline void mproc__sobj_wake(mproc__sobj *o, volatile uint32_t *word, uint32_t n) {
  mproc__pal_word_wake(o->wq, &mproc__sobj_head(o)->q, word, n);
}

/* ---- the lock word (src/sync/lock.c) ---------------------------------------------------------------
 * 64 bits, changed by compare-and-swap only: the low half is the holder's process number (0: free)
 * with the WAITERS bit, the futex word; the high half is the holder's birth token, so holder and token
 * change together and a waiter never pairs a new holder with an old token. */
#define MPROC__LW_WAITERS 0x80000000u
#define MPROC__LW_PROC 0x3FFFFFFFu
typedef struct mproc__lockword {
  volatile uint64_t all;
} mproc__lockword;

/* Acquire for this process: 0, MPROC_EOWNERDEAD (acquired from a holder that died), MPROC_ETIMEDOUT. */
int mproc__lw_acquire(mproc__sobj *o, mproc__lockword *w, int64_t deadline);
/* Try once, never waiting: 0, MPROC_EOWNERDEAD (check_holder: its holder had ended; a kernel call when
 * it is held), or MPROC_ETIMEDOUT. */
int mproc__lw_try(mproc__lockword *w, bool check_holder);
/* Release, whoever holds it: 0, or MPROC_ESTATE if it is not locked (nothing changes). */
int mproc__lw_release(mproc__sobj *o, mproc__lockword *w);
/* Whether this process holds it. */
bool mproc__lw_mine(const mproc__lockword *w);
bool mproc__lw_locked(const mproc__lockword *w);

/* ---- the objects' own views that other modules use ---------------------------------------------------- */

/* Lock and RLock (src/sync/lock.c). */
struct mproc_lock {
  mproc__sobj o;
};
/* Whether the caller may wait on a condition with it: an RLock held by this thread, a Lock held by this
 * process. */
bool mproc__lock_held_by_caller(const struct mproc_lock *l);
/* For a condition wait: release every level (*saved: what to give back), and take them back. */
int mproc__lock_release_save(struct mproc_lock *l, uint32_t *saved);
int mproc__lock_acquire_restore(struct mproc_lock *l, uint32_t saved);

extern const mproc__handable_type mproc__lock_handable;
extern const mproc__handable_type mproc__semaphore_handable;
extern const mproc__handable_type mproc__event_handable;
extern const mproc__handable_type mproc__condition_handable;
extern const mproc__handable_type mproc__barrier_handable;
extern const mproc__handable_type mproc__value_handable;
extern const mproc__handable_type mproc__shared_memory_handable;
extern const mproc__handable_type mproc__queue_handable;

/* mproc_wait's row for queues (src/wait.c): the flag to wait on (counted as a waiter until done). */
int mproc__queue_wait_prepare(void *obj, mproc__wait_item *item, bool *ready_now);
void mproc__queue_wait_done(void *obj);

#endif
