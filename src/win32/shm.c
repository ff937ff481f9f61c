/* Windows PAL: shared memory and waiting on words in it (pal.h, "shared memory, and waiting on words in
 * it"): pagefile-backed file mappings with a user-only DACL, this process's identity as a lock owner
 * (pid and creation time), and a semaphore per object whose waiters also wait on the owner's process
 * handle, so that an owner's death is learnt at once. */
#include "win32.h"

#include <stdio.h>
#include <string.h>

#include "../atomic.h"
#include "../wire.h"
#include "advapi.h"
#include "spawn.h" /* mproc__win32_wait_ms */

/* ---- blocks --------------------------------------------------------------------------------------- *
 * A mapping is as large as the pages it spans; the size its creator asked for is stored in the last 16
 * bytes of the last page (a mark and the size), so every attacher sees the creator's size. */

#define TRAILER 16
static const unsigned char k_mark[8] = {'m', 'p', 'r', 'o', 'c', 's', 'z', '1'};

static size_t page_size(void) {
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  return si.dwPageSize;
}

/* The bytes to map for a block of size bytes: whole pages with room for the trailer. 0 if too large. */
static size_t mapping_size(size_t size) {
  size_t page = page_size();
  if (size > SIZE_MAX - TRAILER - page) return 0;
  return (size + TRAILER + page - 1) / page * page;
}

static int map_view(HANDLE m, size_t need, const char *what, mproc__shm *out) {
  void *p = MapViewOfFile(m, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
  if (!p) return mproc__fail_os(0, (int)GetLastError(), "%s: MapViewOfFile", what);
  MEMORY_BASIC_INFORMATION mi;
  size_t mapped = VirtualQuery(p, &mi, sizeof mi) ? mi.RegionSize : 0;
  size_t size = mapped;
  if (mapped >= TRAILER) {
    const unsigned char *t = (const unsigned char *)p + mapped - TRAILER;
    uint64_t stored = mproc__wire_get_le64(t + 8);
    if (memcmp(t, k_mark, 8) == 0 && stored > 0 && stored <= mapped - TRAILER) size = (size_t)stored;
  }
  if (mapped == 0 || size < need) {
    UnmapViewOfFile(p);
    return mproc__fail(MPROC_ESYS, "%s is no shared memory of at least %zu bytes", what, need);
  }
  out->h = (mproc_os_handle)(intptr_t)m;
  out->base = p;
  out->size = size;
  out->mapped = mapped;
  return 0;
}

static int create_mapping(const wchar_t *name, size_t size, const char *what, mproc__shm *out) {
  size_t total = mapping_size(size);
  if (size == 0 || total == 0) return mproc__fail(MPROC_EINVAL, "%s: %zu bytes", what, size);
  SECURITY_ATTRIBUTES sa;
  int rc = mproc__win32_user_only_sa(&sa, what);
  if (rc) return rc;
  HANDLE m =
      CreateFileMappingW(INVALID_HANDLE_VALUE, &sa, PAGE_READWRITE, (DWORD)((uint64_t)total >> 32), (DWORD)total, name);
  DWORD err = GetLastError();
  if (!m) return mproc__fail_os(err == ERROR_COMMITMENT_LIMIT ? MPROC_ENOMEM : 0, (int)err, "%s", what);
  if (name && err == ERROR_ALREADY_EXISTS) {
    CloseHandle(m);
    return mproc__fail_os(MPROC_EEXIST, (int)err, "%s", what);
  }
  rc = map_view(m, 0, what, out);
  if (rc) {
    CloseHandle(m);
    return rc;
  }
  unsigned char *t = (unsigned char *)out->base + out->mapped - TRAILER;
  memcpy(t, k_mark, 8);
  mproc__wire_put_le64(t + 8, (uint64_t)size);
  out->size = size;
  return 0;
}

bool mproc__pal_shm_conn_ok(void) { return false; } /* connections keep their named pipe (pal.h) */

int mproc__pal_shm_anon(size_t size, mproc__shm *out) {
  memset(out, 0, sizeof *out);
  out->h = MPROC_NO_HANDLE;
  return create_mapping(NULL, size, "shared block", out);
}

int mproc__pal_shm_map(mproc_os_handle h, size_t need, mproc__shm *out) {
  memset(out, 0, sizeof *out);
  out->h = MPROC_NO_HANDLE;
  return map_view(MPROC__H(h), need, "a handed block", out);
}

static int wide_name(const char *name, wchar_t *buf, size_t cap) {
  int n = swprintf(buf, cap, L"Local\\%hs", name);
  return n > 0 ? 0 : mproc__fail(MPROC_EINVAL, "shared memory name '%s'", name);
}

int mproc__pal_shm_named(const char *name, bool create, size_t size, mproc__shm *out) {
  memset(out, 0, sizeof *out);
  out->h = MPROC_NO_HANDLE;
  wchar_t w[96];
  int rc = wide_name(name, w, MPROC__ARRAY_LEN(w));
  if (rc) return rc;
  char what[96];
  snprintf(what, sizeof what, "shared memory '%s'", name);
  if (create) return create_mapping(w, size, what, out);
  HANDLE m = OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, w);
  if (!m) return mproc__fail_os(0, (int)GetLastError(), "%s", what);
  rc = map_view(m, 1, what, out);
  if (rc) CloseHandle(m);
  return rc;
}

