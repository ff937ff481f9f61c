// Processes on POSIX only: what the fork start method promises about stdio and atexit.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "mproc.h"
#include "test_util.h"

using mproc_test::ptr;

namespace {

FILE *g_file;  // set by the test before the fork; the child sees its copy

int t_write_child_line(const mproc_args *a) {
  (void)a;
  fputs("child\n", g_file);  // flushed when the child ends
  return 0;
}

void parent_atexit_handler() {
  if (g_file) fputs("atexit ran\n", g_file);
}

int t_nothing(const mproc_args *a) {
  (void)a;
  return 0;
}

std::string slurp(FILE *f) {
  std::string s;
  rewind(f);
  char buf[256];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  return s;
}

}  // namespace

TEST(ProcessFork, StdioBufferedBeforeStartIsNotWrittenTwice) {
  g_file = tmpfile();
  ASSERT_NE(g_file, nullptr);
  setvbuf(g_file, nullptr, _IOFBF, 4096);
  fputs("parent before start\n", g_file);  // still in the buffer at fork time
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, ptr(mproc_process_opts{.target = t_write_child_line,
                                                             .start_method = MPROC_START_FORK})),
            0);
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  ASSERT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  fflush(g_file);
  EXPECT_EQ(slurp(g_file), "parent before start\nchild\n");  // once, then the child's own line
  mproc_process_destroy(p);
  fclose(g_file);
  g_file = nullptr;
}

TEST(ProcessFork, ParentAtexitHandlersDoNotRunInTheChild) {
  g_file = tmpfile();
  ASSERT_NE(g_file, nullptr);
  static bool registered = false;
  if (!registered) {
    atexit(parent_atexit_handler);  // at this process's own exit g_file is NULL again: a no-op
    registered = true;
  }
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, ptr(mproc_process_opts{.target = t_nothing, .start_method = MPROC_START_FORK})),
            0);
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  ASSERT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  EXPECT_EQ(code, 0);
  fflush(g_file);
  EXPECT_EQ(slurp(g_file), "");  // the child ended without running the parent's handler
  mproc_process_destroy(p);
  fclose(g_file);
  g_file = nullptr;
}
