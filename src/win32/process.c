/*
 * Windows PAL: processes running a function (pal.h, "processes running a function"): no fork (and no
 * fork sentinel), ending the process at once, kill on parent death, and finding a function again in a
 * re-executed (spawned) child.
 *
 * Finding a target again. The spawned child runs the same executable, so a target is named by its
 * module and its offset from the module's base: GetModuleHandleExW(FROM_ADDRESS) gives the module that
 * holds the address, which is the main executable (found again with GetModuleHandleW(NULL); ASLR may
 * load it elsewhere, the offset stays) or a DLL (found again with LoadLibraryExW of its full path).
 * The reference also carries the identity of the binary, checked in the child so that an executable or
 * DLL replaced on disk in between is refused ("different binary") rather than jumped into blindly:
 *   - the file: volume serial number, file index, size and last-write time (GetFileInformationByHandle
 *     of the module's path), which changes when the file is rewritten or replaced;
 *   - the image: a hash of the PE header fields that describe the mapped code (machine, link time
 *     stamp, entry point, image and code sizes, checksum, and every section's name, address, sizes and
 *     flags), read from the modules as mapped in each process. This catches what the file check cannot:
 *     a file replaced after the parent had mapped the old one (both processes would then stat the new
 *     file). Fields the loader may rewrite (ImageBase) are left out.
 *
 * Kill on parent death (kill_on_parent_death), two mechanisms:
 *   - the portable one, which works alone: the child's watchdog thread (src/process.c) waits on its end
 *     of the boot connection, and when the parent dies, however it dies, the system closes the
 *     parent's end and the child's pending read fails with ERROR_BROKEN_PIPE (end of file);
 *   - the system's own, added by mproc__pal_child_bind: a job object per child, with
 *     JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, whose only handle is the parent's (child->os; not
 *     inheritable, so no other child can hold it open, even one started with bInheritHandles and no
 *     handle list). When the parent ends, however it ends, the system closes that handle and kills the
 *     child, even one whose watchdog cannot run (stopped in a debugger, stuck before the guard, its
 *     boot link held open elsewhere). It is bound before the bootstrap message is sent, so the target
 *     never runs outside it. The job holds the child alone: JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK puts
 *     the child's own children outside it, as PR_SET_PDEATHSIG applies to the child alone on Linux
 *     (they may outlive it; a child of its own with the option gets a job of its own). The handle is
 *     closed by mproc__pal_child_release, which the process module calls only once the child has been
 *     reaped (or a failed start killed it): closing it earlier would kill the child. Best effort: if
 *     the child cannot be put in it (before Windows 8, a process already in a job, as the child of a
 *     parent in one is, cannot join another), the watchdog remains. Children started with the option
 *     off are in no job of ours, so they may outlive us.
 */
#include <stdlib.h>
#include <string.h>

#include "spawn.h"
#include "win32.h"

/* ---- fork and exit ------------------------------------------------------------------------------- */

bool mproc__pal_fork_supported(void) { return false; }

int mproc__pal_fork(int64_t *pid) {
  *pid = 0;
  return mproc__fail(MPROC_ENOTSUP, "fork does not exist on Windows: use the spawn start method");
}

void mproc__pal_exit_now(int code) {
  /* TerminateProcess of our own process does not return, runs no atexit handler and no DLL detach
   * (ExitProcess would run the atexit handlers of DLLs, mproc's own in a DLL build), and works from
   * any thread (the kill-on-parent-death watchdog) whatever the others hold. */
  TerminateProcess(GetCurrentProcess(), (UINT)code);
  ExitProcess((UINT)code); /* not reached */
}

bool mproc__pal_fork_sentinel_supported(void) { return false; }

int mproc__pal_fork_sentinel(mproc__child *child) {
  (void)child;
  return mproc__fail(MPROC_ENOTSUP, "fork does not exist on Windows");
}

/* ---- kill on parent death (the system's part; see pal.h) ------------------------------------------ */

void mproc__pal_child_bind(mproc__child *child) {
  mproc__win32_child *os = mproc__win32_child_os(child);
  if (!os || os->job || child->handle == MPROC_NO_HANDLE || child->handle == 0) return;
  DWORD saved = GetLastError(); /* best effort: a failure here is not the caller's error */
  HANDLE job = NULL;
  if (mproc__win32_job_new(MPROC__H(child->handle),
                           JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK, &job) == 0)
    os->job = job;
  SetLastError(saved);
}
void mproc__pal_die_with_parent(int64_t parent_pid, bool by_main_thread) {
  (void)parent_pid;
  (void)by_main_thread;
}
bool mproc__pal_is_main_thread(void) { return false; } /* not needed here: no thread-bound mechanism */

