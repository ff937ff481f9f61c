/* A pool's worker (pool_internal.h): runs tasks received on its connection and sends back their
 * outputs, the same loop for a process worker and a thread worker. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../atomic.h"
#include "../pal.h"
#include "mproc/shared.h"
#include "../wire.h"
#include "pool_internal.h"

struct mproc_task {
  mproc__buf out;
  char *message; /* mproc_task_fail's */
};

int mproc_task_return(mproc_task *t, const void *data, size_t len) {
  MPROC__CHECK_ARG(!t || (!data && len), "task and data must be set");
  t->out.len = 0;
  return mproc__buf_append(&t->out, data, len);
}

int mproc_task_fail(mproc_task *t, const char *fmt, ...) {
  if (!t || !fmt) return MPROC_ETASK;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  free(t->message);
  t->message = mproc__strdup(buf);
  return MPROC_ETASK;
}

static int put_u64(mproc__buf *b, uint64_t v) {
  unsigned char w[8];
  mproc__wire_put_le64(w, v);
  return mproc__buf_append(b, w, 8);
}

/* Run the n items of a task; the reply in *reply. */
static int run_task(mproc_task_fn fn, mproc__wire_reader *r, mproc__buf *reply) {
  uint64_t n = mproc__wire_get_u64(r, "a task's item count");
  int rc = mproc__buf_append(reply, "R", 1);
  size_t at = reply->len;
  if (!rc) rc = put_u64(reply, 0);
  if (!rc) rc = put_u64(reply, n);
  for (uint64_t i = 0; i < n && !rc && !r->bad; ++i) {
    size_t len;
    const void *in = mproc__wire_get_bytes(r, &len, "a task's item");
    if (r->bad) break;
    mproc_task t;
    memset(&t, 0, sizeof t);
    int st = fn(in, len, &t);
    if (st) { /* the first failure ends the task: the reply says which item and why */
      char msg[64];
      if (!t.message) snprintf(msg, sizeof msg, "the task returned %d", st);
      const char *m = t.message ? t.message : msg;
      reply->len = at;
      rc = put_u64(reply, (uint64_t)-MPROC_ETASK);
      if (!rc) rc = put_u64(reply, i);
      if (!rc) rc = put_u64(reply, strlen(m));
      if (!rc) rc = mproc__buf_append(reply, m, strlen(m));
      mproc__buf_free(&t.out);
      free(t.message);
      return rc;
    }
    rc = put_u64(reply, t.out.len);
    if (!rc) rc = mproc__buf_append(reply, t.out.data, t.out.len);
    mproc__buf_free(&t.out);
    free(t.message);
  }
  if (r->bad) return mproc__fail(MPROC_ESYS, "pool worker: a malformed task (%s)", r->bad);
  return rc;
}

int mproc__pool_worker_loop(mproc_connection *c, const mproc__pool_worker_cfg *cfg) {
  if (cfg->initializer) cfg->initializer(cfg->initarg, cfg->initarg_size);
  mproc_task_fn *fns = NULL;
  size_t nfns = 0;
  int rc = 0;
  for (uint64_t done = 0; !rc && (!cfg->maxtasks || done < cfg->maxtasks);) {
    char *msg = NULL;
    size_t len = 0;
    rc = mproc_connection_recv_bytes(c, 0, MPROC_INFINITE, &msg, &len);
    if (rc == MPROC_EEOF || (!rc && len == 1 && msg[0] == MPROC__POOL_QUIT)) {
      mproc_free(msg);
      rc = 0;
      break;
    }
    if (rc) break;
    mproc__wire_reader r = mproc__wire_reader_make(msg + (len > 0), len ? len - 1 : 0);
    uint64_t index = mproc__wire_get_u64(&r, "a function index");
    if (len && msg[0] == MPROC__POOL_DEFINE && !r.bad) {
      void *fn = NULL;
      rc = mproc__pal_fn_resolve(r.p + r.off, mproc__wire_left(&r), &fn);
      mproc_task_fn *more = rc ? NULL : (mproc_task_fn *)realloc(fns, (size_t)(index + 1) * sizeof *fns);
      if (!rc && !more) rc = mproc__fail(MPROC_ENOMEM, "pool worker: out of memory");
      if (more) {
        fns = more;
        for (size_t i = nfns; i <= index; ++i) fns[i] = NULL;
        nfns = nfns > index + 1 ? nfns : (size_t)index + 1;
        fns[index] = (mproc_task_fn)fn;
      }
    } else if (len && msg[0] == MPROC__POOL_TASK && !r.bad && index < nfns && fns[index]) {
      mproc__buf reply = {0};
      if (cfg->begun) mproc__atomic_store64(cfg->begun, done + 1);
      rc = run_task(fns[index], &r, &reply);
      if (!rc) rc = mproc_connection_send_bytes(c, reply.data, reply.len, 0, reply.len);
      mproc__buf_free(&reply);
      ++done;
    } else {
      rc = mproc__fail(MPROC_ESYS, "pool worker: a malformed message");
    }
    mproc_free(msg);
  }
  free(fns);
  return rc;
}

int mproc__pool_worker_main(const mproc_args *a) {
  if (a->connection_count != 1 || a->object_count != 2) return 70;
  mproc__wire_reader r = mproc__wire_reader_make(a->data, a->size);
  mproc__pool_worker_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.maxtasks = mproc__wire_get_u64(&r, "maxtasks");
  uint64_t slot = mproc__wire_get_u64(&r, "the slot");
  mproc_value *slots = (mproc_value *)a->objects[1];
  if (r.bad || slot >= mproc_value_length(slots)) return 71;
  cfg.begun = (volatile uint64_t *)mproc_value_ptr(slots) + slot;
  size_t ref_len;
  const void *ref = mproc__wire_get_bytes(&r, &ref_len, "the initializer");
  cfg.initarg = mproc__wire_get_bytes(&r, &cfg.initarg_size, "the initializer's argument");
  if (r.bad) return 71;
  if (ref_len) {
    void *fn = NULL;
    if (mproc__pal_fn_resolve(ref, ref_len, &fn) != 0) return 72;
    cfg.initializer = (void (*)(const void *, size_t))fn;
  }
  return mproc__pool_worker_loop(a->connections[0], &cfg) ? 73 : 0;
}
