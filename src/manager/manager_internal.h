/* The manager's wire protocol (client.c and server.c) and the server's entry points.
 *
 * Every message is one connection message (CPython's framing underneath), little-endian:
 *   request  u32 op | u32 seq | u64 object id | u32 nargs | nargs x (u32 size | bytes)
 *   reply    u32 seq | i32 status | u32 nitems | nitems x (u32 size | bytes)
 * A reply echoes its request's seq, so a client skips the late reply of a call that timed out. An error
 * reply (status < 0) carries one item, the server's message. Integers travel as 8-byte items. Object ids
 * are (generation << 32 | table index + 1): never an address. */
#ifndef MPROC_MANAGER_INTERNAL_H
#define MPROC_MANAGER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "../internal.h"
#include "mproc/manager.h"

typedef enum mproc__mgr_op {
  MGR_SHUTDOWN = 1,
  MGR_CREATE, /* u8 kind [, name (empty: none), the kind's parameters] -> u64 id (a condition: and its lock's) */
  MGR_DROP,
  MGR_DICT_GET, /* key [, default] -> value */
  MGR_DICT_SET,
  MGR_DICT_DEL,
  MGR_DICT_CONTAINS, /* -> u8 */
  MGR_DICT_LEN,      /* -> u64 */
  MGR_DICT_KEYS,
  MGR_DICT_VALUES,
  MGR_DICT_ITEMS,
  MGR_DICT_UPDATE, /* k, v, k, v, ... */
  MGR_DICT_POP,
  MGR_DICT_CLEAR,
  MGR_DICT_SETDEFAULT,
  MGR_DICT_INCR, /* key, i64 delta -> i64 */
  MGR_DICT_CAS,  /* key, u8 expect_present, expected, desired -> u8 swapped */
  MGR_LIST_APPEND,
  MGR_LIST_EXTEND,
  MGR_LIST_INSERT, /* i64, v */
  MGR_LIST_INDEX,  /* v -> u64 */
  MGR_LIST_COUNT,  /* v -> u64 */
  MGR_LIST_REMOVE,
  MGR_LIST_POP,   /* i64 -> v */
  MGR_LIST_GET,   /* i64 -> v */
  MGR_LIST_SET,   /* i64, v */
  MGR_LIST_DEL,   /* i64 */
  MGR_LIST_SLICE, /* i64, i64 -> values */
  MGR_LIST_LEN,
  MGR_LOCK_ACQUIRE, /* i64 timeout_ms (a Lock or an RLock) */
  MGR_LOCK_RELEASE,
  MGR_SEM_ACQUIRE, /* i64 timeout_ms */
  MGR_SEM_RELEASE,
  MGR_SEM_VALUE, /* -> u64 */
  MGR_EVENT_SET,
  MGR_EVENT_CLEAR,
  MGR_EVENT_IS_SET, /* -> u8 */
  MGR_EVENT_WAIT,   /* i64 timeout_ms */
  MGR_COND_WAIT,    /* i64 timeout_ms */
  MGR_COND_NOTIFY,  /* i64 n (< 0: all) */
  MGR_BARRIER_WAIT, /* i64 timeout_ms -> u64 index */
  MGR_BARRIER_ABORT,
  MGR_BARRIER_RESET,
  MGR_BARRIER_STATE, /* -> u64 parties, u64 n_waiting, u8 broken */
  MGR_VALUE_GET,     /* u8 type -> value */
  MGR_VALUE_SET,     /* u8 type, value */
  MGR_VALUE_ADD,     /* u8 type, 8-byte delta -> 8-byte new value */
  MGR_ARRAY_GET,     /* i64 offset, i64 length -> bytes */
  MGR_ARRAY_SET,     /* i64 offset, bytes */
  MGR_ARRAY_LEN,     /* -> u64 */
  MGR_QUEUE_PUT,     /* i64 timeout_ms, item */
  MGR_QUEUE_GET,     /* i64 timeout_ms -> item */
  MGR_QUEUE_SIZE,    /* -> u64 qsize, u64 maxsize (0: none) */
  MGR_QUEUE_TASK_DONE,
  MGR_QUEUE_JOIN,  /* i64 timeout_ms */
  MGR_CUSTOM_CALL, /* method name, args... -> the method's items */
  MGR_OP_END_
} mproc__mgr_op;

/* Object kinds in the server's table (MGR_CREATE's argument), and the parameters MGR_CREATE takes after
 * the name: a semaphore i64 value; a condition i64 lock id (0: a new RLock of its own); a barrier i64
 * parties; a value u8 type and its initial bytes; an array its initial bytes; a queue i64 maxsize (0:
 * none). The others none. */
