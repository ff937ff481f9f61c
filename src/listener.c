/* Listener and Client (Python's multiprocessing.connection.Listener, Client): addresses, the accept loop
 * that drives many handshakes at once, the client, and mproc_wait's listener kind. The sockets and pipes
 * are the PAL's ("listeners and clients"); the handshake is auth.c's; a connection is an ordinary
 * mproc_connection in CPython's frame format (connection_internal.h).
 *
 * Accepting. A client that connects is taken off the listening socket at once; with an authkey it joins
 * the handshakes in progress (at most MAX_PENDING), each with its own deadline (handshake_timeout_ms from
 * its connect). accept moves every handshake along as its messages arrive, without waiting on any one of
 * them: it waits on the listening handle and on every handshake's connection together, until its own
 * deadline or the nearest handshake deadline, and returns the first client that finishes (or the first
 * that fails: MPROC_EAUTH). So one client that stalls costs the others nothing, and a handshake still
 * going when accept's time is up is kept for the next accept. */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "connection_internal.h"
#include "internal.h"
#include "listener_internal.h"
#include "mproc/listener.h"
#include "pal.h"

#define DEFAULT_BACKLOG 16
#define DEFAULT_HANDSHAKE_MS 10000
#define MAX_PENDING 64
/* A deadline long past: a step takes only what has arrived. */
#define NO_WAIT 0

_Static_assert(MPROC_FAMILY_UNIX == MPROC__FAMILY_UNIX && MPROC_FAMILY_INET == MPROC__FAMILY_INET &&
                   MPROC_FAMILY_INET6 == MPROC__FAMILY_INET6 && MPROC_FAMILY_PIPE == MPROC__FAMILY_PIPE,
               "pal.h's families are mproc_family's");

typedef struct pending {
  mproc_connection *c;
  mproc__auth auth;
  int64_t deadline;
  char *peer;
} pending;

struct mproc_listener {
  mproc__listen *pal; /* NULL once closed */
  mproc_family family;
  char *address;
  char *last_accepted;
  bool has_key, legacy_md5;
  unsigned char *key;
  size_t klen;
  bool check_peer; /* no authkey, and an address nothing else guards (abstract socket, TCP) */
  int64_t handshake_ms;
  pending pend[MAX_PENDING];
  size_t npend;
};

/* ---- addresses ----------------------------------------------------------------------------------- */

const char *mproc_family_name(mproc_family f) {
  switch (f) {
    case MPROC_FAMILY_UNIX:
      return "AF_UNIX";
    case MPROC_FAMILY_INET:
      return "AF_INET";
    case MPROC_FAMILY_INET6:
      return "AF_INET6";
    case MPROC_FAMILY_PIPE:
      return "AF_PIPE";
    default:
      return "default";
  }
}

/* Where "host:port"'s port begins (after the last ':'), if s has that form: 1 to 5 digits and no '/'. */
static const char *port_of(const char *s) {
  const char *colon = strrchr(s, ':');
  if (!colon || strchr(s, '/')) return NULL;
  size_t n = strlen(colon + 1);
  if (n == 0 || n > 5 || strspn(colon + 1, "0123456789") != n) return NULL;
  return colon + 1;
}

mproc_family mproc_address_family(const char *a) {
  if (!a || !*a) return MPROC_FAMILY_DEFAULT;
  if (a[0] == '\\' && a[1] == '\\') return MPROC_FAMILY_PIPE;
  if (a[0] == '[') return MPROC_FAMILY_INET6;
  if (a[0] == '/' || a[0] == '.' || a[0] == '@') return MPROC_FAMILY_UNIX;
  if (port_of(a)) return MPROC_FAMILY_INET;
  return MPROC_FAMILY_UNIX;
}

/* Parse `address` of family `fam` (DEFAULT: inferred; NULL address: generated) into *a; host names are
 * copied into host[] (the PAL wants them apart from the port). */
