/* Connections: length-prefixed messages over PAL byte streams (POSIX Pipe(): a pipe each way plus a
 * socket pair for bulk; boot links: a socket pair; Windows: a named pipe). See mproc__conn_end.
 *
 * Frame: a 4-byte little-endian length, then the payload. Lengths of 0xFFFFFFFE or more are sent as
 * 0xFFFFFFFF followed by an 8-byte little-endian length (as CPython does), so messages of any size keep
 * their boundaries. A message of BULK_MIN bytes or more on a connection with a bulk handle is sent as
 * 0xFFFFFFFE and the 8-byte length on wr, and its payload on the bulk handle: the header first, so a
 * receiver waiting on rd wakes and reads the payload while the sender is still writing it. The receive
 * side reads ahead into a buffer, so a small message costs one system call on each side; large
 * payloads are read straight into the caller's memory. */
#include <stdlib.h>
#include <string.h>

#include "connection_internal.h"
#include "internal.h"
#include "pal.h"

#define RBUF_SIZE (64 * 1024)
#define SMALL_SEND (16 * 1024)
#define BULK_MIN (48 * 1024) /* pipes win below 32 KiB, the socket pair above 64 KiB (see pal.h) */
#define LEN_BULK 0xFFFFFFFEu
#define LEN_LONG 0xFFFFFFFFu

void mproc__conn_end_close(mproc__conn_end *e) {
  if (e->bulk != e->rd && e->bulk != e->wr) mproc__pal_close(e->bulk);
  if (e->wr != e->rd) mproc__pal_close(e->wr);
  mproc__pal_close(e->rd);
  e->rd = e->wr = e->bulk = MPROC_NO_HANDLE;
}

mproc__conn_end mproc__conn_end_link(mproc_os_handle h) {
  mproc__conn_end e = {h, h, MPROC_NO_HANDLE};
  return e;
}

mproc_connection *mproc__connection_wrap(mproc__conn_end e) {
  mproc_connection *c = (mproc_connection *)calloc(1, sizeof *c);
  if (!c) {
    mproc__fail(MPROC_ENOMEM, "connection: out of memory");
    return NULL;
  }
  c->e = e;
  c->readable = e.rd != MPROC_NO_HANDLE;
  c->writable = e.wr != MPROC_NO_HANDLE;
  return c;
}

int mproc_pipe(bool duplex, mproc_connection **a, mproc_connection **b) {
  if (!a || !b) return mproc__fail(MPROC_EINVAL, "pipe: a and b must not be NULL");
  *a = *b = NULL;
  mproc__conn_end ea, eb;
  int rc = mproc__pal_conn_ends(duplex, &ea, &eb);
  if (rc) return rc;
  *a = mproc__connection_wrap(ea);
  *b = mproc__connection_wrap(eb);
  if (!*a || !*b) {
    if (*a) mproc_connection_destroy(*a);
    else mproc__conn_end_close(&ea);
    if (*b) mproc_connection_destroy(*b);
    else mproc__conn_end_close(&eb);
    *a = *b = NULL;
    return MPROC_ENOMEM;
  }
  return 0;
}

static int usable(const mproc_connection *c, bool want_read, const char *call) {
  if (!c) return mproc__fail(MPROC_EINVAL, "%s: connection is NULL", call);
  if (mproc_connection_closed(c)) return mproc__fail(MPROC_ECLOSED, "%s: the connection is closed", call);
  if (want_read && !c->readable)
    return mproc__fail(MPROC_ESTATE, "%s: this end of the pipe is send-only (Pipe(duplex=false))", call);
  if (!want_read && !c->writable)
    return mproc__fail(MPROC_ESTATE, "%s: this end of the pipe is receive-only (Pipe(duplex=false))", call);
  return 0;
}

/* ---- sending ------------------------------------------------------------------------------ */

static size_t put_header(unsigned char *h, uint64_t len, bool bulk) {
  if (len < LEN_BULK && !bulk) {
    for (int i = 0; i < 4; ++i) h[i] = (unsigned char)(len >> (8 * i));
    return 4;
  }
  uint32_t mark = bulk ? LEN_BULK : LEN_LONG;
  for (int i = 0; i < 4; ++i) h[i] = (unsigned char)(mark >> (8 * i));
  for (int i = 0; i < 8; ++i) h[4 + i] = (unsigned char)(len >> (8 * i));
  return 12;
}

