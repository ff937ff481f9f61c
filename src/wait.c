/* mproc_wait (Python's multiprocessing.connection.wait): wait until any of several objects of any
 * waitable kind is ready. Each kind is one row of k_kinds: how to check an object and find the handle
 * that becomes ready with it (or the handles: a kind with `count` waits on that many, a listener on its
 * listening handle and every handshake in progress), and what to do once it is reported ready. A new
 * kind (a queue, a pool result) is one enum value in process.h and one row here; this loop does not
 * change. */
#include <stdlib.h>

#include "listener_internal.h"
#include "pool/pool_internal.h"
#include "process/process_internal.h"
#include "shared/shared_internal.h"
#include "subprocess_internal.h"

/* ---- connections ----------------------------------------------------------------------------------- */

static int connection_prepare(void *obj, mproc__wait_item *item, bool *ready_now) {
  mproc_connection *c = (mproc_connection *)obj;
  /* A buffered message, end of file: ready without waiting. Whether its handle has data, the PAL's wait
   * finds out for every handle at once (asking here too cost the Windows PAL a zero-byte read each). */
  int rc = mproc__connection_wait_check(c, "wait", ready_now);
  if (rc) return rc;
  item->h = mproc__connection_wait_handle(c);
  item->kind = MPROC__WAIT_CONN;
  return 0;
}

static const struct {
  const char *name;
  /* Check the object; say whether it is ready already; fill the item that becomes ready with it (the
   * `count` items, for a kind that has count). */
  int (*prepare)(void *obj, mproc__wait_item *item, bool *ready_now);
  /* How many items the object waits on (optional: 1); the object is ready when any of them is. */
  size_t (*count)(void *obj);
  /* Once it was reported ready (optional). */
  void (*ready)(void *obj);
  /* Once the wait is over, for every object prepared, ready or not (optional). */
  void (*done)(void *obj);
} k_kinds[] = {
    [MPROC_WAIT_CONNECTION] = {"connection", connection_prepare, NULL, NULL, NULL},
    [MPROC_WAIT_PROCESS] = {"process", mproc__process_wait_prepare, NULL, mproc__process_wait_ready, NULL},
    [MPROC_WAIT_POPEN] = {"popen", mproc__popen_wait_prepare, NULL, mproc__popen_wait_ready, NULL},
    [MPROC_WAIT_QUEUE] = {"queue", mproc__queue_wait_prepare, NULL, NULL, mproc__queue_wait_done},
    [MPROC_WAIT_LISTENER] = {"listener", mproc__listener_wait_prepare, mproc__listener_wait_count, NULL, NULL},
    [MPROC_WAIT_RESULT] = {"pool result", mproc__pool_result_wait_prepare, NULL, NULL, NULL},
};

/* Check objects[i]; 0, or MPROC_EINVAL naming it. */
static int check(const mproc_waitable *w, size_t i) {
  if ((size_t)w->kind >= MPROC__ARRAY_LEN(k_kinds) || !k_kinds[w->kind].prepare)
    return mproc__fail(MPROC_EINVAL, "wait: objects[%zu] has kind %d, which is not an mproc_wait_kind", i,
                       (int)w->kind);
  if (!w->object) return mproc__fail(MPROC_EINVAL, "wait: objects[%zu] (a %s) is NULL", i, k_kinds[w->kind].name);
  return 0;
}

/* Some objects are ready without waiting: look at the items of the others without waiting either (a
 * deadline long past), so that every object ready is reported (a connection's end of file beside its
 * process's end, say). items[] is reordered; ready[] ends up in the objects' places. */
