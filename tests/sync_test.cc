// Synchronization and shared state between processes (mproc/sync.h, mproc/shared.h): Python's semantics
// in one process, then across processes under every start method (handed to children, sent to a
// running one), and the death cases: a holder killed hard at the worst moment, a waiter killed inside
// Condition.wait and Barrier.wait. White-box where it counts the PAL's kernel calls and handles.
#include <atomic>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "pal.h"
#include "shared/shared_internal.h"
}
#include "test_util.h"

using mproc_test::kWindows;

namespace {

const int64_t kLong = 60000;

// ---- one process ------------------------------------------------------------------------------------

TEST(Lock, AcquireReleaseAndReleasingAnUnlockedLock) {
  mproc_lock *l = nullptr;
  ASSERT_EQ(mproc_lock_create(&l), 0);
  EXPECT_FALSE(mproc_lock_locked(l));
  EXPECT_EQ(mproc_lock_release(l), MPROC_ESTATE); // nothing changes
  EXPECT_FALSE(mproc_lock_locked(l));
  ASSERT_EQ(mproc_lock_acquire(l, MPROC_INFINITE), 0);
  EXPECT_TRUE(mproc_lock_locked(l));
  EXPECT_EQ(mproc_lock_acquire(l, 0), MPROC_ETIMEDOUT);            // not recursive: block=False fails
  EXPECT_EQ(mproc_lock_acquire(l, 30), MPROC_ETIMEDOUT);           // and a timeout expires
  std::thread other([&] { EXPECT_EQ(mproc_lock_release(l), 0); }); // any thread (or process) may release
  other.join();
  EXPECT_FALSE(mproc_lock_locked(l));
  EXPECT_FALSE(mproc_lock_is_recursive(l));
  mproc_lock_destroy(l);
  EXPECT_EQ(mproc_lock_create(nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_lock_acquire(nullptr, 0), MPROC_EINVAL);
}

TEST(Lock, RLockIsRecursiveAndOwnedByItsThread) {
  mproc_lock *l = nullptr;
  ASSERT_EQ(mproc_rlock_create(&l), 0);
  EXPECT_TRUE(mproc_lock_is_recursive(l));
  EXPECT_EQ(mproc_lock_release(l), MPROC_ENOTOWNER);
  ASSERT_EQ(mproc_lock_acquire(l, 0), 0);
  ASSERT_EQ(mproc_lock_acquire(l, 0), 0); // again, by its holder
  std::thread other([&] {
    EXPECT_EQ(mproc_lock_release(l), MPROC_ENOTOWNER);
    EXPECT_EQ(mproc_lock_acquire(l, 20), MPROC_ETIMEDOUT);
  });
  other.join();
  EXPECT_EQ(mproc_lock_release(l), 0);
  EXPECT_TRUE(mproc_lock_locked(l)); // one level left
  EXPECT_EQ(mproc_lock_release(l), 0);
  EXPECT_FALSE(mproc_lock_locked(l));
  std::thread taker([&] {
    EXPECT_EQ(mproc_lock_acquire(l, 0), 0);
    EXPECT_EQ(mproc_lock_release(l), 0);
  });
  taker.join();
  mproc_lock_destroy(l);
}

TEST(Lock, ContendedByThreadsLosesNoIncrement) {
  mproc_lock *l = nullptr;
  ASSERT_EQ(mproc_lock_create(&l), 0);
  long counter = 0;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        ASSERT_EQ(mproc_lock_acquire(l, MPROC_INFINITE), 0);
        long c = counter;
        counter = c + 1;
        ASSERT_EQ(mproc_lock_release(l), 0);
      }
    });
  for (auto &t : ts) t.join();
  EXPECT_EQ(counter, 80000);
  mproc_lock_destroy(l);
}

// No system call when uncontended: the PAL counts the kernel calls of waiting and waking.
TEST(Lock, UncontendedAcquireAndReleaseMakeNoKernelCall) {
  mproc_lock *l = nullptr, *r = nullptr;
  mproc_semaphore *s = nullptr;
  mproc_event *e = nullptr;
  ASSERT_EQ(mproc_lock_create(&l), 0);
  ASSERT_EQ(mproc_rlock_create(&r), 0);
  ASSERT_EQ(mproc_semaphore_create(&s, 1), 0);
  ASSERT_EQ(mproc_event_create(&e), 0);
  ASSERT_EQ(mproc_lock_acquire(l, 0), 0); // the identity is cached on first use
  ASSERT_EQ(mproc_lock_release(l), 0);
  uint64_t before = mproc__pal_sync_calls();
  for (int i = 0; i < 10000; ++i) {
    ASSERT_EQ(mproc_lock_acquire(l, MPROC_INFINITE), 0);
    ASSERT_EQ(mproc_lock_release(l), 0);
    ASSERT_EQ(mproc_lock_acquire(r, MPROC_INFINITE), 0);
    ASSERT_EQ(mproc_lock_release(r), 0);
    ASSERT_EQ(mproc_semaphore_acquire(s, MPROC_INFINITE), 0);
    ASSERT_EQ(mproc_semaphore_release(s), 0);
    ASSERT_EQ(mproc_event_set(e), 0);
    ASSERT_EQ(mproc_event_wait(e, MPROC_INFINITE), 0);
    ASSERT_EQ(mproc_event_clear(e), 0);
  }
  EXPECT_EQ(mproc__pal_sync_calls() - before, 0u);
  // and the count moves when there is contention (the test can fail)
  ASSERT_EQ(mproc_lock_acquire(l, 0), 0);
  std::thread waiter([&] {
    EXPECT_EQ(mproc_lock_acquire(l, kLong), 0);
    EXPECT_EQ(mproc_lock_release(l), 0);
  });
  while (mproc__pal_sync_calls() == before) std::this_thread::yield(); // the waiter went to sleep
  ASSERT_EQ(mproc_lock_release(l), 0);
  waiter.join();
  mproc_lock_destroy(l);
  mproc_lock_destroy(r);
  mproc_semaphore_destroy(s);
  mproc_event_destroy(e);
}

