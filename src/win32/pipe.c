/*
 * Windows PAL: pipes, files, and I/O with deadlines on the parent's ends of the pipes (subprocess).
 *
 * Pipes are named pipes, not CreatePipe pipes: the parent's end must be overlapped (FILE_FLAG_OVERLAPPED)
 * so that reads and writes can wait with a deadline, be cancelled, and run in all three directions at
 * once from one thread. The child's end is synchronous, as programs expect of their stdio. Each pipe has
 * a unique, unguessable name, FILE_FLAG_FIRST_PIPE_INSTANCE (fails if someone created the name first),
 * one instance, PIPE_REJECT_REMOTE_CLIENTS and a DACL that admits the current user alone; the parent
 * connects the child's end itself at once.
 *
 * Writes and cancellation. A write to a byte pipe completes as soon as its unread remainder fits in the
 * pipe's outbound buffer (quota); until then it is pending and the reader may already be consuming its
 * first bytes. If such a write is cancelled (CancelIoEx at a deadline), the bytes the reader already
 * took are not reported: GetOverlappedResult says 0 although the reader got some. Measured under wine 8
 * (a 200000-byte write into a 64 KiB pipe, 20000 bytes read, cancelled: reported 0); the NT named-pipe
 * driver behaves the same way: the cancelled queue entry is dropped, its consumed prefix with it. A write
 * no larger than the outbound buffer cannot be split like that: by the time its first byte could be read
 * (it is at the head of the queue) all of it fits, so it has completed. Cancelling it is therefore
 * all-or-nothing and exact. So every write here is at most the pipe's outbound buffer size, read back
 * with GetNamedPipeInfo because the size asked for at creation is only advisory. A cancelled read is
 * exact anyway: a pending read of a byte pipe completes as soon as any data arrives.
 *
 * Reads are overlapped reads straight into the caller's buffer (communicate: into the mproc__buf, with
 * at least READ_RESERVE bytes of room, so big outputs move in big pieces). ERROR_BROKEN_PIPE on a read is
 * end of file; a read that completes with 0 bytes is a zero-length write by the child, not end of file.
 * ERROR_BROKEN_PIPE / ERROR_NO_DATA on a write means the child has closed its end.
 */
#define _CRT_RAND_S /* rand_s (RtlGenRandom): unguessable pipe names */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "advapi.h"
#include "pipe.h" /* mproc__win32_pipe_pair, shared with conn.c */
#include "spawn.h"
#include "win32.h"

/* Room made in a capture buffer before each read. */
#define READ_RESERVE (256 * 1024)
/* The most one ReadFile / WriteFile asks for (DWORD lengths). */
#define MAX_IO (1u << 30)

/* ---- pipes and files ------------------------------------------------------------------------ */

static volatile LONG g_pipe_serial;

/* Shared with conn.c (connections), see pipe.h: the pair-making part of mproc__pal_pipe, with the
 * name's prefix, the server's open mode, the quotas and the client's access and flags as parameters. */
