/* Benchmark area "sync": locks, shared values and events between processes, mproc beside the raw
 * POSIX primitive and CPython's multiprocessing (bench/py/bench_sync.py).
 *
 *   sync.lock.uncontended           acquire + release of a Lock, one process | a robust, process-shared
 *                                                                              pthread mutex in shared memory
 *   sync.lock.contended.<placement> two processes take one Lock from a common pool of operations until it
 *                                   is used up; op = one acquire + release by either (with the pool's
 *                                   count read and bumped under it) | the same robust mutex, the count
 *                                   beside it. A "#" line gives the smaller process's share of them.
 *   sync.value.incr.<placement>     two processes increment one Value('q') half the operations each: its
 *                                   lock acquired, the value read and written through mproc_value_ptr,
 *                                   the lock released; op = one increment | the robust mutex and an int64
 *                                   beside it. The final value is checked.
 *   sync.event.pingpong.<placement> one round trip of two Events: A sets e1, B waits e1, clears it, sets
 *                                   e2, A waits e2, clears it | two futex events (a flag and a count of
 *                                   sleepers: FUTEX_WAKE only when one sleeps), what mproc's Event is
 *                                   made of and the strongest an expert writes without spinning (a
 *                                   process-shared condition variable adds a mutex to every step)
 * c-nonrobust: the lock lines again with a mutex that is not robust, the ceiling of a lock between processes.
 * Every two-process line is pinned the same way for every implementation (bench.h): the parent pins
 * itself before timing, each child pins itself with one call as its first work. The children are fork
 * children (mproc's through mproc_process_create with MPROC_START_FORK and the objects handed in
 * opts.objects); a repetition is started and collected over a pair of pipes, the same for every
 * implementation (two small writes and reads per repetition, outside the measured loops' cost).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#include "bench.h"
#include "mproc.h"

#define MAX_CALLS 64 /* repetitions (and the warm-up) whose shares are kept */

typedef enum line_kind { LINE_CONTENDED, LINE_INCR, LINE_PINGPONG } line_kind;
/* c-nonrobust: the same program with a mutex that is not robust (a holder's death leaves it locked for
 * ever), the ceiling of a lock between processes; mproc's Lock is robust, so its goals are against c-raw. */
typedef enum impl_kind { IMPL_MPROC, IMPL_RAW, IMPL_NONROBUST } impl_kind;
static const char *const impl_names[] = {"mproc", "c-raw", "c-nonrobust"};

/* c-raw's event: a flag and the number of sleepers; set wakes only when someone sleeps. */
typedef struct raw_event {
  _Atomic uint32_t flag, sleepers;
} raw_event;

/* Everything both sides of c-raw share, in one MAP_SHARED mapping inherited by the fork child; mproc's
 * lines use `pool` (guarded by the mproc lock) and nothing else of it. */
typedef struct shared_block {
  pthread_mutex_t mutex;
  volatile int64_t data; /* c-raw: what the mutex guards, beside it (the pool's count; the value) */
  char pad[64];
  volatile int64_t pool; /* mproc contended: the pool's count, guarded by the mproc lock */
  char pad2[64];
  raw_event e1;
  char pad3[64];
  raw_event e2;
} shared_block;

typedef struct side {
  line_kind line;
  impl_kind impl;
  bench_placement placement;
  shared_block *sh;
  int in, out; /* control pipes: the parameter of a repetition in, this side's operations out */
  mproc_lock *lock;
  mproc_value *value;
  mproc_event *e1, *e2;
} side;

typedef struct pair_ctx {
  side me;                 /* the parent's side */
  int64_t calls;           /* fn calls so far (the warm-up first) */
  double share[MAX_CALLS]; /* contended: the smaller side's share of each call */
} pair_ctx;

static void die(const char *what) {
  fprintf(stderr, "bench_sync: %s: %s\n", what, mproc_last_error());
  exit(1);
}

/* ---- c-raw's primitives ------------------------------------------------------------------------ */

/* A process-shared mutex in shared memory; robust for c-raw (as mproc's Lock, it survives a holder's death). */
static int raw_mutex_init(pthread_mutex_t *m, bool robust) {
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  if (robust) pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  int rc = pthread_mutex_init(m, &ma);
  pthread_mutexattr_destroy(&ma);
  return rc;
}

