/* The base of shared objects (shared_internal.h): a block of shared memory of its own with a header,
 * and the wait queue's handle; what every kind exports and imports of it. */
#include <stdlib.h>
#include <string.h>

#include "shared_internal.h"

int mproc__sobj_create(mproc__sobj *o, uint32_t kind, size_t size) {
  memset(o, 0, sizeof *o);
  o->shm.h = o->wq = MPROC_NO_HANDLE;
  int rc = mproc__pal_shm_anon(size, &o->shm);
  if (!rc) rc = mproc__pal_wq_handle(&o->wq);
  if (rc) {
    mproc__sobj_close(o);
    return rc;
  }
  mproc__sobj_header *h = mproc__sobj_head(o);
  h->magic = MPROC__SOBJ_MAGIC;
  h->kind = kind;
  return 0;
}

void mproc__sobj_unmap(mproc__sobj *o) {
  o->shm.h = o->wq = MPROC_NO_HANDLE; /* the handles stay the caller's */
  mproc__sobj_close(o);
}

void mproc__sobj_close(mproc__sobj *o) {
  mproc__pal_shm_close(&o->shm);
  mproc__pal_close(o->wq);
  o->wq = MPROC_NO_HANDLE;
}

int mproc__sobj_export(const mproc__sobj *o, mproc_os_handle *hs, size_t *n, mproc__buf *bytes) {
  unsigned char has_wq = o->wq != MPROC_NO_HANDLE;
  hs[(*n)++] = o->shm.h;
  if (has_wq) hs[(*n)++] = o->wq;
  return mproc__buf_append(bytes, &has_wq, 1);
}

int mproc__sobj_import(mproc__sobj *o, uint32_t kind, size_t size, const mproc_os_handle *hs, size_t nhs, size_t *used,
                       const unsigned char *bytes, size_t len, size_t *at) {
  memset(o, 0, sizeof *o);
  o->shm.h = o->wq = MPROC_NO_HANDLE;
  if (*at >= len || bytes[*at] > 1) return mproc__fail(MPROC_ESYS, "a handed shared object is malformed");
  size_t need = 1 + bytes[*at];
  if (nhs - *used < need) return mproc__fail(MPROC_ESYS, "a handed shared object lacks its handles");
  if (mproc__pal_handle_kind(hs[*used]) == MPROC__HK_INVALID)
    return mproc__fail(MPROC_ESYS, "a handed shared object's block is not an open handle");
  int rc = mproc__pal_shm_map(hs[*used], size, &o->shm);
  if (rc) return rc;
  const mproc__sobj_header *h = mproc__sobj_head(o);
  if (h->magic != MPROC__SOBJ_MAGIC || h->kind != kind) {
    mproc__sobj_unmap(o);
    return mproc__fail(MPROC_ESYS, "a handed shared object is not of the kind expected (%u)", (unsigned)kind);
  }
  if (bytes[*at]) o->wq = hs[*used + 1];
  *used += need;
  *at += 1;
  return 0;
}

/* ---- kinds that are a base and nothing else to hand on ----------------------------------------------- */

int mproc__sobj_export_view(const void *obj, mproc_os_handle *hs, size_t *n, mproc__buf *bytes) {
  *n = 0;
  return mproc__sobj_export((const mproc__sobj *)obj, hs, n, bytes); /* the base is the view's first member */
}

int mproc__sobj_import_view(uint32_t kind, size_t view, size_t layout, const void *bytes, size_t len,
                            const mproc_os_handle *hs, size_t n, void **obj) {
  mproc__sobj *o = (mproc__sobj *)calloc(1, view);
  if (!o) return mproc__fail(MPROC_ENOMEM, "out of memory");
  size_t used = 0, at = 0;
  int rc = mproc__sobj_import(o, kind, layout, hs, n, &used, (const unsigned char *)bytes, len, &at);
  if (!rc && (used != n || at != len)) {
    rc = mproc__fail(MPROC_ESYS, "a handed shared object is malformed");
    mproc__sobj_unmap(o);
  }
  if (rc) {
    free(o);
    return rc;
  }
  *obj = o;
  return 0;
}
