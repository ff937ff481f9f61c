/*
 * Windows PAL: process trees (pal.h, "process trees"), and the job objects that hold them.
 *
 * A tree is a job object: the program joins it while still suspended (mproc__pal_spawn), so it never runs
 * outside it, and every process it starts joins it too. The job allows no breakaway, so a descendant that
 * asks for CREATE_BREAKAWAY_FROM_JOB fails to start rather than escape. What is not in the job: processes
 * that others start on the tree's behalf (services, the Task Scheduler, WMI, COM servers, a running instance
 * of a program that takes the work over). The job handle is never inheritable, so no other process holds it:
 * with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE the system ends the tree when the Popen's handle closes, and with it
 * when this process ends however it ends (kill_on_parent_death).
 *
 * Ending: TerminateJobObject ends every process of the job at once. Asking first (a graded stop): Windows
 * programs have no SIGTERM; the requests they do understand are WM_CLOSE to their top-level windows (what
 * closing a window and taskkill without /F do) and, for console programs in a process group of their own,
 * CTRL_BREAK_EVENT (which reaches only those attached to this process's console). Under wine without a
 * display no window can be made, and without a console no control event is sent: both are written to the
 * documentation and untested here.
 *
 * Waiting: a job object is signalled only when an end-of-job time limit ends it, and its completion port
 * messages "are not guaranteed", so the wait lists the job's processes, waits on their handles (each checked
 * with IsProcessInJob, so a recycled pid is never waited on) until one ends, and looks again, until the job
 * has no process left. A process that joins meanwhile is seen at the next look, which comes before the
 * job can be empty.
 */
#include <stdlib.h>
#include <string.h>

#include "advapi.h"
#include "spawn.h"
#include "win32.h"

#include <stddef.h>

DWORD mproc__win32_job_new(HANDLE process, DWORD limits, HANDLE *out) {
  *out = NULL;
  HANDLE job = CreateJobObjectW(NULL, NULL); /* NULL attributes: the handle is not inheritable */
  if (!job) return GetLastError();
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;
  ZeroMemory(&li, sizeof li);
  li.BasicLimitInformation.LimitFlags = limits;
  if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, &li, sizeof li) ||
      !AssignProcessToJobObject(job, process)) {
    DWORD e = GetLastError();
    CloseHandle(job); /* holds no process: closing it kills nothing */
    return e ? e : ERROR_GEN_FAILURE;
  }
  *out = job;
  return 0;
}

/* A process of the job by pid, with `rights`, or NULL (it has ended, or may not be opened). Checked with
 * IsProcessInJob, so a pid that was reused by another process is never taken for ours. IsProcessInJob wants
 * PROCESS_QUERY_INFORMATION under wine (PROCESS_QUERY_LIMITED_INFORMATION gives ERROR_ACCESS_DENIED there),
 * which Windows accepts too, so that right is asked first and the limited one is the fallback. */
