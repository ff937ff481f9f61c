/* Version, system information and process identity: thin portable wrappers over the PAL. */
#include <stdio.h>
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
  MPROC__CHECK_ARG(!path_out, "path_out is NULL");
  *path_out = NULL;
  return mproc__pal_self_exe(path_out);
}

/* ---- exit statuses (core.h): pure arithmetic on the code, the same on every platform ---------------- */

bool mproc_exit_is_crash(int code) { return code <= MPROC_EXIT_CRASH_MAX; }

int mproc_exit_signal(int code) { return code <= -1 && code >= -127 ? -code : 0; }

const char *mproc_describe_exit(int code, char *buf, size_t size) {
  if (!buf || size == 0) return "";
  /* the signals whose numbers are the same on Linux, macOS and the BSDs */
  static const struct {
    int num;
    const char *name;
  } sigs[] = {{1, "SIGHUP"}, {2, "SIGINT"},  {3, "SIGQUIT"},  {4, "SIGILL"},   {5, "SIGTRAP"},  {6, "SIGABRT"},
              {8, "SIGFPE"}, {9, "SIGKILL"}, {11, "SIGSEGV"}, {13, "SIGPIPE"}, {14, "SIGALRM"}, {15, "SIGTERM"}};
  static const struct {
    unsigned num;
    const char *name;
  } crashes[] = {
      {0xC0000005u, "STATUS_ACCESS_VIOLATION"},
      {0xC0000409u, "STATUS_STACK_BUFFER_OVERRUN: a fast fail, e.g. abort() under the UCRT"},
      {0xC00000FDu, "STATUS_STACK_OVERFLOW"},
      {0xC0000374u, "STATUS_HEAP_CORRUPTION"},
      {0xC000001Du, "STATUS_ILLEGAL_INSTRUCTION"},
      {0xC0000096u, "STATUS_PRIVILEGED_INSTRUCTION"},
      {0xC0000094u, "STATUS_INTEGER_DIVIDE_BY_ZERO"},
      {0xC0000095u, "STATUS_INTEGER_OVERFLOW"},
      {0xC000008Eu, "STATUS_FLOAT_DIVIDE_BY_ZERO"},
      {0xC0000006u, "STATUS_IN_PAGE_ERROR"},
      {0xC0000135u, "STATUS_DLL_NOT_FOUND"},
      {0xC0000139u, "STATUS_ENTRYPOINT_NOT_FOUND"},
      {0xC0000142u, "STATUS_DLL_INIT_FAILED"},
      {0xC000013Au, "STATUS_CONTROL_C_EXIT"},
      {0xC0000417u, "STATUS_INVALID_CRUNTIME_PARAMETER"},
      {0x80000003u, "STATUS_BREAKPOINT"},
      {0x80000002u, "STATUS_DATATYPE_MISALIGNMENT"},
      {0xE06D7363u, "an uncaught C++ exception"},
  };
  int sig = mproc_exit_signal(code);
  if (sig) {
    for (size_t i = 0; i < MPROC__ARRAY_LEN(sigs); ++i)
      if (sigs[i].num == sig) {
        snprintf(buf, size, "signal %d (%s)", sig, sigs[i].name);
        return buf;
      }
    snprintf(buf, size, "signal %d", sig);
  } else if (mproc_exit_is_crash(code)) {
    unsigned u = (unsigned)code;
    for (size_t i = 0; i < MPROC__ARRAY_LEN(crashes); ++i)
      if (crashes[i].num == u) {
        snprintf(buf, size, "crash 0x%08X (%s)", u, crashes[i].name);
        return buf;
      }
    snprintf(buf, size, "crash 0x%08X", u);
  } else {
    snprintf(buf, size, "exit code %d", code);
  }
  return buf;
}