int mproc__win32_pipe_pair(const wchar_t *prefix, DWORD open_mode, DWORD out_size, DWORD in_size, DWORD client_access,
                           DWORD client_flags, HANDLE *server_out, HANDLE *client_out) {
  *server_out = *client_out = INVALID_HANDLE_VALUE;
  SECURITY_ATTRIBUTES sa; /* the current user alone; non-inheritable: mproc__pal_spawn gives the child a copy */
  int rc = mproc__win32_user_only_sa(&sa, "named pipe");
  if (rc) return rc;
  open_mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
  DWORD pipe_mode = PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS;

  wchar_t name[96];
  HANDLE server = INVALID_HANDLE_VALUE;
  DWORD err = 0;
  for (int attempt = 0; attempt < 16 && server == INVALID_HANDLE_VALUE; ++attempt) {
    unsigned int r1 = 0, r2 = 0;
    if (rand_s(&r1) != 0 || rand_s(&r2) != 0) { /* never seen; the serial still keeps names unique */
      r1 = (unsigned int)GetTickCount();
      r2 = (unsigned int)GetCurrentThreadId();
    }
    swprintf(name, MPROC__ARRAY_LEN(name), L"\\\\.\\pipe\\%ls%lu-%lu-%08x%08x", prefix,
             (unsigned long)GetCurrentProcessId(), (unsigned long)InterlockedIncrement(&g_pipe_serial), r1, r2);
    server = CreateNamedPipeW(name, open_mode, pipe_mode, 1, out_size, in_size, 0, &sa);
    if (server == INVALID_HANDLE_VALUE) {
      err = GetLastError();
      /* The name exists (FIRST_PIPE_INSTANCE gives ACCESS_DENIED, a full instance PIPE_BUSY): someone
       * else holds it, by chance or to squat. Try another name; anything else is a real failure. */
      if (err != ERROR_ACCESS_DENIED && err != ERROR_PIPE_BUSY) break;
    }
  }
  if (server == INVALID_HANDLE_VALUE) return mproc__fail_os(0, (int)err, "CreateNamedPipeW '%ls'", name);

  sa.lpSecurityDescriptor = NULL; /* opening an existing object: no descriptor to give */
  HANDLE client = CreateFileW(name, client_access, 0, &sa, OPEN_EXISTING, client_flags, NULL);
  if (client == INVALID_HANDLE_VALUE) {
    err = GetLastError();
    CloseHandle(server);
    return mproc__fail_os(0, (int)err, "CreateFileW (client end of pipe '%ls')", name);
  }
  /* Our client must be the one connected: ERROR_PIPE_CONNECTED says so (one instance, so nobody else
   * can be). Anything else means someone got in between, or a broken pipe: refuse the pair. */
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  if (!ConnectNamedPipe(server, &ov)) {
    err = GetLastError();
    if (err == ERROR_IO_PENDING) { /* not connected after all: never leave it pending */
      DWORD n;
      CancelIoEx(server, &ov);
      GetOverlappedResult(server, &ov, &n, TRUE);
    }
    if (err != ERROR_PIPE_CONNECTED) {
      CloseHandle(client);
      CloseHandle(server);
      return mproc__fail_os(0, (int)err, "ConnectNamedPipe '%ls'", name);
    }
  }
  *server_out = server;
  *client_out = client;
  return 0;
}

int mproc__pal_pipe(bool child_writes, mproc_os_handle *parent_end, mproc_os_handle *child_end) {
  *parent_end = *child_end = MPROC_NO_HANDLE;
  /* As libuv: the server end of a stdin pipe is duplex only so that it holds FILE_READ_ATTRIBUTES (it is
   * never read); the child's end gets the attribute right of the other direction, so a program can query
   * (stdout) or set (stdin, e.g. PIPE_NOWAIT) the state of its pipe. */
  DWORD open_mode = (child_writes ? PIPE_ACCESS_INBOUND : PIPE_ACCESS_DUPLEX) | FILE_FLAG_OVERLAPPED;
  DWORD out_size = child_writes ? 0 : MPROC__WIN32_PIPE_OUT_BUFFER;
  DWORD in_size = child_writes ? MPROC__WIN32_PIPE_IN_BUFFER : 0;
  DWORD client_access = child_writes ? (GENERIC_WRITE | FILE_READ_ATTRIBUTES) : (GENERIC_READ | FILE_WRITE_ATTRIBUTES);
  HANDLE server, client;
  int rc = mproc__win32_pipe_pair(MPROC__WIN32_IO_PIPE_PREFIX, open_mode, out_size, in_size, client_access, 0, &server,
                                  &client);
  if (rc) return rc;
  *parent_end = MPROC__OSH(server);
  *child_end = MPROC__OSH(client);
  return 0;
}

static int open_file(const wchar_t *wpath, const char *path, DWORD access, DWORD disposition, const char *what,
                     mproc_os_handle *out) {
  SECURITY_ATTRIBUTES sa;
  sa.nLength = sizeof sa;
  sa.lpSecurityDescriptor = NULL;
  sa.bInheritHandle = FALSE;
  HANDLE h = CreateFileW(wpath, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, &sa, disposition,
                         FILE_ATTRIBUTE_NORMAL, NULL);
  if (h == INVALID_HANDLE_VALUE) return mproc__fail_os(0, (int)GetLastError(), "open %s '%s'", what, path);
  *out = MPROC__OSH(h);
  return 0;
}

