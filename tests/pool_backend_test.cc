// Pool backends (mproc/pool_backend.h): the seam through which a pool's workers live elsewhere (the MPI
// ranks of mproc::mpi). Here a backend of threads of this process that run mproc_pool_worker_serve over
// the connection the engine hands them: every call works through it, what a backend cannot do is
// refused, a worker whose connection ends fails its task and its slot is started again, and a start
// that fails fails the pool's creation. Then a backend with the send and poll hooks (as MPI's): the
// engine's messages go through send and the replies come only when the result thread polls. Both
// platforms.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
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

// The inputs of a map over xs: each element as its 8 bytes (lent: xs must outlive them).
std::vector<mproc_bytes> BytesOf(const std::vector<int64_t> &xs) {
  std::vector<mproc_bytes> in(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) in[i] = {&xs[i], sizeof xs[i]};
  return in;
}

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
int64_t Square(mproc_pool *p, int64_t x, int64_t timeout_ms = kLong) {
  void *out = nullptr;
  size_t len = 0;
  EXPECT_EQ(mproc_pool_apply(p, b_square, &x, sizeof x, timeout_ms, &out, &len), 0) << mproc_last_error();
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
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = (int64_t)i - 250;
  std::vector<mproc_bytes> in = BytesOf(xs);
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
  for (size_t i = 0; i < sizes.size(); ++i) sizes[i] = i % 16 == 5 ? 300 + (int64_t)i : (int64_t)(i % 40);
  std::vector<mproc_bytes> in = BytesOf(sizes);
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

// ---- a backend with the send and poll hooks ------------------------------------------------------------

// How long the tests of the hooks wait for anything: an engine that stops polling, or is never woken,
// fails them within seconds instead of hanging them.
const int64_t kWait = 10000;

// A "posted" backend, as the MPI one: send posts each message of the engine to its worker's inbox (none
// goes on the connection), and a thread per worker feeds them to mproc_pool_worker_open/_feed. The
// worker's replies wait in an outbox that only poll moves into the pool's ring, as MPI's replies, which
// cannot wake the engine, come only when the result thread polls. What put says to send on the
// connection ("W", a reply too long for the ring) poll hands to the worker's thread to write: poll runs on
// the result thread, which must not wait on a pipe that only it reads. send(NULL), or a send that fails,
// ends the worker: its thread closes it and destroys the backend's end of the connection. Everything is
// counted, under mu.
struct PostedBackend {
  struct Worker {
    mproc_connection *conn = nullptr; // the backend's end; the worker's thread destroys it
    mproc_pool_replies *replies = nullptr;
    std::deque<std::string> inbox;  // the engine's messages, for the thread to feed
    std::deque<std::string> outbox; // the worker's replies, for poll to put in the ring
    std::deque<std::string> wire;   // for the thread to write on conn: what put said to send
    bool ended = false;             // send(NULL) came, or a send failed: the thread ends the worker
    bool failed = false;            // a send to it failed
    bool gone = false;              // its thread closed the worker and destroyed conn
    int ends = 0;                   // send(NULL) calls for it
    int after_end = 0;              // messages sent to it after send(NULL) (the engine sends none)
    size_t tasks = 0;               // messages sent to it that carry tasks ('T', 'B', 'K')
    size_t stray = SIZE_MAX;        // messages the engine wrote on conn (counted when the thread ends)
    std::thread thread;
  };

  mproc_pool_backend b{};
  std::mutex mu;
  std::condition_variable cv;                   // anything below changed
  std::vector<std::unique_ptr<Worker>> workers; // every one started, in order
  char fail_on = 0;  // the next message of this kind fails ('T': one that carries tasks; 'F': a definition)
  bool held = false; // poll moves nothing: the replies wait in the outboxes
  size_t polls = 0, made = 0, puts = 0, longs = 0; // poll's calls; replies made, put in a ring, sent on conn
  size_t poll_threads = 0; // how often poll ran on another thread than the call before (1: one thread)
  std::thread::id poll_thread;

  explicit PostedBackend(size_t n) {
    b.name = "posted";
    b.workers = n;
    b.start = &PostedBackend::Start;
    b.ctx = this;
    b.hands_replies = true;
    b.send = &PostedBackend::Send;
    b.poll = &PostedBackend::Poll;
  }
  ~PostedBackend() { // (the pool is gone: it ended every worker, unless a test failed first)
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto &w : workers) w->ended = true;
    }
    cv.notify_all();
    for (auto &w : workers) w->thread.join();
    for (auto &w : workers) mproc_pool_replies_release(w->replies);
  }

  // Wait, up to kWait, until pred holds (it runs under mu): whether it did.
  template <class Pred>
  bool Until(Pred pred) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::milliseconds(kWait), pred);
  }
  bool AllGone() const { // (under mu)
    for (auto &w : workers)
      if (!w->gone) return false;
    return true;
  }
  Worker *Find(const mproc_pool_replies *r) { // the worker start was given r for (under mu)
    for (auto it = workers.rbegin(); it != workers.rend(); ++it)
      if ((*it)->replies == r) return it->get();
    return nullptr;
  }

  static int Start(void *ctx, size_t, const void *boot, size_t boot_len, mproc_connection *conn,
                   mproc_pool_replies *replies) {
    auto *self = static_cast<PostedBackend *>(ctx);
    EXPECT_NE(replies, nullptr);
    std::lock_guard<std::mutex> lock(self->mu);
    self->workers.push_back(std::make_unique<Worker>());
    Worker *w = self->workers.back().get();
    w->conn = conn;
    w->replies = replies;
    w->thread = std::thread(&PostedBackend::Serve, self, w, std::string(static_cast<const char *>(boot), boot_len));
    self->cv.notify_all();
    return 0;
  }

  static int Send(void *ctx, mproc_pool_replies *replies, const void *msg, size_t len) {
    auto *self = static_cast<PostedBackend *>(ctx);
    std::lock_guard<std::mutex> lock(self->mu);
    Worker *w = self->Find(replies);
    if (!w) {
      ADD_FAILURE() << "send to a worker that was never started";
      return mproc_pool_backend_fail(MPROC_EINVAL, "posted: no such worker");
    }
    self->cv.notify_all();
    if (!msg) {
      ++w->ends;
      w->ended = true;
      return 0;
    }
    if (w->ends) ++w->after_end;
    if (w->ended) return mproc_pool_backend_fail(MPROC_EPIPE, "posted: the worker has ended");
    char kind = len ? static_cast<const char *>(msg)[0] : '\0';
    bool task = kind == 'T' || kind == 'B' || kind == 'K';
    if (self->fail_on && (self->fail_on == 'T' ? task : kind == self->fail_on)) {
      self->fail_on = 0;
      w->failed = w->ended = true; // its thread ends conn
      return mproc_pool_backend_fail(MPROC_EPIPE, "posted: the worker's link broke");
    }
    w->tasks += task;
    w->inbox.emplace_back(static_cast<const char *>(msg), len);
    return 0;
  }

  static int64_t Poll(void *ctx, int64_t *last, bool *more) {
    auto *self = static_cast<PostedBackend *>(ctx);
    *more = false; // (a start needs no confirming here)
    std::lock_guard<std::mutex> lock(self->mu);
    ++self->polls;
    if (self->poll_threads == 0 || self->poll_thread != std::this_thread::get_id()) {
      ++self->poll_threads;
      self->poll_thread = std::this_thread::get_id();
    }
    bool moved = false;
    for (auto &w : self->workers) {
      if (self->held) break;
      if (w->ends) { // the engine ended it and reads its ring no more
        w->outbox.clear();
        continue;
      }
      for (; !w->outbox.empty(); w->outbox.pop_front()) {
        const std::string &m = w->outbox.front();
        int act = mproc_pool_replies_put(w->replies, m.data(), m.size());
        if (act == MPROC_POOL_REPLY_SEND) {
          w->wire.push_back(m);
          ++self->longs;
        } else if (act == MPROC_POOL_REPLY_WAKE) {
          w->wire.push_back("W");
        } else if (act != MPROC_POOL_REPLY_TAKEN) { // a reply nobody asked for: the worker ends
          ADD_FAILURE() << "replies_put: " << act << " " << mproc_last_error();
          mproc_clear_error();
          w->ended = true;
          break;
        }
        ++self->puts;
        moved = true;
      }
    }
    self->cv.notify_all();
    int64_t now = mproc_monotonic_ns();
    if (moved) *last = now;
    return now - *last < 1000000 ? 0 : 1; // at once while replies come, else in a millisecond
  }

  // A worker's thread: feeds it the engine's messages and writes on conn what poll gives it, until the
  // worker ends; then counts what the engine wrote on conn, and destroys conn (the engine sees the end).
  void Serve(Worker *w, std::string settings) {
    struct Ctx {
      PostedBackend *be;
      Worker *w;
    } ctx{this, w};
    auto reply = [](void *c, const void *data, size_t len) -> int {
      auto *x = static_cast<Ctx *>(c);
      std::lock_guard<std::mutex> lock(x->be->mu);
      x->w->outbox.emplace_back(static_cast<const char *>(data), len);
      ++x->be->made;
      x->be->cv.notify_all();
      return 0;
    };
    mproc_pool_worker *pw = nullptr;
    int rc = mproc_pool_worker_open(settings.data(), settings.size(), reply, &ctx, &pw);
    std::unique_lock<std::mutex> lock(mu);
    while (rc == 0) {
      cv.wait(lock, [w] { return w->ended || !w->inbox.empty() || !w->wire.empty(); });
      if (w->ended) break;
      bool write = !w->wire.empty();
      std::string m = std::move(write ? w->wire.front() : w->inbox.front());
      (write ? w->wire : w->inbox).pop_front();
      lock.unlock();
      rc = write ? mproc_connection_send_bytes(w->conn, m.data(), m.size(), 0, m.size())
                 : mproc_pool_worker_feed(pw, m.data(), m.size());
      lock.lock();
    }
    lock.unlock();
    mproc_pool_worker_close(pw);
    size_t stray = 0;
    char *m = nullptr;
    size_t n = 0;
    for (; mproc_connection_recv_bytes(w->conn, 0, 0, &m, &n) == 0; ++stray) mproc_free(m);
    mproc_clear_error();
    mproc_connection_destroy(w->conn);
    lock.lock();
    w->conn = nullptr;
    w->stray = stray;
    w->gone = true;
    cv.notify_all();
  }
};

