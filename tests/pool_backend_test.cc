// Pool backends (mproc/pool_backend.h): the seam through which a pool's workers live elsewhere (the MPI
// ranks of mproc::mpi). Here a backend of threads of this process that run mproc_pool_worker_serve over
// the connection the engine hands them: every call works through it, what a backend cannot do is
// refused, a worker whose connection ends fails its task and its slot is started again, and a start
// that fails fails the pool's creation. Both platforms.
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mproc/pool_backend.h"
#include "test_util.h"

namespace {

const int64_t kLong = 60000;

int b_square(const void *in, size_t len, mproc_task *t) {
  if (len != sizeof(int64_t)) return mproc_task_fail(t, "want 8 bytes, got %zu", len);
  int64_t x;
  std::memcpy(&x, in, sizeof x);
  x *= x;
  return mproc_task_return(t, &x, sizeof x);
}

int b_record(const void *in, void *out, mproc_task *) {
  std::memcpy(out, in, 8);
  return 0;
}

int b_chunk(const void *in, void *out, size_t count, mproc_task *) {
  std::memcpy(out, in, 8 * count);
  return 0;
}

// A task whose reply is as long as its input says (int64 n: n bytes of n % 251), so that some replies
// fit the pool's reply ring and some do not.
int b_sized(const void *in, size_t len, mproc_task *t) {
  if (len != sizeof(int64_t)) return mproc_task_fail(t, "want 8 bytes, got %zu", len);
  int64_t n;
  std::memcpy(&n, in, sizeof n);
  std::string out((size_t)n, (char)(n % 251));
  return mproc_task_return(t, out.data(), out.size());
}

// A task that waits until the test opens the gate.
std::mutex gate_mu;
std::condition_variable gate_cv;
bool gate_open = false;
std::atomic<int> gate_waiting{0};

int b_gated(const void *, size_t, mproc_task *t) {
  std::unique_lock<std::mutex> lock(gate_mu);
  ++gate_waiting;
  gate_cv.notify_all();
  gate_cv.wait(lock, [] { return gate_open; });
  return mproc_task_return(t, "g", 1);
}

// The worker of a driven backend: mproc_pool_worker_open/_feed over conn, each reply handed to the pool's
// ring (mproc_pool_replies_put) and on conn only what put says.
void DrivenWorker(mproc_connection *conn, const std::string &settings, mproc_pool_replies *replies) {
  struct Ctx {
    mproc_connection *conn;
    mproc_pool_replies *replies;
  } ctx{conn, replies};
  auto reply = [](void *c, const void *data, size_t len) -> int {
    auto *x = static_cast<Ctx *>(c);
    int act = mproc_pool_replies_put(x->replies, data, len);
    if (act == MPROC_POOL_REPLY_SEND) return mproc_connection_send_bytes(x->conn, data, len, 0, len);
    if (act == MPROC_POOL_REPLY_WAKE) return mproc_connection_send_bytes(x->conn, "W", 1, 0, 1);
    return act;
  };
  mproc_pool_worker *w = nullptr;
  if (mproc_pool_worker_open(settings.data(), settings.size(), reply, &ctx, &w) == 0) {
    for (int rc = 0; rc == 0;) {
      char *m = nullptr;
      size_t n = 0;
      if (mproc_connection_recv_bytes(conn, 0, MPROC_INFINITE, &m, &n) != 0) break;
      rc = mproc_pool_worker_feed(w, m, n);
      mproc_free(m);
    }
    mproc_pool_worker_close(w);
  }
  mproc_clear_error();
  mproc_pool_replies_release(replies);
}

// A backend of threads: each start runs the worker loop on a thread of its own (driven: the worker of
// DrivenWorker, with hands_replies). With die_once, the
// first worker of slot 0 instead ends its connection when its first task comes (as a rank that dies).
struct ThreadBackend {
  mproc_pool_backend b{};
  std::mutex mu;
  std::vector<std::thread> threads;
  std::atomic<int> starts{0};
  std::atomic<bool> die_once{false};
  int fail_start = 0; // an mproc error code start returns
  size_t boot_len = 0;

