/* Seed notes: many tasks on a Pool(4), then close and join:
 *   def long_time_task(name):
 *       print('Run task %s (%s)...' % (name, os.getpid())); start = time.time()
 *       time.sleep(random.random() * 3)
 *       print('Task %s runs %0.2f seconds.' % (name, time.time() - start)); return name * name
 *   print('Parent process %s.' % os.getpid())
 *   p = Pool(4); results = [p.apply_async(long_time_task, args=(i,)) for i in range(5)]
 *   print('Waiting for all subprocesses done...')
 *   p.close()   # before join(); no more tasks after it
 *   p.join()    # waits for the workers to end
 *   print('All subprocesses done.')
 *   for result in results: print(result.get())   # the results once the pool is gone
 * Four workers, five tasks: task 4 waits for a worker to be free. The results outlive the pool. The
 * seed's sleep of up to 3 s is up to 300 ms here. Beyond the seed: what Python refuses, mproc refuses
 * with MPROC_ESTATE: join before close (ValueError "Pool is still running") and work after close
 * (ValueError "Pool not running"). */
#include "pool_common.h"

#include <stdlib.h>

static int long_time_task(const void *in, size_t len, mproc_task *t) {
  int64_t name = 0;
  int rc = task_input_i64(in, len, t, &name);
  if (rc) return rc;
  printf("Run task %lld (%lld)...\n", (long long)name, (long long)mproc_getpid());
  fflush(stdout);
  int64_t start = mproc_monotonic_ns();
  srand((unsigned)(mproc_getpid() * 31 + name));
  nap_ms(rand() % 300); /* random.random() * 3 s, scaled down */
  printf("Task %lld runs %0.2f seconds.\n", (long long)name, (double)(mproc_monotonic_ns() - start) / 1e9);
  fflush(stdout);
  name *= name;
  return mproc_task_return(t, &name, sizeof name);
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  printf("Parent process %lld.\n", (long long)mproc_getpid());
  fflush(stdout);
  mproc_pool *p = new_pool(4);
  if (!p) return 1;
  int ok = 1;
  mproc_async_result *results[5] = {NULL};
  for (int64_t i = 0; i < 5; ++i) ok &= mproc_pool_apply_async(p, long_time_task, &i, sizeof i, NULL, &results[i]) == 0;
  printf("Waiting for all subprocesses done...\n");
  fflush(stdout);
  ok &= mproc_pool_join(p, MPROC_INFINITE) == MPROC_ESTATE; /* join before close */
  printf("join before close: %s\n", mproc_last_error());
  ok &= mproc_pool_close(p) == 0;
  mproc_async_result *late = NULL;
  int64_t five = 5;
  ok &= mproc_pool_apply_async(p, long_time_task, &five, sizeof five, NULL, &late) == MPROC_ESTATE && !late;
  printf("apply_async after close: %s\n", mproc_last_error());
  fflush(stdout);
  ok &= mproc_pool_join(p, MPROC_INFINITE) == 0;
  printf("All subprocesses done.\n");
  mproc_pool_destroy(p); /* the results live on */
  for (int i = 0; i < 5; ++i) {
    int64_t y = mproc_async_result_get(results[i], 0) == 0 ? result_i64(results[i], 0) : -1;
    printf("%lld\n", (long long)y);
    ok &= y == (int64_t)i * i;
    mproc_async_result_destroy(results[i]);
  }
  return ok ? 0 : 1;
}
