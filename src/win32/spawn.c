/*
 * Windows PAL: starting, waiting for and ending child programs (subprocess).
 *
 * CreateProcessW with everything converted to UTF-16 at this edge: the program path, the command line,
 * the environment block (CREATE_UNICODE_ENVIRONMENT) and the cwd.
 *
 * Handle inheritance. The child gets exactly its three stdio handles and pass_fds, even when other
 * threads start programs at the same moment: STARTUPINFOEXW with PROC_THREAD_ATTRIBUTE_HANDLE_LIST and
 * bInheritHandles = TRUE. Every listed handle must be inheritable, and the PAL's handles are not (so that
 * no other CreateProcess picks them up). For stdio we give the child inheritable *duplicates*, made just
 * before CreateProcessW and closed just after, rather than flipping HANDLE_FLAG_INHERIT on the caller's
 * handles:
 *   - two of our spawns that share a handle (the parent's own stdout, or one MPROC_HANDLE given to two
 *     Popens) never disturb each other: with flag flipping, one thread clearing the flag between the
 *     other's set and its CreateProcessW makes that CreateProcessW fail (listed handle not inheritable);
 *   - the caller's handles keep their flags, and the child's stdout and stderr are one handle when they
 *     are one handle in the parent (listed once: a duplicate entry makes CreateProcessW fail).
 * The race neither choice can close: while the duplicates exist (until CreateProcessW returns), a
 * CreateProcess with bInheritHandles = TRUE and *no* handle list inherits them too, and a pipe end held
 * by that unrelated child delays end of file on our pipe until it exits. Our own such spawns
 * (inherit_fds = true) are kept out by g_spawn_lock: they take it exclusive, every other spawn shared,
 * from the first duplicate to the last close. Another library's CreateProcess in this process cannot be
 * kept out by a user-mode library (Python and libuv have the same window); we keep the window short and
 * never widen it to the caller's handles.
 * pass_fds must keep their values in the child, so those handles themselves are made inheritable for the
 * duration and their flags restored after; a process-wide lock serialises that step between spawns that
 * pass handles (they could share one), and nobody else waits on it.
 * inherit_fds (close_fds=False): no list, every inheritable handle of the parent goes to the child.
 * A stdio slot of MPROC_NO_HANDLE gives the child (a duplicate of) the parent's GetStdHandle value, if
 * it has one. Windows 7 console pseudo-handles (value & 3 == 3) cannot be listed and are left out of the
 * list, as CPython does: the console gives them to a console child anyway.
 *
 * The environment block is sorted case-insensitively by name as Windows requires (CompareStringOrdinal),
 * names compare case-insensitively when env_extra is applied, and a replaced environment keeps the
 * system variables Windows programs need (see k_required_vars).
 *
 * Program lookup (as libuv's search_path, written anew): a name without a directory separator is looked
 * for in the PATH of the child's environment (the same rule as the POSIX backend; the parent's system
 * directories when PATH is unset), not in the current directory; a name with no extension gets ".com"
 * then ".exe" appended (the two kinds CreateProcessW runs); with an extension the name is tried as it is
 * first. The file found is passed to CreateProcessW as lpApplicationName, so Windows does no search of its
 * own; a long one (MAX_PATH or more) in its short or \\?\ form, a long cwd in its short form
 * (fit_for_create_process). A batch file found is never given to CreateProcessW: the system's cmd.exe
 * runs it with a command line built for cmd's rules ("batch files through cmd.exe" below).
 * The shell of `command` is <system dir>\cmd.exe (never %ComSpec%, which the environment controls), run
 * as `SHELL /d /c "COMMAND"`: as CPython, plus /d against the registry's AutoRun command; cmd.exe strips
 * the outer quotes and keeps the rest. Shell and batch children get a kill-on-close job of their own
 * before they run (job_for below), so terminate/kill and timeouts end what cmd.exe started too; so do
 * process trees (process_tree: a job without breakaway, tree.c) and kill_on_parent_death (a
 * kill-on-close job, holding the program alone without process_tree).
 * One lock (g_spawn_lock) keeps an inherit_fds spawn from inheriting another spawn's handles in flight.
 *
 * Windows and consoles (Python's creationflags and startupinfo): the caller's CREATE_* flags are OR'ed in
 * and its STARTUPINFO dwFlags and wShowWindow passed on; the portable layer refused what would hang the
 * child or fight mproc's own flags. A child given a console of its own (CREATE_NEW_CONSOLE) whose three
 * streams are all left to inherit gets no STARTF_USESTDHANDLES, so it uses its new console, as Python
 * does; any redirected stream makes mproc pass all three (the others the parent's), as before.
 * CTRL_BREAK (MPROC_SIGBREAK) goes through GenerateConsoleCtrlEvent to the child's process group, and only
 * where it can arrive (send_ctrl_break).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pty.h"
#include "spawn.h"
#include "win32.h"

#ifndef PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE /* older MinGW headers lack it: ProcThreadAttributeValue(22, ...) */
#define PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE 0x00020016
#endif
#ifndef ERROR_ELEVATION_REQUIRED /* winerror.h of the SDK has it; mingw-w64's does not */
#define ERROR_ELEVATION_REQUIRED 740L
#endif

/* ---- command line --------------------------------------------------------------------------- */

/* An ordinary argument needs quotes when it is empty or holds whitespace (any control character too,
 * which costs nothing and is safe with every parser) or a '"'. */
static bool needs_quotes(const wchar_t *a) {
  if (!*a) return true;
  for (; *a; ++a)
    if (*a <= L' ' || *a == L'"') return true;
  return false;
}

static wchar_t *put_backslashes(wchar_t *o, size_t n) {
  while (n--) *o++ = L'\\';
  return o;
}

/* argv[1..]: CommandLineToArgvW and the Microsoft C runtime read 2n backslashes before a '"' as n
 * backslashes and a quote that opens or closes, 2n+1 backslashes before a '"' as n backslashes and a
 * literal '"', and backslashes anywhere else literally. So inside quotes: a '"' becomes \" with the
 * backslashes before it doubled, and the backslashes before the closing quote are doubled. */
static wchar_t *quote_arg(wchar_t *o, const wchar_t *a) {
  if (!needs_quotes(a)) {
    size_t n = wcslen(a);
    memcpy(o, a, n * sizeof(wchar_t));
    return o + n;
  }
  *o++ = L'"';
  for (;;) {
    size_t bs = 0;
    while (*a == L'\\') {
      ++a;
      ++bs;
    }
    if (*a == L'\0') {
      o = put_backslashes(o, 2 * bs);
      break;
    }
    if (*a == L'"') {
      o = put_backslashes(o, 2 * bs + 1);
      *o++ = *a++;
    } else {
      o = put_backslashes(o, bs);
      *o++ = *a++;
    }
  }
  *o++ = L'"';
  return o;
}

/* argv[0] is split by other rules: up to the first whitespace, or from a leading '"' to the next '"',
 * with no backslash escapes at all. So it is quoted whole when needed, and a '"' in it is impossible. */
static wchar_t *quote_program(wchar_t *o, const wchar_t *a) {
  bool q = !*a;
  for (const wchar_t *p = a; *p; ++p) q = q || *p <= L' ';
  size_t n = wcslen(a);
  if (q) *o++ = L'"';
  memcpy(o, a, n * sizeof(wchar_t));
  o += n;
  if (q) *o++ = L'"';
  return o;
}

int mproc__win32_quote_args(const wchar_t *const *argv, wchar_t **out) {
  *out = NULL;
  if (!argv || !argv[0]) return mproc__fail(MPROC_EINVAL, "command line: argv is empty");
  if (wcschr(argv[0], L'"'))
    return mproc__fail(MPROC_EINVAL,
                       "command line: argv[0] contains '\"', which Windows cannot pass in a program name");
  size_t size = 1; /* worst case per argument: every character escaped, two quotes, a space */
  for (size_t i = 0; argv[i]; ++i) size += 2 * wcslen(argv[i]) + 3;
  wchar_t *buf = (wchar_t *)malloc(size * sizeof(wchar_t));
  if (!buf) return mproc__fail(MPROC_ENOMEM, "command line: out of memory");
  wchar_t *o = quote_program(buf, argv[0]);
  for (size_t i = 1; argv[i]; ++i) {
    *o++ = L' ';
    o = quote_arg(o, argv[i]);
  }
  *o = L'\0';
  *out = buf;
  return 0;
}

