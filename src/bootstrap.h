/* The bootstrap message: what a parent sends a child started by spawn or forkserver (the target's
 * reference, the argument bytes, names, the authkey, flags and the objects handed to it: each its type, bytes and
 * OS handles, see handable.h), and the
 * strict parser that the child's main guard runs on it (under forkserver the server does, before it
 * forks: the child is handed the parsed result, parsed once). The parser is the one place that reads these bytes
 * (fuzzed: tests/fuzz/fuzz_bootstrap.c): it never trusts a length it has not checked against the data
 * that arrived, and it turns anything malformed into MPROC_ESYS. */
#ifndef MPROC_BOOTSTRAP_H
#define MPROC_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>

#include "handable.h"
#include "internal.h"
#include "pal.h"

#define MPROC__BOOT_MAGIC 0x6D70726Fu /* "mpro" */
#define MPROC__BOOT_VERSION 5u

/* flags */
#define MPROC__BOOT_DAEMON 1u
#define MPROC__BOOT_KILL_ON_PARENT_DEATH 2u
#define MPROC__BOOT_MAIN_THREAD \
  4u /* started from the parent's main thread (mproc__pal_die_with_parent); set only with KILL_ON_PARENT_DEATH */
#define MPROC__BOOT_FLAGS_ALL 7u

/* At most this many handles go with one bootstrap (every object's together). */
#define MPROC__BOOT_MAX_HANDLES 4096

typedef struct mproc__boot {
  const void *ref; /* the target's reference (mproc__pal_fn_locate) */
  size_t ref_len;
  const void *arg; /* the argument bytes */
  size_t arg_len;
  const char *name, *ident, *parent_name; /* NUL-terminated */
  const void *authkey;                    /* the child's authkey (at most MPROC_AUTHKEY_MAX bytes) */
  size_t authkey_len;
  int64_t parent_pid;
  uint32_t flags; /* MPROC__BOOT_* */
  size_t nobjs;
  struct mproc__boot_obj {
    uint32_t type;     /* mproc__handable_type.id */
    const void *bytes; /* what the type exported */
    size_t len;
    size_t first, count; /* its handles: handles[first .. first + count) */
  } * objs;
  size_t nhandles;
  mproc_os_handle *handles; /* every object's handles in order, as the parent knows them */
} mproc__boot;

/* Append the message for b to out. 0 or MPROC_ENOMEM. */
int mproc__boot_encode(const mproc__boot *b, mproc__buf *out);

/* Parse msg[0..len) into *b. The pointers in *b point into msg (keep it) or into memory that
 * mproc__boot_free releases. Checks: magic and version, every length against the bytes that are
 * there, strings without NUL bytes, flags known, counts the message can hold, objects of a known
 * type (id not 0) with at most MPROC__HANDABLE_MAX_HANDLES handles each, handle numbers in range and
 * none twice in the message, nothing left over.
 * 0 or MPROC_ESYS (malformed; the message says what) / MPROC_ENOMEM. */
int mproc__boot_parse(const void *msg, size_t len, mproc__boot *b);
void mproc__boot_free(mproc__boot *b);

#endif