/* ---- finding a function again in a re-executed child --------------------------------------------- */

/* Reference layout: u64 is_main | u64 offset | u64 image hash | u64 file identity[4] | UTF-8 path of a
 * DLL (nothing for the main executable). */
enum { REF_IS_MAIN, REF_OFFSET, REF_IMAGE, REF_FILE, REF_WORDS = REF_FILE + 4 };

static void fnv(uint64_t *h, const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  for (size_t i = 0; i < n; ++i) {
    *h ^= b[i];
    *h *= 0x100000001b3ull;
  }
}

/* The hash of the mapped image's code-describing header fields; 0 if the headers are not a PE image. */
static uint64_t image_hash(HMODULE m) {
  const unsigned char *base = (const unsigned char *)m;
  const IMAGE_DOS_HEADER *dos = (const IMAGE_DOS_HEADER *)base;
  if (dos->e_magic != IMAGE_DOS_SIGNATURE) return 0;
  const IMAGE_NT_HEADERS *nt = (const IMAGE_NT_HEADERS *)(base + dos->e_lfanew);
  if (nt->Signature != IMAGE_NT_SIGNATURE) return 0;
  uint64_t h = 0xcbf29ce484222325ull;
  const IMAGE_FILE_HEADER *fh = &nt->FileHeader;
  fnv(&h, &fh->Machine, sizeof fh->Machine);
  fnv(&h, &fh->NumberOfSections, sizeof fh->NumberOfSections);
  fnv(&h, &fh->TimeDateStamp, sizeof fh->TimeDateStamp);
  fnv(&h, &fh->Characteristics, sizeof fh->Characteristics);
  const IMAGE_OPTIONAL_HEADER *oh = &nt->OptionalHeader;
  fnv(&h, &oh->Magic, sizeof oh->Magic);
  fnv(&h, &oh->SizeOfCode, sizeof oh->SizeOfCode);
  fnv(&h, &oh->SizeOfInitializedData, sizeof oh->SizeOfInitializedData);
  fnv(&h, &oh->AddressOfEntryPoint, sizeof oh->AddressOfEntryPoint);
  fnv(&h, &oh->SizeOfImage, sizeof oh->SizeOfImage);
  fnv(&h, &oh->CheckSum, sizeof oh->CheckSum);
  const IMAGE_SECTION_HEADER *sec = IMAGE_FIRST_SECTION(nt);
  for (WORD i = 0; i < fh->NumberOfSections; ++i) {
    fnv(&h, sec[i].Name, sizeof sec[i].Name);
    fnv(&h, &sec[i].Misc.VirtualSize, sizeof sec[i].Misc.VirtualSize);
    fnv(&h, &sec[i].VirtualAddress, sizeof sec[i].VirtualAddress);
    fnv(&h, &sec[i].SizeOfRawData, sizeof sec[i].SizeOfRawData);
    fnv(&h, &sec[i].Characteristics, sizeof sec[i].Characteristics);
  }
  return h;
}

static DWORD image_size(HMODULE m) {
  const unsigned char *base = (const unsigned char *)m;
  const IMAGE_DOS_HEADER *dos = (const IMAGE_DOS_HEADER *)base;
  const IMAGE_NT_HEADERS *nt = (const IMAGE_NT_HEADERS *)(base + dos->e_lfanew);
  return nt->OptionalHeader.SizeOfImage;
}

/* The full path of a module, malloc'ed UTF-16. NULL with an error. */
static wchar_t *module_path(HMODULE m) {
  for (DWORD cap = MAX_PATH;; cap *= 2) {
    wchar_t *w = (wchar_t *)malloc(cap * sizeof(wchar_t));
    if (!w) {
      mproc__fail(MPROC_ENOMEM, "out of memory reading a module path");
      return NULL;
    }
    DWORD n = GetModuleFileNameW(m, w, cap);
    if (n > 0 && n < cap) return w;
    DWORD e = GetLastError();
    free(w);
    if (n == 0 || cap >= 32768) {
      mproc__fail_os(MPROC_ENOENT, (int)(n ? ERROR_INSUFFICIENT_BUFFER : e), "GetModuleFileNameW");
      return NULL;
    }
  }
}

