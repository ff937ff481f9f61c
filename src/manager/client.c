/* The manager handle: starting a server process, connecting, and every proxy call as one request and
 * its reply (protocol in manager_internal.h). */
#include <stdlib.h>
#include <string.h>

#include "../handable.h"
#include "manager_internal.h"
#include "mproc/listener.h"
#include "../pal.h"

#define ACQUIRE_GRACE_MS 2000 /* how much longer than its timeout an acquire waits for the server's word */
#define START_TIMEOUT_MS 60000

struct mproc_manager {
  mproc__mutex *mu;
  char *address;
  mproc_family family;
  char *key; /* always a key: this process's, when none was given */
  size_t key_size;
  mproc_connection *conn;
  int64_t conn_pid; /* the process conn belongs to: a fork child connects anew */
  uint32_t seq;
  bool shut;
  /* the server process, for the handle that started it */
  mproc_process *server;
  mproc_connection *control;
  int64_t owner_pid;
};

/* ---- the handle --------------------------------------------------------------------------------- */

static int handle_new(mproc_manager **out, const char *address, mproc_family family, const void *key, size_t key_size,
                      bool process_key) {
  mproc_manager *m = (mproc_manager *)calloc(1, sizeof *m);
  if (!m) return mproc__fail(MPROC_ENOMEM, "manager: out of memory");
  int rc = mproc__pal_mutex_new(&m->mu);
  char keybuf[MPROC_AUTHKEY_MAX];
  if (!rc && process_key) {
    rc = mproc_current_process_authkey(keybuf, sizeof keybuf, &key_size);
    key = keybuf;
  }
  if (!rc && key_size > MPROC_AUTHKEY_MAX)
    rc = mproc__fail(MPROC_EINVAL, "manager: the authkey has %zu bytes, more than %d", key_size, MPROC_AUTHKEY_MAX);
  if (!rc && !(m->key = (char *)malloc(key_size ? key_size : 1)))
    rc = mproc__fail(MPROC_ENOMEM, "manager: out of memory");
  if (!rc && key_size) memcpy(m->key, key, key_size);
  m->key_size = key_size;
  if (!rc && address && !(m->address = mproc__strdup(address))) rc = MPROC_ENOMEM;
  m->family = family;
  if (rc) {
    mproc_manager_destroy(m);
    return rc;
  }
  *out = m;
  return 0;
}

static void drop_conn(mproc_manager *m) {
  mproc_connection_destroy(m->conn); /* in a fork child: closes this process's copies only */
  m->conn = NULL;
}

/* With m->mu held. */
static int ensure_conn(mproc_manager *m, int64_t deadline) {
  if (m->conn && m->conn_pid == mproc_getpid()) return 0;
  if (m->conn) drop_conn(m);
  int rc = mproc_client(
      &m->conn,
      &(mproc_client_opts){.address = m->address, .family = m->family, .authkey = m->key, .authkey_size = m->key_size},
      mproc__ms_until(deadline));
  if (rc) {
    m->conn = NULL;
    return mproc__fail_prefix(rc, "manager: connect to %s", m->address);
  }
  m->conn_pid = mproc_getpid();
  return 0;
}

int mproc_manager_connect(mproc_manager **out, const mproc_manager_opts *opts, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!out || !opts, "out or opts is NULL");
  MPROC__CHECK_ARG(!opts->address || !*opts->address, "no address");
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  mproc_manager *m;
  int rc = handle_new(&m, opts->address, opts->family, opts->authkey, opts->authkey_size,
                      !opts->authkey && !opts->authkey_size);
  if (rc) return rc;
  if ((rc = ensure_conn(m, deadline)) != 0) {
    mproc_manager_destroy(m);
    return rc;
  }
  *out = m;
  return 0;
}

int mproc_manager_start(mproc_manager **out, const mproc_manager_opts *opts) {
  MPROC__CHECK_ARG(!out, "out is NULL");
  const mproc_manager_opts none = {0};
  if (!opts) opts = &none;
  mproc_manager *m;
  int rc = handle_new(&m, NULL, opts->family, opts->authkey, opts->authkey_size, !opts->authkey && !opts->authkey_size);
  if (rc) return rc;
  int64_t deadline = mproc__deadline_from_timeout(START_TIMEOUT_MS);
  mproc_connection *theirs = NULL;
  mproc__buf arg = {0};
  size_t alen = opts->address ? strlen(opts->address) : 0;
  if (!(rc = mproc__buf_reserve(&arg, 4))) {
    mproc__mgr_put_u32(&arg, (uint32_t)opts->family);
    rc = mproc__mgr_put_item(&arg, opts->address ? opts->address : "", alen);
  }
  mproc__buf types = {0}; /* the types, as an item */
  if (!rc) rc = mproc__mgr_types_encode(opts->types, opts->type_count, &types);
  if (!rc) rc = mproc__mgr_put_item(&arg, types.data, types.len);
  mproc__buf_free(&types);
  if (!rc) rc = mproc_pipe(true, &m->control, &theirs);
  if (!rc)
    rc = mproc_process_create(&m->server, &(mproc_process_opts){.target = mproc__manager_server_main,
                                                                .arg = arg.data,
                                                                .arg_size = arg.len,
                                                                .connections = &theirs,
                                                                .connection_count = 1,
                                                                .name = "Manager",
                                                                .start_method = opts->start_method,
                                                                .context = opts->context,
                                                                .kill_on_parent_death = MPROC_OPTION_ON,
                                                                .authkey = m->key,
                                                                .authkey_size = m->key_size});
  mproc__buf_free(&arg);
  if (!rc) rc = mproc_process_start(m->server);
  mproc_connection_destroy(theirs);
  char *ans = NULL;
  size_t len = 0;
  if (!rc) {
    m->owner_pid = mproc_getpid();
    rc = mproc_connection_recv_bytes(m->control, 4096, mproc__ms_until(deadline), &ans, &len);
    if (rc == MPROC_EEOF) rc = mproc__fail(MPROC_ESYS, "manager_start: the server process ended before it listened");
  }
  if (!rc && len < 4) rc = mproc__fail(MPROC_ESYS, "manager_start: the server's answer is malformed");
  if (!rc && (int32_t)mproc__mgr_get_u32(ans) != 0)
    rc = mproc__fail((int32_t)mproc__mgr_get_u32(ans), "manager_start: the server: %s", ans + 4);
  if (!rc && !(m->address = mproc__strdup(ans + 4))) rc = MPROC_ENOMEM;
  mproc_free(ans);
  if (!rc) {
    mproc__pal_mutex_lock(m->mu);
    rc = ensure_conn(m, deadline);
    mproc__pal_mutex_unlock(m->mu);
  }
  if (rc) {
    mproc_manager_destroy(m);
    return rc;
  }
  *out = m;
  return 0;
}

const char *mproc_manager_address(const mproc_manager *m) { return m ? m->address : NULL; }

/* ---- calls -------------------------------------------------------------------------------------- */

/* A request being built: errors (out of memory) stick until exec. */
typedef struct rq {
  mproc__buf b;
  uint32_t n;
  int rc;
} rq;

static void arg(rq *q, const void *p, size_t n) {
  if (!q->rc && !q->b.len && !(q->rc = mproc__buf_reserve(&q->b, MGR_REQ_HEADER + 64))) q->b.len = MGR_REQ_HEADER;
  if (!q->rc) q->rc = mproc__mgr_put_item(&q->b, p, n);
  q->n++;
}
static void arg_i64(rq *q, int64_t v) {
  char x[8];
  for (int i = 0; i < 8; ++i) x[i] = (char)((uint64_t)v >> (8 * i));
  arg(q, x, 8);
}

/* A reply: the message and its items. */
typedef struct rs {
  char *msg;
  mproc__mgr_item *it;
  uint32_t n;
} rs;
static void rs_free(rs *r) {
  mproc_free(r->msg);
  free(r->it);
}

static int server_gone(mproc_manager *m, int rc) {
  drop_conn(m);
  return mproc__fail_prefix(MPROC_EPIPE, "manager %s: the server has gone (shut down or died; %s)", m->address,
                            mproc_strerror(rc));
}

