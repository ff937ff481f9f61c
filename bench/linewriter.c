/* bench_linewriter CPU N LEN: pin this process to CPU (one sched_setaffinity call), write "ready\n", wait
 * for one byte on stdin (the reader's go), then write N lines of LEN bytes each ("\n" included) to
 * stdout, one write() per line, as a program that flushes every line does. The child of
 * subprocess.lines.* for every implementation (mproc, c-raw, python), so they read the very same output;
 * the go lets each start its clock before the first of the N lines is written (none waits in the pipe
 * unclocked, however long the reader took to start reading). Exit status 126 on a bad CPU, 2 on bad
 * arguments, 1 if a read or write fails. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

int main(int argc, char **argv) {
  char line[4096];
  long n = argc == 4 ? atol(argv[2]) : -1;
  long len = argc == 4 ? atol(argv[3]) : -1;
  if (n < 0 || len < 1 || len > (long)sizeof line) {
    fprintf(stderr, "usage: %s CPU N LEN (1 <= LEN <= %zu)\n", argv[0], sizeof line);
    return 2;
  }
  if (bench_pin_cpu(atoi(argv[1])) != 0) {
    perror("bench_linewriter: sched_setaffinity");
    return 126;
  }
  memset(line, 'x', (size_t)len - 1);
  line[len - 1] = '\n';
  char go;
  if (write(1, "ready\n", 6) != 6 || read(0, &go, 1) != 1) return 1;
  for (long i = 0; i < n; i++) {
    ssize_t w;
    do w = write(1, line, (size_t)len);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)len) return 1;
  }
  return 0;
}
