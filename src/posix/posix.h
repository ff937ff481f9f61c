/* Internal to the POSIX PAL: small helpers shared by its files. Each lives in the file of the pal.h
 * section it serves (noted below); the POSIX PAL has no helper file of its own. */
#ifndef MPROC_POSIX_H
#define MPROC_POSIX_H

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
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

/* The library's global lock (mproc__pal_global_lock, pal_core.c). mproc__pal_fork (process.c) stores a
 * fresh mutex in it in the child, which then holds it alone. */
extern pthread_mutex_t mproc__posix_global_mutex;

/* A close-on-exec pidfd of pid (process.c; Linux 5.3+), or -1 (errno set; ENOSYS where there are none). Safe only
 * while pid cannot have been reaped: it is our child, not yet waited for. */
int mproc__posix_pidfd_open(int64_t pid);

struct iovec;
/* writev that never raises SIGPIPE (pipe.c; a reader that has gone gives -1 with EPIPE): one system call,
 * pwritev2 with RWF_NOSIGNAL, where the kernel has it (Linux 6.18 and later; learnt on the first call),
 * else writev inside the guard above (three). Errors as writev's, EINTR included. */
ssize_t mproc__posix_writev_nosigpipe(int fd, const struct iovec *iov, int n);
/* White-box tests: use the guard even where RWF_NOSIGNAL works (true), or find out again (false). */
void mproc__posix_force_sigpipe_guard(bool force);

/* Wait until fd is ready for `events` (poll) or the deadline (pipe.c): 0, MPROC_ETIMEDOUT, or an error. */
int mproc__posix_wait_fd(int fd, short events, int64_t deadline);

/* The POSIX state of a child (mproc__child.os), made on first need (spawn.c), freed by
 * mproc__pal_child_release. */
typedef struct mproc__posix_child {
  /* ---- the exit handle's watcher (spawn.c, mproc__pal_child_exit_handle) ---- */
  int exit_rd; /* the read end of the watcher thread's pipe, or -1 */
} mproc__posix_child;
/* White-box tests: make mproc__pal_child_exit_handle use the watcher thread even where a pidfd exists
 * (true), or not (false). */
void mproc__posix_force_exit_watcher(bool force);

/* The terminal side of a pseudo-terminal (pty.c), for mproc__pal_spawn: the descriptor the child's streams
 * on the terminal become (-1 once handed), and, after a successful spawn, closing the parent's copy. */
struct mproc__pty;
int mproc__posix_pty_slave(const struct mproc__pty *pty);
void mproc__posix_pty_handed(struct mproc__pty *pty);

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

#endif
