/* A Barrier lining up workers (multiprocessing.Barrier(parties, action)): each worker does a phase of
 * work, then waits until all have done it; the last to arrive runs the action before any goes on.
 *   def work(b, done, k):
 *       for phase in range(PHASES):
 *           done[k] = phase + 1        # this phase's work
 *           b.wait()                   # after this, every done[j] >= phase + 1
 * In C the action is an ordinary function of the program (found again in every process that gets the
 * barrier, as a target is); it reaches shared state through a global set in each worker. */
#include <stdio.h>

#include "mproc.h"

#define WORKERS 3
#define PHASES 2

static mproc_value *g_rounds; /* how many times the action ran (in this process: the worker's view) */

static int all_arrived(void) {
  int64_t before;
  mproc_value_fetch_add(g_rounds, 1, &before);
  printf("  action: all %d workers arrived; phase %lld complete\n", WORKERS, (long long)before + 1);
  fflush(stdout);
  return 0; /* non-zero would break the barrier */
}

static int worker(const mproc_args *a) {
  int k = *(const int *)a->data;
  mproc_barrier *b = (mproc_barrier *)a->objects[0];
  volatile int *done = (volatile int *)mproc_value_ptr((mproc_value *)a->objects[1]);
  g_rounds = (mproc_value *)a->objects[2];
  for (int phase = 0; phase < PHASES; ++phase) {
    printf("worker %d: phase %d done, waiting\n", k, phase + 1);
    fflush(stdout);
    done[k] = phase + 1;
    uint32_t index = 0;
    if (mproc_barrier_wait(b, MPROC_BARRIER_DEFAULT_TIMEOUT, &index) != 0) return 1;
    for (int j = 0; j < WORKERS; ++j)
      if (done[j] < phase + 1) return 2; /* a worker passed the barrier early */
  }
  return 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_barrier *b = NULL;
  mproc_value *done = NULL, *rounds = NULL;
  /* a raw array: each worker writes only its own element, and the barrier orders the reads */
  if (mproc_barrier_create(&b, WORKERS, all_arrived, 30000) != 0 ||
      mproc_shared_create(&done, &(mproc_shared_opts){.typecode = 'i', .length = WORKERS, .raw = true}) != 0 ||
      mproc_value_create(&rounds, 'q', NULL) != 0) {
    fprintf(stderr, "create: %s\n", mproc_last_error());
    return 1;
  }
  mproc_object objs[] = {mproc_object_barrier(b), mproc_object_value(done), mproc_object_value(rounds)};
  mproc_process *workers[WORKERS];
  for (int k = 0; k < WORKERS; ++k) {
    if (mproc_process_create(
            &workers[k],
            &(mproc_process_opts){
                .target = worker, .arg = &k, .arg_size = sizeof k, .objects = objs, .object_count = 3}) != 0 ||
        mproc_process_start(workers[k]) != 0) {
      fprintf(stderr, "start: %s\n", mproc_last_error());
      return 1;
    }
  }
  int ok = 1;
  for (int k = 0; k < WORKERS; ++k) {
    int code = -1;
    mproc_process_join(workers[k], MPROC_INFINITE);
    ok &= mproc_process_exitcode(workers[k], &code) && code == 0;
    if (code != 0) printf("worker %d failed (exit code %d)\n", k, code);
    mproc_process_destroy(workers[k]);
  }
  long long ran = 0;
  mproc_value_get(rounds, &ran);
  printf("the action ran %lld times for %d phases; barrier broken: %s\n", ran, PHASES,
         mproc_barrier_broken(b) ? "yes" : "no");
  ok &= ran == PHASES && !mproc_barrier_broken(b);
  mproc_value_destroy(rounds);
  mproc_value_destroy(done);
  mproc_barrier_destroy(b);
  return ok ? 0 : 1;
}
