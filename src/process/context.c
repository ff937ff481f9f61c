/* Start methods and contexts: set_start_method, get_context (Python's multiprocessing.context). */
#include "process_internal.h"

static mproc_start_method g_method = MPROC_START_SPAWN;
static const mproc_context k_contexts[4] = {
    {MPROC_START_DEFAULT}, {MPROC_START_FORK}, {MPROC_START_SPAWN}, {MPROC_START_FORKSERVER}};

const char *mproc_start_method_name(mproc_start_method m) {
  switch (m) {
    case MPROC_START_DEFAULT:
      return "default";
    case MPROC_START_FORK:
      return "fork";
    case MPROC_START_SPAWN:
      return "spawn";
    case MPROC_START_FORKSERVER:
      return "forkserver";
  }
  return "unknown";
}

int mproc__method_available(mproc_start_method m) {
  if (m < MPROC_START_DEFAULT || m > MPROC_START_FORKSERVER)
    return mproc__fail(MPROC_EINVAL, "start method %d is not an mproc_start_method", (int)m);
  /* probe without forking: the PAL says ENOTSUP where fork does not exist */
  if ((m == MPROC_START_FORK || m == MPROC_START_FORKSERVER) && !mproc__pal_fork_supported())
    return mproc__fail(MPROC_ENOTSUP, "the %s start method does not exist on this OS", mproc_start_method_name(m));
  /* A set-id program's child would be the program re-executed with its privileges, and the guard there
   * never acts on a bootstrap (it cannot tell a parent's from a caller's forgery): fork only. */
  if ((m == MPROC_START_SPAWN || m == MPROC_START_FORKSERVER) && mproc__pal_secure_exec())
    return mproc__fail(MPROC_ENOTSUP,
                       "the %s start method is refused in a program running set-user-ID, set-group-ID or with file "
                       "capabilities (secure-execution mode): its children would re-execute it with those "
                       "privileges; use fork",
                       mproc_start_method_name(m));
  return 0;
}

int mproc_set_start_method(mproc_start_method m) {
  int rc = mproc__method_available(m);
  if (rc) return rc;
  g_method = m == MPROC_START_DEFAULT ? MPROC_START_SPAWN : m;
  return 0;
}

mproc_start_method mproc_get_start_method(void) { return g_method; }

int mproc_get_context(mproc_start_method m, const mproc_context **ctx) {
  MPROC__CHECK_ARG(!ctx, "ctx is NULL");
  *ctx = NULL;
  int rc = mproc__method_available(m);
  if (rc) return rc;
  *ctx = &k_contexts[m];
  return 0;
}

mproc_start_method mproc_context_start_method(const mproc_context *ctx) {
  return ctx ? ctx->method : MPROC_START_DEFAULT;
}

mproc_start_method mproc__method_of(const mproc_process *p) {
  mproc_start_method m = p->req_method;
  if (m == MPROC_START_DEFAULT && p->context) m = p->context->method;
  return m == MPROC_START_DEFAULT ? g_method : m;
}