TEST(Semaphore, CountsAndBounds) {
  mproc_semaphore *s = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_semaphore_create(&s, 2), 0);
  EXPECT_EQ(mproc_semaphore_value(s), 2u);
  EXPECT_EQ(mproc_semaphore_acquire(s, 0), 0);
  EXPECT_EQ(mproc_semaphore_acquire(s, 0), 0);
  EXPECT_EQ(mproc_semaphore_acquire(s, 0), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_semaphore_acquire(s, 20), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_semaphore_release(s), 0);
  EXPECT_EQ(mproc_semaphore_release(s), 0);
  EXPECT_EQ(mproc_semaphore_release(s), 0); // a Semaphore is not bounded by its initial value
  EXPECT_EQ(mproc_semaphore_value(s), 3u);
  ASSERT_EQ(mproc_bounded_semaphore_create(&b, 1), 0);
  EXPECT_EQ(mproc_semaphore_release(b), MPROC_ESTATE); // above its initial value: nothing changes
  EXPECT_EQ(mproc_semaphore_value(b), 1u);
  mproc_semaphore *big = nullptr;
  ASSERT_EQ(mproc_semaphore_create(&big, MPROC_SEM_VALUE_MAX), 0);
  EXPECT_EQ(mproc_semaphore_release(big), MPROC_ESTATE);
  mproc_semaphore_destroy(big);
  EXPECT_EQ(mproc_semaphore_create(&big, MPROC_SEM_VALUE_MAX + 1u), MPROC_EINVAL);
  EXPECT_EQ(big, nullptr);
  std::thread t([&] { EXPECT_EQ(mproc_semaphore_acquire(b, 0), 0); });
  t.join();
  std::thread waiter([&] { EXPECT_EQ(mproc_semaphore_acquire(b, kLong), 0); });
  EXPECT_EQ(mproc_semaphore_release(b), 0);
  waiter.join();
  mproc_semaphore_destroy(s);
  mproc_semaphore_destroy(b);
}

TEST(Event, SetClearWait) {
  mproc_event *e = nullptr;
  ASSERT_EQ(mproc_event_create(&e), 0);
  EXPECT_FALSE(mproc_event_is_set(e));
  EXPECT_EQ(mproc_event_wait(e, 0), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_event_wait(e, 20), MPROC_ETIMEDOUT);
  std::thread waiter([&] { EXPECT_EQ(mproc_event_wait(e, kLong), 0); });
  ASSERT_EQ(mproc_event_set(e), 0);
  waiter.join();
  EXPECT_TRUE(mproc_event_is_set(e));
  EXPECT_EQ(mproc_event_wait(e, 0), 0);
  ASSERT_EQ(mproc_event_clear(e), 0);
  EXPECT_FALSE(mproc_event_is_set(e));
  mproc_event_destroy(e);
}

TEST(Condition, WaitNeedsTheLockAndTimesOut) {
  mproc_condition *c = nullptr;
  ASSERT_EQ(mproc_condition_create(&c, nullptr), 0);
  mproc_lock *l = mproc_condition_lock(c);
  ASSERT_NE(l, nullptr);
  EXPECT_TRUE(mproc_lock_is_recursive(l)); // Python's default: an RLock
  EXPECT_EQ(mproc_condition_wait(c, 0), MPROC_ENOTOWNER);
  EXPECT_EQ(mproc_condition_notify(c, 1), MPROC_ENOTOWNER);
  ASSERT_EQ(mproc_lock_acquire(l, 0), 0);
  ASSERT_EQ(mproc_lock_acquire(l, 0), 0); // two levels: wait releases both and takes both back
  EXPECT_EQ(mproc_condition_wait(c, 20), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_lock_release(l), 0);
  EXPECT_EQ(mproc_lock_release(l), 0);
  EXPECT_EQ(mproc_lock_release(l), MPROC_ENOTOWNER);
  mproc_condition_destroy(c);
}

bool flag_is_set(void *ctx) { return static_cast<std::atomic<bool> *>(ctx)->load(); }

TEST(Condition, NotifyWakesAtMostNThreadsThenNotifyAllTheRest) {
  mproc_condition *c = nullptr;
  ASSERT_EQ(mproc_condition_create(&c, nullptr), 0);
  mproc_lock *l = mproc_condition_lock(c);
  std::atomic<int> waiting{0}, notified{0}, timed_out{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      ASSERT_EQ(mproc_lock_acquire(l, MPROC_INFINITE), 0);
      ++waiting;
      int rc = mproc_condition_wait(c, kLong);
      (rc == 0 ? notified : timed_out)++;
      ASSERT_EQ(mproc_lock_release(l), 0);
    });
  for (;;) { // every one is inside wait once it has let the lock go with waiting counted
    ASSERT_EQ(mproc_lock_acquire(l, MPROC_INFINITE), 0);
    bool all = waiting == 4;
    if (all) break;
    ASSERT_EQ(mproc_lock_release(l), 0);
    std::this_thread::yield();
  }
  ASSERT_EQ(mproc_condition_notify(c, 2), 0);
  ASSERT_EQ(mproc_lock_release(l), 0);
  while (notified < 2) std::this_thread::yield();
  ASSERT_EQ(mproc_lock_acquire(l, MPROC_INFINITE), 0);
  EXPECT_EQ(notified.load(), 2);
  ASSERT_EQ(mproc_condition_notify_all(c), 0);
  ASSERT_EQ(mproc_lock_release(l), 0);
  for (auto &t : ts) t.join();
  EXPECT_EQ(notified.load(), 4);
  EXPECT_EQ(timed_out.load(), 0);
  // wait_for
  std::atomic<bool> flag{false};
  std::thread setter([&] {
    ASSERT_EQ(mproc_lock_acquire(l, MPROC_INFINITE), 0);
    flag = true;
    ASSERT_EQ(mproc_condition_notify(c, 1), 0);
    ASSERT_EQ(mproc_lock_release(l), 0);
  });
  ASSERT_EQ(mproc_lock_acquire(l, MPROC_INFINITE), 0);
  EXPECT_EQ(mproc_condition_wait_for(c, flag_is_set, &flag, kLong), 0);
  EXPECT_TRUE(flag.load());
  ASSERT_EQ(mproc_lock_release(l), 0);
  setter.join();
  mproc_condition_destroy(c);
}

