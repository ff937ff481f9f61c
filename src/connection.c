/* Connections: length-prefixed messages over PAL byte streams (POSIX Pipe(): a pipe each way plus a
 * socket pair for bulk; boot links: a socket pair; Windows: a named pipe). See mproc__conn_end.
 *
 * Frames follow the connection's format (mproc__frame_format in connection_internal.h; this file is the
 * one place that writes and parses them). mproc's own: a 4-byte little-endian length, then the payload.
 * Lengths of 0xFFFFFFFE or more are sent as 0xFFFFFFFF followed by an 8-byte little-endian length (as
 * CPython does), so messages of any size keep their boundaries. A message of BULK_MIN bytes or more on a
 * connection with a bulk handle is sent as 0xFFFFFFFE and the 8-byte length on wr, and its payload on
 * the bulk handle: the header first, so a receiver waiting on rd wakes and reads the payload while the
 * sender is still writing it. On Linux a message of 1 MiB or more goes through the sending end's
 * shared-memory ring instead (connection_shm.c): a shared-memory frame (the bulk mark, the length with
 * bit 63 set, a ticket) follows its payload, which is in place by then; one above the ring's 4 MiB
 * comes in 1 MiB chunks, each followed by its frame. CPython's multiprocessing.connection format is the
 * same shape big-endian, with 0x7FFFFFFF the largest short length and no bulk mark. The receive side
 * reads ahead into a buffer, so a small message costs one system call on each side; large payloads are
 * read straight into the caller's memory. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "connection_internal.h"
#include "handable.h"
#include "internal.h"
#include "pal.h"
#include "wire.h"

#define RBUF_SIZE (64 * 1024)
#define SMALL_SEND (16 * 1024)
#define BULK_MIN (48 * 1024) /* pipes win below 32 KiB, the socket pair above 64 KiB (see pal.h) */

/* ---- frame formats -------------------------------------------------------------------------- */

const mproc__frame_format mproc__frame_mproc = {"mproc",     false,       0xFFFFFFFCu, 0xFFFFFFFFu,
                                                0xFFFFFFFEu, 0xFFFFFFFDu, true,        true};
const mproc__frame_format mproc__frame_cpython = {
    "CPython multiprocessing.connection", true, 0x7FFFFFFFu, 0xFFFFFFFFu /* -1 */, 0, 0, false, false};

static void put32(const mproc__frame_format *f, unsigned char *p, uint32_t v) {
  if (f->big_endian)
    mproc__wire_put_be32(p, v);
  else
    mproc__wire_put_le32(p, v);
}
static void put64(const mproc__frame_format *f, unsigned char *p, uint64_t v) {
  if (f->big_endian)
    mproc__wire_put_be64(p, v);
  else
    mproc__wire_put_le64(p, v);
}
static uint32_t get32(const mproc__frame_format *f, const unsigned char *p) {
  return f->big_endian ? mproc__wire_get_be32(p) : mproc__wire_get_le32(p);
}
static uint64_t get64(const mproc__frame_format *f, const unsigned char *p) {
  return f->big_endian ? mproc__wire_get_be64(p) : mproc__wire_get_le64(p);
}

MPROC__CHILD_PATH size_t mproc__frame_put(const mproc__frame_format *f, unsigned char h[MPROC__FRAME_HEADER_MAX],
                                          uint64_t len, mproc__frame_kind kind) {
  uint32_t mark = kind == MPROC__FRAME_BULK && f->has_bulk     ? f->bulk_mark
                  : kind == MPROC__FRAME_OBJECT && f->has_objs ? f->obj_mark
                                                               : f->long_mark;
  if (mark == f->long_mark && len <= f->short_max) {
    put32(f, h, (uint32_t)len);
    return 4;
  }
  put32(f, h, mark);
  put64(f, h + 4, len);
  return 12;
}

#define SHM_BIT ((uint64_t)1 << 63) /* in a bulk-marked length: a shared-memory frame */

size_t mproc__frame_put_shm(const mproc__frame_format *f, unsigned char h[MPROC__FRAME_HEADER_MAX], uint64_t len,
                            const mproc__frame_ticket *t) {
  put32(f, h, f->bulk_mark);
  put64(f, h + 4, len | SHM_BIT);
  put64(f, h + 12, t->pos);
  put32(f, h + 20, t->tag);
  put32(f, h + 24, t->flags);
  return 28;
}

int mproc__frame_get(const mproc__frame_format *f, const unsigned char *p, size_t avail, mproc__frame *fr,
                     const char **why) {
  memset(&fr->ticket, 0, sizeof fr->ticket);
  fr->hlen = 4;
  fr->len = 0;
  fr->kind = MPROC__FRAME_INLINE;
  if (avail < 4) return 0;
  uint32_t w = get32(f, p);
  if (w <= f->short_max) {
    fr->len = w;
    return 1;
  }
  mproc__frame_kind kind = f->has_bulk && w == f->bulk_mark  ? MPROC__FRAME_BULK
                           : f->has_objs && w == f->obj_mark ? MPROC__FRAME_OBJECT
                                                             : MPROC__FRAME_INLINE;
  if (kind == MPROC__FRAME_INLINE && w != f->long_mark) {
    *why = "a message header's length word is none this frame format has (a negative length?)";
    return -1;
  }
  fr->hlen = 12;
  if (avail < 12) return 0;
  fr->len = get64(f, p + 4);
  fr->kind = kind;
  if (kind == MPROC__FRAME_BULK && (fr->len & SHM_BIT)) { /* its ticket follows */
    fr->hlen = 28;
    if (avail < 28) return 0;
    fr->len &= ~SHM_BIT;
    fr->kind = MPROC__FRAME_SHM;
    fr->ticket.pos = get64(f, p + 12);
    fr->ticket.tag = get32(f, p + 20);
    fr->ticket.flags = get32(f, p + 24);
  }
  return 1;
}

