/* The seam for handing an mproc object to another process. Each handable type says which OS handles and
 * bytes it exports and how it is rebuilt from them; the transport is someone else's:
 *   - to a child being started, the start methods' (the same object under fork; under spawn the handles
 *     are inherited with their numbers, under forkserver passed as SCM_RIGHTS; on Windows inherited
 *     through the handle list): mproc__process_hand;
 *   - to a running process, a connection's object frames (mproc__connection_send_object: SCM_RIGHTS
 *     on POSIX, handles duplicated into the receiver on Windows).
 * The process module and the connection module know no type's insides: connections (connection.c) and
 * bare OS handles (mproc__os_handle_handable) are the first types; locks, shared memory and queues come
 * next. See docs/CONTRIBUTING.md. */
#ifndef MPROC_HANDABLE_H
#define MPROC_HANDABLE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "mproc/connection.h"
#include "pal.h"

/* At most this many handles per object. */
#define MPROC__HANDABLE_MAX_HANDLES 8

typedef struct mproc__handable_type {
  uint32_t id;      /* on the wire (the bootstrap): never 0, unique, stable within one build */
  const char *name; /* for messages */
  /* The handles (distinct, at most MPROC__HANDABLE_MAX_HANDLES, into handles[]) and the bytes (appended
   * to *bytes) that rebuild obj in another process. Handles stay obj's. 0 or an error. */
  int (*export_obj)(const void *obj, mproc_os_handle *handles, size_t *nhandles, mproc__buf *bytes);
  /* Rebuild an object in this process from what export_obj gave, its handles now this process's: owned
   * by the new object on success, still the caller's on failure (it closes them). bytes come from a
   * trusted peer but are still checked, and so are the handles' kinds (mproc__pal_handle_kind). 0 with
   * *obj, or an error. */
  int (*import_obj)(const void *bytes, size_t len, const mproc_os_handle *handles, size_t nhandles, void **obj);
} mproc__handable_type;

/* An object handed to a child: its type and the object. */
typedef struct mproc__handed {
  const mproc__handable_type *type;
  void *obj;
} mproc__handed;

/* The type with this wire id: the library's own, or one registered. NULL if none. */
const mproc__handable_type *mproc__handable_find(uint32_t id);
/* Register a type from outside the library's table (white-box tests). Call it in every process that
 * imports the type, before the main guard (a static initializer). 0, MPROC_EINVAL (id 0 or taken),
 * MPROC_ENOMEM (table full). */
int mproc__handable_register(const mproc__handable_type *t);

/* The connection type (connection.c). */
extern const mproc__handable_type mproc__connection_handable;
/* A bare OS handle (connection.c): obj points to an mproc_os_handle; import gives a malloc'ed one. The
 * handle's kind travels with it and is checked on arrival. */
extern const mproc__handable_type mproc__os_handle_handable;

/* Send obj (of type t) to the process dest_pid on connection c, which keeps its own; the receiver gets
 * copies of its handles (POSIX ignores dest_pid; Windows duplicates into it). `call` names the public
 * call in messages. 0, MPROC_ENOTSUP (a connection that cannot carry handles), or the errors of
 * send_bytes (connection.c). */
int mproc__connection_send_object(mproc_connection *c, const mproc__handable_type *t, const void *obj, int64_t dest_pid,
                                  const char *call);
/* Receive the next message, which must be an object of type t: 0 with *obj (this process's, owned by
 * the caller). MPROC_ESTATE when the next message is bytes or another type: it stays unread. Else
 * the errors of recv_bytes. */
int mproc__connection_recv_object(mproc_connection *c, const mproc__handable_type *t, int64_t deadline,
                                  int64_t timeout_ms, void **obj, const char *call);

#endif
