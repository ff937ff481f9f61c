/* POSIX PAL: authentication (pal.h, "authentication"): random bytes from the kernel and HMAC from
 * OpenSSL's libcrypto. mproc writes no cryptographic code of its own: without libcrypto (a build with
 * MPROC_WITH_LIBCRYPTO off, or where CMake found no OpenSSL) every HMAC is MPROC_ENOTSUP, and with it
 * authkeys (Listener/Client handshakes) are refused, saying so. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#if defined(__APPLE__)
#include <sys/random.h> /* getentropy */
#endif

#include "../pal.h"

#ifdef MPROC_HAVE_LIBCRYPTO
#include <openssl/evp.h>
#include <openssl/hmac.h>
#endif

int mproc__pal_random(void *buf, size_t n) {
  /* getentropy: glibc 2.25+ (getrandom underneath), musl, macOS, the BSDs; never blocks once the kernel's
   * generator is seeded, never fails for want of descriptors (no /dev/urandom to open). */
  for (size_t done = 0; done < n;) {
    size_t k = n - done < 256 ? n - done : 256; /* its limit per call */
    if (getentropy((char *)buf + done, k) != 0) {
      if (errno == EINTR) continue;
      return mproc__fail_os(MPROC_ESYS, errno, "random: getentropy of %zu bytes", k);
    }
    done += k;
  }
  return 0;
}

static const char *digest_name(mproc__digest d) {
  switch (d) {
    case MPROC__DIGEST_MD5:
      return "md5";
    case MPROC__DIGEST_SHA256:
      return "sha256";
    case MPROC__DIGEST_SHA384:
      return "sha384";
    case MPROC__DIGEST_SHA3_256:
      return "sha3_256";
    case MPROC__DIGEST_SHA3_384:
      return "sha3_384";
  }
  return "?";
}

#ifdef MPROC_HAVE_LIBCRYPTO

static const EVP_MD *digest_md(mproc__digest d) {
  switch (d) {
    case MPROC__DIGEST_MD5:
      return EVP_md5();
    case MPROC__DIGEST_SHA256:
      return EVP_sha256();
    case MPROC__DIGEST_SHA384:
      return EVP_sha384();
#if OPENSSL_VERSION_NUMBER >= 0x10101000L
    case MPROC__DIGEST_SHA3_256:
      return EVP_sha3_256();
    case MPROC__DIGEST_SHA3_384:
      return EVP_sha3_384();
#else
    default:
      break;
#endif
  }
  return NULL;
}

int mproc__pal_hmac(mproc__digest d, const void *key, size_t klen, const void *msg, size_t mlen,
                    unsigned char out[MPROC__DIGEST_MAX], size_t *outlen) {
  *outlen = 0;
  const EVP_MD *md = digest_md(d);
  if (!md) return mproc__fail(MPROC_ENOTSUP, "HMAC-%s: this libcrypto has no such digest", digest_name(d));
  if (klen > 0x7FFFFFFF) return mproc__fail(MPROC_EINVAL, "HMAC-%s: a key of %zu bytes", digest_name(d), klen);
  static const unsigned char none = 0; /* HMAC() wants a pointer even for an empty key */
  unsigned int n = 0;
  if (!HMAC(md, key ? key : &none, (int)klen, (const unsigned char *)(msg ? msg : &none), mlen, out, &n) ||
      n > MPROC__DIGEST_MAX)
    /* a digest the library's provider refuses (MD5 under a FIPS-only configuration) */
    return mproc__fail(MPROC_ENOTSUP, "HMAC-%s: libcrypto refused the digest (a FIPS-only configuration?)",
                       digest_name(d));
  *outlen = n;
  return 0;
}

#else

int mproc__pal_hmac(mproc__digest d, const void *key, size_t klen, const void *msg, size_t mlen,
                    unsigned char out[MPROC__DIGEST_MAX], size_t *outlen) {
  (void)key;
  (void)klen;
  (void)msg;
  (void)mlen;
  (void)out;
  *outlen = 0;
  return mproc__fail(MPROC_ENOTSUP,
                     "HMAC-%s: mproc was built without OpenSSL's libcrypto (MPROC_WITH_LIBCRYPTO), so it "
                     "cannot authenticate with an authkey",
                     digest_name(d));
}

#endif