/* ---- connections ------------------------------------------------------------------------------ */

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

MPROC__CHILD_PATH mproc_connection *mproc__connection_wrap(mproc__conn_end e) {
  return mproc__connection_wrap_format(e, &mproc__frame_mproc);
}

MPROC__CHILD_PATH mproc_connection *mproc__connection_wrap_format(mproc__conn_end e, const mproc__frame_format *fmt) {
  mproc_connection *c = (mproc_connection *)calloc(1, sizeof *c);
  if (!c) {
    mproc__fail(MPROC_ENOMEM, "connection: out of memory");
    return NULL;
  }
  c->fmt = fmt;
  c->e = e;
  c->readable = e.rd != MPROC_NO_HANDLE;
  c->writable = e.wr != MPROC_NO_HANDLE;
  if (mproc__conn_shm_open(c)) {
    free(c);
    return NULL;
  }
  return c;
}

int mproc_pipe(bool duplex, mproc_connection **a, mproc_connection **b) {
  MPROC__CHECK_ARG(!a || !b, "a and b must not be NULL");
  *a = *b = NULL;
  mproc__conn_end ea, eb;
  int rc = mproc__pal_conn_ends(duplex, &ea, &eb);
  if (rc) return rc;
  *a = mproc__connection_wrap(ea);
  *b = mproc__connection_wrap(eb);
  if (!*a || !*b) {
    if (*a)
      mproc_connection_destroy(*a);
    else
      mproc__conn_end_close(&ea);
    if (*b)
      mproc_connection_destroy(*b);
    else
      mproc__conn_end_close(&eb);
    *a = *b = NULL;
    return MPROC_ENOMEM;
  }
  return 0;
}

MPROC__CHILD_PATH static int usable(const mproc_connection *c, bool want_read, const char *call) {
  if (!c) return mproc__fail(MPROC_EINVAL, "%s: connection is NULL", call);
  if (mproc_connection_closed(c)) return mproc__fail(MPROC_ECLOSED, "%s: the connection is closed", call);
  if (want_read && !c->readable)
    return mproc__fail(MPROC_ESTATE, "%s: this end of the pipe is send-only (Pipe(duplex=false))", call);
  if (!want_read && !c->writable)
    return mproc__fail(MPROC_ESTATE, "%s: this end of the pipe is receive-only (Pipe(duplex=false))", call);
  return 0;
}

/* ---- sending ------------------------------------------------------------------------------ */

MPROC__CHILD_PATH int mproc_connection_send_bytes(mproc_connection *c, const void *buf, size_t buf_len, size_t offset,
                                                  size_t size) {
  int rc = usable(c, false, "send_bytes");
  if (rc) return rc;
  MPROC__CHECK_ARG(!buf && buf_len, "buf is NULL but buf_len is %zu", buf_len);
  MPROC__CHECK_ARG(offset > buf_len, "offset %zu is past the buffer (%zu bytes)", offset, buf_len);
  if (size == MPROC_ALL) size = buf_len - offset;
  if (size > buf_len - offset)
    return mproc__fail(MPROC_EINVAL, "send_bytes: offset %zu + size %zu is past the buffer (%zu bytes)", offset, size,
                       buf_len);
  if (mproc__conn_shm_wants(c, size)) return mproc__conn_shm_send(c, (const char *)buf + offset, size);
  unsigned char small[MPROC__FRAME_HEADER_MAX + SMALL_SEND];
  bool bulk = size >= BULK_MIN && c->e.bulk != MPROC_NO_HANDLE && c->fmt->has_bulk;
  size_t hl = mproc__frame_put(c->fmt, small, size, bulk ? MPROC__FRAME_BULK : MPROC__FRAME_INLINE);
  const char *payload = size ? (const char *)buf + offset : NULL;
  if (size <= SMALL_SEND) { /* one contiguous write: one system call, one wake-up of the reader */
    if (size) memcpy(small + hl, payload, size);
    return mproc__pal_conn_send(c->e.wr, small, hl + size, NULL, 0);
  }
  if (!bulk) return mproc__pal_conn_send(c->e.wr, small, hl, payload, size);
  rc = mproc__pal_conn_send(c->e.wr, small, hl, NULL, 0);
  return rc ? rc : mproc__pal_conn_send(c->e.bulk, payload, size, NULL, 0);
}

