/*
 * mproc_helper: the child program the tests start. It runs a script given as arguments, word by word,
 * so the same test runs on Linux and under Wine:
 *
 *   out N          write N bytes of the pattern 'a'..'z' repeated to stdout
 *   err N          the same to stderr
 *   print TEXT     write TEXT to stdout (no newline added)
 *   eprint TEXT    write TEXT to stderr
 *   echo           copy stdin to stdout until end of file
 *   read K         read K bytes of stdin (or up to end of file) and discard them
 *   count          read stdin to end of file, then print how many bytes it had, in decimal
 *   exit C         exit with code C
 *   sleep MS       sleep MS milliseconds
 *   crash KIND     segv: write through a NULL pointer (an access violation on Windows); abort: abort();
 *                  segv-unhandled: as segv, but on Windows without the helper's own exception filter,
 *                  so the system's unhandled-exception path runs (the test runner's self-test). With
 *                  segv the filter ends the process with the exception code itself, which is what the
 *                  OS would report, minus wine's "Unhandled page fault" banner on the shared stderr.
 *   cwd            print the current directory
 *   env NAME       print the value of NAME (UTF-8, on Windows too), or <unset>
 *   pid | ppid     print the process id / the parent's process id
 *   exe            print the path of this program's own file (GetModuleFileName; /proc/self/exe)
 *   fds            print the open fds, space separated (POSIX), or the handle count (Windows)
 *   hasfd N        print "yes" if fd / handle value N is open in this process, else "no"
 *   argv ...       print every following argument as "<length>:<bytes>\n", then stop
 *   pgid | sid     print the process group id / session id (POSIX; 0 on Windows)
 *   sigdisp N      print the disposition of signal N: "dfl", "ign" or "handler" (POSIX), and
 *                  "+blocked" if it is blocked
 *   quiet          Windows: print "errmode=<hex> wer=<hex>|?", the error mode and Windows Error
 *                  Reporting flags the helper set for itself (quiet_crashes.h); POSIX: "posix"
 *   closeout       close stdout
 *   grandchild MS  start a copy of this program that sleeps MS ms holding our stdout and stderr,
 *                  print its pid, and do not wait for it
 *   pidln          print our pid and a newline, in one write (lines of several processes sharing a
 *                  pipe never mix)
 *   child WORDS... end
 *                  start a copy of this program running the script WORDS (up to the `end` that matches:
 *                  child/child-detached and end nest) with our stdio, and go on without waiting for it
 *   child-detached WORDS... end
 *                  the same, but the copy leaves our process group and session (POSIX: it calls setsid()
 *                  before exec; Windows: a new process group, no console, and out of our job if the job
 *                  allows it: CREATE_BREAKAWAY_FROM_JOB, and without it when that is refused)
 *   on-term CODE   end with exit code CODE when asked to end: POSIX SIGTERM; Windows CTRL_BREAK_EVENT
 *   breakaway      Windows: start a copy of this program that exits at once, asking to leave our job
 *                  (CREATE_BREAKAWAY_FROM_JOB), and print "allowed" or "refused"; POSIX: print "posix"
 *   ignore-term    POSIX: ignore SIGTERM (only SIGKILL ends us); Windows: nothing
 *   relay-boot FILE EXE ARGS...
 *                  play a forger of mproc bootstraps that is not the program itself: make a boot link
 *                  the way mproc does (Windows: a named pipe named like mproc's connection pipes,
 *                  \\.\pipe\mproc-conn-...; POSIX: a Unix socket pair), write FILE's bytes (a framed
 *                  bootstrap) into our end, run EXE --mproc-spawn=<its end> ARGS... with our stdio,
 *                  and exit with its exit status (ARGS: no spaces or quotes on Windows)
 *   shm NAME N     attach to the named shared memory block NAME with the OS's own calls (shm_open /
 *                  OpenFileMapping of Local\NAME), as a program that does not use mproc would, and
 *                  print its first N bytes
 *   relay-forkserver FILE EXE ARGS...
 *                  (POSIX) the same forger aimed at a fork server: make a control socket pair, run EXE
 *                  --mproc-forkserver=<its end> ARGS... with our stdio, and, once it says hello (as
 *                  mproc's client waits for it), send FILE's bytes (a fork server request: an 8-byte
 *                  little-endian length, then a bootstrap) with a boot link's far end attached
 *                  (SCM_RIGHTS); exit with its exit status
 *   run EXE ARGS...  run EXE ARGS... with our stdio, letting it inherit every inheritable handle / fd
 *                  of ours (a middleman between a boot link's maker and the program), and exit with
 *                  its exit status
 *   printx TEXT    write TEXT to stdout with the escapes \n \r \t \\ and \xHH made the bytes they name
 *   bprint TEXT    the same through stdio without flushing: a C runtime buffers it in blocks on a pipe
 *                  and sends it at the end of a line on a terminal
 *   lines N LEN    write N lines of LEN bytes each, "\n" included ("<i> " then 'x's), one write per line
 *   tty            print "in=T out=T err=T", T being "tty" for a stream that is a terminal (Windows: a
 *                  console), else "no"
 *   conout TEXT    write TEXT (escapes as printx) to the terminal itself: /dev/tty, CONOUT$ on Windows
 *   ctty           POSIX: print "yes" if this process leads its session and has a controlling
 *                  terminal (/dev/tty opens), else "no"; Windows: "no"
 *   winsize        print the terminal's size on stdout as "COLSxROWS" (POSIX TIOCGWINSZ; Windows the
 *                  console's window), or "none"
 *   ids            (POSIX) print "uid=U euid=E gid=G egid=F groups=A,B,..." (groups sorted; "groups="
 *                  when there are none); Windows: "windows"
 *   umask          (POSIX) print the umask in octal ("22"); Windows: "windows"
 *   rlimit NAME    (POSIX) print the soft and hard limit of RLIMIT_<NAME> (core, cpu, data, fsize,
 *                  nofile, stack, as, nproc, memlock) as "SOFT HARD", "inf" for no limit; Windows:
 *                  "windows"
 *   startupinfo    (Windows) print "flags=<hex> show=<n>", GetStartupInfoW's dwFlags and wShowWindow;
 *                  POSIX: "posix"
 *   console        (Windows) print "window=<none|visible|hidden> procs=<n>": GetConsoleWindow() (NULL,
 *                  or IsWindowVisible of it), and how many processes GetConsoleProcessList counts on
 *                  our console (0: we have none; 1: one of our own; more: shared); POSIX: "posix"
 *   stdtypes-to FILE  (Windows) write "in=T out=T err=T " and then the console line above to FILE
 *                  (not to stdout, which may be a console nobody reads), T the GetFileType of each
 *                  standard handle: none, char (a console), pipe, disk, other; POSIX: print "posix"
 *   breakwait MS   (Windows) handle console events: print "ready", then wait up to MS ms for a
 *                  CTRL_BREAK, print "break" and exit 42 when it comes, exit 1 when it does not; POSIX:
 *                  print "posix"
 *
 * On Windows a crash never opens a dialog or a Windows Error Reporting report (quiet_crashes.h), and
 * abort() exits with 3 under msvcrt and the UCRT alike.
 *
 * Output is unbuffered (each command's output is complete when the next command starts). Exit status
 * is 0 when the script ends, unless a command says otherwise.
 */
