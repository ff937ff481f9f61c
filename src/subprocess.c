/* subprocess: Popen and the run/call/check_call/check_output engine. Portable: the OS work is in the
 * PAL (pipes, spawn, wait, the communicate pump). */
#include "mproc/subprocess.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pal.h"
#include "subprocess_internal.h"

/* Line-by-line reading: the read-ahead state of stdout or stderr. Their buffers are the Popen's out and
 * err, which communicate also captures into (it first moves the unconsumed bytes to the front). */
typedef struct readahead {
  size_t head;    /* bytes [head, len) of the buffer are not consumed yet */
  bool skip_lf;   /* a line was handed over as ended by a "\r" that was the last byte: a "\n" next is the
                     second half of that end */
  bool eof;       /* end of file was read */
  bool eof_told;  /* the callback forms said the stream has ended */
  size_t cr_from; /* bytes [head, cr_from) of the buffer hold no "\r" (next_line's look-ahead) */
} readahead;

struct mproc_popen {
  mproc__child child;
  mproc_os_handle pipes[3]; /* parent ends not yet handed to a communicate exchange */
  char *name;               /* the program or command, for messages */
  /* communicate() state, kept across a timeout */
  bool comm_started;
  mproc__comm comm;
  mproc__buf out, err;
  bool out_piped, err_piped;
  char *input_copy; /* the unsent rest of the input, copied when a communicate timed out */
  bool tree;        /* started with process_tree: the tree calls reach everything it started */
  /* ---- line-by-line reading, terminals ---- */
  readahead ra[3]; /* [1] stdout in out, [2] stderr in err ([0] unused) */
  size_t max_line; /* the callback forms' longest line handed over whole */
  bool chunks;     /* output_chunks */
  mproc__pty *pty; /* the terminal of MPROC_PTY streams, or NULL */
  bool pty_stdin;  /* stdin is the terminal: its end of file is the terminal's character */
  char last_in;    /* the last byte written to the terminal's stdin ('\n' before any) */
};

static const char *k_stream[3] = {"stdin", "stdout", "stderr"};

/* ---- starting ------------------------------------------------------------------------------- */

/* Resolve one stdio option to the handle the child gets. *opened tells whether we created it (and so
 * must close our copy after the spawn); *parent_end receives our end of a pipe. */
static int child_stream(int which, mproc_stdio_mode mode, mproc_os_handle handle, const char *path, bool append,
                        mproc_os_handle *child, bool *opened, mproc_os_handle *parent_end) {
  *child = MPROC_NO_HANDLE;
  *opened = false;
  *parent_end = MPROC_NO_HANDLE;
  bool for_write = which != 0;
  switch (mode) {
    case MPROC_INHERIT:
      return 0;
    case MPROC_PIPE: {
      int rc = mproc__pal_pipe(for_write, parent_end, child);
      *opened = rc == 0;
      return rc;
    }
    case MPROC_DEVNULL: {
      int rc = mproc__pal_open_devnull(for_write, child);
      *opened = rc == 0;
      return rc;
    }
    case MPROC_HANDLE:
      MPROC__CHECK_ARG_AS("popen", handle == MPROC_NO_HANDLE,
                          "%s_mode is MPROC_HANDLE but %s_handle is MPROC_NO_HANDLE", k_stream[which], k_stream[which]);
      *child = handle;
      return 0;
    case MPROC_PATH: {
      MPROC__CHECK_ARG_AS("popen", !path, "%s_mode is MPROC_PATH but %s_path is NULL", k_stream[which],
                          k_stream[which]);
      int rc = mproc__pal_open_path(path, for_write, append, child);
      *opened = rc == 0;
      return rc;
    }
    case MPROC_STDOUT:
      return mproc__fail_arg("popen", "MPROC_STDOUT is only valid for stderr_mode, not %s_mode", k_stream[which]);
    case MPROC_STDOUT_OF:
      return mproc__fail_arg("popen", "MPROC_STDOUT_OF is only valid for stdin_mode, not %s_mode", k_stream[which]);
    case MPROC_PTY: /* opened for all three at once (open_terminal) */
      return 0;
  }
  return mproc__fail_arg("popen", "%s_mode %d is not an mproc_stdio_mode", k_stream[which], (int)mode);
}

/* ---- Windows: windows and consoles ---- */

/* creationflags and startupinfo, checked on every platform (POSIX then ignores them). */
static int check_window_opts(const mproc_popen_opts *o) {
  const uint32_t refused =
      MPROC_CREATE_SUSPENDED | MPROC_DEBUG_PROCESS | MPROC_DEBUG_ONLY_THIS_PROCESS | MPROC_EXTENDED_STARTUPINFO_PRESENT;
  const uint32_t priorities = MPROC_IDLE_PRIORITY_CLASS | MPROC_BELOW_NORMAL_PRIORITY_CLASS |
                              MPROC_NORMAL_PRIORITY_CLASS | MPROC_ABOVE_NORMAL_PRIORITY_CLASS |
                              MPROC_HIGH_PRIORITY_CLASS | MPROC_REALTIME_PRIORITY_CLASS;
  const uint32_t startf = MPROC_STARTF_USESHOWWINDOW | MPROC_STARTF_FORCEONFEEDBACK | MPROC_STARTF_FORCEOFFFEEDBACK |
                          MPROC_STARTF_USESTDHANDLES;
  uint32_t cf = o->creationflags, prio = cf & priorities;
  MPROC__CHECK_ARG_AS("popen", cf & refused,
                      "creationflags 0x%lx holds 0x%lx (CREATE_SUSPENDED, DEBUG_PROCESS, DEBUG_ONLY_THIS_PROCESS or "
                      "EXTENDED_STARTUPINFO_PRESENT), which mproc does not allow: the child would hang, or mproc sets "
                      "the flag itself",
                      (unsigned long)cf, (unsigned long)(cf & refused));
  MPROC__CHECK_ARG_AS("popen", (cf & MPROC_DETACHED_PROCESS) && (cf & MPROC_CREATE_NEW_CONSOLE),
                      "creationflags has both DETACHED_PROCESS and CREATE_NEW_CONSOLE (Windows refuses the pair)");
  MPROC__CHECK_ARG_AS("popen", prio & (prio - 1), "creationflags 0x%lx names more than one priority class",
                      (unsigned long)cf);
  MPROC__CHECK_ARG_AS("popen", o->startupinfo.flags & ~startf,
                      "startupinfo.flags 0x%lx holds 0x%lx: mproc takes only STARTF_USESHOWWINDOW, "
                      "STARTF_FORCEONFEEDBACK, STARTF_FORCEOFFFEEDBACK and STARTF_USESTDHANDLES",
                      (unsigned long)o->startupinfo.flags, (unsigned long)(o->startupinfo.flags & ~startf));
  MPROC__CHECK_ARG_AS("popen", o->startupinfo.show_window > 11, "startupinfo.show_window %u is not an SW_ value",
                      (unsigned)o->startupinfo.show_window);
  MPROC__CHECK_ARG_AS("popen", o->startupinfo.show_window && !(o->startupinfo.flags & MPROC_STARTF_USESHOWWINDOW),
                      "startupinfo.show_window is %u but flags lack STARTF_USESHOWWINDOW, so Windows would ignore it",
                      (unsigned)o->startupinfo.show_window);
  return 0;
}

