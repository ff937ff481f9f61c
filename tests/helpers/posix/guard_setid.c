/* A program linked with mproc, made set-user-ID by tests/guard_posix.cc (a copy of it, owned by root,
 * mode 4755, run by an unprivileged user). main() calls the guard first, like any mproc program, so a
 * forged "--mproc-spawn=<fd>" must be refused there. Modes (argv[1]):
 *   secure   print "AT_SECURE=<getauxval(AT_SECURE)> euid=<n> uid=<n>"
 *   start    start a process with each of fork, spawn and forkserver, printing one line each:
 *            "<method> start=<code> exitcode=<n>|<message>"
 * Exit status 0 unless a mode says otherwise. Linux only (getauxval). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "mproc.h"

static int target(const mproc_args *a) {
  (void)a;
  return 7;
}

static void start_one(mproc_start_method m) {
  mproc_process *p = NULL;
  int rc = mproc_process_create(&p, &(mproc_process_opts){.target = target, .start_method = m});
  if (!rc) rc = mproc_process_start(p);
  if (rc) {
    printf("%s start=%d %s\n", mproc_start_method_name(m), rc, mproc_last_error());
  } else {
    int code = -1000;
    if (mproc_process_join(p, MPROC_INFINITE) == 0 && !mproc_process_exitcode(p, &code)) code = -1001;
    printf("%s start=0 exitcode=%d\n", mproc_start_method_name(m), code);
  }
  fflush(stdout);
  mproc_process_destroy(p);
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  if (argc >= 2 && !strcmp(argv[1], "secure")) {
    printf("AT_SECURE=%lu euid=%ld uid=%ld\n", getauxval(AT_SECURE), (long)geteuid(), (long)getuid());
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[1], "start")) {
    start_one(MPROC_START_FORK);
    start_one(MPROC_START_SPAWN);
    start_one(MPROC_START_FORKSERVER);
    return 0;
  }
  fprintf(stderr, "mproc_guard_setid: unknown mode\n");
  return 2;
}