/* ---- receiving ----------------------------------------------------------------------------
 *
 * Every receive honours its deadline for the whole message. What arrived of a message cut short by
 * the deadline is kept (the header in rbuf, the payload in mbuf) and the next receive continues it,
 * so nothing is lost or read twice. Memory follows the data that arrived, never the length the peer
 * announced: recv_bytes starts with at most GROW_MIN bytes and doubles only a buffer it has filled.
 * A length above PTRDIFF_MAX, a large-message mark on a connection without a bulk handle, or a peer
 * that closed inside a message make the stream corrupt: every later receive says so (MPROC_ESYS). */

#define GROW_MIN (1024 * 1024)
#define MAX_MSG ((uint64_t)PTRDIFF_MAX)
/* An object frame's body: type id (4 bytes), handle count (4), the destination pid (8, 0: any), the
 * PAL's part (where the handles come from, then an 8-byte slot per handle), then the type's bytes.
 * Objects are small: a body has at most OBJ_MAX bytes. */
#define OBJ_PAL 16 /* the PAL's part starts here */
#define OBJ_FIXED (OBJ_PAL + MPROC__PAL_ORIGIN_SIZE)
#define OBJ_MAX (64 * 1024)

static int corrupt(mproc_connection *c, const char *why) {
  c->corrupt = why;
  return mproc__fail(MPROC_ESYS, "recv: %s: the connection cannot receive any more", why);
}

/* Whether rbuf holds a whole header, or a word no header starts with (the part of one does not count: a
 * receive would still wait). */
static bool header_buffered(const mproc_connection *c) {
  size_t avail = c->rlen - c->rpos;
  if (avail < 4) return false;
  mproc__frame fr;
  const char *why = NULL;
  return mproc__frame_get(c->fmt, (const unsigned char *)c->rbuf + c->rpos, avail, &fr, &why) != 0;
}

bool mproc__connection_buffered(const mproc_connection *c) {
  if (c->corrupt || c->eof) return true;
  if (!c->have_len) return header_buffered(c);
  if (c->msg_refused || c->mgot == c->msg_len) return true;
  if (c->msg_shm) return c->mgot < c->chunk_off + c->chunk_len || header_buffered(c); /* a chunk, or its frame */
  return !c->msg_bulk && c->rlen > c->rpos;
}

mproc_os_handle mproc__connection_wait_handle(const mproc_connection *c) {
  return c->have_len && c->msg_bulk ? c->e.bulk : c->e.rd;
}

static int timed_out(const char *call, int64_t timeout_ms, const mproc_connection *c) {
  if (c->have_len)
    return mproc__fail(MPROC_ETIMEDOUT,
                       "%s: a %llu-byte message had not arrived whole (%zu bytes so far) within %lld ms; it is kept, "
                       "and the next receive continues it",
                       call, (unsigned long long)c->msg_len, c->mgot, (long long)timeout_ms);
  return mproc__fail(MPROC_ETIMEDOUT, "%s: no message arrived within %lld ms", call, (long long)timeout_ms);
}

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

/* Make the next message's length known. 0, MPROC_EEOF, MPROC_ETIMEDOUT (the bytes of a partial header
 * stay in rbuf), or an error. */
static int next_header(mproc_connection *c, int64_t deadline) {
  if (c->corrupt) return mproc__fail(MPROC_ESYS, "recv: %s: the connection cannot receive any more", c->corrupt);
  while (!c->have_len) {
    size_t avail = c->rlen - c->rpos;
    if (avail >= 4) {
      mproc__frame fr;
      const char *why = NULL;
      int st = mproc__frame_get(c->fmt, (const unsigned char *)c->rbuf + c->rpos, avail, &fr, &why);
      if (st < 0) return corrupt(c, why);
      if (st > 0) {
        if (fr.kind == MPROC__FRAME_BULK && c->e.bulk == MPROC_NO_HANDLE)
          return corrupt(c, "a large-message mark came on a connection without a bulk handle");
        if (fr.len > MAX_MSG) return corrupt(c, "a message header announces more bytes than a message can have");
        if (fr.kind == MPROC__FRAME_OBJECT && (fr.len < OBJ_FIXED || fr.len > OBJ_MAX))
          return corrupt(c, "an object frame's length is out of range");
        if (fr.kind == MPROC__FRAME_SHM) { /* its payload is in the sender's ring (connection_shm.c) */
          c->msg_len = fr.len;
          int rc = mproc__conn_shm_accept(c, &fr, deadline, &why);
          if (rc < 0) return corrupt(c, why);
          if (rc) return rc == MPROC_ETIMEDOUT ? corrupt(c, "a shared-memory ring did not come in time") : rc;
        }
        c->rpos += fr.hlen;
        c->msg_len = fr.len;
        c->msg_obj = fr.kind == MPROC__FRAME_OBJECT;
        c->msg_bulk = fr.kind == MPROC__FRAME_BULK || (c->msg_obj && c->e.bulk != MPROC_NO_HANDLE);
        c->have_len = true;
        break;
      }
    }
    if (c->eof) {
      if (avail == 0) return mproc__fail(MPROC_EEOF, "recv: end of file: the peer closed the connection");
      return corrupt(c, "the peer closed in the middle of a message header");
    }
    int rc = fill(c, deadline);
    if (rc) return rc;
  }
  return 0;
}

