/*
 * POSIX PAL: process trees (pal.h, "process trees") and the tree helper, which also serves
 * kill_on_parent_death where PR_SET_PDEATHSIG cannot (see spawn.c).
 *
 * The helper is a fork of this process that stands between it and the program: app -> helper ->
 * program. Why a process of its own: a subreaper receives every orphan of its subtree, and the app must
 * not become one (it would have to reap processes it never started, and subprocess.h promises that it
 * reaps only its own children); why a fork rather than an executable of ours: mproc is a library and
 * ships no program. So the helper runs in a copy of a possibly multi-threaded process, and until it
 * exits it calls only async-signal-safe functions: no allocation, no locks, no stdio, no mproc__fail.
 * It keeps the fds it needs (closing the rest once the program runs, so it never holds another pipe of
 * the app open) and blocks every signal but SIGCHLD, so Ctrl-C, Ctrl-Z and a stray SIGTERM to the app's
 * group leave it alone; the program gets the app's dispositions and an empty mask, as from any spawn.
 *
 * Three channels, each one-way in meaning:
 *   - the exit socket (helper -> app): "started, pid N" or "could not start, errno E", which the app
 *     reads; later "ended, returncode R", which the app only peeks at (MSG_PEEK), so it stays there. The
 *     app's end is the child's exit handle (pal.h): readable once the program has ended, and from then
 *     on, whoever looked at it (a pipe could not keep it so: the record read, readiness would hang on
 *     the helper closing its end a moment later).
 *   - the control socket (both ways): the app's commands (signal the program, signal the tree, release),
 *     each answered with the errno of the kill; end of file on the app's side means the helper has
 *     exited, which it does exactly when the tree has ended (so mproc__pal_tree_wait polls it), and on
 *     the helper's side that the app has gone (died, or exec'ed) without releasing it.
 *   - the helper's own exit status: 0, or HELPER_GAVE_UP when killing met processes it may not signal.
 *
 * The program's pid and the group id: the helper reads the program's status with WNOWAIT and reaps it
 * only when it exits itself, so the pid - which is also the id of the program's process group - cannot
 * be given to another process while the helper may signal the group. Orphans of the subtree come to the
 * helper (PR_SET_CHILD_SUBREAPER); it finds them in /proc/<pid>/task/<pid>/children and reaps each by
 * pid. Reparenting sends no signal to the new parent, so while it kills, the helper looks again every
 * few milliseconds (1, 2, ... 32) until nothing is left: killing takes milliseconds, and a tree that
 * nobody kills costs no polling at all (SIGCHLD wakes it). The tree has ended when the program has and
 * a look that reaped nothing found no other child: a process of the subtree is the helper's child or
 * has a living ancestor that is, and an orphan is handed over before its parent becomes a zombie that
 * the helper would see.
 *
 * Tested on Linux. macOS and the BSDs (untested): no subreaper and no children file, so the tree is the
 * program's group and ends, for the helper, with the program; the app's death is seen through the
 * control socket only (end of file).
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include "../pal.h"
#include "posix.h"

/* One record on the exit socket or the control socket: 8 bytes in one write, so it never splits. */
typedef struct rec {
  int32_t kind, value;
} rec;

enum {
  REC_STARTED = 'S',     /* exit socket: the program runs; value: its pid */
  REC_NOT_STARTED = 'E', /* exit socket: it could not be started; value: the errno */
  REC_EXITED = 'X',      /* exit socket: it ended; value: its returncode (status, or -signal) */
  CMD_SIGNAL = 'p',      /* control: signal the program; value: the signal; answered */
  CMD_SIGNAL_TREE = 't', /* control: signal the tree; value: the signal; answered */
  CMD_RELEASE = 'r',     /* control: value 1 kill what is left, 0 let it go; the helper then exits */
  REC_ANSWER = 'A'       /* control: value: 0 or the errno of the kill */
};
#define HELPER_GAVE_UP 3 /* the helper's exit status when it let go of processes it may not signal */