/* Send q as request op on object id and wait for its reply until reply_deadline. Frees q. */
static int exec_until(mproc_manager *m, rq *q, uint32_t op, uint64_t id, int64_t deadline, int64_t reply_deadline,
                      rs *r) {
  memset(r, 0, sizeof *r);
  if (!q->rc && !q->b.len && !(q->rc = mproc__buf_reserve(&q->b, MGR_REQ_HEADER))) q->b.len = MGR_REQ_HEADER;
  int rc = q->rc;
  if (!rc && q->b.len > MPROC_MANAGER_MAX_MESSAGE)
    rc = mproc__fail(MPROC_EMSGSIZE, "manager: the request (%zu bytes) is longer than MPROC_MANAGER_MAX_MESSAGE",
                     q->b.len);
  if (rc) {
    mproc__buf_free(&q->b);
    return rc;
  }
  mproc__pal_mutex_lock(m->mu);
  if (m->shut) {
    rc = mproc__fail(MPROC_ECLOSED, "manager %s: shut down", m->address);
    goto out;
  }
  if ((rc = ensure_conn(m, deadline)) != 0) goto out;
  size_t len = q->b.len;
  q->b.len = 0;
  mproc__mgr_put_u32(&q->b, op);
  mproc__mgr_put_u32(&q->b, ++m->seq);
  mproc__mgr_put_u32(&q->b, (uint32_t)id);
  mproc__mgr_put_u32(&q->b, (uint32_t)(id >> 32));
  mproc__mgr_put_u32(&q->b, q->n);
  q->b.len = len;
  if ((rc = mproc_connection_send_bytes(m->conn, q->b.data, q->b.len, 0, MPROC_ALL)) != 0) {
    rc = rc == MPROC_EMSGSIZE || rc == MPROC_ENOMEM ? rc : server_gone(m, rc);
    goto out;
  }
  for (;;) {
    size_t n;
    rc = mproc_connection_recv_bytes(m->conn, MPROC_MANAGER_MAX_MESSAGE, mproc__ms_until(reply_deadline), &r->msg, &n);
    if (rc == MPROC_ETIMEDOUT) {
      drop_conn(m); /* the reply may still come: this connection's state is unknown */
      rc = mproc__fail(MPROC_ETIMEDOUT, "manager %s: no reply in time (the connection was closed)", m->address);
      goto out;
    }
    if (rc) {
      rc = server_gone(m, rc);
      goto out;
    }
    if (n < MGR_REP_HEADER ||
        mproc__mgr_parse_items(r->msg + MGR_REP_HEADER, n - MGR_REP_HEADER, mproc__mgr_get_u32(r->msg + 8), &r->it)) {
      drop_conn(m);
      rc = mproc__fail(MPROC_ESYS, "manager %s: a malformed reply (the connection was closed)", m->address);
      goto out;
    }
    if (mproc__mgr_get_u32(r->msg) == m->seq) break;
    rs_free(r); /* the late reply of a call that timed out */
    memset(r, 0, sizeof *r);
  }
  r->n = mproc__mgr_get_u32(r->msg + 8);
  rc = (int32_t)mproc__mgr_get_u32(r->msg + 4);
  if (rc > 0 || rc < MPROC_ERROR_MIN_) rc = MPROC_ESYS;
  if (rc) mproc__fail(rc, "%.*s", r->n ? (int)(r->it[0].n > 900 ? 900 : r->it[0].n) : 0, r->n ? r->it[0].p : "");
out:
  mproc__pal_mutex_unlock(m->mu);
  mproc__buf_free(&q->b);
  if (rc) {
    rs_free(r);
    memset(r, 0, sizeof *r);
  }
  return rc;
}

static int exec(mproc_manager *m, rq *q, uint32_t op, uint64_t id, int64_t timeout_ms, rs *r) {
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  return exec_until(m, q, op, id, deadline, deadline, r);
}

/* A call whose reply is nothing. */
static int exec0(mproc_manager *m, rq *q, uint32_t op, uint64_t id, int64_t timeout_ms) {
  rs r;
  int rc = exec(m, q, op, id, timeout_ms, &r);
  rs_free(&r);
  return rc;
}

/* The reply's one item as a new NUL-terminated value. */
static int take_value(rs *r, char **value, size_t *size) {
  int rc = 0;
  if (r->n != 1) {
    rc = mproc__fail(MPROC_ESYS, "manager: a malformed reply (%u items)", r->n);
  } else if (!(*value = (char *)malloc(r->it[0].n + 1))) {
    rc = mproc__fail(MPROC_ENOMEM, "manager: out of memory for %zu bytes", r->it[0].n);
  } else {
    memcpy(*value, r->it[0].p, r->it[0].n);
    (*value)[r->it[0].n] = 0;
    *size = r->it[0].n;
  }
  rs_free(r);
  return rc;
}
static int take_i64(rs *r, int64_t *v) {
  int rc = r->n == 1 ? mproc__mgr_item_i64(r->it[0], v) : MPROC_EINVAL;
  rs_free(r);
  return rc ? mproc__fail(MPROC_ESYS, "manager: a malformed reply") : 0;
}
static int take_bool(rs *r, bool *v) {
  int rc = r->n == 1 && r->it[0].n == 1 ? 0 : mproc__fail(MPROC_ESYS, "manager: a malformed reply");
  if (!rc) *v = r->it[0].p[0] != 0;
  rs_free(r);
  return rc;
}
/* The reply's items as one block: an array of mproc_bytes, then the strings. */
static int take_list(rs *r, mproc_bytes **out, size_t *count) {
  size_t total = r->n * sizeof(mproc_bytes);
  for (uint32_t i = 0; i < r->n; ++i) total += r->it[i].n + 1;
  *out = NULL;
  *count = 0;
  int rc = 0;
  mproc_bytes *b = r->n ? (mproc_bytes *)malloc(total) : NULL;
  if (r->n && !b) {
    rc = mproc__fail(MPROC_ENOMEM, "manager: out of memory for %u strings", r->n);
  } else if (r->n) {
    char *at = (char *)(b + r->n);
    for (uint32_t i = 0; i < r->n; ++i) {
      memcpy(at, r->it[i].p, r->it[i].n);
      at[r->it[i].n] = 0;
      b[i].data = at;
      b[i].len = r->it[i].n;
      at += r->it[i].n + 1;
    }
    *out = b;
    *count = r->n;
  }
  rs_free(r);
  return rc;
}

#define CHECK_M() MPROC__CHECK_ARG(!m, "the manager is NULL")
#define CHECK_BUF(p, n) MPROC__CHECK_ARG(!(p) && (n), #p " is NULL with a size")

/* ---- objects ------------------------------------------------------------------------------------ */

