/* mproc_mpi (mproc/mpi.h): the Pool's workers on the ranks of an MPI job, as a pool backend
 * (mproc/pool_backend.h). A library of its own over libmproc's public API, POSIX threads and MPI.
 *
 * Rank 0: the pool engine's threads make the MPI calls themselves (the backend's send and poll): a
 * task message goes out with MPI_Isend from the thread that hands it to the worker, and the engine's
 * result thread, while a task is in flight, polls MPI instead of sleeping and puts the replies that
 * came into the workers' reply rings (mproc_pool_replies, the backend's hands_replies) - whichever
 * pool's they are. Each worker still has a local connection (an mproc_pipe) to the engine, for what
 * must come back on it: a reply too long for the ring, the "W" that wakes a sleeping engine (another
 * pool's poll took its replies), the end. A writer thread writes those, so a thread that polls never
 * waits on an engine. Every MPI call is made under g.mu (MPI_THREAD_SERIALIZED). A worker rank: its
 * main thread reads MPI itself and runs each pool's worker (mproc_pool_worker_open/_feed) on the
 * messages, one session per pool (several at once when pools overlap, served in turn); it sends the
 * replies of a batch of tasks back together.
 *
 * The messages between rank 0 and rank r, on a duplicate of MPI_COMM_WORLD, one tag; each one
 * [u8 kind] [u64 session] [payload]:
 *   0 -> r  'O' open session: the payload is the worker's settings (boot)
 *   0 -> r  'D' one message of the session's connection
 *   r -> 0  'R' replies: [u64 k] k x ([u64 len] [a reply]); the first, with k = 0, says the session opened
 *   both    'C' the session ended (0 -> r: the pool ended the worker; r -> 0: the worker ended by itself)
 *   0 -> r  'F' finalize: r ends its sessions and answers 'F', then finalizes and exits
 *   both    'L' [u64 n] (its session 0): the next message is n bytes long, more than an MPI count of bytes
 *           may say (a part, g.part, of 1 GiB): it comes on TAG_BODY as one send of a datatype of whole
 *           parts and the rest, and then counts as if it had come in the place of its 'L'
 * MPI keeps the order of messages between two ranks, so a session's messages come in order and a
 * session opened while the previous one still ends waits behind it. A message of an old session is
 * dropped.
 *
 * Nothing here blocks inside MPI (Open MPI's waits spin without end): both sides poll with MPI_Iprobe
 * and MPI_Test, sends are MPI_Isend, and a poller waits between polls as `pace` says: it yields the CPU
 * while messages flow, naps 50 us once they paused, and waits 1 ms at a time once quiet. Rank 0 receives
 * with MPI_Improbe and MPI_Imrecv, so a long message on its way holds up nothing else; a worker rank,
 * which has nothing else to do, takes a message it found with MPI_Recv. */
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mproc/connection.h"
#include "mproc/core.h"
#include "mproc/mpi.h"
#include "mproc/pool_backend.h"
#include "../wire.h"

enum { TAG = 7731, TAG_BODY = 7732, HDR = 9 };
#define FIN_TRIES_NS 10000000000ll /* end_workers: how long an 'F' that cannot go is tried again */
enum { OPEN = 'O', DATA = 'D', REPLIES = 'R', CLOSE = 'C', FIN = 'F', LONG = 'L' };
#define QUICK_NS 1000000   /* tasks under 1 ms, the trip there and back included, are sent ahead */
#define SPIN_NS 200000L    /* polls with a yield of the CPU between them, for 200 us since the last message */
#define ACTIVE_NS 2000000L /* then naps of NAP_NS between polls, until 2 ms since the last message */
#define NAP_NS 50000L
#define HOLD_NS 50000L /* a worker rank sends its replies once a batch ends, or the oldest waited this long */
#define HOLD_MAX 32    /* or this many are held */
/* Longer than this, a message may move only while its sender makes MPI calls (a worker rank sees it gone
 * before it runs a task): Open MPI sends a message at once only up to its transport's eager limit less a
 * header (TCP 64 KiB; shared memory 4 KiB, and 32 KiB in a first fragment, the rest by the sender when it
 * cannot copy from the sender's memory itself; UCX and InfiniBand about 8-12 KiB). */
#define EAGER_MAX (8 * 1024)

/* A send in flight. */
typedef struct sending {
  MPI_Request req;
  unsigned char *buf;
  bool long_one; /* longer than EAGER_MAX */
} sending;

/* A message rank 0 receives: matched (MPI_Improbe) and on its way in (MPI_Imrecv), or the body an 'L'
 * announced (MPI_Irecv). */
typedef struct receiving {
  MPI_Request req;
  unsigned char *buf;
  size_t len;
  int src;
  bool body;
} receiving;

/* A session with a worker rank, on rank 0: the far end of one of the engine's worker connections. */
typedef struct link {
  int rank;
  uint64_t session;
  mproc_connection *conn;
  mproc_pool_replies *replies; /* the worker's ring in the engine */
  bool confirmed;              /* the rank answered (its worker opened: an empty 'R'; or it ended) */
} link;

