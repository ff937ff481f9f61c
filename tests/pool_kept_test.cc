// A pool keeps the blocks of its one-input results (an apply's) for the next calls (pool.c, result_block)
// and gives them back once it has been idle a while (a second; the tests set it): whitebox, through
// mproc__pool_kept_blocks and mproc__pool_set_keep_ns.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "test_util.h"

extern "C" {
#include "pool/pool_internal.h"
}

namespace {

const int64_t kLong = 60000;

int t_echo(const void *in, size_t len, mproc_task *t) { return mproc_task_return(t, in, len); }

// n applies of len-byte inputs, each checked and destroyed; their results' addresses.
std::set<const void *> burst(mproc_pool *p, size_t n, size_t len) {
  std::vector<mproc_async_result *> rs(n);
  std::vector<unsigned char> in(len);
  for (size_t i = 0; i < n; ++i) {
    if (len) in[0] = (unsigned char)i;
    EXPECT_EQ(0, mproc_pool_apply_async(p, t_echo, in.data(), len, nullptr, &rs[i])) << mproc_last_error();
  }
  std::set<const void *> at;
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(0, mproc_async_result_get(rs[i], kLong)) << mproc_last_error();
    const void *d = nullptr;
    size_t l = 0;
    EXPECT_EQ(0, mproc_async_result_item(rs[i], 0, &d, &l));
    EXPECT_EQ(len, l);
    if (len && l == len) {
      EXPECT_EQ((unsigned char)i, *(const unsigned char *)d);
    }
    at.insert(rs[i]);
  }
  for (auto *r : rs) mproc_async_result_destroy(r);
  return at;
}

// How long an idle pool keeps its blocks, for one test (every pool of it).
struct KeepFor {
  explicit KeepFor(uint64_t ns) { mproc__pool_set_keep_ns(ns); }
  ~KeepFor() { mproc__pool_set_keep_ns(0); }
};
const uint64_t kHour = 3600ull * 1000 * 1000 * 1000; // (no give-back while a test counts)

// Whether p keeps no block within 30 s (a loaded machine).
bool gives_all_back(mproc_pool *p) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (mproc__pool_kept_blocks(p) && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return mproc__pool_kept_blocks(p) == 0;
}

TEST(PoolKeptBlocks, AOneInputResultsBlockServesTheNextCalls) {
  KeepFor keep(kHour);
  mproc_pool *p = nullptr;
  ASSERT_EQ(0, mproc_thread_pool_create(&p, 2)) << mproc_last_error();
  const size_t n = 64;
  std::set<const void *> first = burst(p, n, 8);
  EXPECT_EQ(n, mproc__pool_kept_blocks(p)); // (each result's last reference was the caller's)
  std::set<const void *> second = burst(p, n, 8);
  EXPECT_EQ(first, second); // the same blocks, none new
  EXPECT_EQ(n, mproc__pool_kept_blocks(p));
  // A map of one input takes the same path.
  int64_t x = 9;
  mproc_bytes in = {&x, sizeof x};
  mproc_async_result *r = nullptr;
  ASSERT_EQ(0, mproc_pool_map_async(p, t_echo, &in, 1, nullptr, &r));
  EXPECT_EQ(n - 1, mproc__pool_kept_blocks(p));
  ASSERT_EQ(0, mproc_async_result_get(r, kLong));
  mproc_async_result_destroy(r);
  EXPECT_EQ(n, mproc__pool_kept_blocks(p));
  ASSERT_EQ(0, mproc_pool_close(p));
  ASSERT_EQ(0, mproc_pool_join(p, kLong));
  mproc_pool_destroy(p);
}

