/* The listener module's part of mproc_wait (wait.c): a listener waits on several handles at once, the
 * listening one and the connection of each handshake in progress (listener.c). */
#ifndef MPROC_LISTENER_INTERNAL_H
#define MPROC_LISTENER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "pal.h"

/* How many items the listener waits on now (at least 1 for an open listener). */
size_t mproc__listener_wait_count(void *obj);
/* Fill that many items; *ready_now when accept would make progress without waiting. MPROC_ECLOSED for a
 * closed listener. */
int mproc__listener_wait_prepare(void *obj, mproc__wait_item *items, bool *ready_now);

#endif