/* Write one record; false if it could not go (the reader has gone). Async-signal-safe. */
static bool put(int fd, int32_t kind, int32_t value) {
  rec r = {kind, value};
  struct iovec iov = {&r, sizeof r};
  ssize_t w;
  do w = mproc__posix_writev_nosigpipe(fd, &iov, 1);
  while (w < 0 && errno == EINTR);
  return w == (ssize_t)sizeof r;
}

/* Read one record: true, or false at end of file (or an error). Async-signal-safe. */
static bool get(int fd, rec *r) {
  size_t got = 0;
  while (got < sizeof *r) {
    ssize_t n = read(fd, (char *)r + got, sizeof *r - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += (size_t)n;
  }
  return true;
}

/* ==== the helper's side ================================================================================ */

typedef struct helper {
  pid_t app, self, prog;
  int ctl;   /* the helper's end of the control socket, or -1 once the app has gone */
  int exitw; /* the helper's end of the exit socket, or -1 once the program's end is told */
  int wake;  /* the read end of the self-pipe SIGCHLD writes to */
  bool tree, kill_leftovers;
  bool subreaper;  /* a process tree whose helper receives orphans and can list its children */
  bool prog_ended; /* told already (the program stays unreaped until the helper exits) */
  bool killing;    /* SIGKILL to everything, again and again, until nothing is left */
} helper;

static volatile sig_atomic_t g_wake_fd = -1;

static void on_sigchld(int sig) {
  (void)sig;
  int e = errno;
  char b = 0;
  (void)!write(g_wake_fd, &b, 1);
  errno = e;
}

static char *put_uint(char *p, unsigned long v) {
  char d[24];
  int n = 0;
  do d[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  while (n) *p++ = d[--n];
  return p;
}

/* "/proc/<pid>/task/<tid>/children", or "/proc/<pid>/task" when tid is 0. */
static int open_task_file(pid_t pid, pid_t tid) {
  char path[64], *p = path;
  memcpy(p, "/proc/", 6);
  p = put_uint(p + 6, (unsigned long)pid);
  memcpy(p, "/task", 6);
  if (!tid) return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  p[5] = '/';
  p = put_uint(p + 6, (unsigned long)tid);
  memcpy(p, "/children", 10);
  return open(path, O_RDONLY | O_CLOEXEC);
}

/* Call fn(child, arg) for each child of thread tid of process pid; false if they cannot be listed. */
static bool each_child_of(pid_t pid, pid_t tid, void (*fn)(pid_t, void *), void *arg) {
  int fd = open_task_file(pid, tid);
  if (fd < 0) return false;
  char buf[512];
  unsigned long cur = 0;
  bool digits = false;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] >= '0' && buf[i] <= '9') {
        cur = cur * 10 + (unsigned long)(buf[i] - '0');
        digits = true;
      } else if (digits) {
        fn((pid_t)cur, arg);
        cur = 0;
        digits = false;
      }
    }
  }
  if (digits) fn((pid_t)cur, arg);
  close(fd);
  return true;
}

/* The helper's children (it has one thread). */
static bool each_child(const helper *h, void (*fn)(pid_t, void *), void *arg) {
  return each_child_of(h->self, h->self, fn, arg);
}

/* ---- the walk: a signal for every process of the subtree, not only the group and the helper's children
 *
 * A descendant that left the group while its parent lives is no child of the helper, so only a walk down
 * the /proc children files finds it. A pid read there may have been reused by the time it is signalled,
 * so each one is opened as a pidfd first, and kept only if its parent (read after the pidfd was opened)
 * is the process the walk came from and that process still runs afterwards (so the parent's pid was
 * not reused meanwhile either): a stranger is never signalled; a process that ends and whose pid is
 * reused during the walk may be missed, which the killing loop makes up for. Linux 5.3+ (pidfd). */
#if defined(__linux__) && defined(SYS_pidfd_open) && defined(SYS_pidfd_send_signal)
#define HAVE_WALK 1
enum { WALK_DEPTH = 32 };