TEST(Barrier, ThreadsGetEveryIndexOnceAndTheActionRunsOnce) {
  static std::atomic<int> actions{0};
  actions = 0;
  mproc_barrier *b = nullptr;
  ASSERT_EQ(mproc_barrier_create(
                &b, 3, [] { return ++actions, 0; }, MPROC_INFINITE),
            0);
  EXPECT_EQ(mproc_barrier_parties(b), 3u);
  for (int round = 0; round < 3; ++round) {
    std::vector<uint32_t> idx(3, 99);
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i) ts.emplace_back([&, i] { EXPECT_EQ(mproc_barrier_wait(b, kLong, &idx[i]), 0); });
    for (auto &t : ts) t.join();
    EXPECT_EQ(std::set<uint32_t>(idx.begin(), idx.end()), (std::set<uint32_t>{0, 1, 2}));
  }
  EXPECT_EQ(actions.load(), 3);
  // a wait that times out breaks it, for everyone, until reset
  EXPECT_EQ(mproc_barrier_wait(b, 20, nullptr), MPROC_EBROKEN);
  EXPECT_TRUE(mproc_barrier_broken(b));
  EXPECT_EQ(mproc_barrier_wait(b, kLong, nullptr), MPROC_EBROKEN);
  ASSERT_EQ(mproc_barrier_reset(b), 0);
  EXPECT_FALSE(mproc_barrier_broken(b));
  // abort while two wait: both get MPROC_EBROKEN
  std::vector<std::thread> ts;
  std::atomic<int> broken{0};
  for (int i = 0; i < 2; ++i)
    ts.emplace_back([&] {
      if (mproc_barrier_wait(b, kLong, nullptr) == MPROC_EBROKEN) ++broken;
    });
  while (mproc_barrier_n_waiting(b) < 2) std::this_thread::yield();
  ASSERT_EQ(mproc_barrier_abort(b), 0);
  for (auto &t : ts) t.join();
  EXPECT_EQ(broken.load(), 2);
  // reset while one waits: it gets MPROC_EBROKEN, and the barrier works again
  ASSERT_EQ(mproc_barrier_reset(b), 0);
  std::thread one([&] { EXPECT_EQ(mproc_barrier_wait(b, kLong, nullptr), MPROC_EBROKEN); });
  while (mproc_barrier_n_waiting(b) < 1) std::this_thread::yield();
  ASSERT_EQ(mproc_barrier_reset(b), 0);
  one.join();
  EXPECT_FALSE(mproc_barrier_broken(b));
  mproc_barrier_destroy(b);
  EXPECT_EQ(mproc_barrier_create(&b, 0, nullptr, MPROC_INFINITE), MPROC_EINVAL);
}

