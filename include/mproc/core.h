/*
 * mproc/core.h: version, error codes, per-thread error messages, timeouts, CPU counts, process ids,
 * and the main guard.
 *
 * Conventions used by every mproc header (see docs/guide.md):
 *   - Every call that can fail returns int: 0 on success or a negative MPROC_E* code. Results come
 *     back through out-parameters.
 *   - After a failure, mproc_last_error() gives a human-readable message for the calling thread
 *     (what failed, the program or path involved, the OS error by name and number).
 *   - Timeouts are milliseconds as int64_t: MPROC_INFINITE (-1) waits forever, 0 does not block.
 *     Deadlines use the monotonic clock, so changing the wall clock never shortens or extends a wait.
 *   - Strings are UTF-8, NUL-terminated. Binary payloads are (const void *, size_t).
 *   - Memory that mproc allocates for the caller is released with mproc_free().
 */
#ifndef MPROC_CORE_H
#define MPROC_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/mproc_export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version ------------------------------------------------------------------------------- */

#define MPROC_VERSION_MAJOR 0
#define MPROC_VERSION_MINOR 1
#define MPROC_VERSION_PATCH 0
#define MPROC_VERSION_STRING "0.1.0"
/* One comparable number: (major << 16) | (minor << 8) | patch. */
#define MPROC_VERSION_NUMBER ((MPROC_VERSION_MAJOR << 16) | (MPROC_VERSION_MINOR << 8) | MPROC_VERSION_PATCH)

/* The version of the library actually linked (compare with MPROC_VERSION_NUMBER to detect a
 * header/library mismatch). Thread-safe. */
MPROC_API unsigned mproc_version(void);
/* The same as a string, e.g. "0.1.0". Static storage. Thread-safe. */
MPROC_API const char *mproc_version_string(void);

/* ---- errors --------------------------------------------------------------------------------- */

/* Error codes. Every failing call returns one of these (always negative). The Python exception each
 * one mirrors is named beside it. */
typedef enum mproc_error {
  MPROC_OK = 0,
  MPROC_EINVAL = -1,         /* ValueError/TypeError: an argument is invalid (NULL, out of range) */
  MPROC_ENOMEM = -2,         /* MemoryError: an allocation failed */
  MPROC_ESYS = -3,           /* OSError: an OS call failed; the message names the OS error */
  MPROC_ENOENT = -4,         /* FileNotFoundError: a program, path or name does not exist */
  MPROC_EPERM = -5,          /* PermissionError: the OS refused access (not executable, ...) */
  MPROC_ETIMEDOUT = -6,      /* TimeoutExpired / TimeoutError: the timeout expired */
  MPROC_ECALLEDPROCESS = -7, /* CalledProcessError: a checked program exited non-zero */
  MPROC_EEOF = -8,           /* EOFError: the peer closed and all data has been read */
  MPROC_EFULL = -9,          /* queue.Full */
  MPROC_EEMPTY = -10,        /* queue.Empty */
  MPROC_ECLOSED = -11,       /* ValueError: the object was closed */
  MPROC_ESTATE = -12,        /* ValueError/AssertionError: the call does not fit the object's state */
  MPROC_EMSGSIZE = -13,      /* BadMessageLength / a buffer too small for a message */
  MPROC_EAUTH = -14,         /* AuthenticationError */
  MPROC_EBROKEN = -15,       /* BrokenBarrierError / BrokenProcessPool */
  MPROC_ENOTOWNER = -16,     /* RuntimeError: releasing a lock the caller does not own */
  MPROC_EOWNERDEAD = -17,    /* a lock was acquired, but its previous holder died holding it */
  MPROC_EWORKERDIED = -18,   /* a worker process died while running a task */
  MPROC_ETASK = -19,         /* the task itself reported failure */
  MPROC_ENOTSUP = -20,       /* NotImplementedError: not supported on this platform/build */
  MPROC_EINTR = -21,         /* InterruptedError: reserved; mproc retries EINTR itself */
  MPROC_EPIPE = -22,         /* BrokenPipeError: writing to a pipe whose reader has gone */
  MPROC_EEXIST = -23,        /* FileExistsError: a name to create exists already */
  MPROC_ECANCELED = -24,     /* concurrent.futures.CancelledError: the work was cancelled before it ran */
  MPROC_ERROR_MIN_ = -24     /* the lowest code; not an error itself */
} mproc_error;

/* The symbolic name of an error code ("MPROC_ETIMEDOUT") followed by a short description, e.g.
 * "MPROC_ETIMEDOUT: timed out". Unknown codes give "unknown mproc error". Static storage;
 * thread-safe. */
