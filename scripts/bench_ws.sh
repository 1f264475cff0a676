#!/usr/bin/env bash
# WebSocket vs TCP on one server (issue 10, docs/benchmarks.md "WebSocket"):
# one `lampyr` with netport and wsport and the built-in echo; lampyr-bench runs
# the same closed-loop load over each transport, alternating, REPEAT times per
# cell; then the same over wss (a second server with protocol.ws_tls and a
# throwaway self-signed certificate) against ws, alternating; then 10,000 idle
# sessions per transport, each on a fresh server.
# Prints one JSON line per run and a median table at the end.
#   LAMPYR_BUILD_DIR (default build), REPEAT (default 3), SECONDS_PER_RUN (default 3),
#   IDLE_SESSIONS (default 10000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${LAMPYR_BUILD_DIR:-build}/bin
REPEAT=${REPEAT:-3}
DUR=${SECONDS_PER_RUN:-3}
IDLE=${IDLE_SESSIONS:-10000}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lampyr-bench-ws.XXXXXX")
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start [tls]: one server; with "tls" its wsport speaks wss.
start() {
  NET=$(free_port); WS=$(free_port)
  local tls=
  [ "${1:-}" = tls ] && tls=", \"ws_tls\": {\"cert\": \"$TMP/cert.pem\", \"key\": \"$TMP/key.pem\"}"
  cat >"$TMP/c.json" <<JSON
{"servers": {"net": {"netport": $NET, "wsport": $WS, "builtins": {"echo": 1}, "log_level": "warn"}},
 "protocol": {"max_connections": 30000, "max_connections_per_ip": 0, "ws_origins": ["http://bench"]$tls}}
JSON
  "$BIN/lampyr" --conf "$TMP/c.json" --server net >"$TMP/server.out" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 200); do (exec 5<>/dev/tcp/127.0.0.1/$WS) 2>/dev/null && return; sleep 0.05; done
  cat "$TMP/server.out" >&2; exit 1
}
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; }

field() { sed -nE "s/.*\"$1\": ?([0-9.]+).*/\1/p" <<<"$2"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD); load: $(cut -d' ' -f1-3 /proc/loadavg)"
start
declare -A RPS CPU P50
for cell in "100 1" "1 1"; do
  set -- $cell
  for _ in $(seq 1 "$REPEAT"); do
    for t in tcp ws; do
      if [ $t = tcp ]; then args=(--port "$NET"); else args=(--port "$WS" --ws); fi
      j=$("$BIN/lampyr-bench" "${args[@]}" --pid "$SERVER" --connections "$1" --depth "$2" --body-bytes 32 \
          --duration "$DUR" --warmup 1 --json)
      echo "$t c$1 d$2: $j"
      RPS[$t,$1]+=" $(field rps "$j")"; CPU[$t,$1]+=" $(field server_cpu_us_per_req "$j")"
      P50[$t,$1]+=" $(field p50_us "$j")"
    done
  done
done
stop

# ws vs wss: one server each, up together, alternating runs.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
  -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
start; WS_PLAIN=$WS; PLAIN=$SERVER
start tls; WS_TLS=$WS; TLS=$SERVER
for cell in "100 1" "1 1"; do
  set -- $cell
  for _ in $(seq 1 "$REPEAT"); do
    for t in ws wss; do
      if [ $t = ws ]; then args=(--port "$WS_PLAIN" --ws --pid "$PLAIN"); else args=(--port "$WS_TLS" --wss --pid "$TLS"); fi
      j=$("$BIN/lampyr-bench" "${args[@]}" --connections "$1" --depth "$2" --body-bytes 32 \
          --duration "$DUR" --warmup 1 --json)
      echo "$t c$1 d$2: $j"
      RPS[s$t,$1]+=" $(field rps "$j")"; CPU[s$t,$1]+=" $(field server_cpu_us_per_req "$j")"
      P50[s$t,$1]+=" $(field p50_us "$j")"
    done
  done
done
kill "$PLAIN"; wait "$PLAIN" 2>/dev/null || true
stop

declare -A IDLE_B
for t in tcp ws; do
  start
  if [ $t = tcp ]; then args=(--port "$NET"); else args=(--port "$WS" --ws); fi
  j=$("$BIN/lampyr-bench" "${args[@]}" --pid "$SERVER" --connections "$IDLE" --idle --json)
  echo "$t idle $IDLE: $j"
  IDLE_B[$t]=$(field bytes_per_session "$j")
  stop
done
echo
# ratio_table A B NAME_A NAME_B: the medians of transports A and B per cell, and B/A.
ratio_table() {
  local a=$1 b=$2 na=$3 nb=$4 c ra rb ca cb
  echo "| load | $na req/s | $nb req/s | $nb/$na | $na CPU µs/req | $nb CPU µs/req | $nb/$na CPU | $na p50 µs | $nb p50 µs |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in 100 1; do
    ra=$(median <<<"${RPS[$a,$c]}"); rb=$(median <<<"${RPS[$b,$c]}")
    ca=$(median <<<"${CPU[$a,$c]}"); cb=$(median <<<"${CPU[$b,$c]}")
    echo "| $c conn, depth 1 | $ra | $rb | $(awk "BEGIN {printf \"%.2f\", $rb/$ra}") | $ca | $cb |" \
      "$(awk "BEGIN {printf \"%.2f\", $cb/$ca}") | $(median <<<"${P50[$a,$c]}") | $(median <<<"${P50[$b,$c]}") |"
  done
}
ratio_table tcp ws TCP WS
echo
ratio_table sws swss ws wss
echo
echo "| $IDLE idle sessions | TCP | WS |"
echo "|---|---:|---:|"
echo "| server bytes/session | ${IDLE_B[tcp]} | ${IDLE_B[ws]} |"
