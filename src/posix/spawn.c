/* POSIX PAL: starting, waiting for and signalling child programs.
 *
 * Engine choice (as libuv and CPython do):
 *   - posix_spawn first. glibc implements it with clone(CLONE_VM | CLONE_VFORK), so its cost does not
 *     grow with the parent's memory, and it reports exec failures (ENOENT, EACCES) as its return
 *     value. glibc >= 2.34 has every file action we need (addchdir_np, addclosefrom_np).
 *   - vfork + exec with an error pipe otherwise: pass_fds together with close_fds (closefrom would close
 *     them), a umask or resource limits, a terminal (MPROC_PTY: setsid + TIOCSCTTY, which posix_spawn
 *     cannot do), or a libc without those actions (macOS/BSD paths: written to
 *     their documentation, untested here). The vfork child only calls async-signal-safe functions on
 *     memory prepared by the parent.
 *   - fork + exec, the same child code and error pipe, when the child changes its user, group or groups:
 *     glibc's set*id calls would signal the parent's threads from a vfork child (credentials.c).
 * SIGCHLD is never touched: we wait for our own pids only (waitpid(pid), pidfd on Linux >= 5.3).
 *
 * Process trees and kill on parent death (see mproc_popen_opts): a program started with
 * kill_on_parent_death alone, from the main thread, that is not set-ID, takes the vfork engine, whose
 * child sets PR_SET_PDEATHSIG just before exec (Linux). Every other such start, and every process tree,
 * goes through the tree helper of tree.c, which forks, and then starts the program with this file's
 * vfork engine (fork_exec: async-signal-safe, as the helper needs).
 *
 * A terminal combines with all of these: the program's session is its own (setsid), so it also leads the
 * process group a tree wants; credentials are changed after TIOCSCTTY, which keeps the terminal.
 *
 * The child's state (mproc__child.os) is one mproc__posix_child (posix.h): the tree helper's state and
 * the exit handle's watcher pipe, each only where it is needed.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdatomic.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#endif

#include "../pal.h"
#include "posix.h"

extern char **environ;

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define HAVE_SPAWN_ACTIONS 1 /* posix_spawn_file_actions_addchdir_np + addclosefrom_np, SETSID */
#else
#define HAVE_SPAWN_ACTIONS 0
#endif

/* ---- environment ---------------------------------------------------------------------------- */

static size_t name_len(const char *entry) {
  const char *eq = strchr(entry, '=');
  return eq ? (size_t)(eq - entry) : strlen(entry);
}

/* Build the child's environment: base (env or environ) with env_extra applied. *owned is the array
 * to free (the strings are borrowed). When nothing changes, *envp is environ and *owned NULL. */
static int build_env(const mproc__spawn_req *req, char ***envp, char ***owned) {
  char **base = req->env ? (char **)req->env : environ;
  *owned = NULL;
  if (!req->env_extra) {
    *envp = base;
    return 0;
  }
  size_t nb = 0, ne = 0;
  while (base && base[nb]) ++nb;
  while (req->env_extra[ne]) ++ne;
  char **out = (char **)malloc(sizeof(char *) * (nb + ne + 1));
  if (!out) return mproc__fail(MPROC_ENOMEM, "spawn: out of memory building the environment");
  size_t n = 0;
  for (size_t i = 0; i < nb; ++i) {
    size_t len = name_len(base[i]);
    bool overridden = false;
    for (size_t k = 0; k < ne && !overridden; ++k)
      overridden = name_len(req->env_extra[k]) == len && strncmp(req->env_extra[k], base[i], len) == 0;
    if (!overridden) out[n++] = base[i];
  }
  for (size_t k = 0; k < ne; ++k) {
    if (!strchr(req->env_extra[k], '=')) continue; /* a bare NAME removes it */
    bool dup = false;                              /* a later setting of the same name wins */
    for (size_t j = k + 1; j < ne && !dup; ++j)
      dup = name_len(req->env_extra[j]) == name_len(req->env_extra[k]) &&
            strncmp(req->env_extra[j], req->env_extra[k], name_len(req->env_extra[k])) == 0;
    if (!dup) out[n++] = (char *)req->env_extra[k];
  }
  out[n] = NULL;
  *envp = out;
  *owned = out;
  return 0;
}