MPROC_API const char *mproc_strerror(int code);

/* The message describing the last failure of an mproc call on the calling thread: what failed and
 * why, with the OS error by name and number where one was involved, e.g.
 *   "spawn 'nosuchprog': program not found (ENOENT, errno 2: No such file or directory)".
 * Never NULL: "" when no call has failed on this thread. The pointer stays valid until the next
 * mproc call on the same thread. A successful call does not clear it. Thread-safe (per thread). */
MPROC_API const char *mproc_last_error(void);

/* The OS error number behind the last failure on this thread (errno on POSIX, GetLastError() on
 * Windows), or 0 if the last failure involved no OS call. Thread-safe (per thread). */
MPROC_API int mproc_last_os_error(void);

/* Forget the calling thread's last error message. Thread-safe (per thread). */
MPROC_API void mproc_clear_error(void);

/* ---- memory --------------------------------------------------------------------------------- */

/* Release a buffer that mproc allocated for the caller (captured output, messages, ...).
 * NULL is ignored. Thread-safe. */
MPROC_API void mproc_free(void *p);

/* ---- time ----------------------------------------------------------------------------------- */

/* Wait forever. Every timeout parameter in mproc is int64_t milliseconds: this value (or any
 * negative value) waits forever, 0 never blocks. */
#define MPROC_INFINITE ((int64_t)-1)

/* Monotonic clock in nanoseconds (arbitrary origin, never goes backwards, unaffected by wall-clock
 * changes). The clock every mproc deadline uses. Thread-safe. */
MPROC_API int64_t mproc_monotonic_ns(void);

/* ---- signals --------------------------------------------------------------------------------- */

/* Signal numbers with the same meaning on every platform (the POSIX values), for
 * mproc_popen_send_signal and for reading returncodes / exitcodes (-MPROC_SIGKILL after a kill). */
#define MPROC_SIGINT 2
#define MPROC_SIGKILL 9
#define MPROC_SIGTERM 15
/* Windows' CTRL_BREAK console event for mproc_popen_send_signal (Python: CTRL_BREAK_EVENT; see
 * mproc/subprocess.h). Not a POSIX signal number on any system (they end below 128; the C runtime's
 * SIGBREAK is 21, which is SIGTTIN on Linux), so it can never signal something else. */
#define MPROC_SIGBREAK (0x100 | 21)

/* ---- exit statuses --------------------------------------------------------------------------- */

/* How a child ended, read from a returncode (mproc_popen_returncode, mproc_completed.returncode) or
 * an exitcode (mproc_process_exitcode). The three kinds never overlap:
 *
 *   code >= 0                     it exited with this code: exit(code), return from main or from the
 *                                 target.
 *   -127 <= code <= -1            -N: signal N ended it (POSIX: -9 after SIGKILL, -11 after SIGSEGV).
 *                                 On Windows mproc_process_terminate / kill give -15 / -9 the same
 *                                 way; a Windows program that itself exits with a small negative code
 *                                 (exit(-1)) reads the same, as in Python.
 *   code <= MPROC_EXIT_CRASH_MAX  Windows: the process ended with an exception (NTSTATUS) code, as an
 *                                 unhandled crash does. The 32-bit code comes back as an int, so it
 *                                 is a large negative number: 0xC0000005 (access violation) is
 *                                 -1073741819, 0xC0000409 (a fast fail: abort() under the UCRT, or a
 *                                 detected buffer overrun) is -1073740791, 0xC00000FD (stack
 *                                 overflow) is -1073741571. Compare as (unsigned)code == 0xC0000005u.
 *                                 Never produced on POSIX, where a crash is a signal (-11, -6).
 *
 * Anything else (between MPROC_EXIT_CRASH_MAX and -128) is a negative exit code a Windows program
 * chose. Under msvcrt (MinGW's default C runtime) abort() exits with 3; under the UCRT with
 * 0xC0000409, unless the program cleared _CALL_REPORTFAULT with _set_abort_behavior. */

/* The highest code that mproc_exit_is_crash accepts: codes 0x80000000 through 0xEFFFFFFF as unsigned,
 * the NTSTATUS warning and error codes (0x8..., 0xC...) and the customer exception codes (0xE...,
 * such as 0xE06D7363, an uncaught MSVC C++ exception). */
#define MPROC_EXIT_CRASH_MAX (-0x10000000 - 1)

/* Whether the code is a Windows crash (exception) status, as described above. Thread-safe. */
MPROC_API bool mproc_exit_is_crash(int code);

