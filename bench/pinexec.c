/* bench_pinexec CPU PROGRAM [ARG...]: pin this process to CPU (one sched_setaffinity call), then
 * execute PROGRAM. For two-process lines whose child is a program that cannot pin itself
 * (subprocess.capture.*): every implementation starts its child through this launcher, in both
 * placements, so each pays the same pinning call and the same extra exec (bench/README.md, house
 * rule 5). Exit status 127 if the program cannot be executed, 126 on a bad CPU. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s CPU PROGRAM [ARG...]\n", argv[0]);
    return 2;
  }
  if (bench_pin_cpu(atoi(argv[1])) != 0) {
    perror("bench_pinexec: sched_setaffinity");
    return 126;
  }
  execv(argv[2], argv + 2);
  perror("bench_pinexec: execv");
  return 127;
}
