/* Internal view of connections, shared by connection.c and process.c (handing connections to children). */
#ifndef MPROC_CONNECTION_INTERNAL_H
#define MPROC_CONNECTION_INTERNAL_H

#include "mproc/connection.h"
#include "pal.h"

struct mproc_connection {
  mproc_os_handle h;
  bool readable, writable;
  /* receive side: bytes read ahead of the current message */
  char *rbuf;
  size_t rpos, rlen, rcap;
  bool eof;          /* the peer closed: no more bytes after rbuf */
  bool have_len;     /* the next message's header has been parsed ... */
  uint64_t msg_len;  /* ... and this is its length (kept when a receive is refused for its size) */
};

/* Wrap an existing handle (a connection end received by a spawned child). NULL with an error set. */
mproc_connection *mproc__connection_wrap(mproc_os_handle h, bool readable, bool writable);

/* Whether a receive would not block: buffered bytes or end of file already seen. */
bool mproc__connection_buffered(const mproc_connection *c);

#endif
