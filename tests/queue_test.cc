// Queues between processes (mproc/queue.h): Python's semantics in one process, then across processes
// under every start method: many producers and consumers with checksums, bounds at both ends, the
// feeder-thread hazards Python has and mproc must not, and peers killed at random moments.
// White-box where it counts the PAL's kernel calls.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "pal.h"
#include "shared/queue_testing.h"
}
#include "test_util.h"

using mproc_test::kWindows;

namespace {

const int64_t kLong = 60000;

// ---- items that check themselves ---------------------------------------------------------------
// [producer u32][seq u32][len-12 bytes of a pattern][checksum u32]; at least 12 bytes.

uint32_t mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  return x ^ (x >> 16);
}

std::vector<unsigned char> make_item(uint32_t producer, uint32_t seq, size_t len) {
  if (len < 12) len = 12;
  std::vector<unsigned char> v(len);
  std::memcpy(&v[0], &producer, 4);
  std::memcpy(&v[4], &seq, 4);
  uint32_t h = mix(producer * 7919u + seq);
  for (size_t i = 8; i + 4 < len; ++i) v[i] = (unsigned char)(h + i * 31u);
  uint32_t sum = 0;
  for (size_t i = 0; i + 4 < len; ++i) sum = sum * 131u + v[i];
  std::memcpy(&v[len - 4], &sum, 4);
  return v;
}

// Whether an item is whole: its checksum and pattern; *producer and *seq from it.
bool check_item(const unsigned char *p, size_t len, uint32_t *producer, uint32_t *seq) {
  if (len < 12) return false;
  std::memcpy(producer, p, 4);
  std::memcpy(seq, p + 4, 4);
  uint32_t h = mix(*producer * 7919u + *seq), sum = 0, stored;
  for (size_t i = 8; i + 4 < len; ++i)
    if (p[i] != (unsigned char)(h + i * 31u)) return false;
  for (size_t i = 0; i + 4 < len; ++i) sum = sum * 131u + p[i];
  std::memcpy(&stored, p + len - 4, 4);
  return sum == stored;
}

// A random size: mostly small, now and then big (over MPROC_QUEUE_BIG), rarely very big.
size_t random_size(uint32_t r) {
  uint32_t k = r % 1000;
  if (k < 900) return 12 + (r >> 10) % 200;
  if (k < 995) return 12 + (r >> 10) % 4096;
  return MPROC_QUEUE_BIG + (r >> 10) % (256 << 10);
}

int put_item(mproc_queue *q, uint32_t producer, uint32_t seq, size_t len, int64_t timeout = MPROC_INFINITE) {
  std::vector<unsigned char> v = make_item(producer, seq, len);
  return mproc_queue_put(q, v.data(), v.size(), timeout);
}

// ---- one process ------------------------------------------------------------------------------------

TEST(Queue, FifoSizesNowaitAndCounts) {
  mproc_queue *q = nullptr;
  mproc_queue_opts o{};
  o.maxsize = 3;
  ASSERT_EQ(mproc_queue_create(&q, &o), 0);
  EXPECT_TRUE(mproc_queue_empty(q));
  EXPECT_FALSE(mproc_queue_full(q));
  EXPECT_EQ(mproc_queue_qsize(q), 0u);
  ASSERT_EQ(mproc_queue_put(q, "a", 1, 0), 0);
  ASSERT_EQ(mproc_queue_put(q, nullptr, 0, 0), 0); // an empty item is an item
  ASSERT_EQ(mproc_queue_put_nowait(q, "ccc", 3), 0);
  EXPECT_EQ(mproc_queue_qsize(q), 3u);
  EXPECT_TRUE(mproc_queue_full(q));
  EXPECT_EQ(mproc_queue_put_nowait(q, "d", 1), MPROC_EFULL);
  EXPECT_EQ(mproc_queue_put(q, "d", 1, 30), MPROC_EFULL); // full at the end of the timeout too
  const char *want[] = {"a", "", "ccc"};
  for (const char *w : want) {
    void *d = nullptr;
    size_t n = 99;
    ASSERT_EQ(mproc_queue_get(q, 0, &d, &n), 0);
    ASSERT_NE(d, nullptr); // never NULL, even for 0 bytes
    EXPECT_EQ(std::string((char *)d, n), w);
    mproc_free(d);
  }
  void *d = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_queue_get_nowait(q, &d, &n), MPROC_EEMPTY);
  EXPECT_EQ(mproc_queue_get(q, 30, &d, &n), MPROC_EEMPTY);
  EXPECT_EQ(d, nullptr);
  EXPECT_TRUE(mproc_queue_empty(q));
  mproc_queue_destroy(q);
}

TEST(Queue, BadArgumentsAndItemsThatCanNeverFit) {
  mproc_queue *q = nullptr;
  EXPECT_EQ(mproc_queue_create(nullptr, nullptr), MPROC_EINVAL);
  mproc_queue_opts o{};
  o.max_bytes = 100;
  EXPECT_EQ(mproc_queue_create(&q, &o), MPROC_EINVAL);
  EXPECT_EQ(q, nullptr);
  o.max_bytes = 8192;
  ASSERT_EQ(mproc_queue_create(&q, &o), 0);
  size_t max = mproc_queue_max_item(q);
  EXPECT_EQ(max, 8192u - 32u);
  std::vector<char> big(max + 1, 'x');
  EXPECT_EQ(mproc_queue_put(q, big.data(), max + 1, MPROC_INFINITE), MPROC_EMSGSIZE); // never, not a hang
  EXPECT_EQ(mproc_queue_put(q, big.data(), SIZE_MAX, 0), MPROC_EMSGSIZE);
  ASSERT_EQ(mproc_queue_put(q, big.data(), max, 0), 0); // the largest one fits an empty queue
  EXPECT_EQ(mproc_queue_put(q, "x", 1, 0), MPROC_EFULL);
  EXPECT_EQ(mproc_queue_put(q, nullptr, 1, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_put(nullptr, "x", 1, 0), MPROC_EINVAL);
  void *d = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_queue_get(q, 0, nullptr, &n), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_get(nullptr, 0, &d, &n), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_get_into(q, nullptr, 5, 0, &n), MPROC_EINVAL);
  ASSERT_EQ(mproc_queue_get(q, 0, &d, &n), 0);
  EXPECT_EQ(n, max);
  mproc_free(d);
  EXPECT_EQ(mproc_queue_task_done(q), MPROC_ESTATE); // not joinable
  EXPECT_EQ(mproc_queue_join(q, 0), MPROC_ESTATE);
  mproc_queue_destroy(q);
  mproc_queue_destroy(nullptr);
  EXPECT_EQ(mproc_queue_qsize(nullptr), 0u);
}