  explicit ThreadBackend(size_t workers, bool driven = false) {
    b.name = "threads";
    b.workers = workers;
    b.start = &ThreadBackend::start;
    b.ctx = this;
    b.hands_replies = driven;
  }
  ~ThreadBackend() {
    for (auto &t : threads) t.join();
  }
  static int start(void *ctx, size_t slot, const void *boot, size_t boot_len, mproc_connection *conn,
                   mproc_pool_replies *replies) {
    auto *self = static_cast<ThreadBackend *>(ctx);
    EXPECT_EQ(replies != nullptr, self->b.hands_replies);
    if (self->fail_start) return mproc_pool_backend_fail(self->fail_start, "threads: no room for a worker");
    ++self->starts;
    self->boot_len = boot_len;
    std::string settings(static_cast<const char *>(boot), boot_len);
    bool die = slot == 0 && self->die_once.exchange(false);
    std::lock_guard<std::mutex> lock(self->mu);
    self->threads.emplace_back([conn, settings, die, replies] {
      if (replies) {
        DrivenWorker(conn, settings, replies);
      } else if (die) { // take messages until the first task, then end the connection without an answer
        for (;;) {
          char *m = nullptr;
          size_t n = 0;
          if (mproc_connection_recv_bytes(conn, 0, MPROC_INFINITE, &m, &n) != 0) break;
          bool task = n && m[0] == 'T';
          mproc_free(m);
          if (task) break;
        }
      } else if (mproc_pool_worker_serve(conn, settings.data(), settings.size()) != 0) {
        mproc_clear_error();
      }
      mproc_connection_destroy(conn);
    });
    return 0;
  }
};

std::vector<int64_t> Squares(mproc_async_result *r) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < mproc_async_result_count(r); ++i) {
    const void *d = nullptr;
    size_t len = 0;
    EXPECT_EQ(mproc_async_result_item(r, i, &d, &len), 0) << mproc_last_error();
    int64_t v = 0;
    if (len == sizeof v) std::memcpy(&v, d, sizeof v);
    out.push_back(v);
  }
  return out;
}

// One apply of b_square through p: x * x, or -1 (with the failure recorded).
int64_t Square(mproc_pool *p, int64_t x) {
  void *out = nullptr;
  size_t len = 0;
  EXPECT_EQ(mproc_pool_apply(p, b_square, &x, sizeof x, kLong, &out, &len), 0) << mproc_last_error();
  int64_t y = -1;
  EXPECT_EQ(len, sizeof y);
  if (out && len == sizeof y) std::memcpy(&y, out, sizeof y);
  mproc_free(out);
  return y;
}

TEST(PoolBackend, EveryCallRunsThroughTheBackendsWorkers) {
  ThreadBackend be(3);
  mproc_pool_opts o{};
  o.backend = &be.b;
  mproc_pool *p = nullptr;
  ASSERT_EQ(mproc_pool_create(&p, &o), 0) << mproc_last_error();
  EXPECT_EQ(mproc_pool_size(p), 3u); // processes 0: all the backend's workers
  EXPECT_EQ(be.starts.load(), 3);
  EXPECT_GT(be.boot_len, 0u);
  EXPECT_EQ(Square(p, 12), 144);
  std::vector<int64_t> xs(500);
  std::vector<mproc_bytes> in(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    xs[i] = (int64_t)i - 250;
    in[i] = {&xs[i], sizeof xs[i]};
  }
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(p, b_square, in.data(), in.size(), 1, kLong, &r), 0) << mproc_last_error();
  std::vector<int64_t> got = Squares(r);
  mproc_async_result_destroy(r);
  for (size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(got[i], xs[i] * xs[i]) << i;
  ASSERT_EQ(mproc_pool_imap(p, b_square, in.data(), in.size(), 7, false, &r), 0) << mproc_last_error();
  size_t n = 0;
  const void *d;
  size_t idx, len;
  while (mproc_async_result_next(r, kLong, &d, &len, &idx) == 0) ++n;
  EXPECT_EQ(n, xs.size());
  mproc_async_result_destroy(r);
  EXPECT_EQ(mproc_pool_close(p), 0);
  EXPECT_EQ(mproc_pool_join(p, kLong), 0);
  mproc_pool_destroy(p);
}

