/*
 * mproc/subprocess.h: start external programs, talk to them, collect their results.
 * Python counterparts: subprocess.Popen, run, call, check_call, check_output, CompletedProcess,
 * CalledProcessError, TimeoutExpired, PIPE, DEVNULL, STDOUT.
 *
 *   const char *argv[] = {"ls", "-l", NULL};
 *   mproc_completed r;
 *   int rc = mproc_run(&(mproc_popen_opts){.argv = argv, .capture_output = true}, MPROC_INFINITE, &r);
 *   if (rc == 0) printf("exit %d, %zu bytes of output\n", r.returncode, r.stdout_len);
 *   else fprintf(stderr, "%s\n", mproc_last_error());
 *   mproc_completed_free(&r);
 *
 * Every call returns 0 or a negative MPROC_E* code and sets mproc_last_error() on failure.
 */
#ifndef MPROC_SUBPROCESS_H
#define MPROC_SUBPROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/core.h"
#include "mproc/handle.h"
#include "mproc/mproc_export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What one of the child's standard streams is connected to. */
typedef enum mproc_stdio_mode {
  MPROC_INHERIT = 0, /* None: the child shares the parent's stream (the default) */
  MPROC_PIPE,        /* PIPE: a new pipe; the parent's end is read/written through the Popen */
  MPROC_DEVNULL,     /* DEVNULL: the null device */
  MPROC_HANDLE,      /* an existing fd / HANDLE of the parent (the *_handle field); the parent keeps it */
  MPROC_PATH,        /* a file opened by path (the *_path field): stdin reads it; stdout/stderr create or
                        truncate it, or append to it when *_append is set */
  MPROC_STDOUT,      /* STDOUT (stderr only): stderr goes wherever stdout goes */
  MPROC_STDOUT_OF,   /* stdin only: the stdout pipe of an earlier Popen (the stdin_from field), as
                        Python's Popen(..., stdin=p1.stdout) in a pipeline. This Popen takes that pipe
                        end over: the child gets it as an ordinary blocking handle and the earlier Popen
                        no longer has it (Python's advice to close p1.stdout, done for you), so the
                        first program sees a broken pipe when the second one stops reading. On Windows
                        the handed end is the overlapped end of a named pipe, which ordinary programs
                        read correctly when, as here, nobody else uses it. */
  /* ---- a terminal ---- */
  MPROC_PTY /* a pseudo-terminal (Windows: a pseudo console) instead of a pipe, so that an ordinary
               program prints line by line (see "Terminals" below). stdout first: stdin and stderr may be
               MPROC_PTY only when stdout_mode is, and then share its terminal (stderr's output comes
               with stdout's, as MPROC_STDOUT; MPROC_STDOUT for stderr joins the terminal too). Read the
               terminal as stdout (mproc_popen_read / readline / communicate: which = 1); write keys to it
               as stdin. */
} mproc_stdio_mode;

/* Terminals (MPROC_PTY). A C runtime writes its output to a pipe in blocks of several KiB, and to a
 * terminal line by line: a program run with a pipe shows nothing for a long time, then everything. A
 * terminal makes ordinary programs print each line as they make it (Python's pty module, expect).
 *   POSIX: a pseudo-terminal of pty_columns x pty_rows (80 x 24 by default). The child starts a new
 *   session with it as its controlling terminal (setsid + TIOCSCTTY): new_session is implied, and
 *   new_process_group is redundant (a session leader leads its own process group); closing the terminal
 *   (destroy) sends the session SIGHUP. The terminal keeps the system's default modes: output
 *   processing turns each "\n" the program writes into "\r\n" (mproc_popen_readline takes "\r\n" as one
 *   end of line), what is written to stdin is echoed into the output as typed keys are, and input is
 *   read by lines (canonical mode: a line longer than the terminal's limit, 4095 bytes on Linux, is
 *   cut). The output ends (end of file) once the program and everything it started that holds the
 *   terminal have ended; stdin's end of file is the terminal's end-of-file character (Ctrl-D), which
 *   mproc_popen_close_stdin and communicate send (twice after an unfinished line). The terminal
 *   handle (mproc_popen_handle(p, 1), the master) may be given to tcsetattr / TIOCSWINSZ.
 *   Windows: a pseudo console (ConPTY, Windows 10 1809 and later; MPROC_ENOTSUP from
 *   mproc_popen_create before). What is read is the console's rendering of its screen: the program's
 *   text with VT escape sequences (cursor movement, colour; strip what you don't show), lines ended by
 *   "\r\n", long lines wrapped at pty_columns. Keys written to stdin are VT input; end of input is
 *   Ctrl-Z then Enter. The console is closed when the program ends (ending whatever else is still
 *   attached to it), and its output then ends. wine 8: the pseudo console works, but wine does not
 *   connect a program's standard handles to it as Windows does (they stay NULL), so only what a
 *   program writes to the console itself (CONOUT$) arrives there; mproc's tests under wine use such a
 *   program.
 * A terminal goes with the other start options: process_tree and kill_on_parent_death (POSIX: the
 * terminal's session is the tree's process group; Windows: the job holds the program as without a
 * terminal), and the POSIX credentials and limits (applied after the terminal became the controlling
 * one, which the program keeps). creationflags asking for another console for the program
 * (CREATE_NEW_CONSOLE, DETACHED_PROCESS, CREATE_NO_WINDOW) contradict it: MPROC_EINVAL, on every
 * platform, as the other creationflags checks. */

/* ---- Windows: windows and consoles ------------------------------------------------------------
 * Python's creationflags and startupinfo (mproc_popen_opts.creationflags, .startupinfo). The values are
 * Windows' own (CREATE_NO_WINDOW == MPROC_CREATE_NO_WINDOW), so flags from <windows.h> may be passed too.
 * POSIX ignores them (where Python raises ValueError), so one options struct serves an application on
 * every platform; they are still checked there, so a mistake shows on the system you test on. */