static const char *env_get(char **envp, const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; envp && envp[i]; ++i)
    if (strncmp(envp[i], name, len) == 0 && envp[i][len] == '=') return envp[i] + len + 1;
  return NULL;
}

/* ---- program lookup --------------------------------------------------------------------------- */

/* Find `prog` as execvp would, in the PATH of the child's environment (as Python does). *path is
 * malloc'ed. Errors name the program. */
static int resolve_program(const char *prog, char **envp, char **path) {
  *path = NULL;
  if (strchr(prog, '/')) {
    if (access(prog, X_OK) != 0) {
      int e = errno;
      return mproc__fail_os(0, e, "spawn '%s': %s", prog, e == ENOENT ? "program not found" : "cannot execute");
    }
    *path = mproc__strdup(prog);
    return *path ? 0 : MPROC_ENOMEM;
  }
  const char *search = env_get(envp, "PATH");
  if (!search) search = "/bin:/usr/bin";
  size_t plen = strlen(prog);
  int saw_eacces = 0;
  for (const char *dir = search;;) {
    const char *end = strchr(dir, ':');
    size_t dlen = end ? (size_t)(end - dir) : strlen(dir);
    char *cand = (char *)malloc(dlen + plen + 3);
    if (!cand) return mproc__fail(MPROC_ENOMEM, "spawn: out of memory searching PATH");
    if (dlen == 0) {
      cand[0] = '.';
      dlen = 1;
    } else {
      memcpy(cand, dir, dlen);
    }
    cand[dlen] = '/';
    memcpy(cand + dlen + 1, prog, plen + 1);
    struct stat st;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
      if (access(cand, X_OK) == 0) {
        *path = cand;
        return 0;
      }
      saw_eacces = 1;
    }
    free(cand);
    if (!end) break;
    dir = end + 1;
  }
  if (saw_eacces) return mproc__fail_os(MPROC_EPERM, EACCES, "spawn '%s': found in PATH but not executable", prog);
  return mproc__fail_os(MPROC_ENOENT, ENOENT, "spawn '%s': program not found in PATH", prog);
}

/* ---- shared preparation --------------------------------------------------------------------- */

typedef struct spawn_plan {
  char *path;        /* the file to execute */
  char *const *argv; /* what the program gets */
  const char *sh_argv[4];
  char **envp;
  char **env_owned;
  int stdio[3]; /* fds the child's 0/1/2 become, or -1 to keep the parent's; all >= 3 */
  int dups[3];  /* fds we dup'ed here to get them out of the 0..2 range (to close) */
  int *keep;    /* pass_fds sorted ascending (fallback engine) */
  size_t nkeep;
  int ctty; /* a pseudo-terminal's side (one of stdio[]) to become the controlling terminal, or -1 */
  /* ---- POSIX: credentials and limits ---- */
  mproc__posix_creds creds; /* resolved in the parent; the child applies them (credentials.c) */
  /* ---- process trees and parent death ---- */
  bool own_group;       /* the child leads a new process group (new_process_group, or a process tree) */
  bool die_with_parent; /* the child sets PR_SET_PDEATHSIG(SIGKILL) before exec (vfork engine only) */
  pid_t parent_pid;     /* ... and ends at once if its parent is no longer this process */
  bool sigchld_ign;     /* the child sets SIGCHLD to SIG_IGN (the tree helper's program: the helper
                           handles SIGCHLD itself, but the app ignored it, as the program should) */
} spawn_plan;

