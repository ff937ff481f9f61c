/* What the pool examples share: the seed tasks' time.sleep, reading an int64_t in a task and out of a
 * result, and a pool of n workers. Include it first: nanosleep needs _POSIX_C_SOURCE before any system
 * header. */
#ifndef EXAMPLES_POOL_COMMON_H
#define EXAMPLES_POOL_COMMON_H
#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
static inline void nap_ms(long ms) { Sleep((DWORD)ms); }
#else
#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <time.h>
static inline void nap_ms(long ms) { nanosleep(&(struct timespec){ms / 1000, ms % 1000 * 1000000L}, NULL); }
#endif
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mproc.h"

/* A task's input as an int64_t: 0, or the task's failure to return. */
static inline int task_input_i64(const void *in, size_t len, mproc_task *t, int64_t *x) {
  if (len != sizeof *x) return mproc_task_fail(t, "expected an int64_t, got %zu bytes", len);
  memcpy(x, in, sizeof *x);
  return 0;
}

/* Item i of a result as an int64_t; -1 if it is not there. */
static inline int64_t result_i64(mproc_async_result *r, size_t i) {
  const void *out;
  size_t len;
  int64_t y = -1;
  if (mproc_async_result_item(r, i, &out, &len) == 0 && len == sizeof y) memcpy(&y, out, sizeof y);
  return y;
}

/* Print a result's items as Python prints a list, after `what`; 1 if item i is f(i). */
static inline int print_i64_list(const char *what, mproc_async_result *r, int64_t (*f)(int64_t)) {
  int ok = 1;
  printf("%s[", what);
  for (size_t i = 0; i < mproc_async_result_count(r); ++i) {
    int64_t y = result_i64(r, i);
    printf("%s%lld", i ? ", " : "", (long long)y);
    ok &= y == f((int64_t)i);
  }
  printf("]\n");
  fflush(stdout);
  return ok;
}

/* Pool(processes=n) (0: one per CPU); NULL with the message on stderr if it fails. */
static inline mproc_pool *new_pool(size_t n) {
  mproc_pool *pool = NULL;
  if (mproc_pool_create(&pool, &(mproc_pool_opts){.processes = n}) != 0)
    fprintf(stderr, "pool: %s\n", mproc_last_error());
  return pool;
}
#endif
