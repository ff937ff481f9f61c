/* Internal view of connections, shared by connection.c and the process module (handing connections to
 * children): the frame formats and the connection object. */
#ifndef MPROC_CONNECTION_INTERNAL_H
#define MPROC_CONNECTION_INTERNAL_H

#include "handable.h"
#include "mproc/connection.h"
#include "pal.h"

/* ---- frame formats ----------------------------------------------------------------------------
 *
 * How a connection's byte stream says where each message ends: a 4-byte length word, and for long
 * messages a mark word followed by an 8-byte length; then the payload. Two formats are instances of
 * this description (connection.c):
 *   mproc__frame_mproc    mproc's own: little-endian; a word up to 0xFFFFFFFC is the length;
 *                         0xFFFFFFFF + 8-byte length; 0xFFFFFFFE + 8-byte length = the payload comes on
 *                         the bulk handle (with bit 63 of the length set: a shared-memory frame, the
 *                         payload in the sender's ring and a 16-byte ticket after the length, see
 *                         connection_shm.c); 0xFFFFFFFD + 8-byte length = an object frame: the body
 *                         carries an object or handles handed to the receiver (on the bulk handle where
 *                         the connection has one, else inline; see mproc__pal_conn_send_handles)
 *   mproc__frame_cpython  CPython's multiprocessing.connection (3.8+ _send_bytes/_recv_bytes): a
 *                         big-endian signed word up to 0x7FFFFFFF is the length; -1 (0xFFFFFFFF) + an
 *                         8-byte big-endian length for larger messages; other negative words are
 *                         corrupt; no bulk handle, no object frames
 * A long-form header may announce a length the short form could carry (both formats' readers accept
 * it); senders use the short form whenever it fits. Only connection.c parses frames. */

#define MPROC__FRAME_HEADER_MAX 28 /* a shared-memory frame's: 12 and its 16-byte ticket */

typedef struct mproc__frame_format {
  const char *name;   /* for messages */
  bool big_endian;    /* the byte order of the length words */
  uint32_t short_max; /* a first word up to this is the message's length */
  uint32_t long_mark; /* this first word: an 8-byte length follows */
  uint32_t bulk_mark; /* this first word: an 8-byte length follows and the payload comes on the bulk
                         handle; only where has_bulk */
  uint32_t obj_mark;  /* this first word: an 8-byte length follows and the body is an object frame's;
                         only where has_objs */
  bool has_bulk, has_objs;
} mproc__frame_format;

extern const mproc__frame_format mproc__frame_mproc;
extern const mproc__frame_format mproc__frame_cpython;

/* What a frame's payload is. */
typedef enum mproc__frame_kind {
  MPROC__FRAME_INLINE = 0, /* bytes, right after the header */
  MPROC__FRAME_BULK = 1,   /* bytes, on the bulk handle */
  MPROC__FRAME_OBJECT = 2, /* an object frame's body (on the bulk handle where there is one) */
  MPROC__FRAME_SHM = 3     /* bytes, in the sender's shared-memory ring (connection_shm.c) */
} mproc__frame_kind;

/* A shared-memory frame's ticket: where its payload lies in which of the sender's rings. */
typedef struct mproc__frame_ticket {
  uint64_t pos;   /* the payload's position in the ring */
  uint32_t tag;   /* the ring's */
  uint32_t flags; /* MPROC__TICKET_* */
} mproc__frame_ticket;
/* The ring itself came just before, on the bulk handle. */
#define MPROC__TICKET_NEW_RING 1u
/* A message larger than the ring, streamed: this frame's chunk is its first CHUNK bytes (connection_shm.c;
 * the frame's len is the message's), and MORE frames bring the rest. */
#define MPROC__TICKET_STREAM 2u
/* The next chunk of the message being streamed (the frame's len is the chunk's), right after the last. */
#define MPROC__TICKET_MORE 4u

