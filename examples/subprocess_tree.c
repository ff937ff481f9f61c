/* Beyond Python: stop a program and everything it started (process_tree), and never leave them behind
 * (kill_on_parent_death). The program is this one again: "--worker" starts a "--sleeper" of its own, says
 * so, and both wait on stdin, which never ends; stop_tree asks both to end (SIGTERM; Windows: WM_CLOSE /
 * CTRL_BREAK_EVENT where they apply), gives them a second, then kills what is left. */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  char *self = NULL;
  if (mproc_self_exe(&self) != 0) return 1;
  if (argc > 1 && strcmp(argv[1], "--sleeper") == 0) return getchar() == EOF ? 0 : 1;
  if (argc > 1 && strcmp(argv[1], "--worker") == 0) {
    const char *sleeper[] = {self, "--sleeper", NULL};
    mproc_popen *s; /* the sleeper inherits our stdin; we never wait for it: the tree holds it */
    if (mproc_popen_create(&s, &(mproc_popen_opts){.argv = sleeper}) != 0) return 1;
    printf("worker %lld and sleeper %lld are up\n", (long long)mproc_getpid(), (long long)mproc_popen_pid(s));
    fflush(stdout);
    return getchar() == EOF ? 0 : 1;
  }
  const char *worker[] = {self, "--worker", NULL};
  mproc_popen *p;
  int rc = mproc_popen_create(&p, &(mproc_popen_opts){.argv = worker,
                                                      .stdin_mode = MPROC_PIPE,
                                                      .stdout_mode = MPROC_PIPE,
                                                      .process_tree = true,
                                                      .kill_on_parent_death = true});
  if (rc != 0) {
    fprintf(stderr, "popen: %s\n", mproc_last_error());
    return 1;
  }
  char line[128];
  size_t n = 0;
  if (mproc_popen_read(p, 1, line, sizeof line - 1, 10000, &n) == 0) printf("%.*s", (int)n, line);
  int code = 0;
  rc = mproc_popen_stop_tree(p, 1000, &code);
  char how[MPROC_EXIT_DESC_SIZE];
  printf("stop_tree: %s (the worker: %s); the tree has %s\n", rc == 0 ? "ok" : mproc_last_error(),
         mproc_describe_exit(code, how, sizeof how),
         mproc_popen_wait_tree(p, 0) == 0 ? "ended, sleeper too" : "processes left");
  mproc_popen_destroy(p);
  mproc_free(self);
  return rc == 0 ? 0 : 1;
}