TEST(Queue, GetIntoACallersBufferLosesNothingWhenTooSmall) {
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_queue_create(&q, nullptr), 0);
  for (size_t len : {size_t(12), size_t(MPROC_QUEUE_BIG + 7)}) { // both copy paths
    std::vector<unsigned char> v = make_item(1, (uint32_t)len, len);
    ASSERT_EQ(mproc_queue_put(q, v.data(), v.size(), 0), 0);
    std::vector<unsigned char> buf(len);
    size_t n = 0;
    EXPECT_EQ(mproc_queue_get_into(q, buf.data(), len - 1, 0, &n), MPROC_EMSGSIZE);
    EXPECT_EQ(n, len); // the size needed
    EXPECT_EQ(mproc_queue_qsize(q), 1u);
    ASSERT_EQ(mproc_queue_get_into(q, buf.data(), len, 0, &n), 0);
    EXPECT_EQ(n, len);
    EXPECT_EQ(buf, v);
  }
  ASSERT_EQ(mproc_queue_put(q, nullptr, 0, 0), 0);
  size_t n = 9;
  EXPECT_EQ(mproc_queue_get_into(q, nullptr, 0, 0, &n), 0); // an empty item needs no buffer
  EXPECT_EQ(n, 0u);
  mproc_queue_destroy(q);
}

// The ring wraps around many times with items of every size, put and got by threads at once.
TEST(Queue, ThreadsThroughASmallRingLoseAndDuplicateNothing) {
  for (size_t max_bytes : {size_t(4096), size_t(1 << 20)}) {
    SCOPED_TRACE(max_bytes);
    mproc_queue *q = nullptr;
    mproc_queue_opts o{};
    o.max_bytes = max_bytes;
    ASSERT_EQ(mproc_queue_create(&q, &o), 0);
    const uint32_t per = mproc_test::kThreadSanitizer ? 2000 : 20000;
    size_t most = mproc_queue_max_item(q);
    std::vector<std::thread> ts;
    for (uint32_t p = 0; p < 3; ++p)
      ts.emplace_back([&, p] {
        for (uint32_t i = 0; i < per; ++i)
          ASSERT_EQ(put_item(q, p, i, std::min(random_size(mix(p * per + i)), most)), 0);
      });
    std::vector<std::vector<uint32_t>> got(3);
    std::atomic<bool> bad{false};
    std::vector<std::thread> cs;
    std::mutex m;
    for (int c = 0; c < 3; ++c)
      cs.emplace_back([&] {
        std::vector<uint32_t> last(3, UINT32_MAX);
        for (;;) {
          void *d = nullptr;
          size_t n = 0;
          int rc = mproc_queue_get(q, MPROC_INFINITE, &d, &n);
          if (rc == MPROC_EEOF) return;
          if (rc) {
            bad = true;
            return;
          }
          uint32_t p, s;
          if (!check_item((unsigned char *)d, n, &p, &s) || p >= 3 || (last[p] != UINT32_MAX && s <= last[p]))
            bad = true; // whole, and in order per producer
          else
            last[p] = s;
          mproc_free(d);
          std::lock_guard<std::mutex> g(m);
          if (p < 3) got[p].push_back(s);
        }
      });
    for (auto &t : ts) t.join();
    ASSERT_EQ(mproc_queue_shutdown(q), 0);
    for (auto &t : cs) t.join();
    EXPECT_FALSE(bad);
    for (auto &g : got) {
      std::sort(g.begin(), g.end());
      ASSERT_EQ(g.size(), per);
      for (uint32_t i = 0; i < per; ++i) ASSERT_EQ(g[i], i);
    }
    EXPECT_EQ(mproc_queue_qsize(q), 0u);
    mproc_queue_destroy(q);
  }
}

// Items in place (up to MPROC_QUEUE_INLINE bytes) and items in the record store share one order: a
// producer's 8-byte item put after its 1 MiB item is got after it, by one consumer or by either of two.
TEST(Queue, SmallAndLargeItemsOfOneProducerKeepTheirOrder) {
  const size_t sizes[] = {1 << 20, 8, 12, MPROC_QUEUE_INLINE, MPROC_QUEUE_INLINE + 1, 70000, 8, 100, 8};
  const uint32_t per = mproc_test::kSanitizer ? 180 : 900;
  for (int consumers : {1, 2}) {
    SCOPED_TRACE(consumers);
    mproc_queue *q = nullptr;
    mproc_queue_opts o{};
    o.max_bytes = 4 << 20;
    ASSERT_EQ(mproc_queue_create(&q, &o), 0);
    std::thread producer([&] {
      for (uint32_t i = 0; i < per; ++i) {
        size_t len = sizes[i % (sizeof sizes / sizeof sizes[0])];
        std::vector<unsigned char> v = len == 8 ? std::vector<unsigned char>(8) : make_item(0, i, len);
        if (len == 8) std::memcpy(&v[4], &i, 4);
        ASSERT_EQ(mproc_queue_put(q, v.data(), v.size(), kLong), 0);
      }
      ASSERT_EQ(mproc_queue_shutdown(q), 0);
    });
    std::vector<std::vector<uint32_t>> got(consumers);
    std::vector<std::thread> cs;
    for (int c = 0; c < consumers; ++c)
      cs.emplace_back([&, c] {
        std::vector<unsigned char> buf(1 << 20);
        for (;;) {
          size_t n = 0;
          int rc = mproc_queue_get_into(q, buf.data(), buf.size(), kLong, &n);
          if (rc == MPROC_EEOF) return;
          ASSERT_EQ(rc, 0);
          uint32_t p = 0, seq = 0;
          if (n == 8) {
            std::memcpy(&seq, &buf[4], 4);
          } else {
            ASSERT_TRUE(check_item(buf.data(), n, &p, &seq)) << "a half item";
          }
          ASSERT_EQ(n, sizes[seq % (sizeof sizes / sizeof sizes[0])]);
          if (!got[c].empty()) {
            ASSERT_GT(seq, got[c].back()) << "out of the producer's order";
          }
          got[c].push_back(seq);
        }
      });
    producer.join();
    for (auto &t : cs) t.join();
    std::vector<uint32_t> all;
    for (auto &g : got) all.insert(all.end(), g.begin(), g.end());
    std::sort(all.begin(), all.end());
    ASSERT_EQ(all.size(), per);
    for (uint32_t i = 0; i < per; ++i) ASSERT_EQ(all[i], i);
    mproc_queue_destroy(q);
  }
}

TEST(Queue, BoundsInItemsAndBytesBlockUntilRoomAppears) {
  mproc_queue *q = nullptr;
  mproc_queue_opts o{};
  o.max_bytes = 4096;
  ASSERT_EQ(mproc_queue_create(&q, &o), 0);
  std::vector<char> item(3000, 'y');
  ASSERT_EQ(mproc_queue_put(q, item.data(), item.size(), 0), 0);
  EXPECT_EQ(mproc_queue_put(q, item.data(), item.size(), 0), MPROC_EFULL); // bounded by bytes
  std::atomic<int> put_rc{1};
  std::thread producer([&] { put_rc = mproc_queue_put(q, item.data(), item.size(), kLong); });
  void *d = nullptr;
  size_t n = 0;
  ASSERT_EQ(mproc_queue_get(q, 0, &d, &n), 0);
  mproc_free(d);
  ASSERT_EQ(mproc_queue_get(q, kLong, &d, &n), 0); // the blocked put went in once there was room
  mproc_free(d);
  producer.join();
  EXPECT_EQ(put_rc.load(), 0);
  mproc_queue_destroy(q);
}