/* ---- batch files through cmd.exe (BatBadBut, CVE-2024-24576) ------------------------------------ */

/* CreateProcessW runs a .bat / .cmd file as `cmd.exe /c <our command line>`, and cmd.exe parses it by its
 * own rules, against which the C runtime's quoting above is no defence: "&calc" runs calc, %PATH% is
 * expanded, and cmd.exe looks for argv[0] again, in the current directory first. So mproc never hands a
 * batch file to CreateProcessW; it runs the system's cmd.exe itself with a command line it built for
 * cmd's rules (after Rust's std, which fixed the CVE this way; our own code):
 *
 *   "<system dir>\cmd.exe" /d /e:ON /v:OFF /c ""<absolute script path>" ARG1 ARG2 ..."
 *
 *   /d      no AutoRun command from the registry;  /v:OFF  no delayed (!VAR!) expansion;
 *   /e:ON   command extensions in their default state;
 *   /c "..."  cmd strips the first and the last quote of the rest and runs what remains.
 * An argument is quoted unless it is made only of letters, digits, non-ASCII characters other than C1
 * controls, and # $ * + - . / : ? @ \ _ (cmd splits arguments at , ; = and more). Inside the quotes a '"'
 * is doubled (cmd's quote state flips twice, so everything stays inside quotes), and the backslashes
 * before a '"' or before the closing quote are doubled, so that a batch file passing %* on to a program
 * gives that program's C runtime exactly the original arguments. Quotes do not protect '%' from
 * expansion, and no escape that works on Windows' cmd.exe (Rust uses %%cd:~,%) behaves the same in
 * wine's, so an argument holding '%' is refused; so are CR and LF, which end the command line. */
static bool bat_plain_char(wchar_t c) {
  if (c >= 0x80) return c > 0x9F; /* non-ASCII, except the C1 controls */
  if ((c >= L'a' && c <= L'z') || (c >= L'A' && c <= L'Z') || (c >= L'0' && c <= L'9')) return true;
  return c != 0 && wcschr(L"#$*+-./:?@\\_", c) != NULL;
}

static wchar_t *quote_bat_arg(wchar_t *o, const wchar_t *a) {
  size_t n = wcslen(a);
  bool q = n == 0 || a[n - 1] == L'\\';
  for (size_t i = 0; i < n && !q; ++i) q = !bat_plain_char(a[i]);
  if (q) *o++ = L'"';
  size_t bs = 0;
  for (; *a; ++a) {
    if (*a == L'\\') {
      ++bs;
    } else {
      if (*a == L'"') {
        o = put_backslashes(o, bs); /* 2n backslashes before the '"' */
        *o++ = L'"';                /* and the '"' doubled */
      }
      bs = 0;
    }
    *o++ = *a;
  }
  if (q) {
    o = put_backslashes(o, bs);
    *o++ = L'"';
  }
  return o;
}

int mproc__win32_batch_cmdline(const wchar_t *cmd_exe, const wchar_t *script, const wchar_t *const *args,
                               wchar_t **out) {
  *out = NULL;
  for (const wchar_t *c = script; *c; ++c)
    if (*c == L'"' || *c == L'%' || *c < L' ')
      return mproc__fail(MPROC_EINVAL, "batch file: its path holds '%s', which cmd.exe cannot be given safely",
                         *c == L'"'   ? "\""
                         : *c == L'%' ? "%"
                                      : "a control character");
  size_t size = wcslen(cmd_exe) + wcslen(script) + 40;
  for (size_t i = 0; args[i]; ++i) {
    const wchar_t *bad = wcspbrk(args[i], L"%\r\n");
    if (bad)
      return mproc__fail(MPROC_EINVAL,
                         "batch file: argument %zu holds %s, which cmd.exe %s; a batch file cannot be given it safely "
                         "(pass it in the environment instead, or quote it yourself in a command)",
                         i + 1,
                         *bad == L'%'    ? "'%'"
                         : *bad == L'\r' ? "a CR"
                                         : "a LF",
                         *bad == L'%' ? "expands even inside quotes" : "takes as the end of the command");
    size += 2 * wcslen(args[i]) + 3;
  }
  wchar_t *buf = (wchar_t *)malloc(size * sizeof(wchar_t));
  if (!buf) return mproc__fail(MPROC_ENOMEM, "batch file: out of memory");
  wchar_t *o = quote_program(buf, cmd_exe);
  static const wchar_t opts[] = L" /d /e:ON /v:OFF /c \"\"";
  memcpy(o, opts, sizeof opts - sizeof(wchar_t));
  o += MPROC__ARRAY_LEN(opts) - 1;
  size_t n = wcslen(script);
  memcpy(o, script, n * sizeof(wchar_t));
  o += n;
  *o++ = L'"';
  for (size_t i = 0; args[i]; ++i) {
    *o++ = L' ';
    o = quote_bat_arg(o, args[i]);
  }
  *o++ = L'"';
  *o = L'\0';
  /* cmd.exe reads at most 8191 characters of a command (more are cut off, not refused) */
  if (wcslen(buf) > 8191) {
    size_t len = wcslen(buf);
    free(buf);
    return mproc__fail(MPROC_EINVAL, "batch file: the command line is %zu characters; cmd.exe accepts at most 8191",
                       len);
  }
  *out = buf;
  return 0;
}

bool mproc__win32_is_batch(const wchar_t *path) {
  const wchar_t *b = path;
  for (const wchar_t *p = path; *p; ++p)
    if (*p == L'\\' || *p == L'/') b = p + 1;
  size_t n = 0; /* the name up to an alternate data stream (":stream"), without trailing dots and spaces */
  while (b[n] && b[n] != L':') ++n;
  while (n && (b[n - 1] == L'.' || b[n - 1] == L' ')) --n;
  if (n < 4 || b[n - 4] != L'.') return false;
  wchar_t ext[4];
  for (int i = 0; i < 3; ++i) {
    wchar_t c = b[n - 3 + i];
    ext[i] = (c >= L'A' && c <= L'Z') ? (wchar_t)(c - L'A' + L'a') : c;
  }
  ext[3] = L'\0';
  return wcscmp(ext, L"bat") == 0 || wcscmp(ext, L"cmd") == 0;
}

/* ---- UTF-8 -> UTF-16 with the right error code ----------------------------------------------------- */

static int to_wide(const char *s, const char *what, wchar_t **out) {
  *out = mproc__utf8_to_wide(s, what);
  if (*out || !s) return 0;
  return MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0) > 0 ? MPROC_ENOMEM : MPROC_EINVAL;
}

/* ---- environment block ---------------------------------------------------------------------- */

/* Copied from the parent into a replaced environment unless it sets them: without SYSTEMROOT winsock,
 * the crypto API and many DLLs fail to load; without TEMP/TMP temporary files land in the Windows
 * directory. Identity and PATH are left out on purpose: a replaced environment means replaced. */
static const wchar_t *const k_required_vars[] = {L"SYSTEMDRIVE", L"SYSTEMROOT", L"TEMP", L"TMP", L"WINDIR"};

typedef struct env_list {
  wchar_t **v;
  size_t n, cap;
} env_list;

/* Length of the name of NAME=VALUE (or of a bare NAME). A leading '=' belongs to the name: the hidden
 * per-drive entries "=C:=C:\dir" that cmd.exe keeps. */
static size_t env_name_len(const wchar_t *e) {
  const wchar_t *eq = e[0] ? wcschr(e + 1, L'=') : NULL;
  return eq ? (size_t)(eq - e) : wcslen(e);
}

