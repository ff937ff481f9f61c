// Pools (mproc/pool.h): every call and its ordering, under every start method and with threads;
// callbacks, failures, worker death in every way (idle, mid-task, abort, exit), the per-task timeout,
// maxtasksperchild, the initializer, close, terminate.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#ifdef __linux__
#include <sched.h>
#endif

#include "test_util.h"
#include "tree_util.h"

using mproc_test::kWindows;

namespace {

const int64_t kLong = 60000;

// ---- task functions (found again in the workers) ---------------------------------------------------

// In a worker: how many times the initializer ran in this process (a fork child inherits the parent's
// variables: the pid tells whose count it is).
// (Atomic: the threads of a ThreadPool run it at once.)
std::atomic<int> g_initialized{0};
std::atomic<int64_t> g_initialized_pid{0};

void t_init(const void *arg, size_t size) {
  if (g_initialized_pid.exchange(mproc_getpid()) != mproc_getpid()) g_initialized = 0;
  if (size == sizeof(int)) g_initialized += *(const int *)arg;
}

// An initializer that ends its worker: no worker ever runs a task.
void t_init_exits(const void *, size_t) { std::exit(3); }

int t_square(const void *in, size_t len, mproc_task *t) {
  if (len != sizeof(int64_t)) return mproc_task_fail(t, "want 8 bytes, got %zu", len);
  int64_t x;
  std::memcpy(&x, in, sizeof x);
  x *= x;
  return mproc_task_return(t, &x, sizeof x);
}

int t_echo(const void *in, size_t len, mproc_task *t) { return mproc_task_return(t, in, len); }

int t_pid(const void *, size_t, mproc_task *t) {
  int64_t pid = mproc_getpid();
  return mproc_task_return(t, &pid, sizeof pid);
}

int t_initialized(const void *, size_t, mproc_task *t) {
  int count = g_initialized_pid == mproc_getpid() ? g_initialized.load() : 0;
  return mproc_task_return(t, &count, sizeof count);
}

int t_fail_odd(const void *in, size_t len, mproc_task *t) {
  int64_t x = 0;
  std::memcpy(&x, in, std::min(len, sizeof x));
  if (x % 2) return mproc_task_fail(t, "odd input %lld", (long long)x);
  return mproc_task_return(t, &x, sizeof x);
}

int t_returns_7(const void *, size_t, mproc_task *) { return 7; }

// input: 'a' abort, 'e' exit(3), 's' sleep for ever, anything else: return it
int t_misbehave(const void *in, size_t len, mproc_task *t) {
  char c = len ? *(const char *)in : 0;
  if (c == 'a') abort();
  if (c == 'e') exit(3);
  if (c == 's')
    for (;;) std::this_thread::sleep_for(std::chrono::milliseconds(10)); // killed for its time
  return mproc_task_return(t, in, len);
}

// A gate in named shared memory (its name is the input): the task waits until the test opens it.
int t_gate(const void *in, size_t len, mproc_task *t) {
  std::string name((const char *)in, len);
  mproc_shared_memory *m = nullptr;
  if (mproc_shared_memory_attach(&m, name.c_str()) != 0) return mproc_task_fail(t, "attach: %s", mproc_last_error());
  auto *open = (volatile std::atomic<uint32_t> *)mproc_shared_memory_buf(m);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!open->load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  bool opened = open->load() != 0;
  mproc_shared_memory_destroy(m);
  return opened ? mproc_task_return(t, "g", 1) : mproc_task_fail(t, "the gate never opened");
}

// starmap: the sum of two 8-byte arguments
int t_add(const void *in, size_t len, mproc_task *t) {
  mproc_bytes a[3];
  size_t n = 0;
  if (mproc_task_args(in, len, a, 3, &n) != 0) return mproc_task_fail(t, "%s", mproc_last_error());
  if (n != 2 || a[0].len != 8 || a[1].len != 8) return mproc_task_fail(t, "want two 8-byte arguments, got %zu", n);
  int64_t x, y;
  std::memcpy(&x, a[0].data, 8);
  std::memcpy(&y, a[1].data, 8);
  x += y;
  return mproc_task_return(t, &x, sizeof x);
}

int t_count_args(const void *in, size_t len, mproc_task *t) {
  size_t n = 0;
  if (mproc_task_args(in, len, nullptr, 0, &n) != 0) return mproc_task_fail(t, "%s", mproc_last_error());
  int64_t k = (int64_t)n;
  return mproc_task_return(t, &k, sizeof k);
}

// By input i: i % 3 == 0 returns nothing; 1 returns a long output, then i itself (the later return
// stands); 2 returns i doubled, once. An input of 1000 returns first, then fails.
int t_returns_variously(const void *in, size_t len, mproc_task *t) {
  int64_t x = 0;
  std::memcpy(&x, in, std::min(len, sizeof x));
  if (x == 1000) {
    mproc_task_return(t, "an output that the failure drops", 32);
    return mproc_task_fail(t, "failed after its return");
  }
  if (x % 3 == 0) return 0;
  if (x % 3 == 1) {
    std::string first(300 + (size_t)x, 'q'); // longer than the later one, and than a reply slot
    if (int rc = mproc_task_return(t, first.data(), first.size())) return rc;
    return mproc_task_return(t, &x, sizeof x);
  }
  int64_t y = 2 * x;
  return mproc_task_return(t, &y, sizeof y);
}

int64_t as_i64(const void *p) {
  int64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// ---- the pools under test -----------------------------------------------------------------------------

struct Kind {
  bool threads;
  mproc_start_method method;
};

std::vector<Kind> kinds() {
  std::vector<Kind> k = {{true, MPROC_START_DEFAULT}, {false, MPROC_START_SPAWN}};
  if (!kWindows) {
    // TSan cannot follow a fork of a process with threads (the pool's result thread)
    if (!mproc_test::kThreadSanitizer) k.push_back({false, MPROC_START_FORK});
    k.push_back({false, MPROC_START_FORKSERVER});
  }
  return k;
}

std::string kind_name(const ::testing::TestParamInfo<Kind> &i) {
  return i.param.threads ? std::string("threads") : std::string(mproc_start_method_name(i.param.method));
}

class Pool : public ::testing::TestWithParam<Kind> {
 protected:
  mproc_pool *make(size_t n = 2, mproc_pool_opts o = {}) {
    o.processes = n;
    o.threads = GetParam().threads;
    o.start_method = GetParam().method;
    mproc_pool *p = nullptr;
    EXPECT_EQ(mproc_pool_create(&p, &o), 0) << mproc_last_error();
    return p;
  }
  static void finish(mproc_pool *p) {
    EXPECT_EQ(mproc_pool_close(p), 0);
    EXPECT_EQ(mproc_pool_join(p, kLong), 0);
    mproc_pool_destroy(p);
  }
  bool threads() const { return GetParam().threads; }
};

std::vector<mproc_bytes> inputs_of(std::vector<int64_t> &v) {
  std::vector<mproc_bytes> in;
  for (int64_t &x : v) in.push_back({&x, sizeof x});
  return in;
}

TEST_P(Pool, ApplyAndApplyAsyncWithCallbacks) {
  mproc_pool *p = make();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(mproc_pool_size(p), 2u);
  int64_t x = 12;
  void *out = nullptr;
  size_t len = 0;
  ASSERT_EQ(mproc_pool_apply(p, t_square, &x, sizeof x, kLong, &out, &len), 0) << mproc_last_error();
  ASSERT_EQ(len, sizeof(int64_t));
  EXPECT_EQ(as_i64(out), 144);
  mproc_free(out);
  // a failing task's message reaches the caller
  EXPECT_EQ(mproc_pool_apply(p, t_square, "abc", 3, kLong, &out, &len), MPROC_ETASK);
  EXPECT_NE(std::string(mproc_last_error()).find("want 8 bytes, got 3"), std::string::npos) << mproc_last_error();
  EXPECT_EQ(mproc_pool_apply(p, t_returns_7, nullptr, 0, kLong, &out, &len), MPROC_ETASK);
  EXPECT_NE(std::string(mproc_last_error()).find("returned 7"), std::string::npos) << mproc_last_error();
  // callbacks run on the result thread, once each
  struct Seen {
    std::mutex m;
    std::vector<int64_t> ok;
    int errors = 0;
  } seen;
  mproc_async_opts o{};
  o.user = &seen;
  o.callback = [](void *u, mproc_async_result *r) {
    const void *d;
    size_t n;
    ASSERT_EQ(mproc_async_result_item(r, 0, &d, &n), 0);
    std::lock_guard<std::mutex> g(((Seen *)u)->m);
    ((Seen *)u)->ok.push_back(as_i64(d));
  };
  o.error_callback = [](void *u, mproc_async_result *r) {
    bool ok = true;
    EXPECT_EQ(mproc_async_result_successful(r, &ok), 0);
    EXPECT_FALSE(ok);
    std::lock_guard<std::mutex> g(((Seen *)u)->m);
    ((Seen *)u)->errors++;
  };
  std::vector<mproc_async_result *> rs;
  for (int64_t i = 0; i < 20; ++i) {
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_apply_async(p, t_fail_odd, &i, sizeof i, &o, &r), 0);
    rs.push_back(r);
  }
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(mproc_async_result_get(rs[i], kLong), i % 2 ? MPROC_ETASK : 0);
    EXPECT_TRUE(mproc_async_result_ready(rs[i]));
    mproc_async_result_destroy(rs[i]);
  }
  finish(p); // join: every callback has run
  std::sort(seen.ok.begin(), seen.ok.end());
  EXPECT_EQ(seen.ok, (std::vector<int64_t>{0, 2, 4, 6, 8, 10, 12, 14, 16, 18}));
  EXPECT_EQ(seen.errors, 10);
}

