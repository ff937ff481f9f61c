/*
 * mproc/shared.h: state shared between processes.
 * Python counterparts: multiprocessing.Value, Array, RawValue, RawArray (sharedctypes), and
 * multiprocessing.shared_memory.SharedMemory.
 *
 *   mproc_value *counter;
 *   mproc_value_create(&counter, 'i', NULL);              // Value('i', 0), with its own RLock
 *   int64_t old;
 *   mproc_value_fetch_add(counter, 1, &old);              // atomic, no lock needed
 *
 *   mproc_value *arr;
 *   double init[3] = {1, 2, 3};
 *   mproc_array_create(&arr, 'd', 3, init);               // Array('d', [1, 2, 3])
 *   double *d = mproc_value_ptr(arr);                     // the shared elements themselves
 *
 * A Value or Array is a block of shared memory of its own, zeroed when created, handed to children
 * (mproc_object_value) or sent to a running process like the sync objects. Elements are the C types of
 * Python's array module:
 *   'c' char   'b' signed char   'B' unsigned char   'h' short   'H' unsigned short   'i' int
 *   'I' unsigned int   'l' long   'L' unsigned long   'q' long long   'Q' unsigned long long
 *   'f' float   'd' double
 * 'l' and 'L' are C's long: 64-bit on Linux and macOS (LP64), 32-bit on Windows (LLP64), so a program
 * that shares them between platforms' builds should use 'q'. Beyond Python: a block of any size and
 * alignment for a struct of your own (mproc_shared_create with typecode 0), and atomic fetch-add and
 * compare-and-swap on integer Values.
 *
 * Every call that takes the lock (get, set) returns MPROC_EOWNERDEAD like mproc_lock_acquire when a
 * holder died holding it (the value is then still read or written).
 */
#ifndef MPROC_SHARED_H
#define MPROC_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/core.h"
#include "mproc/mproc_export.h"
#include "mproc/object.h"
#include "mproc/sync.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_value mproc_value;

/* What mproc_shared_create makes. */
typedef struct mproc_shared_opts {
  /* One of the typecodes above; or 0 for raw bytes: then elem_size is the size of one element (a struct
   * of yours) and align its alignment (a power of two up to 4096; 0 means 16). */
  char typecode;
  size_t elem_size, align;
  /* 0: a single Value; n >= 1: an Array of n elements (Array('i', 1) is an Array, not a Value). */
  size_t length;
  /* The initial contents (one element, or length elements), or NULL: zeroed. */
  const void *initial;
  /* The lock: NULL makes a new RLock (Python's lock=True); `lock` uses that Lock or RLock (it must outlive
   * the value in this process); raw true makes a RawValue / RawArray without one (lock must be NULL). */
  mproc_lock *lock;
  bool raw;
} mproc_shared_opts;

/* Value(typecode, initial) with its own RLock; initial points to one element or is NULL (zero). */
MPROC_API int mproc_value_create(mproc_value **out, char typecode, const void *initial);
/* Array(typecode, n or initial values) with its own RLock; initial points to n elements or is NULL. */
MPROC_API int mproc_array_create(mproc_value **out, char typecode, size_t n, const void *initial);
/* Any of them, RawValue and RawArray included. Errors: MPROC_EINVAL (an unknown typecode, a bad size or
 * alignment, raw with a lock, NULL out/opts), MPROC_ENOMEM, MPROC_ESYS. */
MPROC_API int mproc_shared_create(mproc_value **out, const mproc_shared_opts *opts);

/* Value.value and Array[i] under the lock (a raw one: without): copy one element out or in. An Array's
 * get / set through mproc_array_get / _set; index out of range: MPROC_EINVAL. */