int mproc__pal_open_devnull(bool for_write, mproc_os_handle *out) {
  *out = MPROC_NO_HANDLE;
  return open_file(L"NUL", "NUL", for_write ? GENERIC_WRITE : GENERIC_READ, OPEN_EXISTING, "null device", out);
}

int mproc__pal_open_path(const char *path, bool for_write, bool append, mproc_os_handle *out) {
  *out = MPROC_NO_HANDLE;
  wchar_t *w = mproc__utf8_to_wide(path, for_write ? "output file path" : "input file path");
  if (!w) return path ? MPROC_EINVAL : mproc__fail(MPROC_EINVAL, "open: path is NULL");
  int rc;
  if (!for_write)
    rc = open_file(w, path, GENERIC_READ, OPEN_EXISTING, "input file", out);
  else if (append) /* FILE_APPEND_DATA without FILE_WRITE_DATA: every write goes to the end (O_APPEND) */
    rc =
        open_file(w, path, FILE_APPEND_DATA | FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE,
                  OPEN_ALWAYS, "output file", out);
  else
    rc = open_file(w, path, GENERIC_WRITE | FILE_READ_ATTRIBUTES, CREATE_ALWAYS, "output file", out);
  free(w);
  return rc;
}

/* ---- one overlapped operation ------------------------------------------------------------------ */

enum { IO_DONE, IO_PENDING, IO_EOF, IO_FAIL };

/* Errors that mean the other end has gone: end of file for a reader, "no reader" for a writer. */
static bool peer_gone(DWORD e) {
  return e == ERROR_BROKEN_PIPE || e == ERROR_NO_DATA || e == ERROR_PIPE_NOT_CONNECTED || e == ERROR_HANDLE_EOF ||
         /* a socket (Listener/Client connections) whose peer reset or aborted the connection */
         e == ERROR_NETNAME_DELETED || e == ERROR_CONNECTION_ABORTED || e == 10054 /* WSAECONNRESET */ ||
         e == 10053 /* WSAECONNABORTED */;
}

void mproc__win32_overlapped_init(OVERLAPPED *ov, HANDLE ev) {
  memset(ov, 0, sizeof *ov);
  /* Windows sets the status to pending, and resets the event, before ReadFile / WriteFile return
   * ERROR_IO_PENDING. Wine 8 does neither in time for sockets (Listener/Client connections): it may return
   * first and write the status later, and leave the event of the last operation signalled. Then a wait
   * on the event returns at once and GetOverlappedResult takes the zeroed status for a success of 0
   * bytes (the caller reuses the OVERLAPPED of an operation still in flight: measured, about one 3 MiB
   * transfer in 20 stalled for good), or spins on a signalled event while the status says pending. So
   * both are done here: the status says "pending" until the operation's true end is written. */
  ov->Internal = (ULONG_PTR)STATUS_PENDING;
  ov->hEvent = ev;
  if (ev) ResetEvent(ev);
}

unsigned long mproc__win32_wait_ms(int64_t deadline_ns) {
  int64_t ms = mproc__ms_until(deadline_ns);
  if (ms < 0) return INFINITE;
  return ms > 0x7FFFFFFF ? 0x7FFFFFFF : (DWORD)ms;
}

/* Start one overlapped read or write of len bytes. IO_DONE (*n bytes moved, maybe 0), IO_PENDING,
 * IO_EOF (the other end has gone; *err says how) or IO_FAIL (*err). */
static int io_start(HANDLE h, bool writing, void *buf, DWORD len, OVERLAPPED *ov, DWORD *n, DWORD *err) {
  mproc__win32_overlapped_init(ov, ov->hEvent);
  *n = 0;
  *err = 0;
  BOOL ok = writing ? WriteFile(h, buf, len, NULL, ov) : ReadFile(h, buf, len, NULL, ov);
  if (ok && GetOverlappedResult(h, ov, n, FALSE)) return IO_DONE;
  *err = GetLastError();
  if (!ok && *err == ERROR_IO_PENDING) return IO_PENDING;
  return peer_gone(*err) ? IO_EOF : IO_FAIL;
}