int mproc_connection_send_bytes(mproc_connection *c, const void *buf, size_t buf_len, size_t offset, size_t size) {
  int rc = usable(c, false, "send_bytes");
  if (rc) return rc;
  if (!buf && buf_len) return mproc__fail(MPROC_EINVAL, "send_bytes: buf is NULL but buf_len is %zu", buf_len);
  if (offset > buf_len) return mproc__fail(MPROC_EINVAL, "send_bytes: offset %zu is past the buffer (%zu bytes)", offset, buf_len);
  if (size == MPROC_ALL) size = buf_len - offset;
  if (size > buf_len - offset)
    return mproc__fail(MPROC_EINVAL, "send_bytes: offset %zu + size %zu is past the buffer (%zu bytes)", offset, size,
                       buf_len);
  unsigned char small[12 + SMALL_SEND];
  bool bulk = size >= BULK_MIN && c->e.bulk != MPROC_NO_HANDLE;
  size_t hl = put_header(small, size, bulk);
  const char *payload = size ? (const char *)buf + offset : NULL;
  if (size <= SMALL_SEND) { /* one contiguous write: one system call, one wake-up of the reader */
    if (size) memcpy(small + hl, payload, size);
    return mproc__pal_conn_send(c->e.wr, small, hl + size, NULL, 0);
  }
  if (!bulk) return mproc__pal_conn_send(c->e.wr, small, hl, payload, size);
  rc = mproc__pal_conn_send(c->e.wr, small, hl, NULL, 0);
  return rc ? rc : mproc__pal_conn_send(c->e.bulk, payload, size, NULL, 0);
}

/* ---- receiving ---------------------------------------------------------------------------- */

/* A header already parsed counts: its message was refused for its size and waits (a bulk payload is not
 * on rd at all). */
bool mproc__connection_buffered(const mproc_connection *c) { return c->have_len || c->rlen > c->rpos || c->eof; }

/* Read more bytes into the read-ahead buffer. 0 (maybe with eof set), MPROC_ETIMEDOUT, or an error. */
static int fill(mproc_connection *c, int64_t deadline) {
  if (c->eof) return 0;
  if (!c->rbuf) {
    c->rbuf = (char *)malloc(RBUF_SIZE);
    if (!c->rbuf) return mproc__fail(MPROC_ENOMEM, "recv: out of memory");
    c->rcap = RBUF_SIZE;
  }
  if (c->rpos == c->rlen) {
    c->rpos = c->rlen = 0;
  } else if (c->rpos > 0 && c->rcap - c->rlen < 16) {
    memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
    c->rlen -= c->rpos;
    c->rpos = 0;
  }
  size_t n = 0;
  int rc = mproc__pal_conn_recv(c->e.rd, c->rbuf + c->rlen, c->rcap - c->rlen, deadline, &n);
  if (rc) return rc;
  if (n == 0)
    c->eof = true;
  else
    c->rlen += n;
  return 0;
}

/* Make the next message's length known. 0, MPROC_EEOF, MPROC_ETIMEDOUT (nothing consumed), error. */
static int next_header(mproc_connection *c, int64_t deadline) {
  while (!c->have_len) {
    size_t avail = c->rlen - c->rpos;
    const unsigned char *p = c->rbuf ? (const unsigned char *)c->rbuf + c->rpos : NULL; /* NULL: avail is 0 */
    if (avail >= 4) {
      uint64_t len = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
      if (len < LEN_BULK) {
        c->rpos += 4;
        c->msg_len = len;
        c->msg_bulk = false;
        c->have_len = true;
        break;
      }
      if (avail >= 12) {
        c->msg_bulk = len == LEN_BULK;
        if (c->msg_bulk && c->e.bulk == MPROC_NO_HANDLE)
          return mproc__fail(MPROC_ESYS, "recv: a bulk message came on a connection without a bulk handle");
        len = 0;
        for (int i = 0; i < 8; ++i) len |= (uint64_t)p[4 + i] << (8 * i);
        c->rpos += 12;
        c->msg_len = len;
        c->have_len = true;
        break;
      }
    }
    if (c->eof) {
      if (avail == 0) return mproc__fail(MPROC_EEOF, "recv: end of file: the peer closed the connection");
      return mproc__fail(MPROC_ESYS, "recv: the peer closed in the middle of a message header (%zu bytes)", avail);
    }
    int rc = fill(c, deadline);
    if (rc == MPROC_ETIMEDOUT) return mproc__fail(rc, "recv: no message arrived before the timeout");
    if (rc) return rc;
  }
  return 0;
}

/* Copy the current message's payload (msg_len bytes) into dst, then forget the header. */
static int read_payload(mproc_connection *c, char *dst) {
  uint64_t need = c->msg_len;
  size_t have = c->msg_bulk ? 0 : c->rlen - c->rpos; /* a bulk payload is all on the bulk handle */
  size_t take = have < need ? have : (size_t)need;
  mproc_os_handle from = c->msg_bulk ? c->e.bulk : c->e.rd;
  if (take) memcpy(dst, c->rbuf + c->rpos, take);
  c->rpos += take;
  size_t done = take;
  while (done < need) { /* the rest straight into the destination: no double copy of large messages */
    size_t n = 0;
    int rc = mproc__pal_conn_recv(from, dst + done, (size_t)(need - done), INT64_MAX, &n);
    if (rc) return rc;
    if (n == 0) {
      c->eof = c->eof || !c->msg_bulk;
      c->have_len = false;
      return mproc__fail(MPROC_ESYS, "recv: the peer closed in the middle of a %llu-byte message",
                         (unsigned long long)need);
    }
    done += n;
  }
  c->have_len = false;
  return 0;
}

