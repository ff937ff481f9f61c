// The Manager: every dict, list, namespace and lock call with its errors, objects shared by child
// processes under every start method, a client killed holding a managed lock, shutdown with clients
// connected, a server that died, wrong keys, and malformed requests.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "mproc.h"
#include "test_util.h"

using namespace mproc_test;

namespace {

const int64_t kLong = 60000;

std::string str(const char *p, size_t n) { return std::string(p, n); }

// d[key] as a string, or "<error>" with its code.
std::string get(mproc_manager *m, mproc_mdict d, const std::string &k) {
  char *v = nullptr;
  size_t n = 0;
  int rc = mproc_mdict_get(m, d, k.data(), k.size(), &v, &n, kLong);
  if (rc) return "<" + std::to_string(rc) + ">";
  std::string s(v, n);
  EXPECT_EQ(v[n], '\0');
  mproc_free(v);
  return s;
}
int set(mproc_manager *m, mproc_mdict d, const std::string &k, const std::string &v) {
  return mproc_mdict_set(m, d, k.data(), k.size(), v.data(), v.size(), kLong);
}
std::vector<std::string> strings(mproc_bytes *b, size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.emplace_back((const char *)b[i].data, b[i].len);
  mproc_free(b);
  return out;
}
using V = std::vector<std::string>;

class Manager : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kNoCrypto) { // no authkeys, so no manager (manager.h, SECURITY)
      EXPECT_EQ(mproc_manager_start(&m, nullptr), MPROC_ENOTSUP);
      GTEST_SKIP() << "a build without libcrypto has no authkeys, so no manager";
    }
    ASSERT_EQ(mproc_manager_start(&m, nullptr), 0) << mproc_last_error();
  }
  void TearDown() override { mproc_manager_destroy(m); }
  mproc_manager *m = nullptr;
};

TEST_F(Manager, DictEveryCall) {
  mproc_mdict d;
  ASSERT_EQ(mproc_manager_dict(m, &d, kLong), 0) << mproc_last_error();
  EXPECT_EQ(get(m, d, "a"), "<" + std::to_string(MPROC_ENOENT) + ">");
  EXPECT_EQ(set(m, d, "a", "1"), 0);
  EXPECT_EQ(set(m, d, std::string("b\0b", 3), std::string("x\0y", 3)), 0);
  EXPECT_EQ(set(m, d, "", ""), 0); // empty key and value
  EXPECT_EQ(get(m, d, "a"), "1");
  EXPECT_EQ(get(m, d, std::string("b\0b", 3)), std::string("x\0y", 3));
  EXPECT_EQ(get(m, d, ""), "");
  EXPECT_EQ(set(m, d, "a", "one"), 0); // replace keeps the order
  size_t n = 0;
  EXPECT_EQ(mproc_mdict_len(m, d, &n, kLong), 0);
  EXPECT_EQ(n, 3u);
  mproc_bytes *b;
  ASSERT_EQ(mproc_mdict_keys(m, d, &b, &n, kLong), 0);
  EXPECT_EQ(strings(b, n), (V{"a", std::string("b\0b", 3), ""}));
  ASSERT_EQ(mproc_mdict_values(m, d, &b, &n, kLong), 0);
  EXPECT_EQ(strings(b, n), (V{"one", std::string("x\0y", 3), ""}));
  ASSERT_EQ(mproc_mdict_items(m, d, &b, &n, kLong), 0);
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(strings(b, 2 * n), (V{"a", "one", std::string("b\0b", 3), std::string("x\0y", 3), "", ""}));
  bool found = false;
  EXPECT_EQ(mproc_mdict_contains(m, d, "a", 1, &found, kLong), 0);
  EXPECT_TRUE(found);
  EXPECT_EQ(mproc_mdict_contains(m, d, "zz", 2, &found, kLong), 0);
  EXPECT_FALSE(found);
  // get with a default
  char *v;
  EXPECT_EQ(mproc_mdict_get_default(m, d, "zz", 2, "dflt", 4, &v, &n, kLong), 0);
  EXPECT_EQ(str(v, n), "dflt");
  mproc_free(v);
  EXPECT_EQ(mproc_mdict_get_default(m, d, "a", 1, "dflt", 4, &v, &n, kLong), 0);
  EXPECT_EQ(str(v, n), "one");
  mproc_free(v);
  // delete, pop
  EXPECT_EQ(mproc_mdict_delete(m, d, "", 0, kLong), 0);
  EXPECT_EQ(mproc_mdict_delete(m, d, "", 0, kLong), MPROC_ENOENT);
  EXPECT_EQ(mproc_mdict_pop(m, d, "a", 1, &v, &n, kLong), 0);
  EXPECT_EQ(str(v, n), "one");
  mproc_free(v);
  EXPECT_EQ(mproc_mdict_pop(m, d, "a", 1, &v, &n, kLong), MPROC_ENOENT);
  EXPECT_NE(std::string(mproc_last_error()).find("no such key"), std::string::npos) << mproc_last_error();
  // setdefault
  EXPECT_EQ(mproc_mdict_setdefault(m, d, "s", 1, "first", 5, &v, &n, kLong), 0);
  EXPECT_EQ(str(v, n), "first");
  mproc_free(v);
  EXPECT_EQ(mproc_mdict_setdefault(m, d, "s", 1, "second", 6, &v, &n, kLong), 0);
  EXPECT_EQ(str(v, n), "first");
  mproc_free(v);
  // update: pairs in order, a key twice keeps the last
  mproc_bytes pairs[] = {{"u1", 2}, {"v1", 2}, {"u2", 2}, {"v2", 2}, {"u1", 2}, {"v3", 2}};
  EXPECT_EQ(mproc_mdict_update(m, d, pairs, 3, kLong), 0);
  EXPECT_EQ(get(m, d, "u1"), "v3");
  EXPECT_EQ(get(m, d, "u2"), "v2");
  // clear
  EXPECT_EQ(mproc_mdict_clear(m, d, kLong), 0);
  EXPECT_EQ(mproc_mdict_len(m, d, &n, kLong), 0);
  EXPECT_EQ(n, 0u);
  ASSERT_EQ(mproc_mdict_keys(m, d, &b, &n, kLong), 0);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(b, nullptr);
  // many keys: the index grows and deletes leave tombstones
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(set(m, d, "k" + std::to_string(i), std::to_string(i)), 0);
  for (int i = 0; i < 2000; i += 2)
    ASSERT_EQ(mproc_mdict_delete(m, d, ("k" + std::to_string(i)).data(), ("k" + std::to_string(i)).size(), kLong), 0);
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(get(m, d, "k" + std::to_string(i)), i % 2 ? std::to_string(i) : "<-4>");
  EXPECT_EQ(mproc_mdict_len(m, d, &n, kLong), 0);
  EXPECT_EQ(n, 1000u);
  // a big value
  std::string big(3 << 20, 'z');
  EXPECT_EQ(set(m, d, "big", big), 0);
  EXPECT_EQ(get(m, d, "big"), big);
}

TEST_F(Manager, DictIncrementAndCompareSet) {
  mproc_mdict d;
  ASSERT_EQ(mproc_manager_dict(m, &d, kLong), 0);
  int64_t r = 0;
  EXPECT_EQ(mproc_mdict_increment(m, d, "c", 1, 5, &r, kLong), 0); // missing: counts from 0
  EXPECT_EQ(r, 5);
  EXPECT_EQ(mproc_mdict_increment(m, d, "c", 1, -7, &r, kLong), 0);
  EXPECT_EQ(r, -2);
  EXPECT_EQ(get(m, d, "c"), "-2");
  EXPECT_EQ(set(m, d, "c", "9223372036854775806"), 0);
  EXPECT_EQ(mproc_mdict_increment(m, d, "c", 1, 1, &r, kLong), 0);
  EXPECT_EQ(r, INT64_MAX);
  EXPECT_EQ(mproc_mdict_increment(m, d, "c", 1, 1, &r, kLong), MPROC_EINVAL); // overflow: unchanged
  EXPECT_EQ(get(m, d, "c"), "9223372036854775807");
  EXPECT_EQ(set(m, d, "c", "-9223372036854775808"), 0);
  EXPECT_EQ(mproc_mdict_increment(m, d, "c", 1, 0, &r, kLong), 0);
  EXPECT_EQ(r, INT64_MIN);
  for (const char *bad : {"", "x", "1x", "-", "99999999999999999999", "9223372036854775808", " 1"}) {
    EXPECT_EQ(set(m, d, "b", bad), 0);
    EXPECT_EQ(mproc_mdict_increment(m, d, "b", 1, 1, nullptr, kLong), MPROC_EINVAL) << bad;
    EXPECT_EQ(get(m, d, "b"), bad);
  }
  bool swapped = true;
  EXPECT_EQ(mproc_mdict_compare_set(m, d, "k", 1, "old", 3, "new", 3, &swapped, kLong), 0);
  EXPECT_FALSE(swapped); // missing, not "old"
  EXPECT_EQ(get(m, d, "k"), "<-4>");
  EXPECT_EQ(mproc_mdict_compare_set(m, d, "k", 1, nullptr, 0, "first", 5, &swapped, kLong), 0);
  EXPECT_TRUE(swapped);
  EXPECT_EQ(mproc_mdict_compare_set(m, d, "k", 1, nullptr, 0, "again", 5, &swapped, kLong), 0);
  EXPECT_FALSE(swapped);
  EXPECT_EQ(mproc_mdict_compare_set(m, d, "k", 1, "first", 5, "second", 6, &swapped, kLong), 0);
  EXPECT_TRUE(swapped);
  EXPECT_EQ(get(m, d, "k"), "second");
  EXPECT_EQ(mproc_mdict_compare_set(m, d, "k", 1, "", 0, "x", 1, &swapped, kLong), 0); // "" is not "second"
  EXPECT_FALSE(swapped);
}