static struct {
  bool up;             /* the guard initialised mproc_mpi in a job of more than one rank */
  bool we_initialized; /* the guard called MPI_Init */
  bool finalized;
  int64_t pid; /* the process the guard ran in (a fork child of it never finalizes) */
  int rank, size;
  MPI_Comm comm;
  int mismatch; /* the first rank whose executable differs (0: none) */
  uint64_t sum;
  /* rank 0: g.mu guards the rest, and every MPI call once the guard returned */
  pthread_mutex_t mu;
  link *links; /* the live sessions */
  size_t nlinks, caplinks;
  uint64_t sessions;
  bool writer_running;
  int64_t sent_at; /* when a task message last went (mproc_monotonic_ns): the polls spin from there */
  mproc_pool_backend backend;
  /* sends in flight (rank 0's, or the worker's main thread's) */
  sending *sends;
  size_t nsends, capsends, long_out; /* (long_out: those longer than EAGER_MAX) */
  size_t part;                       /* a message longer than this goes as an 'L' and a body (tests lower it) */
  uint64_t parted;                   /* such messages sent and received (tests read it) */
  /* rank 0: receives in flight, in the order they matched; and the worker ranks that answered 'F' */
  receiving *recvs;
  size_t nrecvs, caprecvs;
  int fins;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .part = (size_t)1 << 30};

/* ---- sending and receiving ---------------------------------------------------------------------- */

/* A message [kind][session][payload] in a buffer of its own (malloc; NULL: out of memory). */
static unsigned char *message(int kind, uint64_t session, const void *payload, size_t len) {
  unsigned char *b = (unsigned char *)malloc(HDR + len);
  if (!b) return NULL;
  b[0] = (unsigned char)kind;
  mproc__wire_put_le64(b + 1, session);
  if (len) memcpy(b + HDR, payload, len);
  return b;
}

/* Room for one more of the n items at *items (each `size` bytes; *cap of them): the array (moved, and
 * *cap grown, when it was full), or NULL when out of memory (then the array and *cap are as they were). */
static void *room(void *items, size_t *cap, size_t n, size_t size) {
  if (n < *cap) return items;
  size_t c = *cap ? 2 * *cap : 8;
  if (c > SIZE_MAX / size) return NULL;
  void *more = realloc(items, c * size);
  if (more) *cap = c;
  return more;
}

/* The datatype of a body of len bytes (more than g.part): its whole parts, then the rest. true: *type is
 * committed (the caller frees it); false: there is nothing to free. */
static bool body_type(size_t len, MPI_Datatype *type) {
  MPI_Datatype part;
  if (len / g.part > (size_t)INT32_MAX || MPI_Type_contiguous((int)g.part, MPI_BYTE, &part) != MPI_SUCCESS)
    return false;
  int lens[2] = {(int)(len / g.part), (int)(len % g.part)};
  MPI_Aint at[2] = {0, (MPI_Aint)(len - len % g.part)};
  MPI_Datatype types[2] = {part, MPI_BYTE};
  bool made = MPI_Type_create_struct(lens[1] ? 2 : 1, lens, at, types, type) == MPI_SUCCESS;
  MPI_Type_free(&part);
  if (made && MPI_Type_commit(type) == MPI_SUCCESS) return true;
  if (made) MPI_Type_free(type);
  return false;
}

/* Room for two more sends (a long message's 'L' and body). */
static bool send_room(void) {
  sending *more = (sending *)room(g.sends, &g.capsends, g.nsends + 1, sizeof *more);
  if (more) g.sends = more;
  return more != NULL;
}

/* Start the send of buf (taken: freed once sent; len bytes) to rank `to`, in a place send_room made:
 * `count` elements of `type`. */
static bool isend_one(int to, int tag, unsigned char *buf, size_t len, int count, MPI_Datatype type) {
  sending *s = &g.sends[g.nsends];
  if (MPI_Isend(buf, count, type, to, tag, g.comm, &s->req) != MPI_SUCCESS) {
    free(buf);
    return false;
  }
  s->buf = buf;
  s->long_one = len > EAGER_MAX;
  g.long_out += s->long_one;
  ++g.nsends;
  return true;
}

/* Send buf (taken: freed once sent) of len bytes to rank `to`, without waiting: at once, or an 'L' and
 * then the body (what can fail is done before the 'L' goes: a receiver waits for the body it
 * announces). false: it could not go (out of memory, MPI refused): the caller ends the session. */
static bool isend(int to, unsigned char *buf, size_t len) {
  bool long_one = len > g.part;
  unsigned char n[8];
  mproc__wire_put_le64(n, len);
  unsigned char *l = long_one ? message(LONG, 0, n, sizeof n) : NULL;
  MPI_Datatype type = MPI_BYTE;
  if (!buf || !send_room() || (long_one && (!l || !body_type(len, &type)))) {
    free(buf);
    free(l);
    return false;
  }
  bool ok = !long_one || isend_one(to, TAG, l, HDR + sizeof n, HDR + sizeof n, MPI_BYTE);
  g.parted += ok && long_one;
  if (ok)
    ok = isend_one(to, long_one ? TAG_BODY : TAG, buf, len, long_one ? 1 : (int)len, type);
  else
    free(buf);
  if (type != MPI_BYTE) MPI_Type_free(&type); /* (MPI keeps it until the send no longer needs it) */
  return ok;
}

