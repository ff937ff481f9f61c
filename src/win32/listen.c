/* Windows PAL: listeners and clients (pal.h, "listeners and clients"): named pipes and TCP over IPv4 and
 * IPv6.
 *
 * Named pipes: byte-mode, overlapped instances of one name (PIPE_UNLIMITED_INSTANCES), each created with a
 * DACL that admits the current user alone and PIPE_REJECT_REMOTE_CLIENTS; the first with
 * FILE_FLAG_FIRST_PIPE_INSTANCE, so a name another process created first is refused rather than shared.
 * One instance always waits in an overlapped ConnectNamedPipe whose event is the listener's wait item;
 * accepting hands that instance over as the connection (the ordinary overlapped pipe of conn.c) and puts
 * a new one in its place. Clients open with SECURITY_IDENTIFICATION, so a server can never act as them.
 * These pipes carry CPython's length-prefixed frames: CPython's own PipeListener / PipeClient use message
 * mode without prefixes, so the two do not talk over pipes (use TCP for that).
 *
 * TCP: ws2_32.dll is loaded from the system directory at run time (like advapi32.dll, advapi.h), so the
 * library imports KERNEL32 and the C runtime alone. A listening socket signals FD_ACCEPT on an event
 * (WSAEventSelect: non-blocking), and SO_EXCLUSIVEADDRUSE keeps others from binding its port. Accepted and
 * connected sockets are made blocking and non-inheritable again. They are read like pipes: overlapped
 * ReadFile (pipe.c; a socket completes a read of 0 bytes at end of file), and a zero-byte read to wait
 * for data (verified under wine 8: pending while empty, completes on data and at end of file). They are
 * written with a blocking send (mproc__win32_socket_send; sends have no deadline): wine 8 sometimes never
 * completes an overlapped WriteFile on a socket that had to wait for room while the peer reads
 * (measured: a 3 MiB message stalled for good in about one transfer of twenty, the data already
 * drained at the other end). A socket is closed with closesocket (mproc__win32_close_socket, called by
 * mproc__pal_close). */
#include <winsock2.h>
#include <ws2tcpip.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "advapi.h"
#include "pipe.h"
#include "spawn.h" /* mproc__win32_wait_ms */
#include "win32.h"

/* ---- ws2_32.dll --------------------------------------------------------------------------------- */

typedef struct ws2_api {
  int(WSAAPI *startup)(WORD, LPWSADATA);
  SOCKET(WSAAPI *socket_)(int, int, int);
  int(WSAAPI *bind_)(SOCKET, const struct sockaddr *, int);
  int(WSAAPI *listen_)(SOCKET, int);
  SOCKET(WSAAPI *accept_)(SOCKET, struct sockaddr *, int *);
  int(WSAAPI *connect_)(SOCKET, const struct sockaddr *, int);
  int(WSAAPI *getsockname_)(SOCKET, struct sockaddr *, int *);
  int(WSAAPI *setsockopt_)(SOCKET, int, int, const char *, int);
  int(WSAAPI *getsockopt_)(SOCKET, int, int, char *, int *);
  int(WSAAPI *closesocket_)(SOCKET);
  int(WSAAPI *send_)(SOCKET, const char *, int, int);
  int(WSAAPI *ioctlsocket_)(SOCKET, long, u_long *);
  int(WSAAPI *select_)(int, fd_set *, fd_set *, fd_set *, const struct timeval *);
  int(WSAAPI *last_error)(void);
  int(WSAAPI *event_select)(SOCKET, WSAEVENT, long);
  int(WSAAPI *enum_events)(SOCKET, WSAEVENT, LPWSANETWORKEVENTS);
  int(WSAAPI *getaddrinfo_)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
  void(WSAAPI *freeaddrinfo_)(struct addrinfo *);
  int(WSAAPI *getnameinfo_)(const struct sockaddr *, socklen_t, char *, DWORD, char *, DWORD, int);
} ws2_api;

static INIT_ONCE g_ws2_once = INIT_ONCE_STATIC_INIT;
static ws2_api g_ws2;
static DWORD g_ws2_error;
static volatile LONG g_ws2_ready; /* 1 once loaded and started: sockets may exist */