typedef struct walk {
  pid_t parent;  /* the process whose children are listed */
  int parent_fd; /* its pidfd, or -1 for a child of the helper (unreaped: its pid is ours) */
  int sig, depth;
} walk;

static void walk_children(pid_t pid, int pidfd, int sig, int depth);

/* The parent pid in /proc/<pid>/stat ("pid (comm) state ppid ..."; comm may hold anything), or -1. */
static pid_t parent_of(pid_t pid) {
  char path[40], *p = path, buf[512];
  memcpy(p, "/proc/", 6);
  p = put_uint(p + 6, (unsigned long)pid);
  memcpy(p, "/stat", 6);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n;
  do n = read(fd, buf, sizeof buf - 1);
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *q = NULL;
  for (char *c = buf; *c; ++c)
    if (*c == ')') q = c;
  if (!q || !q[1] || !q[2] || !q[3] || !q[4]) return -1; /* ") S 123" */
  unsigned long v = 0;
  for (q += 4; *q >= '0' && *q <= '9'; ++q) v = v * 10 + (unsigned long)(*q - '0');
  return (pid_t)v;
}

static bool still_runs(int pidfd) {
  struct pollfd pfd = {pidfd, POLLIN, 0};
  return poll(&pfd, 1, 0) == 0;
}

static void walk_one(pid_t c, void *arg) {
  const walk *w = (const walk *)arg;
  int fd = (int)syscall(SYS_pidfd_open, c, 0);
  if (fd < 0) return;
  if (parent_of(c) == w->parent && (w->parent_fd < 0 || still_runs(w->parent_fd))) {
    /* its children first: signalled first, c might end before the walk had checked them against it */
    if (w->depth < WALK_DEPTH) walk_children(c, fd, w->sig, w->depth + 1);
    (void)syscall(SYS_pidfd_send_signal, fd, w->sig, NULL, 0);
  }
  close(fd);
}

/* Signal every descendant of pid (not pid itself), through each of its threads' children files. */
static void walk_children(pid_t pid, int pidfd, int sig, int depth) {
  int dir = open_task_file(pid, 0);
  if (dir < 0) return;
  walk w = {pid, pidfd, sig, depth};
  char buf[512];
  for (;;) {
    long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      /* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[] */
      unsigned short reclen;
      memcpy(&reclen, buf + off + 16, sizeof reclen);
      const char *name = buf + off + 19;
      unsigned long tid = 0;
      bool num = *name != '\0';
      for (const char *c = name; *c; ++c) {
        if (*c < '0' || *c > '9') num = false;
        tid = tid * 10 + (unsigned long)(*c - '0');
      }
      if (num) (void)each_child_of(pid, (pid_t)tid, walk_one, &w);
      off += reclen ? reclen : n;
    }
  }
  close(dir);
}

static void walk_below(pid_t c, void *arg) { walk_children(c, -1, *(const int *)arg, 0); }
#else
#define HAVE_WALK 0
#endif

/* Tell the program's end once it has come (its status read with WNOWAIT: it stays unreaped). */
static void check_program(helper *h) {
  if (h->prog_ended) return;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int r;
  do r = waitid(P_PID, (id_t)h->prog, &si, WEXITED | WNOHANG | WNOWAIT);
  while (r < 0 && errno == EINTR);
  if (r != 0 || si.si_pid == 0) return;
  h->prog_ended = true;
  (void)put(h->exitw, REC_EXITED, si.si_code == CLD_EXITED ? si.si_status : -si.si_status);
  close(h->exitw);
  h->exitw = -1;
}

typedef struct sweep {
  const helper *h;
  int sig;     /* sent to each living child other than the program, or 0 */
  int others;  /* living children other than the program */
  int refused; /* ... of which the kill was refused (EPERM) */
  bool reaped; /* some child was reaped: its children may have come to us since the listing */
} sweep;

static void sweep_one(pid_t c, void *arg) {
  sweep *s = (sweep *)arg;
  if (c == s->h->prog) return;
  int st;
  if (waitpid(c, &st, WNOHANG) == c) {
    s->reaped = true;
    return;
  }
  ++s->others;
  if (s->sig && kill(c, s->sig) != 0 && errno == EPERM) ++s->refused;
}