#define MPROC_DEBUG_PROCESS 0x00000001u           /* refused: mproc runs no debugger loop */
#define MPROC_DEBUG_ONLY_THIS_PROCESS 0x00000002u /* refused, as DEBUG_PROCESS */
#define MPROC_CREATE_SUSPENDED 0x00000004u        /* refused: mproc offers no way to resume the child */
#define MPROC_DETACHED_PROCESS 0x00000008u        /* a console program gets no console at all */
#define MPROC_CREATE_NEW_CONSOLE 0x00000010u      /* a console program gets a new console (and window) */
#define MPROC_NORMAL_PRIORITY_CLASS 0x00000020u   /* priority classes: at most one */
#define MPROC_IDLE_PRIORITY_CLASS 0x00000040u
#define MPROC_HIGH_PRIORITY_CLASS 0x00000080u
#define MPROC_REALTIME_PRIORITY_CLASS 0x00000100u
#define MPROC_CREATE_NEW_PROCESS_GROUP 0x00000200u /* the same as new_process_group */
#define MPROC_BELOW_NORMAL_PRIORITY_CLASS 0x00004000u
#define MPROC_ABOVE_NORMAL_PRIORITY_CLASS 0x00008000u
#define MPROC_EXTENDED_STARTUPINFO_PRESENT 0x00080000u /* refused: mproc sets it when it needs it */
#define MPROC_CREATE_BREAKAWAY_FROM_JOB 0x01000000u
#define MPROC_CREATE_DEFAULT_ERROR_MODE 0x04000000u
#define MPROC_CREATE_NO_WINDOW 0x08000000u /* a console program runs with a console but no window */

/* STARTUPINFO.dwFlags bits mproc accepts (others need fields mproc does not carry: MPROC_EINVAL). */
#define MPROC_STARTF_USESHOWWINDOW 0x00000001u   /* show_window applies */
#define MPROC_STARTF_FORCEONFEEDBACK 0x00000040u /* the busy cursor while the program starts */
#define MPROC_STARTF_FORCEOFFFEEDBACK 0x00000080u
#define MPROC_STARTF_USESTDHANDLES 0x00000100u /* accepted and changes nothing: the stdio modes decide */
/* STARTUPINFO.wShowWindow values (ShowWindow's nCmdShow), for MPROC_STARTF_USESHOWWINDOW. */
#define MPROC_SW_HIDE 0
#define MPROC_SW_SHOWNORMAL 1
#define MPROC_SW_SHOWMINIMIZED 2
#define MPROC_SW_SHOWMAXIMIZED 3
#define MPROC_SW_SHOWNOACTIVATE 4
#define MPROC_SW_MINIMIZE 6
#define MPROC_SW_SHOWMINNOACTIVE 7
#define MPROC_SW_SHOWNA 8

/* Python's STARTUPINFO, the part that is not mproc's own business (the standard handles are stdio
 * modes here): STARTUPINFO.dwFlags and STARTUPINFO.wShowWindow of the child. */
typedef struct mproc_startupinfo {
  uint32_t flags;       /* MPROC_STARTF_* bits */
  uint16_t show_window; /* MPROC_SW_*; needs MPROC_STARTF_USESHOWWINDOW in flags (as in Python) */
} mproc_startupinfo;

/* ---- POSIX: credentials and limits -------------------------------------------------------------- */

/* umask for mproc_popen_opts.umask: .umask = MPROC_UMASK(077). The field's zero (and Python's -1) mean
 * "unchanged", so a mask is given through this macro, which marks it as set. */
#define MPROC_UMASK(mask) (0x10000 | (mask))

/* Resource limits a child can be given (resource.setrlimit in the child, the commonest reason for a
 * preexec_fn, which mproc does not offer). Each is the POSIX RLIMIT_ of the same name. */
typedef enum mproc_rlimit_resource {
  MPROC_RLIMIT_CORE = 1, /* largest core file, bytes (0: none) */
  MPROC_RLIMIT_CPU,      /* CPU time, seconds (SIGXCPU at the soft limit, SIGKILL at the hard one) */
  MPROC_RLIMIT_DATA,     /* data segment (Linux 4.7+: private writable mappings too), bytes */
  MPROC_RLIMIT_FSIZE,    /* largest file the child may write, bytes */
  MPROC_RLIMIT_NOFILE,   /* one more than the highest fd number the child may open */
  MPROC_RLIMIT_STACK,    /* main thread's stack, bytes */
  MPROC_RLIMIT_AS,       /* address space, bytes */
  MPROC_RLIMIT_NPROC,    /* processes of the child's real user id (not POSIX; Linux, BSD, macOS) */
  MPROC_RLIMIT_MEMLOCK   /* locked memory, bytes (not POSIX; Linux, BSD, macOS) */
} mproc_rlimit_resource;
/* No limit (RLIM_INFINITY), for soft or hard. */
#define MPROC_RLIM_INFINITY UINT64_MAX
typedef struct mproc_rlimit {
  mproc_rlimit_resource resource;
  uint64_t soft, hard; /* soft <= hard; MPROC_RLIM_INFINITY for none */
} mproc_rlimit;

/* Options for starting a program. All-zero means the defaults; fill them with designated initializers.
 * Strings are UTF-8 and only read during the call that takes the struct. */
