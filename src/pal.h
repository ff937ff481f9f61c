/*
 * The platform abstraction layer: the only internal interface that knows two operating systems exist.
 * Implemented by src/posix/ and src/win32/. Portable modules include this and never an OS header.
 *
 * Handles are mproc_os_handle values everywhere: a file descriptor on POSIX, a HANDLE on Windows.
 * Every handle the PAL creates is close-on-exec / non-inheritable; it is made inheritable only for the
 * one child that is meant to get it.
 *
 * Errors: PAL functions that can fail return 0 or a negative MPROC_E* code and set the thread's error
 * message (through mproc__fail / mproc__fail_os), exactly like public calls.
 *
 * Files: one section of this header (a "==== title: file" line) = one file name in each backend, so
 * src/posix/X.c and src/win32/X.c implement the same section and nothing else, and a reader of one
 * finds its counterpart by name. A backend-internal helper file (no section here) is named in that
 * backend's own header, src/posix/posix.h or src/win32/win32.h. The PAL gives mechanisms: it never
 * includes a public module header beyond core.h and handle.h, nor calls up into a portable module: a
 * protocol (the fork server's, the boot link's) lives in one portable file, which uses the PAL's
 * mechanisms (fork, descriptor passing, senders, children's exits as an event).
 */
#ifndef MPROC_PAL_H
#define MPROC_PAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "mproc/core.h"
#include "mproc/handle.h"

/* ==== core: src/posix/pal_core.c, src/win32/pal_core.c ================================================== */

/* ---- OS errors ------------------------------------------------------------------------------ */

/* The calling thread's current OS error (errno / GetLastError()). Read it right after the failing call. */
int mproc__pal_os_error(void);
/* The mproc code that best describes an OS error (ENOENT -> MPROC_ENOENT, EACCES -> MPROC_EPERM,
 * ENOMEM -> MPROC_ENOMEM, EPIPE -> MPROC_EPIPE, anything else -> MPROC_ESYS). */
int mproc__pal_map_os_error(int oserr);
/* Describe an OS error as "<NAME>, <errno|error> <N>: <text>" into buf (always NUL-terminated). */
void mproc__pal_describe_os_error(int oserr, char *buf, size_t size);

/* The calling thread's error state: never NULL (if a thread's own state cannot be allocated, a shared
 * fallback is returned, so messages may mix between threads only when memory has run out). Released
 * when the thread exits. */
mproc__thread_state *mproc__pal_thread_state(void);

/* ---- time, system, identity ------------------------------------------------------------------ */

int64_t mproc__pal_monotonic_ns(void);
int mproc__pal_cpu_count(void);
int mproc__pal_process_cpu_count(void);
/* The CPU this thread runs on now (it may move at any time: a hint), or -1 where the OS does not say. */
int mproc__pal_current_cpu(void);
int64_t mproc__pal_getpid(void);
/* The same, asked of the system each time and kept nowhere: for a fork child that needs its pid once
 * (POSIX: filling the kept pid, which every fork child finds blank, writes a page: two page faults). */
int64_t mproc__pal_getpid_uncached(void);
int64_t mproc__pal_getppid(void);
/* Absolute UTF-8 path of the running executable, malloc'ed. 0 or an error. */
int mproc__pal_self_exe(char **out);

/* ---- memory -------------------------------------------------------------------------------- */

/* A hint that [p, p + len), malloc'ed memory about to be filled, is best backed by huge pages (one page
 * fault per 2 MiB instead of per 4 KiB): POSIX madvise(MADV_HUGEPAGE) on the pages holding it, where the
 * system has transparent huge pages; Windows nothing (large pages need a privilege). Best effort: never
 * fails, never changes the memory's contents. */
void mproc__pal_advise_huge(void *p, size_t len);

/* ---- handles -------------------------------------------------------------------------------- */

/* Close a handle; MPROC_NO_HANDLE is ignored. Never fails visibly (errors are not actionable). */
void mproc__pal_close(mproc_os_handle h);
/* Whether `h` is an open handle of this process. */
bool mproc__pal_handle_valid(mproc_os_handle h);
/* Set or clear close-on-exec (POSIX FD_CLOEXEC) / inheritability (Windows HANDLE_FLAG_INHERIT:
 * inheritable = !cloexec). 0 or an error. */
int mproc__pal_set_cloexec(mproc_os_handle h, bool cloexec);
/* Whether close-on-exec is set (true) or the handle would be inherited (false). */
bool mproc__pal_get_cloexec(mproc_os_handle h);
/* The parent's own standard stream (0 stdin, 1 stdout, 2 stderr) as a handle, or MPROC_NO_HANDLE. */
mproc_os_handle mproc__pal_std_handle(int which);
/* Count of this process's open fds / handles (for leak tests); -1 if unknown. Windows leaves out the
 * events its PAL keeps for open connection handles (win32/conn.c), which go with those handles. */
int mproc__pal_handle_count(void);
/* What kind of object a handle refers to, so that a handle received from another process is checked
 * before use. POSIX: from fstat; Windows: from GetFileType (a socket counts as a pipe there). */
typedef enum mproc__handle_kind {
  MPROC__HK_INVALID = 0, /* not an open handle */
  MPROC__HK_FILE = 1,    /* a regular file or directory (Windows: a disk file) */
  MPROC__HK_PIPE = 2,    /* a pipe or FIFO (Windows: a pipe or a socket) */
  MPROC__HK_SOCKET = 3,  /* a socket (POSIX) */
  MPROC__HK_CHAR = 4,    /* a character device or console */
  MPROC__HK_OTHER = 5    /* anything else (Windows: a process, an event, a mapping, ...) */
} mproc__handle_kind;
mproc__handle_kind mproc__pal_handle_kind(mproc_os_handle h);

/* ---- threads, the global lock -------------------------------------------------------------- */

/* Start a detached thread running fn(arg). 0 or an error. */
int mproc__pal_thread_start(void (*fn)(void *), void *arg);

/* A joinable thread: started running fn(arg); mproc__pal_thread_join waits for it to end and frees it. */
typedef struct mproc__thread mproc__thread;
int mproc__pal_thread_create(mproc__thread **t, void (*fn)(void *), void *arg);
void mproc__pal_thread_join(mproc__thread *t);

/* A mutex and a condition variable between threads of this process (POSIX: pthread, the condition on
 * CLOCK_MONOTONIC; Windows: SRWLOCK and CONDITION_VARIABLE). Not recursive. */
typedef struct mproc__mutex mproc__mutex;
typedef struct mproc__cond mproc__cond;
int mproc__pal_mutex_new(mproc__mutex **m);
void mproc__pal_mutex_free(mproc__mutex *m); /* NULL is ignored */
void mproc__pal_mutex_lock(mproc__mutex *m);
void mproc__pal_mutex_unlock(mproc__mutex *m);
int mproc__pal_cond_new(mproc__cond **c);
void mproc__pal_cond_free(mproc__cond *c); /* NULL is ignored */
/* With m held: sleep until woken or the deadline (mproc__pal_monotonic_ns; INT64_MAX: none): 0 (maybe
 * spurious: check the state again) or MPROC_ETIMEDOUT. */
