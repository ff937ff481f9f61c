/*
 * mproc/sync.h: synchronization between processes.
 * Python counterparts: multiprocessing.Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition,
 * Barrier.
 *
 *   mproc_lock *l;
 *   mproc_lock_create(&l);                       // hand it to children: mproc_object_lock(l)
 *   int rc = mproc_lock_acquire(l, MPROC_INFINITE);
 *   if (rc == 0 || rc == MPROC_EOWNERDEAD) {     // EOWNERDEAD: held, but check the data first
 *     ...
 *     mproc_lock_release(l);
 *   }
 *
 * Every object lives in shared memory of its own and is handed to children (mproc_process_opts.objects,
 * every start method, both platforms) or sent to a running process over a connection
 * (mproc_connection_send_object); what arrives is the same object. A program started with mproc_popen
 * never gets one. mproc_*_destroy releases this process's view; the object itself lives as long as
 * any process holds it.
 *
 * Timeouts are in milliseconds: 0 tries once without waiting (Python's block=False), MPROC_INFINITE
 * waits for ever; MPROC_ETIMEDOUT when the time is up. A try with timeout 0 that finds a lock held
 * checks whether its holder still runs (a kernel call on that failing path only), so a program that
 * polls recovers a dead holder's lock too.
 *
 * Uncontended calls make no system call (a compare-and-swap on a word in shared memory). Contended
 * waiters sleep in the kernel: Linux futexes; Windows a semaphore per object and the holder's process
 * handle. No System V IPC and no named semaphore is used, so nothing outlives the processes.
 *
 * ---- Ownership and death (the same on every platform) ----
 * A Lock is held by a process (identified by its pid and its start time, so a recycled pid never
 * passes for it); any process may release it, as in Python. An RLock is held by one thread of one
 * process, and only that thread may release it (MPROC_ENOTOWNER otherwise). When the holder's process
 * ends in any way without releasing (killed, crashed, or a normal exit), the next acquirer gets the lock
 * and MPROC_EOWNERDEAD instead of 0: it holds the lock, the data the lock protects may be half
 * updated, and it should check or repair it. Recovery is automatic: the lock is then an ordinary held
 * lock, and later acquirers get 0. (Linux learns of the death within about 20 ms of a waiter's wait;
 * Windows at once, from the holder's process handle.) A *thread* that ends while holding either lock
 * leaves it held, as in Python: its process still runs. Every process that shares a lock must run in
 * the same PID namespace (Linux containers).
 */
#ifndef MPROC_SYNC_H
#define MPROC_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/core.h"
#include "mproc/mproc_export.h"
#include "mproc/object.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_lock mproc_lock;
typedef struct mproc_semaphore mproc_semaphore;
typedef struct mproc_event mproc_event;
typedef struct mproc_condition mproc_condition;
typedef struct mproc_barrier mproc_barrier;

/* ---- Lock and RLock --------------------------------------------------------------------------- */

/* Lock() / RLock(). Errors: MPROC_EINVAL, MPROC_ENOMEM, MPROC_ESYS. */
MPROC_API int mproc_lock_create(mproc_lock **out);
MPROC_API int mproc_rlock_create(mproc_lock **out);
/* acquire(block, timeout): 0, or MPROC_EOWNERDEAD (acquired: the previous holder died holding it),
 * MPROC_ETIMEDOUT (not acquired). An RLock's holder acquires again at once (a count). A Lock acquired
 * again by its holder waits (a deadlock without a timeout, as in Python). */
MPROC_API int mproc_lock_acquire(mproc_lock *l, int64_t timeout_ms);
/* release(): MPROC_ESTATE for a Lock that is not locked (nothing changes); MPROC_ENOTOWNER for an RLock
 * not held by the calling thread. */
MPROC_API int mproc_lock_release(mproc_lock *l);
/* Whether it is locked (by anyone) at this moment. */
MPROC_API bool mproc_lock_locked(const mproc_lock *l);
/* Whether it is an RLock. */
MPROC_API bool mproc_lock_is_recursive(const mproc_lock *l);
MPROC_API void mproc_lock_destroy(mproc_lock *l);
static inline mproc_object mproc_object_lock(mproc_lock *l) { return mproc_object_make(MPROC_OBJECT_LOCK, l); }

/* ---- Semaphore and BoundedSemaphore ---------------------------------------------------------- */

/* The largest value a semaphore can have: 2147483647 on every platform (SEM_VALUE_MAX on Linux). */
#define MPROC_SEM_VALUE_MAX 2147483647u

/* Semaphore(value) / BoundedSemaphore(value). value <= MPROC_SEM_VALUE_MAX. */
MPROC_API int mproc_semaphore_create(mproc_semaphore **out, uint32_t value);
MPROC_API int mproc_bounded_semaphore_create(mproc_semaphore **out, uint32_t value);
/* acquire(block, timeout): 0 or MPROC_ETIMEDOUT. A semaphore has no holder: a process that ends
 * without releasing leaves the count as it was. */
MPROC_API int mproc_semaphore_acquire(mproc_semaphore *s, int64_t timeout_ms);
/* release(): MPROC_ESTATE (nothing changes) above MPROC_SEM_VALUE_MAX, or for a BoundedSemaphore
 * above its initial value. */