static int parse_address(const char *address, mproc_family fam, bool listening, mproc__addr *a, char *host, size_t hcap,
                         const char *call) {
  memset(a, 0, sizeof *a);
  if (fam == MPROC_FAMILY_DEFAULT)
    fam = address ? mproc_address_family(address) : (mproc_family)mproc__pal_listen_default_family();
  MPROC__CHECK_ARG_AS(call, fam < MPROC_FAMILY_UNIX || fam > MPROC_FAMILY_PIPE, "family %d is not an mproc_family",
                      (int)fam);
  MPROC__CHECK_ARG_AS(call, address && !*address, "the address is empty");
  a->family = (int)fam;
  if (fam == MPROC_FAMILY_UNIX || fam == MPROC_FAMILY_PIPE) {
    a->name = address; /* NULL: the PAL generates one */
    MPROC__CHECK_ARG_AS(call, address && fam == MPROC_FAMILY_PIPE && !(address[0] == '\\' && address[1] == '\\'),
                        "'%s' is no pipe name (\\\\.\\pipe\\<name>)", address);
    MPROC__CHECK_ARG_AS(call, address && !listening && strcmp(address, "@") == 0,
                        "'@' names no socket: it asks the kernel for a name when listening");
    return 0;
  }
  if (!address) address = fam == MPROC_FAMILY_INET ? "127.0.0.1:0" : "[::1]:0";
  const char *port = port_of(address);
  MPROC__CHECK_ARG_AS(call, !port, "'%s' is no %s address (%s)", address, mproc_family_name(fam),
                      fam == MPROC_FAMILY_INET ? "host:port" : "[host]:port");
  unsigned long p = strtoul(port, NULL, 10);
  MPROC__CHECK_ARG_AS(call, p > 65535, "the port of '%s' is out of range", address);
  const char *h = address, *hend = port - 1;
  if (fam == MPROC_FAMILY_INET6) {
    MPROC__CHECK_ARG_AS(call, h[0] != '[' || hend[-1] != ']', "'%s' is no AF_INET6 address ([host]:port)", address);
    ++h;
    --hend;
  }
  size_t n = (size_t)(hend - h);
  MPROC__CHECK_ARG_AS(call, n >= hcap, "the host of '%s' is too long", address);
  MPROC__CHECK_ARG_AS(call, fam == MPROC_FAMILY_INET && memchr(h, ':', n),
                      "'%s': an IPv6 address is written [host]:port (AF_INET6)", address);
  memcpy(host, h, n);
  host[n] = '\0';
  a->name = host;
  a->port = (unsigned)p;
  return 0;
}

/* The key a listener or client uses: its own, this process's, or none (*has false). */
static int take_key(const void *key, size_t size, bool process_key, unsigned char *buf, size_t *len, bool *has,
                    const char *call) {
  MPROC__CHECK_ARG_AS(call, !key && size, "authkey is NULL but authkey_size is %zu", size);
  MPROC__CHECK_ARG_AS(call, key && process_key, "both authkey and process_authkey are set");
  MPROC__CHECK_ARG_AS(call, size > MPROC_AUTHKEY_MAX, "an authkey of %zu bytes (at most MPROC_AUTHKEY_MAX, %d)", size,
                      MPROC_AUTHKEY_MAX);
  *has = key || process_key;
  *len = 0;
  if (key) {
    if (size) memcpy(buf, key, size);
    *len = size;
    return 0;
  }
  return process_key ? mproc_current_process_authkey(buf, MPROC_AUTHKEY_MAX, len) : 0;
}

/* ---- the listener ------------------------------------------------------------------------------- */

