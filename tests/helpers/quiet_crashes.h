/*
 * Windows only, C and C++: make a process that crashes or aborts on purpose (a test child) end at once
 * with its status, on every C runtime, and never stop a desktop test run with a dialog:
 *   - SetErrorMode: no "program has stopped working" box, no critical-error or open-file box;
 *   - WerSetFlags(WER_FAULT_REPORTING_NO_UI): no Windows Error Reporting UI. It is looked up at run
 *     time, so the program keeps importing only KERNEL32 and the C runtime and starts where it is
 *     missing;
 *   - under the UCRT (MSVC, MSYS2 UCRT64, llvm-mingw) _set_abort_behavior: no abort() message box
 *     (the debug CRT's) and no fast-fail report, which would end the process with 0xC0000409
 *     (STATUS_STACK_BUFFER_OVERRUN) instead of 3. msvcrt.dll (MinGW's default) has no such call: its
 *     abort() exits with 3 and shows nothing.
 * Include after <windows.h> and <stdlib.h>; call first thing in main (before mproc_main_guard).
 */
#ifndef MPROC_TEST_QUIET_CRASHES_H
#define MPROC_TEST_QUIET_CRASHES_H

#include <string.h>

static void mproc_test_quiet_crashes(void) {
  SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX | SEM_NOOPENFILEERRORBOX);
  typedef HRESULT(WINAPI * wer_set_flags_fn)(DWORD);
  wer_set_flags_fn wer_set_flags = NULL;
  HMODULE k32 = GetModuleHandleW(L"kernel32.dll");
  if (k32) {
    FARPROC f = GetProcAddress(k32, "WerSetFlags");
    memcpy(&wer_set_flags, &f, sizeof f); /* no cast between function pointer types */
  }
  /* WER_FAULT_REPORTING_NO_UI (0x20); where that flag is unknown (before Windows 8),
   * WER_FAULT_REPORTING_FLAG_QUEUE (0x2): queue the report, which shows no UI either */
  if (wer_set_flags && FAILED(wer_set_flags(0x20))) wer_set_flags(0x2);
#if defined(_MSC_VER) || defined(_UCRT)
  _set_abort_behavior(0, _WRITE_ABORT_MSG | _CALL_REPORTFAULT);
#endif
}

#endif
