/* POSIX PAL: pseudo-terminals for a child's standard streams (MPROC_PTY).
 *
 * posix_openpt + grantpt + unlockpt are in the C library (no libutil for openpty). The slave is opened
 * with TIOCGPTPEER on Linux 4.13+, which opens exactly the peer of our master without a path lookup (no
 * window in which /dev/pts/N could name another terminal); elsewhere, or on an older kernel, by the name
 * ptsname_r gives (ptsname under the global lock where there is no ptsname_r). Every descriptor is
 * close-on-exec; the master is non-blocking (the parent waits in poll with a deadline) and the slave
 * blocking, as programs expect of a terminal. mproc__pal_spawn makes the slave the child's controlling
 * terminal and closes the parent's copy, so the master reads end of file (EIO) once the child's side has
 * closed.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* ptsname_r */
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "../pal.h"
#include "posix.h"

struct mproc__pty {
  int slave; /* the child's side until mproc__pal_spawn hands it over, then -1 */
  char veof; /* the terminal's end-of-file character */
};

#if defined(__linux__) && !defined(TIOCGPTPEER)
#define TIOCGPTPEER _IO('T', 0x41) /* <asm-generic/ioctls.h>, Linux 4.13 */
#endif

static int open_slave(int master) {
#if defined(__linux__)
  int peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (peer >= 0 || (errno != EINVAL && errno != ENOTTY)) return peer;
#endif
  char name[128];
#if defined(__linux__) || defined(__FreeBSD__)
  if (ptsname_r(master, name, sizeof name) != 0) return -1;
#else /* macOS before 13.4, the other BSDs: ptsname's static buffer, under our lock (untested here) */
  mproc__pal_global_lock();
  const char *n = ptsname(master);
  size_t len = n ? strlen(n) : 0;
  if (n && len < sizeof name) memcpy(name, n, len + 1);
  mproc__pal_global_unlock();
  if (!n || len >= sizeof name) return -1;
#endif
  int fd;
  do fd = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  while (fd == -1 && errno == EINTR);
  return fd;
}

int mproc__pal_pty_open(unsigned cols, unsigned rows, mproc__pty **out_pty, mproc_os_handle *out, mproc_os_handle *in) {
  *out_pty = NULL;
  *out = *in = MPROC_NO_HANDLE;
  mproc__pty *t = (mproc__pty *)calloc(1, sizeof *t);
  if (!t) return mproc__fail(MPROC_ENOMEM, "pty: out of memory");
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  int rc = 0, dup_in = -1;
  t->slave = -1;
  if (master < 0) {
    rc = mproc__fail_os(0, errno, "pty: posix_openpt");
  } else {
    (void)fcntl(master, F_SETFD, FD_CLOEXEC); /* where posix_openpt ignores O_CLOEXEC */
    if (grantpt(master) != 0 || unlockpt(master) != 0)
      rc = mproc__fail_os(0, errno, "pty: grantpt/unlockpt");
    else if ((t->slave = open_slave(master)) < 0)
      rc = mproc__fail_os(0, errno, "pty: opening the terminal side");
    else if ((dup_in = fcntl(master, F_DUPFD_CLOEXEC, 3)) < 0)
      rc = mproc__fail_os(0, errno, "pty: dup of the master");
  }
  if (rc == 0) {
    struct winsize ws;
    memset(&ws, 0, sizeof ws);
    ws.ws_col = (unsigned short)cols;
    ws.ws_row = (unsigned short)rows;
    struct termios tio;
    if (ioctl(master, TIOCSWINSZ, &ws) != 0) rc = mproc__fail_os(0, errno, "pty: TIOCSWINSZ");
    if (rc == 0 && tcgetattr(t->slave, &tio) == 0) t->veof = (char)tio.c_cc[VEOF];
    if (!t->veof) t->veof = 4; /* Ctrl-D */
    if (rc == 0) rc = mproc__pal_set_blocking(master, false);
  }
  if (rc) {
    if (master >= 0) close(master);
    if (dup_in >= 0) close(dup_in);
    if (t->slave >= 0) close(t->slave);
    free(t);
    return rc;
  }
  *out_pty = t;
  *out = master;
  *in = dup_in;
  return 0;
}

int mproc__posix_pty_slave(const mproc__pty *pty) { return pty ? pty->slave : -1; }

void mproc__posix_pty_handed(mproc__pty *pty) {
  if (pty && pty->slave >= 0) close(pty->slave);
  if (pty) pty->slave = -1;
}

size_t mproc__pal_pty_eof(const mproc__pty *pty, bool partial_line, char *buf) {
  char c = pty ? pty->veof : 4;
  buf[0] = buf[1] = c;
  return partial_line ? 2 : 1;
}

void mproc__pal_pty_close(mproc__pty *pty) {
  if (!pty) return;
  mproc__posix_pty_handed(pty);
  free(pty);
}
