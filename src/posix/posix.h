/* Internal to the POSIX PAL: small helpers shared by its files. */
#ifndef MPROC_POSIX_H
#define MPROC_POSIX_H

#include <fcntl.h>
#include <unistd.h>

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