TEST(Value, TypecodesGetSetAndAtomics) {
  struct Case {
    char tc;
    size_t size;
  } cases[] = {
      {'c', 1}, {'b', 1}, {'B', 1}, {'h', 2}, {'H', 2}, {'i', 4}, {'I', 4}, {'l', sizeof(long)}, {'L', sizeof(long)},
      {'q', 8}, {'Q', 8}, {'f', 4}, {'d', 8}};
  for (const Case &k : cases) {
    SCOPED_TRACE(k.tc);
    mproc_value *v = nullptr;
    ASSERT_EQ(mproc_value_create(&v, k.tc, nullptr), 0);
    EXPECT_EQ(mproc_value_elem_size(v), k.size);
    EXPECT_EQ(mproc_value_length(v), 1u);
    unsigned char zero[8] = {0}, got[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    ASSERT_EQ(mproc_value_get(v, got), 0);
    EXPECT_EQ(memcmp(got, zero, k.size), 0); // zeroed
    mproc_value_destroy(v);
  }
  mproc_value *v = nullptr;
  int64_t init = -7;
  ASSERT_EQ(mproc_value_create(&v, 'q', &init), 0);
  int64_t old = 0;
  ASSERT_EQ(mproc_value_fetch_add(v, 10, &old), 0);
  EXPECT_EQ(old, -7);
  int64_t expected = 0;
  EXPECT_EQ(mproc_value_compare_exchange(v, &expected, 5), MPROC_ESTATE);
  EXPECT_EQ(expected, 3);
  EXPECT_EQ(mproc_value_compare_exchange(v, &expected, 5), 0);
  int64_t now = 0;
  ASSERT_EQ(mproc_value_get(v, &now), 0);
  EXPECT_EQ(now, 5);
  EXPECT_NE(mproc_value_lock(v), nullptr);
  mproc_value_destroy(v);
  ASSERT_EQ(mproc_value_create(&v, 'd', nullptr), 0);
  EXPECT_EQ(mproc_value_fetch_add(v, 1, &old), MPROC_EINVAL); // not an integer
  mproc_value_destroy(v);
  EXPECT_EQ(mproc_value_create(&v, 'x', nullptr), MPROC_EINVAL);
  // an Array, a raw one, one with the caller's lock, a struct of one's own
  double init3[3] = {1, 2, 3};
  ASSERT_EQ(mproc_array_create(&v, 'd', 3, init3), 0);
  double d = 0;
  ASSERT_EQ(mproc_array_get(v, 2, &d), 0);
  EXPECT_EQ(d, 3.0);
  d = -1;
  ASSERT_EQ(mproc_array_set(v, 0, &d), 0);
  EXPECT_EQ(static_cast<double *>(mproc_value_ptr(v))[0], -1.0);
  EXPECT_EQ(mproc_array_get(v, 3, &d), MPROC_EINVAL);
  mproc_value_destroy(v);
  mproc_lock *l = nullptr;
  ASSERT_EQ(mproc_lock_create(&l), 0);
  mproc_shared_opts o{};
  o.typecode = 'i';
  o.lock = l;
  ASSERT_EQ(mproc_shared_create(&v, &o), 0);
  EXPECT_EQ(mproc_value_lock(v), l);
  mproc_value_destroy(v);
  o.raw = true;
  EXPECT_EQ(mproc_shared_create(&v, &o), MPROC_EINVAL); // raw with a lock
  o.lock = nullptr;
  ASSERT_EQ(mproc_shared_create(&v, &o), 0);
  EXPECT_EQ(mproc_value_lock(v), nullptr);
  mproc_value_destroy(v);
  struct Mine {
    double x;
    char name[40];
  };
  mproc_shared_opts so{};
  so.elem_size = sizeof(Mine);
  so.align = 64;
  so.length = 10;
  ASSERT_EQ(mproc_shared_create(&v, &so), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(mproc_value_ptr(v)) % 64, 0u);
  EXPECT_EQ(mproc_value_length(v), 10u);
  mproc_value_destroy(v);
  so.align = 3;
  EXPECT_EQ(mproc_shared_create(&v, &so), MPROC_EINVAL);
  mproc_lock_destroy(l);
}

// ---- across processes --------------------------------------------------------------------------------

std::vector<mproc_start_method> methods() {
  if (kWindows) return {MPROC_START_SPAWN};
  return {MPROC_START_FORK, MPROC_START_SPAWN, MPROC_START_FORKSERVER};
}

std::string method_name(const ::testing::TestParamInfo<mproc_start_method> &i) {
  return std::string(mproc_start_method_name(i.param));
}

class SyncAcross : public ::testing::TestWithParam<mproc_start_method> {
 protected:
  // Start a child running target with these objects handed to it.
  mproc_process *start(mproc_target target, std::vector<mproc_object> objs, int n = 0) {
    return mproc_test::start_child(target, std::move(objs), &n, sizeof n, GetParam());
  }
  static int join(mproc_process *p) { return mproc_test::join_child(p, kLong); }
};

const int kIncrements = 100000;

// objects: a lock, a raw 'q' counter
int t_increment(const mproc_args *a) {
  if (a->object_count != 2) return 10;
  mproc_lock *l = (mproc_lock *)a->objects[0];
  mproc_value *v = (mproc_value *)a->objects[1];
  volatile int64_t *c = (volatile int64_t *)mproc_value_ptr(v);
  for (int i = 0; i < kIncrements; ++i) {
    if (mproc_lock_acquire(l, MPROC_INFINITE) != 0) return 11;
    *c = *c + 1;
    if (mproc_lock_release(l) != 0) return 12;
  }
  return 0;
}

TEST_P(SyncAcross, FourProcessesIncrementUnderTheLockAndLoseNothing) {
  mproc_lock *l = nullptr;
  mproc_value *v = nullptr;
  ASSERT_EQ(mproc_lock_create(&l), 0);
  mproc_shared_opts o{};
  o.typecode = 'q';
  o.raw = true;
  ASSERT_EQ(mproc_shared_create(&v, &o), 0);
  std::vector<mproc_process *> ps;
  for (int i = 0; i < 4; ++i) ps.push_back(start(t_increment, {mproc_object_lock(l), mproc_object_value(v)}));
  for (mproc_process *p : ps) EXPECT_EQ(join(p), 0);
  EXPECT_EQ(*(int64_t *)mproc_value_ptr(v), 4 * kIncrements);
  mproc_value_destroy(v);
  mproc_lock_destroy(l);
}

// objects: a lock (or RLock), an event "held"; n: 0 hold until killed, 1 return while holding
int t_hold(const mproc_args *a) {
  mproc_lock *l = (mproc_lock *)a->objects[0];
  mproc_event *held = (mproc_event *)a->objects[1];
  int how = *(const int *)a->data;
  int rc = mproc_lock_acquire(l, MPROC_INFINITE);
  if (rc != 0 && rc != MPROC_EOWNERDEAD) return 10;
  mproc_event_set(held);
  if (how == 1) return 0; // a normal exit, still holding
  mproc_event *never = nullptr;
  mproc_event_create(&never);
  mproc_event_wait(never, MPROC_INFINITE);
  return 11;
}

TEST_P(SyncAcross, AHolderThatDiesHandsTheLockOnWithOwnerDead) {
  for (bool recursive : {false, true})
    for (int how : {0, 1}) {
      SCOPED_TRACE(std::string(recursive ? "RLock" : "Lock") + (how ? ", normal exit" : ", killed"));
      mproc_lock *l = nullptr;
      mproc_event *held = nullptr;
      ASSERT_EQ(recursive ? mproc_rlock_create(&l) : mproc_lock_create(&l), 0);
      ASSERT_EQ(mproc_event_create(&held), 0);
      mproc_process *p = start(t_hold, {mproc_object_lock(l), mproc_object_event(held)}, how);
      ASSERT_NE(p, nullptr);
      ASSERT_EQ(mproc_event_wait(held, kLong), 0);
      if (how == 0) { // held by the living child (one that returned may be gone: a try would take it)
        EXPECT_EQ(mproc_lock_acquire(l, 0), MPROC_ETIMEDOUT);
      }
      // a waiter already asleep when the holder dies learns it too
      std::atomic<int> waited{1};
      std::thread waiter([&] {
        waited = mproc_lock_acquire(l, kLong);
        if (waited == 0 || waited == MPROC_EOWNERDEAD) mproc_lock_release(l);
      });
      if (how == 0) {
        ASSERT_EQ(mproc_process_kill(p), 0);
      }
      ASSERT_EQ(mproc_process_join(p, kLong), 0);
      waiter.join();
      EXPECT_EQ(waited.load(), MPROC_EOWNERDEAD);
      EXPECT_EQ(mproc_lock_acquire(l, 0), 0); // recovered: an ordinary lock again
      EXPECT_EQ(mproc_lock_release(l), 0);
      mproc_process_destroy(p);
      mproc_event_destroy(held);
      mproc_lock_destroy(l);
    }
}

// A try (timeout 0) is an acquirer too: once the holder has died, it takes the lock with MPROC_EOWNERDEAD
// (sync.h: "the next acquirer gets the lock and MPROC_EOWNERDEAD"), or a program that polls never gets it.
TEST_P(SyncAcross, ATryAfterTheHolderDiedTakesTheLockWithOwnerDead) {
  for (bool recursive : {false, true}) {
    SCOPED_TRACE(recursive ? "RLock" : "Lock");
    mproc_lock *l = nullptr;
    mproc_event *held = nullptr;
    ASSERT_EQ(recursive ? mproc_rlock_create(&l) : mproc_lock_create(&l), 0);
    ASSERT_EQ(mproc_event_create(&held), 0);
    mproc_process *p = start(t_hold, {mproc_object_lock(l), mproc_object_event(held)}, 1);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(join(p), 0); // it returned holding the lock
    EXPECT_TRUE(mproc_lock_locked(l));
    int rc = mproc_lock_acquire(l, 0);
    EXPECT_EQ(rc, MPROC_EOWNERDEAD);
    if (rc == MPROC_EOWNERDEAD) {
      EXPECT_EQ(mproc_lock_release(l), 0);
      EXPECT_EQ(mproc_lock_acquire(l, 0), 0); // recovered: an ordinary lock again
      EXPECT_EQ(mproc_lock_release(l), 0);
    }
    mproc_event_destroy(held);
    mproc_lock_destroy(l);
  }
}

// objects: condition, a 'i' array of results (1 notified, 2 timed out), a semaphore "waiting"
int t_cond_wait(const mproc_args *a) {
  mproc_condition *c = (mproc_condition *)a->objects[0];
  mproc_value *res = (mproc_value *)a->objects[1];
  mproc_semaphore *waiting = (mproc_semaphore *)a->objects[2];
  int me = *(const int *)a->data;
  mproc_lock *l = mproc_condition_lock(c);
  if (mproc_lock_acquire(l, MPROC_INFINITE) != 0) return 10;
  mproc_semaphore_release(waiting); // the lock is held until wait has taken a slot
  int rc = mproc_condition_wait(c, kLong);
  int r = rc == 0 ? 1 : rc == MPROC_ETIMEDOUT ? 2 : 3;
  mproc_array_set(res, (size_t)me, &r);
  mproc_lock_release(l);
  return 0;
}

TEST_P(SyncAcross, ConditionNotifyReachesAtMostNAndSkipsADeadWaiter) {
  mproc_condition *c = nullptr;
  mproc_value *res = nullptr;
  mproc_semaphore *waiting = nullptr;
  ASSERT_EQ(mproc_condition_create(&c, nullptr), 0);
  ASSERT_EQ(mproc_array_create(&res, 'i', 5, nullptr), 0);
  ASSERT_EQ(mproc_semaphore_create(&waiting, 0), 0);
  mproc_lock *l = mproc_condition_lock(c);
  std::vector<mproc_process *> ps;
  for (int i = 0; i < 5; ++i) {
    ps.push_back(
        start(t_cond_wait, {mproc_object_condition(c), mproc_object_value(res), mproc_object_semaphore(waiting)}, i));
    ASSERT_EQ(mproc_semaphore_acquire(waiting, kLong), 0); // it holds the lock ...
    ASSERT_EQ(mproc_lock_acquire(l, kLong), 0);            // ... until it waits
    ASSERT_EQ(mproc_lock_release(l), 0);
  }
  // waiter 0 dies inside wait: notify(2) must reach two living waiters, not spend one on the dead
  ASSERT_EQ(mproc_process_kill(ps[0]), 0);
  ASSERT_EQ(mproc_process_join(ps[0], kLong), 0);
  ASSERT_EQ(mproc_lock_acquire(l, kLong), 0);
  ASSERT_EQ(mproc_condition_notify(c, 2), 0);
  ASSERT_EQ(mproc_lock_release(l), 0);
  int *r = (int *)mproc_value_ptr(res);
  std::set<int> done; // the two notified end; wait for them (each wait a bounded one)
  int64_t deadline = mproc__pal_monotonic_ns() + kLong * 1000000;
  for (int k = 1; done.size() < 2 && mproc__pal_monotonic_ns() < deadline; k = k % 4 + 1) {
    mproc_waitable w = mproc_waitable_process(ps[k]);
    if (!done.count(k) && mproc_wait(&w, 1, 10, nullptr) == 0) done.insert(k);
  }
  ASSERT_EQ(done.size(), 2u);
  for (int k : done) EXPECT_EQ(r[k], 1) << k;
  // the other two still wait: notify_all releases them, notified too
  ASSERT_EQ(mproc_lock_acquire(l, kLong), 0);
  ASSERT_EQ(mproc_condition_notify_all(c), 0);
  ASSERT_EQ(mproc_lock_release(l), 0);
  for (int k = 1; k < 5; ++k) EXPECT_EQ(join(ps[k]), 0);
  mproc_process_destroy(ps[0]);
  for (int k = 1; k < 5; ++k) EXPECT_EQ(r[k], 1) << k;
  mproc_condition_destroy(c);
  mproc_value_destroy(res);
  mproc_semaphore_destroy(waiting);
}

mproc_value *g_actions; // the action's counter in each process

int count_action() {
  int64_t old = 0;
  return g_actions && mproc_value_fetch_add(g_actions, 1, &old) == 0 ? 0 : 1;
}

// objects: barrier, 'q' action counter, 'i' array of indexes; n: the slot; a negative n: wait, then
// be killed (never returns from the wait in time)
int t_barrier(const mproc_args *a) {
  mproc_barrier *b = (mproc_barrier *)a->objects[0];
  g_actions = (mproc_value *)a->objects[1];
  mproc_value *idx = (mproc_value *)a->objects[2];
  int me = *(const int *)a->data;
  uint32_t i = 99;
  int rc = mproc_barrier_wait(b, kLong, &i);
  int r = rc == 0 ? (int)i : rc == MPROC_EBROKEN ? -2 : -3;
  mproc_array_set(idx, (size_t)me, &r);
  return 0;
}

TEST_P(SyncAcross, BarrierLinesUpProcessesAndBreaksWhenOneDies) {
  mproc_barrier *b = nullptr;
  mproc_value *actions = nullptr, *idx = nullptr;
  ASSERT_EQ(mproc_barrier_create(&b, 4, count_action, MPROC_INFINITE), 0);
  ASSERT_EQ(mproc_value_create(&actions, 'q', nullptr), 0);
  ASSERT_EQ(mproc_array_create(&idx, 'i', 4, nullptr), 0);
  g_actions = actions;
  std::vector<mproc_object> objs = {mproc_object_barrier(b), mproc_object_value(actions), mproc_object_value(idx)};
  std::vector<mproc_process *> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(start(t_barrier, objs, i));
  uint32_t mine = 99;
  ASSERT_EQ(mproc_barrier_wait(b, kLong, &mine), 0);
  for (mproc_process *p : ps) EXPECT_EQ(join(p), 0);
  int *r = (int *)mproc_value_ptr(idx);
  std::set<int> all = {r[0], r[1], r[2], (int)mine};
  EXPECT_EQ(all, (std::set<int>{0, 1, 2, 3}));
  EXPECT_EQ(*(int64_t *)mproc_value_ptr(actions), 1); // exactly one waiter ran it

  // two wait, one of them is killed: the other (and the parent) get MPROC_EBROKEN, none is stuck
  ps.clear();
  for (int i = 0; i < 2; ++i) ps.push_back(start(t_barrier, objs, i));
  while (mproc_barrier_n_waiting(b) < 2) std::this_thread::yield();
  ASSERT_EQ(mproc_process_kill(ps[0]), 0);
  ASSERT_EQ(mproc_process_join(ps[0], kLong), 0);
  EXPECT_EQ(join(ps[1]), 0);
  EXPECT_EQ(r[1], -2);
  EXPECT_TRUE(mproc_barrier_broken(b));
  EXPECT_EQ(mproc_barrier_wait(b, kLong, nullptr), MPROC_EBROKEN);
  mproc_process_destroy(ps[0]);
  g_actions = nullptr;
  mproc_barrier_destroy(b);
  mproc_value_destroy(actions);
  mproc_value_destroy(idx);
}

// objects: condition, event "notified"; the child takes the condition's lock, notifies, says so and is
// killed while it still holds the lock
int t_notify_and_die(const mproc_args *a) {
  mproc_condition *c = (mproc_condition *)a->objects[0];
  mproc_event *done = (mproc_event *)a->objects[1];
  mproc_lock *l = mproc_condition_lock(c);
  if (mproc_lock_acquire(l, MPROC_INFINITE) != 0) return 10;
  if (mproc_condition_notify(c, 1) != 0) return 11;
  mproc_event_set(done);
  mproc_event *never = nullptr;
  mproc_event_create(&never);
  mproc_event_wait(never, MPROC_INFINITE);
  return 12;
}

TEST_P(SyncAcross, ConditionWaitTakesTheLockBackFromAHolderThatDied) {
  mproc_condition *c = nullptr;
  mproc_event *done = nullptr;
  ASSERT_EQ(mproc_condition_create(&c, nullptr), 0);
  ASSERT_EQ(mproc_event_create(&done), 0);
  mproc_lock *l = mproc_condition_lock(c);
  ASSERT_EQ(mproc_lock_acquire(l, 0), 0);
  std::atomic<int> waited{1};
  std::thread killer; // kills the child once it has notified while holding the lock
  mproc_process *p = start(t_notify_and_die, {mproc_object_condition(c), mproc_object_event(done)});
  ASSERT_NE(p, nullptr);
  killer = std::thread([&] {
    EXPECT_EQ(mproc_event_wait(done, kLong), 0);
    EXPECT_EQ(mproc_process_kill(p), 0);
  });
  waited = mproc_condition_wait(c, kLong); // releases the lock: the child takes it, notifies, dies
  killer.join();
  EXPECT_EQ(waited.load(), MPROC_EOWNERDEAD);
  EXPECT_EQ(mproc_lock_release(l), 0); // held again, by this thread
  EXPECT_EQ(join(p), -9);              // kill(), as Python reports it on every platform
  mproc_event_destroy(done);
  mproc_condition_destroy(c);
}

// objects: barrier; waits and reports through its exit code: 0 passed, 2 broken
int t_barrier_exit(const mproc_args *a) {
  int rc = mproc_barrier_wait((mproc_barrier *)a->objects[0], kLong, nullptr);
  return rc == 0 ? 0 : rc == MPROC_EBROKEN ? 2 : 3;
}

TEST_P(SyncAcross, BarrierAbortAndResetReachEveryWaitingProcess) {
  mproc_barrier *b = nullptr;
  ASSERT_EQ(mproc_barrier_create(&b, 4, nullptr, MPROC_INFINITE), 0);
  std::vector<mproc_process *> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(start(t_barrier_exit, {mproc_object_barrier(b)}));
  while (mproc_barrier_n_waiting(b) < 3) std::this_thread::yield();
  ASSERT_EQ(mproc_barrier_abort(b), 0);
  for (mproc_process *p : ps) EXPECT_EQ(join(p), 2);
  EXPECT_TRUE(mproc_barrier_broken(b));
  ASSERT_EQ(mproc_barrier_reset(b), 0);
  ps.clear();
  for (int i = 0; i < 2; ++i) ps.push_back(start(t_barrier_exit, {mproc_object_barrier(b)}));
  while (mproc_barrier_n_waiting(b) < 2) std::this_thread::yield();
  ASSERT_EQ(mproc_barrier_reset(b), 0); // the two waiting get broken; the barrier is whole again
  for (mproc_process *p : ps) EXPECT_EQ(join(p), 2);
  EXPECT_FALSE(mproc_barrier_broken(b));
  ps.clear();
  for (int i = 0; i < 3; ++i) ps.push_back(start(t_barrier_exit, {mproc_object_barrier(b)}));
  EXPECT_EQ(mproc_barrier_wait(b, kLong, nullptr), 0);
  for (mproc_process *p : ps) EXPECT_EQ(join(p), 0);
  mproc_barrier_destroy(b);
}

// objects: lock, raw 'q' array {counter, inside}; hammer the lock until killed
int t_hammer(const mproc_args *a) {
  mproc_lock *l = (mproc_lock *)a->objects[0];
  volatile int64_t *st = (volatile int64_t *)mproc_value_ptr((mproc_value *)a->objects[1]);
  for (;;) {
    int rc = mproc_lock_acquire(l, MPROC_INFINITE);
    if (rc != 0 && rc != MPROC_EOWNERDEAD) return 10;
    if (rc == MPROC_EOWNERDEAD) st[1] = 0; // repair: whoever died inside left "inside" set
    if (st[1] != 0) return 11;             // two inside at once: the lock failed
    st[1] = 1;
    st[0] = st[0] + 1;
    st[1] = 0;
    if (mproc_lock_release(l) != 0) return 12;
  }
}

// Holders killed at random moments, again and again: the lock is never bricked and never held twice.
TEST_P(SyncAcross, KillingHoldersAtRandomMomentsNeverBricksTheLock) {
  mproc_lock *l = nullptr;
  mproc_value *st = nullptr;
  ASSERT_EQ(mproc_lock_create(&l), 0);
  mproc_shared_opts o{};
  o.typecode = 'q';
  o.length = 2;
  o.raw = true;
  ASSERT_EQ(mproc_shared_create(&st, &o), 0);
  volatile int64_t *s = (volatile int64_t *)mproc_value_ptr(st);
  std::vector<mproc_process *> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(start(t_hammer, {mproc_object_lock(l), mproc_object_value(st)}));
  unsigned seed = 12345;
  int rounds = mproc_test::kWindows ? 10 : 30;
  for (int round = 0; round < rounds; ++round) {
    int64_t target = s[0] + 50 + (seed = seed * 1103515245u + 12345u) % 5000; // a moment of its own
    int64_t deadline = mproc__pal_monotonic_ns() + kLong * 1000000;
    while (s[0] < target && mproc__pal_monotonic_ns() < deadline) std::this_thread::yield();
    ASSERT_GE(s[0], target) << "the hammering stopped: the lock is stuck";
    size_t k = seed % ps.size();
    ASSERT_EQ(mproc_process_kill(ps[k]), 0);
    EXPECT_EQ(join(ps[k]), -9); // killed, not failed: exit codes 10-12 would say the lock broke
    ps[k] = start(t_hammer, {mproc_object_lock(l), mproc_object_value(st)});
  }
  for (mproc_process *p : ps) {
    ASSERT_EQ(mproc_process_kill(p), 0);
    EXPECT_EQ(join(p), -9);
  }
  int rc = mproc_lock_acquire(l, kLong); // usable: free, or taken over from the last one killed
  EXPECT_TRUE(rc == 0 || rc == MPROC_EOWNERDEAD) << rc;
  EXPECT_EQ(mproc_lock_release(l), 0);
  mproc_value_destroy(st);
  mproc_lock_destroy(l);
}

int t_nothing(const mproc_args *) { return 0; }

// A barrier whose action cannot be found again in another process cannot be handed on: MPROC_ENOENT,
// from the start (spawn) and from a send, and nothing is started or sent.
TEST(SyncObjects, ABarrierWithAnActionOutsideAnyModuleIsNotHandedOn) {
  std::vector<char> fake(64); // heap memory: no module's function
  mproc_barrier *b = nullptr;
  ASSERT_EQ(mproc_barrier_create(&b, 2, (mproc_barrier_action)(void *)fake.data(), MPROC_INFINITE), 0);
  mproc_object objs[] = {mproc_object_barrier(b)};
  mproc_process_opts o{};
  o.target = t_nothing;
  o.objects = objs;
  o.object_count = 1;
  o.start_method = MPROC_START_SPAWN;
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, &o), 0);
  EXPECT_EQ(mproc_process_start(p), MPROC_ENOENT);
  EXPECT_NE(std::string(mproc_last_error()).find("action"), std::string::npos) << mproc_last_error();
  mproc_process_destroy(p);
  mproc_connection *a = nullptr, *c = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &c), 0);
  EXPECT_EQ(mproc_connection_send_object(a, objs[0], 0), MPROC_ENOENT);
  EXPECT_EQ(mproc_connection_poll(c, 0), MPROC_ETIMEDOUT); // nothing was sent
  mproc_connection_destroy(a);
  mproc_connection_destroy(c);
  mproc_barrier_destroy(b);
}

