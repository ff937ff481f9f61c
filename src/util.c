/* The implementation of internal.h: error reporting (codes, names and the per-thread last-error message,
 * with the public calls of mproc/core.h that read it), growable buffers, strdup, and deadlines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pal.h"

/* The calling thread's error state lives in the PAL (native TLS on POSIX; fiber-local storage freed at
 * thread exit on Windows, so no TLS emulation library is needed there). */
#define t_msg (mproc__pal_thread_state()->msg)
#define t_oserr (mproc__pal_thread_state()->oserr)

static const char *const k_names[] = {
    "MPROC_OK: success",
    "MPROC_EINVAL: invalid argument",
    "MPROC_ENOMEM: out of memory",
    "MPROC_ESYS: operating system error",
    "MPROC_ENOENT: no such file, program or name",
    "MPROC_EPERM: permission denied",
    "MPROC_ETIMEDOUT: timed out",
    "MPROC_ECALLEDPROCESS: the program exited with a non-zero status",
    "MPROC_EEOF: end of file: the peer closed",
    "MPROC_EFULL: the queue is full",
    "MPROC_EEMPTY: the queue is empty",
    "MPROC_ECLOSED: the object is closed",
    "MPROC_ESTATE: the call does not fit the object's state",
    "MPROC_EMSGSIZE: message too long for the buffer or limit",
    "MPROC_EAUTH: authentication failed",
    "MPROC_EBROKEN: broken (barrier or pool)",
    "MPROC_ENOTOWNER: the caller does not own the lock",
    "MPROC_EOWNERDEAD: the previous owner died holding the lock",
    "MPROC_EWORKERDIED: a worker process died",
    "MPROC_ETASK: the task reported failure",
    "MPROC_ENOTSUP: not supported on this platform",
    "MPROC_EINTR: interrupted",
    "MPROC_EPIPE: broken pipe: the reader has gone",
    "MPROC_EEXIST: the name exists already",
    "MPROC_ECANCELED: cancelled before it ran",
};

const char *mproc_strerror(int code) {
  if (code > 0 || code < MPROC_ERROR_MIN_) return "unknown mproc error";
  return k_names[-code];
}

const char *mproc_last_error(void) { return t_msg; }
int mproc_last_os_error(void) { return t_oserr; }
void mproc_clear_error(void) {
  t_msg[0] = '\0';
  t_oserr = 0;
}

static void set_msg(const char *fmt, va_list ap) {
  int n = vsnprintf(t_msg, sizeof t_msg, fmt, ap);
  if (n < 0) t_msg[0] = '\0';
}

int mproc__fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_msg(fmt, ap);
  va_end(ap);
  t_oserr = 0;
  return code;
}

int mproc__fail_prefix(int code, const char *fmt, ...) {
  char why[sizeof t_msg];
  memcpy(why, t_msg, sizeof why);
  va_list ap;
  va_start(ap, fmt);
  set_msg(fmt, ap);
  va_end(ap);
  size_t used = strlen(t_msg), n = strlen(why);
  if (used + 3 < sizeof t_msg) {
    if (n > sizeof t_msg - used - 3) n = sizeof t_msg - used - 3; /* cut to fit */
    memcpy(t_msg + used, ": ", 2);
    memcpy(t_msg + used + 2, why, n);
    t_msg[used + 2 + n] = '\0';
  }
  return code; /* the OS error of the message kept, if it had one */
}

int mproc__fail_arg(const char *func, const char *fmt, ...) {
  /* "mproc_popen_create: out is NULL": the public function's name, without its prefix */
  const char *name = strncmp(func, "mproc_", 6) == 0 ? func + 6 : func;
  size_t n = strlen(name);
  if (n + 3 >= sizeof t_msg) n = 0;
  memcpy(t_msg, name, n);
  memcpy(t_msg + n, ": ", n ? 2 : 0);
  size_t at = n ? n + 2 : 0;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(t_msg + at, sizeof t_msg - at, fmt, ap);
  va_end(ap);
  if (k < 0) t_msg[at] = '\0';
  t_oserr = 0;
  return MPROC_EINVAL;
}