// A pool over a backend, ended at the end of its scope however the test ends (declared after the
// backend, whose threads end once the pool has ended its workers). Terminated, then destroyed: a pool
// closed with work that never finishes (an engine that does not poll) would hold destroy forever.
struct PoolOver {
  mproc_pool *p = nullptr;
  explicit PoolOver(PostedBackend &be) {
    mproc_pool_opts o{};
    o.backend = &be.b;
    EXPECT_EQ(mproc_pool_create(&p, &o), 0) << mproc_last_error();
  }
  ~PoolOver() {
    if (p) {
      EXPECT_EQ(mproc_pool_terminate(p), 0);
    }
    mproc_pool_destroy(p);
  }
};

int64_t Int64Item(mproc_async_result *r, size_t i) { // item i of r as an int64, or -1
  const void *d = nullptr;
  size_t len = 0;
  int64_t v = -1;
  EXPECT_EQ(mproc_async_result_item(r, i, &d, &len), 0) << mproc_last_error();
  if (len == sizeof v) std::memcpy(&v, d, sizeof v);
  return v;
}

TEST(PoolBackend, WithSendAndPollEveryMessageGoesThroughSendAndEveryReplyThroughPoll) {
  // Every kind of call over a posted backend: the results are right; the engine wrote nothing on the
  // workers' connections (every message, the tasks among them, went through send); every reply the
  // workers made reached the pool through poll, on one thread, the result thread (where callbacks run);
  // and a reply too long for the ring came on the connection, as put said.
  struct Called { // what the callback saw (outlives the pool, whose result thread runs the callback)
    int64_t value = -1;
    std::thread::id thread;
  } called;
  PostedBackend be(3);
  PoolOver pool(be);
  mproc_pool *p = pool.p;
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(mproc_pool_size(p), 3u);
  EXPECT_EQ(Square(p, 12, kWait), 144);
  size_t tasks = 1;
  std::vector<int64_t> xs(500);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = (int64_t)i - 250;
  std::vector<mproc_bytes> in = BytesOf(xs);
  mproc_async_result *r = nullptr;
  for (size_t chunk : {1, 7}) {
    ASSERT_EQ(mproc_pool_map(p, b_square, in.data(), in.size(), chunk, kWait, &r), 0)
        << "chunksize " << chunk << ": " << mproc_last_error();
    std::vector<int64_t> got = Squares(r);
    mproc_async_result_destroy(r);
    ASSERT_EQ(got.size(), xs.size());
    for (size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(got[i], xs[i] * xs[i]) << chunk << " " << i;
    tasks += (xs.size() + chunk - 1) / chunk;
  }
  ASSERT_EQ(mproc_pool_imap(p, b_square, in.data(), in.size(), 3, true, &r), 0) << mproc_last_error();
  size_t n = 0;
  const void *d;
  size_t idx, len;
  for (; mproc_async_result_next(r, kWait, &d, &len, &idx) == 0; ++n) {
    int64_t v = -1;
    if (len == sizeof v) std::memcpy(&v, d, sizeof v);
    EXPECT_EQ(idx, n);
    EXPECT_EQ(v, xs[n] * xs[n]) << n;
  }
  EXPECT_EQ(n, xs.size()) << mproc_last_error();
  mproc_async_result_destroy(r);
  tasks += (xs.size() + 2) / 3;
  mproc_async_opts ao{};
  ao.callback = [](void *user, mproc_async_result *res) {
    auto *c = static_cast<Called *>(user);
    c->value = Int64Item(res, 0);
    c->thread = std::this_thread::get_id();
  };
  ao.user = &called;
  int64_t x = 21;
  ASSERT_EQ(mproc_pool_apply_async(p, b_square, &x, sizeof x, &ao, &r), 0) << mproc_last_error();
  EXPECT_EQ(mproc_async_result_get(r, kWait), 0) << mproc_last_error(); // (after its callback ran)
  mproc_async_result_destroy(r);
  EXPECT_EQ(called.value, 441);
  ++tasks;
  // Replies of every size, one in 10 too long for the ring.
  std::vector<int64_t> sizes(200);
  for (size_t i = 0; i < sizes.size(); ++i) sizes[i] = i % 10 == 3 ? 300 + (int64_t)i : (int64_t)(i % 40);
  in = BytesOf(sizes);
  ASSERT_EQ(mproc_pool_map(p, b_sized, in.data(), in.size(), 1, kWait, &r), 0) << mproc_last_error();
  for (size_t i = 0; i < sizes.size(); ++i) {
    ASSERT_EQ(mproc_async_result_item(r, i, &d, &len), 0) << mproc_last_error();
    ASSERT_EQ(len, (size_t)sizes[i]) << i;
    EXPECT_EQ(std::string(static_cast<const char *>(d), len), std::string(len, (char)(sizes[i] % 251))) << i;
  }
  mproc_async_result_destroy(r);
  tasks += sizes.size();
  EXPECT_EQ(mproc_pool_close(p), 0);
  EXPECT_EQ(mproc_pool_join(p, kWait), 0) << mproc_last_error();
  ASSERT_TRUE(be.Until([&] { return be.AllGone(); }));
  std::lock_guard<std::mutex> lock(be.mu);
  EXPECT_EQ(be.workers.size(), 3u);
  size_t sent = 0;
  for (auto &w : be.workers) {
    EXPECT_EQ(w->stray, 0u); // nothing on the connection: no task, not even the end ('Q' went through send)
    EXPECT_EQ(w->ends, 1);
    sent += w->tasks;
  }
  EXPECT_GT(sent, 0u);
  EXPECT_GT(be.polls, 0u);
  EXPECT_EQ(be.made, tasks); // a reply a task
  EXPECT_EQ(be.puts, be.made);
  EXPECT_EQ(be.longs, sizes.size() / 10);
  EXPECT_EQ(be.poll_threads, 1u);
  EXPECT_EQ(be.poll_thread, called.thread);
}

TEST(PoolBackend, WithPollTheResultThreadPollsWhileATaskIsOutAndRepliesComeOnlyThroughPoll) {
  // A reply the worker has made waits until poll hands it over: while poll moves nothing, the engine goes
  // on polling (nothing else will wake it) and the result is not ready; once poll moves it, the result
  // comes. Then calls one after another, each handed to a pool with nothing in flight, whose result
  // thread sleeps until woken: sending the task must start its polling.
  PostedBackend be(1);
  PoolOver pool(be);
  mproc_pool *p = pool.p;
  ASSERT_NE(p, nullptr);
  {
    std::lock_guard<std::mutex> lock(be.mu);
    be.held = true;
  }
  int64_t x = 7;
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_apply_async(p, b_square, &x, sizeof x, nullptr, &r), 0) << mproc_last_error();
  size_t polls = 0;
  ASSERT_TRUE(be.Until([&] {
    polls = be.polls;
    return be.made == 1;
  })) << "the worker never got its task";
  ASSERT_TRUE(be.Until([&] { return be.polls >= polls + 3; })) << "the engine stopped polling with a task out";
  EXPECT_FALSE(mproc_async_result_ready(r));
  {
    std::lock_guard<std::mutex> lock(be.mu);
    EXPECT_EQ(be.puts, 0u);
    be.held = false;
  }
  EXPECT_EQ(mproc_async_result_get(r, kWait), 0) << mproc_last_error();
  EXPECT_EQ(Int64Item(r, 0), 49);
  mproc_async_result_destroy(r);
  // (The 200 calls share one bound: a task sent without that wake-up waits for the result thread's next
  // timer, about a second, so 200 of them cannot fit kWait, which calls woken at once fit many times over.)
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWait);
  for (int64_t i = 0; i < 200; ++i) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    ASSERT_EQ(Square(p, i, left.count() > 0 ? left.count() : 0), i * i) << i;
  }
  EXPECT_EQ(mproc_pool_close(p), 0);
  EXPECT_EQ(mproc_pool_join(p, kWait), 0) << mproc_last_error();
  std::lock_guard<std::mutex> lock(be.mu);
  EXPECT_EQ(be.made, 201u);
  EXPECT_EQ(be.puts, be.made);
}