/* One parsed header. */
typedef struct mproc__frame {
  size_t hlen;  /* the header's bytes: 4, 12, or 28 (a shared-memory frame) */
  uint64_t len; /* the payload's */
  mproc__frame_kind kind;
  mproc__frame_ticket ticket; /* a shared-memory frame's */
} mproc__frame;

/* Write the header of a len-byte payload of that kind to h; its size. A kind the format lacks falls back
 * to INLINE (callers check has_bulk / has_objs first). */
size_t mproc__frame_put(const mproc__frame_format *f, unsigned char h[MPROC__FRAME_HEADER_MAX], uint64_t len,
                        mproc__frame_kind kind);
/* Write the header of a shared-memory frame (a format with has_bulk); its size (28). */
size_t mproc__frame_put_shm(const mproc__frame_format *f, unsigned char h[MPROC__FRAME_HEADER_MAX], uint64_t len,
                            const mproc__frame_ticket *t);
/* Parse the header at p[0..avail): 1 with *fr; 0: more bytes needed (fr->hlen: how many the header has,
 * 4 until its first word is there); -1: no header of this format (*why says why). */
int mproc__frame_get(const mproc__frame_format *f, const unsigned char *p, size_t avail, mproc__frame *fr,
                     const char **why);

/* ---- connections ------------------------------------------------------------------------------- */

struct mproc_connection {
  const mproc__frame_format *fmt; /* its frames: &mproc__frame_mproc unless made with wrap_format */
  /* Its handles (see mproc__conn_end in pal.h): all MPROC_NO_HANDLE once closed. */
  mproc__conn_end e;
  bool readable, writable;
  /* receive side: bytes read ahead of the current message */
  char *rbuf;
  size_t rpos, rlen, rcap;
  bool eof;         /* the peer closed: no more bytes after rbuf */
  bool have_len;    /* the next message's header has been parsed ... */
  uint64_t msg_len; /* ... and this is its length (kept when a receive is refused for its size) */
  bool msg_bulk;    /* ... and its payload comes on `bulk` */
  bool msg_refused; /* ... and a receive refused it for its size (a receive answers at once) */
  /* the current message's payload received so far, when a receive was cut short by its deadline (or
   * recv_bytes is growing it): mgot bytes in mbuf (capacity mcap), the rest still to come */
  char *mbuf;
  size_t mgot, mcap;
  const char *corrupt; /* why the stream cannot be parsed any more (every receive says so), or NULL */
  /* an object frame (have_len and msg_obj): the descriptors that came with its body so far (POSIX) */
  bool msg_obj;
  mproc_os_handle pfds[MPROC__HANDABLE_MAX_HANDLES];
  size_t npfds;
  /* the current message's payload lies in shared memory (have_len and a shared-memory frame): in
   * in-ring msg_ring (of shm), its bytes [chunk_off, chunk_off + chunk_len) at msg_pos (the whole message
   * unless it is streamed: larger than the ring, it comes in chunks, each with a frame of its own);
   * msg_shm goes once the last chunk's room is given back */
  bool msg_shm;
  size_t msg_ring;
  uint64_t msg_pos, chunk_off, chunk_len;
  struct mproc__conn_shm *shm; /* the shared-memory rings of this end (connection_shm.c), or NULL where it
                                  can have none */
};

/* Wrap existing handles (see above), framing with mproc's format. NULL with an error set. */
mproc_connection *mproc__connection_wrap(mproc__conn_end e);
/* The same with the frame format fmt (a format without a bulk mark never uses e.bulk). */
mproc_connection *mproc__connection_wrap_format(mproc__conn_end e, const mproc__frame_format *fmt);
/* The end of a single-handle link (boot links): h both ways, no bulk handle. */
mproc__conn_end mproc__conn_end_link(mproc_os_handle h);

/* Close the handles of an end (each once), leaving MPROC_NO_HANDLE. */
void mproc__conn_end_close(mproc__conn_end *e);

/* recv_bytes with a deadline (mproc__deadline_from_timeout; INT64_MAX: none); timeout_ms only names the
 * timeout in messages. */
