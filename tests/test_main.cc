// The main of every test executable. It calls mproc's main guard first, exactly like a user program,
// so that spawn-method children re-execute the test binary itself and run their target there.
#include <gtest/gtest.h>

#include "mproc.h"

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <cstdlib>

#include "helpers/quiet_crashes.h"
#endif

int main(int argc, char **argv) {
#ifdef _WIN32
  // Spawned children re-execute this program, and some crash or abort on purpose: no dialogs, and the
  // same abort() status under every C runtime (helpers/quiet_crashes.h).
  mproc_test_quiet_crashes();
#endif
  mproc_main_guard(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