static void plan_free(spawn_plan *pl) {
  free(pl->path);
  free(pl->env_owned);
  free(pl->keep);
  mproc__posix_creds_free(&pl->creds);
  for (int i = 0; i < 3; ++i)
    if (pl->dups[i] >= 0) close(pl->dups[i]);
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static int plan_make(const mproc__spawn_req *req, spawn_plan *pl) {
  memset(pl, 0, sizeof *pl);
  for (int i = 0; i < 3; ++i) pl->stdio[i] = pl->dups[i] = -1;
  pl->ctty = -1;
  int rc = build_env(req, &pl->envp, &pl->env_owned);
  if (rc) return rc;
  const char *prog;
  if (req->command) {
    prog = req->executable ? req->executable : "/bin/sh";
    pl->sh_argv[0] = prog;
    pl->sh_argv[1] = "-c";
    pl->sh_argv[2] = req->command;
    pl->sh_argv[3] = NULL;
    pl->argv = (char *const *)pl->sh_argv;
  } else {
    prog = req->executable ? req->executable : req->argv[0];
    pl->argv = (char *const *)req->argv;
  }
  rc = resolve_program(prog, pl->envp, &pl->path);
  if (rc) return rc;
  if (req->cwd && pl->path[0] != '/') {
    /* The file was found relative to our directory: run that file, not one the child's cwd would name. */
    char here[PATH_MAX];
    if (!getcwd(here, sizeof here)) return mproc__fail_os(0, errno, "spawn '%s': getcwd", prog);
    size_t hl = strlen(here), pl2 = strlen(pl->path);
    char *abs = (char *)malloc(hl + pl2 + 2);
    if (!abs) return mproc__fail(MPROC_ENOMEM, "spawn: out of memory");
    memcpy(abs, here, hl);
    abs[hl] = '/';
    memcpy(abs + hl + 1, pl->path, pl2 + 1);
    free(pl->path);
    pl->path = abs;
  }
  if (req->cwd) {
    struct stat st;
    if (stat(req->cwd, &st) != 0) return mproc__fail_os(0, errno, "spawn '%s': cwd '%s'", prog, req->cwd);
    if (!S_ISDIR(st.st_mode)) return mproc__fail_os(MPROC_ENOENT, ENOTDIR, "spawn '%s': cwd '%s'", prog, req->cwd);
  }
  /* A stdio fd in 0..2 could be overwritten by an earlier dup2 in the child: move it up first. */
  int src[3];
  for (int i = 0; i < 3; ++i)
    src[i] = req->pty && req->on_pty[i]         ? mproc__posix_pty_slave(req->pty)
             : req->stdio[i] == MPROC_NO_HANDLE ? -1
                                                : (int)req->stdio[i];
  for (int i = 0; i < 3; ++i) {
    int fd = src[i];
    if (fd >= 0 && fd < 3) {
      for (int j = 0; j < i; ++j)
        if (src[j] == fd && pl->dups[j] >= 0) pl->stdio[i] = pl->dups[j];
      if (pl->stdio[i] < 0) {
        pl->dups[i] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (pl->dups[i] < 0) return mproc__fail_os(0, errno, "spawn '%s': dup of fd %d", prog, fd);
        pl->stdio[i] = pl->dups[i];
      }
    } else {
      pl->stdio[i] = fd;
    }
    if (req->pty && req->on_pty[i]) pl->ctty = pl->stdio[i];
  }
  if (req->pty && pl->ctty < 0) return mproc__fail(MPROC_EINVAL, "spawn '%s': a terminal but no stream on it", prog);
  if (req->pass_fds_count) {
    pl->keep = (int *)malloc(sizeof(int) * req->pass_fds_count);
    if (!pl->keep) return mproc__fail(MPROC_ENOMEM, "spawn: out of memory");
    for (size_t i = 0; i < req->pass_fds_count; ++i) pl->keep[i] = (int)req->pass_fds[i];
    qsort(pl->keep, req->pass_fds_count, sizeof(int), cmp_int);
    pl->nkeep = req->pass_fds_count;
  }
  return mproc__posix_creds_make(req, &pl->creds);
}

static int spawn_error(const mproc__spawn_req *req, const spawn_plan *pl, int e) {
  const char *what = e == ENOENT ? "program not found" : e == EACCES ? "cannot execute" : "exec failed";
  if (req->cwd && (e == ENOENT || e == ENOTDIR || e == EACCES))
    return mproc__fail_os(0, e, "spawn '%s' in cwd '%s': %s", pl->path, req->cwd, what);
  return mproc__fail_os(0, e, "spawn '%s': %s", pl->path, what);
}

/* ---- engine 1: posix_spawn ------------------------------------------------------------------ */

#if HAVE_SPAWN_ACTIONS
static int spawn_posix_spawn(const mproc__spawn_req *req, spawn_plan *pl, pid_t *pid) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  int e = posix_spawn_file_actions_init(&fa);
  if (e) return mproc__fail_os(0, e, "posix_spawn_file_actions_init");
  e = posix_spawnattr_init(&at);
  if (e) {
    posix_spawn_file_actions_destroy(&fa);
    return mproc__fail_os(0, e, "posix_spawnattr_init");
  }
  for (int i = 0; i < 3 && !e; ++i)
    if (pl->stdio[i] >= 0) e = posix_spawn_file_actions_adddup2(&fa, pl->stdio[i], i);
  /* dup2(fd, fd) clears close-on-exec in the child (glibc >= 2.29): how pass_fds survive exec when
   * the rest of the fds stay as they are (inherit_fds). */
  for (size_t i = 0; i < pl->nkeep && !e; ++i) e = posix_spawn_file_actions_adddup2(&fa, pl->keep[i], pl->keep[i]);
  if (!e && !req->inherit_fds) e = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  if (!e && req->cwd) e = posix_spawn_file_actions_addchdir_np(&fa, req->cwd);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  sigset_t none, def;
  sigemptyset(&none);
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE); /* as Python's restore_signals: the ones commonly ignored by parents */
  sigaddset(&def, SIGXFSZ);
  if (!e) e = posix_spawnattr_setsigmask(&at, &none);
  if (!e) e = posix_spawnattr_setsigdefault(&at, &def);
  if (req->new_session) {
    flags |= POSIX_SPAWN_SETSID;
  } else if (pl->own_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    if (!e) e = posix_spawnattr_setpgroup(&at, 0);
  }
  if (!e) e = posix_spawnattr_setflags(&at, flags);
  if (e) {
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return mproc__fail_os(0, e, "spawn '%s': setting up posix_spawn", pl->path);
  }
  e = posix_spawn(pid, pl->path, &fa, &at, pl->argv, pl->envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  return e ? spawn_error(req, pl, e) : 0;
}
#endif

