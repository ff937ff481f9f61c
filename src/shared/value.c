/* Value, Array, RawValue, RawArray and shared blocks of any size (mproc/shared.h): a block of shared
 * memory of its own holding a small header and the elements, plus a lock object beside it (an RLock of
 * its own, the caller's lock, or none). */
#include <stdlib.h>
#include <string.h>

#include "mproc/shared.h"
#include "shared_internal.h"

typedef struct value_shared {
  mproc__sobj_header head;
  uint32_t typecode;
  uint32_t scalar;   /* a Value (not an Array) */
  uint64_t elem;     /* bytes per element */
  uint64_t length;   /* elements */
  uint64_t data_off; /* where they start */
} value_shared;

struct mproc_value {
  mproc__sobj o;
  mproc_lock *lock; /* NULL: raw */
  bool own_lock;
  unsigned char *data;
  size_t length, elem;
  char typecode;
  bool scalar;
};

static const value_shared *vs(const mproc_value *v) { return (const value_shared *)v->o.shm.base; }

/* The size and alignment of a typecode's element, 0 for an unknown one. */
static size_t type_size(char tc) {
  switch (tc) {
    case 'c':
    case 'b':
    case 'B':
      return 1;
    case 'h':
    case 'H':
      return sizeof(short);
    case 'i':
    case 'I':
      return sizeof(int);
    case 'l':
    case 'L':
      return sizeof(long);
    case 'q':
    case 'Q':
      return sizeof(long long);
    case 'f':
      return sizeof(float);
    case 'd':
      return sizeof(double);
    default:
      return 0;
  }
}

int mproc_shared_create(mproc_value **out, const mproc_shared_opts *o) {
  MPROC__CHECK_ARG(!out || !o, "out and opts must be set");
  *out = NULL;
  size_t elem = o->typecode ? type_size(o->typecode) : o->elem_size;
  size_t align = o->typecode ? elem : o->align ? o->align : 16;
  MPROC__CHECK_ARG(o->typecode && !elem, "typecode '%c' is none of c b B h H i I l L q Q f d", o->typecode);
  MPROC__CHECK_ARG(!elem, "elem_size is 0");
  MPROC__CHECK_ARG(align > 4096 || (align & (align - 1)), "align %zu is not a power of two up to 4096", align);
  MPROC__CHECK_ARG(o->raw && o->lock, "a raw value has no lock");
  size_t n = o->length ? o->length : 1;
  size_t off = (sizeof(value_shared) + align - 1) / align * align;
  MPROC__CHECK_ARG(n > ((size_t)PTRDIFF_MAX - off) / elem, "%zu elements of %zu bytes do not fit", n, elem);
  mproc_value *v = (mproc_value *)calloc(1, sizeof *v);
  if (!v) return mproc__fail(MPROC_ENOMEM, "shared_create: out of memory");
  int rc = mproc__sobj_create(&v->o, MPROC_OBJECT_VALUE, off + n * elem);
  if (!rc && !o->raw && !o->lock) {
    rc = mproc_rlock_create(&v->lock);
    v->own_lock = true;
  } else {
    v->lock = o->lock;
  }
  if (rc) {
    mproc__sobj_close(&v->o);
    free(v);
    return rc;
  }
  value_shared *s = (value_shared *)v->o.shm.base;
  s->typecode = (unsigned char)o->typecode;
  s->scalar = o->length == 0;
  s->elem = elem;
  s->length = n;
  s->data_off = off;
  v->data = (unsigned char *)v->o.shm.base + off;
  v->length = n;
  v->elem = elem;
  v->typecode = o->typecode;
  v->scalar = o->length == 0;
  if (o->initial) memcpy(v->data, o->initial, n * elem);
  *out = v;
  return 0;
}

int mproc_value_create(mproc_value **out, char typecode, const void *initial) {
  mproc_shared_opts o = {typecode, 0, 0, 0, initial, NULL, false};
  MPROC__CHECK_ARG(!typecode, "typecode is 0");
  return mproc_shared_create(out, &o);
}

int mproc_array_create(mproc_value **out, char typecode, size_t n, const void *initial) {
  mproc_shared_opts o = {typecode, 0, 0, n, initial, NULL, false};
  MPROC__CHECK_ARG(!typecode || n == 0, "an array needs a typecode and at least one element");
  return mproc_shared_create(out, &o);
}

/* Copy element i out (to_shared false) or in, under the lock if there is one. */
static int copy_elem(mproc_value *v, size_t i, void *mine, bool to_shared, const char *call) {
  MPROC__CHECK_ARG_AS(call, !v || !mine, "value and buffer must be set");
  MPROC__CHECK_ARG_AS(call, i >= v->length, "index %zu is out of range (%zu elements)", i, v->length);
  int rc = v->lock ? mproc_lock_acquire(v->lock, MPROC_INFINITE) : 0;
  if (rc && rc != MPROC_EOWNERDEAD) return rc;
  unsigned char *p = v->data + i * v->elem;
  if (to_shared)
    memcpy(p, mine, v->elem);
  else
    memcpy(mine, p, v->elem);
  if (v->lock) mproc_lock_release(v->lock);
  return rc;
}

int mproc_value_get(mproc_value *v, void *out) { return copy_elem(v, 0, out, false, "value_get"); }
int mproc_value_set(mproc_value *v, const void *in) { return copy_elem(v, 0, (void *)in, true, "value_set"); }
int mproc_array_get(mproc_value *v, size_t i, void *out) { return copy_elem(v, i, out, false, "array_get"); }
int mproc_array_set(mproc_value *v, size_t i, const void *in) { return copy_elem(v, i, (void *)in, true, "array_set"); }