/* Free the sends that are done. */
static void reap_sends(void) {
  for (size_t i = 0; i < g.nsends;) {
    int done = 0;
    MPI_Test(&g.sends[i].req, &done, MPI_STATUS_IGNORE);
    if (!done) {
      ++i;
      continue;
    }
    g.long_out -= g.sends[i].long_one;
    free(g.sends[i].buf);
    g.sends[i] = g.sends[--g.nsends];
  }
}

/* A message of n bytes from rank `src`: its buffer (malloc). Out of memory: there is no way to take the
 * message without one, and the session it belongs to would be lost: the process aborts. */
static unsigned char *message_buffer(size_t n, int src) {
  unsigned char *b = (unsigned char *)malloc(n ? n : 1);
  if (!b) {
    fprintf(stderr, "mproc_mpi: out of memory for a message of %zu bytes from rank %d\n", n, src);
    abort();
  }
  return b;
}

/* If b (len bytes) is an 'L': the length of the body it announces, else 0. */
static size_t announced(const unsigned char *b, size_t len) {
  return len == HDR + 8 && b[0] == LONG ? (size_t)mproc__wire_get_le64(b + HDR) : 0;
}

/* Receive the body of n bytes an 'L' from rank src announced into *buf (malloc): started in *req (req
 * NULL: received before it returns). */
static void recv_body(int src, size_t n, unsigned char **buf, MPI_Request *req) {
  MPI_Datatype type;
  *buf = message_buffer(n, src);
  if (!body_type(n, &type)) {
    fprintf(stderr, "mproc_mpi: no datatype for a message of %zu bytes from rank %d\n", n, src);
    abort();
  }
  if (req)
    MPI_Irecv(*buf, 1, type, src, TAG_BODY, g.comm, req);
  else
    MPI_Recv(*buf, 1, type, src, TAG_BODY, g.comm, MPI_STATUS_IGNORE);
  MPI_Type_free(&type);
  ++g.parted;
}

/* A worker rank: the next message from rank 0, if one is there: 1 with *buf (malloc) and *len; 0. (It
 * waits in MPI_Recv while a long one comes: its main thread has nothing else to do.) */
static int irecv(unsigned char **buf, size_t *len) {
  int flag = 0, count = 0;
  MPI_Status st;
  if (MPI_Iprobe(0, TAG, g.comm, &flag, &st) != MPI_SUCCESS || !flag) return 0;
  MPI_Get_count(&st, MPI_BYTE, &count);
  *buf = message_buffer((size_t)count, 0);
  MPI_Recv(*buf, count, MPI_BYTE, 0, TAG, g.comm, MPI_STATUS_IGNORE);
  *len = (size_t)count;
  size_t n = announced(*buf, *len);
  if (n) {
    free(*buf);
    recv_body(0, n, buf, NULL);
    *len = n;
  }
  return 1;
}

/* Rank 0, with g.mu held: start receiving every message that has come, from any rank: matched, so the
 * next probe finds the next one, and not waited for, so a long message on its way (a rank that sent it
 * may run a task before its MPI moves the rest) holds up neither the other ranks' messages nor the
 * threads that wait for g.mu. */
static void start_receives(void) {
  for (;;) {
    int flag = 0, count = 0;
    MPI_Message m;
    MPI_Status st;
    receiving *more = (receiving *)room(g.recvs, &g.caprecvs, g.nrecvs, sizeof *more);
    if (!more) return; /* (the messages wait) */
    g.recvs = more;
    if (MPI_Improbe(MPI_ANY_SOURCE, TAG, g.comm, &flag, &m, &st) != MPI_SUCCESS || !flag) return;
    MPI_Get_count(&st, MPI_BYTE, &count);
    receiving *x = &g.recvs[g.nrecvs++];
    x->buf = message_buffer((size_t)count, st.MPI_SOURCE);
    x->len = (size_t)count;
    x->src = st.MPI_SOURCE;
    x->body = false;
    MPI_Imrecv(x->buf, count, MPI_BYTE, &m, &x->req);
  }
}

static void take_message(int src, const unsigned char *b, size_t len);

/* Rank 0, with g.mu held: take the messages that are in (take_message), each once every message its rank
 * sent before it was (MPI's order between two ranks kept); the others stay. The number taken. */
