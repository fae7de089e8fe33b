#!/usr/bin/env bash
# ctnn's two entry points (README's quick start):
#   ./run.sh        install what is missing, build (release), run the main job (LeNet on Fashion-MNIST),
#                   then a short benchmark summary (ctnn vs libtorch if installed, else plain loops)
#   ./run.sh -- OPTIONS   the same, passing OPTIONS to the trainer (--epochs 2, --modern, --help)
#                   (data-parallel over 2 MPI ranks, after a first ./run.sh: mpirun -np 2 --oversubscribe
#                   build/release/examples/lenet_fashion_mnist --distributed; docs/distributed.md)
#   ./run.sh test   install what is missing, check formatting (clang-format-19), build with g++ 12
#                   and clang 19 (warnings are errors), run every test, then the unit tests again
#                   under AddressSanitizer + UBSan and built for the portable AVX2 instruction set
#                   (-Disa=avx2)
#   ./run.sh bench  install the baselines (libtorch, OpenBLAS, oneDNN, Eigen, matplotlib), build
#                   build/bench, run every benchmark (5 repetitions; bench_resnet's ResNet-18 and
#                   BN-LeNet too, a few minutes) into build/bench/*.json, print
#                   the table of docs/benchmarks.md and redraw docs/benchmarks.png; then the MLP and
#                   LeNet benchmarks built as a user builds (-O2, no -ffp-contract) beside them
# Debian 12; as root, or with sudo. Builds go to build/<name>/ and are reused.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(meson ninja-build pkg-config cmake python3 g++ clang-19 libclang-rt-19-dev clang-format-19
          libboost1.81-dev libxsimd-dev doctest-dev libbenchmark-dev zlib1g-dev dataset-fashion-mnist
          libopenmpi-dev openmpi-bin)  # MPI: ctnn::dist, the trainer's --distributed, the mpi test
# Only for `./run.sh bench`. Without libopenblas0-pthread libtorch runs on the reference BLAS.
BASELINE_PACKAGES=(libtorch-dev libopenblas0-pthread libdnnl-dev libeigen3-dev python3-matplotlib)
JOBS=${JOBS:-2}
PYTHON=/usr/bin/python3  # Debian's, which sees python3-matplotlib (not a pyenv or venv python3)