TEST(PoolBackend, WhatABackendCannotDoIsRefused) {
  ThreadBackend be(2);
  mproc_pool_opts o{};
  o.backend = &be.b;
  mproc_pool *p = nullptr;
  o.maxtasksperchild = 3;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_ENOTSUP);
  EXPECT_NE(std::string(mproc_last_error()).find("threads backend"), std::string::npos) << mproc_last_error();
  o.maxtasksperchild = 0;
  o.task_timeout_ms = 100;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_ENOTSUP);
  o.task_timeout_ms = 0;
  o.processes = 3;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_EINVAL);
  o.processes = 0;
  o.threads = true;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_EINVAL);
  o.threads = false;
  EXPECT_EQ(be.starts.load(), 0);
  ASSERT_EQ(mproc_pool_create(&p, &o), 0) << mproc_last_error();
  int64_t in[4] = {1, 2, 3, 4}, out[4] = {0, 0, 0, 0};
  mproc_array_map m{in, 8, out, 8, 4};
  EXPECT_EQ(mproc_pool_map_array(p, b_record, &m, 0, kLong), MPROC_ENOTSUP);
  EXPECT_EQ(mproc_pool_map_array_chunks(p, b_chunk, &m, 0, kLong), MPROC_ENOTSUP);
  void *buf = nullptr;
  EXPECT_EQ(mproc_pool_array_alloc(p, 64, &buf), MPROC_ENOTSUP);
  EXPECT_EQ(buf, nullptr);
  mproc_pool_destroy(p);
}

TEST(PoolBackend, AWorkerWhoseConnectionEndsFailsItsTaskAndIsStartedAgain) {
  ThreadBackend be(1);
  be.die_once = true;
  mproc_pool_opts o{};
  o.backend = &be.b;
  mproc_pool *p = nullptr;
  ASSERT_EQ(mproc_pool_create(&p, &o), 0) << mproc_last_error();
  int64_t x = 5;
  void *out = nullptr;
  size_t len = 0;
  EXPECT_EQ(mproc_pool_apply(p, b_square, &x, sizeof x, kLong, &out, &len), MPROC_EWORKERDIED);
  EXPECT_EQ(Square(p, x), 25);
  EXPECT_EQ(be.starts.load(), 2); // the slot was started again
  mproc_pool_destroy(p);
}

TEST(PoolBackend, AStartThatFailsFailsTheCreation) {
  ThreadBackend be(2);
  be.fail_start = MPROC_ESTATE;
  mproc_pool_opts o{};
  o.backend = &be.b;
  mproc_pool *p = nullptr;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_ESTATE);
  EXPECT_STREQ(mproc_last_error(), "threads: no room for a worker");
  EXPECT_EQ(p, nullptr);
}

TEST(PoolBackend, ADrivenWorkerHandsItsRepliesThroughThePoolsRing) {
  ThreadBackend be(3, true);
  mproc_pool_opts o{};
  o.backend = &be.b;
  mproc_pool *p = nullptr;
  ASSERT_EQ(mproc_pool_create(&p, &o), 0) << mproc_last_error();
  EXPECT_EQ(Square(p, 9), 81);
  // Many quick tasks, one in 16 with a reply too long for the ring: every reply in its place.
  std::vector<int64_t> sizes(3000);
  std::vector<mproc_bytes> in(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    sizes[i] = i % 16 == 5 ? 300 + (int64_t)i : (int64_t)(i % 40);
    in[i] = {&sizes[i], sizeof sizes[i]};
  }
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(p, b_sized, in.data(), in.size(), 1, kLong, &r), 0) << mproc_last_error();
  ASSERT_EQ(mproc_async_result_count(r), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    const void *d = nullptr;
    size_t len = 0;
    ASSERT_EQ(mproc_async_result_item(r, i, &d, &len), 0) << mproc_last_error();
    ASSERT_EQ(len, (size_t)sizes[i]) << i;
    EXPECT_EQ(std::string(static_cast<const char *>(d), len), std::string(len, (char)(sizes[i] % 251))) << i;
  }
  mproc_async_result_destroy(r);
  // A failing task's message comes back the same way.
  int64_t bad[2] = {1, 2};
  mproc_bytes odd[2] = {{&bad[0], sizeof bad[0]}, {&bad[1], 3}};
  ASSERT_EQ(mproc_pool_map(p, b_square, odd, 2, 1, kLong, &r), MPROC_ETASK);
  EXPECT_NE(std::string(mproc_last_error()).find("want 8 bytes, got 3"), std::string::npos) << mproc_last_error();
  EXPECT_EQ(mproc_pool_close(p), 0);
  EXPECT_EQ(mproc_pool_join(p, kLong), 0);
  mproc_pool_destroy(p);
  EXPECT_EQ(be.starts.load(), 3);
}

