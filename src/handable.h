/* The seam for handing an mproc object to a child. Each handable type says which OS handles and bytes
 * it exports and how it is rebuilt from them; the start methods supply the transport (the same object
 * under fork; under spawn the handles are inherited with their numbers, under forkserver passed as
 * SCM_RIGHTS; on Windows inherited through the handle list). The process module knows no type's
 * insides: connections are the first type (connection.c), locks, shared memory and queues come next.
 * See docs/CONTRIBUTING.md. */
#ifndef MPROC_HANDABLE_H
#define MPROC_HANDABLE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "pal.h"

/* At most this many handles per object. */
#define MPROC__HANDABLE_MAX_HANDLES 8

typedef struct mproc__handable_type {
  uint32_t id;      /* on the wire (the bootstrap): never 0, unique, stable within one build */
  const char *name; /* for messages */
  /* The handles (distinct, at most MPROC__HANDABLE_MAX_HANDLES, into handles[]) and the bytes (appended
   * to *bytes) that rebuild obj in another process. Handles stay obj's. 0 or an error. */
  int (*export_obj)(const void *obj, mproc_os_handle *handles, size_t *nhandles, mproc__buf *bytes);
  /* Rebuild an object in this process from what export_obj gave, its handles now this process's
   * (owned by the new object from here on, also on failure). bytes come from a trusted parent but are
   * still checked. 0 with *obj, or an error. */
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

#endif
