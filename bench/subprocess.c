/* Benchmark area "subprocess": starting programs and capturing their output, mproc beside the raw
 * POSIX calls and CPython's subprocess (bench/py/bench_subprocess.py).
 *
 *   subprocess.spawn.true          start /bin/true and reap it          mproc_call  | posix_spawn + waitpid
 *   subprocess.spawn.true.rss1g    the same from a parent holding 1 GiB of touched memory
 *   subprocess.spawn.true.tree     the same as a process tree (process_tree: a forked helper, the
 *                                  subreaper, starts the program in its own group and relays its status)
 *                                  | fork a helper that sets PR_SET_CHILD_SUBREAPER, posix_spawns
 *                                  /bin/true in a group of its own, waits and exits with its status
 *   subprocess.spawn.true.tree.rss1g   the same from the 1 GiB parent (the helper is a fork)
 *   subprocess.spawn.true.pdeathsig    kill_on_parent_death from the main thread (vfork + prctl + exec)
 *                                  | vfork, prctl(PR_SET_PDEATHSIG), exec, waitpid
 *   subprocess.capture.both200m.<placement>
 *                                  200 MiB on stdout + 200 MiB on stderr, both captured in memory:
 *                                  mproc_run(capture_output) | posix_spawn + the strongest raw loop:
 *                                  1 MiB pipes, poll, one read per ready pipe straight into one
 *                                  reserved mapping per stream with transparent huge pages.
 *                                  Two processes: the parent pins itself, and every implementation
 *                                  starts mproc_helper through bench_pinexec, which pins it to the
 *                                  placement's CPU (the same call and the same extra exec for all).
 *   subprocess.capture.small.<placement>
 *                                  the same with 4 KiB on each stream: a start, a capture and a reap per
 *                                  op, where a capture buffer that reserves big would cost (us/op)
 *   subprocess.lines.100k.<placement>
 *                                  a child writing 100,000 lines of 64 bytes, one write per line
 *                                  (bench_linewriter, which pins itself to the placement's CPU), read
 *                                  line by line; op = one line, timed from the go the reader gives the
 *                                  writer (right before its first byte) to end of file:
 *                                  mproc_popen_readline into a caller buffer | the
 *                                  strongest raw loop: the pipe grown to 1 MiB (as mproc's), read()
 *                                  of 64 KiB (mproc's read-ahead) and memchr for each "\n", the line
 *                                  used where it lies | Python's `for line in p.stdout`. The writer's
 *                                  write per line is the bottleneck: every reader keeps up.
 *   subprocess.lines.1m.batched.<placement>
 *                                  the same with 1,000,000 lines written 1024 per write (64 KiB blocks):
 *                                  the reader's own cost per line is the bottleneck.
 * The spawn.true lines start /bin/true, which cannot pin itself, and are not placed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

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

static void spawn_mproc_with(const mproc_popen_opts *o, int64_t iters) {
  for (int64_t i = 0; i < iters; i++) {
    int code = -1;
    if (mproc_call(o, MPROC_INFINITE, &code) != 0 || code != 0) {
      fprintf(stderr, "spawn_mproc: %s\n", mproc_last_error());
      exit(1);
    }
  }
}

static void spawn_tree_mproc(void *ctx, int64_t iters) {
  (void)ctx;
  spawn_mproc_with(&(mproc_popen_opts){.argv = k_true, .process_tree = true}, iters);
}

/* The raw tree start: what a C programmer writes for the same guarantees (a subreaper helper between us
 * and the program, the program in a group of its own, its status relayed). */
static void spawn_tree_raw(void *ctx, int64_t iters) {
  (void)ctx;
  for (int64_t i = 0; i < iters; i++) {
    pid_t helper = fork();
    if (helper < 0) exit(1);
    if (helper == 0) {
#ifdef __linux__
      prctl(PR_SET_CHILD_SUBREAPER, 1);
#endif
      posix_spawnattr_t at;
      posix_spawnattr_init(&at);
      posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
      posix_spawnattr_setpgroup(&at, 0);
      pid_t pid;
      int st = 0;
      if (posix_spawn(&pid, "/bin/true", NULL, &at, (char *const *)k_true, environ) != 0) _exit(127);
      while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
      _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128);
    }
    int st;
    while (waitpid(helper, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) exit(1);
  }
}