TEST(PoolBackend, ARingOutlivesItsPoolUntilTheBackendLetsItGo) {
  // The pool is destroyed while a driven worker still runs a task: its reply then goes into a ring the
  // pool has let go of, which lives until the backend releases it (a sanitizer sees any use after free).
  {
    std::lock_guard<std::mutex> lock(gate_mu);
    gate_open = false;
    gate_waiting = 0;
  }
  ThreadBackend be(1, true);
  mproc_pool_opts o{};
  o.backend = &be.b;
  mproc_pool *p = nullptr;
  ASSERT_EQ(mproc_pool_create(&p, &o), 0) << mproc_last_error();
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_apply_async(p, b_gated, "x", 1, nullptr, &r), 0) << mproc_last_error();
  {
    std::unique_lock<std::mutex> lock(gate_mu);
    gate_cv.wait(lock, [] { return gate_waiting.load() > 0; }); // the task runs, at the gate
  }
  EXPECT_FALSE(mproc_async_result_ready(r));
  EXPECT_EQ(mproc_pool_terminate(p), 0);
  EXPECT_EQ(mproc_async_result_get(r, kLong), MPROC_ECLOSED);
  mproc_async_result_destroy(r);
  mproc_pool_destroy(p);
  {
    std::lock_guard<std::mutex> lock(gate_mu);
    gate_open = true;
  }
  gate_cv.notify_all();
  // ~ThreadBackend joins the worker: it puts its reply, sees the end of its connection and lets go.
}

TEST(PoolBackend, ADrivenWorkerRefusesWhatItCannotServe) {
  auto reply = [](void *, const void *, size_t) -> int { return 0; };
  mproc_pool_worker *w = nullptr;
  unsigned char boot[16] = {0}; // maxtasks 0, no initializer, no argument (but the argument's length)
  EXPECT_EQ(mproc_pool_worker_open(boot, 4, reply, nullptr, &w), MPROC_EINVAL); // malformed settings
  EXPECT_EQ(w, nullptr);
  EXPECT_EQ(mproc_pool_worker_open(boot, 16, nullptr, nullptr, &w), MPROC_EINVAL);
  unsigned char boot3[24] = {0};
  ASSERT_EQ(mproc_pool_worker_open(boot3, 24, reply, nullptr, &w), 0) << mproc_last_error();
  unsigned char arena[9] = {'S', 1, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(mproc_pool_worker_feed(w, arena, sizeof arena), MPROC_ENOTSUP); // shared memory needs a connection
  EXPECT_NE(std::string(mproc_last_error()).find("needs a connection"), std::string::npos) << mproc_last_error();
  EXPECT_EQ(mproc_pool_worker_feed(w, "Zzzzzzzzz", 9), MPROC_ESYS);
  unsigned char task[25] = {'T', 7}; // function 7 was never defined
  EXPECT_EQ(mproc_pool_worker_feed(w, task, sizeof task), MPROC_ESYS);
  EXPECT_EQ(mproc_pool_worker_feed(w, "Q", 1), 1);
  EXPECT_EQ(mproc_pool_worker_feed(nullptr, "Q", 1), MPROC_EINVAL);
  mproc_pool_worker_close(w);
  mproc_pool_worker_close(nullptr);
  mproc_pool_replies_release(nullptr);
  EXPECT_EQ(mproc_pool_replies_put(nullptr, "x", 1), MPROC_EINVAL);
}

} // namespace