#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <direct.h>
#include <fcntl.h>
#include <io.h>

#include "quiet_crashes.h"
#else
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* getgroups, RLIMIT_NPROC, RLIMIT_MEMLOCK */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_all(FILE *f, const char *p, size_t n) {
  if (n && fwrite(p, 1, n, f) != n) exit(120);
  fflush(f);
}

static void print_str(const char *s) { write_all(stdout, s, strlen(s)); }

static void write_pattern(FILE *f, unsigned long long n) {
  static char chunk[65536];
  if (!chunk[0])
    for (size_t i = 0; i < sizeof chunk; ++i) chunk[i] = (char)('a' + i % 26);
  /* start each write at the right phase so the pattern runs on unbroken across writes */
  unsigned long long done = 0;
  while (done < n) {
    size_t off = (size_t)(done % 26);
    size_t len = sizeof chunk - 26;
    if (len > n - done) len = (size_t)(n - done);
    if (fwrite(chunk + off, 1, len, f) != len) exit(120);
    done += len;
  }
  fflush(f);
}

static void sleep_ms(long ms) {
#ifdef _WIN32
  Sleep((DWORD)ms);
#else
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
#endif
}

/* The escapes of printx (see the top of the file) made the bytes they name; returns the length. */
static size_t unescape(const char *s, char *out) {
  size_t n = 0;
  while (*s) {
    if (*s != '\\' || !s[1]) {
      out[n++] = *s++;
      continue;
    }
    char c = s[1];
    s += 2;
    if (c == 'n')
      out[n++] = '\n';
    else if (c == 'r')
      out[n++] = '\r';
    else if (c == 't')
      out[n++] = '\t';
    else if (c == 'x' && s[0] && s[1]) {
      char hex[3] = {s[0], s[1], 0};
      out[n++] = (char)strtol(hex, NULL, 16);
      s += 2;
    } else
      out[n++] = c;
  }
  return n;
}

static int is_tty(int fd) {
#ifdef _WIN32
  DWORD mode;
  return GetConsoleMode(GetStdHandle(fd == 0   ? STD_INPUT_HANDLE
                                     : fd == 1 ? STD_OUTPUT_HANDLE
                                               : STD_ERROR_HANDLE),
                        &mode) != 0;
#else
  return isatty(fd);
#endif
}

/* Write to the terminal itself, not to a standard stream (conout). */
static void write_console(const char *p, size_t n) {
#ifdef _WIN32
  HANDLE h = CreateFileW(L"CONOUT$", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                         OPEN_EXISTING, 0, NULL);
  DWORD w = 0;
  if (h == INVALID_HANDLE_VALUE || !WriteFile(h, p, (DWORD)n, &w, NULL) || w != n) exit(120);
  CloseHandle(h);
#else
  int fd = open("/dev/tty", O_WRONLY | O_NOCTTY);
  if (fd < 0 || write(fd, p, n) != (ssize_t)n) exit(120);
  close(fd);
#endif
}

