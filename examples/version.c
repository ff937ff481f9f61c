/* The first example: what mproc and this machine are. Python: multiprocessing.cpu_count(), os.getpid(). */
#include <stdio.h>

#include "mproc.h"

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  printf("mproc %s\n", mproc_version_string());
  printf("cpu_count=%d process_cpu_count=%d\n", mproc_cpu_count(), mproc_process_cpu_count());
  printf("pid=%lld ppid=%lld\n", (long long)mproc_getpid(), (long long)mproc_getppid());
  return 0;
}