/* The current message is done: forget its header (and close descriptors an object frame brought that
 * were not taken). */
static void message_taken(mproc_connection *c) {
  c->have_len = c->msg_refused = c->msg_obj = false;
  c->mgot = c->mcap = 0;
  for (size_t i = 0; i < c->npfds; ++i) mproc__pal_close(c->pfds[i]);
  c->npfds = 0;
}

/* A streamed message's next chunk: its frame is the next on rd. 0; MPROC_ETIMEDOUT; the peer closed
 * in the middle of the message (corrupt, as on the byte streams); or another message's frame came
 * instead: the sender stopped inside this message (it was killed, and a copy of its end has sent since;
 * see connection_shm.c): what came of it is dropped, with an error, and the next receive takes that
 * message. */
static int next_chunk(mproc_connection *c, int64_t deadline) {
  for (;;) {
    size_t avail = c->rlen - c->rpos;
    mproc__frame fr;
    const char *why = NULL;
    int st = avail < 4 ? 0 : mproc__frame_get(c->fmt, (const unsigned char *)c->rbuf + c->rpos, avail, &fr, &why);
    if (st < 0) return corrupt(c, why);
    if (st > 0 && fr.kind == MPROC__FRAME_SHM && (fr.ticket.flags & MPROC__TICKET_MORE)) {
      if (mproc__conn_shm_more(c, &fr, &why)) return corrupt(c, why);
      c->rpos += fr.hlen;
      return 0;
    }
    if (st > 0) {
      uint64_t len = c->msg_len, got = c->chunk_off + c->chunk_len;
      c->msg_shm = false;
      free(c->mbuf);
      c->mbuf = NULL;
      message_taken(c);
      return mproc__fail(MPROC_ESYS,
                         "recv: the sender of a %llu-byte message stopped after %llu bytes, and another message "
                         "came: the first is dropped, the next receive takes the second",
                         (unsigned long long)len, (unsigned long long)got);
    }
    if (c->eof) return corrupt(c, "the peer closed in the middle of a message");
    int rc = fill(c, deadline);
    if (rc) return rc;
  }
}

/* Read payload bytes of the current message into dst[*got .. upto), from rbuf first (a bulk payload is
 * all on the bulk handle), then straight from the handle: no double copy of large messages. 0 once *got
 * reaches upto; MPROC_ETIMEDOUT at the deadline with *got telling what arrived; an error. */
static int read_payload(mproc_connection *c, char *dst, size_t *got, size_t upto, int64_t deadline) {
  while (c->msg_shm && *got < upto) { /* a chunk in the ring, there whole; the room goes back once copied */
    uint64_t end = c->chunk_off + c->chunk_len;
    if (*got < end) {
      size_t k = (size_t)((upto < end ? upto : end) - *got);
      mproc__conn_shm_copy(c, dst + *got, *got, k);
      *got += k;
      if (*got == end) mproc__conn_shm_release(c);
    } else {
      int rc = next_chunk(c, deadline);
      if (rc) return rc;
    }
  }
  while (*got < upto) {
    size_t want = upto - *got, n = 0;
    if (!c->msg_bulk && c->rlen > c->rpos) {
      n = c->rlen - c->rpos < want ? c->rlen - c->rpos : want;
      memcpy(dst + *got, c->rbuf + c->rpos, n);
      c->rpos += n;
    } else {
      if (!c->msg_bulk && c->eof) return corrupt(c, "the peer closed in the middle of a message");
      int rc;
      if (c->msg_obj && c->msg_bulk) { /* an object frame's body: its descriptors come with it */
        size_t k = 0;
        rc = mproc__pal_conn_recv_handles(c->e.bulk, dst + *got, want, deadline, &n, c->pfds + c->npfds,
                                          MPROC__HANDABLE_MAX_HANDLES - c->npfds, &k);
        c->npfds += k;
      } else {
        rc = mproc__pal_conn_recv(c->msg_bulk ? c->e.bulk : c->e.rd, dst + *got, want, deadline, &n);
      }
      if (rc) return rc;
      if (n == 0) {
        c->eof = true;
        return corrupt(c, "the peer closed in the middle of a message");
      }
    }
    *got += n;
  }
  return 0;
}

/* The next message is an object frame and a receive of bytes met it. */
static int not_bytes(const char *call) {
  return mproc__fail(MPROC_ESTATE,
                     "%s: the next message carries an object or a handle, not bytes: receive it with "
                     "mproc_connection_recv_os_handle or recv_connection (it stays unread)",
                     call);
}

int mproc_connection_recv_bytes(mproc_connection *c, size_t maxlength, int64_t timeout_ms, char **data, size_t *len) {
  return mproc__connection_recv_until(c, maxlength, mproc__deadline_from_timeout(timeout_ms), timeout_ms, data, len);
}