typedef struct mproc_popen_opts {
  /* The program and its arguments, NULL-terminated. argv[0] names the program: a name without a
   * directory separator is looked up in the PATH of the environment the child will get (env and
   * env_extra applied; the parent's otherwise), like Python's Popen; with no PATH at all, the system
   * directories (/bin:/usr/bin; Windows' system directories). On Windows a name without an extension
   * is tried with ".com" and then ".exe" appended (in each directory, in that order), and - unlike
   * CreateProcess - neither the cwd nor the parent's own directory is searched; a '"' in argv[0] gives
   * MPROC_EINVAL (Windows cannot represent it). Paths of MAX_PATH (260) characters or more work on
   * Windows (see cwd for the limit there). Exactly one of argv and command must be set.
   *
   * Batch files on Windows. When the program found (argv[0] or executable, after the PATH search, with
   * trailing dots and spaces of the name dropped as Windows drops them) is a .bat or .cmd file, mproc
   * runs it through the system's cmd.exe (<system dir>\cmd.exe, never %ComSpec%) as
   *   cmd.exe /d /e:ON /v:OFF /c ""<absolute path of the file>" ARG1 ARG2 ..."
   * with argv[1..] quoted for cmd.exe's rules, so no argument can run a command of its own (the
   * BatBadBut attack, CVE-2024-24576) and cmd.exe runs exactly the file found, never a same-named one
   * in the current directory. An argument is quoted unless it is only letters, digits, non-ASCII and
   * # $ * + - . / : ? @ \ _; inside the quotes a '"' is doubled and backslashes before a '"' or the
   * closing quote are doubled, so a batch file that passes %* on to a program gives it exactly your
   * arguments (%1.. hold them quoted; %~1 removes the outer quotes). argv[0] is not passed (%0 is the
   * file's path). MPROC_EINVAL, with a message saying why, and nothing started, when an argument holds
   * '%' (cmd.exe expands %NAME% even inside quotes, and no escape works alike on every cmd.exe), a CR
   * or a LF (they end the command), when the file's path holds '%', or when the command line exceeds
   * cmd.exe's 8191 characters. To pass such data, use the environment (env_extra) or build a command
   * yourself. The child is cmd.exe and is treated as a shell command is (see command). */
  const char *const *argv;
  /* A shell command instead of argv (Python's shell=True): run as /bin/sh -c COMMAND on POSIX and as
   * <system dir>\cmd.exe /d /c "COMMAND" on Windows: the system's cmd.exe, never %ComSpec% from the
   * environment, and /d so that no AutoRun command from the registry runs first. The command is passed
   * unquoted: quoting it is the caller's business, and cmd.exe applies its own rules (it looks for a
   * program in the current directory first, for example).
   * Windows: cmd.exe does not replace itself with the program it runs, so the child is put in a
   * kill-on-close job object of its own before it runs (same for a batch file): mproc_popen_terminate,
   * mproc_popen_kill, the timeout of mproc_run and mproc_popen_destroy of a running child end everything
   * the command started (TerminateJobObject), and so does the parent's death. Once cmd.exe has ended by
   * itself, what it left running on purpose ("start prog") is released and outlives the Popen, as on
   * POSIX. (Where the child cannot be put in a job - before Windows 8, inside a job that forbids
   * nesting - it runs without one and these calls reach cmd.exe alone.) */
  const char *command;
  /* The program file to run instead of the one argv[0] names (looked up in PATH the same way); argv[0]
   * is still passed to the program as its argv[0] (Python's executable=). With command: the shell
   * (Windows: "SHELL /c "COMMAND"", with /d too when SHELL is cmd.exe). */
  const char *executable;
  /* The child's working directory; NULL keeps the parent's. A relative program path in argv[0] (or
   * executable) is resolved relative to the PARENT's directory, and that file is what runs, on every
   * platform (Python on POSIX runs it relative to cwd instead: see docs/guide.md). Windows starts a
   * program only in a directory of fewer than 259 characters: a longer cwd is given in its short (8.3)
   * form, and when it has none that fits, MPROC_EINVAL says so. */
  const char *cwd;
  /* The child's whole environment, as NULL-terminated "NAME=VALUE" strings; NULL inherits the
   * parent's. (Python's env=.) */
  const char *const *env;
  /* Changes applied on top of the environment the child would get (env, or the parent's):
   * "NAME=VALUE" sets or replaces NAME, a bare "NAME" removes it. The documented way to extend the
   * current environment: .env_extra = (const char *[]){"DEBUG=1", NULL}. On Windows names compare
   * case-insensitively and the system variables Windows needs (SYSTEMROOT, ...) are kept. */
  const char *const *env_extra;

  mproc_stdio_mode stdin_mode, stdout_mode, stderr_mode;
  mproc_os_handle stdin_handle, stdout_handle, stderr_handle; /* for MPROC_HANDLE */
  const char *stdin_path, *stdout_path, *stderr_path;         /* for MPROC_PATH */
  bool stdout_append, stderr_append;                          /* for MPROC_PATH */

  /* Python's close_fds=False: let the child inherit every inheritable fd/handle of the parent. By
   * default (false) the child gets only its three standard streams and pass_fds. */
  bool inherit_fds;
  /* Extra fds / handles the child inherits, with the same numbers / values (Python's pass_fds). On
   * Windows they are inherited through the handle list and keep their values. */
  const mproc_os_handle *pass_fds;
  size_t pass_fds_count;

  /* POSIX: the child calls setsid() (start_new_session=True). Windows: ignored (see
   * new_process_group). */
  bool new_session;
  /* POSIX: the child becomes the leader of a new process group (process_group=0). Windows:
   * CREATE_NEW_PROCESS_GROUP. */
  bool new_process_group;

  /* ---- process trees and parent death ---- */
  /* Beyond Python: keep the program and every process it starts, at any depth, together as one tree,
   * so that mproc_popen_stop_tree / kill_tree / signal_tree / wait_tree reach all of them, also after
   * the program itself has ended (what it left running stays in the tree while the Popen lives).
   * The Popen is the program's as ever: pid is the program's, returncode its status, and wait, poll,
   * communicate, timeouts and send_signal / terminate / kill (the program alone) work unchanged;
   * mproc_run's timeout kills the whole tree. See docs/guide.md, "Running programs from an
   * application".
   *   POSIX: the program leads a process group of its own (as new_process_group: it is not the
   *   terminal's foreground group), and a small helper process, a fork of this process made for this
   *   Popen, is its parent: app -> helper -> program. The helper is the subreaper of its subtree
   *   (Linux PR_SET_CHILD_SUBREAPER), so a descendant that leaves the group (setsid, setpgid) and is
   *   orphaned comes back to it instead of to init; it relays the program's status, reaches the
   *   descendants that left the group while their parent lives through /proc (Linux 5.3+: each
   *   checked through a pidfd, so a recycled pid is never signalled), and when it kills, it kills
   *   until nothing is left. This process never becomes a subreaper: it still reaps only its own
   *   children. Costs one more fork per start, nothing while the tree runs.
   *   Windows: a job object of its own, which the program joins before it runs and which no
   *   descendant may leave (a start with CREATE_BREAKAWAY_FROM_JOB fails).
   * What can still escape. Everywhere: a process started on the tree's behalf by another process (a
   * service, systemd or D-Bus activation, at(1); Windows: the Task Scheduler, WMI, a COM server, an
   * already running instance of a program that ShellExecute hands the work to). POSIX: a descendant
   * running with other credentials (the command sudo runs) that the helper may not signal: once the
   * helper has killed everything else, it lets that go and the tree calls report MPROC_EPERM; a
   * helper that someone kills lets the whole tree go (mproc_popen_wait then reports MPROC_ESYS: the
   * program's status is lost). macOS and other POSIX systems without a subreaper (untested): the
   * tree is the program's process group, and the helper leaves, letting go of what remains, when
   * the program ends.
   * Errors at start: those of mproc_popen_create; Windows: when the program cannot be put in a job
   * (before Windows 8, inside a job that forbids nesting) the start fails and nothing runs. */
  bool process_tree;
  /* Beyond Python (off by default, as there): end the program when this process dies, however it
   * dies (killed, crashed); with process_tree, the whole tree. Which mechanism serves which case:
   *   Linux, without process_tree, started from the main thread, the program not set-user/group-ID
   *   and without file capabilities: PR_SET_PDEATHSIG(SIGKILL) set in the child just before exec, and
   *   a check that the parent still lives (no helper, no cost). The kernel ties the signal to the
   *   creating *thread*, and execve of a set-ID program clears it, so every other case takes the
   *   helper of process_tree (without process_tree's group and subreaper when not asked): it watches
   *   this process (PR_SET_PDEATHSIG on itself, re-checked, and a socket from this process) and kills
   *   the program, or the tree, when this process dies.
   *   Other POSIX systems (untested): always the helper, which watches the socket only: a fork child
   *   of this process that did not exec holds the socket, and with it the program's life.
   *   Windows: a job object with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE whose only handle is the
   *   Popen's: the system ends its processes when this process ends. Without process_tree the job
   *   holds the program alone (its children break away silently).
   * Without process_tree only the program is ended, not its children (the kernel's mechanisms apply
   * to one process). With process_tree, mproc_popen_destroy after the program has ended also ends
   * what it left running (without this option, that is let go). Errors at start: as process_tree. */
  bool kill_on_parent_death;

  /* ---- Windows: windows and consoles (POSIX: checked, then ignored) ---- */
  /* Python's creationflags: MPROC_* / Windows CREATE_* flags OR'ed into CreateProcessW's, e.g.
   *   MPROC_CREATE_NO_WINDOW     a console program started from a GUI program opens no console window
   *                              (it still has a console, a hidden one, and stdio as you set it);
   *   MPROC_CREATE_NEW_CONSOLE   a console of its own, with a window (hide it with startupinfo); when all
   *                              three stdio modes are MPROC_INHERIT the child reads and writes that
   *                              console (as in Python), else it gets the streams you set and the
   *                              parent's for the others;
   *   MPROC_DETACHED_PROCESS     no console at all; its stdio is still what the stdio modes say (the
   *                              parent's streams by default);
   *   a priority class, MPROC_CREATE_BREAKAWAY_FROM_JOB, MPROC_CREATE_DEFAULT_ERROR_MODE, ...
   * Other bits go to Windows as they are. MPROC_EINVAL for MPROC_CREATE_SUSPENDED, MPROC_DEBUG_PROCESS,
   * MPROC_DEBUG_ONLY_THIS_PROCESS and MPROC_EXTENDED_STARTUPINFO_PRESENT (the child would hang, or mproc
   * owns the flag), for MPROC_DETACHED_PROCESS with MPROC_CREATE_NEW_CONSOLE (Windows refuses the pair)
   * and for more than one priority class. MPROC_CREATE_NEW_PROCESS_GROUP is new_process_group. */
  uint32_t creationflags;
  /* Python's startupinfo: dwFlags (MPROC_STARTF_USESHOWWINDOW, the feedback cursor bits) and
   * wShowWindow, e.g. {MPROC_STARTF_USESHOWWINDOW, MPROC_SW_HIDE} for a hidden window, or
   * MPROC_SW_SHOWMINNOACTIVE for a minimized one that takes no focus. A GUI program reads them for its
   * first window (ShowWindow's SW_SHOWDEFAULT); a console program's new console window follows them.
   * MPROC_EINVAL for other dwFlags bits, a show_window above 11, or a show_window without
   * MPROC_STARTF_USESHOWWINDOW. */
  mproc_startupinfo startupinfo;

  /* ---- POSIX: credentials and limits (Windows: MPROC_ENOTSUP when any is set) ---- */
  /* Python 3.9's user, group, extra_groups and umask; names are looked up (getpwnam_r / getgrnam_r) in
   * the parent before anything starts, and a name of decimal digits only is a numeric id. The child
   * applies them last, after its stdio, cwd and session are set and the fds it must not keep closed,
   * right before it runs the program: umask, resource limits, supplementary groups, gid, then uid
   * (real, effective and saved).
   *   user          the user to run as (setreuid). Unlike Python, the group follows it: when group is
   *                 NULL the child gets the user's primary group from the user database (as su, sudo -u
   *                 and runuser do; MPROC_EINVAL for a numeric uid with no entry there: set group),
   *                 not the parent's (root's) group.
   *   group         the group to run as (setregid).
   *   extra_groups  the supplementary groups (setgroups), a NULL-terminated list; (const char *[]){NULL}
   *                 clears them. When it is NULL and user or group is set, they are cleared too (as
   *                 libuv and Rust do; Python keeps the parent's, root's); a parent that may not change
   *                 groups (not root) keeps its own there, and can only name its own user and group.
   *   umask         MPROC_UMASK(mask); 0 or -1 leave the parent's.
   *   rlimits       rlimits_count limits applied in order (setrlimit). Before the user changes, so a
   *                 privileged parent may raise a hard limit for an unprivileged child.
   * Errors of mproc_popen_create, with nothing left behind: MPROC_ENOENT for an unknown user or group
   * name; MPROC_EINVAL for a bad value (an unknown resource, soft > hard, a umask that is not
   * MPROC_UMASK(0..0777), more groups than the system allows); MPROC_EPERM when the parent lacks the
   * right (another user or group without root or CAP_SETUID/CAP_SETGID, a hard limit raised without
   * CAP_SYS_RESOURCE), reported by the child before it runs anything and naming the call that failed;
   * MPROC_ENOTSUP for a resource this system lacks, and on Windows for any of these (a security
   * boundary is never silently dropped, unlike the window flags above; Windows has no such calls: a
   * user needs a logon token, limits a job object). These starts cannot use posix_spawn: user, group
   * and extra_groups start the child with fork (glibc's set*id calls signal every thread of the
   * process, which a vfork child shares with its parent), so their cost grows with the parent's size;
   * umask and rlimits alone use vfork. */
  const char *user;
  const char *group;
  const char *const *extra_groups;
  int umask;
  const mproc_rlimit *rlimits;
  size_t rlimits_count;

  /* ---- used by mproc_run / call / check_call / check_output only ---- */
  /* Bytes to send to the child's stdin, which then gets a pipe (stdin_mode must be INHERIT or PIPE).
   * input_len 0 with input non-NULL sends nothing and closes stdin at once (Python's input=b""). */
  const void *input;
  size_t input_len;
  /* Capture stdout and stderr (stdout_mode and stderr_mode become PIPE; they must be INHERIT). */
  bool capture_output;
  /* Fail with MPROC_ECALLEDPROCESS when the program exits non-zero (the result is still filled). */
  bool check;

  /* For stdin_mode MPROC_STDOUT_OF: the earlier Popen whose stdout pipe becomes this child's stdin
   * (it must have one that nothing else reads: stdout_mode MPROC_PIPE, no communicate yet). */
  struct mproc_popen *stdin_from;

  /* ---- terminals and line-by-line output ---- */
  /* The terminal's size in characters for MPROC_PTY; 0 gives 80 columns, 24 rows. */
  unsigned short pty_columns, pty_rows;
  /* mproc_run_lines and mproc_popen_communicate_lines: the longest line handed over whole; a longer one
   * comes in pieces of this many bytes (MPROC_LINE_PART, the last piece with its real end). 0: 65536. */
  size_t max_line;
  /* mproc_run_lines and mproc_popen_communicate_lines: hand the output over as it arrives, in chunks
   * (MPROC_LINE_CHUNK, at most max_line bytes each), instead of in lines. */
  bool output_chunks;
} mproc_popen_opts;

