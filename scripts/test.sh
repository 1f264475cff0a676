#!/usr/bin/env bash
# The whole test run, as CI does it (README):
#   deps -> build (build/, RelWithDebInfo) -> ASan+UBSan build (build-asan/)
#   -> services -> ctest on both builds -> clients/js (npm ci, build, test,
#   the demo page in headless chromium)
#   -> Debian packages end to end (scripts/package-test.sh, from build/)
#   -> fuzzers (build-fuzz/, clang)
# Ends with one plain line "N passed, M failed" (ctest results of both
# builds, the tests of clients/js and the package test, which counts as
# one) and exits non-zero on any failure
# (build, test, fuzzer, service).
#
# Environment:
#   LAMPYR_SKIP_ASAN=1       skip the sanitizer build and its tests (local runs)
#   LAMPYR_SKIP_FUZZ=1       skip the fuzzers (local runs)
#   LAMPYR_SKIP_JS=1         skip the TypeScript client's tests (clients/js, needs node+npm)
#   LAMPYR_SKIP_PACKAGE=1    skip the Debian package test (scripts/package-test.sh: installs
#                            and purges the .debs; root; refuses to run where Lampyr is installed)
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

step() { printf '\n==> %s  [%ss]\n' "$*" "$(($(date +%s) - T0))"; }
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

# --- 5. the TypeScript client (clients/js) against the normal build -------------------
run_js_client() {
  local dir=$REPO/clients/js build log
  build=$(cd "$BUILD" && pwd) || {
    problem "clients/js: no build directory $BUILD"
    return 1
  }
  log=$build/js-client-test.log
  step "clients/js: npm ci, build"
  if ! command -v npm >/dev/null; then
    problem "clients/js: node/npm not found"
    return 1
  fi
  # puppeteer-core drives the system chromium (scripts/deps.sh); it never downloads one.
  (cd "$dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund && npm run build) || {
    problem "clients/js: npm ci / build"
    return 1
  }
  run_js_tap "clients/js: npm test" "$log" \
    env LAMPYR_BIN="$build/bin/lampyr" LAMPYR_PLUGIN_DIR="$build/plugins" npm test || return 1
  run_js_tap "clients/js: the demo page in headless chromium (npm run test:browser)" "$build/js-browser-test.log" \
    env LAMPYR_BIN="$build/bin/lampyr" LAMPYR_PLUGIN_DIR="$build/plugins" \
    LAMPYR_TEST_OUTPUT="$build/test-output/browser" npm run test:browser
}

# Runs one node --test command in clients/js ($3...), logs to $2, counts its TAP totals.
run_js_tap() {
  local what=$1 log=$2 rc pass fail cancelled
  shift 2
  step "$what"
  (cd "$REPO/clients/js" && "$@") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  pass=$(sed -nE 's/^# pass ([0-9]+)$/\1/p' "$log" | tail -n 1)
  fail=$(sed -nE 's/^# fail ([0-9]+)$/\1/p' "$log" | tail -n 1)
  cancelled=$(sed -nE 's/^# cancelled ([0-9]+)$/\1/p' "$log" | tail -n 1)
  PASSED=$((PASSED + ${pass:-0}))
  FAILED=$((FAILED + ${fail:-0} + ${cancelled:-0}))
  if [ "$rc" -ne 0 ] || [ -z "$pass" ]; then
    problem "$what (exit $rc)"
    return 1
  fi
}
if [ "${LAMPYR_SKIP_JS:-0}" != 1 ]; then
  if [ "$NORMAL_OK" = 1 ]; then run_js_client; else problem "clients/js: skipped, the normal build failed"; fi
fi

# --- 6. the Debian packages, installed, used and purged --------------------------------
# From the normal build tree (nothing compiled twice): build the .debs, install
# them, run the installed master as user lampyr, scaffold and test a game
# project, purge, and check nothing is left (scripts/package-test.sh).
if [ "${LAMPYR_SKIP_PACKAGE:-0}" != 1 ]; then
  if [ "$NORMAL_OK" = 1 ]; then
    step "Debian packages: build, install, run, scaffold, purge"
    if LAMPYR_PKG_BUILD_DIR=$BUILD LAMPYR_JOBS=$JOBS scripts/package-test.sh; then
      PASSED=$((PASSED + 1))
    else
      FAILED=$((FAILED + 1))
      problem "scripts/package-test.sh"
    fi
  else
    problem "package test: skipped, the normal build failed"
  fi
fi

# --- 7. fuzzers ----------------------------------------------------------------------
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