MPROC_API int mproc_value_get(mproc_value *v, void *out);
MPROC_API int mproc_value_set(mproc_value *v, const void *in);
MPROC_API int mproc_array_get(mproc_value *v, size_t i, void *out);
MPROC_API int mproc_array_set(mproc_value *v, size_t i, const void *in);
/* Beyond Python, on integer typecodes of 4 or 8 bytes (i I l L q Q), without the lock (atomic): add
 * delta and give the old value; or set *expected's value to desired if it is there (0), else
 * MPROC_ESTATE with *expected the value found. MPROC_EINVAL for other typecodes. */
MPROC_API int mproc_value_fetch_add(mproc_value *v, int64_t delta, int64_t *old);
MPROC_API int mproc_value_compare_exchange(mproc_value *v, int64_t *expected, int64_t desired);

/* The shared elements themselves (get_obj(): read and write them under mproc_value_lock yourself). */
MPROC_API void *mproc_value_ptr(mproc_value *v);
/* len(): elements (1 for a Value); the typecode (0 for raw bytes); an element's size. */
MPROC_API size_t mproc_value_length(const mproc_value *v);
MPROC_API char mproc_value_typecode(const mproc_value *v);
MPROC_API size_t mproc_value_elem_size(const mproc_value *v);
/* get_lock(): its lock, or NULL for a RawValue / RawArray. Owned by the value. */
MPROC_API mproc_lock *mproc_value_lock(mproc_value *v);
MPROC_API void mproc_value_destroy(mproc_value *v);
static inline mproc_object mproc_object_value(mproc_value *v) { return mproc_object_make(MPROC_OBJECT_VALUE, v); }

/* ---- SharedMemory ---------------------------------------------------------------------------------- */

typedef struct mproc_shared_memory mproc_shared_memory;

/* The longest name: 30 characters of [A-Za-z0-9_.-], not starting with '.', so that one rule works on
 * every system (macOS allows 31 bytes with its leading '/'). Generated names follow it ("mp-" and
 * random hex). */
#define MPROC_SHM_NAME_MAX 30

/* SharedMemory(name, create=True, size): a new named block of size (> 0) bytes, zeroed, readable and
 * writable by this user alone (mode 0600 / a user-only DACL). name NULL: a generated one.
 * track: remove the name if this process ends without unlinking it, killed included (POSIX: a small
 * tracker process forked on first use holds a pipe from this process and unlinks what was left when the
 * pipe closes; Windows: nothing to do, see below). Errors: MPROC_EINVAL (a name against the rule, size
 * 0), MPROC_EEXIST (the name exists), MPROC_EPERM, MPROC_ENOMEM, MPROC_ESYS. */
MPROC_API int mproc_shared_memory_create(mproc_shared_memory **out, const char *name, size_t size, bool track);
/* SharedMemory(name): attach to an existing block by name, from any process of this user. Its size is
 * the creator's (Windows rounds a mapping to pages; mproc stores the exact size). MPROC_ENOENT if there
 * is none. */
MPROC_API int mproc_shared_memory_attach(mproc_shared_memory **out, const char *name);
MPROC_API void *mproc_shared_memory_buf(mproc_shared_memory *m);
MPROC_API size_t mproc_shared_memory_size(const mproc_shared_memory *m);
MPROC_API const char *mproc_shared_memory_name(const mproc_shared_memory *m);
/* unlink(): remove the name (the block lives on while any process has it mapped). Lifetimes differ:
 * on POSIX a block and its name live until unlink (or the tracker), even with no process attached; on
 * Windows a block dies with its last handle, and unlink only forgets the tracking. */
MPROC_API int mproc_shared_memory_unlink(mproc_shared_memory *m);
/* close() + free: unmap this process's view. NULL is ignored. */
MPROC_API void mproc_shared_memory_destroy(mproc_shared_memory *m);
static inline mproc_object mproc_object_shared_memory(mproc_shared_memory *m) {
  return mproc_object_make(MPROC_OBJECT_SHARED_MEMORY, m);
}

#ifdef __cplusplus
}
#endif

#endif /* MPROC_SHARED_H */