TEST(PoolKeptBlocks, AnIdlePoolGivesItsBlocksBackAndThoseKeptLater) {
  KeepFor keep(300ull * 1000 * 1000);
  mproc_pool *p = nullptr;
  ASSERT_EQ(0, mproc_thread_pool_create(&p, 2)) << mproc_last_error();
  int64_t x = 3;
  mproc_async_result *late = nullptr; // destroyed once the others have gone back
  ASSERT_EQ(0, mproc_pool_apply_async(p, t_echo, &x, sizeof x, nullptr, &late));
  ASSERT_EQ(0, mproc_async_result_get(late, kLong));
  burst(p, 64, 8);
  EXPECT_TRUE(gives_all_back(p));
  // The pool has been idle: its result thread sleeps for good, and the block kept now wakes it.
  mproc_async_result_destroy(late);
  EXPECT_LE(mproc__pool_kept_blocks(p), 1u);
  EXPECT_TRUE(gives_all_back(p));
  ASSERT_EQ(0, mproc_pool_close(p));
  ASSERT_EQ(0, mproc_pool_join(p, kLong));
  mproc_pool_destroy(p);
}

TEST(PoolKeptBlocks, EachInputSizeUpTo128BytesHasItsBlocksLargerOnesNone) {
  KeepFor keep(kHour);
  mproc_pool *p = nullptr;
  ASSERT_EQ(0, mproc_thread_pool_create(&p, 2)) << mproc_last_error();
  burst(p, 4, 0);
  burst(p, 4, 16);
  std::set<const void *> room32 = burst(p, 4, 17);
  burst(p, 4, 128);
  EXPECT_EQ(16u, mproc__pool_kept_blocks(p)); // four classes: 0, 16, 32 and 128 bytes of room
  burst(p, 4, 129);                           // (its task is a block of its own)
  EXPECT_EQ(16u, mproc__pool_kept_blocks(p));
  EXPECT_EQ(room32, burst(p, 4, 32)); // 32 bytes: the blocks of 32 bytes' room, and no other
  EXPECT_EQ(16u, mproc__pool_kept_blocks(p));
  mproc_pool_destroy(p); // (open: terminated)
}

TEST(PoolKeptBlocks, AClosedPoolGivesItsBlocksBackAndKeepsNoMore) {
  KeepFor keep(kHour);
  mproc_pool *p = nullptr;
  ASSERT_EQ(0, mproc_thread_pool_create(&p, 2)) << mproc_last_error();
  burst(p, 8, 8);
  ASSERT_EQ(8u, mproc__pool_kept_blocks(p));
  int64_t x = 5;
  mproc_async_result *r = nullptr;
  ASSERT_EQ(0, mproc_pool_apply_async(p, t_echo, &x, sizeof x, nullptr, &r));
  ASSERT_EQ(0, mproc_async_result_get(r, kLong));
  ASSERT_EQ(0, mproc_pool_close(p));
  ASSERT_EQ(0, mproc_pool_join(p, kLong));
  EXPECT_EQ(0u, mproc__pool_kept_blocks(p)); // (given back as the result thread ended)
  mproc_async_result_destroy(r);
  EXPECT_EQ(0u, mproc__pool_kept_blocks(p)); // (freed: no call can come)
  mproc_pool_destroy(p);
}

TEST(PoolKeptBlocks, AResultThatOutlivesItsPoolIsFreedNotKept) {
  mproc_pool *p = nullptr;
  ASSERT_EQ(0, mproc_thread_pool_create(&p, 1)) << mproc_last_error();
  int64_t x = 7;
  mproc_async_result *r = nullptr, *s = nullptr;
  ASSERT_EQ(0, mproc_pool_apply_async(p, t_echo, &x, sizeof x, nullptr, &r));
  ASSERT_EQ(0, mproc_pool_apply_async(p, t_echo, &x, sizeof x, nullptr, &s));
  ASSERT_EQ(0, mproc_async_result_get(r, kLong));
  mproc_async_result_destroy(s); // (kept, perhaps: the pool frees it with the others it keeps)
  ASSERT_EQ(0, mproc_pool_close(p));
  ASSERT_EQ(0, mproc_pool_join(p, kLong));
  mproc_pool_destroy(p);
  const void *d = nullptr;
  size_t l = 0;
  ASSERT_EQ(0, mproc_async_result_item(r, 0, &d, &l));
  ASSERT_EQ(sizeof x, l);
  EXPECT_EQ(0, std::memcmp(d, &x, sizeof x));
  mproc_async_result_destroy(r); // (freed: a leak or a use after free here is the sanitizers')
}

} // namespace
