/*
 * Internal helpers shared by the portable modules: error reporting and small utilities (src/util.c).
 * Compiler differences (not OS differences) may be handled here; OS differences belong in pal.h.
 */
#ifndef MPROC_INTERNAL_H
#define MPROC_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mproc/core.h"

#if defined(__MINGW32__)
/* built with __USE_MINGW_ANSI_STDIO=1: C99 printf (%zu, %lld) whatever the CRT */
#define MPROC__PRINTF(f, a) __attribute__((format(gnu_printf, f, a)))
#elif defined(__GNUC__) || defined(__clang__)
#define MPROC__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MPROC__PRINTF(f, a)
#endif

/* A function kept out of line: the slow path of a call whose fast path is short. */
#if defined(__GNUC__) || defined(__clang__)
#define MPROC__NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define MPROC__NOINLINE __declspec(noinline)
#else
#define MPROC__NOINLINE
#endif

/* Ask for the cache lines of [p, p + n) ahead of their use (a hint: nothing where the compiler has none). */
#if defined(__GNUC__) || defined(__clang__)
#define MPROC__PREFETCH(p, n)                                            \
  do {                                                                   \
    for (size_t mproc__at = 0; mproc__at < (size_t)(n); mproc__at += 64) \
      __builtin_prefetch((const char *)(p) + mproc__at);                 \
  } while (0)
#else
#define MPROC__PREFETCH(p, n) ((void)(p), (void)(n))
#endif

#define MPROC__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Per-thread error state (see mproc__pal_thread_state). */
typedef struct mproc__thread_state {
  char msg[1024];
  int oserr;
} mproc__thread_state;

/* Code a fork child runs between the fork and its target, and at its end (fork and forkserver starts),
 * placed together: a fork does not copy the page tables of code, so a child faults in every 64 KiB
 * window of code it runs for the first time (several microseconds each); spread over the library, the
 * child path touched four windows of mproc's code, together one. ELF toolchains group `.text.hot.*`. */
#if defined(__GNUC__) && defined(__ELF__)
#define MPROC__CHILD_PATH __attribute__((section(".text.hot.mproc_child")))
#else
#define MPROC__CHILD_PATH
#endif

/* Record `code` with a formatted message as the calling thread's last error; returns `code`, so a
 * failing path reads `return mproc__fail(MPROC_EINVAL, "popen: argv is empty");`. */
int mproc__fail(int code, const char *fmt, ...) MPROC__PRINTF(2, 3);

/* The same, keeping the thread's current message after the new one: "<formatted>: <message so far>" (a
 * caller that adds who or where to what a helper said). */
int mproc__fail_prefix(int code, const char *fmt, ...) MPROC__PRINTF(2, 3);

/* Argument checks, one macro for every public call: if `bad` holds, return MPROC_EINVAL with the message
 * "<function>: <what>" naming the calling function (its mproc_ prefix dropped), e.g.
 *   MPROC__CHECK_ARG(!out, "out is NULL");   in mproc_popen_create -> "popen_create: out is NULL" */
#define MPROC__CHECK_ARG(bad, ...)                          \
  do {                                                      \
    if (bad) return mproc__fail_arg(__func__, __VA_ARGS__); \
  } while (0)
/* The same in a helper that checks for a public call named `call` ("popen": "popen: <what>"). */
#define MPROC__CHECK_ARG_AS(call, bad, ...)               \
  do {                                                    \
    if (bad) return mproc__fail_arg((call), __VA_ARGS__); \
  } while (0)
int mproc__fail_arg(const char *func, const char *fmt, ...) MPROC__PRINTF(2, 3);

/* The same for a failed OS call: appends the OS error `oserr` (errno or GetLastError value) by name,
 * number and text, and remembers it for mproc_last_os_error(). `code` 0 means: derive the mproc
 * code from the OS error (ENOENT -> MPROC_ENOENT, EACCES -> MPROC_EPERM, ...). */
int mproc__fail_os(int code, int oserr, const char *fmt, ...) MPROC__PRINTF(3, 4);
int mproc__vfail_os(int code, int oserr, const char *fmt, va_list ap);

/* mproc__copy of w <= n <= 2w bytes (w 4 or 8): the first w and the last w, which may overlap; with w a
 * constant, each copy is one load or store. */
static inline void mproc__copy_ends(unsigned char *d, const unsigned char *s, size_t n, size_t w) {
  unsigned char a[8], b[8];
  memcpy(a, s, w);
  memcpy(b, s + n - w, w);
  memcpy(d, a, w);
  memcpy(d + n - w, b, w);
}

/* memcpy for copies that are mostly a few bytes (a pool's 8-byte items): up to 16 bytes inline, as two
 * overlapping moves, where memcpy of a length the compiler cannot see is a library call; more through
 * memcpy. */
static inline void mproc__copy(void *dst, const void *src, size_t n) {
  unsigned char *d = (unsigned char *)dst;
  const unsigned char *s = (const unsigned char *)src;
  if (n > 16) {
    memcpy(d, s, n);
  } else if (n >= 8) {
    mproc__copy_ends(d, s, n, 8);
  } else if (n >= 4) {
    mproc__copy_ends(d, s, n, 4);
  } else {
    for (size_t i = 0; i < n; ++i) d[i] = s[i];
  }
}

/* Growable byte buffer used for captured output. */
typedef struct mproc__buf {
  char *data;
  size_t len;
  size_t cap;
} mproc__buf;

/* Make room for at least `extra` more bytes (keeps one spare byte for a NUL terminator).
 * Returns 0 or MPROC_ENOMEM (with the message set). */
int mproc__buf_reserve(mproc__buf *b, size_t extra);
/* Append bytes; 0 or MPROC_ENOMEM. Inline while there is room (the messages a pool encodes field by
 * field); mproc__buf_grow_append otherwise. */
int mproc__buf_grow_append(mproc__buf *b, const void *p, size_t n);
static inline int mproc__buf_append(mproc__buf *b, const void *p, size_t n) {
  if (!b->data || n >= b->cap - b->len) return mproc__buf_grow_append(b, p, n); /* (a spare byte stays) */
  mproc__copy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}
/* NUL-terminate without counting the NUL in len. Requires a prior successful reserve/append or
 * allocates one byte. 0 or MPROC_ENOMEM. */
int mproc__buf_terminate(mproc__buf *b);
void mproc__buf_free(mproc__buf *b);

/* strdup that reports MPROC_ENOMEM through the error machinery. NULL in gives NULL out, no error. */
char *mproc__strdup(const char *s);

/* Deadline helpers on the monotonic clock. A deadline of INT64_MAX means "never". */
int64_t mproc__deadline_from_timeout(int64_t timeout_ms);
/* Milliseconds left until `deadline` (0 if passed, -1 for "never"), rounded up so a wait never
 * ends early. */
int64_t mproc__ms_until(int64_t deadline_ns);

#endif /* MPROC_INTERNAL_H */