/* MGR_CREATE: an object of kind (named if name), with its parameters; *id, and *lock for a condition. */
static int create_p(mproc_manager *m, char kind, const char *name, const mproc_bytes *params, size_t nparams,
                    uint64_t *id, uint64_t *lock, int64_t timeout_ms, const char *call) {
  MPROC__CHECK_ARG_AS(call, !m, "the manager is NULL");
  MPROC__CHECK_ARG_AS(call, !id, "out is NULL");
  MPROC__CHECK_ARG_AS(call, name && !*name, "the name is empty");
  rq q = {0};
  rs r;
  arg(&q, &kind, 1);
  if (name || nparams) arg(&q, name ? name : "", name ? strlen(name) : 0);
  for (size_t i = 0; i < nparams; ++i) arg(&q, params[i].data, params[i].len);
  int rc = exec(m, &q, MGR_CREATE, 0, timeout_ms, &r);
  if (!rc && r.n != (lock ? 2u : 1u)) rc = mproc__fail(MPROC_ESYS, "manager: a malformed reply");
  int64_t v = 0, k = 0;
  if (!rc && lock && mproc__mgr_item_i64(r.it[1], &k) != 0) rc = mproc__fail(MPROC_ESYS, "manager: a malformed reply");
  if (!rc) {
    r.n = 1;
    rc = take_i64(&r, &v);
  } else {
    rs_free(&r);
  }
  if (!rc) *id = (uint64_t)v;
  if (!rc && lock) *lock = (uint64_t)k;
  return rc;
}
static int create(mproc_manager *m, char kind, const char *name, uint64_t *id, int64_t timeout_ms, const char *call) {
  return create_p(m, kind, name, NULL, 0, id, NULL, timeout_ms, call);
}
int mproc_manager_dict(mproc_manager *m, mproc_mdict *out, int64_t timeout_ms) {
  return create(m, MGR_KIND_DICT, NULL, out ? &out->id : NULL, timeout_ms, "manager_dict");
}
int mproc_manager_list(mproc_manager *m, mproc_mlist *out, int64_t timeout_ms) {
  return create(m, MGR_KIND_LIST, NULL, out ? &out->id : NULL, timeout_ms, "manager_list");
}
int mproc_manager_namespace(mproc_manager *m, mproc_mnamespace *out, int64_t timeout_ms) {
  return create(m, MGR_KIND_NAMESPACE, NULL, out ? &out->id : NULL, timeout_ms, "manager_namespace");
}
int mproc_manager_lock(mproc_manager *m, mproc_mlock *out, int64_t timeout_ms) {
  return create(m, MGR_KIND_LOCK, NULL, out ? &out->id : NULL, timeout_ms, "manager_lock");
}
int mproc_manager_dict_named(mproc_manager *m, const char *name, mproc_mdict *out, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return create(m, MGR_KIND_DICT, name, out ? &out->id : NULL, timeout_ms, "manager_dict_named");
}
int mproc_manager_list_named(mproc_manager *m, const char *name, mproc_mlist *out, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return create(m, MGR_KIND_LIST, name, out ? &out->id : NULL, timeout_ms, "manager_list_named");
}
int mproc_manager_namespace_named(mproc_manager *m, const char *name, mproc_mnamespace *out, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return create(m, MGR_KIND_NAMESPACE, name, out ? &out->id : NULL, timeout_ms, "manager_namespace_named");
}
int mproc_manager_lock_named(mproc_manager *m, const char *name, mproc_mlock *out, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return create(m, MGR_KIND_LOCK, name, out ? &out->id : NULL, timeout_ms, "manager_lock_named");
}
int mproc_manager_drop(mproc_manager *m, uint64_t id, int64_t timeout_ms) {
  CHECK_M();
  rq q = {0};
  return exec0(m, &q, MGR_DROP, id, timeout_ms);
}

/* ---- dict --------------------------------------------------------------------------------------- */

/* A request of one key (and maybe one more string) whose reply is one value; `call` names the public call. */
static int key_value_call(mproc_manager *m, const char *call, uint32_t op, uint64_t id, const void *key,
                          size_t key_size, const void *more, size_t more_size, bool has_more, char **value,
                          size_t *value_size, int64_t timeout_ms) {
  MPROC__CHECK_ARG_AS(call, !m, "the manager is NULL");
  MPROC__CHECK_ARG_AS(call, !key && key_size, "key is NULL with a size");
  MPROC__CHECK_ARG_AS(call, !more && more_size, "the default is NULL with a size");
  MPROC__CHECK_ARG_AS(call, !value || !value_size, "value or value_size is NULL");
  rq q = {0};
  rs r;
  arg(&q, key, key_size);
  if (has_more) arg(&q, more, more_size);
  int rc = exec(m, &q, op, id, timeout_ms, &r);
  return rc ? rc : take_value(&r, value, value_size);
}
#define CHECK_OUT_VALUE() MPROC__CHECK_ARG(!value || !value_size, "value or value_size is NULL")

int mproc_mdict_get(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, char **value, size_t *value_size,
                    int64_t timeout_ms) {
  return key_value_call(m, "mdict_get", MGR_DICT_GET, d.id, key, key_size, NULL, 0, false, value, value_size,
                        timeout_ms);
}
int mproc_mdict_get_default(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, const void *def,
                            size_t def_size, char **value, size_t *value_size, int64_t timeout_ms) {
  return key_value_call(m, "mdict_get_default", MGR_DICT_GET, d.id, key, key_size, def, def_size, true, value,
                        value_size, timeout_ms);
}
int mproc_mdict_setdefault(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, const void *def,
                           size_t def_size, char **value, size_t *value_size, int64_t timeout_ms) {
  return key_value_call(m, "mdict_setdefault", MGR_DICT_SETDEFAULT, d.id, key, key_size, def, def_size, true, value,
                        value_size, timeout_ms);
}
int mproc_mdict_pop(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, char **value, size_t *value_size,
                    int64_t timeout_ms) {
  return key_value_call(m, "mdict_pop", MGR_DICT_POP, d.id, key, key_size, NULL, 0, false, value, value_size,
                        timeout_ms);
}
int mproc_mdict_set(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, const void *value,
                    size_t value_size, int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(key, key_size);
  CHECK_BUF(value, value_size);
  rq q = {0};
  arg(&q, key, key_size);
  arg(&q, value, value_size);
  return exec0(m, &q, MGR_DICT_SET, d.id, timeout_ms);
}
int mproc_mdict_delete(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(key, key_size);
  rq q = {0};
  arg(&q, key, key_size);
  return exec0(m, &q, MGR_DICT_DEL, d.id, timeout_ms);
}
int mproc_mdict_contains(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, bool *found,
                         int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(key, key_size);
  MPROC__CHECK_ARG(!found, "found is NULL");
  rq q = {0};
  rs r;
  arg(&q, key, key_size);
  int rc = exec(m, &q, MGR_DICT_CONTAINS, d.id, timeout_ms, &r);
  return rc ? rc : take_bool(&r, found);
}
/* A request with no arguments whose reply is a count. */
static int len_call(mproc_manager *m, uint32_t op, uint64_t id, size_t *len, int64_t timeout_ms) {
  rq q = {0};
  rs r;
  int64_t v = 0;
  int rc = exec(m, &q, op, id, timeout_ms, &r);
  if (!rc) rc = take_i64(&r, &v);
  if (!rc) *len = (size_t)v;
  return rc;
}
int mproc_mdict_len(mproc_manager *m, mproc_mdict d, size_t *len, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!len, "len is NULL");
  return len_call(m, MGR_DICT_LEN, d.id, len, timeout_ms);
}
/* A request whose reply is a list of strings. */
static int list_call(mproc_manager *m, rq *q, uint32_t op, uint64_t id, mproc_bytes **out, size_t *count,
                     int64_t timeout_ms) {
  rs r;
  int rc = exec(m, q, op, id, timeout_ms, &r);
  return rc ? rc : take_list(&r, out, count);
}
#define CHECK_OUT_LIST() MPROC__CHECK_ARG(!out || !count, "out or count is NULL")
int mproc_mdict_keys(mproc_manager *m, mproc_mdict d, mproc_bytes **out, size_t *count, int64_t timeout_ms) {
  CHECK_M();
  CHECK_OUT_LIST();
  rq q = {0};
  return list_call(m, &q, MGR_DICT_KEYS, d.id, out, count, timeout_ms);
}
int mproc_mdict_values(mproc_manager *m, mproc_mdict d, mproc_bytes **out, size_t *count, int64_t timeout_ms) {
  CHECK_M();
  CHECK_OUT_LIST();
  rq q = {0};
  return list_call(m, &q, MGR_DICT_VALUES, d.id, out, count, timeout_ms);
}
int mproc_mdict_items(mproc_manager *m, mproc_mdict d, mproc_bytes **out, size_t *count, int64_t timeout_ms) {
  CHECK_M();
  CHECK_OUT_LIST();
  rq q = {0};
  int rc = list_call(m, &q, MGR_DICT_ITEMS, d.id, out, count, timeout_ms);
  if (!rc) *count /= 2;
  return rc;
}
int mproc_mdict_update(mproc_manager *m, mproc_mdict d, const mproc_bytes *pairs, size_t npairs, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!pairs && npairs, "pairs is NULL");
  for (size_t i = 0; i < 2 * npairs; ++i)
    MPROC__CHECK_ARG(!pairs[i].data && pairs[i].len, "pairs[%zu].data is NULL", i);
  rq q = {0};
  for (size_t i = 0; i < 2 * npairs; ++i) arg(&q, pairs[i].data, pairs[i].len);
  return exec0(m, &q, MGR_DICT_UPDATE, d.id, timeout_ms);
}
int mproc_mdict_clear(mproc_manager *m, mproc_mdict d, int64_t timeout_ms) {
  CHECK_M();
  rq q = {0};
  return exec0(m, &q, MGR_DICT_CLEAR, d.id, timeout_ms);
}
int mproc_mdict_increment(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, int64_t delta,
                          int64_t *result, int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(key, key_size);
  rq q = {0};
  rs r;
  arg(&q, key, key_size);
  arg_i64(&q, delta);
  int64_t v = 0;
  int rc = exec(m, &q, MGR_DICT_INCR, d.id, timeout_ms, &r);
  if (!rc) rc = take_i64(&r, &v);
  if (!rc && result) *result = v;
  return rc;
}
int mproc_mdict_compare_set(mproc_manager *m, mproc_mdict d, const void *key, size_t key_size, const void *expected,
                            size_t expected_size, const void *desired, size_t desired_size, bool *swapped,
                            int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(key, key_size);
  CHECK_BUF(desired, desired_size);
  MPROC__CHECK_ARG(!expected && expected_size, "expected is NULL with a size");
  MPROC__CHECK_ARG(!swapped, "swapped is NULL");
  rq q = {0};
  rs r;
  arg(&q, key, key_size);
  arg(&q, expected ? "\1" : "\0", 1);
  arg(&q, expected, expected_size);
  arg(&q, desired, desired_size);
  int rc = exec(m, &q, MGR_DICT_CAS, d.id, timeout_ms, &r);
  return rc ? rc : take_bool(&r, swapped);
}

