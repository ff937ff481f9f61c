/* Pools (mproc/pool.h): what the parent (pool.c) and the workers (worker.c) share: the messages on a
 * worker's connection, and the worker's loop.
 *
 * Parent -> worker, one message each:
 *   'F' [u64 index] [the rest: a function reference, mproc__pal_fn_locate]   define function `index`
 *   'T' [u64 function index] [u64 n] n x ([u64 len] [bytes])                  run a task of n items
 *   'B' [u64 k] k x ([u64 len] ['T' message])                                  k tasks, in this order
 *        (the tasks one pump gives a worker: one message, one system call; each still has its reply)
 *   'K' the same, to a worker whose tasks are quick (below: its replies may wait for the batch's end)
 *   'S' [u64 arena id], then the arena itself (an object: a shared block)      keep arena `id` mapped
 *   'U' [u64 arena id]                                                          let arena `id` go
 *   'A' [u64 function index] [u64 slot] [u64 n] [u64 chunk] [u64 in_size] [u64 out_size] [u64 flags]
 *       3 x ([u64 arena id] [u64 offset]): the header, the inputs, the outputs   an array map (below)
 *   'Q'                                                                        end (the end of the
 *        connection may never come: a fork child holds copies of the parent's other descriptors)
 * Worker -> parent, one per task, in the order the tasks came:
 *   'R' [u64 0] [u64 n] n x ([u64 len] [bytes])                               the outputs
 *   'R' [u64 code] [u64 item] [u64 len] [message]                             item failed with code
 *        (an array map's: the first record of the failure, its message naming it: "record N: " or
 *        "records A to B: ")
 *   'R' [u64 0] [u64 0]                                                        an array map's part done
 * A worker with a reply ring (below: a process or thread worker of a local pool, or a backend's that
 * hands replies, mproc/pool_backend.h) writes each reply into its ring, and one that does not fit a
 * slot goes on the connection, its slot saying so; then the only other message it sends is
 *   'W'                                                                        the ring has replies
 * once after the parent said it sleeps. In a 'K' batch, while the parent sleeps on the CPU the worker runs
 * on, the worker sends that 'W' once the batch ends instead (the parent could not have run before on that
 * CPU, and woken at the first reply it took the CPU for one reply at a time). The parent says its CPU
 * only when its sleep is bounded, as it is while a quick worker has tasks (a quick batch may hold a slow
 * task): 1 ms after it last found a reply in a ring, up to 16 ms while it finds none.
 * A worker ends at 'Q' or the end of its connection; one that ran its maxtasksperchild tasks ends by
 * itself (the parent never sends it more).
 *
 * The array path (mproc_pool_map_array). The inputs, the outputs and an mproc__pool_array_hdr live in
 * arenas: shared blocks the pool keeps and reuses, or lends to the caller (mproc_pool_array_alloc); heap
 * blocks for a ThreadPool. 'A' gives header, in and out each as an offset in an arena (id 0: an address
 * in this process, a thread worker's). Every
 * worker gets one 'A' per map and claims `chunk` records at a time from the header's counter, running
 * fn on each record where it lies (or once on the chunk: MPROC__POOL_ARRAY_CHUNKS), until the counter
 * passes n or `stop` is set; then it replies. No message per chunk, no copy per record. */
#ifndef MPROC_POOL_INTERNAL_H
#define MPROC_POOL_INTERNAL_H

#include "../internal.h"
#include "../pal.h"
#include "mproc/pool.h"

#include <stddef.h>

enum { MPROC__POOL_DEFINE = 'F', MPROC__POOL_TASK = 'T', MPROC__POOL_QUIT = 'Q', MPROC__POOL_RESULT = 'R' };

enum { MPROC__POOL_ARENA = 'S', MPROC__POOL_UNMAP = 'U', MPROC__POOL_ARRAY = 'A', MPROC__POOL_BATCH = 'B' };
enum { MPROC__POOL_QUICK_BATCH = 'K' };
/* The flags of 'A': the per-task timeout applies (the claims say when); fn takes a chunk (mproc_chunk_fn). */
enum { MPROC__POOL_ARRAY_TIMED = 1, MPROC__POOL_ARRAY_CHUNKS = 2 };

/* What a worker is doing in an array map, on a cache line of its own (one per worker slot). */
typedef struct mproc__pool_claim {
  volatile uint64_t at;    /* the first record of the chunk it runs + 1; 0: none */
  volatile uint64_t since; /* when it claimed it (monotonic ns), for the per-task timeout ('A' timed) */
  unsigned char pad[48];
} mproc__pool_claim;

