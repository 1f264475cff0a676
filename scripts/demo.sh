#!/usr/bin/env bash
# The Lampyr demo (README's run command): builds, starts Lampyr, connects
# two scripted players to a chat room, then hot reloads the `room` plugin
# v1 -> v2 -> v1 while they stay connected, and shows that both sessions were
# kept and that the new code answers. The single-server demo also runs the
# `account` plugin on the data layer (memcached + MariaDB from
# scripts/services.sh, started here if they are not running).
#
#   scripts/demo.sh            one server: lampyr --conf conf/single.json --server game
#   scripts/demo.sh cluster    the cluster: lampyr --conf conf/cluster.json (master,
#                              gate with gate_router, net, game1 and game2 with room)
#   scripts/demo.sh web        the chat page (clients/js/demo) in your browser over
#                              WebSocket: lampyr --conf conf/web.json (wsport 11010), the
#                              page on http://127.0.0.1:11011/; runs until Ctrl-C
#
# Environment: LAMPYR_BUILD_DIR (default build), LAMPYR_JOBS. The admin token
# and the cluster secret are fresh random values each run (LAMPYR_ADMIN_TOKEN,
# LAMPYR_CLUSTER_SECRET, exported to lampyr and lampyrctl): the shipped
# configs carry sample values, which lampyr refuses (docs/operations.md,
# "Security model").
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
MODE=${1:-single}
BUILD=${LAMPYR_BUILD_DIR:-build}
JOBS=${LAMPYR_JOBS:-$(nproc 2>/dev/null || echo 2)}
PORT=11009
LAMPYR_ADMIN_TOKEN=$(openssl rand -hex 24 2>/dev/null || od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
LAMPYR_CLUSTER_SECRET=$(openssl rand -hex 24 2>/dev/null || od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
export LAMPYR_ADMIN_TOKEN LAMPYR_CLUSTER_SECRET
WORK=$REPO/$BUILD/demo
DEPLOY=$REPO/$BUILD/deploy
# The browser demo: a server with wsport, a static server for the page, and
# the reload command to try while the page stays connected.
web_demo() {
  local deploy=$REPO/$BUILD/deploy-web work=$REPO/$BUILD/demo-web bin=$REPO/$BUILD/bin
  scripts/deps.sh
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j"$JOBS" --target lampyr lampyrctl room room_v2 echo
  (cd clients/js && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund && npm run build)
  rm -rf "$work" && mkdir -p "$work" "$deploy"
  cp "$REPO/$BUILD/plugins/libroom.so" "$deploy/libroom.so.tmp" && mv -f "$deploy/libroom.so.tmp" "$deploy/libroom.so"
  cp "$REPO/$BUILD/plugins/libecho.so" "$deploy/libecho.so.tmp" && mv -f "$deploy/libecho.so.tmp" "$deploy/libecho.so"
  "$bin/lampyr" --conf conf/web.json --server game >"$work/server.out" 2>&1 &
  local server=$!
  python3 -m http.server 11011 --bind 127.0.0.1 --directory clients/js >"$work/http.out" 2>&1 &
  local http=$!
  trap 'kill $server $http 2>/dev/null; wait $server $http 2>/dev/null' EXIT
  trap 'exit 0' INT TERM
  for port in 11010 11011; do
    for _ in $(seq 1 100); do (exec 5<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
  done
  kill -0 "$server" || { cat "$work/server.out"; echo "demo: the server did not start" >&2; exit 1; }
  cat <<EOT

  Open in two browser windows (each is a player; pick a name, join, chat):

      http://127.0.0.1:11011/demo/index.html?ws=ws://127.0.0.1:11010/

  Hot reload room v1 -> v2 while they stay connected, then press Join again for the v2 greeting:

      cp $BUILD/plugins/libroom_v2.so $deploy/libroom.so.tmp && mv -f $deploy/libroom.so.tmp $deploy/libroom.so
      $BUILD/bin/lampyrctl --url http://127.0.0.1:11008 --token change-me reload room

  Server log: $work/server.out. Ctrl-C stops both servers.
EOT
  wait "$server"
}

case "$MODE" in
  web) web_demo; exit 0 ;;
  single)
    CONF=$REPO/conf/single.json
    ADMIN=http://127.0.0.1:11008   # the server's own admin API
    START=(--server game)
    ROOM_PATH=$DEPLOY/libroom.so ;;
  cluster)
    CONF=$REPO/conf/cluster.json
    ADMIN=http://127.0.0.1:9998    # the master's cluster admin API
    START=()
    ROOM_PATH=$REPO/$BUILD/plugins/libroom.so ;;
  *) echo "usage: scripts/demo.sh [single|cluster|web]" >&2; exit 2 ;;