/* Signal the tree: (the walk) every process below the helper's children, each child of the helper but the
 * program, and the program's group (safe: the program is unreaped, so the id is ours), in this order, so
 * that no process is signalled before the walk has passed below it. The errno of the group's kill. */
static int signal_tree(const helper *h, int sig) {
  if (h->subreaper) {
#if HAVE_WALK
    (void)each_child(h, walk_below, &sig);
#endif
    sweep s = {h, sig, 0, 0, false};
    (void)each_child(h, sweep_one, &s);
  }
  return kill(-h->prog, sig) != 0 && errno != ESRCH ? errno : 0;
}

/* Reap what has ended, and kill when killing. Whether the tree (or, for a helper that is no subreaper,
 * the program) has ended; *stuck: killing, and every living process the helper knows refused it. */
static bool settle(helper *h, bool *stuck) {
  for (;;) {
    int sig = h->killing ? SIGKILL : 0;
#if HAVE_WALK
    if (sig && h->subreaper) (void)each_child(h, walk_below, &sig);
#endif
    sweep s = {h, sig, 0, 0, false};
    bool listed = h->subreaper && each_child(h, sweep_one, &s);
    int prog_refused = 0;
    if (sig && !h->prog_ended && kill(h->prog, SIGKILL) != 0 && errno == EPERM) prog_refused = 1;
    if (sig && h->tree) (void)kill(-h->prog, SIGKILL);
    check_program(h);
    if (!listed) {
      *stuck = prog_refused && !h->prog_ended;
      return h->prog_ended;
    }
    if (s.reaped) continue;
    int living = s.others + (h->prog_ended ? 0 : 1);
    *stuck = sig && living > 0 && s.refused + prog_refused == living;
    return h->prog_ended && s.others == 0;
  }
}

/* Reap the program if it has ended, and every child that has (Linux), then exit. */
static _Noreturn void finish(helper *h, int code) {
  int st;
  (void)waitpid(h->prog, &st, WNOHANG);
  if (h->subreaper) {
    sweep s = {h, 0, 0, 0, false};
    do {
      s.reaped = false;
      (void)each_child(h, sweep_one, &s);
    } while (s.reaped);
  }
  _exit(code);
}

/* The app has gone without releasing us (died, or exec'ed): kill everything, or let it go. */
static void app_gone(helper *h) {
  if (!h->kill_leftovers) finish(h, 0);
  h->killing = true;
}

static void command(helper *h, const rec *r) {
  int e = 0;
  switch (r->kind) {
    case CMD_SIGNAL:
      if (!h->prog_ended && kill(h->prog, r->value) != 0) e = errno;
      (void)put(h->ctl, REC_ANSWER, e);
      return;
    case CMD_SIGNAL_TREE:
      e = signal_tree(h, r->value);
      if (r->value == SIGKILL) h->killing = true;
      (void)put(h->ctl, REC_ANSWER, e);
      return;
    case CMD_RELEASE:
      if (r->value) h->killing = true;
      if (!h->killing) finish(h, 0);
      close(h->ctl); /* no more commands: the app waits for our exit */
      h->ctl = -1;
      return;
    default:
      return;
  }
}

static _Noreturn void serve(helper *h) {
  int nap = 1;
  for (;;) {
    if (getppid() != h->app) app_gone(h);
    bool stuck;
    if (settle(h, &stuck)) finish(h, 0);
    if (stuck) finish(h, HELPER_GAVE_UP);
    struct pollfd fds[2] = {{h->wake, POLLIN, 0}, {h->ctl, POLLIN, 0}};
    int n = poll(fds, h->ctl >= 0 ? 2 : 1, h->killing ? nap : -1);
    if (h->killing && nap < 32) nap *= 2;
    if (n <= 0) continue;
    if (fds[0].revents) {
      char buf[64];
      while (read(h->wake, buf, sizeof buf) > 0) {
      }
    }
    if (h->ctl >= 0 && fds[1].revents) {
      rec r;
      if (get(h->ctl, &r)) {
        bool was_killing = h->killing;
        command(h, &r);
        if (h->killing && !was_killing) nap = 1;
      } else {
        close(h->ctl);
        h->ctl = -1;
        app_gone(h);
        nap = 1;
      }
    }
  }
}