int mproc__pal_cond_wait(mproc__cond *c, mproc__mutex *m, int64_t deadline_ns);
void mproc__pal_cond_broadcast(mproc__cond *c);

/* The library's global lock, for its bookkeeping (lists of children, counters). Not recursive. */
void mproc__pal_global_lock(void);
void mproc__pal_global_unlock(void);

/* ---- the environment ------------------------------------------------------------------------ */

/* Remove an environment variable of this process. */
void mproc__pal_unsetenv(const char *name);

/* Read an environment variable of this process: 0 with *value a malloc'ed UTF-8 copy (free() it), or
 * 0 with *value NULL when the variable is not set (set but empty gives ""). MPROC_EINVAL (name NULL,
 * empty, holding '=' or not UTF-8), MPROC_ENOMEM. Windows reads the process environment as UTF-16
 * (GetEnvironmentVariableW), never the C runtime's ANSI copy; POSIX reads getenv (bytes as they are). */
int mproc__pal_getenv(const char *name, char **value);
/* Whether an environment variable is set (to anything, "" included); false on a bad name. */
bool mproc__pal_env_is_set(const char *name);
/* The environment variable that makes the dynamic linker bind every symbol when a program loads instead
 * of at each first call (set to "1"), where the system binds lazily: "LD_BIND_NOW" (glibc and the other
 * ELF systems). NULL where there is none to ask for (Windows, macOS). */
const char *mproc__pal_eager_binding_var(void);

/* ==== pipes, files, I/O (subprocess): src/posix/pipe.c, src/win32/pipe.c ================================ */

/* A pipe between the parent and one child stream. *parent_end is read by the parent when
 * child_writes (the child's stdout/stderr), written otherwise (stdin). Both ends are created
 * close-on-exec / non-inheritable; mproc__pal_spawn makes child_end the child's stream. On Windows the
 * parent end is an overlapped named pipe with a unique name; the child end is synchronous. */
int mproc__pal_pipe(bool child_writes, mproc_os_handle *parent_end, mproc_os_handle *child_end);

/* Open the null device, or a file by UTF-8 path, for a child stream: for_write false opens for
 * reading; true creates/truncates, or appends when append. Non-inheritable. Errors name the path. */
int mproc__pal_open_devnull(bool for_write, mproc_os_handle *out);
int mproc__pal_open_path(const char *path, bool for_write, bool append, mproc_os_handle *out);

/* Make a parent pipe end of mproc__pal_pipe an ordinary blocking handle for a child (blocking true;
 * POSIX clears O_NONBLOCK, which belongs to the open file the child would share), or the parent's again
 * (false). Windows: nothing to do (the overlapped end is handed as it is). 0 or an error. */
int mproc__pal_set_blocking(mproc_os_handle h, bool blocking);

/* POSIX: the parent's end of an output pipe is blocking where the kernel reads a pipe without waiting on
 * request (Linux: preadv2 with RWF_NOWAIT), so a read without deadline sleeps in read() itself, and
 * non-blocking elsewhere; the reads below that must not wait ask for it per call. A terminal's master
 * (mproc__pal_pty_open) is non-blocking. */

/* Blocking-with-deadline I/O on a parent pipe end created by mproc__pal_pipe (deadline_ns from
 * mproc__deadline_from_timeout; INT64_MAX = no deadline). read: *n = 0 and 0 means end of file;
 * MPROC_ETIMEDOUT if nothing arrived by the deadline. write: *n bytes went (may be short on
 * timeout); MPROC_EPIPE if the reader has gone (never raises SIGPIPE); MPROC_ETIMEDOUT if none went.
 * EINTR is retried. */
int mproc__pal_read(mproc_os_handle h, void *buf, size_t cap, int64_t deadline_ns, size_t *n);
int mproc__pal_write(mproc_os_handle h, const void *buf, size_t len, int64_t deadline_ns, size_t *n);

/* The state of one communicate() exchange, kept by the caller across calls (for resuming after a
 * timeout). A handle member that is MPROC_NO_HANDLE takes no part. */
typedef struct mproc__comm {
  mproc_os_handle in;  /* parent end of the child's stdin: write input[input_off..input_len), then close */
  mproc_os_handle out; /* parent end of the child's stdout: read into out_buf until EOF, then close */
  mproc_os_handle err; /* parent end of the child's stderr: read into err_buf until EOF, then close */
  const char *input;
  size_t input_len, input_off;
  mproc__buf *out_buf, *err_buf; /* appended to; never NULL for a handle that takes part */
  /* ---- output as it arrives (line-by-line delivery, src/subprocess.c) ---- */
  bool return_on_output; /* return 0 as soon as a read has added bytes to out_buf or err_buf, handles
                            still open, so the caller can hand them on (then calls again) */
} mproc__comm;

/* Move data in all directions at once until every taking part handle is done, or the deadline
 * (or, with return_on_output, until a read has added bytes: 0 with handles still open).
 * The PAL closes each handle when it is done with it (EOF read / all input written / the reader has
 * gone: a broken stdin pipe is not an error, the rest of the input is dropped) and sets the member
 * to MPROC_NO_HANDLE. Returns 0 when all three are MPROC_NO_HANDLE; MPROC_ETIMEDOUT at the deadline
 * with the state consistent for a later call (no byte lost or repeated; before returning it moves
 * whatever can move without blocking, so a deadline already past means "drain what is ready");
 * MPROC_ENOMEM / MPROC_ESYS on failure. */
int mproc__pal_communicate(mproc__comm *c, int64_t deadline_ns);

/* ==== pseudo-terminals (subprocess): src/posix/pty.c, src/win32/pty.c =================================== */

/* A terminal for a child's standard streams (mproc_stdio_mode MPROC_PTY): a C runtime buffers output to
 * a pipe in blocks but writes to a terminal line by line, so ordinary programs print line by line to it.
 *   POSIX: a pseudo-terminal pair (posix_openpt, grantpt, unlockpt; the slave by TIOCGPTPEER on Linux,
 *     else by its name): the parent reads and writes the master; mproc__pal_spawn makes the slave the
 *     child's controlling terminal (setsid + TIOCSCTTY) and its streams on it. The terminal keeps the
 *     kernel's default modes: canonical input, echo, and output processing ("\n" is sent as "\r\n").
 *     End of file on the master (EIO on Linux once every slave descriptor has closed) reads as end of file.
 *   Windows: a pseudo console (ConPTY, CreatePseudoConsole, looked up at run time: Windows 10 1809 and
 *     later; MPROC_ENOTSUP before). The parent reads the console's rendering (text with VT sequences,
 *     lines ended by "\r\n") from one overlapped pipe and writes keys to another. The child's streams on
 *     the console are given as NULL standard handles, which Windows connects to the console; wine 8 does
 *     not (they stay NULL: only what the program writes to the console itself, CONOUT$, arrives). The
 *     console is closed when the child ends (a thread-pool wait on its process handle), which ends the
 *     output with end of file. */