/* ---- engine 2: vfork + exec with an error pipe ------------------------------------------------- */

void mproc__posix_close_from(int lo, int hi) {
#if defined(__linux__) && defined(SYS_close_range)
  if (syscall(SYS_close_range, (unsigned)lo, hi < 0 ? ~0U : (unsigned)(hi - 1), 0) == 0) return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = lo; fd < (hi < 0 ? (int)max : hi); ++fd) close(fd);
}

/* What the child writes to the error pipe when it fails: the step (0: the exec and the steps before
 * it; else a step of credentials.c), the errno, and the index of a resource limit. */
typedef struct child_error {
  int step, err;
  size_t index;
} child_error;

/* Runs in the vfork (or fork) child: async-signal-safe calls only, on memory the parent prepared. */
static void child_exec(const mproc__spawn_req *req, const spawn_plan *pl, int errfd) {
  child_error ce = {0, 0, 0};
  for (int s = 1; s < NSIG; ++s) { /* no parent handler may run in the child */
    struct sigaction sa;
    if (sigaction(s, NULL, &sa) == 0 && (sa.sa_handler != SIG_IGN || s == SIGPIPE || s == SIGXFSZ) &&
        sa.sa_handler != SIG_DFL) {
      sa.sa_handler = SIG_DFL;
      sa.sa_flags = 0;
      sigemptyset(&sa.sa_mask);
      sigaction(s, &sa, NULL);
    }
  }
  if (pl->sigchld_ign) {
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGCHLD, &ign, NULL);
  }
  /* A terminal for stdio: a session of its own with the terminal as its controlling terminal, so the
   * program sees a real terminal (job control, /dev/tty, SIGHUP when the terminal closes). A session
   * leader already leads its own process group (what own_group asks: a process tree's group is the
   * session's): setpgid would fail. */
  bool session = req->new_session || pl->ctty >= 0;
  if (session && setsid() < 0) goto fail;
  if (!session && pl->own_group && setpgid(0, 0) < 0) goto fail;
  if (pl->ctty >= 0 && ioctl(pl->ctty, TIOCSCTTY, 0) < 0) goto fail;
  for (int i = 0; i < 3; ++i)
    if (pl->stdio[i] >= 0 && dup2(pl->stdio[i], i) < 0) goto fail;
  for (size_t i = 0; i < pl->nkeep; ++i)
    if (fcntl(pl->keep[i], F_SETFD, 0) < 0) goto fail;
  if (req->cwd && chdir(req->cwd) < 0) goto fail;
  if (!req->inherit_fds) {
    int lo = 3;
    for (size_t i = 0; i < pl->nkeep; ++i) {
      if (pl->keep[i] < lo) continue;
      if (pl->keep[i] == errfd) continue;
      if (lo < pl->keep[i]) mproc__posix_close_from(lo, pl->keep[i]);
      lo = pl->keep[i] + 1;
    }
    /* keep errfd open (it is close-on-exec) to report an exec failure */
    if (errfd >= lo) {
      if (lo < errfd) mproc__posix_close_from(lo, errfd);
      lo = errfd + 1;
    }
    mproc__posix_close_from(lo, -1);
  }
  /* after the fds are closed, so that a lower RLIMIT_NOFILE cannot shorten a close loop */
  if (mproc__posix_creds_apply(&pl->creds, &ce.step, &ce.index) != 0) goto fail;
  ce.step = 0;