TEST(Queue, CloseIsPerProcessAndShutdownDrainsThenEndsEveryGet) {
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_queue_create(&q, nullptr), 0);
  std::atomic<int> waiting_rc{1};
  std::thread waiter([&] { // a get that waits when the shutdown comes
    void *d = nullptr;
    size_t n = 0;
    waiting_rc = mproc_queue_get(q, kLong, &d, &n);
  });
  ASSERT_EQ(mproc_queue_shutdown(q), 0);
  waiter.join();
  EXPECT_EQ(waiting_rc.load(), MPROC_EEOF);
  EXPECT_TRUE(mproc_queue_is_shutdown(q));
  EXPECT_EQ(mproc_queue_put(q, "x", 1, 0), MPROC_ECLOSED);
  mproc_queue_destroy(q);

  ASSERT_EQ(mproc_queue_create(&q, nullptr), 0);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(mproc_queue_put(q, &i, sizeof i, 0), 0);
  ASSERT_EQ(mproc_queue_shutdown(q), 0);
  for (int i = 0; i < 3; ++i) { // what was put before is still got
    int v = -1;
    size_t n = 0;
    ASSERT_EQ(mproc_queue_get_into(q, &v, sizeof v, kLong, &n), 0);
    EXPECT_EQ(v, i);
  }
  size_t n = 0;
  int v;
  EXPECT_EQ(mproc_queue_get_into(q, &v, sizeof v, kLong, &n), MPROC_EEOF);
  EXPECT_EQ(mproc_queue_close(q), 0);
  EXPECT_EQ(mproc_queue_close(q), 0);
  EXPECT_EQ(mproc_queue_put(q, "x", 1, 0), MPROC_ECLOSED);
  EXPECT_EQ(mproc_queue_get_into(q, &v, sizeof v, 0, &n), MPROC_ECLOSED);
  mproc_queue_destroy(q);
}

TEST(Queue, SimpleQueueIsAQueue) {
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_simple_queue_create(&q), 0);
  EXPECT_TRUE(mproc_queue_empty(q));
  ASSERT_EQ(mproc_queue_put(q, "hi", 2, MPROC_INFINITE), 0);
  EXPECT_FALSE(mproc_queue_empty(q));
  void *d = nullptr;
  size_t n = 0;
  ASSERT_EQ(mproc_queue_get(q, MPROC_INFINITE, &d, &n), 0);
  EXPECT_EQ(std::string((char *)d, n), "hi");
  mproc_free(d);
  EXPECT_EQ(mproc_queue_close(q), 0);
  EXPECT_EQ(mproc_queue_get(q, 0, &d, &n), MPROC_ECLOSED);
  mproc_queue_destroy(q);
}

TEST(JoinableQueue, TaskDoneCountsAndJoinWaitsForEveryTask) {
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_joinable_queue_create(&q, nullptr), 0);
  EXPECT_EQ(mproc_queue_join(q, 0), 0); // nothing put: nothing to wait for
  EXPECT_EQ(mproc_queue_task_done(q), MPROC_ESTATE);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(mproc_queue_put(q, &i, sizeof i, 0), 0);
  EXPECT_EQ(mproc_queue_join(q, 20), MPROC_ETIMEDOUT);
  std::thread worker([&] {
    for (int i = 0; i < 5; ++i) {
      void *d = nullptr;
      size_t n = 0;
      ASSERT_EQ(mproc_queue_get(q, kLong, &d, &n), 0);
      mproc_free(d);
      ASSERT_EQ(mproc_queue_task_done(q), 0);
    }
  });
  EXPECT_EQ(mproc_queue_join(q, kLong), 0);
  worker.join();
  EXPECT_EQ(mproc_queue_task_done(q), MPROC_ESTATE); // more calls than items: nothing changes
  EXPECT_EQ(mproc_queue_join(q, 0), 0);
  mproc_queue_destroy(q);
}

// Producers pay for a wake-up only when someone waits: no kernel call for puts and gets with nobody
// asleep, and one when a consumer sleeps or mproc_wait waits.
TEST(Queue, UncontendedPutsAndGetsMakeNoKernelCall) {
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_queue_create(&q, nullptr), 0);
  char buf[64];
  size_t n = 0;
  ASSERT_EQ(mproc_queue_put(q, "warm", 4, 0), 0); // the identity is cached on first use
  ASSERT_EQ(mproc_queue_get_into(q, buf, sizeof buf, 0, &n), 0);
  uint64_t before = mproc__pal_sync_calls();
  for (int i = 0; i < 10000; ++i) {
    ASSERT_EQ(mproc_queue_put(q, "12345678", 8, 0), 0);
    ASSERT_EQ(mproc_queue_get_into(q, buf, sizeof buf, 0, &n), 0);
  }
  EXPECT_EQ(mproc__pal_sync_calls() - before, 0u);
  std::thread consumer([&] { EXPECT_EQ(mproc_queue_get_into(q, buf, sizeof buf, kLong, &n), 0); });
  while (mproc__pal_sync_calls() == before) std::this_thread::yield(); // it went to sleep
  ASSERT_EQ(mproc_queue_put(q, "x", 1, 0), 0);
  consumer.join();
  mproc_queue_destroy(q);
}

TEST(Queue, WaitReportsAQueueReadyBesideOtherObjects) {
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_queue_create(&q, nullptr), 0);
  mproc_connection *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  mproc_waitable w[2] = {mproc_waitable_queue(q), mproc_waitable_connection(b)};
  size_t nready = 0;
  EXPECT_EQ(mproc_wait(w, 2, 0, &nready), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_wait(w, 2, 20, &nready), MPROC_ETIMEDOUT);
  ASSERT_EQ(mproc_queue_put(q, "x", 1, 0), 0); // already there: ready at once
  ASSERT_EQ(mproc_wait(w, 2, kLong, &nready), 0);
  EXPECT_TRUE(w[0].ready);
  EXPECT_FALSE(w[1].ready);
  char c;
  size_t n = 0;
  ASSERT_EQ(mproc_queue_get_into(q, &c, 1, 0, &n), 0);
  std::thread producer; // put while the wait sleeps
  std::atomic<bool> go{false};
  producer = std::thread([&] {
    while (!go) std::this_thread::yield();
    EXPECT_EQ(mproc_queue_put(q, "y", 1, 0), 0);
  });
  go = true;
  ASSERT_EQ(mproc_wait(w, 2, kLong, &nready), 0);
  producer.join();
  EXPECT_TRUE(w[0].ready);
  ASSERT_EQ(mproc_queue_get_into(q, &c, 1, 0, &n), 0);
  EXPECT_EQ(c, 'y');
  EXPECT_EQ(mproc_wait(w, 2, 0, &nready), MPROC_ETIMEDOUT); // drained: not ready again
  ASSERT_EQ(mproc_queue_shutdown(q), 0);                    // shut down and drained: ready (a get ends)
  ASSERT_EQ(mproc_wait(w, 2, kLong, &nready), 0);
  EXPECT_TRUE(w[0].ready);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
  mproc_queue_destroy(q);
}

// ---- across processes --------------------------------------------------------------------------------

std::vector<mproc_start_method> methods() {
  if (kWindows) return {MPROC_START_SPAWN};
  return {MPROC_START_FORK, MPROC_START_SPAWN, MPROC_START_FORKSERVER};
}

