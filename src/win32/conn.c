/*
 * Windows PAL: connections (message pipes) and waiting on connections and processes at once.
 *
 * A connection is a named pipe made by mproc__win32_pipe_pair (pipe.c): unique name, one instance,
 * PIPE_REJECT_REMOTE_CLIENTS, byte mode, both ends non-inheritable and BOTH overlapped, because either
 * end may be handed to a spawned child, which then does overlapped I/O on it just like the parent.
 * duplex: a PIPE_ACCESS_DUPLEX server and a read/write client; simplex: the reading end is a
 * PIPE_ACCESS_INBOUND server, the writing end a write-only client (with FILE_READ_ATTRIBUTES, which
 * GetNamedPipeInfo needs on a write-only end).
 *
 * Sending and receiving are the overlapped write / read with a deadline of pipe.c (mproc__pal_write,
 * mproc__pal_read): their contracts are the ones a connection needs. A receive that times out is
 * cancelled with CancelIoEx and its result collected, so bytes that arrived are returned, never lost;
 * ERROR_BROKEN_PIPE is end of file. A send has no deadline, so it is never cancelled and cannot lose
 * track of a partly consumed write; ERROR_BROKEN_PIPE / ERROR_NO_DATA there is MPROC_EPIPE.
 *
 * Waiting for readability without busy-polling: a zero-byte overlapped ReadFile on a byte pipe stays
 * pending until data arrives, then completes with 0 bytes and consumes nothing; it fails with
 * ERROR_BROKEN_PIPE once the peer has gone (libuv's "zero read"). Verified under wine 8 (pending while
 * empty, completes on the peer's write, completes at once when data is waiting, fails with
 * ERROR_BROKEN_PIPE when either end's peer closes, and CancelIoEx gives ERROR_OPERATION_ABORTED).
 * Its event goes into WaitForMultipleObjects beside process handles (sentinels), so one call waits for
 * both. Afterwards every zero read still pending is cancelled and collected before returning.
 * More than MAXIMUM_WAIT_OBJECTS handles: helper threads wait on groups of 63 (plus a shared stop
 * event) and the caller waits on the threads.
 */
#include <stdlib.h>
#include <string.h>

#include "pipe.h"
#include "spawn.h" /* mproc__win32_wait_ms */
#include "win32.h"

#define CONN_BUFFER MPROC__WIN32_CONN_BUFFER

/* ---- connections ------------------------------------------------------------------------------ */

int mproc__pal_conn_pair(bool duplex, mproc_os_handle *a, mproc_os_handle *b) {
  *a = *b = MPROC_NO_HANDLE;
  HANDLE server, client;
  int rc = mproc__win32_pipe_pair(MPROC__WIN32_CONN_PIPE_PREFIX,
                                  (duplex ? PIPE_ACCESS_DUPLEX : PIPE_ACCESS_INBOUND) | FILE_FLAG_OVERLAPPED,
                                  duplex ? CONN_BUFFER : 0, CONN_BUFFER,
                                  duplex ? (GENERIC_READ | GENERIC_WRITE) : (GENERIC_WRITE | FILE_READ_ATTRIBUTES),
                                  FILE_FLAG_OVERLAPPED, &server, &client);
  if (rc) return rc;
  *a = MPROC__OSH(server);
  *b = MPROC__OSH(client);
  return 0;
}

int mproc__pal_conn_ends(bool duplex, mproc__conn_end *a, mproc__conn_end *b) {
  mproc_os_handle ha, hb;
  int rc = mproc__pal_conn_pair(duplex, &ha, &hb);
  /* one handle serves both directions of an end; a one-way pipe's a only reads, b only writes */
  a->rd = ha;
  a->wr = duplex ? ha : MPROC_NO_HANDLE;
  b->rd = duplex ? hb : MPROC_NO_HANDLE;
  b->wr = hb;
  a->bulk = b->bulk = MPROC_NO_HANDLE; /* one pipe serves messages of every size */
  return rc;
}

int mproc__pal_conn_send(mproc_os_handle h, const void *p1, size_t n1, const void *p2, size_t n2) {
  if (mproc__win32_is_socket(h)) { /* a Listener/Client connection (listen.c says why not WriteFile) */
    int rc = mproc__win32_socket_send(h, p1, n1);
    return rc ? rc : mproc__win32_socket_send(h, p2, n2);
  }
  size_t n = 0;
  int rc = mproc__pal_write(h, p1, n1, INT64_MAX, &n);
  if (rc == 0) rc = mproc__pal_write(h, p2, n2, INT64_MAX, &n);
  return rc;
}

