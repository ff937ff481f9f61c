/* Seed notes: a ticket office (multiprocessing.Lock); the stock was a JSON file, {"count": 6}.
 *   def search(): print('%s tickets left' % stock_info['count'])
 *   def get():    if count > 0: count -= 1; print('%s bought one' % os.getpid())
 *                 else: print('%s: sold out' % os.getpid())
 *   def run(l): search(); l.acquire(); get(); l.release()
 *   l = Lock(); for i in range(10): Process(target=run, args=(l,)).start()
 * In C: the stock lives in a block of shared memory of our own (a RawValue of a struct, no lock of
 * its own), and the Lock handed to every buyer guards it. The buyers wait for the office to open (an
 * Event), so they all rush at once. Six tickets, ten buyers: exactly six buy. */
#include <stdio.h>

#include "mproc.h"

#define TICKETS 6
#define BUYERS 10

typedef struct stock {
  int tickets; /* left */
  int sold;
} stock;

static int buyer(const mproc_args *a) {
  mproc_lock *l = (mproc_lock *)a->objects[0];
  stock *s = (stock *)mproc_value_ptr((mproc_value *)a->objects[1]);
  long long pid = (long long)mproc_getpid();
  if (mproc_event_wait((mproc_event *)a->objects[2], 30000) != 0) return 2; /* the office opens */

  /* search(): in C even a read of what another process writes takes the lock */
  if (mproc_lock_acquire(l, MPROC_INFINITE) != 0) return 2;
  printf("%lld: tickets left: %d\n", pid, s->tickets);
  fflush(stdout);
  mproc_lock_release(l);

  /* get(): check and take a ticket in one step, under the lock */
  if (mproc_lock_acquire(l, MPROC_INFINITE) != 0) return 2;
  int bought = s->tickets > 0;
  if (bought) {
    s->tickets--;
    s->sold++;
  }
  printf("%lld: %s\n", pid, bought ? "bought a ticket" : "sold out");
  fflush(stdout);
  mproc_lock_release(l);
  return 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_lock *lock = NULL;
  mproc_value *office = NULL;
  mproc_event *opening = NULL;
  stock initial = {TICKETS, 0};
  if (mproc_lock_create(&lock) != 0 || mproc_event_create(&opening) != 0 ||
      mproc_shared_create(&office,
                          &(mproc_shared_opts){.elem_size = sizeof(stock), .initial = &initial, .raw = true}) != 0) {
    fprintf(stderr, "create: %s\n", mproc_last_error());
    return 1;
  }
  mproc_object objs[] = {mproc_object_lock(lock), mproc_object_value(office), mproc_object_event(opening)};
  mproc_process *buyers[BUYERS];
  for (int i = 0; i < BUYERS; ++i) {
    if (mproc_process_create(&buyers[i], &(mproc_process_opts){.target = buyer, .objects = objs, .object_count = 3}) !=
            0 ||
        mproc_process_start(buyers[i]) != 0) {
      fprintf(stderr, "start: %s\n", mproc_last_error());
      return 1;
    }
  }
  mproc_event_set(opening); /* all the buyers at once */
  int ok = 1;
  for (int i = 0; i < BUYERS; ++i) {
    int code = -1;
    mproc_process_join(buyers[i], MPROC_INFINITE);
    mproc_process_exitcode(buyers[i], &code);
    ok &= code == 0;
    mproc_process_destroy(buyers[i]);
  }
  const stock *s = (const stock *)mproc_value_ptr(office);
  printf("sold %d of %d tickets to %d buyers, %d left\n", s->sold, TICKETS, BUYERS, s->tickets);
  ok &= s->sold == TICKETS && s->tickets == 0;
  mproc_value_destroy(office);
  mproc_event_destroy(opening);
  mproc_lock_destroy(lock);
  return ok ? 0 : 1;
}