/* A running or finished child program. */
typedef struct mproc_popen mproc_popen;

/* Start a program (subprocess.Popen). On success *out is a new Popen; release it with
 * mproc_popen_destroy. Start errors are reported here, in the parent, and leave nothing behind (no
 * child, no zombie, no open fd or handle):
 *   MPROC_EINVAL   bad options: NULL out/opts, neither or both of argv and command, an empty argv,
 *                  MPROC_STDOUT for stdin/stdout, a stdio mode without its handle/path, a string that is
 *                  not valid UTF-8 (Windows; encoded surrogates included), an env entry without '=';
 *                  Windows: an argument a batch file cannot be given safely (see argv), a cwd too long
 *                  for Windows (see cwd); creationflags or startupinfo that mproc refuses, a bad umask
 *                  or resource limit (see their fields).
 *   MPROC_ENOENT   the program, the cwd, a stdio path, a user or a group does not exist (the message
 *                  names it).
 *   MPROC_EPERM    the program is not executable / access denied (the message names it); the parent may
 *                  not give the child the user, groups or limits asked for (the message names the call).
 *   MPROC_ENOTSUP  user, group, extra_groups, umask or rlimits on Windows; a resource this system lacks.
 *   MPROC_ENOMEM, MPROC_ESYS   the OS refused (the message names the call and the OS error).
 * Thread-safe: any number of threads may start programs at once; each child inherits only its own
 * pipes. */
