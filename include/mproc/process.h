/*
 * mproc/process.h: run a C function in a child process.
 * Python counterparts: multiprocessing.Process, current_process, parent_process, active_children,
 * set_start_method / get_start_method / get_context, multiprocessing.connection.wait.
 *
 *   static int work(const mproc_args *a) { printf("child got %.*s\n", (int)a->size, (const char *)a->data); return 0; }
 *
 *   int main(int argc, char **argv) {
 *     mproc_main_guard(argc, argv);            // first: a spawned child runs its target here and exits
 *     mproc_process *p;
 *     mproc_process_create(&p, &(mproc_process_opts){.target = work, .arg = "test", .arg_size = 4});
 *     mproc_process_start(p);
 *     mproc_process_join(p, MPROC_INFINITE);
 *     mproc_process_destroy(p);
 *   }
 *
 * START METHODS (see docs/guide.md, "The main guard and start methods"):
 *   MPROC_START_SPAWN  (all platforms; the default everywhere) the child re-executes the program; the
 *                      main guard receives the target, runs it and exits. Code before the guard runs in
 *                      every child, like module-level code in Python. The target is found again from
 *                      its module and offset, and the child checks it runs the same binary. Works in
 *                      statically linked programs too (glibc or musl, -static or -static-pie:
 *                      docs/PLATFORMS.md), as does forkserver.
 *   MPROC_START_FORK   (POSIX; MPROC_ENOTSUP on Windows) the child is a copy of the parent and runs the
 *                      target at once. Fast, but unsafe if the parent has other threads holding locks.
 *   MPROC_START_FORKSERVER  (POSIX; MPROC_ENOTSUP on Windows) a fork server, started on first use as a
 *                      clean re-executed copy of the program (its main guard serves and never returns),
 *                      forks each child on request: fork speed, without forking this (possibly
 *                      multi-threaded) process. The child sees the server's memory (what the program set
 *                      up before the guard), the argument bytes and the connections handed to it, like
 *                      a spawned child. If the server dies, the next start starts a new one; a child
 *                      whose server died before it ended gets exitcode 255 (as CPython), except on Linux
 *                      when it returned from its target: it tells its own status. The server is started
 *                      with the dynamic linker's eager binding (LD_BIND_NOW=1, where the system binds
 *                      lazily; not passed on to what it starts), so that its children do not each
 *                      resolve the library functions again; a program that cannot load so gets a
 *                      server started the usual way.
 * Why spawn is the default: a program behaves the same on every platform (nothing is inherited by
 * accident, no fork-with-threads deadlocks), which is what a cross-platform program is tested for.
 * Choose fork explicitly where its speed matters and the parent is single-threaded.
 */
#ifndef MPROC_PROCESS_H
#define MPROC_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/connection.h"
#include "mproc/core.h"
#include "mproc/handle.h"
#include "mproc/mproc_export.h"
#include "mproc/object.h"
#include "mproc/subprocess.h" /* mproc_popen, for mproc_waitable_popen */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mproc_start_method {
  MPROC_START_DEFAULT = 0, /* the context's method, else the global one (mproc_set_start_method) */
  MPROC_START_FORK,
  MPROC_START_SPAWN,
  MPROC_START_FORKSERVER
} mproc_start_method;

/* set_start_method(): the method used by processes that do not choose one. MPROC_START_DEFAULT resets
 * it to the platform default (spawn). Errors: MPROC_ENOTSUP (fork or forkserver on Windows),
 * MPROC_EINVAL. Not thread-safe with concurrent starts. */
MPROC_API int mproc_set_start_method(mproc_start_method method);
/* get_start_method(): the global method. */
MPROC_API mproc_start_method mproc_get_start_method(void);
/* "fork", "spawn", "forkserver" or "default". */
MPROC_API const char *mproc_start_method_name(mproc_start_method method);

/* get_context(method): a context binds a start method; processes created with .context use it.
 * Contexts are static objects: never freed. Errors: as mproc_set_start_method. */
typedef struct mproc_context mproc_context;
MPROC_API int mproc_get_context(mproc_start_method method, const mproc_context **ctx);
MPROC_API mproc_start_method mproc_context_start_method(const mproc_context *ctx);

