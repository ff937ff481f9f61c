/* libFuzzer target: the connection frame reader (src/connection.c) on real handles, in both frame
 * formats (mproc's, CPython's multiprocessing.connection). The fuzz bytes are
 * what a hostile peer writes: they go raw onto the peer's send handle (and, optionally, a part onto its
 * bulk handle) of an mproc_pipe(true) pair; then the receiving end takes messages with recv_bytes and
 * recv_bytes_into, alternately or not, and polls, until end of file or a corrupt stream; an object frame
 * that meets them (MPROC_ESTATE) is received as a handle or a connection. Nothing may
 * crash, leak, hang or break the receive contract (errors are sticky; a message has no more bytes than
 * were sent; after the peer closed, poll answers at once).
 *
 * Input: byte 0 options, byte 1 sizes, bytes 2-3 (LE) the bulk part's length, then the stream.
 *   options bits 0-1  receive with: 0 alternate (recv_bytes first), 1 recv_bytes, 2 recv_bytes_into,
 *                     3 alternate (recv_bytes_into first)
 *           bit 2     poll before each receive
 *           bits 3-4  recv_bytes maxlength: 0 (no limit), 16, 4096, 1 MiB
 *           bit 5     the bulk handle gets the first `bulk length` bytes of the rest
 *           bit 6     interleaved: the stream and the bulk part are written a piece at a time with a
 *                     receive (timeout 0, the peer still open) after each piece, so headers and
 *                     payloads arrive cut anywhere and receives of both kinds continue each other's
 *                     partial messages; after MAX_STEPS pieces the rest is written at once
 *           bit 7     receive timeouts of 1 ms instead of 0 once the peer closed
 *   sizes  bits 0-2   recv_bytes_into's buffer: 0, 1, 4, 15, 64, 1000, 4096, 65536 bytes
 *          bits 3-6   the piece size when interleaved: 1, 2, 3, 4, 5, 7, 8, 11, 12, 13, 16, 17, 64, 100,
 *                     1000, 4096 bytes
 *          bit 7      the receiving end frames with CPython's format (mproc__frame_cpython: big-endian,
 *                     no bulk mark; the bulk part is written but never read) instead of mproc's
 * Inputs are cut at MAX_INPUT bytes: the pipe's buffer holds them, so writing never blocks. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connection_internal.h"
#include "pal.h"

#define MAX_INPUT (60 * 1024)
#define MAX_RECEIVES 256
#define MAX_STEPS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok) __builtin_trap();
}

static void put(mproc_os_handle h, const uint8_t *p, size_t n) {
  if (n) check(mproc__pal_conn_send(h, p, n, NULL, 0) == 0);
}

typedef struct state {
  uint8_t opt;
  size_t maxlength, into_cap;
  int64_t timeout_ms;
  uint8_t *into;
  size_t sent;   /* bytes written so far, stream + bulk */
  int sticky;    /* MPROC_EEOF or MPROC_ESYS once a receive said so: every later one says it too */
  unsigned turn; /* receives made */
} state;

/* A receive of bytes met an object frame (MPROC_ESTATE): receive it as a handle or a connection, by
 * turns. Whatever it gives back is this process's and closed at once; a receive of the other type
 * leaves it (ESTATE); a malformed one is dropped (ESYS, not sticky). */
static int receive_object(mproc_connection *a, state *s, int64_t timeout_ms) {
  int rc;
  if (s->turn & 2) {
    mproc_connection *c = NULL;
    rc = mproc_connection_recv_connection(a, timeout_ms, &c);
    check(rc == 0 ? c != NULL : c == NULL);
    mproc_connection_destroy(c);
  } else {
    mproc_os_handle h = MPROC_NO_HANDLE;
    rc = mproc_connection_recv_os_handle(a, timeout_ms, &h);
    check(rc == 0 ? h != MPROC_NO_HANDLE : h == MPROC_NO_HANDLE);
    mproc__pal_close(h);
  }
  if (rc == MPROC_ESYS && !a->corrupt) rc = MPROC_ESTATE; /* a dropped message: the stream goes on */
  return rc;
}