static unsigned long long read_stdin(unsigned long long limit, int echo) {
  static char buf[65536];
  unsigned long long total = 0;
  while (total < limit) {
    size_t want = sizeof buf;
    if (want > limit - total) want = (size_t)(limit - total);
#ifdef _WIN32
    int r = _read(0, buf, (unsigned)want);
#else
    ssize_t r = read(0, buf, want);
#endif
    if (r <= 0) break; /* raw reads: return what has arrived, don't wait to fill the buffer */
    size_t n = (size_t)r;
    if (echo) write_all(stdout, buf, n);
    total += n;
  }
  return total;
}

static int has_fd(long long v) {
#ifdef _WIN32
  DWORD fl;
  return GetHandleInformation((HANDLE)(intptr_t)v, &fl) != 0;
#else
  return fcntl((int)v, F_GETFD) != -1;
#endif
}

static void list_fds(void) {
#ifdef _WIN32
  DWORD n = 0;
  GetProcessHandleCount(GetCurrentProcess(), &n);
  printf("%lu", (unsigned long)n);
  fflush(stdout);
#else
  DIR *d = opendir("/proc/self/fd");
  if (!d) d = opendir("/dev/fd");
  if (!d) {
    print_str("?");
    return;
  }
  int self = dirfd(d), first = 1;
  struct dirent *e;
  char line[32];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || atoi(e->d_name) == self) continue;
    snprintf(line, sizeof line, first ? "%s" : " %s", e->d_name);
    print_str(line);
    first = 0;
  }
  closedir(d);
#endif
}

/* Print the value of environment variable `name`, or <unset>. Windows reads the process environment
 * as UTF-16 and prints UTF-8 (the CRT's getenv gives the ANSI code page, and MSVC deprecates it). */
static void print_env(const char *name) {
#ifdef _WIN32
  static wchar_t wname[512], wval[32767];
  static char val[32767 * 3 + 1];
  if (!MultiByteToWideChar(CP_UTF8, 0, name, -1, wname, 512)) exit(126);
  SetLastError(ERROR_SUCCESS);
  DWORD n = GetEnvironmentVariableW(wname, wval, 32767);
  if (n == 0 && GetLastError() == ERROR_ENVVAR_NOT_FOUND) {
    print_str("<unset>");
    return;
  }
  if (n >= 32767) exit(126);
  int m = n ? WideCharToMultiByte(CP_UTF8, 0, wval, (int)n, val, (int)sizeof val - 1, NULL, NULL) : 0;
  if (n && m <= 0) exit(126);
  write_all(stdout, val, (size_t)m);
#else
  const char *v = getenv(name); /* POSIX only: not compiled by MSVC */
  print_str(v ? v : "<unset>");
#endif
}

#ifdef _WIN32
/* "quiet": what mproc_test_quiet_crashes set: "errmode=<hex> wer=<hex>" (wer=? where WerGetFlags is
 * missing or fails, as under wine). */
static void print_quiet_state(void) {
  UINT mode = SetErrorMode(0);
  SetErrorMode(mode);
  typedef HRESULT(WINAPI * wer_get_flags_fn)(HANDLE, PDWORD);
  wer_get_flags_fn wer_get_flags = NULL;
  HMODULE k32 = GetModuleHandleW(L"kernel32.dll");
  if (k32) {
    FARPROC f = GetProcAddress(k32, "WerGetFlags");
    memcpy(&wer_get_flags, &f, sizeof f);
  }
  DWORD wer = 0;
  char out[64];
  if (wer_get_flags && SUCCEEDED(wer_get_flags(GetCurrentProcess(), &wer)))
    snprintf(out, sizeof out, "errmode=%x wer=%lx", mode, (unsigned long)wer);
  else
    snprintf(out, sizeof out, "errmode=%x wer=?", mode);
  print_str(out);
}

static LONG WINAPI exit_with_exception_code(EXCEPTION_POINTERS *info) {
  TerminateProcess(GetCurrentProcess(), info->ExceptionRecord->ExceptionCode);
  return EXCEPTION_CONTINUE_SEARCH;
}

#include <tlhelp32.h>
static unsigned long parent_pid(unsigned long self) {
  unsigned long parent = 0;
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
  PROCESSENTRY32W pe;
  pe.dwSize = sizeof pe;
  for (BOOL ok = Process32FirstW(snap, &pe); ok; ok = Process32NextW(snap, &pe))
    if (pe.th32ProcessID == self) parent = pe.th32ParentProcessID;
  CloseHandle(snap);
  return parent;
}
#endif

/* ---- credentials and limits (POSIX), windows and consoles (Windows) ---- */

#ifndef _WIN32
static int cmp_gid(const void *a, const void *b) {
  gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
  return (x > y) - (x < y);
}

static void print_ids(void) {
  gid_t groups[256];
  int n = getgroups(256, groups);
  if (n < 0) exit(124);
  qsort(groups, (size_t)n, sizeof groups[0], cmp_gid);
  char line[4096];
  int k = snprintf(line, sizeof line, "uid=%lu euid=%lu gid=%lu egid=%lu groups=", (unsigned long)getuid(),
                   (unsigned long)geteuid(), (unsigned long)getgid(), (unsigned long)getegid());
  for (int i = 0; i < n && k > 0 && (size_t)k < sizeof line; ++i)
    k += snprintf(line + k, sizeof line - (size_t)k, i ? ",%lu" : "%lu", (unsigned long)groups[i]);
  print_str(line);
}