static BOOL CALLBACK ws2_load(PINIT_ONCE once, PVOID param, PVOID *ctx) {
  (void)once;
  (void)param;
  (void)ctx;
  HMODULE m = mproc__win32_system_dll(L"ws2_32.dll"); /* kept loaded for the life of the process */
  if (!m) {
    g_ws2_error = GetLastError() ? GetLastError() : ERROR_MOD_NOT_FOUND;
    return TRUE;
  }
  bool ok = true;
  MPROC__WIN32_LOAD(m, ok, g_ws2.startup, "WSAStartup");
  MPROC__WIN32_LOAD(m, ok, g_ws2.socket_, "socket");
  MPROC__WIN32_LOAD(m, ok, g_ws2.bind_, "bind");
  MPROC__WIN32_LOAD(m, ok, g_ws2.listen_, "listen");
  MPROC__WIN32_LOAD(m, ok, g_ws2.accept_, "accept");
  MPROC__WIN32_LOAD(m, ok, g_ws2.connect_, "connect");
  MPROC__WIN32_LOAD(m, ok, g_ws2.getsockname_, "getsockname");
  MPROC__WIN32_LOAD(m, ok, g_ws2.setsockopt_, "setsockopt");
  MPROC__WIN32_LOAD(m, ok, g_ws2.getsockopt_, "getsockopt");
  MPROC__WIN32_LOAD(m, ok, g_ws2.closesocket_, "closesocket");
  MPROC__WIN32_LOAD(m, ok, g_ws2.send_, "send");
  MPROC__WIN32_LOAD(m, ok, g_ws2.ioctlsocket_, "ioctlsocket");
  MPROC__WIN32_LOAD(m, ok, g_ws2.select_, "select");
  MPROC__WIN32_LOAD(m, ok, g_ws2.last_error, "WSAGetLastError");
  MPROC__WIN32_LOAD(m, ok, g_ws2.event_select, "WSAEventSelect");
  MPROC__WIN32_LOAD(m, ok, g_ws2.enum_events, "WSAEnumNetworkEvents");
  MPROC__WIN32_LOAD(m, ok, g_ws2.getaddrinfo_, "getaddrinfo");
  MPROC__WIN32_LOAD(m, ok, g_ws2.freeaddrinfo_, "freeaddrinfo");
  MPROC__WIN32_LOAD(m, ok, g_ws2.getnameinfo_, "getnameinfo");
  WSADATA wd;
  int e = ok ? g_ws2.startup(MAKEWORD(2, 2), &wd) : 0; /* never cleaned up: sockets may live until exit */
  g_ws2_error = !ok ? ERROR_PROC_NOT_FOUND : (DWORD)e;
  if (!g_ws2_error) InterlockedExchange(&g_ws2_ready, 1);
  return TRUE;
}

/* The functions, or NULL with an error naming `call`. */
static const ws2_api *ws2(const char *call, int *rc) {
  InitOnceExecuteOnce(&g_ws2_once, ws2_load, NULL, NULL);
  if (g_ws2_error) {
    *rc = mproc__fail_os(MPROC_ENOTSUP, (int)g_ws2_error, "%s: ws2_32.dll cannot be loaded and started", call);
    return NULL;
  }
  return &g_ws2;
}

