// White-box tests of the internal helpers (suite Util: src/util.c) and the PAL core (suite Pal:
// src/posix/pal_core.c, src/win32/pal_core.c), linked against a static build of the library sources.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "internal.h"
#include "pal.h"
}
#include "test_util.h"

TEST(Util, FailSetsMessageAndReturnsCode) {
  EXPECT_EQ(mproc__fail(MPROC_ESTATE, "thing %d went %s", 7, "wrong"), MPROC_ESTATE);
  EXPECT_STREQ(mproc_last_error(), "thing 7 went wrong");
  EXPECT_EQ(mproc_last_os_error(), 0);
}

TEST(Util, FailOsNamesTheOsErrorAndMapsIt) {
  // ENOENT is 2 on POSIX; ERROR_FILE_NOT_FOUND is 2 on Windows: both mean "not found".
  int rc = mproc__fail_os(0, 2, "open '%s'", "x.txt");
  EXPECT_EQ(rc, MPROC_ENOENT);
  std::string m = mproc_last_error();
  EXPECT_EQ(m.rfind("open 'x.txt' (", 0), 0u) << m;
  EXPECT_NE(m.find(mproc_test::kWindows ? "ERROR_FILE_NOT_FOUND, error 2:" : "ENOENT, errno 2:"), std::string::npos)
      << m;
  EXPECT_EQ(mproc_last_os_error(), 2);
  EXPECT_EQ(mproc__fail_os(MPROC_ESYS, 2, "x"), MPROC_ESYS); // explicit code wins
}

// A buffer that grows past a few MiB becomes a mapping of its own with huge pages asked for, and grows
// on by remapping: every byte written before each growth must survive it, in place. Such a block is a
// power of two less 64 bytes (the C runtime's header then makes the mapping whole huge pages, which Linux
// places on a huge-page boundary: src/util.c), through every doubling.
TEST(Util, ABigBufferKeepsEveryByteAcrossItsGrowths) {
  mproc__buf b = {nullptr, 0, 0};
  const size_t piece = 256 * 1024, total = 80u << 20; // through 1 MiB, 32 MiB and two doublings after
  std::vector<char> chunk(piece);
  for (size_t at = 0; at < total; at += piece) {
    for (size_t i = 0; i < piece; i += 8) memcpy(&chunk[i], &at, sizeof at);
    ASSERT_EQ(mproc__buf_append(&b, chunk.data(), piece), 0);
    if (b.cap > (1u << 20)) {
      ASSERT_EQ((b.cap + 64) & (b.cap + 63), 0u) << "a mapped block of " << b.cap << " bytes";
    }
  }
  ASSERT_EQ(b.len, total);
  EXPECT_GE(b.cap, total);
  for (size_t at = 0; at < total; at += piece) {
    size_t got = 0;
    memcpy(&got, b.data + at + piece - 8, sizeof got);
    ASSERT_EQ(got, at) << "the piece written at " << at;
  }
  mproc__buf_free(&b);
}

TEST(Util, LongMessagesAreTruncatedNotOverflowed) {
  std::string big(5000, 'x');
  mproc__fail_os(0, 2, "%s", big.c_str());
  EXPECT_LT(strlen(mproc_last_error()), 1024u);
}

TEST(Util, BufferGrowsAndTerminates) {
  mproc__buf b = {nullptr, 0, 0};
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(mproc__buf_append(&b, "0123456789", 10), 0);
  ASSERT_EQ(mproc__buf_terminate(&b), 0);
  EXPECT_EQ(b.len, 10000u);
  EXPECT_EQ(b.data[b.len], '\0');
  EXPECT_EQ(std::string(b.data, 10), "0123456789");
  mproc__buf_free(&b);
  EXPECT_EQ(b.data, nullptr);
  mproc__buf e = {nullptr, 0, 0};
  ASSERT_EQ(mproc__buf_terminate(&e), 0);
  EXPECT_STREQ(e.data, "");
  mproc__buf_free(&e);
}

