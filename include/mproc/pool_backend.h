/*
 * mproc/pool_backend.h: where a Pool's workers live, for libraries that carry a pool to other places
 * (mproc_mpi: the ranks of an MPI job, mproc/mpi.h). Programs do not use this header: they set
 * mproc_pool_opts.backend to what such a library gives them.
 *
 * A backend's worker is the pool's ordinary worker loop (the one a process or thread worker runs) on
 * the far side of a connection: the engine makes an mproc_pipe per worker and hands one end to
 * backend->start, which carries its messages, in order, to a place where mproc_pool_worker_serve runs
 * over a connection of its own, and carries the replies back. The worker ends when its connection ends
 * (the engine destroys its end: close, terminate), and the engine takes the end of the backend's side of
 * the connection for the end of the worker (a task in flight then fails with MPROC_EWORKERDIED and the
 * slot is started again). The engine never kills a backend's worker: a pool with a backend refuses
 * maxtasksperchild and task_timeout_ms (MPROC_ENOTSUP) and the array path (MPROC_ENOTSUP: its records
 * live in shared memory, which a backend's workers need not share).
 *
 * Shortcuts for a backend that moves many small tasks:
 * - replies: a backend that sets hands_replies gets, with each worker, the pool's reply ring for it
 *   (mproc_pool_replies) and hands the worker's replies there (mproc_pool_replies_put) instead of
 *   writing them on the connection: no system call and no wake-up of the pool per reply while the pool
 *   is busy. The connection still carries the tasks (unless send, below), the end, and what put says
 *   to send.
 * - a worker driven by its caller (mproc_pool_worker_open / _feed / _close): the worker loop without a
 *   connection, for a backend whose far side has its own way to wait for messages (MPI): each message
 *   from the engine goes in with feed, each reply comes out through a callback.
 * - no thread of the backend's between (send and poll, below): the engine hands its messages to the
 *   backend's send instead of writing them on the connection, and its result thread polls the backend
 *   while tasks are out, so a backend whose replies cannot wake a wait (MPI's cannot) needs no thread
 *   of its own that polls and relays: the engine's threads carry the tasks out and the replies in.
 */
#ifndef MPROC_POOL_BACKEND_H
#define MPROC_POOL_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/connection.h"
#include "mproc/mproc_export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A worker's reply ring in the pool (the shortcut above), shared by the engine and the backend: each holds
 * a reference, and the ring lives until both let it go. */
typedef struct mproc_pool_replies mproc_pool_replies;

typedef struct mproc_pool_backend {
  const char *name; /* for messages: "MPI" */
  size_t workers;   /* how many workers it offers (the pool's default size, and its most) */
  /* A worker is sent up to 256 small tasks ahead while its tasks take less than this each, the trip
   * there and back included (locally 100 us; a backend whose trip alone takes about that much says
   * more here; a smaller value is ignored). */
  int64_t quick_ns;
  /* Start worker `slot` (0 .. workers-1): carry `conn`'s messages both ways to a worker that runs
   * mproc_pool_worker_serve(its connection, boot, boot_len), or mproc_pool_worker_open with them. 0:
   * conn (and replies) are the backend's (it destroys conn once the worker has ended, and releases
   * replies once it will hand no more replies there); an mproc error code (with mproc_last_error's
   * message): both stay the caller's. replies: NULL unless hands_replies; then every reply of the worker
   * goes through mproc_pool_replies_put, none on conn but what put says to send. Called from the pool's
   * threads, never two at once for one pool, sometimes with the pool's lock held: it must not wait for
   * the pool or call into it. */
  int (*start)(void *ctx, size_t slot, const void *boot, size_t boot_len, mproc_connection *conn,
               mproc_pool_replies *replies);
  void *ctx;
  bool hands_replies; /* start gets each worker's replies (above); false: every reply comes on conn */
  /* Two optional hooks, both or neither (and then hands_replies), for a backend that carries the
   * engine's messages on the pool's own threads, with no thread of its own between (MPI):
   * - send: carry msg (len bytes, lent for the call) to the worker whose ring start was given as
   *   replies, in order after what went before; the engine then writes nothing on the worker's
   *   connection (which still carries what comes back: the end, what put says to send). msg NULL: the
   *   engine ends that worker (it sends it nothing more; conn stays the backend's, to destroy once the
   *   worker is gone).
   *   0, or an mproc error code: then the worker counts as dying, and the backend must end conn.
   *   Called from the pool's threads (a caller's submit, the result thread), sometimes with the pool's
   *   lock held: it must not wait for the pool or call into it.
   *   A worker the backend ended may still be sent to (send then fails) or ended (NULL: nothing to do).
   * - poll: while a worker of the backend has a task in flight, after a start, and while the last poll
   *   set *more, the engine's result thread calls poll between its waits instead of sleeping until
   *   woken (for replies that cannot wake a wait: MPI's cannot): poll hands what came to the rings
   *   (mproc_pool_replies_put) and ends the connections of workers that ended, and returns the longest
   *   the engine may wait before it calls poll again, in milliseconds (0: at once); it may pause the
   *   thread briefly itself (a yield, a nap of microseconds). *more: true while the backend awaits
   *   something with no task out (a worker's start to be confirmed, a send to complete), else false; a
   *   worker that ends with no task out and nothing awaited is seen at the next poll of any pool, or
   *   when it is next sent a task. *last is the caller's, 0 at first: when poll last saw progress
   *   (mproc_monotonic_ns), which poll keeps. Outside the pool's lock. */
  int (*send)(void *ctx, mproc_pool_replies *replies, const void *msg, size_t len);
  int64_t (*poll)(void *ctx, int64_t *last, bool *more);
} mproc_pool_backend;

