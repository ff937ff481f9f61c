/* SharedMemory (mproc/shared.h): named blocks, the portable name rule, and tracking of names a creator
 * leaves behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc/shared.h"
#include "shared_internal.h"

struct mproc_shared_memory {
  mproc__shm shm;
  char name[MPROC_SHM_NAME_MAX + 1];
  bool tracked;
};

static bool name_ok(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > MPROC_SHM_NAME_MAX || name[0] == '.') return false;
  for (size_t i = 0; i < n; ++i) {
    char ch = name[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '.' || ch == '-';
    if (!ok) return false;
  }
  return true;
}

static uint32_t g_serial;

/* "mp-" and 24 hex digits from the process, a serial and the clock: unique, and retried on a clash. */
static void generate(char *buf, size_t cap, unsigned attempt) {
  uint64_t t = (uint64_t)mproc__pal_monotonic_ns();
  uint64_t id = mproc__pal_self_id();
  uint32_t n = mproc__atomic_add32(&g_serial, 1);
  uint64_t mix = (t * 0x9E3779B97F4A7C15ull) ^ (id * 0xC2B2AE3D27D4EB4Full) ^ ((uint64_t)n << 20) ^ attempt;
  snprintf(buf, cap, "mp-%08x%016llx", (unsigned)(id >> 32), (unsigned long long)mix);
}

static int make(mproc_shared_memory **out, const char *name, size_t size, bool create, bool track, const char *call) {
  MPROC__CHECK_ARG_AS(call, !out, "out is NULL");
  *out = NULL;
  MPROC__CHECK_ARG_AS(call, name && !name_ok(name),
                      "name '%s' breaks the rule: 1 to %d characters of A-Z a-z 0-9 _ . -, not starting with '.'", name,
                      MPROC_SHM_NAME_MAX);
  MPROC__CHECK_ARG_AS(call, create && size == 0, "size is 0");
  mproc_shared_memory *m = (mproc_shared_memory *)calloc(1, sizeof *m);
  if (!m) return mproc__fail(MPROC_ENOMEM, "%s: out of memory", call);
  int rc = MPROC_EEXIST;
  for (unsigned attempt = 0; rc == MPROC_EEXIST && attempt < (name ? 1u : 16u); ++attempt) {
    if (name)
      snprintf(m->name, sizeof m->name, "%s", name);
    else
      generate(m->name, sizeof m->name, attempt);
    rc = mproc__pal_shm_named(m->name, create, size, &m->shm);
  }
  if (!rc && track) {
    rc = mproc__pal_shm_track(m->name, true);
    if (rc) {
      mproc__pal_shm_close(&m->shm);
      mproc__pal_shm_unlink(m->name);
    }
    m->tracked = rc == 0;
  }
  if (rc) {
    free(m);
    return rc;
  }
  *out = m;
  return 0;
}

int mproc_shared_memory_create(mproc_shared_memory **out, const char *name, size_t size, bool track) {
  return make(out, name, size, true, track, "shared_memory_create");
}

int mproc_shared_memory_attach(mproc_shared_memory **out, const char *name) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return make(out, name, 0, false, false, "shared_memory_attach");
}

void *mproc_shared_memory_buf(mproc_shared_memory *m) { return m ? m->shm.base : NULL; }
size_t mproc_shared_memory_size(const mproc_shared_memory *m) { return m ? m->shm.size : 0; }
const char *mproc_shared_memory_name(const mproc_shared_memory *m) { return m ? m->name : NULL; }

int mproc_shared_memory_unlink(mproc_shared_memory *m) {
  MPROC__CHECK_ARG(!m, "shared memory is NULL");
  int rc = mproc__pal_shm_unlink(m->name);
  if (m->tracked) {
    mproc__pal_shm_track(m->name, false);
    m->tracked = false;
  }
  return rc;
}

void mproc_shared_memory_destroy(mproc_shared_memory *m) {
  if (!m) return;
  mproc__pal_shm_close(&m->shm);
  free(m);
}

/* ---- handing it on: the block's handle and its name ---------------------------------------------------- */

static int shm_export(const void *obj, mproc_os_handle *hs, size_t *n, mproc__buf *bytes) {
  const mproc_shared_memory *m = (const mproc_shared_memory *)obj;
  hs[0] = m->shm.h;
  *n = 1;
  return mproc__buf_append(bytes, m->name, strlen(m->name));
}

static int shm_import(const void *bytes, size_t len, const mproc_os_handle *hs, size_t n, void **obj) {
  mproc_shared_memory *m = (mproc_shared_memory *)calloc(1, sizeof *m);
  if (!m) return mproc__fail(MPROC_ENOMEM, "out of memory");
  int rc = 0;
  if (n != 1 || len == 0 || len > MPROC_SHM_NAME_MAX) rc = mproc__fail(MPROC_ESYS, "a handed block is malformed");
  if (!rc) {
    memcpy(m->name, bytes, len);
    if (!name_ok(m->name)) rc = mproc__fail(MPROC_ESYS, "a handed block has a bad name");
  }
  if (!rc) rc = mproc__pal_shm_map(hs[0], 1, &m->shm);
  if (rc) {
    free(m);
    return rc;
  }
  *obj = m;
  return 0;
}

const mproc__handable_type mproc__shared_memory_handable = {MPROC_OBJECT_SHARED_MEMORY, "shared memory", shm_export,
                                                            shm_import};
