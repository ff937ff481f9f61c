/*
 * mproc/pool.h: pools of worker processes, or of threads.
 * Python counterparts: multiprocessing.Pool, AsyncResult, multiprocessing.pool.ThreadPool.
 *
 *   static int square(const void *in, size_t len, mproc_task *t) {
 *     int x;
 *     memcpy(&x, in, sizeof x);
 *     x *= x;
 *     return mproc_task_return(t, &x, sizeof x);
 *   }
 *   ...
 *   mproc_pool *pool;
 *   mproc_pool_create(&pool, NULL);                       // Pool(): one worker per CPU
 *   mproc_bytes in[3] = {{&a, 4}, {&b, 4}, {&c, 4}};
 *   mproc_async_result *r;
 *   mproc_pool_map(pool, square, in, 3, 0, MPROC_INFINITE, &r);   // pool.map(square, [a, b, c])
 *   const void *out; size_t len;
 *   mproc_async_result_item(r, 0, &out, &len);            // the square of a
 *   mproc_async_result_destroy(r);
 *   mproc_pool_close(pool); mproc_pool_join(pool, MPROC_INFINITE); mproc_pool_destroy(pool);
 *
 * ---- Tasks ----
 * A task is an ordinary function of the program (mproc_task_fn): input bytes in, output bytes out
 * (mproc_task_return), a status back. Workers find it again as a Process finds its target: under spawn
 * and forkserver it must live in the executable or a shared library loaded from the same path
 * (MPROC_ENOENT from the submitting call otherwise). Several arguments travel as one byte string the
 * caller packs (a struct, or a serialization of its own): that is C's starmap.
 *
 * ---- Workers ----
 * Process workers are mproc processes started with the pool's start method; each is fed through a
 * connection of its own, one task (or one chunk of a map) at a time, with a second small task sent
 * ahead so a worker never waits for the parent between tasks - up to 256 small ones (32 KiB of them)
 * while its tasks take under 100 us each. Thread workers (a ThreadPool:
 * mproc_thread_pool_create or opts.threads) run the same loop over in-process connections: one API.
 * A worker that dies running a task (killed, crashed, exit() in the task) fails that task - or the map
 * it belongs to - with MPROC_EWORKERDIED, the message naming the exit code or signal; the worker is
 * replaced and every other task goes on (CPython's Pool hangs there). One that dies idle is replaced
 * silently. Workers that keep ending before their first task - 8 in a row with no reply from any
 * worker between (an initializer that fails or exits, a worker that cannot start), or the last worker
 * gone with none able to start - break the pool instead of being restarted for ever (CPython's Pool
 * then hangs every caller): every task not given to a live worker fails with MPROC_EWORKERDIED (error
 * callbacks run), and so does every later submission, the message saying why; close, join and
 * terminate work as before. With opts.task_timeout_ms, a task that runs longer is ended by killing its worker (which is
 * replaced) and fails with MPROC_ETIMEDOUT; a chunk of k items has k times the timeout.
 *
 * ---- Results and callbacks ----
 * Every submission gives an mproc_async_result, owned by the caller (mproc_async_result_destroy); it
 * outlives its pool (a result not finished when the pool is terminated or destroyed fails with
 * MPROC_ECLOSED). Its outputs belong to it: pointers from mproc_async_result_item / _next stay valid
 * until it is destroyed. The result of one input of up to 128 bytes (an apply, or a map of one input) is
 * one block, which the pool keeps once the result is destroyed and gives to its next such call: a burst
 * of calls reuses the last burst's memory. The pool gives the kept blocks back once it has been idle
 * for a second with none taken, and once it is closed or terminated and its work has ended; from close
 * on, and after the pool is freed, a destroyed result is freed at once.
 * Callbacks run in the parent on the pool's one result thread, one at a time;
 * they may submit more work with the _async calls, but a call that waits for a result of the same pool
 * (apply, map, starmap, map_array and _chunks: the result thread, running the callback, would never take
 * it) and mproc_pool_terminate, _join and _destroy called from a callback give MPROC_ESTATE. A chunksize
 * larger than the input is one chunk.
 *
 * ---- Lifecycle ----
 * close: no more submissions (MPROC_ESTATE after), the workers end once the work is done. terminate:
 * the workers are killed now, unfinished results fail with MPROC_ECLOSED. join: wait for the workers
 * to end, after close or terminate (MPROC_ESTATE before). destroy: terminates an open pool (as leaving
 * Python's `with` block) and frees it.
 *
 * Under the fork start method the pool forks a single-threaded copy of this process (its zygote) at
 * mproc_pool_create, before its result thread starts: the first workers are forked directly, and every
 * later one (replacing a worker that died, timed out or ran maxtasksperchild tasks) by the zygote, never
 * from this process once it runs the pool's thread. Every worker is a copy of this process as it was at
 * mproc_pool_create. Threads of the program's own that run at that moment are forked as for any fork:
 * create fork pools before starting threads, or use spawn or forkserver.
 */
