/* Large messages through shared memory on a Pipe()'s connection (POSIX: Linux; elsewhere, and on
 * Windows, large messages keep the byte streams: pal.h, mproc__pal_shm_conn_ok).
 *
 * Design. Each sending end owns at most one ring: a sealed, anonymous memfd (no name, nothing left after
 * a crash) of RING_HDR bytes of counters and RING_CAP bytes of payloads. A message of SHM_MIN to RING_CAP
 * bytes is written into the ring whole (a larger one is streamed through it: below), then a shared-memory
 * frame goes on the send handle: the bulk mark, the length with bit 63 set, and a 16-byte ticket (the
 * payload's position, the ring's tag, flags). So the pipe still carries every message's header in order:
 * readiness (poll, mproc_wait on the connection), deadlines and end of file work as before, and a message
 * is complete in the ring before its header can be read: a receive with a deadline never waits for a
 * payload, a sender killed while writing one leaves no header (the receiver sees nothing, then end of
 * file), never part of one.
 *
 * Set-up is lazy: the first such message creates the ring and sends it first, 16 bytes (magic, tag)
 * with the memfd attached (SCM_RIGHTS) on the bulk socket, its ticket flagged NEW_RING; the receiver
 * takes it there (the bulk stream is in step with the headers) and maps it. The user never sees it.
 *
 * Flow control never uses the reverse direction (it carries the peer's own messages): the ring's
 * counters are in the ring. head (the sender's) is where the next payload goes; tail (the receiver's)
 * is what it has given back: a receiver that copied a message out sets tail past it, bumps `freed`
 * and wakes the sender through the futex queue when one sleeps (no kernel call otherwise). A sender
 * short of room sleeps on `freed` in slices of PEER_CHECK_NS, and between slices asks whether anyone
 * can still receive (mproc__pal_conn_peer_gone on its send handle): a reader killed holding room ends
 * the wait with MPROC_EPIPE once no process holds the receiving end, exactly when a full socket would
 * have said so. While some process still holds it, the sender waits, as on a full socket.
 *
 * Messages above RING_CAP are streamed through the same ring, in chunks of CHUNK (1 MiB) bytes: the
 * sender writes the first chunk, then its frame (the message's length, the ticket flagged STREAM), then
 * each further chunk as room comes back, each followed by a frame of its own (the chunk's length, the
 * ticket flagged MORE, at the position right after the last chunk). Why frames per chunk rather than a
 * counter in the ring that the receiver waits on: every byte the receiver may copy is still announced on
 * the pipe after it is in place, so everything above holds unchanged inside a message. A receive waits
 * for the next chunk as for any byte of the pipe, with its deadline (one that expires inside a message
 * keeps what came and the next receive continues it, as on the byte streams); readiness waits on the
 * same pipe (poll and mproc_wait, which cannot wait on a futex beside other handles); a sender killed
 * inside a message closes the pipe, which is end of file inside a message: the stream is corrupt, as
 * on the byte streams, and never gives garbage; a reader killed holding room is wait_room's case. The
 * price is one 28-byte pipe write and wake-up per MiB, against a copy of the MiB on either side. The
 * receiver gives each chunk's room back once it has copied it, so a message of any size needs the ring
 * only (memory per sending end stays RING_HDR + RING_CAP).
 *
 * Copies of an end in several processes: all the state lives in the ring, and tickets carry positions,
 * so an end used in turn by several processes (fork children share the mapping; handed ends carry the
 * rings' memfds, see mproc__conn_shm_export) stays consistent; a receiver that meets a ticket past its
 * tail (the sender died between writing a payload and its header, or a reader died after taking a
 * header) skips to it. Two copies of a sending end that each set up a ring (handed before the first
 * large message) give the receiver two rings: it keeps up to IN_RINGS, told apart by tag. Using one end
 * from two processes at once is as unsupported as on the byte streams. Taking turns cannot interleave a
 * stream with another message: a send returns only once its last chunk is in the ring and framed. A
 * copy that dies inside a stream while another copy sends on (in turn) would, on the byte streams, have
 * the next message's bytes read as the rest of the cut one; here the frame that comes where the next
 * chunk's was due is another message's (no MORE flag), so the receiver drops the cut message with an
 * error and takes the next one whole (connection.c, next_chunk). A sender killed after writing a chunk
 * but before its frame leaves that chunk's room taken until the next message's ticket skips past it:
 * a whole message of more than RING_CAP - CHUNK bytes sent next would wait for room that never comes
 * (a window of a pipe write; a streamed one needs only a chunk's room, and goes on).
 *
 * Sizes: RING_CAP (4 MiB) holds four 1 MiB messages in flight, as the c-shm ceiling of bench/
 * (process.bw.conn, whose 16 MiB messages also stream through 1 MiB slots of a 4 MiB ring). Windows and
 * POSIX systems other than Linux keep the byte streams for every size (named pipes; the socket pair). */
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "connection_internal.h"
#include "internal.h"
#include "pal.h"
#include "wire.h"