TEST(PoolBackend, WithSendTheEngineTellsTheBackendEveryWorkersEnd) {
  // send(NULL) once for every worker started, and nothing sent to it after: when the pool is closed and
  // joined (its workers idle), and when it is destroyed while a task still runs, where the engine does
  // not wait for the worker (the backend ends it when it can).
  {
    PostedBackend be(2);
    PoolOver pool(be);
    ASSERT_NE(pool.p, nullptr);
    EXPECT_EQ(Square(pool.p, 3, kWait), 9);
    EXPECT_EQ(mproc_pool_close(pool.p), 0);
    EXPECT_EQ(mproc_pool_join(pool.p, kWait), 0) << mproc_last_error();
    std::lock_guard<std::mutex> lock(be.mu);
    EXPECT_EQ(be.workers.size(), 2u);
    for (auto &w : be.workers) {
      EXPECT_EQ(w->ends, 1);
      EXPECT_EQ(w->after_end, 0);
    }
  }
  {
    std::lock_guard<std::mutex> lock(gate_mu);
    gate_open = false;
    gate_waiting = 0;
  }
  PostedBackend be(2);
  PoolOver pool(be);
  ASSERT_NE(pool.p, nullptr);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_apply_async(pool.p, b_gated, "x", 1, nullptr, &r), 0) << mproc_last_error();
  {
    std::unique_lock<std::mutex> lock(gate_mu); // the task runs, at the gate
    ASSERT_TRUE(gate_cv.wait_for(lock, std::chrono::milliseconds(kWait), [] { return gate_waiting.load() > 0; }));
  }
  mproc_pool_destroy(pool.p); // (open: terminated)
  pool.p = nullptr;
  EXPECT_EQ(mproc_async_result_get(r, kWait), MPROC_ECLOSED);
  mproc_async_result_destroy(r);
  {
    std::lock_guard<std::mutex> lock(be.mu);
    EXPECT_EQ(be.workers.size(), 2u);
    EXPECT_FALSE(be.AllGone()); // one still runs its task
    for (auto &w : be.workers) {
      EXPECT_EQ(w->ends, 1);
      EXPECT_EQ(w->after_end, 0);
    }
  }
  {
    std::lock_guard<std::mutex> lock(gate_mu);
    gate_open = true;
  }
  gate_cv.notify_all();
  EXPECT_TRUE(be.Until([&] { return be.AllGone(); }));
}