int mproc__pal_shm_unlink(const char *name) {
  wchar_t w[96];
  int rc = wide_name(name, w, MPROC__ARRAY_LEN(w));
  if (rc) return rc;
  HANDLE m = OpenFileMappingW(FILE_MAP_READ, FALSE, w);
  if (!m) return mproc__fail_os(0, (int)GetLastError(), "shared memory '%s'", name);
  CloseHandle(m); /* it exists; it goes with its last handle */
  return 0;
}

void mproc__pal_shm_close(mproc__shm *s) {
  if (s->base) UnmapViewOfFile(s->base);
  if (s->h != MPROC_NO_HANDLE && s->h != 0) CloseHandle(MPROC__H(s->h));
  memset(s, 0, sizeof *s);
  s->h = MPROC_NO_HANDLE;
}

int mproc__pal_shm_track(const char *name, bool track) {
  (void)name;
  (void)track;
  return 0; /* a block dies with its last handle: nothing is left behind */
}

/* ---- identity ------------------------------------------------------------------------------------- */

volatile uint64_t mproc__pal_self_id_cache; /* read and written atomically: threads race to fill it */

static uint32_t birth_token(HANDLE proc) {
  FILETIME c, x, k, u;
  if (!GetProcessTimes(proc, &c, &x, &k, &u)) return 1;
  uint64_t t = ((uint64_t)c.dwHighDateTime << 32) | c.dwLowDateTime;
  uint32_t token = (uint32_t)(t ^ (t >> 32));
  return token ? token : 1;
}

uint64_t mproc__pal_self_id(void) {
  uint64_t id = mproc__atomic_load64(&mproc__pal_self_id_cache);
  if (id) return id;
  id = ((uint64_t)(GetCurrentProcessId() >> 2) << 32) | birth_token(GetCurrentProcess());
  mproc__atomic_store64(&mproc__pal_self_id_cache, id);
  return id;
}

/* The process an id names, opened for waiting, if it still runs as that process; else NULL. */
static HANDLE open_owner(uint64_t id) {
  DWORD pid = (DWORD)(id >> 32) << 2;
  HANDLE p = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
  if (!p) return NULL;
  if (birth_token(p) != (uint32_t)id || WaitForSingleObject(p, 0) == WAIT_OBJECT_0) {
    CloseHandle(p);
    return NULL;
  }
  return p;
}

bool mproc__pal_id_alive(uint64_t id) {
  HANDLE p = open_owner(id);
  if (p) CloseHandle(p);
  return p != NULL;
}