TEST_F(Manager, ListEveryCall) {
  mproc_mlist l;
  ASSERT_EQ(mproc_manager_list(m, &l, kLong), 0);
  auto all = [&] {
    mproc_bytes *b;
    size_t n;
    EXPECT_EQ(mproc_mlist_slice(m, l, 0, INT64_MAX, &b, &n, kLong), 0);
    return strings(b, n);
  };
  EXPECT_EQ(mproc_mlist_append(m, l, "a", 1, kLong), 0);
  mproc_bytes more[] = {{"b", 1}, {"c", 1}, {"b", 1}};
  EXPECT_EQ(mproc_mlist_extend(m, l, more, 3, kLong), 0);
  EXPECT_EQ(all(), (V{"a", "b", "c", "b"}));
  EXPECT_EQ(mproc_mlist_insert(m, l, 0, "0", 1, kLong), 0);
  EXPECT_EQ(mproc_mlist_insert(m, l, -1, "-", 1, kLong), 0);   // before the last
  EXPECT_EQ(mproc_mlist_insert(m, l, 100, "z", 1, kLong), 0);  // clamped to the end
  EXPECT_EQ(mproc_mlist_insert(m, l, -100, "A", 1, kLong), 0); // clamped to the start
  EXPECT_EQ(all(), (V{"A", "0", "a", "b", "c", "-", "b", "z"}));
  size_t n = 0;
  EXPECT_EQ(mproc_mlist_len(m, l, &n, kLong), 0);
  EXPECT_EQ(n, 8u);
  EXPECT_EQ(mproc_mlist_index(m, l, "b", 1, &n, kLong), 0);
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(mproc_mlist_index(m, l, "nope", 4, &n, kLong), MPROC_ENOENT);
  EXPECT_EQ(mproc_mlist_count(m, l, "b", 1, &n, kLong), 0);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(mproc_mlist_count(m, l, "nope", 4, &n, kLong), 0);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(mproc_mlist_remove(m, l, "b", 1, kLong), 0); // the first
  EXPECT_EQ(mproc_mlist_remove(m, l, "nope", 4, kLong), MPROC_ENOENT);
  EXPECT_EQ(all(), (V{"A", "0", "a", "c", "-", "b", "z"}));
  char *v;
  EXPECT_EQ(mproc_mlist_get(m, l, 1, &v, &n, kLong), 0);
  EXPECT_EQ(str(v, n), "0");
  mproc_free(v);
  EXPECT_EQ(mproc_mlist_get(m, l, -1, &v, &n, kLong), 0);
  EXPECT_EQ(str(v, n), "z");
  mproc_free(v);
  EXPECT_EQ(mproc_mlist_get(m, l, 7, &v, &n, kLong), MPROC_ENOENT);
  EXPECT_EQ(mproc_mlist_get(m, l, -8, &v, &n, kLong), MPROC_ENOENT);
  EXPECT_EQ(mproc_mlist_set(m, l, -2, "B", 1, kLong), 0);
  EXPECT_EQ(mproc_mlist_set(m, l, 7, "B", 1, kLong), MPROC_ENOENT);
  EXPECT_EQ(mproc_mlist_delete(m, l, 0, kLong), 0);
  EXPECT_EQ(mproc_mlist_delete(m, l, 6, kLong), MPROC_ENOENT);
  EXPECT_EQ(all(), (V{"0", "a", "c", "-", "B", "z"}));
  EXPECT_EQ(mproc_mlist_pop(m, l, -1, &v, &n, kLong), 0);
  EXPECT_EQ(str(v, n), "z");
  mproc_free(v);
  EXPECT_EQ(mproc_mlist_pop(m, l, 0, &v, &n, kLong), 0);
  EXPECT_EQ(str(v, n), "0");
  mproc_free(v);
  // slices as Python's
  mproc_bytes *b;
  EXPECT_EQ(mproc_mlist_slice(m, l, 1, 3, &b, &n, kLong), 0);
  EXPECT_EQ(strings(b, n), (V{"c", "-"}));
  EXPECT_EQ(mproc_mlist_slice(m, l, -2, INT64_MAX, &b, &n, kLong), 0);
  EXPECT_EQ(strings(b, n), (V{"-", "B"}));
  EXPECT_EQ(mproc_mlist_slice(m, l, 3, 1, &b, &n, kLong), 0);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(b, nullptr);
  EXPECT_EQ(mproc_mlist_slice(m, l, -100, -3, &b, &n, kLong), 0);
  EXPECT_EQ(strings(b, n), (V{"a"}));
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(mproc_mlist_pop(m, l, -1, &v, &n, kLong), 0);
    mproc_free(v);
  }
  EXPECT_EQ(mproc_mlist_pop(m, l, -1, &v, &n, kLong), MPROC_ENOENT); // empty
}

TEST_F(Manager, NamespaceEveryCall) {
  mproc_mnamespace ns;
  ASSERT_EQ(mproc_manager_namespace(m, &ns, kLong), 0);
  char *v;
  size_t n;
  EXPECT_EQ(mproc_mnamespace_get(m, ns, "x", &v, &n, kLong), MPROC_ENOENT);
  EXPECT_NE(std::string(mproc_last_error()).find("'x'"), std::string::npos) << mproc_last_error();
  EXPECT_EQ(mproc_mnamespace_set(m, ns, "x", "10", 2, kLong), 0);
  EXPECT_EQ(mproc_mnamespace_set(m, ns, "y", "hello", 5, kLong), 0);
  EXPECT_EQ(mproc_mnamespace_get(m, ns, "x", &v, &n, kLong), 0);
  EXPECT_EQ(str(v, n), "10");
  mproc_free(v);
  mproc_bytes *b;
  EXPECT_EQ(mproc_mnamespace_list(m, ns, &b, &n, kLong), 0);
  EXPECT_EQ(strings(b, n), (V{"x", "y"}));
  EXPECT_EQ(mproc_mnamespace_delete(m, ns, "x", kLong), 0);
  EXPECT_EQ(mproc_mnamespace_delete(m, ns, "x", kLong), MPROC_ENOENT);
  EXPECT_EQ(mproc_mnamespace_set(m, ns, "", "1", 1, kLong), MPROC_EINVAL);
  EXPECT_EQ(mproc_mnamespace_set(m, ns, nullptr, "1", 1, kLong), MPROC_EINVAL);
  // a namespace is not a dict for the dict-only calls, and the reverse
  mproc_mdict asdict{ns.id};
  EXPECT_EQ(mproc_mdict_increment(m, asdict, "y", 1, 1, nullptr, kLong), MPROC_EINVAL);
}

TEST_F(Manager, ObjectIdsAreCheckedAndDropped) {
  mproc_mdict d;
  mproc_mlist l;
  ASSERT_EQ(mproc_manager_dict(m, &d, kLong), 0);
  ASSERT_EQ(mproc_manager_list(m, &l, kLong), 0);
  size_t n;
  EXPECT_EQ(mproc_mlist_len(m, mproc_mlist{d.id}, &n, kLong), MPROC_EINVAL); // a dict is no list
  EXPECT_EQ(mproc_mdict_len(m, mproc_mdict{l.id}, &n, kLong), MPROC_EINVAL);
  EXPECT_EQ(mproc_mdict_len(m, mproc_mdict{0}, &n, kLong), MPROC_EINVAL);
  EXPECT_EQ(mproc_mdict_len(m, mproc_mdict{0xffffffffffffull}, &n, kLong), MPROC_EINVAL);
  EXPECT_EQ(mproc_manager_drop(m, d.id, kLong), 0);
  EXPECT_EQ(mproc_mdict_len(m, d, &n, kLong), MPROC_EINVAL);
  EXPECT_EQ(mproc_manager_drop(m, d.id, kLong), MPROC_EINVAL);
  mproc_mdict d2; // reuses the slot with a new generation: the old id stays dead
  ASSERT_EQ(mproc_manager_dict(m, &d2, kLong), 0);
  EXPECT_NE(d2.id, d.id);
  EXPECT_EQ(mproc_mdict_len(m, d, &n, kLong), MPROC_EINVAL);
  EXPECT_EQ(mproc_mdict_len(m, d2, &n, kLong), 0);
  // argument checks
  EXPECT_EQ(mproc_mdict_len(nullptr, d2, &n, kLong), MPROC_EINVAL);
  EXPECT_EQ(mproc_mdict_len(m, d2, nullptr, kLong), MPROC_EINVAL);
  EXPECT_EQ(mproc_mdict_set(m, d2, nullptr, 1, "v", 1, kLong), MPROC_EINVAL);
  EXPECT_EQ(mproc_manager_dict(m, nullptr, kLong), MPROC_EINVAL);
  EXPECT_EQ(mproc_manager_start(nullptr, nullptr), MPROC_EINVAL);
  mproc_manager *c;
  EXPECT_EQ(mproc_manager_connect(&c, nullptr, kLong), MPROC_EINVAL);
  mproc_manager_opts none{};
  EXPECT_EQ(mproc_manager_connect(&c, &none, kLong), MPROC_EINVAL);
}

TEST_F(Manager, NamedObjectsAreFoundByEveryHandle) {
  mproc_manager_opts o{};
  o.address = mproc_manager_address(m);
  mproc_manager *other;
  ASSERT_EQ(mproc_manager_connect(&other, &o, kLong), 0) << mproc_last_error();
  mproc_mdict a, b;
  ASSERT_EQ(mproc_manager_dict_named(m, "settings", &a, kLong), 0) << mproc_last_error();
  EXPECT_EQ(set(m, a, "mode", "fast"), 0);
  ASSERT_EQ(mproc_manager_dict_named(other, "settings", &b, kLong), 0);
  EXPECT_EQ(b.id, a.id);
  EXPECT_EQ(get(other, b, "mode"), "fast");
  mproc_mlist l;
  EXPECT_EQ(mproc_manager_list_named(other, "settings", &l, kLong), MPROC_EINVAL); // a dict's name
  ASSERT_EQ(mproc_manager_list_named(other, "jobs", &l, kLong), 0);
  mproc_mnamespace ns;
  mproc_mlock k;
  ASSERT_EQ(mproc_manager_namespace_named(m, "ns", &ns, kLong), 0);
  ASSERT_EQ(mproc_manager_lock_named(m, "guard", &k, kLong), 0);
  mproc_mlock k2;
  ASSERT_EQ(mproc_manager_lock_named(other, "guard", &k2, kLong), 0);
  EXPECT_EQ(k2.id, k.id);
  // a dropped object's name is free again: the next ask makes a new, empty object
  EXPECT_EQ(mproc_manager_drop(m, a.id, kLong), 0);
  ASSERT_EQ(mproc_manager_dict_named(other, "settings", &b, kLong), 0);
  EXPECT_NE(b.id, a.id);
  size_t n = 1;
  EXPECT_EQ(mproc_mdict_len(other, b, &n, kLong), 0);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(mproc_manager_dict_named(m, "", &b, kLong), MPROC_EINVAL);
  EXPECT_EQ(mproc_manager_dict_named(m, nullptr, &b, kLong), MPROC_EINVAL);
  mproc_manager_destroy(other);
}