/* One receive (and maybe a poll). Returns its result. */
static int receive_once(mproc_connection *a, state *s, bool peer_closed) {
  int64_t timeout_ms = peer_closed ? s->timeout_ms : 0; /* never wait on an open peer */
  if (s->opt & 4) {
    int prc = mproc_connection_poll(a, 0);
    check(prc == 0 || (!peer_closed && prc == MPROC_ETIMEDOUT));
  }
  unsigned mode = s->opt & 3;
  bool into = mode == 2 || (mode == 0 && (s->turn & 1)) || (mode == 3 && !(s->turn & 1));
  ++s->turn;
  int rc;
  size_t n = 0;
  if (into) {
    rc = mproc_connection_recv_bytes_into(a, s->into, s->into_cap, timeout_ms, &n);
    if (rc == 0) check(n <= s->into_cap && n <= s->sent);
    if (rc == MPROC_EMSGSIZE) check(n > s->into_cap);
  } else {
    char *d = NULL;
    rc = mproc_connection_recv_bytes(a, s->maxlength, timeout_ms, &d, &n);
    if (rc == 0)
      check(d != NULL && n <= s->sent && (!s->maxlength || n <= s->maxlength) && d[n] == '\0');
    else
      check(d == NULL);
    mproc_free(d);
  }
  if (rc == MPROC_ESTATE) rc = receive_object(a, s, timeout_ms); /* an object frame came first */
  if (s->sticky) check(rc == s->sticky);
  if (rc == MPROC_EEOF || rc == MPROC_ESYS) s->sticky = rc;
  check(rc == 0 || rc == MPROC_EEOF || rc == MPROC_ESYS || rc == MPROC_EMSGSIZE || rc == MPROC_ETIMEDOUT ||
        rc == MPROC_ESTATE);
  if (peer_closed) check(rc != MPROC_ETIMEDOUT); /* everything has arrived: nothing to wait for */
  return rc;
}

static void closed_fd(mproc_os_handle h) {
  if (h != MPROC_NO_HANDLE) check(fcntl((int)h, F_GETFD) == -1 && errno == EBADF);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  if (size > MAX_INPUT) size = MAX_INPUT;
  static const size_t caps[8] = {0, 1, 4, 15, 64, 1000, 4096, 65536};
  static const size_t maxlens[4] = {0, 16, 4096, 1024 * 1024};
  static const size_t pieces[16] = {1, 2, 3, 4, 5, 7, 8, 11, 12, 13, 16, 17, 64, 100, 1000, 4096};
  state s = {0};
  s.opt = data[0];
  s.maxlength = maxlens[(s.opt >> 3) & 3];
  s.into_cap = caps[data[1] & 7];
  size_t piece = pieces[(data[1] >> 3) & 15];
  bool cpython = (data[1] & 128) != 0;
  s.timeout_ms = (s.opt & 128) ? 1 : 0;
  size_t bulk_len = (size_t)data[2] | (size_t)data[3] << 8;
  data += 4;
  size -= 4;
  if (!(s.opt & 32)) bulk_len = 0;
  if (bulk_len > size) bulk_len = size;
  const uint8_t *bulk = data, *stream = data + bulk_len;
  size_t stream_len = size - bulk_len;

  mproc_connection *a = NULL, *b = NULL;
  if (mproc_pipe(true, &a, &b) != 0) return 0; /* out of descriptors: not the reader's fault */
  if (cpython) {                               /* the same handles, CPython's frames */
    mproc__conn_end e = a->e;
    a->e.rd = a->e.wr = a->e.bulk = MPROC_NO_HANDLE;
    mproc_connection_destroy(a);
    a = mproc__connection_wrap_format(e, &mproc__frame_cpython);
    check(a != NULL);
  }
  s.into = (uint8_t *)malloc(s.into_cap ? s.into_cap : 1); /* exactly cap bytes: ASan sees overruns */
  check(s.into != NULL);
  mproc__conn_end ae = a->e, be = b->e;

  size_t bulk_done = 0, stream_done = 0;
  if (s.opt & 64) {
    for (int i = 0; i < MAX_STEPS && (bulk_done < bulk_len || stream_done < stream_len); ++i) {
      size_t k = bulk_len - bulk_done < piece ? bulk_len - bulk_done : piece;
      put(b->e.bulk, bulk + bulk_done, k);
      bulk_done += k;
      s.sent += k;
      k = stream_len - stream_done < piece ? stream_len - stream_done : piece;
      put(b->e.wr, stream + stream_done, k);
      stream_done += k;
      s.sent += k;
      int rc = receive_once(a, &s, false);
      if (rc == MPROC_EEOF || rc == MPROC_ESYS) break;
    }
  }
  put(b->e.bulk, bulk + bulk_done, bulk_len - bulk_done);
  put(b->e.wr, stream + stream_done, stream_len - stream_done);
  s.sent = bulk_len + stream_len;
  mproc_connection_destroy(b);
  closed_fd(be.rd);
  closed_fd(be.wr);
  closed_fd(be.bulk);

  int rc = 0;
  for (unsigned i = 0; i < MAX_RECEIVES && rc != MPROC_EEOF && rc != MPROC_ESYS; ++i) rc = receive_once(a, &s, true);
  if (rc == MPROC_EEOF || rc == MPROC_ESYS) receive_once(a, &s, true); /* and it stays so */

  mproc_connection_destroy(a);
  closed_fd(ae.rd);
  closed_fd(ae.wr);
  closed_fd(ae.bulk);
  free(s.into);
  return 0;
}