// A burst of applies with outputs of many sizes (small ones fit where a result could keep them itself, a
// way to save allocations that was measured: docs/PERFORMANCE.md): each comes back whole, aligned and its
// result's own while others are destroyed around it (some before their reply came), their memory free
// to serve later ones; mproc_pool_apply hands over a block the caller frees.
TEST_P(Pool, ApplyOutputsOfEverySizeStayTheirResultsOwn) {
  mproc_pool *p = make();
  ASSERT_NE(p, nullptr);
  auto pattern = [](size_t i, size_t len) {
    std::string s(len, '\0');
    for (size_t j = 0; j < len; ++j) s[j] = (char)(i * 31 + j * 7 + 1);
    return s;
  };
  const size_t sizes[] = {0, 1, 7, 8, 15, 16, 17, 32, 255, 1000, 5000};
  std::vector<std::string> ins;
  for (size_t round = 0; round < 30; ++round)
    for (size_t len : sizes) ins.push_back(pattern(ins.size(), len));
  std::vector<mproc_async_result *> rs(ins.size());
  for (size_t i = 0; i < ins.size(); ++i)
    ASSERT_EQ(mproc_pool_apply_async(p, t_echo, ins[i].data(), ins[i].size(), nullptr, &rs[i]), 0)
        << mproc_last_error();
  for (size_t i = 0; i < rs.size(); i += 3) { // destroyed at once, most before their reply
    mproc_async_result_destroy(rs[i]);
    rs[i] = nullptr;
  }
  std::set<const void *> seen;
  for (size_t i = 0; i < rs.size(); ++i) {
    if (!rs[i]) continue;
    ASSERT_EQ(mproc_async_result_get(rs[i], kLong), 0) << mproc_last_error();
    const void *d = nullptr;
    size_t len = 0;
    ASSERT_EQ(mproc_async_result_item(rs[i], 0, &d, &len), 0);
    ASSERT_EQ(std::string((const char *)d, len), ins[i]) << "result " << i;
    EXPECT_EQ((uintptr_t)d % alignof(std::max_align_t), 0u) << "result " << i;
    EXPECT_TRUE(seen.insert(d).second) << "result " << i << " shares its output with one still held";
    if (i % 3 == 1) { // destroyed now (its memory may serve a later one): the results still held keep theirs
      seen.erase(d);
      mproc_async_result_destroy(rs[i]);
      rs[i] = nullptr;
    }
  }
  for (size_t i = 0; i < rs.size(); ++i) {
    if (!rs[i]) continue;
    const void *d = nullptr;
    size_t len = 0;
    ASSERT_EQ(mproc_async_result_item(rs[i], 0, &d, &len), 0);
    EXPECT_EQ(std::string((const char *)d, len), ins[i]) << "result " << i;
    mproc_async_result_destroy(rs[i]);
  }
  for (size_t len : sizes) { // the synchronous call hands its output over: the caller frees it
    std::string in = pattern(len, len);
    void *out = nullptr;
    size_t out_len = 99;
    ASSERT_EQ(mproc_pool_apply(p, t_echo, in.data(), in.size(), kLong, &out, &out_len), 0) << mproc_last_error();
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(std::string((const char *)out, out_len), in);
    mproc_free(out);
  }
  finish(p);
}

// CPython's Pool starts new workers for ever when its initializer fails, and a map waits for ever. Here
// workers that keep dying before their first task break the pool: what waits fails, error callbacks
// run, and later submissions fail at once, saying why.
TEST_P(Pool, WorkersThatKeepDyingBeforeTheirFirstTaskBreakThePoolInsteadOfAHang) {
  if (threads()) GTEST_SKIP() << "a thread's initializer that exits ends the whole process";
  mproc_pool_opts o{};
  o.initializer = t_init_exits;
  mproc_pool *p = make(2, o);
  ASSERT_NE(p, nullptr);
  std::atomic<int> errors{0};
  mproc_async_opts ao{};
  ao.user = &errors;
  ao.error_callback = [](void *u, mproc_async_result *) { ++*(std::atomic<int> *)u; };
  std::vector<mproc_async_result *> rs;
  for (int64_t i = 0; i < 5; ++i) {
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_apply_async(p, t_square, &i, sizeof i, &ao, &r), 0) << mproc_last_error();
    rs.push_back(r);
  }
  std::vector<int64_t> v(20);
  std::vector<mproc_bytes> in = inputs_of(v);
  mproc_async_result *m = nullptr;
  int rc = mproc_pool_map(p, t_square, in.data(), in.size(), 1, kLong, &m);
  // the map fails when it is submitted (the pool broke already) or as it waits
  EXPECT_EQ(rc, MPROC_EWORKERDIED) << mproc_last_error();
  EXPECT_NE(std::string(mproc_last_error()).find("before"), std::string::npos) << mproc_last_error();
  mproc_async_result_destroy(m);
  for (mproc_async_result *r : rs) {
    EXPECT_EQ(mproc_async_result_get(r, kLong), MPROC_EWORKERDIED) << mproc_last_error();
    mproc_async_result_destroy(r);
  }
  int64_t x = 1;
  void *out = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_pool_apply(p, t_square, &x, sizeof x, kLong, &out, &n), MPROC_EWORKERDIED);
  EXPECT_NE(std::string(mproc_last_error()).find("exit"), std::string::npos) << mproc_last_error();
  finish(p); // join: every callback has run
  EXPECT_EQ(errors.load(), 5);
}

TEST_P(Pool, MapKeepsInputOrderForEveryChunksize) {
  mproc_pool *p = make(3);
  ASSERT_NE(p, nullptr);
  std::vector<int64_t> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = (int64_t)i;
  std::vector<mproc_bytes> in = inputs_of(v);
  for (size_t chunk : {size_t(1), size_t(0), size_t(7), size_t(5000)}) {
    SCOPED_TRACE(chunk);
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_map(p, t_square, in.data(), in.size(), chunk, kLong, &r), 0) << mproc_last_error();
    ASSERT_EQ(mproc_async_result_count(r), v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      const void *d;
      size_t n;
      ASSERT_EQ(mproc_async_result_item(r, i, &d, &n), 0);
      ASSERT_EQ(as_i64(d), (int64_t)(i * i));
    }
    mproc_async_result_destroy(r);
  }
  // empty input: ready at once, no item
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(p, t_square, nullptr, 0, 0, kLong, &r), 0);
  EXPECT_EQ(mproc_async_result_count(r), 0u);
  mproc_async_result_destroy(r);
  // a map fails as a whole with the first failure
  std::vector<int64_t> w = {2, 4, 5, 6};
  std::vector<mproc_bytes> win = inputs_of(w);
  EXPECT_EQ(mproc_pool_map(p, t_fail_odd, win.data(), win.size(), 1, kLong, &r), MPROC_ETASK);
  EXPECT_EQ(r, nullptr);
  EXPECT_NE(std::string(mproc_last_error()).find("odd input 5"), std::string::npos);
  finish(p);
}

TEST_P(Pool, AnOutputIsTheTasksLastReturnOrEmptyAndAFailureKeepsNone) {
  mproc_pool *p = make();
  ASSERT_NE(p, nullptr);
  std::vector<int64_t> v(300);
  for (size_t i = 0; i < v.size(); ++i) v[i] = (int64_t)i;
  std::vector<mproc_bytes> in = inputs_of(v);
  for (size_t chunk : {size_t(1), size_t(0), size_t(300)}) { // a task per item, a few chunks, one chunk
    SCOPED_TRACE(chunk);
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_map(p, t_returns_variously, in.data(), in.size(), chunk, kLong, &r), 0) << mproc_last_error();
    for (size_t i = 0; i < v.size(); ++i) {
      SCOPED_TRACE(i);
      const void *d = nullptr;
      size_t n = 99;
      ASSERT_EQ(mproc_async_result_item(r, i, &d, &n), 0);
      ASSERT_EQ(n, i % 3 == 0 ? 0u : 8u);
      if (n) {
        EXPECT_EQ(as_i64(d), i % 3 == 1 ? (int64_t)i : 2 * (int64_t)i);
      }
    }
    mproc_async_result_destroy(r);
  }
  int64_t bad[3] = {1, 1000, 2};
  mproc_bytes bin[3] = {{&bad[0], 8}, {&bad[1], 8}, {&bad[2], 8}};
  mproc_async_result *r = nullptr;
  EXPECT_EQ(mproc_pool_map(p, t_returns_variously, bin, 3, 3, kLong, &r), MPROC_ETASK);
  EXPECT_NE(std::string(mproc_last_error()).find("failed after its return"), std::string::npos) << mproc_last_error();
  void *out = nullptr;
  size_t len = 0;
  ASSERT_EQ(mproc_pool_apply(p, t_returns_variously, &bad[0], 8, kLong, &out, &len), 0) << mproc_last_error();
  ASSERT_EQ(len, 8u);
  EXPECT_EQ(as_i64(out), 1);
  mproc_free(out);
  finish(p);
}

TEST_P(Pool, MapAsyncCallbackAndImapBothOrders) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  std::vector<int64_t> v(200);
  for (size_t i = 0; i < v.size(); ++i) v[i] = (int64_t)i;
  std::vector<mproc_bytes> in = inputs_of(v);
  std::atomic<int> called{0};
  mproc_async_opts o{};
  o.user = &called;
  o.callback = [](void *u, mproc_async_result *r) {
    EXPECT_EQ(mproc_async_result_count(r), 200u);
    (*(std::atomic<int> *)u)++;
  };
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map_async(p, t_square, in.data(), in.size(), &o, &r), 0);
  ASSERT_EQ(mproc_async_result_get(r, kLong), 0);
  mproc_async_result_destroy(r);
  for (bool ordered : {true, false}) {
    SCOPED_TRACE(ordered);
    ASSERT_EQ(mproc_pool_imap(p, t_square, in.data(), in.size(), 3, ordered, &r), 0);
    std::set<size_t> got;
    size_t expect = 0;
    for (;;) {
      const void *d;
      size_t n, idx = 99999;
      int rc = mproc_async_result_next(r, kLong, &d, &n, &idx);
      if (rc == MPROC_EEOF) break;
      ASSERT_EQ(rc, 0) << mproc_last_error();
      ASSERT_EQ(as_i64(d), (int64_t)(idx * idx));
      if (ordered) {
        EXPECT_EQ(idx, expect++);
      }
      EXPECT_TRUE(got.insert(idx).second);
    }
    EXPECT_EQ(got.size(), 200u);
    mproc_async_result_destroy(r);
  }
  finish(p);
  EXPECT_EQ(called.load(), 1);
}