#define SHM_MIN ((size_t)1 << 20)
#define RING_HDR 4096u
#define RING_CAP ((uint64_t)4 << 20)
#define RING_ALIGN 64u
#define RING_MAGIC 0x6d70726eu /* "mprn" */
#define IN_RINGS 4
#define PEER_CHECK_NS (20 * 1000 * 1000LL)
#define ANNOUNCE_LEN 16
#define CHUNK ((uint64_t)1 << 20) /* a streamed message's chunks (the last may be shorter) */

/* The ring's header, in shared memory: the sender's line, then the receiver's. */
typedef struct ring_hdr {
  uint32_t magic, tag;
  uint64_t cap;
  volatile uint64_t head; /* the sender's: where the next payload goes */
  unsigned char pad1[40];
  volatile uint64_t tail;  /* the receiver's: everything before it is free again */
  volatile uint32_t freed; /* bumped with every move of tail: what a sender short of room sleeps on */
  uint32_t pad2;
  mproc__wq wq;
} ring_hdr;

typedef struct ring {
  mproc__shm m; /* m.h: the memfd, kept to hand the end on */
  ring_hdr *h;
  unsigned char *data;
} ring;

struct mproc__conn_shm {
  ring out;          /* the ring this end sends through (m.base NULL: none yet) */
  ring in[IN_RINGS]; /* the rings the peer (or its copies) send through, oldest first */
  size_t nin;
};

static uint64_t round_up(uint64_t n) { return (n + RING_ALIGN - 1) / RING_ALIGN * RING_ALIGN; }

static void ring_close(ring *r) {
  if (!r->m.base) return; /* none (calloc'ed: its handle field is no handle) */
  mproc__pal_shm_close(&r->m);
  r->h = NULL;
  r->data = NULL;
}

/* Map a ring handed to this process (h: now ours, owned by *r on success). */
static int ring_attach(ring *r, mproc_os_handle h, uint32_t tag, const char **why) {
  int rc = mproc__pal_shm_map(h, RING_HDR + RING_CAP, &r->m);
  if (rc) {
    *why = "a shared-memory ring could not be mapped";
    return rc;
  }
  r->h = (ring_hdr *)r->m.base;
  r->data = (unsigned char *)r->m.base + RING_HDR;
  if (r->h->magic != RING_MAGIC || r->h->cap != RING_CAP || (tag && r->h->tag != tag)) {
    r->m.h = MPROC_NO_HANDLE; /* unmapped only: the handle stays the caller's */
    ring_close(r);
    *why = "a shared-memory ring is not one of mproc's (or not the one announced)";
    return -1;
  }
  return 0;
}

MPROC__CHILD_PATH int mproc__conn_shm_open(mproc_connection *c) {
  if (!c->fmt->has_bulk || c->e.bulk == MPROC_NO_HANDLE || !mproc__pal_shm_conn_ok()) return 0;
  c->shm = (struct mproc__conn_shm *)calloc(1, sizeof *c->shm);
  return c->shm ? 0 : mproc__fail(MPROC_ENOMEM, "connection: out of memory");
}

MPROC__CHILD_PATH bool mproc__conn_shm_wants(const mproc_connection *c, size_t size) {
  return size >= SHM_MIN && c->shm;
}

/* A tag for a new ring: differs between the rings a receiver may meet (several copies of one end). */
static uint32_t new_tag(const void *where) {
  uint64_t x = mproc__pal_self_id() ^ mproc__pal_monotonic_ns() ^ (uint64_t)(uintptr_t)where;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return (uint32_t)x | 1u; /* never 0 */
}

