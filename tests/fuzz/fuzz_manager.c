/* libFuzzer target: the manager server's request handler (src/manager/server.c) with two clients. The
 * fuzz bytes are requests as a client that passed the authkey handshake could send them (a hostile or
 * broken one): each goes to the handler whole, as one message of the connection, and the replies go back
 * over a real mproc_pipe to a thread per client that reads them and checks their shape. Nothing may
 * crash, leak or hang; a request that does not parse drops that client only; every reply is a reply.
 *
 * Input: records of  u8 client (bit 0: which of the two) | u16 LE size | size bytes: the request.
 * A record cut short ends the input. Inputs are cut at MAX_INPUT bytes. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manager/manager_internal.h"
#include "mproc/connection.h"

#define MAX_INPUT (60 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok) __builtin_trap();
}

/* Read replies until end of file; each must have the reply header and parse. */
static void *drain(void *arg) {
  mproc_connection *c = (mproc_connection *)arg;
  for (;;) {
    char *r;
    size_t n;
    int rc = mproc_connection_recv_bytes(c, 0, MPROC_INFINITE, &r, &n);
    if (rc == MPROC_EEOF) break;
    check(rc == 0);
    check(n >= MGR_REP_HEADER);
    mproc__mgr_item *it;
    check(mproc__mgr_parse_items(r + MGR_REP_HEADER, n - MGR_REP_HEADER, mproc__mgr_get_u32(r + 8), &it) == 0);
    int32_t status = (int32_t)mproc__mgr_get_u32(r + 4);
    check(status <= 0 && status >= MPROC_ERROR_MIN_);
    check(status == 0 || mproc__mgr_get_u32(r + 8) == 1); /* an error carries its message */
    free(it);
    mproc_free(r);
  }
  return NULL;
}

/* A custom type, "Counter": add counts its calls and echoes its arguments; fail fails; its state holds
 * an allocation the destroy frees (a leak if an object's destroy were skipped). */
static int counter_add(void *state, const mproc_bytes *args, size_t nargs, mproc_mreply *reply) {
  void **p = (void **)state;
  if (!*p && !(*p = malloc(8))) return MPROC_ENOMEM;
  for (size_t i = 0; i < nargs; ++i)
    if (mproc_mreply_add(reply, args[i].data, args[i].len) != 0) return MPROC_ENOMEM;
  return 0;
}
static int counter_fail(void *state, const mproc_bytes *args, size_t nargs, mproc_mreply *reply) {
  (void)state, (void)args, (void)nargs, (void)reply;
  return MPROC_ESTATE;
}
static void counter_destroy(void *state) { free(*(void **)state); }
static const mproc_mmethod kMethods[] = {{"add", counter_add}, {"fail", counter_fail}};
static const mproc_mtype kCounter = {"Counter", sizeof(void *), counter_destroy, kMethods, 2};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > MAX_INPUT) size = MAX_INPUT;
  mproc__mgr_server *s = mproc__mgr_server_new();
  check(s != NULL);
  mproc__mgr_server_set_types(s, &kCounter, 1);
  mproc_connection *srv[2], *cli[2];
  pthread_t th[2];
  bool open[2] = {true, true};
  for (int i = 0; i < 2; ++i) {
    check(mproc_pipe(true, &srv[i], &cli[i]) == 0);
    check(pthread_create(&th[i], NULL, drain, cli[i]) == 0);
  }
  bool fed[2] = {false, false};
  size_t at = 0;
  while (size - at >= 3) {
    int who = data[at] & 1;
    size_t n = (size_t)data[at + 1] | (size_t)data[at + 2] << 8;
    at += 3;
    if (n > size - at) break;
    if (open[who]) {
      fed[who] = true;
      int rc = mproc__mgr_server_feed(s, srv[who], data + at, n);
      check(rc == 0 || rc == MPROC_ETIMEDOUT || rc == MPROC_ECLOSED);
      if (rc == MPROC_ECLOSED) open[who] = false; /* the server destroyed it */
    }
    at += n;
  }
  mproc__mgr_server_free(s); /* destroys the server ends it holds: the drains see end of file */
  for (int i = 0; i < 2; ++i) {
    if (!fed[i]) mproc_connection_destroy(srv[i]); /* never handed to the server */
    pthread_join(th[i], NULL);
    mproc_connection_destroy(cli[i]);
  }
  return 0;
}