std::string method_name(const ::testing::TestParamInfo<mproc_start_method> &i) {
  return std::string(mproc_start_method_name(i.param));
}

class QueueAcross : public ::testing::TestWithParam<mproc_start_method> {
 protected:
  mproc_process *start(mproc_target target, std::vector<mproc_object> objs, int n = 0) {
    return mproc_test::start_child(target, std::move(objs), &n, sizeof n, GetParam());
  }
  static int join(mproc_process *p) { return mproc_test::join_child(p, kLong); }
};

const uint32_t kProducers = 4, kConsumers = 4;
const uint32_t kPerProducer = mproc_test::kSanitizer ? 25000 : 250000; // 1,000,000 items in all (sanitizers: 100,000)

int arg(const mproc_args *a) { return *(const int *)a->data; }

// objects: queue; n: producer number. Puts kPerProducer items of random sizes.
int t_produce(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  uint32_t p = (uint32_t)arg(a);
  for (uint32_t i = 0; i < kPerProducer; ++i)
    if (put_item(q, p, i, random_size(mix(p * kPerProducer + i))) != 0) return 10;
  return 0;
}

// objects: queue, a 'B' array of kProducers * kPerProducer counters (this consumer's own). Gets until
// the queue is shut down, checking each item and the order per producer.
int t_consume(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  unsigned char *seen = (unsigned char *)mproc_value_ptr((mproc_value *)a->objects[1]);
  std::vector<uint32_t> last(kProducers, UINT32_MAX);
  std::vector<unsigned char> buf(MPROC_QUEUE_BIG + (256 << 10));
  for (;;) {
    size_t n = 0;
    int rc = mproc_queue_get_into(q, buf.data(), buf.size(), MPROC_INFINITE, &n);
    if (rc == MPROC_EEOF) return 0;
    if (rc) return 10;
    uint32_t p, s;
    if (!check_item(buf.data(), n, &p, &s) || p >= kProducers || s >= kPerProducer) return 11;
    if (last[p] != UINT32_MAX && s <= last[p]) return 12; // FIFO per producer
    last[p] = s;
    seen[(size_t)p * kPerProducer + s]++;
  }
}

mproc_value *counters(size_t n) {
  mproc_value *v = nullptr;
  mproc_shared_opts o{};
  o.typecode = 'B';
  o.length = n;
  o.raw = true;
  EXPECT_EQ(mproc_shared_create(&v, &o), 0);
  return v;
}

TEST_P(QueueAcross, FourProducersFourConsumersAMillionItemsWithChecksums) {
  mproc_queue *q = nullptr;
  mproc_queue_opts qo{};
  qo.max_bytes = 4 << 20; // small enough to fill up: producers block on room too
  ASSERT_EQ(mproc_queue_create(&q, &qo), 0);
  std::vector<mproc_value *> seen;
  std::vector<mproc_process *> cs, ps;
  for (uint32_t c = 0; c < kConsumers; ++c) {
    seen.push_back(counters((size_t)kProducers * kPerProducer));
    cs.push_back(start(t_consume, {mproc_object_queue(q), mproc_object_value(seen.back())}));
  }
  for (uint32_t p = 0; p < kProducers; ++p) ps.push_back(start(t_produce, {mproc_object_queue(q)}, (int)p));
  for (mproc_process *p : ps) EXPECT_EQ(join(p), 0);
  ASSERT_EQ(mproc_queue_shutdown(q), 0);
  for (mproc_process *c : cs) EXPECT_EQ(join(c), 0);
  size_t missing = 0, twice = 0;
  for (size_t i = 0; i < (size_t)kProducers * kPerProducer; ++i) {
    unsigned total = 0;
    for (mproc_value *v : seen) total += ((unsigned char *)mproc_value_ptr(v))[i];
    missing += total == 0;
    twice += total > 1;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(twice, 0u);
  EXPECT_EQ(mproc_queue_qsize(q), 0u);
  for (mproc_value *v : seen) mproc_value_destroy(v);
  mproc_queue_destroy(q);
}

// objects: queue, queue out; n: what to do. 0: get one item (waiting) and put it doubled into out;
// 1: put one item into a full queue (waiting), then return; 2: get with a short timeout and report the
// result as exit code.
int t_bounded(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  int how = arg(a);
  int v = 0;
  size_t n = 0;
  if (how == 0) {
    if (mproc_queue_get_into(q, &v, sizeof v, kLong, &n) != 0) return 10;
    v *= 2;
    return mproc_queue_put((mproc_queue *)a->objects[1], &v, sizeof v, kLong) == 0 ? 0 : 11;
  }
  if (how == 1) return mproc_queue_put(q, "late", 4, kLong) == 0 ? 0 : 12;
  int rc = mproc_queue_get_into(q, &v, sizeof v, 50, &n);
  return rc == MPROC_EEMPTY ? 20 : rc == 0 ? 21 : 22;
}

TEST_P(QueueAcross, BoundedQueuesBlockAndTimeOutAtBothEnds) {
  mproc_queue *q = nullptr, *out = nullptr;
  mproc_queue_opts o{};
  o.maxsize = 1;
  ASSERT_EQ(mproc_queue_create(&q, &o), 0);
  ASSERT_EQ(mproc_queue_create(&out, &o), 0);
  // a consumer waits until the parent puts
  mproc_process *c = start(t_bounded, {mproc_object_queue(q), mproc_object_queue(out)}, 0);
  int v = 21, back = 0;
  size_t n = 0;
  ASSERT_EQ(mproc_queue_put(q, &v, sizeof v, kLong), 0);
  ASSERT_EQ(mproc_queue_get_into(out, &back, sizeof back, kLong, &n), 0);
  EXPECT_EQ(back, 42);
  EXPECT_EQ(join(c), 0);
  // a producer blocks on a full queue until the parent gets
  ASSERT_EQ(mproc_queue_put(q, "full", 4, 0), 0);
  mproc_process *p = start(t_bounded, {mproc_object_queue(q)}, 1);
  char buf[8];
  ASSERT_EQ(mproc_queue_get_into(q, buf, sizeof buf, kLong, &n), 0);
  EXPECT_EQ(std::string(buf, n), "full");
  ASSERT_EQ(mproc_queue_get_into(q, buf, sizeof buf, kLong, &n), 0);
  EXPECT_EQ(std::string(buf, n), "late");
  EXPECT_EQ(join(p), 0);
  // a get in another process times out on an empty queue
  EXPECT_EQ(join(start(t_bounded, {mproc_object_queue(q)}, 2)), 20);
  mproc_queue_destroy(q);
  mproc_queue_destroy(out);
}

// objects: queue; n: items. Puts n items (4-byte sequence numbers) and one more without waiting, which
// must find the queue full; exit code 0, or 10 + the step that failed.
int t_fill(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  int n = arg(a);
  for (int i = 0; i < n; ++i)
    if (mproc_queue_put(q, &i, sizeof i, kLong) != 0) return 10;
  return mproc_queue_put_nowait(q, &n, sizeof n) == MPROC_EFULL ? 0 : 11;
}

// A put moves tail on once every 16 claims, and otherwise claims the place after its own last one: a
// process with a handle of its own (or a fork child's copy) finds the first free place from a tail that
// lags laps behind in a ring of two slots, and qsize and full see what is there.
TEST_P(QueueAcross, APutFindsItsPlaceWhileTailLagsLapsBehind) {
  mproc_queue *q = nullptr;
  mproc_queue_opts o{};
  o.maxsize = 2;
  ASSERT_EQ(mproc_queue_create(&q, &o), 0);
  int v = 0;
  size_t n = 0;
  for (int i = 0; i < 37; ++i) { // tail moved at 16 and 32: five positions behind, two laps and a half
    ASSERT_EQ(mproc_queue_put(q, &i, sizeof i, 0), 0);
    ASSERT_EQ(mproc_queue_get_into(q, &v, sizeof v, 0, &n), 0);
    ASSERT_EQ(v, i);
  }
  EXPECT_EQ(mproc_queue_qsize(q), 0u);
  EXPECT_FALSE(mproc_queue_full(q));
  EXPECT_EQ(join(start(t_fill, {mproc_object_queue(q)}, 2)), 0);
  EXPECT_EQ(mproc_queue_qsize(q), 2u);
  EXPECT_TRUE(mproc_queue_full(q));
  EXPECT_EQ(mproc_queue_put_nowait(q, &v, sizeof v), MPROC_EFULL);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(mproc_queue_get_into(q, &v, sizeof v, 0, &n), 0);
    EXPECT_EQ(v, i);
  }
  EXPECT_EQ(mproc_queue_get_into(q, &v, sizeof v, 0, &n), MPROC_EEMPTY);
  mproc_queue_destroy(q);
}