static int env_name_cmp(const wchar_t *a, size_t na, const wchar_t *b, size_t nb) {
  return CompareStringOrdinal(a, (int)na, b, (int)nb, TRUE) - CSTR_EQUAL; /* <0, 0, >0 */
}

static int env_sort_cmp(const void *x, const void *y) {
  const wchar_t *a = *(const wchar_t *const *)x, *b = *(const wchar_t *const *)y;
  return env_name_cmp(a, env_name_len(a), b, env_name_len(b));
}

static void env_free(env_list *l) {
  for (size_t i = 0; i < l->n; ++i) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

/* Take ownership of `entry`: NAME=VALUE replaces any NAME (case-insensitively), a bare NAME removes it. */
static int env_set(env_list *l, wchar_t *entry) {
  size_t nl = env_name_len(entry);
  for (size_t i = 0; i < l->n;) {
    if (env_name_cmp(l->v[i], env_name_len(l->v[i]), entry, nl) == 0) {
      free(l->v[i]);
      l->v[i] = l->v[--l->n];
    } else {
      ++i;
    }
  }
  if (!entry[nl]) { /* no '=': a removal */
    free(entry);
    return 0;
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    wchar_t **v = (wchar_t **)realloc(l->v, cap * sizeof *v);
    if (!v) {
      free(entry);
      return mproc__fail(MPROC_ENOMEM, "spawn: out of memory building the environment");
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = entry;
  return 0;
}

static bool env_has(const env_list *l, const wchar_t *name) {
  for (size_t i = 0; i < l->n; ++i)
    if (env_name_cmp(l->v[i], env_name_len(l->v[i]), name, wcslen(name)) == 0) return true;
  return false;
}

static wchar_t *wdup(const wchar_t *s, size_t n) {
  wchar_t *d = (wchar_t *)malloc((n + 1) * sizeof(wchar_t));
  if (!d) {
    mproc__fail(MPROC_ENOMEM, "spawn: out of memory");
    return NULL;
  }
  memcpy(d, s, n * sizeof(wchar_t));
  d[n] = L'\0';
  return d;
}

/* Add NAME=<the parent's value> when the parent has NAME. */
static int env_copy_from_parent(env_list *l, const wchar_t *name) {
  DWORD need = GetEnvironmentVariableW(name, NULL, 0);
  if (need == 0) return 0; /* not set in the parent */
  size_t nl = wcslen(name);
  wchar_t *e = (wchar_t *)malloc((nl + 1 + need) * sizeof(wchar_t));
  if (!e) return mproc__fail(MPROC_ENOMEM, "spawn: out of memory building the environment");
  memcpy(e, name, nl * sizeof(wchar_t));
  e[nl] = L'=';
  DWORD got = GetEnvironmentVariableW(name, e + nl + 1, need);
  if (got == 0 || got >= need) { /* changed under us, or gone: leave it out */
    free(e);
    return 0;
  }
  return env_set(l, e);
}

static int env_add_utf8(env_list *l, const char *entry, const char *list, size_t i, bool need_value) {
  const char *eq = entry[0] ? strchr(entry + 1, '=') : NULL;
  if (!entry[0] || entry[0] == '=' || (need_value && !eq))
    return mproc__fail(MPROC_EINVAL, "spawn: %s[%zu] \"%s\" is not %s", list, i, entry,
                       need_value ? "NAME=VALUE" : "NAME[=VALUE]");
  wchar_t *w;
  int rc = to_wide(entry, "an environment entry", &w);
  return rc ? rc : env_set(l, w);
}

int mproc__win32_env_block(const char *const *env, const char *const *env_extra, wchar_t **out) {
  *out = NULL;
  if (!env && !env_extra) return 0;
  env_list l = {NULL, 0, 0};
  int rc = 0;
  if (env) {
    for (size_t i = 0; env[i] && rc == 0; ++i) rc = env_add_utf8(&l, env[i], "env", i, true);
    for (size_t i = 0; i < MPROC__ARRAY_LEN(k_required_vars) && rc == 0; ++i)
      if (!env_has(&l, k_required_vars[i])) rc = env_copy_from_parent(&l, k_required_vars[i]);
  } else {
    wchar_t *block = GetEnvironmentStringsW();
    if (!block) return mproc__fail_os(0, (int)GetLastError(), "GetEnvironmentStringsW");
    for (const wchar_t *e = block; *e && rc == 0; e += wcslen(e) + 1) {
      wchar_t *d = wdup(e, wcslen(e));
      rc = d ? env_set(&l, d) : MPROC_ENOMEM;
    }
    FreeEnvironmentStringsW(block);
  }
  for (size_t i = 0; env_extra && env_extra[i] && rc == 0; ++i)
    rc = env_add_utf8(&l, env_extra[i], "env_extra", i, false);
  if (rc) {
    env_free(&l);
    return rc;
  }
  qsort(l.v, l.n, sizeof *l.v, env_sort_cmp);
  size_t total = 2; /* the final NUL, and room for an empty block's two */
  for (size_t i = 0; i < l.n; ++i) total += wcslen(l.v[i]) + 1;
  wchar_t *block = (wchar_t *)malloc(total * sizeof(wchar_t));
  if (!block) {
    env_free(&l);
    return mproc__fail(MPROC_ENOMEM, "spawn: out of memory building the environment");
  }
  wchar_t *o = block;
  for (size_t i = 0; i < l.n; ++i) {
    size_t n = wcslen(l.v[i]) + 1;
    memcpy(o, l.v[i], n * sizeof(wchar_t));
    o += n;
  }
  *o++ = L'\0';
  if (l.n == 0) *o = L'\0'; /* an empty block is two NULs */
  env_free(&l);
  *out = block;
  return 0;
}

const wchar_t *mproc__win32_env_find(const wchar_t *block, const wchar_t *name) {
  size_t nl = wcslen(name);
  for (const wchar_t *e = block; e && *e; e += wcslen(e) + 1) {
    size_t el = env_name_len(e);
    if (e[el] == L'=' && env_name_cmp(e, el, name, nl) == 0) return e + el + 1;
  }
  return NULL;
}

/* ---- program lookup ------------------------------------------------------------------------ */

/* Paths of MAX_PATH characters or more: most Win32 file calls (and CreateProcessW) take them only in the
 * \\?\ form, which is the absolute path with no further normalisation. Returns a malloc'ed \\?\ copy of
 * the absolute path `full` when it is that long and has the drive or UNC form, else NULL (use it as it is;
 * NULL with MPROC_ENOMEM set only when allocation failed, which *oom reports). */
static wchar_t *long_form(const wchar_t *full, bool *oom) {
  *oom = false;
  size_t n = wcslen(full);
  if (n < MAX_PATH - 12) return NULL; /* the margin: a cwd gets a '\' appended */
  const wchar_t *prefix = NULL, *rest = full;
  if (((full[0] >= L'A' && full[0] <= L'Z') || (full[0] >= L'a' && full[0] <= L'z')) && full[1] == L':' &&
      full[2] == L'\\') {
    prefix = L"\\\\?\\";
  } else if (full[0] == L'\\' && full[1] == L'\\' && full[2] != L'?' && full[2] != L'.') {
    prefix = L"\\\\?\\UNC\\";
    rest = full + 2;
  }
  if (!prefix) return NULL; /* already \\?\ or \\.\, or relative */
  size_t pn = wcslen(prefix), rn = wcslen(rest);
  wchar_t *w = (wchar_t *)malloc((pn + rn + 1) * sizeof(wchar_t));
  if (!w) {
    *oom = true;
    mproc__fail(MPROC_ENOMEM, "spawn: out of memory");
    return NULL;
  }
  memcpy(w, prefix, pn * sizeof(wchar_t));
  memcpy(w + pn, rest, (rn + 1) * sizeof(wchar_t));
  return w;
}

static wchar_t *full_path(const wchar_t *p);

/* GetFileAttributesW of p, through its \\?\ form when p is long. */
static DWORD file_attributes(const wchar_t *p) {
  if (wcslen(p) < MAX_PATH - 12) return GetFileAttributesW(p);
  wchar_t *full = full_path(p);
  bool oom;
  wchar_t *lf = full ? long_form(full, &oom) : NULL;
  DWORD a = GetFileAttributesW(lf ? lf : full ? full : p);
  DWORD e = GetLastError();
  free(lf);
  free(full);
  SetLastError(e);
  return a;
}

static bool is_file(const wchar_t *p) {
  DWORD a = file_attributes(p);
  return a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY);
}

/* <system dir>\cmd.exe, malloc'ed: the shell and the batch-file runner, never %ComSpec%. */
static int system_cmd(wchar_t **out) {
  wchar_t dir[MAX_PATH + 16];
  UINT n = GetSystemDirectoryW(dir, MAX_PATH);
  *out = NULL;
  if (n == 0 || n >= MAX_PATH) return mproc__fail_os(0, (int)GetLastError(), "spawn: GetSystemDirectoryW");
  memcpy(dir + n, L"\\cmd.exe", sizeof L"\\cmd.exe");
  *out = wdup(dir, wcslen(dir));
  return *out ? 0 : MPROC_ENOMEM;
}

static const wchar_t *base_name(const wchar_t *p) {
  const wchar_t *b = p;
  for (; *p; ++p)
    if (*p == L'\\' || *p == L'/' || *p == L':') b = p + 1;
  return b;
}

static bool has_extension(const wchar_t *p) {
  const wchar_t *dot = wcsrchr(base_name(p), L'.');
  return dot && dot[1];
}

/* An absolute copy of p (relative paths are the parent's, as CreateProcessW would read them). */
static wchar_t *full_path(const wchar_t *p) {
  DWORD need = GetFullPathNameW(p, 0, NULL, NULL);
  wchar_t *f = need ? (wchar_t *)malloc(need * sizeof(wchar_t)) : NULL;
  if (f) {
    DWORD got = GetFullPathNameW(p, need, f, NULL);
    if (got > 0 && got < need) return f;
    free(f);
  }
  return wdup(p, wcslen(p));
}

/* Look for dir\name as it is (when it has an extension), then with ".com" and ".exe" appended. dir may
 * be empty (name is then used as given). *found is a malloc'ed absolute path, or NULL. */
static int try_dir(const wchar_t *dir, size_t dlen, const wchar_t *name, wchar_t **found) {
  static const wchar_t *const exts[] = {L"", L".com", L".exe"};
  *found = NULL;
  size_t nl = wcslen(name), k = 0;
  wchar_t *cand = (wchar_t *)malloc((dlen + nl + 6) * sizeof(wchar_t));
  if (!cand) return mproc__fail(MPROC_ENOMEM, "spawn: out of memory searching for the program");
  if (dlen) {
    memcpy(cand, dir, dlen * sizeof(wchar_t));
    k = dlen;
    if (!wcschr(L"\\/:", dir[dlen - 1])) cand[k++] = L'\\';
  }
  memcpy(cand + k, name, nl * sizeof(wchar_t));
  k += nl;
  for (size_t i = has_extension(name) ? 0 : 1; i < MPROC__ARRAY_LEN(exts); ++i) {
    memcpy(cand + k, exts[i], (wcslen(exts[i]) + 1) * sizeof(wchar_t));
    if (is_file(cand)) {
      *found = full_path(cand);
      free(cand);
      return *found ? 0 : MPROC_ENOMEM;
    }
  }
  free(cand);
  return 0;
}

/* Find the file to run for `prog` (wprog is its UTF-16 form; prog names it in messages). `path` is the
 * PATH to search, or NULL when PATH is unset. *found is malloc'ed. */
static int find_program(const char *prog, const wchar_t *wprog, const wchar_t *path, wchar_t **found) {
  *found = NULL;
  int rc;
  if (*wprog && base_name(wprog) != wprog) { /* has a directory part: no search */
    rc = try_dir(L"", 0, wprog, found);
    if (rc || *found) return rc;
    return mproc__fail_os(MPROC_ENOENT, ERROR_FILE_NOT_FOUND, "spawn '%s': program not found%s", prog,
                          has_extension(wprog) ? "" : " (also tried .com and .exe)");
  }
  if (*wprog && path) {
    for (const wchar_t *d = path; *d;) {
      const wchar_t *end = d;
      if (*d == L'"') { /* a quoted entry may hold ';' */
        const wchar_t *close = wcschr(d + 1, L'"');
        end = close ? close : d + wcslen(d);
      }
      end = wcschr(end, L';');
      if (!end) end = d + wcslen(d);
      const wchar_t *s = d;
      size_t len = (size_t)(end - d);
      if (len && *s == L'"') {
        ++s;
        --len;
      }
      if (len && s[len - 1] == L'"') --len;
      if (len) {
        rc = try_dir(s, len, wprog, found);
        if (rc || *found) return rc;
      }
      d = *end ? end + 1 : end;
    }
  } else if (*wprog) { /* no PATH at all: the system directories, where CreateProcessW would look */
    wchar_t dir[MAX_PATH + 1];
    UINT n = GetSystemDirectoryW(dir, MAX_PATH);
    if (n > 0 && n < MAX_PATH && (rc = try_dir(dir, n, wprog, found)) != 0) return rc;
    if (*found) return 0;
    n = GetWindowsDirectoryW(dir, MAX_PATH);
    if (n > 0 && n < MAX_PATH && (rc = try_dir(dir, n, wprog, found)) != 0) return rc;
    if (*found) return 0;
  }
  return mproc__fail_os(MPROC_ENOENT, ERROR_FILE_NOT_FOUND, "spawn '%s': program not found in PATH", prog);
}

/* ---- the plan: everything CreateProcessW needs, built before anything is handed out ----------- */

typedef struct plan {
  const char *prog; /* what the user named, for messages */
  wchar_t *app;     /* lpApplicationName: the file to run */
  wchar_t *cmdline; /* lpCommandLine */
  wchar_t *env;     /* lpEnvironment, or NULL to inherit */
  wchar_t *cwd;     /* lpCurrentDirectory, or NULL */
  bool tree_job;    /* run cmd.exe (a shell command or a batch file): put the child in a job of its own */
  /* ---- process trees and parent death (job_for) ---- */
  bool want_job;     /* start the child suspended and put it in a job of its own first */
  bool job_required; /* fail the start when it cannot be put in one (asked for explicitly) */
  DWORD job_limits;  /* the job's limit flags */
} plan;

static void plan_free(plan *pl) {
  free(pl->app);
  free(pl->cmdline);
  free(pl->env);
  free(pl->cwd);
}

/* The PATH to search: the child's, whether inherited or built (as the POSIX backend does). *owned is
 * what to free. */
static const wchar_t *search_path(const plan *pl, wchar_t **owned) {
  *owned = NULL;
  if (pl->env) return mproc__win32_env_find(pl->env, L"PATH");
  DWORD need = GetEnvironmentVariableW(L"PATH", NULL, 0);
  if (need == 0) return NULL;
  *owned = (wchar_t *)malloc(need * sizeof(wchar_t));
  if (*owned && GetEnvironmentVariableW(L"PATH", *owned, need) < need) return *owned;
  free(*owned);
  *owned = NULL;
  return NULL;
}

static int plan_argv(const mproc__spawn_req *req, plan *pl) {
  size_t argc = 0;
  while (req->argv[argc]) ++argc;
  wchar_t **wargv = (wchar_t **)calloc(argc + 1, sizeof(wchar_t *));
  if (!wargv) return mproc__fail(MPROC_ENOMEM, "spawn: out of memory");
  int rc = 0;
  for (size_t i = 0; i < argc && rc == 0; ++i) rc = to_wide(req->argv[i], "an argv string", &wargv[i]);
  wchar_t *wexe = NULL;
  if (rc == 0 && req->executable) rc = to_wide(req->executable, "executable", &wexe);
  if (rc == 0) {
    wchar_t *owned;
    const wchar_t *path = search_path(pl, &owned);
    rc = find_program(pl->prog, wexe ? wexe : wargv[0], path, &pl->app);
    free(owned);
  }
  if (rc == 0 && mproc__win32_is_batch(pl->app)) {
    /* never through CreateProcessW's own batch handling: see "batch files through cmd.exe" above. The
     * script is the absolute path found (trailing dots and spaces gone), so cmd.exe searches nothing;
     * argv[0] cannot be passed (a batch file's %0 is its own path). */
    wchar_t *cmd = NULL;
    rc = system_cmd(&cmd);
    if (rc == 0) rc = mproc__win32_batch_cmdline(cmd, pl->app, (const wchar_t *const *)wargv + 1, &pl->cmdline);
    if (rc && cmd) {
      char *msg = mproc__strdup(mproc_last_error());
      rc = mproc__fail(rc, "spawn '%s': %s", pl->prog, msg ? msg : "batch file");
      free(msg);
    }
    free(pl->app);
    pl->app = cmd;
    pl->tree_job = true;
  } else if (rc == 0) {
    rc = mproc__win32_quote_args((const wchar_t *const *)wargv, &pl->cmdline);
  }
  free(wexe);
  for (size_t i = 0; i < argc; ++i) free(wargv[i]);
  free(wargv);
  return rc;
}

int mproc__win32_shell_cmdline(const wchar_t *shell, const wchar_t *command, wchar_t **out) {
  /* SHELL /d /c "COMMAND", as CPython but with /d (no AutoRun command from the registry) when the shell is
   * cmd.exe: the shell quoted as a program name, the command as given (cmd.exe strips the outer quotes).
   * Another shell (executable=) gets SHELL /c "COMMAND", as before. */
  const wchar_t *b = base_name(shell);
  bool is_cmd = CompareStringOrdinal(b, -1, L"cmd.exe", -1, TRUE) == CSTR_EQUAL ||
                CompareStringOrdinal(b, -1, L"cmd", -1, TRUE) == CSTR_EQUAL;
  const wchar_t *opts = is_cmd ? L" /d /c \"" : L" /c \"";
  size_t na = wcslen(shell), nc = wcslen(command), no = wcslen(opts);
  *out = (wchar_t *)malloc((na + nc + no + 4) * sizeof(wchar_t));
  if (!*out) return mproc__fail(MPROC_ENOMEM, "spawn: out of memory");
  wchar_t *o = quote_program(*out, shell);
  memcpy(o, opts, no * sizeof(wchar_t));
  o += no;
  memcpy(o, command, nc * sizeof(wchar_t));
  o[nc] = L'"';
  o[nc + 1] = L'\0';
  return 0;
}

static int plan_shell(const mproc__spawn_req *req, plan *pl) {
  /* The shell: executable, else <system dir>\cmd.exe. Never %ComSpec%: the environment is not a safe
   * place to take the program that runs every shell command from. A name without a directory is looked
   * up like any program (CreateProcessW would take it relative to the cwd). */
  const char *shown = req->executable ? req->executable : "cmd.exe";
  wchar_t *shell = NULL;
  int rc = 0;
  pl->tree_job = true; /* cmd.exe never replaces itself: what it starts must end with it */
  if (req->executable) {
    rc = to_wide(req->executable, "executable", &shell);
  } else {
    rc = system_cmd(&shell);
  }
  if (rc) return rc;
  if (base_name(shell) == shell) {
    wchar_t *owned;
    const wchar_t *path = search_path(pl, &owned);
    rc = find_program(shown, shell, path, &pl->app);
    free(owned);
    free(shell);
  } else {
    pl->app = shell;
  }
  if (rc) return rc;
  if (wcschr(pl->app, L'"')) return mproc__fail(MPROC_EINVAL, "spawn: the shell path contains '\"'");
  wchar_t *wcmd = NULL;
  rc = to_wide(req->command, "command", &wcmd);
  if (rc) return rc;
  rc = mproc__win32_shell_cmdline(pl->app, wcmd, &pl->cmdline);
  free(wcmd);
  return rc;
}

/* Paths of MAX_PATH characters or more for CreateProcessW (an absolute *path, replaced in place):
 *   - the working directory must be under MAX_PATH - 1 characters in every form (Windows refuses a longer
 *     one, \\?\ or not, long paths enabled or not): its short 8.3 form is used when that fits, as libuv
 *     does; otherwise MPROC_EINVAL says so;
 *   - the program: its short form when that fits, else its \\?\ form, which lpApplicationName takes
 *     whatever the long-path setting (bazel's finding). */
static int fit_for_create_process(wchar_t **path, bool is_dir, const char *prog, const char *shown) {
  size_t n = wcslen(*path), limit = is_dir ? MAX_PATH - 2 : MAX_PATH - 1;
  if (n <= limit) return 0;
  bool oom;
  wchar_t *lf = long_form(*path, &oom);
  if (!lf) return oom ? MPROC_ENOMEM : 0; /* already \\?\ (or relative): as given */
  DWORD need = GetShortPathNameW(lf, NULL, 0);
  wchar_t *sp = need ? (wchar_t *)malloc(need * sizeof(wchar_t)) : NULL;
  if (sp && GetShortPathNameW(lf, sp, need) < need) {
    bool unc = wcsncmp(sp, L"\\\\?\\UNC\\", 8) == 0;
    const wchar_t *plain = unc ? sp + 8 : wcsncmp(sp, L"\\\\?\\", 4) == 0 ? sp + 4 : sp;
    size_t pn = wcslen(plain), k = unc ? 2 : 0;
    if (pn + k <= limit) {
      wchar_t *d = (wchar_t *)malloc((pn + k + 1) * sizeof(wchar_t));
      if (d) {
        if (k) d[0] = d[1] = L'\\'; /* \\server\share for a UNC path */
        memcpy(d + k, plain, (pn + 1) * sizeof(wchar_t));
        free(sp);
        free(lf);
        free(*path);
        *path = d;
        return 0;
      }
    }
  }
  free(sp);
  if (is_dir) {
    free(lf);
    return mproc__fail_os(MPROC_EINVAL, ERROR_FILENAME_EXCED_RANGE,
                          "spawn '%s': cwd '%s' is %zu characters; Windows starts programs only in a directory of "
                          "at most %d, and it has no short (8.3) form that fits",
                          prog, shown ? shown : "?", n, MAX_PATH - 2);
  }
  free(*path);
  *path = lf;
  return 0;
}

static int plan_make(const mproc__spawn_req *req, plan *pl) {
  memset(pl, 0, sizeof *pl);
  pl->prog = req->command ? req->command : req->executable ? req->executable : req->argv[0];
  int rc = mproc__win32_env_block(req->env, req->env_extra, &pl->env);
  if (rc == 0) rc = req->command ? plan_shell(req, pl) : plan_argv(req, pl);
  if (rc == 0 && wcslen(pl->cmdline) >= 32767)
    rc = mproc__fail(MPROC_EINVAL, "spawn '%s': the command line is %zu UTF-16 units long; Windows allows 32766",
                     pl->prog, wcslen(pl->cmdline));
  if (rc == 0) rc = fit_for_create_process(&pl->app, false, pl->prog, NULL);
  if (rc == 0 && req->cwd) {
    rc = to_wide(req->cwd, "cwd", &pl->cwd);
    DWORD a = rc ? 0 : file_attributes(pl->cwd);
    if (rc == 0 && a == INVALID_FILE_ATTRIBUTES)
      rc = mproc__fail_os(0, (int)GetLastError(), "spawn '%s': cwd '%s'", pl->prog, req->cwd);
    else if (rc == 0 && !(a & FILE_ATTRIBUTE_DIRECTORY))
      rc = mproc__fail_os(MPROC_ENOENT, ERROR_DIRECTORY, "spawn '%s': cwd '%s' is not a directory", pl->prog, req->cwd);
    if (rc == 0) { /* lpCurrentDirectory wants a full path; a relative one is the parent's */
      wchar_t *full = full_path(pl->cwd);
      free(pl->cwd);
      pl->cwd = full;
      if (!full) rc = MPROC_ENOMEM;
    }
    if (rc == 0) rc = fit_for_create_process(&pl->cwd, true, pl->prog, req->cwd);
  }
  if (rc) plan_free(pl);
  return rc;
}

/* ---- handles for the child ------------------------------------------------------------------ */

static SRWLOCK g_pass_lock = SRWLOCK_INIT;

typedef struct handles {
  HANDLE std[3];    /* what the child's stdin/stdout/stderr become (NULL: none) */
  HANDLE copies[3]; /* inheritable duplicates made for it, to close after CreateProcessW */
  HANDLE *list;     /* PROC_THREAD_ATTRIBUTE_HANDLE_LIST, each handle once */
  size_t nlist;
  HANDLE *restore; /* pass_fds we made inheritable, to make non-inheritable again */
  size_t nrestore;
  bool locked;
} handles;

/* Windows 7 console pseudo-handles: not real kernel handles, they cannot go in a handle list. */
static bool is_console_pseudo(HANDLE h) { return ((uintptr_t)h & 3) == 3 && GetFileType(h) == FILE_TYPE_CHAR; }

static void list_add(handles *hs, HANDLE h) {
  if (is_console_pseudo(h)) return;
  for (size_t i = 0; i < hs->nlist; ++i)
    if (hs->list[i] == h) return;
  hs->list[hs->nlist++] = h;
}

static void handles_release(handles *hs) {
  for (size_t i = 0; i < hs->nrestore; ++i) SetHandleInformation(hs->restore[i], HANDLE_FLAG_INHERIT, 0);
  if (hs->locked) ReleaseSRWLockExclusive(&g_pass_lock);
  for (int i = 0; i < 3; ++i)
    if (hs->copies[i]) CloseHandle(hs->copies[i]);
  free(hs->list);
  free(hs->restore);
  memset(hs, 0, sizeof *hs);
}

/* ---- Windows: windows and consoles ---- */

/* Whether the child uses a console of its own for its standard streams instead of being handed the
 * parent's: a new console (CREATE_NEW_CONSOLE) and all three streams left to inherit (as Python). Not
 * with a pseudo console (MPROC_PTY), whose streams the handle list leaves out (handles_make). */
static bool own_console_stdio(const mproc__spawn_req *req) {
  return !req->pty && (req->creationflags & CREATE_NEW_CONSOLE) && req->stdio[0] == MPROC_NO_HANDLE &&
         req->stdio[1] == MPROC_NO_HANDLE && req->stdio[2] == MPROC_NO_HANDLE;
}

static int handles_make(const mproc__spawn_req *req, const char *prog, handles *hs) {
  static const DWORD std_ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
  static const char *const names[3] = {"stdin", "stdout", "stderr"};
  memset(hs, 0, sizeof *hs);
  hs->list = (HANDLE *)malloc((3 + req->pass_fds_count) * sizeof(HANDLE));
  hs->restore = (HANDLE *)malloc((req->pass_fds_count + 1) * sizeof(HANDLE));
  if (!hs->list || !hs->restore) {
    handles_release(hs);
    return mproc__fail(MPROC_ENOMEM, "spawn: out of memory");
  }
  HANDLE src[3];
  for (int i = 0; i < 3 && !own_console_stdio(req); ++i) {
    src[i] = NULL;
    if (req->pty && req->on_pty[i]) continue; /* NULL: Windows connects it to the pseudo console */
    bool given = req->stdio[i] != MPROC_NO_HANDLE;
    src[i] = given ? MPROC__H(req->stdio[i]) : GetStdHandle(std_ids[i]);
    if (src[i] == NULL || src[i] == INVALID_HANDLE_VALUE) continue; /* the parent has none: nor does the child */
    for (int j = 0; j < i && !hs->std[i]; ++j)
      if (src[j] == src[i]) hs->std[i] = hs->std[j]; /* one handle in the parent, one in the child */
    if (hs->std[i]) continue;
    if (!DuplicateHandle(GetCurrentProcess(), src[i], GetCurrentProcess(), &hs->copies[i], 0, TRUE,
                         DUPLICATE_SAME_ACCESS)) {
      DWORD e = GetLastError();
      hs->copies[i] = NULL;
      if (!given) continue; /* a parent stream we cannot pass on: the child goes without */
      handles_release(hs);
      return mproc__fail_os(MPROC_EINVAL, (int)e, "spawn '%s': %s handle %p", prog, names[i], (void *)src[i]);
    }
    hs->std[i] = hs->copies[i];
    list_add(hs, hs->copies[i]);
  }
  if (req->pass_fds_count) {
    AcquireSRWLockExclusive(&g_pass_lock);
    hs->locked = true;
  }
  for (size_t i = 0; i < req->pass_fds_count; ++i) {
    HANDLE h = MPROC__H(req->pass_fds[i]);
    DWORD flags = 0;
    if (!GetHandleInformation(h, &flags)) {
      DWORD e = GetLastError();
      handles_release(hs);
      return mproc__fail_os(MPROC_EINVAL, (int)e, "spawn '%s': pass_fds[%zu] (%p) is not an open handle", prog, i,
                            (void *)h);
    }
    if (!(flags & HANDLE_FLAG_INHERIT)) {
      if (!SetHandleInformation(h, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT)) {
        DWORD e = GetLastError();
        handles_release(hs);
        return mproc__fail_os(0, (int)e, "spawn '%s': making pass_fds[%zu] (%p) inheritable", prog, i, (void *)h);
      }
      hs->restore[hs->nrestore++] = h;
    }
    list_add(hs, h);
  }
  return 0;
}

/* ---- spawn, wait, signal ------------------------------------------------------------------------ */

static int create_process(const mproc__spawn_req *req, plan *pl, handles *hs, PROCESS_INFORMATION *pi) {
  STARTUPINFOEXW si;
  memset(&si, 0, sizeof si);
  si.StartupInfo.cb = sizeof si.StartupInfo;
  /* the caller's dwFlags and wShowWindow (creationflags and startupinfo), then mproc's own */
  si.StartupInfo.dwFlags =
      (req->startup_flags & ~(DWORD)STARTF_USESTDHANDLES) | (own_console_stdio(req) ? 0 : STARTF_USESTDHANDLES);
  si.StartupInfo.wShowWindow = req->show_window;
  si.StartupInfo.hStdInput = hs->std[0];
  si.StartupInfo.hStdOutput = hs->std[1];
  si.StartupInfo.hStdError = hs->std[2];
  DWORD flags = req->creationflags | CREATE_UNICODE_ENVIRONMENT |
                (req->new_process_group ? CREATE_NEW_PROCESS_GROUP : 0) |
                (pl->want_job ? CREATE_SUSPENDED : 0); /* put in its job before it runs (job_for) */
  BOOL inherit = req->inherit_fds || hs->nlist > 0;
  int rc = 0;
  bool have_attrs = false;
  bool use_list = !req->inherit_fds && hs->nlist > 0;
  void *console = req->pty ? mproc__win32_pty_console(req->pty) : NULL; /* a pseudo console for stdio */
  DWORD nattrs = (use_list ? 1 : 0) + (console ? 1 : 0);
  if (nattrs) {
    SIZE_T size = 0;
    InitializeProcThreadAttributeList(NULL, nattrs, 0, &size);
    si.lpAttributeList = (LPPROC_THREAD_ATTRIBUTE_LIST)malloc(size);
    if (!si.lpAttributeList) return mproc__fail(MPROC_ENOMEM, "spawn: out of memory");
    if (!InitializeProcThreadAttributeList(si.lpAttributeList, nattrs, 0, &size)) {
      rc = mproc__fail_os(0, (int)GetLastError(), "spawn '%s': InitializeProcThreadAttributeList", pl->prog);
    } else {
      have_attrs = true;
      if (use_list && !UpdateProcThreadAttribute(si.lpAttributeList, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, hs->list,
                                                 hs->nlist * sizeof(HANDLE), NULL, NULL))
        rc = mproc__fail_os(0, (int)GetLastError(), "spawn '%s': UpdateProcThreadAttribute(HANDLE_LIST)", pl->prog);
      if (rc == 0 && console &&
          !UpdateProcThreadAttribute(si.lpAttributeList, 0, PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE, console,
                                     sizeof console, NULL, NULL))
        rc = mproc__fail_os(0, (int)GetLastError(), "spawn '%s': UpdateProcThreadAttribute(PSEUDOCONSOLE)", pl->prog);
    }
    si.StartupInfo.cb = sizeof si;
    flags |= EXTENDED_STARTUPINFO_PRESENT;
  }
  BOOL ok = FALSE;
  DWORD e = 0;
  /* One retry on ERROR_INTERNAL_ERROR: wine 8 reports it when the new process dies in its loader before
   * finishing initialisation, so no code of the program ran. Seen in about 1 of 4000 concurrent spawns,
   * with plain CreateProcessW too (no handle list, no inheritance). On Windows it would be a genuine
   * internal failure, which a second try reports again. */
  for (int attempt = 0; rc == 0 && attempt < 2 && !ok; ++attempt) {
    ok = CreateProcessW(pl->app, pl->cmdline, NULL, NULL, inherit, flags, pl->env, pl->cwd, &si.StartupInfo, pi);
    e = ok ? 0 : GetLastError();
    if (e != ERROR_INTERNAL_ERROR) break;
  }
  if (rc == 0 && !ok) {
    char *app = mproc__wide_to_utf8(pl->app, -1);
    if (e == ERROR_DIRECTORY && req->cwd)
      rc = mproc__fail_os(MPROC_ENOENT, (int)e, "spawn '%s': cwd '%s'", pl->prog, req->cwd);
    else
      rc = mproc__fail_os(e == ERROR_ELEVATION_REQUIRED ? MPROC_EPERM : 0, (int)e, "spawn '%s': CreateProcessW '%s'",
                          pl->prog, app ? app : "?");
    free(app);
  }
  if (have_attrs) DeleteProcThreadAttributeList(si.lpAttributeList);
  free(si.lpAttributeList);
  return rc;
}

/* Which job a child gets, before it runs (it is created suspended):
 *   - a cmd.exe child (a shell command or a batch file): a kill-on-close job of its own. Everything it
 *     starts is in the job too (no breakaway), so mproc__pal_signal ends the whole tree with
 *     TerminateJobObject, and the parent's death ends it (the job's only handle is ours, not
 *     inheritable). Best effort, like mproc__pal_child_bind: where the child cannot be put in a job
 *     (before Windows 8, inside a job that forbids nesting) it runs without one, and signals reach
 *     cmd.exe alone;
 *   - process_tree: the same job without breakaway (tree.c), kill-on-close only with
 *     kill_on_parent_death (or for cmd.exe); signals reach the program alone (but cmd.exe's whole job);
 *   - kill_on_parent_death alone: a kill-on-close job whose children break away silently, as
 *     PR_SET_PDEATHSIG applies to the program alone.
 * The last two were asked for: a child that cannot be put in its job is not started. */
static void job_for(const mproc__spawn_req *req, plan *pl) {
  bool shell = pl->tree_job;
  pl->want_job = shell || req->process_tree || req->kill_on_parent_death;
  pl->job_required = req->process_tree || req->kill_on_parent_death;
  pl->job_limits = (shell || req->kill_on_parent_death ? JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE : 0) |
                   (shell || req->process_tree ? 0 : JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK);
}

/* One lock among mproc's own spawns, around the time a spawn's inheritable handles exist (the stdio
 * duplicates, pass_fds made inheritable) until CreateProcessW has run: spawns with a handle list take it
 * shared (their lists keep them apart, so they run in parallel); an inherit_fds spawn, which hands the
 * child every inheritable handle of the process, takes it exclusive, so it never picks up another spawn's
 * handles in flight. A CreateProcess elsewhere in the process (another library) cannot be kept out. */
static SRWLOCK g_spawn_lock = SRWLOCK_INIT;

/* End a child just created whose start cannot be completed, and close its handles. */
static void abandon(PROCESS_INFORMATION *pi) {
  TerminateProcess(pi->hProcess, 1);
  WaitForSingleObject(pi->hProcess, INFINITE);
  CloseHandle(pi->hThread);
  CloseHandle(pi->hProcess);
}

mproc__win32_child *mproc__win32_child_os(mproc__child *c) {
  if (!c->os) c->os = calloc(1, sizeof(mproc__win32_child));
  return (mproc__win32_child *)c->os;
}

/* ---- POSIX: credentials and limits ---- */

/* Windows has none of them (a user needs a logon token, limits a job object): a security boundary the
 * caller asked for is refused, never dropped. */
static int refuse_posix_credentials(const mproc__spawn_req *req) {
  const char *what = req->user                 ? "user"
                     : req->group              ? "group"
                     : req->extra_groups       ? "extra_groups"
                     : req->umask != 0         ? "umask"
                     : req->rlimits_count != 0 ? "rlimits"
                                               : NULL;
  if (!what) return 0;
  return mproc__fail(MPROC_ENOTSUP,
                     "popen: %s is POSIX only; Windows has no such call (run the program as another user with a "
                     "logon token, limit it with a job object)",
                     what);
}

int mproc__pal_spawn(const mproc__spawn_req *req, mproc__child *child) {
  memset(child, 0, sizeof *child);
  child->handle = MPROC_NO_HANDLE;
  if (!req->command && (!req->argv || !req->argv[0])) return mproc__fail(MPROC_EINVAL, "spawn: argv is empty");
  int rc = refuse_posix_credentials(req);
  if (rc) return rc;
  mproc__win32_child *os = mproc__win32_child_os(child);
  if (!os) return mproc__fail(MPROC_ENOMEM, "spawn: out of memory");
  os->signal_exitcodes = req->signal_exitcodes;
  /* ---- Windows: windows and consoles ---- */
  os->ctrl_group = req->new_process_group || (req->creationflags & CREATE_NEW_PROCESS_GROUP);
  os->console_apart = (req->creationflags & (CREATE_NEW_CONSOLE | DETACHED_PROCESS | CREATE_NO_WINDOW)) != 0;
  plan pl;
  rc = plan_make(req, &pl);
  if (rc) {
    mproc__pal_child_release(child);
    return rc;
  }
  job_for(req, &pl);
  if (req->inherit_fds)
    AcquireSRWLockExclusive(&g_spawn_lock);
  else
    AcquireSRWLockShared(&g_spawn_lock);
  handles hs;
  PROCESS_INFORMATION pi;
  rc = handles_make(req, pl.prog, &hs);
  if (rc == 0) {
    rc = create_process(req, &pl, &hs, &pi);
    handles_release(&hs); /* the child has its own now: close our inheritable copies at once */
  }
  if (req->inherit_fds)
    ReleaseSRWLockExclusive(&g_spawn_lock);
  else
    ReleaseSRWLockShared(&g_spawn_lock);
  if (rc == 0 && pl.want_job) {
    HANDLE job = NULL;
    DWORD je = mproc__win32_job_new(pi.hProcess, pl.job_limits, &job);
    if (je && pl.job_required)
      rc = mproc__fail_os(0, (int)je, "spawn '%s': putting it in a job object (%s)", pl.prog,
                          req->process_tree ? "process_tree" : "kill_on_parent_death");
    else if (ResumeThread(pi.hThread) == (DWORD)-1)
      rc = mproc__fail_os(0, (int)GetLastError(), "spawn '%s': ResumeThread", pl.prog);
    if (rc) {
      abandon(&pi);
      if (job) CloseHandle(job);
    } else if (job) {
      os->job = job;
      os->job_tree = !(pl.job_limits & JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK);
      os->signal_job = pl.tree_job;
      os->let_go_on_release = pl.tree_job && !req->kill_on_parent_death;
    }
  }
  /* a pseudo console that would never close gives no end of file: no child then (its tree job, if any,
   * goes with mproc__pal_child_release below) */
  if (rc == 0 && req->pty && (rc = mproc__win32_pty_started(req->pty, pi.hProcess)) != 0) abandon(&pi);
  if (rc == 0) {
    CloseHandle(pi.hThread);
    child->pid = (int64_t)pi.dwProcessId;
    child->handle = MPROC__OSH(pi.hProcess);
  }
  plan_free(&pl);
  if (rc) mproc__pal_child_release(child);
  return rc;
}

/* MPROC_NO_HANDLE is INVALID_HANDLE_VALUE, which is also the pseudo-handle of the current process:
 * never wait on it or terminate it. */
static int check_child(const mproc__child *c) {
  if (c->handle == MPROC_NO_HANDLE || c->handle == 0)
    return mproc__fail(MPROC_EINVAL, "process %lld: no process handle (not started, or released)", (long long)c->pid);
  return 0;
}

int mproc__pal_wait(mproc__child *c, int64_t deadline_ns) {
  if (c->reaped) return 0;
  int rc = check_child(c);
  if (rc) return rc;
  HANDLE h = MPROC__H(c->handle);
  for (;;) {
    DWORD w = WaitForSingleObject(h, (DWORD)mproc__win32_wait_ms(deadline_ns));
    if (w == WAIT_OBJECT_0) break;
    if (w == WAIT_TIMEOUT) {
      if (mproc__ms_until(deadline_ns) != 0) continue; /* a wait capped below the deadline */
      return mproc__fail(MPROC_ETIMEDOUT, "process %lld is still running", (long long)c->pid);
    }
    return mproc__fail_os(0, (int)GetLastError(), "WaitForSingleObject on process %lld", (long long)c->pid);
  }
  DWORD code = 0;
  if (!GetExitCodeProcess(h, &code))
    return mproc__fail_os(0, (int)GetLastError(), "GetExitCodeProcess of process %lld", (long long)c->pid);
  c->reaped = true;
  c->returncode = (int)code;
  /* (process module: mproc__spawn_req.signal_exitcodes) the exit code mproc__pal_signal gives is reported
   * as -sig, so Process.exitcode is -15 / -9 after terminate / kill, as on POSIX. */
  const mproc__win32_child *os = (const mproc__win32_child *)c->os;
  if (os && os->signal_exitcodes && (code & ~(DWORD)0xFFFF) == MPROC__WIN32_SIGNAL_EXIT_BASE && (code & 0xFFFF) >= 1 &&
      (code & 0xFFFF) <= 64)
    c->returncode = -(int)(code & 0xFFFF);
  return 0;
}

/* CTRL_BREAK to the child's process group (MPROC_SIGBREAK), where it can arrive: the child leads a
 * process group of its own (else GenerateConsoleCtrlEvent would reach every process on the console, this
 * one too) and shares our console, and we have one. Then the console decides: wine 8's delivers CTRL_C
 * only, and says ERROR_INVALID_HANDLE for CTRL_BREAK. */
static int send_ctrl_break(const mproc__child *c) {
  const mproc__win32_child *os = (const mproc__win32_child *)c->os;
  if (!os || !os->ctrl_group)
    return mproc__fail(MPROC_ESTATE,
                       "signal MPROC_SIGBREAK to process %lld: it was not started in a new process group "
                       "(new_process_group or MPROC_CREATE_NEW_PROCESS_GROUP), so CTRL_BREAK would reach every "
                       "process on the console, this one too",
                       (long long)c->pid);
  if (os->console_apart)
    return mproc__fail(MPROC_ENOTSUP,
                       "signal MPROC_SIGBREAK to process %lld: it was started with a console of its own or none "
                       "(CREATE_NEW_CONSOLE, CREATE_NO_WINDOW or DETACHED_PROCESS), so no console event of ours "
                       "reaches it",
                       (long long)c->pid);
  DWORD one;
  if (GetConsoleProcessList(&one, 1) == 0)
    return mproc__fail_os(MPROC_ENOTSUP, (int)GetLastError(),
                          "signal MPROC_SIGBREAK to process %lld: this process has no console to send it through "
                          "(a GUI program or a service; wine started from a pipe or a terminal has none either)",
                          (long long)c->pid);
  if (!GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, (DWORD)c->pid))
    return mproc__fail_os(MPROC_ENOTSUP, (int)GetLastError(),
                          "signal MPROC_SIGBREAK to process %lld: the console did not take CTRL_BREAK for its process "
                          "group (wine's consoles deliver CTRL_C only)",
                          (long long)c->pid);
  return 0;
}

int mproc__pal_signal(mproc__child *c, int sig) {
  if (c->reaped) return 0;
  if (sig == MPROC_SIGBREAK) return send_ctrl_break(c);
  if (sig != MPROC_SIGTERM && sig != MPROC_SIGKILL)
    return mproc__fail(MPROC_ENOTSUP,
                       "signal %d: Windows has no signals; only MPROC_SIGTERM and MPROC_SIGKILL (TerminateProcess) "
                       "and MPROC_SIGBREAK (a console's CTRL_BREAK) are supported",
                       sig);
  int rc = check_child(c);
  if (rc) return rc;
  HANDLE h = MPROC__H(c->handle);
  /* exit code 1 as CPython's Popen.terminate(); the process module asks for 0x10000 | sig (spawn.h) */
  const mproc__win32_child *os = (const mproc__win32_child *)c->os;
  UINT exit_code = os && os->signal_exitcodes ? (UINT)(MPROC__WIN32_SIGNAL_EXIT_BASE | sig) : 1;
  /* a cmd.exe child: end what it started too (its job, see job_for); TerminateProcess if that fails */
  if (os && os->signal_job && os->job && TerminateJobObject((HANDLE)os->job, exit_code)) return 0;
  if (!TerminateProcess(h, exit_code)) {
    DWORD e = GetLastError();
    /* ERROR_ACCESS_DENIED once the process has exited (not yet reaped by us): nothing to do */
    if (e == ERROR_ACCESS_DENIED && WaitForSingleObject(h, 0) == WAIT_OBJECT_0) return 0;
    return mproc__fail_os(0, (int)e, "TerminateProcess(process %lld)", (long long)c->pid);
  }
  return 0;
}

int mproc__pal_child_exit_handle(mproc__child *c, mproc_os_handle *out) {
  *out = MPROC_NO_HANDLE;
  int rc = check_child(c);
  if (rc) return rc;
  *out = c->handle; /* the process handle: signalled when the process has ended, reaped or not */
  return 0;
}

void mproc__pal_child_release(mproc__child *c) {
  if (c->handle != MPROC_NO_HANDLE && c->handle != 0) CloseHandle(MPROC__H(c->handle));
  c->handle = MPROC_NO_HANDLE;
  /* the kill-on-close job of mproc__pal_child_bind (src/win32/process.c): its only handle, so closing
   * it kills the child if it still runs; callers release a child only once it has ended.
   * The job of a cmd.exe child (job_for): once cmd.exe has ended, what it left running on purpose
   * (`start prog`) may outlive the Popen, as it would on POSIX and in Python: kill-on-close is lifted
   * before the handle goes. (A child killed by a signal took its whole tree with it already.)
   * A process tree's job is kill-on-close only with kill_on_parent_death: then closing it ends what the
   * program left running, else that runs on, let go (subprocess.h, mproc_popen_destroy). */
  mproc__win32_child *os = (mproc__win32_child *)c->os;
  if (!os) return;
  if (os->job && os->let_go_on_release && c->reaped) {
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;
    ZeroMemory(&li, sizeof li);
    SetInformationJobObject((HANDLE)os->job, JobObjectExtendedLimitInformation, &li, sizeof li);
  }
  if (os->job) CloseHandle((HANDLE)os->job);
  free(os);
  c->os = NULL;
}
