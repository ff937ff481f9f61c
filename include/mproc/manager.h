/*
 * mproc/manager.h: the server-process way of sharing state: a process that holds dicts, lists,
 * namespaces and locks, and serves them to every process that has the manager (or its address and
 * authkey).
 * Python counterparts: multiprocessing.Manager() / SyncManager, managers.BaseManager (start, connect,
 * shutdown, serve_forever, address), DictProxy, ListProxy, Namespace, the managed Lock.
 *
 *   mproc_manager *m;
 *   mproc_manager_start(&m, NULL);                        // a server process, the default start method
 *   mproc_mdict d;
 *   mproc_manager_dict(m, &d, MPROC_INFINITE);            // a dict in the server
 *   mproc_mdict_set(m, d, "k", 1, "v", 1, MPROC_INFINITE);
 *   // hand m to a child (mproc_object_manager(m) in mproc_process_opts.objects) and d in its argument
 *   // bytes: the child calls mproc_mdict_get(m, d, ...) on the same dict
 *   mproc_manager_destroy(m);                             // shuts the server down (the scoped form)
 *
 * OBJECTS. A dict, list, namespace, lock, ... lives in the server, named by a small value (mproc_mdict,
 * mproc_mlist, mproc_mnamespace, mproc_mlock, ...): the server's table index and a generation, never an
 * address. Copy it freely, put it in a child's argument bytes or send it over a connection; any
 * process connected to the same server uses it. An object lives until mproc_manager_drop or the
 * server's end (unlike CPython, whose proxies count references). An id of a dropped object, of another
 * kind or of no object gives MPROC_EINVAL.
 *
 * Keys and values are byte strings (any bytes, any size up to MPROC_MANAGER_MAX_MESSAGE together).
 * Every call that returns bytes allocates them: one value comes back NUL-terminated (the NUL not
 * counted); lists come back as one array of mproc_bytes whose strings follow it in the same block.
 * Release either with mproc_free(). "No such item" is MPROC_ENOENT everywhere: a missing key
 * (KeyError), a value not in a list (ValueError), an index out of range (IndexError), a pop from an
 * empty list.
 *
 * CALLS. Every call takes a timeout in milliseconds for the whole round trip (connecting included);
 * MPROC_ETIMEDOUT when it runs out. A call whose reply has not come in time, or whose server has gone
 * (shut down, died: MPROC_EPIPE), closes this handle's connection: the server then lets go of what the
 * connection held (a managed lock passes on with MPROC_EOWNERDEAD), and the next call connects again.
 * Calls on one handle are serialized (thread-safe, one call at a time): a thread blocked in
 * mproc_mlock_acquire holds up the handle's other threads, so threads that wait on locks should
 * mproc_manager_connect a handle each. A handle handed to a fork child connects anew there on its first
 * call (the connection is never shared between processes); as with any lock, fork while no other thread
 * is in a call on that handle.
 *
 * THE SERVER. One thread serves every client: it waits on the listener and every connection at once
 * (mproc_wait) and answers each request in turn; a call that must wait (an acquire, a get, ...) is
 * answered later (deferred), when it can be or its timeout runs out, so a blocked call never stalls
 * the other clients; it accepts when the wait reports the listener ready (no polling). A client's requests
 * are answered in order; a client whose
 * call waits sends nothing until its reply (its connection is watched for its end only: a request then closes it). A
 * request longer than MPROC_MANAGER_MAX_MESSAGE, or one that does not parse, closes that client's connection (what it
 * held is let go) and nothing else; the server allocates in proportion to what arrived. Replies are written with
 * blocking sends: a client that stops reading its replies while sending requests can hold the server up (clients have
 * proved the authkey; see mproc/listener.h, SECURITY). The server ends on mproc_manager_shutdown, on the destroy of the
 * handle that started it, and when the process that started it ends.
 *
 * SECURITY. Every client proves the authkey (by default the starter's process authkey, which its
 * children inherit) before anything is served; the default address is one only this user can reach
 * (mproc/listener.h). The bytes are not encrypted: see mproc/listener.h, SECURITY, before listening
 * on TCP. A POSIX build without OpenSSL's libcrypto has no authkeys, so start, connect and
 * serve_forever give MPROC_ENOTSUP there.
 *
 * WAITING CALLS. Every call that can wait (a Lock's or RLock's acquire, a Semaphore's acquire, an
 * Event's wait, a Condition's wait, a Barrier's wait, a Queue's put, get and join) waits in the server,
 * up to its timeout_ms (0: try once, MPROC_INFINITE: for ever), as a deferred reply: a blocked call never
 * stalls another client. Its reply is waited for up to 2 s beyond timeout_ms before the server counts as
 * hung (MPROC_ETIMEDOUT, the connection closed). What a connection that ends (its process died, or a
 * call timed out on the client's side) leaves behind: the locks and rlocks it held pass on with
 * MPROC_EOWNERDEAD; a barrier it waited at breaks (MPROC_EBROKEN for the others, as a local barrier whose
 * waiter died); a put it waited in is dropped with its item; semaphores have no holder (the count stays
 * as it was), and the tasks of a joinable queue it got stay unfinished (unlike mproc_queue's, which
 * writes a dead consumer's off): a join then waits for them. An item given to a get whose process dies
 * as the reply travels is lost with it, as in Python.
 *
 */
