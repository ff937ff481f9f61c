/* Windows PAL: authentication (pal.h, "authentication"): random bytes and HMAC from BCrypt (CNG).
 * bcrypt.dll is loaded from the system directory at run time, like advapi32.dll (advapi.h), so that
 * mproc's binaries and programs linking the static library import KERNEL32 and the C runtime alone. */
#include "advapi.h"
#include "win32.h"

#include <bcrypt.h> /* after <windows.h> */

#ifndef STATUS_SUCCESS
#define STATUS_SUCCESS ((NTSTATUS)0)
#endif

typedef struct bcrypt_api {
  NTSTATUS(WINAPI *open)(BCRYPT_ALG_HANDLE *, LPCWSTR, LPCWSTR, ULONG);
  NTSTATUS(WINAPI *close)(BCRYPT_ALG_HANDLE, ULONG);
  NTSTATUS(WINAPI *create_hash)(BCRYPT_ALG_HANDLE, BCRYPT_HASH_HANDLE *, PUCHAR, ULONG, PUCHAR, ULONG, ULONG);
  NTSTATUS(WINAPI *hash_data)(BCRYPT_HASH_HANDLE, PUCHAR, ULONG, ULONG);
  NTSTATUS(WINAPI *finish_hash)(BCRYPT_HASH_HANDLE, PUCHAR, ULONG, ULONG);
  NTSTATUS(WINAPI *destroy_hash)(BCRYPT_HASH_HANDLE);
  NTSTATUS(WINAPI *get_property)(BCRYPT_HANDLE, LPCWSTR, PUCHAR, ULONG, ULONG *, ULONG);
  NTSTATUS(WINAPI *gen_random)(BCRYPT_ALG_HANDLE, PUCHAR, ULONG, ULONG);
} bcrypt_api;

static INIT_ONCE g_once = INIT_ONCE_STATIC_INIT;
static bcrypt_api g_api;
static DWORD g_error;

static BOOL CALLBACK load(PINIT_ONCE once, PVOID param, PVOID *ctx) {
  (void)once;
  (void)param;
  (void)ctx;
  HMODULE m = mproc__win32_system_dll(L"bcrypt.dll"); /* kept loaded for the life of the process */
  if (!m) {
    g_error = GetLastError() ? GetLastError() : ERROR_MOD_NOT_FOUND;
    return TRUE;
  }
  bool ok = true;
  MPROC__WIN32_LOAD(m, ok, g_api.open, "BCryptOpenAlgorithmProvider");
  MPROC__WIN32_LOAD(m, ok, g_api.close, "BCryptCloseAlgorithmProvider");
  MPROC__WIN32_LOAD(m, ok, g_api.create_hash, "BCryptCreateHash");
  MPROC__WIN32_LOAD(m, ok, g_api.hash_data, "BCryptHashData");
  MPROC__WIN32_LOAD(m, ok, g_api.finish_hash, "BCryptFinishHash");
  MPROC__WIN32_LOAD(m, ok, g_api.destroy_hash, "BCryptDestroyHash");
  MPROC__WIN32_LOAD(m, ok, g_api.get_property, "BCryptGetProperty");
  MPROC__WIN32_LOAD(m, ok, g_api.gen_random, "BCryptGenRandom");
  g_error = ok ? 0 : ERROR_PROC_NOT_FOUND;
  return TRUE;
}

/* The functions, or NULL with an error naming `call`. */
static const bcrypt_api *api(const char *call, int *rc) {
  InitOnceExecuteOnce(&g_once, load, NULL, NULL);
  if (g_error) {
    *rc = mproc__fail_os(MPROC_ENOTSUP, (int)g_error, "%s: bcrypt.dll cannot be loaded", call);
    return NULL;
  }
  return &g_api;
}

int mproc__pal_random(void *buf, size_t n) {
  int rc = 0;
  const bcrypt_api *b = api("random", &rc);
  if (!b) return rc;
  for (size_t done = 0; done < n;) {
    ULONG k = n - done > 0x10000000 ? 0x10000000 : (ULONG)(n - done);
    NTSTATUS st = b->gen_random(NULL, (PUCHAR)buf + done, k, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
    if (st != STATUS_SUCCESS)
      return mproc__fail(MPROC_ESYS, "random: BCryptGenRandom of %lu bytes failed (NTSTATUS 0x%08lx)", (unsigned long)k,
                         (unsigned long)st);
    done += k;
  }
  return 0;
}

int mproc__pal_hmac(mproc__digest d, const void *key, size_t klen, const void *msg, size_t mlen,
                    unsigned char out[MPROC__DIGEST_MAX], size_t *outlen) {
  *outlen = 0;
  static const struct {
    const wchar_t *alg;
    const char *name;
  } k_algs[] = {
      [MPROC__DIGEST_MD5] = {L"MD5", "md5"},
      [MPROC__DIGEST_SHA256] = {L"SHA256", "sha256"},
      [MPROC__DIGEST_SHA384] = {L"SHA384", "sha384"},
      [MPROC__DIGEST_SHA3_256] = {L"SHA3-256", "sha3_256"}, /* BCRYPT_SHA3_256_ALGORITHM: Windows 11 24H2 */
      [MPROC__DIGEST_SHA3_384] = {L"SHA3-384", "sha3_384"},
  };
  if ((size_t)d >= MPROC__ARRAY_LEN(k_algs) || !k_algs[d].alg)
    return mproc__fail(MPROC_EINVAL, "HMAC: digest %d", (int)d);
  const char *name = k_algs[d].name;
  if (klen > 0x7FFFFFFF || mlen > 0x7FFFFFFF)
    return mproc__fail(MPROC_EINVAL, "HMAC-%s: %zu bytes of key, %zu of message", name, klen, mlen);
  int rc = 0;
  const bcrypt_api *b = api("HMAC", &rc);
  if (!b) return rc;
  BCRYPT_ALG_HANDLE alg = NULL;
  NTSTATUS st = b->open(&alg, k_algs[d].alg, NULL, BCRYPT_ALG_HANDLE_HMAC_FLAG);
  if (st != STATUS_SUCCESS)
    return mproc__fail(MPROC_ENOTSUP, "HMAC-%s: this system's BCrypt has no such digest (NTSTATUS 0x%08lx)", name,
                       (unsigned long)st);
  static UCHAR none; /* BCrypt wants a buffer even for an empty key or message */
  BCRYPT_HASH_HANDLE h = NULL;
  ULONG size = 0, got = 0;
  st = b->get_property(alg, BCRYPT_HASH_LENGTH, (PUCHAR)&size, sizeof size, &got, 0);
  if (st == STATUS_SUCCESS && (size == 0 || size > MPROC__DIGEST_MAX)) st = (NTSTATUS)0xC0000023L; /* too small */
  if (st == STATUS_SUCCESS) st = b->create_hash(alg, &h, NULL, 0, klen ? (PUCHAR)key : &none, (ULONG)klen, 0);
  if (st == STATUS_SUCCESS) st = b->hash_data(h, mlen ? (PUCHAR)msg : &none, (ULONG)mlen, 0);
  if (st == STATUS_SUCCESS) st = b->finish_hash(h, out, size, 0);
  if (h) b->destroy_hash(h);
  b->close(alg, 0);
  if (st != STATUS_SUCCESS)
    return mproc__fail(MPROC_ESYS, "HMAC-%s: BCrypt failed (NTSTATUS 0x%08lx)", name, (unsigned long)st);
  *outlen = size;
  return 0;
}
