/*
 * mproc/queue.h: queues between processes.
 * Python counterparts: multiprocessing.Queue, SimpleQueue, JoinableQueue.
 *
 *   mproc_queue *q;
 *   mproc_queue_create(&q, NULL);                         // hand it on: mproc_object_queue(q)
 *   mproc_queue_put(q, "job", 3, MPROC_INFINITE);         // in a producer
 *   char *item; size_t len;
 *   if (mproc_queue_get(q, MPROC_INFINITE, (void **)&item, &len) == 0) {   // in a consumer
 *     ...
 *     mproc_free(item);
 *   }
 *
 * ---- Where items live ----
 * Between put and get an item lives in the queue's own shared memory: one block, created with the
 * queue and mapped by every process that holds it. It holds the queue's order, a ring of 64-byte slots
 * (one per item), and a store of max_bytes for items over MPROC_QUEUE_INLINE bytes: records laid one
 * after another around it (a ring), each a 32-byte header and the bytes, rounded up to 64. An item of
 * up to MPROC_QUEUE_INLINE bytes is copied into its slot, and a put or get of one takes no lock (one
 * compare-and-swap claims the slot, one store or compare-and-swap publishes or takes it); a larger one
 * is copied into its record outside the queue's lock, which is held only to reserve or free the
 * record, so several large puts and gets proceed at once. put copies an item in, get copies it out: no
 * feeder thread, no pipe, no pickling.
 *
 * ---- Delivery guarantees ----
 *  - Once put returns 0 the item is in the queue: the producer may exit, be joined or be killed, and
 *    the item stays until a get takes it. A producer never has to be drained before it can be joined.
 *  - Every item is got exactly once and whole. Items from one producer (one thread) come out in the
 *    order they were put; items of different producers interleave.
 *  - An item leaves the queue only once a get has copied all of it. A consumer killed before that
 *    leaves it in the queue, as the oldest item: the next get takes it once a process has noticed the
 *    death (a get or put that would otherwise wait, join, or whoever next takes the queue's lock after a
 *    process died holding it; within about 20 ms on Linux, at once on Windows). A producer killed in
 *    the middle of a put leaves nothing of the item, and the queue works on.
 *  - The queue's lock is recovered as mproc/sync.h's locks are: a process that dies holding it (killed
 *    in the middle of a put or get) leaves the queue consistent, and the next process to lock it puts
 *    right what the dead left.
 *  - A queue is used by at most 1024 live processes at once (a process takes an entry on its first
 *    put or get; a dead one's entry is taken over): past that, put and get give MPROC_ENOMEM.
 *
 * ---- The one difference from Python: bounds ----
 * Python's queue grows in the producer's memory. This one is bounded by max_bytes (default
 * MPROC_QUEUE_DEFAULT_MAX_BYTES, 128 MiB: the store of items over MPROC_QUEUE_INLINE bytes; a queue
 * whose store is full takes no item, small ones included) and by its slots, one per item: maxsize
 * when set, else MPROC_QUEUE_DEFAULT_SLOTS (65,536), and never more than max_bytes / 64 (what the
 * store could hold of the smallest records). A put that finds no room blocks, or gives MPROC_EFULL at
 * its timeout. An item larger than the queue can ever hold (see mproc_queue_max_item) gives
 * MPROC_EMSGSIZE. Memory: 64 bytes a slot beside max_bytes; Linux commits pages as the rings first
 * reach them, so the store costs what its fullest moment needed (an empty store starts again at the
 * beginning, keeping a queue that is kept short small) and the slots, used in turn, what the busiest
 * stretch reached (4 MiB for the default count); Windows commits the whole block of pagefile when the
 * queue is created.
 *
 * ---- Timeouts ----
 * In milliseconds: MPROC_INFINITE waits for ever, 0 does not wait (Python's block=False). A full queue
 * gives MPROC_EFULL and an empty one MPROC_EEMPTY, whether at once or at the end of the timeout, as
 * Python's queue.Full and queue.Empty.
 *
 * ---- close and shutdown ----
 * close is per process, as Python's: this process will neither put nor get any more (both then give
 * MPROC_ECLOSED); other processes are unaffected, and nothing is lost. shutdown is for everyone: every
 * later put gives MPROC_ECLOSED, and gets (waiting ones included) take what is left and then give
 * MPROC_EEOF. It is what a sentinel item is used for in Python.
 *
 * ---- Handing a queue on ----
 * To children through mproc_process_opts.objects (mproc_object_queue), every start method, both
 * platforms; to a running process through mproc_connection_send_object. mproc_queue_destroy releases
 * this process's view; the queue itself lives while any process holds it. Thread-safe: threads of one
 * process may share a queue.
 */
