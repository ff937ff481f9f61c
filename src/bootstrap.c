/* The bootstrap message (see bootstrap.h). Layout, integers as 8 bytes little-endian:
 *   magic << 32 | version
 *   bytes ref | bytes arg | bytes name | bytes ident | bytes parent_name | bytes authkey
 *                                                                         (bytes: u64 length, data)
 *   u64 parent_pid | u64 flags | u64 nconns | nconns x (u64 rd, u64 wr, u64 bulk)
 * A handle is its number, or all ones for none. */
#include "bootstrap.h"

#include <stdlib.h>
#include <string.h>

#include "mproc/process.h" /* MPROC_AUTHKEY_MAX */
#include "wire.h"

#define NONE UINT64_MAX

static int put_u64(mproc__buf *b, uint64_t v) {
  unsigned char x[8];
  mproc__wire_put_le64(x, v);
  return mproc__buf_append(b, x, 8);
}

static int put_bytes(mproc__buf *b, const void *p, size_t n) {
  int rc = put_u64(b, n);
  return rc || !n ? rc : mproc__buf_append(b, p, n);
}

static int put_str(mproc__buf *b, const char *s) { return put_bytes(b, s ? s : "", s ? strlen(s) : 0); }

static uint64_t handle_word(mproc_os_handle h) { return h == MPROC_NO_HANDLE ? NONE : (uint64_t)h; }

int mproc__boot_encode(const mproc__boot *b, mproc__buf *out) {
  int rc = put_u64(out, ((uint64_t)MPROC__BOOT_MAGIC << 32) | MPROC__BOOT_VERSION);
  if (!rc) rc = put_bytes(out, b->ref, b->ref_len);
  if (!rc) rc = put_bytes(out, b->arg, b->arg_len);
  if (!rc) rc = put_str(out, b->name);
  if (!rc) rc = put_str(out, b->ident);
  if (!rc) rc = put_str(out, b->parent_name);
  if (!rc) rc = put_bytes(out, b->authkey, b->authkey_len);
  if (!rc) rc = put_u64(out, (uint64_t)b->parent_pid);
  if (!rc) rc = put_u64(out, b->flags);
  if (!rc) rc = put_u64(out, b->nobjs);
  for (size_t i = 0; i < b->nobjs && !rc; ++i) {
    const struct mproc__boot_obj *o = &b->objs[i];
    rc = put_u64(out, o->type);
    if (!rc) rc = put_bytes(out, o->bytes, o->len);
    if (!rc) rc = put_u64(out, o->count);
    for (size_t k = 0; k < o->count && !rc; ++k) rc = put_u64(out, handle_word(b->handles[o->first + k]));
  }
  return rc;
}

/* ---- parsing --------------------------------------------------------------------------------- */

