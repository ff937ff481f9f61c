/* Windows PAL: advapi32.dll's functions at run time, and system DLLs loaded so (see advapi.h). */
#include "advapi.h"

#include <string.h>
#include <wchar.h>

static INIT_ONCE g_once = INIT_ONCE_STATIC_INIT;
static mproc__advapi g_api;
static DWORD g_error; /* 0 once loaded, else why not */

#define LOAD(field, name) MPROC__WIN32_LOAD(m, ok, g_api.field, name)

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

/* ---- a security descriptor that admits only the current user --------------------------------------- *
 * A named pipe's default DACL lets Everyone (and the anonymous logon) open it for reading: another user
 * on the machine could try to connect to our pipe names; a named file mapping's default DACL is as wide.
 * Ours carry a DACL with one entry, full access for the user of this process's token, so nobody else
 * can open them (remote pipe clients are refused anyway, PIPE_REJECT_REMOTE_CLIENTS). Made once per
 * process.
 * A thread that impersonates another user while it creates a pipe is not provided for: the pipe admits
 * the process's user, and its own client end would be refused (the spawn then fails, ERROR_ACCESS_DENIED). */
static INIT_ONCE g_sd_once = INIT_ONCE_STATIC_INIT;
static SECURITY_DESCRIPTOR g_sd;
static DWORD g_sd_error; /* 0, or why g_sd could not be made */
static union {
  ACL acl;
  unsigned char bytes[sizeof(ACL) + sizeof(ACCESS_ALLOWED_ACE) + SECURITY_MAX_SID_SIZE + 16];
} g_dacl;

static BOOL CALLBACK make_user_only_sd(PINIT_ONCE once, PVOID param, PVOID *ctx) {
  (void)once;
  (void)param;
  (void)ctx;
  const mproc__advapi *a = mproc__win32_advapi();
  if (!a) {
    g_sd_error = GetLastError();
    return TRUE;
  }
  HANDLE token = NULL;
  union {
    TOKEN_USER user;
    unsigned char bytes[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  } tu;
  DWORD got = 0;
  if (!a->open_process_token(GetCurrentProcess(), TOKEN_QUERY, &token) ||
      !a->get_token_information(token, TokenUser, &tu, (DWORD)sizeof tu, &got) ||
      !a->initialize_acl(&g_dacl.acl,
                         (DWORD)(sizeof(ACL) + sizeof(ACCESS_ALLOWED_ACE) + a->get_length_sid(tu.user.User.Sid)),
                         ACL_REVISION) ||
      !a->add_access_allowed_ace(&g_dacl.acl, ACL_REVISION, GENERIC_ALL, tu.user.User.Sid) ||
      !a->initialize_security_descriptor(&g_sd, SECURITY_DESCRIPTOR_REVISION) ||
      !a->set_security_descriptor_dacl(&g_sd, TRUE, &g_dacl.acl, FALSE))
    g_sd_error = GetLastError() ? GetLastError() : ERROR_INVALID_SECURITY_DESCR;
  if (token) CloseHandle(token);
  return TRUE;
}

int mproc__win32_user_only_sa(SECURITY_ATTRIBUTES *sa, const char *what) {
  InitOnceExecuteOnce(&g_sd_once, make_user_only_sd, NULL, NULL);
  if (g_sd_error)
    return mproc__fail_os(0, (int)g_sd_error, "%s: making a security descriptor for the current user alone", what);
  sa->nLength = sizeof *sa;
  sa->lpSecurityDescriptor = &g_sd;
  sa->bInheritHandle = FALSE;
  return 0;
}
