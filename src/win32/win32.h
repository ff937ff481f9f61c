/* Internal to the Windows PAL: <windows.h> and the UTF-8 <-> UTF-16 edge (pal_core.c).
 *
 * Besides the files of the pal.h sections, the Windows PAL has one helper file of its own:
 *   advapi.c (advapi.h) - the advapi32.dll functions, loaded at run time (pipe.c's DACL, guard.c).
 * and two internal headers for helpers that live in section files:
 *   pipe.h  - named-pipe pairs (pipe.c), used by conn.c and guard.c;
 *   spawn.h - command lines and environment blocks (spawn.c) and wait_ms (pipe.c), used by conn.c and
 *             the white-box tests (no <windows.h> in it);
 *   pty.h   - the pseudo console (pty.c) as spawn.c gives it to a child. */
#ifndef MPROC_WIN32_H
#define MPROC_WIN32_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include "../pal.h"

#define MPROC__H(h) ((HANDLE)(intptr_t)(h))
#define MPROC__OSH(h) ((mproc_os_handle)(intptr_t)(h))

/* UTF-8 -> newly malloc'ed UTF-16 (NUL-terminated). NULL in gives NULL out without error. On invalid
 * UTF-8 returns NULL with MPROC_EINVAL set (naming `what`); on allocation failure MPROC_ENOMEM. */
wchar_t *mproc__utf8_to_wide(const char *s, const char *what);
/* UTF-16 (n units, or -1 for NUL-terminated) -> newly malloc'ed UTF-8. NULL + error on failure. */
char *mproc__wide_to_utf8(const wchar_t *w, int n);

#endif /* MPROC_WIN32_H */