// A program started with mproc_popen never gets an object: its handles are not inheritable.
TEST(SyncObjects, AProgramStartedWithPopenInheritsNone) {
  mproc_lock *l = nullptr;
  ASSERT_EQ(mproc_lock_create(&l), 0);
  EXPECT_TRUE(mproc__pal_get_cloexec(l->o.shm.h));
  EXPECT_TRUE(kWindows || l->o.wq == MPROC_NO_HANDLE);
  if (kWindows) { // a handle value may name another handle in a new process: the flag is the test there
    EXPECT_TRUE(mproc__pal_get_cloexec(l->o.wq));
    mproc_lock_destroy(l);
    return;
  }
  std::string helper = mproc_test::helper_path();
  std::string h = std::to_string((long long)l->o.shm.h);
  const char *argv[] = {helper.c_str(), "hasfd", h.c_str(), nullptr};
  mproc_popen_opts po{};
  po.argv = argv;
  po.capture_output = true;
  po.inherit_fds = true; // even when the child inherits what is inheritable
  mproc_completed r{};
  ASSERT_EQ(mproc_run(&po, kLong, &r), 0) << mproc_last_error();
  EXPECT_EQ(std::string(r.stdout_data ? r.stdout_data : ""), "no");
  mproc_completed_free(&r);
  mproc_lock_destroy(l);
}

