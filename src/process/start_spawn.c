/* The spawn start method (POSIX and Windows): the child is this program started again; its main guard
 * takes the bootstrap from the boot link (boot.c) and runs the target. */
#include <stdlib.h>
#include <string.h>

#include "process_internal.h"

int mproc__start_spawn(mproc_process *p, mproc_os_handle child_end) {
  mproc__buf msg = {NULL, 0, 0};
  mproc_os_handle *hs = NULL, *pass = NULL;
  size_t nh = 0;
  int rc = mproc__boot_message(p, &msg, &hs, &nh);
  if (!rc && !(pass = (mproc_os_handle *)calloc(1 + nh, sizeof *pass)))
    rc = mproc__fail(MPROC_ENOMEM, "start: out of memory");
  if (!rc) {
    pass[0] = child_end; /* the boot link, then every handed object's handles, inherited by number */
    if (nh) memcpy(pass + 1, hs, nh * sizeof *hs);
    rc = mproc__respawn_self(MPROC__SPAWN_FLAG, child_end, pass, 1 + nh, true, false, &p->child);
    /* before the bootstrap goes: the child cannot run its target outside the job */
    if (!rc && p->kill_on_parent_death) mproc__pal_child_bind(&p->child);
  }
  free(hs);
  free(pass);
  mproc__pal_close(child_end); /* the child has its copy: end of file on ours now means it has gone */
  if (!rc) {
    rc = mproc_connection_send_bytes(p->boot, msg.data, msg.len, 0, MPROC_ALL);
    /* EPIPE: the child is already gone (a main() without the guard can exit first). Let the answer
     * below report that, with the child's exit code, instead of a bare broken pipe. */
    if (rc == MPROC_EPIPE) rc = 0;
  }
  mproc__buf_free(&msg);
  if (rc) {
    if (p->child.pid > 0) {
      mproc__pal_signal(&p->child, MPROC_SIGKILL);
      mproc__pal_wait(&p->child, INT64_MAX);
    }
    return rc;
  }
  int64_t pid = 0;
  return mproc__boot_answer(p, "spawned", &pid); /* "ok", an error, or end of file (it died first) */
}
