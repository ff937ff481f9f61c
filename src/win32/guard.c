/*
 * Windows PAL: the main guard's trust in a bootstrap (pal.h, "the main guard's trust in a bootstrap").
 *
 * A spawned child is given its end of the boot link (the client end of a connection pipe that the parent
 * made: conn.c, pipe.c) as an inherited handle whose number is in "--mproc-spawn=<handle>". Before the
 * guard reads a byte from a handle named that way, mproc__pal_boot_link_check asks the system, never the
 * peer, whether it is such an end:
 *   1. it is a pipe (GetFileType) and a named pipe (GetNamedPipeInfo: which end we hold);
 *   2. its name is a connection pipe's (\mproc-conn-..., pipe.c): this refuses anonymous pipes
 *      (CreatePipe; they are named pipes too, \Win32.Pipes.<pid>.<n> or unnamed) and mproc's own stdio
 *      pipes (\mproc-io-...), which a parent of the same program may hand to a child it runs with
 *      mproc_popen: the same split as POSIX, where boot links are sockets and stdio pipes are not. The
 *      name alone proves nothing (anyone may create a pipe by that name): the checks below do;
 *   3. the process at its other end, as the pipe driver recorded it (GetNamedPipeServerProcessId when we
 *      hold the client end, GetNamedPipeClientProcessId when we hold the server end), is not this
 *      process and is our parent: the parent process id recorded when we were created
 *      (mproc__pal_getppid);
 *   4. that process can be opened (PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE), still runs, and was
 *      created no later than we were (GetProcessTimes): a process id is reused only after its process
 *      has gone, so a process that has the id now but was created after us is not our parent;
 *   5. it runs as our user: the user SID of its primary token equals ours (EqualSid);
 *   6. it runs our image file: QueryFullProcessImageNameW of it and GetModuleFileNameW(NULL) of ours,
 *      both opened and compared by file identity (volume serial number and file index,
 *      GetFileInformationByHandle), not by the spelling of the path (case, 8.3 names, links, drive
 *      letters of one volume).
 * What this does not defend against: a process of the same user can open our parent, duplicate its
 * handles and write into its memory (and start us with a spoofed parent, PROC_THREAD_ATTRIBUTE_PARENT_PROCESS),
 * so it is inside the trust boundary anyway; what is refused is a flag from someone who controls only our
 * command line and the handles we inherit. Every API used here exists and answers as on Windows under
 * wine 8 (docs/PLATFORMS.md).
 *
 * The messages say which check failed and never a path or a name: they are for this process's stderr.
 */
#include <stdlib.h>
#include <string.h>

#include "advapi.h"
#include "pipe.h" /* MPROC__WIN32_CONN_PIPE_PREFIX */
#include "win32.h"

bool mproc__pal_secure_exec(void) { return false; }

uint64_t mproc__pal_handle_max(void) { return 0xFFFFFFFFu; }

/* The name of a pipe, relative to the pipe file system ("\mproc-conn-..."), malloc'ed UTF-16; NULL if the
 * system cannot tell (an unnamed pipe). */
static wchar_t *pipe_name(HANDLE h) {
  DWORD cap = sizeof(FILE_NAME_INFO) + 512 * sizeof(wchar_t);
  FILE_NAME_INFO *fi = (FILE_NAME_INFO *)malloc(cap);
  if (!fi) return NULL;
  wchar_t *name = NULL;
  if (GetFileInformationByHandleEx(h, FileNameInfo, fi, cap)) {
    DWORD n = fi->FileNameLength / sizeof(wchar_t);
    name = (wchar_t *)malloc((n + 1) * sizeof(wchar_t));
    if (name) {
      memcpy(name, fi->FileName, n * sizeof(wchar_t));
      name[n] = L'\0';
    }
  }
  free(fi);
  return name;
}

/* The user SID of a process's primary token, malloc'ed (a TOKEN_USER); NULL with the OS error in *err. */
static TOKEN_USER *token_user(HANDLE process, DWORD *err) {
  const mproc__advapi *a = mproc__win32_advapi();
  if (!a) {
    *err = GetLastError();
    return NULL;
  }
  HANDLE tok = NULL;
  if (!a->open_process_token(process, TOKEN_QUERY, &tok)) {
    *err = GetLastError();
    return NULL;
  }
  DWORD need = 0;
  TOKEN_USER *tu = NULL;
  a->get_token_information(tok, TokenUser, NULL, 0, &need);
  if (need) tu = (TOKEN_USER *)malloc(need);
  if (!tu || !a->get_token_information(tok, TokenUser, tu, need, &need)) {
    *err = tu ? GetLastError() : ERROR_NOT_ENOUGH_MEMORY;
    free(tu);
    tu = NULL;
  }
  CloseHandle(tok);
  return tu;
}

/* The full path of a process's image (other == NULL: our own), malloc'ed UTF-16; NULL with *err. */
static wchar_t *image_path(HANDLE other, DWORD *err) {
  for (DWORD cap = MAX_PATH;; cap *= 2) {
    wchar_t *w = (wchar_t *)malloc(cap * sizeof(wchar_t));
    if (!w) {
      *err = ERROR_NOT_ENOUGH_MEMORY;
      return NULL;
    }
    DWORD n = cap;
    BOOL ok;
    if (other) {
      ok = QueryFullProcessImageNameW(other, 0, w, &n);
    } else {
      n = GetModuleFileNameW(NULL, w, cap);
      ok = n > 0 && n < cap;
      if (n == cap) SetLastError(ERROR_INSUFFICIENT_BUFFER);
    }
    if (ok) return w;
    *err = GetLastError();
    free(w);
    if (*err != ERROR_INSUFFICIENT_BUFFER || cap >= 32768) return NULL;
  }
}