int mproc__connection_recv_until(mproc_connection *c, size_t maxlength, int64_t deadline, int64_t timeout_ms,
                                 char **data, size_t *len) {
  if (data) *data = NULL;
  if (len) *len = 0;
  int rc = usable(c, true, "recv_bytes");
  if (rc) return rc;
  if (!data) return mproc__fail(MPROC_EINVAL, "recv_bytes: data is NULL");
  rc = next_header(c, deadline);
  if (rc == MPROC_ETIMEDOUT) return timed_out("recv_bytes", timeout_ms, c);
  if (rc) return rc;
  if (c->msg_obj) return not_bytes("recv_bytes");
  if (maxlength && c->msg_len > maxlength) {
    c->msg_refused = true;
    return mproc__fail(MPROC_EMSGSIZE,
                       "recv_bytes: the next message has %llu bytes, more than maxlength %zu (it stays unread)",
                       (unsigned long long)c->msg_len, maxlength);
  }
  size_t n = (size_t)c->msg_len;
  if (!c->mbuf) {
    /* a shared-memory payload has arrived whole, unless it is streamed */
    size_t cap = n < GROW_MIN || (c->msg_shm && c->chunk_len == n) ? n : GROW_MIN;
    c->mbuf = (char *)malloc(cap + 1);
    if (!c->mbuf) return mproc__fail(MPROC_ENOMEM, "recv_bytes: out of memory (the message stays unread)");
    c->mcap = cap;
  }
  while (c->mgot < n) {
    if (c->mgot == c->mcap) { /* full: double it, since that much has arrived */
      size_t cap = c->mcap > n / 2 ? n : 2 * c->mcap;
      if (cap < GROW_MIN) cap = n < GROW_MIN ? n : GROW_MIN;
      char *b = (char *)realloc(c->mbuf, cap + 1);
      if (!b)
        return mproc__fail(MPROC_ENOMEM, "recv_bytes: out of memory for a %zu-byte message (what arrived is kept)", n);
      c->mbuf = b;
      c->mcap = cap;
    }
    rc = read_payload(c, c->mbuf, &c->mgot, c->mcap, deadline);
    if (rc == MPROC_ETIMEDOUT) return timed_out("recv_bytes", timeout_ms, c);
    if (rc) return rc;
  }
  char *buf = c->mbuf;
  buf[n] = '\0';
  c->mbuf = NULL;
  message_taken(c);
  *data = buf;
  if (len) *len = n;
  return 0;
}

int mproc_connection_recv_bytes_into(mproc_connection *c, void *buf, size_t cap, int64_t timeout_ms, size_t *len) {
  if (len) *len = 0;
  int rc = usable(c, true, "recv_bytes_into");
  if (rc) return rc;
  MPROC__CHECK_ARG(!len || (!buf && cap), "buf and len must be set");
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  rc = next_header(c, deadline);
  if (rc == MPROC_ETIMEDOUT) return timed_out("recv_bytes_into", timeout_ms, c);
  if (rc) return rc;
  if (c->msg_obj) return not_bytes("recv_bytes_into");
  if (c->msg_len > cap) {
    c->msg_refused = true;
    *len = (size_t)c->msg_len;
    return mproc__fail(MPROC_EMSGSIZE, "recv_bytes_into: the message has %llu bytes, the buffer %zu (it stays unread)",
                       (unsigned long long)c->msg_len, cap);
  }
  size_t n = (size_t)c->msg_len, got = c->mgot;
  if (c->mbuf) { /* an earlier receive was cut short: its part first (recv_bytes' buffer may hold none) */
    if (got) memcpy(buf, c->mbuf, got);
    free(c->mbuf);
    c->mbuf = NULL;
    c->mgot = c->mcap = 0;
  }
  rc = read_payload(c, (char *)buf, &got, n, deadline);
  if (rc == MPROC_ETIMEDOUT && got) { /* keep what arrived for the next receive */
    c->mbuf = (char *)malloc(got + 1);
    if (!c->mbuf) return corrupt(c, "out of memory keeping part of a message");
    memcpy(c->mbuf, buf, got);
    c->mgot = c->mcap = got;
  }
  if (rc == MPROC_ETIMEDOUT) return timed_out("recv_bytes_into", timeout_ms, c);
  if (rc) return rc;
  message_taken(c);
  *len = n;
  return 0;
}

int mproc__connection_recv_exact(mproc_connection *c, char *buf, size_t cap, int64_t deadline, size_t *len) {
  *len = 0;
  int rc = usable(c, true, "recv");
  if (rc) return rc;
  if (c->have_len || c->rlen > c->rpos)
    return mproc__fail(MPROC_ESTATE, "recv: an exact receive on a connection that has read ahead");
  unsigned char hdr[MPROC__FRAME_HEADER_MAX];
  mproc__frame fr;
  const char *why = NULL;
  size_t hgot = 0, n = 0;
  int st;
  while ((st = mproc__frame_get(c->fmt, hdr, hgot, &fr, &why)) == 0) { /* the header's bytes, no more */
    rc = mproc__pal_conn_recv(c->e.rd, (char *)hdr + hgot, fr.hlen - hgot, deadline, &n);
    if (rc) return rc;
    if (n == 0) return mproc__fail(MPROC_EEOF, "recv: end of file");
    hgot += n;
  }
  if (st < 0) return corrupt(c, why);
  if (fr.kind != MPROC__FRAME_INLINE) return corrupt(c, "a large-message or object mark where an exact frame was due");
  if (fr.len > cap) return corrupt(c, "an exact frame longer than its reader's buffer");
  for (size_t got = 0; got < fr.len; got += n) {
    rc = mproc__pal_conn_recv(c->e.rd, buf + got, (size_t)fr.len - got, deadline, &n);
    if (rc) return rc;
    if (n == 0) return mproc__fail(MPROC_EEOF, "recv: end of file");
  }
  *len = (size_t)fr.len;
  return 0;
}

