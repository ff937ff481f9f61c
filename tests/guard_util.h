// Shared by the guard suites (guard_posix.cc, guard_win32.cc) and other white-box suites: a target that leaves a marker
// file, and well-formed bootstraps aimed at it, built with the library's own encoder (src/bootstrap.c), so that a
// forged flag carries exactly what a real parent would send and only the guard's checks can stop it.
#ifndef MPROC_TEST_GUARD_UTIL_H
#define MPROC_TEST_GUARD_UTIL_H

#include <cstdint>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "mproc.h"

extern "C" {
#include "bootstrap.h"
#include "internal.h"
#include "pal.h"
}

namespace mproc_guard_test {

// The absolute path of this test program.
inline std::string self_exe() {
  char *p = nullptr;
  EXPECT_EQ(mproc_self_exe(&p), 0);
  std::string s(p ? p : "");
  mproc_free(p);
  return s;
}

// A boot link (mproc__pal_conn_pair) closed when it goes out of scope. Windows: a is the server end, b
// the client end.
struct LinkPair {
  mproc_os_handle a = MPROC_NO_HANDLE, b = MPROC_NO_HANDLE;
  explicit LinkPair(bool duplex = true) { EXPECT_EQ(mproc__pal_conn_pair(duplex, &a, &b), 0) << mproc_last_error(); }
  ~LinkPair() {
    mproc__pal_close(a);
    mproc__pal_close(b);
  }
  LinkPair(const LinkPair &) = delete;
  LinkPair &operator=(const LinkPair &) = delete;
};

// The target of every forged bootstrap: create the file named by the argument bytes.
inline int t_write_marker(const mproc_args *a) {
  std::string path((const char *)a->data, a->size);
  std::ofstream f(path, std::ios::binary);
  if (!f) return 3;
  f << "the target ran";
  return f.good() ? 0 : 3;
}

// The reference (mproc__pal_fn_locate) of a function of this program or of a library it loaded.
inline std::string ref_of(void *fn) {
  mproc__buf ref = {nullptr, 0, 0};
  EXPECT_EQ(mproc__pal_fn_locate(fn, &ref), 0) << mproc_last_error();
  std::string s(ref.data ? ref.data : "", ref.len);
  mproc__buf_free(&ref);
  return s;
}

inline std::string marker_ref() { return ref_of((void *)t_write_marker); }

// A well-formed bootstrap naming the target `ref` with argument bytes `arg`.
inline std::string bootstrap(const std::string &ref, const std::string &arg) {
  mproc__buf msg = {nullptr, 0, 0};
  mproc__boot b{};
  b.ref = ref.data();
  b.ref_len = ref.size();
  b.arg = arg.data();
  b.arg_len = arg.size();
  b.name = "forged";
  b.ident = "1";
  b.parent_name = "MainProcess";
  b.parent_pid = mproc_getpid();
  EXPECT_EQ(mproc__boot_encode(&b, &msg), 0);
  std::string s(msg.data ? msg.data : "", msg.len);
  mproc__buf_free(&msg);
  return s;
}

// n as `bytes` little-endian bytes.
inline std::string le(uint64_t n, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out += (char)((n >> (8 * i)) & 0xFF);
  return out;
}

// What a spawned child reads on its boot link: one connection message (4-byte little-endian length).
inline std::string spawn_frame(const std::string &ref, const std::string &arg) {
  std::string b = bootstrap(ref, arg);
  return le(b.size(), 4) + b;
}

// What a fork server reads on its control socket: an 8-byte little-endian length, then the bootstrap.
inline std::string fs_request(const std::string &ref, const std::string &arg) {
  std::string b = bootstrap(ref, arg);
  return le(b.size(), 8) + b;
}

} // namespace mproc_guard_test

#endif
