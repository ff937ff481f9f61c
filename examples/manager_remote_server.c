/* A manager as a program of its own (BaseManager(address, authkey).get_server().serve_forever()): it
 * listens at the address given, and any program that knows the address and the key connects to it with
 * mproc_manager_connect (examples/manager_remote_client.c) and shares the objects it holds by name.
 *
 *   example_manager_remote_server 0.0.0.0:50000 < keyfile
 *   example_manager_remote_client 192.0.2.7:50000 < keyfile
 *
 * The key is the first line of standard input: never on the command line (which other users can read)
 * nor in the environment (which every child inherits). Over
 * TCP it proves both sides (an HMAC challenge each way), but the traffic itself is not encrypted: keep
 * such a port on a network you trust, or tunnel it. Prints "listening on ADDRESS" once it listens (port
 * 0 picks a free one) and serves until a client shuts it down (mproc_manager_shutdown). */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

static void listening(const char *address, void *arg) {
  (void)arg;
  printf("listening on %s\n", address);
  fflush(stdout); /* a program that started this one waits for that line */
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  char key[256];
  if (argc != 2 || !fgets(key, sizeof key, stdin) || strcspn(key, "\r\n") == 0) {
    fprintf(stderr, "usage: %s HOST:PORT, the key on the first line of stdin\n", argv[0]);
    return 2;
  }
  key[strcspn(key, "\r\n")] = '\0';
  mproc_manager_opts o = {.address = argv[1], .authkey = key, .authkey_size = strlen(key)};
  o.on_listening = listening;
  if (mproc_manager_serve_forever(&o) != 0) {
    fprintf(stderr, "server: %s\n", mproc_last_error());
    return 1;
  }
  printf("server: shut down by a client\n");
  return 0;
}
