#!/usr/bin/env bash
# Client-path benchmarks of the host against a bare libevent echo server
# (docs/benchmarks.md). Builds, then runs each section; results go to stdout
# as markdown, progress to stderr.
#
#   scripts/bench.sh [--quick] [--no-build] [--json FILE] [--only SECTION]...
#                    [--repeat N] [--duration S]
#
#   --quick        short runs (smoke test of the script and the tools)
#   --no-build     use the binaries already in the build tree
#   --json FILE    also write every measurement as a JSON array to FILE
#   --only S       run only section S (repeatable): echo_matrix, cpu_per_request,
#                  round_trip, idle_sessions, plugin_dispatch, reload_under_load,
#                  websocket
#   --repeat N     runs per cell; the median is reported (default 3, quick 1)
#   --duration S   measured seconds per run (default 3, quick 0.5)
#
# Environment: LAMPYR_BUILD_DIR (default build), LAMPYR_BUILD_TYPE (default
# RelWithDebInfo, used when the build tree is new), LAMPYR_BENCH_THREADS
# (client threads, default 1: the client and the server share the cores).
#
# Adding a section: write a function section_NAME that prints a markdown
# heading and table (use run_pair / run_load / record), append NAME to
# SECTIONS. Servers come from start_host / start_baseline.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
BUILD=${LAMPYR_BUILD_DIR:-build}
BUILD_TYPE=${LAMPYR_BUILD_TYPE:-RelWithDebInfo}
THREADS=${LAMPYR_BENCH_THREADS:-1}

SECTIONS=(echo_matrix cpu_per_request round_trip idle_sessions plugin_dispatch reload_under_load websocket)

QUICK=0
DO_BUILD=1
JSON_FILE=""
ONLY=()
REPEAT=""
DURATION=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-build) DO_BUILD=0 ;;
    --json) JSON_FILE=$2; shift ;;
    --only) ONLY+=("$2"); shift ;;
    --repeat) REPEAT=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  REPEAT=${REPEAT:-1}; DURATION=${DURATION:-0.5}; WARMUP=0.2; IDLE_SESSIONS=2000
else
  REPEAT=${REPEAT:-3}; DURATION=${DURATION:-3}; WARMUP=1; IDLE_SESSIONS=10000
