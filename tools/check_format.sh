#!/usr/bin/env bash
# Checks that the tracked C++ files are formatted as .clang-format says, with clang-format 19
# (Debian package clang-format-19). It changes nothing: it lists the files that differ and
# exits 1; 0 when all match; 2 when clang-format 19 is missing.
#
#   tools/check_format.sh                 # every tracked *.hpp / *.cpp (not tests/reference/)
#   tools/check_format.sh --diff          # also print what clang-format would change
#   tools/check_format.sh FILE...         # only these files
#
# CLANG_FORMAT=/path/to/clang-format-19 overrides the binary. To reformat a file yourself:
# clang-format-19 -i FILE.
set -euo pipefail

cd "$(dirname "$0")/.."

show_diff=0
if [[ ${1:-} == --diff ]]; then
  show_diff=1
  shift
fi

cf=${CLANG_FORMAT:-clang-format-19}
if ! command -v "$cf" >/dev/null 2>&1; then
  echo "check_format.sh: '$cf' not found. Install Debian's clang-format-19 (apt-get install clang-format-19)" >&2
  echo "or set CLANG_FORMAT to a clang-format 19 binary; other versions format differently." >&2
  exit 2
fi
if ! "$cf" --version | grep -q 'version 19\.'; then
  echo "check_format.sh: warning: $("$cf" --version) is not clang-format 19; results may differ." >&2
fi

if [[ $# -gt 0 ]]; then
  files=("$@")
else
  # Tracked sources only (no build outputs); tests/reference/ holds generated reference data.
  mapfile -t files < <(git ls-files -- '*.hpp' '*.cpp' ':!:tests/reference/**')
fi

bad=()
for f in "${files[@]}"; do
  [[ -f $f ]] || continue  # tracked but deleted in the working tree
  if ! "$cf" --dry-run --Werror "$f" >/dev/null 2>&1; then
    bad+=("$f")
    if [[ $show_diff == 1 ]]; then
      "$cf" "$f" | diff -u --label "$f" --label "$f (clang-format)" "$f" - || true
    fi
  fi
done

if [[ ${#bad[@]} -gt 0 ]]; then
  echo "check_format.sh: ${#bad[@]} of ${#files[@]} files differ from .clang-format:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "(tools/check_format.sh --diff shows the changes; clang-format-19 -i FILE applies them)" >&2
  exit 1
fi
echo "check_format.sh: ${#files[@]} files match .clang-format"