/* The head of an array map's arena: the counter workers claim from, the stop flag, then the claims. */
typedef struct mproc__pool_array_hdr {
  volatile uint64_t next; /* the next record to claim */
  unsigned char pad0[56];
  volatile uint32_t stop; /* set by the first failure (or the parent): claim no more */
  /* The map's hand-overs, besides the messages (which order them too): the parent sets `go` once the
   * header and inputs are in place, a worker reads it before anything else; a worker adds to `parts`
   * once its last output is written, the parent reads it before the outputs. (What a sanitizer sees.) */
  volatile uint32_t go;
  volatile uint64_t parts;
  unsigned char pad1[48];
  mproc__pool_claim claims[1]; /* one per worker slot */
} mproc__pool_array_hdr;

/* The bytes of a header for nw worker slots. */
static inline size_t mproc__pool_array_hdr_size(size_t nw) {
  return offsetof(mproc__pool_array_hdr, claims) + (nw ? nw : 1) * sizeof(mproc__pool_claim);
}

/* A worker's replies, in memory it shares with the parent (a process pool's shared block, a ThreadPool's
 * heap): a ring the worker writes and the parent reads, so a reply costs no system call and survives the
 * worker's death once written. The parent never has more than MPROC__POOL_RING tasks in flight to a
 * worker (its window), and a slot is free again once the parent took its reply, so the ring is never
 * full. The parent sets `asleep` before it waits with the ring empty; the worker that publishes a reply
 * and finds it set takes it back and sends 'W' on its connection (one wake-up per sleep, none while the
 * parent is busy). One per worker slot, reset when the slot gets a new worker. */
#define MPROC__POOL_RING 256
#define MPROC__POOL_RING_SLOT 256             /* a slot's bytes, its length included */
#define MPROC__POOL_RING_ELSEWHERE UINT64_MAX /* a slot's length: this reply is on the connection */
typedef struct mproc__pool_reply {
  volatile uint64_t len; /* (or MPROC__POOL_RING_ELSEWHERE) */
  unsigned char data[MPROC__POOL_RING_SLOT - 8];
} mproc__pool_reply;
typedef struct mproc__pool_ring {
  volatile uint64_t
      begun; /* the tasks it has begun (so the parent tells a task it never began from one it died running) */
  volatile uint64_t tail; /* replies written (the worker) */
  unsigned char pad0[48];
  volatile uint64_t head;       /* replies taken (the parent) */
  volatile uint32_t asleep;     /* the parent waits: the next reply wakes it */
  volatile uint32_t asleep_cpu; /* the CPU it sleeps on, set before `asleep` (UINT32_MAX: not known) */
  unsigned char pad1[48];
  mproc__pool_reply slot[MPROC__POOL_RING];
} mproc__pool_ring;

/* Write one reply into ring g, as its writer (the worker, or a backend for it): a MPROC_POOL_REPLY_
 * value (mproc/pool_backend.h: what else the writer must send on the connection), or MPROC_ESTATE when
 * the ring is full (more replies than tasks in flight). wake false: never MPROC_POOL_REPLY_WAKE; the
 * writer calls mproc__pool_ring_wake later (before it waits for more tasks). */
int mproc__pool_ring_put(mproc__pool_ring *g, const void *reply, size_t len, bool wake);

/* MPROC_POOL_REPLY_WAKE when the parent sleeps (it is then awake: send 'W'), else MPROC_POOL_REPLY_TAKEN. */
int mproc__pool_ring_wake(mproc__pool_ring *g);

/* A worker's settings. */
typedef struct mproc__pool_worker_cfg {
  uint64_t maxtasks;        /* 0: no limit */
  volatile uint64_t *begun; /* where it counts the tasks it has begun (shared with the parent), or NULL */
  mproc__pool_ring *ring;   /* where it writes its replies, or NULL: on its connection */
  void (*initializer)(const void *arg, size_t size); /* NULL: none */
  const void *initarg;
  size_t initarg_size;
} mproc__pool_worker_cfg;

/* The worker's loop on connection c, until the parent closes it or maxtasks are done: 0, or the error
 * that ended it. */
int mproc__pool_worker_loop(mproc_connection *c, const mproc__pool_worker_cfg *cfg);

/* A process worker's target: its argument bytes are [u64 maxtasks] [u64 slot] [u64 len][initializer
 * reference] [u64 len][initarg]; its connection is the parent's link, its object a raw array of the
 * pool's slots (mproc__pool_ring), of which `slot` is its own. */
int mproc__pool_worker_main(const mproc_args *args);

/* For tests: the result blocks pool p keeps for its next one-input submissions (pool.c, result_block), and
 * how long an idle pool keeps them (every pool; 0: the default, a second). */
size_t mproc__pool_kept_blocks(mproc_pool *p);
void mproc__pool_set_keep_ns(uint64_t ns);

/* mproc_wait's result kind (wait.c): ready when a waiter can make progress: the result is ready (for
 * imap: the next item, the end or the failure is there). */
int mproc__pool_result_wait_prepare(void *obj, mproc__wait_item *item, bool *ready_now);

#endif