MPROC_API int mproc_popen_create(mproc_popen **out, const mproc_popen_opts *opts);

/* Release a Popen. If its child still runs, the child is killed (SIGKILL / TerminateProcess) and
 * reaped first, so destroy never leaves a zombie or a leaked handle; call mproc_popen_wait first to
 * let it finish instead. Pipe ends the Popen owns are closed. NULL is ignored. Not thread-safe with
 * other calls on the same Popen.
 * With process_tree: a running program's whole tree is killed (as kill_tree) first; once the program
 * has ended, what it left running is let go (it no longer belongs to a tree; POSIX: it goes to init or
 * the nearest subreaper), or killed when kill_on_parent_death is set. POSIX: the tree's helper process
 * is reaped before destroy returns. */
MPROC_API void mproc_popen_destroy(mproc_popen *p);

/* The child's process id (Popen.pid). */
MPROC_API int64_t mproc_popen_pid(const mproc_popen *p);

/* Whether the child has been reaped; if so and returncode is not NULL, stores Popen.returncode:
 * the exit status, or -N when a signal N ended it (POSIX). On Windows: the process exit code as a
 * 32-bit value, so a crash gives its exception code as a large negative int (an access violation,
 * 0xC0000005, gives -1073741819), which mproc_exit_is_crash tells apart from -N (see "exit statuses"
 * in mproc/core.h; mproc_describe_exit words any of them); terminate() and kill() make it 1, as in
 * Python. */
MPROC_API bool mproc_popen_returncode(const mproc_popen *p, int *returncode);

/* Popen.wait(timeout): wait for the child to end, up to timeout_ms (MPROC_INFINITE waits forever,
 * 0 only checks). On success stores the returncode (see mproc_popen_returncode). Errors:
 * MPROC_ETIMEDOUT (still running; nothing changed), MPROC_EINVAL. Does not busy-poll.
 * Waiting with pipes open can deadlock if the child fills a pipe: use mproc_popen_communicate. */
MPROC_API int mproc_popen_wait(mproc_popen *p, int64_t timeout_ms, int *returncode);

/* Popen.poll(): mproc_popen_wait with timeout 0. Returns 0 and the returncode if the child has ended,
 * MPROC_ETIMEDOUT while it still runs. */
MPROC_API int mproc_popen_poll(mproc_popen *p, int *returncode);

/* Popen.communicate(input, timeout): send input to the child's stdin (if given), then close it; read
 * stdout and stderr (those that are pipes) until end of file; then wait for the child. Never
 * deadlocks, whatever the sizes and the order in which the child writes. A child that exits without
 * reading its input does not kill the parent with SIGPIPE (the rest of the input is dropped).
 *
 * out_data/out_len and err_data/err_len receive the whole output of that stream (NUL-terminated for
 * convenience, the NUL not counted; release with mproc_free); pass NULL for streams you don't want
 * (the output is still read and discarded, so the child never blocks). A stream that is not a pipe
 * gives NULL and 0.
 *
 * MPROC_ETIMEDOUT: the child is still running and keeps running; the output read so far stays inside
 * the Popen, the out-parameters are set to NULL/0, and a later communicate returns all the output
 * from the start, none lost and none repeated. The unsent rest of the input is kept too: pass NULL
 * input on that later call (passing input again gives MPROC_ESTATE, as in Python).
 * Other errors: MPROC_EINVAL, MPROC_ESTATE (input given but stdin is not a pipe, or input again after
 * the first call), MPROC_ENOMEM, MPROC_ESYS. On success the Popen's returncode is set. */
