/* Version, system information and process identity: thin portable wrappers over the PAL. */
#include <stdlib.h>

#include "internal.h"
#include "pal.h"

unsigned mproc_version(void) { return MPROC_VERSION_NUMBER; }
const char *mproc_version_string(void) { return MPROC_VERSION_STRING; }

void mproc_free(void *p) { free(p); }

int64_t mproc_monotonic_ns(void) { return mproc__pal_monotonic_ns(); }

int mproc_cpu_count(void) {
  int n = mproc__pal_cpu_count();
  return n >= 1 ? n : 1;
}

int mproc_process_cpu_count(void) {
  int total = mproc_cpu_count();
  int n = mproc__pal_process_cpu_count();
  if (n < 1) return total;
  return n < total ? n : total;
}

int64_t mproc_getpid(void) { return mproc__pal_getpid(); }
int64_t mproc_getppid(void) { return mproc__pal_getppid(); }

int mproc_self_exe(char **path_out) {
  if (!path_out) return mproc__fail(MPROC_EINVAL, "mproc_self_exe: path_out is NULL");
  *path_out = NULL;
  return mproc__pal_self_exe(path_out);
}
