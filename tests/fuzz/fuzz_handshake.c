/* libFuzzer target: the authkey handshake (src/auth.c) as a hostile peer drives it. The fuzz bytes are what
 * the peer writes, raw, onto its end of a socket pair; our end frames with CPython's format (as Listener
 * and Client connections do) and runs one role of the handshake until it is decided. The peer's writing
 * side is shut, so every run ends (end of file), and its reading side stays open, so our messages go
 * out. Nothing may crash, leak or hang; the outcome is 0 (only where a peer could have earned it: see
 * below), MPROC_EAUTH, or the connection's own refusal of a stream (MPROC_ESYS, a corrupt frame).
 *
 * Input: byte 0 the role (bits 0-1: server, client, deliver, answer) and bit 2 allow_legacy_md5; the
 * rest is the stream. Inputs are cut at MAX_INPUT: the socket's buffer holds them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth.h"
#include "connection_internal.h"
#include "pal.h"

#define MAX_INPUT (60 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t opt = data[0];
  ++data;
  --size;
  if (size > MAX_INPUT) size = MAX_INPUT;
  mproc_os_handle ours, peer;
  check(mproc__pal_conn_pair(true, &ours, &peer) == 0);
  int sz = 256 * 1024; /* room for the whole input and our replies: no write ever waits */
  setsockopt((int)peer, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt((int)ours, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  if (size) check(mproc__pal_conn_send(peer, data, size, NULL, 0) == 0);
  shutdown((int)peer, SHUT_WR);
  mproc_connection *c = mproc__connection_wrap_format(mproc__conn_end_link(ours), &mproc__frame_cpython);
  check(c != NULL);
  static const char key[] = "fuzz key";
  mproc__auth a;
  mproc__auth_role role = (mproc__auth_role)(opt & 3);
  mproc__auth_init(&a, role, key, sizeof key - 1, (opt & 4) != 0, "fuzz");
  int rc = mproc__auth_continue(&a, c, INT64_MAX);
  /* A deliverer's success needs the HMAC of its own random challenge under the key: no fixed input has
   * it. An answerer (answer alone) may be led through by any well-formed challenge and "#WELCOME#". */
  if (role != MPROC__AUTH_ANSWER) check(rc != 0);
  check(rc == 0 || rc == MPROC_EAUTH || rc == MPROC_ESYS);
  mproc_connection_destroy(c);
  mproc__pal_close(peer);
  return 0;
}
