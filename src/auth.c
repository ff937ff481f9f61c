/* Authkey handshakes (see auth.h): CPython 3.12's challenge and answer, one step per message. */
#include "auth.h"

#include <stdlib.h>
#include <string.h>

#include "connection_internal.h"
#include "internal.h"

#define CHALLENGE "#CHALLENGE#"
#define WELCOME "#WELCOME#"
#define FAILURE "#FAILURE#"
#define CHALLENGE_LEN (sizeof CHALLENGE - 1)
#define LEGACY_CHALLENGE 20 /* Python <= 3.11 challenges with 20 random bytes, no digest name ... */
#define LEGACY_ANSWER 16    /* ... and answers with a bare HMAC-MD5 */

/* CPython's _ALLOWED_DIGESTS, and the one a deliverer challenges with (its default). */
static const struct {
  const char *name;
  mproc__digest d;
} k_digests[] = {{"md5", MPROC__DIGEST_MD5},
                 {"sha256", MPROC__DIGEST_SHA256},
                 {"sha384", MPROC__DIGEST_SHA384},
                 {"sha3_256", MPROC__DIGEST_SHA3_256},
                 {"sha3_384", MPROC__DIGEST_SHA3_384}};
#define OUR_DIGEST MPROC__DIGEST_SHA256
#define NAME_MAX_LEN 8 /* the longest name (sha3_256) */

static const char *name_of(mproc__digest d) {
  for (size_t i = 0; i < MPROC__ARRAY_LEN(k_digests); ++i)
    if (k_digests[i].d == d) return k_digests[i].name;
  return "?";
}

int mproc__auth_parse(const unsigned char *m, size_t len, mproc__digest *d, size_t *skip) {
  *skip = 0;
  if (len == LEGACY_CHALLENGE || len == LEGACY_ANSWER) { /* no message of the modern protocol is this short */
    *d = MPROC__DIGEST_MD5;
    return 2;
  }
  if (len < 2 || m[0] != '{') return 0;
  const unsigned char *end =
      (const unsigned char *)memchr(m + 1, '}', len - 1 < NAME_MAX_LEN + 1 ? len - 1 : NAME_MAX_LEN + 1);
  if (!end) return 0;
  size_t n = (size_t)(end - m) - 1;
  for (size_t i = 0; i < MPROC__ARRAY_LEN(k_digests); ++i)
    if (strlen(k_digests[i].name) == n && memcmp(m + 1, k_digests[i].name, n) == 0) {
      *d = k_digests[i].d;
      *skip = n + 2;
      return 1;
    }
  return 0;
}

int mproc__auth_available(const char *call) {
  unsigned char out[MPROC__DIGEST_MAX];
  size_t n = 0;
  int rc = mproc__pal_hmac(OUR_DIGEST, "", 0, "", 0, out, &n);
  if (rc == MPROC_ENOTSUP) return mproc__fail_prefix(rc, "%s: no authkeys here", call);
  return rc;
}

/* The steps, in the order each role takes them. */
enum { SEND_CHALLENGE, CHECK_ANSWER, ANSWER_CHALLENGE, READ_VERDICT };
static const unsigned char k_deliver_first[] = {SEND_CHALLENGE, CHECK_ANSWER, ANSWER_CHALLENGE, READ_VERDICT};
static const unsigned char k_answer_first[] = {ANSWER_CHALLENGE, READ_VERDICT, SEND_CHALLENGE, CHECK_ANSWER};

void mproc__auth_init(mproc__auth *a, mproc__auth_role role, const void *key, size_t klen, bool legacy_md5,
                      const char *call) {
  memset(a, 0, sizeof *a);
  a->key = (const unsigned char *)key;
  a->klen = klen;
  a->legacy_md5 = legacy_md5;
  a->role = role;
  a->call = call;
}

static int send_msg(mproc_connection *c, const void *p, size_t n) { return mproc_connection_send_bytes(c, p, n, 0, n); }

static int refuse_legacy(const mproc__auth *a, const char *who) {
  return mproc__fail(MPROC_EAUTH,
                     "%s: the %s speaks only the legacy HMAC-MD5 handshake of Python 3.11 and older: refused "
                     "(allow it with allow_legacy_md5)",
                     a->call, who);
}

/* Deliver: "#CHALLENGE#{sha256}" + 40 random bytes. */
static int send_challenge(mproc__auth *a, mproc_connection *c) {
  const char *name = name_of(OUR_DIGEST);
  size_t n = strlen(name);
  a->challenge[0] = '{';
  memcpy(a->challenge + 1, name, n);
  a->challenge[n + 1] = '}';
  int rc = mproc__pal_random(a->challenge + n + 2, MPROC__AUTH_NONCE);
  if (rc) return rc;
  a->clen = n + 2 + MPROC__AUTH_NONCE;
  unsigned char msg[CHALLENGE_LEN + sizeof a->challenge];
  memcpy(msg, CHALLENGE, CHALLENGE_LEN);
  memcpy(msg + CHALLENGE_LEN, a->challenge, a->clen);
  return send_msg(c, msg, CHALLENGE_LEN + a->clen);
}

/* Equal without a timing that tells where they first differ. */
static bool same(const unsigned char *x, const unsigned char *y, size_t n) {
  unsigned char diff = 0;
  for (size_t i = 0; i < n; ++i) diff |= (unsigned char)(x[i] ^ y[i]);
  return diff == 0;
}

