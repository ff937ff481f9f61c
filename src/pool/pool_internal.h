/* Pools (mproc/pool.h): what the parent (pool.c) and the workers (worker.c) share: the messages on a
 * worker's connection, and the worker's loop.
 *
 * Parent -> worker, one message each:
 *   'F' [u64 index] [the rest: a function reference, mproc__pal_fn_locate]   define function `index`
 *   'T' [u64 function index] [u64 n] n x ([u64 len] [bytes])                  run a task of n items
 *   'Q'                                                                        end (the end of the
 *        connection may never come: a fork child holds copies of the parent's other descriptors)
 * Worker -> parent, one per task, in the order the tasks came:
 *   'R' [u64 0] [u64 n] n x ([u64 len] [bytes])                               the outputs
 *   'R' [u64 code] [u64 item] [u64 len] [message]                             item failed with code
 * A worker ends at 'Q' or the end of its connection; one that ran its maxtasksperchild tasks ends by
 * itself (the parent never sends it more). */
#ifndef MPROC_POOL_INTERNAL_H
#define MPROC_POOL_INTERNAL_H

#include "../internal.h"
#include "../pal.h"
#include "mproc/pool.h"

enum { MPROC__POOL_DEFINE = 'F', MPROC__POOL_TASK = 'T', MPROC__POOL_QUIT = 'Q', MPROC__POOL_RESULT = 'R' };

/* A worker's settings. */
typedef struct mproc__pool_worker_cfg {
  uint64_t maxtasks;        /* 0: no limit */
  volatile uint64_t *begun; /* where it counts the tasks it has begun (shared with the parent), or NULL */
  void (*initializer)(const void *arg, size_t size); /* NULL: none */
  const void *initarg;
  size_t initarg_size;
} mproc__pool_worker_cfg;

/* The worker's loop on connection c, until the parent closes it or maxtasks are done: 0, or the error
 * that ended it. */
int mproc__pool_worker_loop(mproc_connection *c, const mproc__pool_worker_cfg *cfg);

/* A process worker's target: its argument bytes are [u64 maxtasks] [u64 slot] [u64 len][initializer
 * reference] [u64 len][initarg]; its connection is the parent's link, its object a raw 'Q' array of the
 * pool's slots, where slot `slot` counts the tasks it has begun (so the parent tells a task it never
 * began, to give to another worker, from one it died running). */
int mproc__pool_worker_main(const mproc_args *args);

/* mproc_wait's result kind (wait.c): ready when a waiter can make progress: the result is ready (for
 * imap: the next item, the end or the failure is there). */
int mproc__pool_result_wait_prepare(void *obj, mproc__wait_item *item, bool *ready_now);

#endif
