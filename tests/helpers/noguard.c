/* A program that forgets the main guard: main() starts a process with the spawn method without calling
 * mproc_main_guard first. Its spawned child runs main() again; mproc must refuse to start a process
 * there (no fork bomb), and the parent's start must fail with a clear error once that child exits.
 * Prints one line per process: "<role> start=<code> <message>". */
#include <stdio.h>

#include "mproc.h"

static int target(const mproc_args *a) {
  (void)a;
  return 0;
}

int main(void) {
  mproc_process *p = NULL;
  if (mproc_process_create(&p, &(mproc_process_opts){.target = target, .start_method = MPROC_START_SPAWN}) != 0)
    return 2;
  int rc = mproc_process_start(p);
  printf("pid %lld start=%d %s\n", (long long)mproc_getpid(), rc, rc ? mproc_last_error() : "ok");
  fflush(stdout);
  if (rc == 0) mproc_process_join(p, MPROC_INFINITE);
  mproc_process_destroy(p);
  return rc == 0 ? 0 : 3;
}