// A lock and a value sent to a running child over a connection.
int t_receive_and_increment(const mproc_args *a) {
  mproc_connection *c = a->connections[0];
  void *l = nullptr, *v = nullptr;
  if (mproc_connection_recv_object(c, MPROC_OBJECT_LOCK, kLong, &l) != 0) return 10;
  if (mproc_connection_recv_object(c, MPROC_OBJECT_VALUE, kLong, &v) != 0) return 11;
  for (int i = 0; i < 1000; ++i) {
    if (mproc_lock_acquire((mproc_lock *)l, MPROC_INFINITE) != 0) return 12;
    int64_t x = 0;
    mproc_value_get((mproc_value *)v, &x);
    ++x;
    mproc_value_set((mproc_value *)v, &x);
    mproc_lock_release((mproc_lock *)l);
  }
  mproc_lock_destroy((mproc_lock *)l);
  mproc_value_destroy((mproc_value *)v);
  return 0;
}

TEST_P(SyncAcross, ObjectsSentToARunningProcessAreTheSameObjects) {
  mproc_connection *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  mproc_process_opts o{};
  o.target = t_receive_and_increment;
  o.connections = &b;
  o.connection_count = 1;
  o.start_method = GetParam();
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, &o), 0);
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  mproc_lock *l = nullptr;
  mproc_value *v = nullptr;
  ASSERT_EQ(mproc_lock_create(&l), 0);
  ASSERT_EQ(mproc_value_create(&v, 'q', nullptr), 0);
  int64_t pid = mproc_process_pid(p);
  ASSERT_EQ(mproc_connection_send_object(a, mproc_object_lock(l), pid), 0) << mproc_last_error();
  ASSERT_EQ(mproc_connection_send_object(a, mproc_object_value(v), pid), 0) << mproc_last_error();
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(mproc_lock_acquire(l, MPROC_INFINITE), 0);
    int64_t x = 0;
    mproc_value_get(v, &x);
    ++x;
    mproc_value_set(v, &x);
    mproc_lock_release(l);
  }
  EXPECT_EQ(join(p), 0);
  int64_t x = 0;
  ASSERT_EQ(mproc_value_get(v, &x), 0);
  EXPECT_EQ(x, 2000);
  mproc_lock_destroy(l);
  mproc_value_destroy(v);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
}

