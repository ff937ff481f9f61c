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
 */
#ifndef MPROC_POOL_BACKEND_H
#define MPROC_POOL_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "mproc/connection.h"
#include "mproc/mproc_export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_pool_backend {
  const char *name; /* for messages: "MPI" */
  size_t workers;   /* how many workers it offers (the pool's default size, and its most) */
  /* A worker is sent up to 64 small tasks ahead while its tasks take less than this each, the trip
   * there and back included (locally 100 us; a backend whose trip alone takes about that much says
   * more here; a smaller value is ignored). */
  int64_t quick_ns;
  /* Start worker `slot` (0 .. workers-1): carry `conn`'s messages both ways to a worker that runs
   * mproc_pool_worker_serve(its connection, boot, boot_len). 0: conn is the backend's (it destroys it
   * once the worker has ended); an mproc error code (with mproc_last_error's message): conn stays the
   * caller's. Called from the pool's threads, never two at once for one pool, sometimes with the pool's lock
   * held: it must not wait for the pool or call into it. */
  int (*start)(void *ctx, size_t slot, const void *boot, size_t boot_len, mproc_connection *conn);
  void *ctx;
} mproc_pool_backend;

/* A backend's worker: the pool's worker loop on c, with the settings in boot (what start was given),
 * until the pool ends the connection: 0, or the error that ended it. The task functions and the
 * initializer are found in this process as a Process target is found (so this must be the pool's
 * program, or one built from the same sources with the same layout). */
MPROC_API int mproc_pool_worker_serve(mproc_connection *c, const void *boot, size_t boot_len);

/* false when this process runs in secure-execution mode (set-user-ID, set-group-ID, file
 * capabilities): such a process never serves as a worker for another. */
MPROC_API bool mproc_pool_worker_may_serve(void);

/* For a backend's start: set this thread's mproc_last_error to message and return code. */
MPROC_API int mproc_pool_backend_fail(int code, const char *message);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_POOL_BACKEND_H */
