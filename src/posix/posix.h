/* Internal to the POSIX PAL: small helpers shared by its files. Each lives in the file of the pal.h
 * section it serves (noted below); the POSIX PAL has no helper file of its own. */
#ifndef MPROC_POSIX_H
#define MPROC_POSIX_H

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

/* SIGPIPE guard: a write to a pipe whose reader has gone raises SIGPIPE, whose default action kills
 * the process. A library must not change the process-wide disposition, so the signal is blocked in
 * the calling thread around the write, and a SIGPIPE our write caused is consumed before the mask is
 * restored. Nothing is done when the thread already blocks it (the signal then stays pending, as the
 * thread's own write would leave it). Two system calls when it has to block, one otherwise. */
typedef struct mproc__sigpipe_guard {
  sigset_t old;
  bool was_blocked;
} mproc__sigpipe_guard;
/* pipe.c */
void mproc__posix_sigpipe_block(mproc__sigpipe_guard *g);
void mproc__posix_sigpipe_unblock(mproc__sigpipe_guard *g, bool got_epipe);

/* The library's global lock where it is not in the page every fork child finds wiped (pal_core.c), and
 * whether it is used. In the child of mproc__pal_fork (process.c), which held the lock across the fork,
 * mproc__posix_global_lock_forked makes it the child's own, unlocked: a store, where one is needed at
 * all, and no call (each code page a fork child runs first is a page fault). */
#ifndef __cplusplus /* (C11 atomics; the white-box tests in C++ need none of this) */
#include <stdatomic.h>
extern pthread_mutex_t mproc__posix_static_lock;
extern _Atomic bool mproc__posix_static_lock_used;
static inline void mproc__posix_global_lock_forked(void) {
  static const pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  if (atomic_load_explicit(&mproc__posix_static_lock_used, memory_order_relaxed)) mproc__posix_static_lock = fresh;
}
#endif

/* A close-on-exec pidfd of pid (process.c; Linux 5.3+), or -1 (errno set; ENOSYS where there are none). Safe only
 * while pid cannot have been reaped: it is our child, not yet waited for. */
int mproc__posix_pidfd_open(int64_t pid);

/* The identity of this process's executable (/proc/self/exe): device, inode, size and 0 (no time: see
 * process.c), as the targets' references carry it. Cached after the first call. 0 or MPROC_ENOENT.
 * _known: the guard's own stat of /proc/self/exe, which fills the cache (and id). */
struct stat;
int mproc__posix_self_exe_identity(uint64_t id[4]);
void mproc__posix_self_exe_known(const struct stat *st, uint64_t id[4]);

struct iovec;
/* writev that never raises SIGPIPE (pipe.c; a reader that has gone gives -1 with EPIPE): one system call,
 * pwritev2 with RWF_NOSIGNAL, where the kernel has it (Linux 6.18 and later; learnt on the first call),
 * else writev inside the guard above (three). Errors as writev's, EINTR included. */
ssize_t mproc__posix_writev_nosigpipe(int fd, const struct iovec *iov, int n);
/* White-box tests: use the guard even where RWF_NOSIGNAL works (true), or find out again (false). */
void mproc__posix_force_sigpipe_guard(bool force);

/* Wait until fd is ready for `events` (poll) or the deadline (pipe.c): 0, MPROC_ETIMEDOUT, or an error. */
int mproc__posix_wait_fd(int fd, short events, int64_t deadline);

/* Close the fds [lo, hi); hi < 0: to the end (spawn.c). close_range where Linux has it, else a loop. Async-signal-safe.
 */
void mproc__posix_close_from(int lo, int hi);

struct mproc__child;
struct mproc__posix_helper; /* the tree helper's state, private to tree.c */

/* The POSIX state of a child (mproc__child.os; pal.h, "the exit handle"): one struct for the two things
 * that may need state beyond the pid and the exit handle, made on first need (mproc__posix_child_state,
 * spawn.c) and freed by mproc__pal_child_release.
 *   - helper: the tree helper (tree.c) when the program was started through it, else NULL. The one test
 *     of "started through the helper" is mproc__posix_child_helper; the child's `handle` is then the
 *     helper's exit socket.
 *   - exit_rd: the exit handle's watcher pipe (spawn.c, mproc__pal_child_exit_handle): only for a plain
 *     child (no helper) without a pidfd; -1 otherwise. */
typedef struct mproc__posix_child {
  struct mproc__posix_helper *helper; /* or NULL */
  int exit_rd;                        /* the read end of the watcher thread's pipe, or -1 */
} mproc__posix_child;
/* The child's state, made (no helper, no watcher) when it has none yet; NULL with MPROC_ENOMEM set when
 * out of memory. */
mproc__posix_child *mproc__posix_child_state(struct mproc__child *c);
/* The tree helper of the child, or NULL when it was not started through one. */
struct mproc__posix_helper *mproc__posix_child_helper(const struct mproc__child *c);
/* White-box tests: make mproc__pal_child_exit_handle use the watcher thread even where a pidfd exists
 * (true), or not (false). A child with a helper keeps the helper's exit socket either way. */
void mproc__posix_force_exit_watcher(bool force);