// objects: queue, event "put"; n: items. Puts n items, sets the event, and with n < 0 never returns.
int t_put_then(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  mproc_event *done = (mproc_event *)a->objects[1];
  int n = arg(a);
  for (int i = 0; i < (n < 0 ? -n : n); ++i)
    if (put_item(q, 0, (uint32_t)i, i % 10 == 0 ? 70000 : 100) != 0) return 10;
  mproc_event_set(done);
  if (n < 0) mproc_event_wait((mproc_event *)a->objects[2], MPROC_INFINITE); // never set: killed here
  return 0;
}

void drain_in_order(mproc_queue *q, uint32_t n) {
  std::vector<unsigned char> buf(1 << 20);
  for (uint32_t i = 0; i < n; ++i) {
    size_t len = 0;
    ASSERT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), kLong, &len), 0) << i;
    uint32_t p, s;
    ASSERT_TRUE(check_item(buf.data(), len, &p, &s));
    ASSERT_EQ(s, i);
  }
  size_t len = 0;
  EXPECT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), 0, &len), MPROC_EEMPTY);
}

// Python's feeder-thread hazards, absent: a producer that put items can be joined before anyone reads
// them, and items survive their producer being killed once put returned.
TEST_P(QueueAcross, AProducerCanBeJoinedBeforeDrainingAndItsItemsSurviveItsDeath) {
  mproc_queue *q = nullptr;
  mproc_event *done = nullptr, *never = nullptr;
  ASSERT_EQ(mproc_queue_create(&q, nullptr), 0);
  ASSERT_EQ(mproc_event_create(&done), 0);
  ASSERT_EQ(mproc_event_create(&never), 0);
  // 1,000 items (some big), far more than a pipe holds: joined first, then drained
  mproc_process *p =
      start(t_put_then, {mproc_object_queue(q), mproc_object_event(done), mproc_object_event(never)}, 1000);
  EXPECT_EQ(join(p), 0);
  drain_in_order(q, 1000);
  // killed after its puts returned: every item is still there
  ASSERT_EQ(mproc_event_clear(done), 0);
  p = start(t_put_then, {mproc_object_queue(q), mproc_object_event(done), mproc_object_event(never)}, -300);
  ASSERT_EQ(mproc_event_wait(done, kLong), 0);
  ASSERT_EQ(mproc_process_kill(p), 0);
  EXPECT_NE(join(p), 0);
  drain_in_order(q, 300);
  mproc_event_destroy(done);
  mproc_event_destroy(never);
  mproc_queue_destroy(q);
}

const size_t kSizes[] = {0, 1, 12, MPROC_QUEUE_BIG - 1, MPROC_QUEUE_BIG, 1 << 20, (size_t)64 << 20};

unsigned char pattern(size_t size, size_t i) { return (unsigned char)(size * 7 + i * 13 + (i >> 12)); }

// objects: queue. Puts one item of each of kSizes, each filled with its pattern.
int t_put_sizes(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  for (size_t size : kSizes) {
    std::vector<unsigned char> v(size);
    for (size_t i = 0; i < size; ++i) v[i] = pattern(size, i);
    if (mproc_queue_put(q, v.data(), size, kLong) != 0) return 10;
  }
  return 0;
}

// Items from 0 bytes to 64 MiB, through a queue with the default bounds, each got exactly as put.
TEST_P(QueueAcross, ItemsFromZeroBytesTo64MiBArriveWhole) {
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_queue_create(&q, nullptr), 0);
  EXPECT_GE(mproc_queue_max_item(q), (size_t)64 << 20);
  mproc_process *p = start(t_put_sizes, {mproc_object_queue(q)});
  for (size_t size : kSizes) {
    SCOPED_TRACE(size);
    void *d = nullptr;
    size_t n = 0;
    ASSERT_EQ(mproc_queue_get(q, kLong, &d, &n), 0);
    ASSERT_EQ(n, size);
    const unsigned char *b = (const unsigned char *)d;
    size_t bad = 0;
    for (size_t i = 0; i < size; ++i) bad += b[i] != pattern(size, i);
    EXPECT_EQ(bad, 0u);
    mproc_free(d);
  }
  EXPECT_EQ(join(p), 0);
  mproc_queue_destroy(q);
}

// ---- killed peers ----------------------------------------------------------------------------------

// objects: queue, a 'q' counter of puts returned. Puts items 0, 1, 2, ... until killed.
int t_produce_forever(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  volatile int64_t *returned = (volatile int64_t *)mproc_value_ptr((mproc_value *)a->objects[1]);
  for (uint32_t i = 0;; ++i) {
    if (put_item(q, 0, i, i % 3 == 0 ? MPROC_QUEUE_BIG + (mix(i) % (200 << 10)) : 12 + mix(i) % 300) != 0) return 10;
    *returned = i + 1;
  }
}

// objects: queue, a 'q' counter of gets returned, an 'I' array of the seqs got. Gets until killed.
int t_consume_forever(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  volatile int64_t *returned = (volatile int64_t *)mproc_value_ptr((mproc_value *)a->objects[1]);
  volatile uint32_t *got = (volatile uint32_t *)mproc_value_ptr((mproc_value *)a->objects[2]);
  std::vector<unsigned char> buf(1 << 20);
  for (int64_t i = 0;; ++i) {
    size_t n = 0;
    if (mproc_queue_get_into(q, buf.data(), buf.size(), MPROC_INFINITE, &n) != 0) return 10;
    uint32_t p, s;
    if (!check_item(buf.data(), n, &p, &s)) return 11;
    got[i] = s;
    *returned = i + 1;
  }
}