static void spawn_pdeathsig_mproc(void *ctx, int64_t iters) {
  (void)ctx;
  spawn_mproc_with(&(mproc_popen_opts){.argv = k_true, .kill_on_parent_death = true}, iters);
}

static void pdeathsig_once(pid_t parent) {
  pid_t pid = vfork();
  if (pid < 0) exit(1);
  if (pid == 0) {
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    if (getppid() != parent) _exit(1);
    execve("/bin/true", (char *const *)k_true, environ);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
}

static void spawn_pdeathsig_raw(void *ctx, int64_t iters) {
  (void)ctx;
  pid_t parent = getpid();
  for (int64_t i = 0; i < iters; i++) pdeathsig_once(parent);
}

typedef struct capture_ctx {
  char helper[4096];
  char pinexec[4096];
  char cpu[16]; /* the child's CPU, for bench_pinexec */
  char size[32];
  size_t each; /* bytes on each of stdout and stderr */
} capture_ctx;

static void capture_mproc(void *vctx, int64_t iters) {
  capture_ctx *c = (capture_ctx *)vctx;
  const char *argv[] = {c->pinexec, c->cpu, c->helper, "out", c->size, "err", c->size, NULL};
  for (int64_t i = 0; i < iters; i++) {
    mproc_completed r;
    if (mproc_run(&(mproc_popen_opts){.argv = argv, .capture_output = true}, MPROC_INFINITE, &r) != 0) {
      fprintf(stderr, "capture_mproc: %s\n", mproc_last_error());
      exit(1);
    }
    if (r.stdout_len != c->each || r.stderr_len != c->each) {
      fprintf(stderr, "capture_mproc: captured %zu + %zu bytes, not %zu each\n", r.stdout_len, r.stderr_len, c->each);
      exit(1);
    }
    bench_sink += (int64_t)(r.stdout_len + r.stderr_len);
    mproc_completed_free(&r);
  }
}

/* The capture buffer of the raw loop: one private anonymous mapping per stream, reserved large up
 * front (address space only: MAP_NORESERVE, nothing is touched until read() writes it), with
 * transparent huge pages asked for (MADV_HUGEPAGE: one page fault per 2 MiB instead of per 4 KiB),
 * grown by mremap (no copy) if the output outgrows it. */
#define RAW_RESERVE ((size_t)1 << 30)
#define RAW_PIPE_SIZE (1 << 20) /* the same as mproc's output pipes */

typedef struct raw_buf {
  char *p;
  size_t len, cap;
} raw_buf;

static void raw_buf_room(raw_buf *b) {
  if (b->cap - b->len >= RAW_PIPE_SIZE) return;
  size_t cap = b->cap ? b->cap * 2 : RAW_RESERVE;
  void *p;
#if defined(__linux__)
  p = b->p ? mremap(b->p, b->cap, cap, MREMAP_MAYMOVE)
           : mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
#else /* no mremap: a new mapping and one copy */
  p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED && b->p) {
    memcpy(p, b->p, b->len);
    munmap(b->p, b->cap);
  }
#endif
  if (p == MAP_FAILED) {
    perror("capture_raw: mmap");
    exit(1);
  }
#ifdef MADV_HUGEPAGE
  (void)madvise(p, cap, MADV_HUGEPAGE); /* best effort: THP may be off */
#endif
  b->p = (char *)p;
  b->cap = cap;
}

/* The strongest loop an expert writes with the same facilities as mproc's pump: two pipes grown to
 * 1 MiB (F_SETPIPE_SZ, as mproc's), poll on both, and for each ready pipe one read of everything it
 * holds straight into that stream's mapping (no intermediate buffer, no realloc copies). */
static void capture_raw(void *vctx, int64_t iters) {
  capture_ctx *c = (capture_ctx *)vctx;
  const char *argv[] = {c->pinexec, c->cpu, c->helper, "out", c->size, "err", c->size, NULL};
  for (int64_t it = 0; it < iters; it++) {
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC)) exit(1);
#ifdef F_SETPIPE_SZ
    (void)fcntl(po[0], F_SETPIPE_SZ, RAW_PIPE_SIZE);
    (void)fcntl(pe[0], F_SETPIPE_SZ, RAW_PIPE_SIZE);