#ifndef MPROC_POOL_H
#define MPROC_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/core.h"
#include "mproc/mproc_export.h"
#include "mproc/process.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_pool mproc_pool;
typedef struct mproc_async_result mproc_async_result;
typedef struct mproc_task mproc_task;

/* A task: in/len are its input (valid during the call). Return 0 for success (the output is what
 * mproc_task_return set, or empty), anything else to fail it: the caller then gets MPROC_ETASK with
 * the message of mproc_task_fail, or "the task returned N". */
typedef int (*mproc_task_fn)(const void *in, size_t len, mproc_task *t);

/* Inside a task: set its output (copied; a later call replaces it). 0, or MPROC_ENOMEM. */
MPROC_API int mproc_task_return(mproc_task *t, const void *data, size_t len);
/* Inside a task: fail it with a message (printf-style). Returns MPROC_ETASK, for `return
 * mproc_task_fail(t, "...")`. */
MPROC_API int mproc_task_fail(mproc_task *t, const char *fmt, ...);

/* One input: bytes. */
typedef struct mproc_bytes {
  const void *data;
  size_t len;
} mproc_bytes;

typedef struct mproc_pool_opts {
  size_t processes; /* workers; 0: mproc_process_cpu_count() */
  /* Run once in every worker before its first task, with initarg's bytes. */
  void (*initializer)(const void *arg, size_t size);
  const void *initarg;
  size_t initarg_size;
  size_t maxtasksperchild;         /* tasks (chunks) a worker runs before it is replaced; 0: no limit */
  mproc_start_method start_method; /* DEFAULT: the context's, else the global method */
  const mproc_context *context;
  bool threads;            /* a ThreadPool: workers are threads of this process */
  int64_t task_timeout_ms; /* 0: none; else a task running longer fails with MPROC_ETIMEDOUT */
  /* Where the workers live (mproc/pool_backend.h), e.g. mproc_mpi_pool_backend() for the ranks of an MPI
   * job (mproc/mpi.h); NULL: processes (or threads) of this machine. With a backend, processes 0 means
   * all its workers; maxtasksperchild and task_timeout_ms give MPROC_ENOTSUP, and so does the array
   * path (mproc_pool_map_array*, mproc_pool_array_alloc). */
  const struct mproc_pool_backend *backend;
} mproc_pool_opts;

/* Pool(...): start the workers. opts NULL gives the defaults. Errors: MPROC_EINVAL, MPROC_ENOTSUP (the
 * start method), MPROC_ENOENT, MPROC_ENOMEM, MPROC_ESYS and those of mproc_process_start. */
MPROC_API int mproc_pool_create(mproc_pool **out, const mproc_pool_opts *opts);
/* ThreadPool(threads): the same pool over threads (0: mproc_process_cpu_count()). */
MPROC_API int mproc_thread_pool_create(mproc_pool **out, size_t threads);

/* What an asynchronous call takes beside its input. All optional. */
typedef struct mproc_async_opts {
  /* On success / on failure, on the result thread, once the result is ready (read it with the
   * mproc_async_result calls; do not destroy it there). */
  void (*callback)(void *user, mproc_async_result *r);
  void (*error_callback)(void *user, mproc_async_result *r);
  void *user;
  size_t chunksize; /* map and imap: items per task; 0: as Python (about 4 chunks per worker) */
} mproc_async_opts;

/* apply(fn, (in,)): run one task and wait up to timeout_ms: 0 with *out (allocated: mproc_free; never
 * NULL) and *out_len; the task's failure (MPROC_ETASK, MPROC_EWORKERDIED, MPROC_ETIMEDOUT); or
 * MPROC_ETIMEDOUT when it is not done in time (it still runs). */
MPROC_API int mproc_pool_apply(mproc_pool *p, mproc_task_fn fn, const void *in, size_t len, int64_t timeout_ms,
                               void **out, size_t *out_len);