/* What mproc_pool_replies_put asks of the caller, besides nothing. */
enum {
  MPROC_POOL_REPLY_TAKEN = 0, /* the reply is in the ring: nothing else to do */
  MPROC_POOL_REPLY_WAKE = 1,  /* in the ring, and the pool sleeps: send a 1-byte message "W" on the worker's
                                 connection (once is enough for every reply put until then) */
  MPROC_POOL_REPLY_SEND = 2   /* too long for the ring, which keeps its place: send it on the connection,
                                 after what was sent before and before anything sent after */
};

/* Hand the pool one reply of the worker (the bytes the worker loop gave: its reply message), in the
 * order the worker gave them, from one thread at a time: a MPROC_POOL_REPLY_ value, or MPROC_ESTATE
 * when the ring holds more replies than the pool sent tasks (a worker that answers what it was not
 * asked; the caller ends the worker). Never blocks, never calls into the pool. */
MPROC_API int mproc_pool_replies_put(mproc_pool_replies *r, const void *reply, size_t len);

/* Let go of the backend's reference (NULL: nothing). */
MPROC_API void mproc_pool_replies_release(mproc_pool_replies *r);

/* A backend's worker: the pool's worker loop on c, with the settings in boot (what start was given),
 * until the pool ends the connection: 0, or the error that ended it. The task functions and the
 * initializer are found in this process as a Process target is found (so this must be the pool's
 * program, or one built from the same sources with the same layout). */
MPROC_API int mproc_pool_worker_serve(mproc_connection *c, const void *boot, size_t boot_len);

/* A worker driven by its caller: the same worker as mproc_pool_worker_serve's, without a connection.
 * The initializer runs here, in open. Every message from the engine goes in with mproc_pool_worker_feed,
 * which runs what it asks (a batch of tasks, one after the other) and gives each reply to
 * reply(ctx, bytes, len) as soon as it is made, in order; the bytes are lent for the call. A reply that
 * returns non-zero ends the worker: feed returns that. */
typedef struct mproc_pool_worker mproc_pool_worker;
typedef int (*mproc_pool_reply_fn)(void *ctx, const void *reply, size_t len);
MPROC_API int mproc_pool_worker_open(const void *boot, size_t boot_len, mproc_pool_reply_fn reply, void *ctx,
                                     mproc_pool_worker **out);
/* 0: go on; 1: the worker has ended (the engine said so, or it ran its tasks): close it; an error code
 * (a malformed message, a reply that failed, out of memory): close it. A message that needs a
 * connection (shared memory of the array path) is an error here. */
MPROC_API int mproc_pool_worker_feed(mproc_pool_worker *w, const void *msg, size_t len);
MPROC_API void mproc_pool_worker_close(mproc_pool_worker *w); /* NULL: nothing */

/* false when this process runs in secure-execution mode (set-user-ID, set-group-ID, file
 * capabilities): such a process never serves as a worker for another. */
MPROC_API bool mproc_pool_worker_may_serve(void);

/* For a backend's start: set this thread's mproc_last_error to message and return code. */
MPROC_API int mproc_pool_backend_fail(int code, const char *message);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_POOL_BACKEND_H */