#ifndef MPROC_MANAGER_H
#define MPROC_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/core.h"
#include "mproc/listener.h"
#include "mproc/mproc_export.h"
#include "mproc/object.h"
#include "mproc/pool.h" /* mproc_bytes */
#include "mproc/process.h"
#include "mproc/sync.h" /* MPROC_SEM_VALUE_MAX */

#ifdef __cplusplus
extern "C" {
#endif

/* The largest request or reply: 64 MiB. A value, or the keys and values of one call, must fit. */
#define MPROC_MANAGER_MAX_MESSAGE ((size_t)64 << 20)

typedef struct mproc_manager mproc_manager;

/* Options for start, connect and serve_forever. All-zero means the defaults. Read only during the
 * call. */
typedef struct mproc_manager_opts {
  /* start / serve_forever: where to listen (NULL: the default family with a generated address only this
   * user can reach; see mproc/listener.h). connect: required, the manager's address. */
  const char *address;
  mproc_family family; /* DEFAULT: inferred from the address */
  /* The key clients prove (HMAC handshake, mproc/listener.h). NULL with size 0: this process's authkey
   * (mproc_current_process_authkey), as Python's managers. An empty key (authkey set, size 0) is a key. */
  const void *authkey;
  size_t authkey_size;
  /* start: how the server process starts (DEFAULT: the context's, else the global method). */
  mproc_start_method start_method;
  const mproc_context *context;
  /* start / serve_forever: custom types the server holds (BaseManager.register), type_count of them;
   * read during the call. See "Custom types" below. */
  const struct mproc_mtype *types;
  size_t type_count;
  /* serve_forever: called once the server listens, with its address (for a generated one). */
  void (*on_listening)(const char *address, void *arg);
  void *on_listening_arg;
} mproc_manager_opts;

/* BaseManager.start(): start a server process and connect to it. opts NULL: the defaults. The server
 * is killed if this process dies (kill_on_parent_death), and shut down by mproc_manager_shutdown or
 * mproc_manager_destroy. Errors: MPROC_EINVAL, MPROC_ENOMEM, those of mproc_process_start and of
 * mproc_listener_create (in the server: MPROC_EEXIST for an address in use, ...), MPROC_ESYS. */
MPROC_API int mproc_manager_start(mproc_manager **out, const mproc_manager_opts *opts);

/* BaseManager(address, authkey).connect(): a handle on a manager started elsewhere (mproc's server; a
 * Python manager speaks pickle and is not understood). The connection is made here, within timeout_ms.
 * Errors: MPROC_EINVAL (no address), MPROC_ENOENT (nothing listens there), MPROC_EAUTH (wrong key),
 * MPROC_ETIMEDOUT, and those of mproc_client. */
MPROC_API int mproc_manager_connect(mproc_manager **out, const mproc_manager_opts *opts, int64_t timeout_ms);

/* The server's address (Manager.address), in the form connect takes. Owned by the handle. */
MPROC_API const char *mproc_manager_address(const mproc_manager *m);

/* Manager.shutdown(): ask the server to end and wait for it, up to timeout_ms. For the handle that
 * started it, the server process is joined (killed if it has not ended in time: MPROC_ETIMEDOUT then);
 * any other handle asks the server over its connection (a serve_forever program ends its serve_forever).
 * Clients still connected get MPROC_EPIPE on their next call. Calls on this handle afterwards give
 * MPROC_ECLOSED. Errors: MPROC_ECLOSED (shut down already), MPROC_ETIMEDOUT, MPROC_EPIPE. */
MPROC_API int mproc_manager_shutdown(mproc_manager *m, int64_t timeout_ms);

/* Free the handle. A handle that started its server shuts it down first (waiting up to 10 s, then
 * killing it): the scoped form, `with Manager() as m:`. NULL is ignored. */
MPROC_API void mproc_manager_destroy(mproc_manager *m);

/* BaseManager.get_server().serve_forever(): this process is the server. Listens (opts as for start),
 * calls opts->on_listening, and serves until a client's mproc_manager_shutdown: 0 then. Errors: those
 * of mproc_listener_create, MPROC_ENOMEM. */
MPROC_API int mproc_manager_serve_forever(const mproc_manager_opts *opts);

/* For mproc_process_opts.objects: the child gets a handle (mproc_manager *) on the same server, which
 * connects on its first call, with the address and authkey (under every start method). */
static inline mproc_object mproc_object_manager(mproc_manager *m) { return mproc_object_make(MPROC_OBJECT_MANAGER, m); }

/* Byte strings in and out of the calls that take or return several (update, extend; keys, values,
 * items, slices) are mproc_bytes {data, len} (mproc/pool.h). Those returned are NUL-terminated (the NUL
 * not counted in len). */

/* Objects in a manager. Plain values: copy them, hand them to other processes in bytes. */
typedef struct mproc_mdict {
  uint64_t id;
} mproc_mdict;
typedef struct mproc_mlist {
  uint64_t id;
} mproc_mlist;
typedef struct mproc_mnamespace {
  uint64_t id;
} mproc_mnamespace;
typedef struct mproc_mlock {
  uint64_t id;
} mproc_mlock;

/* Manager.dict() / list() / Namespace() / Lock(): a new empty object in the server. Errors (every call
 * below has these too): MPROC_ETIMEDOUT, MPROC_EPIPE (the server has gone), MPROC_ECLOSED (the handle
 * was shut down), MPROC_ENOMEM (here or in the server), MPROC_EINVAL, and those of connecting. */
MPROC_API int mproc_manager_dict(mproc_manager *m, mproc_mdict *out, int64_t timeout_ms);
MPROC_API int mproc_manager_list(mproc_manager *m, mproc_mlist *out, int64_t timeout_ms);
MPROC_API int mproc_manager_namespace(mproc_manager *m, mproc_mnamespace *out, int64_t timeout_ms);
MPROC_API int mproc_manager_lock(mproc_manager *m, mproc_mlock *out, int64_t timeout_ms);
/* The object of that name (a non-empty string), made empty on first use; every handle on the server that
 * asks for the name gets the same object: how programs that did not start each other find theirs (as
 * BaseManager.register('get_dict', ...) does with a function of the server). MPROC_EINVAL: the name
 * belongs to an object of another kind. A dropped object's name is free again. */
MPROC_API int mproc_manager_dict_named(mproc_manager *m, const char *name, mproc_mdict *out, int64_t timeout_ms);
MPROC_API int mproc_manager_list_named(mproc_manager *m, const char *name, mproc_mlist *out, int64_t timeout_ms);
MPROC_API int mproc_manager_namespace_named(mproc_manager *m, const char *name, mproc_mnamespace *out,
                                            int64_t timeout_ms);
MPROC_API int mproc_manager_lock_named(mproc_manager *m, const char *name, mproc_mlock *out, int64_t timeout_ms);
/* Free an object in the server (pass its .id). Its id is then no object's: MPROC_EINVAL. A lock is
 * dropped with its waiters, who get MPROC_EINVAL. */
MPROC_API int mproc_manager_drop(mproc_manager *m, uint64_t id, int64_t timeout_ms);

/* ---- dict ------------------------------------------------------------------------------------- */

/* d[key]: *value (mproc_free). MPROC_ENOENT: no such key. */
MPROC_API int mproc_mdict_get(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, char **value,
                              size_t *value_size, int64_t timeout_ms);
/* d.get(key, default): as get, with a copy of def (NULL with size 0: an empty value) for a missing key. */
MPROC_API int mproc_mdict_get_default(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size,
                                      const void *def, size_t def_size, char **value, size_t *value_size,
                                      int64_t timeout_ms);
/* d[key] = value. */
MPROC_API int mproc_mdict_set(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, const void *value,
                              size_t value_size, int64_t timeout_ms);
/* del d[key]. MPROC_ENOENT: no such key. */
MPROC_API int mproc_mdict_delete(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, int64_t timeout_ms);
/* key in d. */
MPROC_API int mproc_mdict_contains(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, bool *found,
                                   int64_t timeout_ms);
/* len(d). */
MPROC_API int mproc_mdict_len(mproc_manager *m, mproc_mdict d, size_t *len, int64_t timeout_ms);
/* d.keys() / d.values(): in insertion order, *count strings in one block *out (mproc_free; NULL when
 * *count is 0). d.items(): 2 * *count strings, key then value. */
MPROC_API int mproc_mdict_keys(mproc_manager *m, mproc_mdict d, mproc_bytes **out, size_t *count, int64_t timeout_ms);
MPROC_API int mproc_mdict_values(mproc_manager *m, mproc_mdict d, mproc_bytes **out, size_t *count, int64_t timeout_ms);
MPROC_API int mproc_mdict_items(mproc_manager *m, mproc_mdict d, mproc_bytes **out, size_t *count, int64_t timeout_ms);
/* d.update(pairs): pairs holds 2 * npairs strings, key then value, set in order as one request (no
 * other client's call runs in between). */
MPROC_API int mproc_mdict_update(mproc_manager *m, mproc_mdict d, const mproc_bytes *pairs, size_t npairs,
                                 int64_t timeout_ms);
/* d.pop(key): the value, removed. MPROC_ENOENT: no such key. */
MPROC_API int mproc_mdict_pop(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, char **value,
                              size_t *value_size, int64_t timeout_ms);
/* d.clear(). */
MPROC_API int mproc_mdict_clear(mproc_manager *m, mproc_mdict d, int64_t timeout_ms);
/* d.setdefault(key, def): the value of key, set to def first if missing. */
MPROC_API int mproc_mdict_setdefault(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, const void *def,
                                     size_t def_size, char **value, size_t *value_size, int64_t timeout_ms);
/* Beyond Python: d[key] += delta, atomically in the server (no lock needed for a counter). The value
 * is a decimal integer in text ("-42"; as mproc_mdict_get shows it), a missing key counts as 0, and
 * *result (may be NULL) is the new value. MPROC_EINVAL: the value is not such an integer, or the sum
 * leaves int64_t (nothing changes). */
MPROC_API int mproc_mdict_increment(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, int64_t delta,
                                    int64_t *result, int64_t timeout_ms);
/* Beyond Python: compare-and-set, atomically in the server: if the key's value is exactly `expected`
 * (expected NULL: if the key is missing), set it to `desired`, *swapped true; else change nothing,
 * *swapped false. */
MPROC_API int mproc_mdict_compare_set(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size,
                                      const void *expected, size_t expected_size, const void *desired,
                                      size_t desired_size, bool *swapped, int64_t timeout_ms);

/* ---- list ------------------------------------------------------------------------------------- */
/* Indexes as Python's: negative ones count from the end. */

/* l.append(v) / l.extend(values): values in order, as one request. */
MPROC_API int mproc_mlist_append(mproc_manager *m, mproc_mlist l, const void *value, size_t value_size,
                                 int64_t timeout_ms);
MPROC_API int mproc_mlist_extend(mproc_manager *m, mproc_mlist l, const mproc_bytes *values, size_t count,
                                 int64_t timeout_ms);
/* l.insert(index, v): before index, clamped to the list as Python's. */
MPROC_API int mproc_mlist_insert(mproc_manager *m, mproc_mlist l, int64_t index, const void *value, size_t value_size,
                                 int64_t timeout_ms);
/* l.index(v): the first index holding v. MPROC_ENOENT: none. */
MPROC_API int mproc_mlist_index(mproc_manager *m, mproc_mlist l, const void *value, size_t value_size, size_t *index,
                                int64_t timeout_ms);
/* l.count(v). */
MPROC_API int mproc_mlist_count(mproc_manager *m, mproc_mlist l, const void *value, size_t value_size, size_t *count,
                                int64_t timeout_ms);
/* l.remove(v): the first v. MPROC_ENOENT: none. */
MPROC_API int mproc_mlist_remove(mproc_manager *m, mproc_mlist l, const void *value, size_t value_size,
                                 int64_t timeout_ms);
/* l.pop(index) (index -1: the last): the value, removed. MPROC_ENOENT: out of range or empty. */
MPROC_API int mproc_mlist_pop(mproc_manager *m, mproc_mlist l, int64_t index, char **value, size_t *value_size,
                              int64_t timeout_ms);
/* l[index] / l[index] = v / del l[index]. MPROC_ENOENT: out of range. */
MPROC_API int mproc_mlist_get(mproc_manager *m, mproc_mlist l, int64_t index, char **value, size_t *value_size,
                              int64_t timeout_ms);
MPROC_API int mproc_mlist_set(mproc_manager *m, mproc_mlist l, int64_t index, const void *value, size_t value_size,
                              int64_t timeout_ms);
MPROC_API int mproc_mlist_delete(mproc_manager *m, mproc_mlist l, int64_t index, int64_t timeout_ms);
/* l[start:stop] (clamped as Python's; stop INT64_MAX: to the end): *count strings in one block *out
 * (mproc_free; NULL when *count is 0). */
MPROC_API int mproc_mlist_slice(mproc_manager *m, mproc_mlist l, int64_t start, int64_t stop, mproc_bytes **out,
                                size_t *count, int64_t timeout_ms);
/* len(l). */
MPROC_API int mproc_mlist_len(mproc_manager *m, mproc_mlist l, size_t *len, int64_t timeout_ms);

/* ---- Namespace: named attributes (NUL-terminated names, byte-string values) -------------------- */

/* getattr(ns, name): MPROC_ENOENT: no such attribute (AttributeError). */
MPROC_API int mproc_mnamespace_get(mproc_manager *m, mproc_mnamespace ns, const char *name, char **value,
                                   size_t *value_size, int64_t timeout_ms);
MPROC_API int mproc_mnamespace_set(mproc_manager *m, mproc_mnamespace ns, const char *name, const void *value,
                                   size_t value_size, int64_t timeout_ms);
/* delattr: MPROC_ENOENT: no such attribute. */
MPROC_API int mproc_mnamespace_delete(mproc_manager *m, mproc_mnamespace ns, const char *name, int64_t timeout_ms);
/* The names, in the order first set: *count strings in one block (mproc_free). */
MPROC_API int mproc_mnamespace_list(mproc_manager *m, mproc_mnamespace ns, mproc_bytes **names, size_t *count,
                                    int64_t timeout_ms);

/* ---- Lock ------------------------------------------------------------------------------------- */

/* Manager().Lock(): held by a connection (the handle that acquired it). acquire waits up to timeout_ms
 * in the server (0: try): 0, MPROC_ETIMEDOUT (not acquired), or MPROC_EOWNERDEAD: acquired, but the
 * connection that held it ended without releasing (its process died, or its call timed out): check the
 * data it protects, as for mproc_lock_acquire. The reply is waited for up to 2 s beyond timeout_ms
 * before the server counts as hung. Waiters are served first come, first served. A handle that
 * acquires a lock it holds waits (a Lock, not an RLock). */
MPROC_API int mproc_mlock_acquire(mproc_manager *m, mproc_mlock l, int64_t timeout_ms);
/* release(): any handle may release a Lock (as Python's). MPROC_ESTATE: not locked. An RLock: see
 * mproc_manager_rlock. */
MPROC_API int mproc_mlock_release(mproc_manager *m, mproc_mlock l, int64_t timeout_ms);

/* ---- RLock ------------------------------------------------------------------------------------ */

/* Manager().RLock(): an mproc_mlock whose holder is one connection (a handle) with a count:
 * mproc_mlock_acquire by the holder counts up at once, mproc_mlock_release counts down and frees it at 0;
 * a release by another handle, or of an rlock not held, gives MPROC_ENOTOWNER. Errors as
 * mproc_manager_dict. */
MPROC_API int mproc_manager_rlock(mproc_manager *m, mproc_mlock *out, int64_t timeout_ms);
MPROC_API int mproc_manager_rlock_named(mproc_manager *m, const char *name, mproc_mlock *out, int64_t timeout_ms);

/* ---- Semaphore and BoundedSemaphore ------------------------------------------------------------- */

typedef struct mproc_msemaphore {
  uint64_t id;
} mproc_msemaphore;

/* Manager().Semaphore(value) / BoundedSemaphore(value): value <= MPROC_SEM_VALUE_MAX (MPROC_EINVAL
 * otherwise). The _named forms make it with `value` on first use; later calls get it as it is. */
MPROC_API int mproc_manager_semaphore(mproc_manager *m, uint32_t value, mproc_msemaphore *out, int64_t timeout_ms);
MPROC_API int mproc_manager_bounded_semaphore(mproc_manager *m, uint32_t value, mproc_msemaphore *out,
                                              int64_t timeout_ms);
MPROC_API int mproc_manager_semaphore_named(mproc_manager *m, const char *name, uint32_t value, mproc_msemaphore *out,
                                            int64_t timeout_ms);
MPROC_API int mproc_manager_bounded_semaphore_named(mproc_manager *m, const char *name, uint32_t value,
                                                    mproc_msemaphore *out, int64_t timeout_ms);
/* acquire(timeout): 0 or MPROC_ETIMEDOUT. Waiters are served first come, first served. */
MPROC_API int mproc_msemaphore_acquire(mproc_manager *m, mproc_msemaphore s, int64_t timeout_ms);
/* release(): MPROC_ESTATE (nothing changes) above MPROC_SEM_VALUE_MAX, or for a BoundedSemaphore above
 * its initial value, as mproc_semaphore_release. */
MPROC_API int mproc_msemaphore_release(mproc_manager *m, mproc_msemaphore s, int64_t timeout_ms);
/* get_value(). */
MPROC_API int mproc_msemaphore_value(mproc_manager *m, mproc_msemaphore s, uint32_t *value, int64_t timeout_ms);

/* ---- Event -------------------------------------------------------------------------------------- */

typedef struct mproc_mevent {
  uint64_t id;
} mproc_mevent;

MPROC_API int mproc_manager_event(mproc_manager *m, mproc_mevent *out, int64_t timeout_ms);
MPROC_API int mproc_manager_event_named(mproc_manager *m, const char *name, mproc_mevent *out, int64_t timeout_ms);
/* set() (every waiter wakes), clear(), is_set(). */
MPROC_API int mproc_mevent_set(mproc_manager *m, mproc_mevent e, int64_t timeout_ms);
MPROC_API int mproc_mevent_clear(mproc_manager *m, mproc_mevent e, int64_t timeout_ms);
MPROC_API int mproc_mevent_is_set(mproc_manager *m, mproc_mevent e, bool *set, int64_t timeout_ms);
/* wait(timeout): 0 once set, MPROC_ETIMEDOUT. */
MPROC_API int mproc_mevent_wait(mproc_manager *m, mproc_mevent e, int64_t timeout_ms);

/* ---- Condition ---------------------------------------------------------------------------------- */

/* A condition and its lock (acquire and release that with mproc_mlock_acquire / _release). */
typedef struct mproc_mcondition {
  uint64_t id;
  mproc_mlock lock;
} mproc_mcondition;

/* Manager().Condition(lock): over a managed Lock or RLock of the same server; lock NULL: a new RLock of
 * its own (dropped with the condition). MPROC_EINVAL: the lock is no lock of this server. */
MPROC_API int mproc_manager_condition(mproc_manager *m, const mproc_mlock *lock, mproc_mcondition *out,
                                      int64_t timeout_ms);
MPROC_API int mproc_manager_condition_named(mproc_manager *m, const char *name, const mproc_mlock *lock,
                                            mproc_mcondition *out, int64_t timeout_ms);
/* wait(timeout): with the lock held by this handle: release it (every level of an RLock), wait up to
 * timeout_ms for a notify, take it back (for as long as that takes, as Python's), at its old level.
 * 0 (notified), MPROC_ETIMEDOUT (not notified; the lock is held again), MPROC_EOWNERDEAD (the lock was
 * taken back from a holder whose connection ended), MPROC_ENOTOWNER (this handle does not hold the lock:
 * nothing waits). If the reply itself does not come in time (taking the lock back took longer than
 * timeout_ms + 2 s), MPROC_ETIMEDOUT with the connection closed: the lock is then not held. */
MPROC_API int mproc_mcondition_wait(mproc_manager *m, mproc_mcondition c, int64_t timeout_ms);
/* wait_for(predicate, timeout): a loop in this process, as Python's: pred(ctx) is checked with the lock
 * held, first and after each wake-up, until it is true (0) or the time is up (MPROC_ETIMEDOUT); other
 * errors as wait. */
MPROC_API int mproc_mcondition_wait_for(mproc_manager *m, mproc_mcondition c, bool (*pred)(void *ctx), void *ctx,
                                        int64_t timeout_ms);
/* notify(n) / notify_all(): wake at most n of the handles waiting now (the longest waiting first), with
 * the lock held by this handle (MPROC_ENOTOWNER otherwise). */
MPROC_API int mproc_mcondition_notify(mproc_manager *m, mproc_mcondition c, uint32_t n, int64_t timeout_ms);
MPROC_API int mproc_mcondition_notify_all(mproc_manager *m, mproc_mcondition c, int64_t timeout_ms);

/* ---- Barrier ------------------------------------------------------------------------------------ */

typedef struct mproc_mbarrier {
  uint64_t id;
} mproc_mbarrier;

/* Manager().Barrier(parties): parties 1..INT32_MAX. No action: Python's runs in the server process,
 * where a C program's function does not exist; run it in the waiter that gets index 0, after the wait.
 * No default timeout: every wait takes its own. */
MPROC_API int mproc_manager_barrier(mproc_manager *m, uint32_t parties, mproc_mbarrier *out, int64_t timeout_ms);
MPROC_API int mproc_manager_barrier_named(mproc_manager *m, const char *name, uint32_t parties, mproc_mbarrier *out,
                                          int64_t timeout_ms);
/* wait(timeout): until `parties` handles wait; *index (may be NULL) gets this one's arrival index,
 * 0 .. parties-1. MPROC_EBROKEN if the barrier is or becomes broken: a wait's time ran out (that waiter
 * breaks it and gets MPROC_EBROKEN too, as Python's), abort or reset was called, or a waiting handle's
 * connection ended. */
MPROC_API int mproc_mbarrier_wait(mproc_manager *m, mproc_mbarrier b, uint32_t *index, int64_t timeout_ms);
/* abort(): broken until reset; the waiters get MPROC_EBROKEN. reset(): back to empty; the waiters of the
 * moment get MPROC_EBROKEN. */
MPROC_API int mproc_mbarrier_abort(mproc_manager *m, mproc_mbarrier b, int64_t timeout_ms);
MPROC_API int mproc_mbarrier_reset(mproc_manager *m, mproc_mbarrier b, int64_t timeout_ms);
/* parties, n_waiting, broken (each may be NULL), at one moment. */
MPROC_API int mproc_mbarrier_state(mproc_manager *m, mproc_mbarrier b, uint32_t *parties, uint32_t *n_waiting,
                                   bool *broken, int64_t timeout_ms);

/* ---- Value and Array ---------------------------------------------------------------------------- */

typedef struct mproc_mvalue {
  uint64_t id;
} mproc_mvalue;
typedef struct mproc_marray {
  uint64_t id;
} mproc_marray;

/* Manager().Value(typecode, value): an int64_t, a double or a byte string, with its initial value. The
 * _named forms make it with that value on first use. */
MPROC_API int mproc_manager_value_i64(mproc_manager *m, int64_t value, mproc_mvalue *out, int64_t timeout_ms);
MPROC_API int mproc_manager_value_f64(mproc_manager *m, double value, mproc_mvalue *out, int64_t timeout_ms);
MPROC_API int mproc_manager_value_bytes(mproc_manager *m, const void *value, size_t size, mproc_mvalue *out,
                                        int64_t timeout_ms);
MPROC_API int mproc_manager_value_i64_named(mproc_manager *m, const char *name, int64_t value, mproc_mvalue *out,
                                            int64_t timeout_ms);
MPROC_API int mproc_manager_value_f64_named(mproc_manager *m, const char *name, double value, mproc_mvalue *out,
                                            int64_t timeout_ms);
MPROC_API int mproc_manager_value_bytes_named(mproc_manager *m, const char *name, const void *value, size_t size,
                                              mproc_mvalue *out, int64_t timeout_ms);
/* value.value and value.value = x. MPROC_EINVAL: the value is of another type. */
MPROC_API int mproc_mvalue_get_i64(mproc_manager *m, mproc_mvalue v, int64_t *value, int64_t timeout_ms);
MPROC_API int mproc_mvalue_set_i64(mproc_manager *m, mproc_mvalue v, int64_t value, int64_t timeout_ms);
MPROC_API int mproc_mvalue_get_f64(mproc_manager *m, mproc_mvalue v, double *value, int64_t timeout_ms);
MPROC_API int mproc_mvalue_set_f64(mproc_manager *m, mproc_mvalue v, double value, int64_t timeout_ms);
/* A bytes value: *value NUL-terminated (mproc_free). */
MPROC_API int mproc_mvalue_get_bytes(mproc_manager *m, mproc_mvalue v, char **value, size_t *size, int64_t timeout_ms);
MPROC_API int mproc_mvalue_set_bytes(mproc_manager *m, mproc_mvalue v, const void *value, size_t size,
                                     int64_t timeout_ms);
/* Beyond Python: value += delta atomically in the server; *result (may be NULL) the new value. An
 * int64_t that would leave its range: MPROC_EINVAL, nothing changes. */
MPROC_API int mproc_mvalue_add_i64(mproc_manager *m, mproc_mvalue v, int64_t delta, int64_t *result,
                                   int64_t timeout_ms);
MPROC_API int mproc_mvalue_add_f64(mproc_manager *m, mproc_mvalue v, double delta, double *result, int64_t timeout_ms);

/* Manager().Array: a fixed number of bytes (any element type is the caller's: read and write ranges).
 * init NULL: zeros. size <= MPROC_MANAGER_MAX_MESSAGE less a little (the request carries it). */
MPROC_API int mproc_manager_array(mproc_manager *m, const void *init, size_t size, mproc_marray *out,
                                  int64_t timeout_ms);
MPROC_API int mproc_manager_array_named(mproc_manager *m, const char *name, const void *init, size_t size,
                                        mproc_marray *out, int64_t timeout_ms);
/* a[offset:offset+size] into buf / from data, as one request. MPROC_ENOENT: the range leaves the array. */
MPROC_API int mproc_marray_get(mproc_manager *m, mproc_marray a, size_t offset, void *buf, size_t size,
                               int64_t timeout_ms);
MPROC_API int mproc_marray_set(mproc_manager *m, mproc_marray a, size_t offset, const void *data, size_t size,
                               int64_t timeout_ms);
/* len(a), in bytes. */
MPROC_API int mproc_marray_len(mproc_manager *m, mproc_marray a, size_t *len, int64_t timeout_ms);

/* ---- Queue and JoinableQueue -------------------------------------------------------------------- */

typedef struct mproc_mqueue {
  uint64_t id;
} mproc_mqueue;

/* Manager().Queue(maxsize) / JoinableQueue(maxsize): items are byte strings; maxsize 0: no bound. */
MPROC_API int mproc_manager_queue(mproc_manager *m, size_t maxsize, mproc_mqueue *out, int64_t timeout_ms);
MPROC_API int mproc_manager_joinable_queue(mproc_manager *m, size_t maxsize, mproc_mqueue *out, int64_t timeout_ms);
MPROC_API int mproc_manager_queue_named(mproc_manager *m, const char *name, size_t maxsize, mproc_mqueue *out,
                                        int64_t timeout_ms);
MPROC_API int mproc_manager_joinable_queue_named(mproc_manager *m, const char *name, size_t maxsize, mproc_mqueue *out,
                                                 int64_t timeout_ms);
/* put(item, timeout): 0 (in the queue), MPROC_EFULL (no room within the timeout). Putters and getters
 * are served first come, first served. */
MPROC_API int mproc_mqueue_put(mproc_manager *m, mproc_mqueue q, const void *item, size_t size, int64_t timeout_ms);
/* get(timeout): *item NUL-terminated (mproc_free), MPROC_EEMPTY (none within the timeout). */
MPROC_API int mproc_mqueue_get(mproc_manager *m, mproc_mqueue q, char **item, size_t *size, int64_t timeout_ms);
/* qsize(), empty(), full(), at one moment. */
MPROC_API int mproc_mqueue_qsize(mproc_manager *m, mproc_mqueue q, size_t *size, int64_t timeout_ms);
MPROC_API int mproc_mqueue_empty(mproc_manager *m, mproc_mqueue q, bool *empty, int64_t timeout_ms);
MPROC_API int mproc_mqueue_full(mproc_manager *m, mproc_mqueue q, bool *full, int64_t timeout_ms);
/* JoinableQueue.task_done(): MPROC_ESTATE when called more times than items were got (nothing changes),
 * or on a queue that is not joinable. Any handle may call it. */
MPROC_API int mproc_mqueue_task_done(mproc_manager *m, mproc_mqueue q, int64_t timeout_ms);
/* JoinableQueue.join(timeout): until every item put has been got and its task_done called: 0,
 * MPROC_ETIMEDOUT, MPROC_ESTATE (not joinable). */
MPROC_API int mproc_mqueue_join(mproc_manager *m, mproc_mqueue q, int64_t timeout_ms);

/* ---- Custom types: BaseManager.register ---------------------------------------------------------- */

/* A method's reply under construction (the server's). */
typedef struct mproc_mreply mproc_mreply;
/* Append one byte string to the reply (a method may give any number). 0 or MPROC_ENOMEM. */
MPROC_API int mproc_mreply_add(mproc_mreply *r, const void *data, size_t size);

/* A method: runs in the server's one thread, on the object's state (state_size bytes, zeroed when the
 * object is made), with the call's byte strings (pointing into the request: not NUL-terminated, valid
 * during the call). 0, or an MPROC_E* code (negative) that the caller
 * gets, with the message "method NAME of type TYPE failed". It must not block: every other client
 * waits while it runs. */
typedef int (*mproc_mmethod_fn)(void *state, const mproc_bytes *args, size_t nargs, mproc_mreply *reply);
typedef struct mproc_mmethod {
  const char *name;
  mproc_mmethod_fn fn;
} mproc_mmethod;
/* A type: its name, the size of each object's state, an optional destroy (called with the state when
 * the object is dropped or the server ends; it frees what methods allocated), its methods. The functions
 * are ordinary functions of the program: the server process finds them again as a Process target is
 * found (spawn: by module and offset), so start gives MPROC_ENOENT for one that cannot be (a function
 * of a library loaded at run time elsewhere). Names are found on the wire; addresses never travel. */
typedef struct mproc_mtype {
  const char *name;
  size_t state_size;
  void (*destroy)(void *state);
  const mproc_mmethod *methods;
  size_t method_count;
} mproc_mtype;

typedef struct mproc_mobject {
  uint64_t id;
} mproc_mobject;

/* A new object of the registered type `type` (by name): MPROC_ENOENT if the server has no such type.
 * The _named form: the object of that name, made on first use. */
MPROC_API int mproc_manager_object(mproc_manager *m, const char *type, mproc_mobject *out, int64_t timeout_ms);
MPROC_API int mproc_manager_object_named(mproc_manager *m, const char *name, const char *type, mproc_mobject *out,
                                         int64_t timeout_ms);
/* Call method `method` of o with nargs byte strings: the reply's strings in one block *out, *count of
 * them (mproc_free; NULL when none; out and count may be NULL to ignore them). MPROC_ENOENT: no such
 * method; the method's own error otherwise. */
MPROC_API int mproc_mobject_call(mproc_manager *m, mproc_mobject o, const char *method, const mproc_bytes *args,
                                 size_t nargs, mproc_bytes **out, size_t *count, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_MANAGER_H */
