/* Internal to the Windows PAL: the pieces of src/win32/spawn.c and src/win32/pipe.c that the white-box
 * tests (tests/subprocess_win32.cc) check directly. No <windows.h> here, so C++ tests can include it. */
#ifndef MPROC_WIN32_SPAWN_H
#define MPROC_WIN32_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mproc__child; /* pal.h */

/* Buffer sizes (quotas) asked for when mproc__pal_pipe creates a pipe. Windows treats them as advisory,
 * so the writers read the real outbound size back with GetNamedPipeInfo. */
#define MPROC__WIN32_PIPE_OUT_BUFFER (64 * 1024)  /* parent -> child (stdin) */
#define MPROC__WIN32_PIPE_IN_BUFFER (1024 * 1024) /* child -> parent (stdout, stderr) */

/* The command line that gives argv back, unchanged, to a program that splits it with
 * CommandLineToArgvW or the Microsoft C runtime (NULL-terminated argv, argv[0] non-NULL).
 * argv[0] follows the rules for the program name (no backslash escapes: it is quoted when it holds
 * whitespace or is empty, and may not contain '"'); the other arguments are quoted when they are
 * empty or hold whitespace or '"', with backslashes doubled only where they precede a '"'.
 * *out is malloc'ed. 0, MPROC_EINVAL ('"' in argv[0]; the message says so) or MPROC_ENOMEM. */
int mproc__win32_quote_args(const wchar_t *const *argv, wchar_t **out);

/* The command line that runs the batch file `script` (an absolute path) through cmd_exe (the system's
 * cmd.exe) with the arguments args (NULL-terminated; argv[1..]), built for cmd.exe's rules:
 *   "CMD" /d /e:ON /v:OFF /c ""SCRIPT" ARG..."
 * each ARG quoted unless it is only letters, digits, non-ASCII and # $ * + - . / : ? @ \ _, with '"'
 * doubled and the backslashes before a '"' or the closing quote doubled. MPROC_EINVAL (message says
 * why) for an argument holding '%', CR or LF, a script path holding '"', '%' or a control character, or
 * a result over cmd.exe's 8191 characters; MPROC_ENOMEM. *out is malloc'ed. */
int mproc__win32_batch_cmdline(const wchar_t *cmd_exe, const wchar_t *script, const wchar_t *const *args,
                               wchar_t **out);

/* Whether CreateProcessW would run `path` as a batch file: its extension, after an alternate data stream
 * suffix and trailing dots and spaces are cut off, is .bat or .cmd (any case). */
bool mproc__win32_is_batch(const wchar_t *path);

/* The command line of a shell command: "SHELL" /d /c "COMMAND" when SHELL is cmd.exe (no AutoRun),
 * "SHELL" /c "COMMAND" for another shell (executable=). *out is malloc'ed. 0 or MPROC_ENOMEM. */
int mproc__win32_shell_cmdline(const wchar_t *shell, const wchar_t *command, wchar_t **out);

/* The environment block for CreateProcessW (CREATE_UNICODE_ENVIRONMENT): the base (env, or the
 * parent's environment when env is NULL) with env_extra applied ("N=V" sets, "N" removes), names
 * compared case-insensitively, later settings winning, sorted as Windows requires. When env replaces
 * the environment, the system variables Windows programs need (SYSTEMROOT, ...) are copied from the
 * parent unless env sets them (env_extra may still change or remove them). *out is malloc'ed, or NULL
 * when env and env_extra are both NULL (the child inherits the parent's environment as it is).
 * 0, MPROC_EINVAL (an entry without a name, invalid UTF-8) or MPROC_ENOMEM. */
int mproc__win32_env_block(const char *const *env, const char *const *env_extra, wchar_t **out);

/* The value of NAME in an environment block (case-insensitive), or NULL. Points into the block. */
const wchar_t *mproc__win32_env_find(const wchar_t *block, const wchar_t *name);

/* The Windows state of a child (mproc__child.os): its jobs and how signals end it. Made by
 * mproc__pal_spawn (or on first need), freed by mproc__pal_child_release. */
typedef struct mproc__win32_child {
  void *job;             /* a job object (HANDLE), or NULL: mproc__pal_child_bind's, the tree job of a
                            cmd.exe child or of process_tree, or kill_on_parent_death's (tree.c) */
  bool job_tree;         /* job holds the child's whole tree (a shell command, a batch file, process_tree) */
  bool signal_exitcodes; /* mproc__spawn_req.signal_exitcodes */
  /* ---- Windows: windows and consoles (MPROC_SIGBREAK) ---- */
  bool ctrl_group;    /* started in a new process group (its pid names the group): CTRL_BREAK reaches it
                         (MPROC_SIGBREAK, and a tree's polite stop) */
  bool console_apart; /* started with a console of its own or none: our console events never reach it */
  /* ---- process trees and parent death ---- */
  bool signal_job;        /* mproc__pal_signal ends the job, not only the child (a cmd.exe child) */
  bool let_go_on_release; /* released after its end, the job's kill-on-close is lifted first, so that what
                             the child left running outlives the Popen (a cmd.exe child, no
                             kill_on_parent_death) */
} mproc__win32_child;
/* c's state, made if it has none yet; NULL only if memory ran out. */
mproc__win32_child *mproc__win32_child_os(struct mproc__child *c);
/* The exit code a signal gives such a child: 0x10000 | sig, reported as -sig (mproc__pal_wait). */
#define MPROC__WIN32_SIGNAL_EXIT_BASE 0x10000

/* Milliseconds to wait for a deadline (mproc__deadline_from_timeout), as WaitFor*Object wants them:
 * INFINITE for no deadline, capped below INFINITE otherwise (callers re-check the deadline). */
unsigned long mproc__win32_wait_ms(int64_t deadline_ns);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_WIN32_SPAWN_H */