/* ---- objects and handles to a running process (object frames) --------------------------------- */

int mproc__connection_send_object(mproc_connection *c, const mproc__handable_type *t, const void *obj, int64_t dest_pid,
                                  const char *call) {
  int rc = usable(c, false, call);
  if (rc) return rc;
  if (!c->fmt->has_objs)
    return mproc__fail(MPROC_ENOTSUP, "%s: a connection with %s frames cannot carry handles", call, c->fmt->name);
  if (dest_pid < 0) return mproc__fail(MPROC_EINVAL, "%s: destination_pid %lld is negative", call, (long long)dest_pid);
  mproc_os_handle hs[MPROC__HANDABLE_MAX_HANDLES];
  size_t n = 0;
  mproc__buf bytes = {0};
  rc = t->export_obj(obj, hs, &n, &bytes);
  size_t fixed = OBJ_FIXED + 8 * n, blen = fixed + bytes.len;
  if (!rc && blen > OBJ_MAX) rc = mproc__fail(MPROC_EINVAL, "%s: a %s of %zu bytes is too large", call, t->name, blen);
  unsigned char *body = rc ? NULL : (unsigned char *)calloc(1, blen);
  if (!rc && !body) rc = mproc__fail(MPROC_ENOMEM, "%s: out of memory", call);
  if (!rc) {
    mproc__wire_put_le32(body, t->id);
    mproc__wire_put_le32(body + 4, (uint32_t)n);
    mproc__wire_put_le64(body + 8, (uint64_t)dest_pid);
    if (bytes.len) memcpy(body + fixed, bytes.data, bytes.len);
    unsigned char hdr[MPROC__FRAME_HEADER_MAX];
    size_t hl = mproc__frame_put(c->fmt, hdr, blen, MPROC__FRAME_OBJECT);
    rc = mproc__pal_conn_send_handles(&c->e, hdr, hl, body, blen, OBJ_PAL, hs, n);
  }
  free(body);
  mproc__buf_free(&bytes);
  return rc;
}

int mproc__connection_recv_object(mproc_connection *c, const mproc__handable_type *t, int64_t deadline,
                                  int64_t timeout_ms, void **obj, const char *call) {
  *obj = NULL;
  int rc = usable(c, true, call);
  if (rc) return rc;
  rc = next_header(c, deadline);
  if (rc == MPROC_ETIMEDOUT) return timed_out(call, timeout_ms, c);
  if (rc) return rc;
  if (!c->msg_obj)
    return mproc__fail(MPROC_ESTATE,
                       "%s: the next message is %llu bytes of data, not a %s: receive it with "
                       "recv_bytes (it stays unread)",
                       call, (unsigned long long)c->msg_len, t->name);
  size_t len = (size_t)c->msg_len;
  if (!c->mbuf) {
    c->mbuf = (char *)malloc(len);
    if (!c->mbuf) return mproc__fail(MPROC_ENOMEM, "%s: out of memory (the message stays unread)", call);
    c->mcap = len;
  }
  rc = read_payload(c, c->mbuf, &c->mgot, len, deadline);
  if (rc == MPROC_ETIMEDOUT) return timed_out(call, timeout_ms, c);
  if (rc) return rc;
  const unsigned char *body = (const unsigned char *)c->mbuf;
  uint32_t id = mproc__wire_get_le32(body), n = mproc__wire_get_le32(body + 4);
  uint64_t dest = mproc__wire_get_le64(body + 8);
  const mproc__handable_type *type = mproc__handable_find(id);
  if (type && type != t)
    return mproc__fail(MPROC_ESTATE, "%s: the next message carries a %s, not a %s (it stays unread)", call, type->name,
                       t->name);
  size_t fixed = OBJ_FIXED + 8 * (size_t)n;
  mproc_os_handle hs[MPROC__HANDABLE_MAX_HANDLES];
  if (!type) /* no receive could take it: drop it, or it would block the connection for good */
    rc = mproc__fail(MPROC_ESYS,
                     "%s: a message carries an object of type %u, which this program does not know "
                     "(dropped)",
                     call, (unsigned)id);
  else if (n > MPROC__HANDABLE_MAX_HANDLES || fixed > len)
    rc = mproc__fail(MPROC_ESYS, "%s: a malformed message: %u handles in %zu bytes", call, (unsigned)n, len);
  else if (dest && dest != (uint64_t)mproc__pal_getpid())
    rc = mproc__fail(MPROC_ESTATE, "%s: the %s was sent to process %llu, not to this one (%lld)", call, t->name,
                     (unsigned long long)dest, (long long)mproc__pal_getpid());
  else {
    rc = mproc__pal_handles_take(body + OBJ_PAL, n, c->pfds, c->npfds, hs);
    c->npfds = 0; /* taken, or closed by the PAL (else message_taken closes them) */
  }
  if (!rc) {
    rc = t->import_obj(body + fixed, len - fixed, hs, n, obj);
    if (rc)
      for (uint32_t i = 0; i < n; ++i) mproc__pal_close(hs[i]);
  }
  free(c->mbuf);
  c->mbuf = NULL;
  message_taken(c);
  return rc;
}

