/* bench_linewriter CPU N LEN [BATCH]: pin this process to CPU (one sched_setaffinity call), write
 * "ready\n", wait for one byte on stdin (the reader's go), then write N lines of LEN bytes each ("\n"
 * included) to stdout, BATCH lines per write() (default 1: one write per line, as a program that flushes
 * every line does; more: a program that writes its output in blocks, so the reader's own cost per line
 * shows). The child of subprocess.lines.* for every implementation (mproc, c-raw, python), so they read
 * the very same output; the go lets each start its clock before the first of the N lines is written
 * (none waits in the pipe unclocked, however long the reader took to start reading). Exit status 126 on
 * a bad CPU, 2 on bad arguments, 1 if a read or write fails. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define ROOM (64 * 1024)

int main(int argc, char **argv) {
  static char block[ROOM];
  long n = argc == 4 || argc == 5 ? atol(argv[2]) : -1;
  long len = argc == 4 || argc == 5 ? atol(argv[3]) : -1;
  long batch = argc == 5 ? atol(argv[4]) : 1;
  if (n < 0 || len < 1 || batch < 1 || len * batch > ROOM) {
    fprintf(stderr, "usage: %s CPU N LEN [BATCH] (LEN * BATCH <= %d)\n", argv[0], ROOM);
    return 2;
  }
  if (bench_pin_cpu(atoi(argv[1])) != 0) {
    perror("bench_linewriter: sched_setaffinity");
    return 126;
  }
  memset(block, 'x', (size_t)(len * batch));
  for (long k = 1; k <= batch; k++) block[k * len - 1] = '\n';
  char go;
  if (write(1, "ready\n", 6) != 6 || read(0, &go, 1) != 1) return 1;
  for (long i = 0; i < n; i += batch) {
    size_t size = (size_t)((n - i < batch ? n - i : batch) * len), done = 0;
    while (done < size) {
      ssize_t w = write(1, block + done, size - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return 1;
      done += (size_t)w;
    }
  }
  return 0;
}
