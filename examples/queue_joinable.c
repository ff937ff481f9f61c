/* Seed notes: three producers and two customers around a JoinableQueue(5):
 *   def producer(q):  for i in range(3): q.put('$$%s' % i); print(...)   # '@@' and '**' in the others
 *                     q.join()           # until every item put has been got and its task_done called
 *   def customer(q):  while True: buy = q.get(); print('[%s] buy %s' % (os.getpid(), buy)); q.task_done()
 *   q = JoinableQueue(5); c1.daemon = c2.daemon = True; start all five; join the three producers
 * Python's customers never end by themselves: they are daemons, killed when the main process exits,
 * or are sent one sentinel item each (None) to stop on. Here the main process shuts the queue down
 * instead (mproc_queue_shutdown): a customer's get gives MPROC_EEOF once the queue is drained, and it
 * returns. */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

#define PRODUCERS 3
#define CUSTOMERS 2
#define EACH 3

static const char *const marks[PRODUCERS] = {"$$", "@@", "**"};

static int producer(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  int k = *(const int *)a->data;
  for (int i = 0; i < EACH; ++i) {
    char item[8];
    int n = snprintf(item, sizeof item, "%s%d", marks[k], i);
    if (mproc_queue_put(q, item, (size_t)n, MPROC_INFINITE) != 0) return 1;
    printf("%lld produce %s\n", (long long)mproc_getpid(), item);
    fflush(stdout);
  }
  /* join: until every item put so far (by anyone) has been got and its task_done called */
  return mproc_queue_join(q, 30000) == 0 ? 0 : 2;
}

static int customer(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  mproc_value *bought = (mproc_value *)a->objects[1];
  for (;;) {
    char item[8];
    size_t len = 0;
    int rc = mproc_queue_get_into(q, item, sizeof item, MPROC_INFINITE, &len);
    if (rc == MPROC_EEOF) return 0; /* shut down, and nothing left */
    if (rc != 0) return 1;
    printf("[%lld] buy %.*s\n", (long long)mproc_getpid(), (int)len, item);
    fflush(stdout);
    int64_t before;
    if (mproc_value_fetch_add(bought, 1, &before) != 0 || mproc_queue_task_done(q) != 0) return 2;
  }
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_queue *q = NULL;
  mproc_value *bought = NULL;
  if (mproc_joinable_queue_create(&q, &(mproc_queue_opts){.maxsize = 5}) != 0 ||
      mproc_value_create(&bought, 'q', NULL) != 0) {
    fprintf(stderr, "create: %s\n", mproc_last_error());
    return 1;
  }
  mproc_object objs[] = {mproc_object_queue(q), mproc_object_value(bought)};
  mproc_process *ps[PRODUCERS + CUSTOMERS];
  for (int k = 0; k < PRODUCERS + CUSTOMERS; ++k) {
    mproc_process_opts o = {.target = producer, .arg = &k, .arg_size = sizeof k, .objects = objs, .object_count = 1};
    if (k >= PRODUCERS) o = (mproc_process_opts){.target = customer, .objects = objs, .object_count = 2};
    if (mproc_process_create(&ps[k], &o) != 0 || mproc_process_start(ps[k]) != 0) {
      fprintf(stderr, "start: %s\n", mproc_last_error());
      return 1;
    }
  }
  int ok = 1;
  for (int k = 0; k < PRODUCERS; ++k) { /* each returns once its join has */
    int code = -1;
    ok &= mproc_process_join(ps[k], MPROC_INFINITE) == 0 && mproc_process_exitcode(ps[k], &code) && code == 0;
  }
  int rc = mproc_queue_join(q, 30000); /* at once: the producers saw every task done */
  printf("main: the producers are done; join -> %d, qsize=%zu\n", rc, mproc_queue_qsize(q));
  ok &= rc == 0;

  /* where Python sends a sentinel item per customer: */
  ok &= mproc_queue_shutdown(q) == 0;
  for (int k = PRODUCERS; k < PRODUCERS + CUSTOMERS; ++k) {
    int code = -1;
    ok &= mproc_process_join(ps[k], MPROC_INFINITE) == 0 && mproc_process_exitcode(ps[k], &code) && code == 0;
  }
  long long n = 0;
  ok &= mproc_value_get(bought, &n) == 0;
  printf("main: shut the queue down, the customers ended; %lld of %d items bought\n", n, PRODUCERS * EACH);
  ok &= n == PRODUCERS * EACH && mproc_queue_put(q, "late", 4, 0) == MPROC_ECLOSED;
  for (int k = 0; k < PRODUCERS + CUSTOMERS; ++k) mproc_process_destroy(ps[k]);
  mproc_value_destroy(bought);
  mproc_queue_destroy(q);
  return ok ? 0 : 1;
}
