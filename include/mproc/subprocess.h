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
 *   program. */

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
 *                  for Windows (see cwd).
 *   MPROC_ENOENT   the program, the cwd or a stdio path does not exist (the message names it).
 *   MPROC_EPERM    the program is not executable / access denied (the message names it).
 *   MPROC_ENOMEM, MPROC_ESYS   the OS refused (the message names the call and the OS error).
 * Thread-safe: any number of threads may start programs at once; each child inherits only its own
 * pipes. */
MPROC_API int mproc_popen_create(mproc_popen **out, const mproc_popen_opts *opts);

/* Release a Popen. If its child still runs, the child is killed (SIGKILL / TerminateProcess) and
 * reaped first, so destroy never leaves a zombie or a leaked handle; call mproc_popen_wait first to
 * let it finish instead. Pipe ends the Popen owns are closed. NULL is ignored. Not thread-safe with
 * other calls on the same Popen. */
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
 * longest line read). Not thread-safe with other calls on the same stream. */
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
 *   Windows: the process handle, signalled when the process has ended;
 *   elsewhere (Linux before 5.3, macOS, the BSDs): the read end of a pipe whose only write end belongs
 *   to a watcher thread that waits for the child without reaping it (waitid with WNOWAIT; one thread
 *   per Popen, from the first call until the child ends): readable (end of file) when the child has
 *   ended. Nothing the child or its own children inherit can keep it from becoming ready.
 * Readable means ended, never data: don't read a pidfd; the pipe may be read (end of file).
 * 0, or MPROC_EINVAL (NULL p or out), MPROC_ENOMEM / MPROC_ESYS (no descriptor or thread for the
 * watcher). Not thread-safe with other calls on the same Popen until it has been called once. */
MPROC_API int mproc_popen_exit_handle(mproc_popen *p, mproc_os_handle *out);

/* Popen.send_signal(sig). POSIX: kill(pid, sig) with any signal number. Windows: MPROC_SIGTERM and
 * MPROC_SIGKILL end the process with TerminateProcess (exit code 1), or, for a shell command or a batch
 * file, its whole job (TerminateJobObject: cmd.exe and everything it started); other signals give
 * MPROC_ENOTSUP. A child that has already been reaped is left alone (returns 0), so the call never
 * signals a recycled pid. Errors: MPROC_EINVAL, MPROC_ENOTSUP, MPROC_ESYS. */
MPROC_API int mproc_popen_send_signal(mproc_popen *p, int sig);
/* Popen.terminate(): SIGTERM on POSIX, TerminateProcess on Windows. */
MPROC_API int mproc_popen_terminate(mproc_popen *p);
/* Popen.kill(): SIGKILL on POSIX, TerminateProcess on Windows. */
MPROC_API int mproc_popen_kill(mproc_popen *p);

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