mproc_value *int64s(size_t n, char tc = 'q') {
  mproc_value *v = nullptr;
  mproc_shared_opts o{};
  o.typecode = tc;
  o.length = n;
  o.raw = true;
  EXPECT_EQ(mproc_shared_create(&v, &o), 0);
  return v;
}

// Wait until *counter reaches target (the child's progress), at most kLong.
// Wait until the child p has made `target` calls (counter), up to kLong: success, or a failure that
// says where the child stands (ended, and how; or still running) and what the queue holds.
::testing::AssertionResult wait_progress(volatile int64_t *counter, int64_t target, mproc_process *p, mproc_queue *q) {
  int64_t deadline = mproc__pal_monotonic_ns() + kLong * 1000000;
  while (*counter < target) {
    bool ended = !mproc_process_is_alive(p);
    if (ended || mproc__pal_monotonic_ns() > deadline) {
      int code = 0;
      bool has_code = mproc_process_exitcode(p, &code);
      return ::testing::AssertionFailure()
             << (ended ? "the child ended" : "no progress within kLong") << " after " << *counter << " of " << target
             << " calls; exit code " << (has_code ? std::to_string(code) : std::string("none")) << "; queue qsize "
             << mproc_queue_qsize(q) << ", full " << mproc_queue_full(q);
    }
    std::this_thread::yield();
  }
  return ::testing::AssertionSuccess();
}

int kill_rounds() { return mproc_test::kSanitizer ? 40 : kWindows ? 120 : 200; }

// A producer killed at a random moment, again and again: every item whose put returned is there, whole
// and in order; no half item; the queue works on and counts nothing left over.
TEST_P(QueueAcross, ProducersKilledAtRandomMomentsLeaveNoHalfItemAndLoseNoPutItem) {
  mproc_queue *q = nullptr;
  mproc_queue_opts o{};
  o.max_bytes = 2 << 20;
  ASSERT_EQ(mproc_queue_create(&q, &o), 0);
  mproc_value *ret = int64s(1);
  volatile int64_t *returned = (volatile int64_t *)mproc_value_ptr(ret);
  std::vector<unsigned char> buf(1 << 20);
  uint32_t seed = 99;
  for (int round = 0; round < kill_rounds(); ++round) {
    SCOPED_TRACE(round);
    *returned = 0;
    mproc_process *p = start(t_produce_forever, {mproc_object_queue(q), mproc_object_value(ret)});
    ASSERT_TRUE(wait_progress(returned, 1 + (seed = mix(seed)) % 40, p, q));
    ASSERT_EQ(mproc_process_kill(p), 0);
    EXPECT_NE(join(p), 10);
    int64_t at_least = *returned;
    uint32_t next = 0;
    for (;;) { // drain: the items in order, each whole
      size_t n = 0;
      int rc = mproc_queue_get_into(q, buf.data(), buf.size(), 0, &n);
      if (rc == MPROC_EEMPTY) break;
      ASSERT_EQ(rc, 0);
      uint32_t pr, s;
      ASSERT_TRUE(check_item(buf.data(), n, &pr, &s)) << "a half item";
      ASSERT_EQ(s, next) << "lost or repeated";
      ++next;
    }
    EXPECT_GE((int64_t)next, at_least);
    EXPECT_LE((int64_t)next, at_least + 1); // at most the one whose put was returning
    // a half item the producer left is settled by the next get that would wait (it watches the writer)
    size_t n = 0;
    ASSERT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), 100, &n), MPROC_EEMPTY);
    ASSERT_EQ(mproc_queue_qsize(q), 0u);
  }
  ASSERT_EQ(put_item(q, 7, 7, 100), 0); // usable
  size_t n = 0;
  ASSERT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), 0, &n), 0);
  mproc_value_destroy(ret);
  mproc_queue_destroy(q);
}

// A consumer killed at a random moment, again and again: an item leaves the queue only once a get has
// copied it whole; what the killed get had not finished is got by the next one. Nothing lost, nothing
// twice (beyond the one item whose get returned as the kill came, which the child could not record).
TEST_P(QueueAcross, ConsumersKilledAtRandomMomentsLeaveTheirItemForTheNextGet) {
  const uint32_t per_round = 60;
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_queue_create(&q, nullptr), 0);
  mproc_value *ret = int64s(1);
  mproc_value *got = int64s(per_round, 'I');
  volatile int64_t *returned = (volatile int64_t *)mproc_value_ptr(ret);
  const uint32_t *got_seqs = (const uint32_t *)mproc_value_ptr(got);
  std::vector<unsigned char> buf(1 << 20);
  uint32_t seed = 7;
  for (int round = 0; round < kill_rounds(); ++round) {
    SCOPED_TRACE(round);
    for (uint32_t i = 0; i < per_round; ++i)
      ASSERT_EQ(put_item(q, 0, i, i % 2 ? MPROC_QUEUE_BIG + mix(i + round) % (300 << 10) : 12 + i), 0);
    *returned = 0;
    mproc_process *c =
        start(t_consume_forever, {mproc_object_queue(q), mproc_object_value(ret), mproc_object_value(got)});
    ASSERT_TRUE(wait_progress(returned, 1 + (seed = mix(seed)) % (per_round / 2), c, q));
    ASSERT_EQ(mproc_process_kill(c), 0);
    EXPECT_NE(join(c), 11);
    std::multiset<uint32_t> all;
    int64_t k = *returned;
    for (int64_t i = 0; i < k; ++i) all.insert(got_seqs[i]);
    for (;;) { // the rest, whatever the killed get left: it watches the dead taker when nothing is ready
      size_t n = 0;
      int rc = mproc_queue_get_into(q, buf.data(), buf.size(), mproc_queue_qsize(q) ? kLong : 0, &n);
      if (rc == MPROC_EEMPTY) break;
      ASSERT_EQ(rc, 0);
      uint32_t pr, s;
      ASSERT_TRUE(check_item(buf.data(), n, &pr, &s)) << "a half item";
      all.insert(s);
    }
    std::vector<uint32_t> missing;
    for (uint32_t i = 0; i < per_round; ++i) {
      ASSERT_LE(all.count(i), 1u) << "item " << i << " got twice";
      if (!all.count(i)) missing.push_back(i);
    }
    // the only item allowed to be missing: the one right after the child's last record, whose get had
    // returned when the kill came
    ASSERT_LE(missing.size(), 1u);
    if (!missing.empty()) {
      EXPECT_EQ(missing[0], k ? got_seqs[k - 1] + 1 : 0);
    }
    ASSERT_EQ(mproc_queue_qsize(q), 0u);
  }
  mproc_value_destroy(ret);
  mproc_value_destroy(got);
  mproc_queue_destroy(q);
}

// ---- white-box: deaths at the hardest moments, the process table -----------------------------------

void die_at_publishing(int where) {
  if (where == MPROC__QHOOK_PUBLISHING) std::_Exit(3);
}
void die_at_taking(int where) {
  if (where == MPROC__QHOOK_TAKING) std::_Exit(3);
}