typedef struct mproc__pty mproc__pty;
/* Open a terminal of cols x rows characters. *out: the parent's end for reading the terminal's output,
 * *in: for writing its input (POSIX: the master, and a second descriptor of it; Windows: the two pipes).
 * Both belong to the caller (mproc__pal_close), and closing *in never ends the terminal (Windows: the
 * console ends when its input pipe breaks, so the PAL keeps a copy of it until mproc__pal_pty_close);
 * the terminal's own side stays in *pty until mproc__pal_spawn hands it to a child (req.pty). 0,
 * MPROC_ENOTSUP, or an error. */
int mproc__pal_pty_open(unsigned cols, unsigned rows, mproc__pty **pty, mproc_os_handle *out, mproc_os_handle *in);
/* The bytes that make a program reading the terminal see end of input, into buf (at least 4 bytes);
 * returns how many. POSIX: the VEOF character (Ctrl-D), twice when the last byte written was not a
 * newline (the first ends the pending line); Windows: Ctrl-Z then Enter. */
size_t mproc__pal_pty_eof(const mproc__pty *pty, bool partial_line, char *buf);
/* Release the terminal (the caller has closed or will close its out / in handles itself). Windows: stops
 * the wait for the child and closes the pseudo console (a child still attached is ended by it). NULL is
 * ignored. */
void mproc__pal_pty_close(mproc__pty *pty);

/* ==== processes (subprocess): src/posix/spawn.c, src/win32/spawn.c ====================================== */

/* What to start. Strings UTF-8. Exactly one of argv and command is set (checked by the caller). */
typedef struct mproc__spawn_req {
  const char *const *argv;      /* argv[0] is looked up in PATH if it has no directory separator */
  const char *command;          /* shell command: /bin/sh -c CMD; <system dir>\cmd.exe /d /c "CMD" */
  const char *executable;       /* overrides the file to run (argv[0] still passed); with command: the shell */
  const char *cwd;              /* or NULL */
  const char *const *env;       /* NULL: the parent's environment */
  const char *const *env_extra; /* "N=V" set, "N" unset, applied on top (Windows: case-insensitive names) */
  mproc_os_handle stdio[3];     /* what the child's stdin/stdout/stderr become; MPROC_NO_HANDLE = the
                                   parent's own stream. The same handle may appear twice (stderr=STDOUT). */
  bool inherit_fds;             /* close_fds=False */
  const mproc_os_handle *pass_fds;
  size_t pass_fds_count;
  bool new_session, new_process_group;
  bool signal_exitcodes; /* (processes) a signal ends the child so that mproc__pal_wait reports -sig,
                            as on POSIX, so Process.exitcode is -15 / -9 after terminate / kill on
                            every platform (Windows: exit code 0x10000 | sig; POSIX: always so) */
  /* ---- a pseudo-terminal for stdio (mproc__pal_pty_open) ---- */
  mproc__pty *pty; /* or NULL */
  bool on_pty[3];  /* which of stdin/stdout/stderr are the terminal (their stdio[] slot is ignored). The
                      child starts a new session with the terminal as its controlling terminal (POSIX:
                      new_session and new_process_group are implied); on success the parent's copy of
                      the terminal side is closed (POSIX) or watched (Windows: closed when the child ends) */

  /* ---- Windows: windows and consoles (POSIX ignores them; checked by the caller) ---- */
  uint32_t creationflags; /* OR'ed into CreateProcessW's flags (CREATE_NO_WINDOW, ...) */
  uint32_t startup_flags; /* STARTUPINFO.dwFlags bits; STARTF_USESTDHANDLES is the backend's to decide */
  uint16_t show_window;   /* STARTUPINFO.wShowWindow */

  /* ---- POSIX: credentials and limits (Windows: MPROC_ENOTSUP if any is set) ---- */
  const char *user, *group;        /* names or decimal ids, resolved in the parent; NULL: unchanged */
  const char *const *extra_groups; /* NULL-terminated; NULL: unchanged, or cleared when user or group is set */
  int umask;                       /* 0: unchanged (all-zero requests ask nothing); MPROC__PAL_UMASK_SET | mask */
  const struct mproc__rlimit *rlimits;
  size_t rlimits_count;

  /* ---- process trees and parent death (see mproc_popen_opts and the "process trees" section) ---- */
  bool process_tree;         /* keep the program and all it starts together: POSIX its own process group
                                under a tree helper (the subreaper of its subtree); Windows a job object */
  bool kill_on_parent_death; /* end the program (its tree with process_tree) when this process dies:
                                Linux PR_SET_PDEATHSIG in the child where it holds (main thread, not
                                set-ID), else the tree helper; Windows a kill-on-close job */
} mproc__spawn_req;

/* mproc__spawn_req.umask: a umask to set (0..0777) is marked with this bit, as MPROC_UMASK marks it. */
#define MPROC__PAL_UMASK_SET 0x10000

/* A resource limit for a child: the resources of mproc_rlimit_resource (mproc/subprocess.h), with the
 * same values (src/subprocess.c checks that they agree), and its limits (UINT64_MAX: none). */
typedef enum mproc__rlimit_kind {
  MPROC__RLIMIT_CORE = 1,
  MPROC__RLIMIT_CPU,
  MPROC__RLIMIT_DATA,
  MPROC__RLIMIT_FSIZE,
  MPROC__RLIMIT_NOFILE,
  MPROC__RLIMIT_STACK,
  MPROC__RLIMIT_AS,
  MPROC__RLIMIT_NPROC,
  MPROC__RLIMIT_MEMLOCK,
  MPROC__RLIMIT_LAST_ = MPROC__RLIMIT_MEMLOCK
} mproc__rlimit_kind;
typedef struct mproc__rlimit {
  int resource; /* mproc__rlimit_kind, checked by the caller */
  uint64_t soft, hard;
} mproc__rlimit;

