/* The Pool over MPI (mproc/mpi.h): the same program on one machine or across the ranks of an MPI job.
 *
 *   ./example_mpi_pool_primes                         a local pool, one worker per CPU
 *   mpirun -np 4 ./example_mpi_pool_primes            rank 0 runs main; ranks 1-3 are the workers
 *   mpirun --hostfile hosts -np 65 ./example_...      the same across machines (the same build on each)
 *
 * It counts the primes below 2,000,000 in blocks of 50,000 numbers: one task per block (its bounds in,
 * its count and the rank that ran it out), then tells which rank ran how many blocks. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mproc/mpi.h"
#include "mproc/pool.h"

#define LIMIT 2000000
#define BLOCK 50000

typedef struct block_out {
  int64_t primes;
  int32_t rank;
} block_out;

static int count_primes(const void *in, size_t len, mproc_task *t) {
  int64_t lo;
  if (len != sizeof lo) return mproc_task_fail(t, "a block is one int64_t, not %zu bytes", len);
  memcpy(&lo, in, sizeof lo);
  block_out out = {0, mproc_mpi_rank()};
  for (int64_t n = lo < 2 ? 2 : lo; n < lo + BLOCK; ++n) {
    int prime = 1;
    for (int64_t d = 2; d * d <= n && prime; ++d) prime = n % d != 0;
    out.primes += prime;
  }
  return mproc_task_return(t, &out, sizeof out);
}

int main(int argc, char **argv) {
  mproc_mpi_main_guard(&argc, &argv); /* ranks > 0 stay in there, serving the pool's tasks */
  mproc_pool_opts o;
  memset(&o, 0, sizeof o);
  o.backend = mproc_mpi_pool_backend(); /* NULL without mpirun: a local pool */
  mproc_pool *pool = NULL;
  if (mproc_pool_create(&pool, &o) != 0) {
    fprintf(stderr, "pool: %s\n", mproc_last_error());
    return 1;
  }
  printf("%s pool of %zu workers\n", o.backend ? "an MPI" : "a local", mproc_pool_size(pool));
  enum { NBLOCKS = LIMIT / BLOCK };
  int64_t lows[NBLOCKS];
  mproc_bytes in[NBLOCKS];
  for (int i = 0; i < NBLOCKS; ++i) {
    lows[i] = (int64_t)i * BLOCK;
    in[i] = (mproc_bytes){&lows[i], sizeof lows[i]};
  }
  mproc_async_result *r = NULL;
  int rc = mproc_pool_map(pool, count_primes, in, NBLOCKS, 1, MPROC_INFINITE, &r);
  if (rc != 0) {
    fprintf(stderr, "map: %s\n", mproc_last_error());
    mproc_pool_destroy(pool);
    return 1;
  }
  int64_t total = 0;
  int per_rank[64] = {0};
  for (size_t i = 0; i < NBLOCKS; ++i) {
    const void *d;
    size_t len;
    block_out b;
    mproc_async_result_item(r, i, &d, &len);
    memcpy(&b, d, sizeof b);
    total += b.primes;
    if (b.rank >= 0 && b.rank < 64) ++per_rank[b.rank];
  }
  mproc_async_result_destroy(r);
  mproc_pool_close(pool);
  mproc_pool_join(pool, MPROC_INFINITE);
  mproc_pool_destroy(pool);
  for (int k = 0; k < 64; ++k)
    if (per_rank[k]) printf("rank %d ran %d blocks\n", k, per_rank[k]);
  printf("%lld primes below %d\n", (long long)total, LIMIT);
  mproc_mpi_finalize(); /* (atexit would too) */
  return total == 148933 ? 0 : 1;
}