int mproc_connection_send_object(mproc_connection *c, mproc_object obj, int64_t destination_pid) {
  const mproc__handable_type *t = mproc__handable_find((uint32_t)obj.kind);
  MPROC__CHECK_ARG(!t || obj.kind == MPROC_OBJECT_OS_HANDLE,
                   "kind %d is no mproc_object_kind that can be sent (a bare handle: send_os_handle)", (int)obj.kind);
  MPROC__CHECK_ARG(!obj.object, "the object is NULL");
  return mproc__connection_send_object(c, t, obj.object, destination_pid, "send_object");
}

int mproc_connection_recv_object(mproc_connection *c, mproc_object_kind kind, int64_t timeout_ms, void **obj) {
  MPROC__CHECK_ARG(!obj, "obj is NULL");
  *obj = NULL;
  const mproc__handable_type *t = mproc__handable_find((uint32_t)kind);
  MPROC__CHECK_ARG(!t || kind == MPROC_OBJECT_OS_HANDLE,
                   "kind %d is no mproc_object_kind that can be received (a bare handle: recv_os_handle)", (int)kind);
  return mproc__connection_recv_object(c, t, mproc__deadline_from_timeout(timeout_ms), timeout_ms, obj, "recv_object");
}

int mproc_connection_send_os_handle(mproc_connection *c, mproc_os_handle h, int64_t destination_pid) {
  MPROC__CHECK_ARG(!mproc__pal_handle_valid(h), "handle %lld is not an open handle of this process", (long long)h);
  return mproc__connection_send_object(c, &mproc__os_handle_handable, &h, destination_pid, "send_os_handle");
}

int mproc_connection_recv_os_handle(mproc_connection *c, int64_t timeout_ms, mproc_os_handle *h) {
  MPROC__CHECK_ARG(!h, "h is NULL");
  *h = MPROC_NO_HANDLE;
  void *obj = NULL;
  int rc = mproc__connection_recv_object(c, &mproc__os_handle_handable, mproc__deadline_from_timeout(timeout_ms),
                                         timeout_ms, &obj, "recv_os_handle");
  if (rc) return rc;
  *h = *(mproc_os_handle *)obj;
  free(obj);
  return 0;
}

int mproc_connection_send_connection(mproc_connection *c, mproc_connection *conn, int64_t destination_pid) {
  MPROC__CHECK_ARG(!conn, "conn is NULL");
  MPROC__CHECK_ARG(conn == c, "a connection cannot be sent over itself");
  if (mproc_connection_closed(conn))
    return mproc__fail(MPROC_ECLOSED, "send_connection: the connection to send is closed");
  return mproc__connection_send_object(c, &mproc__connection_handable, conn, destination_pid, "send_connection");
}

int mproc_connection_recv_connection(mproc_connection *c, int64_t timeout_ms, mproc_connection **conn) {
  MPROC__CHECK_ARG(!conn, "conn is NULL");
  void *obj = NULL;
  int rc = mproc__connection_recv_object(c, &mproc__connection_handable, mproc__deadline_from_timeout(timeout_ms),
                                         timeout_ms, &obj, "recv_connection");
  *conn = (mproc_connection *)obj;
  return rc;
}

int mproc__connection_wait_check(const mproc_connection *c, const char *call, bool *ready_now) {
  int rc = usable(c, true, call);
  *ready_now = !rc && mproc__connection_buffered(c);
  return rc;
}

int mproc_connection_poll(mproc_connection *c, int64_t timeout_ms) {
  bool buffered;
  int rc = mproc__connection_wait_check(c, "poll", &buffered);
  if (rc || buffered) return rc;
  mproc__wait_item it = {mproc__connection_wait_handle(c), MPROC__WAIT_CONN};
  bool ready = false;
  rc = mproc__pal_wait_ready(&it, 1, mproc__deadline_from_timeout(timeout_ms), &ready);
  if (rc == MPROC_ETIMEDOUT) return mproc__fail(rc, "poll: nothing to receive within %lld ms", (long long)timeout_ms);
  return rc;
}

/* ---- closing and accessors ------------------------------------------------------------------ */

