/* The bootstrap message (see bootstrap.h). Layout, integers as 8 bytes little-endian:
 *   magic << 32 | version
 *   bytes ref | bytes arg | bytes name | bytes ident | bytes parent_name      (bytes: u64 length, data)
 *   u64 parent_pid | u64 flags | u64 nconns | nconns x (u64 rd, u64 wr, u64 bulk)
 * A handle is its number, or all ones for none. */
#include "bootstrap.h"

#include <stdlib.h>
#include <string.h>

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
  if (!rc) rc = put_u64(out, (uint64_t)b->parent_pid);
  if (!rc) rc = put_u64(out, b->flags);
  if (!rc) rc = put_u64(out, b->nconns);
  for (size_t i = 0; i < b->nconns && !rc; ++i) {
    rc = put_u64(out, handle_word(b->conns[i].rd));
    if (!rc) rc = put_u64(out, handle_word(b->conns[i].wr));
    if (!rc) rc = put_u64(out, handle_word(b->conns[i].bulk));
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
  uint64_t v = mproc__wire_get_u64(r, "a connection's handles");
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
  free(b->conns);
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
  b->parent_pid = (int64_t)mproc__wire_get_u64(&r, "the parent's pid");
  uint64_t flags = mproc__wire_get_u64(&r, "the flags");
  if (!r.bad && (flags & ~(uint64_t)MPROC__BOOT_FLAGS_ALL)) r.bad = "unknown flags";
  b->flags = (uint32_t)flags;
  uint64_t n = mproc__wire_get_u64(&r, "the connection count");
  if (!r.bad && n > mproc__wire_left(&r) / 24) r.bad = "the connection count";
  if (!r.bad && n) {
    b->conns = (mproc__conn_end *)malloc((size_t)n * sizeof *b->conns);
    if (!b->conns) r.bad = "out of memory";
  }
  for (size_t i = 0; i < n && !r.bad; ++i) {
    mproc__conn_end e;
    e.rd = get_handle(&r);
    e.wr = get_handle(&r);
    e.bulk = get_handle(&r);
    if (!r.bad && e.rd == MPROC_NO_HANDLE && e.wr == MPROC_NO_HANDLE) r.bad = "a connection without handles";
    /* an end may use one handle for more than one role (a link: rd == wr); two ends never share one */
    mproc_os_handle mine[3] = {e.rd, e.wr, e.bulk};
    for (int k = 0; k < 3 && !r.bad; ++k) {
      if (mine[k] == MPROC_NO_HANDLE) continue;
      for (size_t m = 0; m < i && !r.bad; ++m) {
        const mproc__conn_end *o = &b->conns[m];
        if (mine[k] == o->rd || mine[k] == o->wr || mine[k] == o->bulk) r.bad = "a handle in two connections";
      }
    }
    if (!r.bad) b->conns[i] = e;
  }
  b->nconns = (size_t)n;
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