/* ---- POSIX: credentials and limits ---- */

/* The PAL's resource numbers are the public ones (pal.h). */
#define SAME_RLIMIT(x) ((int)MPROC_RLIMIT_##x == (int)MPROC__RLIMIT_##x)
_Static_assert(SAME_RLIMIT(CORE) && SAME_RLIMIT(CPU) && SAME_RLIMIT(DATA) && SAME_RLIMIT(FSIZE) &&
                   SAME_RLIMIT(NOFILE) && SAME_RLIMIT(STACK) && SAME_RLIMIT(AS) && SAME_RLIMIT(NPROC) &&
                   SAME_RLIMIT(MEMLOCK),
               "mproc_rlimit_resource and mproc__rlimit_kind must agree");
#undef SAME_RLIMIT

_Static_assert(MPROC_UMASK(0) == MPROC__PAL_UMASK_SET, "the PAL takes a umask as MPROC_UMASK gives it");

/* Check them and give the PAL's form: the umask (0: unchanged, or MPROC__PAL_UMASK_SET | mask) and a
 * copy of the limits (*limits, malloc'ed when there are any; free() it). */
static int check_credential_opts(const mproc_popen_opts *o, int *mask, mproc__rlimit **limits) {
  *mask = 0;
  *limits = NULL;
  if (o->umask != 0 && o->umask != -1) {
    MPROC__CHECK_ARG_AS("popen", (o->umask & ~0777) != MPROC_UMASK(0),
                        "umask %d (0%o) is not MPROC_UMASK(0..0777); write .umask = MPROC_UMASK(mask)", o->umask,
                        (unsigned)o->umask);
    *mask = o->umask;
  }
  MPROC__CHECK_ARG_AS("popen", o->user && !o->user[0], "user is an empty string");
  MPROC__CHECK_ARG_AS("popen", o->group && !o->group[0], "group is an empty string");
  for (size_t i = 0; o->extra_groups && o->extra_groups[i]; ++i)
    MPROC__CHECK_ARG_AS("popen", !o->extra_groups[i][0], "extra_groups[%zu] is an empty string", i);
  MPROC__CHECK_ARG_AS("popen", o->rlimits_count && !o->rlimits, "rlimits is NULL but rlimits_count is %zu",
                      o->rlimits_count);
  for (size_t i = 0; i < o->rlimits_count; ++i) {
    const mproc_rlimit *l = &o->rlimits[i];
    MPROC__CHECK_ARG_AS("popen", (int)l->resource < 1 || (int)l->resource > MPROC__RLIMIT_LAST_,
                        "rlimits[%zu].resource %d is not an mproc_rlimit_resource", i, (int)l->resource);
    MPROC__CHECK_ARG_AS("popen", l->soft > l->hard, "rlimits[%zu]: soft limit %llu is above the hard limit %llu", i,
                        (unsigned long long)l->soft, (unsigned long long)l->hard);
  }
  if (!o->rlimits_count) return 0;
  *limits = (mproc__rlimit *)malloc(o->rlimits_count * sizeof **limits);
  if (!*limits) return mproc__fail(MPROC_ENOMEM, "popen: out of memory");
  for (size_t i = 0; i < o->rlimits_count; ++i)
    (*limits)[i] = (mproc__rlimit){(int)o->rlimits[i].resource, o->rlimits[i].soft, o->rlimits[i].hard};
  return 0;
}

static int check_opts(const mproc_popen_opts *o) {
  MPROC__CHECK_ARG_AS("popen", !o, "opts is NULL");
  MPROC__CHECK_ARG_AS("popen", !o->argv == !o->command, "set exactly one of argv and command (argv %s, command %s)",
                      o->argv ? "set" : "NULL", o->command ? "set" : "NULL");
  MPROC__CHECK_ARG_AS("popen", o->argv && !o->argv[0], "argv is empty (argv[0] is NULL)");
  MPROC__CHECK_ARG_AS("popen", o->argv && !o->argv[0][0] && !o->executable, "argv[0] is an empty string");
  MPROC__CHECK_ARG_AS("popen", o->pass_fds_count && !o->pass_fds, "pass_fds is NULL but pass_fds_count is %zu",
                      o->pass_fds_count);
  for (size_t i = 0; i < o->pass_fds_count; ++i)
    MPROC__CHECK_ARG_AS("popen", o->pass_fds[i] == MPROC_NO_HANDLE, "pass_fds[%zu] is MPROC_NO_HANDLE", i);
  if (o->env)
    for (size_t i = 0; o->env[i]; ++i)
      MPROC__CHECK_ARG_AS("popen", !strchr(o->env[i], '=') || o->env[i][0] == '=', "env[%zu] \"%s\" is not NAME=VALUE",
                          i, o->env[i]);
  if (o->env_extra)
    for (size_t i = 0; o->env_extra[i]; ++i)
      MPROC__CHECK_ARG_AS("popen", !o->env_extra[i][0] || o->env_extra[i][0] == '=',
                          "env_extra[%zu] \"%s\" has no name", i, o->env_extra[i]);
  return check_window_opts(o);
}