int mproc_listener_create(mproc_listener **out, const mproc_listener_opts *o) {
  MPROC__CHECK_ARG(!out, "out is NULL");
  *out = NULL;
  MPROC__CHECK_ARG(!o, "opts is NULL");
  MPROC__CHECK_ARG(o->backlog < 0, "backlog %d is negative", o->backlog);
  MPROC__CHECK_ARG(o->handshake_timeout_ms < 0 && o->handshake_timeout_ms != MPROC_INFINITE,
                   "handshake_timeout_ms %lld is negative", (long long)o->handshake_timeout_ms);
  char host[256];
  mproc__addr a;
  int rc = parse_address(o->address, o->family, true, &a, host, sizeof host, "listener_create");
  if (rc) return rc;
  unsigned char key[MPROC_AUTHKEY_MAX];
  size_t klen = 0;
  bool has_key = false;
  if ((rc = take_key(o->authkey, o->authkey_size, o->process_authkey, key, &klen, &has_key, "listener_create")) != 0)
    return rc;
  if (has_key && (rc = mproc__auth_available("listener_create")) != 0) return rc;
  mproc_listener *l = (mproc_listener *)calloc(1, sizeof *l);
  if (!l || !(l->key = (unsigned char *)malloc(klen ? klen : 1))) {
    free(l);
    return mproc__fail(MPROC_ENOMEM, "listener_create: out of memory");
  }
  if (klen) memcpy(l->key, key, klen);
  l->klen = klen;
  l->has_key = has_key;
  l->legacy_md5 = o->allow_legacy_md5;
  l->family = (mproc_family)a.family;
  l->handshake_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
  rc = mproc__pal_listen(&a, o->backlog ? o->backlog : DEFAULT_BACKLOG, &l->pal, &l->address);
  if (rc) {
    free(l->key);
    free(l);
    return rc;
  }
  l->check_peer =
      !has_key && (a.family != MPROC__FAMILY_UNIX || l->address[0] == '@') && a.family != MPROC__FAMILY_PIPE;
  *out = l;
  return 0;
}

static void pending_drop(mproc_listener *l, size_t i) {
  mproc_connection_destroy(l->pend[i].c);
  free(l->pend[i].peer);
  l->pend[i] = l->pend[--l->npend];
}

/* A client that finished: it is the one accept returns. */
static int accepted(mproc_listener *l, mproc_connection *c, char *peer, mproc_connection **conn) {
  free(l->last_accepted);
  l->last_accepted = peer;
  *conn = c;
  return 0;
}

/* A client refused: closed, and accept says who and why. Whatever the client did (a wrong key, a peer
 * that left or broke the stream mid-handshake) is MPROC_EAUTH, so a server loop knows to accept again;
 * this platform's lack of a digest (MPROC_ENOTSUP) and want of memory keep their codes. */
static int refused(int rc, mproc_connection *c, char *peer) {
  if (rc != MPROC_ENOTSUP && rc != MPROC_ENOMEM) rc = MPROC_EAUTH;
  rc = mproc__fail_prefix(rc, "listener_accept: refused the client%s%s%s", peer && *peer ? " at '" : "",
                          peer && *peer ? peer : "", peer && *peer ? "'" : "");
  mproc_connection_destroy(c);
  free(peer);
  return rc;
}

/* Move every handshake along with what has arrived: 0 with *conn (one finished), MPROC_ETIMEDOUT (none
 * did), or a refusal. */
static int step_pending(mproc_listener *l, mproc_connection **conn) {
  for (size_t i = 0; i < l->npend; ++i) {
    pending *p = &l->pend[i];
    int rc = mproc__auth_continue(&p->auth, p->c, NO_WAIT);
    if (rc == MPROC_ETIMEDOUT) continue;
    mproc_connection *c = p->c;
    char *peer = p->peer;
    l->pend[i] = l->pend[--l->npend];
    return rc == 0 ? accepted(l, c, peer, conn) : refused(rc, c, peer);
  }
  return MPROC_ETIMEDOUT;
}

/* A client just taken off the listening socket: served at once (no authkey; the peer checked where
 * nothing else guards the address), or one more handshake, whose challenge goes out here. 0 with *conn,
 * MPROC_ETIMEDOUT (its handshake goes on), or a refusal. Its first step is its own: a handshake is left
 * pending only once it waits for the client, because a wait for the listener waits for its connection to
 * become readable; one left before its challenge went out (step_pending returning an older handshake
 * that finished first) was never ready again, and its client waited out its timeout (issue 13: the
 * Manager's second handle under wine, where the server then saw nothing until its next poll). */
