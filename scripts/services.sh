#!/usr/bin/env bash
# Throwaway memcached + MariaDB for tests and demos, without systemd.
#
#   scripts/services.sh start|stop|status|wipe|env [memcached|mysql]
#   scripts/services.sh sql < FILE    run SQL as MariaDB's root (private socket)
#
# memcached listens on 127.0.0.1:21211, MariaDB on 127.0.0.1:23306 (database
# lampyr_test, user lampyr / password lampyr). Data, logs and pid files live
# under ${LAMPYR_SERVICES_DIR:-<repo>/build/services}. LAMPYR_MC_PORT and
# LAMPYR_MY_PORT move the ports, so several checkouts can each run their own
# services side by side (`env` prints what the tests then use).
#
# "up" means: our own process is alive, it owns the listening socket, and it
# answers (memcached: `version` over TCP; MariaDB: ping over the private
# socket and a TCP login as lampyr). A port held by anything else is an error,
# never "up".
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${LAMPYR_SERVICES_DIR:-$REPO/build/services}
HOST=127.0.0.1
MC_PORT=${LAMPYR_MC_PORT:-21211}
MY_PORT=${LAMPYR_MY_PORT:-23306}
MY_USER=lampyr
MY_PASSWD=lampyr
MY_DB=lampyr_test

MC_DIR=$DIR/memcached
MC_PID=$MC_DIR/memcached.pid
MC_LOG=$MC_DIR/memcached.log

MY_DIR=$DIR/mysql
MY_DATA=$MY_DIR/data
MY_CNF=$MY_DIR/my.cnf
MY_PID=$MY_DIR/mariadbd.pid
MY_LOG=$MY_DIR/mariadbd.log
MY_OUT=$MY_DIR/mariadbd.out

usage() {
  echo "usage: $0 start|stop|status|wipe|env [memcached|mysql] | sql < FILE" >&2
  exit 2
}

say() { echo "services: $*"; }
die() { echo "services: ERROR: $*" >&2; exit 1; }

# The unix socket path must fit sockaddr_un (108 bytes incl. NUL): fall back
# to a short per-directory name under /tmp when the data dir is deep.
socket_path() {
  local s=$MY_DIR/mysqld.sock
  if [ ${#s} -ge 100 ]; then
    s=/tmp/lampyr-mysql-$(printf '%s' "$DIR" | md5sum | cut -c1-12).sock
  fi
  printf '%s' "$s"
}
MY_SOCK=$(socket_path)

# --- process helpers --------------------------------------------------------

# Running = /proc entry exists and is not a zombie (PID 1 reaps slowly here).
pid_running() {
  local pid=$1 state
  [ -n "$pid" ] && [ -r "/proc/$pid/status" ] || return 1
  state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != "Z" ] && [ "$state" != "X" ]
}
# Alive = running and the executable is the one we expect (guards against pid
# reuse for pids read from a file). Right after our own fork the child is
# still "bash"/"setsid" until exec: start-up loops use pid_running for it.
pid_alive() {
  pid_running "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

read_pid() { [ -f "$1" ] && tr -dc '0-9' <"$1" || true; }

# PIDs of processes listening on TCP port $1 (empty if none or unknown).
listener_pids() {
  ss -H -ltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true
}
port_listening() {
  [ -n "$(ss -H -ltn "sport = :$1" 2>/dev/null)" ]
}
# True when pid $2 holds the listening socket on port $1.
owns_port() {
  listener_pids "$1" | grep -qx "$2"
}

# Stops pid $1 (expected comm $2): SIGTERM, wait up to $3 s, then SIGKILL.
stop_pid() {
  local pid=$1 comm=$2 limit=$3 i
  pid_alive "$pid" "$comm" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < limit * 10; i++)); do
    pid_alive "$pid" "$comm" || return 0
    sleep 0.1
  done
  say "$comm (pid $pid) ignored SIGTERM for ${limit}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_alive "$pid" "$comm" || return 0
    sleep 0.1
  done
  die "$comm (pid $pid) did not exit"
}