/* MPROC_PTY: one terminal for stdout and those of stdin / stderr that ask for it (on_pty). */
static int open_terminal(mproc_popen *p, const mproc_popen_opts *o, const bool on_pty[3]) {
  if (!on_pty[1]) {
    MPROC__CHECK_ARG_AS("popen", on_pty[0] || on_pty[2],
                        "%s_mode is MPROC_PTY but stdout_mode is not (a terminal is stdout's, which others share)",
                        on_pty[0] ? "stdin" : "stderr");
    return 0;
  }
  MPROC__CHECK_ARG_AS("popen",
                      o->creationflags & (MPROC_CREATE_NEW_CONSOLE | MPROC_DETACHED_PROCESS | MPROC_CREATE_NO_WINDOW),
                      "stdout_mode is MPROC_PTY, the program's console, but creationflags 0x%lx asks for another "
                      "(CREATE_NEW_CONSOLE, DETACHED_PROCESS or CREATE_NO_WINDOW)",
                      (unsigned long)o->creationflags);
  mproc_os_handle keys;
  int rc = mproc__pal_pty_open(o->pty_columns ? o->pty_columns : 80, o->pty_rows ? o->pty_rows : 24, &p->pty,
                               &p->pipes[1], &keys);
  if (rc) return rc;
  if (on_pty[0])
    p->pipes[0] = keys;
  else
    mproc__pal_close(keys); /* the terminal stays open: the PAL keeps what it needs */
  p->pty_stdin = on_pty[0];
  p->last_in = '\n';
  return 0;
}

