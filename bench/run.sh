#!/usr/bin/env bash
# Build the benchmarks (preset `release`: Release, MPROC_BUILD_BENCH=ON) and run them: for each area,
# bench_<area> (mproc and the raw C primitive) and bench/py/bench_<area>.py (CPython), in one run, then the
# ratio table (bench/report.py). See bench/README.md.
#
#   bench/run.sh [--smoke] [--reps N] [--filter SUBSTRING] [--build-dir DIR] [--charts DIR] [--keep FILE] [AREA...]
#
#   --smoke       tiny counts, so CI proves every benchmark runs; the figures mean nothing
#   --reps N      repetitions per result (default 7)
#   --filter S    only results whose name contains S
#   --build-dir   build here instead of build/release
#   --charts DIR  also draw the charts (bench/report.py --charts; needs matplotlib, Debian's
#                 python3-matplotlib: the first of the Python side's interpreter and /usr/bin/python3
#                 that has it draws them)
#   --keep FILE   keep the result lines in FILE (to draw charts or tables from later)
#   AREA...       the areas to run (default: every mproc_add_bench() of bench/CMakeLists.txt)
#   PYTHON=...    the interpreter for the Python side (default: the real one behind python3, which
#                 may be a slow pyenv shim)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
opts=()
areas=()
build="$root/build/release"
charts=""
keep=""
while (($#)); do
  case "$1" in
    --smoke) opts+=(--smoke) ;;
    --reps | --filter) opts+=("$1" "${2:?$1 needs a value}"); shift ;;
    --build-dir) build="$(realpath -m "${2:?--build-dir needs a value}")"; shift ;;
    --charts) charts="$(realpath -m "${2:?--charts needs a value}")"; shift ;;
    --keep) keep="$(realpath -m "${2:?--keep needs a value}")"; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench/run.sh: unknown option $1" >&2; exit 2 ;;
    *) areas+=("$1") ;;
  esac
  shift
done

known=($(sed -n 's/^[[:space:]]*mproc_add_bench(\([A-Za-z0-9_]*\)).*/\1/p' "$root/bench/CMakeLists.txt"))
if ((${#areas[@]} == 0)); then areas=("${known[@]}"); fi
for a in "${areas[@]}"; do
  case " ${known[*]} " in *" $a "*) ;; *) echo "bench/run.sh: unknown area '$a' (known: ${known[*]})" >&2; exit 2 ;; esac
done

echo "# bench: building preset release in $build"
(cd "$root" && cmake --preset release -B "$build" >/dev/null && cmake --build "$build" >/dev/null) || {
  echo "bench/run.sh: the build failed; rerun: cmake --preset release -B $build && cmake --build $build" >&2
  exit 1
}
bin="$build/bin"
export MPROC_BENCH_BIN="$bin"

py="${PYTHON:-}"
if [[ -z "$py" ]] && command -v python3 >/dev/null 2>&1; then
  py="$(python3 -c 'import sys; print(sys.executable)')"
fi

# The machine, for docs/PERFORMANCE.md: figures are comparable only within one run on one machine.
cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)"
echo "# machine: ${cpu_model:-unknown CPU}, $(nproc) CPUs, $(uname -sr), $(cc --version | head -n1)"
echo "# python: ${py:-none} $([[ -n "$py" ]] && "$py" -c 'import platform; print(platform.python_version())')"
echo "# mproc: $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)${opts[*]:+, options: ${opts[*]}}"

results="$(mktemp "${TMPDIR:-/tmp}/mproc-bench.XXXXXX")"
trap 'rm -f "$results"' EXIT
failed=()
for a in "${areas[@]}"; do
  echo "# ---- area $a"
  launch=()
  pymod=()
  py_area="$py"
  if [[ $a == mpi ]]; then # the Pool over MPI: every implementation under mpirun, 4 ranks on the CPUs there are
    if [[ ! -x "$bin/bench_mpi" ]] || ! command -v mpirun >/dev/null 2>&1; then
      echo "# area mpi: skipped (no mproc::mpi or no mpirun; Debian: apt-get install openmpi-bin libopenmpi-dev)"
      continue
    fi
    launch=(mpirun --allow-run-as-root --oversubscribe --mca mpi_yield_when_idle 1 -np 4)
    pymod=(-m mpi4py.futures)
    if [[ -n "$py" ]] && ! "$py" -c 'import mpi4py' >/dev/null 2>&1; then
      if /usr/bin/python3 -c 'import mpi4py' >/dev/null 2>&1; then
        py_area=/usr/bin/python3 # Debian's python3-mpi4py is for the system's interpreter (printed by benchlib)
      else
        echo "# area mpi: python skipped (no mpi4py; Debian: apt-get install python3-mpi4py)"
        py_area=
      fi
    fi
    if ! "${launch[@]}" "$bin/bench_$a" --raw "${opts[@]}" | tee -a "$results"; then failed+=("bench_$a --raw"); fi
  fi
  if ! "${launch[@]}" "$bin/bench_$a" "${opts[@]}" | tee -a "$results"; then failed+=("bench_$a"); fi
  if [[ -f "$root/bench/py/bench_$a.py" ]]; then
    if [[ -z "$py" ]]; then
      echo "# python3 not found: skipping bench/py/bench_$a.py"
    elif [[ -z "$py_area" ]]; then
      : # said above
    elif ! "${launch[@]}" "$py_area" "${pymod[@]}" "$root/bench/py/bench_$a.py" "${opts[@]}" | tee -a "$results"; then
      failed+=("bench/py/bench_$a.py")
    fi
  fi
done

echo
if [[ -n "$keep" ]]; then cp "$results" "$keep"; fi
if [[ -n "$py" ]]; then
  "$py" "$root/bench/report.py" <"$results" || failed+=("bench/report.py")
  if [[ -n "$charts" ]]; then
    drawer=""
    for p in "$py" /usr/bin/python3; do
      if [[ -x "$p" ]] && "$p" -c 'import matplotlib' 2>/dev/null; then drawer="$p"; break; fi
    done
    if [[ -z "$drawer" ]]; then
      echo "bench/run.sh: --charts needs matplotlib (Debian: python3-matplotlib)" >&2
      failed+=("charts")
    else
      "$drawer" "$root/bench/report.py" --charts "$charts" <"$results" >/dev/null || failed+=("charts")
    fi
  fi
else
  echo "# python3 not found: no ratio table"
fi
if ((${#failed[@]})); then
  echo "bench/run.sh: failed: ${failed[*]}" >&2
  exit 1
fi
