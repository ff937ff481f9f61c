/* Authkey handshakes: CPython 3.12's multiprocessing.connection deliver_challenge / answer_challenge, as a
 * state machine over an mproc_connection, so that one engine serves a Client and a public call (which
 * wait for each message up to a deadline) and a Listener (which drives many handshakes at once, each a
 * step further whenever its connection has bytes; see listener.c). The messages and the parser of what
 * the peer sends live in auth.c alone; HMAC and random bytes come from the PAL ("authentication").
 *
 * Wire (every message one frame of the connection, every receive bounded to MPROC__AUTH_MSG_MAX bytes):
 *   deliver: send "#CHALLENGE#{sha256}" + 40 random bytes; receive the answer "{sha256}" + HMAC-SHA256 of
 *            everything after "#CHALLENGE#" under the key; send "#WELCOME#" or "#FAILURE#".
 *   answer:  receive "#CHALLENGE#{<digest>}..."; send "{<digest>}" + HMAC-<digest> of it; receive
 *            "#WELCOME#" (else the peer refused us).
 * A server delivers then answers, a client answers then delivers. Stricter than CPython on purpose: a
 * deliverer accepts only the digest it challenged with, and the legacy protocol of Python 3.11 and older
 * (a 20-byte challenge without a digest name, answered by a bare 16-byte HMAC-MD5) only when asked to
 * (legacy_md5). */
#ifndef MPROC_AUTH_H
#define MPROC_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/connection.h"
#include "pal.h"

/* The most bytes a handshake message may have (CPython: recv_bytes(256)). */
#define MPROC__AUTH_MSG_MAX 256
/* The random part of a challenge (CPython's MESSAGE_LENGTH). */
#define MPROC__AUTH_NONCE 40

/* Which side, and so the order of the steps. */
typedef enum mproc__auth_role {
  MPROC__AUTH_SERVER = 0, /* deliver, then answer (Listener.accept) */
  MPROC__AUTH_CLIENT,     /* answer, then deliver (Client) */
  MPROC__AUTH_DELIVER,    /* deliver alone (deliver_challenge) */
  MPROC__AUTH_ANSWER      /* answer alone (answer_challenge) */
} mproc__auth_role;

typedef struct mproc__auth {
  const unsigned char *key; /* not owned: outlives the handshake */
  size_t klen;
  bool legacy_md5;
  mproc__auth_role role;
  int step;                                        /* steps done (see auth.c) */
  unsigned char challenge[16 + MPROC__AUTH_NONCE]; /* what we delivered after "#CHALLENGE#" */
  size_t clen;
  const char *call; /* names the public call in messages */
} mproc__auth;

/* Whether this build can authenticate at all (HMAC-SHA256 works): 0, or MPROC_ENOTSUP saying why (a POSIX
 * build without libcrypto), for `call`. Listener and Client ask before they touch the network. */
int mproc__auth_available(const char *call);

/* Set up a handshake (nothing is sent yet). */
void mproc__auth_init(mproc__auth *a, mproc__auth_role role, const void *key, size_t klen, bool legacy_md5,
                      const char *call);
/* Go on with it: send what is due, take the peer's next messages as they come, until it is done or the
 * deadline (INT64_MAX: none; a deadline already past takes only what has arrived). 0: both sides are
 * proven; MPROC_ETIMEDOUT: the next message has not arrived whole (nothing is lost: call again);
 * MPROC_EAUTH: the handshake failed (a wrong key, a refused digest, a peer that closed or sent what no
 * handshake sends; the message says which): close the connection; MPROC_ENOTSUP: the peer chose a
 * digest this platform's crypto lacks, or there is no crypto (a build without libcrypto); other errors
 * of the connection. */
int mproc__auth_continue(mproc__auth *a, mproc_connection *c, int64_t deadline);

/* The parser of what a peer sends (fuzzed through mproc__auth_continue's callers' tests): the digest of a
 * challenge's or an answer's body m[0..len). 1: "{name}..." with a digest of CPython's list (*d, and
 * *skip the bytes of "{name}"); 2: legacy (16 or 20 bytes, no name: MD5, *skip 0); 0: neither. */
int mproc__auth_parse(const unsigned char *m, size_t len, mproc__digest *d, size_t *skip);

#endif