static size_t take_received(void) {
  size_t kept = 0, taken = 0;
  for (size_t i = 0; i < g.nrecvs; ++i) {
    receiving x = g.recvs[i];
    bool behind = false; /* an earlier message of its rank is still on its way */
    for (size_t j = 0; j < kept && !behind; ++j) behind = g.recvs[j].src == x.src;
    int done = 0;
    if (!behind) MPI_Test(&x.req, &done, MPI_STATUS_IGNORE);
    size_t n = done && !x.body ? announced(x.buf, x.len) : 0;
    if (n) { /* an 'L': its body, on its way, takes its place */
      free(x.buf);
      recv_body(x.src, n, &x.buf, &x.req);
      x.len = n;
      x.body = true;
      done = 0;
    }
    if (!done) {
      g.recvs[kept++] = x;
      continue;
    }
    take_message(x.src, x.buf, x.len);
    free(x.buf);
    ++taken;
  }
  g.nrecvs = kept;
  return taken;
}

/* How a poller waits between its polls, from *last, when the last progress was (mproc_monotonic_ns; 0:
 * none yet), which progress now moves. For SPIN_NS after a message it polls again at once, yielding the
 * CPU in between (the replies of quick tasks come every few microseconds, and a nap would leave the
 * worker ranks idle); until ACTIVE_NS it naps NAP_NS between polls (a task's reply from another rank is
 * noticed within about that); once quiet longer it waits 1 ms at a time. The timeout of its next wait
 * (0 or 1 ms), after napping or yielding if it is time to. */
static int64_t pace(int64_t *last, bool progress) {
  int64_t now = mproc_monotonic_ns();
  if (progress) *last = now;
  if (now - *last < SPIN_NS) {
    if (!progress) sched_yield();
    return 0;
  }
  if (now - *last > ACTIVE_NS) return 1;
  struct timespec ts = {0, NAP_NS};
  nanosleep(&ts, NULL);
  return 0;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- the same program ----------------------------------------------------------------------------- */

/* FNV-1a 64 of this process's executable file (a non-cryptographic checksum), or 0. */
static uint64_t exe_checksum(void) {
  char *path = NULL;
  if (mproc_self_exe(&path) != 0) {
    mproc_clear_error();
    return 0;
  }
  FILE *f = fopen(path, "rb");
  mproc_free(path);
  if (!f) return 0;
  uint64_t h = 1469598103934665603ull;
  unsigned char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    for (size_t i = 0; i < n; ++i) h = (h ^ buf[i]) * 1099511628211ull;
  fclose(f);
  return h;
}

/* ---- rank 0: the backend ------------------------------------------------------------------------------ */

/* With g.mu held: the link of rank r's session s, or NULL. */
static link *find_link(int r, uint64_t s) {
  for (size_t i = 0; i < g.nlinks; ++i)
    if (g.links[i].rank == r && g.links[i].session == s) return &g.links[i];
  return NULL;
}

/* With g.mu held: the link whose ring is r, or NULL. */
static link *find_ring(const mproc_pool_replies *r) {
  for (size_t i = 0; i < g.nlinks; ++i)
    if (g.links[i].replies == r) return &g.links[i];
  return NULL;
}

/* With g.mu held: forget link l; its connection for the caller to destroy (the engine sees the end). */
static mproc_connection *unlink_session(link *l) {
  mproc_connection *c = l->conn;
  mproc_pool_replies_release(l->replies); /* (nothing is put there any more) */
  *l = g.links[--g.nlinks];
  return c;
}

/* What a poll hands the writer thread: a message for a link's connection, or its end. */
typedef struct outgoing {
  struct outgoing *next;
  mproc_connection *conn;
  unsigned char *msg; /* a 'D' message (its payload from HDR on); NULL: destroy conn */
  size_t len;
} outgoing;

/* The writer thread of rank 0: writes what must come from the ranks on the links' connections, so a
 * poll never waits on a pool engine. (A result thread that wrote a long reply on its own worker's
 * connection would wait for itself to read it; one that wrote another pool's would wait for that
 * pool's result thread.) Ends once stopped and its queue is empty. */
static struct {
  pthread_cond_t cv;
  outgoing *head, *tail;
  bool stop;
  pthread_t thr;
} w = {.cv = PTHREAD_COND_INITIALIZER};

static void *writer_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&g.mu);
  for (;;) {
    while (!w.head && !w.stop) pthread_cond_wait(&w.cv, &g.mu);
    outgoing *o = w.head;
    if (!o) break;
    w.head = o->next;
    if (!w.head) w.tail = NULL;
    pthread_mutex_unlock(&g.mu);
    if (!o->msg)
      mproc_connection_destroy(o->conn);
    else if (mproc_connection_send_bytes(o->conn, o->msg + HDR, o->len - HDR, 0, o->len - HDR) != 0)
      mproc_clear_error(); /* the engine ended the worker (and said so: send) */
    free(o->msg);
    free(o);
    pthread_mutex_lock(&g.mu);
  }
  pthread_mutex_unlock(&g.mu);
  return NULL;
}

/* With g.mu held: queue msg (taken; NULL: the end of conn) for the writer. false: out of memory (the
 * message is lost: the caller ends the session). */
