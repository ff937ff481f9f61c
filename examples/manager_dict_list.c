/* Seed notes: the server-process way of sharing state.
 *   def f(d, l):
 *       d[1] = '1'; d['2'] = 2; d[0.25] = None
 *       l.reverse()
 *   with Manager() as manager:
 *       d = manager.dict(); l = manager.list(range(10))
 *       p = Process(target=f, args=(d, l)); p.start(); p.join()
 *       print(d)                  # {1: '1', '2': 2, 0.25: None}
 *       print(l)                  # [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
 * In C the dict and the list hold byte strings, and the child gets the manager (an object it connects
 * through) and the objects' ids (plain values, in its argument bytes). A list has no reverse(): the
 * child pops from the end and inserts at the front, which is the same thing. Then four workers count
 * to 1000 each in the dict, twice: under a managed Lock (get, set: two round trips held by the lock),
 * and with mproc_mdict_increment, which the server does in one step and needs no lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

#define WORKERS 4
#define EACH 1000

typedef struct shared {
  mproc_mdict d;
  mproc_mlist l;
  mproc_mlock lock;
} shared;

static int f(const mproc_args *a) {
  mproc_manager *m = (mproc_manager *)a->objects[0];
  const shared *s = (const shared *)a->data;
  if (mproc_mdict_set(m, s->d, "1", 1, "'1'", 3, MPROC_INFINITE) != 0 ||
      mproc_mdict_set(m, s->d, "'2'", 3, "2", 1, MPROC_INFINITE) != 0 ||
      mproc_mdict_set(m, s->d, "0.25", 4, "None", 4, MPROC_INFINITE) != 0)
    return 1;
  size_t n = 0;
  if (mproc_mlist_len(m, s->l, &n, MPROC_INFINITE) != 0) return 1;
  for (size_t i = 0; i < n; ++i) { /* reverse: take the last, put it at i */
    char *v;
    size_t len;
    if (mproc_mlist_pop(m, s->l, -1, &v, &len, MPROC_INFINITE) != 0) return 1;
    int rc = mproc_mlist_insert(m, s->l, (int64_t)i, v, len, MPROC_INFINITE);
    mproc_free(v);
    if (rc != 0) return 1;
  }
  return 0;
}

static int count(const mproc_args *a) {
  mproc_manager *m = (mproc_manager *)a->objects[0];
  const shared *s = (const shared *)a->data;
  for (int i = 0; i < EACH; ++i) {
    if (mproc_mlock_acquire(m, s->lock, MPROC_INFINITE) != 0) return 1;
    char *v;
    size_t len;
    if (mproc_mdict_get_default(m, s->d, "locked", 6, "0", 1, &v, &len, MPROC_INFINITE) != 0) return 1;
    char next[24];
    int nn = snprintf(next, sizeof next, "%lld", atoll(v) + 1);
    mproc_free(v);
    if (mproc_mdict_set(m, s->d, "locked", 6, next, (size_t)nn, MPROC_INFINITE) != 0) return 1;
    if (mproc_mlock_release(m, s->lock, MPROC_INFINITE) != 0) return 1;
    if (mproc_mdict_increment(m, s->d, "atomic", 6, 1, NULL, MPROC_INFINITE) != 0) return 1;
  }
  return 0;
}

/* Print strings as Python prints a dict (pairs: key, value, key, value, ...) or a list, and free them. */
static void print_all(mproc_bytes *b, size_t n, bool pairs) {
  printf(pairs ? "{" : "[");
  for (size_t i = 0; i < n; ++i) {
    const mproc_bytes *x = &b[pairs ? 2 * i : i];
    printf("%s%.*s", i ? ", " : "", (int)x->len, (const char *)x->data);
    if (pairs) printf(": %.*s", (int)x[1].len, (const char *)x[1].data);
  }
  printf(pairs ? "}\n" : "]\n");
  mproc_free(b);
}

/* Start `n` children running target with the manager and the ids; 0 if every one exits with 0. */
static int run(mproc_manager *m, const shared *s, mproc_target target, int n) {
  mproc_object objs[] = {mproc_object_manager(m)};
  mproc_process *ps[WORKERS];
  int ok = 1;
  for (int i = 0; i < n; ++i)
    if (mproc_process_create(
            &ps[i],
            &(mproc_process_opts){
                .target = target, .arg = s, .arg_size = sizeof *s, .objects = objs, .object_count = 1}) != 0 ||
        mproc_process_start(ps[i]) != 0) {
      fprintf(stderr, "start: %s\n", mproc_last_error());
      return 1;
    }
  for (int i = 0; i < n; ++i) {
    int code = -1;
    mproc_process_join(ps[i], MPROC_INFINITE);
    ok &= mproc_process_exitcode(ps[i], &code) && code == 0;
    mproc_process_destroy(ps[i]);
  }
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_manager *m;
  shared s;
  if (mproc_manager_start(&m, NULL) != 0 || mproc_manager_dict(m, &s.d, MPROC_INFINITE) != 0 ||
      mproc_manager_list(m, &s.l, MPROC_INFINITE) != 0 || mproc_manager_lock(m, &s.lock, MPROC_INFINITE) != 0) {
    fprintf(stderr, "manager: %s\n", mproc_last_error());
    return 1;
  }
  printf("the manager listens at %s\n", mproc_manager_address(m));
  mproc_bytes range[10];
  char digits[] = "0123456789";
  for (int i = 0; i < 10; ++i) range[i] = (mproc_bytes){digits + i, 1};
  int rc = mproc_mlist_extend(m, s.l, range, 10, MPROC_INFINITE);
  if (!rc) rc = run(m, &s, f, 1);
  mproc_bytes *b;
  size_t n;
  if (!rc && !(rc = mproc_mdict_items(m, s.d, &b, &n, MPROC_INFINITE))) print_all(b, n, true);
  if (!rc && !(rc = mproc_mlist_slice(m, s.l, 0, INT64_MAX, &b, &n, MPROC_INFINITE))) print_all(b, n, false);

  if (!rc) rc = run(m, &s, count, WORKERS);
  char *locked = NULL, *atomic = NULL;
  size_t ln, an;
  if (!rc) rc = mproc_mdict_get(m, s.d, "locked", 6, &locked, &ln, MPROC_INFINITE);
  if (!rc) rc = mproc_mdict_get(m, s.d, "atomic", 6, &atomic, &an, MPROC_INFINITE);
  if (!rc) {
    printf("%d workers x %d: under the managed lock %s, by increment %s\n", WORKERS, EACH, locked, atomic);
    rc = atoll(locked) == WORKERS * EACH && atoll(atomic) == WORKERS * EACH ? 0 : 1;
  } else {
    fprintf(stderr, "%s\n", mproc_last_error());
  }
  mproc_free(locked);
  mproc_free(atomic);
  mproc_manager_destroy(m); /* the server ends with it */
  return rc;
}
