/* A lock whose holder dies (beyond Python, whose Lock stays locked for ever): a child takes the lock,
 * starts a transfer between two accounts and is killed halfway. The next acquirer gets the lock with
 * MPROC_EOWNERDEAD instead of 0: the data may be half updated, so it repairs it, from an undo record
 * the holder wrote before changing anything. Then the lock is an ordinary lock again. */
#include <stdio.h>

#include "mproc.h"

typedef struct accounts {
  int a, b;  /* a + b == 100 whenever the lock is free */
  int dirty; /* a change is under way: undo_a and undo_b hold the values before it */
  int undo_a, undo_b;
} accounts;

/* The undo record, written before a change starts; the change clears dirty when it is complete. */
static void begin_change(accounts *s) {
  s->undo_a = s->a;
  s->undo_b = s->b;
  s->dirty = 1;
}

static int holder(const mproc_args *a) {
  mproc_lock *l = (mproc_lock *)a->objects[0];
  accounts *s = (accounts *)mproc_value_ptr((mproc_value *)a->objects[1]);
  mproc_event *halfway = (mproc_event *)a->objects[2], *never = (mproc_event *)a->objects[3];
  if (mproc_lock_acquire(l, MPROC_INFINITE) != 0) return 1;
  printf("holder %lld: took the lock, moving 30 from a to b...\n", (long long)mproc_getpid());
  fflush(stdout);
  begin_change(s);
  s->a -= 30;
  mproc_event_set(halfway);
  mproc_event_wait(never, 60000); /* killed here, holding the lock: b += 30 never comes */
  return 3;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_lock *l = NULL;
  mproc_value *data = NULL;
  mproc_event *halfway = NULL, *never = NULL;
  accounts initial = {100, 0, 0, 0, 0};
  if (mproc_lock_create(&l) != 0 || mproc_event_create(&halfway) != 0 || mproc_event_create(&never) != 0 ||
      mproc_shared_create(&data, &(mproc_shared_opts){.elem_size = sizeof initial, .initial = &initial, .raw = true}) !=
          0) {
    fprintf(stderr, "create: %s\n", mproc_last_error());
    return 1;
  }
  accounts *s = (accounts *)mproc_value_ptr(data);
  mproc_object objs[] = {mproc_object_lock(l), mproc_object_value(data), mproc_object_event(halfway),
                         mproc_object_event(never)};
  mproc_process *p = NULL;
  if (mproc_process_create(&p, &(mproc_process_opts){.target = holder, .objects = objs, .object_count = 4}) != 0 ||
      mproc_process_start(p) != 0 || mproc_event_wait(halfway, 30000) != 0) {
    fprintf(stderr, "holder: %s\n", mproc_last_error());
    return 1;
  }
  mproc_process_kill(p);
  mproc_process_join(p, MPROC_INFINITE);
  int code = 0;
  mproc_process_exitcode(p, &code);
  mproc_process_destroy(p);
  printf("parent: killed the holder (exit code %d); a=%d b=%d\n", code, s->a, s->b);

  int rc = mproc_lock_acquire(l, 30000);
  printf("parent: acquire -> %s\n", rc == MPROC_EOWNERDEAD ? "MPROC_EOWNERDEAD (the holder died holding it)"
                                    : rc == 0              ? "0"
                                                           : mproc_last_error());
  int ok = rc == MPROC_EOWNERDEAD;
  if (rc == MPROC_EOWNERDEAD && s->dirty) {
    printf("parent: the transfer was half done (a=%d b=%d, a+b=%d): undoing it\n", s->a, s->b, s->a + s->b);
    s->a = s->undo_a;
    s->b = s->undo_b;
    s->dirty = 0;
  }
  if (rc == 0 || rc == MPROC_EOWNERDEAD) mproc_lock_release(l);

  rc = mproc_lock_acquire(l, 30000); /* recovered: an ordinary lock again */
  printf("parent: acquire again -> %d; moving 30 from a to b\n", rc);
  ok &= rc == 0;
  if (rc == 0) {
    begin_change(s);
    s->a -= 30;
    s->b += 30;
    s->dirty = 0;
    mproc_lock_release(l);
  }
  printf("parent: a=%d b=%d\n", s->a, s->b);
  ok &= s->a == 70 && s->b == 30 && !s->dirty;
  mproc_value_destroy(data);
  mproc_event_destroy(halfway);
  mproc_event_destroy(never);
  mproc_lock_destroy(l);
  return ok ? 0 : 1;
}
