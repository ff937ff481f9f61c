/* Windows PAL: handing handles to other processes (pal.h, "handing handles to other processes, and the
 * fork server"). The receiver pulls: the sender parks a copy of each handle in its own process and
 * sends where it is; the receiver takes it with DuplicateHandle(DUPLICATE_CLOSE_SOURCE). A handle never
 * received so stays in the sender, never in the receiver (CPython pushes into destination_pid instead,
 * which leaves it in a receiver that never takes it). The fork server's mechanisms need fork: the
 * portable code reaches them only after mproc__pal_fork_supported() said true, so these only report
 * MPROC_ENOTSUP. */
#include "win32.h"

#include "../pal.h"
#include "../wire.h"

/* ---- handles to a running process -------------------------------------------------------------- */

/* A process's creation time, which with its pid names it (a pid alone may be reused). 0 if unknown. */
static uint64_t created(HANDLE proc) {
  FILETIME c, x, k, u;
  if (!GetProcessTimes(proc, &c, &x, &k, &u)) return 0;
  return ((uint64_t)c.dwHighDateTime << 32) | c.dwLowDateTime;
}

int mproc__pal_conn_send_handles(const mproc__conn_end *e, const void *hdr, size_t hlen, unsigned char *body,
                                 size_t blen, size_t at, const mproc_os_handle *hs, size_t n) {
  if (e->wr == MPROC_NO_HANDLE || e->bulk != MPROC_NO_HANDLE)
    return mproc__fail(MPROC_ENOTSUP, "this connection cannot carry handles");
  HANDLE self = GetCurrentProcess(), parked[MPROC__PAL_MAX_FDS];
  if (n > MPROC__PAL_MAX_FDS) return mproc__fail(MPROC_EINVAL, "%zu handles in one message", n);
  mproc__wire_put_le64(body + at, (uint64_t)GetCurrentProcessId());
  mproc__wire_put_le64(body + at + 8, created(self));
  size_t done = 0;
  int rc = 0;
  for (; done < n; ++done) {
    if (!DuplicateHandle(self, MPROC__H(hs[done]), self, &parked[done], 0, FALSE, DUPLICATE_SAME_ACCESS)) {
      rc = mproc__fail_os(0, (int)GetLastError(), "DuplicateHandle of handle %p", (void *)MPROC__H(hs[done]));
      break;
    }
    mproc__wire_put_le64(body + at + MPROC__PAL_ORIGIN_SIZE + 8 * done, (uint64_t)(uintptr_t)parked[done]);
  }
  if (!rc) rc = mproc__pal_conn_send(e->wr, hdr, hlen, body, blen);
  if (rc)
    for (size_t i = 0; i < done; ++i) CloseHandle(parked[i]);
  return rc;
}

int mproc__pal_conn_recv_handles(mproc_os_handle h, void *buf, size_t cap, int64_t deadline_ns, size_t *n,
                                 mproc_os_handle *fds, size_t maxfds, size_t *nfds) {
  (void)h;
  (void)buf;
  (void)cap;
  (void)deadline_ns;
  (void)fds;
  (void)maxfds;
  *n = *nfds = 0;
  return mproc__fail(MPROC_ENOTSUP, "handles come inline on Windows");
}

int mproc__pal_handles_take(const unsigned char *pal_part, size_t n, const mproc_os_handle *fds, size_t nfds,
                            mproc_os_handle *out) {
  (void)fds;
  if (nfds) return mproc__fail(MPROC_ESYS, "descriptors came with a message on Windows");
  uint64_t pid = mproc__wire_get_le64(pal_part), when = mproc__wire_get_le64(pal_part + 8);
  if (pid == 0 || pid > UINT32_MAX) return mproc__fail(MPROC_ESYS, "a message with handles names no sender");
  bool self = (DWORD)pid == GetCurrentProcessId();
  HANDLE from = self ? GetCurrentProcess()
                     : OpenProcess(PROCESS_DUP_HANDLE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
  if (!from) {
    DWORD err = GetLastError();
    if (err == ERROR_INVALID_PARAMETER)
      return mproc__fail(MPROC_ESYS, "the sender of the handles (pid %llu) has ended before they were received",
                         (unsigned long long)pid);
    return mproc__fail_os(0, (int)err, "OpenProcess(PROCESS_DUP_HANDLE) on the sender of the handles, pid %llu",
                          (unsigned long long)pid);
  }
  int rc = 0;
  size_t got = 0;
  DWORD status = 0;
  if (created(from) != when || !GetExitCodeProcess(from, &status) || status != STILL_ACTIVE)
    rc = mproc__fail(MPROC_ESYS, "the sender of the handles (pid %llu) has ended before they were received",
                     (unsigned long long)pid);
  for (; got < n && !rc; ++got) {
    uint64_t v = mproc__wire_get_le64(pal_part + MPROC__PAL_ORIGIN_SIZE + 8 * got);
    HANDLE h = NULL;
    if (v == 0 || v > UINT32_MAX ||
        !DuplicateHandle(from, (HANDLE)(uintptr_t)v, GetCurrentProcess(), &h, 0, FALSE,
                         DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE)) {
      rc = mproc__fail_os(0, (int)GetLastError(), "taking handle %llu from the sender, pid %llu", (unsigned long long)v,
                          (unsigned long long)pid);
      break;
    }
    out[got] = (mproc_os_handle)(intptr_t)h;
  }
  if (!self) CloseHandle(from);
  if (rc)
    for (size_t i = 0; i < got; ++i) mproc__pal_close(out[i]);
  return rc;
}

/* ---- descriptor passing for the fork server: needs fork ------------------------------------------ */

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

void mproc__pal_child_events_drain(void) {}

int mproc__pal_reap(int64_t which, int64_t *pid, int *code) {
  (void)which;
  *pid = 0;
  *code = 0;
  return 0;
}
