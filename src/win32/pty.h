/* Internal to the Windows PAL: the pseudo console of src/win32/pty.c, for spawn.c. */
#ifndef MPROC_WIN32_PTY_H
#define MPROC_WIN32_PTY_H

#include "../pal.h"

/* The HPCON to give CreateProcessW (PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE), or NULL once closed. */
void *mproc__win32_pty_console(const mproc__pty *pty);
/* The child attached to the console runs (process: its HANDLE): close the console when it ends (a
 * thread-pool wait), so the output reaches end of file. 0 or an error. */
int mproc__win32_pty_started(mproc__pty *pty, void *process);

#endif /* MPROC_WIN32_PTY_H */
