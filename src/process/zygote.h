/* The process module's seam for pools: a zygote, a fork server forked from this process (forkserver.c).
 *
 * A pool under the fork start method runs a result thread, so its process is multi-threaded once it is
 * made: a worker forked from it later (to replace one that died or ran its maxtasksperchild) could
 * inherit a lock another thread held at the fork (a user's mutex, the C runtime's), held for ever in
 * the child. The pool forks a zygote first, while it has no thread of its own: a single-threaded copy of
 * this process as it was then, which forks the replacements on request through the forkserver protocol
 * (the bootstrap message, handed connections and objects, the exit status on the boot link). Workers are
 * then all copies of the process at the pool's creation, the first ones (forked directly, before the
 * thread starts) and the later ones alike. */
#ifndef MPROC_PROCESS_ZYGOTE_H
#define MPROC_PROCESS_ZYGOTE_H

#include "mproc/process.h"

typedef struct mproc__zygote mproc__zygote;

/* Fork a zygote from this process: 0 with *out, MPROC_ENOTSUP where there is no fork (Windows), or an
 * error. A fork child of this process closes its end (it is not the child's). */
int mproc__zygote_start(mproc__zygote **out);
/* End it (at the end of its control socket; killed if it has not ended within a second) and free it.
 * Its children (the workers it forked) are not touched: join them first. NULL: nothing. */
void mproc__zygote_stop(mproc__zygote *z);
/* Start p (created, not started) through z rather than by its start method: the child is forked by the
 * zygote. p's other options are unchanged. 0 or MPROC_EINVAL / MPROC_ESTATE. */
int mproc__process_set_zygote(mproc_process *p, mproc__zygote *z);

#endif
