/* mproc_wait (Python's multiprocessing.connection.wait): wait until any of several objects of any
 * waitable kind is ready. Each kind is one row of k_kinds: how to check an object and find the handle
 * that becomes ready with it, and what to do once it is reported ready. A new kind (a queue, a pool
 * result, a listener) is one enum value in process.h and one row here; this loop does not change. */
#include <stdlib.h>

#include "process/process_internal.h"
#include "shared/shared_internal.h"
#include "subprocess_internal.h"

/* ---- connections ----------------------------------------------------------------------------------- */

static int connection_prepare(void *obj, mproc__wait_item *item, bool *ready_now) {
  mproc_connection *c = (mproc_connection *)obj;
  int rc = mproc_connection_poll(c, 0); /* a buffered message, end of file: ready without waiting */
  if (rc && rc != MPROC_ETIMEDOUT) return rc;
  *ready_now = rc == 0;
  item->h = mproc__connection_wait_handle(c);
  item->kind = MPROC__WAIT_CONN;
  return 0;
}

static const struct {
  const char *name;
  /* Check the object; say whether it is ready already; fill the item that becomes ready with it. */
  int (*prepare)(void *obj, mproc__wait_item *item, bool *ready_now);
  /* Once it was reported ready (optional). */
  void (*ready)(void *obj);
  /* Once the wait is over, for every object prepared, ready or not (optional). */
  void (*done)(void *obj);
} k_kinds[] = {
    [MPROC_WAIT_CONNECTION] = {"connection", connection_prepare, NULL, NULL},
    [MPROC_WAIT_PROCESS] = {"process", mproc__process_wait_prepare, mproc__process_wait_ready, NULL},
    [MPROC_WAIT_POPEN] = {"popen", mproc__popen_wait_prepare, mproc__popen_wait_ready, NULL},
    [MPROC_WAIT_QUEUE] = {"queue", mproc__queue_wait_prepare, NULL, mproc__queue_wait_done},
};

int mproc_wait(mproc_waitable *objs, size_t count, int64_t timeout_ms, size_t *nready) {
  if (nready) *nready = 0;
  MPROC__CHECK_ARG(!objs || count == 0, "no objects");
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  mproc__wait_item *items = (mproc__wait_item *)malloc(count * sizeof *items);
  bool *ready = (bool *)calloc(count, sizeof *ready);
  int rc = (!items || !ready) ? mproc__fail(MPROC_ENOMEM, "wait: out of memory") : 0;
  size_t pre = 0;      /* ready without waiting */
  size_t prepared = 0; /* objects whose prepare succeeded */
  for (size_t i = 0; i < count && !rc; ++i) {
    mproc_waitable *w = &objs[i];
    w->ready = false;
    if ((size_t)w->kind >= MPROC__ARRAY_LEN(k_kinds) || !k_kinds[w->kind].prepare)
      rc =
          mproc__fail(MPROC_EINVAL, "wait: objects[%zu] has kind %d, which is not an mproc_wait_kind", i, (int)w->kind);
    else if (!w->object)
      rc = mproc__fail(MPROC_EINVAL, "wait: objects[%zu] (a %s) is NULL", i, k_kinds[w->kind].name);
    else
      rc = k_kinds[w->kind].prepare(w->object, &items[i], &ready[i]);
    if (!rc) prepared = i + 1;
    if (!rc && ready[i]) ++pre;
  }
  if (!rc && !pre) rc = mproc__pal_wait_ready(items, count, deadline, ready);
  size_t n = 0;
  for (size_t i = 0; i < count && !rc; ++i)
    if (ready[i]) {
      objs[i].ready = true;
      ++n;
      if (k_kinds[objs[i].kind].ready) k_kinds[objs[i].kind].ready(objs[i].object);
    }
  for (size_t i = 0; i < prepared; ++i)
    if (k_kinds[objs[i].kind].done) k_kinds[objs[i].kind].done(objs[i].object);
  free(items);
  free(ready);
  if (rc == MPROC_ETIMEDOUT) return mproc__fail(rc, "wait: nothing became ready within %lld ms", (long long)timeout_ms);
  if (nready) *nready = n;
  return rc;
}
