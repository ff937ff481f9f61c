#!/usr/bin/env bash
# The code's format (.clang-format, clang-format 14 here): every C and C++ file of the project.
#
#   scripts/format.sh            reformat in place
#   scripts/format.sh --check    change nothing; list the files whose format differs, exit 1 if any
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shopt -s nullglob globstar
# every C and C++ file under these folders, however deep (a module that becomes a folder is included)
files=(src/**/*.[ch] include/**/*.h tests/**/*.cc tests/**/*.[ch] examples/**/*.c bench/**/*.[ch])
if [[ "${1:-}" == --check ]]; then
  bad=()
  for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  if ((${#bad[@]})); then
    printf 'format: differs from .clang-format: %s\n' "${bad[@]}"
    echo "format: run scripts/format.sh to fix (${#bad[@]} of ${#files[@]} files)"
    exit 1
  fi
  echo "format: ${#files[@]} files match .clang-format"
else
  clang-format -i "${files[@]}"
fi