static int admit(mproc_listener *l, mproc_os_handle h, char *peer, mproc_connection **conn) {
  if (!l->has_key && l->check_peer) {
    int same = mproc__pal_peer_same_user(l->pal, h);
    if (same == 0 || (same < 0 && same != MPROC_ENOTSUP)) {
      if (same == 0) mproc__fail(MPROC_EAUTH, "it runs as another user, and the listener has no authkey");
      mproc__pal_close(h);
      return refused(same == 0 ? MPROC_EAUTH : same, NULL, peer);
    }
  }
  mproc_connection *c = mproc__connection_wrap_format(mproc__conn_end_link(h), &mproc__frame_cpython);
  if (!c) {
    mproc__pal_close(h);
    free(peer);
    return MPROC_ENOMEM;
  }
  if (!l->has_key) return accepted(l, c, peer, conn);
  pending *p = &l->pend[l->npend++];
  p->c = c;
  p->peer = peer;
  p->deadline = mproc__deadline_from_timeout(l->handshake_ms);
  mproc__auth_init(&p->auth, MPROC__AUTH_SERVER, l->key, l->klen, l->legacy_md5, "listener_accept");
  int rc = mproc__auth_continue(&p->auth, c, NO_WAIT);
  if (rc == MPROC_ETIMEDOUT) return rc;
  l->pend[--l->npend] = (pending){0};
  return rc == 0 ? accepted(l, c, peer, conn) : refused(rc, c, peer);
}

/* Drop the handshakes whose time is up; the nearest deadline of those left. */
static int64_t expire_pending(mproc_listener *l) {
  int64_t nearest = INT64_MAX;
  for (size_t i = 0; i < l->npend;) {
    if (l->pend[i].deadline != INT64_MAX && mproc__ms_until(l->pend[i].deadline) == 0) {
      pending_drop(l, i);
      continue;
    }
    if (l->pend[i].deadline < nearest) nearest = l->pend[i].deadline;
    ++i;
  }
  return nearest;
}

/* What a wait for this listener waits on: the listening handle while there is room for a handshake, and
 * the connection of each handshake in progress. *n items (room for MAX_PENDING + 1); *ready_now when a
 * step would make progress without waiting. */
static void wait_items(const mproc_listener *l, mproc__wait_item *items, size_t *n, bool *ready_now) {
  *n = 0;
  *ready_now = false;
  if (l->npend < MAX_PENDING) mproc__pal_listen_wait_item(l->pal, &items[(*n)++]);
  for (size_t i = 0; i < l->npend; ++i) {
    if (mproc__connection_buffered(l->pend[i].c)) *ready_now = true;
    items[*n].h = mproc__connection_wait_handle(l->pend[i].c);
    items[(*n)++].kind = MPROC__WAIT_CONN;
  }
}

int mproc_listener_accept(mproc_listener *l, int64_t timeout_ms, mproc_connection **conn) {
  MPROC__CHECK_ARG(!conn, "conn is NULL");
  *conn = NULL;
  MPROC__CHECK_ARG(!l, "l is NULL");
  if (!l->pal) return mproc__fail(MPROC_ECLOSED, "listener_accept: the listener is closed");
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  mproc__wait_item items[MAX_PENDING + 1];
  bool ready[MAX_PENDING + 1];
  for (;;) {
    int rc = step_pending(l, conn);
    while (rc == MPROC_ETIMEDOUT && l->npend < MAX_PENDING) { /* every client waiting to be taken */
      mproc_os_handle h;
      char *peer = NULL;
      rc = mproc__pal_listen_accept(l->pal, &h, &peer);
      if (rc == MPROC_ETIMEDOUT) break;
      if (rc == 0) rc = admit(l, h, peer, conn);
    }
    if (rc != MPROC_ETIMEDOUT) return rc;
    int64_t nearest = expire_pending(l);
    size_t n = 0;
    bool ready_now = false;
    wait_items(l, items, &n, &ready_now);
    if (ready_now) continue;
    if (mproc__ms_until(deadline) == 0) break;
    rc = mproc__pal_wait_ready(items, n, nearest < deadline ? nearest : deadline, ready);
    if (rc && rc != MPROC_ETIMEDOUT) return rc;
  }
  return mproc__fail(MPROC_ETIMEDOUT, "listener_accept: no client %s within %lld ms",
                     l->npend ? "finished its handshake" : "connected", (long long)timeout_ms);
}

int mproc_listener_close(mproc_listener *l) {
  MPROC__CHECK_ARG(!l, "l is NULL");
  while (l->npend) pending_drop(l, 0);
  mproc__pal_listen_close(l->pal);
  l->pal = NULL;
  return 0;
}

void mproc_listener_destroy(mproc_listener *l) {
  if (!l) return;
  mproc_listener_close(l);
  free(l->address);
  free(l->last_accepted);
  if (l->key) memset(l->key, 0, l->klen);
  free(l->key);
  free(l);
}

