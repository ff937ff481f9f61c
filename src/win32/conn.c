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
 * both. A zero read still pending when the wait ends is left for the next wait, and cancelled when its
 * handle is closed (mproc__pal_close); a table of connection handles keeps it, with the events of the
 * handle's receives and sends ("what is kept for a connection handle" below says why).
 * More than MAXIMUM_WAIT_OBJECTS handles: helper threads wait on groups of 63 (plus a shared stop
 * event) and the caller waits on the threads.
 */
#include <stdlib.h>
#include <string.h>

#include "pipe.h"
#include "spawn.h" /* mproc__win32_wait_ms */
#include "win32.h"

#define CONN_BUFFER MPROC__WIN32_CONN_BUFFER

/* ---- what is kept for a connection handle --------------------------------------------------- */

/* A zero-byte read waiting for a connection handle to become readable. It stays pending between waits:
 * one made by a wait is left in place when that wait ends (only a read that completed is started again,
 * by the next wait, to learn whether the data it saw is still there), and it is cancelled only when its
 * handle is closed (mproc__pal_close calls mproc__win32_conn_forget). Cancelling costs a round trip
 * through wine's server and the I/O's thread: about 0.7 ms each under wine 8 on a loaded machine (1-5 us
 * on Windows), and a server waiting on many connections cancelled a read on each idle one at every
 * wake-up, twice (mproc_wait's check of each connection, then its wait): the Manager's round trips cost
 * 20-40x Linux's under wine. A read behind the zero read (a receive) completes in turn as data arrives,
 * and a zero read whose thread ended is aborted (both verified under wine 8; Windows does the same), so
 * the next wait starts it again. The reads live in a table of their handles, under one lock: a wait
 * finds the read of its handle there, whichever thread made it. Each entry also keeps the events of the
 * handle's receives and sends (io_event). */
typedef struct zero_read {
  HANDLE h;
  OVERLAPPED ov; /* its event is the read's for the life of the entry */
  bool pending;
  HANDLE io_ev[2]; /* the events of receives (0) and sends (1) on h, made on first use (NULL: none yet) */
  bool io_busy[2]; /* ... one is in use: a second receive or send at once makes an event of its own */
} zero_read;

static SRWLOCK g_zr_lock = SRWLOCK_INIT;
static zero_read **g_zr; /* entries are never moved: the system writes into ov while a read is pending */
static size_t g_zr_n, g_zr_cap;
static volatile LONG g_zr_any;    /* 1 once an entry was made: closing costs nothing in a process without */
static volatile LONG g_zr_events; /* the events the entries hold (mproc__win32_conn_kept_handles) */

/* An event for an entry (lock held), counted; NULL with an error. */
static HANDLE kept_event(void) {
  HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (!ev)
    mproc__fail_os(0, (int)GetLastError(), "CreateEventW");
  else
    InterlockedIncrement(&g_zr_events);
  return ev;
}

int mproc__win32_conn_kept_handles(void) { return (int)InterlockedCompareExchange(&g_zr_events, 0, 0); }

static char g_zero_buf; /* never written: a zero-byte read moves nothing */

/* h's entry in *out, made if it has none (lock held): 0 or an error. */
static int zr_get(HANDLE h, zero_read **out) {
  for (size_t i = 0; i < g_zr_n; ++i)
    if ((*out = g_zr[i])->h == h) return 0;
  *out = NULL;
  if (g_zr_n == g_zr_cap) {
    size_t cap = g_zr_cap ? 2 * g_zr_cap : 16;
    zero_read **t = (zero_read **)realloc(g_zr, cap * sizeof *t);
    if (!t) return mproc__fail(MPROC_ENOMEM, "wait: out of memory");
    g_zr = t;
    g_zr_cap = cap;
  }
  zero_read *z = (zero_read *)calloc(1, sizeof *z);
  if (!z) return mproc__fail(MPROC_ENOMEM, "wait: out of memory");
  z->h = h; /* its events are made on first use */
  g_zr[g_zr_n++] = *out = z;
  InterlockedExchange(&g_zr_any, 1);
  return 0;
}

/* Make sure a zero read waits on z's handle (lock held): 1 if the handle is ready now (data waiting, end
 * of file, or an error that the receive will report), 0 if the read is pending, or an error (no event). */
static int zr_arm(zero_read *z) {
  if (z->pending) return 0;
  if (!z->ov.hEvent && !(z->ov.hEvent = kept_event())) return MPROC_ESYS;
  mproc__win32_overlapped_init(&z->ov, z->ov.hEvent);
  if (ReadFile(z->h, &g_zero_buf, 0, NULL, &z->ov)) return 1;
  if (GetLastError() != ERROR_IO_PENDING) return 1;
  z->pending = true;
  return 0;
}

/* Whether z's pending read has completed with the handle ready (lock held). Aborted (its thread ended,
 * or someone cancelled the handle's I/O) is not ready: the next zr_arm starts another. */
static bool zr_ready(zero_read *z) {
  DWORD n;
  if (!z->pending) return false;
  if (GetOverlappedResult(z->h, &z->ov, &n, FALSE)) {
    z->pending = false;
    return true;
  }
  DWORD e = GetLastError();
  if (e == ERROR_IO_INCOMPLETE) return false;
  z->pending = false;
  return e != ERROR_OPERATION_ABORTED;
}