# install_packages PACKAGE...: apt-get install those not installed yet.
install_packages() {
  local missing=()
  for p in "$@"; do
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

# The main job: train D2L's LeNet on Fashion-MNIST (options after `--` go to the trainer), then
# a short benchmark summary. The benchmarks build against whichever baselines are installed
# (baselines=auto); `./run.sh bench` installs them and runs the full suite.
main_job() {
  configure release g++ -Dbuildtype=release -Dtests=disabled -Dbenchmarks=enabled -Dbaselines=auto \
    -Dexamples=enabled
  # By default the trained weights are saved (safetensors) and reloaded into a fresh model.
  [ $# -eq 0 ] && set -- --save build/release/lenet_fashion_mnist.safetensors
  echo "== examples/lenet_fashion_mnist $*"
  build/release/examples/lenet_fashion_mnist "$@"
  bench_summary || echo "== benchmark summary failed (the main job itself succeeded)"
}

# run_bench BINARY JSON [options...]: one benchmark binary, JSON results into JSON. The baselines
# run on one thread (the binaries would set these variables and re-execute themselves otherwise).
# (Not --benchmark_enable_random_interleaving: with Google Benchmark 1.7.1 a full run of
# bench_forward under it spent minutes in one benchmark.)
run_bench() {
  local bin=$1 json=$2
  shift 2
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "$bin" --benchmark_out="$json" \
    --benchmark_out_format=json --benchmark_report_aggregates_only=true "$@"
}

# A short run (10-40 s, depending on the load): FMA peak, MLP forward at batch 1 and 64, LeNet
# forward and training step; 3 repetitions each, medians printed by plot_benchmarks.py --summary.
bench_summary() {
  local out=build/release/bench-summary bin=build/release/bench
  mkdir -p "$out"
  rm -f "$out"/*.json
  local opts=(--benchmark_repetitions=3 --benchmark_min_time=0.05)
  echo "== short benchmark run (log in $out/; the full suite: ./run.sh bench)"
  run_bench "$bin/bench_kernels" "$out/kernels.json" "${opts[@]}" --benchmark_filter='^BM_fma_peak/' \
    >"$out/kernels.log" 2>&1
  run_bench "$bin/bench_forward" "$out/forward.json" "${opts[@]}" \
    --benchmark_filter='^BM_mlp_forward/[a-z_]+/(1|64)/' >"$out/forward.log" 2>&1
  run_bench "$bin/bench_lenet" "$out/lenet.json" "${opts[@]}" --benchmark_filter='^BM_lenet_(forward|train_step)/' \
    >"$out/lenet.log" 2>&1
  "$PYTHON" tools/plot_benchmarks.py --summary "$out"/*.json
}

# The full benchmark suite against libtorch, oneDNN, Eigen and plain loops (docs/benchmarks.md).
bench_suite() {
  install_packages "${BASELINE_PACKAGES[@]}"
  configure bench g++ -Dbuildtype=release -Dbenchmarks=enabled -Dbaselines=enabled -Dtests=disabled \
    -Dexamples=disabled
  # bench_resnet (D2L's ResNet-18 at 28x28 and 96x96, BN-LeNet) takes a few minutes: a 96x96
  # ResNet-18 step is seconds, one per repetition.
  for name in bench_kernels bench_forward bench_lenet bench_resnet; do
    echo "== build/bench/bench/$name (5 repetitions, medians; JSON in build/bench/$name.json)"
    run_bench "build/bench/bench/$name" "build/bench/$name.json" --benchmark_repetitions=5
  done
  echo "== tools/plot_benchmarks.py (the table of docs/benchmarks.md; chart in docs/benchmarks.png)"
  "$PYTHON" tools/plot_benchmarks.py build/bench/bench_{kernels,forward,lenet,resnet}.json --png docs/benchmarks.png
  # A user's build: plain -std=c++20 -O2 -march=native, without the project's -O3 and
  # -ffp-contract=fast (the kernels must not need them), beside the release build.
  configure bench-o2 g++ -Dbuildtype=plain -Doptimization=2 -Dfp_contract=false -Dbenchmarks=enabled \
    -Dbaselines=disabled -Dtests=disabled -Dexamples=disabled
  for name in bench_forward bench_lenet; do
    echo "== build/bench-o2/bench/$name (-O2, no contraction flag; 5 repetitions)"
    run_bench "build/bench-o2/bench/$name" "build/bench-o2/$name.json" --benchmark_repetitions=5 \
      --benchmark_filter='ctnn'
  done
  echo "== the -O2 build against the release build (docs/benchmarks.md, 'At a user's flags')"
  "$PYTHON" tools/compare_builds.py --a release build/bench/bench_{forward,lenet}.json \
    --b "O2, no contraction" build/bench-o2/bench_{forward,lenet}.json
}

run_tests() {
  local status=0 passed=0 failed=0
  # Formatting first (a second): .clang-format with Debian's clang-format-19, pinned.
  echo "== tools/check_format.sh (clang-format-19)"
  if tools/check_format.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
  configure gcc g++ --werror -Dtests=enabled -Dexamples=enabled -Dbenchmarks=enabled
  configure clang clang++-19 --werror -Dtests=enabled -Dexamples=enabled -Dbenchmarks=disabled
  # -O0 without -g: the unrolled kernels take minutes per test file to compile when instrumented at -O2.
  configure sanitize g++ --werror -Dtests=enabled -Dexamples=disabled -Dbenchmarks=disabled \
    -Doptimization=0 -Ddebug=false -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fno-sanitize-recover=all
  # The portable instruction set (8-lane kernels, other tile shapes and tails than AVX-512's).
  configure avx2 g++ --werror -Disa=avx2 -Dtests=enabled -Dexamples=disabled -Dbenchmarks=disabled
  # The compiler's default instruction set (4-lane SSE, no FMA): a user's plain `g++ -O2` build.
  configure none g++ --werror -Disa=none -Dtests=enabled -Dexamples=disabled -Dbenchmarks=disabled
  for name in gcc clang sanitize avx2 none; do
    local suites=()
    # compile-fail cases gain nothing from sanitizers or another instruction set
    [ "$name" = sanitize ] || [ "$name" = avx2 ] || [ "$name" = none ] && suites=(unit)
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
  echo "ctnn test suites (formatting, g++, clang, sanitizers, avx2, no -march): $passed passed, $failed failed"
  return $status
}

install_packages "${PACKAGES[@]}"
case "${1:-main}" in
  main) main_job ;;
  --) shift; main_job "$@" ;;
  test) run_tests ;;
  bench) bench_suite ;;
  *) echo "usage: $0 [test | bench | -- trainer options]" >&2; exit 2 ;;
esac