#if defined(__linux__)
  /* Last, after anything that changes credentials (which clears it): the kernel kills us when the thread
   * that started us ends, which is the app's main thread; if the app died before this call, we have
   * been re-parented already and no signal would come. */
  if (pl->die_with_parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) goto fail;
    if (getppid() != pl->parent_pid) _exit(127);
  }
#endif
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(pl->path, pl->argv, pl->envp);
fail:
  ce.err = errno;
  (void)!write(errfd, &ce, sizeof ce);
  _exit(127);
}

/* vfork (fork: use_fork) + exec: 0 with *pid; or -1 with *ce saying why, the child reaped (ce->step 0:
 * ce->err is the exec's errno, or the fork's with ce->index 1; else the credentials step that failed).
 * Async-signal-safe: the tree helper calls it in its fork child (through start_with_plan). */
static int fork_exec(const mproc__spawn_req *req, spawn_plan *pl, bool use_fork, pid_t *pid, child_error *ce) {
  ce->step = 0;
  ce->err = 0;
  ce->index = 0;
  int ep[2];
  if (mproc__posix_pipe_cloexec(ep) == -1) {
    ce->err = errno;
    ce->index = 1;
    return -1;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* no handler may run on the shared stack (or before the reset) */
  pid_t p = use_fork ? fork() : vfork();
  if (p == 0) child_exec(req, pl, ep[1]);
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(ep[1]);
  if (p < 0) {
    close(ep[0]);
    ce->err = fork_errno;
    ce->index = 1;
    return -1;
  }
  ssize_t r;
  do r = read(ep[0], ce, sizeof *ce);
  while (r < 0 && errno == EINTR);
  close(ep[0]);
  if (r == (ssize_t)sizeof *ce) {
    while (waitpid(p, NULL, 0) < 0 && errno == EINTR) {
    }
    if (!ce->err) ce->err = EINVAL;
    return -1;
  }
  ce->step = 0;
  ce->err = 0;
  *pid = p;
  return 0;
}

/* use_fork: fork instead of vfork (a child that changes its credentials). */
static int spawn_vfork(const mproc__spawn_req *req, spawn_plan *pl, bool use_fork, pid_t *pid) {
  child_error ce;
  if (fork_exec(req, pl, use_fork, pid, &ce) == 0) return 0;
  if (ce.step) return mproc__posix_creds_fail(req, &pl->creds, pl->path, ce.step, ce.index, ce.err);
  if (ce.index == 1) return mproc__fail_os(0, ce.err, "spawn '%s': %s", pl->path, use_fork ? "fork" : "vfork or pipe");
  return spawn_error(req, pl, ce.err);
}

/* ---- kill on parent death, and the tree helper ------------------------------------------------------- */

/* Whether running `path` changes credentials, which clears PR_SET_PDEATHSIG at exec: set-user-ID or
 * set-group-ID bits, or file capabilities (Linux). */
static bool changes_credentials(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return false; /* the start will report it */
  if (st.st_mode & (S_ISUID | S_ISGID)) return true;
#if defined(__linux__)
  if (getxattr(path, "security.capability", NULL, 0) >= 0) return true;
#endif
  return false;
}

/* Whether PR_SET_PDEATHSIG in the child serves kill_on_parent_death (see mproc_popen_opts). */
static bool pdeathsig_serves(const spawn_plan *pl) {
#if defined(__linux__)
  return mproc__pal_is_main_thread() && !changes_credentials(pl->path);
#else
  (void)pl;
  return false;
#endif
}

typedef struct plan_start {
  const mproc__spawn_req *req;
  spawn_plan *pl;
} plan_start;

/* The tree helper's way to start the program (mproc__posix_helper_start_fn). */
static int start_with_plan(void *ctx, int64_t *pid) {
  plan_start *ps = (plan_start *)ctx;
  pid_t p = 0;
  child_error ce; /* the helper is one thread: vfork serves credentials too; a failed step is its errno */
  int e = fork_exec(ps->req, ps->pl, false, &p, &ce) == 0 ? 0 : ce.err;
  *pid = p;
  return e;
}

int mproc__pal_spawn(const mproc__spawn_req *req, mproc__child *child) {
  memset(child, 0, sizeof *child);
  child->handle = MPROC_NO_HANDLE;
  spawn_plan pl;
  int rc = plan_make(req, &pl);
  pid_t pid = 0;
  pl.own_group = req->new_process_group || req->process_tree;
  bool helper = req->process_tree || (req->kill_on_parent_death && rc == 0 && !pdeathsig_serves(&pl));
  if (rc == 0 && helper) {
    struct sigaction cur;
    pl.sigchld_ign = sigaction(SIGCHLD, NULL, &cur) == 0 && cur.sa_handler == SIG_IGN;
    plan_start ps = {req, &pl};
    mproc__posix_helper_opts ho = {.tree = req->process_tree, .kill_on_parent_death = req->kill_on_parent_death};
    rc = mproc__posix_helper_spawn(&ho, start_with_plan, &ps, child);
    if (rc > 0) rc = spawn_error(req, &pl, rc);
    plan_free(&pl);
    /* the program's now (the helper closed its copy once the program ran): EOF comes when it closes it */
    if (rc == 0 && req->pty) mproc__posix_pty_handed(req->pty);
    return rc;
  }
  if (rc == 0) {
    pl.die_with_parent = req->kill_on_parent_death;
    pl.parent_pid = getpid();
#if HAVE_SPAWN_ACTIONS
    /* vfork for pass_fds with closefrom, a terminal (posix_spawn has no TIOCSCTTY), credentials and
     * limits, and PR_SET_PDEATHSIG */
    if (!(pl.nkeep && !req->inherit_fds) && pl.ctty < 0 && !mproc__posix_creds_any(&pl.creds) && !pl.die_with_parent)
      rc = spawn_posix_spawn(req, &pl, &pid);
    else
#endif
      rc = spawn_vfork(req, &pl, mproc__posix_creds_ids(&pl.creds), &pid);
  }
  plan_free(&pl);
  if (rc) return rc;
  if (req->pty) mproc__posix_pty_handed(req->pty); /* the child's now: EOF comes when it closes it */
  child->pid = pid;
  /* A pidfd now, while the pid is certainly ours (not reaped): signals go through it, so a child that
   * the caller reaped behind our back (waitpid) is never confused with a later process given its pid. */
  int fd = mproc__posix_pidfd_open(pid);
  if (fd >= 0) child->handle = (mproc_os_handle)fd;
  return 0;
}

/* ---- waiting and signals -------------------------------------------------------------------- */

static void set_status(mproc__child *c, int status) {
  c->reaped = true;
  if (WIFEXITED(status))
    c->returncode = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    c->returncode = -WTERMSIG(status);
  else
    c->returncode = status;
}

#if defined(__linux__)
#ifndef P_PIDFD
#define P_PIDFD 3 /* <linux/wait.h>, Linux 5.4 */
#endif
/* waitid(P_PIDFD): waits for exactly the process the pidfd names, so a pid that the system reused for
 * another child of ours (after the caller reaped ours behind our back) can never be reaped in its place.
 * 1 reaped, 0 still running, -2 not available here (fall back to the pid), or an error. */
static int reap_pidfd(mproc__child *c, bool block) {
  static _Atomic int missing; /* the kernel said EINVAL once: older than 5.4 */
  if (c->handle == MPROC_NO_HANDLE || atomic_load_explicit(&missing, memory_order_relaxed)) return -2;
  for (;;) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid((idtype_t)P_PIDFD, (id_t)c->handle, &si, WEXITED | (block ? 0 : WNOHANG)) == 0) {
      if (si.si_pid == 0) return 0;
      c->reaped = true;
      c->returncode = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
      return 1;
    }
    if (errno == EINTR) continue;
    if (errno == ECHILD) { /* someone else reaped it: as Python, 0 */
      c->reaped = true;
      c->returncode = 0;
      return 1;
    }
    if (errno == EINVAL) {
      atomic_store_explicit(&missing, 1, memory_order_relaxed);
      return -2;
    }
    return mproc__fail_os(0, errno, "waitid(P_PIDFD) for %lld", (long long)c->pid);
  }
}
#endif

