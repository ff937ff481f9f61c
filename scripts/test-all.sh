#!/usr/bin/env bash
# The whole test suite, Linux and Windows: what CI runs (.ci/run = scripts/setup.sh + this).
#
#   scripts/test-all.sh [STAGE...]      default: every stage, in this order:
#
#   format        scripts/format.sh --check: every C/C++ file matches .clang-format
#   msvc          cmake/msvc-check.sh: clang-cl in MSVC mode, /W4 /WX + MSVC warning emulation and a
#                 CRT-deprecation / C4706 / ASCII lint, over the Windows sources, headers and tests
#   linux-asan    cmake --workflow --preset linux-asan    (Clang, ASan + UBSan)
#   linux-tsan    cmake --workflow --preset linux-tsan    (Clang, TSan)
#   linux-shared  cmake --workflow --preset linux-shared  (GCC, libmproc.so)
#   mingw         cmake --workflow --preset mingw         (Windows x64 static, tests under wine)
#   mingw-shared  cmake --workflow --preset mingw-shared  (Windows x64 DLL, tests under wine)
#   consumer      tests/consumer/run.sh: install, then find_package + pkg-config consumers, 4 variants
#   tour          examples/tour.sh: build and run every example on Linux
#   tour-mingw    examples/tour.sh --windows: the same for Windows under wine
#   bench         bench/run.sh --smoke: every benchmark runs (no timing is asserted)
#   fuzz          tests/fuzz/run.sh: builds the libFuzzer targets (preset fuzz: Clang, ASan + UBSan) and
#                 runs each 20 s over a copy of its seed corpus; any crash, leak or timeout fails
#   linux         cmake --workflow --preset linux         (GCC; last, so CTest's summary closes the output)
#
# Every stage runs even if an earlier one failed; the exit status is 1 if any failed, and the closing
# summary repeats what each failed stage said of its failures (CTest's list of failed tests, gtest's
# failure lines), since CI keeps only the end of the output. Wine runs in
# $WINEPREFIX if set (CI sets a fresh one), else in a temporary prefix removed at exit.
# Needs what scripts/setup.sh installs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

all=(format msvc linux-asan linux-tsan linux-shared mingw mingw-shared consumer tour tour-mingw bench fuzz linux)
stages=("$@")
if ((${#stages[@]} == 0)); then stages=("${all[@]}"); fi
for s in "${stages[@]}"; do
  case " ${all[*]} " in *" $s "*) ;; *) echo "test-all: unknown stage '$s' (stages: ${all[*]})" >&2; exit 2 ;; esac
done

command_for() {
  case "$1" in
    format) echo scripts/format.sh --check ;;
    msvc) echo cmake/msvc-check.sh ;;
    consumer) echo tests/consumer/run.sh ;;
    tour) echo examples/tour.sh ;;
    tour-mingw) echo examples/tour.sh --windows ;;
    bench) echo bench/run.sh --smoke ;;
    fuzz) echo tests/fuzz/run.sh 20 ;;
    *) echo cmake --workflow --preset "$1" ;;
  esac
}

if [[ -z "${WINEPREFIX:-}" ]]; then
  WINEPREFIX="$(mktemp -d "${TMPDIR:-/tmp}/mproc-wine.XXXXXX")"
  export WINEPREFIX
  trap 'wineserver -k >/dev/null 2>&1 || true; wineserver -w >/dev/null 2>&1 || true; rm -rf "$WINEPREFIX"' EXIT
fi

# Boot the wine prefix once, before a stage needs it: a fresh prefix takes tens of seconds to boot (more
# on a loaded machine), and the first program run under wine would otherwise boot it inside a build's
# test discovery and share that step's timeout (MPROC_DISCOVERY_TIMEOUT): a CI run saw three discoveries
# of the mingw stage time out that way, having printed nothing.
if [[ " ${stages[*]} " == *mingw* ]] && command -v wine >/dev/null 2>&1; then
  bt=$SECONDS
  if timeout 600 "$root/cmake/wine-run.sh" cmd /c exit 0 </dev/null >/dev/null 2>&1; then
    echo "==== test-all: wine prefix $WINEPREFIX booted in $((SECONDS - bt)) s"
  else
    echo "==== test-all: booting the wine prefix $WINEPREFIX failed (status $?); the stages will try again"
  fi
fi

logs="$(mktemp -d "${TMPDIR:-/tmp}/mproc-test-all.XXXXXX")"
t0=$SECONDS
failed=()
summary=()
i=0
for s in "${stages[@]}"; do
  i=$((i + 1))
  read -r -a cmd <<<"$(command_for "$s")"
  last=$((i == ${#stages[@]}))
  if ((last && ${#summary[@]})); then
    echo
    echo "==== test-all: stages so far ($((SECONDS - t0)) s):"
    printf '====   %s\n' "${summary[@]}"
  fi
  echo
  echo "==== [$i/${#stages[@]}] $s: ${cmd[*]}   (t+$((SECONDS - t0)) s)"
  st=$SECONDS
  if "${cmd[@]}" </dev/null 2>&1 | tee "$logs/$s.log"; then
    result=ok
  else
    result=FAILED
    failed+=("$s")
  fi
  summary+=("$(printf '%-13s %-6s %4d s' "$s" "$result" $((SECONDS - st)))")
  # After the last stage print nothing when all passed: CTest's summary stays the closing lines.
  if ((!last)); then
    echo "==== [$i/${#stages[@]}] $s: $result in $((SECONDS - st)) s"
  elif ((${#failed[@]})); then
    echo
    echo "==== test-all: $((SECONDS - t0)) s in all:"
    printf '====   %s\n' "${summary[@]}"
  fi
done

# What a failed stage said of its failures: gtest's failure lines and CTest's closing list, at most 40
# lines a stage.
failures_of() {
  { grep -E -a '^\[  FAILED  \]|: Failure$|^[^ ]*:[0-9]+: (error|Failure)|\*\*\*(Failed|Timeout|Exception)|^[[:space:]]+[0-9]+ - .*\((Failed|Timeout|Subprocess aborted|SEGFAULT|Not Run)\)|error:|FAILED:' \
    "$1" || true; } | awk '!seen[$0]++' | tail -n 40
}
if ((${#failed[@]})); then
  for s in "${failed[@]}"; do
    echo "==== test-all: what $s said of its failures:"
    failures_of "$logs/$s.log" | sed 's/^/====     /'
  done
  rm -rf "$logs"
  echo "==== test-all: FAILED stages: ${failed[*]}"
  exit 1
fi
rm -rf "$logs"