static bool to_writer(mproc_connection *conn, unsigned char *msg, size_t len) {
  outgoing *o = (outgoing *)calloc(1, sizeof *o);
  if (!o) {
    fprintf(stderr, "mproc_mpi: out of memory: a message from a worker rank is lost\n");
    free(msg);
    return false;
  }
  o->conn = conn;
  o->msg = msg;
  o->len = len;
  if (w.tail)
    w.tail->next = o;
  else
    w.head = o;
  w.tail = o;
  pthread_cond_signal(&w.cv);
  return true;
}

/* With g.mu held: a 'D' of n bytes for link l's connection, to the writer. false when it could not (out of
 * memory): the caller ends the session (a NULL message would tell the writer to destroy the connection). */
static bool to_writer_data(link *l, const void *p, size_t n) {
  unsigned char *m = message(DATA, l->session, p, n);
  return m && to_writer(l->conn, m, HDR + n);
}

/* With g.mu held: hand the replies of b (an 'R' message of len bytes for link l) to the worker's ring,
 * and to the writer what must go on its connection. false: b is malformed, or more replies came than
 * tasks went, or memory ran out: the caller ends the session. */
static bool put_replies(link *l, const unsigned char *b, size_t len) {
  const unsigned char *at = b + HDR, *end = b + len;
  if (end - at < 8) return false;
  uint64_t k = mproc__wire_get_le64(at);
  at += 8;
  bool wake = false;
  for (uint64_t i = 0; i < k; ++i) {
    if (end - at < 8) return false;
    uint64_t n = mproc__wire_get_le64(at);
    at += 8;
    if ((uint64_t)(end - at) < n) return false;
    int act = mproc_pool_replies_put(l->replies, at, (size_t)n);
    if (act == MPROC_POOL_REPLY_WAKE) {
      wake = true;
    } else if (act == MPROC_POOL_REPLY_SEND) {
      if (!to_writer_data(l, at, (size_t)n)) return false;
    } else if (act != MPROC_POOL_REPLY_TAKEN) {
      fprintf(stderr, "mproc_mpi: rank %d: %s\n", l->rank, mproc_last_error());
      mproc_clear_error();
      return false;
    }
    at += n;
  }
  return at == end && (!wake || to_writer_data(l, "W", 1));
}

/* With g.mu held: end link l's session from rank 0's side (the engine ended the worker, or a message to
 * it could not go): its rank is told, and the engine sees the end of the connection once the writer
 * wrote what it still has for it. */
static void end_link(link *l) {
  int r = l->rank;
  uint64_t s = l->session;
  to_writer(unlink_session(l), NULL, 0);
  if (!isend(r, message(CLOSE, s, NULL, 0), HDR))
    fprintf(stderr, "mproc_mpi: the end of a session could not be sent to rank %d\n", r);
}

/* With g.mu held: one message b (len bytes) from rank src, whichever pool's: replies to the rings (and
 * to the writer what must go on a connection), ends; 'F', a worker rank's answer at finalize, counted. */
static void take_message(int src, const unsigned char *b, size_t len) {
  link *l = len >= HDR ? find_link(src, mproc__wire_get_le64(b + 1)) : NULL;
  g.fins += len >= HDR && b[0] == FIN;
  if (l) l->confirmed = true;
  if (l && b[0] == REPLIES && !put_replies(l, b, len)) /* the worker is ended (and told) */
    end_link(l);
  else if (l && b[0] == CLOSE) /* the worker ended by itself */
    to_writer(unlink_session(l), NULL, 0);
}

/* With g.mu held: take what the ranks sent; free the sends that are done. true: something came. */
static bool take_messages(void) {
  start_receives();
  bool got = take_received() > 0;
  reap_sends();
  return got;
}

/* The backend's poll (mproc/pool_backend.h), on a pool's result thread. */
static int64_t backend_poll(void *ctx, int64_t *last, bool *more) {
  (void)ctx;
  pthread_mutex_lock(&g.mu);
  bool got = !g.finalized && take_messages();
  *more = !g.finalized && (g.nsends || g.nrecvs); /* (a send or receive to complete, a start to confirm) */
  for (size_t i = 0; i < g.nlinks && !*more; ++i) *more = !g.links[i].confirmed;
  /* (tasks went: their replies are due; a message is coming in: it moves as fast as we poll) */
  int64_t busy = g.nrecvs ? mproc_monotonic_ns() : g.sent_at;
  pthread_mutex_unlock(&g.mu);
  if (busy > *last) *last = busy;
  return pace(last, got);
}

/* The backend's send: a message of the engine to the worker's rank, or (msg NULL) the worker's end. */
static int backend_send(void *ctx, mproc_pool_replies *replies, const void *msg, size_t len) {
  (void)ctx;
  pthread_mutex_lock(&g.mu);
  link *l = g.finalized ? NULL : find_ring(replies); /* (none: the session ended, its end on its way) */
  bool sent = !msg || (l && isend(l->rank, message(DATA, l->session, msg, len), HDR + len));
  if (l && (!msg || !sent)) end_link(l);
  if (msg && sent) g.sent_at = mproc_monotonic_ns();
  pthread_mutex_unlock(&g.mu);
  return sent ? 0 : mproc_pool_backend_fail(MPROC_EPIPE, "mpi: the worker's session has ended");
}