int mproc_connection_recv_bytes(mproc_connection *c, size_t maxlength, int64_t timeout_ms, char **data, size_t *len) {
  if (data) *data = NULL;
  if (len) *len = 0;
  int rc = usable(c, true, "recv_bytes");
  if (rc) return rc;
  if (!data) return mproc__fail(MPROC_EINVAL, "recv_bytes: data is NULL");
  rc = next_header(c, mproc__deadline_from_timeout(timeout_ms));
  if (rc) return rc;
  if ((maxlength && c->msg_len > maxlength) || c->msg_len >= SIZE_MAX)
    return mproc__fail(MPROC_EMSGSIZE, "recv_bytes: the next message has %llu bytes, more than maxlength %zu (it stays unread)",
                       (unsigned long long)c->msg_len, maxlength);
  char *buf = (char *)malloc((size_t)c->msg_len + 1);
  if (!buf)
    return mproc__fail(MPROC_ENOMEM, "recv_bytes: out of memory for a %llu-byte message (it stays unread)",
                       (unsigned long long)c->msg_len);
  size_t n = (size_t)c->msg_len;
  rc = read_payload(c, buf);
  if (rc) {
    free(buf);
    return rc;
  }
  buf[n] = '\0';
  *data = buf;
  if (len) *len = n;
  return 0;
}

int mproc_connection_recv_bytes_into(mproc_connection *c, void *buf, size_t cap, int64_t timeout_ms, size_t *len) {
  if (len) *len = 0;
  int rc = usable(c, true, "recv_bytes_into");
  if (rc) return rc;
  if (!len || (!buf && cap)) return mproc__fail(MPROC_EINVAL, "recv_bytes_into: buf and len must be set");
  rc = next_header(c, mproc__deadline_from_timeout(timeout_ms));
  if (rc) return rc;
  if (c->msg_len > cap) {
    *len = c->msg_len >= SIZE_MAX ? SIZE_MAX : (size_t)c->msg_len;
    return mproc__fail(MPROC_EMSGSIZE, "recv_bytes_into: the message has %llu bytes, the buffer %zu (it stays unread)",
                       (unsigned long long)c->msg_len, cap);
  }
  size_t n = (size_t)c->msg_len;
  rc = read_payload(c, (char *)buf);
  if (rc) return rc;
  *len = n;
  return 0;
}

int mproc_connection_poll(mproc_connection *c, int64_t timeout_ms) {
  int rc = usable(c, true, "poll");
  if (rc) return rc;
  if (mproc__connection_buffered(c)) return 0;
  mproc__wait_item it = {c->e.rd, MPROC__WAIT_CONN};
  bool ready = false;
  rc = mproc__pal_wait_ready(&it, 1, mproc__deadline_from_timeout(timeout_ms), &ready);
  if (rc == MPROC_ETIMEDOUT) return mproc__fail(rc, "poll: nothing to receive within %lld ms", (long long)timeout_ms);
  return rc;
}

/* ---- closing and accessors ------------------------------------------------------------------ */

int mproc_connection_close(mproc_connection *c) {
  if (!c) return mproc__fail(MPROC_EINVAL, "close: connection is NULL");
  mproc__conn_end_close(&c->e);
  free(c->rbuf);
  c->rbuf = NULL;
  c->rpos = c->rlen = c->rcap = 0;
  return 0;
}

void mproc_connection_destroy(mproc_connection *c) {
  if (!c) return;
  mproc_connection_close(c);
  free(c);
}

bool mproc_connection_closed(const mproc_connection *c) {
  return !c || (c->e.rd == MPROC_NO_HANDLE && c->e.wr == MPROC_NO_HANDLE);
}
bool mproc_connection_readable(const mproc_connection *c) { return c && c->readable; }
bool mproc_connection_writable(const mproc_connection *c) { return c && c->writable; }
mproc_os_handle mproc_connection_handle(const mproc_connection *c) {
  return !c ? MPROC_NO_HANDLE : c->e.rd != MPROC_NO_HANDLE ? c->e.rd : c->e.wr;
}
mproc_os_handle mproc_connection_send_handle(const mproc_connection *c) { return c ? c->e.wr : MPROC_NO_HANDLE; }
