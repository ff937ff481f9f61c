/* Seed notes: r = subprocess.call(['nslookup', 'www.python.org']); print('Exit code:', r)
 * In C: mproc_call runs a program (here a shell command, which works the same with /bin/sh and cmd.exe)
 * and gives its exit code. */
#include <stdio.h>

#include "mproc.h"

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  printf("$ echo hello from a child\n");
  fflush(stdout); /* the child writes to the same stdout: keep the order */
  int code = -1;
  if (mproc_call(&(mproc_popen_opts){.command = "echo hello from a child"}, MPROC_INFINITE, &code) != 0) {
    fprintf(stderr, "call failed: %s\n", mproc_last_error());
    return 1;
  }
  printf("Exit code: %d\n", code);
  /* a program that does not exist: the error comes back from the call, in the parent */
  const char *missing[] = {"no-such-program-mproc", NULL};
  int rc = mproc_call(&(mproc_popen_opts){.argv = missing}, MPROC_INFINITE, &code);
  printf("calling a missing program: %s\n  %s\n", mproc_strerror(rc), mproc_last_error());
  return rc == MPROC_ENOENT ? 0 : 1;
}