MPROC_API int mproc_popen_communicate(mproc_popen *p, const void *input, size_t input_len, int64_t timeout_ms,
                                      char **out_data, size_t *out_len, char **err_data, size_t *err_len);

/* Streaming access to the pipes (when the stream was MPROC_PIPE and communicate is not used).
 * write: writes up to len bytes, waiting up to timeout_ms; *written says how many went (short on
 * timeout). MPROC_EPIPE if the child closed its end (*written still counts what went before);
 * MPROC_ETIMEDOUT if nothing could be written.
 * read: which is 1 (stdout) or 2 (stderr); reads up to cap bytes, waiting up to timeout_ms for at least
 * one; *n = 0 with return 0 means end of file. MPROC_ETIMEDOUT if nothing arrived.
 * close_stdin: closes the parent's end of the stdin pipe so the child sees end of file.
 * MPROC_ESTATE if that stream is not a pipe (or was closed). */
MPROC_API int mproc_popen_write(mproc_popen *p, const void *buf, size_t len, int64_t timeout_ms, size_t *written);
MPROC_API int mproc_popen_read(mproc_popen *p, int which, void *buf, size_t cap, int64_t timeout_ms, size_t *n);
MPROC_API int mproc_popen_close_stdin(mproc_popen *p);

/* The parent's end of a pipe (which: 0 stdin, 1 stdout, 2 stderr), or MPROC_NO_HANDLE. Owned by the
 * Popen. On Windows it is an overlapped named-pipe handle: use overlapped I/O on it. On POSIX a read end
 * may be blocking (Linux, where mproc reads it without waiting by request) or non-blocking: wait for
 * it to be readable (poll) before a read of your own. With MPROC_PTY,
 * stdout's is the terminal (POSIX: the master), stdin's a second handle for its input. Bytes that
 * mproc_popen_readline has read ahead are in the Popen, not in the handle: a caller that waits on the
 * handle itself (poll, an event loop) reads with timeout 0 until MPROC_ETIMEDOUT before waiting again. */
MPROC_API mproc_os_handle mproc_popen_handle(const mproc_popen *p, int which);

/* ---- line by line ------------------------------------------------------------------------------
 * Reading output as lines: stdout or stderr (a pipe or a terminal) line by line with a timeout
 * (mproc_popen_readline), or every line handed to a function of yours as it arrives (mproc_run_lines,
 * mproc_popen_communicate_lines). Python: `for line in p.stdout`, p.stdout.readline(). Lines end with
 * "\n", "\r\n" or a bare "\r" (progress bars redraw their line with it); the end is reported, never
 * included. Bytes read ahead stay in the Popen: mproc_popen_read and mproc_popen_communicate return them
 * first, so line and raw reads mix with nothing lost and nothing repeated.
 *
 * "\r\n" is one end of line even when its two bytes arrive apart. A "\r" that is the last byte that
 * has arrived is therefore held until the next byte shows what it is, until end of file, or until the
 * call's deadline: then the line is reported as ended by a bare "\r", and if the next byte is "\n" it
 * is skipped as the second half of that end (no empty line appears; the end reads MPROC_LINE_CR where
 * the program wrote "\r\n" in two pieces with a pause between). mproc_popen_readline holds it until its
 * timeout; the callback forms never wait for it (a progress bar's line is handed over at once). */

/* How a line ended. */
typedef enum mproc_line_end {
  MPROC_LINE_LF = 1, /* "\n" */
  MPROC_LINE_CRLF,   /* "\r\n" */
  MPROC_LINE_CR,     /* a bare "\r": a progress bar redraws this line next */
  MPROC_LINE_PART,   /* not ended yet: the line is longer than the room for it; the rest comes next */
  MPROC_LINE_EOF,    /* the stream has ended: a last line without an end (len > 0), or nothing (len 0) */
  MPROC_LINE_CHUNK   /* output_chunks: bytes as they arrived, not split into lines */
} mproc_line_end;

/* Read one line of stdout (which 1) or stderr (which 2) into buf: its bytes without the end of line,
 * NUL-terminated, *len of them (at most cap - 1), and *end how it ended. A line longer than cap - 1
 * comes in pieces of cap - 1 bytes (MPROC_LINE_PART), nothing lost. At end of file: a last line
 * without an end with MPROC_LINE_EOF, then *len 0 and MPROC_LINE_EOF on every later call (Python's b"").
 * Waits up to timeout_ms (MPROC_INFINITE: forever; 0: only what has arrived) for a whole line.
 * Returns 0, or:
 *   MPROC_ETIMEDOUT  no whole line arrived in time; what did arrive stays read ahead (mproc_popen_read
 *                    returns it: a prompt without a newline, say);
 *   MPROC_EINVAL     p, buf, len or end NULL, cap < 2, which not 1 or 2;
 *   MPROC_ESTATE     that stream is not a pipe or terminal of this Popen (or communicate owns it);
 *   MPROC_ENOMEM, MPROC_ESYS.
 * Copies the line, and allocates only to grow the Popen's read-ahead buffer (about 64 KiB beyond the
 * longest line read). Not thread-safe with other calls on the same stream.
 * Speed (Linux): with MPROC_INFINITE, a read that finds the pipe empty yields the CPU once
 * (sched_yield) before it sleeps, so a child writing line by line on the same CPU writes on and the
 * reader takes lines in batches (2x faster than CPython there; docs/PERFORMANCE.md). No line that has
 * arrived waits for it; while a busy program shares the CPU, a line written just after the yield may
 * wait for the reader's next turn (a scheduler slice at most). */
MPROC_API int mproc_popen_readline(mproc_popen *p, int which, char *buf, size_t cap, int64_t timeout_ms, size_t *len,
                                   mproc_line_end *end);

/* One line (or chunk) handed to an mproc_line_fn. data points into the Popen's buffer (valid during the
 * call only), NUL-terminated after len bytes; the end of line is not included. When a stream ends, its
 * last line without an end comes with MPROC_LINE_EOF, then one call with len 0 and MPROC_LINE_EOF says
 * that the stream has ended. */
