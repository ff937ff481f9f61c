/*
 * mproc/connection.h: message pipes between processes.
 * Python counterparts: multiprocessing.Pipe, multiprocessing.connection.Connection,
 * multiprocessing.connection.wait.
 *
 *   mproc_connection *a, *b;
 *   mproc_pipe(true, &a, &b);
 *   mproc_connection_send_bytes(a, "hi", 2, 0, MPROC_ALL);
 *   char *msg; size_t len;
 *   mproc_connection_recv_bytes(b, 0, MPROC_INFINITE, &msg, &len);   // "hi"
 *   mproc_free(msg);
 *
 * A connection carries messages: every send_bytes arrives as one message of exactly that size
 * (0 bytes up to SIZE_MAX on 64-bit systems), in order. Hand a connection to a child through the
 * Process arguments (mproc_process_opts.connections); it works there under every start method.
 * Connections are never inherited by accident: a program started with mproc_popen never gets one.
 *
 * Receive guarantees. Every receive honours its timeout for the whole message: a peer that stalls in
 * the middle of a header or a payload (or was killed there while another copy of its end stays open)
 * makes it return MPROC_ETIMEDOUT, never hang. The part of a message that arrived is kept and the
 * next receive, of either kind, continues it: nothing is lost or duplicated. Memory follows the data
 * that arrived, not the length the peer announced (recv_bytes allocates at most 1 MiB before payload
 * bytes arrive and grows only a buffer it has filled). A stream that cannot be parsed - a length above
 * PTRDIFF_MAX, a large-message mark on a connection that has no bulk channel, a peer that closed in the
 * middle of a message - is corrupt: that receive and every later one give MPROC_ESYS saying so.
 * Readiness (mproc_connection_poll, mproc_wait) means a receive can make progress: a whole header, or
 * bytes of the current message, or end of file, have arrived. A receive with timeout 0 after a ready
 * poll may still give MPROC_ETIMEDOUT for a message that is not complete yet; it loses nothing.
 *
 * Transports. POSIX: a pipe each way; payloads from 48 KiB on a socket pair beside them. Linux: a
 * message of 1 MiB or more on a Pipe() goes through shared memory: the first one sets up a 4 MiB ring
 * for its direction (an anonymous, sealed memfd: nothing is left behind after a crash). A message of up
 * to 4 MiB is copied into it whole before its header goes on the pipe (a sender killed mid-message
 * leaves no part of it); a larger one streams through it in 1 MiB chunks, each announced on the pipe
 * once it is in place, so the ring never grows. Boundaries, timeouts, readiness and end of file behave
 * exactly as above (a sender killed inside a streamed message: the stream is corrupt, as on the socket;
 * killed there while a copy of its end sends on: that receive gives MPROC_ESYS, the cut message is
 * dropped, and the next receive gets the next message). A sender waits for room in the ring as on a
 * full pipe; once no process holds the receiving end any more, it gets MPROC_EPIPE (a sender waiting
 * for room notices within about 20 ms). Other POSIX systems and Windows (a named pipe) keep the byte
 * streams for every size; Listener/Client connections keep CPython's framing. An end handed to another
 * process takes its rings with it.
 *
 * Thread-safety: one thread may send while another receives on the same connection; two threads
 * must not send (or receive) on the same connection at once.
 */
#ifndef MPROC_CONNECTION_H
#define MPROC_CONNECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/core.h"
#include "mproc/handle.h"
#include "mproc/mproc_export.h"
#include "mproc/object.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_connection mproc_connection;

/* For size arguments: everything from the offset to the end. */
#define MPROC_ALL ((size_t)-1)

/* multiprocessing.Pipe(duplex): two connected ends. duplex (Python's default) lets both ends send and
 * receive; with duplex false, *a can only receive and *b can only send (as Python's r, w = Pipe(False)).
 * POSIX: a pipe each way plus a Unix-domain socket pair for large payloads (see
 * mproc_connection_handle); Windows: an overlapped named pipe with a unique name.
 * Errors: MPROC_EINVAL, MPROC_ENOMEM, MPROC_ESYS. Thread-safe. */