static void raw_lock(pthread_mutex_t *m) {
  int rc = pthread_mutex_lock(m);
  if (rc == EOWNERDEAD) rc = pthread_mutex_consistent(m);
  if (rc) exit(1);
}

#if defined(__linux__)
static void raw_event_set(raw_event *e) {
  if (atomic_exchange(&e->flag, 1) == 0 && atomic_load(&e->sleepers))
    syscall(SYS_futex, (void *)&e->flag, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void raw_event_wait(raw_event *e) {
  while (!atomic_load(&e->flag)) {
    atomic_fetch_add(&e->sleepers, 1);
    if (!atomic_load(&e->flag)) syscall(SYS_futex, (void *)&e->flag, FUTEX_WAIT, 0, NULL, NULL, 0);
    atomic_fetch_sub(&e->sleepers, 1);
  }
}
#endif

/* ---- one side's work in a repetition; returns the operations it did ------------------------------ */

/* contended: take the lock until the pool's count reaches `end`. */
static int64_t contend(side *s, int64_t end) {
  int64_t mine = 0;
  if (s->impl == IMPL_MPROC) {
    for (;;) {
      if (mproc_lock_acquire(s->lock, MPROC_INFINITE) != 0) die("lock_acquire");
      bool done = s->sh->pool >= end;
      if (!done) s->sh->pool = s->sh->pool + 1;
      mproc_lock_release(s->lock);
      if (done) return mine;
      ++mine;
    }
  }
  for (;;) {
    raw_lock(&s->sh->mutex);
    bool done = s->sh->data >= end;
    if (!done) s->sh->data = s->sh->data + 1;
    pthread_mutex_unlock(&s->sh->mutex);
    if (done) return mine;
    ++mine;
  }
}

/* value.incr: n increments. */
static int64_t increment(side *s, int64_t n) {
  if (s->impl == IMPL_MPROC) {
    mproc_lock *l = mproc_value_lock(s->value);
    volatile int64_t *x = (volatile int64_t *)mproc_value_ptr(s->value);
    for (int64_t i = 0; i < n; ++i) {
      if (mproc_lock_acquire(l, MPROC_INFINITE) != 0) die("lock_acquire");
      *x = *x + 1;
      mproc_lock_release(l);
    }
    return n;
  }
  for (int64_t i = 0; i < n; ++i) {
    raw_lock(&s->sh->mutex);
    s->sh->data = s->sh->data + 1;
    pthread_mutex_unlock(&s->sh->mutex);
  }
  return n;
}

/* event.pingpong: n round trips; side 0 (A) serves, side 1 (B) answers. */
static int64_t pingpong(side *s, int which, int64_t n) {
  if (s->impl == IMPL_MPROC) {
    mproc_event *wait_on = which == 0 ? s->e2 : s->e1, *set = which == 0 ? s->e1 : s->e2;
    for (int64_t i = 0; i < n; ++i) {
      if (which == 0) mproc_event_set(set);
      if (mproc_event_wait(wait_on, MPROC_INFINITE) != 0) die("event_wait");
      mproc_event_clear(wait_on);
      if (which == 1) mproc_event_set(set);
    }
    return n;
  }
#if defined(__linux__)
  raw_event *wait_on = which == 0 ? &s->sh->e2 : &s->sh->e1, *set = which == 0 ? &s->sh->e1 : &s->sh->e2;
  for (int64_t i = 0; i < n; ++i) {
    if (which == 0) raw_event_set(set);
    raw_event_wait(wait_on);
    atomic_store(&wait_on->flag, 0);
    if (which == 1) raw_event_set(set);
  }
#endif
  return n;
}

static int64_t work(side *s, int which, int64_t param) {
  switch (s->line) {
    case LINE_CONTENDED:
      return contend(s, param);
    case LINE_INCR:
      return increment(s, param);
    default:
      return pingpong(s, which, param);
  }
}

/* ---- the two processes ---------------------------------------------------------------------------- */

/* The child: pin itself, then one repetition per parameter read, until a negative one. */
static int serve(side *s) {
  bench_pin_side(s->placement, 1);
  int64_t param;
  while (bench_read_full(s->in, &param, sizeof param) == 0 && param >= 0) {
    int64_t mine = work(s, 1, param);
    if (write(s->out, &mine, sizeof mine) != (ssize_t)sizeof mine) return 1;
  }
  return 0;
}

/* mproc's child: a fork child, so `s` is the parent's copy; the objects come from args->objects. */
static int mproc_child(const mproc_args *a) {
  side s;
  memcpy(&s, a->data, sizeof s);
  void *const *o = a->objects;
  if (s.line == LINE_CONTENDED) s.lock = (mproc_lock *)o[0];
  if (s.line == LINE_INCR) s.value = (mproc_value *)o[0];
  if (s.line == LINE_PINGPONG) {
    s.e1 = (mproc_event *)o[0];
    s.e2 = (mproc_event *)o[1];
  }
  return serve(&s);
}

/* One repetition of iters operations, both sides. */
static void pair_run(void *vctx, int64_t iters) {
  pair_ctx *c = (pair_ctx *)vctx;
  side *s = &c->me;
  int64_t param = iters, mine, theirs;
  if (s->line == LINE_CONTENDED) param = (s->impl == IMPL_MPROC ? s->sh->pool : s->sh->data) + iters;
  if (s->line == LINE_INCR) param = iters / 2;
  if (write(s->out, &param, sizeof param) != (ssize_t)sizeof param) exit(1);
  mine = work(s, 0, s->line == LINE_INCR ? iters - iters / 2 : param);
  if (bench_read_full(s->in, &theirs, sizeof theirs) != 0) exit(1);
  if (s->line == LINE_CONTENDED && c->calls < MAX_CALLS)
    c->share[c->calls] = (double)(mine < theirs ? mine : theirs) / (double)(mine + theirs);
  c->calls++;
}

/* Start the child of one implementation, measure, stop it. */
static int run_impl(const char *name, const char *unit, line_kind line, impl_kind impl, bench_placement pl,
                    int64_t iters, int64_t smoke_iters) {
  shared_block *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) return 1;
  memset(sh, 0, sizeof *sh);
  if (raw_mutex_init(&sh->mutex, impl != IMPL_NONROBUST) != 0) return 1;

  int down[2], up[2];
  if (pipe(down) != 0 || pipe(up) != 0) return 1;
  pair_ctx c = {.me = {line, impl, pl, sh, up[0], down[1], NULL, NULL, NULL, NULL}};
  side child = {line, impl, pl, sh, down[0], up[1], NULL, NULL, NULL, NULL};
  mproc_object objs[2];
  size_t nobj = 0;
  mproc_process *p = NULL;
  pid_t pid = -1;
  if (impl == IMPL_MPROC) {
    if (line == LINE_CONTENDED) {
      if (mproc_lock_create(&c.me.lock) != 0) die("lock_create");
      objs[nobj++] = mproc_object_lock(c.me.lock);
    } else if (line == LINE_INCR) {
      if (mproc_value_create(&c.me.value, 'q', NULL) != 0) die("value_create");
      objs[nobj++] = mproc_object_value(c.me.value);
    } else {
      if (mproc_event_create(&c.me.e1) != 0 || mproc_event_create(&c.me.e2) != 0) die("event_create");
      objs[nobj++] = mproc_object_event(c.me.e1);
      objs[nobj++] = mproc_object_event(c.me.e2);
    }
    if (mproc_process_create(&p, &(mproc_process_opts){.target = mproc_child,
                                                       .arg = &child,
                                                       .arg_size = sizeof child,
                                                       .objects = objs,
                                                       .object_count = nobj,
                                                       .start_method = MPROC_START_FORK}) != 0 ||
        mproc_process_start(p) != 0)
      die("process_start");
  } else {
    pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      close(down[1]);
      close(up[0]);
      _exit(serve(&child));
    }
  }
  close(down[0]);
  close(up[1]);

  int rc = bench_run(
               &(bench_spec){
                   .name = name, .impl = impl_names[impl], .unit = unit, .iters = iters, .smoke_iters = smoke_iters},
               pair_run, &c) < 0;
  int64_t stop = -1;
  if (write(down[1], &stop, sizeof stop) != (ssize_t)sizeof stop) rc = 1;
  close(down[1]);
  if (impl == IMPL_MPROC) {
    mproc_process_join(p, MPROC_INFINITE);
    int code = -1;
    mproc_process_exitcode(p, &code);
    rc |= code != 0;
    mproc_process_destroy(p);
  } else {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    rc |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
  }
  close(up[0]);

  if (line == LINE_INCR) { /* every increment of every call arrived */
    int64_t want = 0, got = impl == IMPL_MPROC ? *(int64_t *)mproc_value_ptr(c.me.value) : sh->data;
    int reps = (int)c.calls - 1;
    int64_t per = bench_smoke() ? smoke_iters : iters;
    want = per / 10 + 1 + (int64_t)reps * per;
    if (got != want) {
      fprintf(stderr, "bench_sync: %s %s: the value is %lld, not %lld\n", name, impl_names[impl], (long long)got,
              (long long)want);
      rc = 1;
    }
  }
  if (line == LINE_CONTENDED && c.calls > 1) { /* the repetitions' shares, the warm-up aside */
    int n = (int)(c.calls - 1 < MAX_CALLS - 1 ? c.calls - 1 : MAX_CALLS - 1);
    double med, lo, hi;
    bench_stats(c.share + 1, n, &med, &lo, &hi);
    printf(
        "# %s impl=%s: the smaller process's share of the operations: median %.1f%%, min %.1f%%, max %.1f%% "
        "(goal: at least 25%%)\n",
        name, impl_names[impl], med * 100, lo * 100, hi * 100);
  }
  mproc_lock_destroy(c.me.lock);
  mproc_value_destroy(c.me.value);
  mproc_event_destroy(c.me.e1);
  mproc_event_destroy(c.me.e2);
  pthread_mutex_destroy(&sh->mutex);
  munmap(sh, sizeof *sh);
  return rc;
}