TEST_P(Pool, SixtyFourMiBInAndOut) {
  mproc_pool *p = make(1);
  ASSERT_NE(p, nullptr);
  std::vector<unsigned char> big((size_t)64 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = (unsigned char)(i * 131 + (i >> 16));
  void *out = nullptr;
  size_t len = 0;
  ASSERT_EQ(mproc_pool_apply(p, t_echo, big.data(), big.size(), kLong, &out, &len), 0) << mproc_last_error();
  ASSERT_EQ(len, big.size());
  EXPECT_EQ(std::memcmp(out, big.data(), len), 0);
  mproc_free(out);
  finish(p);
}

TEST_P(Pool, AHundredThousandTinyTasks) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  const size_t n = mproc_test::kSanitizer ? 10000 : 100000;
  std::vector<int64_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = (int64_t)i;
  std::vector<mproc_bytes> in = inputs_of(v);
  mproc_async_result *r = nullptr;
  // no time limit of ours: 100,000 round trips take tens of seconds under a loaded wine (CTest's own
  // timeout ends a hang)
  ASSERT_EQ(mproc_pool_map(p, t_square, in.data(), n, 1, MPROC_INFINITE, &r), 0) << mproc_last_error();
  const void *d;
  size_t len;
  ASSERT_EQ(mproc_async_result_item(r, n - 1, &d, &len), 0);
  EXPECT_EQ(as_i64(d), (int64_t)((n - 1) * (n - 1)));
  mproc_async_result_destroy(r);
  finish(p);
}

TEST_P(Pool, InitializerOncePerWorkerAndMaxtasksperchildReplacesWorkers) {
  mproc_pool_opts o{};
  int one = 1;
  o.initializer = t_init;
  o.initarg = &one;
  o.initarg_size = sizeof one;
  o.maxtasksperchild = 3;
  mproc_pool *p = make(2, o);
  ASSERT_NE(p, nullptr);
  std::vector<int64_t> dummy(30);
  std::vector<mproc_bytes> in = inputs_of(dummy);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(p, t_initialized, in.data(), in.size(), 1, kLong, &r), 0) << mproc_last_error();
  for (size_t i = 0; i < in.size(); ++i) {
    const void *d;
    size_t len;
    ASSERT_EQ(mproc_async_result_item(r, i, &d, &len), 0);
    int count;
    std::memcpy(&count, d, sizeof count);
    if (threads()) {
      EXPECT_GE(count, 1); // threads share the process's memory: the count only grows
    } else {
      EXPECT_EQ(count, 1) << "the initializer ran more than once in one worker";
    }
  }
  mproc_async_result_destroy(r);
  if (!threads()) { // 30 tasks, at most 3 per worker: at least 10 different pids
    ASSERT_EQ(mproc_pool_map(p, t_pid, in.data(), in.size(), 1, kLong, &r), 0);
    std::set<int64_t> pids;
    for (size_t i = 0; i < in.size(); ++i) {
      const void *d;
      size_t len;
      ASSERT_EQ(mproc_async_result_item(r, i, &d, &len), 0);
      pids.insert(as_i64(d));
    }
    EXPECT_GE(pids.size(), 10u);
    EXPECT_EQ(pids.count(mproc_getpid()), 0u);
    mproc_async_result_destroy(r);
  }
  finish(p);
}

// A worker that dies running a task fails that task with MPROC_EWORKERDIED naming how; the pool goes on.
TEST_P(Pool, AWorkerThatDiesFailsItsTaskAndIsReplaced) {
  if (threads()) GTEST_SKIP() << "a thread worker cannot die alone";
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  for (char how : {'a', 'e'}) {
    SCOPED_TRACE(how);
    void *out = nullptr;
    size_t len = 0;
    EXPECT_EQ(mproc_pool_apply(p, t_misbehave, &how, 1, kLong, &out, &len), MPROC_EWORKERDIED);
    std::string msg = mproc_last_error();
    if (how == 'e') { // (under ASan the leak check at exit() turns a fork child's 3 into 1)
      EXPECT_NE(msg.find(mproc_test::kAddressSanitizer ? "exit code" : "exit code 3"), std::string::npos) << msg;
    }
    // the pool still serves, on both workers
    std::vector<int64_t> v(50, 3);
    std::vector<mproc_bytes> in = inputs_of(v);
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_map(p, t_square, in.data(), in.size(), 1, kLong, &r), 0) << mproc_last_error();
    mproc_async_result_destroy(r);
  }
  // a worker killed while idle is replaced silently
  int64_t x = 0;
  void *out = nullptr;
  size_t len = 0;
  ASSERT_EQ(mproc_pool_apply(p, t_pid, &x, sizeof x, kLong, &out, &len), 0);
  int64_t pid = as_i64(out);
  mproc_free(out);
#ifdef _WIN32
  HANDLE h = OpenProcess(PROCESS_TERMINATE, FALSE, (DWORD)pid);
  ASSERT_NE(h, nullptr);
  TerminateProcess(h, 9);
  CloseHandle(h);
#else
  ASSERT_EQ(kill((pid_t)pid, SIGKILL), 0);
#endif
  std::vector<int64_t> v(100, 2);
  std::vector<mproc_bytes> in = inputs_of(v);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(p, t_square, in.data(), in.size(), 1, kLong, &r), 0) << mproc_last_error();
  mproc_async_result_destroy(r);
  finish(p);
}

// Quick tasks go to a worker many at a time (a window of them in flight): a death among them fails the
// task it was running and no other; those sent after it run on another worker or its replacement.
TEST_P(Pool, ADeathAmongManyQuickTasksInFlightFailsOnlyItsTask) {
  if (threads()) GTEST_SKIP() << "a thread worker cannot die alone";
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    const int n = 400, bad = 150 + round * 40;
    std::vector<mproc_async_result *> rs(n, nullptr);
    for (int i = 0; i < n; ++i) {
      char c = i == bad ? 'a' : 'k';
      ASSERT_EQ(mproc_pool_apply_async(p, t_misbehave, &c, 1, nullptr, &rs[i]), 0) << mproc_last_error();
    }
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(mproc_async_result_get(rs[i], kLong), i == bad ? MPROC_EWORKERDIED : 0) << "task " << i;
      mproc_async_result_destroy(rs[i]);
    }
  }
  finish(p);
}

// A callback that holds the result thread until the worker that ran its task (t_pid) has ended.
struct HeldUntilEnd {
  bool ended = false;
};
void cb_until_worker_ends(void *user, mproc_async_result *r) {
  const void *d = nullptr;
  size_t len = 0;
  int64_t pid = 0;
  if (mproc_async_result_item(r, 0, &d, &len) != 0 || len != sizeof pid) return;
  memcpy(&pid, d, sizeof pid);
  mproc_test::Watch w(pid);
  static_cast<HeldUntilEnd *>(user)->ended = w.ended((int)kLong);
}

// A reply the worker wrote before it died counts, though the pool took it only after the death: the
// result thread is held in a callback while the worker runs the next task (its reply written) and dies
// running the one after it.
TEST_P(Pool, AReplyWrittenBeforeTheWorkerDiedCountsThoughThePoolTookItAfter) {
  if (threads()) GTEST_SKIP() << "a thread worker cannot die alone";
  NEED_WATCHES();
  mproc_pool *p = make(1);
  ASSERT_NE(p, nullptr);
  HeldUntilEnd held;
  mproc_async_opts o{};
  o.callback = cb_until_worker_ends;
  o.user = &held;
  mproc_async_result *r[3] = {nullptr, nullptr, nullptr};
  const char k = 'k', a = 'a';
  ASSERT_EQ(mproc_pool_apply_async(p, t_pid, nullptr, 0, &o, &r[0]), 0) << mproc_last_error();
  ASSERT_EQ(mproc_pool_apply_async(p, t_misbehave, &k, 1, nullptr, &r[1]), 0) << mproc_last_error();
  ASSERT_EQ(mproc_pool_apply_async(p, t_misbehave, &a, 1, nullptr, &r[2]), 0) << mproc_last_error();
  EXPECT_EQ(mproc_async_result_get(r[0], kLong), 0) << mproc_last_error();
  EXPECT_TRUE(held.ended) << "the worker did not end while the callback held the result thread";
  EXPECT_EQ(mproc_async_result_get(r[1], kLong), 0) << mproc_last_error();
  const void *d = nullptr;
  size_t len = 0;
  EXPECT_EQ(mproc_async_result_item(r[1], 0, &d, &len), 0);
  EXPECT_EQ(std::string((const char *)d, len), "k");
  EXPECT_EQ(mproc_async_result_get(r[2], kLong), MPROC_EWORKERDIED);
  for (auto *x : r) mproc_async_result_destroy(x);
  finish(p);
}

TEST_P(Pool, ATaskThatRunsTooLongFailsWithTimeoutAndThePoolGoesOn) {
  if (threads()) {
    mproc_pool_opts o{};
    o.threads = true;
    o.task_timeout_ms = 100;
    mproc_pool *p = nullptr;
    EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_EINVAL); // a thread cannot be killed
    return;
  }
  mproc_pool_opts o{};
  o.task_timeout_ms = 200;
  mproc_pool *p = make(1, o);
  ASSERT_NE(p, nullptr);
  char s = 's';
  void *out = nullptr;
  size_t len = 0;
  EXPECT_EQ(mproc_pool_apply(p, t_misbehave, &s, 1, kLong, &out, &len), MPROC_ETIMEDOUT);
  EXPECT_NE(std::string(mproc_last_error()).find("ran out of its time"), std::string::npos) << mproc_last_error();
  char k = 'k';
  ASSERT_EQ(mproc_pool_apply(p, t_misbehave, &k, 1, kLong, &out, &len), 0) << mproc_last_error();
  mproc_free(out);
  finish(p);
}