/* apply_async(fn, (in,), callback, error_callback): submit one task (its input is copied). */
MPROC_API int mproc_pool_apply_async(mproc_pool *p, mproc_task_fn fn, const void *in, size_t len,
                                     const mproc_async_opts *opts, mproc_async_result **out);
/* map_async(fn, inputs, chunksize, callback, error_callback): n tasks (inputs copied), in chunks; the
 * result has n items in input order, or fails as a whole with the first task failure. */
MPROC_API int mproc_pool_map_async(mproc_pool *p, mproc_task_fn fn, const mproc_bytes *inputs, size_t n,
                                   const mproc_async_opts *opts, mproc_async_result **out);
/* map(fn, inputs, chunksize): map_async, then wait up to timeout_ms. The result is returned when it is
 * ready and successful; otherwise it is destroyed and its error returned (MPROC_ETIMEDOUT if not
 * ready in time: the work goes on). */
MPROC_API int mproc_pool_map(mproc_pool *p, mproc_task_fn fn, const mproc_bytes *inputs, size_t n, size_t chunksize,
                             int64_t timeout_ms, mproc_async_result **out);
/* imap / imap_unordered(fn, inputs, chunksize): as map_async, read item by item with
 * mproc_async_result_next as they complete: in input order (ordered), or as they complete. */
MPROC_API int mproc_pool_imap(mproc_pool *p, mproc_task_fn fn, const mproc_bytes *inputs, size_t n, size_t chunksize,
                              bool ordered, mproc_async_result **out);

/* The next input of a lazy imap: 1 with *item set (its bytes are copied before the next call), 0 at the
 * end, or a negative mproc error code (the iteration fails there, with mproc_last_error's message). */
typedef int (*mproc_input_fn)(void *user, mproc_bytes *item);
/* imap / imap_unordered over an input produced as it is needed (an iterator): at most `window` inputs
 * are taken ahead of what mproc_async_result_next has handed out and let go (0: 4 x chunksize x
 * workers), so memory stays bounded however long the input. `input` runs in the calling thread: here
 * for the first window, then inside mproc_async_result_next as items are read (never under the pool's
 * lock; it may not call this result's functions). Each item next() hands out stays valid until the next
 * call to next() (or destroy); mproc_async_result_item is refused; mproc_async_result_count gives the
 * inputs taken so far. Closing the pool ends the input: the result fails with MPROC_ECLOSED where inputs
 * were still to come. Unordered, an input whose task still runs holds back taking more once `window`
 * inputs after it were taken. */
MPROC_API int mproc_pool_imap_lazy(mproc_pool *p, mproc_task_fn fn, mproc_input_fn input, void *user, size_t chunksize,
                                   size_t window, bool ordered, mproc_async_result **out);

/* starmap_async(fn, [(a, b), ...]): n tasks of nargs arguments each. args holds n rows of nargs
 * arguments (row-major: item i's argument j is args[i * nargs + j]); each row travels as one input of
 * the task, packed ([u64 count] [u64 length] x count, then the bytes, little-endian), which the task
 * reads with mproc_task_args. Otherwise as map_async. */
MPROC_API int mproc_pool_starmap_async(mproc_pool *p, mproc_task_fn fn, const mproc_bytes *args, size_t nargs, size_t n,
                                       const mproc_async_opts *opts, mproc_async_result **out);
/* starmap(fn, [(a, b), ...], chunksize): starmap_async, then wait as mproc_pool_map does. */
MPROC_API int mproc_pool_starmap(mproc_pool *p, mproc_task_fn fn, const mproc_bytes *args, size_t nargs, size_t n,
                                 size_t chunksize, int64_t timeout_ms, mproc_async_result **out);
/* Inside a task of a starmap: its arguments. Fills args[0..min(count, max)) with pointers into `in`
 * and sets *count to their number: 0, MPROC_EMSGSIZE (more than max: the first max are filled), or
 * MPROC_EINVAL (in is not a packed row of arguments). */
MPROC_API int mproc_task_args(const void *in, size_t len, mproc_bytes *args, size_t max, size_t *count);

/* ---- the array path ------------------------------------------------------------------------------- */

/* A task of the array path: one input record of in_size bytes at `in`, its output record of out_size
 * bytes to write at `out` (its bytes are unspecified before: write them all). Return 0 for success,
 * anything else to fail the map (MPROC_ETASK with mproc_task_fail's message, or "the task returned N");
 * mproc_task_return is not used here. */
typedef int (*mproc_record_fn)(const void *in, void *out, mproc_task *t);

