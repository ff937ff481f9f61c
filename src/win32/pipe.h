/* Internal to the Windows PAL: named-pipe pairs, shared by pipe.c (child stdio pipes, subprocess) and
 * conn.c (connections, process module). Needs <windows.h>, unlike spawn.h. */
#ifndef MPROC_WIN32_PIPE_H
#define MPROC_WIN32_PIPE_H

#include "win32.h"

/* The first part of the names of mproc's pipes: connections (conn.c; a spawned child's boot link is
 * one, and the main guard checks the name, guard.c) and child stdio pipes (pipe.c). */
#define MPROC__WIN32_CONN_PIPE_PREFIX L"mproc-conn-"
#define MPROC__WIN32_IO_PIPE_PREFIX L"mproc-io-"

/* The buffer quota of each direction of a connection's pipe (conn.c, listen.c), as the POSIX socket
 * pairs: a 1 MiB message in flight without a wake-up of the writer. Windows charges it only for bytes
 * actually buffered. */
#define MPROC__WIN32_CONN_BUFFER (1024 * 1024)

/* A connected pair of ends of a new named pipe: byte mode, one instance, a unique and unguessable name
 * (\\.\pipe\<prefix><pid>-<serial>-<random>, prefix one of the above), FILE_FLAG_FIRST_PIPE_INSTANCE,
 * PIPE_REJECT_REMOTE_CLIENTS and a DACL that admits only the current user (the user of the process token).
 * The server end is created with open_mode (PIPE_ACCESS_* plus FILE_FLAG_OVERLAPPED when wanted) and
 * the buffer quotas out_size / in_size; the client end is opened with client_access and client_flags
 * (FILE_FLAG_OVERLAPPED or 0), and it is checked to be the one connected. Both non-inheritable.
 * 0 or an error; on failure nothing is left open. */
int mproc__win32_pipe_pair(const wchar_t *prefix, DWORD open_mode, DWORD out_size, DWORD in_size, DWORD client_access,
                           DWORD client_flags, HANDLE *server, HANDLE *client);

/* Zero an OVERLAPPED for a new ReadFile / WriteFile with event ev (reset here), its status preset to
 * pending (pipe.c says why: wine and sockets). conn.c's zero-byte reads use it too. */
void mproc__win32_overlapped_init(OVERLAPPED *ov, HANDLE ev);

/* mproc__pal_read and mproc__pal_write with the caller's event (manual-reset; reset here before each
 * operation, and no operation is left pending on return): conn.c keeps one per connection handle. */
int mproc__win32_read_with(HANDLE h, HANDLE ev, void *buf, size_t cap, int64_t deadline_ns, size_t *n);
int mproc__win32_write_with(HANDLE h, HANDLE ev, const void *buf, size_t len, int64_t deadline_ns, size_t *n);

#endif /* MPROC_WIN32_PIPE_H */
