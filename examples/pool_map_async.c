/* Seed notes: map against map_async, and map_async with a callback and an error_callback:
 *   def func(num): print(f"I am number {num}, process id {os.getpid()}")
 *   my_pool = Pool(processes=10)
 *   my_pool.map(func, range(1, 10)); print("map()")             # after all nine lines: map blocks
 *   my_pool.map_async(func, range(1, 10)); print("map_async()")  # at once; the lines come after
 *   my_pool.close(); my_pool.join(); print("Done.")
 *
 *   def task(i): time.sleep(1); return i
 *   def f(res): print('callback result:', res)
 *   res = p.map_async(task, range(20), callback=f)               # Pool(5)
 *   print('res.get() = ', res.get())       # callback result: [0, ..., 19], then res.get() = [0, ..., 19]
 *
 *   def f(i): return i / 0
 *   def exp(exception):
 *       if isinstance(exception, ZeroDivisionError): print('handlers of Exception '); p.close()
 *   p.map_async(f, range(5), callback=p, error_callback=exp); p.close(); p.join()
 * The callback gets the whole list once every item is done (in C: the result, read item by item); a
 * map fails as a whole with its first failure, and error_callback runs once. Closing the pool from a
 * callback is allowed, as in the seed (terminate, join and destroy there give MPROC_ESTATE). The seed's
 * sleep(1) is left out. */
#include "pool_common.h"

static int func(const void *in, size_t len, mproc_task *t) {
  int64_t num = 0;
  int rc = task_input_i64(in, len, t, &num);
  if (rc) return rc;
  printf("I am number %lld, process id %lld\n", (long long)num, (long long)mproc_getpid());
  fflush(stdout);
  return 0; /* returns None: no output */
}

static int task(const void *in, size_t len, mproc_task *t) { return mproc_task_return(t, in, len); }

static int divide_by_zero(const void *in, size_t len, mproc_task *t) {
  (void)in;
  (void)len;
  return mproc_task_fail(t, "ZeroDivisionError: division by zero"); /* i / 0 */
}

static int64_t xs[20];
static mproc_bytes inputs[20];

static int64_t same(int64_t i) { return i; }

static int callback_ok;
static void f(void *user, mproc_async_result *r) {
  (void)user;
  callback_ok = print_i64_list("callback result: ", r, same);
}

static int handled;
static void exp_handler(void *user, mproc_async_result *r) {
  if (mproc_async_result_get(r, 0) == MPROC_ETASK && strstr(mproc_last_error(), "ZeroDivisionError")) {
    printf("handlers of Exception\n");
    fflush(stdout);
    handled += mproc_pool_close((mproc_pool *)user) == 0; /* p.close() in the callback */
  }
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  for (int i = 0; i < 20; ++i) {
    xs[i] = i;
    inputs[i] = (mproc_bytes){&xs[i], sizeof xs[i]};
  }
  int ok = 1;

  mproc_pool *pool = new_pool(10);
  if (!pool) return 1;
  mproc_async_result *r = NULL;
  ok &= mproc_pool_map(pool, func, inputs + 1, 9, 0, MPROC_INFINITE, &r) == 0;
  mproc_async_result_destroy(r);
  printf("map()\n");
  fflush(stdout);
  ok &= mproc_pool_map_async(pool, func, inputs + 1, 9, NULL, &r) == 0;
  printf("map_async()\n");
  fflush(stdout);
  ok &= mproc_pool_close(pool) == 0 && mproc_pool_join(pool, MPROC_INFINITE) == 0;
  ok &= mproc_async_result_get(r, 0) == 0;
  mproc_async_result_destroy(r);
  mproc_pool_destroy(pool);
  printf("Done.\n");

  if (!(pool = new_pool(5))) return 1;
  ok &= mproc_pool_map_async(pool, task, inputs, 20, &(mproc_async_opts){.callback = f}, &r) == 0;
  ok &= mproc_async_result_get(r, MPROC_INFINITE) == 0; /* as in Python: once the callback has run */
  ok &= print_i64_list("res.get() = ", r, same);
  ok &= mproc_pool_close(pool) == 0 && mproc_pool_join(pool, MPROC_INFINITE) == 0;
  mproc_async_result_destroy(r);
  mproc_pool_destroy(pool);

  if (!(pool = new_pool(0))) return 1;
  ok &= mproc_pool_map_async(pool, divide_by_zero, inputs, 5,
                             &(mproc_async_opts){.callback = f, .error_callback = exp_handler, .user = pool}, &r) == 0;
  mproc_pool_close(pool);
  ok &= mproc_pool_join(pool, MPROC_INFINITE) == 0;
  bool good = true;
  ok &= mproc_async_result_successful(r, &good) == 0 && !good;
  mproc_async_result_destroy(r);
  mproc_pool_destroy(pool);
  return ok && callback_ok && handled == 1 ? 0 : 1;
}
