/* A program that loads only with lazy binding (it is linked with undef_lib.c's library), starting a
 * forkserver child that returns 7: its exit code is the child's, or 100 and up with a message on stderr.
 * The fork server is started with eager binding; this program must still get one. */
#include <stdio.h>

#include "mproc.h"

void mproc_test_undef_never_called(void);

static int seven(const mproc_args *a) {
  (void)a;
  return 7;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  if (argc > 99) mproc_test_undef_never_called(); /* never: keeps the library needed */
  mproc_process *p = NULL;
  int code = -1;
  if (mproc_process_create(&p, &(mproc_process_opts){.target = seven, .start_method = MPROC_START_FORKSERVER}) != 0 ||
      mproc_process_start(p) != 0 || mproc_process_join(p, MPROC_INFINITE) != 0 || !mproc_process_exitcode(p, &code)) {
    fprintf(stderr, "lazy_only: %s\n", mproc_last_error());
    return 100;
  }
  mproc_process_destroy(p);
  return code;
}