/* The outcome of an operation that was pending and has finished (or is being cancelled: this waits
 * for the cancellation to land, which is immediate for pipes). A cancelled operation is IO_DONE with
 * whatever it moved before (see the top of the file for why that count is exact here). */
static int io_collect(HANDLE h, OVERLAPPED *ov, DWORD *n, DWORD *err) {
  *n = 0;
  if (GetOverlappedResult(h, ov, n, TRUE)) return IO_DONE;
  *err = GetLastError();
  if (*err == ERROR_OPERATION_ABORTED) return IO_DONE;
  return peer_gone(*err) ? IO_EOF : IO_FAIL;
}

static int io_cancel(HANDLE h, OVERLAPPED *ov, DWORD *n, DWORD *err) {
  CancelIoEx(h, ov); /* ERROR_NOT_FOUND if it has just completed: then it is simply collected */
  return io_collect(h, ov, n, err);
}

/* Wait for a pending operation up to the deadline; at the deadline cancel it, keeping what it moved.
 * *expired says whether the deadline cut it short. */
static int io_finish(HANDLE h, OVERLAPPED *ov, int64_t deadline_ns, DWORD *n, DWORD *err, bool *expired) {
  *expired = false;
  for (;;) {
    DWORD w = WaitForSingleObject(ov->hEvent, mproc__win32_wait_ms(deadline_ns));
    if (w == WAIT_OBJECT_0) return io_collect(h, ov, n, err);
    if (w == WAIT_TIMEOUT) {
      if (mproc__ms_until(deadline_ns) != 0) continue; /* a wait capped below the deadline */
      *expired = true;
      return io_cancel(h, ov, n, err);
    }
    DWORD e = GetLastError(); /* the operation must not outlive the OVERLAPPED on our caller's stack */
    io_cancel(h, ov, n, err);
    *err = e;
    return IO_FAIL;
  }
}

/* The most one write may carry on this pipe end without risking an unaccountable cancel: the buffer of
 * the direction it writes (see the top of the file). Not a pipe: any size completes whole. */
static DWORD write_limit(HANDLE h) {
  DWORD flags = 0, out_size = 0, in_size = 0;
  if (!GetNamedPipeInfo(h, &flags, &out_size, &in_size, NULL)) return 64 * 1024;
  DWORD size = (flags & PIPE_SERVER_END) ? out_size : in_size;
  if (size == 0) size = 4096;
  return size > MAX_IO ? MAX_IO : size;
}

/* Write one piece of at most `limit` bytes, waiting up to the deadline. Once the deadline has passed, a
 * piece that would have to wait is cancelled and retried at half the size, so that whatever fits in the
 * pipe right now still goes (a few non-blocking tries, never a wait). */
static int write_piece(HANDLE h, OVERLAPPED *ov, const char *p, size_t len, DWORD limit, int64_t deadline_ns, DWORD *n,
                       DWORD *err) {
  DWORD piece = len > limit ? limit : (DWORD)len;
  for (;;) {
    bool expired = false;
    int st = io_start(h, true, (void *)p, piece, ov, n, err);
    if (st == IO_PENDING) st = io_finish(h, ov, deadline_ns, n, err, &expired);
    if (st != IO_DONE || !expired || *n > 0 || piece == 1) return st;
    piece /= 2;
  }
}

static int make_event(OVERLAPPED *ov) {
  memset(ov, 0, sizeof *ov);
  ov->hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
  return ov->hEvent ? 0 : mproc__fail_os(0, (int)GetLastError(), "CreateEventW");
}

/* ---- read / write with a deadline ------------------------------------------------------------ */

