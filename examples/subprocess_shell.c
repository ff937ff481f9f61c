/* Seed notes: subprocess.call("ls /", shell=True)
 * In C: .command runs a command line through the shell: /bin/sh -c on POSIX, the system's cmd.exe /d /c
 * on Windows (never %ComSpec%). */
#include <stdio.h>

#include "mproc.h"

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_completed r;
  int rc = mproc_run(&(mproc_popen_opts){.command = "echo one && echo two && exit 2", .capture_output = true},
                     MPROC_INFINITE, &r);
  if (rc != 0) {
    fprintf(stderr, "run: %s\n", mproc_last_error());
    mproc_completed_free(&r);
    return 1;
  }
  printf("the shell printed:\n%sand exited with %d\n", r.stdout_data, r.returncode);
  mproc_completed_free(&r);
  return 0;
}