bool mproc__pal_conn_peer_gone(mproc_os_handle h) {
  (void)h;
  return false;
}

int mproc__pal_conn_recv(mproc_os_handle h, void *buf, size_t cap, int64_t deadline_ns, size_t *n) {
  return mproc__pal_read(h, buf, cap, deadline_ns, n);
}

mproc_os_handle mproc__pal_sentinel(const mproc__child *child, mproc_os_handle boot) {
  (void)boot;
  return child->handle;
}

/* ---- waiting on many handles ---------------------------------------------------------------------- */

/* Wait until one of n handles is signalled or the deadline. 0, MPROC_ETIMEDOUT or an error. */
static int wait_some(const HANDLE *hs, DWORD n, int64_t deadline_ns) {
  for (;;) {
    DWORD w = WaitForMultipleObjects(n, hs, FALSE, (DWORD)mproc__win32_wait_ms(deadline_ns));
    if (w < WAIT_OBJECT_0 + n || (w >= WAIT_ABANDONED_0 && w < WAIT_ABANDONED_0 + n)) return 0;
    if (w == WAIT_TIMEOUT) {
      if (mproc__ms_until(deadline_ns) != 0) continue; /* a wait capped below the deadline */
      return MPROC_ETIMEDOUT;
    }
    return mproc__fail_os(0, (int)GetLastError(), "wait: WaitForMultipleObjects on %lu handles", (unsigned long)n);
  }
}

#define GROUP (MAXIMUM_WAIT_OBJECTS - 1) /* handles per helper thread: the stop event takes one slot */

typedef struct waiter {
  HANDLE hs[MAXIMUM_WAIT_OBJECTS];
  DWORD n;
  DWORD err; /* set when its wait failed */
} waiter;

static DWORD WINAPI waiter_main(LPVOID p) {
  waiter *w = (waiter *)p;
  if (WaitForMultipleObjects(w->n, w->hs, FALSE, INFINITE) == WAIT_FAILED) w->err = GetLastError();
  return 0;
}

/* wait_some for any number of handles (up to 63 * 64): one helper thread per group of 63; the first
 * thread to end (one of its handles is signalled) ends the wait, the others are stopped and joined. */
static int wait_many(const HANDLE *hs, size_t n, int64_t deadline_ns) {
  if (n <= MAXIMUM_WAIT_OBJECTS) return wait_some(hs, (DWORD)n, deadline_ns);
  size_t groups = (n + GROUP - 1) / GROUP;
  if (groups > MAXIMUM_WAIT_OBJECTS)
    return mproc__fail(MPROC_EINVAL, "wait: %zu objects; Windows waits on at most %d at once", n,
                       GROUP * MAXIMUM_WAIT_OBJECTS);
  waiter *ws = (waiter *)calloc(groups, sizeof *ws);
  HANDLE threads[MAXIMUM_WAIT_OBJECTS];
  HANDLE stop = CreateEventW(NULL, TRUE, FALSE, NULL);
  int rc = 0;
  if (!stop) rc = mproc__fail_os(0, (int)GetLastError(), "wait: CreateEventW");
  if (!ws) rc = mproc__fail(MPROC_ENOMEM, "wait: out of memory");
  DWORD nt = 0;
  for (size_t g = 0; g < groups && rc == 0; ++g) {
    size_t first = g * GROUP, k = n - first < GROUP ? n - first : GROUP;
    memcpy(ws[g].hs, hs + first, k * sizeof(HANDLE));
    ws[g].hs[k] = stop;
    ws[g].n = (DWORD)k + 1;
    threads[nt] = CreateThread(NULL, 64 * 1024, waiter_main, &ws[g], STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
    if (!threads[nt])
      rc = mproc__fail_os(0, (int)GetLastError(), "wait: CreateThread");
    else
      ++nt;
  }
  if (rc == 0) rc = wait_some(threads, nt, deadline_ns);
  if (stop) SetEvent(stop);
  if (nt) WaitForMultipleObjects(nt, threads, TRUE, INFINITE);
  for (DWORD i = 0; i < nt; ++i) {
    CloseHandle(threads[i]);
    if (rc == 0 && ws[i].err) /* else a thread that failed at once would make the caller spin */
      rc = mproc__fail_os(0, (int)ws[i].err, "wait: WaitForMultipleObjects on %lu handles", (unsigned long)ws[i].n);
  }
  if (stop) CloseHandle(stop);
  free(ws);
  return rc;
}

/* A zero-byte read waiting for a connection to become readable. */
typedef struct zero_read {
  OVERLAPPED ov;
  bool pending;
} zero_read;

static char g_zero_buf; /* never written: a zero-byte read moves nothing */

/* Start one: 1 if the connection is ready now (data waiting, end of file, or an error that the receive
 * will report), 0 if the read is pending, or an error (no event could be made). */
static int zero_read_start(HANDLE h, zero_read *zr) {
  mproc__win32_overlapped_init(&zr->ov, NULL);
  zr->pending = false;
  zr->ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL); /* new: not signalled */
  if (!zr->ov.hEvent) return mproc__fail_os(0, (int)GetLastError(), "wait: CreateEventW");
  if (ReadFile(h, &g_zero_buf, 0, NULL, &zr->ov)) return 1;
  if (GetLastError() != ERROR_IO_PENDING) return 1;
  zr->pending = true;
  return 0;
}