#endif
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    pid_t pid;
    if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0) exit(1);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    raw_buf buf[2] = {{NULL, 0, 0}, {NULL, 0, 0}};
    struct pollfd pfd[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds) {
      if (poll(pfd, 2, -1) < 0) {
        if (errno == EINTR) continue;
        exit(1);
      }
      for (int k = 0; k < 2; k++) {
        if (!pfd[k].revents) continue;
        raw_buf_room(&buf[k]);
        ssize_t n = read(pfd[k].fd, buf[k].p + buf[k].len, buf[k].cap - buf[k].len);
        if (n > 0) {
          buf[k].len += (size_t)n;
        } else if (n == 0 || errno != EINTR) {
          close(pfd[k].fd);
          pfd[k].fd = -1;
          open_fds--;
        }
      }
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (buf[0].len != c->each || buf[1].len != c->each) {
      fprintf(stderr, "capture_raw: captured %zu + %zu bytes, not %zu each\n", buf[0].len, buf[1].len, c->each);
      exit(1);
    }
    bench_sink += (int64_t)(buf[0].len + buf[1].len);
    for (int k = 0; k < 2; k++)
      if (buf[k].p) munmap(buf[k].p, buf[k].cap);
  }
}

/* ---- subprocess.lines ---------------------------------------------------------------------------- */

#define LINE_LEN 64
#define LINE_READ (64 * 1024) /* the raw loop's read size: mproc's read-ahead */

typedef struct lines_ctx {
  char writer[4096];
  char cpu[16];   /* the child's CPU */
  char count[32]; /* lines */
  char batch[16]; /* lines per write */
  long n;
} lines_ctx;

static double lines_rate(const char *impl, long got, long want, int64_t t0, int64_t t1) {
  if (got != want || t1 <= t0) {
    fprintf(stderr, "lines_%s: %ld lines, not %ld\n", impl, got, want);
    exit(1);
  }
  return (double)got / ((double)(t1 - t0) / 1e9);
}

static void lines_die(const char *what) {
  fprintf(stderr, "lines_mproc: %s: %s\n", what, mproc_last_error());
  exit(1);
}

static double lines_mproc(lines_ctx *c) {
  const char *argv[] = {c->writer, c->cpu, c->count, "64", c->batch, NULL};
  mproc_popen *p;
  if (mproc_popen_create(&p, &(mproc_popen_opts){.argv = argv, .stdin_mode = MPROC_PIPE, .stdout_mode = MPROC_PIPE}))
    lines_die("popen");
  char buf[256];
  size_t len, w;
  mproc_line_end end;
  if (mproc_popen_readline(p, 1, buf, sizeof buf, MPROC_INFINITE, &len, &end) != 0) lines_die("ready");
  int64_t t0 = bench_now_ns();
  if (mproc_popen_write(p, "g", 1, MPROC_INFINITE, &w) != 0) lines_die("go");
  long got = 0;
  for (;;) {
    if (mproc_popen_readline(p, 1, buf, sizeof buf, MPROC_INFINITE, &len, &end) != 0) lines_die("readline");
    if (end == MPROC_LINE_EOF) break;
    ++got;
    bench_sink += (int64_t)len;
  }
  int64_t t1 = bench_now_ns();
  int code = -1;
  if (mproc_popen_wait(p, MPROC_INFINITE, &code) != 0 || code != 0) exit(1);
  mproc_popen_destroy(p);
  return lines_rate("mproc", got, c->n, t0, t1);
}

/* The raw loop's read, as strong as mproc's: a pipe found empty yields the CPU once before read()
 * sleeps, so a writer sharing the CPU writes on rather than waking the reader per line (without it the
 * raw loop was 2.2x slower on one CPU and the same across two). */
static ssize_t raw_read_waiting(int fd, char *buf, size_t cap) {
#ifdef RWF_NOWAIT
  struct iovec v = {buf, cap};
  ssize_t r = preadv2(fd, &v, 1, -1, RWF_NOWAIT);
  if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return r;
  (void)sched_yield();
#endif
  return read(fd, buf, cap);
}

