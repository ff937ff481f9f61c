/* The table of handable types (see handable.h). */
#include "handable.h"

#include "manager/manager_internal.h"
#include "shared/shared_internal.h"

#define MAX_REGISTERED 8

static const mproc__handable_type *const k_builtin[] = {
    &mproc__connection_handable,    &mproc__os_handle_handable, &mproc__lock_handable,    &mproc__semaphore_handable,
    &mproc__event_handable,         &mproc__condition_handable, &mproc__barrier_handable, &mproc__value_handable,
    &mproc__shared_memory_handable, &mproc__queue_handable,     &mproc__manager_handable};
static const mproc__handable_type *g_registered[MAX_REGISTERED];
static size_t g_nregistered;

const mproc__handable_type *mproc__handable_find(uint32_t id) {
  for (size_t i = 0; i < MPROC__ARRAY_LEN(k_builtin); ++i)
    if (k_builtin[i]->id == id) return k_builtin[i];
  mproc__pal_global_lock();
  const mproc__handable_type *t = NULL;
  for (size_t i = 0; i < g_nregistered && !t; ++i)
    if (g_registered[i]->id == id) t = g_registered[i];
  mproc__pal_global_unlock();
  return t;
}

int mproc__handable_register(const mproc__handable_type *t) {
  if (!t || !t->id || !t->export_obj || !t->import_obj) return mproc__fail(MPROC_EINVAL, "handable: bad type");
  if (mproc__handable_find(t->id)) return mproc__fail(MPROC_EINVAL, "handable: type id %u is taken", (unsigned)t->id);
  mproc__pal_global_lock();
  int rc = 0;
  if (g_nregistered < MAX_REGISTERED)
    g_registered[g_nregistered++] = t;
  else
    rc = mproc__fail(MPROC_ENOMEM, "handable: at most %d registered types", MAX_REGISTERED);
  mproc__pal_global_unlock();
  return rc;
}