MPROC_API int mproc_semaphore_release(mproc_semaphore *s);
/* get_value(): the count at this moment. */
MPROC_API uint32_t mproc_semaphore_value(const mproc_semaphore *s);
MPROC_API void mproc_semaphore_destroy(mproc_semaphore *s);
static inline mproc_object mproc_object_semaphore(mproc_semaphore *s) {
  return mproc_object_make(MPROC_OBJECT_SEMAPHORE, s);
}

/* ---- Event ------------------------------------------------------------------------------------ */

MPROC_API int mproc_event_create(mproc_event **out);
MPROC_API int mproc_event_set(mproc_event *e);
MPROC_API int mproc_event_clear(mproc_event *e);
MPROC_API bool mproc_event_is_set(const mproc_event *e);
/* wait(timeout): 0 once set, MPROC_ETIMEDOUT. */
MPROC_API int mproc_event_wait(mproc_event *e, int64_t timeout_ms);
MPROC_API void mproc_event_destroy(mproc_event *e);
static inline mproc_object mproc_object_event(mproc_event *e) { return mproc_object_make(MPROC_OBJECT_EVENT, e); }

/* ---- Condition -------------------------------------------------------------------------------- */

/* At most this many threads (of any processes) wait on one Condition at once; one more gives
 * MPROC_EFULL from wait. */
#define MPROC_CONDITION_MAX_WAITERS 256

/* Condition(lock): lock NULL makes a new RLock (as Python); else the condition uses that Lock or RLock
 * (it must outlive the condition in this process). */
MPROC_API int mproc_condition_create(mproc_condition **out, mproc_lock *lock);
/* The condition's lock, for acquire / release around waits and notifies. */
MPROC_API mproc_lock *mproc_condition_lock(mproc_condition *c);
/* wait(timeout): release the lock (all levels of an RLock), wait for a notify, take the lock back.
 * 0 (notified), MPROC_ETIMEDOUT (not notified; the lock is held again), MPROC_EOWNERDEAD (notified or
 * not, the lock was taken back from a holder that died), MPROC_ENOTOWNER (waiting without holding the
 * lock: an error, nothing waits; for a Lock, held by another process), MPROC_EFULL (see above). */
MPROC_API int mproc_condition_wait(mproc_condition *c, int64_t timeout_ms);
/* wait_for(predicate, timeout): wait until pred(ctx) is true (checked first, and after each wake-up
 * with the lock held). 0 when it is, MPROC_ETIMEDOUT when it still is not; other errors as wait. */
MPROC_API int mproc_condition_wait_for(mproc_condition *c, bool (*pred)(void *ctx), void *ctx, int64_t timeout_ms);
/* notify(n) / notify_all(): wake at most n of the threads waiting now (the longest waiting first),
 * with the lock held (MPROC_ENOTOWNER otherwise). A waiter whose process has died is skipped and not
 * counted, so a notification is never spent on the dead. */
MPROC_API int mproc_condition_notify(mproc_condition *c, uint32_t n);
MPROC_API int mproc_condition_notify_all(mproc_condition *c);
MPROC_API void mproc_condition_destroy(mproc_condition *c);
static inline mproc_object mproc_object_condition(mproc_condition *c) {
  return mproc_object_make(MPROC_OBJECT_CONDITION, c);
}

/* ---- Barrier ---------------------------------------------------------------------------------- */

#define MPROC_BARRIER_MAX_PARTIES 256

/* The action run by one waiter (the last to arrive) before the others are released: 0, or non-zero to
 * break the barrier (Python: the action raised). It is found again in every process that gets the
 * barrier, as a Process target is (an ordinary function of the program): handing the barrier on gives
 * MPROC_ENOENT where it cannot be. */
typedef int (*mproc_barrier_action)(void);

/* Barrier(parties, action, timeout): parties 1..MPROC_BARRIER_MAX_PARTIES; action may be NULL;
 * timeout_ms the default for wait (MPROC_INFINITE: none). */
MPROC_API int mproc_barrier_create(mproc_barrier **out, uint32_t parties, mproc_barrier_action action,
                                   int64_t timeout_ms);
/* wait(timeout): wait until `parties` waiters have arrived; *index (may be NULL) gets this waiter's
 * arrival index, 0 .. parties-1. timeout_ms < 0 other than MPROC_INFINITE: the barrier's default.
 * MPROC_EBROKEN if the barrier is or becomes broken: a wait timed out (that waiter breaks it, and gets
 * MPROC_EBROKEN too, as Python), abort or reset was called, the action failed, or a waiter's process
 * died while waiting (no one is left stuck). */
MPROC_API int mproc_barrier_wait(mproc_barrier *b, int64_t timeout_ms, uint32_t *index);
#define MPROC_BARRIER_DEFAULT_TIMEOUT (-2)
/* abort(): put it in the broken state: current and later waits give MPROC_EBROKEN until reset. */
MPROC_API int mproc_barrier_abort(mproc_barrier *b);
/* reset(): back to the empty state; the waiters of the moment get MPROC_EBROKEN. */
MPROC_API int mproc_barrier_reset(mproc_barrier *b);
MPROC_API uint32_t mproc_barrier_parties(const mproc_barrier *b);
MPROC_API uint32_t mproc_barrier_n_waiting(const mproc_barrier *b);
MPROC_API bool mproc_barrier_broken(const mproc_barrier *b);
MPROC_API void mproc_barrier_destroy(mproc_barrier *b);
static inline mproc_object mproc_object_barrier(mproc_barrier *b) { return mproc_object_make(MPROC_OBJECT_BARRIER, b); }

#ifdef __cplusplus
}
#endif

#endif /* MPROC_SYNC_H */