# Waits until nothing listens on port $1 (memcached keeps it ~1 s after exit).
wait_port_free() {
  local i
  for ((i = 0; i < 100; i++)); do
    port_listening "$1" || return 0
    sleep 0.1
  done
  return 1
}

show_log() {
  echo "---- last lines of $1 ----" >&2
  tail -n 25 "$1" >&2 2>/dev/null || echo "(no log)" >&2
  echo "----" >&2
}

port_owner_text() {
  local pids p out=""
  pids=$(listener_pids "$1")
  for p in $pids; do out+=" pid $p ($(cat /proc/$p/comm 2>/dev/null || echo '?'))"; done
  printf '%s' "${out:- (unknown process)}"
}

# --- memcached --------------------------------------------------------------

mc_answers() {
  # `version` over TCP through bash's /dev/tcp; the subshell bounds the wait.
  timeout 3 bash -c '
    exec 3<>/dev/tcp/'"$HOST"'/'"$MC_PORT"' || exit 1
    printf "version\r\n" >&3
    IFS= read -r line <&3 || exit 1
    case "$line" in VERSION*) exit 0 ;; *) exit 1 ;; esac
  ' 2>/dev/null
}

mc_up() {
  local pid
  pid=$(read_pid "$MC_PID")
  pid_alive "$pid" memcached && owns_port "$MC_PORT" "$pid" && mc_answers
}

mc_start() {
  mkdir -p "$MC_DIR"
  local pid i
  pid=$(read_pid "$MC_PID")
  if pid_alive "$pid" memcached; then
    if mc_up; then say "memcached already up (pid $pid, $HOST:$MC_PORT)"; return 0; fi
    # Ours but not answering (e.g. still exiting): restart it cleanly.
    stop_pid "$pid" memcached 10
    wait_port_free "$MC_PORT" || true
  fi
  rm -f "$MC_PID"
  if port_listening "$MC_PORT"; then
    die "memcached: port $MC_PORT is already in use by$(port_owner_text "$MC_PORT"); not ours, refusing to report up"
  fi
  local args=(-l "$HOST" -p "$MC_PORT" -U 0 -m 64 -c 1024 -t 2)
  [ "$(id -u)" -eq 0 ] && args+=(-u root)
  # Not `-d`: daemon mode hides bind errors. setsid detaches it from our
  # caller's process group so a test runner's Ctrl-C does not kill it.
  : >"$MC_LOG"
  setsid memcached "${args[@]}" </dev/null >>"$MC_LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$MC_PID"
  for ((i = 0; i < 100; i++)); do
    if ! pid_running "$pid"; then
      rm -f "$MC_PID"
      show_log "$MC_LOG"
      die "memcached exited during start-up (port $MC_PORT busy?)"
    fi
    if owns_port "$MC_PORT" "$pid" && mc_answers; then
      say "memcached up (pid $pid, $HOST:$MC_PORT)"
      return 0
    fi
    sleep 0.1
  done
  show_log "$MC_LOG"
  stop_pid "$pid" memcached 5
  rm -f "$MC_PID"
  die "memcached did not answer on $HOST:$MC_PORT within 10 s"
}

mc_stop() {
  local pid
  pid=$(read_pid "$MC_PID")
  if pid_alive "$pid" memcached; then
    stop_pid "$pid" memcached 10
    say "memcached stopped (pid $pid)"
  else
    say "memcached not running"
  fi
  rm -f "$MC_PID"
  # The port stays busy briefly after exit; a following start must not race it.
  if [ -n "$pid" ] && ! wait_port_free "$MC_PORT"; then
    say "warning: port $MC_PORT still in use by$(port_owner_text "$MC_PORT")"
  fi
}

mc_status() {
  local pid
  pid=$(read_pid "$MC_PID")
  if mc_up; then
    say "memcached up (pid $pid, $HOST:$MC_PORT)"
    return 0
  fi
  if pid_alive "$pid" memcached; then
    say "memcached NOT answering (pid $pid alive, $HOST:$MC_PORT)"
  elif port_listening "$MC_PORT"; then
    say "memcached down (port $MC_PORT held by$(port_owner_text "$MC_PORT"))"
  else
    say "memcached down"
  fi
  return 1
}