static int run_pair(const char *what, const char *unit, line_kind line, bench_placement pl, int64_t iters,
                    int64_t smoke_iters) {
  char name[96], prefix[64];
  snprintf(prefix, sizeof prefix, "sync.%s", what);
  if (!bench_pair_begin(name, sizeof name, prefix, pl)) return 0;
  int rc = run_impl(name, unit, line, IMPL_MPROC, pl, iters, smoke_iters);
#if !defined(__linux__)
  if (line == LINE_PINGPONG) {
    printf("# %s impl=c-raw: skipped, its events are futexes (Linux)\n", name);
    bench_unpin();
    return rc;
  }
#endif
  rc |= run_impl(name, unit, line, IMPL_RAW, pl, iters, smoke_iters);
  if (line != LINE_PINGPONG) rc |= run_impl(name, unit, line, IMPL_NONROBUST, pl, iters, smoke_iters);
  bench_unpin();
  return rc;
}

/* ---- one process ------------------------------------------------------------------------------------ */

static void uncontended_mproc(void *ctx, int64_t iters) {
  mproc_lock *l = (mproc_lock *)ctx;
  for (int64_t i = 0; i < iters; ++i) {
    if (mproc_lock_acquire(l, MPROC_INFINITE) != 0) die("lock_acquire");
    mproc_lock_release(l);
  }
}