/* Deliver: check the answer to our challenge, tell the peer the verdict. */
static int check_answer(mproc__auth *a, mproc_connection *c, const unsigned char *m, size_t len) {
  mproc__digest d;
  size_t skip = 0;
  int kind = mproc__auth_parse(m, len, &d, &skip);
  int rc = 0;
  if (kind == 0)
    rc = mproc__fail(MPROC_EAUTH, "%s: the peer's answer to the challenge is no digest (%zu bytes)", a->call, len);
  else if (kind == 2 && (len != LEGACY_ANSWER || !a->legacy_md5))
    rc = len != LEGACY_ANSWER ? mproc__fail(MPROC_EAUTH, "%s: the peer's answer has %zu bytes, no digest", a->call, len)
                              : refuse_legacy(a, "peer");
  else if (kind == 1 && d != OUR_DIGEST)
    rc = mproc__fail(MPROC_EAUTH, "%s: the peer answered with HMAC-%s, not the %s it was challenged with", a->call,
                     name_of(d), name_of(OUR_DIGEST));
  unsigned char want[MPROC__DIGEST_MAX];
  size_t wlen = 0;
  if (!rc) rc = mproc__pal_hmac(d, a->key, a->klen, a->challenge, a->clen, want, &wlen);
  if (!rc && (len - skip != wlen || !same(m + skip, want, wlen)))
    rc = mproc__fail(MPROC_EAUTH, "%s: the peer's digest is wrong: it holds another authkey", a->call);
  int sent = rc ? send_msg(c, FAILURE, sizeof FAILURE - 1) : send_msg(c, WELCOME, sizeof WELCOME - 1);
  return rc ? rc : sent;
}

/* Answer: the peer's challenge, with the digest it named. */
static int answer_challenge(mproc__auth *a, mproc_connection *c, const unsigned char *m, size_t len) {
  if (len < CHALLENGE_LEN || memcmp(m, CHALLENGE, CHALLENGE_LEN) != 0)
    return mproc__fail(MPROC_EAUTH, "%s: the peer sent %zu bytes where a challenge was due (has it an authkey?)",
                       a->call, len);
  m += CHALLENGE_LEN;
  len -= CHALLENGE_LEN;
  if (len < LEGACY_CHALLENGE)
    return mproc__fail(MPROC_EAUTH, "%s: a challenge of %zu bytes is too short", a->call, len);
  mproc__digest d;
  size_t skip = 0;
  int kind = mproc__auth_parse(m, len, &d, &skip);
  if (kind == 0)
    return mproc__fail(MPROC_EAUTH,
                       "%s: the challenge names no digest of CPython's list (sha256, sha384, sha3_256, "
                       "sha3_384, md5)",
                       a->call);
  if (d == MPROC__DIGEST_MD5 && !a->legacy_md5)
    return kind == 2 ? refuse_legacy(a, "peer")
                     : mproc__fail(MPROC_EAUTH, "%s: the peer asks for HMAC-MD5: refused (allow_legacy_md5)", a->call);
  unsigned char out[2 + NAME_MAX_LEN + MPROC__DIGEST_MAX];
  size_t at = kind == 1 ? skip : 0; /* "{name}" first, but not to a legacy peer */
  memcpy(out, m, at);
  size_t dlen = 0;
  int rc = mproc__pal_hmac(d, a->key, a->klen, m, len, out + at, &dlen);
  return rc ? rc : send_msg(c, out, at + dlen);
}

int mproc__auth_continue(mproc__auth *a, mproc_connection *c, int64_t deadline) {
  const unsigned char *steps =
      a->role == MPROC__AUTH_SERVER || a->role == MPROC__AUTH_DELIVER ? k_deliver_first : k_answer_first;
  int nsteps = a->role == MPROC__AUTH_SERVER || a->role == MPROC__AUTH_CLIENT ? 4 : 2;
  for (; a->step < nsteps; ++a->step) {
    int rc;
    if (steps[a->step] == SEND_CHALLENGE) {
      if ((rc = send_challenge(a, c)) != 0) return rc;
      continue;
    }
    char *m = NULL;
    size_t len = 0;
    rc = mproc__connection_recv_until(c, MPROC__AUTH_MSG_MAX, deadline, mproc__ms_until(deadline), &m, &len);
    if (rc == MPROC_ETIMEDOUT) return rc;
    if (rc == MPROC_EEOF)
      return mproc__fail(MPROC_EAUTH, "%s: the peer closed the connection during the authkey handshake", a->call);
    if (rc == MPROC_EMSGSIZE)
      return mproc__fail(MPROC_EAUTH, "%s: the peer sent a message of more than %d bytes during the handshake", a->call,
                         MPROC__AUTH_MSG_MAX);
    if (rc) return rc;
    const unsigned char *um = (const unsigned char *)m;
    switch (steps[a->step]) {
      case CHECK_ANSWER:
        rc = check_answer(a, c, um, len);
        break;
      case ANSWER_CHALLENGE:
        rc = answer_challenge(a, c, um, len);
        break;
      default: /* READ_VERDICT */
        if (len != sizeof WELCOME - 1 || memcmp(m, WELCOME, len) != 0)
          rc = mproc__fail(MPROC_EAUTH, "%s: the peer refused our digest: it holds another authkey", a->call);
        break;
    }
    mproc_free(m);
    if (rc) return rc;
  }
  return 0;
}
