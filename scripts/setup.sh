#!/usr/bin/env bash
# Install what building and testing mproc needs, with apt (Debian 12; other apt systems with
# cmake >= 3.25 may work but are untested). Checks first and installs only what is missing, so it is
# quick on a machine that has everything. Uses sudo when not run as root.
#
#   scripts/setup.sh           everything: Linux build + tests + sanitizers, the Windows cross build
#                              and wine to run it, python3 for the benchmarks
#   scripts/setup.sh --linux   only the Linux part (no MinGW, no wine)
#   scripts/setup.sh --check   only say what is missing (exit status 1 if anything is)
#
# What each package is for:
#   build-essential cmake ninja-build  the native build (cmake >= 3.25 for `cmake --workflow`)
#   pkgconf                            the pkg-config consumer test
#   libssl-dev                         OpenSSL's libcrypto: HMAC for authkeys (Listener/Client handshakes);
#                                      without it mproc builds, and refuses authkeys with MPROC_ENOTSUP
#   libgtest-dev                       GoogleTest for the Linux builds
#   googletest                         GoogleTest sources, built by the MinGW presets
#   clang-format                       the format stage (scripts/format.sh --check; .clang-format)
#   clang libclang-rt-dev              the ASan+UBSan and TSan presets and the fuzz targets (the
#                                      sanitizer and libFuzzer runtimes are in libclang-rt-dev, only a
#                                      recommendation of clang) and the MSVC-mode check (clang --driver-mode=cl)
#   python3                            the Python side of the benchmarks and the ratio table
#   python3-matplotlib                 the charts of docs/PERFORMANCE.md (bench/report.py --charts);
#                                      the benchmarks and the table run without it
#   openmpi-bin libopenmpi-dev         Open MPI: mproc::mpi (the Pool over MPI ranks) and its tests under
#                                      mpirun (without them mproc builds without mproc::mpi)
#   python3-mpi4py                     mpi4py.futures for the Python side of `bench/run.sh mpi`
#   musl-tools                         musl-gcc: the static_exe.musl.* tests (programs linked with musl,
#                                      statically and dynamically; skipped without it)
#   g++-mingw-w64-x86-64-posix         the Windows x64 cross compiler (posix threads: std::thread for gtest)
#   wine wine64                        running the Windows tests (wine provides /usr/bin/wine)
set -euo pipefail

linux_only=0
check_only=0
for arg in "$@"; do
  case "$arg" in
    --linux) linux_only=1 ;;
    --check) check_only=1 ;;
    *) echo "usage: scripts/setup.sh [--linux] [--check]" >&2; exit 2 ;;
  esac
done

missing=()
# want <package> <probe>...: the package is needed if any probe is missing (an absolute path is a
# file that must exist, anything else a command that must be on PATH).
want() {
  local pkg="$1" probe
  shift
  for probe in "$@"; do
    if [[ "$probe" == /* ]]; then
      [[ -e "$probe" ]] || { missing+=("$pkg"); return 0; }
    else
      command -v "$probe" >/dev/null 2>&1 || { missing+=("$pkg"); return 0; }
    fi
  done
}

want build-essential gcc g++ make
want cmake cmake
want ninja-build ninja
want pkgconf pkg-config
want libssl-dev /usr/include/openssl/hmac.h
want libgtest-dev /usr/include/gtest/gtest.h
want googletest /usr/src/googletest/CMakeLists.txt
want clang clang clang++
want clang-format clang-format
if command -v clang >/dev/null 2>&1; then
  want libclang-rt-dev "$(clang -print-runtime-dir)/libclang_rt.asan-x86_64.a" \
                       "$(clang -print-runtime-dir)/libclang_rt.tsan-x86_64.a" \
                       "$(clang -print-runtime-dir)/libclang_rt.fuzzer-x86_64.a"
else
  missing+=(libclang-rt-dev)
fi
want python3 python3
want python3-matplotlib /usr/lib/python3/dist-packages/matplotlib/__init__.py
want musl-tools musl-gcc
want openmpi-bin mpirun.openmpi
want libopenmpi-dev "/usr/lib/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)/openmpi/include/mpi.h"
want python3-mpi4py /usr/lib/python3/dist-packages/mpi4py/__init__.py
if ((!linux_only)); then
  want g++-mingw-w64-x86-64-posix x86_64-w64-mingw32-gcc-posix x86_64-w64-mingw32-g++-posix
  want wine wine wineserver
  want wine64 /usr/lib/wine/wine64
fi

if ((check_only)); then
  if ((${#missing[@]})); then echo "setup: missing: ${missing[*]}"; exit 1; fi
  echo "setup: everything is installed"
  exit 0
fi

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=()
  if ((EUID != 0)); then sudo=(sudo); fi
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "setup: everything is installed already"
fi

# cmake --workflow needs CMake 3.25 (Debian 12 has 3.25.1)
cmake_version="$(cmake --version | sed -n '1s/[^0-9]*\([0-9][0-9.]*\).*/\1/p')"
if [[ "$(printf '%s\n3.25\n' "$cmake_version" | sort -V | head -n1)" != 3.25 ]]; then
  echo "setup: cmake $cmake_version is too old: the presets need cmake >= 3.25" >&2
  exit 1
fi
echo "setup: cmake $cmake_version, $(gcc --version | head -n1), $(clang --version | head -n1)"
if ((!linux_only)); then
  echo "setup: $(x86_64-w64-mingw32-gcc-posix --version | head -n1), $(wine --version 2>/dev/null)"
fi