int mproc__win32_read_with(HANDLE h, HANDLE ev, void *buf, size_t cap, int64_t deadline_ns, size_t *n) {
  *n = 0;
  if (cap == 0) return 0;
  DWORD len = cap > MAX_IO ? MAX_IO : (DWORD)cap;
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.hEvent = ev;
  int rc = 0;
  for (;;) {
    DWORD got = 0, err = 0;
    bool expired = false;
    int st = io_start(h, false, buf, len, &ov, &got, &err);
    if (st == IO_PENDING) st = io_finish(h, &ov, deadline_ns, &got, &err, &expired);
    if (st == IO_EOF) break; /* *n = 0: end of file */
    if (st == IO_FAIL) {
      rc = mproc__fail_os(0, (int)err, "ReadFile on pipe handle %p", (void *)h);
      break;
    }
    if (got > 0) {
      *n = got;
      break;
    }
    /* A socket (Listener/Client connections) completes a read with 0 bytes at end of file; a pipe
     * does so for a zero-length write, which is no end. */
    if (!expired && !GetNamedPipeInfo(h, NULL, NULL, NULL, NULL)) break;
    /* Nothing: the deadline passed, or a zero-length write by the child completed the read. */
    if (expired || mproc__ms_until(deadline_ns) == 0) {
      rc = mproc__fail(MPROC_ETIMEDOUT, "read from pipe handle %p: nothing arrived before the timeout", (void *)h);
      break;
    }
  }
  return rc;
}

int mproc__pal_read(mproc_os_handle mh, void *buf, size_t cap, int64_t deadline_ns, size_t *n) {
  *n = 0;
  if (cap == 0) return 0;
  OVERLAPPED ov;
  int rc = make_event(&ov);
  if (!rc) rc = mproc__win32_read_with(MPROC__H(mh), ov.hEvent, buf, cap, deadline_ns, n);
  if (ov.hEvent) CloseHandle(ov.hEvent);
  return rc;
}

int mproc__win32_write_with(HANDLE h, HANDLE ev, const void *buf, size_t len, int64_t deadline_ns, size_t *n) {
  *n = 0;
  if (len == 0) return 0;
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.hEvent = ev;
  int rc = 0;
  /* Without a deadline nothing is cancelled, so any size is exact: no need to ask the pipe (a call to
   * wine's server on every message sent on a connection). */
  DWORD limit = deadline_ns == INT64_MAX ? MAX_IO : write_limit(h);
  while (*n < len) {
    DWORD got = 0, err = 0;
    int st = write_piece(h, &ov, (const char *)buf + *n, len - *n, limit, deadline_ns, &got, &err);
    *n += got;
    if (st == IO_EOF) {
      rc = mproc__fail_os(MPROC_EPIPE, (int)err, "write to pipe handle %p: the reader has gone", (void *)h);
      break;
    }
    if (st == IO_FAIL) {
      rc = mproc__fail_os(0, (int)err, "WriteFile on pipe handle %p", (void *)h);
      break;
    }
    if (got == 0 && mproc__ms_until(deadline_ns) == 0) {
      if (*n == 0) rc = mproc__fail(MPROC_ETIMEDOUT, "write to pipe handle %p: no room before the timeout", (void *)h);
      break;
    }
  }
  return rc;
}

int mproc__pal_write(mproc_os_handle mh, const void *buf, size_t len, int64_t deadline_ns, size_t *n) {
  *n = 0;
  if (len == 0) return 0;
  OVERLAPPED ov;
  int rc = make_event(&ov);
  if (!rc) rc = mproc__win32_write_with(MPROC__H(mh), ov.hEvent, buf, len, deadline_ns, n);
  if (ov.hEvent) CloseHandle(ov.hEvent);
  return rc;
}

/* ---- communicate ------------------------------------------------------------------------------ */

/* One direction of the exchange. */
typedef struct pump {
  mproc_os_handle *member; /* the mproc__comm field; MPROC_NO_HANDLE once this direction is done */
  HANDLE h;                /* NULL once done */
  bool writing;
  mproc__buf *buf; /* readers: where the data goes */
  DWORD limit;     /* writer: the largest piece */
  OVERLAPPED ov;
  bool pending;
} pump;

static void pump_init(pump *p, mproc_os_handle *member, mproc__buf *buf) {
  memset(p, 0, sizeof *p);
  p->member = member;
  p->h = MPROC__H(*member);
  p->writing = buf == NULL;
  p->buf = buf;
  p->limit = p->writing ? write_limit(p->h) : 0;
}

static void pump_close(pump *p) {
  CloseHandle(p->h);
  p->h = NULL;
  *p->member = MPROC_NO_HANDLE;
}