TEST(Util, Deadlines) {
  EXPECT_EQ(mproc__deadline_from_timeout(MPROC_INFINITE), INT64_MAX);
  EXPECT_EQ(mproc__deadline_from_timeout(-5), INT64_MAX);
  EXPECT_EQ(mproc__ms_until(INT64_MAX), -1);
  int64_t d0 = mproc__deadline_from_timeout(0);
  EXPECT_EQ(mproc__ms_until(d0), 0);
  int64_t d = mproc__deadline_from_timeout(60000);
  int64_t left = mproc__ms_until(d);
  EXPECT_GT(left, 50000);
  EXPECT_LE(left, 60000);
  EXPECT_EQ(mproc__deadline_from_timeout(INT64_MAX), INT64_MAX); // no overflow
}

TEST(Pal, HandleCountIsKnown) { EXPECT_GT(mproc__pal_handle_count(), 0); }

TEST(Pal, CloseNoHandleIsHarmless) {
  mproc__pal_close(MPROC_NO_HANDLE);
  EXPECT_FALSE(mproc__pal_handle_valid(MPROC_NO_HANDLE));
}

TEST(Pal, GetenvReadsTheProcessEnvironmentAsUtf8) {
  using mproc_test::env_set;
  const char *name = "MPROC_PAL_GETENV_TEST";
  const char *value = "h\xc3\xa9llo \xe4\xb8\xad \xf0\x9f\x98\x80"; // 2-, 3- and 4-byte UTF-8 (a surrogate pair)
  env_set(name, value);
  char *v = nullptr;
  ASSERT_EQ(mproc__pal_getenv(name, &v), 0) << mproc_last_error();
  ASSERT_NE(v, nullptr);
  EXPECT_STREQ(v, value); // on Windows the ANSI getenv would have mangled it
  free(v);
  EXPECT_TRUE(mproc__pal_env_is_set(name));
  // a long value (Windows allows 32767 characters)
  std::string big(30000, 'v');
  env_set(name, big.c_str());
  ASSERT_EQ(mproc__pal_getenv(name, &v), 0) << mproc_last_error();
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(std::string(v) == big) << std::strlen(v) << " bytes";
  free(v);
  // set but empty is set
  env_set(name, "");
  ASSERT_EQ(mproc__pal_getenv(name, &v), 0) << mproc_last_error();
  ASSERT_NE(v, nullptr);
  EXPECT_STREQ(v, "");
  free(v);
  EXPECT_TRUE(mproc__pal_env_is_set(name));
  // unset
  env_set(name, nullptr);
  v = (char *)&v; // must be overwritten with NULL
  ASSERT_EQ(mproc__pal_getenv(name, &v), 0) << mproc_last_error();
  EXPECT_EQ(v, nullptr);
  EXPECT_FALSE(mproc__pal_env_is_set(name));
  // bad names
  EXPECT_EQ(mproc__pal_getenv("", &v), MPROC_EINVAL);
  EXPECT_EQ(mproc__pal_getenv("A=B", &v), MPROC_EINVAL);
  EXPECT_EQ(mproc__pal_getenv(nullptr, &v), MPROC_EINVAL);
  EXPECT_EQ(mproc__pal_getenv(name, nullptr), MPROC_EINVAL);
  EXPECT_FALSE(mproc__pal_env_is_set(""));
  EXPECT_FALSE(mproc__pal_env_is_set(nullptr));
}

TEST(Pal, UnsetenvThenGetenvAgree) {
  mproc_test::env_set("MPROC_PAL_UNSET_TEST", "1");
  EXPECT_TRUE(mproc__pal_env_is_set("MPROC_PAL_UNSET_TEST"));
  mproc__pal_unsetenv("MPROC_PAL_UNSET_TEST");
  EXPECT_FALSE(mproc__pal_env_is_set("MPROC_PAL_UNSET_TEST"));
}
