/*
 * Windows PAL: pseudo consoles (ConPTY) for a child's standard streams (MPROC_PTY).
 *
 * CreatePseudoConsole (Windows 10 1809 and later) is looked up in kernel32.dll at run time, since older
 * Windows and older MinGW import libraries lack it; where it is missing, mproc__pal_pty_open says so with
 * MPROC_ENOTSUP. The console reads keys from one of our pipes and writes its rendering of the screen
 * (text with VT sequences, lines ended by "\r\n") to another; our ends are the overlapped ends of
 * mproc__pal_pipe, the console's ends synchronous, as for any child.
 *
 * The console outlives its client: it does not close its output when the program ends. So once the child
 * has ended, a thread-pool wait on its process handle (registered by mproc__pal_spawn through
 * mproc__win32_pty_started) closes the console, and the output pipe then reaches end of file after the
 * console's last output. ClosePseudoConsole may wait until the console has written that output: our pipe
 * has 1 MiB of room, and if the reader has gone the console's writes fail and it ends anyway.
 *
 * wine 8 (measured here): CreatePseudoConsole works and a program attached to the console can write to
 * it (CONOUT$, WriteConsole), but a NULL standard handle is not connected to the console as Windows
 * connects it, so a program's stdout on the terminal stays NULL there and printf output is lost.
 */
#include <stdlib.h>
#include <string.h>

#include "pty.h"
#include "win32.h"

typedef HRESULT(WINAPI *create_pc_fn)(COORD size, HANDLE in, HANDLE out, DWORD flags, void **pc);
typedef void(WINAPI *close_pc_fn)(void *pc);

static INIT_ONCE g_once = INIT_ONCE_STATIC_INIT;
static create_pc_fn g_create;
static close_pc_fn g_close;

static BOOL CALLBACK load(PINIT_ONCE once, PVOID param, PVOID *ctx) {
  (void)once;
  (void)param;
  (void)ctx;
  HMODULE k32 = GetModuleHandleW(L"kernel32.dll");
  FARPROC c = k32 ? GetProcAddress(k32, "CreatePseudoConsole") : NULL;
  FARPROC d = k32 ? GetProcAddress(k32, "ClosePseudoConsole") : NULL;
  if (c && d) { /* through void (*)(void): the cast between function pointer types compilers accept */
    g_create = (create_pc_fn)(void (*)(void))c;
    g_close = (close_pc_fn)(void (*)(void))d;
  }
  return TRUE;
}

struct mproc__pty {
  void *console;  /* the HPCON, or NULL once closed */
  SRWLOCK lock;   /* console is closed once: by the wait's callback or by mproc__pal_pty_close */
  HANDLE wait;    /* the thread-pool wait on the child's end, or NULL */
  HANDLE process; /* our copy of the child's process handle, for that wait */
  HANDLE keys;    /* our own copy of the input pipe's end: the console ends when its input breaks, so it
                     stays open until the console closes, whatever the caller does with *in */
};

static void close_console(mproc__pty *t) {
  AcquireSRWLockExclusive(&t->lock);
  void *pc = t->console;
  t->console = NULL;
  ReleaseSRWLockExclusive(&t->lock);
  if (pc) g_close(pc); /* outside the lock: it may wait for the console's last output */
}

int mproc__pal_pty_open(unsigned cols, unsigned rows, mproc__pty **out_pty, mproc_os_handle *out, mproc_os_handle *in) {
  *out_pty = NULL;
  *out = *in = MPROC_NO_HANDLE;
  InitOnceExecuteOnce(&g_once, load, NULL, NULL);
  if (!g_create)
    return mproc__fail(MPROC_ENOTSUP,
                       "pty: this Windows has no pseudo console (CreatePseudoConsole, Windows 10 "
                       "1809 and later)");
  mproc__pty *t = (mproc__pty *)calloc(1, sizeof *t);
  if (!t) return mproc__fail(MPROC_ENOMEM, "pty: out of memory");
  InitializeSRWLock(&t->lock);
  mproc_os_handle out_ours = MPROC_NO_HANDLE, out_theirs = MPROC_NO_HANDLE, in_ours = MPROC_NO_HANDLE,
                  in_theirs = MPROC_NO_HANDLE;
  int rc = mproc__pal_pipe(true, &out_ours, &out_theirs);
  if (rc == 0) {
    rc = mproc__pal_pipe(false, &in_ours, &in_theirs);
    if (rc) {
      mproc__pal_close(out_ours);
      mproc__pal_close(out_theirs);
    }
  }
  if (rc) {
    free(t);
    return rc;
  }
  COORD size;
  size.X = (SHORT)(cols > 0x7FFF ? 0x7FFF : cols);
  size.Y = (SHORT)(rows > 0x7FFF ? 0x7FFF : rows);
  HRESULT hr = g_create(size, MPROC__H(in_theirs), MPROC__H(out_theirs), 0, &t->console);
  /* the console has its own copies now */
  mproc__pal_close(in_theirs);
  mproc__pal_close(out_theirs);
  DWORD err = 0;
  if (hr == S_OK && !DuplicateHandle(GetCurrentProcess(), MPROC__H(in_ours), GetCurrentProcess(), &t->keys, 0, FALSE,
                                     DUPLICATE_SAME_ACCESS))
    err = GetLastError();
  if (hr != S_OK || err) {
    if (hr == S_OK) g_close(t->console);
    mproc__pal_close(in_ours);
    mproc__pal_close(out_ours);
    free(t);
    if (err) return mproc__fail_os(0, (int)err, "pty: DuplicateHandle of the console's input pipe");
    return mproc__fail_os(0, (int)hr, "pty: CreatePseudoConsole");
  }
  *out_pty = t;
  *out = out_ours;
  *in = in_ours;
  return 0;
}

void *mproc__win32_pty_console(const mproc__pty *pty) { return pty ? pty->console : NULL; }

static void CALLBACK on_child_end(PVOID ctx, BOOLEAN timed_out) {
  (void)timed_out;
  close_console((mproc__pty *)ctx);
}

int mproc__win32_pty_started(mproc__pty *t, void *process) {
  if (!DuplicateHandle(GetCurrentProcess(), (HANDLE)process, GetCurrentProcess(), &t->process, SYNCHRONIZE, FALSE, 0)) {
    t->process = NULL;
    return mproc__fail_os(0, (int)GetLastError(), "pty: DuplicateHandle of the child's process handle");
  }
  if (!RegisterWaitForSingleObject(&t->wait, t->process, on_child_end, t, INFINITE, WT_EXECUTEONLYONCE)) {
    t->wait = NULL;
    return mproc__fail_os(0, (int)GetLastError(), "pty: RegisterWaitForSingleObject on the child");
  }
  return 0;
}

size_t mproc__pal_pty_eof(const mproc__pty *pty, bool partial_line, char *buf) {
  (void)pty; /* Ctrl-Z ends input only at the start of a line: after a partial one, Enter first */
  if (partial_line) {
    memcpy(buf, "\r\x1a\r", 3);
    return 3;
  }
  memcpy(buf, "\x1a\r", 2);
  return 2;
}

void mproc__pal_pty_close(mproc__pty *t) {
  if (!t) return;
  if (t->wait) UnregisterWaitEx(t->wait, INVALID_HANDLE_VALUE); /* and wait for a callback in progress */
  close_console(t);
  if (t->process) CloseHandle(t->process);
  if (t->keys) CloseHandle(t->keys);
  free(t);
}
