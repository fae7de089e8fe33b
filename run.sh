#!/usr/bin/env bash
# ctnn's two entry points (README's quick start):
#   ./run.sh        install what is missing, build (release), run the main job (LeNet on Fashion-MNIST)
#   ./run.sh -- OPTIONS   the same, passing OPTIONS to the trainer (--epochs 2, --modern, --help)
#   ./run.sh test   install what is missing, build with g++ 12 and clang 19 (warnings are errors),
#                   run every test, then the unit tests again under AddressSanitizer + UBSan
# Debian 12; as root, or with sudo. Builds go to build/<name>/ and are reused.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(meson ninja-build pkg-config cmake python3 g++ clang-19 libclang-rt-19-dev
          libboost1.81-dev libxsimd-dev doctest-dev libbenchmark-dev zlib1g-dev dataset-fashion-mnist
          nlohmann-json3-dev)
JOBS=${JOBS:-2}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "== installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# configure NAME CXX [meson options...]: set up build/NAME once, reconfigure otherwise.
configure() {
  local name=$1 cxx=$2
  shift 2
  if [ -f "build/$name/build.ninja" ]; then
    meson configure "build/$name" "$@" >/dev/null
  else
    CXX=$cxx meson setup "build/$name" "$@" >/dev/null
  fi
  echo "== building build/$name ($cxx)"
  ninja -C "build/$name" -j "$JOBS"
}

# The main job: train D2L's LeNet on Fashion-MNIST (options after `--` go to the trainer).
main_job() {
  configure release g++ -Dbuildtype=release -Dtests=disabled -Dbenchmarks=disabled -Dexamples=enabled
  # By default the trained weights are saved (safetensors) and reloaded into a fresh model.
  [ $# -eq 0 ] && set -- --save build/release/lenet_fashion_mnist.safetensors
  echo "== examples/lenet_fashion_mnist $*"
  build/release/examples/lenet_fashion_mnist "$@"
}

run_tests() {
  local status=0 passed=0 failed=0
  configure gcc g++ --werror -Dtests=enabled -Dexamples=enabled -Dbenchmarks=enabled
  configure clang clang++-19 --werror -Dtests=enabled -Dexamples=enabled -Dbenchmarks=disabled
  configure sanitize g++ --werror -Dtests=enabled -Dexamples=disabled -Dbenchmarks=disabled \
    -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fno-sanitize-recover=all
  for name in gcc clang sanitize; do
    local suites=()
    [ "$name" = sanitize ] && suites=(unit)  # compile-fail cases gain nothing from sanitizers
    echo "== meson test (build/$name)"
    if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       meson test -C "build/$name" --print-errorlogs "${suites[@]}"; then :; else status=1; fi
    local counts
    counts=$(python3 - "build/$name/meson-logs/testlog.json" <<'PY'
import json, sys
ok = bad = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    ok += r in ("OK", "EXPECTEDFAIL", "SKIP")
    bad += r not in ("OK", "EXPECTEDFAIL", "SKIP")
print(ok, bad)
PY
)
    passed=$((passed + ${counts% *}))
    failed=$((failed + ${counts#* }))
  done
  # Fuzz the safetensors loader for 60 s on a copy of the seed corpus (clang build only).
  local fuzzer=build/clang/tests/fuzz/fuzz_safetensors
  if [ -x "$fuzzer" ]; then
    echo "== fuzzing the safetensors loader for 60 s ($fuzzer, log in build/clang/fuzz.log)"
    local corpus
    corpus=$(mktemp -d)
    cp tests/fuzz/corpus/* "$corpus"/
    if "$fuzzer" -max_total_time=60 -rss_limit_mb=4096 -artifact_prefix=build/clang/ "$corpus" >build/clang/fuzz.log 2>&1; then
      passed=$((passed + 1))
      grep -E '^#[0-9]+ +DONE|^Done' build/clang/fuzz.log || true
    else
      failed=$((failed + 1))
      status=1
      tail -n 40 build/clang/fuzz.log
    fi
    rm -rf "$corpus"
  fi
  echo "ctnn test suites (g++, clang, sanitizers): $passed passed, $failed failed"
  return $status
}

install_packages
case "${1:-main}" in
  main) main_job ;;
  --) shift; main_job "$@" ;;
  test) run_tests ;;
  *) echo "usage: $0 [test | -- trainer options]" >&2; exit 2 ;;
esac