void mproc__win32_conn_forget(HANDLE h) {
  if (!InterlockedCompareExchange(&g_zr_any, 0, 0)) return;
  AcquireSRWLockExclusive(&g_zr_lock);
  for (size_t i = 0; i < g_zr_n; ++i) {
    zero_read *z = g_zr[i];
    if (z->h != h) continue;
    if (z->pending) { /* never leave a read pending on memory about to go */
      DWORD n;
      CancelIoEx(h, &z->ov);
      GetOverlappedResult(h, &z->ov, &n, TRUE);
    }
    HANDLE evs[3] = {z->ov.hEvent, z->io_ev[0], z->io_ev[1]};
    for (int k = 0; k < 3; ++k)
      if (evs[k]) {
        CloseHandle(evs[k]);
        InterlockedDecrement(&g_zr_events);
      }
    free(z);
    g_zr[i] = g_zr[--g_zr_n];
    break;
  }
  ReleaseSRWLockExclusive(&g_zr_lock);
}

/* The event for one receive (dir 0) or send (dir 1) on h, in *ev: the one kept in h's entry (*z set), or
 * a new one (*z NULL) when that is in use or cannot be kept. Making an event for every message cost two
 * calls to wine's server per message (CreateEventW, CloseHandle) out of five. 0 or an error. */
static int io_event(HANDLE h, int dir, zero_read **z, HANDLE *ev) {
  AcquireSRWLockExclusive(&g_zr_lock);
  *ev = NULL;
  if (zr_get(h, z) == 0 && !(*z)->io_busy[dir]) {
    if (!(*z)->io_ev[dir]) (*z)->io_ev[dir] = kept_event();
    if ((*ev = (*z)->io_ev[dir]) != NULL) (*z)->io_busy[dir] = true;
  }
  ReleaseSRWLockExclusive(&g_zr_lock);
  if (*ev) return 0;
  *z = NULL;
  if (!(*ev = CreateEventW(NULL, TRUE, FALSE, NULL))) return mproc__fail_os(0, (int)GetLastError(), "CreateEventW");
  return 0;
}

static void io_event_done(HANDLE ev, int dir, zero_read *z) {
  if (!z) {
    CloseHandle(ev);
    return;
  }
  AcquireSRWLockExclusive(&g_zr_lock);
  z->io_busy[dir] = false;
  ReleaseSRWLockExclusive(&g_zr_lock);
}

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
  zero_read *z;
  HANDLE ev;
  int rc = io_event(MPROC__H(h), 1, &z, &ev);
  if (rc) return rc;
  size_t n = 0;
  rc = mproc__win32_write_with(MPROC__H(h), ev, p1, n1, INT64_MAX, &n);
  if (rc == 0) rc = mproc__win32_write_with(MPROC__H(h), ev, p2, n2, INT64_MAX, &n);
  io_event_done(ev, 1, z);
  return rc;
}

bool mproc__pal_conn_peer_gone(mproc_os_handle h) {
  (void)h;
  return false;
}

int mproc__pal_conn_recv(mproc_os_handle h, void *buf, size_t cap, int64_t deadline_ns, size_t *n) {
  *n = 0;
  if (cap == 0) return 0;
  zero_read *z;
  HANDLE ev;
  int rc = io_event(MPROC__H(h), 0, &z, &ev);
  if (rc) return rc;
  rc = mproc__win32_read_with(MPROC__H(h), ev, buf, cap, deadline_ns, n);
  io_event_done(ev, 0, z);
  return rc;
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

int mproc__pal_wait_ready(const mproc__wait_item *items, size_t n, int64_t deadline_ns, bool *ready) {
  zero_read **zr = (zero_read **)calloc(n ? n : 1, sizeof *zr);
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
    AcquireSRWLockExclusive(&g_zr_lock);
    for (size_t i = 0; i < n; ++i) {
      ready[i] = false;
      HANDLE h = MPROC__H(items[i].h);
      bool dup = false; /* WaitForMultipleObjects refuses a handle listed twice */
      if (items[i].kind == MPROC__WAIT_CONN) {
        int st = (rc = zr_get(h, &zr[i])) != 0 ? rc : zr_arm(zr[i]);
        if (st < 0) {
          rc = st;
          break;
        }
        if (st > 0) ready[i] = any = true;
        h = zr[i]->ov.hEvent;
        if (!zr[i]->pending) continue;
      }
      for (size_t j = 0; j < nh && !dup; ++j) dup = hs[j] == h;
      if (!dup) hs[nh++] = h;
    }
    ReleaseSRWLockExclusive(&g_zr_lock);
    if (rc) break;
    if (!any && nh > 0) rc = wait_many(hs, nh, deadline_ns);
    /* Whatever ended the wait, look at everything: several may be ready. Pending zero reads stay. */
    AcquireSRWLockExclusive(&g_zr_lock);
    for (size_t i = 0; i < n; ++i) {
      if (items[i].kind == MPROC__WAIT_CONN) {
        if (zr_ready(zr[i])) ready[i] = true;
      } else if (WaitForSingleObject(MPROC__H(items[i].h), 0) == WAIT_OBJECT_0) {
        ready[i] = true;
      }
      any = any || ready[i];
    }
    ReleaseSRWLockExclusive(&g_zr_lock);
    if (rc < 0 && rc != MPROC_ETIMEDOUT) break; /* an error: reported even if something is ready */
    if (any) {
      rc = 0;
      break;
    }
    if (rc == 0 && (nh == 0 || mproc__ms_until(deadline_ns) == 0)) rc = MPROC_ETIMEDOUT;
    if (rc) break;
    /* woken with nothing ready (a zero read aborted, another thread's wait took a completion): again */
  }
  free(zr);
  free(hs);
  return rc;
}
