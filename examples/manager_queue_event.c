/* A managed JoinableQueue, Event and Value between processes, as with Python's
 *   with Manager() as m:
 *       jobs = m.JoinableQueue(8); go = m.Event(); total = m.Value('q', 0)
 *       workers = [Process(target=work, args=(jobs, go, total)) for _ in range(3)]
 *       ... go.set(); for n in range(1, 101): jobs.put(n)
 *       jobs.join()                      # every job done
 * The workers wait for the event, then square what they get from the queue and add it to the value
 * (an atomic add in the server: no lock), calling task_done for each job; an empty item tells a worker
 * to stop. The queue holds at most 8 jobs: the producer's put waits in the server for room, and no
 * other call waits behind it. */
#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

#define WORKERS 3
#define JOBS 100

typedef struct ids {
  mproc_mqueue jobs;
  mproc_mevent go;
  mproc_mvalue total;
} ids;

static int work(const mproc_args *a) {
  mproc_manager *m = (mproc_manager *)a->objects[0];
  const ids *s = (const ids *)a->data;
  if (mproc_mevent_wait(m, s->go, MPROC_INFINITE) != 0) return 1;
  for (;;) {
    char *item;
    size_t n;
    if (mproc_mqueue_get(m, s->jobs, &item, &n, MPROC_INFINITE) != 0) return 1;
    int64_t x = n ? atoll(item) : 0;
    mproc_free(item);
    if (n && mproc_mvalue_add_i64(m, s->total, x * x, NULL, MPROC_INFINITE) != 0) return 1;
    if (mproc_mqueue_task_done(m, s->jobs, MPROC_INFINITE) != 0) return 1;
    if (!n) return 0;
  }
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_manager *m;
  ids s;
  if (mproc_manager_start(&m, NULL) != 0 || mproc_manager_joinable_queue(m, 8, &s.jobs, MPROC_INFINITE) != 0 ||
      mproc_manager_event(m, &s.go, MPROC_INFINITE) != 0 ||
      mproc_manager_value_i64(m, 0, &s.total, MPROC_INFINITE) != 0) {
    fprintf(stderr, "manager: %s\n", mproc_last_error());
    return 1;
  }
  mproc_process *ps[WORKERS];
  mproc_object objs[] = {mproc_object_manager(m)};
  int started = 0, rc = 0;
  for (int i = 0; i < WORKERS && !rc; ++i) {
    rc = mproc_process_create(
        &ps[i],
        &(mproc_process_opts){.target = work, .arg = &s, .arg_size = sizeof s, .objects = objs, .object_count = 1});
    if (!rc) {
      started++;
      rc = mproc_process_start(ps[i]);
    }
  }
  if (!rc) rc = mproc_mevent_set(m, s.go, MPROC_INFINITE);
  char text[24];
  for (int i = 1; i <= JOBS && !rc; ++i)
    rc = mproc_mqueue_put(m, s.jobs, text, (size_t)snprintf(text, sizeof text, "%d", i), MPROC_INFINITE);
  if (!rc) rc = mproc_mqueue_join(m, s.jobs, MPROC_INFINITE); /* every job's task_done has come */
  int64_t total = 0;
  if (!rc) rc = mproc_mvalue_get_i64(m, s.total, &total, MPROC_INFINITE);
  if (!rc) printf("%d workers: the squares of 1..%d add up to %lld\n", WORKERS, JOBS, (long long)total);
  if (rc) fprintf(stderr, "%s\n", mproc_last_error());
  for (int i = 0; i < started && !rc; ++i) rc = mproc_mqueue_put(m, s.jobs, "", 0, MPROC_INFINITE); /* stop */
  for (int i = 0; i < started; ++i) {
    int code = -1;
    mproc_process_join(ps[i], MPROC_INFINITE);
    if (!mproc_process_exitcode(ps[i], &code) || code != 0) rc = 1;
    mproc_process_destroy(ps[i]);
  }
  mproc_manager_destroy(m);
  return !rc && total == (int64_t)JOBS * (JOBS + 1) * (2 * JOBS + 1) / 6 ? 0 : 1;
}
