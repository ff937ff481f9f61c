/*
 * mproc/listener.h: connections between processes that did not start each other, by address, with
 * authkeys: a C program and a Python program talk too.
 * Python counterparts: multiprocessing.connection.Listener, Client, deliver_challenge, answer_challenge,
 * address_type; current_process().authkey is in mproc/process.h.
 *
 *   // server                                           // client (another program, or Python)
 *   mproc_listener *l;                                  mproc_connection *c;
 *   mproc_listener_create(&l, &(mproc_listener_opts){   mproc_client(&c, &(mproc_client_opts){
 *       .address = "127.0.0.1:6000",                        .address = "127.0.0.1:6000",
 *       .authkey = "secret", .authkey_size = 6});           .authkey = "secret", .authkey_size = 6}, 5000);
 *   mproc_connection *c;                                mproc_connection_send_bytes(c, "hi", 2, 0, MPROC_ALL);
 *   mproc_listener_accept(l, MPROC_INFINITE, &c);
 *
 * The connections are ordinary mproc_connection objects (send_bytes, recv_bytes, poll, mproc_wait) that
 * speak CPython's multiprocessing.connection framing on the wire: a 4-byte big-endian length (-1 and an
 * 8-byte length above 2 GiB), then the bytes; no side channel. So a Python Client(address, authkey=...)
 * can connect to an mproc Listener and the reverse, over Unix sockets and TCP (tested on Linux against
 * CPython 3.12 and 3.13; see docs/guide.md, "Talking to Python programs"). Python pickles objects with
 * send(); a C program sends and receives bytes (send_bytes / recv_bytes on the Python side, or a format
 * both sides agree on). These connections carry bytes only: sending an object or a handle over them
 * gives MPROC_ENOTSUP. They can themselves be handed to a child (mproc_process_opts.connections), as a
 * Pipe's end can, under every start method: a server may accept and give each client to a worker
 * (tested on Linux and under wine; on Windows the socket is inherited as a handle, which the system's
 * own winsock providers allow).
 *
 * FAMILIES AND ADDRESSES (strings; the family is inferred from the address, as Python's address_type):
 *   MPROC_FAMILY_UNIX  (POSIX) a Unix-domain socket: a path ("/run/app.sock", "./app.sock"), or on Linux
 *                      a name in the abstract namespace, written "@name" (Python's "\0name"; "@" alone to
 *                      listen: the kernel picks a name). Windows: MPROC_ENOTSUP.
 *   MPROC_FAMILY_INET  TCP over IPv4: "host:port" ("127.0.0.1:6000", "localhost:6000"; port 0 to listen:
 *                      the system picks one; an empty host listens on every address).
 *   MPROC_FAMILY_INET6 TCP over IPv6: "[host]:port" ("[::1]:6000"). Listens on IPv6 alone (IPV6_V6ONLY).
 *   MPROC_FAMILY_PIPE  (Windows) a named pipe: "\\.\pipe\name". They carry CPython's length-prefixed
 *                      frames in byte mode and so talk to mproc programs only: CPython's own pipe
 *                      Listener uses message mode without the prefix (talk to Python over TCP on
 *                      Windows). POSIX: MPROC_ENOTSUP.
 * Inference: "\\..." a pipe; "[...]:port" IPv6; "/...", "./...", "@..." a Unix socket; "host:port" with a
 * decimal port and no '/' IPv4; anything else a Unix socket path. Give the family to override it.
 * The default family (no address, no family): MPROC_FAMILY_UNIX on POSIX, MPROC_FAMILY_PIPE on Windows,
 * with a generated address that only this user can reach (POSIX: a socket in a new directory of mode
 * 0700 under $TMPDIR or /tmp, removed again by close; Windows: a random pipe name).
 *
 * SECURITY (read this before listening on TCP). With an authkey, both sides prove that they know it
 * before accept or mproc_client returns (HMAC-SHA256 challenges, as CPython 3.12+: the key itself never
 * crosses the wire); a wrong key gives MPROC_EAUTH on both sides and nothing is served. The bytes that
 * follow are NOT encrypted nor protected against tampering: on a network, anyone on the path can read
 * them, and one who can alter packets can take over an authenticated connection. Use TCP across machines
 * only on a network you trust, or through a tunnel (SSH, WireGuard). Without an authkey:
 *   - a Unix socket path is guarded by its file's permissions (the process's umask; the generated
 *     address sits in a directory only this user can open);
 *   - a Linux abstract socket has no permissions at all: the Listener checks the peer's user (the
 *     kernel's word, SO_PEERCRED) and refuses any other user (MPROC_EAUTH);
 *   - a TCP listener serves anyone who can reach its port. On Linux a peer on the same machine is
 *     looked up (/proc/net/tcp) and refused unless it runs as this user; a peer on another machine
 *     cannot be told, and is served. On Windows no peer's user can be told. Listen on loopback, or use
 *     an authkey;
 *   - a Windows named pipe admits this user alone (its DACL) and refuses remote clients.
 * MD5: Python 3.11 and older speak only an HMAC-MD5 handshake. mproc refuses it unless asked
 * (allow_legacy_md5), and a Listener accepts only the digest it challenged with (CPython 3.12 would accept
 * an MD5 answer too). HMAC comes from the platform's crypto, never from code of mproc's: OpenSSL's
 * libcrypto on POSIX (a build without it gives MPROC_ENOTSUP for every authkey), BCrypt on Windows.
 * Handshake messages are bounded (256 bytes), and memory follows what arrived.
 */