static double lines_raw(lines_ctx *c) {
  const char *argv[] = {c->writer, c->cpu, c->count, "64", c->batch, NULL};
  int po[2], pi[2];
  if (pipe2(po, O_CLOEXEC) || pipe2(pi, O_CLOEXEC)) exit(1);
#ifdef F_SETPIPE_SZ
  (void)fcntl(po[0], F_SETPIPE_SZ, RAW_PIPE_SIZE);
#endif
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pi[0], 0);
  posix_spawn_file_actions_adddup2(&fa, po[1], 1);
  pid_t pid;
  if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0) exit(1);
  posix_spawn_file_actions_destroy(&fa);
  close(po[1]);
  close(pi[0]);
  static char buf[LINE_READ];
  size_t carry = 0;
  long got = -1; /* "ready" first */
  int64_t t0 = 0;
  for (;;) {
    ssize_t r = raw_read_waiting(po[0], buf + carry, sizeof buf - carry);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) exit(1);
    if (r == 0) break;
    char *at = buf, *end = buf + carry + (size_t)r, *nl;
    while ((nl = memchr(at, '\n', (size_t)(end - at))) != NULL) { /* a line: [at, nl) */
      if (got++ == -1) {
        t0 = bench_now_ns();
        if (write(pi[1], "g", 1) != 1) exit(1);
      }
      bench_sink += nl - at;
      at = nl + 1;
    }
    carry = (size_t)(end - at);
    memmove(buf, at, carry);
  }
  int64_t t1 = bench_now_ns();
  close(po[0]);
  close(pi[1]);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return lines_rate("raw", got, c->n, t0, t1);
}