TEST_F(Manager, LockAcquireTimeoutAndRelease) {
  mproc_mlock k;
  ASSERT_EQ(mproc_manager_lock(m, &k, kLong), 0);
  EXPECT_EQ(mproc_mlock_release(m, k, kLong), MPROC_ESTATE);
  EXPECT_EQ(mproc_mlock_acquire(m, k, 0), 0);
  mproc_manager *other;
  mproc_manager_opts o{};
  o.address = mproc_manager_address(m);
  ASSERT_EQ(mproc_manager_connect(&other, &o, kLong), 0) << mproc_last_error();
  EXPECT_EQ(mproc_mlock_acquire(other, k, 0), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_mlock_acquire(other, k, 100), MPROC_ETIMEDOUT); // waits in the server, answered there
  // the other handle still works after its timeout (the server answered it: the connection stays)
  mproc_mdict d;
  EXPECT_EQ(mproc_manager_dict(other, &d, kLong), 0) << mproc_last_error();
  EXPECT_EQ(mproc_mlock_release(other, k, kLong), 0); // any handle may release
  EXPECT_EQ(mproc_mlock_acquire(other, k, 0), 0);
  EXPECT_EQ(mproc_mlock_release(m, k, kLong), 0);
  // dropping a lock: its id is gone
  EXPECT_EQ(mproc_manager_drop(m, k.id, kLong), 0);
  EXPECT_EQ(mproc_mlock_acquire(m, k, 0), MPROC_EINVAL);
  mproc_manager_destroy(other);
}

TEST_F(Manager, AHandleThatDisconnectsHoldingTheLockPassesItOnWithOwnerDead) {
  mproc_mlock k;
  ASSERT_EQ(mproc_manager_lock(m, &k, kLong), 0);
  mproc_manager_opts o{};
  o.address = mproc_manager_address(m);
  mproc_manager *a, *b;
  ASSERT_EQ(mproc_manager_connect(&a, &o, kLong), 0);
  ASSERT_EQ(mproc_manager_connect(&b, &o, kLong), 0);
  EXPECT_EQ(mproc_mlock_acquire(a, k, kLong), 0);
  // b waits in the server; a's connection ends (destroyed holding it): b gets the lock, owner dead
  // (whether b's request reaches the server before or after a's end, b gets MPROC_EOWNERDEAD)
  std::thread waiter([&] { EXPECT_EQ(mproc_mlock_acquire(b, k, kLong), MPROC_EOWNERDEAD); });
  mproc_manager_destroy(a);
  waiter.join();
  EXPECT_EQ(mproc_mlock_acquire(m, k, 0), MPROC_ETIMEDOUT); // b holds it
  EXPECT_EQ(mproc_mlock_release(b, k, kLong), 0);
  EXPECT_EQ(mproc_mlock_acquire(m, k, 0), 0); // recovered: an ordinary lock
  // a holder that leaves with nobody waiting: the next acquirer learns it
  mproc_manager *c;
  ASSERT_EQ(mproc_manager_connect(&c, &o, kLong), 0);
  EXPECT_EQ(mproc_mlock_release(m, k, kLong), 0);
  EXPECT_EQ(mproc_mlock_acquire(c, k, 0), 0);
  mproc_manager_destroy(c);
  int rc;
  do { // the server learns of c's end when it reads the end of its stream
    rc = mproc_mlock_acquire(b, k, 20);
  } while (rc == MPROC_ETIMEDOUT);
  EXPECT_EQ(rc, MPROC_EOWNERDEAD);
  mproc_manager_destroy(b);
}

TEST_F(Manager, WrongKeyIsRefusedAndNothingListensGivesENOENT) {
  mproc_manager_opts o{};
  o.address = mproc_manager_address(m);
  o.authkey = "wrong";
  o.authkey_size = 5;
  mproc_manager *c = nullptr;
  int rc = mproc_manager_connect(&c, &o, kLong);
  EXPECT_EQ(rc, MPROC_EAUTH) << mproc_last_error();
  EXPECT_EQ(c, nullptr);
  std::string gone = std::string(mproc_manager_address(m)) + "-no-such";
  o.address = gone.c_str();
  o.authkey = nullptr;
  o.authkey_size = 0;
  EXPECT_EQ(mproc_manager_connect(&c, &o, kLong), MPROC_ENOENT) << mproc_last_error();
}

TEST_F(Manager, ShutdownWithClientsConnectedGivesThemAnErrorNotAHang) {
  mproc_mdict d;
  ASSERT_EQ(mproc_manager_dict(m, &d, kLong), 0);
  mproc_manager_opts o{};
  std::string address = mproc_manager_address(m);
  o.address = address.c_str();
  mproc_manager *c;
  ASSERT_EQ(mproc_manager_connect(&c, &o, kLong), 0);
  mproc_mlock k;
  ASSERT_EQ(mproc_manager_lock(c, &k, kLong), 0);
  ASSERT_EQ(mproc_mlock_acquire(c, k, kLong), 0);
  mproc_manager *w; // a client waiting in an acquire when the server goes
  ASSERT_EQ(mproc_manager_connect(&w, &o, kLong), 0);
  std::thread waiter([&] { EXPECT_EQ(mproc_mlock_acquire(w, k, MPROC_INFINITE), MPROC_EPIPE); });
  EXPECT_EQ(set(m, d, "k", "v"), 0);
  EXPECT_EQ(mproc_manager_shutdown(m, kLong), 0) << mproc_last_error();
  waiter.join();
  EXPECT_EQ(set(m, d, "k", "v"), MPROC_ECLOSED);
  EXPECT_EQ(mproc_manager_shutdown(m, kLong), MPROC_ECLOSED);
  EXPECT_EQ(set(c, mproc_mdict{d.id}, "k", "v"), MPROC_EPIPE) << mproc_last_error();
  // the next call tries to connect again: nothing listens
  int rc = set(c, mproc_mdict{d.id}, "k", "v");
  EXPECT_TRUE(rc == MPROC_ENOENT || rc == MPROC_EPIPE) << rc << " " << mproc_last_error();
  mproc_manager_destroy(c);
  mproc_manager_destroy(w);
}

