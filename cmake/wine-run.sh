#!/usr/bin/env bash
# CMAKE_CROSSCOMPILING_EMULATOR for MinGW-built executables.
# Starts a persistent wineserver and boots the prefix *detached from our stdio*, once per prefix, so
# ctest and gtest_discover_tests never wait on pipe handles inherited by long-lived wine daemons (a
# cold start otherwise costs ~2.5 s per test, or hangs forever once a persistent server exists).
# Then runs wine. Keep the five fixes marked below (see docs/PLATFORMS.md).
: "${WINEPREFIX:=${TMPDIR:-/tmp}/mproc-wine-$(id -u)}"
: "${WINEDEBUG:=-all,err+module}"                       # quiet, but still report missing DLLs
# winedbg.exe=d: no crash debugger, so a crash is reported as a failure (with winedbg --auto the
# unix exit status of a crashed process was 0 in 7 of 20 runs); no Mono/Gecko install prompts.
: "${WINEDLLOVERRIDES:=winedbg.exe=d;mscoree,mshtml=}"
export WINEPREFIX WINEDEBUG WINEDLLOVERRIDES
mkdir -p "$WINEPREFIX"                                  # fix 3: wineserver -p needs the directory
(
  flock 9
  # wineserver -p exits 0 if it started a new persistent server, non-zero if one already runs.
  # fix 1: 9>&- so the daemons never inherit the lock fd (the next caller would wait forever).
  if wineserver -p </dev/null >/dev/null 2>&1 9>&-; then
    wineboot </dev/null >/dev/null 2>&1 9>&-
    # fix 2: plain wineboot can return before the services are up; a synchronous no-op process
    # waits for the boot, so no test process ends up starting the services on its own pipes.
    wine cmd /c exit 0 </dev/null >/dev/null 2>&1 9>&-
    # a fresh Debian wine 8.0 prefix reports Windows 7; test against Windows 10
    wine winecfg -v win10 </dev/null >/dev/null 2>&1 9>&-
  fi
) 9>"$WINEPREFIX/.wine-run.lock"
# fix 4: under load, wine now and then fails to start a program: it ends within a moment having printed
# nothing at all, not even gtest's first line (seen in two CI runs: 0.02 s, no output, a failure). A run
# with no output on either stream never ran the program: it is started once more.
# fix 5: wine's own Linux loader can abort in its exit path (glibc's "Inconsistency detected by ld.so:
# dl-fini.c ... _dl_fini: Assertion" on stderr, seen once in CI after gtest had printed "[  PASSED  ]"
# for a test that touches nothing but string formatting). A run that says so, whose program reported
# success and no failure, is started once more; any other failure is final.
# Whatever a run printed is passed on as it comes (stdout streamed, stderr after it).
err="$(mktemp "${TMPDIR:-/tmp}/wine-run.XXXXXX")"
out="$(mktemp "${TMPDIR:-/tmp}/wine-run.XXXXXX")"
trap 'rm -f "$err" "$out"' EXIT
for attempt in 1 2; do
  printed=0
  wine "$@" 2>"$err" | tee "$out" | {
    if IFS= read -r line; then printf '%s\n' "$line"; cat; exit 10; fi
    if [[ -n $line ]]; then printf '%s' "$line"; exit 10; fi # one line, without its end
    exit 0
  }
  statuses=("${PIPESTATUS[@]}")
  rc=${statuses[0]}
  [[ ${statuses[2]} -eq 10 ]] && printed=1
  [[ -s "$err" ]] && printed=1
  cat "$err" >&2
  host_abort=0
  if [[ $rc -ne 0 ]] && grep -q 'Inconsistency detected by ld.so: dl-fini.c' "$err" &&
    grep -q '^\[  PASSED  \]' "$out" && ! grep -q '^\[  FAILED  \]' "$out"; then
    host_abort=1
  fi
  if [[ $attempt -eq 2 || $rc -eq 0 || ($printed -eq 1 && $host_abort -eq 0) ]]; then exit "$rc"; fi
  if [[ $host_abort -eq 1 ]]; then
    echo "wine-run.sh: the program passed, then wine's loader aborted in its exit (status $rc): starting it again" >&2
  else
    echo "wine-run.sh: the program ended at once with status $rc and printed nothing: starting it again" >&2
  fi
done
