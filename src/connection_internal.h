/* Internal view of connections, shared by connection.c and process.c (handing connections to children). */
#ifndef MPROC_CONNECTION_INTERNAL_H
#define MPROC_CONNECTION_INTERNAL_H

#include "mproc/connection.h"
#include "pal.h"

struct mproc_connection {
  /* Its handles (see mproc__conn_end in pal.h): all MPROC_NO_HANDLE once closed. */
  mproc__conn_end e;
  bool readable, writable;
  /* receive side: bytes read ahead of the current message */
  char *rbuf;
  size_t rpos, rlen, rcap;
  bool eof;          /* the peer closed: no more bytes after rbuf */
  bool have_len;     /* the next message's header has been parsed ... */
  uint64_t msg_len;  /* ... and this is its length (kept when a receive is refused for its size) */
  bool msg_bulk;     /* ... and its payload comes on `bulk` */
  bool msg_refused;  /* ... and a receive refused it for its size (a receive answers at once) */
  /* the current message's payload received so far, when a receive was cut short by its deadline (or
   * recv_bytes is growing it): mgot bytes in mbuf (capacity mcap), the rest still to come */
  char *mbuf;
  size_t mgot, mcap;
  const char *corrupt; /* why the stream cannot be parsed any more (every receive says so), or NULL */
};

/* Wrap existing handles (see above). NULL with an error set. */
mproc_connection *mproc__connection_wrap(mproc__conn_end e);
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
/* The handle on which the next bytes of this connection arrive: rd, or bulk while the payload of a large
 * message is being received. What poll and mproc_wait wait on. */
mproc_os_handle mproc__connection_wait_handle(const mproc_connection *c);

#endif