/* An fd at 3 or above (the helper puts /dev/null on 0..2); -1 if it cannot be moved. */
static int above_stdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return moved;
}

static _Noreturn void helper_main(helper *h, mproc__posix_helper_start_fn start, void *ctx) {
  h->self = getpid();
  int wake[2];
  if (mproc__posix_pipe_cloexec(wake) != 0) _exit(127);
  wake[0] = above_stdio(wake[0]);
  wake[1] = above_stdio(wake[1]);
  h->ctl = above_stdio(h->ctl);
  h->exitw = above_stdio(h->exitw);
  if (wake[0] < 0 || wake[1] < 0 || h->ctl < 0 || h->exitw < 0) _exit(127);
  (void)fcntl(wake[0], F_SETFL, O_NONBLOCK);
  (void)fcntl(wake[1], F_SETFL, O_NONBLOCK);
  h->wake = wake[0];
  g_wake_fd = wake[1];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, NULL);
#if defined(__linux__)
  if (h->tree) {
    int fd = open_task_file(h->self, h->self);
    if (fd >= 0) {
      close(fd);
      h->subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
    }
  }
  /* The app's death wakes us (SIGCHLD, as from a child); the loop then sees another parent. The signal
   * comes when the app's thread that forked us ends, too: the loop sees the app still there. */
  if (h->kill_leftovers) (void)prctl(PR_SET_PDEATHSIG, SIGCHLD);
#endif
  if (getppid() != h->app) _exit(0); /* the app has gone already: start nothing */
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_UNBLOCK, &chld, NULL); /* every other signal stays blocked */
  int64_t pid = 0;
  int e = start(ctx, &pid);
  if (e) {
    (void)put(h->exitw, REC_NOT_STARTED, e);
    _exit(0);
  }
  h->prog = (pid_t)pid;
  (void)put(h->exitw, REC_STARTED, (int32_t)pid);
  /* Hold nothing of the app's from now on (a pipe end we kept would delay an end of file there), and
   * nothing of its terminal. */
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int i = 0; i < 3 && null >= 0; ++i) (void)dup2(null, i);
  int keep[4] = {h->wake, wake[1], h->ctl, h->exitw};
  for (int i = 1; i < 4; ++i) /* ascending (qsort is not async-signal-safe) */
    for (int j = i; j > 0 && keep[j - 1] > keep[j]; --j) {
      int t = keep[j];
      keep[j] = keep[j - 1];
      keep[j - 1] = t;
    }
  int lo = 3;
  for (int i = 0; i < 4; ++i) {
    if (lo < keep[i]) mproc__posix_close_from(lo, keep[i]);
    lo = keep[i] + 1;
  }
  mproc__posix_close_from(lo, -1);
  serve(h);
}

/* ==== the app's side =================================================================================== */

/* The helper's state (mproc__posix_child.helper). */
typedef struct mproc__posix_helper {
  pid_t pid;           /* the helper's */
  int ctl;             /* our end of the control socket */
  bool kill_leftovers; /* kill_on_parent_death: release kills what the tree left */
  bool reaped;         /* the helper has been reaped: the tree has ended (or was let go) */
  int status;          /* then: its exit status, or -signal */
  bool lost;           /* the helper ended before telling the program's end */
} helper_state;

/* Reap the helper (blocking: called once it has closed its ends, so it is exiting). */
static void reap_helper(helper_state *st) {
  if (st->reaped) return;
  int status = 0;
  pid_t r;
  do r = waitpid(st->pid, &status, 0);
  while (r < 0 && errno == EINTR);
  st->reaped = true;
  if (r != st->pid) status = 0; /* someone else reaped it (SIGCHLD ignored, a waitpid(-1)): unknown */
  st->status = WIFSIGNALED(status) ? -WTERMSIG(status) : WIFEXITED(status) ? WEXITSTATUS(status) : 0;
}

