/*
 * mproc/object.h: mproc objects handed to other processes, of any kind.
 *
 * A child gets objects through mproc_process_opts.objects (every start method, both platforms); a
 * running process gets them over a connection (mproc_connection_send_object / recv_object). The object
 * that arrives is the same shared thing (the same lock, the same shared memory), rebuilt in that
 * process. A program started with mproc_popen never gets one.
 *
 *   mproc_lock *l;
 *   mproc_lock_create(&l);
 *   mproc_object objs[] = {mproc_object_lock(l)};
 *   opts.objects = objs; opts.object_count = 1;          // the child finds it in args->objects
 */
#ifndef MPROC_OBJECT_H
#define MPROC_OBJECT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The kinds of objects that can be handed on. The values are stable within one build of mproc (they
 * travel between processes of the same program). */
typedef enum mproc_object_kind {
  MPROC_OBJECT_CONNECTION = 1,     /* mproc_connection * */
  MPROC_OBJECT_OS_HANDLE = 2,      /* a bare handle: only over a connection, see connection.h */
  MPROC_OBJECT_LOCK = 10,          /* mproc_lock * (Lock and RLock) */
  MPROC_OBJECT_SEMAPHORE = 11,     /* mproc_semaphore * (Semaphore and BoundedSemaphore) */
  MPROC_OBJECT_EVENT = 12,         /* mproc_event * */
  MPROC_OBJECT_CONDITION = 13,     /* mproc_condition * (with its lock) */
  MPROC_OBJECT_BARRIER = 14,       /* mproc_barrier * */
  MPROC_OBJECT_VALUE = 15,         /* mproc_value * (Value, Array, RawValue, RawArray, shared blocks; with its lock) */
  MPROC_OBJECT_SHARED_MEMORY = 16, /* mproc_shared_memory * (a named block) */
  MPROC_OBJECT_QUEUE = 17,         /* mproc_queue * (Queue, SimpleQueue, JoinableQueue) */
  MPROC_OBJECT_MANAGER = 18        /* mproc_manager * (a handle on a manager's server: mproc/manager.h) */
} mproc_object_kind;

/* An object and its kind. Made with the constructors of each module (mproc_object_lock(l), ...) or
 * with designated initializers (.kind = MPROC_OBJECT_LOCK, .object = l). */
typedef struct mproc_object {
  mproc_object_kind kind;
  void *object;
} mproc_object;

static inline mproc_object mproc_object_make(mproc_object_kind kind, void *object) {
  mproc_object o;
  o.kind = kind;
  o.object = object;
  return o;
}

#ifdef __cplusplus
}
#endif

#endif /* MPROC_OBJECT_H */