#ifndef MPROC_LISTENER_H
#define MPROC_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/connection.h"
#include "mproc/core.h"
#include "mproc/mproc_export.h"
#include "mproc/process.h" /* mproc_waitable */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mproc_family {
  MPROC_FAMILY_DEFAULT = 0, /* inferred from the address; without one, the platform's default (above) */
  MPROC_FAMILY_UNIX = 1,    /* Python's 'AF_UNIX' */
  MPROC_FAMILY_INET = 2,    /* 'AF_INET' */
  MPROC_FAMILY_INET6 = 3,   /* TCP over IPv6 (Python's Listener has no such family) */
  MPROC_FAMILY_PIPE = 4     /* 'AF_PIPE' */
} mproc_family;

/* Python's name of a family ("AF_UNIX", "AF_INET", "AF_INET6", "AF_PIPE"; "default"), never NULL. */
MPROC_API const char *mproc_family_name(mproc_family family);
/* address_type(address): the family an address would be given (see the inference above), or
 * MPROC_FAMILY_DEFAULT for NULL or an empty string. */
MPROC_API mproc_family mproc_address_family(const char *address);

typedef struct mproc_listener mproc_listener;

/* Options for a listener. All-zero means the defaults: the default family, a generated address, no
 * authkey. Read only during create. */
typedef struct mproc_listener_opts {
  const char *address; /* NULL: a generated one of the family (INET: "127.0.0.1:0", INET6: "[::1]:0") */
  mproc_family family; /* DEFAULT: inferred (see above) */
  int backlog;         /* pending connections the system keeps; 0: 16 (Python's Listener: 1) */
  /* With an authkey every client must prove it knows the key before accept returns it, and the listener
   * proves it too. authkey NULL and process_authkey false: no handshake (as Python's authkey=None). */
  const void *authkey;
  size_t authkey_size;   /* at most MPROC_AUTHKEY_MAX; an empty key (authkey set, size 0) is a key */
  bool process_authkey;  /* use this process's authkey (mproc_current_process_authkey, as a Manager does) */
  bool allow_legacy_md5; /* also accept clients of Python 3.11 and older (HMAC-MD5) */
  /* The time one client has for the handshake, from its connect: a client that stalls is dropped when
   * it runs out, and never holds up the others (accept drives up to 64 handshakes at once; beyond that
   * new clients wait in the backlog). 0: 10000 ms; MPROC_INFINITE: no limit. */
  int64_t handshake_timeout_ms;
} mproc_listener_opts;

/* Listener(address, family, backlog, authkey): bind and listen. Errors: MPROC_EINVAL (a NULL out or opts,
 * an address that does not fit its family, a family that is none, a key too long), MPROC_EEXIST (the
 * address is in use: a path that exists, a port taken, a pipe name someone holds), MPROC_ENOENT (no such
 * host, no such directory), MPROC_EPERM, MPROC_ENOTSUP (a family this system lacks; an authkey in a build
 * without libcrypto), MPROC_ENOMEM, MPROC_ESYS. */
MPROC_API int mproc_listener_create(mproc_listener **out, const mproc_listener_opts *opts);