TEST_P(Pool, CloseRefusesWorkTerminateFailsWhatIsLeft) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  int64_t x = 3;
  mproc_async_result *r = nullptr;
  void *out = nullptr;
  size_t len = 0;
  EXPECT_EQ(mproc_pool_join(p, 0), MPROC_ESTATE); // before close
  ASSERT_EQ(mproc_pool_apply_async(p, t_square, &x, sizeof x, nullptr, &r), 0);
  ASSERT_EQ(mproc_pool_close(p), 0);
  EXPECT_EQ(mproc_pool_apply(p, t_square, &x, sizeof x, kLong, &out, &len), MPROC_ESTATE);
  EXPECT_EQ(mproc_pool_join(p, kLong), 0); // the work submitted before close is done
  EXPECT_EQ(mproc_async_result_get(r, 0), 0);
  mproc_async_result_destroy(r);
  mproc_pool_destroy(p);

  if (!threads()) { // terminate while tasks run: they fail, nothing is left running
    p = make(2);
    ASSERT_NE(p, nullptr);
    std::vector<char> sleepy(6, 's');
    std::vector<mproc_bytes> in;
    for (char &c : sleepy) in.push_back({&c, 1});
    ASSERT_EQ(mproc_pool_map_async(p, t_misbehave, in.data(), in.size(), nullptr, &r), 0);
    ASSERT_EQ(mproc_pool_terminate(p), 0);
    EXPECT_EQ(mproc_async_result_get(r, kLong), MPROC_ECLOSED);
    EXPECT_EQ(mproc_pool_join(p, kLong), 0);
    mproc_pool_destroy(p);
    mproc_async_result_destroy(r); // a result outlives its pool
  }
  // destroying an open pool terminates it
  p = make(1);
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(mproc_pool_apply_async(p, t_square, &x, sizeof x, nullptr, &r), 0);
  mproc_pool_destroy(p);
  int rc = mproc_async_result_get(r, kLong);
  EXPECT_TRUE(rc == 0 || rc == MPROC_ECLOSED) << rc;
  mproc_async_result_destroy(r);
}

// A gate for t_gate: shut until lift() (and at destruction).
struct Gate {
  mproc_shared_memory *m = nullptr;
  std::string name;
  Gate() {
    static int n = 0;
    name = "mproc-test-gate-" + std::to_string(mproc_getpid()) + "-" + std::to_string(++n);
    EXPECT_EQ(mproc_shared_memory_create(&m, name.c_str(), 64, false), 0) << mproc_last_error();
  }
  void lift() { ((std::atomic<uint32_t> *)mproc_shared_memory_buf(m))->store(1); }
  ~Gate() {
    lift();
    mproc_shared_memory_unlink(m);
    mproc_shared_memory_destroy(m);
  }
};

std::atomic<int> g_cancelled_callbacks{0};
void count_cancelled(void *, mproc_async_result *r) {
  if (mproc_async_result_get(r, 0) == MPROC_ECANCELED) ++g_cancelled_callbacks;
}

std::atomic<int> g_callback_done{0};
void slow_callback(void *, mproc_async_result *r) {
  // its own calls on r do not wait for it to end
  EXPECT_TRUE(mproc_async_result_ready(r));
  EXPECT_EQ(mproc_async_result_get(r, 0), 0);
  for (int i = 0; i < 2000; ++i) std::this_thread::yield(); // some work: get() in the caller waits for it
  ++g_callback_done;
}

// As in CPython, get(), wait() and ready() see a result once its callback has run (the seed notes print
// from the callback, then after get())
TEST_P(Pool, GetReturnsOnceTheCallbackHasRun) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  mproc_async_opts cb{};
  cb.callback = slow_callback;
  for (int round = 0; round < 20; ++round) {
    g_callback_done = 0;
    mproc_async_result *r = nullptr;
    int64_t x = round;
    ASSERT_EQ(mproc_pool_apply_async(p, t_square, &x, sizeof x, &cb, &r), 0);
    ASSERT_EQ(mproc_async_result_get(r, kLong), 0) << mproc_last_error();
    EXPECT_EQ(g_callback_done.load(), 1) << "round " << round;
    EXPECT_TRUE(mproc_async_result_ready(r));
    mproc_async_result_destroy(r);
  }
  finish(p);
}

// cancel: what no worker has yet is dropped and fails at once; what a worker has runs on
TEST_P(Pool, CancelDropsTasksNoWorkerHasAndFailsTheResult) {
  mproc_pool *p = make(1);
  ASSERT_NE(p, nullptr);
  Gate gate;
  g_cancelled_callbacks = 0;
  mproc_async_opts cb{};
  cb.error_callback = count_cancelled;
  mproc_async_result *a = nullptr, *b = nullptr, *c = nullptr, *d = nullptr;
  // a runs (held by the gate), b is given to the worker ahead of it, c and d wait in the pool
  ASSERT_EQ(mproc_pool_apply_async(p, t_gate, gate.name.data(), gate.name.size(), nullptr, &a), 0);
  ASSERT_EQ(mproc_pool_apply_async(p, t_echo, "b", 1, nullptr, &b), 0);
  ASSERT_EQ(mproc_pool_apply_async(p, t_echo, "c", 1, &cb, &c), 0);
  std::vector<int64_t> v(10, 4);
  std::vector<mproc_bytes> in = inputs_of(v);
  cb.chunksize = 1;
  ASSERT_EQ(mproc_pool_map_async(p, t_square, in.data(), in.size(), &cb, &d), 0);
  EXPECT_EQ(mproc_async_result_cancel(c), 0) << mproc_last_error();
  EXPECT_EQ(mproc_async_result_get(c, kLong), MPROC_ECANCELED); // once its error callback has run
  EXPECT_TRUE(mproc_async_result_ready(c));
  EXPECT_EQ(mproc_async_result_cancel(c), MPROC_ESTATE); // ready already
  EXPECT_EQ(mproc_async_result_cancel(b), MPROC_ESTATE); // its worker has it
  EXPECT_EQ(mproc_async_result_cancel(a), MPROC_ESTATE); // running
  EXPECT_EQ(mproc_async_result_cancel(d), 0) << mproc_last_error();
  EXPECT_EQ(mproc_async_result_get(d, kLong), MPROC_ECANCELED);
  EXPECT_FALSE(mproc_async_result_ready(a));
  gate.lift();
  EXPECT_EQ(mproc_async_result_get(a, kLong), 0) << mproc_last_error();
  EXPECT_EQ(mproc_async_result_get(b, kLong), 0) << mproc_last_error();
  const void *data = nullptr;
  size_t len = 0;
  ASSERT_EQ(mproc_async_result_item(b, 0, &data, &len), 0);
  EXPECT_EQ(std::string((const char *)data, len), "b");
  // the pool still serves, and the cancelled results' error callbacks ran on the result thread
  int64_t x = 5;
  void *out = nullptr;
  ASSERT_EQ(mproc_pool_apply(p, t_square, &x, sizeof x, kLong, &out, &len), 0);
  EXPECT_EQ(as_i64(out), 25);
  mproc_free(out);
  finish(p); // join: every callback has run
  EXPECT_EQ(g_cancelled_callbacks.load(), 2);
  EXPECT_EQ(mproc_async_result_cancel(a), MPROC_ESTATE);
  for (mproc_async_result *r : {a, b, c, d}) mproc_async_result_destroy(r);
}

// mproc_wait on results: first completed, and imap item by item, without polling
TEST_P(Pool, ResultsAreWaitableWithMprocWait) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  Gate gate;
  mproc_async_result *slow = nullptr, *fast = nullptr;
  ASSERT_EQ(mproc_pool_apply_async(p, t_gate, gate.name.data(), gate.name.size(), nullptr, &slow), 0);
  ASSERT_EQ(mproc_pool_apply_async(p, t_echo, "f", 1, nullptr, &fast), 0);
  mproc_waitable w[2] = {mproc_waitable_result(slow), mproc_waitable_result(fast)};
  size_t n = 0;
  ASSERT_EQ(mproc_wait(w, 2, kLong, &n), 0) << mproc_last_error();
  EXPECT_EQ(n, 1u);
  EXPECT_FALSE(w[0].ready);
  EXPECT_TRUE(w[1].ready);
  EXPECT_EQ(mproc_wait(w, 1, 0, &n), MPROC_ETIMEDOUT); // the slow one is held by the gate
  gate.lift();
  ASSERT_EQ(mproc_wait(w, 1, kLong, &n), 0) << mproc_last_error();
  EXPECT_TRUE(w[0].ready);
  EXPECT_EQ(mproc_async_result_get(slow, 0), 0);
  // imap: ready whenever next() would not wait, to the end
  std::vector<int64_t> v = {1, 2, 3, 4, 5};
  std::vector<mproc_bytes> in = inputs_of(v);
  mproc_async_result *it = nullptr;
  ASSERT_EQ(mproc_pool_imap(p, t_square, in.data(), in.size(), 1, false, &it), 0);
  std::set<int64_t> got;
  for (int rounds = 0; rounds < 20; ++rounds) {
    mproc_waitable wi = mproc_waitable_result(it);
    ASSERT_EQ(mproc_wait(&wi, 1, kLong, &n), 0) << mproc_last_error();
    const void *data = nullptr;
    size_t len = 0;
    int rc = mproc_async_result_next(it, 0, &data, &len, nullptr);
    if (rc == MPROC_EEOF) break;
    ASSERT_EQ(rc, 0) << "ready, yet next() would wait: " << mproc_last_error();
    got.insert(as_i64(data));
  }
  EXPECT_EQ(got, (std::set<int64_t>{1, 4, 9, 16, 25}));
  for (mproc_async_result *r : {slow, fast, it}) mproc_async_result_destroy(r);
  finish(p);
}