TEST_F(Manager, MalformedRequestsCloseThatConnectionOnly) {
  mproc_mdict d;
  ASSERT_EQ(mproc_manager_dict(m, &d, kLong), 0);
  std::vector<std::string> bad = {
      "",                                                                            // too short
      std::string(19, '\0'),                                                         // too short
      std::string(20, '\xff'),                                                       // 4 billion arguments in no bytes
      std::string("\x04\0\0\0\1\0\0\0\1\0\0\0\0\0\0\0\1\0\0\0\xff\xff\xff\x7f", 24), // an item past the end
      std::string("\x08\0\0\0\1\0\0\0\1\0\0\0\0\0\0\0\0\0\0\0xx", 22),               // bytes left over
  };
  size_t key_len = 0;
  char key[MPROC_AUTHKEY_MAX];
  ASSERT_EQ(mproc_current_process_authkey(key, sizeof key, &key_len), 0);
  for (const std::string &b : bad) {
    mproc_connection *c;
    mproc_client_opts co{};
    co.address = mproc_manager_address(m);
    co.authkey = key;
    co.authkey_size = key_len;
    ASSERT_EQ(mproc_client(&c, &co, kLong), 0) << mproc_last_error();
    ASSERT_EQ(mproc_connection_send_bytes(c, b.data(), b.size(), 0, MPROC_ALL), 0);
    char *r;
    size_t n;
    EXPECT_EQ(mproc_connection_recv_bytes(c, 0, kLong, &r, &n), MPROC_EEOF); // closed, no reply
    mproc_connection_destroy(c);
    EXPECT_EQ(set(m, d, "still", "served"), 0) << mproc_last_error();
  }
  // a well-formed request of an unknown op or wrong argument count gets an error reply
  std::string unknown("\x63\0\0\0\x07\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
  mproc_connection *c;
  mproc_client_opts co{};
  co.address = mproc_manager_address(m);
  co.authkey = key;
  co.authkey_size = key_len;
  ASSERT_EQ(mproc_client(&c, &co, kLong), 0);
  ASSERT_EQ(mproc_connection_send_bytes(c, unknown.data(), unknown.size(), 0, MPROC_ALL), 0);
  char *r;
  size_t n;
  ASSERT_EQ(mproc_connection_recv_bytes(c, 0, kLong, &r, &n), 0);
  ASSERT_GE(n, 12u);
  int32_t status;
  memcpy(&status, r + 4, 4);
  EXPECT_EQ(status, MPROC_EINVAL);
  EXPECT_EQ(r[0], 7); // the seq echoed
  mproc_free(r);
  mproc_connection_destroy(c);
  EXPECT_EQ(get(m, d, "still"), "served");
}

TEST_F(Manager, ARequestLongerThanTheLimitIsRefusedBeforeItTravels) {
  mproc_mdict d;
  ASSERT_EQ(mproc_manager_dict(m, &d, kLong), 0);
  std::string big(MPROC_MANAGER_MAX_MESSAGE, 'b');
  EXPECT_EQ(mproc_mdict_set(m, d, "k", 1, big.data(), big.size(), kLong), MPROC_EMSGSIZE);
  EXPECT_EQ(set(m, d, "k", "small"), 0) << mproc_last_error(); // the connection is as it was
  EXPECT_EQ(get(m, d, "k"), "small");
}

// ---- the synchronization objects, queues, values and arrays ---------------------------------------------

// Another handle on m's server (a thread that waits needs a handle of its own).
mproc_manager *other(mproc_manager *m) {
  mproc_manager_opts o{};
  o.address = mproc_manager_address(m);
  mproc_manager *c = nullptr;
  EXPECT_EQ(mproc_manager_connect(&c, &o, kLong), 0) << mproc_last_error();
  return c;
}

TEST_F(Manager, RLockCountsAndOnlyItsHolderReleases) {
  mproc_manager *w = other(m);
  mproc_mlock r;
  ASSERT_EQ(mproc_manager_rlock(m, &r, kLong), 0) << mproc_last_error();
  EXPECT_EQ(mproc_mlock_release(m, r, kLong), MPROC_ENOTOWNER); // not held
  EXPECT_EQ(mproc_mlock_acquire(m, r, 0), 0);
  EXPECT_EQ(mproc_mlock_acquire(m, r, 0), 0); // the holder again: a count
  EXPECT_EQ(mproc_mlock_acquire(w, r, 0), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_mlock_release(w, r, kLong), MPROC_ENOTOWNER) << mproc_last_error();
  EXPECT_EQ(mproc_mlock_release(m, r, kLong), 0);
  EXPECT_EQ(mproc_mlock_acquire(w, r, 0), MPROC_ETIMEDOUT); // one level still held
  std::thread t([&] { EXPECT_EQ(mproc_mlock_acquire(w, r, kLong), 0); });
  EXPECT_EQ(mproc_mlock_release(m, r, kLong), 0); // the last level: the waiter gets it
  t.join();
  EXPECT_EQ(mproc_mlock_release(w, r, kLong), 0);
  mproc_manager_destroy(w);
}

TEST_F(Manager, SemaphoreAndBoundedSemaphore) {
  mproc_manager *w = other(m);
  mproc_msemaphore s, b;
  ASSERT_EQ(mproc_manager_semaphore(m, 2, &s, kLong), 0) << mproc_last_error();
  EXPECT_EQ(mproc_manager_semaphore(m, MPROC_SEM_VALUE_MAX + 1u, &s, kLong), MPROC_EINVAL);
  EXPECT_EQ(mproc_msemaphore_acquire(m, s, 0), 0);
  EXPECT_EQ(mproc_msemaphore_acquire(m, s, 0), 0);
  EXPECT_EQ(mproc_msemaphore_acquire(m, s, 0), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_msemaphore_acquire(m, s, 30), MPROC_ETIMEDOUT); // waits in the server, then gives up
  uint32_t v = 9;
  EXPECT_EQ(mproc_msemaphore_value(m, s, &v, kLong), 0);
  EXPECT_EQ(v, 0u);
  std::thread t([&] { EXPECT_EQ(mproc_msemaphore_acquire(w, s, kLong), 0); });
  EXPECT_EQ(mproc_msemaphore_release(m, s, kLong), 0); // to the waiter (or before it waits)
  t.join();
  EXPECT_EQ(mproc_msemaphore_value(m, s, &v, kLong), 0);
  EXPECT_EQ(v, 0u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(mproc_msemaphore_release(m, s, kLong), 0); // unbounded
  ASSERT_EQ(mproc_manager_bounded_semaphore(m, 1, &b, kLong), 0);
  EXPECT_EQ(mproc_msemaphore_release(m, b, kLong), MPROC_ESTATE); // above its initial value
  EXPECT_EQ(mproc_msemaphore_acquire(m, b, 0), 0);
  EXPECT_EQ(mproc_msemaphore_release(m, b, kLong), 0);
  EXPECT_EQ(mproc_msemaphore_value(m, b, &v, kLong), 0);
  EXPECT_EQ(v, 1u);
  mproc_mdict d;
  ASSERT_EQ(mproc_manager_dict(m, &d, kLong), 0);
  EXPECT_EQ(mproc_msemaphore_acquire(m, mproc_msemaphore{d.id}, 0), MPROC_EINVAL); // another kind
  mproc_manager_destroy(w);
}

TEST_F(Manager, EventSetClearWait) {
  mproc_manager *w = other(m);
  mproc_mevent e;
  ASSERT_EQ(mproc_manager_event(m, &e, kLong), 0);
  bool set = true;
  EXPECT_EQ(mproc_mevent_is_set(m, e, &set, kLong), 0);
  EXPECT_FALSE(set);
  EXPECT_EQ(mproc_mevent_wait(m, e, 0), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_mevent_wait(m, e, 30), MPROC_ETIMEDOUT);
  std::thread t([&] { EXPECT_EQ(mproc_mevent_wait(w, e, MPROC_INFINITE), 0); });
  EXPECT_EQ(mproc_mevent_set(m, e, kLong), 0);
  t.join();
  EXPECT_EQ(mproc_mevent_is_set(m, e, &set, kLong), 0);
  EXPECT_TRUE(set);
  EXPECT_EQ(mproc_mevent_wait(m, e, 0), 0);
  EXPECT_EQ(mproc_mevent_clear(m, e, kLong), 0);
  EXPECT_EQ(mproc_mevent_is_set(m, e, &set, kLong), 0);
  EXPECT_FALSE(set);
  mproc_manager_destroy(w);
}

int64_t counter(mproc_manager *m, mproc_mdict d, const char *k) {
  std::string v = get(m, d, k);
  return v[0] == '<' ? 0 : std::stoll(v);
}

TEST_F(Manager, ConditionWaitNotifyAndWaitFor) {
  mproc_mcondition c;
  ASSERT_EQ(mproc_manager_condition(m, nullptr, &c, kLong), 0) << mproc_last_error(); // an RLock of its own
  EXPECT_EQ(mproc_mcondition_wait(m, c, 0), MPROC_ENOTOWNER);                         // without the lock
  EXPECT_EQ(mproc_mcondition_notify(m, c, 1, kLong), MPROC_ENOTOWNER);
  ASSERT_EQ(mproc_mlock_acquire(m, c.lock, kLong), 0);
  ASSERT_EQ(mproc_mlock_acquire(m, c.lock, kLong), 0);         // two levels
  EXPECT_EQ(mproc_mcondition_wait(m, c, 30), MPROC_ETIMEDOUT); // not notified: the lock back
  EXPECT_EQ(mproc_mcondition_notify_all(m, c, kLong), 0);      // held: allowed, nobody waits
  EXPECT_EQ(mproc_mlock_release(m, c.lock, kLong), 0);
  EXPECT_EQ(mproc_mlock_release(m, c.lock, kLong), 0); // both levels came back
  EXPECT_EQ(mproc_mlock_release(m, c.lock, kLong), MPROC_ENOTOWNER);
  // three waiters; notify(1) wakes one, notify_all the rest
  mproc_mdict d;
  ASSERT_EQ(mproc_manager_dict(m, &d, kLong), 0);
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i)
    ts.emplace_back([&] {
      mproc_manager *w = other(m);
      EXPECT_EQ(mproc_mlock_acquire(w, c.lock, kLong), 0);
      EXPECT_EQ(mproc_mdict_increment(w, d, "waiting", 7, 1, nullptr, kLong), 0);
      EXPECT_EQ(mproc_mcondition_wait(w, c, kLong), 0);
      EXPECT_EQ(mproc_mdict_increment(w, d, "woke", 4, 1, nullptr, kLong), 0);
      EXPECT_EQ(mproc_mlock_release(w, c.lock, kLong), 0);
      mproc_manager_destroy(w);
    });
  // wait until all three wait (each counted itself with the lock held, and releases it only by waiting)
  for (;;) {
    ASSERT_EQ(mproc_mlock_acquire(m, c.lock, kLong), 0);
    if (counter(m, d, "waiting") == 3) break;
    ASSERT_EQ(mproc_mlock_release(m, c.lock, kLong), 0);
  }
  EXPECT_EQ(mproc_mcondition_notify(m, c, 1, kLong), 0);
  EXPECT_EQ(mproc_mlock_release(m, c.lock, kLong), 0);
  for (;;) { // the one notified wakes; the others stay
    ASSERT_EQ(mproc_mlock_acquire(m, c.lock, kLong), 0);
    if (counter(m, d, "woke") == 1) break;
    ASSERT_EQ(mproc_mlock_release(m, c.lock, kLong), 0);
  }
  EXPECT_EQ(mproc_mcondition_notify_all(m, c, kLong), 0);
  EXPECT_EQ(mproc_mlock_release(m, c.lock, kLong), 0);
  for (std::thread &t : ts) t.join();
  EXPECT_EQ(counter(m, d, "woke"), 3);
  // wait_for over a plain managed Lock: the predicate reads the dict
  mproc_mlock k;
  ASSERT_EQ(mproc_manager_lock(m, &k, kLong), 0);
  mproc_mcondition c2;
  ASSERT_EQ(mproc_manager_condition(m, &k, &c2, kLong), 0);
  EXPECT_EQ(c2.lock.id, k.id);
  struct Ctx {
    mproc_manager *m;
    mproc_mdict d;
  } ctx{m, d};
  auto go = [](void *p) { return counter(((Ctx *)p)->m, ((Ctx *)p)->d, "go") > 0; };
  ASSERT_EQ(mproc_mlock_acquire(m, k, kLong), 0);
  EXPECT_EQ(mproc_mcondition_wait_for(m, c2, go, &ctx, 30), MPROC_ETIMEDOUT);
  std::thread setter([&] {
    mproc_manager *w = other(m);
    EXPECT_EQ(mproc_mlock_acquire(w, k, kLong), 0); // only while the waiter waits
    EXPECT_EQ(mproc_mdict_increment(w, d, "go", 2, 1, nullptr, kLong), 0);
    EXPECT_EQ(mproc_mcondition_notify(w, c2, 1, kLong), 0);
    EXPECT_EQ(mproc_mlock_release(w, k, kLong), 0);
    mproc_manager_destroy(w);
  });
  EXPECT_EQ(mproc_mcondition_wait_for(m, c2, go, &ctx, kLong), 0);
  EXPECT_EQ(mproc_mlock_release(m, k, kLong), 0);
  setter.join();
  EXPECT_EQ(mproc_manager_condition(m, (const mproc_mlock *)&d, &c2, kLong), MPROC_EINVAL); // not a lock
}

TEST_F(Manager, BarrierIndexesBreakAbortReset) {
  mproc_mbarrier b;
  ASSERT_EQ(mproc_manager_barrier(m, 3, &b, kLong), 0);
  EXPECT_EQ(mproc_manager_barrier(m, 0, &b, kLong), MPROC_EINVAL);
  std::vector<uint32_t> got(3, 99);
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i)
    ts.emplace_back([&, i] {
      mproc_manager *w = other(m);
      EXPECT_EQ(mproc_mbarrier_wait(w, b, &got[i], kLong), 0) << mproc_last_error();
      mproc_manager_destroy(w);
    });
  for (std::thread &t : ts) t.join();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<uint32_t>{0, 1, 2}));
  // a wait whose time runs out breaks it for everyone
  std::thread waiter([&] {
    mproc_manager *w = other(m);
    EXPECT_EQ(mproc_mbarrier_wait(w, b, nullptr, MPROC_INFINITE), MPROC_EBROKEN);
    mproc_manager_destroy(w);
  });
  uint32_t parties = 0, n = 0;
  bool broken = true;
  do ASSERT_EQ(mproc_mbarrier_state(m, b, &parties, &n, &broken, kLong), 0);
  while (n != 1);
  EXPECT_EQ(parties, 3u);
  EXPECT_FALSE(broken);
  EXPECT_EQ(mproc_mbarrier_wait(m, b, nullptr, 30), MPROC_EBROKEN);
  waiter.join();
  EXPECT_EQ(mproc_mbarrier_state(m, b, nullptr, &n, &broken, kLong), 0);
  EXPECT_TRUE(broken);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(mproc_mbarrier_wait(m, b, nullptr, 0), MPROC_EBROKEN);
  EXPECT_EQ(mproc_mbarrier_reset(m, b, kLong), 0);
  EXPECT_EQ(mproc_mbarrier_state(m, b, nullptr, nullptr, &broken, kLong), 0);
  EXPECT_FALSE(broken);
  // abort wakes a waiter with EBROKEN
  std::thread w2([&] {
    mproc_manager *w = other(m);
    EXPECT_EQ(mproc_mbarrier_wait(w, b, nullptr, kLong), MPROC_EBROKEN);
    mproc_manager_destroy(w);
  });
  do ASSERT_EQ(mproc_mbarrier_state(m, b, nullptr, &n, nullptr, kLong), 0);
  while (n != 1);
  EXPECT_EQ(mproc_mbarrier_abort(m, b, kLong), 0);
  w2.join();
  EXPECT_EQ(mproc_mbarrier_wait(m, b, nullptr, kLong), MPROC_EBROKEN);
  // one party: never waits
  mproc_mbarrier one;
  ASSERT_EQ(mproc_manager_barrier(m, 1, &one, kLong), 0);
  uint32_t index = 7;
  EXPECT_EQ(mproc_mbarrier_wait(m, one, &index, 0), 0);
  EXPECT_EQ(index, 0u);
}