int mproc__connection_recv_until(mproc_connection *c, size_t maxlength, int64_t deadline, int64_t timeout_ms,
                                 char **data, size_t *len);
/* Receive exactly one frame of at most cap bytes into buf, reading nothing after it (what follows stays in
 * the handle, so waiting on the handle still sees it: boot links, whose sentinel is the handle). Only on
 * a connection that has read nothing ahead. 0, MPROC_EEOF, MPROC_ETIMEDOUT, or an error (a longer
 * frame makes the connection corrupt). */
int mproc__connection_recv_exact(mproc_connection *c, char *buf, size_t cap, int64_t deadline, size_t *len);

/* Whether a receive would make progress without waiting on a handle: buffered bytes, end of file, a
 * message refused for its size, a corrupt stream (a receive answers at once). */
bool mproc__connection_buffered(const mproc_connection *c);
/* What poll and mproc_wait check before they wait: c can be received on (else the error, naming call),
 * and *ready_now whether a receive would make progress without waiting (mproc__connection_buffered).
 * Whether the handle has data is the wait's to find out, for all of its handles in one call. */
int mproc__connection_wait_check(const mproc_connection *c, const char *call, bool *ready_now);
/* The handle on which the next bytes of this connection arrive: rd, or bulk while the payload of a large
 * message is being received. What poll and mproc_wait wait on. */
mproc_os_handle mproc__connection_wait_handle(const mproc_connection *c);

/* ---- large messages through shared memory (connection_shm.c) ------------------------------------ */

/* Give a new connection its (empty) shared-memory state where it can have one: a format with a bulk
 * mark, a bulk handle, a system that allows it (allocated up front: the send and the receive side of
 * one end may run in two threads). 0 or MPROC_ENOMEM. */
int mproc__conn_shm_open(mproc_connection *c);
/* Whether a size-byte message on c goes through shared memory. */
bool mproc__conn_shm_wants(const mproc_connection *c, size_t size);
/* Send p[0..n) as one message through c's ring (set up on first use). 0 or the errors of send_bytes. */
int mproc__conn_shm_send(mproc_connection *c, const void *p, size_t n);
/* A shared-memory frame's header was parsed: take the ring it announces (from the bulk handle) if it
 * does, find its ring and check the ticket; then set msg_shm, msg_ring, msg_pos and the first chunk
 * (chunk_off, chunk_len). 0, or a reason (for corrupt()) in *why with -1; MPROC_ETIMEDOUT / an error
 * reading the announcement. */
int mproc__conn_shm_accept(mproc_connection *c, const mproc__frame *fr, int64_t deadline, const char **why);
/* The frame of the next chunk of the message being streamed was parsed: check it follows the current
 * chunk and make it current. 0, or -1 with a reason (for corrupt()) in *why. */
int mproc__conn_shm_more(mproc_connection *c, const mproc__frame *fr, const char **why);
/* Copy n bytes of the current chunk from offset `from` of the message into dst. */
void mproc__conn_shm_copy(const mproc_connection *c, char *dst, uint64_t from, size_t n);
/* The current chunk (the whole message unless streamed) has been copied out: give its room back to the
 * sender; msg_shm goes with the last chunk. */
void mproc__conn_shm_release(mproc_connection *c);
/* Unmap and close every ring of c; or unmap only, leaving their handles open (an import that failed:
 * they are its caller's). */
void mproc__conn_shm_close(mproc_connection *c);
void mproc__conn_shm_unmap(mproc_connection *c);
/* The rings' handles for handing c (appended to handles[*n], at most `room` more) and their roles (appended to
 * bytes); and back. */
int mproc__conn_shm_export(const mproc_connection *c, mproc_os_handle *handles, size_t *n, size_t room,
                           mproc__buf *bytes);
int mproc__conn_shm_import(mproc_connection *c, const unsigned char *bytes, size_t len, const mproc_os_handle *handles,
                           size_t nhandles, bool *used);

#endif