/* Create this end's ring (not yet announced). */
static int ring_create(ring *r) {
  int rc = mproc__pal_shm_anon(RING_HDR + RING_CAP, &r->m);
  if (rc) return rc;
  r->h = (ring_hdr *)r->m.base;
  r->data = (unsigned char *)r->m.base + RING_HDR;
  r->h->magic = RING_MAGIC;
  r->h->tag = new_tag(r->m.base);
  r->h->cap = RING_CAP;
  return 0;
}

/* Wait until need bytes are free at head; 0 or MPROC_EPIPE (nobody can receive any more). */
static int wait_room(mproc_connection *c, ring_hdr *h, uint64_t head, uint64_t need) {
  for (;;) {
    uint32_t seen = mproc__atomic_load32(&h->freed);
    if (RING_CAP - (head - mproc__atomic_load64(&h->tail)) >= need) return 0;
    int rc =
        mproc__pal_word_wait(MPROC_NO_HANDLE, &h->wq, &h->freed, seen, 0, mproc__pal_monotonic_ns() + PEER_CHECK_NS);
    if (rc == MPROC_ETIMEDOUT && mproc__pal_conn_peer_gone(c->e.wr))
      return mproc__fail(MPROC_EPIPE, "send: the peer has closed the connection");
    if (rc && rc != MPROC_ETIMEDOUT) return rc;
  }
}

/* Write p[0..n) at head (the room is there); the position after it. */
static uint64_t ring_put(ring *r, uint64_t head, const void *p, uint64_t n) {
  uint64_t at = head % RING_CAP, first = RING_CAP - at < n ? RING_CAP - at : n;
  memcpy(r->data + at, p, (size_t)first);
  if (first < n) memcpy(r->data, (const char *)p + first, (size_t)(n - first));
  head += round_up(n);
  mproc__atomic_store64(&r->h->head, head);
  return head;
}

/* The frame of a chunk of n bytes at pos (the message's first: msg_len, flags; a later one: MORE). */
static int send_frame(mproc_connection *c, uint64_t len, uint64_t pos, uint32_t flags) {
  unsigned char hdr[MPROC__FRAME_HEADER_MAX];
  mproc__frame_ticket t = {pos, c->shm->out.h->tag, flags};
  size_t hl = mproc__frame_put_shm(c->fmt, hdr, len, &t);
  return mproc__pal_conn_send(c->e.wr, hdr, hl, NULL, 0);
}

int mproc__conn_shm_send(mproc_connection *c, const void *p, size_t n) {
  struct mproc__conn_shm *s = c->shm;
  bool fresh = !s->out.h;
  if (fresh) {
    int rc = ring_create(&s->out);
    if (rc) return rc;
  }
  ring_hdr *h = s->out.h;
  bool stream = n > RING_CAP;
  uint64_t head = mproc__atomic_load64(&h->head), k = stream ? CHUNK : n;
  int rc = wait_room(c, h, head, round_up(k));
  if (rc) goto failed;
  uint64_t pos = head;
  head = ring_put(&s->out, head, p, k);
  if (fresh) { /* the ring itself first, on the bulk socket: the receiver takes it before the ticket */
    unsigned char a[ANNOUNCE_LEN] = {0};
    mproc__wire_put_le32(a, RING_MAGIC);
    mproc__wire_put_le32(a + 4, h->tag);
    mproc__wire_put_le64(a + 8, RING_CAP);
    rc = mproc__pal_conn_send_fds(c->e.bulk, a, sizeof a, &s->out.m.h, 1);
    if (rc) goto failed;
  }
  rc = send_frame(c, n, pos, (fresh ? MPROC__TICKET_NEW_RING : 0) | (stream ? MPROC__TICKET_STREAM : 0));
  /* the rest of a stream, a chunk at a time as room comes back, each with its frame */
  for (uint64_t off = k; !rc && off < n; off += k) {
    k = n - off < CHUNK ? n - off : CHUNK;
    rc = wait_room(c, h, head, round_up(k));
    if (rc) break;
    pos = head;
    head = ring_put(&s->out, head, (const char *)p + off, k);
    rc = send_frame(c, k, pos, MPROC__TICKET_MORE);
  }
  return rc;
failed:
  if (fresh) ring_close(&s->out); /* never announced: no one else knows it */
  return rc;
}

