/* The process module's insides, shared by its files. Layers, each calling only those below it:
 *
 *   guard.c        mproc_main_guard: proves a flag's handle (see core.h), then runs the role it names
 *   process.c      the Process object: create, accessors, start (dispatch), join, signals, close
 *   start_fork.c   \
 *   start_spawn.c   > the start methods; forkserver.c also holds the fork server's side of its protocol
 *   forkserver.c   /
 *   boot.c         the boot-link protocol: the bootstrap message, the child's side of it, the answer
 *   self.c         this process (name, parent, daemon) and the children it started (list, reap, at
 *                  exit), the after-fork hooks
 *   context.c      start methods and contexts
 *   wait.c (src/)  mproc_wait over every waitable kind
 */
#ifndef MPROC_PROCESS_INTERNAL_H
#define MPROC_PROCESS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../atomic.h"
#include "../bootstrap.h"
#include "../connection_internal.h"
#include "../handable.h"
#include "../internal.h"
#include "../pal.h"
#include "mproc/process.h"
#include "zygote.h"

/* The guard's roles: argv[1] is "<flag><handle>" (see guard.c). */
#define MPROC__SPAWN_FLAG "--mproc-spawn="
#define MPROC__FORKSERVER_FLAG "--mproc-forkserver="
/* Set in every process mproc re-executes: a main() without the guard must not start children. */
#define MPROC__SPAWN_ENV "MPROC_SPAWN_CHILD"
/* Set beside the eager-binding variable (mproc__pal_eager_binding_var) when mproc added it for the fork
 * server: its guard removes both, so that nothing the server starts inherits them. */
#define MPROC__EAGER_ENV "MPROC_EAGER_BINDING"

struct mproc_context {
  mproc_start_method method;
};

struct mproc_process {
  mproc_target target;
  char *arg;
  size_t arg_size;
  mproc_connection **conns; /* the handed connections (mproc_args.connections) */
  size_t nconns;
  mproc__handed *handed; /* every object handed to the child, in order (the connections first) */
  void **objs;           /* their objects (mproc_args.objects) */
  size_t nhanded, handed_cap;
  char *name;
  char ident[64]; /* "1", "1:2": names this child's own children */
  bool daemon;
  mproc_start_method req_method;
  const mproc_context *context;
  bool kill_on_parent_death;
  struct mproc__zygote *zygote; /* forked by this zygote (zygote.h), whatever the start method; NULL: none */
  unsigned char *authkey;       /* the child's (malloc'ed; authkey_len bytes, maybe 0) */
  size_t authkey_len;
  int64_t creator; /* the pid of the process that created it: only it may start, join or signal it */
  /* after start */
  bool started, closed, detached;
  mproc__child child;
  mproc_connection *boot; /* the parent's end of the boot link */
  bool via_server;        /* forkserver: the server is the OS parent; the exit status comes on `boot` */
  /* In the list of children (self.c) from the start on, before the child exists (see process_start); 1
   * once the start has succeeded: only then is it one of our children to the list's readers (atomic.h). */
  volatile uint32_t listed;
  struct mproc_process *next;
};

/* ---- process.c ---------------------------------------------------------------------------------- */

/* Whether p may be used here: not NULL, created by this very process (a fork child's copies of its
 * parent's Process objects are not its children: Python's "can only join a child process"), not closed.
 * 0 or MPROC_EINVAL / MPROC_ESTATE naming `call`. */
int mproc__process_check(const mproc_process *p, const char *call);
/* mproc_wait's process kind (wait.c): check p, say whether it has ended already, fill the item that
 * becomes ready when it ends (its sentinel); and once that was reported, reap it. */
int mproc__process_wait_prepare(void *obj, mproc__wait_item *item, bool *ready_now);
void mproc__process_wait_ready(void *obj);

/* Hand obj, of handable type t, to p's child (before start): the child finds it rebuilt in
 * mproc_args.objects, after the connections, in the order handed. The object must outlive the start.
 * White-box tests use this for a type of their own; later modules' objects come through it too.
 * 0, MPROC_EINVAL, MPROC_ESTATE (started), MPROC_ENOMEM. */
int mproc__process_hand(mproc_process *p, const mproc__handable_type *t, void *obj);

/* ---- context.c ---------------------------------------------------------------------------------- */

/* 0 if start method m can be used in this process, else why not (MPROC_EINVAL, MPROC_ENOTSUP). */
int mproc__method_available(mproc_start_method m);
/* The method p starts with: its own, its context's, or the global one. */
mproc_start_method mproc__method_of(const mproc_process *p);

/* ---- self.c ------------------------------------------------------------------------------------- */

/* Who this process is. The strings must outlive the process: under fork they are the parent's objects
 * (the child's copy of them never changes), under spawn the bootstrap's, kept. */
typedef struct mproc__self {
  const char *name;        /* "MainProcess" */
  const char *ident;       /* "" in the main process, "1:2" in a grandchild */
  const char *parent_name; /* NULL in the main process */
  int64_t parent_pid;      /* 0 in the main process */
  bool daemon;
  unsigned counter;            /* children created so far (for default names) */
  bool guard_ran;              /* mproc_main_guard was called */
  mproc_os_handle parent_link; /* in a child: our end of the boot link */
  /* The processes this one is starting or started and has not destroyed (self.c). Here, beside the
   * counter that every create writes, so that the list's head lives on a page written before each fork
   * (a write after the fork would be a copy-on-write fault). */
  struct mproc_process *children;
} mproc__self;
extern mproc__self mproc__me;

/* Become a child: set who we are. Allocates and formats nothing (a fork child touches as few pages as it
 * can: each page it writes is a copy-on-write fault). */
void mproc__self_become(const char *name, const char *ident, const char *parent_name, int64_t parent_pid, bool daemon);

