#!/usr/bin/env bash
# Consumer tests: install mproc from this source tree, then build and run a small program against the
# installed tree the two ways users do, CMake's find_package and pkg-config, for four variants:
#
#   linux-static  linux-shared  mingw-static  mingw-dll      (default: all four)
#
#   tests/consumer/run.sh [VARIANT...]
#
# Per variant: configure/build/install mproc (-DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF)
# into a temp prefix and check the installed layout; build tests/consumer (find_package) and main.c
# (pkg-config + the C compiler), run both (Windows ones under wine via cmake/wine-run.sh) and check
# that they really link the variant they claim (static: no libmproc import; shared: they import
# libmproc.so.0 / libmproc.dll); then move the install tree, check that no config file names the old
# prefix, and build and run both consumers again against the moved tree.
# Ends with "consumer: N passed, N failed"; exits non-zero on any failure.
# KEEP=1 keeps the scratch directory (printed at the start) for inspection.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
all_variants=(linux-static linux-shared mingw-static mingw-dll)
if (($#)); then variants=("$@"); else variants=("${all_variants[@]}"); fi
for v in "${variants[@]}"; do
  case " ${all_variants[*]} " in *" $v "*) ;; *) echo "consumer: unknown variant '$v' (known: ${all_variants[*]})" >&2; exit 2 ;; esac
done

work="$(mktemp -d "${TMPDIR:-/tmp}/mproc-consumer.XXXXXX")"
own_wine=0
if [[ " ${variants[*]} " == *" mingw-"* && -z "${WINEPREFIX:-}" ]]; then
  export WINEPREFIX="$work/wineprefix"   # a private prefix, stopped and removed at exit
  own_wine=1
fi
cleanup() {
  if ((own_wine)); then wineserver -k >/dev/null 2>&1 || true; wineserver -w >/dev/null 2>&1 || true; fi
  if [[ "${KEEP:-0}" == 1 ]]; then echo "consumer: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
echo "consumer: scratch dir $work"

pass=0
fail=0
failed=()
n=0
# check <description> <function> [args...]: run one check with its output in a log; print the log on failure.
# The functions chain their commands with && / || return, because `set -e` does not apply inside `if`.
check() {
  local what="$1"
  shift
  n=$((n + 1))
  local log="$work/log.$n"
  if "$@" >"$log" 2>&1; then
    pass=$((pass + 1))
    echo "ok    $what"
  else
    fail=$((fail + 1))
    failed+=("$what")
    echo "FAIL  $what  (last lines of its log:)"
    tail -n 40 "$log" | sed 's/^/      /'
  fi
}

is_mingw() { [[ "$1" == mingw-* ]]; }
is_shared() { [[ "$1" == *-shared || "$1" == *-dll ]]; }
cc_for() { if is_mingw "$1"; then echo x86_64-w64-mingw32-gcc-posix; else echo "${CC:-cc}"; fi; }
exe_suffix() { if is_mingw "$1"; then echo .exe; fi; }

# Build mproc from the source tree and install it into <prefix>.
install_mproc() {
  local v="$1" prefix="$2" bld="$work/$1/build"
  local args=(-S "$root" -B "$bld" -G Ninja -DCMAKE_BUILD_TYPE=Release
              -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX="$prefix")
  if is_shared "$v"; then args+=(-DBUILD_SHARED_LIBS=ON); else args+=(-DBUILD_SHARED_LIBS=OFF); fi
  if is_mingw "$v"; then args+=(-DCMAKE_TOOLCHAIN_FILE="$root/cmake/mingw-w64-x86_64.cmake"); fi
  cmake "${args[@]}" && cmake --build "$bld" && cmake --install "$bld"
}

# The installed layout the docs, the vcpkg port and both consumer kinds rely on.
check_layout() {
  local v="$1" p="$2" f
  local want=(include/mproc.h include/mproc/core.h include/mproc/mproc_export.h
              lib/cmake/mproc/mprocConfig.cmake lib/cmake/mproc/mprocConfigVersion.cmake
              lib/cmake/mproc/mprocTargets.cmake lib/pkgconfig/mproc.pc)
  case "$v" in
    linux-static | mingw-static) want+=(lib/libmproc.a) ;;
    linux-shared) want+=(lib/libmproc.so lib/libmproc.so.0) ;;
    mingw-dll) want+=(bin/libmproc.dll lib/libmproc.dll.a) ;;
  esac
  for f in "${want[@]}"; do
    [[ -e "$p/$f" ]] || { echo "missing: $p/$f"; find "$p" -print; return 1; }
  done
  # the export header has the linkage baked in, so a consumer needs no -D flags
  local expect=1
  if is_shared "$v"; then expect=0; fi
  grep -qx "#define MPROC_STATIC_LIB $expect" "$p/include/mproc/mproc_export.h" ||
    { echo "mproc_export.h should say MPROC_STATIC_LIB $expect:"; cat "$p/include/mproc/mproc_export.h"; return 1; }
}