TEST(PoolBackend, WithSendASendThatFailsEndsTheWorkerAndItsSlotIsStartedAgain) {
  // A send that fails (the backend lost the worker, and ends its connection as the contract says) makes
  // the worker a dying one. The task that send carried fails with MPROC_EWORKERDIED, as a task in flight
  // on a worker that ends (pool.c puts a task in flight before its batch goes out, and does not take it
  // back when the send fails); the engine tells the backend the worker's end, starts the slot again, and
  // the pool goes on serving.
  PostedBackend be(2);
  be.fail_on = 'T';
  PoolOver pool(be);
  mproc_pool *p = pool.p;
  ASSERT_NE(p, nullptr);
  int64_t x = 5;
  void *out = nullptr;
  size_t len = 0;
  EXPECT_EQ(mproc_pool_apply(p, b_square, &x, sizeof x, kWait, &out, &len), MPROC_EWORKERDIED) << mproc_last_error();
  mproc_free(out);
  ASSERT_TRUE(be.Until([&] { return be.workers.size() == 3 && be.workers[0]->ends == 1; }));
  {
    std::lock_guard<std::mutex> lock(be.mu);
    EXPECT_EQ(be.fail_on, '\0');
    EXPECT_TRUE(be.workers[0]->failed); // slot 0 got the task: the first idle one
  }
  EXPECT_EQ(Square(p, 6, kWait), 36);
  std::vector<int64_t> xs(100);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = (int64_t)i;
  std::vector<mproc_bytes> in = BytesOf(xs);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(p, b_square, in.data(), in.size(), 1, kWait, &r), 0) << mproc_last_error();
  std::vector<int64_t> got = Squares(r);
  mproc_async_result_destroy(r);
  for (size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(got[i], xs[i] * xs[i]) << i;
  EXPECT_EQ(mproc_pool_close(p), 0);
  EXPECT_EQ(mproc_pool_join(p, kWait), 0) << mproc_last_error();
  std::lock_guard<std::mutex> lock(be.mu);
  EXPECT_EQ(be.workers.size(), 3u);
  for (auto &w : be.workers) {
    EXPECT_EQ(w->ends, 1);
    EXPECT_EQ(w->after_end, 0);
  }
}