static bool grow_links(void) {
  link *more = (link *)room(g.links, &g.caplinks, g.nlinks, sizeof *more);
  if (more) g.links = more;
  return more != NULL;
}

static void end_workers(void);

static int backend_start(void *ctx, size_t slot, const void *boot, size_t boot_len, mproc_connection *conn,
                         mproc_pool_replies *replies) {
  (void)ctx;
  char why[256];
  int r = (int)slot + 1;
  if (g.mismatch) {
    snprintf(why, sizeof why,
             "mpi: rank %d runs a different program than rank 0 (the checksums of their executables differ): "
             "every rank must run the same build",
             g.mismatch);
    return mproc_pool_backend_fail(MPROC_EINVAL, why);
  }
  pthread_mutex_lock(&g.mu);
  int rc = 0;
  if (g.finalized || !g.up || r >= g.size) {
    snprintf(why, sizeof why, "mpi: %s", g.finalized ? "finalized already" : "no such rank");
    rc = MPROC_ESTATE;
  } else if (!grow_links()) {
    snprintf(why, sizeof why, "mpi: out of memory");
    rc = MPROC_ENOMEM;
  } else if (!g.writer_running && pthread_create(&w.thr, NULL, writer_main, NULL) != 0) {
    snprintf(why, sizeof why, "mpi: could not start the writer thread");
    rc = MPROC_ESYS;
  } else {
    g.writer_running = true;
    if (!isend(r, message(OPEN, g.sessions + 1, boot, boot_len), HDR + boot_len)) {
      snprintf(why, sizeof why, "mpi: could not open a session on rank %d", r);
      rc = MPROC_ESYS;
    } else {
      link *l = &g.links[g.nlinks++];
      l->rank = r;
      l->session = ++g.sessions;
      l->conn = conn;
      l->replies = replies;
      l->confirmed = false;
    }
  }
  pthread_mutex_unlock(&g.mu);
  return rc ? mproc_pool_backend_fail(rc, why) : 0;
}

int mproc_mpi_finalize(void) {
  if (mproc_getpid() != g.pid) return 0; /* a fork child (a local pool's worker): MPI is its parent's */
  pthread_mutex_lock(&g.mu);
  bool was = g.finalized;
  g.finalized = true; /* no pool makes an MPI call from here on: every one is this thread's */
  bool running = g.writer_running;
  g.writer_running = false;
  w.stop = true; /* the writer ends once it wrote what it has */
  pthread_cond_signal(&w.cv);
  pthread_mutex_unlock(&g.mu);
  if (was) return 0;
  if (running) pthread_join(w.thr, NULL);
  if (g.up) end_workers();
  if (g.we_initialized) MPI_Finalize();
  return 0;
}

/* Rank 0 at finalize: every worker rank ends its serve loop. */
static void end_workers(void) {
  pthread_mutex_lock(&g.mu); /* (a pool's thread may still look: it finds nothing) */
  while (g.nlinks) mproc_connection_destroy(unlink_session(&g.links[0]));
  free(g.links);
  g.links = NULL;
  g.caplinks = 0;
  pthread_mutex_unlock(&g.mu);
  /* Send each rank its 'F' (one that could not go, out of memory, is tried again at each round, for up to
   * FIN_TRIES_NS: then the job is aborted rather than left waiting); take (and drop) what the ranks still
   * send until each one answered 'F'; then ours are all taken. */
  int64_t last = 0, began = mproc_monotonic_ns();
  int told = 1; /* the ranks below have their 'F' */
  for (bool done = false; !done;) {
    pthread_mutex_lock(&g.mu);
    while (told < g.size && isend(told, message(FIN, 0, NULL, 0), HDR)) ++told;
    if (told < g.size && mproc_monotonic_ns() - began > FIN_TRIES_NS) {
      fprintf(stderr, "mproc_mpi: could not finalize rank %d (out of memory): aborting the job\n", told);
      MPI_Abort(g.comm, 1);
    }
    bool progress = take_messages(); /* (no link is left: each is dropped, an 'F' counted) */
    done = told == g.size && g.fins == g.size - 1 && !g.nsends && !g.nrecvs;
    if (g.nrecvs) last = mproc_monotonic_ns(); /* (a message coming in moves as fast as we poll) */
    pthread_mutex_unlock(&g.mu);
    int64_t ms = pace(&last, progress);
    if (ms && !done) sleep_ms(ms);
  }
  free(g.sends);
  g.sends = NULL;
  g.nsends = g.capsends = 0;
  free(g.recvs);
  g.recvs = NULL;
  g.caprecvs = 0;
  MPI_Comm_free(&g.comm);
}

/* Tests: the longest message that goes as it is (0: 1 GiB), on every rank before the guard; and how many
 * longer ones this rank has sent and received. */