#ifndef MPROC_QUEUE_H
#define MPROC_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/core.h"
#include "mproc/mproc_export.h"
#include "mproc/object.h"
#include "mproc/process.h" /* mproc_waitable */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_queue mproc_queue;

/* The default bound in bytes (128 MiB): an item of 64 MiB fits with room to spare. */
#define MPROC_QUEUE_DEFAULT_MAX_BYTES ((size_t)128 << 20)
/* Items of at most this many bytes are copied into their place in the queue's order (a 64-byte slot),
 * taking no lock; larger ones go to the store of max_bytes, and take the queue's lock once at each
 * end, for no longer than a reservation. */
#define MPROC_QUEUE_INLINE ((size_t)48)
/* The places in the order of a queue created with maxsize 0: with max_bytes / 64 when that is fewer,
 * the most items it holds at once (a queue with maxsize holds min(maxsize, max_bytes / 64)). */
#define MPROC_QUEUE_DEFAULT_SLOTS ((size_t)65536)
/* A size that tests and benchmarks use for "a big item": every item over MPROC_QUEUE_INLINE bytes is
 * copied outside the queue's lock. */
#define MPROC_QUEUE_BIG ((size_t)16 << 10)

typedef struct mproc_queue_opts {
  size_t maxsize;   /* bound in items; 0: none (max_bytes alone bounds the queue) */
  size_t max_bytes; /* bound in bytes of the store; 0: MPROC_QUEUE_DEFAULT_MAX_BYTES; at least 4096 */
} mproc_queue_opts;

/* Queue(maxsize): a new queue; opts NULL gives the defaults. Errors: MPROC_EINVAL (max_bytes below
 * 4096), MPROC_ENOMEM (no room for its shared memory), MPROC_ESYS. */
MPROC_API int mproc_queue_create(mproc_queue **out, const mproc_queue_opts *opts);
/* SimpleQueue(): a queue with the default bounds; it takes put, get, empty and close (and every other
 * queue call: it is a queue). */
MPROC_API int mproc_simple_queue_create(mproc_queue **out);
/* JoinableQueue(maxsize): a queue that also counts unfinished tasks (mproc_queue_task_done,
 * mproc_queue_join). */
MPROC_API int mproc_joinable_queue_create(mproc_queue **out, const mproc_queue_opts *opts);

/* put(item, block, timeout): copy len bytes (0 allowed; data may then be NULL) into the queue, waiting
 * up to timeout_ms for room. 0: the item is in the queue. MPROC_EFULL (no room within the timeout),
 * MPROC_EMSGSIZE (the item can never fit: larger than mproc_queue_max_item), MPROC_ECLOSED (closed in
 * this process, or shut down), MPROC_ENOMEM (more than 1024 live processes use the queue), MPROC_EINVAL. */
MPROC_API int mproc_queue_put(mproc_queue *q, const void *data, size_t len, int64_t timeout_ms);
/* put_nowait(item): put with timeout 0. */
MPROC_API int mproc_queue_put_nowait(mproc_queue *q, const void *data, size_t len);