uint32_t mproc__pal_thread_id(void) { return (uint32_t)GetCurrentThreadId(); /* from the TEB: no kernel call */ }

/* ---- waiting on words ---------------------------------------------------------------------------- */

static volatile uint64_t g_sync_calls;

int mproc__pal_wq_handle(mproc_os_handle *h) {
  HANDLE s = CreateSemaphoreW(NULL, 0, 0x7FFFFFFF, NULL);
  if (!s) {
    *h = MPROC_NO_HANDLE;
    return mproc__fail_os(0, (int)GetLastError(), "CreateSemaphore");
  }
  *h = (mproc_os_handle)(intptr_t)s;
  return 0;
}

int mproc__pal_word_wait(mproc_os_handle h, mproc__wq *q, const volatile uint32_t *word, uint32_t val, uint64_t owner,
                         int64_t deadline) {
  mproc__atomic_add32(&q->waiters, 1);
  int rc = 0;
  if (mproc__atomic_load32(word) == val) {
    /* One semaphore serves every word of the object, and a wake-up cannot choose its waiter: one who
     * came later (its word unchanged) may take the count meant for another, who would then sleep on.
     * So no wait here is longer than 20 ms: a wake-up taken so costs its waiter that much, never more. */
    int64_t until = mproc__pal_monotonic_ns() + 20 * 1000 * 1000LL;
    if (deadline < until) until = deadline;
    HANDLE hs[2] = {MPROC__H(h), NULL};
    DWORD n = 1;
    if (owner) {
      mproc__atomic_add64(&g_sync_calls, 1);
      hs[1] = open_owner(owner);
      if (!hs[1]) rc = MPROC_EOWNERDEAD;
      n = 2;
    }
    if (!rc) {
      mproc__atomic_add64(&g_sync_calls, 1);
      DWORD w = WaitForMultipleObjects(n, hs, FALSE, (DWORD)mproc__win32_wait_ms(until));
      if (w == WAIT_OBJECT_0 + 1)
        rc = MPROC_EOWNERDEAD;
      else if (w == WAIT_TIMEOUT && deadline != INT64_MAX && mproc__ms_until(deadline) == 0)
        rc = MPROC_ETIMEDOUT;
      else if (w == WAIT_FAILED)
        rc = mproc__fail_os(0, (int)GetLastError(), "waiting on a shared object");
    }
    if (hs[1]) CloseHandle(hs[1]);
  }
  mproc__atomic_add32(&q->waiters, (uint32_t)-1);
  return rc;
}

void mproc__pal_word_wake(mproc_os_handle h, mproc__wq *q, volatile uint32_t *word, uint32_t n) {
  (void)word;
  (void)n;
  uint32_t waiters = mproc__atomic_load32(&q->waiters);
  if (waiters == 0) return;
  mproc__atomic_add64(&g_sync_calls, 1);
  /* every waiter of the queue: a semaphore cannot choose those of this word (the others sleep again) */
  ReleaseSemaphore(MPROC__H(h), (LONG)(waiters > 0x7FFF ? 0x7FFF : waiters), NULL);
}

uint64_t mproc__pal_sync_calls(void) { return mproc__atomic_load64(&g_sync_calls); }

/* ---- a flag for mproc_wait ----------------------------------------------------------------------- */

int mproc__pal_flag_open(mproc_os_handle *h) {
  HANDLE e = CreateEventW(NULL, TRUE, FALSE, NULL); /* manual reset: set until cleared */
  *h = e ? (mproc_os_handle)(intptr_t)e : MPROC_NO_HANDLE;
  return e ? 0 : mproc__fail_os(0, (int)GetLastError(), "CreateEvent");
}

void mproc__pal_flag_set(mproc_os_handle h) {
  mproc__atomic_add64(&g_sync_calls, 1);
  SetEvent(MPROC__H(h));
}

void mproc__pal_flag_clear(mproc_os_handle h) {
  mproc__atomic_add64(&g_sync_calls, 1);
  ResetEvent(MPROC__H(h));
}