/* waitpid without blocking or blocking; 1 reaped, 0 still running, or an error. */
static int reap(mproc__child *c, bool block) {
#if defined(__linux__)
  int by_fd = reap_pidfd(c, block);
  if (by_fd != -2) return by_fd;
#endif
  for (;;) {
    int status = 0;
    pid_t r = waitpid((pid_t)c->pid, &status, block ? 0 : WNOHANG);
    if (r == (pid_t)c->pid) {
      set_status(c, status);
      return 1;
    }
    if (r == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == ECHILD) { /* someone else reaped it (SIGCHLD set to SIG_IGN): as Python, 0 */
      c->reaped = true;
      c->returncode = 0;
      return 1;
    }
    return mproc__fail_os(0, errno, "waitpid(%lld)", (long long)c->pid);
  }
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int mproc__pal_wait(mproc__child *c, int64_t deadline) {
  if (c->reaped) return 0;
  if (mproc__posix_child_helper(c)) return mproc__posix_helper_wait(c, deadline);
  const mproc__posix_child *os = (const mproc__posix_child *)c->os;
  if (os && os->exit_rd >= 0) {
    /* A watcher thread waits on this pid (mproc__pal_child_exit_handle): reap only once it has seen the
     * end, so it never waits on a pid the system has given to another child. Then reaping is at once. */
    int rc = mproc__posix_wait_fd(os->exit_rd, POLLIN, deadline);
    if (rc) return rc;
    int r = reap(c, true);
    return r < 0 ? r : 0;
  }
  if (deadline == INT64_MAX) {
    int r = reap(c, true);
    return r < 0 ? r : 0;
  }
  int r = reap(c, false);
  if (r) return r < 0 ? r : 0;
#if defined(__linux__) && defined(SYS_pidfd_open)
  if (c->handle == MPROC_NO_HANDLE) {
    int fd = mproc__posix_pidfd_open(c->pid);
    if (fd >= 0) c->handle = (mproc_os_handle)fd;
  }
  if (c->handle != MPROC_NO_HANDLE) {
    for (;;) {
      int64_t ms = mproc__ms_until(deadline);
      struct pollfd pfd = {(int)c->handle, POLLIN, 0};
      int n = poll(&pfd, 1, ms > INT32_MAX ? INT32_MAX : (int)ms);
      if (n < 0 && errno != EINTR) return mproc__fail_os(0, errno, "poll on pidfd of %lld", (long long)c->pid);
      if (n > 0 || ms == 0) {
        r = reap(c, false);
        if (r) return r < 0 ? r : 0;
        if (ms == 0 || mproc__ms_until(deadline) == 0) return MPROC_ETIMEDOUT;
      }
    }
  }
#endif
  /* No pidfd (old kernel, macOS/BSD): poll waitpid with a growing sleep, capped so latency stays low. */
  for (int64_t nap = 1;; nap = nap < 32 ? nap * 2 : 32) {
    int64_t ms = mproc__ms_until(deadline);
    if (ms == 0) return MPROC_ETIMEDOUT;
    sleep_ms(ms < nap ? ms : nap);
    r = reap(c, false);
    if (r) return r < 0 ? r : 0;
  }
}

int mproc__pal_signal(mproc__child *c, int sig) {
  if (c->reaped) return 0; /* the pid may belong to someone else now */
  if (sig == MPROC_SIGBREAK)
    return mproc__fail(MPROC_ENOTSUP,
                       "signal MPROC_SIGBREAK: CTRL_BREAK is a Windows console event; POSIX has none "
                       "(send MPROC_SIGINT or MPROC_SIGTERM)");
  if (mproc__posix_child_helper(c)) return mproc__posix_helper_signal(c, sig);
#if defined(__linux__) && defined(SYS_pidfd_send_signal)
  /* A pidfd names the process itself, never a later one with its pid: a forkserver child (the server
   * reaps it, so its pid alone could be reused before we hear) is signalled this way. */
  if (c->handle != MPROC_NO_HANDLE) {
    if (syscall(SYS_pidfd_send_signal, (int)c->handle, sig, NULL, 0) == 0 || errno == ESRCH) return 0;
    if (errno != ENOSYS && errno != EBADF)
      return mproc__fail_os(0, errno, "pidfd_send_signal(%lld, %d)", (long long)c->pid, sig);
  }
#endif
  /* Our own child, not yet reaped, so the pid is still ours (at worst a zombie): no recycled-pid race. */
  if (kill((pid_t)c->pid, sig) != 0 && errno != ESRCH)
    return mproc__fail_os(0, errno, "kill(%lld, %d)", (long long)c->pid, sig);
  return 0;
}

void mproc__pal_child_release(mproc__child *c) {
  if (mproc__posix_child_helper(c)) mproc__posix_helper_release(c);
  mproc__pal_close(c->handle);
  c->handle = MPROC_NO_HANDLE;
  mproc__posix_child *os = (mproc__posix_child *)c->os;
  if (os && os->exit_rd >= 0) close(os->exit_rd); /* the watcher owns the write end and closes it itself */
  free(os);
  c->os = NULL;
}

/* ---- the exit handle ---------------------------------------------------------------------------- */

static _Atomic int g_force_watcher;

mproc__posix_child *mproc__posix_child_state(mproc__child *c) {
  if (!c->os) {
    mproc__posix_child *os = (mproc__posix_child *)calloc(1, sizeof *os);
    if (!os) {
      mproc__fail(MPROC_ENOMEM, "process %lld: out of memory", (long long)c->pid);
      return NULL;
    }
    os->exit_rd = -1;
    c->os = os;
  }
  return (mproc__posix_child *)c->os;
}

struct mproc__posix_helper *mproc__posix_child_helper(const mproc__child *c) {
  return c->os ? ((const mproc__posix_child *)c->os)->helper : NULL;
}

void mproc__posix_force_exit_watcher(bool force) { atomic_store(&g_force_watcher, force ? 1 : 0); }

typedef struct exit_watch {
  pid_t pid;
  int wr; /* the only write end of the exit pipe */
} exit_watch;

/* The watcher thread: waits without reaping (WNOWAIT) until the child has ended, then closes the write
 * end, so the read end reads end of file. ECHILD (someone else reaped it) ends the wait too. */
static void exit_watch_main(void *arg) {
  exit_watch *w = (exit_watch *)arg;
  siginfo_t si;
  while (waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  close(w->wr);
  free(w);
}

int mproc__pal_child_exit_handle(mproc__child *c, mproc_os_handle *out) {
  *out = MPROC_NO_HANDLE;
  if (mproc__posix_child_helper(c)) { /* the helper's exit socket: readable once the program has ended */
    *out = c->handle;
    return 0;
  }
  mproc__posix_child *os = (mproc__posix_child *)c->os;
  if (os && os->exit_rd >= 0) {
    *out = os->exit_rd;
    return 0;
  }
  if (!atomic_load(&g_force_watcher)) {
    if (c->handle == MPROC_NO_HANDLE && !c->reaped && c->pid > 0) { /* the spawn's pidfd_open failed */
      int fd = mproc__posix_pidfd_open(c->pid);
      if (fd >= 0)
        c->handle = (mproc_os_handle)fd;
      else if (errno != ENOSYS)
        return mproc__fail_os(0, errno, "exit handle of %lld: pidfd_open", (long long)c->pid);
    }
    if (c->handle != MPROC_NO_HANDLE) {
      *out = c->handle;
      return 0;
    }
  }
  os = mproc__posix_child_state(c);
  if (!os) return MPROC_ENOMEM;
  int fds[2];
  if (mproc__posix_pipe_cloexec(fds) == -1) return mproc__fail_os(0, errno, "exit handle: pipe");
  (void)fcntl(fds[0], F_SETFL, O_NONBLOCK); /* an event loop may read it: never block there */
  if (c->reaped) {                          /* ended already: a pipe without a writer is ready at once */
    close(fds[1]);
  } else {
    exit_watch *w = (exit_watch *)malloc(sizeof *w);
    int rc = w ? 0 : mproc__fail(MPROC_ENOMEM, "exit handle: out of memory");
    if (w) {
      w->pid = (pid_t)c->pid;
      w->wr = fds[1];
      rc = mproc__pal_thread_start(exit_watch_main, w);
    }
    if (rc) {
      free(w);
      close(fds[0]);
      close(fds[1]);
      return rc;
    }
  }
  os->exit_rd = fds[0];
  *out = fds[0];
  return 0;
}
