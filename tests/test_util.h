// Small utilities shared by the test suites.
#ifndef MPROC_TEST_UTIL_H
#define MPROC_TEST_UTIL_H

#include <string>

#include "mproc.h"

namespace mproc_test {

// Whether this build targets Windows (the tests themselves stay platform-neutral; a few expectations,
// such as signal numbers, differ and say so).
#ifdef _WIN32
constexpr bool kWindows = true;
#else
constexpr bool kWindows = false;
#endif

// Absolute path of the helper program, which the build puts beside every test executable.
inline std::string helper_path() {
  char *self = nullptr;
  if (mproc_self_exe(&self) != 0) return "mproc_helper";
  std::string s(self);
  mproc_free(self);
  size_t slash = s.find_last_of(kWindows ? "\\/" : "/");
  return s.substr(0, slash + 1) + (kWindows ? "mproc_helper.exe" : "mproc_helper");
}

}  // namespace mproc_test

#endif