/* What the target receives in the child. `data`/`size` are the argument bytes given at create (a
 * copy); `connections` are the connections handed to the child, in the order given, usable there
 * (under fork they are the parent's objects; under spawn and forkserver they are recreated). The
 * structure and what it points to stay valid until the target returns. */
typedef struct mproc_args {
  const void *data;
  size_t size;
  mproc_connection *const *connections;
  size_t connection_count;
  /* Every object handed to the child, in the order handed (the connections first, then objects of
   * kinds that have no list of their own here), each as its own type. */
  void *const *objects;
  size_t object_count;
} mproc_args;

/* The target: an ordinary function of the program. Its return value becomes the exit code
 * (exitcode); calling exit(n) in it gives n. Under spawn it must live in the program's executable or
 * in a shared library that the child can load from the same path. */
typedef int (*mproc_target)(const mproc_args *args);

typedef enum mproc_option { MPROC_OPTION_DEFAULT = 0, MPROC_OPTION_ON, MPROC_OPTION_OFF } mproc_option;

/* Options for a process. All-zero means the defaults. Read only during create. */
typedef struct mproc_process_opts {
  mproc_target target; /* required */
  const void *arg;     /* argument bytes, copied (may be NULL with size 0) */
  size_t arg_size;
  mproc_connection *const *connections; /* connections handed to the child */
  size_t connection_count;
  /* Other mproc objects handed to the child (locks, values, ...: mproc/object.h), after the
   * connections in args->objects, in this order. MPROC_EINVAL for a kind that cannot be handed (a bare
   * OS handle) or a NULL object; errors of handing one on (a barrier action that cannot be found
   * again: MPROC_ENOENT) come from mproc_process_start. */
  const mproc_object *objects;
  size_t object_count;
  const char *name;                /* NULL: "Process-N" (N counts this process's children;
                                      "Process-1:2" for the 2nd child of Process-1) */
  bool daemon;                     /* terminated when the parent exits; may not have children */
  mproc_start_method start_method; /* DEFAULT: the context's, else the global method */
  const mproc_context *context;    /* NULL: no context */
  /* Beyond Python: kill the child if the parent dies in any way (killed, crashed). DEFAULT: on for
   * daemon children, off otherwise. Everywhere and under every start method the child watches the
   * parent from a small thread of its own (blocked in a read on its boot link; no polling). The
   * kernel's mechanisms are added where they are right: on Linux PR_SET_PDEATHSIG(SIGKILL), with a
   * re-check of the parent, for children started from the main thread (the kernel ties the signal to
   * the creating *thread*, so a child started from another thread would die with that thread; under
   * forkserver the server's own thread creates it); on Windows a kill-on-close job object per child,
   * whose only handle the parent holds (the child's own children are not in it). */
  mproc_option kill_on_parent_death;
  /* Process.authkey: the child's authentication key (mproc_current_process_authkey inside it), copied.
   * NULL (with authkey_size 0): this process's key at create, as Python's Process inherits its
   * creator's. At most MPROC_AUTHKEY_MAX bytes; an empty key (authkey set, size 0) is a key too. */
  const void *authkey;
  size_t authkey_size;
} mproc_process_opts;

typedef struct mproc_process mproc_process;

/* Process(...): create a process object (not started). Errors: MPROC_EINVAL (NULL out/opts/target,
 * arg NULL with arg_size > 0, a NULL connection, an authkey longer than MPROC_AUTHKEY_MAX), MPROC_ENOMEM,
 * MPROC_ESYS (this process's authkey was still to be drawn and the OS gave no random bytes). */
MPROC_API int mproc_process_create(mproc_process **out, const mproc_process_opts *opts);

/* Process.start(). Returns once the child runs: under spawn, once its main guard has received the
 * target and found it; under forkserver, once the server has found the target and forked the child
 * (where the system gives a pidfd of the child, Linux, start does not wait for the child's own answer:
 * a failure after that, such as running out of memory rebuilding its handed objects, ends the child
 * with exit code MPROC_EXIT_BOOT_FAILED). Errors:
 * MPROC_ESTATE (started twice; a daemon starting a child; a spawned child whose main guard has not
 * run yet: the missing-guard protection against fork bombs), MPROC_ENOTSUP (the method is not
 * available here), MPROC_ENOENT (the target cannot be found again in the child: not in a module of
 * this program, or the binary differs), MPROC_ECLOSED (a handed connection is closed), MPROC_EINVAL
 * (forkserver: the handed connections need more than 252 descriptors; on POSIX a duplex connection
 * end has three, see mproc_connection_handle), MPROC_ESYS / MPROC_ENOMEM. Under spawn and
 * forkserver, a program whose main does not call mproc_main_guard first makes start fail with
 * MPROC_ESTATE once that child (the server) exits.
 * Thread-safe with respect to other processes; one thread per process object. */
