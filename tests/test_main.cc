// The main of every test executable. It calls mproc's main guard first, exactly like a user program,
// so that spawn-method children re-execute the test binary itself and run their target there.
#include <gtest/gtest.h>

#include "mproc.h"

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