/* A task of the array path that takes a whole chunk: the `count` (1 or more) consecutive input records at
 * `in` that a worker claimed (chunksize of them, fewer at the end), and their output records at `out`,
 * each record of the map's in_size / out_size bytes, as mproc_record_fn's. Return 0 for success, anything
 * else to fail the map (MPROC_ETASK, the message "records A to B: " - "record N: " for a chunk of one - and
 * mproc_task_fail's, or "the task returned N"). One call per chunk instead of one per record: the loop over the records
 * is the function's own, so a trivial record costs no call of its own (and the loop may use SIMD). */
typedef int (*mproc_chunk_fn)(const void *in, void *out, size_t count, mproc_task *t);

/* An array to map: n records of in_size bytes at `in`, into n records of out_size bytes at `out` (both
 * sizes at least 1). */
typedef struct mproc_array_map {
  const void *in;
  size_t in_size;
  void *out;
  size_t out_size;
  size_t n;
} mproc_array_map;

/* map_async over fixed-size records, the array path. The inputs are copied once into an arena of
 * shared memory that the pool keeps and reuses (mapped by each worker once, not sent per task); each
 * worker is sent one message for the whole map, claims chunksize records at a time from a counter in
 * the arena - no message per chunk, no copy per record - and runs fn on them where they lie. The
 * outputs are copied to m->out when the map succeeds, before the result is ready (and its callback
 * runs). m->out must stay valid until the result is ready or destroyed (a destroyed result never writes
 * it); a failed map leaves it untouched. Inputs or outputs inside blocks of mproc_pool_array_alloc are
 * used in place instead (nothing copied). A ThreadPool uses heap arenas, with the same rules.
 * The result has n items: mproc_async_result_item(r, i) points at m->out's record i. Failures, as
 * map: the first failing record stops the others at their next chunk (MPROC_ETASK, the message
 * "record N: " and the task's); a worker that died in the map (MPROC_EWORKERDIED, naming the chunk it
 * was on; the worker is replaced); the per-task timeout, per record (a chunk of k records has k times
 * it; MPROC_ETIMEDOUT). opts->chunksize 0: about four chunks per worker, as map. The byte-string calls
 * above stay the way for inputs of different sizes. Errors: MPROC_EINVAL (a NULL fn or array with n >
 * 0, a size of 0, n * size overflowing), MPROC_ESTATE (pool closed), MPROC_ENOMEM, those of making
 * shared memory. */
MPROC_API int mproc_pool_map_array_async(mproc_pool *p, mproc_record_fn fn, const mproc_array_map *m,
                                         const mproc_async_opts *opts, mproc_async_result **out);
/* map_async over fixed-size records, with fn run once per claimed chunk (mproc_chunk_fn) instead of once
 * per record: otherwise exactly mproc_pool_map_array_async (arenas, in place, chunksize, failures,
 * timeouts, errors). The chunk that failed is named: "records A to B: " ("record N: " if it has one). */
MPROC_API int mproc_pool_map_array_chunks_async(mproc_pool *p, mproc_chunk_fn fn, const mproc_array_map *m,
                                                const mproc_async_opts *opts, mproc_async_result **out);
/* Memory the array path uses where it lies: a block of `size` bytes of shared memory (a heap block for a
 * ThreadPool) that the pool's workers map once. A map whose inputs or outputs lie inside such a block
 * (each array whole inside one block) copies nothing for them: the workers read the inputs and write the
 * outputs in place - then, unlike a copied output, a map that fails may have written some of its
 * records. 0 with *buf (aligned as malloc's), MPROC_EINVAL, MPROC_ENOMEM, or the errors of making shared
 * memory. The block lives until mproc_pool_array_free or the pool is destroyed. */
MPROC_API int mproc_pool_array_alloc(mproc_pool *p, size_t size, void **buf);
/* Give back a block of mproc_pool_array_alloc (a map still using it keeps it until it ends). NULL, or a
 * pointer that is not such a block, is ignored. */
MPROC_API void mproc_pool_array_free(mproc_pool *p, void *buf);
/* map over an array, waiting up to timeout_ms: 0 once every output record is in m->out, or the map's
 * failure. MPROC_ETIMEDOUT if it is not done in time: the map is then dropped (its workers stop at
 * their next chunk) and m->out is never written. */
MPROC_API int mproc_pool_map_array(mproc_pool *p, mproc_record_fn fn, const mproc_array_map *m, size_t chunksize,
                                   int64_t timeout_ms);
