/* White-box handles on a queue for tests (tests/queue_test.cc): the moments where a death is hardest
 * to put right, and a small process table. Not part of the API; the library never sets them. */
#ifndef MPROC_QUEUE_TESTING_H
#define MPROC_QUEUE_TESTING_H

#include <stdint.h>

enum {
  MPROC__QHOOK_PUBLISHING = 1, /* a put with its item written (a record: READY), its slot still WRITING */
  MPROC__QHOOK_TAKING = 2,     /* a get with a record's slot TAKING, nothing copied yet */
  MPROC__QHOOK_RESERVED = 3    /* a put with its record reserved (WRITING), no place in the order yet */
};
/* Called at those moments in this process when set (a test ends the process there). */
extern void (*mproc__queue_test_hook)(int where);
/* The process table's entries of queues created after it is set (0: the default, 1024; at most that). */
extern uint32_t mproc__queue_test_procs;

#endif
