/* Internal to the Windows PAL: the pieces of src/win32/spawn.c and src/win32/pipe.c that the white-box
 * tests (tests/subprocess_win32.cc) check directly. No <windows.h> here, so C++ tests can include it. */
#ifndef MPROC_WIN32_SPAWN_H
#define MPROC_WIN32_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

#ifdef __cplusplus
extern "C" {
#endif

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

/* Milliseconds to wait for a deadline (mproc__deadline_from_timeout), as WaitFor*Object wants them:
 * INFINITE for no deadline, capped below INFINITE otherwise (callers re-check the deadline). */
unsigned long mproc__win32_wait_ms(int64_t deadline_ns);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_WIN32_SPAWN_H */