// objects: queue; n: 0 or 1. Puts items 0 (in place) and 1 (a record), then dies in the put of item 2
// (1: a record of 200 KB) with the item written and its slot WRITING.
int t_die_publishing(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  if (put_item(q, 0, 0, 20) != 0 || put_item(q, 0, 1, 100000) != 0) return 10;
  mproc__queue_test_hook = die_at_publishing;
  put_item(q, 0, 2, arg(a) ? 200000 : 30);
  return 11;
}

// A producer that dies in the middle of a put, its item written and its slot still WRITING: the item
// never was, what it held in the record store is given back, and nothing behind it is held up.
TEST_P(QueueAcross, AProducerKilledWhileWritingLeavesNoItemAndGivesBackItsRoom) {
  for (int big : {0, 1}) {
    SCOPED_TRACE(big);
    mproc_queue *q = nullptr;
    mproc_queue_opts o{};
    o.max_bytes = 512 << 10; // 100 KB + the dead 200 KB + 300 KB do not fit: the dead record must go
    ASSERT_EQ(mproc_queue_create(&q, &o), 0);
    EXPECT_EQ(join(start(t_die_publishing, {mproc_object_queue(q)}, big)), 3);
    std::vector<unsigned char> buf(1 << 20);
    size_t n = 0;
    uint32_t p, s;
    for (uint32_t i = 0; i < 2; ++i) {
      ASSERT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), kLong, &n), 0);
      ASSERT_TRUE(check_item(buf.data(), n, &p, &s));
      EXPECT_EQ(s, i);
    }
    if (big) { // waits for room held by the dead put's record: it watches the dead writer
      ASSERT_EQ(put_item(q, 1, 3, 300000, kLong), 0);
    } else { // waits on the dead put's slot: it watches the dead writer, then finds nothing
      EXPECT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), 100, &n), MPROC_EEMPTY);
      ASSERT_EQ(put_item(q, 1, 3, 300000, 0), 0);
    }
    ASSERT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), kLong, &n), 0);
    ASSERT_TRUE(check_item(buf.data(), n, &p, &s));
    EXPECT_EQ(p, 1u);
    EXPECT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), 0, &n), MPROC_EEMPTY);
    EXPECT_EQ(mproc_queue_qsize(q), 0u);
    mproc_queue_destroy(q);
  }
}

// A child of a process that used the queue first takes a table entry of its own (with fork, its
// handle is a copy of its parent's, the parent's index in it): the slot it dies holding names the
// child, whose death frees it, so the items put behind that slot are not held up for ever.
TEST_P(QueueAcross, AChildOfAProcessThatUsedTheQueueTakesAnEntryOfItsOwn) {
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_queue_create(&q, nullptr), 0);
  std::vector<unsigned char> buf(1 << 20);
  size_t n = 0;
  uint32_t p, s;
  ASSERT_EQ(put_item(q, 1, 0, 30, 0), 0); // the parent takes its entry
  ASSERT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), 0, &n), 0);
  EXPECT_EQ(join(start(t_die_publishing, {mproc_object_queue(q)}, 0)), 3);
  for (uint32_t i = 0; i < 2; ++i) {
    ASSERT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), kLong, &n), 0);
    ASSERT_TRUE(check_item(buf.data(), n, &p, &s));
    EXPECT_EQ(s, i);
  }
  ASSERT_EQ(put_item(q, 1, 3, 30, 0), 0); // behind the dead child's slot
  ASSERT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), kLong, &n), 0);
  ASSERT_TRUE(check_item(buf.data(), n, &p, &s));
  EXPECT_EQ(p, 1u);
  EXPECT_EQ(s, 3u);
  EXPECT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), 0, &n), MPROC_EEMPTY);
  mproc_queue_destroy(q);
}

void die_at_reserved(int where) {
  if (where == MPROC__QHOOK_RESERVED) std::_Exit(3);
}

// objects: queue. Dies in a put of the largest item the queue takes, its record reserved (the whole
// store) and no place in the order taken yet.
int t_die_reserved(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  mproc__queue_test_hook = die_at_reserved;
  put_item(q, 0, 0, mproc_queue_max_item(q));
  return 11;
}

// A put that dies with its record reserved and before it has a place in the order: no get ever meets
// that record, so what holds the store is found by the puts that wait for room, an item in place too
// (it waits while the store is full). It used to sleep watching nobody, for ever: the killed-producer
// test's rare stall.
TEST_P(QueueAcross, ARecordOfAPutThatDiedBeforeItsPlaceIsGivenBackToTheNextPut) {
  for (size_t len : {size_t{20}, size_t{4000}}) { // an item in place; a record
    SCOPED_TRACE(len);
    mproc_queue *q = nullptr;
    mproc_queue_opts o{};
    o.max_bytes = 64 << 10;
    ASSERT_EQ(mproc_queue_create(&q, &o), 0);
    EXPECT_EQ(join(start(t_die_reserved, {mproc_object_queue(q)})), 3);
    EXPECT_TRUE(mproc_queue_full(q)); // the dead put's record fills the store
    ASSERT_EQ(put_item(q, 1, 1, len, 5000), 0) << mproc_last_error();
    std::vector<unsigned char> buf(1 << 20);
    size_t n = 0;
    uint32_t p, seq;
    ASSERT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), 0, &n), 0);
    ASSERT_TRUE(check_item(buf.data(), n, &p, &seq));
    EXPECT_EQ(p, 1u);
    EXPECT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), 0, &n), MPROC_EEMPTY);
    EXPECT_EQ(mproc_queue_qsize(q), 0u);
    mproc_queue_destroy(q);
  }
}

// objects: queue. Dies in a get that has taken a record (TAKING), before copying it.
int t_die_taking(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  mproc__queue_test_hook = die_at_taking;
  std::vector<unsigned char> buf(1 << 20);
  size_t n = 0;
  mproc_queue_get_into(q, buf.data(), buf.size(), kLong, &n);
  return 11;
}

// A consumer that dies holding a record it took: the item is READY again at its place (gets find it
// once the death is noticed: the ones before that take the items behind it), got once and whole.
TEST_P(QueueAcross, AConsumerKilledWhileTakingLeavesTheItemAtItsPlace) {
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_queue_create(&q, nullptr), 0);
  ASSERT_EQ(put_item(q, 0, 0, 100000), 0);
  ASSERT_EQ(put_item(q, 0, 1, 20), 0);
  ASSERT_EQ(put_item(q, 0, 2, 70000), 0);
  EXPECT_EQ(join(start(t_die_taking, {mproc_object_queue(q)})), 3);
  EXPECT_EQ(mproc_queue_qsize(q), 3u);
  std::vector<unsigned char> buf(1 << 20);
  for (uint32_t want : {1u, 2u, 0u}) { // the taken one last: it comes back once a get waits on its taker
    size_t n = 0;
    uint32_t p, s;
    ASSERT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), kLong, &n), 0);
    ASSERT_TRUE(check_item(buf.data(), n, &p, &s)) << "a half item";
    EXPECT_EQ(s, want);
  }
  size_t n = 0;
  EXPECT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), 0, &n), MPROC_EEMPTY);
  EXPECT_EQ(mproc_queue_qsize(q), 0u);
  mproc_queue_destroy(q);
}