/* The terminal side of a pseudo-terminal (pty.c), for mproc__pal_spawn: the descriptor the child's streams
 * on the terminal become (-1 once handed), and, after a successful spawn, closing the parent's copy. */
struct mproc__pty;
int mproc__posix_pty_slave(const struct mproc__pty *pty);
void mproc__posix_pty_handed(struct mproc__pty *pty);

/* ---- the tree helper (tree.c; see pal.h, "process trees") ----------------------------------------------
 * mproc__pal_spawn (spawn.c) starts a program through the helper for a process tree, and for
 * kill_on_parent_death where PR_SET_PDEATHSIG cannot serve. The helper is a fork of this process; it
 * calls `start` (async-signal-safe: spawn.c's vfork engine) to start the program, and then serves the
 * child's calls below. The child's `os` (mproc__posix_child) then holds the helper's state, its `handle`
 * the helper's exit socket. */
typedef struct mproc__posix_helper_opts {
  bool tree;                 /* a process tree: the program leads its own group (start sees to it), the
                                helper is the subreaper of its subtree */
  bool kill_on_parent_death; /* kill the program / the tree when this process dies; kill what the tree
                                left running when the child is released */
} mproc__posix_helper_opts;
/* Start the program: 0 with *pid, or an errno (positive) if it could not be started. */
typedef int (*mproc__posix_helper_start_fn)(void *ctx, int64_t *pid);
/* 0; a positive errno when the program could not be started (the caller words the message, nothing is
 * left behind); or a negative MPROC_E* code with a message (the helper itself could not be started). */
int mproc__posix_helper_spawn(const mproc__posix_helper_opts *o, mproc__posix_helper_start_fn start, void *ctx,
                              struct mproc__child *child);
/* mproc__pal_wait, mproc__pal_signal (the program alone) and mproc__pal_child_release of such a child
 * (release frees the helper's state and clears mproc__posix_child.helper). */
int mproc__posix_helper_wait(struct mproc__child *c, int64_t deadline_ns);
int mproc__posix_helper_signal(struct mproc__child *c, int sig);
void mproc__posix_helper_release(struct mproc__child *c);

/* A pipe whose ends are close-on-exec from the start. Where pipe2 exists (Linux, the BSDs) that is
 * atomic, so no other thread's fork+exec can inherit the ends; macOS has no pipe2, so there the flags
 * are set right after creation (a short window; untested here). */
static inline int mproc__posix_pipe_cloexec(int fds[2]) {
#if defined(__APPLE__)
  if (pipe(fds) != 0) return -1;
  (void)fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  (void)fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  return 0;
#else
  return pipe2(fds, O_CLOEXEC);
#endif
}

/* ---- credentials.c: credentials and limits of a child program (a helper of spawn.c) ---------------
 * The POSIX block of mproc__spawn_req resolved in the parent (names looked up, ids and limits checked),
 * so that the child only makes system calls. See the top of credentials.c. */
struct mproc__spawn_req;
typedef struct mproc__posix_limit {
  int res;  /* RLIMIT_* */
  int kind; /* mproc__rlimit_kind, for messages */
  struct rlimit rl;
} mproc__posix_limit;
typedef struct mproc__posix_creds {
  bool set_uid, set_gid, set_groups;
  bool drop_groups; /* user or group without extra_groups: setgroups(0), EPERM ignored */
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  size_t ngroups;
  int umask; /* -1: unchanged */
  mproc__posix_limit *limits;
  size_t nlimits;
} mproc__posix_creds;
/* The steps the child reports through the error pipe (0 is the exec, and the steps before it). */
enum {
  MPROC__POSIX_STEP_SETRLIMIT = 1,
  MPROC__POSIX_STEP_SETGROUPS,
  MPROC__POSIX_STEP_SETGID,
  MPROC__POSIX_STEP_SETUID
};
/* Resolve req's block into *c: 0, or an error (MPROC_ENOENT unknown name, MPROC_EINVAL, MPROC_ENOTSUP
 * a resource this system lacks, MPROC_ENOMEM) with nothing to free. */
int mproc__posix_creds_make(const struct mproc__spawn_req *req, mproc__posix_creds *c);
void mproc__posix_creds_free(mproc__posix_creds *c);
/* Whether the child must change its user, group or groups (then it must be a fork child, not vfork). */
static inline bool mproc__posix_creds_ids(const mproc__posix_creds *c) {
  return c->set_uid || c->set_gid || c->set_groups || c->drop_groups;
}
/* Whether the child has anything of c to do. */
static inline bool mproc__posix_creds_any(const mproc__posix_creds *c) {
  return mproc__posix_creds_ids(c) || c->umask >= 0 || c->nlimits > 0;
}
/* In the child (system calls only): umask, limits, groups, gid, uid. 0, or -1 with errno and the step
 * (and the limit's index) that failed. */
int mproc__posix_creds_apply(const mproc__posix_creds *c, int *step, size_t *index);
/* In the parent: the start error for a step the child failed with err (MPROC_EPERM for EPERM). */
int mproc__posix_creds_fail(const struct mproc__spawn_req *req, const mproc__posix_creds *c, const char *path, int step,
                            size_t index, int err);

#endif