typedef enum mproc__mgr_kind {
  MGR_KIND_DICT = 1,
  MGR_KIND_LIST,
  MGR_KIND_NAMESPACE,
  MGR_KIND_LOCK,
  MGR_KIND_RLOCK,
  MGR_KIND_SEMAPHORE,
  MGR_KIND_BOUNDED_SEMAPHORE,
  MGR_KIND_EVENT,
  MGR_KIND_CONDITION,
  MGR_KIND_BARRIER,
  MGR_KIND_VALUE,
  MGR_KIND_ARRAY,
  MGR_KIND_QUEUE,
  MGR_KIND_JOINABLE_QUEUE,
  MGR_KIND_CUSTOM, /* parameter: the type's name */
  MGR_KIND_END_
} mproc__mgr_kind;

/* A managed Value's type (MGR_VALUE_*'s first argument). */
enum { MGR_VALUE_I64 = 1, MGR_VALUE_F64, MGR_VALUE_BYTES };

#define MGR_REQ_HEADER 20
#define MGR_REP_HEADER 12

/* One byte string of a message: points into the message. */
typedef struct mproc__mgr_item {
  const char *p;
  size_t n;
} mproc__mgr_item;

void mproc__mgr_put_u32(mproc__buf *b, uint32_t v); /* into reserved room: callers reserve first */
uint32_t mproc__mgr_get_u32(const char *p);
uint64_t mproc__mgr_get_u64(const char *p);
/* Append one item (u32 size, bytes). 0 or MPROC_ENOMEM. */
int mproc__mgr_put_item(mproc__buf *b, const void *p, size_t n);
int mproc__mgr_put_i64_item(mproc__buf *b, int64_t v);
/* An 8-byte item as an integer: 0, or MPROC_EINVAL when it is not 8 bytes. */
int mproc__mgr_item_i64(mproc__mgr_item it, int64_t *v);
/* Parse `count` items filling exactly p[0..n): *items is allocated (NULL for none). 0, MPROC_EINVAL (does
 * not parse: the count cannot fit, an item runs past the end, bytes left over), MPROC_ENOMEM. */
int mproc__mgr_parse_items(const char *p, size_t n, uint32_t count, mproc__mgr_item **items);

/* The server (server.c). The server process's target: connections[0] is the control pipe to the
 * starter, the argument bytes are u32 family | item address (may be empty) | the types
 * (mproc__mgr_types_encode). */
int mproc__manager_server_main(const mproc_args *a);

/* Custom types for the server process: u32 count | items: per type its name, u64 state_size, the
 * destroy's reference (mproc__pal_fn_locate; empty: none), u64 method count, then per method its name
 * and its function's reference. encode: 0, MPROC_EINVAL (a NULL or empty name, no fn), MPROC_ENOENT
 * (a function that cannot be found again), MPROC_ENOMEM. decode: a table to free with
 * mproc__mgr_types_free, or an error (malformed, a function not found). */
int mproc__mgr_types_check(const mproc_mtype *types, size_t n, const char *call); /* the arguments */
int mproc__mgr_types_encode(const mproc_mtype *types, size_t n, mproc__buf *out);
int mproc__mgr_types_decode(const char *p, size_t len, mproc_mtype **types, size_t *n);
void mproc__mgr_types_free(mproc_mtype *types, size_t n);

/* The request handler alone, for the fuzz target: a server with no listener. feed hands one request
 * from the client on conn (the server owns conn from its first request on, and destroys it when it drops
 * the client): 0 (answered on conn), MPROC_ETIMEDOUT (a call waits: the client sends nothing until it
 * is answered, and feed ignores what it does send), or MPROC_ECLOSED (the client was dropped, conn
 * destroyed: a request that does not parse, or a reply that could not be sent). */
typedef struct mproc__mgr_server mproc__mgr_server;
mproc__mgr_server *mproc__mgr_server_new(void);
void mproc__mgr_server_set_types(mproc__mgr_server *s, const mproc_mtype *types, size_t n); /* borrowed */
int mproc__mgr_server_feed(mproc__mgr_server *s, mproc_connection *conn, const void *msg, size_t len);
void mproc__mgr_server_free(mproc__mgr_server *s);

/* The manager handle's handable type (client.c). */
struct mproc__handable_type;
extern const struct mproc__handable_type mproc__manager_handable;

#endif