/* ---- list --------------------------------------------------------------------------------------- */

int mproc_mlist_append(mproc_manager *m, mproc_mlist l, const void *value, size_t value_size, int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(value, value_size);
  rq q = {0};
  arg(&q, value, value_size);
  return exec0(m, &q, MGR_LIST_APPEND, l.id, timeout_ms);
}
int mproc_mlist_extend(mproc_manager *m, mproc_mlist l, const mproc_bytes *values, size_t count, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!values && count, "values is NULL");
  for (size_t i = 0; i < count; ++i) MPROC__CHECK_ARG(!values[i].data && values[i].len, "values[%zu].data is NULL", i);
  rq q = {0};
  for (size_t i = 0; i < count; ++i) arg(&q, values[i].data, values[i].len);
  return exec0(m, &q, MGR_LIST_EXTEND, l.id, timeout_ms);
}
int mproc_mlist_insert(mproc_manager *m, mproc_mlist l, int64_t index, const void *value, size_t value_size,
                       int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(value, value_size);
  rq q = {0};
  arg_i64(&q, index);
  arg(&q, value, value_size);
  return exec0(m, &q, MGR_LIST_INSERT, l.id, timeout_ms);
}
/* index / count: a value in, a number out. */
static int value_count_call(mproc_manager *m, uint32_t op, uint64_t id, const void *value, size_t value_size,
                            size_t *out, int64_t timeout_ms) {
  rq q = {0};
  rs r;
  arg(&q, value, value_size);
  int64_t v = 0;
  int rc = exec(m, &q, op, id, timeout_ms, &r);
  if (!rc) rc = take_i64(&r, &v);
  if (!rc) *out = (size_t)v;
  return rc;
}
int mproc_mlist_index(mproc_manager *m, mproc_mlist l, const void *value, size_t value_size, size_t *index,
                      int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(value, value_size);
  MPROC__CHECK_ARG(!index, "index is NULL");
  return value_count_call(m, MGR_LIST_INDEX, l.id, value, value_size, index, timeout_ms);
}
int mproc_mlist_count(mproc_manager *m, mproc_mlist l, const void *value, size_t value_size, size_t *count,
                      int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(value, value_size);
  MPROC__CHECK_ARG(!count, "count is NULL");
  return value_count_call(m, MGR_LIST_COUNT, l.id, value, value_size, count, timeout_ms);
}
int mproc_mlist_remove(mproc_manager *m, mproc_mlist l, const void *value, size_t value_size, int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(value, value_size);
  rq q = {0};
  arg(&q, value, value_size);
  return exec0(m, &q, MGR_LIST_REMOVE, l.id, timeout_ms);
}
/* pop / get: an index in, a value out. */
static int index_value_call(mproc_manager *m, uint32_t op, uint64_t id, int64_t index, char **value, size_t *value_size,
                            int64_t timeout_ms) {
  rq q = {0};
  rs r;
  arg_i64(&q, index);
  int rc = exec(m, &q, op, id, timeout_ms, &r);
  return rc ? rc : take_value(&r, value, value_size);
}
int mproc_mlist_pop(mproc_manager *m, mproc_mlist l, int64_t index, char **value, size_t *value_size,
                    int64_t timeout_ms) {
  CHECK_M();
  CHECK_OUT_VALUE();
  return index_value_call(m, MGR_LIST_POP, l.id, index, value, value_size, timeout_ms);
}
int mproc_mlist_get(mproc_manager *m, mproc_mlist l, int64_t index, char **value, size_t *value_size,
                    int64_t timeout_ms) {
  CHECK_M();
  CHECK_OUT_VALUE();
  return index_value_call(m, MGR_LIST_GET, l.id, index, value, value_size, timeout_ms);
}
int mproc_mlist_set(mproc_manager *m, mproc_mlist l, int64_t index, const void *value, size_t value_size,
                    int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(value, value_size);
  rq q = {0};
  arg_i64(&q, index);
  arg(&q, value, value_size);
  return exec0(m, &q, MGR_LIST_SET, l.id, timeout_ms);
}
int mproc_mlist_delete(mproc_manager *m, mproc_mlist l, int64_t index, int64_t timeout_ms) {
  CHECK_M();
  rq q = {0};
  arg_i64(&q, index);
  return exec0(m, &q, MGR_LIST_DEL, l.id, timeout_ms);
}
int mproc_mlist_slice(mproc_manager *m, mproc_mlist l, int64_t start, int64_t stop, mproc_bytes **out, size_t *count,
                      int64_t timeout_ms) {
  CHECK_M();
  CHECK_OUT_LIST();
  rq q = {0};
  arg_i64(&q, start);
  arg_i64(&q, stop);
  return list_call(m, &q, MGR_LIST_SLICE, l.id, out, count, timeout_ms);
}
int mproc_mlist_len(mproc_manager *m, mproc_mlist l, size_t *len, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!len, "len is NULL");
  return len_call(m, MGR_LIST_LEN, l.id, len, timeout_ms);
}

/* ---- namespace: a dict of names, in the server ---------------------------------------------------- */

#define CHECK_NAME() MPROC__CHECK_ARG(!name || !*name, "no name")
int mproc_mnamespace_get(mproc_manager *m, mproc_mnamespace ns, const char *name, char **value, size_t *value_size,
                         int64_t timeout_ms) {
  CHECK_NAME();
  int rc = key_value_call(m, "mnamespace_get", MGR_DICT_GET, ns.id, name, strlen(name), NULL, 0, false, value,
                          value_size, timeout_ms);
  return rc == MPROC_ENOENT ? mproc__fail(rc, "manager: the namespace has no attribute '%s'", name) : rc;
}
int mproc_mnamespace_set(mproc_manager *m, mproc_mnamespace ns, const char *name, const void *value, size_t value_size,
                         int64_t timeout_ms) {
  CHECK_M();
  CHECK_NAME();
  CHECK_BUF(value, value_size);
  rq q = {0};
  arg(&q, name, strlen(name));
  arg(&q, value, value_size);
  return exec0(m, &q, MGR_DICT_SET, ns.id, timeout_ms);
}
int mproc_mnamespace_delete(mproc_manager *m, mproc_mnamespace ns, const char *name, int64_t timeout_ms) {
  CHECK_M();
  CHECK_NAME();
  rq q = {0};
  arg(&q, name, strlen(name));
  int rc = exec0(m, &q, MGR_DICT_DEL, ns.id, timeout_ms);
  return rc == MPROC_ENOENT ? mproc__fail(rc, "manager: the namespace has no attribute '%s'", name) : rc;
}
int mproc_mnamespace_list(mproc_manager *m, mproc_mnamespace ns, mproc_bytes **names, size_t *count,
                          int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!names || !count, "names or count is NULL");
  rq q = {0};
  return list_call(m, &q, MGR_DICT_KEYS, ns.id, names, count, timeout_ms);
}