esac

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "dependencies"
scripts/deps.sh

say "build"
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target lampyr lampyr-client lampyrctl room room_v2 echo gate_router account

BIN=$REPO/$BUILD/bin
PLUGINS=$REPO/$BUILD/plugins
CLIENT="$BIN/lampyr-client --host 127.0.0.1 --port $PORT --timeout-ms 5000"
CTL="$BIN/lampyrctl --url $ADMIN"   # the token comes from LAMPYR_ADMIN_TOKEN (not visible in ps)

# Deploying a build = copy to a temporary name, then rename over the
# configured path: a loaded .so is never rewritten in place (docs/plugins.md).
deploy() {  # $1 = build to install, $2 = the configured path
  cp "$1" "$2.tmp"
  mv -f "$2.tmp" "$2"
}

rm -rf "$WORK"
mkdir -p "$WORK" "$DEPLOY"
cp "$PLUGINS/libroom.so" "$WORK/libroom_v1.so"
cp "$PLUGINS/libroom_v2.so" "$WORK/libroom_v2.so"
deploy "$WORK/libroom_v1.so" "$DEPLOY/libroom.so"
deploy "$PLUGINS/libecho.so" "$DEPLOY/libecho.so"
deploy "$PLUGINS/libaccount.so" "$DEPLOY/libaccount.so"

SERVICES_STARTED=0
if [ "$MODE" = single ]; then
  say "services: memcached + MariaDB for the account plugin (scripts/services.sh)"
  if ! scripts/services.sh status >/dev/null 2>&1; then
    scripts/services.sh start
    SERVICES_STARTED=1
  fi
  # A database of its own (the tests use lampyr_test), fresh each run.
  scripts/services.sh sql <<'SQL'
DROP DATABASE IF EXISTS lampyr_demo;
CREATE DATABASE lampyr_demo;
GRANT ALL ON lampyr_demo.* TO 'lampyr'@'%';
GRANT ALL ON lampyr_demo.* TO 'lampyr'@'localhost';
SQL
  mariadb --no-defaults -h127.0.0.1 -P23306 -ulampyr -plampyr lampyr_demo <conf/schema.sql
  # The cache must not outlive the database it caches (a previous run's rows).
  exec 6<>/dev/tcp/127.0.0.1/21211
  printf 'flush_all\r\n' >&6
  read -r -t 5 reply <&6 || true
  exec 6>&-
  [ "${reply%$'\r'}" = OK ] || { echo "demo: memcached flush_all failed: $reply" >&2; exit 1; }
fi

say "config check"
"$BIN/lampyr" --conf "$CONF" --check