/* Finish one (cancelling it if it still waits): whether it saw the connection ready. */
static bool zero_read_end(HANDLE h, zero_read *zr) {
  bool ready = false;
  if (zr->pending) {
    DWORD n;
    if (WaitForSingleObject(zr->ov.hEvent, 0) != WAIT_OBJECT_0) CancelIoEx(h, &zr->ov);
    ready = GetOverlappedResult(h, &zr->ov, &n, TRUE) || GetLastError() != ERROR_OPERATION_ABORTED;
    zr->pending = false;
  }
  if (zr->ov.hEvent) CloseHandle(zr->ov.hEvent);
  zr->ov.hEvent = NULL;
  return ready;
}

int mproc__pal_wait_ready(const mproc__wait_item *items, size_t n, int64_t deadline_ns, bool *ready) {
  zero_read *zr = (zero_read *)calloc(n ? n : 1, sizeof *zr);
  HANDLE *hs = (HANDLE *)malloc((n ? n : 1) * sizeof *hs);
  if (!zr || !hs) {
    free(zr);
    free(hs);
    return mproc__fail(MPROC_ENOMEM, "wait: out of memory");
  }
  int rc;
  for (;;) {
    size_t nh = 0;
    bool any = false;
    rc = 0;
    for (size_t i = 0; i < n; ++i) {
      ready[i] = false;
      HANDLE h = MPROC__H(items[i].h);
      if (items[i].kind == MPROC__WAIT_CONN) {
        int st = rc ? 0 : zero_read_start(h, &zr[i]);
        if (st < 0) rc = st;
        if (st > 0) ready[i] = any = true;
        if (zr[i].pending) hs[nh++] = zr[i].ov.hEvent;
      } else {
        bool dup = false; /* WaitForMultipleObjects refuses a handle listed twice */
        for (size_t j = 0; j < nh && !dup; ++j) dup = hs[j] == h;
        if (!dup) hs[nh++] = h;
      }
    }
    if (!rc && !any && nh > 0) rc = wait_many(hs, nh, deadline_ns);
    /* Whatever ended the wait, look at everything: several may be ready. Every zero read ends here. */
    for (size_t i = 0; i < n; ++i) {
      HANDLE h = MPROC__H(items[i].h);
      if (items[i].kind == MPROC__WAIT_CONN) {
        if (zero_read_end(h, &zr[i])) ready[i] = true;
      } else if (WaitForSingleObject(h, 0) == WAIT_OBJECT_0) {
        ready[i] = true;
      }
      any = any || ready[i];
    }
    if (rc < 0 && rc != MPROC_ETIMEDOUT) break; /* an error: reported even if something is ready */
    if (any) {
      rc = 0;
      break;
    }
    if (rc == 0 && (nh == 0 || mproc__ms_until(deadline_ns) == 0)) rc = MPROC_ETIMEDOUT;
    if (rc) break;
    /* woken with nothing ready (cannot happen as far as we know): wait again for the rest of the time */
  }
  free(zr);
  free(hs);
  return rc;
}
