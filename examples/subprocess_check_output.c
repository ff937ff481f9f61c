/* Seed notes: subprocess.check_output(...) returns the output, and raises CalledProcessError when the
 * program fails. In C: MPROC_ECALLEDPROCESS, with the output and returncode still in the result. */
#include <stdio.h>

#include "mproc.h"

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_completed r;
  int rc = mproc_check_output(&(mproc_popen_opts){.command = "echo mproc"}, MPROC_INFINITE, &r);
  printf("check_output -> %s, output: %s", mproc_strerror(rc), rc == 0 ? r.stdout_data : "\n");
  mproc_completed_free(&r);
  rc = mproc_check_output(&(mproc_popen_opts){.command = "echo partial && exit 5"}, MPROC_INFINITE, &r);
  printf("check_output of a failing command -> %s\n  %s\n  returncode %d, output kept: %s", mproc_strerror(rc),
         mproc_last_error(), r.returncode, r.stdout_data ? r.stdout_data : "(none)\n");
  mproc_completed_free(&r);
  return rc == MPROC_ECALLEDPROCESS ? 0 : 1;
}
