/* Internal to the subprocess module: what src/wait.c needs of a Popen (mproc_wait's popen kind). */
#ifndef MPROC_SUBPROCESS_INTERNAL_H
#define MPROC_SUBPROCESS_INTERNAL_H

#include <stdbool.h>

#include "pal.h"

/* mproc_wait's popen kind: the item that becomes ready when the program has ended (its exit handle,
 * mproc__pal_child_exit_handle); once that was reported, reap it. */
int mproc__popen_wait_prepare(void *obj, mproc__wait_item *item, bool *ready_now);
void mproc__popen_wait_ready(void *obj);

#endif /* MPROC_SUBPROCESS_INTERNAL_H */