static void print_rlimit(const char *name) {
  static const struct {
    const char *name;
    int res;
  } k[] = {{"core", RLIMIT_CORE},   {"cpu", RLIMIT_CPU},       {"data", RLIMIT_DATA},
           {"fsize", RLIMIT_FSIZE}, {"nofile", RLIMIT_NOFILE}, {"stack", RLIMIT_STACK},
           {"as", RLIMIT_AS},       {"nproc", RLIMIT_NPROC},   {"memlock", RLIMIT_MEMLOCK}};
  for (size_t i = 0; i < sizeof k / sizeof k[0]; ++i) {
    if (strcmp(k[i].name, name) != 0) continue;
    struct rlimit rl;
    if (getrlimit(k[i].res, &rl) != 0) exit(124);
    char line[64], soft[24], hard[24];
    snprintf(soft, sizeof soft, "%llu", (unsigned long long)rl.rlim_cur);
    snprintf(hard, sizeof hard, "%llu", (unsigned long long)rl.rlim_max);
    snprintf(line, sizeof line, "%s %s", rl.rlim_cur == RLIM_INFINITY ? "inf" : soft,
             rl.rlim_max == RLIM_INFINITY ? "inf" : hard);
    print_str(line);
    return;
  }
  exit(122);
}
#else
static void print_startupinfo(void) {
  STARTUPINFOW si;
  GetStartupInfoW(&si);
  char line[64];
  snprintf(line, sizeof line, "flags=%lx show=%u", (unsigned long)si.dwFlags, (unsigned)si.wShowWindow);
  print_str(line);
}

/* IsWindowVisible, looked up at run time so that the helper keeps importing only KERNEL32 and the C
 * runtime (quiet_crashes.h). */
static int window_visible(HWND w) {
  typedef BOOL(WINAPI * is_visible_fn)(HWND);
  is_visible_fn is_visible = NULL;
  HMODULE user32 = LoadLibraryW(L"user32.dll");
  if (user32) {
    FARPROC f = GetProcAddress(user32, "IsWindowVisible");
    memcpy(&is_visible, &f, sizeof f);
  }
  return is_visible && is_visible(w);
}

static void console_line(char *line, size_t size) {
  DWORD list[16];
  DWORD n = GetConsoleProcessList(list, 16);
  HWND w = GetConsoleWindow();
  const char *window = !w ? "none" : window_visible(w) ? "visible" : "hidden";
  snprintf(line, size, "window=%s procs=%lu", window, (unsigned long)n);
}

static const char *std_type(DWORD which) {
  HANDLE h = GetStdHandle(which);
  if (h == NULL || h == INVALID_HANDLE_VALUE) return "none";
  switch (GetFileType(h)) {
    case FILE_TYPE_CHAR:
      return "char";
    case FILE_TYPE_PIPE:
      return "pipe";
    case FILE_TYPE_DISK:
      return "disk";
    default:
      return "other";
  }
}

static int stdtypes_to(const char *path) {
  char line[160], con[64];
  console_line(con, sizeof con);
  snprintf(line, sizeof line, "in=%s out=%s err=%s %s", std_type(STD_INPUT_HANDLE), std_type(STD_OUTPUT_HANDLE),
           std_type(STD_ERROR_HANDLE), con);
  FILE *f = NULL;
  if (fopen_s(&f, path, "wb") != 0 || !f) return 124;
  fputs(line, f);
  fclose(f);
  return 0;
}

static BOOL WINAPI on_console_event(DWORD ev) {
  if (ev != CTRL_BREAK_EVENT) return FALSE;
  print_str("break");
  ExitProcess(42);
}
#endif