/* A string: its bytes hold no NUL; the copy is NUL-terminated. */
static char *get_str(mproc__wire_reader *r, const char *what) {
  size_t n;
  const char *p = (const char *)mproc__wire_get_bytes(r, &n, what);
  if (r->bad) return NULL;
  if (n && memchr(p, '\0', n)) {
    r->bad = what;
    return NULL;
  }
  char *s = (char *)malloc(n + 1);
  if (!s) {
    r->bad = "out of memory";
    return NULL;
  }
  if (n) memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

static mproc_os_handle get_handle(mproc__wire_reader *r) {
  uint64_t v = mproc__wire_get_u64(r, "an object's handles");
  if (r->bad || v == NONE) return MPROC_NO_HANDLE;
  if (v > mproc__pal_handle_max()) {
    r->bad = "a handle number out of range";
    return MPROC_NO_HANDLE;
  }
  return (mproc_os_handle)v;
}

void mproc__boot_free(mproc__boot *b) {
  free((void *)b->name);
  free((void *)b->ident);
  free((void *)b->parent_name);
  free(b->objs);
  free(b->handles);
  memset(b, 0, sizeof *b);
}

int mproc__boot_parse(const void *msg, size_t len, mproc__boot *b) {
  memset(b, 0, sizeof *b);
  mproc__wire_reader r = mproc__wire_reader_make(msg, len);
  if (mproc__wire_get_u64(&r, "the header") != (((uint64_t)MPROC__BOOT_MAGIC << 32) | MPROC__BOOT_VERSION) && !r.bad)
    r.bad = "the header (not an mproc bootstrap of this version)";
  b->ref = mproc__wire_get_bytes(&r, &b->ref_len, "the target reference");
  b->arg = mproc__wire_get_bytes(&r, &b->arg_len, "the argument");
  b->name = get_str(&r, "the name");
  b->ident = get_str(&r, "the ident");
  b->parent_name = get_str(&r, "the parent's name");
  b->authkey = mproc__wire_get_bytes(&r, &b->authkey_len, "the authkey");
  if (!r.bad && b->authkey_len > MPROC_AUTHKEY_MAX) r.bad = "the authkey is longer than MPROC_AUTHKEY_MAX";
  b->parent_pid = (int64_t)mproc__wire_get_u64(&r, "the parent's pid");
  uint64_t flags = mproc__wire_get_u64(&r, "the flags");
  if (!r.bad && (flags & ~(uint64_t)MPROC__BOOT_FLAGS_ALL)) r.bad = "unknown flags";
  b->flags = (uint32_t)flags;
  /* each object takes at least 24 bytes (type, bytes' length, handle count): a count the rest of the
   * message cannot hold is refused before anything is allocated for it */
  uint64_t n = mproc__wire_get_u64(&r, "the object count");
  if (!r.bad && n > mproc__wire_left(&r) / 24) r.bad = "the object count";
  size_t left = mproc__wire_left(&r);
  if (!r.bad && n) {
    b->objs = (struct mproc__boot_obj *)calloc((size_t)n, sizeof *b->objs);
    size_t cap = left / 8 + 1 < MPROC__BOOT_MAX_HANDLES ? left / 8 + 1 : MPROC__BOOT_MAX_HANDLES;
    b->handles = (mproc_os_handle *)malloc(cap * sizeof *b->handles); /* at most one per 8 bytes */
    if (!b->objs || !b->handles) r.bad = "out of memory";
  }
  for (size_t i = 0; i < n && !r.bad; ++i) {
    struct mproc__boot_obj *o = &b->objs[i];
    uint64_t type = mproc__wire_get_u64(&r, "an object's type");
    if (!r.bad && (type == 0 || type > UINT32_MAX)) r.bad = "an object's type";
    o->type = (uint32_t)type;
    o->bytes = mproc__wire_get_bytes(&r, &o->len, "an object's bytes");
    uint64_t count = mproc__wire_get_u64(&r, "an object's handle count");
    if (!r.bad && count > MPROC__HANDABLE_MAX_HANDLES) r.bad = "an object's handle count";
    o->first = b->nhandles;
    o->count = (size_t)count;
    for (size_t k = 0; k < o->count && !r.bad; ++k) {
      mproc_os_handle h = get_handle(&r);
      if (!r.bad && h == MPROC_NO_HANDLE) r.bad = "an object's handle is none";
      if (!r.bad && b->nhandles >= MPROC__BOOT_MAX_HANDLES) r.bad = "too many handles";
      for (size_t m = 0; m < b->nhandles && !r.bad; ++m)
        if (b->handles[m] == h) r.bad = "a handle twice";
      if (!r.bad) b->handles[b->nhandles++] = h;
    }
  }
  b->nobjs = (size_t)n;
  if (!r.bad && mproc__wire_left(&r) != 0) r.bad = "bytes after the end";
  if (r.bad) {
    bool oom = strcmp(r.bad, "out of memory") == 0;
    int rc = oom ? mproc__fail(MPROC_ENOMEM, "bootstrap: out of memory")
                 : mproc__fail(MPROC_ESYS, "the bootstrap message is malformed: %s", r.bad);
    mproc__boot_free(b);
    return rc;
  }
  return 0;
}
