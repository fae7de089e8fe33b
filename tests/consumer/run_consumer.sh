#!/usr/bin/env bash
# The consumer test: install ctnn into a temporary prefix as a user would (meson setup +
# meson install, nothing compiled: ctnn is headers), then build tests/consumer/main.cpp
# against that copy twice, with CMake (find_package(ctnn), CMAKE_PREFIX_PATH) and with
# pkg-config (PKG_CONFIG_PATH), run both programs and compare their output with the expected
# line. Any failure prints the step, its log, and exits 1; without cmake or pkg-config the
# test is skipped (exit 77, meson's skip code).
#
#   tests/consumer/run_consumer.sh SOURCE_DIR ISA FP_CONTRACT CXX [CXX_ARGS...]
#   (meson test runs it as 'consumers' with the build's source dir, -Disa, -Dfp_contract and
#   C++ compiler)
set -uo pipefail

if [ $# -lt 4 ]; then
  echo "usage: $0 SOURCE_DIR ISA FP_CONTRACT CXX [CXX_ARGS...]" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
isa=$2
fp_contract=$3
shift 3
cxx=("$@")

for tool in cmake pkg-config meson; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool is not installed (Debian: apt-get install $tool); the consumer test needs it"
    exit 77
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ctnn-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
expected='ctnn consumer: y = [3.25, 3.25; 3.25, 3.25], read_idx error ok'

# step NAME COMMAND...: runs the command with its output in a log, shown only on failure.
step() {
  local name=$1
  shift
  echo "== $name"
  if ! "$@" >"$tmp/log" 2>&1; then
    cat "$tmp/log"
    echo "FAILED: $name"
    echo "  command: $*"
    exit 1
  fi
}

# check_output NAME PROGRAM: the program must print exactly the expected line.
check_output() {
  local out
  if ! out=$("$2" 2>&1); then
    echo "$out"
    echo "FAILED: $1 exited with an error"
    exit 1
  fi
  if [ "$out" != "$expected" ]; then
    echo "FAILED: $1 printed"
    echo "  $out"
    echo "expected"
    echo "  $expected"
    exit 1
  fi
  echo "   $out"
}

# 1. Install. The same compiler and options as the build under test, so the installed flags
#    are the ones that build would install.
step "meson setup (prefix $prefix)" env CXX="${cxx[*]}" meson setup "$tmp/build" "$src" --prefix "$prefix" \
  -Disa="$isa" -Dfp_contract="$fp_contract" -Dtests=disabled -Dexamples=disabled -Dbenchmarks=disabled
step "meson install" meson install -C "$tmp/build"
config=$(find "$prefix" -name ctnnConfig.cmake -print -quit)
pc=$(find "$prefix" -name ctnn.pc -print -quit)
for f in "$prefix/include/ctnn/ctnn.hpp" "$prefix/include/ctnn/models/d2l.hpp" "$config" "$pc" \
         "$(dirname "$config")/ctnnConfigVersion.cmake"; do
  if [ ! -f "$f" ]; then
    echo "FAILED: meson install did not install ${f:-ctnnConfig.cmake / ctnn.pc}"
    exit 1
  fi
done

# A compiler command of more than one word (ccache c++) becomes CMake's launcher + compiler.
cmake_cxx=(-DCMAKE_CXX_COMPILER="${cxx[-1]}")
if [ ${#cxx[@]} -gt 1 ]; then
  launcher="${cxx[*]:0:${#cxx[@]}-1}"
  cmake_cxx+=(-DCMAKE_CXX_COMPILER_LAUNCHER="${launcher// /;}")
fi

# 2. CMake: find_package(ctnn) must find the copy just installed, not another one.
step "cmake configure (CMAKE_PREFIX_PATH=$prefix)" cmake -S "$src/tests/consumer" -B "$tmp/cmake" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "${cmake_cxx[@]}"
found=$(sed -n 's/^ctnn_DIR:PATH=//p' "$tmp/cmake/CMakeCache.txt")
case "$found" in
  "$prefix"/*) ;;
  *) echo "FAILED: find_package(ctnn) found $found, not the copy in $prefix"; exit 1 ;;
esac
step "cmake build" cmake --build "$tmp/cmake"
flags=$(cat "$tmp/cmake/CMakeFiles/consumer.dir/flags.make")
wants=("std=c++20\|std=gnu++20")
[ "$fp_contract" = true ] && wants+=(-ffp-contract=fast)
for want in "${wants[@]}"; do
  if ! grep -q -- "$want" <<<"$flags"; then
    echo "FAILED: ctnn::ctnn did not give the consumer's compile line $want:"
    echo "$flags"
    exit 1
  fi
done
check_output "the CMake-built consumer" "$tmp/cmake/consumer"

# 3. pkg-config: ctnn.pc's flags and its required packages (xsimd, zlib).
export PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
cflags=$(pkg-config --cflags ctnn) && libs=$(pkg-config --libs ctnn) || {
  echo "FAILED: pkg-config ctnn (PKG_CONFIG_PATH=$PKG_CONFIG_PATH)"
  exit 1
}
echo "== pkg-config: --cflags $cflags --libs $libs"
case " $libs " in
  *" -lz "*) ;;
  *) echo "FAILED: pkg-config --libs ctnn lacks -lz (ctnn.pc must require zlib)"; exit 1 ;;
esac
# shellcheck disable=SC2086  # the flags are words
step "compile with pkg-config's flags" "${cxx[@]}" -O1 $cflags "$src/tests/consumer/main.cpp" -o "$tmp/consumer_pc" $libs
check_output "the pkg-config-built consumer" "$tmp/consumer_pc"

echo "consumers: CMake and pkg-config builds against the installed ctnn both work"
