/* Internal to the Windows PAL: the few advapi32.dll functions mproc needs (tokens, SIDs, a DACL),
 * loaded from the system directory at run time, so that mproc's binaries - and a program linking the
 * static library - import KERNEL32.dll and the C runtime alone (tests/consumer checks every import). */
#ifndef MPROC_WIN32_ADVAPI_H
#define MPROC_WIN32_ADVAPI_H

#include "win32.h"

typedef struct mproc__advapi {
  BOOL(WINAPI *open_process_token)(HANDLE, DWORD, PHANDLE);
  BOOL(WINAPI *get_token_information)(HANDLE, TOKEN_INFORMATION_CLASS, LPVOID, DWORD, PDWORD);
  BOOL(WINAPI *equal_sid)(PSID, PSID);
  DWORD(WINAPI *get_length_sid)(PSID);
  BOOL(WINAPI *initialize_security_descriptor)(PSECURITY_DESCRIPTOR, DWORD);
  BOOL(WINAPI *initialize_acl)(PACL, DWORD, DWORD);
  BOOL(WINAPI *add_access_allowed_ace)(PACL, DWORD, DWORD, PSID);
  BOOL(WINAPI *set_security_descriptor_dacl)(PSECURITY_DESCRIPTOR, BOOL, PACL, BOOL);
} mproc__advapi;

/* Load a DLL of the system directory by its file name (never one found on the search path), for the
 * life of the process: the module, or NULL with GetLastError() set. */
HMODULE mproc__win32_system_dll(const wchar_t *name);

/* Load function `name` of module m into the function pointer dst (through void (*)(void): the cast
 * between function pointer types that compilers accept silently); ok becomes false if it is missing.
 * For the tables of functions taken at run time (here, and bcrypt.dll's and ws2_32.dll's). */
#define MPROC__WIN32_LOAD(m, ok, dst, name)                \
  do {                                                     \
    FARPROC f_ = GetProcAddress((m), (name));              \
    if (!f_) (ok) = false;                                 \
    *(void (**)(void))(void *)&(dst) = (void (*)(void))f_; \
  } while (0)

/* The functions, loaded once (thread-safe); NULL, with the reason as the thread's last OS error
 * (GetLastError), if advapi32.dll or one of them cannot be had. */
const mproc__advapi *mproc__win32_advapi(void);

/* Security attributes (non-inheritable) whose DACL admits the current user alone (the user of the
 * process token): for named pipes and named file mappings. 0, or an error naming `what`. */
int mproc__win32_user_only_sa(SECURITY_ATTRIBUTES *sa, const char *what);

#endif