TEST_F(Manager, ValuesAndArrays) {
  mproc_mvalue i, f, s;
  ASSERT_EQ(mproc_manager_value_i64(m, 40, &i, kLong), 0) << mproc_last_error();
  int64_t iv = 0;
  EXPECT_EQ(mproc_mvalue_add_i64(m, i, 2, &iv, kLong), 0);
  EXPECT_EQ(iv, 42);
  EXPECT_EQ(mproc_mvalue_set_i64(m, i, INT64_MAX, kLong), 0);
  EXPECT_EQ(mproc_mvalue_add_i64(m, i, 1, &iv, kLong), MPROC_EINVAL); // leaves int64_t: nothing changes
  EXPECT_EQ(mproc_mvalue_get_i64(m, i, &iv, kLong), 0);
  EXPECT_EQ(iv, INT64_MAX);
  double fv = 0;
  EXPECT_EQ(mproc_mvalue_get_f64(m, i, &fv, kLong), MPROC_EINVAL); // another type
  ASSERT_EQ(mproc_manager_value_f64(m, 1.5, &f, kLong), 0);
  EXPECT_EQ(mproc_mvalue_add_f64(m, f, 0.25, &fv, kLong), 0);
  EXPECT_EQ(fv, 1.75);
  EXPECT_EQ(mproc_mvalue_set_f64(m, f, -3.0, kLong), 0);
  EXPECT_EQ(mproc_mvalue_get_f64(m, f, &fv, kLong), 0);
  EXPECT_EQ(fv, -3.0);
  ASSERT_EQ(mproc_manager_value_bytes(m, "abc", 3, &s, kLong), 0);
  char *p;
  size_t n;
  ASSERT_EQ(mproc_mvalue_get_bytes(m, s, &p, &n, kLong), 0);
  EXPECT_EQ(str(p, n), "abc");
  mproc_free(p);
  EXPECT_EQ(mproc_mvalue_set_bytes(m, s, "", 0, kLong), 0);
  ASSERT_EQ(mproc_mvalue_get_bytes(m, s, &p, &n, kLong), 0);
  EXPECT_EQ(n, 0u);
  mproc_free(p);
  EXPECT_EQ(mproc_mvalue_add_i64(m, s, 1, nullptr, kLong), MPROC_EINVAL);
  // an array: zeros, ranges
  mproc_marray a;
  ASSERT_EQ(mproc_manager_array(m, nullptr, 16, &a, kLong), 0);
  EXPECT_EQ(mproc_marray_len(m, a, &n, kLong), 0);
  EXPECT_EQ(n, 16u);
  char buf[16];
  EXPECT_EQ(mproc_marray_get(m, a, 0, buf, 16, kLong), 0);
  EXPECT_EQ(std::string(buf, 16), std::string(16, '\0'));
  EXPECT_EQ(mproc_marray_set(m, a, 4, "wxyz", 4, kLong), 0);
  EXPECT_EQ(mproc_marray_get(m, a, 3, buf, 6, kLong), 0);
  EXPECT_EQ(std::string(buf, 6), std::string("\0wxyz\0", 6));
  EXPECT_EQ(mproc_marray_set(m, a, 14, "abc", 3, kLong), MPROC_ENOENT); // past the end: nothing changes
  EXPECT_EQ(mproc_marray_get(m, a, 10, buf, 7, kLong), MPROC_ENOENT);
  EXPECT_EQ(mproc_marray_get(m, a, 16, buf, 0, kLong), 0);
  EXPECT_EQ(mproc_marray_get(m, a, 14, buf, 2, kLong), 0);
  EXPECT_EQ(std::string(buf, 2), std::string(2, '\0'));
  mproc_marray a2;
  ASSERT_EQ(mproc_manager_array(m, "0123", 4, &a2, kLong), 0);
  EXPECT_EQ(mproc_marray_get(m, a2, 1, buf, 2, kLong), 0);
  EXPECT_EQ(std::string(buf, 2), "12");
}

TEST_F(Manager, QueueAndJoinableQueue) {
  mproc_manager *w = other(m);
  mproc_mqueue q;
  ASSERT_EQ(mproc_manager_queue(m, 2, &q, kLong), 0);
  char *p;
  size_t n;
  bool b = false;
  EXPECT_EQ(mproc_mqueue_get(m, q, &p, &n, 0), MPROC_EEMPTY);
  EXPECT_EQ(mproc_mqueue_get(m, q, &p, &n, 30), MPROC_EEMPTY);
  EXPECT_EQ(mproc_mqueue_empty(m, q, &b, kLong), 0);
  EXPECT_TRUE(b);
  EXPECT_EQ(mproc_mqueue_put(m, q, "a", 1, 0), 0);
  EXPECT_EQ(mproc_mqueue_put(m, q, "", 0, 0), 0);
  EXPECT_EQ(mproc_mqueue_put(m, q, "c", 1, 0), MPROC_EFULL);
  EXPECT_EQ(mproc_mqueue_put(m, q, "c", 1, 30), MPROC_EFULL);
  EXPECT_EQ(mproc_mqueue_full(m, q, &b, kLong), 0);
  EXPECT_TRUE(b);
  EXPECT_EQ(mproc_mqueue_qsize(m, q, &n, kLong), 0);
  EXPECT_EQ(n, 2u);
  std::thread putter([&] { EXPECT_EQ(mproc_mqueue_put(w, q, "c", 1, kLong), 0); }); // waits for room
  ASSERT_EQ(mproc_mqueue_get(m, q, &p, &n, kLong), 0);
  EXPECT_EQ(str(p, n), "a");
  mproc_free(p);
  putter.join();
  ASSERT_EQ(mproc_mqueue_get(m, q, &p, &n, kLong), 0);
  EXPECT_EQ(n, 0u);
  mproc_free(p);
  ASSERT_EQ(mproc_mqueue_get(m, q, &p, &n, kLong), 0);
  EXPECT_EQ(str(p, n), "c");
  mproc_free(p);
  std::thread getter([&] {
    char *x;
    size_t xn;
    ASSERT_EQ(mproc_mqueue_get(w, q, &x, &xn, kLong), 0);
    EXPECT_EQ(str(x, xn), "late");
    mproc_free(x);
  });
  EXPECT_EQ(mproc_mqueue_put(m, q, "late", 4, kLong), 0);
  getter.join();
  EXPECT_EQ(mproc_mqueue_task_done(m, q, kLong), MPROC_ESTATE); // not joinable
  EXPECT_EQ(mproc_mqueue_join(m, q, 0), MPROC_ESTATE);
  // joinable
  mproc_mqueue j;
  ASSERT_EQ(mproc_manager_joinable_queue(m, 0, &j, kLong), 0);
  EXPECT_EQ(mproc_mqueue_join(m, j, 0), 0);
  EXPECT_EQ(mproc_mqueue_task_done(m, j, kLong), MPROC_ESTATE);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(mproc_mqueue_put(m, j, "t", 1, 0), 0); // no bound
  EXPECT_EQ(mproc_mqueue_join(m, j, 0), MPROC_ETIMEDOUT);
  std::thread joiner([&] { EXPECT_EQ(mproc_mqueue_join(w, j, kLong), 0); });
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(mproc_mqueue_get(m, j, &p, &n, 0), 0);
    mproc_free(p);
    ASSERT_EQ(mproc_mqueue_task_done(m, j, kLong), 0);
  }
  joiner.join();
  EXPECT_EQ(mproc_mqueue_task_done(m, j, kLong), MPROC_ESTATE);
  mproc_manager_destroy(w);
}