/* ---- lock --------------------------------------------------------------------------------------- */

/* A request that may wait in the server (a deferred reply): its first argument is the timeout, and its
 * reply is waited for ACQUIRE_GRACE_MS longer. */
static void arg_timeout(rq *q, int64_t timeout_ms) { arg_i64(q, timeout_ms < 0 ? -1 : timeout_ms); }
static int exec_wait(mproc_manager *m, rq *q, uint32_t op, uint64_t id, int64_t timeout_ms, rs *r) {
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  const int64_t grace = (int64_t)ACQUIRE_GRACE_MS * 1000000;
  int64_t reply = deadline > INT64_MAX - grace ? INT64_MAX : deadline + grace;
  return exec_until(m, q, op, id, deadline, reply, r);
}
static int exec_wait0(mproc_manager *m, rq *q, uint32_t op, uint64_t id, int64_t timeout_ms) {
  rs r;
  int rc = exec_wait(m, q, op, id, timeout_ms, &r);
  rs_free(&r);
  return rc;
}

/* A request of no arguments and no reply; one of only its timeout that may wait. */
static int call0(mproc_manager *m, uint32_t op, uint64_t id, int64_t timeout_ms) {
  rq q = {0};
  return exec0(m, &q, op, id, timeout_ms);
}
static int wait0(mproc_manager *m, uint32_t op, uint64_t id, int64_t timeout_ms) {
  rq q = {0};
  arg_timeout(&q, timeout_ms);
  return exec_wait0(m, &q, op, id, timeout_ms);
}

int mproc_mlock_acquire(mproc_manager *m, mproc_mlock l, int64_t timeout_ms) {
  CHECK_M();
  return wait0(m, MGR_LOCK_ACQUIRE, l.id, timeout_ms);
}
int mproc_mlock_release(mproc_manager *m, mproc_mlock l, int64_t timeout_ms) {
  CHECK_M();
  return call0(m, MGR_LOCK_RELEASE, l.id, timeout_ms);
}

/* ---- RLock, Semaphore, Event -------------------------------------------------------------------- */

int mproc_manager_rlock(mproc_manager *m, mproc_mlock *out, int64_t timeout_ms) {
  return create(m, MGR_KIND_RLOCK, NULL, out ? &out->id : NULL, timeout_ms, "manager_rlock");
}
int mproc_manager_rlock_named(mproc_manager *m, const char *name, mproc_mlock *out, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return create(m, MGR_KIND_RLOCK, name, out ? &out->id : NULL, timeout_ms, "manager_rlock_named");
}

/* An object made with one integer parameter. */
static int create_i64(mproc_manager *m, char kind, const char *name, int64_t v, uint64_t *id, int64_t timeout_ms,
                      const char *call) {
  char x[8];
  for (int i = 0; i < 8; ++i) x[i] = (char)((uint64_t)v >> (8 * i));
  mproc_bytes p = {x, 8};
  return create_p(m, kind, name, &p, 1, id, NULL, timeout_ms, call);
}
#define CHECK_SEM(v) MPROC__CHECK_ARG((v) > MPROC_SEM_VALUE_MAX, "value %u is above MPROC_SEM_VALUE_MAX", (v))
int mproc_manager_semaphore(mproc_manager *m, uint32_t value, mproc_msemaphore *out, int64_t timeout_ms) {
  CHECK_SEM(value);
  return create_i64(m, MGR_KIND_SEMAPHORE, NULL, value, out ? &out->id : NULL, timeout_ms, "manager_semaphore");
}
int mproc_manager_bounded_semaphore(mproc_manager *m, uint32_t value, mproc_msemaphore *out, int64_t timeout_ms) {
  CHECK_SEM(value);
  return create_i64(m, MGR_KIND_BOUNDED_SEMAPHORE, NULL, value, out ? &out->id : NULL, timeout_ms,
                    "manager_bounded_semaphore");
}
int mproc_manager_semaphore_named(mproc_manager *m, const char *name, uint32_t value, mproc_msemaphore *out,
                                  int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  CHECK_SEM(value);
  return create_i64(m, MGR_KIND_SEMAPHORE, name, value, out ? &out->id : NULL, timeout_ms, "manager_semaphore_named");
}
int mproc_manager_bounded_semaphore_named(mproc_manager *m, const char *name, uint32_t value, mproc_msemaphore *out,
                                          int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  CHECK_SEM(value);
  return create_i64(m, MGR_KIND_BOUNDED_SEMAPHORE, name, value, out ? &out->id : NULL, timeout_ms,
                    "manager_bounded_semaphore_named");
}
int mproc_msemaphore_acquire(mproc_manager *m, mproc_msemaphore sem, int64_t timeout_ms) {
  CHECK_M();
  return wait0(m, MGR_SEM_ACQUIRE, sem.id, timeout_ms);
}
int mproc_msemaphore_release(mproc_manager *m, mproc_msemaphore sem, int64_t timeout_ms) {
  CHECK_M();
  return call0(m, MGR_SEM_RELEASE, sem.id, timeout_ms);
}
int mproc_msemaphore_value(mproc_manager *m, mproc_msemaphore sem, uint32_t *value, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!value, "value is NULL");
  size_t v = 0;
  int rc = len_call(m, MGR_SEM_VALUE, sem.id, &v, timeout_ms);
  if (!rc) *value = (uint32_t)v;
  return rc;
}

int mproc_manager_event(mproc_manager *m, mproc_mevent *out, int64_t timeout_ms) {
  return create(m, MGR_KIND_EVENT, NULL, out ? &out->id : NULL, timeout_ms, "manager_event");
}
int mproc_manager_event_named(mproc_manager *m, const char *name, mproc_mevent *out, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return create(m, MGR_KIND_EVENT, name, out ? &out->id : NULL, timeout_ms, "manager_event_named");
}
int mproc_mevent_set(mproc_manager *m, mproc_mevent e, int64_t timeout_ms) {
  CHECK_M();
  return call0(m, MGR_EVENT_SET, e.id, timeout_ms);
}
int mproc_mevent_clear(mproc_manager *m, mproc_mevent e, int64_t timeout_ms) {
  CHECK_M();
  return call0(m, MGR_EVENT_CLEAR, e.id, timeout_ms);
}
int mproc_mevent_is_set(mproc_manager *m, mproc_mevent e, bool *set, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!set, "set is NULL");
  rq q = {0};
  rs r;
  int rc = exec(m, &q, MGR_EVENT_IS_SET, e.id, timeout_ms, &r);
  return rc ? rc : take_bool(&r, set);
}
int mproc_mevent_wait(mproc_manager *m, mproc_mevent e, int64_t timeout_ms) {
  CHECK_M();
  return wait0(m, MGR_EVENT_WAIT, e.id, timeout_ms);
}

/* ---- Condition, Barrier ------------------------------------------------------------------------- */

