/* The fork start method (POSIX): the child is a copy of the parent and runs the target at once. */
#include <stdio.h>

#include "process_internal.h"

MPROC__CHILD_PATH int mproc__start_fork(mproc_process *p, mproc_os_handle child_end) {
  fflush(NULL); /* what the parent buffered must not be printed twice */
  int64_t parent_pid = mproc__pal_getpid();
  bool main_thread = p->kill_on_parent_death && mproc__pal_is_main_thread();
  int64_t pid = 0;
  int rc = mproc__pal_fork(&pid);
  if (rc) {
    mproc__pal_close(child_end);
    return rc;
  }
  if (pid == 0) {            /* the child */
    mproc__after_fork_run(); /* drop the parent's children, links and fork server */
    if (p->boot) mproc__conn_end_close(&p->boot->e);
    mproc__self_become(p->name, p->ident, mproc__me.name, parent_pid, p->daemon);
    mproc__authkey_become_forked(p->authkey, p->authkey_len);
    mproc__me.parent_link = child_end;
    if (p->kill_on_parent_death) {
      mproc__pal_die_with_parent(parent_pid, main_thread);
      mproc_connection *link = mproc__connection_wrap(mproc__conn_end_link(child_end));
      if (link) mproc__parent_watch(link);
    }
    mproc_args args = {p->arg, p->arg_size, p->conns, p->nconns, p->objs, p->nhanded};
    mproc__child_finish_fork(p->target(&args));
  }
  mproc__pal_close(child_end); /* the child's */
  p->child.pid = pid;
  if (!p->boot && (rc = mproc__pal_fork_sentinel(&p->child)) != 0) { /* out of descriptors: undo */
    mproc__pal_signal(&p->child, MPROC_SIGKILL);
    mproc__pal_wait(&p->child, INT64_MAX);
    return rc;
  }
  return 0;
}
