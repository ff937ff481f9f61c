/*
 * The platform abstraction layer: the only internal interface that knows two operating systems exist.
 * Implemented by src/posix/ and src/win32/. Portable modules include this and never an OS header.
 *
 * Handles are mproc_os_handle values everywhere: a file descriptor on POSIX, a HANDLE on Windows.
 * Every handle the PAL creates is close-on-exec / non-inheritable; it is made inheritable only for the
 * one child that is meant to get it.
 *
 * Errors: PAL functions that can fail return 0 or a negative MPROC_E* code and set the thread's error
 * message (through mproc__fail / mproc__fail_os), exactly like public calls.
 */
#ifndef MPROC_PAL_H
#define MPROC_PAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "mproc/core.h"
#include "mproc/handle.h"

/* ---- OS errors ------------------------------------------------------------------------------ */

/* The calling thread's current OS error (errno / GetLastError()). Read it right after the failing call. */
int mproc__pal_os_error(void);
/* The mproc code that best describes an OS error (ENOENT -> MPROC_ENOENT, EACCES -> MPROC_EPERM,
 * ENOMEM -> MPROC_ENOMEM, EPIPE -> MPROC_EPIPE, anything else -> MPROC_ESYS). */
int mproc__pal_map_os_error(int oserr);
/* Describe an OS error as "<NAME>, <errno|error> <N>: <text>" into buf (always NUL-terminated). */
void mproc__pal_describe_os_error(int oserr, char *buf, size_t size);

/* ---- time, system, identity ------------------------------------------------------------------ */

int64_t mproc__pal_monotonic_ns(void);
int mproc__pal_cpu_count(void);
int mproc__pal_process_cpu_count(void);
int64_t mproc__pal_getpid(void);
int64_t mproc__pal_getppid(void);
/* Absolute UTF-8 path of the running executable, malloc'ed. 0 or an error. */
int mproc__pal_self_exe(char **out);

/* ---- handles -------------------------------------------------------------------------------- */

/* Close a handle; MPROC_NO_HANDLE is ignored. Never fails visibly (errors are not actionable). */
void mproc__pal_close(mproc_os_handle h);
/* Whether `h` is an open handle of this process. */
bool mproc__pal_handle_valid(mproc_os_handle h);
/* Set or clear close-on-exec (POSIX FD_CLOEXEC) / inheritability (Windows HANDLE_FLAG_INHERIT:
 * inheritable = !cloexec). 0 or an error. */
int mproc__pal_set_cloexec(mproc_os_handle h, bool cloexec);
/* Whether close-on-exec is set (true) or the handle would be inherited (false). */
bool mproc__pal_get_cloexec(mproc_os_handle h);
/* Count of this process's open fds / handles (for leak tests); -1 if unknown. */
int mproc__pal_handle_count(void);

#endif /* MPROC_PAL_H */
