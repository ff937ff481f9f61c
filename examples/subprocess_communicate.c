/* Seed notes: p = subprocess.Popen(['nslookup'], stdin=PIPE, stdout=PIPE, stderr=PIPE)
 *             output, err = p.communicate(b'set q=mx\npython.org\nexit\n'); print(p.returncode)
 * In C the child is this program again in a "filter" role (upper-cases stdin, reports on stderr), so the
 * example runs the same everywhere. communicate() feeds stdin and reads both outputs at once: it never
 * deadlocks, whatever the sizes. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "mproc.h"

static int filter(void) {
  int ch;
  long n = 0;
  while ((ch = getchar()) != EOF) {
    putchar(toupper(ch));
    ++n;
  }
  fprintf(stderr, "filter: %ld bytes\n", n);
  return 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  if (argc > 1 && strcmp(argv[1], "--filter") == 0) return filter();
  char *self = NULL;
  if (mproc_self_exe(&self) != 0) return 1;
  const char *child_argv[] = {self, "--filter", NULL};
  mproc_popen *p = NULL;
  int rc = mproc_popen_create(
      &p, &(mproc_popen_opts){
              .argv = child_argv, .stdin_mode = MPROC_PIPE, .stdout_mode = MPROC_PIPE, .stderr_mode = MPROC_PIPE});
  mproc_free(self);
  if (rc != 0) {
    fprintf(stderr, "popen: %s\n", mproc_last_error());
    return 1;
  }
  const char input[] = "set q=mx\npython.org\nexit\n";
  char *out = NULL, *err = NULL;
  size_t out_len = 0, err_len = 0;
  rc = mproc_popen_communicate(p, input, strlen(input), 10000, &out, &out_len, &err, &err_len);
  if (rc == 0) {
    int code = -1;
    mproc_popen_returncode(p, &code);
    printf("stdout (%zu bytes):\n%s", out_len, out);
    printf("stderr: %s", err);
    printf("Exit code: %d\n", code);
  } else {
    fprintf(stderr, "communicate: %s\n", mproc_last_error());
  }
  mproc_free(out);
  mproc_free(err);
  mproc_popen_destroy(p);
  return rc == 0 ? 0 : 1;
}