void mproc__mpi_set_part(size_t bytes);
uint64_t mproc__mpi_long_messages(void);
void mproc__mpi_set_part(size_t bytes) { g.part = bytes && bytes <= (size_t)INT32_MAX ? bytes : (size_t)1 << 30; }
uint64_t mproc__mpi_long_messages(void) {
  pthread_mutex_lock(&g.mu);
  uint64_t n = g.parted;
  pthread_mutex_unlock(&g.mu);
  return n;
}

static void finalize_at_exit(void) { (void)mproc_mpi_finalize(); }

const mproc_pool_backend *mproc_mpi_pool_backend(void) { return g.up && g.rank == 0 ? &g.backend : NULL; }

int mproc_mpi_rank(void) { return g.up ? g.rank : 0; }

int mproc_mpi_size(void) { return g.up ? g.size : 1; }

/* ---- a worker rank ---------------------------------------------------------------------------------- */

/* A pool's worker on this rank. The replies of quick tasks are gathered into one 'R' message (out), sent
 * once the message that asked for them has been served, or once HOLD_MAX are held or the oldest is
 * HOLD_NS old; a reply whose task took HOLD_NS or longer goes at once (with those held), so no reply
 * waits for the next task of a batch to end when that one is long too. */
typedef struct session {
  uint64_t id;
  mproc_pool_worker *w;
  unsigned char *out; /* [R][id][k], then k x ([len][reply]) */
  size_t len, cap;
  uint64_t k;
  int64_t first; /* when the oldest held reply was made */
  int64_t mark;  /* when the task running now began: its message came in, or the reply before it was made */
  bool lost;     /* replies could not go: the session ends */
} session;

static void lost(void) { fprintf(stderr, "mproc_mpi: rank %d: a message to rank 0 could not go\n", g.rank); }

/* A worker rank: wait until the messages it sent are gone: every one (all), or the long ones, which move
 * only while this rank makes MPI calls (over TCP MPI sends them in parts, as rank 0 asks for them): gone
 * before a task runs, or they would wait for the task. (A short one goes as it is sent; waiting for MPI
 * to say so would cost a trip to rank 0 a message, and even asking costs: a test that finds nothing
 * done yields the CPU under mpi_yield_when_idle.) */
static void send_out(bool all) {
  for (int64_t last = 0; all ? g.nsends : g.long_out;) {
    if (!last) last = mproc_monotonic_ns(); /* (it polls at once, yielding, then naps) */
    reap_sends();
    int64_t ms = (all ? g.nsends : g.long_out) ? pace(&last, false) : 0;
    if (ms) sleep_ms(ms);
  }
}

/* Send the replies s holds, and see a long message gone. */
static void flush(session *s) {
  if (!s->k) return;
  mproc__wire_put_le64(s->out + HDR, s->k);
  if (!isend(0, s->out, s->len)) {
    lost();
    s->lost = true;
  }
  s->out = NULL;
  s->len = s->cap = 0;
  s->k = 0;
  send_out(false);
}

/* The worker's reply function (mproc_pool_reply_fn): hold the reply. */
static int hold(void *ctx, const void *reply, size_t n) {
  session *s = (session *)ctx;
  int64_t now = mproc_monotonic_ns(), began = s->mark;
  s->mark = now;
  if (s->lost) return MPROC_EPIPE;
  if (!s->k) s->len = HDR + 8;
  if (s->cap - s->len < 8 + n || !s->out) {
    size_t cap = s->cap ? s->cap : 4096;
    while (cap - s->len < 8 + n) cap *= 2;
    unsigned char *more = (unsigned char *)realloc(s->out, cap);
    if (!more) return mproc_pool_backend_fail(MPROC_ENOMEM, "mpi: out of memory for a reply");
    s->out = more;
    s->cap = cap;
  }
  if (!s->k) {
    s->out[0] = REPLIES;
    mproc__wire_put_le64(s->out + 1, s->id);
    s->first = now;
  }
  mproc__wire_put_le64(s->out + s->len, n);
  memcpy(s->out + s->len + 8, reply, n);
  s->len += 8 + n;
  if (++s->k >= HOLD_MAX || now - s->first >= HOLD_NS || now - began >= HOLD_NS) {
    flush(s);
    s->mark = mproc_monotonic_ns(); /* (the next task begins after the wait for a long message) */
  }
  return s->lost ? MPROC_EPIPE : 0;
}

static void end_session(session *s) {
  mproc_pool_worker_close(s->w);
  free(s->out);
  free(s);
}

/* A session for the 'O' message b (len bytes), its worker open; NULL when it could not open (said why). */
static session *open_session(const unsigned char *b, size_t len) {
  session *s = (session *)calloc(1, sizeof *s);
  if (!s) {
    fprintf(stderr, "mproc_mpi: rank %d: out of memory\n", g.rank);
    return NULL;
  }
  s->id = mproc__wire_get_le64(b + 1);
  if (mproc_pool_worker_open(b + HDR, len - HDR, hold, s, &s->w) != 0) {
    fprintf(stderr, "mproc_mpi: rank %d: the pool's worker could not start: %s\n", g.rank, mproc_last_error());
    mproc_clear_error();
    free(s);
    return NULL;
  }
  return s;
}