INSTANTIATE_TEST_SUITE_P(Methods, SyncAcross, ::testing::ValuesIn(methods()), method_name);

// ---- SharedMemory ------------------------------------------------------------------------------------

TEST(SharedMemory, CreateAttachNameRulesAndAForeignProgram) {
  mproc_shared_memory *m = nullptr, *m2 = nullptr;
  EXPECT_EQ(mproc_shared_memory_create(&m, "bad/name", 10, false), MPROC_EINVAL);
  EXPECT_EQ(mproc_shared_memory_create(&m, ".hidden", 10, false), MPROC_EINVAL);
  EXPECT_EQ(mproc_shared_memory_create(&m, std::string(31, 'a').c_str(), 10, false), MPROC_EINVAL);
  EXPECT_EQ(mproc_shared_memory_create(&m, nullptr, 0, false), MPROC_EINVAL);
  ASSERT_EQ(mproc_shared_memory_create(&m, nullptr, 100, false), 0) << mproc_last_error();
  std::string name = mproc_shared_memory_name(m);
  EXPECT_EQ(name.rfind("mp-", 0), 0u);
  EXPECT_LE(name.size(), (size_t)MPROC_SHM_NAME_MAX);
  EXPECT_EQ(mproc_shared_memory_size(m), 100u);
  EXPECT_EQ(static_cast<char *>(mproc_shared_memory_buf(m))[99], 0); // zeroed
  memcpy(mproc_shared_memory_buf(m), "shared by name", 14);
  EXPECT_EQ(mproc_shared_memory_create(&m2, name.c_str(), 10, false), MPROC_EEXIST);
  ASSERT_EQ(mproc_shared_memory_attach(&m2, name.c_str()), 0) << mproc_last_error();
  EXPECT_EQ(mproc_shared_memory_size(m2), 100u); // the creator's size, also where pages round it
  EXPECT_EQ(std::string(static_cast<char *>(mproc_shared_memory_buf(m2)), 14), "shared by name");
  // a program started with mproc_popen attaches by name with the OS's own calls
  std::string helper = mproc_test::helper_path();
  const char *argv[] = {helper.c_str(), "shm", name.c_str(), "14", nullptr};
  mproc_popen_opts po{};
  po.argv = argv;
  po.capture_output = true;
  mproc_completed r{};
  ASSERT_EQ(mproc_run(&po, kLong, &r), 0) << mproc_last_error();
  EXPECT_EQ(r.returncode, 0);
  EXPECT_EQ(std::string(r.stdout_data ? r.stdout_data : "", r.stdout_len), "shared by name");
  mproc_completed_free(&r);
  ASSERT_EQ(mproc_shared_memory_unlink(m), 0);
  mproc_shared_memory_destroy(m2);
  mproc_shared_memory_destroy(m);
  if (!kWindows) {
    EXPECT_EQ(mproc_shared_memory_attach(&m2, name.c_str()), MPROC_ENOENT);
  }
  EXPECT_EQ(mproc_shared_memory_attach(&m2, "no-such-block-here"), MPROC_ENOENT);
}

