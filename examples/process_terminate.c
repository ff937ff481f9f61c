/* Seed notes: p.terminate(); print(p.is_alive()) -> True right after terminate, False after join;
 * exitcode is -SIGTERM (-15) on every platform. */
#include <stdio.h>

#include "mproc.h"

static int wait_forever(const mproc_args *a) {
  char *m = NULL;
  size_t n = 0;
  mproc_connection_recv_bytes(a->connections[0], 0, MPROC_INFINITE, &m, &n);
  return 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_connection *mine, *theirs;
  if (mproc_pipe(true, &mine, &theirs) != 0) return 1;
  mproc_process *p = NULL;
  if (mproc_process_create(
          &p, &(mproc_process_opts){.target = wait_forever, .connections = &theirs, .connection_count = 1}) != 0 ||
      mproc_process_start(p) != 0) {
    fprintf(stderr, "start: %s\n", mproc_last_error());
    return 1;
  }
  printf("started %s, is_alive=%d\n", mproc_process_name(p), mproc_process_is_alive(p));
  mproc_process_terminate(p);
  printf("terminated, is_alive=%d (the OS may not have ended it yet)\n", mproc_process_is_alive(p));
  mproc_process_join(p, MPROC_INFINITE);
  int code = 0;
  mproc_process_exitcode(p, &code);
  printf("joined, is_alive=%d, exitcode=%d\n", mproc_process_is_alive(p), code);
  mproc_process_destroy(p);
  mproc_connection_destroy(mine);
  mproc_connection_destroy(theirs);
  return code == -MPROC_SIGTERM ? 0 : 1;
}