int mproc_popen_create(mproc_popen **out, const mproc_popen_opts *o) {
  MPROC__CHECK_ARG(!out, "out is NULL");
  *out = NULL;
  int rc = check_opts(o);
  int umask_value = 0;
  mproc__rlimit *limits = NULL;
  if (rc == 0) rc = check_credential_opts(o, &umask_value, &limits);
  if (rc) return rc;

  mproc_popen *p = (mproc_popen *)calloc(1, sizeof *p);
  if (!p) {
    free(limits);
    return mproc__fail(MPROC_ENOMEM, "popen: out of memory");
  }
  for (int i = 0; i < 3; ++i) p->pipes[i] = MPROC_NO_HANDLE;
  p->comm.in = p->comm.out = p->comm.err = MPROC_NO_HANDLE;
  p->child.handle = MPROC_NO_HANDLE;
  p->name = mproc__strdup(o->argv ? o->argv[0] : o->command);
  if (!p->name) {
    free(limits);
    free(p);
    return MPROC_ENOMEM;
  }
  p->max_line = o->max_line ? o->max_line : 65536;
  p->chunks = o->output_chunks;

  mproc_os_handle child[3] = {MPROC_NO_HANDLE, MPROC_NO_HANDLE, MPROC_NO_HANDLE};
  bool opened[3] = {false, false, false};
  const mproc_stdio_mode modes[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
  const mproc_os_handle handles[3] = {o->stdin_handle, o->stdout_handle, o->stderr_handle};
  const char *paths[3] = {o->stdin_path, o->stdout_path, o->stderr_path};
  const bool appends[3] = {false, o->stdout_append, o->stderr_append};
  mproc_popen *from = NULL; /* stdin MPROC_STDOUT_OF: the Popen whose stdout pipe we take over */
  if (modes[0] == MPROC_STDOUT_OF) {
    from = o->stdin_from;
    if (!from)
      rc = mproc__fail(MPROC_EINVAL, "popen: stdin_mode is MPROC_STDOUT_OF but stdin_from is NULL");
    else if (from->pipes[1] == MPROC_NO_HANDLE || from->pty)
      rc = mproc__fail(MPROC_ESTATE, "popen: stdin_from ('%s') has no stdout pipe of its own to hand on%s", from->name,
                       from->comm_started ? " (communicate owns it)"
                       : from->pty        ? " (its stdout is a terminal)"
                                          : "");
    else if (from->out.len > from->ra[1].head)
      rc = mproc__fail(MPROC_ESTATE, "popen: stdin_from ('%s') has %zu bytes of stdout read ahead, which would be lost",
                       from->name, from->out.len - from->ra[1].head);
    else
      rc = mproc__pal_set_blocking(from->pipes[1], true);
    if (!rc) child[0] = from->pipes[1];
  }
  bool on_pty[3] = {modes[0] == MPROC_PTY, modes[1] == MPROC_PTY,
                    modes[2] == MPROC_PTY || (modes[2] == MPROC_STDOUT && modes[1] == MPROC_PTY)};
  if (rc == 0) rc = open_terminal(p, o, on_pty);
  for (int i = 0; i < 3 && rc == 0; ++i) {
    if ((i == 0 && from) || on_pty[i]) continue;
    if (i == 2 && modes[2] == MPROC_STDOUT) {
      child[2] = child[1] != MPROC_NO_HANDLE ? child[1] : mproc__pal_std_handle(1);
      continue;
    }
    rc = child_stream(i, modes[i], handles[i], paths[i], appends[i], &child[i], &opened[i], &p->pipes[i]);
  }
  if (rc == 0) {
    mproc__spawn_req req = {.argv = o->argv,
                            .command = o->command,
                            .executable = o->executable,
                            .cwd = o->cwd,
                            .env = o->env,
                            .env_extra = o->env_extra,
                            .stdio = {child[0], child[1], child[2]},
                            .inherit_fds = o->inherit_fds,
                            .pass_fds = o->pass_fds,
                            .pass_fds_count = o->pass_fds_count,
                            .new_session = o->new_session,
                            .new_process_group = o->new_process_group,
                            /* ---- Windows: windows and consoles ---- */
                            .creationflags = o->creationflags,
                            .startup_flags = o->startupinfo.flags,
                            .show_window = o->startupinfo.show_window,
                            /* ---- POSIX: credentials and limits ---- */
                            .user = o->user,
                            .group = o->group,
                            .extra_groups = o->extra_groups,
                            .umask = umask_value,
                            .rlimits = limits,
                            .rlimits_count = o->rlimits_count,
                            /* ---- process trees and parent death ---- */
                            .process_tree = o->process_tree,
                            .kill_on_parent_death = o->kill_on_parent_death,
                            /* ---- a terminal ---- */
                            .pty = p->pty,
                            .on_pty = {on_pty[0], on_pty[1], on_pty[2]}};
    rc = mproc__pal_spawn(&req, &p->child);
  }
  free(limits);
  for (int i = 0; i < 3; ++i)
    if (opened[i]) mproc__pal_close(child[i]);
  if (from && !rc) { /* the pipe end is the new child's now */
    mproc__pal_close(from->pipes[1]);
    from->pipes[1] = MPROC_NO_HANDLE;
    from->out_piped = false;
  } else if (from && from->pipes[1] != MPROC_NO_HANDLE) {
    (void)mproc__pal_set_blocking(from->pipes[1], false); /* it stays the earlier Popen's */
  }
  if (rc) {
    for (int i = 0; i < 3; ++i) mproc__pal_close(p->pipes[i]);
    mproc__pal_pty_close(p->pty);
    free(p->name);
    free(p);
    return rc;
  }
  p->out_piped = p->pipes[1] != MPROC_NO_HANDLE;
  p->err_piped = p->pipes[2] != MPROC_NO_HANDLE;
  p->tree = o->process_tree;
  *out = p;
  return 0;
}

/* ---- state ---------------------------------------------------------------------------------- */

int64_t mproc_popen_pid(const mproc_popen *p) { return p ? p->child.pid : 0; }

bool mproc_popen_returncode(const mproc_popen *p, int *returncode) {
  if (!p || !p->child.reaped) return false;
  if (returncode) *returncode = p->child.returncode;
  return true;
}

/* How a program ended, for CalledProcessError messages, in mproc_describe_exit's words: "returned non-zero
 * exit status 3", "died with signal 6 (SIGABRT)", "returned non-zero exit status -1073741819: crash
 * 0xC0000005 (STATUS_ACCESS_VIOLATION)" (Windows). */
static const char *ending(int returncode, char *buf, size_t n) {
  char how[MPROC_EXIT_DESC_SIZE];
  if (mproc_exit_signal(returncode))
    snprintf(buf, n, "died with %s", mproc_describe_exit(returncode, how, sizeof how));
  else if (mproc_exit_is_crash(returncode))
    snprintf(buf, n, "returned non-zero exit status %d: %s", returncode,
             mproc_describe_exit(returncode, how, sizeof how));
  else
    snprintf(buf, n, "returned non-zero exit status %d", returncode);
  return buf;
}

static int wait_until(mproc_popen *p, int64_t deadline, int64_t timeout_ms, int *returncode) {
  int rc = mproc__pal_wait(&p->child, deadline);
  if (rc == MPROC_ETIMEDOUT)
    return mproc__fail(rc, "'%s' (pid %lld) is still running after %lld ms", p->name, (long long)p->child.pid,
                       (long long)timeout_ms);
  if (rc) return rc;
  if (returncode) *returncode = p->child.returncode;
  return 0;
}

int mproc_popen_wait(mproc_popen *p, int64_t timeout_ms, int *returncode) {
  MPROC__CHECK_ARG(!p, "p is NULL");
  return wait_until(p, mproc__deadline_from_timeout(timeout_ms), timeout_ms, returncode);
}

int mproc_popen_poll(mproc_popen *p, int *returncode) { return mproc_popen_wait(p, 0, returncode); }

mproc_os_handle mproc_popen_handle(const mproc_popen *p, int which) {
  if (!p || which < 0 || which > 2) return MPROC_NO_HANDLE;
  return p->pipes[which];
}

/* ---- signals -------------------------------------------------------------------------------- */

int mproc_popen_send_signal(mproc_popen *p, int sig) {
  MPROC__CHECK_ARG(!p, "p is NULL");
  MPROC__CHECK_ARG(sig <= 0, "signal %d is not a signal number", sig);
  return mproc__pal_signal(&p->child, sig);
}
int mproc_popen_terminate(mproc_popen *p) { return mproc_popen_send_signal(p, MPROC_SIGTERM); }
int mproc_popen_kill(mproc_popen *p) { return mproc_popen_send_signal(p, MPROC_SIGKILL); }

/* ---- process trees -------------------------------------------------------------------------- */

/* Kill the program, or its whole tree when it has one (destroy, run's timeout). */
static void kill_child(mproc_popen *p) {
  if (p->tree)
    (void)mproc__pal_tree_signal(&p->child, MPROC_SIGKILL);
  else
    (void)mproc__pal_signal(&p->child, MPROC_SIGKILL);
}

static int check_tree(const mproc_popen *p, const char *call) {
  if (!p) return mproc__fail_arg(call, "p is NULL");
  if (!p->tree)
    return mproc__fail(MPROC_ESTATE, "%s: '%s' (pid %lld) was not started with process_tree", call, p->name,
                       (long long)p->child.pid);
  return 0;
}

int mproc_popen_signal_tree(mproc_popen *p, int sig) {
  int rc = check_tree(p, "popen_signal_tree");
  if (rc) return rc;
  MPROC__CHECK_ARG(sig <= 0, "signal %d is not a signal number", sig);
  return mproc__pal_tree_signal(&p->child, sig);
}

int mproc_popen_kill_tree(mproc_popen *p) {
  int rc = check_tree(p, "popen_kill_tree");
  return rc ? rc : mproc__pal_tree_signal(&p->child, MPROC_SIGKILL);
}

static int wait_tree_until(mproc_popen *p, int64_t deadline, int64_t timeout_ms) {
  int rc = mproc__pal_tree_wait(&p->child, deadline);
  if (rc == MPROC_ETIMEDOUT)
    return mproc__fail(rc, "the process tree of '%s' (pid %lld) is still running after %lld ms", p->name,
                       (long long)p->child.pid, (long long)timeout_ms);
  return rc;
}

int mproc_popen_wait_tree(mproc_popen *p, int64_t timeout_ms) {
  int rc = check_tree(p, "popen_wait_tree");
  return rc ? rc : wait_tree_until(p, mproc__deadline_from_timeout(timeout_ms), timeout_ms);
}

/* The graded stop: ask, wait up to the grace, kill, wait; then reap the program. */
int mproc_popen_stop_tree(mproc_popen *p, int64_t grace_ms, int *returncode) {
  int rc = check_tree(p, "popen_stop_tree");
  if (rc) return rc;
  if (grace_ms != 0) {
    rc = mproc__pal_tree_ask_to_end(&p->child);
    if (rc == 0) rc = wait_tree_until(p, mproc__deadline_from_timeout(grace_ms), grace_ms);
    if (rc != MPROC_ETIMEDOUT && rc != 0) return rc;
  }
  if (grace_ms == 0 || rc == MPROC_ETIMEDOUT) {
    rc = mproc__pal_tree_signal(&p->child, MPROC_SIGKILL);
    if (rc == 0) rc = mproc__pal_tree_wait(&p->child, INT64_MAX);
    if (rc) return rc;
  }
  return wait_until(p, INT64_MAX, MPROC_INFINITE, returncode);
}

/* ---- streaming ------------------------------------------------------------------------------ */

static int stream_handle(mproc_popen *p, int which, const char *call, mproc_os_handle *h) {
  if (!p) return mproc__fail(MPROC_EINVAL, "%s: p is NULL", call);
  if (which < 0 || which > 2) return mproc__fail(MPROC_EINVAL, "%s: stream %d is not 0, 1 or 2", call, which);
  *h = p->pipes[which];
  if (*h == MPROC_NO_HANDLE)
    return mproc__fail(MPROC_ESTATE, "%s: %s of '%s' is not an open pipe%s", call, k_stream[which], p->name,
                       p->comm_started ? " (communicate owns it)" : "");
  return 0;
}

int mproc_popen_write(mproc_popen *p, const void *buf, size_t len, int64_t timeout_ms, size_t *written) {
  mproc_os_handle h;
  if (written) *written = 0;
  int rc = stream_handle(p, 0, "popen_write", &h);
  if (rc) return rc;
  MPROC__CHECK_ARG(!buf && len, "buf is NULL");
  size_t n = 0;
  rc = mproc__pal_write(h, buf, len, mproc__deadline_from_timeout(timeout_ms), &n);
  if (written) *written = n;
  if (n && p->pty_stdin) p->last_in = ((const char *)buf)[n - 1];
  return rc;
}

int mproc_popen_read(mproc_popen *p, int which, void *buf, size_t cap, int64_t timeout_ms, size_t *n) {
  mproc_os_handle h;
  if (n) *n = 0;
  MPROC__CHECK_ARG(p && which == 0, "stdin cannot be read");
  int rc = stream_handle(p, which, "popen_read", &h);
  if (rc) return rc;
  MPROC__CHECK_ARG(!buf || !n || !cap, "buf, n and cap must be set");
  readahead *ra = &p->ra[which];
  mproc__buf *b = which == 1 ? &p->out : &p->err;
  if (ra->head < b->len) { /* what the line reader read ahead comes first */
    *n = b->len - ra->head < cap ? b->len - ra->head : cap;
    memcpy(buf, b->data + ra->head, *n);
    ra->head += *n;
    ra->skip_lf = false; /* raw reads give the bytes as they are */
    return 0;
  }
  if (ra->eof) return 0;
  ra->skip_lf = false;
  rc = mproc__pal_read(h, buf, cap, mproc__deadline_from_timeout(timeout_ms), n);
  if (rc == 0 && *n == 0) ra->eof = true;
  return rc;
}

/* The bytes that end a terminal's input (after what was written last), or none for a pipe. */
static size_t stdin_eof(const mproc_popen *p, char *buf) {
  return p->pty_stdin ? mproc__pal_pty_eof(p->pty, p->last_in != '\n', buf) : 0;
}

int mproc_popen_close_stdin(mproc_popen *p) {
  mproc_os_handle h;
  int rc = stream_handle(p, 0, "popen_close_stdin", &h);
  if (rc) return rc;
  char eof[4];
  size_t k = stdin_eof(p, eof), sent = 0;
  if (k) (void)mproc__pal_write(h, eof, k, 0, &sent); /* best effort: a full terminal input takes none */
  mproc__pal_close(h);
  p->pipes[0] = MPROC_NO_HANDLE;
  return 0;
}

/* ---- line by line ----------------------------------------------------------------------------- */

/* Take the next line (or a piece of max bytes) of a stream's read-ahead into *line, pointing into the
 * buffer; false when it is not whole yet. hold_cr: a "\r" that is the last byte waits for the next one
 * (see "line by line" in subprocess.h); otherwise it ends its line and a "\n" next will be skipped. */
static bool next_line(readahead *ra, const mproc__buf *b, size_t max, bool hold_cr, mproc_line *line) {
  size_t n = b->len - ra->head;
  if (ra->skip_lf && n > 0) {
    ra->skip_lf = false;
    if (b->data[ra->head] == '\n') {
      --n;
      ++ra->head;
    }
  }
  if (n == 0) { /* nothing (memchr wants a buffer): the end of the stream, or wait */
    if (!ra->eof) return false;
    line->data = "";
    line->len = 0;
    line->end = MPROC_LINE_EOF;
    return true;
  }
  const char *d = b->data + ra->head;
  size_t lim = n <= max ? n : max + 1; /* a delimiter right after max bytes still ends the line whole */
  const char *nl = (const char *)memchr(d, '\n', lim);
  /* A "\r" before the "\n"? Looked for once through everything that has arrived, not line by line: most
   * output has none, and one scan clears every line in the buffer (cr_from remembers how far). */
  size_t upto = ra->head + (nl ? (size_t)(nl - d) : lim);
  size_t from = ra->cr_from > ra->head && ra->cr_from <= b->len ? ra->cr_from : ra->head;
  const char *cr = NULL;
  if (from < upto) {
    const char *x = (const char *)memchr(b->data + from, '\r', b->len - from);
    ra->cr_from = x ? (size_t)(x - b->data) : b->len;
    if (x && ra->cr_from < upto) cr = x;
  }
  size_t len, used;
  mproc_line_end end;
  if (cr) {
    len = (size_t)(cr - d);
    end = MPROC_LINE_CR;
    used = len + 1;
    if (len + 1 < n && cr[1] == '\n') {
      end = MPROC_LINE_CRLF;
      used = len + 2;
    } else if (len + 1 == n && !ra->eof) { /* the last byte so far: "\r" or the start of "\r\n"? */
      if (hold_cr) return false;
      ra->skip_lf = true;
    }
  } else if (nl) {
    len = (size_t)(nl - d);
    used = len + 1;
    end = MPROC_LINE_LF;
  } else if (n > max) {
    len = used = max;
    end = MPROC_LINE_PART;
  } else if (ra->eof) {
    len = used = n;
    end = MPROC_LINE_EOF;
  } else {
    return false;
  }
  line->data = d;
  line->len = len;
  line->end = end;
  ra->head += used;
  return true;
}

/* Move the unconsumed bytes of a read-ahead buffer to its front. */
static void compact(readahead *ra, mproc__buf *b) {
  if (ra->head == 0) return;
  if (ra->head < b->len) memmove(b->data, b->data + ra->head, b->len - ra->head);
  b->len -= ra->head;
  ra->cr_from = ra->cr_from > ra->head ? ra->cr_from - ra->head : 0;
  ra->head = 0;
}

/* Bytes read ahead at once: the pipe's data in big pieces, so a line costs no system call of its own. */
#define READ_AHEAD (64 * 1024)

int mproc_popen_readline(mproc_popen *p, int which, char *buf, size_t cap, int64_t timeout_ms, size_t *len,
                         mproc_line_end *end) {
  if (len) *len = 0;
  if (end) *end = MPROC_LINE_EOF;
  if (buf && cap) buf[0] = '\0';
  MPROC__CHECK_ARG(p && which == 0, "stdin cannot be read");
  mproc_os_handle h;
  int rc = stream_handle(p, which, "popen_readline", &h);
  if (rc) return rc;
  MPROC__CHECK_ARG(!buf || !len || !end, "buf, len and end must be set");
  MPROC__CHECK_ARG(cap < 2, "cap is %zu: room for at least one byte and the NUL is needed", cap);
  readahead *ra = &p->ra[which];
  mproc__buf *b = which == 1 ? &p->out : &p->err;
  int64_t deadline = 0;
  bool waited = false;
  mproc_line line;
  for (;;) {
    if (next_line(ra, b, cap - 1, true, &line)) break;
    if (!waited) deadline = mproc__deadline_from_timeout(timeout_ms); /* only when it has to read */
    waited = true;
    compact(ra, b);
    rc = mproc__buf_reserve(b, READ_AHEAD);
    if (rc) return rc;
    size_t got = 0;
    rc = mproc__pal_read(h, b->data + b->len, b->cap - b->len - 1, deadline, &got);
    if (rc == MPROC_ETIMEDOUT && next_line(ra, b, cap - 1, false, &line)) break; /* a held "\r" ends it */
    if (rc == MPROC_ETIMEDOUT)
      return mproc__fail(rc, "popen_readline: no whole line of %s from '%s' within %lld ms (%zu bytes wait)",
                         k_stream[which], p->name, (long long)timeout_ms, b->len - ra->head);
    if (rc) return rc;
    if (got == 0) ra->eof = true;
    b->len += got;
  }
  memcpy(buf, line.data, line.len);
  buf[line.len] = '\0';
  *len = line.len;
  *end = line.end;
  return 0;
}

/* ---- communicate ---------------------------------------------------------------------------- */

static bool comm_done(const mproc__comm *c) {
  return c->in == MPROC_NO_HANDLE && c->out == MPROC_NO_HANDLE && c->err == MPROC_NO_HANDLE;
}

static void comm_close_all(mproc__comm *c) {
  mproc__pal_close(c->in);
  mproc__pal_close(c->out);
  mproc__pal_close(c->err);
  c->in = c->out = c->err = MPROC_NO_HANDLE;
}

/* Hand a captured stream to the caller: an empty string for a pipe that gave nothing, NULL for a
 * stream that was not a pipe. The Popen's buffer is emptied. */
static int take_output(mproc__buf *b, bool piped, char **data, size_t *len) {
  if (data) *data = NULL;
  if (len) *len = 0;
  if (!piped || !data) return 0;
  int rc = mproc__buf_terminate(b);
  if (rc) return rc;
  *data = b->data;
  if (len) *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return 0;
}

/* Keep the unsent rest of the caller's input inside the Popen, so the caller's buffer may go away. */
static int keep_input(mproc_popen *p) {
  mproc__comm *c = &p->comm;
  if (c->in == MPROC_NO_HANDLE || !c->input || c->input == p->input_copy) return 0;
  size_t rest = c->input_len - c->input_off;
  char *copy = (char *)malloc(rest ? rest : 1);
  if (!copy) return mproc__fail(MPROC_ENOMEM, "communicate: out of memory keeping %zu bytes of input", rest);
  if (rest) memcpy(copy, c->input + c->input_off, rest);
  p->input_copy = copy;
  c->input = copy;
  c->input_len = rest;
  c->input_off = 0;
  return 0;
}

static int comm_start(mproc_popen *p, const void *input, size_t input_len) {
  if (p->comm_started) {
    if (input)
      return mproc__fail(MPROC_ESTATE, "communicate: cannot send input after starting communication with '%s'",
                         p->name);
    return 0;
  }
  if (input && p->pipes[0] == MPROC_NO_HANDLE)
    return mproc__fail(MPROC_ESTATE, "communicate: input given but stdin of '%s' is not a pipe", p->name);
  size_t n = input ? input_len : 0;
  if (n && p->pty_stdin) p->last_in = ((const char *)input)[n - 1];
  char eof[4];
  size_t k = p->pipes[0] != MPROC_NO_HANDLE ? stdin_eof(p, eof) : 0;
  if (k) { /* a terminal's input ends with its end-of-file character, sent after the input */
    if (n > SIZE_MAX - k) return mproc__fail(MPROC_ENOMEM, "communicate: input of %zu bytes is too large", n);
    char *copy = (char *)malloc(n + k);
    if (!copy) return mproc__fail(MPROC_ENOMEM, "communicate: out of memory copying %zu bytes of input", n);
    if (n) memcpy(copy, input, n);
    memcpy(copy + n, eof, k);
    p->input_copy = copy;
    input = copy;
    input_len = n + k;
  }
  /* what the line reader read ahead is the start of the output */
  compact(&p->ra[1], &p->out);
  compact(&p->ra[2], &p->err);
  mproc__comm *c = &p->comm;
  c->in = p->pipes[0];
  c->out = p->pipes[1];
  c->err = p->pipes[2];
  p->pipes[0] = p->pipes[1] = p->pipes[2] = MPROC_NO_HANDLE;
  c->input = (const char *)input;
  c->input_len = input ? input_len : 0;
  c->input_off = 0;
  c->out_buf = &p->out;
  c->err_buf = &p->err;
  p->comm_started = true;
  return 0;
}

/* An exchange that timed out: keep the unsent input for a later call, and say so. */
static int comm_timed_out(mproc_popen *p, int64_t timeout_ms) {
  int krc = keep_input(p);
  if (krc) return krc;
  return mproc__fail(MPROC_ETIMEDOUT, "communicate with '%s' (pid %lld) timed out after %lld ms", p->name,
                     (long long)p->child.pid, (long long)timeout_ms);
}

/* Move data until the exchange is done and the child is reaped, or the deadline. */
static int comm_run(mproc_popen *p, int64_t deadline, int64_t timeout_ms) {
  int rc = 0;
  if (!comm_done(&p->comm)) {
    rc = mproc__pal_communicate(&p->comm, deadline);
    if (rc == MPROC_ETIMEDOUT) return comm_timed_out(p, timeout_ms);
    if (rc) return rc;
  }
  return wait_until(p, deadline, timeout_ms, NULL);
}

int mproc_popen_communicate(mproc_popen *p, const void *input, size_t input_len, int64_t timeout_ms, char **out_data,
                            size_t *out_len, char **err_data, size_t *err_len) {
  if (out_data) *out_data = NULL;
  if (out_len) *out_len = 0;
  if (err_data) *err_data = NULL;
  if (err_len) *err_len = 0;
  MPROC__CHECK_ARG(!p, "p is NULL");
  MPROC__CHECK_ARG(!input && input_len, "input is NULL but input_len is %zu", input_len);
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  int rc = comm_start(p, input, input_len);
  if (rc) return rc;
  rc = comm_run(p, deadline, timeout_ms);
  if (rc) return rc;
  rc = take_output(&p->out, p->out_piped, out_data, out_len);
  if (rc == 0) rc = take_output(&p->err, p->err_piped, err_data, err_len);
  if (rc && out_data && *out_data) {
    mproc_free(*out_data);
    *out_data = NULL;
  }
  mproc__buf_free(&p->out); /* output nobody asked for is dropped */
  mproc__buf_free(&p->err);
  return rc;
}

/* ---- communicate, line by line ------------------------------------------------------------------- */

/* A callback form's receiver, and the value it stopped the exchange with (0 while it goes on). */
typedef struct line_sink {
  mproc_line_fn fn;
  void *ctx;
  int value;
} line_sink;

/* Hand what has arrived on stream `which` to the sink: its whole lines (pieces of max_line), or chunks;
 * at end of file (eof: the exchange has closed the stream) also the rest and then the end. Returns the
 * sink's value (0: go on). */
static int deliver(mproc_popen *p, int which, bool eof, line_sink *sink) {
  readahead *ra = &p->ra[which];
  mproc__buf *b = which == 1 ? &p->out : &p->err;
  ra->eof = eof;
  mproc_line line;
  line.stream = which;
  while (!sink->value && !ra->eof_told) {
    if (p->chunks && ra->head < b->len) {
      size_t n = b->len - ra->head;
      line.data = b->data + ra->head;
      line.len = n < p->max_line ? n : p->max_line;
      line.end = MPROC_LINE_CHUNK;
      ra->head += line.len;
    } else if (p->chunks && ra->eof) {
      line.data = "";
      line.len = 0;
      line.end = MPROC_LINE_EOF;
    } else if (p->chunks || !next_line(ra, b, p->max_line, false, &line)) {
      break;
    }
    if (line.end == MPROC_LINE_EOF && line.len == 0) ra->eof_told = true;
    /* NUL-terminated for the callback: the byte after the line (its end of line, the next line, or the
     * buffer's spare byte) is put back afterwards */
    char *tail = line.len ? (char *)line.data + line.len : NULL;
    char saved = tail ? *tail : '\0';
    if (tail) *tail = '\0';
    sink->value = sink->fn(sink->ctx, &line);
    if (tail) *tail = saved;
  }
  compact(ra, b);
  return sink->value;
}

/* The exchange of the callback forms: hand over what arrives until every stream has ended, then wait
 * for the child, all up to the deadline. 0, the sink's value, MPROC_ETIMEDOUT (the state kept for a
 * later call, as communicate keeps it), or an error. */
static int lines_run(mproc_popen *p, int64_t deadline, int64_t timeout_ms, line_sink *sink) {
  mproc__comm *c = &p->comm;
  int rc = 0;
  bool expired = false;
  c->return_on_output = true;
  while (rc == 0) {
    if (p->out_piped) (void)deliver(p, 1, c->out == MPROC_NO_HANDLE, sink);
    if (p->err_piped) (void)deliver(p, 2, c->err == MPROC_NO_HANDLE, sink);
    if (sink->value || comm_done(c)) break;
    if (expired) {
      rc = MPROC_ETIMEDOUT;
      break;
    }
    rc = mproc__pal_communicate(c, deadline);
    if (rc == MPROC_ETIMEDOUT) rc = 0; /* the next round hands over what arrived, then says so */
    expired = mproc__ms_until(deadline) == 0;
  }
  c->return_on_output = false;
  if (sink->value) return sink->value;
  if (rc == MPROC_ETIMEDOUT) return comm_timed_out(p, timeout_ms);
  if (rc) return rc;
  return wait_until(p, deadline, timeout_ms, NULL);
}

int mproc_popen_communicate_lines(mproc_popen *p, const void *input, size_t input_len, int64_t timeout_ms,
                                  mproc_line_fn on_line, void *ctx) {
  MPROC__CHECK_ARG(!p, "p is NULL");
  MPROC__CHECK_ARG(!on_line, "on_line is NULL");
  MPROC__CHECK_ARG(!input && input_len, "input is NULL but input_len is %zu", input_len);
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  int rc = comm_start(p, input, input_len);
  if (rc) return rc;
  line_sink sink = {on_line, ctx, 0};
  rc = lines_run(p, deadline, timeout_ms, &sink);
  if (rc == 0) { /* everything was handed over */
    mproc__buf_free(&p->out);
    mproc__buf_free(&p->err);
  }
  return rc;
}

/* ---- the exit handle ---------------------------------------------------------------------------- */

int mproc_popen_exit_handle(mproc_popen *p, mproc_os_handle *out) {
  if (out) *out = MPROC_NO_HANDLE;
  MPROC__CHECK_ARG(!p || !out, "p and out must be set");
  return mproc__pal_child_exit_handle(&p->child, out);
}

int mproc__popen_wait_prepare(void *obj, mproc__wait_item *item, bool *ready_now) {
  mproc_popen *p = (mproc_popen *)obj;
  *ready_now = p->child.reaped;
  item->kind = MPROC__WAIT_SENTINEL;
  return mproc__pal_child_exit_handle(&p->child, &item->h);
}

void mproc__popen_wait_ready(void *obj) {
  /* it has ended: reaping is at once (the exit handle's promise), so returncode is set when wait says so */
  mproc_popen *p = (mproc_popen *)obj;
  (void)mproc__pal_wait(&p->child, INT64_MAX);
}

/* ---- destroy -------------------------------------------------------------------------------- */

void mproc_popen_destroy(mproc_popen *p) {
  if (!p) return;
  for (int i = 0; i < 3; ++i) mproc__pal_close(p->pipes[i]);
  comm_close_all(&p->comm);
  if (!p->child.reaped && p->child.pid > 0) {
    kill_child(p);
    mproc__pal_wait(&p->child, INT64_MAX);
  }
  mproc__pal_pty_close(p->pty); /* after the child: Windows closes its console, POSIX its leftovers */
  mproc__pal_child_release(&p->child);
  mproc__buf_free(&p->out);
  mproc__buf_free(&p->err);
  free(p->input_copy);
  free(p->name);
  free(p);
}

/* ---- run and friends ------------------------------------------------------------------------ */

static int fill_result(mproc_popen *p, mproc_completed *r, bool delivered) {
  r->pid = p->child.pid;
  r->returncode = p->child.returncode;
  if (delivered) return 0; /* the output went to a callback: no data */
  int rc = take_output(&p->out, p->out_piped, &r->stdout_data, &r->stdout_len);
  if (rc == 0) rc = take_output(&p->err, p->err_piped, &r->stderr_data, &r->stderr_len);
  return rc;
}

/* End a run early (a timeout, or a callback that stopped it): kill (a process tree whole) and reap the
 * child, then, when drain, keep whatever it wrote before it died: a drain with a deadline that has passed
 * moves only what is ready, so a grandchild holding the pipes cannot make this hang. */
static void end_early(mproc_popen *p, bool drain) {
  kill_child(p);
  mproc__pal_wait(&p->child, INT64_MAX);
  if (drain && !comm_done(&p->comm)) (void)mproc__pal_communicate(&p->comm, 0);
  comm_close_all(&p->comm);
}

/* The one engine behind run, call, check_call, check_output and run_lines (sink: hand the output over
 * as it arrives instead of capturing it). */
static int run_engine(const mproc_popen_opts *opts, int64_t timeout_ms, mproc_completed *r, bool capture_stdout,
                      bool check, line_sink *sink) {
  MPROC__CHECK_ARG_AS("run", !r, "result is NULL");
  memset(r, 0, sizeof *r);
  MPROC__CHECK_ARG_AS("run", !opts, "opts is NULL");
  int64_t deadline = mproc__deadline_from_timeout(timeout_ms);
  mproc_popen_opts o = *opts;
  if (o.input || o.input_len) {
    MPROC__CHECK_ARG_AS("run", !o.input, "input is NULL but input_len is %zu", o.input_len);
    MPROC__CHECK_ARG_AS("run", o.stdin_mode != MPROC_INHERIT && o.stdin_mode != MPROC_PIPE,
                        "input and stdin_mode may not both be set");
    o.stdin_mode = MPROC_PIPE;
  }
  if (o.capture_output) {
    MPROC__CHECK_ARG_AS("run", o.stdout_mode != MPROC_INHERIT || o.stderr_mode != MPROC_INHERIT,
                        "stdout_mode and stderr_mode may not be used with capture_output");
    o.stdout_mode = o.stderr_mode = MPROC_PIPE;
  }
  if (capture_stdout) {
    MPROC__CHECK_ARG_AS("check_output", o.stdout_mode != MPROC_INHERIT && o.stdout_mode != MPROC_PIPE,
                        "stdout_mode may not be set (stdout is captured)");
    o.stdout_mode = MPROC_PIPE;
  }
  if (sink && o.stdout_mode == MPROC_INHERIT) o.stdout_mode = MPROC_PIPE; /* run_lines: stdout's lines */
  check = check || o.check;

  mproc_popen *p;
  int rc = mproc_popen_create(&p, &o);
  if (rc) return rc;
  rc = comm_start(p, o.input, o.input_len);
  if (rc == 0) rc = sink ? lines_run(p, deadline, timeout_ms, sink) : comm_run(p, deadline, timeout_ms);
  if (sink && sink->value) { /* the callback stopped it: as a timeout, with no more lines */
    end_early(p, false);
    (void)fill_result(p, r, true);
  } else if (rc == MPROC_ETIMEDOUT) {
    end_early(p, true);
    if (sink && p->out_piped) (void)deliver(p, 1, true, sink); /* what it wrote before it was killed */
    if (sink && p->err_piped) (void)deliver(p, 2, true, sink);
    r->timed_out = true;
    int frc = fill_result(p, r, sink != NULL);
    rc = frc ? frc
             : mproc__fail(MPROC_ETIMEDOUT, "'%s' timed out after %lld ms and was killed", p->name,
                           (long long)timeout_ms);
  } else if (rc == 0) {
    rc = fill_result(p, r, sink != NULL);
    if (rc == 0 && check && r->returncode != 0) {
      char why[160];
      rc = mproc__fail(MPROC_ECALLEDPROCESS, "'%s' %s", p->name, ending(r->returncode, why, sizeof why));
    }
  }
  mproc_popen_destroy(p);
  return rc;
}

int mproc_run(const mproc_popen_opts *opts, int64_t timeout_ms, mproc_completed *result) {
  return run_engine(opts, timeout_ms, result, false, false, NULL);
}

int mproc_run_lines(const mproc_popen_opts *opts, int64_t timeout_ms, mproc_line_fn on_line, void *ctx,
                    mproc_completed *result) {
  if (result) memset(result, 0, sizeof *result);
  MPROC__CHECK_ARG(!on_line, "on_line is NULL");
  line_sink sink = {on_line, ctx, 0};
  return run_engine(opts, timeout_ms, result, false, false, &sink);
}

static int call_engine(const mproc_popen_opts *opts, int64_t timeout_ms, int *returncode, bool check) {
  mproc_completed r;
  int rc = run_engine(opts, timeout_ms, &r, false, check, NULL);
  if (returncode) *returncode = r.returncode;
  mproc_completed_free(&r);
  return rc;
}

int mproc_call(const mproc_popen_opts *opts, int64_t timeout_ms, int *returncode) {
  return call_engine(opts, timeout_ms, returncode, false);
}

int mproc_check_call(const mproc_popen_opts *opts, int64_t timeout_ms, int *returncode) {
  return call_engine(opts, timeout_ms, returncode, true);
}

int mproc_check_output(const mproc_popen_opts *opts, int64_t timeout_ms, mproc_completed *result) {
  return run_engine(opts, timeout_ms, result, true, true, NULL);
}

int mproc_completed_check_returncode(const mproc_completed *r) {
  MPROC__CHECK_ARG(!r, "result is NULL");
  char why[160];
  if (r->returncode != 0)
    return mproc__fail(MPROC_ECALLEDPROCESS, "process %lld %s", (long long)r->pid,
                       ending(r->returncode, why, sizeof why));
  return 0;
}

void mproc_completed_free(mproc_completed *r) {
  if (!r) return;
  free(r->stdout_data);
  free(r->stderr_data);
  memset(r, 0, sizeof *r);
}