/* A started child.
 *
 * The exit handle: the one notion of "the handle that becomes ready when the program has ended, and
 * stays ready from then on", POSIX readable (poll POLLIN), Windows signalled (WaitFor*Object).
 * mproc__pal_wait waits on it and then collects the status without blocking; an OS wait, an
 * application's event loop and mproc__pal_wait_ready (MPROC__WAIT_SENTINEL) get it from
 * mproc__pal_child_exit_handle, and then call mproc__pal_wait with a deadline already passed. What it is:
 *   POSIX, started through the tree helper (process_tree, or kill_on_parent_death where
 *     PR_SET_PDEATHSIG cannot serve; src/posix/tree.c): `handle`, this end of the helper's exit socket:
 *     the helper sends the program's status there when the program ends, and mproc__pal_wait only peeks
 *     at it (MSG_PEEK), so it stays, and the socket readable. Not a pidfd: never pass it to waitid or
 *     pidfd_send_signal; nor read from it (that would take the status away).
 *   POSIX otherwise: `handle`, a pidfd of the program (Linux 5.3+; opened at spawn, or by
 *     mproc__pal_child_exit_handle if that failed). Where there is none (Linux before 5.3, macOS, the
 *     BSDs) `handle` is MPROC_NO_HANDLE and mproc__pal_wait polls waitpid, until someone asks
 *     mproc__pal_child_exit_handle: that makes the exit handle the read end of a pipe whose only write
 *     end belongs to a watcher thread, blocked in waitid(WEXITED | WNOWAIT) on the child (so nothing else
 *     can hold the pipe open, and the child is not reaped by it); the thread closes the write end when
 *     the child has ended, and the read end reads end of file. It lives in `os` (mproc__posix_child,
 *     src/posix/posix.h), not in `handle`, and mproc__pal_wait then waits on it before reaping, so the
 *     child is never reaped while the thread still waits on its pid.
 *   Windows: `handle`, the program's process handle (with process_tree too: never the job). */
typedef struct mproc__child {
  int64_t pid;            /* the program's, also when a tree helper stands between */
  mproc_os_handle handle; /* the pidfd, the helper's exit socket, the process handle (above), or none */
  bool reaped;
  int returncode; /* valid when reaped: exit status, or -signal (POSIX) / exit code (Windows) */
  void *os;       /* the backend's own state of this child, or NULL (Windows: its jobs and how
                     signals end it; POSIX: mproc__posix_child, its tree helper and the exit handle's
                     watcher pipe); portable code never reads it, mproc__pal_child_release frees it */
} mproc__child;

/* Start the child. Start failures (program not found / not executable, cwd missing, ...) are reported
 * here, in the parent, with a message naming the program or path and the OS error; on failure
 * nothing is left behind. The stdio handles are not closed (the caller closes its copies).
 * Credentials and limits (POSIX): names are resolved here first (MPROC_ENOENT for an unknown one); a
 * step the child fails (setgroups, setregid, setreuid, setrlimit) comes back through the child's error
 * pipe as the start error, naming the call, with MPROC_EPERM for EPERM. */
int mproc__pal_spawn(const mproc__spawn_req *req, mproc__child *child);

/* Wait for the child to end, up to the deadline, without busy-polling where the OS allows; reaps it
 * and sets reaped/returncode. A child already reaped returns 0 at once. MPROC_ETIMEDOUT if it still
 * runs. POSIX, started through the tree helper: waits on the exit socket and takes the status the helper
 * relays ("reaped" then means: its end is known); MPROC_ESYS, every time, if the helper ended before
 * telling it (someone killed the helper, or it let go of a program it may not signal). */
int mproc__pal_wait(mproc__child *child, int64_t deadline_ns);

/* Send a signal (numbers as MPROC_SIG*; POSIX passes any number through). No-op on a reaped child.
 * MPROC_SIGBREAK: Windows sends CTRL_BREAK to the child's process group where it can (see
 * mproc_popen_send_signal for the conditions and errors); POSIX gives MPROC_ENOTSUP.
 * POSIX, through the tree helper: the helper sends it (it holds the program unreaped, so the pid is
 * still the program's); a helper that has exited has nothing left to signal (0). */
int mproc__pal_signal(mproc__child *child, int sig);

/* Release the OS resources of a child (pidfd / process handle / the helper's exit socket, the watcher's
 * pipe: every exit handle it had). Does not wait for or kill the program. A process tree whose program
 * has ended: what it left running is let go, or killed when the child was started with
 * kill_on_parent_death (POSIX: the helper does it and is reaped here; Windows: the job's kill-on-close is
 * lifted, or kept, and its handle closed). */
void mproc__pal_child_release(mproc__child *child);

/* The child's exit handle (see mproc__child: the tree helper's exit socket, the pidfd, the watcher's
 * pipe, or the process handle), for an OS wait, an application's event loop and mproc__pal_wait_ready.
 * Owned by the child (released by mproc__pal_child_release), the same handle on every call. Once it is
 * ready, mproc__pal_wait with a deadline already past reaps the child. A child already reaped without
 * one gets a handle that is ready at once (a pipe with no writer). 0, or an error (MPROC_ENOMEM /
 * MPROC_ESYS: out of memory, descriptors or threads). */
int mproc__pal_child_exit_handle(mproc__child *child, mproc_os_handle *out);

/* ==== process trees (subprocess): src/posix/tree.c, src/win32/tree.c ==================================== */

/* A child started with process_tree is a tree: the program and every process it starts, at any depth,
 * also after the program itself has ended. These reach the whole tree; portable code calls them only for
 * such a child. What a tree is, and what can escape it, on each OS:
 *   POSIX: the helper of src/posix/tree.c, a fork of this process (app -> helper -> program) that runs a
 *     small loop of async-signal-safe calls only. The program leads a process group of its own; the
 *     helper is the subreaper of its subtree (Linux PR_SET_CHILD_SUBREAPER, never set on this process),
 *     so a descendant that leaves the group comes to it once orphaned. The helper never reaps the
 *     program before the tree has ended (it reads the status with WNOWAIT), so the program's pid, and
 *     with it the group's id, cannot be reused while the helper signals the group. It lists its own
 *     children in /proc/<pid>/task/<pid>/children; where there is no such file (macOS, BSDs, Linux
 *     without CONFIG_PROC_CHILDREN) it is no subreaper and the tree is the program's group, which ends
 *     for the helper when the program ends. The helper stays while the tree lives and exits when it has
 *     ended (its control socket then reads end of file), so a tree that has ended costs nothing.
 *   Windows: a job object (src/win32/tree.c) that the program joins before it runs (created suspended),
 *     without breakaway, so every descendant is in it. */

/* Send sig to every process of the tree. POSIX: any signal, to the program's group and to each of the
 * helper's children (descendants that left the group and were orphaned); SIGKILL also puts the helper
 * in killing mode: it kills until nothing is left, whatever joins it meanwhile. Windows: MPROC_SIGTERM
 * and MPROC_SIGKILL end the job (TerminateJobObject, exit code 1); others MPROC_ENOTSUP. A tree that has
 * ended already: 0. */
int mproc__pal_tree_signal(mproc__child *child, int sig);
/* The first, polite step of a graded stop: ask every process of the tree to end. POSIX: SIGTERM (as
 * mproc__pal_tree_signal). Windows: WM_CLOSE to the top-level windows of the job's processes, and
 * CTRL_BREAK_EVENT to the program's process group when it was started with new_process_group; best
 * effort (returns 0 when there was nobody to ask). */
int mproc__pal_tree_ask_to_end(mproc__child *child);
/* Wait until every process of the tree has ended, up to the deadline: 0, or MPROC_ETIMEDOUT. Does not
 * reap the program (mproc__pal_wait does). POSIX: MPROC_EPERM when the helper, killing, found processes
 * it may not signal (other credentials) and let them go. No busy-polling: POSIX waits for the helper's
 * control socket to read end of file; Windows waits on the handles of the job's processes. */
