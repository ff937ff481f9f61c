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
};

/* Wrap existing handles (see above). NULL with an error set. */
mproc_connection *mproc__connection_wrap(mproc__conn_end e);
/* The end of a single-handle link (boot links): h both ways, no bulk handle. */
mproc__conn_end mproc__conn_end_link(mproc_os_handle h);

/* Close the handles of an end (each once), leaving MPROC_NO_HANDLE. */
void mproc__conn_end_close(mproc__conn_end *e);

/* Whether a receive would not block: a message already announced, buffered bytes, or end of file. */
bool mproc__connection_buffered(const mproc_connection *c);

#endif