// starmap: several arguments per task, packed into one input and read back with mproc_task_args
TEST_P(Pool, StarmapPassesSeveralArgumentsPerTask) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  const size_t n = 100;
  std::vector<int64_t> xs(n), ys(n);
  std::vector<mproc_bytes> args;
  for (size_t i = 0; i < n; ++i) {
    xs[i] = (int64_t)i;
    ys[i] = (int64_t)(1000 * i);
    args.push_back({&xs[i], 8});
    args.push_back({&ys[i], 8});
  }
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_starmap(p, t_add, args.data(), 2, n, 7, kLong, &r), 0) << mproc_last_error();
  for (size_t i = 0; i < n; ++i) {
    const void *data = nullptr;
    size_t len = 0;
    ASSERT_EQ(mproc_async_result_item(r, i, &data, &len), 0);
    EXPECT_EQ(as_i64(data), (int64_t)(1001 * i));
  }
  mproc_async_result_destroy(r);
  // no arguments at all is a row too
  ASSERT_EQ(mproc_pool_starmap(p, t_count_args, nullptr, 0, 3, 0, kLong, &r), 0) << mproc_last_error();
  const void *data = nullptr;
  size_t len = 0;
  ASSERT_EQ(mproc_async_result_item(r, 2, &data, &len), 0);
  EXPECT_EQ(as_i64(data), 0);
  mproc_async_result_destroy(r);
  // a row whose arguments do not fit the task's reading fails that task, with its message
  mproc_bytes three[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
  EXPECT_EQ(mproc_pool_starmap(p, t_add, three, 3, 1, 0, kLong, &r), MPROC_ETASK);
  EXPECT_NE(std::string(mproc_last_error()).find("want two 8-byte arguments, got 3"), std::string::npos)
      << mproc_last_error();
  EXPECT_EQ(r, nullptr);
  finish(p);
}

// A lazy input: `total` inputs of `size` bytes, the first 8 its index; it counts how far it ran ahead of
// what the test has read.
struct LazyInput {
  size_t total = 0, size = 0, taken = 0, read = 0, most_ahead = 0;
  int fail_at = -1; // an index where the input fails (MPROC_EINVAL)
  std::vector<unsigned char> buf;
  static int next(void *user, mproc_bytes *item) {
    LazyInput *in = (LazyInput *)user;
    if (in->taken == in->total) return 0;
    if ((int)in->taken == in->fail_at) return fail_input();
    int64_t i = (int64_t)in->taken++;
    std::memcpy(in->buf.data(), &i, sizeof i);
    in->most_ahead = std::max(in->most_ahead, in->taken - in->read);
    item->data = in->buf.data();
    item->len = in->size;
    return 1;
  }
  // an error with a message, as from a call that failed: MPROC_EINVAL, "out is NULL"
  static int fail_input() { return mproc_pool_create(nullptr, nullptr); }
};

int t_first8(const void *in, size_t len, mproc_task *t) {
  if (len < 8) return mproc_task_fail(t, "short input");
  return mproc_task_return(t, in, 8);
}

// imap over a lazy input larger than memory would allow eagerly (GiBs of inputs): at most `window`
// inputs are ever taken ahead of what was read, in both orders
TEST_P(Pool, ImapLazyTakesInputsAsTheyAreReadWithinTheWindow) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  for (bool ordered : {true, false}) {
    SCOPED_TRACE(ordered);
    LazyInput in;
    // x 16 KiB: 1.6 GB eagerly on Linux; wine moves big messages at a few MB/s
    in.total = kWindows ? 2000 : mproc_test::kSanitizer ? 20000 : 100000;
    in.size = 16 << 10;
    in.buf.assign(in.size, 7);
    const size_t window = 256, chunk = 16;
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_imap_lazy(p, t_first8, LazyInput::next, &in, chunk, window, ordered, &r), 0)
        << mproc_last_error();
    EXPECT_EQ(in.taken, window); // the first window, at once
    std::vector<bool> seen(in.total);
    size_t expect = 0;
    for (;;) {
      const void *data = nullptr;
      size_t len = 0, index = 0;
      int rc = mproc_async_result_next(r, kLong, &data, &len, &index);
      if (rc == MPROC_EEOF) break;
      ASSERT_EQ(rc, 0) << mproc_last_error();
      ASSERT_EQ(len, 8u);
      ASSERT_EQ(as_i64(data), (int64_t)index);
      ASSERT_LT(index, in.total);
      ASSERT_FALSE(seen[index]) << index;
      seen[index] = true;
      if (ordered) {
        ASSERT_EQ(index, expect++);
      }
      ++in.read;
    }
    EXPECT_EQ(in.read, in.total);
    EXPECT_LE(in.most_ahead, window + 1); // +1: the item handed out last is let go at the next call
    EXPECT_EQ(mproc_async_result_count(r), in.total);
    EXPECT_TRUE(mproc_async_result_ready(r));
    const void *data = nullptr;
    size_t len = 0;
    EXPECT_EQ(mproc_async_result_item(r, 0, &data, &len), MPROC_EINVAL); // read with next()
    mproc_async_result_destroy(r);
  }
  finish(p);
}

TEST_P(Pool, ImapLazyInputFailureAndCloseEndTheIteration) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  LazyInput in;
  in.total = 1000;
  in.size = 8;
  in.buf.assign(8, 0);
  in.fail_at = 100;
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_imap_lazy(p, t_first8, LazyInput::next, &in, 4, 32, true, &r), 0) << mproc_last_error();
  int rc = 0;
  size_t got = 0;
  for (;;) {
    const void *data = nullptr;
    size_t len = 0;
    rc = mproc_async_result_next(r, kLong, &data, &len, nullptr);
    if (rc) break;
    ++got;
  }
  EXPECT_EQ(rc, MPROC_EINVAL);
  EXPECT_NE(std::string(mproc_last_error()).find("the input failed"), std::string::npos) << mproc_last_error();
  EXPECT_LE(got, 100u);
  mproc_async_result_destroy(r);
  // an input the pool outlives no more: closing it ends the iteration with MPROC_ECLOSED
  LazyInput more;
  more.total = 1000;
  more.size = 8;
  more.buf.assign(8, 0);
  ASSERT_EQ(mproc_pool_imap_lazy(p, t_first8, LazyInput::next, &more, 1, 8, false, &r), 0);
  EXPECT_EQ(mproc_pool_close(p), 0);
  for (;;) {
    const void *data = nullptr;
    size_t len = 0;
    rc = mproc_async_result_next(r, kLong, &data, &len, nullptr);
    if (rc) break;
  }
  EXPECT_EQ(rc, MPROC_ECLOSED) << mproc_last_error();
  EXPECT_LT(more.taken, more.total);
  mproc_async_result_destroy(r);
  EXPECT_EQ(mproc_pool_join(p, kLong), 0);
  mproc_pool_destroy(p);
  EXPECT_EQ(mproc_pool_imap_lazy(nullptr, t_first8, LazyInput::next, &more, 1, 8, false, &r), MPROC_EINVAL);
}

// ---- the array path (issue 12, item 4) ------------------------------------------------------------------

// A record of the array tests: op 0 squares x; 1 fails the task; 2 aborts; 3 loops until its worker is
// killed; 4 waits on the gate named in `gate`; 5 returns 5 with no message; 6 sets a message but succeeds.
struct Rec {
  int64_t op, x;
  char gate[48];
};

int r_square(const void *in, void *out, mproc_task *) {
  int64_t x = as_i64(in), o[2] = {x, x * x};
  std::memcpy(out, o, sizeof o);
  return 0;
}

int r_misbehave(const void *in, void *out, mproc_task *t) {
  Rec r;
  std::memcpy(&r, in, sizeof r);
  if (r.op == 1) return mproc_task_fail(t, "record %lld says no", (long long)r.x);
  if (r.op == 2) abort();
  if (r.op == 3)
    for (;;) std::this_thread::sleep_for(std::chrono::milliseconds(10)); // killed for its time
  if (r.op == 4 && t_gate(r.gate, std::strlen(r.gate), t) != 0) return MPROC_ETASK;
  if (r.op == 5) return 5;
  if (r.op == 6) mproc_task_fail(t, "a message nobody reads");
  std::atomic_ref<int64_t>(*(int64_t *)out).store(r.x); // (a test reads it while the map runs)
  return 0;
}

std::vector<Rec> recs(size_t n) {
  std::vector<Rec> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = Rec{0, (int64_t)i * 3 + 1, {0}};
  return v;
}

mproc_array_map array_of(std::vector<Rec> &in, std::vector<int64_t> &out) {
  out.assign(in.size(), -7);
  return mproc_array_map{in.data(), sizeof(Rec), out.data(), sizeof(int64_t), in.size()};
}

// A function per chunk: each output record is {x, x * x, the number of records of its chunk}.
int c_square(const void *in, void *out, size_t count, mproc_task *) {
  for (size_t i = 0; i < count; ++i) {
    int64_t x = as_i64((const char *)in + i * 8), o[3] = {x, x * x, (int64_t)count};
    std::memcpy((char *)out + i * sizeof o, o, sizeof o);
  }
  return 0;
}

// r_misbehave over a chunk, stopping at the first record that fails.
int c_misbehave(const void *in, void *out, size_t count, mproc_task *t) {
  for (size_t i = 0; i < count; ++i)
    if (int st = r_misbehave((const char *)in + i * sizeof(Rec), (char *)out + i * sizeof(int64_t), t)) return st;
  return 0;
}

