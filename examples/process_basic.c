/* Seed notes:
 *   def run_proc(name): print('Run child process %s (%s)...' % (name, os.getpid()))
 *   if __name__ == '__main__':
 *       p = Process(target=run_proc, args=('test',)); p.start(); p.join()
 * In C: the target is an ordinary function; its arguments are bytes; mproc_main_guard is the
 * `if __name__ == '__main__':` line. */
#include <stdio.h>

#include "mproc.h"

static int run_proc(const mproc_args *a) {
  printf("Run child process %.*s (%lld), named %s...\n", (int)a->size, (const char *)a->data, (long long)mproc_getpid(),
         mproc_current_process_name());
  return 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv); /* a spawned child runs run_proc here and exits */
  printf("Parent process %lld (%s).\n", (long long)mproc_getpid(), mproc_current_process_name());
  mproc_process *p = NULL;
  if (mproc_process_create(&p, &(mproc_process_opts){.target = run_proc, .arg = "test", .arg_size = 4}) != 0) return 1;
  printf("Child process will start.\n");
  fflush(stdout);
  if (mproc_process_start(p) != 0) {
    fprintf(stderr, "start: %s\n", mproc_last_error());
    return 1;
  }
  mproc_process_join(p, MPROC_INFINITE);
  int code = -1;
  mproc_process_exitcode(p, &code);
  printf("Child process end (exitcode %d).\n", code);
  mproc_process_destroy(p);
  return 0;
}
