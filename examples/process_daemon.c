/* A daemon child (Process(daemon=True)): it is terminated when the parent exits, while a normal child
 * is waited for. Beyond Python, a daemon is also killed if the parent dies any other way. */
#include <stdio.h>

#include "mproc.h"

static int forever(const mproc_args *a) {
  printf("daemon %lld: waiting for a message that never comes\n", (long long)mproc_getpid());
  fflush(stdout);
  char *m = NULL;
  size_t n = 0;
  mproc_connection_recv_bytes(a->connections[0], 0, MPROC_INFINITE, &m, &n);
  return 0;
}

static int brief(const mproc_args *a) {
  (void)a;
  printf("normal child %lld: done\n", (long long)mproc_getpid());
  return 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_connection *keep, *theirs;
  if (mproc_pipe(true, &keep, &theirs) != 0) return 1;
  mproc_process *d = NULL, *n = NULL;
  if (mproc_process_create(
          &d,
          &(mproc_process_opts){.target = forever, .connections = &theirs, .connection_count = 1, .daemon = true}) !=
          0 ||
      mproc_process_create(&n, &(mproc_process_opts){.target = brief}) != 0 || mproc_process_start(d) != 0 ||
      mproc_process_start(n) != 0) {
    fprintf(stderr, "start: %s\n", mproc_last_error());
    return 1;
  }
  printf("main: daemon %s is %s; returning from main\n", mproc_process_name(d),
         mproc_process_daemon(d) ? "a daemon" : "not a daemon");
  fflush(stdout);
  /* No join: at exit mproc terminates the daemon and joins the normal child. */
  mproc_process_destroy(d);
  mproc_process_destroy(n);
  return 0;
}
