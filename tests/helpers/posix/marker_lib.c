/* A tiny shared library for the guard tests (tests/guard_posix.cc): loading it runs its constructor,
 * which creates the file named by MPROC_TEST_LIB_MARKER (when set). A bootstrap whose target lies in
 * this library makes a child load it, so the marker tells whether anything loaded it: a forged
 * bootstrap must never get that far. Its target, marker_lib_target, creates the file named by its
 * argument bytes. Not linked with mproc, nor built with its headers: mproc_args is repeated here, the
 * same struct (include/mproc/process.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct mproc_connection mproc_connection;
typedef struct mproc_args {
  const void *data;
  size_t size;
  mproc_connection *const *connections;
  size_t connection_count;
} mproc_args;

__attribute__((constructor)) static void marker_lib_loaded(void) {
  const char *path = getenv("MPROC_TEST_LIB_MARKER");
  if (!path || !*path) return;
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fputs("the library's constructor ran", f);
  fclose(f);
}

__attribute__((visibility("default"))) int marker_lib_target(const mproc_args *a);
int marker_lib_target(const mproc_args *a) {
  char path[4096];
  if (!a || a->size == 0 || a->size >= sizeof path) return 3;
  for (size_t i = 0; i < a->size; ++i) path[i] = ((const char *)a->data)[i];
  path[a->size] = '\0';
  FILE *f = fopen(path, "wb");
  if (!f) return 3;
  fputs("the library's target ran", f);
  fclose(f);
  return 0;
}
