/* Seed notes: Pool.map, the parallel map() over a range:
 *   def task(x): print('Run task %s (%s)...' % (x, os.getpid())); return x*x
 *   pool = multiprocessing.Pool()            # one worker per CPU
 *   res = pool.map(task, range(4)); print(res)                   # [0, 1, 4, 9]
 *   with Pool(processes=4) as pool: print(pool.map(task, range(10)))  # [0, 1, 4, 9, ..., 81]
 * In C a task takes bytes and returns bytes: here an int64_t in, its square out. The inputs are an
 * array of {pointer, length}; map returns when every item is done, its outputs in input order however
 * the workers interleaved (the "Run task" lines come in any order). Leaving Python's `with` block
 * terminates the pool: mproc_pool_destroy does the same. */
#include "pool_common.h"

static int task(const void *in, size_t len, mproc_task *t) {
  int64_t x = 0;
  int rc = task_input_i64(in, len, t, &x);
  if (rc) return rc;
  printf("Run task %lld (%lld)...\n", (long long)x, (long long)mproc_getpid());
  fflush(stdout);
  x *= x;
  return mproc_task_return(t, &x, sizeof x);
}

static int64_t square(int64_t i) { return i * i; }

/* pool.map(task, range(n)), printed as Python prints the list; 1 if the squares are right. */
static int map_range(mproc_pool *pool, int64_t n) {
  int64_t xs[16];
  mproc_bytes in[16];
  for (int64_t i = 0; i < n; ++i) {
    xs[i] = i;
    in[i] = (mproc_bytes){&xs[i], sizeof xs[i]};
  }
  mproc_async_result *r = NULL;
  if (mproc_pool_map(pool, task, in, (size_t)n, 0, MPROC_INFINITE, &r) != 0) {
    fprintf(stderr, "map: %s\n", mproc_last_error());
    return 0;
  }
  int ok = print_i64_list("", r, square);
  mproc_async_result_destroy(r);
  return ok;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_pool *pool = new_pool(0); /* Pool(): mproc_process_cpu_count() workers */
  if (!pool) return 1;
  printf("Pool() has %zu workers\n", mproc_pool_size(pool));
  fflush(stdout); /* before the workers write theirs */
  int ok = map_range(pool, 4);
  ok &= mproc_pool_close(pool) == 0 && mproc_pool_join(pool, MPROC_INFINITE) == 0;
  mproc_pool_destroy(pool);

  /* with Pool(processes=4) as pool: print(pool.map(task, range(10))) */
  if (!(pool = new_pool(4))) return 1;
  ok &= map_range(pool, 10);
  mproc_pool_destroy(pool); /* leaving the with block: terminate */
  return ok ? 0 : 1;
}