static int condition_create(mproc_manager *m, const char *name, const mproc_mlock *lock, mproc_mcondition *out,
                            int64_t timeout_ms, const char *call) {
  MPROC__CHECK_ARG_AS(call, lock && lock->id == 0, "the lock's id is 0");
  char x[8];
  uint64_t v = lock ? lock->id : 0;
  for (int i = 0; i < 8; ++i) x[i] = (char)(v >> (8 * i));
  mproc_bytes p = {x, 8};
  return create_p(m, MGR_KIND_CONDITION, name, &p, 1, out ? &out->id : NULL, out ? &out->lock.id : NULL, timeout_ms,
                  call);
}
int mproc_manager_condition(mproc_manager *m, const mproc_mlock *lock, mproc_mcondition *out, int64_t timeout_ms) {
  return condition_create(m, NULL, lock, out, timeout_ms, "manager_condition");
}
int mproc_manager_condition_named(mproc_manager *m, const char *name, const mproc_mlock *lock, mproc_mcondition *out,
                                  int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return condition_create(m, name, lock, out, timeout_ms, "manager_condition_named");
}
int mproc_mcondition_wait(mproc_manager *m, mproc_mcondition c, int64_t timeout_ms) {
  CHECK_M();
  return wait0(m, MGR_COND_WAIT, c.id, timeout_ms);
}
int mproc_mcondition_wait_for(mproc_manager *m, mproc_mcondition c, bool (*pred)(void *ctx), void *ctx,
                              int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!pred, "pred is NULL");
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  while (!pred(ctx)) {
    int64_t left = mproc__ms_until(deadline);
    if (left == 0) return mproc__fail(MPROC_ETIMEDOUT, "mcondition_wait_for: the predicate stayed false");
    int rc = mproc_mcondition_wait(m, c, left);
    if (rc && rc != MPROC_ETIMEDOUT) return rc;
  }
  return 0;
}
static int notify(mproc_manager *m, mproc_mcondition c, int64_t n, int64_t timeout_ms) {
  CHECK_M();
  rq q = {0};
  arg_i64(&q, n);
  return exec0(m, &q, MGR_COND_NOTIFY, c.id, timeout_ms);
}
int mproc_mcondition_notify(mproc_manager *m, mproc_mcondition c, uint32_t n, int64_t timeout_ms) {
  return notify(m, c, n, timeout_ms);
}
int mproc_mcondition_notify_all(mproc_manager *m, mproc_mcondition c, int64_t timeout_ms) {
  return notify(m, c, -1, timeout_ms);
}

int mproc_manager_barrier(mproc_manager *m, uint32_t parties, mproc_mbarrier *out, int64_t timeout_ms) {
  MPROC__CHECK_ARG(parties < 1 || parties > INT32_MAX, "parties %u is out of range", parties);
  return create_i64(m, MGR_KIND_BARRIER, NULL, parties, out ? &out->id : NULL, timeout_ms, "manager_barrier");
}
int mproc_manager_barrier_named(mproc_manager *m, const char *name, uint32_t parties, mproc_mbarrier *out,
                                int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  MPROC__CHECK_ARG(parties < 1 || parties > INT32_MAX, "parties %u is out of range", parties);
  return create_i64(m, MGR_KIND_BARRIER, name, parties, out ? &out->id : NULL, timeout_ms, "manager_barrier_named");
}
int mproc_mbarrier_wait(mproc_manager *m, mproc_mbarrier b, uint32_t *index, int64_t timeout_ms) {
  CHECK_M();
  rq q = {0};
  rs r;
  arg_timeout(&q, timeout_ms);
  int64_t v = 0;
  int rc = exec_wait(m, &q, MGR_BARRIER_WAIT, b.id, timeout_ms, &r);
  if (!rc) rc = take_i64(&r, &v);
  if (!rc && index) *index = (uint32_t)v;
  return rc;
}
int mproc_mbarrier_abort(mproc_manager *m, mproc_mbarrier b, int64_t timeout_ms) {
  CHECK_M();
  return call0(m, MGR_BARRIER_ABORT, b.id, timeout_ms);
}
int mproc_mbarrier_reset(mproc_manager *m, mproc_mbarrier b, int64_t timeout_ms) {
  CHECK_M();
  return call0(m, MGR_BARRIER_RESET, b.id, timeout_ms);
}
int mproc_mbarrier_state(mproc_manager *m, mproc_mbarrier b, uint32_t *parties, uint32_t *n_waiting, bool *broken,
                         int64_t timeout_ms) {
  CHECK_M();
  rq q = {0};
  rs r;
  int rc = exec(m, &q, MGR_BARRIER_STATE, b.id, timeout_ms, &r);
  if (rc) return rc;
  int64_t p = 0, w = 0;
  if (r.n != 3 || mproc__mgr_item_i64(r.it[0], &p) || mproc__mgr_item_i64(r.it[1], &w) || r.it[2].n != 1)
    rc = mproc__fail(MPROC_ESYS, "manager: a malformed reply");
  if (!rc && parties) *parties = (uint32_t)p;
  if (!rc && n_waiting) *n_waiting = (uint32_t)w;
  if (!rc && broken) *broken = r.it[2].p[0] != 0;
  rs_free(&r);
  return rc;
}

/* ---- Value, Array ------------------------------------------------------------------------------- */

static int value_create(mproc_manager *m, const char *name, char type, const void *p, size_t n, mproc_mvalue *out,
                        int64_t timeout_ms, const char *call) {
  mproc_bytes params[2] = {{&type, 1}, {p, n}};
  return create_p(m, MGR_KIND_VALUE, name, params, 2, out ? &out->id : NULL, NULL, timeout_ms, call);
}
static void le64(char x[8], uint64_t v) {
  for (int i = 0; i < 8; ++i) x[i] = (char)(v >> (8 * i));
}
static uint64_t f64_bits(double d) {
  uint64_t b;
  memcpy(&b, &d, 8);
  return b;
}
static int value_i64(mproc_manager *m, const char *name, int64_t value, mproc_mvalue *out, int64_t timeout_ms) {
  char x[8];
  le64(x, (uint64_t)value);
  return value_create(m, name, MGR_VALUE_I64, x, 8, out, timeout_ms, "manager_value_i64");
}
static int value_f64(mproc_manager *m, const char *name, double value, mproc_mvalue *out, int64_t timeout_ms) {
  char x[8];
  le64(x, f64_bits(value));
  return value_create(m, name, MGR_VALUE_F64, x, 8, out, timeout_ms, "manager_value_f64");
}
static int value_bytes(mproc_manager *m, const char *name, const void *value, size_t size, mproc_mvalue *out,
                       int64_t timeout_ms) {
  MPROC__CHECK_ARG_AS("manager_value_bytes", !value && size, "value is NULL with a size");
  return value_create(m, name, MGR_VALUE_BYTES, value, size, out, timeout_ms, "manager_value_bytes");
}
int mproc_manager_value_i64(mproc_manager *m, int64_t value, mproc_mvalue *out, int64_t timeout_ms) {
  return value_i64(m, NULL, value, out, timeout_ms);
}
int mproc_manager_value_f64(mproc_manager *m, double value, mproc_mvalue *out, int64_t timeout_ms) {
  return value_f64(m, NULL, value, out, timeout_ms);
}
int mproc_manager_value_bytes(mproc_manager *m, const void *value, size_t size, mproc_mvalue *out, int64_t timeout_ms) {
  return value_bytes(m, NULL, value, size, out, timeout_ms);
}
int mproc_manager_value_i64_named(mproc_manager *m, const char *name, int64_t value, mproc_mvalue *out,
                                  int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return value_i64(m, name, value, out, timeout_ms);
}
int mproc_manager_value_f64_named(mproc_manager *m, const char *name, double value, mproc_mvalue *out,
                                  int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return value_f64(m, name, value, out, timeout_ms);
}
int mproc_manager_value_bytes_named(mproc_manager *m, const char *name, const void *value, size_t size,
                                    mproc_mvalue *out, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return value_bytes(m, name, value, size, out, timeout_ms);
}