# --- MariaDB ----------------------------------------------------------------

my_write_cnf() {
  local user_line=""
  [ "$(id -u)" -eq 0 ] && user_line="user=root"
  cat >"$MY_CNF" <<EOF
# Generated by scripts/services.sh: a throwaway server for tests.
[mysqld]
$user_line
datadir=$MY_DATA
socket=$MY_SOCK
pid-file=$MY_PID
port=$MY_PORT
bind-address=$HOST
log-error=$MY_LOG
skip-name-resolve
skip-log-bin
innodb_flush_log_at_trx_commit=2
innodb_doublewrite=0
innodb_buffer_pool_size=128M
innodb_log_file_size=64M
max_connections=500
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
EOF
}

# Root over the private socket; never the system default socket.
my_root() { mariadb --no-defaults --protocol=socket -S "$MY_SOCK" -uroot "$@"; }

my_ping() {
  mariadb-admin --no-defaults --protocol=socket -S "$MY_SOCK" -uroot \
    --connect-timeout=2 ping >/dev/null 2>&1
}

my_tcp_login() {
  MYSQL_PWD=$MY_PASSWD timeout 10 mariadb --no-defaults --protocol=tcp -h"$HOST" -P"$MY_PORT" \
    -u"$MY_USER" --connect-timeout=3 -N -e 'SELECT 1' "$MY_DB" >/dev/null 2>&1
}

my_up() {
  local pid
  pid=$(read_pid "$MY_PID")
  pid_alive "$pid" mariadbd && owns_port "$MY_PORT" "$pid" && my_ping && my_tcp_login
}