int mproc__pal_tree_wait(mproc__child *child, int64_t deadline_ns);

/* ==== connections (message pipes) and waiting: src/posix/conn.c, src/win32/conn.c ======================= */

/* One end of a Pipe(): the handle it receives on, the one it sends on (the same handle when one does
 * both; MPROC_NO_HANDLE for a direction the end lacks), and a bulk handle (or MPROC_NO_HANDLE) that
 * carries the payloads of large messages in either direction (their headers still come on rd / go on
 * wr, in order, so waiting on rd sees every message). */
typedef struct mproc__conn_end {
  mproc_os_handle rd, wr, bulk;
} mproc__conn_end;
/* The two ends of a Pipe(duplex). duplex: both ends receive and send; else a only receives and b only
 * sends. All handles close-on-exec / non-inheritable, blocking.
 * POSIX: a pipe each way (rd != wr) and a Unix socket pair for bulk. Measured on Linux here: a small
 * message's round trip over pipes costs about half of one over a socket pair, while a 1 MiB message
 * moves 4x faster over the socket pair (a pipe allocates and copies page by page under its lock); at
 * 64 KiB the socket pair already wins.
 * Windows: the overlapped named pipe of mproc__pal_conn_pair (rd == wr), no bulk handle. */
int mproc__pal_conn_ends(bool duplex, mproc__conn_end *a, mproc__conn_end *b);
/* A connected pair with one handle for both directions on each side: boot links and the fork server's
 * control link (descriptors travel over it with mproc__pal_conn_send_fds). duplex: both ends read and
 * write; else *a only reads and *b only writes. Close-on-exec / non-inheritable.
 * POSIX: socketpair(AF_UNIX, SOCK_STREAM); Windows: an overlapped named pipe. */
int mproc__pal_conn_pair(bool duplex, mproc_os_handle *a, mproc_os_handle *b);
/* Send all of p1[0..n1) then p2[0..n2) (either may be empty) on a handle of either kind above,
 * waiting as long as it takes. MPROC_EPIPE if the peer has closed (never SIGPIPE); EINTR retried. */
int mproc__pal_conn_send(mproc_os_handle h, const void *p1, size_t n1, const void *p2, size_t n2);
/* Receive between 1 and cap bytes, waiting up to the deadline; *n = 0 with 0 means end of file;
 * MPROC_ETIMEDOUT if nothing arrived. */
int mproc__pal_conn_recv(mproc_os_handle h, void *buf, size_t cap, int64_t deadline_ns, size_t *n);
/* Whether no one can receive what is sent on the send handle h any more (every receiving end closed),
 * without waiting. POSIX: poll reports POLLERR / POLLHUP; Windows: false (unused there). */
bool mproc__pal_conn_peer_gone(mproc_os_handle h);

/* Things mproc__pal_wait_ready can wait for. */
typedef enum mproc__wait_kind {
  MPROC__WAIT_CONN = 1,    /* a connection handle: readable (data or end of file) */
  MPROC__WAIT_SENTINEL = 2 /* a process sentinel (mproc__pal_sentinel): the process has ended; or any handle
                              the PAL gives as one (POSIX readable, Windows signalled: a listener's) */
} mproc__wait_kind;
typedef struct mproc__wait_item {
  mproc_os_handle h;
  mproc__wait_kind kind;
} mproc__wait_item;
/* Wait until at least one item is ready or the deadline; sets ready[i]. 0 if any is ready,
 * MPROC_ETIMEDOUT if none. */
int mproc__pal_wait_ready(const mproc__wait_item *items, size_t n, int64_t deadline_ns, bool *ready);

/* The handle that signals the end of a started child for mproc__pal_wait_ready(MPROC__WAIT_SENTINEL):
 * the child's own handle, child->handle, where it has one (Windows: the process handle; Linux: a pidfd,
 * the spawn's, mproc__pal_fork_sentinel's or the one a fork server sent), ready once the process has
 * ended and not before (a forkserver child's boot link holds its unread answer to start while it runs);
 * else (POSIX without pidfds) `boot`, the parent's end of the bootstrap connection, at end of file once
 * the child has gone. */
mproc_os_handle mproc__pal_sentinel(const mproc__child *child, mproc_os_handle boot);

/* ==== processes running a function (process module): src/posix/process.c, src/win32/process.c =========== */

/* A fork child needs no boot link (a socket pair and three closes, several microseconds of a start)
 * when the system gives a sentinel of its own: Linux 5.3+, a pidfd (probed once). Then
 * mproc__pal_fork_sentinel opens it into child->handle right after the fork, while the child cannot
 * have been reaped (its pid is still ours). Elsewhere false (Windows: there is no fork). */
bool mproc__pal_fork_sentinel_supported(void);
int mproc__pal_fork_sentinel(mproc__child *child);

/* fork(): 0 in both processes; *pid is the child's pid in the parent and 0 in the child.
 * MPROC_ENOTSUP on Windows. The library's global lock is held across the fork so the child never
 * inherits it locked. */
int mproc__pal_fork(int64_t *pid);
/* Whether fork exists here (false on Windows). */
bool mproc__pal_fork_supported(void);
/* End the calling process at once with `code`, running no atexit handler (_exit). */
void mproc__pal_exit_now(int code);

/* Kill on parent death, the operating system's part. The portable part, which works everywhere and
 * for every start method, is the child's watchdog thread blocked on its end of the boot link
 * (src/process.c); these add the kernel's own mechanism where it exists and is right:
 *   - mproc__pal_child_bind, in the parent once a spawned child runs: Windows puts the child in a
 *     kill-on-close job object of its own (held in child->os, closed by mproc__pal_child_release),
 *     so the system kills it when the parent's last handle goes, however the parent ends. Child
 *     processes of the child are not put in it (silent breakaway), as PR_SET_PDEATHSIG applies to the
 *     child alone. Best effort (the watchdog remains); POSIX: nothing.
 *   - mproc__pal_die_with_parent, in the child before its target runs: Linux sets PR_SET_PDEATHSIG
 *     (SIGKILL), then ends at once if parent_pid is no longer its parent (it died before the call).
 *     Only when by_main_thread: the kernel sends the signal when the *thread* that created the child
 *     ends, so a child started from another thread would die with that thread. Elsewhere: nothing.
 *   - mproc__pal_is_main_thread: whether the calling thread is the process's initial thread (Linux;
 *     false where it cannot be told). */
void mproc__pal_child_bind(mproc__child *child);
void mproc__pal_die_with_parent(int64_t parent_pid, bool by_main_thread);
bool mproc__pal_is_main_thread(void);

/* Locate a function for re-execution: append an opaque reference (module path, offset, identity of
 * the binary) to out. MPROC_ENOENT if fn is not inside a module of this process. */
int mproc__pal_fn_locate(void *fn, mproc__buf *out);
/* In the re-executed child: find the function again. MPROC_ENOENT with a message if the module
 * cannot be found or is not the same binary (changed on disk). */
