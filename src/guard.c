/* The main guard. Issue "Processes" gives it its spawn-bootstrap body; until then every run of the
 * program is an ordinary run, so the guard returns 0 at once. The entry point is part of the ABI now
 * so that programs and the test main already call it first. */
#include "internal.h"

int mproc_main_guard(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return 0;
}