/* subprocess.lines.<variant>.<placement>: each implementation times itself from its go (see the top). */
static int lines_bench(const char *variant, long n, int batch) {
  lines_ctx lc;
  if (bench_sibling_path("bench_linewriter", lc.writer, sizeof lc.writer) != 0) {
    fprintf(stderr, "bench_subprocess: bench_linewriter not found beside the binary\n");
    return 1;
  }
  lc.n = bench_smoke() ? 1024 : n;
  snprintf(lc.count, sizeof lc.count, "%ld", lc.n);
  snprintf(lc.batch, sizeof lc.batch, "%d", batch);
  int rc = 0;
  for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) {
    char name[96], prefix[64];
    snprintf(prefix, sizeof prefix, "subprocess.lines.%s", variant);
    if (!bench_pair_begin(name, sizeof name, prefix, (bench_placement)pl)) continue;
    snprintf(lc.cpu, sizeof lc.cpu, "%d", bench_side_cpu((bench_placement)pl, 1));
    /* the repetitions of the two alternate, so a load that comes and goes on a shared machine falls on
     * both alike */
    static double (*const impls[])(lines_ctx *) = {lines_mproc, lines_raw};
    static const char *const names[] = {"mproc", "c-raw"};
    double values[2][64];
    int reps = bench_reps(0);
    if (reps > 64) reps = 64;
    for (int k = 0; k < 2; ++k) (void)impls[k](&lc); /* warm-up */
    for (int r = 0; r < reps; ++r)
      for (int k = 0; k < 2; ++k) values[k][r] = impls[k](&lc);
    for (int k = 0; k < 2; ++k) rc |= bench_report_op(name, names[k], "ops/s", "line", values[k], reps) != 0;
  }
  bench_unpin();
  return rc;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  bench_init(argc, argv);
  int rc = 0;
  const int64_t n_spawn = 300;
  rc |= bench_run(
            &(bench_spec){
                .name = "subprocess.spawn.true", .impl = "mproc", .unit = "us/op", .iters = n_spawn, .smoke_iters = 3},
            spawn_mproc, NULL) < 0;
  rc |= bench_run(
            &(bench_spec){
                .name = "subprocess.spawn.true", .impl = "c-raw", .unit = "us/op", .iters = n_spawn, .smoke_iters = 3},
            spawn_raw, NULL) < 0;
  rc |= bench_run(&(bench_spec){.name = "subprocess.spawn.true.tree",
                                .impl = "mproc",
                                .unit = "us/op",
                                .iters = n_spawn,
                                .smoke_iters = 3},
                  spawn_tree_mproc, NULL) < 0;
  rc |= bench_run(&(bench_spec){.name = "subprocess.spawn.true.tree",
                                .impl = "c-raw",
                                .unit = "us/op",
                                .iters = n_spawn,
                                .smoke_iters = 3},
                  spawn_tree_raw, NULL) < 0;
  rc |= bench_run(&(bench_spec){.name = "subprocess.spawn.true.pdeathsig",
                                .impl = "mproc",
                                .unit = "us/op",
                                .iters = n_spawn,
                                .smoke_iters = 3},
                  spawn_pdeathsig_mproc, NULL) < 0;
  rc |= bench_run(&(bench_spec){.name = "subprocess.spawn.true.pdeathsig",
                                .impl = "c-raw",
                                .unit = "us/op",
                                .iters = n_spawn,
                                .smoke_iters = 3},
                  spawn_pdeathsig_raw, NULL) < 0;

  capture_ctx cc;
  if (bench_sibling_path("mproc_helper", cc.helper, sizeof cc.helper) != 0 ||
      bench_sibling_path("bench_pinexec", cc.pinexec, sizeof cc.pinexec) != 0) {
    fprintf(stderr, "bench_subprocess: mproc_helper or bench_pinexec not found beside the binary\n");
    return 1;
  }
  bench_print_cpu_map();
  /* both200m: 200 MiB on each stream, a rate; small: 4 KiB on each, a start and its capture, a time */
  static const struct {
    const char *name, *unit;
    size_t each, smoke_each;
    int64_t iters;
  } caps[] = {{"subprocess.capture.both200m", "MB/s", 200u << 20, 1u << 20, 1},
              {"subprocess.capture.small", "us/op", 4096, 4096, 200}};
  for (size_t k = 0; k < sizeof caps / sizeof caps[0]; ++k) {
    size_t each = bench_smoke() ? caps[k].smoke_each : caps[k].each;
    snprintf(cc.size, sizeof cc.size, "%zu", each);
    cc.each = each;
    bool rate = caps[k].iters == 1;
    for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) {
      char name[96];
      if (!bench_pair_begin(name, sizeof name, caps[k].name, (bench_placement)pl)) continue;
      int cpu = bench_side_cpu((bench_placement)pl, 1);
      snprintf(cc.cpu, sizeof cc.cpu, "%d", cpu);
      static void (*const impls[])(void *, int64_t) = {capture_mproc, capture_raw};
      static const char *const names[] = {"mproc", "c-raw"};
      for (int i = 0; i < 2; ++i)
        rc |= bench_run(&(bench_spec){.name = name,
                                      .impl = names[i],
                                      .unit = caps[k].unit,
                                      .iters = caps[k].iters,
                                      .smoke_iters = rate ? 1 : 3,
                                      .bytes_per_op = rate ? 2.0 * (double)each : 0,
                                      .reps = rate ? 5 : 0},
                        impls[i], &cc) < 0;
    }
  }
  bench_unpin();
  rc |= lines_bench("100k", 100000, 1);
  rc |= lines_bench("1m.batched", 1000000, 1024);

  /* Last: a parent holding 1 GiB of touched memory. A fork-based spawn would copy its page tables. */
  if (bench_wanted("subprocess.spawn.true.rss1g") || bench_wanted("subprocess.spawn.true.tree.rss1g")) {
    size_t big = bench_smoke() ? (64u << 20) : (1u << 30);
    char *mem = malloc(big);
    if (!mem) return 1;
    memset(mem, 1, big);
    bench_sink += mem[big / 2];
    rc |= bench_run(&(bench_spec){.name = "subprocess.spawn.true.rss1g",
                                  .impl = "mproc",
                                  .unit = "us/op",
                                  .iters = n_spawn,
                                  .smoke_iters = 3},
                    spawn_mproc, NULL) < 0;
    rc |= bench_run(&(bench_spec){.name = "subprocess.spawn.true.rss1g",
                                  .impl = "c-raw",
                                  .unit = "us/op",
                                  .iters = n_spawn,
                                  .smoke_iters = 3},
                    spawn_raw, NULL) < 0;
    rc |= bench_run(&(bench_spec){.name = "subprocess.spawn.true.tree.rss1g",
                                  .impl = "mproc",
                                  .unit = "us/op",
                                  .iters = n_spawn,
                                  .smoke_iters = 3},
                    spawn_tree_mproc, NULL) < 0;
    rc |= bench_run(&(bench_spec){.name = "subprocess.spawn.true.tree.rss1g",
                                  .impl = "c-raw",
                                  .unit = "us/op",
                                  .iters = n_spawn,
                                  .smoke_iters = 3},
                    spawn_tree_raw, NULL) < 0;
    free(mem);
  }
  return rc;
}
