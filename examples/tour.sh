#!/usr/bin/env bash
# The examples tour: build every example and run each one, with a header per example.
#
#   examples/tour.sh              Linux: build into build/tour, run natively
#   examples/tour.sh --windows    Windows x64 (MinGW cross build into build/tour-mingw), run under wine
#   examples/tour.sh [--windows] NAME...   only these examples
#
# The examples and their order come from MPROC_EXAMPLES in examples/CMakeLists.txt (example NAME is
# examples/NAME.c, built as example_NAME). Each runs with no arguments and stdin from /dev/null, and
# must exit 0 within 60 s. Ends with "tour: N passed, N failed"; exits non-zero on any failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
windows=0
if [[ "${1:-}" == --windows ]]; then windows=1; shift; fi

# the example list, in the tour's order
mapfile -t known < <(sed -n '/^set(MPROC_EXAMPLES/,/)/p' "$root/examples/CMakeLists.txt" |
                     sed 's/set(MPROC_EXAMPLES//; s/[()]//g; s/#.*//' | tr -s ' \t' '\n' | sed '/^$/d')
if (($#)); then names=("$@"); else names=("${known[@]}"); fi
if ((${#names[@]} == 0)); then echo "tour: no examples found in examples/CMakeLists.txt" >&2; exit 1; fi

args=(-S "$root" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=ON)
if ((windows)); then
  build="$root/build/tour-mingw"
  args+=(-DCMAKE_TOOLCHAIN_FILE="$root/cmake/mingw-w64-x86_64.cmake")
  run=("$root/cmake/wine-run.sh")
  # wine is several times slower at what the examples do most (processes, pipes, waits): the
  # Manager's 4 x 1000 updates under a managed lock take 40-70 s there (1-2 s on Linux)
  limit=180
  ext=.exe
  own_wine=0
  if [[ -z "${WINEPREFIX:-}" ]]; then
    WINEPREFIX="$(mktemp -d "${TMPDIR:-/tmp}/mproc-wine.XXXXXX")"
    export WINEPREFIX
    own_wine=1
  fi
  trap 'if ((own_wine)); then wineserver -k >/dev/null 2>&1 || true; wineserver -w >/dev/null 2>&1 || true; rm -rf "$WINEPREFIX"; fi' EXIT
else
  build="$root/build/tour"
  run=()
  limit=60
  ext=
fi

echo "tour: building the examples in $build"
mkdir -p "$build"
log="$build/tour-build.log"
if ! { cmake "${args[@]}" -B "$build" >"$log" 2>&1 && cmake --build "$build" >>"$log" 2>&1; }; then
  cat "$log"
  echo "tour: the build failed"
  exit 1
fi

pass=0
fail=0
failed=()
for name in "${names[@]}"; do
  exe="$build/bin/example_$name$ext"
  echo
  echo "======== example: $name   (examples/$name.c)"
  if [[ ! -x "$exe" ]]; then
    echo "tour: $exe was not built (is '$name' in MPROC_EXAMPLES of examples/CMakeLists.txt?)"
    rc=127
  else
    rc=0
    (cd "$build" && timeout "$limit" "${run[@]}" "$exe" </dev/null) || rc=$?
  fi
  if ((rc == 0)); then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    failed+=("$name")
    echo "-------- example $name FAILED (exit status $rc)"
  fi
done

echo
if ((fail)); then echo "tour: failed: ${failed[*]}"; fi
echo "tour: $pass passed, $fail failed"
exit $((fail ? 1 : 0))
