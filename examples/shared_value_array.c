/* Seed notes (sharing state: Value and Array in shared memory):
 *   def f(n, a):
 *       n.value = 3.1415927
 *       for i in range(len(a)): a[i] = -a[i]
 *   num = Value('d', 0.0); arr = Array('i', range(10))
 *   p = Process(target=f, args=(num, arr)); p.start(); p.join()
 *   print(num.value); print(arr[:])      # 3.1415927 / [0, -1, -2, ..., -9]
 * In C: the child changes the very memory the parent reads. A Value is set under its lock
 * (mproc_value_set); the Array's elements are changed in place under its lock, taken once. */
#include <stdio.h>

#include "mproc.h"

#define N 10

static int f(const mproc_args *a) {
  mproc_value *num = (mproc_value *)a->objects[0], *arr = (mproc_value *)a->objects[1];
  double pi = 3.1415927;
  if (mproc_value_set(num, &pi) != 0) return 1;
  mproc_lock *l = mproc_value_lock(arr); /* arr.get_lock() */
  if (mproc_lock_acquire(l, MPROC_INFINITE) != 0) return 1;
  int *elems = (int *)mproc_value_ptr(arr); /* arr.get_obj() */
  for (size_t i = 0; i < mproc_value_length(arr); ++i) elems[i] = -elems[i];
  mproc_lock_release(l);
  return 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_value *num = NULL, *arr = NULL;
  double zero = 0.0;
  int range[N];
  for (int i = 0; i < N; ++i) range[i] = i;
  if (mproc_value_create(&num, 'd', &zero) != 0 || mproc_array_create(&arr, 'i', N, range) != 0) {
    fprintf(stderr, "create: %s\n", mproc_last_error());
    return 1;
  }
  mproc_object objs[] = {mproc_object_value(num), mproc_object_value(arr)};
  mproc_process *p = NULL;
  int code = -1;
  if (mproc_process_create(&p, &(mproc_process_opts){.target = f, .objects = objs, .object_count = 2}) != 0 ||
      mproc_process_start(p) != 0 || mproc_process_join(p, MPROC_INFINITE) != 0 || !mproc_process_exitcode(p, &code) ||
      code != 0) {
    fprintf(stderr, "child: %s (exit code %d)\n", mproc_last_error(), code);
    return 1;
  }
  mproc_process_destroy(p);

  double got = 0;
  mproc_value_get(num, &got);
  printf("%.7f\n[", got);
  int ok = got == 3.1415927;
  for (size_t i = 0; i < N; ++i) {
    int v = 0;
    mproc_array_get(arr, i, &v);
    printf("%s%d", i ? ", " : "", v);
    ok &= v == -(int)i;
  }
  printf("]\n");
  mproc_value_destroy(num);
  mproc_value_destroy(arr);
  return ok ? 0 : 1;
}