/* Account for a finished operation: keep what it moved, close the direction when it is done. */
static int pump_done(mproc__comm *c, pump *p, int st, DWORD got, DWORD err, bool *moved) {
  if (got) *moved = true;
  if (p->writing)
    c->input_off += got;
  else
    p->buf->len += got;
  if (st == IO_FAIL) {
    if (p->writing) return mproc__fail_os(0, (int)err, "writing to the child's stdin (pipe handle %p)", (void *)p->h);
    return mproc__fail_os(0, (int)err, "reading the child's %s (pipe handle %p)",
                          p->member == &c->out ? "stdout" : "stderr", (void *)p->h);
  }
  /* EOF on a read is the end of that stream; on a write, the child closed its stdin: the rest of the
   * input is dropped, as Python does. */
  if (st == IO_EOF || (p->writing && c->input_off >= c->input_len)) {
    pump_close(p);
    *moved = true;
  }
  return 0;
}

/* Start the next operation of an idle direction. Before the deadline it may stay pending; after it,
 * only what moves without waiting moves. */
static int pump_step(mproc__comm *c, pump *p, bool expired, bool *moved) {
  DWORD got = 0, err = 0;
  int st;
  if (p->writing) {
    size_t rest = c->input_len - c->input_off;
    const char *at = c->input + c->input_off;
    if (expired) {
      st = write_piece(p->h, &p->ov, at, rest, p->limit, 0, &got, &err);
    } else {
      st = io_start(p->h, true, (void *)at, rest > p->limit ? p->limit : (DWORD)rest, &p->ov, &got, &err);
    }
  } else {
    int rc = mproc__buf_reserve(p->buf, READ_RESERVE);
    if (rc) return rc;
    size_t room = p->buf->cap - p->buf->len - 1; /* the spare byte stays for the NUL */
    st = io_start(p->h, false, p->buf->data + p->buf->len, room > MAX_IO ? MAX_IO : (DWORD)room, &p->ov, &got, &err);
    if (st == IO_PENDING && expired) st = io_cancel(p->h, &p->ov, &got, &err);
  }
  if (st == IO_PENDING) {
    p->pending = true;
    return 0;
  }
  return pump_done(c, p, st, got, err, moved);
}

/* return_on_output and a read has added bytes since the call began (the lengths then) */
static bool output_grew(const mproc__comm *c, size_t out_len0, size_t err_len0) {
  return c->return_on_output &&
         ((c->out_buf && c->out_buf->len != out_len0) || (c->err_buf && c->err_buf->len != err_len0));
}