MPROC_API int mproc_pipe(bool duplex, mproc_connection **a, mproc_connection **b);

/* Connection.send_bytes(buf, offset, size): send buf[offset .. offset+size) as one message (size
 * MPROC_ALL: to the end of buf, whose length is buf_len). Blocks until the message is handed to the
 * OS. Errors: MPROC_EINVAL (offset/size outside buf), MPROC_ESTATE (this end cannot send: a
 * receive-only end), MPROC_ECLOSED (closed), MPROC_EPIPE (the peer has closed; never SIGPIPE),
 * MPROC_ESYS. */
MPROC_API int mproc_connection_send_bytes(mproc_connection *c, const void *buf, size_t buf_len, size_t offset,
                                          size_t size);

/* Connection.recv_bytes(maxlength): receive the next message into a new buffer (NUL-terminated for
 * convenience, the NUL not counted; release with mproc_free). maxlength 0 means no limit. Waits up to
 * timeout_ms for a message (MPROC_INFINITE: forever).
 * Errors: MPROC_EEOF (the peer closed and every message has been received), MPROC_ETIMEDOUT (no
 * whole message within the timeout; what arrived is kept for the next receive), MPROC_EMSGSIZE (the
 * next message is longer than maxlength: it is NOT consumed: the connection stays usable, and a later
 * recv with a larger limit or
 * recv_bytes_into with a large enough buffer gets it; mproc_last_error() says its size),
 * MPROC_ESTATE (a send-only end), MPROC_ECLOSED, MPROC_ENOMEM, MPROC_ESYS (an OS error, or a corrupt
 * stream: see "Receive guarantees" above; close such a connection). */
MPROC_API int mproc_connection_recv_bytes(mproc_connection *c, size_t maxlength, int64_t timeout_ms, char **data,
                                          size_t *len);

/* Connection.recv_bytes_into(buf): receive the next message into buf (cap bytes); *len is its size.
 * If it does not fit: MPROC_EMSGSIZE with *len set to the size needed, and the message is not lost
 * (receive it again with a big enough buffer). Other errors as recv_bytes. */
MPROC_API int mproc_connection_recv_bytes_into(mproc_connection *c, void *buf, size_t cap, int64_t timeout_ms,
                                               size_t *len);

/* Connection.poll(timeout): 0 if a message (or end of file) is ready to be received, MPROC_ETIMEDOUT if
 * not within timeout_ms (0: just check). Errors: MPROC_ESTATE (send-only end), MPROC_ECLOSED. */
MPROC_API int mproc_connection_poll(mproc_connection *c, int64_t timeout_ms);

/* Connection.close(): close this end (the peer then sees end of file). Further calls on it give
 * MPROC_ECLOSED; closing twice is harmless. The object itself stays valid until
 * mproc_connection_destroy. */
MPROC_API int mproc_connection_close(mproc_connection *c);

/* Close (if open) and free the object. NULL is ignored. */
MPROC_API void mproc_connection_destroy(mproc_connection *c);

/* Connection.closed / readable / writable. */
MPROC_API bool mproc_connection_closed(const mproc_connection *c);
MPROC_API bool mproc_connection_readable(const mproc_connection *c);
MPROC_API bool mproc_connection_writable(const mproc_connection *c);

/* Connection.fileno(): the native handle messages arrive on, the one to wait on for readability
 * (a send-only end: the handle it sends on). Owned by the connection; MPROC_NO_HANDLE when closed.
 * Windows: an overlapped named-pipe HANDLE that serves both directions and every message size.
 * POSIX: a pipe's read end. A connection end there holds more than one descriptor: a pipe each way
 * (a small message's round trip over pipes costs about half of one over a Unix socket pair) and one
 * end of a socket pair that carries the payloads of messages of 48 KiB or more (moved several times
 * faster than through a pipe), so a duplex end takes three descriptors and a one-way end two. The
 * header of every message still arrives on this handle, so it is the one to wait on. */
MPROC_API mproc_os_handle mproc_connection_handle(const mproc_connection *c);
/* The native handle messages leave on: on POSIX the write end of the other pipe of a duplex
 * connection; on Windows the same handle as mproc_connection_handle. MPROC_NO_HANDLE for a
 * receive-only end or when closed. */