/* MGR_VALUE_GET / _SET / _ADD of a value of `type` (more: the new value or the delta); reply: *r. */
static int value_call(mproc_manager *m, uint32_t op, mproc_mvalue v, char type, const void *more, size_t more_size,
                      rs *r, int64_t timeout_ms) {
  rq q = {0};
  arg(&q, &type, 1);
  if (op != MGR_VALUE_GET) arg(&q, more, more_size);
  return exec(m, &q, op, v.id, timeout_ms, r);
}
/* A reply's one 8-byte item. */
static int take_u64(rs *r, uint64_t *v) {
  int64_t x = 0;
  int rc = take_i64(r, &x);
  if (!rc) *v = (uint64_t)x;
  return rc;
}
static int number_call(mproc_manager *m, uint32_t op, mproc_mvalue v, char type, uint64_t in, uint64_t *out,
                       int64_t timeout_ms) {
  CHECK_M();
  char x[8];
  le64(x, in);
  rs r;
  int rc = value_call(m, op, v, type, x, 8, &r, timeout_ms);
  if (rc) return rc;
  if (op == MGR_VALUE_SET) {
    rs_free(&r);
    return 0;
  }
  uint64_t got = 0;
  rc = take_u64(&r, &got);
  if (!rc && out) *out = got;
  return rc;
}
int mproc_mvalue_get_i64(mproc_manager *m, mproc_mvalue v, int64_t *value, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!value, "value is NULL");
  return number_call(m, MGR_VALUE_GET, v, MGR_VALUE_I64, 0, (uint64_t *)value, timeout_ms);
}
int mproc_mvalue_set_i64(mproc_manager *m, mproc_mvalue v, int64_t value, int64_t timeout_ms) {
  return number_call(m, MGR_VALUE_SET, v, MGR_VALUE_I64, (uint64_t)value, NULL, timeout_ms);
}
int mproc_mvalue_add_i64(mproc_manager *m, mproc_mvalue v, int64_t delta, int64_t *result, int64_t timeout_ms) {
  return number_call(m, MGR_VALUE_ADD, v, MGR_VALUE_I64, (uint64_t)delta, (uint64_t *)result, timeout_ms);
}
/* A double out of its bits (rc: the call's). */
static int f64_out(int rc, const uint64_t *bits, double *out) {
  if (!rc && out) memcpy(out, bits, 8);
  return rc;
}
int mproc_mvalue_get_f64(mproc_manager *m, mproc_mvalue v, double *value, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!value, "value is NULL");
  uint64_t b = 0;
  return f64_out(number_call(m, MGR_VALUE_GET, v, MGR_VALUE_F64, 0, &b, timeout_ms), &b, value);
}
int mproc_mvalue_set_f64(mproc_manager *m, mproc_mvalue v, double value, int64_t timeout_ms) {
  return number_call(m, MGR_VALUE_SET, v, MGR_VALUE_F64, f64_bits(value), NULL, timeout_ms);
}
int mproc_mvalue_add_f64(mproc_manager *m, mproc_mvalue v, double delta, double *result, int64_t timeout_ms) {
  uint64_t b = 0;
  return f64_out(number_call(m, MGR_VALUE_ADD, v, MGR_VALUE_F64, f64_bits(delta), &b, timeout_ms), &b, result);
}
int mproc_mvalue_get_bytes(mproc_manager *m, mproc_mvalue v, char **value, size_t *size, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!value || !size, "value or size is NULL");
  rs r;
  int rc = value_call(m, MGR_VALUE_GET, v, MGR_VALUE_BYTES, NULL, 0, &r, timeout_ms);
  return rc ? rc : take_value(&r, value, size);
}
int mproc_mvalue_set_bytes(mproc_manager *m, mproc_mvalue v, const void *value, size_t size, int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(value, size);
  rs r;
  int rc = value_call(m, MGR_VALUE_SET, v, MGR_VALUE_BYTES, value, size, &r, timeout_ms);
  if (!rc) rs_free(&r);
  return rc;
}

static int array_create(mproc_manager *m, const char *name, const void *init, size_t size, mproc_marray *out,
                        int64_t timeout_ms, const char *call) {
  MPROC__CHECK_ARG_AS(call, size > MPROC_MANAGER_MAX_MESSAGE, "size %zu is above MPROC_MANAGER_MAX_MESSAGE", size);
  void *zeros = NULL;
  if (!init && size && !(init = zeros = calloc(1, size)))
    return mproc__fail(MPROC_ENOMEM, "%s: out of memory for %zu bytes", call, size);
  mproc_bytes p = {init, size};
  int rc = create_p(m, MGR_KIND_ARRAY, name, &p, 1, out ? &out->id : NULL, NULL, timeout_ms, call);
  free(zeros);
  return rc;
}
int mproc_manager_array(mproc_manager *m, const void *init, size_t size, mproc_marray *out, int64_t timeout_ms) {
  return array_create(m, NULL, init, size, out, timeout_ms, "manager_array");
}
int mproc_manager_array_named(mproc_manager *m, const char *name, const void *init, size_t size, mproc_marray *out,
                              int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return array_create(m, name, init, size, out, timeout_ms, "manager_array_named");
}
int mproc_marray_get(mproc_manager *m, mproc_marray a, size_t offset, void *buf, size_t size, int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(buf, size);
  rq q = {0};
  rs r;
  arg_i64(&q, offset > INT64_MAX ? -1 : (int64_t)offset);
  arg_i64(&q, size > INT64_MAX ? -1 : (int64_t)size);
  int rc = exec(m, &q, MGR_ARRAY_GET, a.id, timeout_ms, &r);
  if (rc) return rc;
  if (r.n != 1 || r.it[0].n != size)
    rc = mproc__fail(MPROC_ESYS, "manager: a malformed reply");
  else if (size)
    memcpy(buf, r.it[0].p, size);
  rs_free(&r);
  return rc;
}
int mproc_marray_set(mproc_manager *m, mproc_marray a, size_t offset, const void *data, size_t size,
                     int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(data, size);
  rq q = {0};
  arg_i64(&q, offset > INT64_MAX ? -1 : (int64_t)offset);
  arg(&q, data, size);
  return exec0(m, &q, MGR_ARRAY_SET, a.id, timeout_ms);
}
int mproc_marray_len(mproc_manager *m, mproc_marray a, size_t *len, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!len, "len is NULL");
  return len_call(m, MGR_ARRAY_LEN, a.id, len, timeout_ms);
}

/* ---- Queue, JoinableQueue ----------------------------------------------------------------------- */