typedef struct mproc_line {
  int stream; /* 1 stdout, 2 stderr */
  const char *data;
  size_t len;
  mproc_line_end end;
} mproc_line;

/* Called for each line as it arrives, in order within each stream. Return 0 to go on; anything else
 * stops (see the calls below), and that value is returned by the call. */
typedef int (*mproc_line_fn)(void *ctx, const mproc_line *line);

/* Popen.communicate with each line handed over as it arrives: send input (as communicate does), give
 * every line of stdout and stderr (those that are pipes or the terminal) to on_line(ctx, line) as soon
 * as it is whole, a line longer than max_line in pieces (output_chunks: chunks as they arrive), then wait
 * for the child. Never deadlocks, whatever the sizes. Returns 0 (the returncode is set), or:
 *   MPROC_ETIMEDOUT  the child still runs and keeps running; the lines handed over are not repeated,
 *                    an unfinished one and the unsent input stay in the Popen for a later call (with
 *                    NULL input), as with mproc_popen_communicate. The deadline holds while lines are
 *                    handed over: a child that writes without end cannot keep the call past it.
 *   on_line's value  on_line returned it (non-zero): the call stops at once and the child keeps
 *                    running (call again to go on, or end it); nothing is lost.
 *   the errors of mproc_popen_communicate, and MPROC_EINVAL for a NULL on_line.
 * on_line runs on the calling thread and may call mproc_popen_* on other Popens, not on this one. */
MPROC_API int mproc_popen_communicate_lines(mproc_popen *p, const void *input, size_t input_len, int64_t timeout_ms,
                                            mproc_line_fn on_line, void *ctx);

/* ---- the exit handle ---------------------------------------------------------------------------- */

/* A native handle that becomes ready when the child has ended, for an application's own event loop
 * (poll/epoll, WaitForMultipleObjects, libuv's uv_poll, Qt's QSocketNotifier / QWinEventNotifier)
 * and for mproc_wait (mproc_waitable_popen, mproc/process.h). Owned by the Popen, valid until destroy,
 * the same handle on every call. Once it is ready, mproc_popen_wait / poll reap at once.
 *   Linux 5.3+: a pidfd, readable (POLLIN) when the child has ended;
 *   Windows: the process handle, signalled when the process has ended (with process_tree too);
 *   POSIX, a child run through the tree helper (process_tree, or kill_on_parent_death where
 *   PR_SET_PDEATHSIG cannot serve): a socket of the helper's, readable once the program has ended,
 *   which holds the program's status and keeps it (mproc peeks at it);
 *   elsewhere (Linux before 5.3, macOS, the BSDs): the read end of a pipe whose only write end belongs
 *   to a watcher thread that waits for the child without reaping it (waitid with WNOWAIT; one thread
 *   per Popen, from the first call until the child ends): readable (end of file) when the child has
 *   ended. Nothing the child or its own children inherit can keep it from becoming ready.
 * Readable means ended, never data: never read from it (a pidfd has nothing to read; reading the
 * helper's socket would take the program's status away); the watcher's pipe reads end of file.
 * 0, or MPROC_EINVAL (NULL p or out), MPROC_ENOMEM / MPROC_ESYS (no descriptor or thread for the
 * watcher). Not thread-safe with other calls on the same Popen until it has been called once. */
MPROC_API int mproc_popen_exit_handle(mproc_popen *p, mproc_os_handle *out);

/* Popen.send_signal(sig). POSIX: kill(pid, sig) with any signal number. Windows: MPROC_SIGTERM and
 * MPROC_SIGKILL end the process with TerminateProcess (exit code 1), or, for a shell command or a batch
 * file, its whole job (TerminateJobObject: cmd.exe and everything it started); other signals give
 * MPROC_ENOTSUP. A child that has already been reaped is left alone (returns 0), so the call never
 * signals a recycled pid. Errors: MPROC_EINVAL, MPROC_ENOTSUP, MPROC_ESYS.
 *
 * MPROC_SIGBREAK (mproc/core.h) is Python's send_signal(CTRL_BREAK_EVENT), Windows only: a CTRL_BREAK
 * console event to the child's process group (GenerateConsoleCtrlEvent), which a console program can
 * handle (SetConsoleCtrlHandler; SIGBREAK in the C runtime) to end cleanly, and which otherwise ends it
 * with exit code 0xC000013A (STATUS_CONTROL_C_EXIT). It can be delivered only when
 *   - the child was started in a new process group (new_process_group or MPROC_CREATE_NEW_PROCESS_GROUP),
 *     else MPROC_ESTATE: the event would reach every process on the console, this one too;
 *   - it shares this process's console: else MPROC_ENOTSUP, for a child started with
 *     MPROC_CREATE_NEW_CONSOLE, MPROC_DETACHED_PROCESS or MPROC_CREATE_NO_WINDOW (a console of its own,
 *     or none), and for a parent with no console (a GUI program or a service; wine started from a
 *     pipe or a terminal has none either);
 *   - the console takes it: else MPROC_ENOTSUP naming the OS error (wine 8's consoles implement
 *     CTRL_C but not CTRL_BREAK, so under wine this is where it ends even with a console).
 * POSIX has no console events: MPROC_ENOTSUP (send MPROC_SIGINT or MPROC_SIGTERM there). */
MPROC_API int mproc_popen_send_signal(mproc_popen *p, int sig);
/* Popen.terminate(): SIGTERM on POSIX, TerminateProcess on Windows. */
MPROC_API int mproc_popen_terminate(mproc_popen *p);
/* Popen.kill(): SIGKILL on POSIX, TerminateProcess on Windows. */
MPROC_API int mproc_popen_kill(mproc_popen *p);

/* ---- process trees (opts.process_tree) --------------------------------------------------------- */