int mproc_connection_close(mproc_connection *c) {
  MPROC__CHECK_ARG(!c, "connection is NULL");
  mproc__conn_end_close(&c->e);
  mproc__conn_shm_close(c);
  free(c->rbuf);
  c->rbuf = NULL;
  c->rpos = c->rlen = c->rcap = 0;
  free(c->mbuf);
  c->mbuf = NULL;
  message_taken(c);
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

/* ---- handing a connection to another process (handable.h) ---------------------------------------- */

/* The end's distinct handles, and one byte per role (rd, wr, bulk) naming its index among them (0xFF:
 * none), and the frame format (0 mproc's, 1 CPython's); then, when it has shared-memory rings, their
 * handles and roles (mproc__conn_shm_export). */
static int conn_export(const void *obj, mproc_os_handle *handles, size_t *nhandles, mproc__buf *bytes) {
  const mproc_connection *c = (const mproc_connection *)obj;
  mproc_os_handle roles[3] = {c->e.rd, c->e.wr, c->e.bulk};
  unsigned char idx[4];
  size_t n = 0;
  for (int k = 0; k < 3; ++k) {
    idx[k] = 0xFF;
    if (roles[k] == MPROC_NO_HANDLE) continue;
    for (size_t j = 0; j < n && idx[k] == 0xFF; ++j)
      if (handles[j] == roles[k]) idx[k] = (unsigned char)j;
    if (idx[k] == 0xFF) {
      idx[k] = (unsigned char)n;
      handles[n++] = roles[k];
    }
  }
  idx[3] = c->fmt == &mproc__frame_cpython ? 1 : 0;
  int rc = mproc__buf_append(bytes, idx, sizeof idx);
  if (!rc && c->shm) rc = mproc__conn_shm_export(c, handles, &n, MPROC__HANDABLE_MAX_HANDLES - n, bytes);
  *nhandles = n;
  return rc;
}

static int conn_import(const void *bytes, size_t len, const mproc_os_handle *handles, size_t nhandles, void **obj) {
  const unsigned char *idx = (const unsigned char *)bytes;
  if (len < 4 || len == 5 || idx[3] > 1) return mproc__fail(MPROC_ESYS, "a handed connection is malformed");
  mproc_os_handle roles[3];
  bool used[MPROC__HANDABLE_MAX_HANDLES] = {false};
  for (int k = 0; k < 3; ++k) {
    if (idx[k] == 0xFF) {
      roles[k] = MPROC_NO_HANDLE;
    } else if (idx[k] < nhandles) {
      roles[k] = handles[idx[k]];
      used[idx[k]] = true;
    } else {
      return mproc__fail(MPROC_ESYS, "a handed connection names handle %d of %zu", idx[k], nhandles);
    }
  }
  if (roles[0] == MPROC_NO_HANDLE && roles[1] == MPROC_NO_HANDLE)
    return mproc__fail(MPROC_ESYS, "a handed connection has no handle to receive or send on");
  for (int k = 0; k < 3; ++k) { /* pipes or sockets, the bulk one a socket (Windows: all pipes, no bulk) */
    if (roles[k] == MPROC_NO_HANDLE) continue;
    mproc__handle_kind hk = mproc__pal_handle_kind(roles[k]);
    if (hk != MPROC__HK_SOCKET && (k == 2 || hk != MPROC__HK_PIPE))
      return mproc__fail(MPROC_ESYS, "a handed connection came with a handle of the wrong kind (%d)", (int)hk);
  }
  mproc__conn_end e = {roles[0], roles[1], roles[2]};
  mproc_connection *c = mproc__connection_wrap_format(e, idx[3] ? &mproc__frame_cpython : &mproc__frame_mproc);
  if (!c) return MPROC_ENOMEM;
  int rc = len > 4 ? mproc__conn_shm_import(c, idx + 4, len - 4, handles, nhandles, used) : 0;
  for (size_t j = 0; !rc && j < nhandles; ++j)
    if (!used[j]) rc = mproc__fail(MPROC_ESYS, "a handed connection came with a handle it does not use");
  if (rc) { /* its handles stay the caller's */
    mproc__conn_shm_unmap(c);
    free(c);
    return rc;
  }
  *obj = c;
  return 0;
}

const mproc__handable_type mproc__connection_handable = {1, "connection", conn_export, conn_import};

/* ---- a bare OS handle (handable.h) --------------------------------------------------------------- */

/* The handle, and its kind in one byte: the receiver checks that what came is of that kind. */
static int handle_export(const void *obj, mproc_os_handle *handles, size_t *nhandles, mproc__buf *bytes) {
  mproc_os_handle h = *(const mproc_os_handle *)obj;
  unsigned char kind = (unsigned char)mproc__pal_handle_kind(h);
  if (kind == MPROC__HK_INVALID) return mproc__fail(MPROC_EINVAL, "handle %lld is not open", (long long)h);
  handles[0] = h;
  *nhandles = 1;
  return mproc__buf_append(bytes, &kind, 1);
}

static int handle_import(const void *bytes, size_t len, const mproc_os_handle *handles, size_t nhandles, void **obj) {
  if (len != 1 || nhandles != 1) return mproc__fail(MPROC_ESYS, "a handle came malformed");
  unsigned char want = *(const unsigned char *)bytes;
  mproc__handle_kind got = mproc__pal_handle_kind(handles[0]);
  if ((unsigned char)got != want)
    return mproc__fail(MPROC_ESYS, "a handle of kind %d came as one of kind %d", (int)got, (int)want);
  mproc_os_handle *h = (mproc_os_handle *)malloc(sizeof *h);
  if (!h) return mproc__fail(MPROC_ENOMEM, "out of memory");
  *h = handles[0];
  *obj = h;
  return 0;
}

const mproc__handable_type mproc__os_handle_handable = {2, "OS handle", handle_export, handle_import};