TEST(PoolBackend, WithSendAFailedDefinitionLeavesItsTaskToTheNextWorker) {
  // The send that fails carries the task function's definition, which goes before the task: the task was
  // not handed over, so it waits for a worker (here the slot's next one, the pool's only one) and runs.
  PostedBackend be(1);
  be.fail_on = 'F';
  PoolOver pool(be);
  ASSERT_NE(pool.p, nullptr);
  EXPECT_EQ(Square(pool.p, 5, kWait), 25);
  EXPECT_EQ(mproc_pool_close(pool.p), 0);
  EXPECT_EQ(mproc_pool_join(pool.p, kWait), 0) << mproc_last_error();
  std::lock_guard<std::mutex> lock(be.mu);
  ASSERT_EQ(be.workers.size(), 2u);
  EXPECT_TRUE(be.workers[0]->failed);
  EXPECT_EQ(be.workers[0]->tasks, 0u);
  EXPECT_EQ(be.workers[1]->tasks, 1u);
  for (auto &w : be.workers) EXPECT_EQ(w->ends, 1);
}

TEST(PoolBackend, SendAndPollComeTogetherAndWithTheRings) {
  // The hooks are both or neither, and poll needs the rings it puts replies in (hands_replies): one hook
  // alone would leave messages nobody carries, or replies nobody polls for.
  PostedBackend be(2);
  mproc_pool_opts o{};
  o.backend = &be.b;
  auto create = [&o] { // what pool_create says (a pool it makes after all is ended at once)
    mproc_pool *p = nullptr;
    int rc = mproc_pool_create(&p, &o);
    std::string why = mproc_last_error();
    if (p) mproc_pool_terminate(p);
    mproc_pool_destroy(p);
    return std::to_string(rc) + " " + why;
  };
  const std::string refused = std::to_string(MPROC_EINVAL) + " ";
  be.b.poll = nullptr;
  std::string got = create();
  EXPECT_EQ(got.rfind(refused, 0), 0u) << got;
  EXPECT_NE(got.find("send and poll"), std::string::npos) << got;
  be.b.poll = &PostedBackend::Poll;
  be.b.send = nullptr;
  got = create();
  EXPECT_EQ(got.rfind(refused, 0), 0u) << got;
  be.b.send = &PostedBackend::Send;
  be.b.hands_replies = false;
  got = create();
  EXPECT_EQ(got.rfind(refused, 0), 0u) << got;
  EXPECT_EQ(be.workers.size(), 0u); // refused before any start
  be.b.hands_replies = true;
  mproc_pool *p = nullptr;
  ASSERT_EQ(mproc_pool_create(&p, &o), 0) << mproc_last_error();
  EXPECT_EQ(Square(p, 4, kWait), 16);
  mproc_pool_destroy(p);
}

} // namespace
