/* Atomic operations on words in shared memory, for the synchronization objects (src/sync/) and the
 * PAL's waiting on words. A compiler difference, not an OS one: GCC and Clang builtins, MSVC's
 * Interlocked functions (its C compiler has no <stdatomic.h> without an experimental switch). Every
 * operation is sequentially consistent: these objects are not where a weaker order pays. Words are
 * naturally aligned 32- or 64-bit values that several processes map. */
#ifndef MPROC_ATOMIC_H
#define MPROC_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>

#if defined(_M_X64) || defined(_M_IX86)
/* x86 loads are atomic and never reordered with other loads or with earlier stores' visibility in a way
 * a sequentially consistent load must prevent (the stores carry the full barrier: Interlocked): a plain
 * load behind a compiler barrier, not a locked read-modify-write. */
static inline uint32_t mproc__atomic_load32(const volatile uint32_t *p) {
  _ReadWriteBarrier();
  uint32_t v = *p;
  _ReadWriteBarrier();
  return v;
}
static inline uint64_t mproc__atomic_load64(const volatile uint64_t *p) {
#if defined(_M_X64)
  _ReadWriteBarrier();
  uint64_t v = *p;
  _ReadWriteBarrier();
  return v;
#else
  return (uint64_t)_InterlockedCompareExchange64((volatile long long *)p, 0, 0);
#endif
}
#else
static inline uint32_t mproc__atomic_load32(const volatile uint32_t *p) {
  return (uint32_t)_InterlockedOr((volatile long *)p, 0);
}
static inline uint64_t mproc__atomic_load64(const volatile uint64_t *p) {
  return (uint64_t)_InterlockedOr64((volatile long long *)p, 0);
}
#endif
static inline void mproc__atomic_store32(volatile uint32_t *p, uint32_t v) {
  (void)_InterlockedExchange((volatile long *)p, (long)v);
}
/* A store that orders nothing but itself (a field only its writer compares against its own value). */
static inline void mproc__atomic_store32_relaxed(volatile uint32_t *p, uint32_t v) { *p = v; }
#if defined(_M_X64)
static inline void mproc__atomic_store64_relaxed(volatile uint64_t *p, uint64_t v) { *p = v; }
/* A load that orders nothing but itself (a word copied optimistically, checked by a later CAS). */
static inline uint64_t mproc__atomic_load64_relaxed(const volatile uint64_t *p) { return *p; }
#else
static inline void mproc__atomic_store64_relaxed(volatile uint64_t *p, uint64_t v) {
  (void)_InterlockedExchange64((volatile long long *)p, (long long)v);
}
static inline uint64_t mproc__atomic_load64_relaxed(const volatile uint64_t *p) { return mproc__atomic_load64(p); }
#endif
static inline uint32_t mproc__atomic_xchg32(volatile uint32_t *p, uint32_t v) {
  return (uint32_t)_InterlockedExchange((volatile long *)p, (long)v);
}
/* Compare-and-swap: true if *p was *expected (now v); else false with *expected = the value seen. */
static inline bool mproc__atomic_cas32(volatile uint32_t *p, uint32_t *expected, uint32_t v) {
  uint32_t seen = (uint32_t)_InterlockedCompareExchange((volatile long *)p, (long)v, (long)*expected);
  if (seen == *expected) return true;
  *expected = seen;
  return false;
}
static inline uint32_t mproc__atomic_add32(volatile uint32_t *p, uint32_t v) { /* returns the old value */
  return (uint32_t)_InterlockedExchangeAdd((volatile long *)p, (long)v);
}
static inline void mproc__atomic_store64(volatile uint64_t *p, uint64_t v) {
  (void)_InterlockedExchange64((volatile long long *)p, (long long)v);
}
static inline bool mproc__atomic_cas64(volatile uint64_t *p, uint64_t *expected, uint64_t v) {
  uint64_t seen = (uint64_t)_InterlockedCompareExchange64((volatile long long *)p, (long long)v, (long long)*expected);
  if (seen == *expected) return true;
  *expected = seen;
  return false;
}
static inline uint64_t mproc__atomic_add64(volatile uint64_t *p, uint64_t v) {
  return (uint64_t)_InterlockedExchangeAdd64((volatile long long *)p, (long long)v);
}
static inline void mproc__atomic_fence(void) { /* an interlocked operation is a full barrier */
  volatile long x = 0;
  (void)_InterlockedOr(&x, 0);
}
static inline void mproc__cpu_relax(void) { _mm_pause(); }

#else /* GCC, Clang */

static inline uint32_t mproc__atomic_load32(const volatile uint32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void mproc__atomic_store32(volatile uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
/* A store that orders nothing but itself (a field only its writer compares against its own value). */
static inline void mproc__atomic_store32_relaxed(volatile uint32_t *p, uint32_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
static inline void mproc__atomic_store64_relaxed(volatile uint64_t *p, uint64_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
/* A load that orders nothing but itself (a word copied optimistically, checked by a later CAS). */
static inline uint64_t mproc__atomic_load64_relaxed(const volatile uint64_t *p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline uint32_t mproc__atomic_xchg32(volatile uint32_t *p, uint32_t v) {
  return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}
/* Compare-and-swap: true if *p was *expected (now v); else false with *expected = the value seen. */
static inline bool mproc__atomic_cas32(volatile uint32_t *p, uint32_t *expected, uint32_t v) {
  return __atomic_compare_exchange_n(p, expected, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline uint32_t mproc__atomic_add32(volatile uint32_t *p, uint32_t v) { /* returns the old value */
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline uint64_t mproc__atomic_load64(const volatile uint64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void mproc__atomic_store64(volatile uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline bool mproc__atomic_cas64(volatile uint64_t *p, uint64_t *expected, uint64_t v) {
  return __atomic_compare_exchange_n(p, expected, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline uint64_t mproc__atomic_add64(volatile uint64_t *p, uint64_t v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline void mproc__atomic_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
#if defined(__x86_64__) || defined(__i386__)
static inline void mproc__cpu_relax(void) { __builtin_ia32_pause(); }
#elif defined(__aarch64__)
static inline void mproc__cpu_relax(void) { __asm__ __volatile__("yield"); }
#else
static inline void mproc__cpu_relax(void) {}
#endif

#endif

#endif