TEST_P(Pool, MapArrayComputesEveryRecordForEveryChunksize) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  // sizes that grow and shrink: the pool's arenas are reused and replaced
  for (size_t n : {size_t(10000), size_t(0), size_t(1), size_t(100000), size_t(37)}) {
    std::vector<int64_t> in(n);
    for (size_t i = 0; i < n; ++i) in[i] = (int64_t)i - 500;
    for (size_t chunk : {size_t(1), size_t(0), size_t(7), n + 5, SIZE_MAX}) { // SIZE_MAX: one chunk, no wrap
      SCOPED_TRACE(std::to_string(n) + " records, chunksize " + std::to_string(chunk));
      std::vector<int64_t> out(2 * n, -1);
      mproc_array_map m{in.data(), sizeof(int64_t), out.data(), 2 * sizeof(int64_t), n};
      ASSERT_EQ(mproc_pool_map_array(p, r_square, &m, chunk, kLong), 0) << mproc_last_error();
      for (size_t i = 0; i < n; ++i)
        ASSERT_TRUE(out[2 * i] == in[i] && out[2 * i + 1] == in[i] * in[i]) << "record " << i;
      // a function per chunk (c_square): called once per chunk, with the chunk's records
      size_t parts = 4 * mproc_pool_size(p), c = chunk ? chunk : (n + parts - 1) / parts; // the default: as Python
      std::vector<int64_t> out3(3 * n, -1);
      mproc_array_map m3{in.data(), sizeof(int64_t), out3.data(), 3 * sizeof(int64_t), n};
      ASSERT_EQ(mproc_pool_map_array_chunks(p, c_square, &m3, chunk, kLong), 0) << mproc_last_error();
      for (size_t i = 0; i < n; ++i) {
        size_t first = i / c * c, count = std::min(c, n - first); // record i's chunk
        ASSERT_TRUE(out3[3 * i] == in[i] && out3[3 * i + 1] == in[i] * in[i]) << "record " << i;
        ASSERT_EQ(out3[3 * i + 2], (int64_t)count) << "record " << i << ": its chunk's count";
      }
    }
  }
  // async, with a callback; its items point at the output records
  std::vector<int64_t> in(1000), out(2000, -1);
  for (size_t i = 0; i < in.size(); ++i) in[i] = (int64_t)i;
  mproc_array_map m{in.data(), sizeof(int64_t), out.data(), 2 * sizeof(int64_t), in.size()};
  g_callback_done = 0;
  mproc_async_opts cb{};
  cb.callback = slow_callback;
  cb.chunksize = 3;
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map_array_async(p, r_square, &m, &cb, &r), 0) << mproc_last_error();
  ASSERT_EQ(mproc_async_result_get(r, kLong), 0) << mproc_last_error();
  EXPECT_EQ(g_callback_done.load(), 1);
  ASSERT_EQ(mproc_async_result_count(r), in.size());
  const void *item = nullptr;
  size_t len = 0;
  ASSERT_EQ(mproc_async_result_item(r, 999, &item, &len), 0);
  EXPECT_EQ(item, (const void *)&out[1998]);
  EXPECT_EQ(len, 2 * sizeof(int64_t));
  EXPECT_EQ(out[1999], 999 * 999);
  mproc_async_result_destroy(r);
  finish(p);
}

// Inputs and outputs in the pool's own blocks: used in place (nothing copied), in any combination
TEST_P(Pool, MapArrayInThePoolsBlocksWorksInPlace) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  const size_t n = 20000;
  void *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pool_array_alloc(p, n * 8 + 4096, &a), 0) << mproc_last_error();
  ASSERT_EQ(mproc_pool_array_alloc(p, 2 * n * 8, &b), 0) << mproc_last_error();
  auto *in = (int64_t *)(void *)((char *)a + 4096); // inside the block, not at its start
  for (size_t i = 0; i < n; ++i) in[i] = (int64_t)i * 5 - 3;
  std::vector<int64_t> heap_in(in, in + n), heap_out(2 * n);
  auto *out = (int64_t *)b;
  struct Case {
    const void *in;
    void *out;
  } cases[] = {{in, out}, {in, heap_out.data()}, {heap_in.data(), out}};
  for (const Case &c : cases) {
    std::fill(out, out + 2 * n, -1);
    std::fill(heap_out.begin(), heap_out.end(), -1);
    mproc_array_map m{c.in, 8, c.out, 16, n};
    ASSERT_EQ(mproc_pool_map_array(p, r_square, &m, 0, kLong), 0) << mproc_last_error();
    const int64_t *o = (const int64_t *)c.out;
    for (size_t i = 0; i < n; ++i) ASSERT_TRUE(o[2 * i] == in[i] && o[2 * i + 1] == in[i] * in[i]) << "record " << i;
  }
  { // in place: a record's output is there while the map still runs (record 1 waits on a gate)
    Gate gate;
    void *g = nullptr;
    ASSERT_EQ(mproc_pool_array_alloc(p, 2 * sizeof(Rec), &g), 0);
    Rec *gr = (Rec *)g;
    gr[0] = Rec{0, 41, {0}};
    gr[1] = Rec{4, 42, {0}};
    std::snprintf(gr[1].gate, sizeof gr[1].gate, "%s", gate.name.c_str());
    out[0] = out[1] = -1;
    mproc_array_map gm{g, sizeof(Rec), out, 8, 2};
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_map_array_async(p, r_misbehave, &gm, nullptr, &r), 0);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::atomic_ref<int64_t> first(out[0]);
    while (first.load() != 41 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    EXPECT_EQ(first.load(), 41) << "written in place before the map ended";
    EXPECT_FALSE(mproc_async_result_ready(r));
    gate.lift();
    EXPECT_EQ(mproc_async_result_get(r, kLong), 0) << mproc_last_error();
    EXPECT_EQ(out[1], 42);
    mproc_async_result_destroy(r);
    mproc_pool_array_free(p, g);
  }
  // in place, a failed map may have written some records; the block is given back while a map runs
  std::vector<Rec> recs_in = recs(3000);
  void *c = nullptr;
  ASSERT_EQ(mproc_pool_array_alloc(p, recs_in.size() * sizeof(Rec), &c), 0);
  std::memcpy(c, recs_in.data(), recs_in.size() * sizeof(Rec));
  ((Rec *)c)[2999].op = 1;
  mproc_array_map m{c, sizeof(Rec), out, 8, recs_in.size()};
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map_array_async(p, r_misbehave, &m, nullptr, &r), 0);
  mproc_pool_array_free(p, c); // kept until the map ends
  EXPECT_EQ(mproc_async_result_get(r, kLong), MPROC_ETASK);
  mproc_async_result_destroy(r);
  mproc_pool_array_free(p, a);
  mproc_pool_array_free(p, b);
  mproc_pool_array_free(p, b); // no longer a block: ignored
  mproc_pool_array_free(p, nullptr);
  void *z = nullptr;
  EXPECT_EQ(mproc_pool_array_alloc(p, 0, &z), MPROC_EINVAL);
  finish(p);
}

// A function per chunk, in place and async with a callback: as a function per record
TEST_P(Pool, MapArrayChunksInPlaceWithACallback) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  const size_t n = 5000;
  void *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pool_array_alloc(p, n * 8, &a), 0) << mproc_last_error();
  ASSERT_EQ(mproc_pool_array_alloc(p, n * 24, &b), 0) << mproc_last_error();
  for (size_t i = 0; i < n; ++i) ((int64_t *)a)[i] = (int64_t)i;
  mproc_array_map m{a, 8, b, 24, n};
  g_callback_done = 0;
  mproc_async_opts cb{};
  cb.callback = slow_callback;
  cb.chunksize = 100;
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map_array_chunks_async(p, c_square, &m, &cb, &r), 0) << mproc_last_error();
  ASSERT_EQ(mproc_async_result_get(r, kLong), 0) << mproc_last_error();
  EXPECT_EQ(g_callback_done.load(), 1);
  const void *item = nullptr;
  size_t len = 0;
  ASSERT_EQ(mproc_async_result_item(r, n - 1, &item, &len), 0);
  EXPECT_EQ(item, (const void *)((char *)b + (n - 1) * 24));
  EXPECT_EQ(((const int64_t *)item)[1], (int64_t)((n - 1) * (n - 1)));
  EXPECT_EQ(((const int64_t *)item)[2], 100);
  mproc_async_result_destroy(r);
  mproc_pool_array_free(p, a);
  mproc_pool_array_free(p, b);
  finish(p);
}

// The array map of the failure tests: a function per record, or per chunk (c_misbehave).
int map_misbehaving(mproc_pool *p, bool chunks, const mproc_array_map &m, size_t chunksize) {
  return chunks ? mproc_pool_map_array_chunks(p, c_misbehave, &m, chunksize, kLong)
                : mproc_pool_map_array(p, r_misbehave, &m, chunksize, kLong);
}

TEST_P(Pool, MapArrayFailsAsAWholeAndLeavesTheOutputUntouched) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  for (bool chunks : {false, true}) {
    SCOPED_TRACE(chunks ? "a function per chunk" : "a function per record");
    std::vector<Rec> in = recs(5000);
    in[4321].op = 1;
    std::vector<int64_t> out;
    mproc_array_map m = array_of(in, out);
    EXPECT_EQ(map_misbehaving(p, chunks, m, 16), MPROC_ETASK);
    std::string want = chunks ? "records 4320 to 4335: " : "record 4321: "; // the chunk, or the record
    EXPECT_NE(std::string(mproc_last_error()).find(want + "record 12964 says no"), std::string::npos)
        << mproc_last_error();
    EXPECT_EQ(std::count(out.begin(), out.end(), -7), (long)out.size()) << "a failed map writes nothing";
    EXPECT_EQ(map_misbehaving(p, chunks, m, 1), MPROC_ETASK); // a chunk of one names its record
    EXPECT_NE(std::string(mproc_last_error()).find("record 4321: record 12964 says no"), std::string::npos)
        << mproc_last_error();
    in[4321].op = 0; // the pool still serves
    ASSERT_EQ(map_misbehaving(p, chunks, m, 0), 0) << mproc_last_error();
    EXPECT_EQ(out[4321], 4321 * 3 + 1);
  }
  finish(p);
}

// A failure without a message says what the function returned; a message set by a call that succeeded
// names nothing (one worker: the records run in order, in one claim after another).
TEST_P(Pool, MapArrayAFailureWithoutAMessageSaysWhatTheFunctionReturned) {
  mproc_pool *p = make(1);
  ASSERT_NE(p, nullptr);
  std::vector<Rec> in = recs(100);
  in[10].op = 6;
  in[20].op = 5;
  std::vector<int64_t> out;
  mproc_array_map m = array_of(in, out);
  EXPECT_EQ(map_misbehaving(p, false, m, 0), MPROC_ETASK);
  EXPECT_NE(std::string(mproc_last_error()).find("record 20: the task returned 5"), std::string::npos)
      << mproc_last_error();
  EXPECT_EQ(map_misbehaving(p, true, m, 5), MPROC_ETASK);
  EXPECT_NE(std::string(mproc_last_error()).find("records 20 to 24: the task returned 5"), std::string::npos)
      << mproc_last_error();
  in[20].op = 0;
  ASSERT_EQ(map_misbehaving(p, true, m, 5), 0) << mproc_last_error();
  finish(p);
}