TEST_F(Manager, ABlockedCallInOneClientDoesNotStallAnother) {
  mproc_manager *w = other(m);
  mproc_mqueue q;
  mproc_mdict d;
  ASSERT_EQ(mproc_manager_queue(m, 0, &q, kLong), 0);
  ASSERT_EQ(mproc_manager_dict(m, &d, kLong), 0);
  std::thread getter([&] {
    char *x;
    size_t xn;
    EXPECT_EQ(mproc_mqueue_get(w, q, &x, &xn, MPROC_INFINITE), 0);
    mproc_free(x);
  });
  for (int i = 0; i < 100; ++i) ASSERT_EQ(set(m, d, "k", std::to_string(i)), 0); // served while it waits
  EXPECT_EQ(get(m, d, "k"), "99");
  EXPECT_EQ(mproc_mqueue_put(m, q, "x", 1, kLong), 0);
  getter.join();
  // a dropped queue answers its waiter
  std::thread dropped([&] {
    char *x;
    size_t xn;
    EXPECT_EQ(mproc_mqueue_get(w, q, &x, &xn, MPROC_INFINITE), MPROC_EINVAL);
  });
  size_t n = 1;
  bool empty = false;
  while (!empty) ASSERT_EQ(mproc_mqueue_empty(m, q, &empty, kLong), 0);
  (void)n;
  // the getter may not be waiting yet: it then finds no queue, MPROC_EINVAL either way
  EXPECT_EQ(mproc_manager_drop(m, q.id, kLong), 0);
  dropped.join();
  mproc_manager_destroy(w);
}

TEST_F(Manager, EveryKindFoundByName) {
  mproc_mlock r1, r2;
  ASSERT_EQ(mproc_manager_rlock_named(m, "r", &r1, kLong), 0);
  ASSERT_EQ(mproc_manager_rlock_named(m, "r", &r2, kLong), 0);
  EXPECT_EQ(r1.id, r2.id);
  mproc_msemaphore s1, s2;
  ASSERT_EQ(mproc_manager_semaphore_named(m, "s", 1, &s1, kLong), 0);
  ASSERT_EQ(mproc_manager_semaphore_named(m, "s", 5, &s2, kLong), 0); // as it is
  EXPECT_EQ(s1.id, s2.id);
  uint32_t v = 0;
  EXPECT_EQ(mproc_msemaphore_value(m, s2, &v, kLong), 0);
  EXPECT_EQ(v, 1u);
  EXPECT_EQ(mproc_manager_bounded_semaphore_named(m, "s", 1, &s2, kLong), MPROC_EINVAL); // another kind
  mproc_mevent e1, e2;
  ASSERT_EQ(mproc_manager_event_named(m, "e", &e1, kLong), 0);
  ASSERT_EQ(mproc_manager_event_named(m, "e", &e2, kLong), 0);
  EXPECT_EQ(e1.id, e2.id);
  mproc_mcondition c1, c2;
  ASSERT_EQ(mproc_manager_condition_named(m, "c", nullptr, &c1, kLong), 0);
  ASSERT_EQ(mproc_manager_condition_named(m, "c", nullptr, &c2, kLong), 0);
  EXPECT_EQ(c1.id, c2.id);
  EXPECT_EQ(c1.lock.id, c2.lock.id);
  mproc_mbarrier b1, b2;
  ASSERT_EQ(mproc_manager_barrier_named(m, "b", 2, &b1, kLong), 0);
  ASSERT_EQ(mproc_manager_barrier_named(m, "b", 2, &b2, kLong), 0);
  EXPECT_EQ(b1.id, b2.id);
  mproc_mvalue v1, v2;
  ASSERT_EQ(mproc_manager_value_i64_named(m, "v", 7, &v1, kLong), 0);
  ASSERT_EQ(mproc_manager_value_i64_named(m, "v", 8, &v2, kLong), 0);
  EXPECT_EQ(v1.id, v2.id);
  int64_t iv = 0;
  EXPECT_EQ(mproc_mvalue_get_i64(m, v2, &iv, kLong), 0);
  EXPECT_EQ(iv, 7);
  mproc_marray a1, a2;
  ASSERT_EQ(mproc_manager_array_named(m, "a", nullptr, 4, &a1, kLong), 0);
  ASSERT_EQ(mproc_manager_array_named(m, "a", nullptr, 4, &a2, kLong), 0);
  EXPECT_EQ(a1.id, a2.id);
  mproc_mqueue q1, q2;
  ASSERT_EQ(mproc_manager_joinable_queue_named(m, "q", 0, &q1, kLong), 0);
  ASSERT_EQ(mproc_manager_joinable_queue_named(m, "q", 0, &q2, kLong), 0);
  EXPECT_EQ(q1.id, q2.id);
  EXPECT_EQ(mproc_manager_queue_named(m, "q", 0, &q2, kLong), MPROC_EINVAL);
  // dropping a condition drops its own lock
  EXPECT_EQ(mproc_manager_drop(m, c1.id, kLong), 0);
  EXPECT_EQ(mproc_mlock_acquire(m, c1.lock, 0), MPROC_EINVAL);
}

TEST(ManagerTcp, AManagerOnTcpServesAHandleConnectedByAddress) {
  if (kNoCrypto) GTEST_SKIP() << "a build without libcrypto has no authkeys, so no manager";
  mproc_manager_opts o{};
  o.address = "127.0.0.1:0"; // the system picks the port
  o.authkey = "tcp key";
  o.authkey_size = 7;
  mproc_manager *m = nullptr;
  ASSERT_EQ(mproc_manager_start(&m, &o), 0) << mproc_last_error();
  std::string address = mproc_manager_address(m);
  EXPECT_EQ(address.rfind("127.0.0.1:", 0), 0u) << address;
  EXPECT_NE(address, "127.0.0.1:0");
  mproc_mdict d;
  ASSERT_EQ(mproc_manager_dict(m, &d, kLong), 0);
  EXPECT_EQ(set(m, d, "over", "tcp"), 0);
  mproc_manager_opts co{};
  co.address = address.c_str();
  co.authkey = "tcp key";
  co.authkey_size = 7;
  mproc_manager *c = nullptr;
  ASSERT_EQ(mproc_manager_connect(&c, &co, kLong), 0) << mproc_last_error();
  EXPECT_EQ(get(c, d, "over"), "tcp");
  co.authkey = "other";
  co.authkey_size = 5;
  mproc_manager *bad = nullptr;
  EXPECT_EQ(mproc_manager_connect(&bad, &co, kLong), MPROC_EAUTH);
  mproc_manager_destroy(c);
  mproc_manager_destroy(m);
}

// connections[0]: a manager arrives there, then the dict's id as bytes
int t_receive_manager(const mproc_args *a) {
  void *obj = nullptr;
  if (mproc_connection_recv_object(a->connections[0], MPROC_OBJECT_MANAGER, kLong, &obj) != 0) return 10;
  mproc_manager *m = (mproc_manager *)obj;
  char *id;
  size_t n;
  if (mproc_connection_recv_bytes(a->connections[0], 0, kLong, &id, &n) != 0 || n != sizeof(mproc_mdict)) return 11;
  mproc_mdict d;
  memcpy(&d, id, sizeof d);
  mproc_free(id);
  int rc = set(m, d, "sent", "over a connection");
  mproc_manager_destroy(m); // a handle it did not start: the server goes on
  return rc == 0 ? 0 : 12;
}

TEST_F(Manager, AHandleSentToARunningProcessReachesTheSameServer) {
  mproc_mdict d;
  ASSERT_EQ(mproc_manager_dict(m, &d, kLong), 0);
  mproc_connection *mine, *theirs;
  ASSERT_EQ(mproc_pipe(true, &mine, &theirs), 0);
  mproc_process_opts po{};
  po.target = t_receive_manager;
  po.connections = &theirs;
  po.connection_count = 1;
  mproc_process *p;
  ASSERT_EQ(mproc_process_create(&p, &po), 0);
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  ASSERT_EQ(mproc_connection_send_object(mine, mproc_object_manager(m), mproc_process_pid(p)), 0) << mproc_last_error();
  ASSERT_EQ(mproc_connection_send_bytes(mine, &d, sizeof d, 0, MPROC_ALL), 0);
  EXPECT_EQ(mproc_process_join(p, kLong), 0);
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  EXPECT_EQ(code, 0);
  EXPECT_EQ(get(m, d, "sent"), "over a connection");
  mproc_process_destroy(p);
  mproc_connection_destroy(theirs);
  mproc_connection_destroy(mine);
}

// ---- a server of this program's own: serve_forever in a child ------------------------------------

void on_listening(const char *address, void *arg) {
  mproc_connection *c = (mproc_connection *)arg;
  mproc_connection_send_bytes(c, address, strlen(address), 0, MPROC_ALL);
}
int t_serve(const mproc_args *a) {
  mproc_manager_opts o{};
  o.on_listening = on_listening;
  o.on_listening_arg = a->connections[0];
  return mproc_manager_serve_forever(&o) == 0 ? 0 : 1;
}