MPROC_API int mproc_process_start(mproc_process *p);

/* Process.join(timeout): wait for the child to end, up to timeout_ms. 0 when it has ended (its
 * exitcode is then known), MPROC_ETIMEDOUT if still running, MPROC_ESTATE if not started. */
MPROC_API int mproc_process_join(mproc_process *p, int64_t timeout_ms);

/* Process.is_alive(): started and not yet ended (a finished child is reaped here). */
MPROC_API bool mproc_process_is_alive(mproc_process *p);

/* Process.terminate() / kill(): SIGTERM / SIGKILL on POSIX; TerminateProcess on Windows, which makes
 * the exitcode -15 / -9 there too. No-op on a child that has ended; MPROC_ESTATE if not started. */
MPROC_API int mproc_process_terminate(mproc_process *p);
MPROC_API int mproc_process_kill(mproc_process *p);

/* Process.close(): release the OS resources of an ended process. MPROC_ESTATE while it runs.
 * Afterwards only the accessors work (pid, exitcode, name). */
MPROC_API int mproc_process_close(mproc_process *p);

/* Free the object. A child that still runs is not killed: it stays in the list of active children,
 * is reaped by mproc_active_children and at exit (daemon children are terminated then, others
 * joined), exactly as a Python Process object that goes out of scope. NULL is ignored. */
MPROC_API void mproc_process_destroy(mproc_process *p);

/* Process.pid (0 before start), exitcode (false while unknown: not started or still running; the
 * target's return value, n after exit(n), -N after signal N; on Windows a crash gives its exception
 * code as a large negative int, 0xC0000005 as -1073741819, never in the -N range: see "exit
 * statuses" in mproc/core.h, mproc_exit_is_crash), name, daemon, sentinel. */
MPROC_API int64_t mproc_process_pid(const mproc_process *p);
MPROC_API bool mproc_process_exitcode(const mproc_process *p, int *exitcode);
MPROC_API const char *mproc_process_name(const mproc_process *p);
MPROC_API int mproc_process_set_name(mproc_process *p, const char *name);
MPROC_API bool mproc_process_daemon(const mproc_process *p);
/* MPROC_ESTATE after start. */
MPROC_API int mproc_process_set_daemon(mproc_process *p, bool daemon);
/* A handle that becomes ready when the child ends (for mproc_wait or an OS wait), owned by p, valid
 * until close/destroy. POSIX: readable once the child has ended: on Linux (5.3+) a pidfd of the child
 * (every start method; a fork child with kill_on_parent_death excepted), else the parent's end of a
 * private socket pair. Windows: the process HANDLE. MPROC_NO_HANDLE before start. */
MPROC_API mproc_os_handle mproc_process_sentinel(const mproc_process *p);

/* ---- this process ----------------------------------------------------------------------------- */

/* current_process().name: "MainProcess", or the child's name inside a child. */
MPROC_API const char *mproc_current_process_name(void);
/* current_process().daemon */
MPROC_API bool mproc_current_process_daemon(void);
/* parent_process(): its pid and name inside an mproc child; 0 and NULL in the main process. Under
 * forkserver this is the process that started the child (as CPython), not the server, which is the
 * child's parent for the OS (getppid). */
MPROC_API int64_t mproc_parent_process_pid(void);
MPROC_API const char *mproc_parent_process_name(void);

/* current_process().authkey: this process's authentication key, which Listener/Client handshakes use
 * when asked to (mproc/listener.h, .process_authkey) and a Manager by default. The main process draws
 * 32 random bytes from the OS on first use (os.urandom(32), as CPython); a child gets the key of its
 * Process object (mproc_process_opts.authkey, by default its creator's) under every start method. The
 * key never leaves the process except to a child it starts (in the bootstrap, over the private boot
 * link). Copies it into buf (cap bytes); *len is its size. Errors: MPROC_EINVAL (NULL len, buf NULL with
 * cap > 0), MPROC_EMSGSIZE (cap too small; *len says how much is needed), MPROC_ESYS (no random bytes).
 * Thread-safe. */