int mproc__pal_communicate(mproc__comm *c, int64_t deadline_ns) {
  pump ps[3];
  int np = 0, rc = 0;
  if ((c->out != MPROC_NO_HANDLE && !c->out_buf) || (c->err != MPROC_NO_HANDLE && !c->err_buf))
    return mproc__fail(MPROC_EINVAL, "communicate: no buffer for a read pipe");
  if (c->in != MPROC_NO_HANDLE && c->input_off < c->input_len && !c->input)
    return mproc__fail(MPROC_EINVAL, "communicate: input is NULL");
  if (c->in != MPROC_NO_HANDLE) {
    if (c->input_off >= c->input_len) { /* nothing (left) to send: the child sees end of file */
      mproc__pal_close(c->in);
      c->in = MPROC_NO_HANDLE;
    } else {
      pump_init(&ps[np++], &c->in, NULL);
    }
  }
  if (c->out != MPROC_NO_HANDLE) pump_init(&ps[np++], &c->out, c->out_buf);
  if (c->err != MPROC_NO_HANDLE) pump_init(&ps[np++], &c->err, c->err_buf);
  int nev = 0;
  for (; nev < np && rc == 0; ++nev) rc = make_event(&ps[nev].ov);
  if (rc) np = nev - 1; /* the events made so far are closed below */

  int expired_passes = 0;
  size_t out_len0 = c->out_buf ? c->out_buf->len : 0, err_len0 = c->err_buf ? c->err_buf->len : 0;
  while (rc == 0) {
    bool moved = false, active = false;
    bool expired = mproc__ms_until(deadline_ns) == 0;
    /* return_on_output: output arrived, the caller hands it on and calls again (what is pending is
     * cancelled below, keeping what it moved) */
    if (output_grew(c, out_len0, err_len0)) break;
    /* Give every idle direction an operation; ones that complete at once are accounted and restarted,
     * a few times at most, so that one busy stream cannot starve the others (once with return_on_output:
     * the caller hands each read on before the next). */
    int restarts = c->return_on_output ? 1 : 8;
    for (int i = 0; i < np && rc == 0; ++i)
      for (int k = 0; k < restarts && ps[i].h && !ps[i].pending && rc == 0; ++k)
        rc = pump_step(c, &ps[i], expired, &moved);
    if (rc) break;
    if (output_grew(c, out_len0, err_len0)) break;
    for (int i = 0; i < np; ++i) active = active || ps[i].h != NULL;
    if (!active) break;
    if (!expired) {
      HANDLE evs[3];
      int nw = 0;
      bool idle = false;
      for (int i = 0; i < np; ++i) {
        if (ps[i].pending) evs[nw++] = ps[i].ov.hEvent;
        idle = idle || (ps[i].h && !ps[i].pending);
      }
      /* A direction left idle by the restart limit must get its operation before we sleep: the child
       * may be waiting for exactly that one (blocked on its stdin while we wait for its stdout). */
      if (idle) continue;
      DWORD w = WaitForMultipleObjects((DWORD)nw, evs, FALSE, mproc__win32_wait_ms(deadline_ns));
      if (w == WAIT_FAILED) {
        rc = mproc__fail_os(0, (int)GetLastError(), "WaitForMultipleObjects on the child's pipes");
        break;
      }
      /* WAIT_TIMEOUT: the next round finds the deadline passed. Otherwise collect all that finished. */
      for (int i = 0; i < np && rc == 0; ++i) {
        if (!ps[i].pending || WaitForSingleObject(ps[i].ov.hEvent, 0) != WAIT_OBJECT_0) continue;
        DWORD got = 0, err = 0;
        int st = io_collect(ps[i].h, &ps[i].ov, &got, &err);
        ps[i].pending = false;
        rc = pump_done(c, &ps[i], st, got, err, &moved);
      }
      continue;
    }
    /* The deadline has passed: cancel what waits, keeping what it moved, and go round again while
     * something moves, a bounded number of times (a child that writes without end cannot keep us). */
    for (int i = 0; i < np && rc == 0; ++i) {
      if (!ps[i].pending) continue;
      DWORD got = 0, err = 0;
      int st = io_cancel(ps[i].h, &ps[i].ov, &got, &err);
      ps[i].pending = false;
      rc = pump_done(c, &ps[i], st, got, err, &moved);
    }
    if (rc) break;
    if (!moved || ++expired_passes >= 64) {
      active = false;
      for (int i = 0; i < np; ++i) active = active || ps[i].h != NULL;
      if (active) rc = mproc__fail(MPROC_ETIMEDOUT, "communicate: the deadline passed with pipes still open");
      break;
    }
  }
  /* Never leave an operation pending on the OVERLAPPEDs of this stack frame (an error path): cancel it
   * and keep what it moved, so that no byte is lost even then. */
  for (int i = 0; i < np; ++i) {
    if (ps[i].pending) {
      DWORD got = 0, err = 0;
      bool moved = false;
      int st = io_cancel(ps[i].h, &ps[i].ov, &got, &err);
      ps[i].pending = false;
      if (st == IO_FAIL) st = IO_DONE; /* the first error is the one reported */
      (void)pump_done(c, &ps[i], st, got, err, &moved);
    }
  }
  for (int i = 0; i < np; ++i) CloseHandle(ps[i].ov.hEvent);
  return rc;
}

int mproc__pal_set_blocking(mproc_os_handle h, bool blocking) {
  /* An overlapped handle stays overlapped: a child's synchronous ReadFile on it waits for the pending
   * read itself (kernelbase waits on the file handle), which is right while nobody else does I/O on it. */
  (void)h;
  (void)blocking;
  return 0;
}
