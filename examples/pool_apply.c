/* Seed notes: apply against apply_async, and the order of their output:
 *   def func(num): sleep(3); print(f"I am number {num}, process id {os.getpid()}")
 *   my_pool = Pool(processes=5)
 *   for i in range(1, 6): my_pool.apply_async(func, args=(i,)); print(f"task {i} submitted")
 *   my_pool.close(); my_pool.join(); print("Done.")
 * apply_async returns at once: the five "submitted" lines come first, the tasks' lines later, in any
 * order. With apply instead, each call waits for its task: its line, then "submitted", one by one.
 * A second seed gets the results (n**2) of apply_async two ways, with Pool(2): .get() right after each
 * call, which makes the tasks run one by one as apply does; or every result after close and join.
 * The seed's sleep(3) is 300 ms here. Every result is checked; the example exits 1 if one is wrong. */
#include "pool_common.h"

#define SIZE 5

static int func(const void *in, size_t len, mproc_task *t) {
  int64_t num = 0;
  int rc = task_input_i64(in, len, t, &num);
  if (rc) return rc;
  nap_ms(300);
  printf("I am number %lld, process id %lld\n", (long long)num, (long long)mproc_getpid());
  fflush(stdout);
  num *= num; /* the second seed's n**2 */
  return mproc_task_return(t, &num, sizeof num);
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  int ok = 1;

  printf("---- apply_async: returns at once\n");
  fflush(stdout);
  mproc_pool *pool = new_pool(SIZE);
  if (!pool) return 1;
  mproc_async_result *rs[SIZE] = {NULL};
  int64_t t0 = mproc_monotonic_ns();
  for (int64_t i = 1; i <= SIZE; ++i) {
    ok &= mproc_pool_apply_async(pool, func, &i, sizeof i, NULL, &rs[i - 1]) == 0;
    printf("task %lld submitted\n", (long long)i);
    fflush(stdout);
  }
  ok &= mproc_pool_close(pool) == 0 && mproc_pool_join(pool, MPROC_INFINITE) == 0;
  printf("Done. (%.1f s)\n", (double)(mproc_monotonic_ns() - t0) / 1e9);
  for (int i = 0; i < SIZE; ++i) {
    ok &= mproc_async_result_get(rs[i], 0) == 0 && result_i64(rs[i], 0) == (int64_t)(i + 1) * (i + 1);
    mproc_async_result_destroy(rs[i]);
  }
  mproc_pool_destroy(pool);

  printf("---- apply: waits for its task\n");
  fflush(stdout);
  if (!(pool = new_pool(SIZE))) return 1;
  t0 = mproc_monotonic_ns();
  for (int64_t i = 1; i <= SIZE; ++i) {
    void *out = NULL;
    size_t len = 0;
    int64_t y = -1;
    ok &= mproc_pool_apply(pool, func, &i, sizeof i, MPROC_INFINITE, &out, &len) == 0; /* its line is out */
    if (len == sizeof y) memcpy(&y, out, sizeof y);
    mproc_free(out);
    ok &= y == i * i;
    printf("task %lld submitted\n", (long long)i);
    fflush(stdout);
  }
  ok &= mproc_pool_close(pool) == 0 && mproc_pool_join(pool, MPROC_INFINITE) == 0;
  printf("Done. (%.1f s: one task after the other)\n", (double)(mproc_monotonic_ns() - t0) / 1e9);
  mproc_pool_destroy(pool);

  printf("---- Pool(2): get() right after each apply_async, as apply\n");
  fflush(stdout);
  if (!(pool = new_pool(2))) return 1;
  for (int64_t i = 1; i <= 4; ++i) {
    mproc_async_result *r = NULL;
    ok &= mproc_pool_apply_async(pool, func, &i, sizeof i, NULL, &r) == 0 &&
          mproc_async_result_get(r, MPROC_INFINITE) == 0;
    int64_t y = result_i64(r, 0);
    printf("%lld\n", (long long)y);
    ok &= y == i * i;
    mproc_async_result_destroy(r);
  }
  printf("---- Pool(2): every apply_async first, the results after close and join\n");
  fflush(stdout);
  mproc_async_result *later[4] = {NULL};
  for (int64_t i = 1; i <= 4; ++i) ok &= mproc_pool_apply_async(pool, func, &i, sizeof i, NULL, &later[i - 1]) == 0;
  ok &= mproc_pool_close(pool) == 0 && mproc_pool_join(pool, MPROC_INFINITE) == 0;
  for (int i = 0; i < 4; ++i) {
    int64_t y = mproc_async_result_get(later[i], 0) == 0 ? result_i64(later[i], 0) : -1;
    printf("%lld\n", (long long)y);
    ok &= y == (int64_t)(i + 1) * (i + 1);
    mproc_async_result_destroy(later[i]);
  }
  mproc_pool_destroy(pool);
  return ok ? 0 : 1;
}