static void start_grandchild(const char *self, const char *ms) {
#ifdef _WIN32
  wchar_t exe[MAX_PATH * 2], cmd[MAX_PATH * 2 + 64];
  GetModuleFileNameW(NULL, exe, MAX_PATH * 2);
  swprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" sleep %hs", exe, ms);
  STARTUPINFOW si;
  PROCESS_INFORMATION pi;
  ZeroMemory(&si, sizeof si);
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  si.hStdOutput = GetStdHandle(STD_OUTPUT_HANDLE);
  si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
  SetHandleInformation(si.hStdOutput, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
  SetHandleInformation(si.hStdError, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
  if (!CreateProcessW(exe, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi)) exit(121);
  printf("%lu\n", (unsigned long)pi.dwProcessId);
  fflush(stdout);
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  (void)self;
#else
  pid_t pid = fork();
  if (pid < 0) exit(121);
  if (pid == 0) {
    execl(self, self, "sleep", ms, (char *)NULL);
    _exit(127);
  }
  printf("%ld\n", (long)pid);
  fflush(stdout);
#endif
}

#ifdef _WIN32
static int g_term_code;
static BOOL WINAPI on_ctrl(DWORD type) {
  if (type != CTRL_BREAK_EVENT && type != CTRL_C_EVENT) return FALSE;
  fflush(NULL);
  ExitProcess((UINT)g_term_code);
}
#else
static volatile sig_atomic_t g_term_code;
static void on_term(int sig) {
  (void)sig;
  _exit(g_term_code);
}
#endif

/* Start exe with `flag` (if not NULL) and words[0..n) as its arguments, with our stdio, letting it inherit
 * every inheritable handle / fd of ours; detached: see child-detached. The child's process handle (the
 * caller closes it) / pid, or NULL / -1 if it could not be started. */
#ifdef _WIN32
static HANDLE start_program(const char *exe, const char *flag, char **words, int n, int detached) {
  static char cmd[8192];
  int k = snprintf(cmd, sizeof cmd, "\"%s\"%s%s", exe, flag ? " " : "", flag ? flag : "");
  for (int i = 0; i < n && k > 0 && (size_t)k < sizeof cmd; ++i)
    k += snprintf(cmd + k, sizeof cmd - (size_t)k, " %s", words[i]);
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  ZeroMemory(&si, sizeof si);
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  si.hStdOutput = GetStdHandle(STD_OUTPUT_HANDLE);
  si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
  DWORD flags = detached ? CREATE_NEW_PROCESS_GROUP | DETACHED_PROCESS : 0;
  BOOL ok =
      detached && CreateProcessA(exe, cmd, NULL, NULL, TRUE, flags | CREATE_BREAKAWAY_FROM_JOB, NULL, NULL, &si, &pi);
  if (!ok && !CreateProcessA(exe, cmd, NULL, NULL, TRUE, flags, NULL, NULL, &si, &pi)) return NULL;
  CloseHandle(pi.hThread);
  return pi.hProcess;
}
#else
static pid_t start_program(const char *exe, const char *flag, char **words, int n, int detached) {
  char **args = (char **)calloc((size_t)n + 3, sizeof *args);
  if (!args) return -1;
  int k = 0;
  args[k++] = (char *)exe;
  if (flag) args[k++] = (char *)flag;
  for (int i = 0; i < n; ++i) args[k++] = words[i];
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    if (detached && setsid() < 0) _exit(121);
    execv(exe, args);
    _exit(127);
  }
  free(args);
  return pid;
}
#endif

/* child / child-detached: start this program with the script words[0..n), not waiting for it. */
static void start_child(const char *self, char **words, int n, int detached) {
#ifdef _WIN32
  char exe[MAX_PATH * 2];
  GetModuleFileNameA(NULL, exe, (DWORD)sizeof exe);
  SetHandleInformation(GetStdHandle(STD_OUTPUT_HANDLE), HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
  SetHandleInformation(GetStdHandle(STD_ERROR_HANDLE), HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
  HANDLE h = start_program(exe, NULL, words, n, detached);
  if (!h) exit(121);
  CloseHandle(h);
  (void)self;
#else
  if (start_program(self, NULL, words, n, detached) < 0) exit(121);
#endif
}

/* Run argv[0] with argv[1..argc) after `flag` (if not NULL), inheriting our inheritable handles / fds
 * and our stdio; its exit status, or 126 if it could not be started. */
static int run_child(const char *flag, int argc, char **argv) {
#ifdef _WIN32
  HANDLE h = start_program(argv[0], flag, argv + 1, argc - 1, 0);
  if (!h) return 126;
  WaitForSingleObject(h, INFINITE);
  DWORD code = 126;
  GetExitCodeProcess(h, &code);
  CloseHandle(h);
  return (int)code;
#else
  pid_t pid = start_program(argv[0], flag, argv + 1, argc - 1, 0);
  if (pid < 0) return 126;
  int st = 0;
  while (waitpid(pid, &st, 0) < 0) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
#endif
}

#ifndef _WIN32
/* relay-forkserver (see the top of the file), played as mproc's client plays it: start the program on
 * our control socket pair, wait for its hello, send the request with the boot link's far end attached,
 * take the reply and wait until the boot link reaches end of file (the forked child has run and the
 * server has reported it), then close the control socket (the server ends) and reap. A program that
 * refuses says no hello: we just reap it. */
static int relay_forkserver(int sv[2], char *data, size_t len, int argc, char **argv) {
  int boot[2];
  if (len == 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, boot) != 0) return 126;
  (void)fcntl(sv[0], F_SETFD, FD_CLOEXEC);
  (void)fcntl(boot[0], F_SETFD, FD_CLOEXEC);
  (void)fcntl(boot[1], F_SETFD, FD_CLOEXEC);
  char flag[64];
  snprintf(flag, sizeof flag, "--mproc-forkserver=%d", sv[1]);
  char **args = (char **)calloc((size_t)argc + 2, sizeof *args);
  if (!args) return 126;
  int n = 0;
  args[n++] = argv[0];
  args[n++] = flag;
  for (int i = 1; i < argc; ++i) args[n++] = argv[i];
  pid_t pid = fork();
  if (pid < 0) return 126;
  if (pid == 0) {
    execv(argv[0], args);
    _exit(127);
  }
  free(args);
  close(sv[1]);
  sv[1] = -1;
  char hello[8];
  size_t got = 0;
  ssize_t k;
  while (got < sizeof hello && (k = read(sv[0], hello + got, sizeof hello - got)) > 0) got += (size_t)k;
  if (got == sizeof hello) {
    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {data, len};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &boot[1], sizeof(int));
    if (sendmsg(sv[0], &m, 0) == (ssize_t)len) {
      close(boot[1]);
      boot[1] = -1;
      char buf[256];
      while (read(boot[0], buf, sizeof buf) > 0) { /* the child's "ok", then the server's report */
      }
    }
  }
  if (boot[1] >= 0) close(boot[1]);
  close(boot[0]);
  close(sv[0]);
  sv[0] = -1;
  int st = 0;
  while (waitpid(pid, &st, 0) < 0) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
#endif

/* relay-boot: see the top of the file. Exit status: the child's, or 126 if the relay itself failed. */
static int relay_boot(const char *file, int forkserver, int argc, char **argv) {
  static char data[1 << 20];
  FILE *f = NULL;
#ifdef _WIN32
  if (fopen_s(&f, file, "rb") != 0) f = NULL;
#else
  f = fopen(file, "rb");
#endif
  if (!f) return 126;
  size_t len = fread(data, 1, sizeof data, f);
  fclose(f);
  char flag[64];
#ifdef _WIN32
  (void)forkserver;
  wchar_t name[96];
  swprintf(name, sizeof name / sizeof name[0], L"\\\\.\\pipe\\mproc-conn-%lu-1-relay",
           (unsigned long)GetCurrentProcessId());
  HANDLE server = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX, PIPE_TYPE_BYTE | PIPE_WAIT, 1, 1 << 20, 1 << 20, 0, NULL);
  if (server == INVALID_HANDLE_VALUE) return 126;
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  HANDLE client = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, &sa, OPEN_EXISTING, 0, NULL);
  if (client == INVALID_HANDLE_VALUE) return 126;
  if (!ConnectNamedPipe(server, NULL) && GetLastError() != ERROR_PIPE_CONNECTED) return 126;
  DWORD n = 0;
  if (len && (!WriteFile(server, data, (DWORD)len, &n, NULL) || n != len)) return 126;
  snprintf(flag, sizeof flag, "--mproc-spawn=%llu", (unsigned long long)(uintptr_t)client);
  int code = run_child(flag, argc, argv);
  CloseHandle(client);
  CloseHandle(server);