bool mproc__win32_is_socket(mproc_os_handle h) {
  if (!InterlockedCompareExchange(&g_ws2_ready, 0, 0) || GetFileType(MPROC__H(h)) != FILE_TYPE_PIPE) return false;
  int type = 0, len = (int)sizeof type;
  return g_ws2.getsockopt_((SOCKET)(intptr_t)h, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0; /* else a pipe */
}

bool mproc__win32_close_socket(mproc_os_handle h) {
  if (!mproc__win32_is_socket(h)) return false;
  g_ws2.closesocket_((SOCKET)(intptr_t)h);
  return true;
}

int mproc__win32_socket_send(mproc_os_handle h, const void *p, size_t n) {
  for (size_t done = 0; done < n;) {
    int want = n - done > 0x40000000 ? 0x40000000 : (int)(n - done);
    int k = g_ws2.send_((SOCKET)(intptr_t)h, (const char *)p + done, want, 0);
    if (k == SOCKET_ERROR) {
      int e = g_ws2.last_error();
      if (e == WSAECONNRESET || e == WSAECONNABORTED || e == WSAESHUTDOWN || e == WSAENOTCONN)
        return mproc__fail_os(MPROC_EPIPE, e, "send: the peer has closed the connection");
      return mproc__fail_os(MPROC_ESYS, e, "send on socket %p", (void *)(intptr_t)h);
    }
    done += (size_t)k;
  }
  return 0;
}

static int sock_fail(const ws2_api *w, int code, const char *fmt, const char *what) {
  int e = w->last_error();
  if (code == 0 && (e == WSAECONNREFUSED || e == WSAEHOSTUNREACH || e == WSAENETUNREACH)) code = MPROC_ENOENT;
  if (code == 0 && (e == WSAEADDRINUSE)) code = MPROC_EEXIST;
  if (code == 0 && (e == WSAEACCES)) code = MPROC_EPERM;
  return mproc__fail_os(code ? code : MPROC_ESYS, e, fmt, what);
}

/* "host:port" or "[host]:port" of a socket address, malloc'ed. */
static char *addr_string(const ws2_api *w, const struct sockaddr *sa, int len) {
  char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "0", buf[NI_MAXHOST + NI_MAXSERV + 4];
  w->getnameinfo_(sa, (socklen_t)len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
  snprintf(buf, sizeof buf, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
  return mproc__strdup(buf);
}

static int resolve(const ws2_api *w, const mproc__addr *a, bool passive, struct addrinfo **res) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = a->family == MPROC__FAMILY_INET6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  char port[16];
  snprintf(port, sizeof port, "%u", a->port);
  if (w->getaddrinfo_(a->name[0] ? a->name : NULL, port, &hints, res) == 0) return 0;
  int e = w->last_error();
  return mproc__fail_os(e == WSAHOST_NOT_FOUND || e == WSANO_DATA ? MPROC_ENOENT : MPROC_ESYS, e, "resolving '%s'",
                        a->name);
}

/* A socket for a connection: blocking, non-inheritable, without Nagle's delay. */
static void make_conn(const ws2_api *w, SOCKET s) {
  w->event_select(s, NULL, 0); /* an accepted socket inherits its listener's event selection */
  u_long nb = 0;
  w->ioctlsocket_(s, (long)FIONBIO, &nb);
  SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0);
  BOOL one = TRUE;
  w->setsockopt_(s, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, (int)sizeof one);
}

int mproc__pal_listen_default_family(void) { return MPROC__FAMILY_PIPE; }

/* ---- listening ------------------------------------------------------------------------------------ */

struct mproc__listen {
  int family;
  SOCKET sock;   /* TCP */
  HANDLE ev;     /* TCP: FD_ACCEPT; pipes: the waiting instance's ConnectNamedPipe */
  wchar_t *name; /* pipes */
  HANDLE inst;   /* pipes: the instance waiting for a client (INVALID_HANDLE_VALUE: none could be made) */
  OVERLAPPED ov;
  bool connected; /* ... a client has connected to it */
};

static volatile LONG g_serial;

/* A new instance of l's pipe, waiting for a client. */
static int pipe_instance(mproc__listen *l, bool first) {
  SECURITY_ATTRIBUTES sa;
  int rc = mproc__win32_user_only_sa(&sa, "listener pipe");
  if (rc) return rc;
  DWORD open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0);
  l->inst =
      CreateNamedPipeW(l->name, open_mode, PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                       PIPE_UNLIMITED_INSTANCES, MPROC__WIN32_CONN_BUFFER, MPROC__WIN32_CONN_BUFFER, 0, &sa);
  if (l->inst == INVALID_HANDLE_VALUE) {
    DWORD e = GetLastError();
    return mproc__fail_os(first && e == ERROR_ACCESS_DENIED ? MPROC_EEXIST : 0, (int)e,
                          "listener: CreateNamedPipeW '%ls'%s", l->name,
                          first && e == ERROR_ACCESS_DENIED ? " (the name is taken)" : "");
  }
  l->connected = false;
  HANDLE ev = l->ov.hEvent;
  memset(&l->ov, 0, sizeof l->ov);
  l->ov.hEvent = ev;
  ResetEvent(ev);
  if (ConnectNamedPipe(l->inst, &l->ov)) { /* connected already (overlapped: not expected, but harmless) */
    l->connected = true;
  } else {
    DWORD e = GetLastError();
    if (e == ERROR_PIPE_CONNECTED || e == ERROR_NO_DATA) /* a client came in between (and maybe left) */
      l->connected = true;
    else if (e != ERROR_IO_PENDING) {
      CloseHandle(l->inst);
      l->inst = INVALID_HANDLE_VALUE;
      return mproc__fail_os(0, (int)e, "listener: ConnectNamedPipe '%ls'", l->name);
    }
  }
  if (l->connected) SetEvent(ev);
  return 0;
}