int mproc__vfail_os(int code, int oserr, const char *fmt, va_list ap) {
  set_msg(fmt, ap);
  size_t used = strlen(t_msg);
  if (used + 4 < sizeof t_msg) {
    char desc[256];
    mproc__pal_describe_os_error(oserr, desc, sizeof desc);
    snprintf(t_msg + used, sizeof t_msg - used, " (%s)", desc);
  }
  t_oserr = oserr;
  return code ? code : mproc__pal_map_os_error(oserr);
}

int mproc__fail_os(int code, int oserr, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = mproc__vfail_os(code, oserr, fmt, ap);
  va_end(ap);
  return rc;
}

/* ---- buffers ------------------------------------------------------------------------------- */

#define BUF_BIG ((size_t)1 << 20)
#define BUF_MAPPED ((size_t)32 << 20)
#define BUF_MAPPED_HEAD 64 /* of a mapped block, left to the C runtime's own header (glibc: 8 bytes) */

int mproc__buf_reserve(mproc__buf *b, size_t extra) {
  if (b->cap - b->len > extra) return 0; /* keeps >= 1 spare byte for a NUL */
  if (extra > SIZE_MAX / 2 - b->len) return mproc__fail(MPROC_ENOMEM, "buffer of %zu bytes too large", b->len);
  size_t want = b->len + extra + 1;
  /* A buffer that outgrows BUF_BIG is about to take a lot (a capture, a big message): it jumps to
   * BUF_MAPPED, which a C runtime allocates as a mapping of its own (glibc always mmaps from 32 MiB, its
   * largest mmap threshold), so each later doubling is an mremap, not a copy, and only the pages written
   * are ever committed; and it asks for huge pages, a fault per 2 MiB instead of per 4 KiB (200 faults
   * for a 400 MiB capture instead of 100,000). Such a block asks for a power of two less
   * BUF_MAPPED_HEAD, so that with the runtime's header the mapping is a whole number of huge pages: Linux
   * places such an anonymous mapping (and the new place of one that mremap moves) on a huge-page
   * boundary. A mapping off that boundary has huge pages only where whole ones fit, and a move of it
   * splits every huge page it had back into small ones (a 400 MiB capture: 120 splits and 4,750 faults,
   * against none and 1,200; its reader spent 15% more CPU time). */
  size_t cap = b->cap ? b->cap : 256;
  if (cap >= BUF_MAPPED - BUF_MAPPED_HEAD) cap += BUF_MAPPED_HEAD; /* a mapped block: its whole size */
  for (;;) {
    if (cap > BUF_BIG && cap < BUF_MAPPED) cap = BUF_MAPPED;
    if ((cap >= BUF_MAPPED ? cap - BUF_MAPPED_HEAD : cap) >= want) break;
    cap *= 2;
  }
  if (cap >= BUF_MAPPED) cap -= BUF_MAPPED_HEAD;
  char *p = (char *)realloc(b->data, cap);
  if (!p) return mproc__fail(MPROC_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
  if (cap >= BUF_MAPPED - BUF_MAPPED_HEAD) mproc__pal_advise_huge(p, cap);
  b->data = p;
  b->cap = cap;
  return 0;
}

int mproc__buf_grow_append(mproc__buf *b, const void *p, size_t n) {
  int rc = mproc__buf_reserve(b, n);
  if (rc) return rc;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int mproc__buf_terminate(mproc__buf *b) {
  int rc = mproc__buf_reserve(b, 0);
  if (rc) return rc;
  b->data[b->len] = '\0';
  return 0;
}

void mproc__buf_free(mproc__buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

char *mproc__strdup(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = (char *)malloc(n);
  if (!d) {
    mproc__fail(MPROC_ENOMEM, "out of memory copying a string of %zu bytes", n);
    return NULL;
  }
  memcpy(d, s, n);
  return d;
}

/* ---- deadlines ----------------------------------------------------------------------------- */

int64_t mproc__deadline_from_timeout(int64_t timeout_ms) {
  if (timeout_ms < 0) return INT64_MAX;
  int64_t now = mproc__pal_monotonic_ns();
  if (timeout_ms > (INT64_MAX - now) / 1000000) return INT64_MAX;
  return now + timeout_ms * 1000000;
}

int64_t mproc__ms_until(int64_t deadline_ns) {
  if (deadline_ns == INT64_MAX) return -1;
  int64_t left = deadline_ns - mproc__pal_monotonic_ns();
  if (left <= 0) return 0;
  return (left + 999999) / 1000000;
}