// objects: queue. Tries one put; exit code 0 (put), 20 (MPROC_ENOMEM: no entry in the table), 21.
int t_try_put(const mproc_args *a) {
  int rc = put_item((mproc_queue *)a->objects[0], 2, (uint32_t)arg(a), 20, 0);
  return rc == 0 ? 0 : rc == MPROC_ENOMEM ? 20 : 21;
}

// The table of the processes that use a queue (3 entries here): a process takes one on its first put,
// a dead one's entry is taken over (what it left WRITING put right first, so that nothing in flight
// names the new owner), and with every entry held by a live process a put says so.
TEST_P(QueueAcross, TheProcessTableRecyclesTheEntriesOfDeadProcesses) {
  mproc_queue *q = nullptr;
  mproc__queue_test_procs = 3;
  int rc = mproc_queue_create(&q, nullptr);
  mproc__queue_test_procs = 0;
  ASSERT_EQ(rc, 0);
  mproc_event *done = nullptr, *never = nullptr;
  ASSERT_EQ(mproc_event_create(&done), 0);
  ASSERT_EQ(mproc_event_create(&never), 0);
  ASSERT_EQ(put_item(q, 1, 0, 20), 0);                                     // entry 1: this process
  EXPECT_EQ(join(start(t_die_publishing, {mproc_object_queue(q)}, 0)), 3); // entry 2: dead, a slot WRITING
  std::vector<mproc_object> objs = {mproc_object_queue(q), mproc_object_event(done), mproc_object_event(never)};
  mproc_process *y = start(t_put_then, objs, -1); // entry 3: alive
  ASSERT_EQ(mproc_event_wait(done, kLong), 0);
  ASSERT_EQ(mproc_event_clear(done), 0);
  mproc_process *z = start(t_put_then, objs, -1); // takes over entry 2
  ASSERT_EQ(mproc_event_wait(done, kLong), 0);
  EXPECT_EQ(join(start(t_try_put, {mproc_object_queue(q)}, 1)), 20); // every entry held by a live process
  ASSERT_EQ(mproc_process_kill(z), 0);
  EXPECT_NE(join(z), 0);
  EXPECT_EQ(join(start(t_try_put, {mproc_object_queue(q)}, 2)), 0); // takes over z's
  // this process's item, the dead one's two, y's, z's, the last one's: none held up by the dead WRITING
  std::vector<unsigned char> buf(1 << 20);
  for (int i = 0; i < 6; ++i) {
    size_t n = 0;
    uint32_t p, s;
    ASSERT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), kLong, &n), 0) << i;
    ASSERT_TRUE(check_item(buf.data(), n, &p, &s));
  }
  size_t n = 0;
  EXPECT_EQ(mproc_queue_get_into(q, buf.data(), buf.size(), 100, &n), MPROC_EEMPTY);
  EXPECT_EQ(mproc_queue_qsize(q), 0u);
  ASSERT_EQ(mproc_process_kill(y), 0);
  EXPECT_NE(join(y), 0);
  mproc_event_destroy(done);
  mproc_event_destroy(never);
  mproc_queue_destroy(q);
}

// ---- JoinableQueue across processes -------------------------------------------------------------

// objects: joinable queue; n: 0 get and task_done until shut down; 1 get one item and die without
// task_done.
int t_worker(const mproc_args *a) {
  mproc_queue *q = (mproc_queue *)a->objects[0];
  int v;
  size_t n = 0;
  if (arg(a) == 1) {
    if (mproc_queue_get_into(q, &v, sizeof v, kLong, &n) != 0) return 10;
    return 0; // ends without task_done
  }
  for (;;) {
    int rc = mproc_queue_get_into(q, &v, sizeof v, MPROC_INFINITE, &n);
    if (rc == MPROC_EEOF) return 0;
    if (rc || mproc_queue_task_done(q) != 0) return 11;
  }
}

TEST_P(QueueAcross, JoinableQueueWithSeveralConsumersAndOneThatDies) {
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_joinable_queue_create(&q, nullptr), 0);
  std::vector<mproc_process *> ws;
  for (int i = 0; i < 3; ++i) ws.push_back(start(t_worker, {mproc_object_queue(q)}, 0));
  for (int i = 0; i < 3000; ++i) ASSERT_EQ(mproc_queue_put(q, &i, sizeof i, kLong), 0);
  EXPECT_EQ(mproc_queue_join(q, kLong), 0);
  EXPECT_EQ(mproc_queue_qsize(q), 0u);
  ASSERT_EQ(mproc_queue_shutdown(q), 0);
  for (mproc_process *w : ws) EXPECT_EQ(join(w), 0);
  mproc_queue_destroy(q);

  // a consumer that dies holding a task: join reports it (never waits for it) and writes it off
  ASSERT_EQ(mproc_joinable_queue_create(&q, nullptr), 0);
  int v = 5;
  ASSERT_EQ(mproc_queue_put(q, &v, sizeof v, 0), 0);
  EXPECT_EQ(join(start(t_worker, {mproc_object_queue(q)}, 1)), 0);
  EXPECT_EQ(mproc_queue_join(q, kLong), MPROC_EWORKERDIED);
  EXPECT_EQ(mproc_queue_join(q, 0), 0);
  mproc_queue_destroy(q);
}

// ---- handing on and waiting -------------------------------------------------------------------------

// connection: receives a queue, puts "hello" into it.
int t_receive_queue(const mproc_args *a) {
  void *obj = nullptr;
  if (mproc_connection_recv_object(a->connections[0], MPROC_OBJECT_QUEUE, kLong, &obj) != 0) return 10;
  mproc_queue *q = (mproc_queue *)obj;
  int rc = mproc_queue_put(q, "hello", 5, kLong);
  mproc_queue_destroy(q);
  return rc ? 11 : 0;
}

TEST_P(QueueAcross, AQueueSentToARunningProcessAndWaitedOnBesideItsSentinel) {
  mproc_connection *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  mproc_process_opts o{};
  o.target = t_receive_queue;
  o.connections = &b;
  o.connection_count = 1;
  o.start_method = GetParam();
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, &o), 0);
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  mproc_queue *q = nullptr;
  ASSERT_EQ(mproc_queue_create(&q, nullptr), 0);
  mproc_waitable w[1] = {mproc_waitable_queue(q)};
  size_t nready = 0;
  EXPECT_EQ(mproc_wait(w, 1, 0, &nready), MPROC_ETIMEDOUT);
  ASSERT_EQ(mproc_connection_send_object(a, mproc_object_queue(q), mproc_process_pid(p)), 0) << mproc_last_error();
  ASSERT_EQ(mproc_wait(w, 1, kLong, &nready), 0); // the child's put wakes this wait
  EXPECT_TRUE(w[0].ready);
  char buf[8];
  size_t n = 0;
  ASSERT_EQ(mproc_queue_get_into(q, buf, sizeof buf, 0, &n), 0);
  EXPECT_EQ(std::string(buf, n), "hello");
  EXPECT_EQ(join(p), 0);
  mproc_queue_destroy(q);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
}

INSTANTIATE_TEST_SUITE_P(Methods, QueueAcross, ::testing::ValuesIn(methods()), method_name);

} // namespace
