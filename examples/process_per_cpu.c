/* One process per CPU, started together and joined together (multiprocessing.cpu_count()). Each child
 * squares its index, as the seed notes' task(x) does, and returns it as its exit code. */
#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

static int task(const mproc_args *a) {
  int x = *(const int *)a->data;
  printf("Run task %d (%lld)...\n", x, (long long)mproc_getpid());
  return x * x;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  int n = mproc_process_cpu_count();
  printf("cpu_count=%d, process_cpu_count=%d: starting %d processes\n", mproc_cpu_count(), n, n);
  fflush(stdout);
  mproc_process **ps = calloc((size_t)n, sizeof *ps);
  for (int i = 0; i < n; ++i) {
    if (mproc_process_create(&ps[i], &(mproc_process_opts){.target = task, .arg = &i, .arg_size = sizeof i}) != 0 ||
        mproc_process_start(ps[i]) != 0) {
      fprintf(stderr, "start: %s\n", mproc_last_error());
      return 1;
    }
  }
  for (int i = 0; i < n; ++i) {
    int code = -1;
    mproc_process_join(ps[i], MPROC_INFINITE);
    mproc_process_exitcode(ps[i], &code);
    printf("%s: %d*%d = %d\n", mproc_process_name(ps[i]), i, i, code);
    mproc_process_destroy(ps[i]);
  }
  free(ps);
  return 0;
}