/* The signal that ended the process, N for a code -N with 1 <= N <= 127; 0 for any other code (an
 * exit code or a crash status). Thread-safe. */
MPROC_API int mproc_exit_signal(int code);

/* A short description of a returncode / exitcode for messages and logs, in buf (always NUL-terminated
 * when size > 0, truncated to fit): "exit code 3", "signal 9 (SIGKILL)", "crash 0xC0000005
 * (STATUS_ACCESS_VIOLATION)", "exit code -300". Signal names are given only for the numbers that mean
 * the same on every POSIX system. Returns buf ("" if buf is NULL or size is 0). MPROC_EXIT_DESC_SIZE
 * bytes are always enough. Thread-safe. */
#define MPROC_EXIT_DESC_SIZE 96
MPROC_API const char *mproc_describe_exit(int code, char *buf, size_t size);

/* ---- system information --------------------------------------------------------------------- */

/* Number of logical CPUs in the machine (os.cpu_count / multiprocessing.cpu_count). Always >= 1.
 * Thread-safe. */
MPROC_API int mproc_cpu_count(void);

/* Number of logical CPUs this process may run on: its affinity mask (os.process_cpu_count in
 * Python 3.13). Always >= 1 and <= mproc_cpu_count(). Pool uses it as its default size.
 * Thread-safe. */
MPROC_API int mproc_process_cpu_count(void);

/* Process id of the calling process (os.getpid). Thread-safe. */
MPROC_API int64_t mproc_getpid(void);

/* Process id of the parent process (os.getppid). On Windows this is the id recorded when this process
 * was created; that id may since have been reused if the parent has exited. Returns 0 if it cannot
 * be determined. Thread-safe. */
MPROC_API int64_t mproc_getppid(void);

/* Absolute path of the running program's executable, UTF-8 (sys.executable for a C program).
 * *path_out is allocated; release it with mproc_free(). Errors: MPROC_EINVAL (path_out NULL),
 * MPROC_ENOMEM, MPROC_ESYS / MPROC_ENOTSUP (the OS cannot tell; the message says why).
 * Thread-safe. */
MPROC_API int mproc_self_exe(char **path_out);

/* ---- the main guard ------------------------------------------------------------------------- */

/* Exit statuses of a process that mproc ends itself. mproc never exits, aborts or prints on bad input
 * to a call: the main guard below is the one place where the library ends the process, because there
 * the process was started to be a child (or a fork server) and has nothing else to return to.
 *   MPROC_EXIT_BOOT_FAILED   a child started by spawn or forkserver could not take its bootstrap or
 *                            find its target (the parent's start() reports why);
 *   MPROC_EXIT_GUARD_REFUSED the guard refused a bootstrap flag that no mproc parent of this
 *                            process made (see mproc_main_guard): it printed one line on stderr and
 *                            ran nothing. */
#define MPROC_EXIT_BOOT_FAILED 70
#define MPROC_EXIT_GUARD_REFUSED 77

/* Call this as the first statement of main(), the C form of Python's
 * `if __name__ == "__main__":`.
 *
 *   int main(int argc, char **argv) {
 *     mproc_main_guard(argc, argv);   // never returns in an mproc child
 *     ...
 *   }
 *
 * In the program's ordinary run it returns 0 at once. In a child that mproc started by re-executing
 * the program (the spawn start method) it runs the child's target and exits, so it never returns
 * there. Thread-safe: but call it once, from main, before starting threads.
 *
 * Trust. The guard acts on its flags (--mproc-spawn=<handle>, --mproc-forkserver=<handle>) only when
 * they provably come from an mproc parent that started this very process for it: the handle must be
 * a boot link whose other end the operating system says belongs to this process's parent, running
 * as the same user and from the same executable file (POSIX: a Unix-domain socket, checked with the
 * kernel's peer credentials and /proc/<ppid>/exe; Windows: a named pipe whose other end is the
 * parent process, checked by user SID and image file). Anything else - a flag typed by a user, a
 * file, a pipe or a socket of another program, a handle number out of range - ends the process with
 * MPROC_EXIT_GUARD_REFUSED and one line on stderr, before anything is read, loaded or called, and
 * nothing is sent back. A program running set-user-ID, set-group-ID or with file capabilities
 * (secure-execution mode) never acts on the flags at all, and refuses the spawn and forkserver start
 * methods with MPROC_ENOTSUP (fork still works there). docs/guide.md, "Security", says what a spawned
 * child trusts and inherits. */
MPROC_API int mproc_main_guard(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_CORE_H */
