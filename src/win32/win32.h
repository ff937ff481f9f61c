/* Internal to the Windows PAL: <windows.h> and the UTF-8 <-> UTF-16 edge (pal_core.c).
 *
 * Besides the files of the pal.h sections, the Windows PAL has one helper file of its own:
 *   advapi.c (advapi.h) - the advapi32.dll functions, loaded at run time (pipe.c's DACL, guard.c), and
 *                         loading a system DLL (mproc__win32_system_dll; tree.c takes user32.dll so).
 * and three internal headers for helpers that live in section files:
 *   pipe.h  - named-pipe pairs (pipe.c), used by conn.c and guard.c;
 *   spawn.h - command lines and environment blocks (spawn.c) and wait_ms (pipe.c), used by conn.c and
 *             the white-box tests (no <windows.h> in it);
 *   pty.h   - the pseudo console (pty.c) as spawn.c gives it to a child.
 * and helpers of section files declared here, since they need <windows.h>:
 *   mproc__win32_job_new (tree.c), used by spawn.c and process.c;
 *   mproc__win32_is_socket, _close_socket, _socket_send (listen.c), used by pal_core.c and conn.c;
 *   mproc__win32_conn_forget, _conn_kept_handles (conn.c), used by pal_core.c. */
#ifndef MPROC_WIN32_H
#define MPROC_WIN32_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include "../pal.h"

#define MPROC__H(h) ((HANDLE)(intptr_t)(h))
#define MPROC__OSH(h) ((mproc_os_handle)(intptr_t)(h))

/* UTF-8 -> newly malloc'ed UTF-16 (NUL-terminated). NULL in gives NULL out without error. On invalid
 * UTF-8 returns NULL with MPROC_EINVAL set (naming `what`); on allocation failure MPROC_ENOMEM. */
wchar_t *mproc__utf8_to_wide(const char *s, const char *what);
/* UTF-16 (n units, or -1 for NUL-terminated) -> newly malloc'ed UTF-8. NULL + error on failure. */
char *mproc__wide_to_utf8(const wchar_t *w, int n);

/* Sockets (listen.c: the sockets of Listener/Client connections). Whether h is one: costs nothing in a
 * process that never made a socket, two calls otherwise. Close h with closesocket if it is one (true), as
 * mproc__pal_close does. Send all of p[0..n) on a socket, blocking: 0, MPROC_EPIPE (the peer has gone),
 * or an error (conn.c's mproc__pal_conn_send; listen.c says why not WriteFile). */
bool mproc__win32_is_socket(mproc_os_handle h);
bool mproc__win32_close_socket(mproc_os_handle h);
int mproc__win32_socket_send(mproc_os_handle h, const void *p, size_t n);

/* Before h is closed: cancel the zero-byte read a wait left pending on it, and drop what conn.c kept for
 * it (the read, the events of its receives and sends), if anything. */
void mproc__win32_conn_forget(HANDLE h);
/* How many events conn.c keeps for connection handles still open (a zero read's, a receive's, a send's):
 * mproc__pal_handle_count leaves them out, since they go with their handles, which it counts. */
int mproc__win32_conn_kept_handles(void);

/* A new job object (non-inheritable handle) with the JOBOBJECT_EXTENDED_LIMIT_INFORMATION limit flags
 * `limits`, holding `process` (tree.c). 0 with *job, or the Windows error (no message is set: callers
 * that need the job word it; nothing is left, a job that holds no process kills nothing when closed). */
DWORD mproc__win32_job_new(HANDLE process, DWORD limits, HANDLE *job);

#endif /* MPROC_WIN32_H */
