/* A job runner, as a desktop application has one: start a program on a terminal (MPROC_PTY) as a process
 * tree, show its output line by line as it comes with a progress count, and stop it with everything it
 * started (mproc_popen_stop_tree). The job is this program again in a "--job" role that prints with
 * plain printf: on a pipe the C runtime would keep its lines in a buffer until it ends; on a terminal
 * each line comes as it is printed. Its progress bar redraws one line with "\r", which
 * mproc_popen_readline reports as MPROC_LINE_CR.
 *
 * The runner waits the way an application's event loop does: on POSIX poll() on two native handles, the
 * terminal and the exit handle (mproc_popen_exit_handle: for a process tree the tree helper's socket,
 * readable once the job has ended; a pidfd on Linux otherwise), which an application would give to its
 * own loop (libuv's uv_poll, Qt's QSocketNotifier); on Windows the exit handle is the process handle
 * (WaitForMultipleObjects, QWinEventNotifier) and the terminal's pipe is read with a timeout. On Windows
 * stop_tree has no window or console group to ask here, so after its grace it ends the job (exit 1). */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* nanosleep, poll */
#endif
#include <stdio.h>
#include <string.h>

#include "mproc.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#define FIRST_READ_MS 200 /* an overlapped pipe has no readiness to wait for: a read waits instead */
#else
#include <poll.h>
#include <time.h>
#define FIRST_READ_MS 0 /* poll() said whether there is something */
#endif

static void nap_ms(long ms) {
#ifdef _WIN32
  Sleep((DWORD)ms);
#else
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
#endif
}

#ifdef _WIN32
/* wine only: a program on a pseudo console gets no standard output there (Windows gives it the
 * console's), so the job writes to the console itself. Windows needs none of this. */
static HANDLE g_console;
#endif

/* The job's output: printf, as any program. */
static void say(const char *text) {
#ifdef _WIN32
  DWORD n;
  if (g_console) {
    WriteFile(g_console, text, (DWORD)strlen(text), &n, NULL);
    return;
  }
#endif
  fputs(text, stdout);
}

/* The job: steps with a progress bar in between, far more than the runner lets it do. */
static int job(void) {
#ifdef _WIN32
  if (!GetStdHandle(STD_OUTPUT_HANDLE))
    g_console = CreateFileW(L"CONOUT$", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                            OPEN_EXISTING, 0, NULL);
#endif
  char text[64];
  for (int step = 1; step <= 200; ++step) {
    for (int pct = 25; pct <= 100; pct += 25) {
      snprintf(text, sizeof text, "working %3d%%\r", pct);
      say(text);
      fflush(stdout); /* a line that does not end: sent now, as progress bars do */
      nap_ms(15);
    }
    snprintf(text, sizeof text, "step %d done\n", step);
    say(text); /* a terminal gets it at once; a pipe would keep it in the C runtime's buffer */
  }
  return 0;
}

/* The line without VT escape sequences (a Windows pseudo console draws with them; colour too). */
static void strip_escapes(char *s) {
  char *o = s;
  for (const char *p = s; *p;) {
    if (*p != '\x1b') {
      *o++ = *p++;
      continue;
    }
    ++p;
    if (*p == '[') /* CSI: parameters, then a final byte @..~ */
      for (++p; *p && !(*p >= '@' && *p <= '~'); ++p) {
      }
    else if (*p == ']') /* OSC: up to BEL or ESC \ */
      for (++p; *p && *p != '\a' && *p != '\x1b'; ++p) {
      }
    if (*p) ++p;
  }
  *o = '\0';
}

/* Wait until the terminal has output or the job has ended (or a second has passed). */
static void wait_for_news(mproc_popen *p, mproc_os_handle exit_h) {
#ifdef _WIN32
  (void)p;
  WaitForSingleObject((HANDLE)exit_h, 20); /* the pipe is read with a timeout instead (main) */
#else
  struct pollfd fds[2] = {{(int)mproc_popen_handle(p, 1), POLLIN, 0}, {(int)exit_h, POLLIN, 0}};
  poll(fds, 2, 1000);
#endif
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  if (argc > 1 && strcmp(argv[1], "--job") == 0) return job();
  char *self = NULL;
  if (mproc_self_exe(&self) != 0) return 1;
  const char *job_argv[] = {self, "--job", NULL};
  mproc_popen *p = NULL;
  int rc = mproc_popen_create(&p, &(mproc_popen_opts){.argv = job_argv,
                                                      .stdin_mode = MPROC_DEVNULL,
                                                      .stdout_mode = MPROC_PTY,
                                                      .stderr_mode = MPROC_STDOUT,
                                                      .pty_columns = 100,
                                                      .process_tree = true});
  mproc_free(self);
  if (rc == MPROC_ENOTSUP) { /* Windows before 10 1809: no pseudo console */
    printf("no terminal here: %s\n", mproc_last_error());
    return 0;
  }
  if (rc != 0) {
    fprintf(stderr, "popen: %s\n", mproc_last_error());
    return 1;
  }
  mproc_os_handle exit_h;
  if (mproc_popen_exit_handle(p, &exit_h) != 0) {
    fprintf(stderr, "exit handle: %s\n", mproc_last_error());
    mproc_popen_destroy(p);
    return 1;
  }
  printf("job %lld started on a terminal\n", (long long)mproc_popen_pid(p));
  int steps = 0, redraws = 0, code = 0, stop_rc = 0;
  bool ended = false, stopped = false;
  int64_t give_up = mproc_monotonic_ns() + 20 * 1000000000LL;
  while (!ended && mproc_monotonic_ns() < give_up) {
    wait_for_news(p, exit_h);
    /* every line that has come, then wait again (readline reads ahead: drain it before waiting) */
    char line[512];
    size_t len;
    mproc_line_end end;
    int64_t timeout = FIRST_READ_MS;
    while ((rc = mproc_popen_readline(p, 1, line, sizeof line, timeout, &len, &end)) == 0 && end != MPROC_LINE_EOF) {
      strip_escapes(line);
      if (end == MPROC_LINE_CR) { /* the progress bar redrew its line */
        ++redraws;
        continue;
      }
      if (!line[0]) continue;
      printf("  [%2d lines, %3d redraws] %s\n", ++steps, redraws, line);
      timeout = 0;
    }
    if (rc == 0 && end == MPROC_LINE_EOF) ended = true; /* the terminal closed: the job has gone */
    if (!stopped && steps >= 5) {
      /* Enough: stop the job and everything it started, gracefully: ask them all to end (SIGTERM; on
       * Windows WM_CLOSE to their windows), give them a second, then kill what is left. Returns with
       * the job reaped; what it printed meanwhile is still read below, to the terminal's end. */
      printf("stopping the job and its tree after %d lines\n", steps);
      stop_rc = mproc_popen_stop_tree(p, 1000, &code);
      if (stop_rc) fprintf(stderr, "stop_tree: %s\n", mproc_last_error());
      stopped = true;
    }
  }
  if (!ended) mproc_popen_kill_tree(p); /* it hung: never leave anything behind */
  rc = mproc_popen_wait(p, 10000, &code);
  char how[MPROC_EXIT_DESC_SIZE];
  printf("job ended: %s, after %d lines and %d progress redraws\n", mproc_describe_exit(code, how, sizeof how), steps,
         redraws);
  mproc_popen_destroy(p);
  return rc == 0 && stop_rc == 0 ? 0 : 1;
}