# Idempotent: database and user for the tests. The user gets every privilege
# (including CREATE DATABASE) because the server is a throwaway on loopback.
my_bootstrap() {
  my_root <<EOF
CREATE DATABASE IF NOT EXISTS \`$MY_DB\` CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '$MY_USER'@'127.0.0.1' IDENTIFIED BY '$MY_PASSWD';
CREATE USER IF NOT EXISTS '$MY_USER'@'localhost' IDENTIFIED BY '$MY_PASSWD';
CREATE USER IF NOT EXISTS '$MY_USER'@'%' IDENTIFIED BY '$MY_PASSWD';
GRANT ALL PRIVILEGES ON *.* TO '$MY_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO '$MY_USER'@'localhost';
GRANT ALL PRIVILEGES ON *.* TO '$MY_USER'@'%';
FLUSH PRIVILEGES;
EOF
}

my_start() {
  mkdir -p "$MY_DIR"
  local pid i
  pid=$(read_pid "$MY_PID")
  if pid_alive "$pid" mariadbd; then
    if my_up; then say "mysql already up (pid $pid, $HOST:$MY_PORT)"; return 0; fi
    stop_pid "$pid" mariadbd 30
  fi
  rm -f "$MY_PID"
  if port_listening "$MY_PORT"; then
    die "mysql: port $MY_PORT is already in use by$(port_owner_text "$MY_PORT"); not ours, refusing to report up"
  fi
  my_write_cnf
  if [ ! -d "$MY_DATA/mysql" ]; then
    rm -rf "$MY_DATA"
    mkdir -p "$MY_DATA"
    # --defaults-file must be the first option.
    if ! mariadb-install-db --defaults-file="$MY_CNF" --auth-root-authentication-method=normal \
        --skip-test-db >"$MY_DIR/install.log" 2>&1; then
      show_log "$MY_DIR/install.log"
      rm -rf "$MY_DATA"
      die "mariadb-install-db failed"
    fi
  fi
  [ -S "$MY_SOCK" ] && rm -f "$MY_SOCK"
  : >"$MY_LOG"
  : >"$MY_OUT"
  setsid mariadbd --defaults-file="$MY_CNF" </dev/null >>"$MY_OUT" 2>&1 9>&- &
  pid=$!
  for ((i = 0; i < 300; i++)); do
    if ! pid_running "$pid"; then
      rm -f "$MY_PID"
      show_log "$MY_OUT"
      show_log "$MY_LOG"
      die "mariadbd exited during start-up (port $MY_PORT busy?)"
    fi
    if owns_port "$MY_PORT" "$pid" && my_ping; then break; fi
    sleep 0.1
  done
  if ! my_ping; then
    show_log "$MY_LOG"
    stop_pid "$pid" mariadbd 10
    die "mariadbd did not answer within 30 s"
  fi
  # mariadbd writes its own pid file, but only once it is up; ours is the truth.
  echo "$pid" >"$MY_PID"
  if ! my_bootstrap >"$MY_DIR/bootstrap.log" 2>&1; then
    show_log "$MY_DIR/bootstrap.log"
    die "mysql: creating database/user failed"
  fi
  if ! my_tcp_login; then
    show_log "$MY_LOG"
    die "mysql: TCP login as $MY_USER on $HOST:$MY_PORT failed"
  fi
  say "mysql up (pid $pid, $HOST:$MY_PORT, db $MY_DB, user $MY_USER)"
}

my_stop() {
  local pid
  pid=$(read_pid "$MY_PID")
  if pid_alive "$pid" mariadbd; then
    stop_pid "$pid" mariadbd 30
    say "mysql stopped (pid $pid)"
  else
    say "mysql not running"
  fi
  rm -f "$MY_PID"
  if [ -n "$pid" ] && ! wait_port_free "$MY_PORT"; then
    say "warning: port $MY_PORT still in use by$(port_owner_text "$MY_PORT")"
  fi
}

my_status() {
  local pid
  pid=$(read_pid "$MY_PID")
  if my_up; then
    say "mysql up (pid $pid, $HOST:$MY_PORT, db $MY_DB, user $MY_USER)"
    return 0
  fi
  if pid_alive "$pid" mariadbd; then
    say "mysql NOT answering (pid $pid alive, $HOST:$MY_PORT)"
  elif port_listening "$MY_PORT"; then
    say "mysql down (port $MY_PORT held by$(port_owner_text "$MY_PORT"))"
  else
    say "mysql down"
  fi
  return 1
}

# --- verbs ------------------------------------------------------------------

mc_env() { echo "export LAMPYR_TEST_MEMCACHED=$HOST:$MC_PORT"; }
my_env() {
  echo "export LAMPYR_TEST_MYSQL_HOST=$HOST"
  echo "export LAMPYR_TEST_MYSQL_PORT=$MY_PORT"
  echo "export LAMPYR_TEST_MYSQL_USER=$MY_USER"
  echo "export LAMPYR_TEST_MYSQL_PASSWD=$MY_PASSWD"
  echo "export LAMPYR_TEST_MYSQL_DB=$MY_DB"
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
verb=$1
only=${2:-}
case "$only" in
  "" | memcached | mysql) ;;
  mariadb) only=mysql ;;
  *) usage ;;
esac
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }

# start/stop/wipe of the same data dir from several shells at once must not
# interleave (teammates and test.sh share it).
with_lock() {
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock -w 120 9 || die "another services.sh holds $DIR/.lock"
}

case "$verb" in
  start)
    with_lock
    want memcached && mc_start
    want mysql && my_start
    ;;
  stop)
    with_lock
    want mysql && my_stop
    want memcached && mc_stop
    ;;
  status)
    rc=0
    if want memcached; then mc_status || rc=1; fi
    if want mysql; then my_status || rc=1; fi
    exit $rc
    ;;
  wipe)
    with_lock
    if want mysql; then my_stop; rm -rf "$MY_DIR"; rm -f "$MY_SOCK"; fi
    if want memcached; then mc_stop; rm -rf "$MC_DIR"; fi
    if [ -z "$only" ]; then
      rm -rf "$DIR"
    fi
    say "wiped ${only:-all} under $DIR"
    ;;
  env)
    want memcached && mc_env
    want mysql && my_env
    ;;
  sql)
    my_status >/dev/null || die "mysql is not running (scripts/services.sh start)"
    my_root
    ;;
  *) usage ;;
esac
exit 0