#define MPROC_AUTHKEY_MAX 1024
MPROC_API int mproc_current_process_authkey(void *buf, size_t cap, size_t *len);
/* current_process().authkey = key: set this process's key (len bytes, at most MPROC_AUTHKEY_MAX; 0 is an
 * empty key). Processes created afterwards inherit it; Listeners and Clients created before keep the key
 * they were given. Errors: MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_current_process_set_authkey(const void *key, size_t len);

/* active_children(): the children this process started that still run (finished ones are reaped
 * by this call). *list is allocated (release with mproc_free; NULL when *count is 0); the
 * processes themselves stay owned by their creators. */
MPROC_API int mproc_active_children(mproc_process ***list, size_t *count);

/* ---- waiting on many ---------------------------------------------------------------------------- */

/* What mproc_wait can wait on. Each later module adds its kind here (queues, pool results, listeners,
 * programs started with mproc_popen), so the struct below never changes. */
typedef enum mproc_wait_kind {
  MPROC_WAIT_NONE = 0,
  MPROC_WAIT_CONNECTION, /* object: mproc_connection *; ready: a receive can make progress (a message, or
                            end of file; see connection.h) */
  MPROC_WAIT_PROCESS,    /* object: mproc_process *; ready: the process has ended (its sentinel) */
  MPROC_WAIT_POPEN,      /* object: mproc_popen *; ready: the program has ended (its exit handle,
                            mproc_popen_exit_handle); once reported, it has been reaped (returncode set) */
  MPROC_WAIT_QUEUE,      /* object: mproc_queue *; ready: an item may be got, or the queue is shut down and
                            drained (mproc/queue.h, mproc_waitable_queue) */
  MPROC_WAIT_LISTENER,   /* object: mproc_listener *; ready: accept can make progress (mproc/listener.h,
                            mproc_waitable_listener) */
  MPROC_WAIT_RESULT      /* object: mproc_async_result *; ready: it is ready, or for imap its next item (or
                            its end) is there (mproc/pool.h, mproc_waitable_result) */
} mproc_wait_kind;

/* One object for mproc_wait: its kind and the object. Fill it with the constructors below,
 *   mproc_waitable w[2] = {mproc_waitable_connection(c), mproc_waitable_process(p)};
 * or with designated initializers (.kind = MPROC_WAIT_PROCESS, .object = p). */
typedef struct mproc_waitable {
  mproc_wait_kind kind;
  void *object;
  bool ready; /* out */
} mproc_waitable;

static inline mproc_waitable mproc_waitable_connection(mproc_connection *c) {
  mproc_waitable w;
  w.kind = MPROC_WAIT_CONNECTION;
  w.object = c;
  w.ready = false;
  return w;
}
static inline mproc_waitable mproc_waitable_process(mproc_process *p) {
  mproc_waitable w;
  w.kind = MPROC_WAIT_PROCESS;
  w.object = p;
  w.ready = false;
  return w;
}

static inline mproc_waitable mproc_waitable_popen(mproc_popen *p) {
  mproc_waitable w;
  w.kind = MPROC_WAIT_POPEN;
  w.object = p;
  w.ready = false;
  return w;
}

/* multiprocessing.connection.wait(objects, timeout): wait until at least one object is ready, up to
 * timeout_ms; sets each `ready`. 0 with *nready >= 1, or MPROC_ETIMEDOUT (none ready).
 * Errors: MPROC_EINVAL (an unknown kind, a NULL object), MPROC_ECLOSED (a closed connection or listener),
 * MPROC_ESTATE (a process not started, closed, or not this process's child), MPROC_ENOMEM, and those
 * of mproc_popen_exit_handle.
 * After a ready connection another thread may receive first: a receive with timeout 0 may then give
 * MPROC_ETIMEDOUT, as after poll. Thread-safe as the objects' own calls are. */
MPROC_API int mproc_wait(mproc_waitable *objects, size_t count, int64_t timeout_ms, size_t *nready);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_PROCESS_H */