TEST_P(Pool, MapArrayWorkerDeathAndTimeoutFailTheMapAndThePoolGoesOn) {
  if (threads()) GTEST_SKIP() << "a thread worker cannot die alone, nor be ended for its time";
  mproc_pool_opts o{};
  o.task_timeout_ms = 300;
  mproc_pool *p = make(2, o);
  ASSERT_NE(p, nullptr);
  for (bool chunks : {false, true})
    for (int op : {2, 3}) {
      SCOPED_TRACE(std::string(chunks ? "per chunk, op " : "per record, op ") + std::to_string(op));
      std::vector<Rec> in = recs(3000);
      in[1234].op = op;
      std::vector<int64_t> out;
      mproc_array_map m = array_of(in, out);
      EXPECT_EQ(map_misbehaving(p, chunks, m, 10), op == 2 ? MPROC_EWORKERDIED : MPROC_ETIMEDOUT);
      std::string msg = mproc_last_error();
      EXPECT_NE(msg.find(op == 2 ? "the worker running the task" : "ran out of its time"), std::string::npos) << msg;
      EXPECT_NE(msg.find("(in the chunk from record 1230)"), std::string::npos) << msg; // chunks of 10
      in[1234].op = 0;
      ASSERT_EQ(map_misbehaving(p, chunks, m, 1), 0) << mproc_last_error();
      EXPECT_EQ(out[2999], 2999 * 3 + 1);
    }
  finish(p);
}

TEST_P(Pool, MapArrayNotWaitedForNeverWritesAndTerminateFailsIt) {
  if (threads()) GTEST_SKIP() << "a thread worker blocked in a record cannot be terminated";
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  std::vector<int64_t> out;
  {
    Gate gate;
    std::vector<Rec> in = recs(200);
    in[0].op = 4;
    std::snprintf(in[0].gate, sizeof in[0].gate, "%s", gate.name.c_str());
    mproc_array_map m = array_of(in, out);
    EXPECT_EQ(mproc_pool_map_array(p, r_misbehave, &m, 1, 0), MPROC_ETIMEDOUT);
    gate.lift();
    // the map ends once the gate is open; its result was dropped, so nothing is copied to `out`
    std::vector<int64_t> out2;
    std::vector<Rec> in2 = recs(10);
    mproc_array_map m2 = array_of(in2, out2);
    ASSERT_EQ(mproc_pool_map_array(p, r_misbehave, &m2, 1, kLong), 0) << mproc_last_error();
  }
  EXPECT_EQ(std::count(out.begin(), out.end(), -7), (long)out.size());
  Gate gate;
  std::vector<Rec> in = recs(200);
  in[0].op = in[1].op = 4;
  std::snprintf(in[0].gate, sizeof in[0].gate, "%s", gate.name.c_str());
  std::snprintf(in[1].gate, sizeof in[1].gate, "%s", gate.name.c_str());
  mproc_array_map m = array_of(in, out);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map_array_async(p, r_misbehave, &m, nullptr, &r), 0) << mproc_last_error();
  EXPECT_EQ(mproc_pool_terminate(p), 0);
  EXPECT_EQ(mproc_async_result_get(r, kLong), MPROC_ECLOSED);
  mproc_async_result_destroy(r);
  EXPECT_EQ(mproc_pool_join(p, kLong), 0);
  mproc_pool_destroy(p);
}

TEST(PoolArgs, MapArrayBadArguments) {
  mproc_pool *p = nullptr;
  ASSERT_EQ(mproc_thread_pool_create(&p, 1), 0);
  int64_t x[2] = {1, 2}, y[4];
  mproc_array_map m{x, 8, y, 16, 2};
  mproc_async_result *r = nullptr;
  EXPECT_EQ(mproc_pool_map_array_async(p, nullptr, &m, nullptr, &r), MPROC_EINVAL);
  EXPECT_EQ(mproc_pool_map_array_async(p, r_square, nullptr, nullptr, &r), MPROC_EINVAL);
  EXPECT_EQ(mproc_pool_map_array_async(p, r_square, &m, nullptr, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_pool_map_array_chunks_async(p, nullptr, &m, nullptr, &r), MPROC_EINVAL);
  EXPECT_EQ(mproc_pool_map_array_chunks_async(p, c_square, nullptr, nullptr, &r), MPROC_EINVAL);
  EXPECT_EQ(mproc_pool_map_array_chunks(p, nullptr, &m, 0, kLong), MPROC_EINVAL);
  mproc_array_map bad = m;
  bad.in_size = 0;
  EXPECT_EQ(mproc_pool_map_array(p, r_square, &bad, 0, kLong), MPROC_EINVAL);
  bad = m;
  bad.out = nullptr;
  EXPECT_EQ(mproc_pool_map_array(p, r_square, &bad, 0, kLong), MPROC_EINVAL);
  bad = m;
  bad.n = SIZE_MAX / 8;
  EXPECT_EQ(mproc_pool_map_array(p, r_square, &bad, 0, kLong), MPROC_EINVAL);
  ASSERT_EQ(mproc_pool_close(p), 0);
  EXPECT_EQ(mproc_pool_map_array(p, r_square, &m, 0, kLong), MPROC_ESTATE);
  EXPECT_EQ(mproc_pool_map_array_chunks(p, c_square, &m, 0, kLong), MPROC_ESTATE);
  mproc_pool_destroy(p);
}

TEST(PoolArgs, TaskArgsRefusesWhatIsNotARowOfArguments) {
  mproc_bytes a[2];
  size_t n = 99;
  EXPECT_EQ(mproc_task_args("abc", 3, a, 2, &n), MPROC_EINVAL);
  EXPECT_EQ(n, 0u);
  unsigned char overrun[16 + 3] = {1, 0, 0, 0, 0, 0, 0, 0, 100};
  EXPECT_EQ(mproc_task_args(overrun, sizeof overrun, a, 2, &n), MPROC_EINVAL);
  unsigned char extra[16 + 3] = {1, 0, 0, 0, 0, 0, 0, 0, 2};
  EXPECT_EQ(mproc_task_args(extra, sizeof extra, a, 2, &n), MPROC_EINVAL); // a byte left over
  EXPECT_EQ(mproc_task_args(extra, 18, a, 2, &n), 0);
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(a[0].len, 2u);
  unsigned char huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
  EXPECT_EQ(mproc_task_args(huge, sizeof huge, a, 2, &n), MPROC_EINVAL);
  EXPECT_EQ(mproc_task_args(nullptr, 0, a, 2, &n), MPROC_EINVAL);
  EXPECT_EQ(mproc_task_args("x", 1, a, 2, nullptr), MPROC_EINVAL);
}

TEST(PoolArgs, BadArgumentsAreErrors) {
  mproc_pool *p = nullptr;
  EXPECT_EQ(mproc_pool_create(nullptr, nullptr), MPROC_EINVAL);
  mproc_pool_opts o{};
  o.task_timeout_ms = -1;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_EINVAL);
  ASSERT_EQ(mproc_thread_pool_create(&p, 1), 0);
  mproc_async_result *r = nullptr;
  EXPECT_EQ(mproc_pool_apply_async(p, nullptr, "x", 1, nullptr, &r), MPROC_EINVAL);
  EXPECT_EQ(mproc_pool_apply_async(p, t_echo, nullptr, 1, nullptr, &r), MPROC_EINVAL);
  mproc_bytes bad = {nullptr, 4};
  EXPECT_EQ(mproc_pool_map_async(p, t_echo, &bad, 1, nullptr, &r), MPROC_EINVAL);
  std::vector<char> fake(64); // heap memory: no module's function
  EXPECT_EQ(mproc_pool_apply_async(p, (mproc_task_fn)(void *)fake.data(), "x", 1, nullptr, &r), MPROC_ENOENT);
  ASSERT_EQ(mproc_pool_apply_async(p, t_echo, "x", 1, nullptr, &r), 0);
  EXPECT_EQ(mproc_async_result_next(r, 0, nullptr, nullptr, nullptr), MPROC_EINVAL);
  ASSERT_EQ(mproc_async_result_get(r, kLong), 0);
  const void *d = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_async_result_item(r, 1, &d, &n), MPROC_EINVAL); // one item: 0 only
  EXPECT_STREQ(mproc_last_error(), "async_result_item: item 1 of 1");
  EXPECT_EQ(mproc_async_result_item(nullptr, 0, &d, &n), MPROC_EINVAL);
  EXPECT_EQ(mproc_async_result_item(r, 0, nullptr, &n), MPROC_EINVAL);
  EXPECT_EQ(mproc_async_result_item(r, 0, &d, nullptr), MPROC_EINVAL);
  ASSERT_EQ(mproc_async_result_item(r, 0, &d, &n), 0);
  EXPECT_EQ(n, 1u);
  mproc_async_result_destroy(r);
  mproc_pool_destroy(p);
  mproc_pool_destroy(nullptr);
  mproc_async_result_destroy(nullptr);
}

#ifdef __linux__
// "q": return it at once; anything else: t_gate's gate name
int t_quick_or_gate(const void *in, size_t len, mproc_task *t) {
  if (len == 1 && *(const char *)in == 'q') return mproc_task_return(t, in, len);
  return t_gate(in, len, t);
}

void pin_worker(const void *arg, size_t size) {
  int cpu = 0;
  if (size == sizeof cpu) std::memcpy(&cpu, arg, sizeof cpu);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  sched_setaffinity(0, sizeof one, &one);
}