static HANDLE open_member(HANDLE job, DWORD pid, DWORD rights) {
  HANDLE h = OpenProcess(rights | PROCESS_QUERY_INFORMATION, FALSE, pid);
  if (!h) h = OpenProcess(rights | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
  BOOL in = FALSE;
  if (h && IsProcessInJob(h, job, &in) && in) return h;
  if (h) CloseHandle(h);
  return NULL;
}

static int tree_job(const mproc__child *c, HANDLE *job) {
  const mproc__win32_child *os = (const mproc__win32_child *)c->os;
  *job = os && os->job_tree ? (HANDLE)os->job : NULL;
  if (!*job) return mproc__fail(MPROC_ESTATE, "process %lld is not in a tree job", (long long)c->pid);
  return 0;
}

int mproc__pal_tree_signal(mproc__child *c, int sig) {
  HANDLE job;
  int rc = tree_job(c, &job);
  if (rc) return rc;
  if (sig != MPROC_SIGTERM && sig != MPROC_SIGKILL)
    return mproc__fail(MPROC_ENOTSUP,
                       "signal %d: Windows has no signals; only MPROC_SIGTERM and MPROC_SIGKILL (TerminateJobObject) "
                       "are supported",
                       sig);
  if (!TerminateJobObject(job, 1))
    return mproc__fail_os(0, (int)GetLastError(), "TerminateJobObject (the tree of process %lld)", (long long)c->pid);
  return 0;
}

/* ---- asking to end -------------------------------------------------------------------------------------- */

typedef BOOL(WINAPI *enum_windows_fn)(WNDENUMPROC, LPARAM);
typedef DWORD(WINAPI *window_pid_fn)(HWND, LPDWORD);
typedef BOOL(WINAPI *post_message_fn)(HWND, UINT, WPARAM, LPARAM);

typedef struct user32 {
  enum_windows_fn enum_windows;
  window_pid_fn window_pid;
  post_message_fn post_message;
} user32;

static INIT_ONCE g_user32_once = INIT_ONCE_STATIC_INIT;
static user32 g_user32;

/* user32.dll from the system directory, at run time: mproc imports KERNEL32 alone, and a program that never
 * asks a tree to end never loads it. */
static BOOL CALLBACK load_user32(PINIT_ONCE once, PVOID param, PVOID *ctx) {
  (void)once;
  (void)param;
  (void)ctx;
  HMODULE m = mproc__win32_system_dll(L"user32.dll"); /* kept loaded for the life of the process */
  if (!m) return TRUE;
  FARPROC e = GetProcAddress(m, "EnumWindows"), w = GetProcAddress(m, "GetWindowThreadProcessId"),
          p = GetProcAddress(m, "PostMessageW");
  if (e && w && p) { /* through void (*)(void): the cast between function types compilers accept */
    g_user32.enum_windows = (enum_windows_fn)(void (*)(void))e;
    g_user32.window_pid = (window_pid_fn)(void (*)(void))w;
    g_user32.post_message = (post_message_fn)(void (*)(void))p;
  }
  return TRUE;
}

typedef struct close_request {
  HANDLE job;
  const user32 *u;
} close_request;

static BOOL CALLBACK close_window(HWND w, LPARAM arg) {
  const close_request *r = (const close_request *)arg;
  DWORD pid = 0;
  r->u->window_pid(w, &pid);
  HANDLE h = pid ? open_member(r->job, pid, 0) : NULL;
  if (h) {
    r->u->post_message(w, WM_CLOSE, 0, 0);
    CloseHandle(h);
  }
  return TRUE;
}

int mproc__pal_tree_ask_to_end(mproc__child *c) {
  HANDLE job;
  int rc = tree_job(c, &job);
  if (rc) return rc;
  DWORD saved = GetLastError(); /* best effort: nobody to ask is no error */
  const mproc__win32_child *os = (const mproc__win32_child *)c->os;
  if (os->ctrl_group) (void)GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, (DWORD)c->pid);
  InitOnceExecuteOnce(&g_user32_once, load_user32, NULL, NULL);
  if (g_user32.enum_windows) {
    close_request r = {job, &g_user32};
    g_user32.enum_windows(close_window, (LPARAM)&r);
  }
  SetLastError(saved);
  return 0;
}

/* ---- waiting -------------------------------------------------------------------------------------------- */

enum { LIST_MAX = 256 };

int mproc__pal_tree_wait(mproc__child *c, int64_t deadline_ns) {
  HANDLE job;
  int rc = tree_job(c, &job);
  if (rc) return rc;
  DWORD nap = 1;
  for (;;) {
    struct {
      JOBOBJECT_BASIC_PROCESS_ID_LIST l;
      ULONG_PTR more[LIST_MAX];
    } list;
    ZeroMemory(&list, sizeof list);
    if (!QueryInformationJobObject(job, JobObjectBasicProcessIdList, &list, sizeof list, NULL) &&
        GetLastError() != ERROR_MORE_DATA)
      return mproc__fail_os(0, (int)GetLastError(), "the processes of the tree of process %lld", (long long)c->pid);
    if (list.l.NumberOfProcessIdsInList == 0) return 0;
    HANDLE hs[MAXIMUM_WAIT_OBJECTS];
    DWORD n = 0;
    /* the ids run on past the one-element ProcessIdList into `more`: index them through a pointer, not
     * the declared array (indexing it past [0] is undefined, and an optimizing build acts on that) */
    const ULONG_PTR *ids = (const ULONG_PTR *)(const void *)((const char *)&list.l +
                                                             offsetof(JOBOBJECT_BASIC_PROCESS_ID_LIST, ProcessIdList));
    DWORD count = list.l.NumberOfProcessIdsInList < LIST_MAX ? list.l.NumberOfProcessIdsInList : LIST_MAX;
    for (DWORD i = 0; i < count && n < MAXIMUM_WAIT_OBJECTS; ++i) {
      HANDLE h = open_member(job, (DWORD)ids[i], SYNCHRONIZE);
      if (h) hs[n++] = h;
    }
    if (n == 0) { /* they ended between the look and the opening, or may not be opened (another user's,
                     elevated): only then is the job polled, with a growing nap */
      int64_t left = mproc__ms_until(deadline_ns);
      if (left == 0) return MPROC_ETIMEDOUT;
      Sleep(left > 0 && left < (int64_t)nap ? (DWORD)left : nap);
      if (nap < 32) nap *= 2;
      continue;
    }
    nap = 1;
    DWORD w = WaitForMultipleObjects(n, hs, FALSE, (DWORD)mproc__win32_wait_ms(deadline_ns));
    DWORD e = GetLastError();
    for (DWORD i = 0; i < n; ++i) CloseHandle(hs[i]);
    if (w == WAIT_FAILED) return mproc__fail_os(0, (int)e, "waiting for the tree of process %lld", (long long)c->pid);
    if (w == WAIT_TIMEOUT && mproc__ms_until(deadline_ns) == 0) return MPROC_ETIMEDOUT;
  }
}