/* Volume serial number and file index of the file at path: 0, or the OS error. */
static DWORD file_id(const wchar_t *path, uint64_t id[2]) {
  HANDLE f = CreateFileW(path, FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                         OPEN_EXISTING, 0, NULL);
  if (f == INVALID_HANDLE_VALUE) return GetLastError();
  BY_HANDLE_FILE_INFORMATION fi;
  DWORD err = GetFileInformationByHandle(f, &fi) ? 0 : GetLastError();
  CloseHandle(f);
  if (err) return err;
  id[0] = fi.dwVolumeSerialNumber;
  id[1] = ((uint64_t)fi.nFileIndexHigh << 32) | fi.nFileIndexLow;
  return 0;
}

#define REFUSE(...) mproc__fail(MPROC_EPERM, __VA_ARGS__)
#define REFUSE_OS(err, ...) mproc__fail_os(MPROC_EPERM, (int)(err), __VA_ARGS__)

/* Checks 4 to 6 on the process at the other end, pid `peer` (our parent's id). */
static int check_parent(DWORD peer) {
  HANDLE p = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, FALSE, peer);
  if (!p) return REFUSE_OS(GetLastError(), "the parent process (pid %lu) cannot be opened", (unsigned long)peer);
  int rc = 0;
  FILETIME pc, sc, e, k, u;
  DWORD err = 0;
  if (WaitForSingleObject(p, 0) != WAIT_TIMEOUT) {
    rc = REFUSE("the parent process (pid %lu) has exited", (unsigned long)peer);
  } else if (!GetProcessTimes(p, &pc, &e, &k, &u) || !GetProcessTimes(GetCurrentProcess(), &sc, &e, &k, &u)) {
    rc = REFUSE_OS(GetLastError(), "the creation time of the parent process cannot be read");
  } else if (CompareFileTime(&pc, &sc) > 0) {
    rc = REFUSE(
        "the process with our parent's id (%lu) was created after this one: our parent has gone and its "
        "id was reused",
        (unsigned long)peer);
  }
  if (rc == 0) {
    TOKEN_USER *theirs = token_user(p, &err), *ours = theirs ? token_user(GetCurrentProcess(), &err) : NULL;
    if (!theirs || !ours)
      rc = REFUSE_OS(err, "the user of the parent process cannot be read");
    else if (!mproc__win32_advapi()->equal_sid(theirs->User.Sid, ours->User.Sid))
      rc = REFUSE("the parent process runs as another user");
    free(theirs);
    free(ours);
  }
  if (rc == 0) {
    wchar_t *theirs = image_path(p, &err), *ours = theirs ? image_path(NULL, &err) : NULL;
    uint64_t tid[2] = {0, 0}, oid[2] = {0, 0};
    if (!theirs || !ours) {
      rc = REFUSE_OS(err, "the image file of the parent process cannot be read");
    } else {
      err = file_id(theirs, tid);
      if (err == 0) err = file_id(ours, oid);
      if (err != 0)
        rc = REFUSE_OS(err, "the image file of the parent process cannot be identified");
      else if (tid[0] != oid[0] || tid[1] != oid[1])
        rc = REFUSE("the parent runs another executable than this one");
    }
    free(theirs);
    free(ours);
  }
  CloseHandle(p);
  return rc;
}

int mproc__pal_boot_link_check(mproc_os_handle h) {
  HANDLE ph = MPROC__H(h);
  long long hv = (long long)h;
  /* 1. a named pipe; which end of it we hold */
  DWORD type = GetFileType(ph);
  if (type != FILE_TYPE_PIPE) {
    DWORD err = GetLastError();
    if (type == FILE_TYPE_UNKNOWN && err != NO_ERROR) return REFUSE_OS(err, "the boot handle %lld is not open", hv);
    return REFUSE("the boot handle %lld is not a pipe", hv);
  }
  DWORD flags = 0;
  if (!GetNamedPipeInfo(ph, &flags, NULL, NULL, NULL))
    return REFUSE_OS(GetLastError(), "the boot handle %lld is not a named pipe", hv);
  /* 2. a connection pipe's name */
  wchar_t *name = pipe_name(ph);
  size_t plen = wcslen(MPROC__WIN32_CONN_PIPE_PREFIX);
  bool named = name && wcsncmp(name, L"\\" MPROC__WIN32_CONN_PIPE_PREFIX, plen + 1) == 0;
  free(name);
  if (!named)
    return REFUSE("the boot handle %lld is not an mproc connection pipe (an anonymous pipe, or another program's)", hv);
  /* 3. the other end: our parent */
  ULONG peer = 0;
  bool server_end = (flags & PIPE_SERVER_END) != 0;
  BOOL ok = server_end ? GetNamedPipeClientProcessId(ph, &peer) : GetNamedPipeServerProcessId(ph, &peer);
  if (!ok) return REFUSE_OS(GetLastError(), "the boot link's peer process cannot be told");
  if (peer == GetCurrentProcessId()) return REFUSE("the boot link's peer is this process itself, not its parent");
  int64_t ppid = mproc__pal_getppid();
  if (ppid <= 0 || (uint64_t)peer != (uint64_t)ppid)
    return REFUSE("the boot link's peer (pid %lu) is not this process's parent (pid %lld)", (unsigned long)peer,
                  (long long)ppid);
  /* 4 - 6 */
  return check_parent(peer);
}
