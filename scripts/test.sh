#!/usr/bin/env bash
# The whole test run, as CI does it (README):
#   deps -> build (build/, RelWithDebInfo) -> ASan+UBSan build (build-asan/)
#   -> services -> ctest on both builds -> fuzzers (build-fuzz/, clang)
# Ends with one plain line "N passed, M failed" (ctest results of both
# builds) and exits non-zero on any failure (build, test, fuzzer, service).
#
# Environment:
#   LAMPYR_SKIP_ASAN=1       skip the sanitizer build and its tests (local runs)
#   LAMPYR_SKIP_FUZZ=1       skip the fuzzers (local runs)
#   LAMPYR_FUZZ_SECONDS=30   time per fuzz target
#   LAMPYR_JOBS=N            parallel build jobs (default: number of CPUs)
#   LAMPYR_CTEST_JOBS=N      parallel tests (default 2)
#   LAMPYR_BUILD_DIR, LAMPYR_ASAN_DIR, LAMPYR_FUZZ_DIR
#                            build trees (default build, build-asan, build-fuzz)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
T0=$(date +%s)

JOBS=${LAMPYR_JOBS:-$(nproc 2>/dev/null || echo 2)}
CTEST_JOBS=${LAMPYR_CTEST_JOBS:-2}
FUZZ_SECONDS=${LAMPYR_FUZZ_SECONDS:-30}
BUILD=${LAMPYR_BUILD_DIR:-build}
ASAN=${LAMPYR_ASAN_DIR:-build-asan}
FUZZ=${LAMPYR_FUZZ_DIR:-build-fuzz}

PASSED=0
FAILED=0
PROBLEMS=()      # one line per failed step, repeated in the summary
SERVICES_STARTED=0

step() { printf '\n==> %s\n' "$*"; }
problem() {
  echo "test.sh: FAILED: $*" >&2
  PROBLEMS+=("$*")
}
elapsed() { echo $(($(date +%s) - T0)); }

finish() {
  local rc=$?
  if [ "$SERVICES_STARTED" = 1 ]; then
    step "stopping services"
    scripts/services.sh stop || problem "services.sh stop"
    SERVICES_STARTED=0
  fi
  echo
  if [ ${#PROBLEMS[@]} -gt 0 ]; then
    echo "Failures:"
    printf '  - %s\n' "${PROBLEMS[@]}"
  fi
  echo "wall time: $(elapsed) s"
  echo "$PASSED passed, $FAILED failed"
  if [ ${#PROBLEMS[@]} -gt 0 ] || [ "$FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then
    exit 1
  fi
  exit 0
}
trap finish EXIT
trap 'echo "test.sh: interrupted" >&2; exit 130' INT TERM

# Configures and builds one tree. $1 = dir, rest = cmake args.
build_tree() {
  local dir=$1
  shift
  step "configure $dir"
  if ! cmake -S "$REPO" -B "$dir" "$@"; then
    problem "cmake configure of $dir"
    return 1
  fi
  step "build $dir"
  if ! cmake --build "$dir" -j"$JOBS"; then
    problem "build of $dir"
    return 1
  fi
}

# Runs ctest in $1 and adds its counts to PASSED/FAILED.
run_ctest() {
  local dir=$1 log total failed_n
  shift
  log=$dir/ctest-summary.log
  step "ctest in $dir"
  ctest --test-dir "$dir" --output-on-failure -j"$CTEST_JOBS" --timeout 300 "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  # "100% tests passed, 0 tests failed out of 42"
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  if [ -n "$line" ]; then
    failed_n=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
    PASSED=$((PASSED + total - failed_n))
    FAILED=$((FAILED + failed_n))
  elif grep -q 'No tests were found' "$log"; then
    problem "no tests found in $dir"
    return 1
  fi
  if [ "$rc" -ne 0 ]; then
    problem "ctest in $dir (exit $rc)"
    return 1
  fi
}

# Runs one libFuzzer target for FUZZ_SECONDS with its committed seed corpus.
run_fuzzer() {
  local name=$1 bin=$FUZZ/bin/$1
  local seeds=$REPO/test/fuzz/corpus/$name
  local work=$FUZZ/corpus/$name artifacts=$FUZZ/artifacts/$name/ log=$FUZZ/$name.log
  mkdir -p "$work" "$artifacts"
  step "fuzz $name for ${FUZZ_SECONDS}s"
  # New inputs go to the first (scratch) directory; the seeds stay untouched.
  if ! "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts" "$work" "$seeds" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    problem "fuzzer $name (crash input saved under $artifacts)"
    return 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^Done ' "$log" || true
}

# --- 1. dependencies ---------------------------------------------------------
step "dependencies"
if ! scripts/deps.sh; then
  problem "scripts/deps.sh"
  exit 1
fi

# --- 2. builds -----------------------------------------------------------------
NORMAL_OK=0
ASAN_OK=0
build_tree "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo && NORMAL_OK=1
if [ "${LAMPYR_SKIP_ASAN:-0}" != 1 ]; then
  build_tree "$ASAN" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAMPYR_SANITIZE=ON && ASAN_OK=1
fi

# --- 3. services -----------------------------------------------------------------
# A developer's already running services are left running; ones we start, we stop.
step "services"
if scripts/services.sh status >/dev/null 2>&1; then
  echo "services already up; leaving them running afterwards"
elif scripts/services.sh start; then
  SERVICES_STARTED=1
else
  problem "scripts/services.sh start"
fi
eval "$(scripts/services.sh env)"

# --- 4. tests ----------------------------------------------------------------------
[ "$NORMAL_OK" = 1 ] && run_ctest "$BUILD"
if [ "$ASAN_OK" = 1 ]; then
  LAMPYR_SOAK_CYCLES=${LAMPYR_SOAK_CYCLES:-300} \
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_ctest "$ASAN"
fi

if [ "$SERVICES_STARTED" = 1 ]; then
  step "stopping services"
  scripts/services.sh stop || problem "services.sh stop"
  SERVICES_STARTED=0
fi

# --- 5. fuzzers ----------------------------------------------------------------------
if [ "${LAMPYR_SKIP_FUZZ:-0}" != 1 ]; then
  step "configure $FUZZ (clang)"
  if CC=clang CXX=clang++ cmake -S "$REPO" -B "$FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAMPYR_FUZZ=ON \
      && cmake --build "$FUZZ" -j"$JOBS" --target lampyr_fuzzers; then
    for src in test/fuzz/fuzz_*.cpp; do
      run_fuzzer "$(basename "$src" .cpp)"
    done
  else
    problem "fuzz build"
  fi
fi
exit 0