/* This process's authkey into buf (room for MPROC_AUTHKEY_MAX bytes), drawn first if it was not yet: 0
 * or MPROC_ESYS. Become a child: its key is `key` (what the parent's Process object held). */
int mproc__authkey_copy(unsigned char *buf, size_t *len);
/* The same into a block of its own (malloc'ed, at least one byte): 0, MPROC_ESYS or MPROC_ENOMEM. No
 * buffer of MPROC_AUTHKEY_MAX bytes on the stack (a page more written per start: see process_create). */
int mproc__authkey_dup(unsigned char **out, size_t *len);
void mproc__authkey_become(const void *key, size_t len);
/* The same in a fork child right after the fork, without the global lock: the child has one thread, and
 * the lock was held across the fork, so what it sees is whole (and the lock's code is not faulted in). */
void mproc__authkey_become_forked(const void *key, size_t len);

/* The children this process started and has not destroyed (reaped or not). add: before the start, so
 * that a fork child finds p listed (and closes its handles) and the list is not written after the fork;
 * then, started, mproc__children_listed(p); a start that fails removes it. */
void mproc__children_add(mproc_process *p);
void mproc__children_listed(mproc_process *p);
void mproc__children_remove(mproc_process *p);
/* Reap p if it has ended by the deadline: 0 (reaped), MPROC_ETIMEDOUT, or an error. The one place that
 * learns that a child ended: its OS parent (us) waits for it, or its fork server tells us. */
int mproc__child_reap(mproc_process *p, int64_t deadline_ns);
/* Signal p unless it is known to have ended. */
int mproc__child_signal(mproc_process *p, int sig);
/* Register, once, the at-exit join of the children (Python's _exit_function). */
void mproc__children_join_at_exit(void);
/* The end of a fork child: join its own children (daemons terminated), flush stdio, exit with `code`
 * without running the parent's atexit handlers. */
void mproc__child_finish_fork(int code);
/* Its first part: what a child does before it ends (join its own children, flush stdio). */
void mproc__child_before_exit(void);
/* Release p's object (not its OS process). */
void mproc__process_free(mproc_process *p);

/* After-fork hooks (CPython's util.register_after_fork): what a fork child must drop of its parent's
 * state (its children's links, its fork server). Run in the child right after the fork, in order of
 * registration; registering the same function twice keeps one. At most MPROC__AFTER_FORK_MAX. */
#define MPROC__AFTER_FORK_MAX 16
void mproc__after_fork_register(void (*fn)(void));
void mproc__after_fork_run(void);

/* ---- boot.c ------------------------------------------------------------------------------------- */

/* Append p's bootstrap message (bootstrap.h) to b, every handed object exported; *handles (malloc'ed,
 * *nhandles of them) are their OS handles in the order the message names them: what the child must be
 * given (inherited under spawn, passed under forkserver). */
int mproc__boot_message(const mproc_process *p, mproc__buf *b, mproc_os_handle **handles, size_t *nhandles);
/* In a spawned child: run it from its bootstrap message (see boot.c), parsed here. Never returns. */
void mproc__boot_run(mproc_connection *link, const char *msg, size_t len);
/* In a child: run it from its bootstrap, parsed already (a forkserver child: by the server, which found
 * the target fn and received the handed objects' fds[0..nfds) before it forked). Never returns. */
void mproc__boot_run_parsed(mproc_connection *link, const mproc__boot *b, const mproc_os_handle *fds, size_t nfds,
                            void *fn);
/* Send "E<rc>:<the last error>" on a boot link: why a target cannot run (a child's, or the fork
 * server's for a child it does not fork). */
void mproc__boot_tell_failure(mproc_connection *link, int rc);
/* In the parent: wait for the child's answer on p->boot ("ok", "ok<pid>" from a forkserver child, or
 * "E<code>:<message>"), reading nothing after it. 0 with *pid_out (0 when the answer has none); else an
 * error naming why, the child reaped. `how`: "spawned" or "forkserver" (for messages). */
int mproc__boot_answer(mproc_process *p, const char *how, int64_t *pid_out);
/* tag (two bytes at most) and the decimal v into out, NUL-terminated, without printf's machinery (see
 * boot.c): the length. */
size_t mproc__tagged_number(char out[32], const char *tag, uint64_t v);
/* kill_on_parent_death: a watchdog thread that ends this process when `link` reaches end of file. */
void mproc__parent_watch(mproc_connection *link);
/* Start this program again with "<flag><handle>" and SPAWN_ENV set, passing `pass` (handle first);
 * eager: with the dynamic linker's eager binding where the system binds lazily (see boot.c). */
int mproc__respawn_self(const char *flag, mproc_os_handle handle, const mproc_os_handle *pass, size_t npass,
                        bool signal_exitcodes, bool eager, mproc__child *child);

/* ---- the start methods -------------------------------------------------------------------------- */

/* Start p, whose boot link (p->boot, ours) has child_end as the child's end (MPROC_NO_HANDLE for a fork
 * child that needs none). The start method owns child_end and closes it as soon as the child has its
 * copy. 0 or an error (the caller then releases p->boot and p->child). */
int mproc__start_fork(mproc_process *p, mproc_os_handle child_end);
int mproc__start_spawn(mproc_process *p, mproc_os_handle child_end);
int mproc__start_forkserver(mproc_process *p, mproc_os_handle child_end);
/* A forkserver child that its pidfd says has ended, and whose link holds no status: ask its server to
 * reap it now, so that its "X" is on the link when this returns (forkserver.c, head comment). */
void mproc__forkserver_ask_status(const mproc_process *p);
/* The fork server's role (guard.c runs it): serve on control socket ctl. Never returns. */
void mproc__forkserver_serve(mproc_os_handle ctl);

#endif