void mproc__pal_listen_close(mproc__listen *l) {
  if (!l) return;
  if (l->inst != INVALID_HANDLE_VALUE && l->inst) {
    if (!l->connected) { /* never leave an operation pending on memory about to go */
      DWORD n;
      CancelIoEx(l->inst, &l->ov);
      GetOverlappedResult(l->inst, &l->ov, &n, TRUE);
    }
    CloseHandle(l->inst);
  }
  if (l->sock != INVALID_SOCKET && l->sock) g_ws2.closesocket_(l->sock);
  if (l->ev) CloseHandle(l->ev);
  free(l->name);
  free(l);
}

static int listen_pipe(mproc__listen *l, const char *name, char **bound) {
  char gen[128];
  if (!name) { /* \\.\pipe\mproc-listener-<pid>-<serial>-<random> */
    unsigned char r[8];
    int rc = mproc__pal_random(r, sizeof r);
    if (rc) return rc;
    snprintf(gen, sizeof gen, "\\\\.\\pipe\\mproc-listener-%lu-%lu-%02x%02x%02x%02x%02x%02x%02x%02x",
             (unsigned long)GetCurrentProcessId(), (unsigned long)InterlockedIncrement(&g_serial), r[0], r[1], r[2],
             r[3], r[4], r[5], r[6], r[7]);
    name = gen;
  }
  l->name = mproc__utf8_to_wide(name, "pipe name");
  if (!l->name) return MPROC_EINVAL;
  /* A name that exists is someone else's. FILE_FLAG_FIRST_PIPE_INSTANCE refuses it on Windows, at once
   * and without a race; wine 8 ignores that flag, so ask first too (WaitNamedPipe connects nothing). */
  if (WaitNamedPipeW(l->name, 1) || GetLastError() != ERROR_FILE_NOT_FOUND)
    return mproc__fail(MPROC_EEXIST, "listener: the pipe name '%s' is taken", name);
  int rc = pipe_instance(l, true);
  if (rc) return rc;
  *bound = mproc__strdup(name);
  return *bound ? 0 : MPROC_ENOMEM;
}

static int listen_tcp(mproc__listen *l, const mproc__addr *a, int backlog, char **bound) {
  int rc = 0;
  const ws2_api *w = ws2("listener", &rc);
  if (!w) return rc;
  struct addrinfo *ai = NULL;
  if ((rc = resolve(w, a, true, &ai)) != 0) return rc;
  l->sock = w->socket_(ai->ai_family, SOCK_STREAM, IPPROTO_TCP);
  if (l->sock == INVALID_SOCKET) {
    rc = sock_fail(w, 0, "listener: socket for '%s'", a->name);
  } else {
    SetHandleInformation((HANDLE)l->sock, HANDLE_FLAG_INHERIT, 0);
    BOOL one = TRUE;
    w->setsockopt_(l->sock, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&one, (int)sizeof one);
    if (ai->ai_family == AF_INET6) w->setsockopt_(l->sock, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&one, sizeof one);
    if (w->bind_(l->sock, ai->ai_addr, (int)ai->ai_addrlen) != 0)
      rc = sock_fail(w, 0, "listener: bind to '%s'", a->name);
    else if (w->listen_(l->sock, backlog) != 0)
      rc = sock_fail(w, 0, "listener: listen on '%s'", a->name);
  }
  w->freeaddrinfo_(ai);
  if (!rc && w->event_select(l->sock, l->ev, FD_ACCEPT) != 0) rc = sock_fail(w, 0, "listener: WSAEventSelect%s", "");
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  if (!rc && w->getsockname_(l->sock, (struct sockaddr *)&ss, &len) != 0)
    rc = sock_fail(w, 0, "listener: getsockname%s", "");
  if (!rc && !(*bound = addr_string(w, (struct sockaddr *)&ss, len))) rc = MPROC_ENOMEM;
  return rc;
}

int mproc__pal_listen(const mproc__addr *a, int backlog, mproc__listen **out, char **bound) {
  *out = NULL;
  *bound = NULL;
  if (a->family == MPROC__FAMILY_UNIX)
    return mproc__fail(MPROC_ENOTSUP, "listener: Unix sockets are not offered on Windows; use a named pipe or TCP");
  mproc__listen *l = (mproc__listen *)calloc(1, sizeof *l);
  if (!l) return mproc__fail(MPROC_ENOMEM, "listener: out of memory");
  l->family = a->family;
  l->sock = INVALID_SOCKET;
  l->inst = INVALID_HANDLE_VALUE;
  l->ev = CreateEventW(NULL, TRUE, FALSE, NULL);
  int rc = l->ev ? 0 : mproc__fail_os(0, (int)GetLastError(), "listener: CreateEventW");
  l->ov.hEvent = l->ev;
  if (!rc) rc = a->family == MPROC__FAMILY_PIPE ? listen_pipe(l, a->name, bound) : listen_tcp(l, a, backlog, bound);
  if (rc) {
    free(*bound);
    *bound = NULL;
    mproc__pal_listen_close(l);
    return rc;
  }
  *out = l;
  return 0;
}

