/* Seed notes: subprocess.run(["ls", "-al"], capture_output=True) -> CompletedProcess(args, returncode,
 * stdout, stderr); and stderr=subprocess.STDOUT to merge the two.
 * The child is this program again ("--report": writes to both streams and exits 1). */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  if (argc > 1 && strcmp(argv[1], "--report") == 0) {
    printf("a line on stdout\n");
    fflush(stdout);
    fprintf(stderr, "a line on stderr\n");
    return 1;
  }
  char *self = NULL;
  if (mproc_self_exe(&self) != 0) return 1;
  const char *child[] = {self, "--report", NULL};
  mproc_completed r;
  int rc = mproc_run(&(mproc_popen_opts){.argv = child, .capture_output = true}, 10000, &r);
  if (rc != 0) {
    fprintf(stderr, "run: %s\n", mproc_last_error());
    return 1;
  }
  printf("CompletedProcess(pid=%lld, returncode=%d,\n  stdout=\"%s\",\n  stderr=\"%s\")\n", (long long)r.pid,
         r.returncode, r.stdout_data, r.stderr_data);
  rc = mproc_completed_check_returncode(&r);
  printf("check_returncode: %s (%s)\n", mproc_strerror(rc), mproc_last_error());
  mproc_completed_free(&r);
  /* stderr=STDOUT: one merged stream */
  rc = mproc_run(&(mproc_popen_opts){.argv = child, .stdout_mode = MPROC_PIPE, .stderr_mode = MPROC_STDOUT}, 10000, &r);
  printf("merged: \"%s\"\n", rc == 0 ? r.stdout_data : mproc_last_error());
  mproc_completed_free(&r);
  mproc_free(self);
  return 0;
}