/* Take the ring announced on the bulk handle. */
static int take_announced(mproc_connection *c, struct mproc__conn_shm *s, uint32_t tag, int64_t deadline,
                          const char **why) {
  unsigned char a[ANNOUNCE_LEN];
  mproc_os_handle fds[MPROC__HANDABLE_MAX_HANDLES];
  size_t got = 0, nfds = 0;
  while (got < sizeof a) {
    size_t n = 0, k = 0;
    int rc = mproc__pal_conn_recv_handles(c->e.bulk, a + got, sizeof a - got, deadline, &n, fds + nfds,
                                          MPROC__HANDABLE_MAX_HANDLES - nfds, &k);
    nfds += k;
    if (rc == 0 && n == 0) {
      rc = -1;
      *why = "the peer closed while announcing a shared-memory ring";
    }
    if (rc) {
      for (size_t i = 0; i < nfds; ++i) mproc__pal_close(fds[i]);
      if (rc == MPROC_ETIMEDOUT) {
        rc = -1;
        *why = "a shared-memory ring was announced but did not come";
      }
      return rc;
    }
    got += n;
  }
  if (nfds != 1 || mproc__wire_get_le32(a) != RING_MAGIC || mproc__wire_get_le32(a + 4) != tag) {
    for (size_t i = 0; i < nfds; ++i) mproc__pal_close(fds[i]);
    *why = "a shared-memory ring's announcement is malformed";
    return -1;
  }
  ring r = {{MPROC_NO_HANDLE, NULL, 0, 0}, NULL, NULL};
  int rc = ring_attach(&r, fds[0], tag, why);
  if (rc) {
    mproc__pal_close(fds[0]);
    return rc;
  }
  if (s->nin == IN_RINGS) { /* the oldest goes: a copy of the sending end that set it up long ago */
    ring_close(&s->in[0]);
    memmove(&s->in[0], &s->in[1], (IN_RINGS - 1) * sizeof s->in[0]);
    --s->nin;
  }
  s->in[s->nin++] = r;
  return 0;
}

int mproc__conn_shm_accept(mproc_connection *c, const mproc__frame *fr, int64_t deadline, const char **why) {
  const mproc__frame_ticket *t = &fr->ticket;
  struct mproc__conn_shm *s = c->shm;
  if (!s) {
    *why = "a shared-memory frame came on a connection that cannot have one";
    return -1;
  }
  if (t->flags & MPROC__TICKET_NEW_RING) {
    int rc = take_announced(c, s, t->tag, deadline, why);
    if (rc) return rc;
  }
  size_t i = s->nin;
  while (i > 0 && s->in[i - 1].h->tag != t->tag) --i;
  if (i == 0) {
    *why = "a shared-memory frame names a ring this end never received";
    return -1;
  }
  ring_hdr *h = s->in[i - 1].h;
  bool stream = (t->flags & MPROC__TICKET_STREAM) != 0;
  uint64_t chunk = stream && fr->len > CHUNK ? CHUNK : fr->len;
  uint64_t tail = mproc__atomic_load64(&h->tail), head = mproc__atomic_load64(&h->head);
  if ((t->flags & MPROC__TICKET_MORE) || (fr->len > RING_CAP && !stream) || t->pos < tail ||
      t->pos + round_up(chunk) > head || head - tail > RING_CAP) {
    *why = "a shared-memory frame's ticket is out of its ring";
    return -1;
  }
  c->msg_shm = true;
  c->msg_ring = i - 1;
  c->msg_pos = t->pos;
  c->chunk_off = 0;
  c->chunk_len = chunk;
  return 0;
}

int mproc__conn_shm_more(mproc_connection *c, const mproc__frame *fr, const char **why) {
  const mproc__frame_ticket *t = &fr->ticket;
  ring_hdr *h = c->shm->in[c->msg_ring].h;
  uint64_t off = c->chunk_off + c->chunk_len, head = mproc__atomic_load64(&h->head);
  if (t->flags != MPROC__TICKET_MORE || t->tag != h->tag || t->pos != c->msg_pos + round_up(c->chunk_len) ||
      fr->len == 0 || fr->len > CHUNK || fr->len > c->msg_len - off || t->pos + round_up(fr->len) > head) {
    *why = "the next chunk of a streamed message does not follow the last";
    return -1;
  }
  c->msg_pos = t->pos;
  c->chunk_off = off;
  c->chunk_len = fr->len;
  return 0;
}