/* Listener.accept(): the next client, once it has passed the handshake (authkey) or the peer check
 * (abstract socket and TCP without authkey, see SECURITY), waiting up to timeout_ms (0: take what is
 * ready; MPROC_INFINITE: for ever). Handshakes run side by side: a client that stalls keeps none of the
 * others waiting, and a handshake cut off by the timeout goes on at the next accept. *conn is a new
 * connection (mproc_connection_destroy).
 * Errors: MPROC_ETIMEDOUT (no client was ready in time), MPROC_EAUTH (a client failed the handshake or
 * the peer check, or left or broke the stream during its handshake: it was refused and its connection
 * closed; the message says who and why; accept again for the next), MPROC_ENOTSUP (a client chose a
 * digest this platform lacks, or this build has no libcrypto: it was closed),
 * MPROC_ECLOSED (the listener is closed), MPROC_EINVAL, MPROC_ENOMEM, MPROC_ESYS (out of descriptors,
 * ...). Not thread-safe: one thread accepts (or waits on the listener) at a time. */
MPROC_API int mproc_listener_accept(mproc_listener *l, int64_t timeout_ms, mproc_connection **conn);

/* Listener.close(): stop listening; handshakes in progress are dropped; a Unix socket file the listener
 * made is removed (the generated directory too). Connections accepted before stay open. Closing twice
 * is harmless; later accepts give MPROC_ECLOSED. */
MPROC_API int mproc_listener_close(mproc_listener *l);
/* Close (if open) and free. NULL is ignored. */
MPROC_API void mproc_listener_destroy(mproc_listener *l);

/* Listener.address: the address as bound, in the form a client connects to: the port the system picked
 * for 0 ("127.0.0.1:45123"), the abstract name picked for "@", the generated path or pipe name. Owned by
 * the listener. */
MPROC_API const char *mproc_listener_address(const mproc_listener *l);
MPROC_API mproc_family mproc_listener_family(const mproc_listener *l);
/* Listener.last_accepted: the address of the last client accepted ("host:port" over TCP; a Unix client's
 * path, usually ""; "" for pipes), NULL before the first. Owned by the listener, valid until the next
 * accept. */
MPROC_API const char *mproc_listener_last_accepted(const mproc_listener *l);

/* Options for a client. */
typedef struct mproc_client_opts {
  const char *address; /* required */
  mproc_family family; /* DEFAULT: inferred from the address */
  const void *authkey; /* as mproc_listener_opts: prove it and have the listener prove it */
  size_t authkey_size;
  bool process_authkey;
  bool allow_legacy_md5; /* also answer a listener of Python 3.11 and older (HMAC-MD5) */
} mproc_client_opts;

/* Client(address, family, authkey): connect, and with an authkey run the handshake, all within
 * timeout_ms (MPROC_INFINITE: for ever). *out is a new connection (mproc_connection_destroy).
 * Errors: MPROC_ENOENT (nothing listens at the address: no such socket or pipe, connection refused, no
 * such host), MPROC_ETIMEDOUT (no connection or no finished handshake in time), MPROC_EAUTH (the listener
 * refused our key, failed to prove its own, speaks only the legacy MD5 handshake, or sent what no
 * handshake sends: a listener without authkey, say), MPROC_ENOTSUP (the listener chose a digest this
 * platform lacks, such as SHA-3 under wine; a family this system lacks; a build without libcrypto),
 * MPROC_EINVAL, MPROC_EPERM, MPROC_ENOMEM, MPROC_ESYS. Thread-safe. */
MPROC_API int mproc_client(mproc_connection **out, const mproc_client_opts *opts, int64_t timeout_ms);

/* deliver_challenge(connection, authkey) / answer_challenge(connection, authkey): one half of the
 * handshake on any connection (a Listener's, a Pipe's), as CPython's functions: deliver sends a
 * challenge and checks the answer (sending "#WELCOME#" or "#FAILURE#"), answer answers the peer's.
 * Listener/Client run both, deliver first on the listening side. Legacy MD5 is refused. Errors:
 * MPROC_EAUTH, MPROC_ETIMEDOUT (the handshake is then broken: close the connection), MPROC_ENOTSUP, and
 * those of send_bytes / recv_bytes. */
MPROC_API int mproc_deliver_challenge(mproc_connection *c, const void *authkey, size_t authkey_size,
                                      int64_t timeout_ms);
MPROC_API int mproc_answer_challenge(mproc_connection *c, const void *authkey, size_t authkey_size, int64_t timeout_ms);

/* For mproc_wait: ready when accept can make progress: a client waits to be taken, or a handshake in
 * progress has news (a message, or its client closed). accept with timeout 0 may still give
 * MPROC_ETIMEDOUT (a handshake needs another message), as a connection's receive may. */
static inline mproc_waitable mproc_waitable_listener(mproc_listener *l) {
  mproc_waitable w;
  w.kind = MPROC_WAIT_LISTENER;
  w.object = l;
  w.ready = false;
  return w;
}

#ifdef __cplusplus
}
#endif

#endif /* MPROC_LISTENER_H */
