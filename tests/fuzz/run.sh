#!/usr/bin/env bash
# Build the fuzz targets (preset `fuzz`) and run each for a while over a copy of its seed corpus, so the
# repository is not modified. Any crash, leak, timeout or sanitizer report fails (exit status 1); the
# input that caused it is kept under build/fuzz/artifacts/ and printed in hex. See docs/FUZZING.md.
#
#   tests/fuzz/run.sh [SECONDS]     default 20 s per target (what CI's `fuzz` stage runs)
#
# Extra libFuzzer flags can be given in FUZZ_FLAGS (e.g. FUZZ_FLAGS="-jobs=4 -workers=4").
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
secs="${1:-20}"
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: tests/fuzz/run.sh [SECONDS]" >&2; exit 2; }

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

bin="$root/build/fuzz/bin"
art="$root/build/fuzz/artifacts"
work="$(mktemp -d "${TMPDIR:-/tmp}/mproc-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$art"

failed=()
# target:corpus:max_len (fuzz_frames, fuzz_handshake and fuzz_manager cut their inputs at 60 KiB)
for spec in fuzz_bootstrap:bootstrap:4096 fuzz_frames:frames:61440 fuzz_handshake:handshake:61441 fuzz_manager:manager:61440; do
  IFS=: read -r target corpus maxlen <<<"$spec"
  rm -f "$art/$target-"* # what an earlier run found
  mkdir -p "$work/$corpus"
  cp "tests/fuzz/corpus/$corpus/"* "$work/$corpus/"
  dict=()
  if [[ -f "tests/fuzz/$target.dict" ]]; then dict=(-dict="tests/fuzz/$target.dict"); fi
  echo "---- $target: ${secs} s over a copy of tests/fuzz/corpus/$corpus"
  st=$SECONDS
  # shellcheck disable=SC2086
  if "$bin/$target" -max_total_time="$secs" -timeout=10 -max_len="$maxlen" -print_final_stats=1 \
      "${dict[@]}" -artifact_prefix="$art/$target-" ${FUZZ_FLAGS:-} "$work/$corpus" >"$work/$target.log" 2>&1; then
    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|Done )' \
      "$work/$target.log" || true
    echo "---- $target: ok in $((SECONDS - st)) s"
  else
    tail -n 60 "$work/$target.log"
    for f in "$art/$target-"*; do
      [[ -e "$f" ]] || continue
      echo "---- $target: input kept in $f:"
      od -A d -t x1 -v "$f" | head -n 40
    done
    echo "---- $target: FAILED after $((SECONDS - st)) s"
    failed+=("$target")
  fi
done

if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
