// The wire codec (src/wire.h): each integer's bytes in the order its name states, whatever the machine,
// at any alignment, through the host's fast path (one load or store on a little-endian machine) and
// through the portable byte loop alike; and the bounded reader.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "wire.h" // the host's path
namespace portable {
#undef MPROC_WIRE_H
#undef MPROC__WIRE_HOST_LE
#define MPROC__WIRE_PORTABLE 1
#include "wire.h" // the byte loop, whatever the host
} // namespace portable

namespace {

const unsigned char kLe64[8] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x81};
const unsigned char kBe64[8] = {0x81, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
const uint64_t kV64 = 0x8102030405060708ull;
const unsigned char kLe32[4] = {0x04, 0x03, 0x02, 0xf1};
const unsigned char kBe32[4] = {0xf1, 0x02, 0x03, 0x04};
const uint32_t kV32 = 0xf1020304u;

struct Codec {
  void (*put_le32)(void *, uint32_t);
  void (*put_le64)(void *, uint64_t);
  void (*put_be32)(void *, uint32_t);
  void (*put_be64)(void *, uint64_t);
  uint32_t (*get_le32)(const void *);
  uint64_t (*get_le64)(const void *);
  uint32_t (*get_be32)(const void *);
  uint64_t (*get_be64)(const void *);
};

const Codec kHost = {mproc__wire_put_le32, mproc__wire_put_le64, mproc__wire_put_be32, mproc__wire_put_be64,
                     mproc__wire_get_le32, mproc__wire_get_le64, mproc__wire_get_be32, mproc__wire_get_be64};
const Codec kPortable = {portable::mproc__wire_put_le32, portable::mproc__wire_put_le64, portable::mproc__wire_put_be32,
                         portable::mproc__wire_put_be64, portable::mproc__wire_get_le32, portable::mproc__wire_get_le64,
                         portable::mproc__wire_get_be32, portable::mproc__wire_get_be64};

void CheckCodec(const Codec &c) {
  for (size_t at = 0; at < 8; ++at) { // every alignment
    SCOPED_TRACE(at);
    unsigned char buf[24];
    std::memset(buf, 0xee, sizeof buf);
    c.put_le64(buf + at, kV64);
    EXPECT_EQ(std::memcmp(buf + at, kLe64, 8), 0);
    EXPECT_EQ(buf[at + 8], 0xee); // nothing past the field
    if (at) {
      EXPECT_EQ(buf[at - 1], 0xee);
    }
    EXPECT_EQ(c.get_le64(buf + at), kV64);
    c.put_be64(buf + at, kV64);
    EXPECT_EQ(std::memcmp(buf + at, kBe64, 8), 0);
    EXPECT_EQ(c.get_be64(buf + at), kV64);
    c.put_le32(buf + at, kV32);
    EXPECT_EQ(std::memcmp(buf + at, kLe32, 4), 0);
    EXPECT_EQ(buf[at + 4], kBe64[4]); // (the be64 written before, untouched past the 4 bytes)
    EXPECT_EQ(c.get_le32(buf + at), kV32);
    c.put_be32(buf + at, kV32);
    EXPECT_EQ(std::memcmp(buf + at, kBe32, 4), 0);
    EXPECT_EQ(c.get_be32(buf + at), kV32);
  }
}

} // namespace

TEST(Wire, EachIntegerIsWrittenAndReadInItsNamedByteOrderAtAnyAlignment) {
  {
    SCOPED_TRACE("host");
    CheckCodec(kHost);
  }
  {
    SCOPED_TRACE("portable");
    CheckCodec(kPortable);
  }
}

TEST(Wire, TheHostPathAndThePortableLoopAgreeOnEveryValue) {
  unsigned char a[8], b[8];
  uint64_t v = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 1000; ++i, v = v * 6364136223846793005ull + 1442695040888963407ull) {
    mproc__wire_put_le64(a, v);
    portable::mproc__wire_put_le64(b, v);
    ASSERT_EQ(std::memcmp(a, b, 8), 0) << v;
    mproc__wire_put_be64(a, v);
    portable::mproc__wire_put_be64(b, v);
    ASSERT_EQ(std::memcmp(a, b, 8), 0) << v;
    ASSERT_EQ(mproc__wire_get_be32(a), portable::mproc__wire_get_be32(a));
    ASSERT_EQ(mproc__wire_get_le32(a + 3), portable::mproc__wire_get_le32(a + 3));
  }
}

TEST(Wire, TheReaderStopsAtTheFirstShortFieldAndNamesIt) {
  unsigned char msg[8 + 8 + 3];
  mproc__wire_put_le64(msg, 7);
  mproc__wire_put_le64(msg + 8, 4); // a length of 4 with 3 bytes left
  std::memcpy(msg + 16, "abc", 3);
  mproc__wire_reader r = mproc__wire_reader_make(msg, sizeof msg);
  EXPECT_EQ(mproc__wire_get_u64(&r, "a count"), 7u);
  size_t len = 99;
  EXPECT_EQ(mproc__wire_get_bytes(&r, &len, "an item"), nullptr);
  EXPECT_EQ(len, 0u);
  EXPECT_STREQ(r.bad, "an item");
  EXPECT_EQ(mproc__wire_get_u64(&r, "later"), 0u);
  EXPECT_STREQ(r.bad, "an item"); // the first reason stays
}
