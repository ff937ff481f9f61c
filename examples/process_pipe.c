/* A duplex Pipe conversation between a parent and a child (multiprocessing.Pipe()). The child end is
 * handed to the child explicitly; message boundaries hold. */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

static int child(const mproc_args *a) {
  mproc_connection *c = a->connections[0];
  char *msg = NULL;
  size_t len = 0;
  while (mproc_connection_recv_bytes(c, 0, MPROC_INFINITE, &msg, &len) == 0) {
    char reply[128];
    int n = snprintf(reply, sizeof reply, "child %lld got \"%.*s\" (%zu bytes)", (long long)mproc_getpid(), (int)len,
                     msg, len);
    int done = len == 3 && memcmp(msg, "bye", 3) == 0;
    mproc_free(msg);
    mproc_connection_send_bytes(c, reply, (size_t)n, 0, MPROC_ALL);
    if (done) break;
  }
  return 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_connection *parent_end, *child_end;
  if (mproc_pipe(true, &parent_end, &child_end) != 0) return 1;
  mproc_process *p = NULL;
  if (mproc_process_create(
          &p, &(mproc_process_opts){.target = child, .connections = &child_end, .connection_count = 1}) != 0 ||
      mproc_process_start(p) != 0) {
    fprintf(stderr, "start: %s\n", mproc_last_error());
    return 1;
  }
  mproc_connection_close(child_end); /* the child has its own copy */
  const char *lines[] = {"hello", "", "how are you?", "bye"};
  for (int i = 0; i < 4; ++i) {
    mproc_connection_send_bytes(parent_end, lines[i], strlen(lines[i]), 0, MPROC_ALL);
    char *reply = NULL;
    size_t len = 0;
    if (mproc_connection_recv_bytes(parent_end, 0, 10000, &reply, &len) != 0) {
      fprintf(stderr, "recv: %s\n", mproc_last_error());
      return 1;
    }
    printf("parent got: %s\n", reply);
    mproc_free(reply);
  }
  mproc_process_join(p, MPROC_INFINITE);
  mproc_process_destroy(p);
  mproc_connection_destroy(parent_end);
  mproc_connection_destroy(child_end);
  return 0;
}
