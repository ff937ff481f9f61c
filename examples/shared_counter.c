/* Seed notes: a count shared by many processes, changed under a lock.
 *   def task(mutex, dic):
 *       with mutex: dic['count'] -= 1
 *   mutex = Lock(); share_dic = Manager().dict(count=100)
 *   for i in range(100): Process(target=task, args=(mutex, share_dic)).start()   # ... join all
 *   print(share_dic)                                      # {'count': 0}; without the lock, maybe not
 * In C: two counters in shared memory, each workers' many decrements: one a Value('q') changed under
 * its lock (read, write, release: as Python's `with v.get_lock(): v.value -= 1`), the other changed by
 * mproc_value_fetch_add, one atomic instruction and no lock. Both must end at 0. */
#include <stdio.h>

#include "mproc.h"

#define WORKERS 4
#define EACH 25000
#define START ((long long)WORKERS * EACH)

static int task(const mproc_args *a) {
  mproc_value *locked = (mproc_value *)a->objects[0], *atomic = (mproc_value *)a->objects[1];
  mproc_lock *l = mproc_value_lock(locked);
  long long *count = (long long *)mproc_value_ptr(locked);
  for (int i = 0; i < EACH; ++i) {
    if (mproc_lock_acquire(l, MPROC_INFINITE) != 0) return 1;
    *count -= 1;
    mproc_lock_release(l);

    int64_t old;
    mproc_value_fetch_add(atomic, -1, &old);
  }
  return 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  long long start = START;
  mproc_value *locked = NULL, *atomic = NULL;
  if (mproc_value_create(&locked, 'q', &start) != 0 || mproc_value_create(&atomic, 'q', &start) != 0) {
    fprintf(stderr, "create: %s\n", mproc_last_error());
    return 1;
  }
  mproc_object objs[] = {mproc_object_value(locked), mproc_object_value(atomic)};
  mproc_process *workers[WORKERS];
  for (int i = 0; i < WORKERS; ++i) {
    if (mproc_process_create(&workers[i], &(mproc_process_opts){.target = task, .objects = objs, .object_count = 2}) !=
            0 ||
        mproc_process_start(workers[i]) != 0) {
      fprintf(stderr, "start: %s\n", mproc_last_error());
      return 1;
    }
  }
  printf("%d workers take 1 from each counter, %d times each\n", WORKERS, EACH);
  int ok = 1;
  for (int i = 0; i < WORKERS; ++i) {
    int code = -1;
    mproc_process_join(workers[i], MPROC_INFINITE);
    ok &= mproc_process_exitcode(workers[i], &code) && code == 0;
    mproc_process_destroy(workers[i]);
  }
  long long a = 0, b = 0;
  mproc_value_get(locked, &a);
  mproc_value_get(atomic, &b);
  printf("count under the lock: %lld -> %lld\ncount by fetch_add:   %lld -> %lld\n", start, a, start, b);
  ok &= a == 0 && b == 0;
  mproc_value_destroy(locked);
  mproc_value_destroy(atomic);
  return ok ? 0 : 1;
}