/* get(block, timeout): take the oldest item, waiting up to timeout_ms for one: 0 with *data (allocated:
 * release with mproc_free; never NULL, even for 0 bytes) and *len. MPROC_EEMPTY (none within the
 * timeout), MPROC_EEOF (shut down and drained), MPROC_ECLOSED (closed in this process), MPROC_ENOMEM
 * (the item stays in the queue; or more than 1024 live processes use the queue), MPROC_EINVAL. After mproc_wait
 * reported the queue ready another consumer may have taken the item: a get with timeout 0 may then give MPROC_EEMPTY.
 */
MPROC_API int mproc_queue_get(mproc_queue *q, int64_t timeout_ms, void **data, size_t *len);
/* get_nowait(): get with timeout 0. */
MPROC_API int mproc_queue_get_nowait(mproc_queue *q, void **data, size_t *len);
/* get into the caller's buffer (cap bytes), allocating nothing: 0 with *len. When the oldest item does
 * not fit: MPROC_EMSGSIZE with *len set to its size, and it stays in the queue (get it again with a
 * large enough buffer). Other errors as mproc_queue_get. */
MPROC_API int mproc_queue_get_into(mproc_queue *q, void *buf, size_t cap, int64_t timeout_ms, size_t *len);

/* qsize(): the items in the queue, those being put or got at this moment included (and, for a moment,
 * items got behind one still being got). Approximate, as in Python: other processes change it at any
 * time. */
MPROC_API size_t mproc_queue_qsize(const mproc_queue *q);
/* empty(): no item can be got now. Approximate, as in Python. */
MPROC_API bool mproc_queue_empty(const mproc_queue *q);
/* full(): the queue has no slot left (maxsize items, or its slot count), or its store no room left for
 * a record. Approximate. */
MPROC_API bool mproc_queue_full(const mproc_queue *q);
/* The largest item a put can ever take: max_bytes less one record header. */
MPROC_API size_t mproc_queue_max_item(const mproc_queue *q);

/* close(): this process will put and get no more (later calls of this process give MPROC_ECLOSED;
 * other processes are unaffected, nothing is lost). Closing twice is harmless. */
MPROC_API int mproc_queue_close(mproc_queue *q);
/* shutdown(): for every process: later puts give MPROC_ECLOSED; gets take what is left, then give
 * MPROC_EEOF (gets waiting now included). It cannot be undone. */
MPROC_API int mproc_queue_shutdown(mproc_queue *q);
/* Whether the queue was shut down (by any process). */
MPROC_API bool mproc_queue_is_shutdown(const mproc_queue *q);

/* JoinableQueue.task_done(): a task got from the queue is finished. MPROC_ESTATE when called more times
 * than items were got (nothing changes), or on a queue that is not joinable. Any process may call it. */
MPROC_API int mproc_queue_task_done(mproc_queue *q);
/* JoinableQueue.join(): wait up to timeout_ms until every item put has been got and its task_done
 * called. MPROC_ETIMEDOUT at the timeout; MPROC_EWORKERDIED when a process died holding tasks it had
 * got without calling task_done: its tasks are written off (so a later join does not wait for them)
 * and the message says how many. join never waits for a dead consumer. MPROC_ESTATE on a queue that
 * is not joinable. */
MPROC_API int mproc_queue_join(mproc_queue *q, int64_t timeout_ms);

/* Release this process's view (the queue lives on in the others). NULL is ignored. */
MPROC_API void mproc_queue_destroy(mproc_queue *q);

static inline mproc_object mproc_object_queue(mproc_queue *q) { return mproc_object_make(MPROC_OBJECT_QUEUE, q); }

/* For mproc_wait: ready when an item may be got, or the queue is shut down and drained (a get then
 * gives MPROC_EEOF). Producers pay for the wake-up (one system call) only while some process waits.
 * Linux and Windows; MPROC_ENOTSUP from mproc_wait elsewhere. */
static inline mproc_waitable mproc_waitable_queue(mproc_queue *q) {
  mproc_waitable w;
  w.kind = MPROC_WAIT_QUEUE;
  w.object = q;
  w.ready = false;
  return w;
}

#ifdef __cplusplus
}
#endif

#endif /* MPROC_QUEUE_H */