/* Identity of a module's file: volume serial, file index, size, last-write time. */
static int file_identity(const wchar_t *path, uint64_t id[4]) {
  HANDLE f = CreateFileW(path, FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                         OPEN_EXISTING, 0, NULL);
  BY_HANDLE_FILE_INFORMATION fi;
  DWORD e = 0;
  BOOL ok = f != INVALID_HANDLE_VALUE && GetFileInformationByHandle(f, &fi);
  if (!ok) e = GetLastError();
  if (f != INVALID_HANDLE_VALUE) CloseHandle(f);
  if (!ok) {
    char *p = mproc__wide_to_utf8(path, -1);
    int rc = mproc__fail_os(MPROC_ENOENT, (int)e, "identity of module '%s'", p ? p : "?");
    free(p);
    return rc;
  }
  id[0] = fi.dwVolumeSerialNumber;
  id[1] = ((uint64_t)fi.nFileIndexHigh << 32) | fi.nFileIndexLow;
  id[2] = ((uint64_t)fi.nFileSizeHigh << 32) | fi.nFileSizeLow;
  id[3] = ((uint64_t)fi.ftLastWriteTime.dwHighDateTime << 32) | fi.ftLastWriteTime.dwLowDateTime;
  return 0;
}

int mproc__pal_fn_locate(void *fn, mproc__buf *out) {
  HMODULE m = NULL;
  if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                          (LPCWSTR)fn, &m) ||
      !m)
    return mproc__fail_os(MPROC_ENOENT, (int)GetLastError(),
                          "target %p is not inside a module of this program: it cannot be found again in a spawned "
                          "child",
                          fn);
  bool is_main = m == GetModuleHandleW(NULL);
  wchar_t *path = module_path(m);
  if (!path) return MPROC_ENOENT;
  uint64_t ref[REF_WORDS] = {is_main, (uint64_t)((uintptr_t)fn - (uintptr_t)m), image_hash(m), 0, 0, 0, 0};
  int rc = file_identity(path, ref + REF_FILE);
  if (rc == 0) rc = mproc__buf_append(out, ref, sizeof ref);
  if (rc == 0 && !is_main) {
    char *u = mproc__wide_to_utf8(path, -1);
    rc = u ? mproc__buf_append(out, u, strlen(u)) : MPROC_ENOMEM;
    free(u);
  }
  free(path);
  return rc;
}

int mproc__pal_fn_resolve(const void *ref, size_t len, void **fn) {
  uint64_t hdr[REF_WORDS];
  if (len < sizeof hdr) return mproc__fail(MPROC_EINVAL, "target reference is truncated");
  memcpy(hdr, ref, sizeof hdr);
  size_t plen = len - sizeof hdr;
  char *u = (char *)malloc(plen + 1);
  if (!u) return mproc__fail(MPROC_ENOMEM, "target reference: out of memory");
  memcpy(u, (const char *)ref + sizeof hdr, plen);
  u[plen] = '\0';
  HMODULE m = NULL;
  wchar_t *path = NULL;
  int rc = 0;
  if (hdr[REF_IS_MAIN]) {
    m = GetModuleHandleW(NULL);
    path = module_path(m);
    if (!path) rc = MPROC_ENOENT;
  } else {
    path = mproc__utf8_to_wide(u, "module path");
    if (!path) {
      rc = MPROC_EINVAL;
    } else {
      /* An absolute path; ALTERED_SEARCH_PATH: its own dependencies are looked for beside it. The
       * reference count taken here is kept: the target must stay loaded while it runs. */
      m = LoadLibraryExW(path, NULL, LOAD_WITH_ALTERED_SEARCH_PATH);
      if (!m) rc = mproc__fail_os(MPROC_ENOENT, (int)GetLastError(), "cannot load module '%s' of the target", u);
    }
  }
  uint64_t id[4];
  if (rc == 0) rc = file_identity(path, id);
  if (rc == 0 && (memcmp(id, hdr + REF_FILE, sizeof id) != 0 || image_hash(m) != hdr[REF_IMAGE] ||
                  hdr[REF_OFFSET] >= image_size(m)))
    rc = mproc__fail(MPROC_ENOENT,
                     "the child runs a different binary than the parent ('%s' changed on disk?): the target cannot "
                     "be found again",
                     hdr[REF_IS_MAIN] ? "the executable" : u);
  if (rc == 0) *fn = (void *)((uintptr_t)m + (uintptr_t)hdr[REF_OFFSET]);
  free(path);
  free(u);
  return rc;
}