void mproc__conn_shm_copy(const mproc_connection *c, char *dst, uint64_t from, size_t n) {
  const ring *r = &c->shm->in[c->msg_ring];
  uint64_t at = (c->msg_pos + from - c->chunk_off) % RING_CAP, first = RING_CAP - at < n ? RING_CAP - at : n;
  memcpy(dst, r->data + at, (size_t)first);
  if (first < n) memcpy(dst + first, r->data, (size_t)(n - first));
}

void mproc__conn_shm_release(mproc_connection *c) {
  ring_hdr *h = c->shm->in[c->msg_ring].h;
  mproc__atomic_store64(&h->tail, c->msg_pos + round_up(c->chunk_len));
  mproc__atomic_add32(&h->freed, 1);
  mproc__pal_word_wake(MPROC_NO_HANDLE, &h->wq, &h->freed, 1);
  if (c->chunk_off + c->chunk_len == c->msg_len) c->msg_shm = false;
}

void mproc__conn_shm_unmap(mproc_connection *c) {
  struct mproc__conn_shm *s = c->shm;
  if (!s) return;
  s->out.m.h = MPROC_NO_HANDLE;
  for (size_t i = 0; i < s->nin; ++i) s->in[i].m.h = MPROC_NO_HANDLE;
  mproc__conn_shm_close(c);
}

void mproc__conn_shm_close(mproc_connection *c) {
  struct mproc__conn_shm *s = c->shm;
  if (!s) return;
  ring_close(&s->out);
  for (size_t i = 0; i < s->nin; ++i) ring_close(&s->in[i]);
  free(s);
  c->shm = NULL;
  c->msg_shm = false;
}

/* Bytes: [out index or 0xFF][count of in-rings][their indexes]. */
int mproc__conn_shm_export(const mproc_connection *c, mproc_os_handle *handles, size_t *n, size_t room,
                           mproc__buf *bytes) {
  const struct mproc__conn_shm *s = c->shm;
  unsigned char b[2 + IN_RINGS];
  size_t nb = 2, nin = s ? s->nin : 0;
  if ((s && s->out.h ? 1 : 0) + nin > room)
    return mproc__fail(MPROC_ESYS, "a connection with %zu shared-memory rings has too many handles to hand", nin);
  b[0] = 0xFF;
  if (s && s->out.h) {
    b[0] = (unsigned char)*n;
    handles[(*n)++] = s->out.m.h;
  }
  b[1] = (unsigned char)nin;
  for (size_t i = 0; i < nin; ++i) {
    b[nb++] = (unsigned char)*n;
    handles[(*n)++] = s->in[i].m.h;
  }
  return mproc__buf_append(bytes, b, nb);
}

int mproc__conn_shm_import(mproc_connection *c, const unsigned char *bytes, size_t len, const mproc_os_handle *handles,
                           size_t nhandles, bool *used) {
  const char *why = "a handed connection's shared-memory part is malformed";
  if (len < 2 || bytes[1] > IN_RINGS || len != 2 + (size_t)bytes[1]) return mproc__fail(MPROC_ESYS, "%s", why);
  if (bytes[0] == 0xFF && bytes[1] == 0) return 0;
  for (size_t k = 0; k < len; ++k) {
    if (k == 1) continue;
    if (k == 0 && bytes[0] == 0xFF) continue;
    if (bytes[k] >= nhandles || used[bytes[k]]) return mproc__fail(MPROC_ESYS, "%s", why);
  }
  struct mproc__conn_shm *s = c->shm;
  if (!s) return mproc__fail(MPROC_ESYS, "a handed connection has shared-memory rings but cannot use them");
  int rc = 0;
  if (bytes[0] != 0xFF) {
    rc = ring_attach(&s->out, handles[bytes[0]], 0, &why);
    if (!rc) used[bytes[0]] = true;
  }
  for (size_t i = 0; !rc && i < bytes[1]; ++i) {
    rc = ring_attach(&s->in[s->nin], handles[bytes[2 + i]], 0, &why);
    if (!rc) {
      used[bytes[2 + i]] = true;
      ++s->nin;
    }
  }
  if (rc) { /* every handle stays the caller's (it closes them): unmap only */
    mproc__conn_shm_unmap(c);
    return mproc__fail(MPROC_ESYS, "a handed connection: %s", why);
  }
  return 0;
}
