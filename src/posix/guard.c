/* POSIX PAL: the main guard's trust in a bootstrap (see pal.h).
 *
 * A spawned child's boot link is one end of a socketpair(AF_UNIX, SOCK_STREAM) that the parent made
 * and handed down. The kernel remembers who made a socket pair: SO_PEERCRED (Linux) gives the pid,
 * uid and gid of the process that created the other end, at the moment it was created, and nobody
 * can forge it. So a boot link is taken only when:
 *   - the handle is a Unix-domain stream socket (not a file, a pipe, a terminal, a TCP socket);
 *   - its peer's pid is our parent's (getppid: if the real parent has died we were re-parented, and
 *     getppid no longer names it, so a reused pid cannot pass either);
 *   - its peer's effective uid is ours;
 *   - the parent runs our executable file: /proc/<ppid>/exe and /proc/self/exe are the same device
 *     and inode (stat follows the kernel's link to the mapped file, not a path the parent could
 *     change).
 * Elsewhere (macOS, the BSDs: written, untested) getpeereid gives the uid but not the pid, and there is
 * no /proc: the check says MPROC_ENOTSUP, and the guard refuses. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* struct ucred */
#endif

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif

#include "../pal.h"
#include "posix.h"

bool mproc__pal_secure_exec(void) {
#if defined(__linux__)
  return getauxval(AT_SECURE) != 0;
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
  return issetugid() != 0;
#else
  return getuid() != geteuid() || getgid() != getegid();
#endif
}

uint64_t mproc__pal_handle_max(void) { return INT_MAX; }

int mproc__pal_boot_link_check(mproc_os_handle h) {
  int fd = (int)h;
  struct stat st;
  if (fstat(fd, &st) != 0) return mproc__fail_os(MPROC_EPERM, errno, "the boot handle %d is not open", fd);
  if (!S_ISSOCK(st.st_mode)) return mproc__fail(MPROC_EPERM, "the boot handle %d is not a socket", fd);
  int type = 0;
  socklen_t tlen = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM)
    return mproc__fail(MPROC_EPERM, "the boot handle %d is not a stream socket", fd);
  struct sockaddr_storage sa;
  socklen_t salen = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &salen) != 0 || sa.ss_family != AF_UNIX)
    return mproc__fail(MPROC_EPERM, "the boot handle %d is not a Unix-domain socket", fd);
#if defined(__linux__) && defined(SO_PEERCRED)
  struct ucred cred;
  socklen_t clen = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || clen != sizeof cred)
    return mproc__fail_os(MPROC_EPERM, errno, "the boot handle %d has no peer credentials", fd);
  pid_t ppid = getppid();
  if (cred.pid != ppid)
    return mproc__fail(MPROC_EPERM, "the boot link's peer (pid %ld) is not this process's parent (pid %ld)",
                       (long)cred.pid, (long)ppid);
  if (cred.uid != geteuid())
    return mproc__fail(MPROC_EPERM, "the boot link's peer runs as user %ld, this process as %ld", (long)cred.uid,
                       (long)geteuid());
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/exe", (long)ppid);
  struct stat mine, theirs;
  if (stat("/proc/self/exe", &mine) != 0) return mproc__fail_os(MPROC_EPERM, errno, "cannot identify this executable");
  uint64_t id[4];
  mproc__posix_self_exe_known(&mine, id); /* the target's lookup, next, needs no stat of its own */
  if (stat(path, &theirs) != 0) return mproc__fail_os(MPROC_EPERM, errno, "cannot identify the parent's executable");
  if (mine.st_dev != theirs.st_dev || mine.st_ino != theirs.st_ino)
    return mproc__fail(MPROC_EPERM, "the parent runs another executable than this one");
  return 0;
#else
  return mproc__fail(MPROC_ENOTSUP, "this system cannot tell who made the boot link (no SO_PEERCRED)");
#endif
}