// A worker whose tasks are quick may hold its replies to the end of a batch while the result thread
// sleeps on the worker's CPU (pool_internal.h 'K'). A slow task in such a batch must not hold back the
// replies of the quick tasks before it: here the pool, its result thread and its worker share one CPU,
// and an imap's quick items reach the caller while its last task waits at a gate.
TEST_P(Pool, QuickRepliesReachTheCallerWhileASlowTaskOfTheirBatchRuns) {
  cpu_set_t before;
  ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
  int cpu = sched_getcpu();
  ASSERT_GE(cpu, 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0); // (the result thread starts pinned with us)
  mproc_pool_opts o{};
  o.initializer = pin_worker;
  o.initarg = &cpu;
  o.initarg_size = sizeof cpu;
  mproc_pool *p = make(1, o);
  ASSERT_NE(p, nullptr);
  std::vector<mproc_bytes> quick(64, mproc_bytes{"q", 1});
  mproc_async_result *r = nullptr;
  for (int i = 0; i < 3; ++i) { // the worker's tasks are quick now
    ASSERT_EQ(mproc_pool_map(p, t_quick_or_gate, quick.data(), quick.size(), 1, kLong, &r), 0) << mproc_last_error();
    mproc_async_result_destroy(r);
  }
  Gate gate; // more tasks than a worker's window: the last ones (and the gate) come in the result thread's top-ups
  std::vector<mproc_bytes> in(1000, mproc_bytes{"q", 1});
  in.push_back({gate.name.data(), gate.name.size()});
  ASSERT_EQ(mproc_pool_imap(p, t_quick_or_gate, in.data(), in.size(), 1, true, &r), 0) << mproc_last_error();
  for (size_t i = 0; i + 1 < in.size(); ++i) { // while the gate is shut
    const void *d = nullptr;
    size_t n = 0;
    ASSERT_EQ(mproc_async_result_next(r, 10000, &d, &n, nullptr), 0) << "item " << i << ": " << mproc_last_error();
    EXPECT_EQ(std::string((const char *)d, n), "q");
  }
  EXPECT_FALSE(mproc_async_result_ready(r));
  gate.lift();
  const void *d = nullptr;
  size_t n = 0;
  ASSERT_EQ(mproc_async_result_next(r, kLong, &d, &n, nullptr), 0) << mproc_last_error();
  EXPECT_EQ(std::string((const char *)d, n), "g");
  mproc_async_result_destroy(r);
  finish(p);
  EXPECT_EQ(sched_setaffinity(0, sizeof before, &before), 0);
}
#endif

#ifndef _WIN32
// A lock of the program's own: a fork child of a process where another thread holds it inherits it held.
std::mutex g_user_lock;

int t_take_user_lock(const void *, size_t, mproc_task *t) {
  std::lock_guard<std::mutex> hold(g_user_lock);
  void *block = std::malloc(1 << 20); // and the C runtime's allocator, busy in the parent meanwhile
  if (!block) return mproc_task_fail(t, "out of memory");
  std::memset(block, 1, 1 << 20);
  std::free(block);
  int64_t pid = mproc_getpid();
  return mproc_task_return(t, &pid, sizeof pid);
}

// Issue 12, item 3: a fork pool's replacement workers come from a single-threaded copy of the process as
// it was at the pool's creation (its zygote), never from the parent, whose other threads (the result
// thread, the user's) may hold locks at the fork. Here the parent holds a lock of its own and another
// thread is allocating and freeing memory while a worker dies and is replaced; the replacement takes that
// lock and allocates. Forked from the parent, it would wait for the lock for ever (the task's timeout
// ends it: MPROC_ETIMEDOUT).
TEST(PoolFork, AReplacementWorkerIsForkedFromTheZygoteNotFromTheThreadedParent) {
  if (mproc_test::kThreadSanitizer) GTEST_SKIP() << "TSan cannot follow a fork of a process with threads";
  mproc_pool_opts o{};
  o.processes = 1;
  o.start_method = MPROC_START_FORK;
  o.task_timeout_ms = 20000;
  mproc_pool *p = nullptr;
  ASSERT_EQ(mproc_pool_create(&p, &o), 0) << mproc_last_error();
  void *out = nullptr;
  size_t len = 0;
  ASSERT_EQ(mproc_pool_apply(p, t_take_user_lock, "", 0, kLong, &out, &len), 0) << mproc_last_error();
  int64_t first = as_i64(out);
  mproc_free(out);
  std::atomic<bool> stop{false};
  std::thread allocator([&] {
    while (!stop) {
      for (size_t n = 16; n < (1u << 18); n *= 3) std::free(std::malloc(n));
    }
  });
  {
    std::lock_guard<std::mutex> held(g_user_lock);
    for (int round = 0; round < 3; ++round) {
      SCOPED_TRACE(round);
      char how = round % 2 ? 'a' : 'e';
      EXPECT_EQ(mproc_pool_apply(p, t_misbehave, &how, 1, kLong, &out, &len), MPROC_EWORKERDIED);
    }
    out = nullptr;
    EXPECT_EQ(mproc_pool_apply(p, t_take_user_lock, "", 0, kLong, &out, &len), 0) << mproc_last_error();
    if (out) {
      EXPECT_NE(as_i64(out), first) << "the worker was replaced";
      mproc_free(out);
    }
  }
  stop = true;
  allocator.join();
  EXPECT_EQ(mproc_pool_close(p), 0);
  EXPECT_EQ(mproc_pool_join(p, kLong), 0);
  mproc_pool_destroy(p);
}
#endif

// A chunksize beyond any input ("one chunk"): (n + chunk - 1) / chunk wrapped to no task at all (a crash).
TEST_P(Pool, AChunksizeOfSizeMaxIsOneChunk) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  std::vector<int64_t> v = {3, 4, 5};
  std::vector<mproc_bytes> in = inputs_of(v);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(p, t_square, in.data(), in.size(), SIZE_MAX, kLong, &r), 0) << mproc_last_error();
  ASSERT_EQ(mproc_async_result_count(r), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const void *d = nullptr;
    size_t n = 0;
    ASSERT_EQ(mproc_async_result_item(r, i, &d, &n), 0) << mproc_last_error();
    EXPECT_EQ(as_i64(d), v[i] * v[i]);
  }
  mproc_async_result_destroy(r);
  finish(p);
}

// A task timeout too long for nanoseconds in 64 bits (here about 292 years and more) is no timeout that
// fired at once: the deadline saturates.
TEST_P(Pool, AVeryLongTaskTimeoutNeverFiresAtOnce) {
  if (threads()) GTEST_SKIP() << "a thread pool has no per-task timeout";
  mproc_pool_opts o{};
  o.task_timeout_ms = INT64_MAX / 1000;
  mproc_pool *p = make(1, o);
  ASSERT_NE(p, nullptr);
  int64_t x = 9;
  void *out = nullptr;
  size_t len = 0;
  ASSERT_EQ(mproc_pool_apply(p, t_square, &x, sizeof x, kLong, &out, &len), 0) << mproc_last_error();
  EXPECT_EQ(as_i64(out), 81);
  mproc_free(out);
  finish(p);
}

// join on one thread and terminate on another: each returns once the workers are gone (both joined the
// result thread: a hang, or a double free).
TEST_P(Pool, JoinAndTerminateFromTwoThreadsBothReturn) {
  for (int round = 0; round < 3; ++round) {
    mproc_pool *p = make(2);
    ASSERT_NE(p, nullptr);
    int64_t x = 2;
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_apply_async(p, t_square, &x, sizeof x, nullptr, &r), 0) << mproc_last_error();
    ASSERT_EQ(mproc_pool_close(p), 0);
    std::atomic<int> joined{1};
    std::thread joiner([&] { joined = mproc_pool_join(p, kLong); });
    EXPECT_EQ(mproc_pool_terminate(p), 0);
    joiner.join();
    EXPECT_EQ(joined.load(), 0) << mproc_last_error();
    mproc_async_result_destroy(r);
    mproc_pool_destroy(p);
  }
}

// A call that waits, from a callback of the same pool, would wait for ever (the result thread runs the
// callback): it is refused. An _async call from a callback still works.
TEST_P(Pool, AWaitingCallFromACallbackIsRefused) {
  mproc_pool *p = make(2);
  ASSERT_NE(p, nullptr);
  struct Seen {
    mproc_pool *p;
    int apply = 1, map = 1, starmap = 1, array = 1, async = 1;
    mproc_async_result *r = nullptr;
  } seen{p};
  mproc_async_opts ao{};
  ao.user = &seen;
  ao.callback = [](void *u, mproc_async_result *) {
    Seen *s = (Seen *)u;
    int64_t y = 3;
    void *out = nullptr;
    size_t len = 0;
    s->apply = mproc_pool_apply(s->p, t_square, &y, sizeof y, 1000, &out, &len);
    mproc_bytes b = {&y, sizeof y};
    mproc_async_result *m = nullptr;
    s->map = mproc_pool_map(s->p, t_square, &b, 1, 1, 1000, &m);
    mproc_async_result_destroy(m);
    mproc_bytes args[2] = {{&y, sizeof y}, {&y, sizeof y}};
    s->starmap = mproc_pool_starmap(s->p, t_add, args, 2, 1, 1, 1000, &m);
    mproc_async_result_destroy(m);
    int64_t rec = 4, res[2] = {0, 0};
    mproc_array_map am{&rec, sizeof rec, res, sizeof res, 1};
    s->array = mproc_pool_map_array(s->p, r_square, &am, 1, 1000);
    s->async = mproc_pool_apply_async(s->p, t_square, &y, sizeof y, nullptr, &s->r);
  };
  int64_t x = 2;
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_apply_async(p, t_square, &x, sizeof x, &ao, &r), 0) << mproc_last_error();
  ASSERT_EQ(mproc_async_result_wait(r, kLong), 0) << mproc_last_error();
  EXPECT_EQ(seen.apply, MPROC_ESTATE);
  EXPECT_EQ(seen.map, MPROC_ESTATE);
  EXPECT_EQ(seen.starmap, MPROC_ESTATE);
  EXPECT_EQ(seen.array, MPROC_ESTATE);
  ASSERT_EQ(seen.async, 0);
  ASSERT_EQ(mproc_async_result_get(seen.r, kLong), 0) << mproc_last_error();
  mproc_async_result_destroy(seen.r);
  mproc_async_result_destroy(r);
  finish(p);
}

INSTANTIATE_TEST_SUITE_P(Kinds, Pool, ::testing::ValuesIn(kinds()), kind_name);

} // namespace