# Check that <exe> links mproc the way variant <v> says: a static consumer imports no libmproc, a
# shared one does (otherwise a broken shared install could pass by accident).
check_linkage() {
  local v="$1" exe="$2" deps
  if is_mingw "$v"; then
    deps="$(x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^.*DLL Name: //p')" || return 1
  else
    deps="$(readelf -d "$exe" | sed -n 's/^.*(NEEDED).*\[\(.*\)\]$/\1/p')" || return 1
  fi
  echo "imports: $(echo $deps)"
  if is_mingw "$v"; then
    # mproc needs only the OS and the C runtime: no libwinpthread, libgcc or libstdc++ DLL
    local extra
    extra="$(grep -Eiv '^(KERNEL32|msvcrt|libmproc)\.dll$' <<<"$deps" || true)"
    [[ -z "$extra" ]] || { echo "unexpected DLL imports: $(echo $extra)"; return 1; }
  fi
  if is_shared "$v"; then
    grep -Eq '^libmproc\.(so\.0|dll)$' <<<"$deps" || { echo "expected an import of libmproc"; return 1; }
  else
    ! grep -q 'libmproc' <<<"$deps" || { echo "a static consumer must not import libmproc"; return 1; }
  fi
}

# run_consumer <variant> <exe> <dll dir>: run it natively or under wine and check what it says.
run_consumer() {
  local v="$1" exe="$2" libdir="$3" out
  if is_mingw "$v"; then
    # WINEPATH is the DLL search path: a Windows path list, Z: being the unix root.
    out="$(WINEPATH="Z:${libdir//\//\\}" "$root/cmake/wine-run.sh" "$exe")" || { echo "$out"; return 1; }
  else
    out="$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$exe")" || { echo "$out"; return 1; }
  fi
  echo "$out"
  grep -q '^consumer ok' <<<"$out"
}

# (a) the CMake consumer: find_package(mproc 0.1 CONFIG REQUIRED) + mproc::mproc.
cmake_consumer() {
  local v="$1" prefix="$2" bld="$3"
  local args=(-S "$here" -B "$bld" -G Ninja -DCMAKE_BUILD_TYPE=Release)
  if is_mingw "$v"; then
    # Cross find_package: CMAKE_PREFIX_PATH is re-rooted by the toolchain's FIND_ROOT_PATH_MODE_PACKAGE
    # ONLY, so point at the prefix through CMAKE_FIND_ROOT_PATH, or at the package dir directly.
    args+=(-DCMAKE_TOOLCHAIN_FILE="$root/cmake/mingw-w64-x86_64.cmake")
    if [[ "${4:-}" == by-dir ]]; then args+=(-Dmproc_DIR="$prefix/lib/cmake/mproc")
    else args+=(-DCMAKE_FIND_ROOT_PATH="$prefix"); fi
  else
    args+=(-DCMAKE_PREFIX_PATH="$prefix")
  fi
  cmake "${args[@]}" && cmake --build "$bld" || return 1
  local exe="$bld/consumer$(exe_suffix "$v")"
  check_linkage "$v" "$exe" || return 1
  if [[ "$v" == mingw-dll ]]; then
    cp "$prefix/bin/libmproc.dll" "$bld/" || return 1   # the usual Windows way: the DLL beside the exe
    run_consumer "$v" "$exe" "$bld"
  else
    # Linux shared: no LD_LIBRARY_PATH needed, CMake's build RPATH points into the prefix
    run_consumer "$v" "$exe" ""
  fi
}