/* Beyond Python: these reach every process of the tree (see mproc_popen_opts.process_tree): the
 * program while it runs, and what it left running after it ended. Common errors: MPROC_EINVAL (NULL p),
 * MPROC_ESTATE (a Popen started without process_tree), MPROC_ESYS. Not thread-safe with other calls on
 * the same Popen (as every Popen call).
 *
 * mproc_popen_stop_tree: the graded stop (reproc's): ask every process of the tree to end, wait up to
 * grace_ms for all of them to have ended, then kill what is left and wait for it; then reap the program
 * and store its returncode (as mproc_popen_wait). grace_ms 0 kills at once; MPROC_INFINITE never kills.
 * Returns once no process of the tree is left. Asking: POSIX: SIGTERM. Windows, where programs have no
 * signals: WM_CLOSE to the top-level windows of the tree's processes (what closing a window does;
 * user32.dll is loaded for it) and, when the program was started with new_process_group,
 * CTRL_BREAK_EVENT to its process group (it reaches console programs that share this process's
 * console); a program that has neither is given the grace to end by itself, then ended
 * (TerminateJobObject: exit code 1). Errors: MPROC_EPERM (POSIX: processes of the tree may not be
 * signalled, see process_tree; the rest was killed, and they were let go).
 *
 * mproc_popen_kill_tree: kill every process of the tree at once (SIGKILL; Windows TerminateJobObject,
 * exit code 1) without waiting, as mproc_popen_kill; then mproc_popen_wait_tree or mproc_popen_wait.
 * A tree that has ended already is no error.
 *
 * mproc_popen_signal_tree: send a signal to every process of the tree. POSIX: any signal, to every
 * process of the tree there is at the moment (a process started while the signals go out, outside the
 * group, may miss it; kill_tree makes up for that by killing until nothing is left). Windows: MPROC_SIGTERM and
 * MPROC_SIGKILL end every process (TerminateJobObject, exit code 1, as mproc_popen_send_signal does for the program);
 * other signals give MPROC_ENOTSUP.
 *
 * mproc_popen_wait_tree: wait up to timeout_ms (0 checks; MPROC_INFINITE: as long as it takes) until
 * every process of the tree has ended; MPROC_ETIMEDOUT while any runs, MPROC_EPERM as stop_tree. The
 * program's own end is mproc_popen_wait's: this call does not reap it. POSIX without a subreaper
 * (macOS, ...): the tree has ended when the program has. */
MPROC_API int mproc_popen_stop_tree(mproc_popen *p, int64_t grace_ms, int *returncode);
MPROC_API int mproc_popen_kill_tree(mproc_popen *p);
MPROC_API int mproc_popen_signal_tree(mproc_popen *p, int sig);
MPROC_API int mproc_popen_wait_tree(mproc_popen *p, int64_t timeout_ms);

/* ---- run and friends ----------------------------------------------------------------------- */

/* subprocess.CompletedProcess. Zero it (or let mproc_run fill it) and release with
 * mproc_completed_free. */
typedef struct mproc_completed {
  int64_t pid;
  int returncode;    /* as mproc_popen_returncode */
  bool timed_out;    /* the timeout expired and the child was killed */
  char *stdout_data; /* captured stdout (NUL-terminated, NUL not counted) or NULL if not captured */
  size_t stdout_len;
  char *stderr_data; /* captured stderr or NULL (also NULL with stderr_mode MPROC_STDOUT) */
  size_t stderr_len;
} mproc_completed;

/* subprocess.run(): start the program, feed opts->input, capture what opts asks, wait up to
 * timeout_ms (MPROC_INFINITE: no timeout), and fill *result. One engine serves run, call,
 * check_call and check_output.
 * Returns 0, or:
 *   MPROC_ETIMEDOUT        the timeout expired: the child was killed and reaped; result holds the
 *                          output read until then (timed_out = true, returncode from the kill). A
 *                          grandchild that keeps the pipes open cannot make this hang.
 *   MPROC_ECALLEDPROCESS   opts->check and a non-zero returncode; result is complete.
 *   any error of mproc_popen_create (nothing was started; result is zeroed), MPROC_EINVAL for
 *   capture_output/input that conflict with the stdio modes.
 * *result must be released with mproc_completed_free whatever the return value. */
MPROC_API int mproc_run(const mproc_popen_opts *opts, int64_t timeout_ms, mproc_completed *result);

/* mproc_run with each line handed over as it arrives (see "line by line" above), for a long job whose
 * output is shown while it runs: start the program, feed opts->input, give every line of its stdout
 * (a pipe unless stdout_mode is set: MPROC_PIPE or MPROC_PTY) and, if stderr_mode is MPROC_PIPE, of
 * its stderr to on_line(ctx, line) as soon as it is whole (capture_output: both as pipes), then wait
 * up to timeout_ms in all. *result is filled as by mproc_run, with stdout_data and stderr_data NULL
 * (the output went to on_line). Returns 0, or:
 *   MPROC_ETIMEDOUT        the timeout expired, also while lines were being handed over: the child
 *                          was killed and reaped, then the output it wrote until then was handed over
 *                          (timed_out = true);
 *   on_line's value        on_line returned it (non-zero): the child was killed and reaped at once,
 *                          as at a timeout (no more lines are handed over; timed_out stays false);
 *   the errors of mproc_run (check: MPROC_ECALLEDPROCESS), and MPROC_EINVAL for a NULL on_line.
 * *result must be released with mproc_completed_free whatever the return value. */
MPROC_API int mproc_run_lines(const mproc_popen_opts *opts, int64_t timeout_ms, mproc_line_fn on_line, void *ctx,
                              mproc_completed *result);

/* subprocess.call(): run and store the returncode. Errors as mproc_run. */
MPROC_API int mproc_call(const mproc_popen_opts *opts, int64_t timeout_ms, int *returncode);
/* subprocess.check_call(): as call, but a non-zero returncode gives MPROC_ECALLEDPROCESS (the
 * returncode is still stored). */
MPROC_API int mproc_check_call(const mproc_popen_opts *opts, int64_t timeout_ms, int *returncode);
/* subprocess.check_output(): run with stdout captured and check on; result->stdout_data is the output.
 * stdout_mode must be INHERIT. Errors as mproc_run. */
MPROC_API int mproc_check_output(const mproc_popen_opts *opts, int64_t timeout_ms, mproc_completed *result);

/* CompletedProcess.check_returncode(): 0, or MPROC_ECALLEDPROCESS with a message naming the
 * returncode. */
MPROC_API int mproc_completed_check_returncode(const mproc_completed *result);
/* Free the captured output and zero the struct. NULL is ignored. */
MPROC_API void mproc_completed_free(mproc_completed *result);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_SUBPROCESS_H */