/* An integer typecode of 4 or 8 bytes: its size and whether it is signed; 0 otherwise. */
static size_t atomic_size(const mproc_value *v, bool *is_signed) {
  char tc = v->typecode;
  *is_signed = tc == 'i' || tc == 'l' || tc == 'q';
  bool integer = *is_signed || tc == 'I' || tc == 'L' || tc == 'Q';
  return integer && (v->elem == 4 || v->elem == 8) ? v->elem : 0;
}

int mproc_value_fetch_add(mproc_value *v, int64_t delta, int64_t *old) {
  MPROC__CHECK_ARG(!v || !old, "value and old must be set");
  bool sgn;
  size_t sz = atomic_size(v, &sgn);
  MPROC__CHECK_ARG(!sz, "typecode '%c' is not an integer of 4 or 8 bytes", v->typecode ? v->typecode : '0');
  if (sz == 4) {
    uint32_t was = mproc__atomic_add32((volatile uint32_t *)(void *)v->data, (uint32_t)delta);
    *old = sgn ? (int64_t)(int32_t)was : (int64_t)was;
  } else {
    *old = (int64_t)mproc__atomic_add64((volatile uint64_t *)(void *)v->data, (uint64_t)delta);
  }
  return 0;
}

int mproc_value_compare_exchange(mproc_value *v, int64_t *expected, int64_t desired) {
  MPROC__CHECK_ARG(!v || !expected, "value and expected must be set");
  bool sgn;
  size_t sz = atomic_size(v, &sgn);
  MPROC__CHECK_ARG(!sz, "typecode '%c' is not an integer of 4 or 8 bytes", v->typecode ? v->typecode : '0');
  bool ok;
  if (sz == 4) {
    uint32_t e = (uint32_t)*expected;
    ok = mproc__atomic_cas32((volatile uint32_t *)(void *)v->data, &e, (uint32_t)desired);
    *expected = sgn ? (int64_t)(int32_t)e : (int64_t)e;
  } else {
    uint64_t e = (uint64_t)*expected;
    ok = mproc__atomic_cas64((volatile uint64_t *)(void *)v->data, &e, (uint64_t)desired);
    *expected = (int64_t)e;
  }
  return ok ? 0 : MPROC_ESTATE;
}

void *mproc_value_ptr(mproc_value *v) { return v ? v->data : NULL; }
size_t mproc_value_length(const mproc_value *v) { return v ? v->length : 0; }
char mproc_value_typecode(const mproc_value *v) { return v ? v->typecode : 0; }
size_t mproc_value_elem_size(const mproc_value *v) { return v ? v->elem : 0; }
mproc_lock *mproc_value_lock(mproc_value *v) { return v ? v->lock : NULL; }

void mproc_value_destroy(mproc_value *v) {
  if (!v) return;
  if (v->own_lock) mproc_lock_destroy(v->lock);
  mproc__sobj_close(&v->o);
  free(v);
}

/* ---- handing it on: the block, and its lock if it has one ---------------------------------------------- */

static int value_export(const void *obj, mproc_os_handle *hs, size_t *n, mproc__buf *bytes) {
  const mproc_value *v = (const mproc_value *)obj;
  *n = 0;
  int rc = mproc__sobj_export(&v->o, hs, n, bytes);
  return rc || !v->lock ? rc : mproc__sobj_export(&v->lock->o, hs, n, bytes);
}

static int value_import(const void *bytes, size_t len, const mproc_os_handle *hs, size_t n, void **obj) {
  mproc_value *v = (mproc_value *)calloc(1, sizeof *v);
  if (!v) return mproc__fail(MPROC_ENOMEM, "out of memory");
  size_t used = 0, at = 0;
  const unsigned char *b = (const unsigned char *)bytes;
  int rc = mproc__sobj_import(&v->o, MPROC_OBJECT_VALUE, sizeof(value_shared), hs, n, &used, b, len, &at);
  if (rc) {
    free(v);
    return rc;
  }
  const value_shared *s = vs(v);
  size_t elem = (size_t)s->elem, length = (size_t)s->length, off = (size_t)s->data_off;
  if (elem == 0 || length == 0 || off < sizeof(value_shared) || off > v->o.shm.size ||
      length > (v->o.shm.size - off) / elem || (s->typecode && type_size((char)s->typecode) != elem))
    rc = mproc__fail(MPROC_ESYS, "a handed value is malformed");
  if (!rc && at < len) {
    v->lock = (mproc_lock *)calloc(1, sizeof *v->lock);
    rc = v->lock
             ? mproc__sobj_import(&v->lock->o, MPROC_OBJECT_LOCK, sizeof(mproc__sobj_header), hs, n, &used, b, len, &at)
             : mproc__fail(MPROC_ENOMEM, "out of memory");
    if (rc) {
      free(v->lock);
      v->lock = NULL;
    }
    v->own_lock = v->lock != NULL;
  }
  if (!rc && (used != n || at != len)) rc = mproc__fail(MPROC_ESYS, "a handed value is malformed");
  if (rc) { /* the handles stay the caller's */
    if (v->lock) {
      mproc__sobj_unmap(&v->lock->o);
      free(v->lock);
    }
    mproc__sobj_unmap(&v->o);
    free(v);
    return rc;
  }
  v->data = (unsigned char *)v->o.shm.base + off;
  v->length = length;
  v->elem = elem;
  v->typecode = (char)s->typecode;
  v->scalar = s->scalar != 0;
  *obj = v;
  return 0;
}

const mproc__handable_type mproc__value_handable = {MPROC_OBJECT_VALUE, "value", value_export, value_import};