/* Serve message b of session s (a 'D'): false once the session has ended (then rank 0 is told). */
static bool serve_data(session *s, const unsigned char *b, size_t len) {
  s->mark = mproc_monotonic_ns();
  int rc = mproc_pool_worker_feed(s->w, b + HDR, len - HDR);
  flush(s);
  if (!rc && !s->lost) return true;
  if (rc != 1 && !s->lost) { /* (1: the engine said it ends) */
    fprintf(stderr, "mproc_mpi: rank %d: the pool's worker ended: %s\n", g.rank, mproc_last_error());
    mproc_clear_error();
  }
  if (!isend(0, message(CLOSE, s->id, NULL, 0), HDR)) lost();
  return false;
}

/* A worker rank's life: the sessions rank 0 opens, until its 'F'. */
static void serve(void) {
  session **ss = NULL;
  size_t n = 0, cap = 0;
  int64_t last = 0;
  for (bool fin = false; !fin;) {
    bool progress = false;
    unsigned char *b;
    size_t len;
    while (!fin && irecv(&b, &len)) {
      progress = true;
      uint64_t id = len >= HDR ? mproc__wire_get_le64(b + 1) : 0;
      int kind = len >= HDR ? b[0] : 0;
      fin = kind == FIN;
      size_t i = 0;
      while (i < n && ss[i]->id != id) ++i;
      if (kind == OPEN) {
        session **more = (session **)room(ss, &cap, n, sizeof *ss);
        ss = more ? more : ss;
        session *x = more ? open_session(b, len) : NULL;
        static const unsigned char none[8]; /* k = 0: the session opened */
        if (x) ss[n++] = x;
        if (!isend(0, message(x ? REPLIES : CLOSE, id, none, x ? sizeof none : 0), HDR + (x ? sizeof none : 0))) lost();
      } else if (i < n && ((kind == DATA && !serve_data(ss[i], b, len)) || kind == CLOSE)) {
        end_session(ss[i]);
        ss[i] = ss[--n];
      }
      free(b);
    }
    reap_sends();
    if (fin) break;
    int64_t ms = pace(&last, progress);
    if (ms) sleep_ms(ms);
  }
  while (n) end_session(ss[--n]);
  free(ss);
  if (!isend(0, message(FIN, 0, NULL, 0), HDR)) lost();
  send_out(true); /* (rank 0 takes everything until our 'F') */
  MPI_Comm_free(&g.comm);
  MPI_Finalize();
  exit(0);
}

/* ---- the guard ---------------------------------------------------------------------------------------- */

int mproc_mpi_main_guard(int *argc, char ***argv) {
  (void)mproc_main_guard(argc ? *argc : 0, argv ? *argv : NULL); /* a process mproc started runs its role */
  if (g.up || !mproc_pool_worker_may_serve()) return 0;
  int inited = 0, provided = 0;
  g.pid = mproc_getpid();
  MPI_Initialized(&inited);
  if (!inited) {
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
      return mproc_pool_backend_fail(MPROC_ESYS, "mpi: MPI_Init_thread failed");
    }
    g.we_initialized = true;
  } else {
    MPI_Query_thread(&provided);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g.size);
  if (g.size < 2) { /* alone: the local backend (g.up stays false) */
    if (g.we_initialized) atexit(finalize_at_exit);
    return 0;
  }
  if (provided < MPI_THREAD_SERIALIZED)
    fprintf(stderr, "mproc_mpi: rank %d: MPI gives thread level %d, less than MPI_THREAD_SERIALIZED\n", g.rank,
            provided);
  if (MPI_Comm_dup(MPI_COMM_WORLD, &g.comm) != MPI_SUCCESS)
    return mproc_pool_backend_fail(MPROC_ESYS, "mpi: MPI_Comm_dup failed");
  /* The same program: every rank's checksum to rank 0. */
  g.sum = exe_checksum();
  uint64_t *sums = g.rank == 0 ? (uint64_t *)calloc((size_t)g.size, sizeof *sums) : NULL;
  MPI_Gather(&g.sum, 1, MPI_UINT64_T, sums, 1, MPI_UINT64_T, 0, g.comm);
  g.up = true;
  if (g.rank != 0) serve(); /* never returns */
  for (int r = 1; sums && r < g.size && !g.mismatch; ++r)
    if (sums[r] != sums[0] || !sums[0]) g.mismatch = r;
  free(sums);
  g.backend.name = "MPI";
  g.backend.workers = (size_t)g.size - 1;
  g.backend.quick_ns = QUICK_NS;
  g.backend.start = backend_start;
  g.backend.ctx = NULL;
  g.backend.hands_replies = true;
  g.backend.send = backend_send;
  g.backend.poll = backend_poll;
  if (g.we_initialized) atexit(finalize_at_exit);
  return 0;
}