#else
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 126;
  int code;
  if (!forkserver) {
    if (len && write(sv[0], data, len) != (ssize_t)len) return 126;
    snprintf(flag, sizeof flag, "--mproc-spawn=%d", sv[1]);
    code = run_child(flag, argc, argv);
  } else {
    code = relay_forkserver(sv, data, len, argc, argv);
  }
  if (sv[0] >= 0) close(sv[0]);
  if (sv[1] >= 0) close(sv[1]);
#endif
  return code;
}

/* shm NAME N: print the first n bytes of the named block; 0, or 1 if it cannot be had. */
static int print_shm(const char *name, size_t n) {
#ifdef _WIN32
  char full[128];
  snprintf(full, sizeof full, "Local\\%s", name);
  HANDLE m = OpenFileMappingA(FILE_MAP_READ, FALSE, full);
  if (!m) return 1;
  const char *p = (const char *)MapViewOfFile(m, FILE_MAP_READ, 0, 0, n);
  if (!p) return 1;
#else
  char full[128];
  snprintf(full, sizeof full, "/%s", name);
  int fd = shm_open(full, O_RDONLY, 0);
  if (fd < 0) return 1;
  const char *p = (const char *)mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 1;
#endif
  fwrite(p, 1, n, stdout);
  return 0;
}