int mproc__pal_fn_resolve(const void *ref, size_t len, void **fn);

/* ==== the main guard's trust in a bootstrap: src/posix/guard.c, src/win32/guard.c ======================= */

/* Whether this process runs in secure-execution mode: started set-user-ID, set-group-ID or with file
 * capabilities (Linux getauxval(AT_SECURE); BSD/macOS issetugid()). Such a process never acts on the
 * guard's flags, and the spawn and forkserver start methods are refused in it. Windows: false (no
 * such mode: a program runs with the token of whoever started it). */
bool mproc__pal_secure_exec(void);

/* The largest value a handle can have in a guard flag ("--mproc-spawn=<handle>"): INT_MAX on POSIX,
 * 2^32 - 1 on Windows (handles are 32-bit values even in 64-bit processes). */
uint64_t mproc__pal_handle_max(void);

/* Whether `h`, named by a guard flag, is a boot link that an mproc parent made for this process: the
 * guard acts on a bootstrap only when this returns 0. Checked where the OS can tell, with the
 * kernel's word, never the peer's:
 *   POSIX: h is a Unix-domain stream socket whose peer (SO_PEERCRED / getpeereid) is our parent
 *          process (getppid), with our effective user id, and the parent runs our executable file
 *          (Linux: /proc/<ppid>/exe has our device and inode; elsewhere MPROC_ENOTSUP: untested);
 *   Windows: h is a named pipe whose other end belongs to our parent process, which runs as our user
 *          (token SID) and from our image file (volume serial and file index).
 * 0, or MPROC_EPERM (MPROC_ENOTSUP where it cannot be told) with a message that says which check
 * failed: for this process's stderr only, never for the peer (it could reveal the file system). */
int mproc__pal_boot_link_check(mproc_os_handle h);

/* ==== shared memory, and waiting on words in it: src/posix/shm.c, src/win32/shm.c ===================== */

/* A block of shared memory mapped in this process. */
typedef struct mproc__shm {
  mproc_os_handle h; /* the block's handle (POSIX: an fd; Windows: a file-mapping HANDLE), non-inheritable */
  void *base;        /* where it is mapped here */
  size_t size;       /* its size: what the creator asked for */
  size_t mapped;     /* the bytes mapped (size rounded up as the OS maps) */
} mproc__shm;

/* An anonymous block of size bytes (> 0), zeroed. POSIX: Linux memfd sealed against growing and
 * shrinking (a peer cannot truncate it under the others: their next access would fault), else
 * shm_open of a random name unlinked at once; Windows: a pagefile-backed mapping with a user-only
 * DACL. 0 or an error (MPROC_ENOMEM when the system has no room). */
int mproc__pal_shm_anon(size_t size, mproc__shm *out);
/* Whether anonymous blocks are sealed memfds and words can be waited on with futexes (Linux): what a
 * connection's shared-memory path needs (connection_shm.c); elsewhere it keeps its byte streams. */
bool mproc__pal_shm_conn_ok(void);
/* Map a block handed from another process by its handle (now this process's, owned by *out on
 * success only): its size is the block's own (POSIX: fstat; Windows: the size the creator stored), and
 * must be at least `need`, else MPROC_ESYS. */
int mproc__pal_shm_map(mproc_os_handle h, size_t need, mproc__shm *out);
/* A named block: create (exclusively: MPROC_EEXIST if the name exists) a zeroed block
 * of size bytes, mode 0600 / a user-only DACL, or attach to an existing one (size: its creator's;
 * MPROC_ENOENT if there is none). name follows mproc's portable rule (checked by the caller).
 * POSIX: shm_open("/" name); Windows: CreateFileMapping/OpenFileMapping of "Local\" name, rounded to
 * pages with the creator's size stored at the end of the last page. */
int mproc__pal_shm_named(const char *name, bool create, size_t size, mproc__shm *out);
/* Remove a name (POSIX shm_unlink; Windows: nothing to do, a block dies with its last handle).
 * MPROC_ENOENT if there is none. */
int mproc__pal_shm_unlink(const char *name);
/* Unmap and close; leaves *s empty. An empty one is ignored. */
void mproc__pal_shm_close(mproc__shm *s);
/* Tracking of named blocks: track true asks that the name be removed when this process ends without
 * having removed it, however it ends (killed included); false takes the request back (after unlink).
 * POSIX: on first use a tracker process is started (a double fork: it is nobody's child; SIGINT and
 * SIGTERM ignored, every other descriptor closed) that reads requests from a pipe whose write end only
 * this process holds (close-on-exec: a fork child holds it too, so the names outlive it as well), and
 * when the pipe closes removes what is still tracked, then ends. Windows: nothing to do (a block dies
 * with its last handle). 0 or an error. */
int mproc__pal_shm_track(const char *name, bool track);

/* ---- this process's identity, as the owner of a lock ------------------------------------------------
 * A process id: the process number (Linux: the pid; Windows: the pid / 4, Windows pids being multiples
 * of 4) in the high 32 bits, never 0 and below 2^30, and a birth token in the low 32 bits (the process's
 * start time: Linux /proc/<pid>/stat; Windows GetProcessTimes), so that a recycled pid never passes for
 * the process that had it. Cached: no kernel call after the first (refreshed in a fork child). */
uint64_t mproc__pal_self_id(void);
/* Its cache: the id once mproc__pal_self_id has made it in this process, else 0 (a fork child starts
 * at 0). For a check on a hot path that reads it (atomically) and calls mproc__pal_self_id on 0. */
extern volatile uint64_t mproc__pal_self_id_cache;
/* Whether the process an id names still runs: false once it has ended (a zombie counts as ended) or
 * its number now names another process. */
bool mproc__pal_id_alive(uint64_t id);
/* The calling thread's id (Linux gettid; Windows GetCurrentThreadId), never 0. Cached per thread. */
uint32_t mproc__pal_thread_id(void);

/* ---- waiting on a 32-bit word in shared memory ------------------------------------------------------
 * Each shared object has a queue: a mproc__wq (in the object's shared memory, the PAL's) and a handle
 * (Linux: none, MPROC_NO_HANDLE: futexes on the words' addresses; Windows: a semaphore handed with the
 * object). Words and the queue must be 4-byte aligned in shared memory. */
typedef struct mproc__wq {
  volatile uint32_t waiters; /* threads in mproc__pal_word_wait on this queue */
  uint32_t reserved;
} mproc__wq;
/* The queue handle for a new object. */
int mproc__pal_wq_handle(mproc_os_handle *h);
/* Sleep while *word == val: return 0 on a wake (maybe spurious: check the word again), MPROC_ETIMEDOUT
 * at the deadline (INT64_MAX: none), or, when owner is not 0, MPROC_EOWNERDEAD once the process owner
 * names has ended. Windows learns that at once from the owner's process handle; Linux checks between
 * futex waits of at most 20 ms. */
