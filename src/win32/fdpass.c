/* Windows PAL: descriptor passing and the fork server (pal.h, "descriptor passing and the fork
 * server"), which need fork: the portable code reaches them only after mproc__pal_fork_supported() said
 * true, so these only report MPROC_ENOTSUP (the server's loop exits). */
#include "../pal.h"

int mproc__pal_conn_send_fds(mproc_os_handle h, const void *buf, size_t len, const mproc_os_handle *fds, size_t nfds) {
  (void)h;
  (void)buf;
  (void)len;
  (void)fds;
  (void)nfds;
  return mproc__fail(MPROC_ENOTSUP, "passing descriptors needs fork (POSIX)");
}

int mproc__pal_conn_recv_fds(mproc_os_handle h, void *buf, size_t cap, size_t *n, mproc_os_handle *fds, size_t maxfds,
                             size_t *nfds) {
  (void)h;
  (void)buf;
  (void)cap;
  (void)fds;
  (void)maxfds;
  *n = 0;
  *nfds = 0;
  return mproc__fail(MPROC_ENOTSUP, "passing descriptors needs fork (POSIX)");
}

void mproc__pal_forkserver_serve(mproc_os_handle ctl, mproc__fs_child_fn child_fn, mproc__fs_status_fn status_fn) {
  (void)ctl;
  (void)child_fn;
  (void)status_fn;
  mproc__pal_exit_now(70);
}