const char *mproc_listener_address(const mproc_listener *l) { return l ? l->address : NULL; }
mproc_family mproc_listener_family(const mproc_listener *l) { return l ? l->family : MPROC_FAMILY_DEFAULT; }
const char *mproc_listener_last_accepted(const mproc_listener *l) { return l ? l->last_accepted : NULL; }

/* ---- mproc_wait's listener kind (wait.c) ---------------------------------------------------------- */

size_t mproc__listener_wait_count(void *obj) {
  const mproc_listener *l = (const mproc_listener *)obj;
  return l->pal ? (l->npend < MAX_PENDING ? 1 : 0) + l->npend : 1;
}

int mproc__listener_wait_prepare(void *obj, mproc__wait_item *items, bool *ready_now) {
  mproc_listener *l = (mproc_listener *)obj;
  if (!l->pal) return mproc__fail(MPROC_ECLOSED, "wait: the listener is closed");
  size_t n = 0;
  wait_items(l, items, &n, ready_now);
  return 0;
}

/* ---- the client, and the halves of the handshake ------------------------------------------------ */

/* Run a whole handshake up to the deadline; anything but success leaves the connection unusable. */
static int handshake(mproc_connection *c, mproc__auth_role role, const void *key, size_t klen, bool legacy,
                     int64_t deadline, int64_t timeout_ms, const char *call) {
  mproc__auth a;
  mproc__auth_init(&a, role, key, klen, legacy, call);
  int rc = mproc__auth_continue(&a, c, deadline);
  if (rc == MPROC_ETIMEDOUT)
    return mproc__fail(rc, "%s: the authkey handshake did not finish within %lld ms", call, (long long)timeout_ms);
  return rc;
}

int mproc_client(mproc_connection **out, const mproc_client_opts *o, int64_t timeout_ms) {
  MPROC__CHECK_ARG(!out, "out is NULL");
  *out = NULL;
  MPROC__CHECK_ARG(!o, "opts is NULL");
  MPROC__CHECK_ARG(!o->address, "address is NULL");
  char host[256];
  mproc__addr a;
  int rc = parse_address(o->address, o->family, false, &a, host, sizeof host, "client");
  unsigned char key[MPROC_AUTHKEY_MAX];
  size_t klen = 0;
  bool has_key = false;
  if (!rc) rc = take_key(o->authkey, o->authkey_size, o->process_authkey, key, &klen, &has_key, "client");
  if (!rc && has_key) rc = mproc__auth_available("client");
  if (rc) return rc;
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  mproc_os_handle h;
  if ((rc = mproc__pal_connect(&a, deadline, &h)) != 0) return rc;
  mproc_connection *c = mproc__connection_wrap_format(mproc__conn_end_link(h), &mproc__frame_cpython);
  if (!c) {
    mproc__pal_close(h);
    return MPROC_ENOMEM;
  }
  if (has_key) rc = handshake(c, MPROC__AUTH_CLIENT, key, klen, o->allow_legacy_md5, deadline, timeout_ms, "client");
  memset(key, 0, sizeof key);
  if (rc) {
    mproc_connection_destroy(c);
    return rc;
  }
  *out = c;
  return 0;
}

static int half(mproc_connection *c, mproc__auth_role role, const void *key, size_t size, int64_t timeout_ms,
                const char *call) {
  MPROC__CHECK_ARG_AS(call, !c, "c is NULL");
  MPROC__CHECK_ARG_AS(call, !key && size, "authkey is NULL but authkey_size is %zu", size);
  int rc = mproc__auth_available(call);
  if (rc) return rc;
  return handshake(c, role, key, size, false, mproc__deadline_from_timeout(timeout_ms), timeout_ms, call);
}

int mproc_deliver_challenge(mproc_connection *c, const void *authkey, size_t size, int64_t timeout_ms) {
  return half(c, MPROC__AUTH_DELIVER, authkey, size, timeout_ms, "deliver_challenge");
}

int mproc_answer_challenge(mproc_connection *c, const void *authkey, size_t size, int64_t timeout_ms) {
  return half(c, MPROC__AUTH_ANSWER, authkey, size, timeout_ms, "answer_challenge");
}
