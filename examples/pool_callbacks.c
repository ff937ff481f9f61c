/* Seed notes: apply_async with a callback and an error_callback:
 *   def func(num):
 *       if num % 2: raise RuntimeError(f"I am number {num}, process id {os.getpid()}")
 *       return "the task ended normally."
 *   def callback(arg):       print(f"callback()       received: {arg}")
 *   def error_callback(arg): print(f"error_callback() received: {arg}")
 *   my_pool = Pool(processes=5)
 *   for i in range(1, 6):
 *       print(f"about to start task {i}...")
 *       my_pool.apply_async(func, args=(i,), callback=callback, error_callback=error_callback)
 *   my_pool.close(); my_pool.join()
 * In C a task fails by returning non-zero; mproc_task_fail gives the message that Python's exception
 * carries. The callbacks run in the parent, on the pool's result thread, one at a time: a callback
 * reads the result (mproc_async_result_item, or mproc_async_result_get with the failure's message in
 * mproc_last_error); the caller destroys the results once join has returned. */
#include "pool_common.h"

#define SIZE 5

static int func(const void *in, size_t len, mproc_task *t) {
  int64_t num = 0;
  int rc = task_input_i64(in, len, t, &num);
  if (rc) return rc;
  if (num % 2)
    return mproc_task_fail(t, "I am number %lld, process id %lld", (long long)num, (long long)mproc_getpid());
  static const char fine[] = "the task ended normally.";
  return mproc_task_return(t, fine, sizeof fine - 1);
}

typedef struct tally {
  int ok, failed, wrong; /* only the result thread writes them, and join orders that before our reads */
} tally;

static void callback(void *user, mproc_async_result *r) {
  const void *out;
  size_t len;
  if (mproc_async_result_item(r, 0, &out, &len) != 0) len = 0;
  printf("callback()       received: %.*s\n", (int)len, (const char *)out);
  fflush(stdout);
  ++((tally *)user)->ok;
}

static void error_callback(void *user, mproc_async_result *r) {
  tally *t = (tally *)user;
  int rc = mproc_async_result_get(r, 0); /* the failure: MPROC_ETASK, the message in mproc_last_error */
  printf("error_callback() received: %s\n", mproc_last_error());
  fflush(stdout);
  ++t->failed;
  t->wrong += rc != MPROC_ETASK || strncmp(mproc_last_error(), "I am number ", 12) != 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_pool *pool = new_pool(SIZE);
  if (!pool) return 1;
  tally seen = {0, 0, 0};
  mproc_async_opts cbs = {.callback = callback, .error_callback = error_callback, .user = &seen};
  mproc_async_result *rs[SIZE] = {NULL};
  int ok = 1;
  for (int64_t i = 1; i <= SIZE; ++i) {
    printf("about to start task %lld...\n", (long long)i);
    fflush(stdout);
    ok &= mproc_pool_apply_async(pool, func, &i, sizeof i, &cbs, &rs[i - 1]) == 0;
  }
  ok &= mproc_pool_close(pool) == 0 && mproc_pool_join(pool, MPROC_INFINITE) == 0; /* every callback has run */
  for (int i = 0; i < SIZE; ++i) {
    bool good = false;
    ok &= mproc_async_result_successful(rs[i], &good) == 0 && good == ((i + 1) % 2 == 0);
    mproc_async_result_destroy(rs[i]);
  }
  mproc_pool_destroy(pool);
  printf("%d callbacks, %d error callbacks\n", seen.ok, seen.failed);
  return ok && seen.ok == 2 && seen.failed == 3 && !seen.wrong ? 0 : 1;
}