int mproc__pal_word_wait(mproc_os_handle h, mproc__wq *q, const volatile uint32_t *word, uint32_t val, uint64_t owner,
                         int64_t deadline);
/* Wake waiters of word: at least n of them (UINT32_MAX: all) when there are; no kernel call when the
 * queue has no waiter. Windows wakes every waiter of the queue (a semaphore cannot choose): they check
 * their words and sleep again. */
void mproc__pal_word_wake(mproc_os_handle h, mproc__wq *q, volatile uint32_t *word, uint32_t n);
/* Kernel calls made by the two above in this process (tests: none when uncontended). */
uint64_t mproc__pal_sync_calls(void);

/* ---- a flag for mproc_wait ------------------------------------------------------------------------
 * A handle that mproc__pal_wait_ready (MPROC__WAIT_SENTINEL) reports ready while the flag is set, for
 * shared objects that an application waits on beside connections and processes (a queue). Handed to
 * other processes with its object. Linux: an eventfd; Windows: a manual-reset event; elsewhere
 * MPROC_ENOTSUP. set and clear are one kernel call each; the caller keeps the flag's state in shared
 * memory to call them only on a change. */
int mproc__pal_flag_open(mproc_os_handle *h);
void mproc__pal_flag_set(mproc_os_handle h);
void mproc__pal_flag_clear(mproc_os_handle h);

/* ==== handing handles to other processes, and the fork server: src/posix/fdpass.c, src/win32/fdpass.c ==== */

/* ---- handles to a running process (the object frames of src/connection.c) -------------------
 *
 * An object frame is a header on the connection's send handle and a body that carries handles. The
 * body has fields of connection.c's own and, at offset `at`, the PAL's part: MPROC__PAL_ORIGIN_SIZE
 * bytes that say where the handles come from, then n 8-byte slots. Where the body goes is the
 * connection's rule: on the bulk handle if the end has one, else right after the header. Nothing of a
 * frame that is never received stays in the receiver:
 *   POSIX: the body goes on e->bulk with the descriptors attached (SCM_RIGHTS): the kernel gives the
 *     receiver copies when it takes the body, and drops them if it never does (its socket closes). The
 *     PAL's part stays 0. MPROC_ENOTSUP for an end without a socket pair (only a Pipe()'s ends have one).
 *   Windows: the receiver pulls. The sender parks a copy of each handle in its own process and sends
 *     its identity (pid and creation time) and the copies' values; the receiver takes them with
 *     DuplicateHandle(DUPLICATE_CLOSE_SOURCE), which closes the parked copy. So a handle never received
 *     stays parked in the sender until it ends (never in the receiver), and the sender must still run
 *     when the receiver takes it. A failed send closes its parked copies. */
#define MPROC__PAL_ORIGIN_SIZE 16
int mproc__pal_conn_send_handles(const mproc__conn_end *e, const void *hdr, size_t hlen, unsigned char *body,
                                 size_t blen, size_t at, const mproc_os_handle *hs, size_t n);
/* Receive 1..cap bytes of a body from h (the bulk handle), waiting up to the deadline, and the
 * descriptors that came with them (up to maxfds into fds, close-on-exec; beyond maxfds they are
 * closed). POSIX only (the bodies Windows sends come inline); elsewhere MPROC_ENOTSUP. */
int mproc__pal_conn_recv_handles(mproc_os_handle h, void *buf, size_t cap, int64_t deadline_ns, size_t *n,
                                 mproc_os_handle *fds, size_t maxfds, size_t *nfds);
/* The n handles of a received body into out[], this process's from now on: POSIX: the nfds descriptors
 * that came with it (nfds must be n); Windows: pulled from the sender the PAL's part names (pal_part:
 * the body at `at`). On failure (a message) nothing is left open here: the descriptors are closed, or
 * what was pulled; a handle not pulled stays parked in the sender. */
int mproc__pal_handles_take(const unsigned char *pal_part, size_t n, const mproc_os_handle *fds, size_t nfds,
                            mproc_os_handle *out);

/* ---- descriptor passing for the fork server ------------------------------------------------------
 * Only where fork exists (POSIX); on Windows these report MPROC_ENOTSUP. The fork server's loop is
 * src/process/forkserver.c: these are its mechanisms. */

/* At most this many descriptors go with one message (Linux's SCM_MAX_FD). */
#define MPROC__PAL_MAX_FDS 253
/* Send buf[0..len) (len >= 1) on a connection handle with fds attached (SCM_RIGHTS): the peer
 * receives copies of them. MPROC_EPIPE if the peer has closed; MPROC_ENOTSUP without fork. */
int mproc__pal_conn_send_fds(mproc_os_handle h, const void *buf, size_t len, const mproc_os_handle *fds, size_t nfds);
/* Receive 1..cap bytes (blocking; *n = 0 is end of file) and the descriptors that came with them
 * (close-on-exec; beyond maxfds they are closed). *sender (when not NULL): the pid of the process that
 * sent these bytes, as the kernel tells it where mproc__pal_conn_tell_senders(h) was set, else -1. */
int mproc__pal_conn_recv_fds(mproc_os_handle h, void *buf, size_t cap, size_t *n, mproc_os_handle *fds, size_t maxfds,
                             size_t *nfds, int64_t *sender);
/* Ask the kernel to tell, with every receive on h, who sent the bytes (Linux SO_PASSCRED). Set it before
 * the peer can send. Whether it is set (false where the system cannot tell). */
bool mproc__pal_conn_tell_senders(mproc_os_handle h);

/* Children's exits as an event, for a server that forks (src/process/forkserver.c): a handle that
 * becomes readable (MPROC__WAIT_CONN) when a child of this process may have ended (POSIX: a signalfd of
 * SIGCHLD on Linux, else a SIGCHLD self-pipe; SIGINT is ignored too, since a Ctrl-C to the terminal's process group is
 * for the children to decide). MPROC_ENOTSUP without fork. */
int mproc__pal_child_events_open(mproc_os_handle *h);
/* In a fork child of such a server: put the signal dispositions back and close the event handles. */
void mproc__pal_child_events_close(void);
/* Take the pending events, so that the handle becomes readable again only for an exit after this call.
 * Once per wake-up, before the mproc__pal_reap loop (never after it: an exit in between would be
 * taken and not reaped until the next). */
void mproc__pal_child_events_drain(void);
/* Reap one ended child of this process without waiting: `which` (a pid), or any (-1). 1 with *pid and
 * *code (exit status, or -signal), 0 when none is left to reap (or `which` runs still, or is not ours).
 * For any, called until 0: one event can stand for several exits. */
int mproc__pal_reap(int64_t which, int64_t *pid, int *code);

/* ==== listeners and clients (Listener/Client): src/posix/listen.c, src/win32/listen.c =================== */