/* A start that failed leaves nothing: the child is new (mproc__pal_spawn cleared it), so its state held
 * nothing else. */
static void drop_state(mproc__child *child, helper_state *st) {
  free(st);
  free(child->os);
  child->os = NULL;
}

int mproc__posix_helper_spawn(const mproc__posix_helper_opts *o, mproc__posix_helper_start_fn start, void *ctx,
                              mproc__child *child) {
  mproc__posix_child *os = mproc__posix_child_state(child);
  helper_state *st = os ? (helper_state *)calloc(1, sizeof *st) : NULL;
  if (!st) {
    drop_state(child, NULL);
    return mproc__fail(MPROC_ENOMEM, "spawn: out of memory");
  }
  mproc_os_handle ours = MPROC_NO_HANDLE, theirs = MPROC_NO_HANDLE;
  mproc_os_handle ex_ours = MPROC_NO_HANDLE, ex_theirs = MPROC_NO_HANDLE;
  int rc = mproc__pal_conn_pair(true, &ours, &theirs);
  if (rc == 0) rc = mproc__pal_conn_pair(true, &ex_ours, &ex_theirs);
  if (rc) {
    mproc__pal_close(ours);
    mproc__pal_close(theirs);
    drop_state(child, st);
    return rc;
  }
  int ex[2] = {(int)ex_ours, (int)ex_theirs};
  helper h;
  memset(&h, 0, sizeof h);
  h.app = getpid();
  h.ctl = (int)theirs;
  h.exitw = ex[1];
  h.tree = o->tree;
  h.kill_leftovers = o->kill_on_parent_death;
  h.prog = -1;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* no handler of the app may run in the helper */
  pid_t pid = fork();
  if (pid == 0) {
    close((int)ours);
    close(ex[0]);
    helper_main(&h, start, ctx);
  }
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close((int)theirs);
  close(ex[1]);
  if (pid < 0) {
    close((int)ours);
    close(ex[0]);
    drop_state(child, st);
    return mproc__fail_os(0, fork_errno, "spawn: fork of the tree helper");
  }
  st->pid = pid;
  st->ctl = (int)ours;
  st->kill_leftovers = o->kill_on_parent_death;
  rec r;
  bool got = get(ex[0], &r);
  if (got && r.kind == REC_STARTED) {
    child->pid = r.value;
    child->handle = (mproc_os_handle)ex[0];
    os->helper = st;
    return 0;
  }
  reap_helper(st); /* it exits after saying why */
  int status = st->status;
  close((int)ours);
  close(ex[0]);
  drop_state(child, st);
  if (got && r.kind == REC_NOT_STARTED && r.value > 0) return r.value;
  return mproc__fail(MPROC_ESYS, "spawn: the tree helper (pid %lld) ended with status %d before starting the program",
                     (long long)pid, status);
}

static int helper_lost(const mproc__child *c, const helper_state *st) {
  const char *why = st->status == HELPER_GAVE_UP ? "it let go of processes it may not signal"
                    : st->status < 0             ? "it was killed by a signal"
                                                 : "it exited";
  return mproc__fail(MPROC_ESYS,
                     "process %lld: its tree helper (pid %lld) ended before the program did (%s, status %d): the "
                     "program's status is unknown, and it is no longer in a tree",
                     (long long)c->pid, (long long)st->pid, why, st->status);
}