int mproc_manager_queue(mproc_manager *m, size_t maxsize, mproc_mqueue *out, int64_t timeout_ms) {
  return create_i64(m, MGR_KIND_QUEUE, NULL, (int64_t)(maxsize > INT64_MAX ? 0 : maxsize), out ? &out->id : NULL,
                    timeout_ms, "manager_queue");
}
int mproc_manager_joinable_queue(mproc_manager *m, size_t maxsize, mproc_mqueue *out, int64_t timeout_ms) {
  return create_i64(m, MGR_KIND_JOINABLE_QUEUE, NULL, (int64_t)(maxsize > INT64_MAX ? 0 : maxsize),
                    out ? &out->id : NULL, timeout_ms, "manager_joinable_queue");
}
int mproc_manager_queue_named(mproc_manager *m, const char *name, size_t maxsize, mproc_mqueue *out,
                              int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return create_i64(m, MGR_KIND_QUEUE, name, (int64_t)(maxsize > INT64_MAX ? 0 : maxsize), out ? &out->id : NULL,
                    timeout_ms, "manager_queue_named");
}
int mproc_manager_joinable_queue_named(mproc_manager *m, const char *name, size_t maxsize, mproc_mqueue *out,
                                       int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  return create_i64(m, MGR_KIND_JOINABLE_QUEUE, name, (int64_t)(maxsize > INT64_MAX ? 0 : maxsize),
                    out ? &out->id : NULL, timeout_ms, "manager_joinable_queue_named");
}
int mproc_mqueue_put(mproc_manager *m, mproc_mqueue q, const void *item, size_t size, int64_t timeout_ms) {
  CHECK_M();
  CHECK_BUF(item, size);
  rq r = {0};
  arg_timeout(&r, timeout_ms);
  arg(&r, item, size);
  return exec_wait0(m, &r, MGR_QUEUE_PUT, q.id, timeout_ms);
}
int mproc_mqueue_get(mproc_manager *m, mproc_mqueue q, char **item, size_t *size, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!item || !size, "item or size is NULL");
  rq x = {0};
  rs r;
  arg_timeout(&x, timeout_ms);
  int rc = exec_wait(m, &x, MGR_QUEUE_GET, q.id, timeout_ms, &r);
  return rc ? rc : take_value(&r, item, size);
}
/* qsize and maxsize. */
static int queue_size(mproc_manager *m, mproc_mqueue q, size_t *size, size_t *maxsize, int64_t timeout_ms) {
  rq x = {0};
  rs r;
  int rc = exec(m, &x, MGR_QUEUE_SIZE, q.id, timeout_ms, &r);
  if (rc) return rc;
  int64_t n = 0, max = 0;
  if (r.n != 2 || mproc__mgr_item_i64(r.it[0], &n) || mproc__mgr_item_i64(r.it[1], &max))
    rc = mproc__fail(MPROC_ESYS, "manager: a malformed reply");
  *size = (size_t)n;
  *maxsize = (size_t)max;
  rs_free(&r);
  return rc;
}
int mproc_mqueue_qsize(mproc_manager *m, mproc_mqueue q, size_t *size, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!size, "size is NULL");
  size_t max;
  return queue_size(m, q, size, &max, timeout_ms);
}
int mproc_mqueue_empty(mproc_manager *m, mproc_mqueue q, bool *empty, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!empty, "empty is NULL");
  size_t n = 0, max = 0;
  int rc = queue_size(m, q, &n, &max, timeout_ms);
  if (!rc) *empty = n == 0;
  return rc;
}
int mproc_mqueue_full(mproc_manager *m, mproc_mqueue q, bool *full, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!full, "full is NULL");
  size_t n = 0, max = 0;
  int rc = queue_size(m, q, &n, &max, timeout_ms);
  if (!rc) *full = max && n >= max;
  return rc;
}
int mproc_mqueue_task_done(mproc_manager *m, mproc_mqueue q, int64_t timeout_ms) {
  CHECK_M();
  return call0(m, MGR_QUEUE_TASK_DONE, q.id, timeout_ms);
}
int mproc_mqueue_join(mproc_manager *m, mproc_mqueue q, int64_t timeout_ms) {
  CHECK_M();
  return wait0(m, MGR_QUEUE_JOIN, q.id, timeout_ms);
}

/* ---- custom types ----------------------------------------------------------------------------- */

int mproc_manager_object(mproc_manager *m, const char *type, mproc_mobject *out, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!type || !*type, "no type");
  mproc_bytes p = {type, strlen(type)};
  return create_p(m, MGR_KIND_CUSTOM, NULL, &p, 1, out ? &out->id : NULL, NULL, timeout_ms, "manager_object");
}
int mproc_manager_object_named(mproc_manager *m, const char *name, const char *type, mproc_mobject *out,
                               int64_t timeout_ms) {
  MPROC__CHECK_ARG(!name, "name is NULL");
  MPROC__CHECK_ARG(!type || !*type, "no type");
  mproc_bytes p = {type, strlen(type)};
  return create_p(m, MGR_KIND_CUSTOM, name, &p, 1, out ? &out->id : NULL, NULL, timeout_ms, "manager_object_named");
}
int mproc_mobject_call(mproc_manager *m, mproc_mobject o, const char *method, const mproc_bytes *args, size_t nargs,
                       mproc_bytes **out, size_t *count, int64_t timeout_ms) {
  CHECK_M();
  MPROC__CHECK_ARG(!method || !*method, "no method");
  MPROC__CHECK_ARG(!args && nargs, "args is NULL with a count");
  for (size_t i = 0; i < nargs; ++i) MPROC__CHECK_ARG(!args[i].data && args[i].len, "args[%zu].data is NULL", i);
  rq q = {0};
  arg(&q, method, strlen(method));
  for (size_t i = 0; i < nargs; ++i) arg(&q, args[i].data, args[i].len);
  mproc_bytes *b = NULL;
  size_t n = 0;
  int rc = list_call(m, &q, MGR_CUSTOM_CALL, o.id, &b, &n, timeout_ms);
  if (!rc && out)
    *out = b;
  else
    mproc_free(b);
  if (!rc && count) *count = n;
  return rc;
}

/* ---- shutdown, destroy -------------------------------------------------------------------------- */

int mproc_manager_shutdown(mproc_manager *m, int64_t timeout_ms) {
  CHECK_M();
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  if (m->server && m->owner_pid == mproc_getpid()) {
    mproc__pal_mutex_lock(m->mu);
    bool was = m->shut;
    m->shut = true;
    drop_conn(m);
    mproc__pal_mutex_unlock(m->mu);
    if (was) return mproc__fail(MPROC_ECLOSED, "manager_shutdown: shut down already");
    /* The server ends on a word on its control pipe, or its end: a word, since a server started by fork
     * holds a copy of this end too */
    mproc_connection_send_bytes(m->control, "stop", 4, 0, MPROC_ALL);
    mproc_connection_close(m->control);
    int rc = mproc_process_join(m->server, mproc__ms_until(deadline));
    if (rc == MPROC_ETIMEDOUT) {
      mproc_process_kill(m->server);
      mproc_process_join(m->server, MPROC_INFINITE);
      return mproc__fail(MPROC_ETIMEDOUT, "manager_shutdown: the server did not end in time and was killed");
    }
    return rc;
  }
  rq q = {0};
  int rc = exec0(m, &q, MGR_SHUTDOWN, 0, mproc__ms_until(deadline));
  mproc__pal_mutex_lock(m->mu);
  if (rc != MPROC_ECLOSED) m->shut = true;
  drop_conn(m);
  mproc__pal_mutex_unlock(m->mu);
  return rc;
}

void mproc_manager_destroy(mproc_manager *m) {
  if (!m) return;
  if (m->server && m->owner_pid == mproc_getpid() && !m->shut) mproc_manager_shutdown(m, 10000);
  drop_conn(m);
  mproc_connection_destroy(m->control);
  mproc_process_destroy(m->server);
  mproc__pal_mutex_free(m->mu);
  free(m->address);
  free(m->key);
  free(m);
}

/* ---- handing a handle on: the address and the key --------------------------------------------------- */

static int manager_export(const void *obj, mproc_os_handle *handles, size_t *nhandles, mproc__buf *bytes) {
  (void)handles;
  const mproc_manager *m = (const mproc_manager *)obj;
  *nhandles = 0;
  size_t alen = strlen(m->address);
  if (mproc__buf_reserve(bytes, 12) != 0) return MPROC_ENOMEM;
  mproc__mgr_put_u32(bytes, (uint32_t)m->family);
  int rc = mproc__mgr_put_item(bytes, m->address, alen);
  return rc ? rc : mproc__mgr_put_item(bytes, m->key, m->key_size);
}

static int manager_import(const void *bytes, size_t len, const mproc_os_handle *handles, size_t nhandles, void **obj) {
  (void)handles;
  mproc__mgr_item *it = NULL;
  if (nhandles != 0 || len < 4 || mproc__mgr_parse_items((const char *)bytes + 4, len - 4, 2, &it) != 0 ||
      it[0].n == 0 || it[0].n > 4096 || memchr(it[0].p, 0, it[0].n)) {
    free(it);
    return mproc__fail(MPROC_EINVAL, "manager: a handed manager is malformed");
  }
  char *address = (char *)malloc(it[0].n + 1);
  int rc = address ? 0 : mproc__fail(MPROC_ENOMEM, "manager: out of memory");
  if (!rc) {
    memcpy(address, it[0].p, it[0].n);
    address[it[0].n] = 0;
    rc = handle_new((mproc_manager **)obj, address, (mproc_family)mproc__mgr_get_u32((const char *)bytes), it[1].p,
                    it[1].n, false);
  }
  free(address);
  free(it);
  return rc;
}

const mproc__handable_type mproc__manager_handable = {MPROC_OBJECT_MANAGER, "manager", manager_export, manager_import};