MPROC_API mproc_os_handle mproc_connection_send_handle(const mproc_connection *c);

/* ---- handles and connections to a running process ------------------------------------------------
 *
 * Python counterparts: multiprocessing.reduction.send_handle / recv_handle, and sending a Connection
 * over a Connection. An object message travels in order with the bytes messages, but a receive takes
 * only its own kind: recv_bytes on an object message, or recv_os_handle on bytes or on a connection,
 * gives MPROC_ESTATE and leaves the message unread for the receive that fits. What arrives is checked
 * before it is handed over: its type (handle or connection), the handles' kinds (a file stays a file, a
 * connection's handles must be pipes or sockets), and the destination.
 *
 * Transports: the ends of mproc_pipe on both platforms. POSIX: the handles travel as SCM_RIGHTS on the
 * pipe's socket pair. Windows: the sender parks a copy of each handle in its own process and the
 * receiver takes it (DuplicateHandle with DUPLICATE_CLOSE_SOURCE), so the sender must still be running
 * when the message is received (else the receive fails saying so). A connection that cannot carry
 * handles gives MPROC_ENOTSUP (one made to speak CPython's framing).
 *
 * Nothing of a message that is never received stays in the receiver: on POSIX the kernel drops the
 * descriptors in flight when the last copy of the receiving end closes; on Windows the parked copy
 * stays in the sender until it ends (and is closed there at once if the send fails).
 *
 * destination_pid: the pid of the process meant to receive, or 0 for whichever reads the message (as
 * CPython, Windows takes the receiver's pid; here it is a check, on both platforms: another process
 * that reads the message gets MPROC_ESTATE and no handle). */

/* Send any mproc object (a lock, a value, a connection, ...: mproc/object.h) to the process destination_pid;
 * this process keeps its own. Errors: MPROC_EINVAL (a kind that cannot be sent, a NULL object), those
 * of handing the object on (a barrier whose action cannot be found again: MPROC_ENOENT), and as
 * send_os_handle. */
MPROC_API int mproc_connection_send_object(mproc_connection *c, mproc_object obj, int64_t destination_pid);
/* Receive an object of that kind: *obj is a new object of its type (mproc_lock *, ...; destroy it with its
 * module's call). Another kind, or bytes, next: MPROC_ESTATE, it stays unread. Errors as recv_os_handle. */
MPROC_API int mproc_connection_recv_object(mproc_connection *c, mproc_object_kind kind, int64_t timeout_ms, void **obj);

/* send_handle(conn, handle, destination_pid): send a copy of the OS handle h (this process keeps h).
 * Errors: MPROC_EINVAL (h is not an open handle, destination_pid < 0), MPROC_ENOTSUP, and those of
 * send_bytes. */
MPROC_API int mproc_connection_send_os_handle(mproc_connection *c, mproc_os_handle h, int64_t destination_pid);
/* recv_handle(conn): receive a handle sent with send_os_handle; *h is this process's (close it; not
 * inherited by children). Errors: MPROC_ESTATE (the next message is not a handle; it stays unread, or
 * it was meant for another process: it is consumed), MPROC_ESYS (what came is malformed, or on Windows
 * its sender has ended), and those of recv_bytes. */
MPROC_API int mproc_connection_recv_os_handle(mproc_connection *c, int64_t timeout_ms, mproc_os_handle *h);
/* Send a connection end `conn` (this process keeps its own: close it when done, so that end of file still
 * reaches the peer once the receiver closes). Errors as send_os_handle, MPROC_ECLOSED (conn is closed). */
MPROC_API int mproc_connection_send_connection(mproc_connection *c, mproc_connection *conn, int64_t destination_pid);
/* Receive a connection end sent with send_connection: *conn is a new object (mproc_connection_destroy).
 * Errors as recv_os_handle. */
MPROC_API int mproc_connection_recv_connection(mproc_connection *c, int64_t timeout_ms, mproc_connection **conn);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_CONNECTION_H */