void mproc__pal_listen_wait_item(const mproc__listen *l, mproc__wait_item *it) {
  it->h = MPROC__OSH(l->ev);
  it->kind = MPROC__WAIT_SENTINEL; /* an event, signalled */
}

static int accept_pipe(mproc__listen *l, mproc_os_handle *h, char **peer) {
  if (l->inst == INVALID_HANDLE_VALUE) { /* making the last one failed: try again, and say why if it fails */
    int rc = pipe_instance(l, false);
    if (rc) return rc;
  }
  if (!l->connected) {
    DWORD n;
    if (WaitForSingleObject(l->ev, 0) != WAIT_OBJECT_0) return MPROC_ETIMEDOUT;
    if (!GetOverlappedResult(l->inst, &l->ov, &n, FALSE)) {
      DWORD e = GetLastError();
      if (e == ERROR_IO_INCOMPLETE) return MPROC_ETIMEDOUT;
      if (e != ERROR_PIPE_CONNECTED && e != ERROR_NO_DATA) { /* this instance is broken: start another */
        CloseHandle(l->inst);
        l->inst = INVALID_HANDLE_VALUE;
        pipe_instance(l, false);
        return mproc__fail_os(0, (int)e, "listener: ConnectNamedPipe '%ls'", l->name);
      }
    }
    l->connected = true;
  }
  *peer = mproc__strdup("");
  if (!*peer) return MPROC_ENOMEM;
  *h = MPROC__OSH(l->inst); /* a client that has already left: its reader sees end of file */
  l->inst = INVALID_HANDLE_VALUE;
  l->connected = false;
  ResetEvent(l->ev);
  pipe_instance(l, false); /* failing, accept says why next time */
  return 0;
}

static int accept_tcp(mproc__listen *l, mproc_os_handle *h, char **peer) {
  const ws2_api *w = &g_ws2;
  WSANETWORKEVENTS ne;
  w->enum_events(l->sock, l->ev, &ne); /* resets the event first: a later client sets it again */
  struct sockaddr_storage ss;
  for (;;) {
    int len = (int)sizeof ss;
    SOCKET s = w->accept_(l->sock, (struct sockaddr *)&ss, &len);
    if (s == INVALID_SOCKET) {
      int e = w->last_error();
      if (e == WSAEWOULDBLOCK) return MPROC_ETIMEDOUT;
      if (e == WSAECONNRESET || e == WSAEINTR) continue; /* a client that left while it waited */
      return mproc__fail_os(MPROC_ESYS, e, "listener: accept");
    }
    make_conn(w, s);
    if (!(*peer = addr_string(w, (struct sockaddr *)&ss, len))) {
      w->closesocket_(s);
      return MPROC_ENOMEM;
    }
    *h = MPROC__OSH((HANDLE)s);
    return 0;
  }
}

int mproc__pal_listen_accept(mproc__listen *l, mproc_os_handle *h, char **peer) {
  *h = MPROC_NO_HANDLE;
  *peer = NULL;
  return l->family == MPROC__FAMILY_PIPE ? accept_pipe(l, h, peer) : accept_tcp(l, h, peer);
}

int mproc__pal_peer_same_user(const mproc__listen *l, mproc_os_handle h) {
  (void)l;
  (void)h;
  return mproc__fail(MPROC_ENOTSUP, "listener: Windows cannot tell the user of a TCP peer");
}

/* ---- connecting ----------------------------------------------------------------------------------- */