struct Served {
  mproc_process *p = nullptr;
  mproc_connection *mine = nullptr;
  std::string address;
  void start() {
    mproc_connection *theirs;
    ASSERT_EQ(mproc_pipe(true, &mine, &theirs), 0);
    mproc_process_opts po{};
    po.target = t_serve;
    po.connections = &theirs;
    po.connection_count = 1;
    ASSERT_EQ(mproc_process_create(&p, &po), 0);
    ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
    mproc_connection_destroy(theirs);
    char *a;
    size_t n;
    ASSERT_EQ(mproc_connection_recv_bytes(mine, 0, kLong, &a, &n), 0);
    address.assign(a, n);
    mproc_free(a);
  }
  mproc_manager *connect() { // a handle on it
    mproc_manager_opts o{};
    o.address = address.c_str();
    mproc_manager *c = nullptr;
    EXPECT_EQ(mproc_manager_connect(&c, &o, kLong), 0) << mproc_last_error();
    return c;
  }
  ~Served() {
    if (p) {
      mproc_process_kill(p);
      mproc_process_join(p, kLong);
      mproc_process_destroy(p);
    }
    mproc_connection_destroy(mine);
  }
};

TEST(ManagerServeForever, ServesUntilAClientShutsItDown) {
  if (kNoCrypto) GTEST_SKIP() << "a build without libcrypto has no authkeys, so no manager";
  Served s;
  s.start();
  mproc_manager *c = s.connect();
  ASSERT_NE(c, nullptr);
  mproc_mdict d;
  ASSERT_EQ(mproc_manager_dict(c, &d, kLong), 0);
  EXPECT_EQ(set(c, d, "a", "b"), 0);
  EXPECT_EQ(get(c, d, "a"), "b");
  EXPECT_EQ(mproc_manager_shutdown(c, kLong), 0) << mproc_last_error();
  EXPECT_EQ(mproc_process_join(s.p, kLong), 0);
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(s.p, &code));
  EXPECT_EQ(code, 0); // serve_forever returned 0
  EXPECT_EQ(set(c, d, "a", "b"), MPROC_ECLOSED);
  mproc_manager_destroy(c);
}

TEST(ManagerServeForever, AClientWhoseServerDiedGetsAnErrorWithinItsTimeout) {
  if (kNoCrypto) GTEST_SKIP() << "a build without libcrypto has no authkeys, so no manager";
  Served s;
  s.start();
  mproc_manager *c = s.connect(), *w = s.connect();
  ASSERT_TRUE(c && w);
  mproc_mlock k;
  ASSERT_EQ(mproc_manager_lock(c, &k, kLong), 0);
  ASSERT_EQ(mproc_mlock_acquire(c, k, 0), 0);
  std::thread waiter([&] { EXPECT_EQ(mproc_mlock_acquire(w, k, MPROC_INFINITE), MPROC_EPIPE); });
  mproc_mdict d;
  ASSERT_EQ(mproc_manager_dict(c, &d, kLong), 0);
  ASSERT_EQ(mproc_process_kill(s.p), 0);
  ASSERT_EQ(mproc_process_join(s.p, kLong), 0);
  waiter.join(); // the waiter blocked in an infinite acquire learns it
  int rc = set(c, d, "a", "b");
  EXPECT_EQ(rc, MPROC_EPIPE) << mproc_last_error();
  rc = set(c, d, "a", "b"); // connecting again: nothing listens (or a stale socket file refuses)
  EXPECT_TRUE(rc == MPROC_ENOENT || rc == MPROC_EPIPE) << rc << " " << mproc_last_error();
  mproc_manager_destroy(c);
  mproc_manager_destroy(w);
}

// ---- across processes, every start method -------------------------------------------------------------

std::vector<mproc_start_method> methods() {
  if (kWindows) return {MPROC_START_SPAWN};
  return {MPROC_START_FORK, MPROC_START_SPAWN, MPROC_START_FORKSERVER};
}
std::string method_name(const ::testing::TestParamInfo<mproc_start_method> &i) {
  return std::string(mproc_start_method_name(i.param));
}

// What a child gets in its argument bytes: the objects' ids and a number.
struct Ids {
  mproc_mdict d;
  mproc_mlist l;
  mproc_mnamespace ns;
  mproc_mlock k;
  mproc_mlock r;  // an rlock
  mproc_mqueue q; // maxsize 4
  mproc_mevent e;
  mproc_mvalue sum; // an int64_t
  mproc_mbarrier b; // 2 parties
  int n;
};

// Under wine a round trip costs about 0.4 ms: 4 x 10,000 updates under a lock (4 round trips each) would
// take minutes there; Linux runs the full count.
const int kUpdates = kWindows ? 1000 : 10000;

class ManagerAcross : public ::testing::TestWithParam<mproc_start_method> {
 protected:
  void SetUp() override {
    if (kNoCrypto) GTEST_SKIP() << "a build without libcrypto has no authkeys, so no manager";
    mproc_manager_opts o{};
    o.start_method = GetParam();
    ASSERT_EQ(mproc_manager_start(&m, &o), 0) << mproc_last_error();
    ASSERT_EQ(mproc_manager_dict(m, &ids.d, kLong), 0);
    ASSERT_EQ(mproc_manager_list(m, &ids.l, kLong), 0);
    ASSERT_EQ(mproc_manager_namespace(m, &ids.ns, kLong), 0);
    ASSERT_EQ(mproc_manager_lock(m, &ids.k, kLong), 0);
    ASSERT_EQ(mproc_manager_rlock(m, &ids.r, kLong), 0);
    ASSERT_EQ(mproc_manager_queue(m, 4, &ids.q, kLong), 0);
    ASSERT_EQ(mproc_manager_event(m, &ids.e, kLong), 0);
    ASSERT_EQ(mproc_manager_value_i64(m, 0, &ids.sum, kLong), 0);
    ASSERT_EQ(mproc_manager_barrier(m, 2, &ids.b, kLong), 0);
  }
  void TearDown() override { mproc_manager_destroy(m); }
  mproc_process *start(mproc_target target, int n, std::vector<mproc_object> more = {}) {
    Ids arg = ids;
    arg.n = n;
    std::vector<mproc_object> objs = {mproc_object_manager(m)};
    objs.insert(objs.end(), more.begin(), more.end());
    return start_child(target, std::move(objs), &arg, sizeof arg, GetParam());
  }
  static int join(mproc_process *p) { return join_child(p, 10 * kLong); }
  mproc_manager *m = nullptr;
  Ids ids{};
};

int t_share(const mproc_args *a) {
  mproc_manager *m = (mproc_manager *)a->objects[0];
  const Ids *ids = (const Ids *)a->data;
  std::string me = std::to_string(ids->n);
  if (mproc_mdict_set(m, ids->d, me.data(), me.size(), "child", 5, kLong) != 0) return 10;
  if (mproc_mlist_append(m, ids->l, me.data(), me.size(), kLong) != 0) return 11;
  if (mproc_mnamespace_set(m, ids->ns, ("n" + me).c_str(), me.data(), me.size(), kLong) != 0) return 12;
  char *v;
  size_t n;
  if (mproc_mdict_get(m, ids->d, "parent", 6, &v, &n, kLong) != 0 || str(v, n) != "set") return 13;
  mproc_free(v);
  return 0;
}