// The blocks of this process's own generated names in /dev/shm ("mp-<our pid, 8 hex digits>..."): other
// tests and programs running at the same time have names of their own.
int count_dev_shm() {
  int n = 0;
#ifndef _WIN32
  char prefix[16];
  snprintf(prefix, sizeof prefix, "mp-%08x", (unsigned)(mproc__pal_self_id() >> 32));
  std::string cmd = std::string("ls /dev/shm 2>/dev/null | grep -c '^") + prefix + "'";
  if (FILE *f = popen(cmd.c_str(), "r")) {
    char buf[32] = {0};
    if (fgets(buf, sizeof buf, f)) n = atoi(buf);
    pclose(f);
  }
#endif
  return n;
}

TEST(SharedMemory, AThousandCyclesLeaveNoHandleAndNoName) {
  int handles = 0, names = count_dev_shm();
  for (int i = 0; i <= 1000; ++i) {
    // after the first cycle: what the system keeps open for a process's first named object (Windows'
    // handle to its session's BaseNamedObjects directory) is not a leak
    if (i == 1) handles = mproc__pal_handle_count();
    mproc_shared_memory *m = nullptr;
    ASSERT_EQ(mproc_shared_memory_create(&m, nullptr, 4096, false), 0) << mproc_last_error();
    ASSERT_EQ(mproc_shared_memory_unlink(m), 0);
    mproc_shared_memory_destroy(m);
    mproc_lock *l = nullptr;
    ASSERT_EQ(mproc_lock_create(&l), 0);
    mproc_lock_destroy(l);
    mproc_value *v = nullptr;
    ASSERT_EQ(mproc_array_create(&v, 'd', 100, nullptr), 0);
    mproc_value_destroy(v);
  }
  EXPECT_EQ(mproc__pal_handle_count(), handles);
  EXPECT_EQ(count_dev_shm(), names);
}

// The creator asks for tracking and is killed: the tracker removes the name.
int t_create_tracked(const mproc_args *a) {
  mproc_connection *c = a->connections[0];
  mproc_shared_memory *m = nullptr;
  if (mproc_shared_memory_create(&m, nullptr, 64, true) != 0) return 10;
  const char *name = mproc_shared_memory_name(m);
  mproc_connection_send_bytes(c, name, strlen(name), 0, MPROC_ALL);
  mproc_event *never = nullptr;
  mproc_event_create(&never);
  mproc_event_wait(never, MPROC_INFINITE);
  return 11;
}

TEST(SharedMemory, ATrackedNameIsRemovedWhenItsCreatorIsKilled) {
  if (kWindows) GTEST_SKIP() << "Windows: a block dies with its last handle; nothing to track";
  mproc_connection *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  mproc_process_opts o{};
  o.target = t_create_tracked;
  o.connections = &b;
  o.connection_count = 1;
  o.start_method = MPROC_START_SPAWN;
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, &o), 0);
  ASSERT_EQ(mproc_process_start(p), 0);
  char *name = nullptr;
  size_t len = 0;
  ASSERT_EQ(mproc_connection_recv_bytes(a, 0, kLong, &name, &len), 0);
  mproc_shared_memory *m = nullptr;
  ASSERT_EQ(mproc_shared_memory_attach(&m, name), 0);
  mproc_shared_memory_destroy(m);
  ASSERT_EQ(mproc_process_kill(p), 0);
  ASSERT_EQ(mproc_process_join(p, kLong), 0);
  // the tracker learns of the death from its pipe and unlinks: wait for that, up to a deadline
  int64_t deadline = mproc__pal_monotonic_ns() + 10000000000LL;
  int rc = 0;
  while ((rc = mproc_shared_memory_attach(&m, name)) == 0 && mproc__pal_monotonic_ns() < deadline) {
    mproc_shared_memory_destroy(m);
    std::this_thread::yield();
  }
  EXPECT_EQ(rc, MPROC_ENOENT);
  mproc_free(name);
  mproc_process_destroy(p);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
}

} // namespace
