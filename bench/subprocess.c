/* Benchmark area "subprocess": starting programs and capturing their output, mproc beside the raw
 * POSIX calls and CPython's subprocess (bench/py/bench_subprocess.py).
 *
 *   subprocess.spawn.true          start /bin/true and reap it          mproc_call  | posix_spawn + waitpid
 *   subprocess.spawn.true.rss1g    the same from a parent holding 1 GiB of touched memory
 *   subprocess.capture.both200m    200 MiB on stdout + 200 MiB on stderr, both captured in memory:
 *                                  mproc_run(capture_output) | posix_spawn + a plain poll loop
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

extern char **environ;

static const char *k_true[] = {"/bin/true", NULL};

static void spawn_mproc(void *ctx, int64_t iters) {
  (void)ctx;
  for (int64_t i = 0; i < iters; i++) {
    int code = -1;
    if (mproc_call(&(mproc_popen_opts){.argv = k_true}, MPROC_INFINITE, &code) != 0 || code != 0) {
      fprintf(stderr, "spawn_mproc: %s\n", mproc_last_error());
      exit(1);
    }
  }
}

static void spawn_raw(void *ctx, int64_t iters) {
  (void)ctx;
  for (int64_t i = 0; i < iters; i++) {
    pid_t pid;
    int st;
    if (posix_spawn(&pid, "/bin/true", NULL, NULL, (char *const *)k_true, environ) != 0) exit(1);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
}

typedef struct capture_ctx {
  char helper[4096];
  char size[32];
} capture_ctx;

static void capture_mproc(void *vctx, int64_t iters) {
  capture_ctx *c = (capture_ctx *)vctx;
  const char *argv[] = {c->helper, "out", c->size, "err", c->size, NULL};
  for (int64_t i = 0; i < iters; i++) {
    mproc_completed r;
    if (mproc_run(&(mproc_popen_opts){.argv = argv, .capture_output = true}, MPROC_INFINITE, &r) != 0) {
      fprintf(stderr, "capture_mproc: %s\n", mproc_last_error());
      exit(1);
    }
    bench_sink += (int64_t)(r.stdout_len + r.stderr_len);
    mproc_completed_free(&r);
  }
}

/* The plain loop a C programmer would write: two pipes, poll, read 64 KiB at a time into buffers that
 * double as they fill. */
static void capture_raw(void *vctx, int64_t iters) {
  capture_ctx *c = (capture_ctx *)vctx;
  const char *argv[] = {c->helper, "out", c->size, "err", c->size, NULL};
  for (int64_t it = 0; it < iters; it++) {
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC)) exit(1);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    pid_t pid;
    if (posix_spawn(&pid, c->helper, &fa, NULL, (char *const *)argv, environ) != 0) exit(1);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    char *buf[2] = {NULL, NULL};
    size_t len[2] = {0, 0}, cap[2] = {0, 0};
    struct pollfd pfd[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds) {
      if (poll(pfd, 2, -1) < 0) {
        if (errno == EINTR) continue;
        exit(1);
      }
      for (int k = 0; k < 2; k++) {
        if (!pfd[k].revents) continue;
        if (cap[k] - len[k] < 65536) {
          cap[k] = cap[k] ? cap[k] * 2 : 65536;
          buf[k] = realloc(buf[k], cap[k]);
          if (!buf[k]) exit(1);
        }
        ssize_t n = read(pfd[k].fd, buf[k] + len[k], 65536);
        if (n > 0) {
          len[k] += (size_t)n;
        } else if (n == 0) {
          close(pfd[k].fd);
          pfd[k].fd = -1;
          open_fds--;
        }
      }
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    bench_sink += (int64_t)(len[0] + len[1]);
    free(buf[0]);
    free(buf[1]);
  }
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  bench_init(argc, argv);
  int rc = 0;
  const int64_t n_spawn = 300;
  rc |= bench_run(&(bench_spec){.name = "subprocess.spawn.true", .impl = "mproc", .unit = "us/op", .iters = n_spawn,
                                .smoke_iters = 3},
                  spawn_mproc, NULL) < 0;
  rc |= bench_run(&(bench_spec){.name = "subprocess.spawn.true", .impl = "c-raw", .unit = "us/op", .iters = n_spawn,
                                .smoke_iters = 3},
                  spawn_raw, NULL) < 0;

  capture_ctx cc;
  if (bench_sibling_path("mproc_helper", cc.helper, sizeof cc.helper) != 0) {
    fprintf(stderr, "bench_subprocess: mproc_helper not found beside the binary\n");
    return 1;
  }
  size_t each = bench_smoke() ? (1u << 20) : (200u << 20);
  snprintf(cc.size, sizeof cc.size, "%zu", each);
  rc |= bench_run(&(bench_spec){.name = "subprocess.capture.both200m", .impl = "mproc", .unit = "MB/s", .iters = 1,
                                .smoke_iters = 1, .bytes_per_op = 2.0 * (double)each, .reps = 5},
                  capture_mproc, &cc) < 0;
  rc |= bench_run(&(bench_spec){.name = "subprocess.capture.both200m", .impl = "c-raw", .unit = "MB/s", .iters = 1,
                                .smoke_iters = 1, .bytes_per_op = 2.0 * (double)each, .reps = 5},
                  capture_raw, &cc) < 0;

  /* Last: a parent holding 1 GiB of touched memory. A fork-based spawn would copy its page tables. */
  if (bench_wanted("subprocess.spawn.true.rss1g")) {
    size_t big = bench_smoke() ? (64u << 20) : (1u << 30);
    char *mem = malloc(big);
    if (!mem) return 1;
    memset(mem, 1, big);
    bench_sink += mem[big / 2];
    rc |= bench_run(&(bench_spec){.name = "subprocess.spawn.true.rss1g", .impl = "mproc", .unit = "us/op",
                                  .iters = n_spawn, .smoke_iters = 3},
                    spawn_mproc, NULL) < 0;
    rc |= bench_run(&(bench_spec){.name = "subprocess.spawn.true.rss1g", .impl = "c-raw", .unit = "us/op",
                                  .iters = n_spawn, .smoke_iters = 3},
                    spawn_raw, NULL) < 0;
    free(mem);
  }
  return rc;
}