/* map over an array with a function per chunk (mproc_chunk_fn), waiting as mproc_pool_map_array does. */
MPROC_API int mproc_pool_map_array_chunks(mproc_pool *p, mproc_chunk_fn fn, const mproc_array_map *m, size_t chunksize,
                                          int64_t timeout_ms);

/* close(): no more work; the workers end once what was submitted is done. */
MPROC_API int mproc_pool_close(mproc_pool *p);
/* terminate(): kill the workers now; unfinished results fail with MPROC_ECLOSED. MPROC_ESTATE from a
 * callback. */
MPROC_API int mproc_pool_terminate(mproc_pool *p);
/* join(): wait up to timeout_ms for the workers to end: 0 or MPROC_ETIMEDOUT. MPROC_ESTATE before
 * close or terminate, or from a callback. */
MPROC_API int mproc_pool_join(mproc_pool *p, int64_t timeout_ms);
/* Terminate an open pool and free it (results live on). NULL is ignored. Not from a callback. */
MPROC_API void mproc_pool_destroy(mproc_pool *p);
/* The number of workers. */
MPROC_API size_t mproc_pool_size(const mproc_pool *p);

/* ---- results -------------------------------------------------------------------------------------- */

/* AsyncResult.wait(timeout): 0 once ready (succeeded or failed), MPROC_ETIMEDOUT. */
MPROC_API int mproc_async_result_wait(mproc_async_result *r, int64_t timeout_ms);
/* AsyncResult.get(timeout): wait, then 0 if it succeeded, or its failure: MPROC_ETASK (the task's
 * message), MPROC_EWORKERDIED, MPROC_ETIMEDOUT (the task's time ran out), MPROC_ECLOSED (the pool was
 * terminated). MPROC_ETIMEDOUT also when it is not ready within timeout_ms: ask mproc_async_result_ready
 * to tell the two apart. */
MPROC_API int mproc_async_result_get(mproc_async_result *r, int64_t timeout_ms);
/* AsyncResult.ready() */
MPROC_API bool mproc_async_result_ready(mproc_async_result *r);
/* AsyncResult.successful(): MPROC_ESTATE before it is ready. */
MPROC_API int mproc_async_result_successful(mproc_async_result *r, bool *ok);
/* The number of items: 1 for apply, n for map and imap. */
MPROC_API size_t mproc_async_result_count(const mproc_async_result *r);
/* Item i of a successful result (borrowed: valid until destroy). MPROC_ESTATE if it is not ready or
 * failed (imap: if item i is not ready yet), MPROC_EINVAL for i out of range. */
MPROC_API int mproc_async_result_item(mproc_async_result *r, size_t i, const void **data, size_t *len);
/* imap: the next item, waiting up to timeout_ms: 0 with it (borrowed) and *index (its input position;
 * may be NULL), MPROC_EEOF after the last, MPROC_ETIMEDOUT, or the failure of its task (the iteration
 * ends there). */
MPROC_API int mproc_async_result_next(mproc_async_result *r, int64_t timeout_ms, const void **data, size_t *len,
                                      size_t *index);
/* Cancel what of r has not been given to a worker yet: those tasks are dropped and r fails at once with
 * MPROC_ECANCELED (its error_callback runs on the result thread); a task already given to a worker
 * runs on, its output discarded. 0, or MPROC_ESTATE when r is ready already or every task of it has
 * been given to a worker (a task that may have begun is never cancelled; a worker takes up to two
 * small tasks ahead, or up to 256 while its tasks are quick). */
MPROC_API int mproc_async_result_cancel(mproc_async_result *r);
/* Free a result (one still running is dropped when it finishes; its callbacks still run). NULL is
 * ignored. Not from its own callback. */
MPROC_API void mproc_async_result_destroy(mproc_async_result *r);

/* For mproc_wait: ready when r is ready (succeeded or failed), and for imap when the next item, the end
 * or the failure is there (mproc_async_result_next would not wait): "first completed" and "as
 * completed" over several results, beside connections and processes, without polling. Costs a handle
 * per result, made the first time it is waited on. Linux and Windows; MPROC_ENOTSUP from mproc_wait
 * elsewhere. */
static inline mproc_waitable mproc_waitable_result(mproc_async_result *r) {
  mproc_waitable w;
  w.kind = MPROC_WAIT_RESULT;
  w.object = r;
  w.ready = false;
  return w;
}

#ifdef __cplusplus
}
#endif

#endif /* MPROC_POOL_H */