int main(int argc, char **argv) {
#ifdef _WIN32
  _setmode(_fileno(stdin), _O_BINARY);
  _setmode(_fileno(stdout), _O_BINARY);
  _setmode(_fileno(stderr), _O_BINARY);
  mproc_test_quiet_crashes();
#endif
  char line[4096];
  for (int i = 1; i < argc; ++i) {
    const char *c = argv[i];
    const char *a = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_ARG        \
  do {                  \
    if (!a) return 122; \
    ++i;                \
  } while (0)
    if (!strcmp(c, "out")) {
      NEED_ARG;
      write_pattern(stdout, strtoull(a, NULL, 10));
    } else if (!strcmp(c, "err")) {
      NEED_ARG;
      write_pattern(stderr, strtoull(a, NULL, 10));
    } else if (!strcmp(c, "print")) {
      NEED_ARG;
      print_str(a);
    } else if (!strcmp(c, "eprint")) {
      NEED_ARG;
      write_all(stderr, a, strlen(a));
    } else if (!strcmp(c, "echo")) {
      read_stdin(~0ULL, 1);
    } else if (!strcmp(c, "read")) {
      NEED_ARG;
      read_stdin(strtoull(a, NULL, 10), 0);
    } else if (!strcmp(c, "count")) {
      snprintf(line, sizeof line, "%llu", read_stdin(~0ULL, 0));
      print_str(line);
    } else if (!strcmp(c, "exit")) {
      NEED_ARG;
      fflush(NULL);
      exit(atoi(a));
    } else if (!strcmp(c, "sleep")) {
      NEED_ARG;
      sleep_ms(atol(a));
    } else if (!strcmp(c, "crash")) {
      NEED_ARG;
      fflush(NULL);
      if (!strcmp(a, "abort")) abort();
#ifdef _WIN32
      if (strcmp(a, "segv-unhandled") != 0) SetUnhandledExceptionFilter(exit_with_exception_code);
#endif
      volatile int *volatile p = NULL;
      *p = 42;
      return 123;
    } else if (!strcmp(c, "cwd")) {
#ifdef _WIN32
      if (!_getcwd(line, sizeof line)) return 124;
#else
      if (!getcwd(line, sizeof line)) return 124;
#endif
      print_str(line);
    } else if (!strcmp(c, "env")) {
      NEED_ARG;
      print_env(a);
    } else if (!strcmp(c, "pid") || !strcmp(c, "ppid")) {
#ifdef _WIN32
      unsigned long v = GetCurrentProcessId();
      if (c[1] == 'p') v = parent_pid(v);
#else
      unsigned long v = (unsigned long)(c[1] == 'p' ? getppid() : getpid());
#endif
      snprintf(line, sizeof line, "%lu", v);
      print_str(line);
    } else if (!strcmp(c, "exe")) {
#ifdef _WIN32
      DWORD n = GetModuleFileNameA(NULL, line, (DWORD)sizeof line);
      if (n == 0 || n >= sizeof line) return 124;
#else
      ssize_t n = readlink("/proc/self/exe", line, sizeof line - 1);
      if (n < 0) return 124;
      line[n] = '\0';
#endif
      print_str(line);
    } else if (!strcmp(c, "fds")) {
      list_fds();
    } else if (!strcmp(c, "hasfd")) {
      NEED_ARG;
      print_str(has_fd(strtoll(a, NULL, 0)) ? "yes" : "no");
    } else if (!strcmp(c, "argv")) {
      for (int k = i + 1; k < argc; ++k) {
        snprintf(line, sizeof line, "%zu:", strlen(argv[k]));
        print_str(line);
        print_str(argv[k]);
        print_str("\n");
      }
      break;
    } else if (!strcmp(c, "pgid") || !strcmp(c, "sid")) {
#ifdef _WIN32
      print_str("0");
#else
      snprintf(line, sizeof line, "%ld", (long)(c[0] == 'p' ? getpgrp() : getsid(0)));
      print_str(line);
#endif
    } else if (!strcmp(c, "sigdisp")) {
      NEED_ARG;
#ifdef _WIN32
      print_str("dfl");
#else
      struct sigaction sa;
      sigset_t mask;
      sigaction(atoi(a), NULL, &sa);
      sigprocmask(SIG_BLOCK, NULL, &mask);
      print_str(sa.sa_handler == SIG_DFL ? "dfl" : sa.sa_handler == SIG_IGN ? "ign" : "handler");
      if (sigismember(&mask, atoi(a)) == 1) print_str("+blocked");
#endif
    } else if (!strcmp(c, "quiet")) {
#ifdef _WIN32
      print_quiet_state();
#else
      print_str("posix");
#endif
    } else if (!strcmp(c, "closeout")) {
      fflush(stdout);
#ifdef _WIN32
      CloseHandle(GetStdHandle(STD_OUTPUT_HANDLE));
      _close(1);
#else
      close(1);
#endif
    } else if (!strcmp(c, "shm")) {
      if (i + 2 >= argc) return 122;
      if (print_shm(argv[i + 1], (size_t)atoi(argv[i + 2])) != 0) return 1;
      i += 2;
    } else if (!strcmp(c, "grandchild")) {
      NEED_ARG;
      start_grandchild(argv[0], a);
    } else if (!strcmp(c, "pidln")) {
#ifdef _WIN32
      snprintf(line, sizeof line, "%lu\n", (unsigned long)GetCurrentProcessId());
#else
      snprintf(line, sizeof line, "%ld\n", (long)getpid());
#endif
      print_str(line);
    } else if (!strcmp(c, "child") || !strcmp(c, "child-detached")) {
      int depth = 1, k = i + 1;
      for (; k < argc; ++k) {
        if (!strcmp(argv[k], "child") || !strcmp(argv[k], "child-detached")) ++depth;
        if (!strcmp(argv[k], "end") && --depth == 0) break;
      }
      if (k == argc) return 122;
      start_child(argv[0], argv + i + 1, k - i - 1, c[5] == '-');
      i = k;
    } else if (!strcmp(c, "on-term")) {
      NEED_ARG;
      g_term_code = atoi(a);
#ifdef _WIN32
      SetConsoleCtrlHandler(on_ctrl, TRUE);
#else
      signal(SIGTERM, on_term);
#endif
    } else if (!strcmp(c, "breakaway")) {
#ifdef _WIN32
      char exe[MAX_PATH * 2], cmd[MAX_PATH * 2 + 16];
      GetModuleFileNameA(NULL, exe, (DWORD)sizeof exe);
      snprintf(cmd, sizeof cmd, "\"%s\" exit 0", exe);
      STARTUPINFOA si;
      PROCESS_INFORMATION pi;
      ZeroMemory(&si, sizeof si);
      si.cb = sizeof si;
      if (CreateProcessA(exe, cmd, NULL, NULL, FALSE, CREATE_BREAKAWAY_FROM_JOB, NULL, NULL, &si, &pi)) {
        WaitForSingleObject(pi.hProcess, INFINITE);
        CloseHandle(pi.hThread);
        CloseHandle(pi.hProcess);
        print_str("allowed");
      } else {
        print_str("refused");
      }
#else
      print_str("posix");
#endif
    } else if (!strcmp(c, "ignore-term")) {
#ifndef _WIN32
      signal(SIGTERM, SIG_IGN);
#endif
    } else if (!strcmp(c, "relay-boot") || !strcmp(c, "relay-forkserver")) {
      if (i + 2 >= argc) return 122;
      fflush(NULL);
#ifdef _WIN32
      if (!strcmp(c, "relay-forkserver")) return 125; /* no fork server on Windows */
#endif
      return relay_boot(argv[i + 1], !strcmp(c, "relay-forkserver"), argc - i - 2, argv + i + 2);
    } else if (!strcmp(c, "ids")) {
#ifdef _WIN32
      print_str("windows");
#else
      print_ids();
#endif
    } else if (!strcmp(c, "umask")) {
#ifdef _WIN32
      print_str("windows");
#else
      mode_t m = umask(0);
      umask(m);
      snprintf(line, sizeof line, "%o", (unsigned)m);
      print_str(line);
#endif
    } else if (!strcmp(c, "rlimit")) {
      NEED_ARG;
#ifdef _WIN32
      print_str("windows");
#else
      print_rlimit(a);
#endif
    } else if (!strcmp(c, "startupinfo")) {
#ifdef _WIN32
      print_startupinfo();
#else
      print_str("posix");
#endif
    } else if (!strcmp(c, "console")) {
#ifdef _WIN32
      console_line(line, sizeof line);
      print_str(line);
#else
      print_str("posix");
#endif
    } else if (!strcmp(c, "stdtypes-to")) {
      NEED_ARG;
#ifdef _WIN32
      if (stdtypes_to(a) != 0) return 124;
#else
      print_str("posix");
#endif
    } else if (!strcmp(c, "breakwait")) {
      NEED_ARG;
#ifdef _WIN32
      SetConsoleCtrlHandler(on_console_event, TRUE);
      print_str("ready");
      sleep_ms(atol(a));
      return 1;
#else
      print_str("posix");
#endif
    } else if (!strcmp(c, "run")) {
      NEED_ARG;
      fflush(NULL);
      return run_child(NULL, argc - i, argv + i);
    } else if (!strcmp(c, "printx") || !strcmp(c, "bprint") || !strcmp(c, "conout")) {
      NEED_ARG;
      size_t n = unescape(a, line);
      if (c[0] == 'p')
        write_all(stdout, line, n);
      else if (c[0] == 'b' && fwrite(line, 1, n, stdout) != n)
        return 120;
      else if (c[0] == 'c')
        write_console(line, n);
    } else if (!strcmp(c, "lines")) {
      if (i + 2 >= argc) return 122;
      unsigned long long count = strtoull(argv[i + 1], NULL, 10);
      size_t len = (size_t)strtoull(argv[i + 2], NULL, 10);
      i += 2;
      if (len < 1 || len > sizeof line) return 122;
      for (unsigned long long k = 0; k < count; ++k) {
        int head = snprintf(line, sizeof line, "%llu ", k);
        for (size_t j = (size_t)head; j + 1 < len; ++j) line[j] = 'x';
        line[len - 1] = '\n';
        write_all(stdout, line, len);
      }
    } else if (!strcmp(c, "tty")) {
      snprintf(line, sizeof line, "in=%s out=%s err=%s", is_tty(0) ? "tty" : "no", is_tty(1) ? "tty" : "no",
               is_tty(2) ? "tty" : "no");
      print_str(line);
    } else if (!strcmp(c, "winsize")) {
#ifdef _WIN32
      CONSOLE_SCREEN_BUFFER_INFO info;
      HANDLE h = CreateFileW(L"CONOUT$", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                             OPEN_EXISTING, 0, NULL);
      if (h != INVALID_HANDLE_VALUE && GetConsoleScreenBufferInfo(h, &info))
        snprintf(line, sizeof line, "%dx%d", info.srWindow.Right - info.srWindow.Left + 1,
                 info.srWindow.Bottom - info.srWindow.Top + 1);
      else
        snprintf(line, sizeof line, "none");
      if (h != INVALID_HANDLE_VALUE) CloseHandle(h);
#else
      struct winsize ws;
      if (ioctl(1, TIOCGWINSZ, &ws) == 0)
        snprintf(line, sizeof line, "%ux%u", (unsigned)ws.ws_col, (unsigned)ws.ws_row);
      else
        snprintf(line, sizeof line, "none");
#endif
      print_str(line);
    } else if (!strcmp(c, "ctty")) {
#ifdef _WIN32
      print_str("no");
#else
      int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
      print_str(fd >= 0 && getsid(0) == getpid() ? "yes" : "no");
      if (fd >= 0) close(fd);
#endif
    } else {
      fprintf(stderr, "mproc_helper: unknown command '%s'\n", c);
      return 125;
    }
#undef NEED_ARG
  }
  return 0;
}