SERVER_PID=
CLIENT_PIDS=()
cleanup() {
  for fd in 3 4; do eval "exec $fd>&-" 2>/dev/null || true; done
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  for p in "${CLIENT_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # The cluster runs the build tree's own libroom.so: leave it as built (v1).
  [ "$MODE" = cluster ] && [ -f "$WORK/libroom_v1.so" ] && deploy "$WORK/libroom_v1.so" "$ROOM_PATH" || true
  [ "$SERVICES_STARTED" = 1 ] && scripts/services.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "start: lampyr --conf ${CONF#$REPO/} ${START[*]}"
"$BIN/lampyr" --conf "$CONF" "${START[@]}" >"$WORK/server.out" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do
  if (exec 5<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then break; fi
  sleep 0.05
done
kill -0 "$SERVER_PID" || { cat "$WORK/server.out"; echo "demo: the server did not start" >&2; exit 1; }
echo "lampyr pid $SERVER_PID, clients on 127.0.0.1:$PORT, admin API on $ADMIN"
if [ "$MODE" = cluster ]; then
  # The net server is up; wait until the games have linked to the gate.
  for _ in $(seq 1 100); do
    [ "$($CTL status 2>/dev/null | grep -c ' running ')" -ge 4 ] && break
    sleep 0.1
  done
  $CTL status
fi

# Two players, each one long-lived connection fed line by line through a
# FIFO: they stay connected for the whole demo.
mkfifo "$WORK/alice.in" "$WORK/bob.in"
$CLIENT - <"$WORK/alice.in" >"$WORK/alice.out" 2>&1 &
CLIENT_PIDS+=($!)
exec 3>"$WORK/alice.in"
$CLIENT - <"$WORK/bob.in" >"$WORK/bob.out" 2>&1 &
CLIENT_PIDS+=($!)
exec 4>"$WORK/bob.in"

alice() { echo "$*" >&3; sleep 0.3; }
bob() { echo "$*" >&4; sleep 0.3; }
show() {  # prints what each player saw since the last call
  for who in alice bob; do
    local seen_var="SEEN_$who"
    local seen=${!seen_var:-0}
    local total
    total=$(wc -l <"$WORK/$who.out")
    if [ "$total" -gt "$seen" ]; then
      tail -n +"$((seen + 1))" "$WORK/$who.out" | sed "s/^/  $who <- /"
    fi
    printf -v "$seen_var" '%s' "$total"
  done
}

say "v1: both players join room 'lobby' and talk"
alice "send 100 lobby"
bob "send 100 lobby"
alice "send 102 hello from alice"
bob "send 102 hi alice"
alice "send 104"
show

say "deploy room v2 and hot reload it (lampyrctl reload room)"
deploy "$WORK/libroom_v2.so" "$ROOM_PATH"
$CTL reload room

say "v2: same connections, same room, new code"
bob "send 102 still here after the reload"
alice "send 103"
alice "send 100 lobby"
bob "send 104"
show

say "back to v1 (v2 -> v1 migrates the state down)"
deploy "$WORK/libroom_v1.so" "$ROOM_PATH"
$CTL reload room
alice "send 102 and back on v1"
bob "send 104"
show

if [ "$MODE" = single ]; then
  say "account plugin: register, log in, earn gold, reconnect (data layer: memcached + MariaDB)"
  alice "send 200 alice s3cret"
  alice "send 201 alice s3cret"
  alice "send 202 +100"
  alice "send 202 +25"
  show
  # A new connection: the record comes back from the cache.
  $CLIENT send 201 "alice s3cret" send 203 "" 2>&1 | sed 's/^/  alice (new connection) <- /'
  $CLIENT send 201 "alice wrong" 2>&1 | sed 's/^/  mallory <- /'
  sleep 1  # flush_interval_ms = 500: the write-behind reaches MySQL
  echo "  MySQL: $(mariadb --no-defaults -h127.0.0.1 -P23306 -ulampyr -plampyr lampyr_demo -N -e \
    "SELECT CONCAT('player ', id, ' ', nickname, ' gold=', gold, ' logins=', logins) FROM player")"
  echo "  MySQL holds no password: $(mariadb --no-defaults -h127.0.0.1 -P23306 -ulampyr -plampyr lampyr_demo -N -e \
    "SELECT LEFT(pwhash, 24) FROM account WHERE name='alice'")..."
fi

say "status (lampyrctl status)"
$CTL status

# Both client processes must still be running: their sessions survived.
KEPT=0
for p in "${CLIENT_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && KEPT=$((KEPT + 1)); done
V2=$(grep -c "v2:" "$WORK/alice.out" || true)
CLOSED=$(cat "$WORK/alice.out" "$WORK/bob.out" | grep -c "closed" || true)

say "result"
echo "sessions kept across two reloads: $KEPT of 2"
echo "v2 greeting seen by alice: $([ "$V2" -gt 0 ] && echo yes || echo no)"
echo "connection closes seen by the players: $CLOSED"
echo "logs: $REPO/logs/"
if [ "$KEPT" -ne 2 ] || [ "$V2" -eq 0 ]; then
  echo "demo: FAILED" >&2
  exit 1
fi
echo "demo: OK"