# (b) the pkg-config consumer: PKG_CONFIG_LIBDIR=<prefix>/lib/pkgconfig pkg-config ... + the compiler
# (Linux: PKG_CONFIG_PATH, so the system's .pc files are found too: libcrypto's).
pkgconfig_consumer() {
  local v="$1" prefix="$2" dir="$3" flags
  local pc=(--cflags --libs)
  is_shared "$v" || pc+=(--static)
  # Windows: the install tree alone. Linux: it first, then the system's own directories, where a static
  # link finds what mproc's .pc requires (libcrypto's .pc, from libssl-dev).
  if is_mingw "$v"; then
    flags="$(PKG_CONFIG_LIBDIR="$prefix/lib/pkgconfig" pkg-config "${pc[@]}" mproc)" || return 1
  else
    flags="$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config "${pc[@]}" mproc)" || return 1
  fi
  echo "pkg-config ${pc[*]} mproc: $flags"
  mkdir -p "$dir" || return 1
  local exe="$dir/consumer-pc$(exe_suffix "$v")"
  # No -static here: a plain link must need nothing beyond the OS and its C runtime (check_linkage).
  local link=()
  # shellcheck disable=SC2086  # flags is a word list
  "$(cc_for "$v")" -std=c11 -Wall -Wextra -Werror "$here/main.c" $flags "${link[@]}" -o "$exe" || return 1
  check_linkage "$v" "$exe" || return 1
  local libdir="$prefix/lib"
  if is_mingw "$v"; then libdir="$prefix/bin"; fi
  run_consumer "$v" "$exe" "$libdir"
}

# Move the install tree; no CMake package file or .pc may still name the old prefix.
move_tree() {
  local from="$1" to="$2"
  mkdir -p "$(dirname "$to")" && mv "$from" "$to" || return 1
  if grep -rn -- "$from" "$to/lib/cmake" "$to/lib/pkgconfig"; then
    echo "the files above name the old prefix $from: the install tree is not relocatable"
    return 1
  fi
}

for v in "${variants[@]}"; do
  echo "---- consumer: $v"
  prefix="$work/$v/prefix"
  moved="$work/$v/moved/elsewhere/prefix"
  check "$v: build + install mproc" install_mproc "$v" "$prefix"
  if [[ ! -d "$prefix" ]]; then continue; fi
  check "$v: installed layout" check_layout "$v" "$prefix"
  check "$v: find_package consumer builds and runs" cmake_consumer "$v" "$prefix" "$work/$v/cmake"
  check "$v: pkg-config consumer builds and runs" pkgconfig_consumer "$v" "$prefix" "$work/$v/pc"
  check "$v: move the install tree" move_tree "$prefix" "$moved"
  if [[ ! -d "$moved" ]]; then continue; fi
  check "$v: find_package consumer against the moved tree" cmake_consumer "$v" "$moved" "$work/$v/cmake-moved" by-dir
  check "$v: pkg-config consumer against the moved tree" pkgconfig_consumer "$v" "$moved" "$work/$v/pc-moved"
done

if ((fail)); then printf 'consumer: failed: %s\n' "${failed[@]}"; fi
echo "consumer: $pass passed, $fail failed"
exit $((fail ? 1 : 0))
