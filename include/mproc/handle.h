/*
 * mproc/handle.h: the native handle type shared by all modules.
 */
#ifndef MPROC_HANDLE_H
#define MPROC_HANDLE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A native OS handle: a file descriptor (int) on POSIX, a HANDLE on Windows, stored in an intptr_t so
 * one type serves both. Convert with (mproc_os_handle)fd or (mproc_os_handle)(intptr_t)handle, and back
 * with (int)h or (HANDLE)(intptr_t)h. */
typedef intptr_t mproc_os_handle;

/* "No handle": -1, which is also INVALID_HANDLE_VALUE on Windows. */
#define MPROC_NO_HANDLE ((mproc_os_handle)-1)

#ifdef __cplusplus
}
#endif

#endif /* MPROC_HANDLE_H */
