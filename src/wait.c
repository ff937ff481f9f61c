/* mproc_wait (Python's multiprocessing.connection.wait): wait until any of connections and processes
 * is ready. */
#include <stdlib.h>

#include "process/process_internal.h"

int mproc_wait(mproc_waitable *objs, size_t count, int64_t timeout_ms, size_t *nready) {
  if (nready) *nready = 0;
  if (!objs || count == 0) return mproc__fail(MPROC_EINVAL, "wait: no objects");
  mproc__wait_item *items = (mproc__wait_item *)malloc(count * sizeof *items);
  bool *ready = (bool *)calloc(count, sizeof *ready);
  int rc = (!items || !ready) ? mproc__fail(MPROC_ENOMEM, "wait: out of memory") : 0;
  size_t pre = 0; /* already ready without waiting: buffered messages, processes already reaped */
  for (size_t i = 0; i < count && !rc; ++i) {
    mproc_waitable *w = &objs[i];
    w->ready = false;
    if (!w->connection == !w->process) {
      rc = mproc__fail(MPROC_EINVAL, "wait: objects[%zu] must set exactly one of connection and process", i);
    } else if (w->connection) {
      rc = mproc_connection_poll(w->connection, 0);
      if (rc == 0) {
        ready[i] = true;
        ++pre;
      } else if (rc == MPROC_ETIMEDOUT) {
        rc = 0;
      }
      items[i].h = mproc__connection_wait_handle(w->connection);
      items[i].kind = MPROC__WAIT_CONN;
    } else {
      rc = mproc__process_check(w->process, "wait");
      if (!rc && !w->process->started) {
        rc = mproc__fail(MPROC_ESTATE, "wait: process '%s' is not started", w->process->name);
      } else if (!rc && w->process->child.reaped) {
        ready[i] = true;
        ++pre;
      }
      items[i].h = mproc_process_sentinel(w->process);
      items[i].kind = MPROC__WAIT_SENTINEL;
    }
  }
  if (!rc && !pre) rc = mproc__pal_wait_ready(items, count, mproc__deadline_from_timeout(timeout_ms), ready);
  size_t n = 0;
  for (size_t i = 0; i < count && !rc; ++i)
    if (ready[i]) {
      objs[i].ready = true;
      ++n;
      /* The sentinel closes as the child exits, a moment before the OS lets it be reaped: reap it
       * now (a short wait), so join(0), is_alive and active_children agree with what wait said. */
      if (objs[i].process) mproc__child_reap(objs[i].process, INT64_MAX);
    }
  free(items);
  free(ready);
  if (rc == MPROC_ETIMEDOUT) return mproc__fail(rc, "wait: nothing became ready within %lld ms", (long long)timeout_ms);
  if (nready) *nready = n;
  return rc;
}
