/* Internal view of connections, shared by connection.c and process.c (handing connections to children). */
#ifndef MPROC_CONNECTION_INTERNAL_H
#define MPROC_CONNECTION_INTERNAL_H

#include "mproc/connection.h"
#include "pal.h"

struct mproc_connection {
  /* The handle messages arrive on and the one they leave on: the same handle when one does both (a
   * socket pair's end; a Windows pipe), two when each direction has a pipe of its own (POSIX Pipe()),
   * MPROC_NO_HANDLE for a direction the end lacks or once closed. */
  mproc_os_handle rd, wr;
  bool readable, writable;
  bool grown; /* mproc__pal_conn_grow was called for wr */
  /* receive side: bytes read ahead of the current message */
  char *rbuf;
  size_t rpos, rlen, rcap;
  bool eof;          /* the peer closed: no more bytes after rbuf */
  bool have_len;     /* the next message's header has been parsed ... */
  uint64_t msg_len;  /* ... and this is its length (kept when a receive is refused for its size) */
};

/* Wrap existing handles (see rd / wr above; rd == wr for a single-handle end such as a boot link).
 * NULL with an error set. */
mproc_connection *mproc__connection_wrap(mproc_os_handle rd, mproc_os_handle wr);

/* Close both handles of an end (once when they are the same), leaving MPROC_NO_HANDLE. */
void mproc__conn_end_close(mproc__conn_end *e);

/* Whether a receive would not block: buffered bytes or end of file already seen. */
bool mproc__connection_buffered(const mproc_connection *c);

#endif
