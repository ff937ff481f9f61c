/*
 * The wire codec: fixed-width integers in a stated byte order, and a bounded reader over bytes that came
 * from outside. Compiler-level helpers only (static inline, no OS), like internal.h: every module and
 * both PAL backends may include it. The byte order is always explicit in the name (le: least significant
 * byte first, mproc's own formats; be: network order, CPython's multiprocessing.connection framing), so
 * what goes on a wire never depends on the machine.
 *
 * Framing (which length words a connection's stream carries) is not here: connection.c alone parses
 * frames (mproc__frame_format in connection_internal.h).
 */
#ifndef MPROC_WIRE_H
#define MPROC_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- integers -------------------------------------------------------------------------------
 *
 * Where the compiler says the machine is little-endian (GCC and Clang's __BYTE_ORDER__; MSVC targets
 * only little-endian machines), a field is one unaligned load or store (memcpy, which compilers turn
 * into a single move) and a big-endian one a byte swap of it; elsewhere the portable byte loop. GCC
 * does not fuse the loop into one load, and a reader decoding a message of many small fields (a pool's
 * chunk of 8-byte items) spent most of its time in it. */

#if !defined(MPROC__WIRE_PORTABLE) && ((defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) || \
                                       (defined(_MSC_VER) && !defined(__clang__)))
#define MPROC__WIRE_HOST_LE 1 /* (MPROC__WIRE_PORTABLE: the byte loop anyway, for its test) */
#endif

#if defined(MPROC__WIRE_HOST_LE) && defined(_MSC_VER) && !defined(__clang__)
#include <stdlib.h> /* _byteswap_ulong, _byteswap_uint64 */
#define MPROC__BSWAP32(v) _byteswap_ulong(v)
#define MPROC__BSWAP64(v) _byteswap_uint64(v)
#elif defined(MPROC__WIRE_HOST_LE)
#define MPROC__BSWAP32(v) __builtin_bswap32(v)
#define MPROC__BSWAP64(v) __builtin_bswap64(v)
#endif

#if defined(MPROC__WIRE_HOST_LE)

static inline void mproc__wire_put_le32(void *dst, uint32_t v) { memcpy(dst, &v, 4); }
static inline void mproc__wire_put_le64(void *dst, uint64_t v) { memcpy(dst, &v, 8); }

static inline void mproc__wire_put_be32(void *dst, uint32_t v) {
  v = MPROC__BSWAP32(v);
  memcpy(dst, &v, 4);
}

static inline void mproc__wire_put_be64(void *dst, uint64_t v) {
  v = MPROC__BSWAP64(v);
  memcpy(dst, &v, 8);
}

static inline uint32_t mproc__wire_get_le32(const void *src) {
  uint32_t v;
  memcpy(&v, src, 4);
  return v;
}

static inline uint64_t mproc__wire_get_le64(const void *src) {
  uint64_t v;
  memcpy(&v, src, 8);
  return v;
}

static inline uint32_t mproc__wire_get_be32(const void *src) { return MPROC__BSWAP32(mproc__wire_get_le32(src)); }
static inline uint64_t mproc__wire_get_be64(const void *src) { return MPROC__BSWAP64(mproc__wire_get_le64(src)); }

#else /* any byte order */

static inline void mproc__wire_put_le32(void *dst, uint32_t v) {
  unsigned char *p = (unsigned char *)dst;
  for (int i = 0; i < 4; ++i) p[i] = (unsigned char)(v >> (8 * i));
}

static inline void mproc__wire_put_le64(void *dst, uint64_t v) {
  unsigned char *p = (unsigned char *)dst;
  for (int i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (8 * i));
}

static inline void mproc__wire_put_be32(void *dst, uint32_t v) {
  unsigned char *p = (unsigned char *)dst;
  for (int i = 0; i < 4; ++i) p[i] = (unsigned char)(v >> (8 * (3 - i)));
}

static inline void mproc__wire_put_be64(void *dst, uint64_t v) {
  unsigned char *p = (unsigned char *)dst;
  for (int i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (8 * (7 - i)));
}

static inline uint32_t mproc__wire_get_le32(const void *src) {
  const unsigned char *p = (const unsigned char *)src;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= (uint32_t)p[i] << (8 * i);
  return v;
}

static inline uint64_t mproc__wire_get_le64(const void *src) {
  const unsigned char *p = (const unsigned char *)src;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static inline uint32_t mproc__wire_get_be32(const void *src) {
  const unsigned char *p = (const unsigned char *)src;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = v << 8 | p[i];
  return v;
}

static inline uint64_t mproc__wire_get_be64(const void *src) {
  const unsigned char *p = (const unsigned char *)src;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}

#endif

/* ---- the bounded reader ---------------------------------------------------------------------
 *
 * Reads p[0..n) front to back and never past n: a read that the remaining bytes cannot satisfy
 * records `what` as the reason (the first one wins), returns 0 / NULL, and every later read does the
 * same, so a parser reads all its fields and checks `bad` once. A length read from the data is
 * checked against the bytes that are there before anything trusts it. */

typedef struct mproc__wire_reader {
  const unsigned char *p;
  size_t n, off;   /* the bytes, their count, the position */
  const char *bad; /* what was wrong first, or NULL */
} mproc__wire_reader;

static inline mproc__wire_reader mproc__wire_reader_make(const void *p, size_t n) {
  mproc__wire_reader r = {(const unsigned char *)p, n, 0, NULL};
  return r;
}

/* The bytes not read yet. */
static inline size_t mproc__wire_left(const mproc__wire_reader *r) { return r->n - r->off; }

/* A little-endian u64 (mproc's formats). */
static inline uint64_t mproc__wire_get_u64(mproc__wire_reader *r, const char *what) {
  if (r->bad) return 0;
  if (r->n - r->off < 8) {
    r->bad = what;
    return 0;
  }
  uint64_t v = mproc__wire_get_le64(r->p + r->off);
  r->off += 8;
  return v;
}

/* A u64 length, then that many bytes: a pointer into the data and *len, or NULL (*len 0) when the
 * length says more than is there. */
static inline const void *mproc__wire_get_bytes(mproc__wire_reader *r, size_t *len, const char *what) {
  *len = 0;
  uint64_t n = mproc__wire_get_u64(r, what);
  if (r->bad) return NULL;
  if (n > r->n - r->off) {
    r->bad = what;
    return NULL;
  }
  const void *p = r->p + r->off;
  r->off += (size_t)n;
  *len = (size_t)n;
  return p;
}

#endif