int mproc__posix_helper_wait(mproc__child *c, int64_t deadline) {
  helper_state *st = mproc__posix_child_helper(c);
  if (st->lost) return helper_lost(c, st);
  for (;;) {
    int64_t ms = mproc__ms_until(deadline);
    struct pollfd pfd = {(int)c->handle, POLLIN, 0};
    int n = poll(&pfd, 1, ms > INT32_MAX ? INT32_MAX : (int)ms);
    if (n < 0 && errno != EINTR) return mproc__fail_os(0, errno, "poll on the exit socket of %lld", (long long)c->pid);
    if (n > 0) {
      rec r; /* peeked, not taken: the record stays, and with it the exit handle's readiness */
      ssize_t k = recv((int)c->handle, &r, sizeof r, MSG_PEEK);
      if (k == (ssize_t)sizeof r && r.kind == REC_EXITED) {
        c->reaped = true;
        c->returncode = r.value;
        return 0;
      }
      if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN)) break; /* the helper ended first */
      if (k > 0 && k < (ssize_t)sizeof r) continue;                      /* the rest of the record is on its way */
      if (k > 0) break;                                                  /* not a record it could send now */
    }
    if (n == 0 && mproc__ms_until(deadline) == 0) return MPROC_ETIMEDOUT;
  }
  st->lost = true;
  reap_helper(st);
  return helper_lost(c, st);
}

/* Send a command and take its answer: 0, or the failed kill's error. A helper that has exited has
 * nothing left to signal: 0. */
static int command_helper(const mproc__child *c, int32_t kind, int sig) {
  helper_state *st = mproc__posix_child_helper(c);
  if (st->reaped) return 0;
  rec a;
  if (!put(st->ctl, kind, sig) || !get(st->ctl, &a)) return 0;
  if (a.kind == REC_ANSWER && a.value)
    return mproc__fail_os(0, a.value, "%s(%lld%s, %d)", kind == CMD_SIGNAL ? "kill" : "kill of the tree",
                          (long long)c->pid, kind == CMD_SIGNAL ? "" : " and its descendants", sig);
  return 0;
}

int mproc__posix_helper_signal(mproc__child *c, int sig) { return command_helper(c, CMD_SIGNAL, sig); }

void mproc__posix_helper_release(mproc__child *c) {
  helper_state *st = mproc__posix_child_helper(c);
  if (!st->reaped) {
    (void)put(st->ctl, CMD_RELEASE, st->kill_leftovers ? 1 : 0);
    reap_helper(st);
  }
  close(st->ctl);
  free(st);
  ((mproc__posix_child *)c->os)->helper = NULL; /* the rest of the state is mproc__pal_child_release's */
}

/* ==== the tree calls (pal.h) ============================================================================ */

static int check_tree_child(const mproc__child *c) {
  if (!mproc__posix_child_helper(c))
    return mproc__fail(MPROC_ESTATE, "process %lld has no tree helper", (long long)c->pid);
  return 0;
}

int mproc__pal_tree_signal(mproc__child *c, int sig) {
  int rc = check_tree_child(c);
  return rc ? rc : command_helper(c, CMD_SIGNAL_TREE, sig);
}

int mproc__pal_tree_ask_to_end(mproc__child *c) { return mproc__pal_tree_signal(c, SIGTERM); }

int mproc__pal_tree_wait(mproc__child *c, int64_t deadline) {
  int rc = check_tree_child(c);
  if (rc) return rc;
  helper_state *st = mproc__posix_child_helper(c);
  while (!st->reaped) {
    int64_t ms = mproc__ms_until(deadline);
    struct pollfd pfd = {st->ctl, POLLIN, 0};
    int n = poll(&pfd, 1, ms > INT32_MAX ? INT32_MAX : (int)ms);
    if (n < 0 && errno != EINTR) return mproc__fail_os(0, errno, "poll on the tree helper of %lld", (long long)c->pid);
    if (n > 0) {
      char b[sizeof(rec)];
      ssize_t k = recv(st->ctl, b, sizeof b, MSG_DONTWAIT);
      if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) reap_helper(st);
    } else if (n == 0 && mproc__ms_until(deadline) == 0) {
      return MPROC_ETIMEDOUT;
    }
  }
  if (st->status == HELPER_GAVE_UP)
    return mproc__fail(MPROC_EPERM,
                       "the tree of process %lld: processes of it may not be signalled (other credentials); its "
                       "helper let them go",
                       (long long)c->pid);
  return 0;
}
