/* A manager as a program of its own (BaseManager(address, authkey).get_server().serve_forever()): it
 * listens at the address given, and any program that knows the address and the key connects to it with
 * mproc_manager_connect (examples/manager_remote_client.c) and shares the objects it holds by name.
 *
 *   MANAGER_AUTHKEY=secret example_manager_remote_server 0.0.0.0:50000
 *   MANAGER_AUTHKEY=secret example_manager_remote_client 192.0.2.7:50000
 *
 * The key comes from the environment, never from the command line (which other users can read); over
 * TCP it proves both sides (an HMAC challenge each way), but the traffic itself is not encrypted: keep
 * such a port on a network you trust, or tunnel it. Prints "listening on ADDRESS" once it listens (port
 * 0 picks a free one) and serves until a client shuts it down (mproc_manager_shutdown). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

static void listening(const char *address, void *arg) {
  (void)arg;
  printf("listening on %s\n", address);
  fflush(stdout); /* a program that started this one waits for that line */
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  const char *key = getenv("MANAGER_AUTHKEY");
  if (argc != 2 || !key) {
    fprintf(stderr, "usage: MANAGER_AUTHKEY=KEY %s HOST:PORT\n", argv[0]);
    return 2;
  }
  mproc_manager_opts o = {.address = argv[1], .authkey = key, .authkey_size = strlen(key)};
  o.on_listening = listening;
  if (mproc_manager_serve_forever(&o) != 0) {
    fprintf(stderr, "server: %s\n", mproc_last_error());
    return 1;
  }
  printf("server: shut down by a client\n");
  return 0;
}