/* Address families: the values of mproc_family (mproc/listener.h; listener.c checks that they agree). */
#define MPROC__FAMILY_UNIX 1  /* Unix-domain stream sockets: a path, or the Linux abstract namespace */
#define MPROC__FAMILY_INET 2  /* TCP over IPv4 */
#define MPROC__FAMILY_INET6 3 /* TCP over IPv6 */
#define MPROC__FAMILY_PIPE 4  /* Windows named pipes */

/* An address, parsed by listener.c. */
typedef struct mproc__addr {
  int family;
  const char *name; /* UNIX: a path, or "@name" in the Linux abstract namespace ("@" alone to listen: the kernel
                       picks a name); PIPE: "\\.\pipe\<name>"; INET, INET6: the host, a name or a numeric
                       address ("": listening, every address; connecting, this machine) */
  unsigned port;    /* INET, INET6 (0 to listen: the system picks one) */
} mproc__addr;

/* The family of a listener given neither address nor family: MPROC__FAMILY_UNIX on POSIX,
 * MPROC__FAMILY_PIPE on Windows (CPython's default_family). */
int mproc__pal_listen_default_family(void);

/* A listening socket or named pipe, the backend's. */
typedef struct mproc__listen mproc__listen;

/* Listen on a. *bound: the address as bound, malloc'ed, in the form listener.c parses (a path or
 * "@name", "host:port" with a numeric host, "[host]:port", the pipe's name): the port picked for 0, the
 * name picked for "@". a->name NULL: a new address for this listener alone (UNIX: "listener-<random>" in a
 * fresh directory of mode 0700 under $TMPDIR or /tmp, so only this user can reach it; PIPE: a random
 * name); INET and INET6 never come so (listener.c gives loopback, port 0).
 *   POSIX: a non-blocking, close-on-exec SOCK_STREAM socket; TCP: SO_REUSEADDR (as CPython), INET6 with
 *     IPV6_V6ONLY. A path socket is created with the process's umask and removed by close (only if it is
 *     still the file we bound), the generated directory too. PIPE: MPROC_ENOTSUP.
 *   Windows: PIPE: overlapped byte-mode instances (PIPE_UNLIMITED_INSTANCES, PIPE_REJECT_REMOTE_CLIENTS,
 *     the first with FILE_FLAG_FIRST_PIPE_INSTANCE, so a name someone else holds is refused), whose DACL
 *     admits the current user alone; one instance always waits in an overlapped ConnectNamedPipe. TCP:
 *     ws2_32.dll (loaded at run time), SO_EXCLUSIVEADDRUSE, FD_ACCEPT signalled on an event
 *     (WSAEventSelect). UNIX: MPROC_ENOTSUP.
 * Errors: MPROC_EEXIST (the address is in use), MPROC_ENOENT (no such host, no such directory),
 * MPROC_EINVAL (a path too long for a socket address), MPROC_EPERM, MPROC_ENOTSUP, MPROC_ESYS. */
int mproc__pal_listen(const mproc__addr *a, int backlog, mproc__listen **out, char **bound);
/* The item mproc__pal_wait_ready reports when a connection waits to be taken (POSIX: the socket, readable;
 * Windows: an event, as MPROC__WAIT_SENTINEL: signalled). */
void mproc__pal_listen_wait_item(const mproc__listen *l, mproc__wait_item *it);
/* Take one waiting connection, never blocking: 0 with *h (a blocking handle for mproc__pal_conn_send /
 * recv, close-on-exec / non-inheritable; TCP_NODELAY on TCP) and *peer (malloc'ed: "host:port",
 * "[host]:port", a Unix client's bound path, or "" where the peer has no address); MPROC_ETIMEDOUT when
 * none waits; or an error. */
int mproc__pal_listen_accept(mproc__listen *l, mproc_os_handle *h, char **peer);
/* Whether the peer of h, accepted by l, runs as this process's (effective) user: 1 yes, 0 no,
 * MPROC_ENOTSUP where the system cannot tell. POSIX: a Unix socket's peer credentials (SO_PEERCRED,
 * getpeereid); TCP on Linux: a peer on this machine is found in /proc/net/tcp (tcp6) by its address and
 * port, and its socket's owner compared; a peer on another machine cannot be told. Windows: MPROC_ENOTSUP
 * (named pipes admit the user alone by their DACL; TCP cannot be told). */
int mproc__pal_peer_same_user(const mproc__listen *l, mproc_os_handle h);
/* Stop listening and release everything (see mproc__pal_listen for what is removed). NULL is ignored. */
void mproc__pal_listen_close(mproc__listen *l);

/* Connect to a, waiting up to the deadline: *h as accepted above. Errors: MPROC_ENOENT (nothing listens
 * there: no such socket file or pipe, the connection refused, no such host), MPROC_ETIMEDOUT, MPROC_EPERM,
 * MPROC_EINVAL, MPROC_ENOTSUP (a family this system lacks), MPROC_ESYS. A Unix socket whose backlog is
 * full, or a pipe whose instances are all taken, is tried again until the deadline. */
int mproc__pal_connect(const mproc__addr *a, int64_t deadline, mproc_os_handle *h);

/* ==== authentication: random bytes and HMAC: src/posix/crypto.c, src/win32/crypto.c ==================== */

/* n random bytes from the operating system's generator, for keys and challenges. POSIX: getentropy
 * (Linux getrandom; the BSDs and macOS their own), in pieces of 256 bytes; Windows: BCryptGenRandom
 * with the system-preferred generator (bcrypt.dll loaded from the system directory at run time, so the
 * library imports KERNEL32 and the C runtime alone). 0, or MPROC_ESYS naming the call. */
int mproc__pal_random(void *buf, size_t n);

/* The digests of CPython's connection handshake (multiprocessing.connection._ALLOWED_DIGESTS). */
typedef enum mproc__digest {
  MPROC__DIGEST_MD5 = 1,
  MPROC__DIGEST_SHA256,
  MPROC__DIGEST_SHA384,
  MPROC__DIGEST_SHA3_256,
  MPROC__DIGEST_SHA3_384
} mproc__digest;
/* The largest digest (SHA-384), in bytes. */
#define MPROC__DIGEST_MAX 48

/* HMAC-<d> of msg[0..mlen) under key[0..klen) into out; *outlen is the digest's size. The platform's
 * crypto computes it, never code of ours: POSIX OpenSSL's libcrypto (HMAC()), when mproc was built with
 * it (MPROC_WITH_LIBCRYPTO, found by find_package(OpenSSL)); Windows BCrypt (BCRYPT_ALG_HANDLE_HMAC_FLAG;
 * SHA-3 where the system has it: Windows 11 24H2 and later, not wine 8). MPROC_ENOTSUP with a message
 * naming the digest when the platform lacks it (a build without libcrypto: every digest; a FIPS-only
 * libcrypto: MD5), else 0 or MPROC_ESYS. key may be NULL when klen is 0. */
int mproc__pal_hmac(mproc__digest d, const void *key, size_t klen, const void *msg, size_t mlen,
                    unsigned char out[MPROC__DIGEST_MAX], size_t *outlen);

#endif /* MPROC_PAL_H */
