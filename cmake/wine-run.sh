#!/bin/sh
# CMAKE_CROSSCOMPILING_EMULATOR for MinGW-built executables.
# Starts a persistent wineserver and boots the prefix *detached from our stdio*, once per prefix, so
# ctest and gtest_discover_tests never wait on pipe handles inherited by long-lived wine daemons (a
# cold start otherwise costs ~2.5 s per test, or hangs forever once a persistent server exists).
# Then execs wine. Keep the three fixes marked below (see docs/PLATFORMS.md).
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
exec wine "$@"