static int connect_pipe(const mproc__addr *a, int64_t deadline, mproc_os_handle *h) {
  wchar_t *name = mproc__utf8_to_wide(a->name, "pipe name");
  if (!name) return MPROC_EINVAL;
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, FALSE};
  int rc = 0;
  for (;;) {
    HANDLE p = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, &sa, OPEN_EXISTING,
                           FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
    if (p != INVALID_HANDLE_VALUE) {
      *h = MPROC__OSH(p);
      break;
    }
    DWORD e = GetLastError();
    if (e == ERROR_FILE_NOT_FOUND) {
      rc = mproc__fail_os(MPROC_ENOENT, (int)e, "client: nothing listens at '%s'", a->name);
      break;
    }
    if (e != ERROR_PIPE_BUSY) {
      rc = mproc__fail_os(0, (int)e, "client: CreateFileW '%s'", a->name);
      break;
    }
    /* every instance is taken: wait for one (WaitNamedPipe, up to the deadline), then try again */
    if (mproc__ms_until(deadline) == 0) {
      rc = mproc__fail(MPROC_ETIMEDOUT, "client: '%s' accepted no connection before the timeout", a->name);
      break;
    }
    unsigned long ms = mproc__win32_wait_ms(deadline);
    WaitNamedPipeW(name, ms == INFINITE ? NMPWAIT_WAIT_FOREVER : (ms ? ms : 1));
  }
  free(name);
  return rc;
}

/* Connect s to sa up to the deadline: non-blocking, then select() for the outcome. */
static int connect_sock(const ws2_api *w, SOCKET s, const struct addrinfo *ai, int64_t deadline, const char *shown) {
  u_long nb = 1;
  w->ioctlsocket_(s, (long)FIONBIO, &nb);
  if (w->connect_(s, ai->ai_addr, (int)ai->ai_addrlen) == 0) return 0;
  if (w->last_error() != WSAEWOULDBLOCK) return sock_fail(w, 0, "client: connect to '%s'", shown);
  for (;;) {
    fd_set wr, ex;
    FD_ZERO(&wr);
    FD_ZERO(&ex);
    FD_SET(s, &wr);
    FD_SET(s, &ex);
    unsigned long ms = mproc__win32_wait_ms(deadline);
    if (ms == INFINITE) ms = 60000;
    struct timeval tv = {(long)(ms / 1000), (long)(ms % 1000) * 1000};
    int r = w->select_(0, NULL, &wr, &ex, &tv);
    if (r < 0) return sock_fail(w, 0, "client: select on a connection to '%s'", shown);
    if (r > 0) {
      int e = 0, len = (int)sizeof e;
      w->getsockopt_(s, SOL_SOCKET, SO_ERROR, (char *)&e, &len);
      if (e == 0 && wr.fd_count > 0) return 0; /* s alone was in the set (FD_ISSET is a ws2_32 import) */
      if (e == WSAECONNREFUSED) return mproc__fail_os(MPROC_ENOENT, e, "client: nothing listens at '%s'", shown);
      return mproc__fail_os(MPROC_ESYS, e ? e : WSAECONNREFUSED, "client: connect to '%s'", shown);
    }
    if (mproc__ms_until(deadline) == 0)
      return mproc__fail(MPROC_ETIMEDOUT, "client: connecting to '%s' did not finish before the timeout", shown);
  }
}

int mproc__pal_connect(const mproc__addr *a, int64_t deadline, mproc_os_handle *h) {
  *h = MPROC_NO_HANDLE;
  if (a->family == MPROC__FAMILY_UNIX)
    return mproc__fail(MPROC_ENOTSUP, "client: Unix sockets are not offered on Windows; use a named pipe or TCP");
  if (a->family == MPROC__FAMILY_PIPE) return connect_pipe(a, deadline, h);
  int rc = 0;
  const ws2_api *w = ws2("client", &rc);
  if (!w) return rc;
  struct addrinfo *ai = NULL;
  if ((rc = resolve(w, a, false, &ai)) != 0) return rc;
  char shown[300];
  snprintf(shown, sizeof shown, a->family == MPROC__FAMILY_INET6 ? "[%s]:%u" : "%s:%u", a->name, a->port);
  SOCKET s = INVALID_SOCKET;
  for (struct addrinfo *p = ai; p; p = p->ai_next) { /* each address of the host, until one answers */
    s = w->socket_(p->ai_family, SOCK_STREAM, IPPROTO_TCP);
    if (s == INVALID_SOCKET) {
      rc = sock_fail(w, 0, "client: socket for '%s'", shown);
      break;
    }
    SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0);
    rc = connect_sock(w, s, p, deadline, shown);
    if (!rc) break;
    w->closesocket_(s);
    s = INVALID_SOCKET;
    if (rc == MPROC_ETIMEDOUT) break;
  }
  w->freeaddrinfo_(ai);
  if (rc) return rc;
  make_conn(w, s);
  *h = MPROC__OSH((HANDLE)s);
  return 0;
}