static void uncontended_raw(void *ctx, int64_t iters) {
  pthread_mutex_t *m = (pthread_mutex_t *)ctx;
  for (int64_t i = 0; i < iters; ++i) {
    raw_lock(m);
    pthread_mutex_unlock(m);
  }
}

static int run_uncontended(void) {
  const char *name = "sync.lock.uncontended";
  if (!bench_wanted(name)) return 0;
  mproc_lock *l;
  if (mproc_lock_create(&l) != 0) die("lock_create");
  bench_spec spec = {.name = name, .impl = "mproc", .unit = "ns/op", .iters = 5000000};
  int rc = bench_run(&spec, uncontended_mproc, l) < 0;
  mproc_lock_destroy(l);

  pthread_mutex_t *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 1;
  for (int impl = IMPL_RAW; impl <= IMPL_NONROBUST; ++impl) {
    if (raw_mutex_init(m, impl == IMPL_RAW) != 0) return 1;
    spec.impl = impl_names[impl];
    rc |= bench_run(&spec, uncontended_raw, m) < 0;
    pthread_mutex_destroy(m);
  }
  munmap(m, sizeof *m);
  return rc;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  bench_init(argc, argv);
  bench_print_cpu_map();
  int rc = run_uncontended();
  for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) {
    rc |= run_pair("lock.contended", "ns/op", LINE_CONTENDED, (bench_placement)pl, 2000000, 2000);
    rc |= run_pair("value.incr", "ns/op", LINE_INCR, (bench_placement)pl, 2000000, 2000);
    rc |= run_pair("event.pingpong", "us/op", LINE_PINGPONG, (bench_placement)pl, 20000, 200);
  }
  return rc;
}
