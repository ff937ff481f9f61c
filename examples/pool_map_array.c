/* Beyond the seed notes: the array path, Pool.map over fixed-size records without a message per task.
 * In Python one would write
 *   def norm(p): return math.hypot(p.x, p.y)
 *   with Pool() as pool: lengths = pool.map(norm, points, chunksize=1000)
 * and every point would be pickled and sent. Here a million points lie in a block of shared memory the
 * pool lends (mproc_pool_array_alloc), the lengths go to another, and each worker claims a thousand
 * points at a time from a counter in shared memory and writes their lengths in place: nothing is copied
 * and no message travels per chunk. The same call also takes ordinary arrays (then the pool copies the
 * inputs in and the outputs back once). mproc_pool_map_array_chunks does the same with a function that
 * gets a whole chunk of points and loops over them itself: one call per thousand points, not per point. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mproc.h"

typedef struct point {
  double x, y;
} point;

static int norm(const void *in, void *out, mproc_task *t) {
  point p;
  memcpy(&p, in, sizeof p);
  if (p.x != p.x || p.y != p.y) return mproc_task_fail(t, "not a number");
  double len = sqrt(p.x * p.x + p.y * p.y);
  memcpy(out, &len, sizeof len);
  return 0;
}

/* The same over a chunk: `count` points in, `count` lengths out. */
static int norms(const void *in, void *out, size_t count, mproc_task *t) {
  for (size_t i = 0; i < count; ++i) {
    int rc = norm((const point *)in + i, (double *)out + i, t);
    if (rc) return rc;
  }
  return 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_pool *pool = NULL;
  if (mproc_pool_create(&pool, NULL) != 0) {
    fprintf(stderr, "pool: %s\n", mproc_last_error());
    return 1;
  }
  const size_t n = 1000000;
  void *in = NULL, *out = NULL;
  if (mproc_pool_array_alloc(pool, n * sizeof(point), &in) != 0 ||
      mproc_pool_array_alloc(pool, n * sizeof(double), &out) != 0) {
    fprintf(stderr, "array_alloc: %s\n", mproc_last_error());
    mproc_pool_destroy(pool);
    return 1;
  }
  point *pts = (point *)in;
  for (size_t i = 0; i < n; ++i) pts[i] = (point){(double)(i % 1000) * 3, (double)(i % 1000) * 4};

  mproc_array_map m = {in, sizeof(point), out, sizeof(double), n};
  int rc = mproc_pool_map_array(pool, norm, &m, 1000, MPROC_INFINITE);
  if (rc) fprintf(stderr, "map_array: %s\n", mproc_last_error());
  const double *len = (const double *)out;
  int ok = rc == 0;
  double sum = 0;
  for (size_t i = 0; ok && i < n; ++i) {
    ok = len[i] == (double)(i % 1000) * 5; /* a 3-4-5 triangle */
    sum += len[i];
  }
  printf("%zu lengths on %zu workers, sum %.0f: %s\n", n, mproc_pool_size(pool), sum, ok ? "right" : "WRONG");

  /* a function per chunk of a thousand points */
  memset(out, 0, n * sizeof(double));
  rc = mproc_pool_map_array_chunks(pool, norms, &m, 1000, MPROC_INFINITE);
  if (rc) fprintf(stderr, "map_array_chunks: %s\n", mproc_last_error());
  ok &= rc == 0;
  for (size_t i = 0; ok && i < n; ++i) ok = len[i] == (double)(i % 1000) * 5;
  printf("again, a call per chunk: %s\n", ok ? "right" : "WRONG");

  /* a failing record fails the map with its message */
  pts[123456].x = NAN;
  rc = mproc_pool_map_array(pool, norm, &m, 1000, MPROC_INFINITE);
  printf("with a NaN: %s (%s)\n", mproc_strerror(rc), mproc_last_error());
  ok &= rc == MPROC_ETASK;
  rc = mproc_pool_map_array_chunks(pool, norms, &m, 1000, MPROC_INFINITE); /* its chunk is named */
  printf("with a NaN, a call per chunk: %s (%s)\n", mproc_strerror(rc), mproc_last_error());
  ok &= rc == MPROC_ETASK;

  mproc_pool_array_free(pool, in);
  mproc_pool_array_free(pool, out);
  ok &= mproc_pool_close(pool) == 0 && mproc_pool_join(pool, MPROC_INFINITE) == 0;
  mproc_pool_destroy(pool);
  return ok ? 0 : 1;
}