static int look_at_the_others(size_t count, const size_t *first, const bool *ready_now, mproc__wait_item *items,
                              bool *ready) {
  size_t m = 0;
  for (size_t i = 0; i < count; ++i)
    for (size_t k = first[i]; k < first[i + 1] && !ready_now[i]; ++k) items[m++] = items[k];
  int rc = m ? mproc__pal_wait_ready(items, m, 0, ready) : MPROC_ETIMEDOUT;
  if (rc && rc != MPROC_ETIMEDOUT) return rc;
  for (size_t i = count; i-- > 0;) /* from the end: an item's place is never before its packed one */
    for (size_t k = first[i + 1]; k-- > first[i];) ready[k] = !ready_now[i] && ready[--m] && rc == 0;
  return 0;
}

int mproc_wait(mproc_waitable *objs, size_t count, int64_t timeout_ms, size_t *nready) {
  if (nready) *nready = 0;
  MPROC__CHECK_ARG(!objs || count == 0, "no objects");
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  /* A wait on a few objects (a pool's result thread waits on a handful at each round) uses no heap: its
   * arrays lie in two blocks on the stack (where the objects' items begin; then the items, whether each
   * item is ready, whether each object was ready at once), or, for more, on the heap. */
  enum { SMALL = 16 };
  size_t first_small[SMALL + 1];
  union {
    mproc__wait_item items[2 * SMALL];
    unsigned char bytes[2 * SMALL * sizeof(mproc__wait_item) + 2 * SMALL + SMALL];
  } small;
  size_t *first = count <= SMALL ? first_small : (size_t *)malloc((count + 1) * sizeof *first);
  int rc =
      first ? 0 : mproc__fail(MPROC_ENOMEM, "wait: out of memory"); /* objects[i]'s items: [first[i], first[i+1]) */
  if (first) first[0] = 0;
  for (size_t i = 0; i < count && !rc; ++i) {
    objs[i].ready = false;
    rc = check(&objs[i], i);
    if (!rc) first[i + 1] = first[i] + (k_kinds[objs[i].kind].count ? k_kinds[objs[i].kind].count(objs[i].object) : 1);
  }
  size_t nitems = rc ? 0 : first[count];
  size_t bytes = nitems * sizeof(mproc__wait_item) + (nitems + count) * sizeof(bool);
  void *block = rc ? NULL : bytes <= sizeof small ? (void *)&small : malloc(bytes);
  if (!rc && !block) rc = mproc__fail(MPROC_ENOMEM, "wait: out of memory");
  mproc__wait_item *items = (mproc__wait_item *)block;
  bool *ready = block ? (bool *)(void *)(items + nitems) : NULL, *ready_now = ready ? ready + nitems : NULL;
  if (block) memset(ready, 0, (nitems + count) * sizeof *ready);
  size_t pre = 0;      /* ready without waiting */
  size_t prepared = 0; /* objects whose prepare succeeded */
  for (size_t i = 0; i < count && !rc; ++i) {
    rc = k_kinds[objs[i].kind].prepare(objs[i].object, &items[first[i]], &ready_now[i]);
    if (!rc) prepared = i + 1;
    if (!rc && ready_now[i]) ++pre;
  }
  if (!rc && !pre) rc = mproc__pal_wait_ready(items, nitems, deadline, ready);
  if (!rc && pre) rc = look_at_the_others(count, first, ready_now, items, ready);
  size_t n = 0;
  for (size_t i = 0; i < count && !rc; ++i) {
    bool r = ready_now[i];
    for (size_t k = first[i]; k < first[i + 1]; ++k) r = r || ready[k];
    if (r) {
      objs[i].ready = true;
      ++n;
      if (k_kinds[objs[i].kind].ready) k_kinds[objs[i].kind].ready(objs[i].object);
    }
  }
  for (size_t i = 0; i < prepared; ++i)
    if (k_kinds[objs[i].kind].done) k_kinds[objs[i].kind].done(objs[i].object);
  if (first != first_small) free(first);
  if (block != (void *)&small) free(block);
  if (rc == MPROC_ETIMEDOUT) return mproc__fail(rc, "wait: nothing became ready within %lld ms", (long long)timeout_ms);
  if (nready) *nready = n;
  return rc;
}
