/* Windows PAL: advapi32.dll's functions at run time, and system DLLs loaded so (see advapi.h). */
#include "advapi.h"

#include <string.h>
#include <wchar.h>

static INIT_ONCE g_once = INIT_ONCE_STATIC_INIT;
static mproc__advapi g_api;
static DWORD g_error; /* 0 once loaded, else why not */

/* Through void (*)(void): the cast between function pointer types that compilers accept silently. */
#define LOAD(field, name)                                        \
  do {                                                           \
    FARPROC f_ = GetProcAddress(m, name);                        \
    if (!f_) ok = false;                                         \
    *(void (**)(void))(void *)&g_api.field = (void (*)(void))f_; \
  } while (0)

HMODULE mproc__win32_system_dll(const wchar_t *name) {
  wchar_t path[MAX_PATH + 64];
  UINT n = GetSystemDirectoryW(path, MAX_PATH);
  size_t len = wcslen(name);
  if (n == 0 || n >= MAX_PATH || len > 60) {
    SetLastError(ERROR_MOD_NOT_FOUND);
    return NULL;
  }
  path[n] = L'\\';
  memcpy(path + n + 1, name, (len + 1) * sizeof(wchar_t));
  return LoadLibraryW(path);
}

static BOOL CALLBACK load(PINIT_ONCE once, PVOID param, PVOID *ctx) {
  (void)once;
  (void)param;
  (void)ctx;
  HMODULE m = mproc__win32_system_dll(L"advapi32.dll"); /* kept loaded for the life of the process */
  if (!m) {
    g_error = GetLastError() ? GetLastError() : ERROR_MOD_NOT_FOUND;
    return TRUE;
  }
  bool ok = true;
  LOAD(open_process_token, "OpenProcessToken");
  LOAD(get_token_information, "GetTokenInformation");
  LOAD(equal_sid, "EqualSid");
  LOAD(get_length_sid, "GetLengthSid");
  LOAD(initialize_security_descriptor, "InitializeSecurityDescriptor");
  LOAD(initialize_acl, "InitializeAcl");
  LOAD(add_access_allowed_ace, "AddAccessAllowedAce");
  LOAD(set_security_descriptor_dacl, "SetSecurityDescriptorDacl");
  g_error = ok ? 0 : ERROR_PROC_NOT_FOUND;
  return TRUE;
}

const mproc__advapi *mproc__win32_advapi(void) {
  InitOnceExecuteOnce(&g_once, load, NULL, NULL);
  if (g_error) {
    SetLastError(g_error);
    return NULL;
  }
  return &g_api;
}
