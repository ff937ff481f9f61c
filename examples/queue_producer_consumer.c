/* Seed notes: a writer and a reader around a Queue; the reader loops for ever, so the main process
 * ends it with terminate():
 *   def write(q): for value in ['A', 'B', 'C']: print('Put %s to queue...' % value); q.put(value)
 *   def read(q):  while True: value = q.get(True); print('Get %s from queue.' % value)
 *   q = Queue(); pw.start(); pr.start(); pw.join(); pr.terminate()
 * Python warns that a process terminated while it uses a queue may corrupt it: its reader waits in
 * get holding the queue's read lock, and dies with it held, so the next reader waits for ever. Here
 * the reader is terminated while it waits in get, and the queue works on: the main process puts two
 * more items and gets them back. The reader releases a Semaphore for each item it has handled, so
 * the main process knows it took all three and holds none when it is terminated. */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

static const char *const values[] = {"A", "B", "C"};
#define NVALUES 3

static int write_values(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  printf("Process to write: %lld\n", (long long)mproc_getpid());
  for (int i = 0; i < NVALUES; ++i) {
    printf("Put %s to queue...\n", values[i]);
    fflush(stdout);
    if (mproc_queue_put(q, values[i], strlen(values[i]), MPROC_INFINITE) != 0) return 1;
  }
  return 0; /* the items are in the queue: nothing (no feeder thread) keeps this process from ending */
}

static int read_values(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  mproc_semaphore *taken = (mproc_semaphore *)a->objects[1];
  printf("Process to read: %lld\n", (long long)mproc_getpid());
  fflush(stdout);
  for (;;) {
    char value[16];
    size_t len = 0;
    if (mproc_queue_get_into(q, value, sizeof value, MPROC_INFINITE, &len) != 0) return 1;
    printf("Get %.*s from queue.\n", (int)len, value);
    fflush(stdout); /* a terminated process never flushes its buffer */
    if (mproc_semaphore_release(taken) != 0) return 1;
  }
}

static int start(mproc_process **p, int (*target)(const mproc_args *), mproc_object *objs, size_t n) {
  return mproc_process_create(p, &(mproc_process_opts){.target = target, .objects = objs, .object_count = n}) != 0 ||
         mproc_process_start(*p) != 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_queue *q = NULL;
  mproc_semaphore *taken = NULL;
  if (mproc_queue_create(&q, NULL) != 0 || mproc_semaphore_create(&taken, 0) != 0) {
    fprintf(stderr, "create: %s\n", mproc_last_error());
    return 1;
  }
  mproc_object objs[] = {mproc_object_queue(q), mproc_object_semaphore(taken)};
  mproc_process *pw = NULL, *pr = NULL;
  if (start(&pw, write_values, objs, 1) || start(&pr, read_values, objs, 2)) {
    fprintf(stderr, "start: %s\n", mproc_last_error());
    return 1;
  }
  int code = -1, ok = 1;
  ok &= mproc_process_join(pw, MPROC_INFINITE) == 0 && mproc_process_exitcode(pw, &code) && code == 0;
  for (int i = 0; i < NVALUES; ++i) ok &= mproc_semaphore_acquire(taken, 30000) == 0;
  if (!ok) {
    fprintf(stderr, "the writer or the reader failed: %s\n", mproc_last_error());
    return 1;
  }

  /* the reader waits in get for a fourth item: it can only be terminated */
  ok &= mproc_process_terminate(pr) == 0 && mproc_process_join(pr, MPROC_INFINITE) == 0;
  ok &= mproc_process_exitcode(pr, &code) && code == -MPROC_SIGTERM;
  printf("main: terminated the reader in its get (exitcode %d)\n", code);

  /* the queue works on: put two more items and get them back, in order */
  ok &= mproc_queue_put(q, "D", 1, 0) == 0 && mproc_queue_put(q, "E", 1, 0) == 0;
  printf("main: put D and E, qsize=%zu\n", mproc_queue_qsize(q));
  int got = 0;
  for (char expect = 'D'; expect <= 'E'; ++expect) {
    char value[16];
    size_t len = 0;
    int rc = mproc_queue_get_into(q, value, sizeof value, 30000, &len);
    if (rc != 0) {
      fprintf(stderr, "get: %s\n", mproc_last_error());
      return 1;
    }
    printf("main: Get %.*s from queue.\n", (int)len, value);
    got += len == 1 && value[0] == expect;
  }
  char value[16];
  size_t len = 0;
  ok &= mproc_queue_get_into(q, value, sizeof value, 0, &len) == MPROC_EEMPTY;
  printf("put %d items: the reader got %d, the main process %d, %zu left\n", NVALUES + 2, NVALUES, got,
         mproc_queue_qsize(q));
  ok &= got == 2 && mproc_queue_empty(q);
  mproc_process_destroy(pw);
  mproc_process_destroy(pr);
  mproc_semaphore_destroy(taken);
  mproc_queue_destroy(q);
  return ok ? 0 : 1;
}