fi
[ ${#ONLY[@]} -gt 0 ] && SECTIONS=("${ONLY[@]}")

log() { echo "bench.sh: $*" >&2; }

# ---------------------------------------------------------------- build
if [ "$DO_BUILD" = 1 ]; then
  log "building in $BUILD"
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" >&2
  fi
  cmake --build "$BUILD" -j"$(nproc 2>/dev/null || echo 2)" --target lampyr lampyr-bench lampyr-echo-baseline lampyrctl echo >&2
fi
BIN=$(cd "$BUILD/bin" && pwd)
for b in lampyr lampyr-bench lampyr-echo-baseline; do
  [ -x "$BIN/$b" ] || { echo "bench.sh: $BIN/$b is missing (build first)" >&2; exit 1; }
done

# Every idle session is a descriptor in the server and one in the client.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_SESSIONS + 100)) ]; then
  log "ulimit -n is $(ulimit -n): the idle section is cut to $(( $(ulimit -n) - 100 )) sessions"
  IDLE_SESSIONS=$(( $(ulimit -n) - 100 ))
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lampyr-bench.XXXXXX")
# A fresh admin token per run, for lampyr and lampyrctl alike: lampyr refuses
# sample or short tokens (docs/operations.md, "Security model").
LAMPYR_ADMIN_TOKEN=$(openssl rand -hex 24 2>/dev/null || od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
export LAMPYR_ADMIN_TOKEN
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

# ---------------------------------------------------------------- servers
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Sets PORT to a port nothing listens on, below the ephemeral range (the
# client's own connections take ports there). Not a subshell: subshells
# repeat the parent's RANDOM sequence.
free_port() {
  local low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for _ in $(seq 50); do
    PORT=$((10000 + RANDOM % (low - 10000)))
    port_open "$PORT" || return 0
  done
  echo "bench.sh: no free port" >&2; exit 1
}

wait_port() {  # port pid
  for _ in $(seq 500); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.01
  done
  echo "bench.sh: server pid $2 did not open port $1" >&2
  return 1
}

# Sets SERVER_PID and SERVER_PORT.
start_baseline() {
  free_port; SERVER_PORT=$PORT
  "$BIN/lampyr-echo-baseline" --port "$SERVER_PORT" >"$TMP/baseline.out" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_port "$SERVER_PORT" "$SERVER_PID"
}

# lampyr --server net with the echo builtin on command 1. Every load
# connection comes from 127.0.0.1, so the per-address limit is off.
start_host() {
  free_port; SERVER_PORT=$PORT
  cat >"$TMP/host.json" <<EOF
{"servers": {"net": {"netport": $SERVER_PORT, "builtins": {"echo": 1}, "log_level": "warn"}},
 "protocol": {"max_connections": 100000, "max_connections_per_ip": 0}}
EOF
  "$BIN/lampyr" --conf "$TMP/host.json" --server net >>"$TMP/host.out" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_port "$SERVER_PORT" "$SERVER_PID" || { cat "$TMP/host.out" >&2; return 1; }
}

stop_server() {  # pid
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# ---------------------------------------------------------------- measuring
JSON_ITEMS=()

# json_get KEY JSON: a number or string field of lampyr-bench's flat JSON.
json_get() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$2"; }
json_num() { local v; v=$(json_get "$@"); echo "${v:-0}"; }

# run_load PORT PID ARGS...: one lampyr-bench run; prints its JSON line.
run_load() {
  local port=$1 pid=$2 out
  shift 2
  if ! out=$("$BIN/lampyr-bench" --port "$port" --pid "$pid" --threads "$THREADS" --json "$@"); then
    log "lampyr-bench reported errors: $out"
  fi
  echo "$out"
}

# record SECTION LABEL SERVER JSON: keeps a measurement for --json.
record() {
  JSON_ITEMS+=("{\"section\":\"$1\",\"label\":\"$2\",\"server\":\"$3\",\"result\":$4}")
}

median() { tr ' ' '\n' | sort -g | awk 'NF {v[++n] = $1} END {if (n) print v[int((n + 1) / 2)]}'; }

# run_pair SECTION LABEL ARGS...: baseline and host under the same load,
# alternately, REPEAT times. Sets B_* and H_* (medians) and ERRORS.
run_pair() {
  local section=$1 label=$2
  shift 2
  local b_rps="" h_rps="" b_p50="" h_p50="" b_p99="" h_p99="" b_cpu="" h_cpu="" ratios="" j r
  ERRORS=0
  for _ in $(seq "$REPEAT"); do
    j=$(run_load "$BASE_PORT" "$BASE_PID" "$@")
    record "$section" "$label" baseline "$j"
    b_rps+=" $(json_get rps "$j")"; b_p50+=" $(json_get p50_us "$j")"
    b_p99+=" $(json_get p99_us "$j")"; b_cpu+=" $(json_get server_cpu_us_per_req "$j")"
    ERRORS=$((ERRORS + $(json_num errors "$j")))
    r=$(json_get rps "$j")
    j=$(run_load "$HOST_PORT" "$HOST_PID" "$@")
    record "$section" "$label" host "$j"
    h_rps+=" $(json_get rps "$j")"; h_p50+=" $(json_get p50_us "$j")"
    h_p99+=" $(json_get p99_us "$j")"; h_cpu+=" $(json_get server_cpu_us_per_req "$j")"
    ERRORS=$((ERRORS + $(json_num errors "$j")))
    ratios+=" $(awk -v h="$(json_get rps "$j")" -v b="$r" 'BEGIN {printf "%.3f", (b > 0 ? h / b : 0)}')"
  done
  B_RPS=$(median <<<"$b_rps"); H_RPS=$(median <<<"$h_rps")
  B_P50=$(median <<<"$b_p50"); H_P50=$(median <<<"$h_p50")
  B_P99=$(median <<<"$b_p99"); H_P99=$(median <<<"$h_p99")
  B_CPU=$(median <<<"$b_cpu"); H_CPU=$(median <<<"$h_cpu")
  RATIO=$(median <<<"$ratios")
  RATIO_RANGE=$(tr ' ' '\n' <<<"$ratios" | sort -g | awk 'NF {v[++n] = $1} END {printf "%.2f–%.2f", v[1], v[n]}')
}

start_pair() {
  start_baseline; BASE_PORT=$SERVER_PORT; BASE_PID=$SERVER_PID
  start_host; HOST_PORT=$SERVER_PORT; HOST_PID=$SERVER_PID
}
stop_pair() { stop_server "$BASE_PID"; stop_server "$HOST_PID"; }

LOAD=(--duration "$DURATION" --warmup "$WARMUP")

# ---------------------------------------------------------------- sections
section_echo_matrix() {
  echo "### Echo: host vs bare libevent baseline (32-byte bodies)"
  echo
  echo "| conns | depth | baseline req/s | host req/s | host/baseline (range) | baseline p50/p99 µs | host p50/p99 µs | baseline CPU µs/req | host CPU µs/req | errors |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  start_pair
  for c in 1 100 1000; do
    for d in 1 16; do
      log "echo_matrix: $c connections, depth $d"
      run_pair echo_matrix "c${c}_d${d}" --connections "$c" --depth "$d" --body-bytes 32 "${LOAD[@]}"
      printf '| %s | %s | %.0f | %.0f | %.2f (%s) | %s / %s | %s / %s | %s | %s | %s |\n' "$c" "$d" "$B_RPS" "$H_RPS" \
        "$RATIO" "$RATIO_RANGE" "$B_P50" "$B_P99" "$H_P50" "$H_P99" "$B_CPU" "$H_CPU" "$ERRORS"
    done
  done
  stop_pair
  echo
}

section_cpu_per_request() {
  echo "### Server CPU per request: 100 connections, depth 1, 32-byte bodies"
  echo
  start_pair
  log "cpu_per_request"
  run_pair cpu_per_request c100_d1 --connections 100 --depth 1 --body-bytes 32 "${LOAD[@]}"
  echo "| server | CPU µs/req | req/s |"
  echo "|---|---:|---:|"
  printf '| baseline | %s | %.0f |\n| host | %s | %.0f |\n' "$B_CPU" "$B_RPS" "$H_CPU" "$H_RPS"
  stop_pair
  echo
}

section_round_trip() {
  echo "### Round trip: 1 connection, depth 1, 32-byte bodies"
  echo
  start_pair
  log "round_trip"
  run_pair round_trip c1_d1 --connections 1 --depth 1 --body-bytes 32 "${LOAD[@]}"
  echo "| server | p50 µs | p99 µs | req/s |"
  echo "|---|---:|---:|---:|"
  printf '| baseline | %s | %s | %.0f |\n| host | %s | %s | %.0f |\n' "$B_P50" "$B_P99" "$B_RPS" "$H_P50" "$H_P99" "$H_RPS"
  stop_pair
  echo
}

section_idle_sessions() {
  echo "### Idle sessions: server RSS growth for $IDLE_SESSIONS open connections (one round trip each)"
  echo
  echo "| server | RSS before KiB | RSS after KiB | bytes/session | errors |"
  echo "|---|---:|---:|---:|---:|"
  local name j
  for name in baseline host; do
    log "idle_sessions: $name"
    "start_$name"  # a fresh process: freed memory of earlier runs would hide the growth
    j=$("$BIN/lampyr-bench" --port "$SERVER_PORT" --pid "$SERVER_PID" --connections "$IDLE_SESSIONS" --idle --json) ||
      log "lampyr-bench reported errors: $j"
    record idle_sessions "n$IDLE_SESSIONS" "$name" "$j"
    printf '| %s | %d | %d | %s | %s |\n' "$name" $(($(json_num rss_before_bytes "$j") / 1024)) \
      $(($(json_num rss_after_bytes "$j") / 1024)) "$(json_get bytes_per_session "$j")" "$(json_get errors "$j")"
    stop_server "$SERVER_PID"
  done
  echo
}

# A server with the echo builtin on command 1 and the echo plugin on
# command 2 (plugin copy under $TMP/deploy, replaced by rename), plus an
# admin API for reloads. Sets SERVER_PID, SERVER_PORT, ADMIN_PORT.
start_plugin_host() {
  free_port; SERVER_PORT=$PORT
  free_port; ADMIN_PORT=$PORT
  mkdir -p "$TMP/deploy"
  cp "$REPO/$BUILD/plugins/libecho.so" "$TMP/deploy/libecho.so"
  cat >"$TMP/plugin_host.json" <<EOF
{"servers": {"game": {"netport": $SERVER_PORT, "webport": $ADMIN_PORT, "builtins": {"echo": 1},
                      "plugins": ["echo"], "log_level": "warn"}},
 "plugins": {"echo": {"path": "deploy/libecho.so", "config": {"command": 2}}},
 "protocol": {"max_connections": 100000, "max_connections_per_ip": 0}}
EOF
  "$BIN/lampyr" --conf "$TMP/plugin_host.json" --server game >>"$TMP/plugin_host.out" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_port "$SERVER_PORT" "$SERVER_PID" || { cat "$TMP/plugin_host.out" >&2; return 1; }
}

section_plugin_dispatch() {
  echo "### Plugin handler vs built-in handler (same process, same run, 32-byte echo)"
  echo
  echo "| connections | depth | built-in req/s | plugin req/s | plugin/built-in | built-in CPU µs/req | plugin CPU µs/req |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  start_plugin_host
  local c d j b_rps p_rps b_cpu p_cpu ratios r1
  for c in 1 100; do
    for d in 1 16; do
      log "plugin_dispatch: $c connections, depth $d"
      b_rps=""; p_rps=""; b_cpu=""; p_cpu=""; ratios=""
      for _ in $(seq "$REPEAT"); do
        j=$(run_load "$SERVER_PORT" "$SERVER_PID" "${LOAD[@]}" --connections "$c" --depth "$d" --command 1)
        record plugin_dispatch "c${c}_d${d}" builtin "$j"
        r1=$(json_get rps "$j"); b_rps+=" $r1"; b_cpu+=" $(json_get server_cpu_us_per_req "$j")"
        j=$(run_load "$SERVER_PORT" "$SERVER_PID" "${LOAD[@]}" --connections "$c" --depth "$d" --command 2)
        record plugin_dispatch "c${c}_d${d}" plugin "$j"
        p_rps+=" $(json_get rps "$j")"; p_cpu+=" $(json_get server_cpu_us_per_req "$j")"
        ratios+=" $(awk -v p="$(json_get rps "$j")" -v b="$r1" 'BEGIN {printf "%.3f", (b > 0 ? p / b : 0)}')"
      done
      printf '| %d | %d | %.0f | %.0f | %s | %.2f | %.2f |\n' "$c" "$d" "$(median <<<"$b_rps")" \
        "$(median <<<"$p_rps")" "$(median <<<"$ratios")" "$(median <<<"$b_cpu")" "$(median <<<"$p_cpu")"
    done
  done
  stop_server "$SERVER_PID"
  echo
}

# Hot reloads of the echo plugin while lampyr-bench drives it; every request
# must be answered correctly (lampyr-bench counts anything else as an error).
# The same load without reloads, in the same run, is the comparison.
reload_load_run() {  # $1 = reloads during the run (0 = none); result in $TMP/reload_load.json
  local reloads=$1 secs i a
  secs=$(awk -v n="$RELOADS" 'BEGIN {print n * 0.05 + 2}')
  "$BIN/lampyr-bench" --port "$SERVER_PORT" --pid "$SERVER_PID" --connections 100 --depth 1 --command 2 \
    --duration "$secs" --warmup 0.5 --json >"$TMP/reload_load.json" 2>&1 &
  local bench=$!
  RELOADS_OK=0; RELOAD_TIMES=""; LOOP_TIMES=""
  sleep 1
  for i in $(seq "$reloads"); do
    cp "$REPO/$BUILD/plugins/libecho.so" "$TMP/deploy/libecho.so.tmp"
    mv -f "$TMP/deploy/libecho.so.tmp" "$TMP/deploy/libecho.so"   # a new build, installed by rename
    a=$("$BIN/lampyrctl" --url "http://127.0.0.1:$ADMIN_PORT" --json reload echo | tr -d ' \n' || true)
    grep -q '"ok":true' <<<"$a" && RELOADS_OK=$((RELOADS_OK + 1))
    RELOAD_TIMES+=" $(sed -n 's/.*"reload_ms":\([0-9.]*\).*/\1/p' <<<"$a")"
    LOOP_TIMES+=" $(sed -n 's/.*"loop_ms":\([0-9.]*\).*/\1/p' <<<"$a")"
    sleep 0.03
  done
  wait "$bench" || true
}

# TCP vs ws vs wss on one host (scripts/bench_ws.sh, which also works alone):
# its tables, not its per-run lines.
section_websocket() {
  echo "### WebSocket: TCP vs ws, ws vs wss (32-byte echo), idle sessions per transport"
  echo
  log "websocket: scripts/bench_ws.sh"
  LAMPYR_BUILD_DIR=$BUILD REPEAT=$REPEAT SECONDS_PER_RUN=$DURATION IDLE_SESSIONS=$IDLE_SESSIONS \
    "$REPO/scripts/bench_ws.sh" | sed -n '/^|/p;/^$/p' | cat -s | sed '1{/^$/d}'
}

section_reload_under_load() {
  RELOADS=100
  [ "$QUICK" = 1 ] && RELOADS=10
  echo "### Hot reload under load: $RELOADS reloads of the echo plugin during one lampyr-bench run (100 connections, depth 1)"
  echo
  echo "| run | reloads ok | reload ms (median / max) | loop blocked ms (median / max) | req/s | requests | errors | p50 µs | p99 µs | p999 µs | max µs |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  start_plugin_host
  local n j label
  for n in 0 "$RELOADS"; do
    log "reload_under_load: $n reloads"
    reload_load_run "$n"
    j=$(cat "$TMP/reload_load.json")
    label=$([ "$n" = 0 ] && echo "no reloads" || echo "$n reloads")
    record reload_under_load "r$n" plugin "$j"
    printf '| %s | %s | %s | %s | %.0f | %s | %s | %.0f | %.0f | %.0f | %.0f |\n' "$label" \
      "$([ "$n" = 0 ] && echo - || echo "$RELOADS_OK of $n")" \
      "$([ "$n" = 0 ] && echo - || printf '%.2f / %.2f' "$(median <<<"$RELOAD_TIMES")" "$(tr ' ' '\n' <<<"$RELOAD_TIMES" | sort -g | tail -1)")" \
      "$([ "$n" = 0 ] && echo - || printf '%.3f / %.3f' "$(median <<<"$LOOP_TIMES")" "$(tr ' ' '\n' <<<"$LOOP_TIMES" | sort -g | tail -1)")" \
      "$(json_get rps "$j")" "$(json_get requests "$j")" "$(json_get errors "$j")" "$(json_get p50_us "$j")" \
      "$(json_get p99_us "$j")" "$(json_get p999_us "$j")" "$(json_get max_us "$j")"
  done
  stop_server "$SERVER_PID"
  echo
}

# ---------------------------------------------------------------- main
echo "## lampyr benchmarks"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "- machine: $(uname -srm); $(nproc) CPUs: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- runs: ${DURATION} s measured after ${WARMUP} s warmup, median of $REPEAT; client threads: $THREADS$([ "$QUICK" = 1 ] && echo '; QUICK MODE')"
echo
for s in "${SECTIONS[@]}"; do
  declare -F "section_$s" >/dev/null || { echo "bench.sh: no section $s" >&2; exit 2; }
  "section_$s"
done

if [ -n "$JSON_FILE" ]; then
  { echo "["; (IFS=,; echo "${JSON_ITEMS[*]}"); echo "]"; } >"$JSON_FILE"
  log "wrote $JSON_FILE"
fi