TEST_P(ManagerAcross, ChildrenShareTheObjects) {
  ASSERT_EQ(set(m, ids.d, "parent", "set"), 0);
  std::vector<mproc_process *> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(start(t_share, i));
  for (mproc_process *p : ps) EXPECT_EQ(join(p), 0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(get(m, ids.d, std::to_string(i)), "child");
  size_t n;
  EXPECT_EQ(mproc_mlist_len(m, ids.l, &n, kLong), 0);
  EXPECT_EQ(n, 3u);
  mproc_bytes *b;
  EXPECT_EQ(mproc_mnamespace_list(m, ids.ns, &b, &n, kLong), 0);
  EXPECT_EQ(n, 3u);
  mproc_free(b);
  // the parent's own handle still works after fork children used theirs
  EXPECT_EQ(set(m, ids.d, "after", "yes"), 0);
}

int t_update(const mproc_args *a) {
  mproc_manager *m = (mproc_manager *)a->objects[0];
  const Ids *ids = (const Ids *)a->data;
  for (int i = 0; i < kUpdates; ++i) {
    if (mproc_mlock_acquire(m, ids->k, kLong) != 0) return 10;
    char *v;
    size_t n;
    if (mproc_mdict_get_default(m, ids->d, "count", 5, "0", 1, &v, &n, kLong) != 0) return 11;
    std::string next = std::to_string(std::stoll(std::string(v, n)) + 1);
    mproc_free(v);
    if (mproc_mdict_set(m, ids->d, "count", 5, next.data(), next.size(), kLong) != 0) return 12;
    if (mproc_mlock_release(m, ids->k, kLong) != 0) return 13;
    if (mproc_mdict_increment(m, ids->d, "atomic", 6, 1, nullptr, kLong) != 0) return 14;
  }
  return 0;
}

TEST_P(ManagerAcross, FourProcessesUpdateADictUnderAManagedLockAndLoseNothing) {
  std::vector<mproc_process *> ps;
  for (int i = 0; i < 4; ++i) ps.push_back(start(t_update, i));
  for (mproc_process *p : ps) EXPECT_EQ(join(p), 0);
  EXPECT_EQ(get(m, ids.d, "count"), std::to_string(4 * kUpdates));
  EXPECT_EQ(get(m, ids.d, "atomic"), std::to_string(4 * kUpdates)); // the counter needs no lock
}

// objects: the manager, an event "held"
int t_hold(const mproc_args *a) {
  mproc_manager *m = (mproc_manager *)a->objects[0];
  mproc_event *held = (mproc_event *)a->objects[1];
  const Ids *ids = (const Ids *)a->data;
  if (mproc_mlock_acquire(m, ids->k, kLong) != 0) return 10;
  mproc_event_set(held);
  mproc_event *never = nullptr;
  mproc_event_create(&never);
  mproc_event_wait(never, MPROC_INFINITE);
  return 11;
}

TEST_P(ManagerAcross, AClientKilledHoldingTheLockPassesItOnWithOwnerDead) {
  mproc_event *held;
  ASSERT_EQ(mproc_event_create(&held), 0);
  mproc_process *p = start(t_hold, 0, {mproc_object_event(held)});
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(mproc_event_wait(held, kLong), 0);
  EXPECT_EQ(mproc_mlock_acquire(m, ids.k, 0), MPROC_ETIMEDOUT);
  std::thread killer([&] { EXPECT_EQ(mproc_process_kill(p), 0); });
  EXPECT_EQ(mproc_mlock_acquire(m, ids.k, kLong), MPROC_EOWNERDEAD) << mproc_last_error();
  killer.join();
  EXPECT_EQ(mproc_process_join(p, kLong), 0);
  mproc_process_destroy(p);
  EXPECT_EQ(mproc_mlock_release(m, ids.k, kLong), 0);
  EXPECT_EQ(mproc_mlock_acquire(m, ids.k, 0), 0);
  mproc_event_destroy(held);
}

const int kItems = 300;

// Waits for the event, then sums the queue's items into the value until an empty item.
int t_consume(const mproc_args *a) {
  mproc_manager *m = (mproc_manager *)a->objects[0];
  const Ids *ids = (const Ids *)a->data;
  if (mproc_mevent_wait(m, ids->e, kLong) != 0) return 10;
  for (;;) {
    char *v;
    size_t n;
    if (mproc_mqueue_get(m, ids->q, &v, &n, kLong) != 0) return 11;
    int64_t x = n ? std::stoll(std::string(v, n)) : 0;
    mproc_free(v);
    if (!n) return 0;
    if (mproc_mvalue_add_i64(m, ids->sum, x, nullptr, kLong) != 0) return 12;
  }
}

TEST_P(ManagerAcross, ProcessesShareAQueueAnEventAndAValue) {
  std::vector<mproc_process *> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(start(t_consume, i));
  EXPECT_EQ(mproc_mevent_set(m, ids.e, kLong), 0);
  for (int i = 1; i <= kItems; ++i) { // a bounded queue: puts wait for the consumers
    std::string x = std::to_string(i);
    ASSERT_EQ(mproc_mqueue_put(m, ids.q, x.data(), x.size(), kLong), 0) << mproc_last_error();
  }
  for (int i = 0; i < 3; ++i) ASSERT_EQ(mproc_mqueue_put(m, ids.q, "", 0, kLong), 0);
  for (mproc_process *p : ps) EXPECT_EQ(join(p), 0);
  int64_t sum = 0;
  EXPECT_EQ(mproc_mvalue_get_i64(m, ids.sum, &sum, kLong), 0);
  EXPECT_EQ(sum, (int64_t)kItems * (kItems + 1) / 2);
}

// Holds the rlock (two levels), then waits at the barrier for ever.
int t_hold_and_wait(const mproc_args *a) {
  mproc_manager *m = (mproc_manager *)a->objects[0];
  const Ids *ids = (const Ids *)a->data;
  if (mproc_mlock_acquire(m, ids->r, kLong) != 0 || mproc_mlock_acquire(m, ids->r, kLong) != 0) return 10;
  mproc_mbarrier_wait(m, ids->b, nullptr, MPROC_INFINITE);
  return 11;
}

TEST_P(ManagerAcross, AClientKilledWaitingAndHoldingLeavesTheServerServing) {
  mproc_process *p = start(t_hold_and_wait, 0);
  ASSERT_NE(p, nullptr);
  uint32_t n = 0;
  bool broken = false;
  do ASSERT_EQ(mproc_mbarrier_state(m, ids.b, nullptr, &n, &broken, kLong), 0);
  while (n != 1); // it waits at the barrier, holding the rlock
  EXPECT_EQ(mproc_mlock_acquire(m, ids.r, 0), MPROC_ETIMEDOUT);
  ASSERT_EQ(mproc_process_kill(p), 0);
  EXPECT_EQ(mproc_process_join(p, kLong), 0);
  mproc_process_destroy(p);
  EXPECT_EQ(mproc_mlock_acquire(m, ids.r, kLong), MPROC_EOWNERDEAD) << mproc_last_error();
  EXPECT_EQ(mproc_mlock_release(m, ids.r, kLong), 0); // one level: ours
  EXPECT_EQ(mproc_mbarrier_state(m, ids.b, nullptr, &n, &broken, kLong), 0);
  EXPECT_TRUE(broken); // as a local barrier whose waiter died
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(set(m, ids.d, "still", "serving"), 0);
  EXPECT_EQ(get(m, ids.d, "still"), "serving");
}

// ---- a custom type (BaseManager.register): a counter with a history, its methods run in the server ----

struct Counter {
  int64_t value;
  std::string *log; // made by the first add, freed by the destroy
};
int counter_add(void *state, const mproc_bytes *args, size_t nargs, mproc_mreply *reply) {
  Counter *c = (Counter *)state;
  if (nargs != 1) return MPROC_EINVAL;
  if (!c->log) c->log = new std::string();
  std::string x((const char *)args[0].data, args[0].len);
  c->value += std::stoll(x);
  *c->log += x + ";";
  std::string v = std::to_string(c->value);
  return mproc_mreply_add(reply, v.data(), v.size());
}
int counter_get(void *state, const mproc_bytes *, size_t, mproc_mreply *reply) {
  Counter *c = (Counter *)state;
  std::string v = std::to_string(c->value), log = c->log ? *c->log : "";
  int rc = mproc_mreply_add(reply, v.data(), v.size());
  return rc ? rc : mproc_mreply_add(reply, log.data(), log.size());
}
int counter_refuse(void *, const mproc_bytes *, size_t, mproc_mreply *) { return MPROC_ESTATE; }
void counter_destroy(void *state) { delete ((Counter *)state)->log; }
const mproc_mmethod kCounterMethods[] = {{"add", counter_add}, {"get", counter_get}, {"refuse", counter_refuse}};
const mproc_mtype kCounter = {"Counter", sizeof(Counter), counter_destroy, kCounterMethods, 3};

std::vector<std::string> call(mproc_manager *m, mproc_mobject o, const char *method, std::vector<std::string> args,
                              int *rc) {
  std::vector<mproc_bytes> b;
  for (const std::string &a : args) b.push_back({a.data(), a.size()});
  mproc_bytes *out = nullptr;
  size_t n = 0;
  *rc = mproc_mobject_call(m, o, method, b.data(), b.size(), &out, &n, kLong);
  return *rc ? std::vector<std::string>{} : strings(out, n);
}

// objects: the manager; adds n + 1 to the counter named "shared" three times
int t_count(const mproc_args *a) {
  mproc_manager *m = (mproc_manager *)a->objects[0];
  mproc_mobject o;
  if (mproc_manager_object_named(m, "shared", "Counter", &o, kLong) != 0) return 10;
  std::string x = std::to_string(((const Ids *)a->data)->n + 1);
  mproc_bytes arg = {x.data(), x.size()};
  for (int i = 0; i < 3; ++i)
    if (mproc_mobject_call(m, o, "add", &arg, 1, nullptr, nullptr, kLong) != 0) return 11;
  return 0;
}

TEST_P(ManagerAcross, ACustomTypeRegisteredBeforeStartIsServedToEveryProcess) {
  mproc_manager *c = nullptr; // its own server, with the type: under every start method
  mproc_manager_opts o{};
  o.start_method = GetParam();
  o.types = &kCounter;
  o.type_count = 1;
  ASSERT_EQ(mproc_manager_start(&c, &o), 0) << mproc_last_error();
  std::swap(c, m); // start() hands m to children
  mproc_mobject k;
  ASSERT_EQ(mproc_manager_object(m, "Counter", &k, kLong), 0) << mproc_last_error();
  int rc = 0;
  EXPECT_EQ(call(m, k, "add", {"5"}, &rc), (V{"5"}));
  EXPECT_EQ(call(m, k, "add", {"-2"}, &rc), (V{"3"}));
  EXPECT_EQ(call(m, k, "get", {}, &rc), (V{"3", "5;-2;"}));
  call(m, k, "refuse", {}, &rc);
  EXPECT_EQ(rc, MPROC_ESTATE);
  EXPECT_NE(std::string(mproc_last_error()).find("method refuse of type Counter failed"), std::string::npos)
      << mproc_last_error();
  call(m, k, "nosuch", {}, &rc);
  EXPECT_EQ(rc, MPROC_ENOENT);
  call(m, k, "add", {}, &rc); // the method's own check
  EXPECT_EQ(rc, MPROC_EINVAL);
  mproc_mobject none;
  EXPECT_EQ(mproc_manager_object(m, "Unregistered", &none, kLong), MPROC_ENOENT);
  EXPECT_EQ(mproc_manager_drop(m, k.id, kLong), 0); // the destroy frees its log (ASan would say)
  std::vector<mproc_process *> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(start(t_count, i));
  for (mproc_process *p : ps) EXPECT_EQ(join(p), 0);
  mproc_mobject shared;
  ASSERT_EQ(mproc_manager_object_named(m, "shared", "Counter", &shared, kLong), 0);
  std::vector<std::string> got = call(m, shared, "get", {}, &rc);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], std::to_string(3 * (1 + 2 + 3)));
  std::swap(c, m);
  mproc_manager_destroy(c);
}

TEST(ManagerTypes, BadTypesAreRefusedAtStart) {
  if (kNoCrypto) GTEST_SKIP() << "a build without libcrypto has no authkeys, so no manager";
  mproc_mmethod nofn[] = {{"f", nullptr}};
  mproc_mtype bad[] = {{"T", 0, nullptr, nofn, 1}};
  mproc_manager_opts o{};
  o.types = bad;
  o.type_count = 1;
  mproc_manager *m = nullptr;
  EXPECT_EQ(mproc_manager_start(&m, &o), MPROC_EINVAL);
  mproc_mtype twice[] = {kCounter, kCounter};
  o.types = twice;
  o.type_count = 2;
  EXPECT_EQ(mproc_manager_start(&m, &o), MPROC_EINVAL);
  mproc_mtype noname[] = {{"", 0, nullptr, nullptr, 0}};
  o.types = noname;
  o.type_count = 1;
  EXPECT_EQ(mproc_manager_serve_forever(&o), MPROC_EINVAL);
}

INSTANTIATE_TEST_SUITE_P(Methods, ManagerAcross, ::testing::ValuesIn(methods()), method_name);

} // namespace
