/* Windows PAL: descriptor passing and the fork server's mechanisms (pal.h, "descriptor passing and the
 * fork server"), which need fork: the portable code reaches them only after mproc__pal_fork_supported()
 * said true, so these only report MPROC_ENOTSUP. */
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
                             size_t *nfds, int64_t *sender) {
  (void)h;
  (void)buf;
  (void)cap;
  (void)fds;
  (void)maxfds;
  *n = 0;
  *nfds = 0;
  if (sender) *sender = -1;
  return mproc__fail(MPROC_ENOTSUP, "passing descriptors needs fork (POSIX)");
}

bool mproc__pal_conn_tell_senders(mproc_os_handle h) {
  (void)h;
  return false;
}

int mproc__pal_child_events_open(mproc_os_handle *h) {
  *h = MPROC_NO_HANDLE;
  return mproc__fail(MPROC_ENOTSUP, "a fork server needs fork (POSIX)");
}

void mproc__pal_child_events_close(void) {}

int mproc__pal_reap_any(int64_t *pid, int *code) {
  *pid = 0;
  *code = 0;
  return 0;
}
