#!/usr/bin/env bash
# End-to-end test of the Debian packages, as an operator and a game
# developer meet them (issue 11). Root only; leaves the machine as found.
#   1. build the .debs (scripts/package.sh); lintian runs meanwhile, its
#      errors fail the test at the end
#   2. apt-get install ./lampyr_*.deb ./lampyr-dev_*.deb
#   3. lampyr --version; lampyr --check the installed sample config;
#      systemd-analyze verify the installed units
#   4. run the installed master as user lampyr, from installed paths, with the
#      secrets as systemd would hand them over ($CREDENTIALS_DIRECTORY); talk
#      to it (status, a client through net -> gate -> game1, reload,
#      reopen-logs); stop it
#   5. lampyr-new-game a project in a temp dir, build it against the
#      installed SDK, run its test (the real host, with a hot reload), then
#      run it, change its code, rebuild and hot reload it through lampyrctl
#   6. apt-get purge both; check that no file of theirs, no /var/lib/lampyr,
#      /var/log/lampyr, /etc/lampyr, user or group lampyr is left, and that
#      no package our install added is still there
# Refuses to run (exit 1, nothing touched) if lampyr is already installed or
# anything of it exists. Environment: LAMPYR_PKG_BUILD_DIR (see package.sh).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
T0=$(date +%s)

say() { printf '\n--> %s (%ss)\n' "$*" "$(($(date +%s) - T0))"; }
fail() {
    echo "package-test: FAILED: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || fail "must run as root (apt-get install, a system user)"

# --- the machine must be clean: this test installs and purges -------------
LEFTOVERS="/etc/lampyr /var/lib/lampyr /var/log/lampyr /usr/lib/lampyr /usr/share/lampyr /usr/include/lampyr
/usr/lib/cmake/LampyrSDK /usr/bin/lampyr /usr/bin/lampyrctl /usr/bin/lampyr-client /usr/bin/lampyr-bench
/usr/bin/lampyr-new-game /lib/systemd/system/lampyr.service /lib/systemd/system/lampyr@.service
/etc/logrotate.d/lampyr /usr/share/doc/lampyr /usr/share/doc/lampyr-dev"
if dpkg-query -W -f='${Status}\n' lampyr lampyr-dev 2>/dev/null | grep -q 'installed\|config-files'; then
    fail "lampyr or lampyr-dev is installed on this machine; this test installs and purges them, so it will not run here"
fi
for p in $LEFTOVERS; do
    [ -e "$p" ] && fail "$p exists; refusing to run on a machine with a Lampyr install"
done
getent passwd lampyr >/dev/null && fail "a user lampyr exists; refusing to run"
getent group lampyr >/dev/null && fail "a group lampyr exists; refusing to run"

WORK=$(mktemp -d /tmp/lampyr-pkgtest.XXXXXX)
chmod 0755 "$WORK"
MASTER_PID=""
GAME_PID=""
LINTIAN_PID=""
INSTALLED=0
dpkg-query -W -f='${Package}\n' | sort >"$WORK/packages.before"

# Packages apt installed as dependencies of ours (normally none: the build
# machine has the libraries), removed again at the end.
EXTRA=""
purge_extra() {
    if [ -n "${EXTRA// /}" ]; then
        echo "package-test: purging packages installed as dependencies: $EXTRA" >&2
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=300 $EXTRA >/dev/null 2>&1
        EXTRA=""
    fi
}

cleanup() {
    local rc=$?
    [ -n "$LINTIAN_PID" ] && kill "$LINTIAN_PID" 2>/dev/null && wait "$LINTIAN_PID" 2>/dev/null
    [ -n "$GAME_PID" ] && kill "$GAME_PID" 2>/dev/null && wait "$GAME_PID" 2>/dev/null
    [ -n "$MASTER_PID" ] && kill "$MASTER_PID" 2>/dev/null && wait "$MASTER_PID" 2>/dev/null
    if [ "$INSTALLED" = 1 ]; then
        echo "package-test: cleaning up after a failure: purging the packages" >&2
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=300 lampyr lampyr-dev >/dev/null 2>&1
    fi
    # Whatever apt pulled in for them goes too (only what our install added:
    # other people's installs meanwhile are not ours to remove).
    purge_extra
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. packages ----------------------------------------------------------------
say "build the packages"
# lintian runs in the background while the packages are installed and used
# (it is the slowest part of packaging); its verdict is awaited at the end.
LAMPYR_SKIP_LINTIAN=1 scripts/package.sh >"$WORK/package.log" 2>&1 || { cat "$WORK/package.log"; fail "scripts/package.sh"; }
RUNTIME_DEB=$(tail -n 2 "$WORK/package.log" | head -n 1)
DEV_DEB=$(tail -n 1 "$WORK/package.log")
[ -f "$RUNTIME_DEB" ] && [ -f "$DEV_DEB" ] || fail "no .deb files ($RUNTIME_DEB, $DEV_DEB)"
cp "$RUNTIME_DEB" "$DEV_DEB" "$WORK/"
RUNTIME_DEB=$WORK/$(basename "$RUNTIME_DEB")
DEV_DEB=$WORK/$(basename "$DEV_DEB")
if command -v lintian >/dev/null; then
    lintian --fail-on error --allow-root --tag-display-limit 0 "$RUNTIME_DEB" "$DEV_DEB" >"$WORK/lintian.log" 2>&1 &
    LINTIAN_PID=$!
fi
# Every file the packages ship (for the check after purge; directories such
# as /usr/share/man are shared with other packages, ours are in LEFTOVERS).
for deb in "$RUNTIME_DEB" "$DEV_DEB"; do
    dpkg-deb -c "$deb" | awk '{print $6}' | grep -v '/$' | sed 's|^\./|/|'
done | sort -u >"$WORK/shipped"

# --- 2. install --------------------------------------------------------------------
say "apt-get install ./$(basename "$RUNTIME_DEB") ./$(basename "$DEV_DEB")"
INSTALLED=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "$RUNTIME_DEB" "$DEV_DEB" >"$WORK/apt.log" 2>&1 \
    || { cat "$WORK/apt.log"; fail "apt-get install"; }
dpkg-query -W -f='${Package}\n' | sort >"$WORK/packages.installed"
EXTRA=$(comm -13 "$WORK/packages.before" "$WORK/packages.installed" | grep -vx 'lampyr\|lampyr-dev' | tr '\n' ' ')
getent passwd lampyr >/dev/null || fail "postinst did not create the user lampyr"
[ "$(stat -c '%U %a' /var/lib/lampyr)" = "lampyr 750" ] || fail "/var/lib/lampyr: $(stat -c '%U %a' /var/lib/lampyr)"
[ "$(stat -c '%U %a' /var/log/lampyr)" = "lampyr 750" ] || fail "/var/log/lampyr: $(stat -c '%U %a' /var/log/lampyr)"
[ "$(stat -c '%U %a' /etc/lampyr/credentials/admin_token)" = "root 600" ] || fail "credentials not root-only"
dpkg-query -W -f='${Conffiles}\n' lampyr | grep -q '/etc/lampyr/cluster.json' || fail "cluster.json is not a conffile"

# --- 3. the installed host and config --------------------------------------------------
say "installed binaries, config, units"
/usr/bin/lampyr --version || fail "lampyr --version"
/usr/bin/lampyr --version | head -n 1 | grep -q "^lampyr $(dpkg-query -W -f='${Version}' lampyr | sed 's/-[^-]*$//')\$" \
    || fail "lampyr --version does not match the package version $(dpkg-query -W -f='${Version}' lampyr)"
# The sample config carries no secrets (weak ones are refused): like the unit, the check reads
# the credentials the install generated; without them it must refuse.
/usr/bin/lampyr --conf /etc/lampyr/cluster.json --check >/dev/null 2>&1 \
    && fail "lampyr --check accepted the sample config without secrets"
CREDENTIALS_DIRECTORY=/etc/lampyr/credentials /usr/bin/lampyr --conf /etc/lampyr/cluster.json --check \
    || fail "lampyr --check /etc/lampyr/cluster.json (with the generated credentials)"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /lib/systemd/system/lampyr.service /lib/systemd/system/lampyr@.service >"$WORK/verify.log" 2>&1
    [ -s "$WORK/verify.log" ] && { cat "$WORK/verify.log"; fail "systemd-analyze verify of the installed units"; }
fi

# --- 4. the installed master, as user lampyr ----------------------------------------------
say "run the installed master as lampyr"
for port in 9998 9999 10000 11009; do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then fail "port $port (sample config) is in use"; fi
done
# As systemd's LoadCredential= does: a private copy readable by the service user only.
CREDS=$WORK/credentials
install -d -o lampyr -g lampyr -m 0500 "$CREDS"
install -o lampyr -g lampyr -m 0400 /etc/lampyr/credentials/admin_token /etc/lampyr/credentials/cluster_secret "$CREDS/"
TOKEN_FILE=/etc/lampyr/credentials/admin_token
setpriv --reuid=lampyr --regid=lampyr --init-groups --reset-env \
    env CREDENTIALS_DIRECTORY="$CREDS" /usr/bin/lampyr --conf /etc/lampyr/cluster.json >"$WORK/master.out" 2>&1 &
MASTER_PID=$!
CTL=(/usr/bin/lampyrctl --conf /etc/lampyr/cluster.json --token-file "$TOKEN_FILE")
up=0
for _ in $(seq 1 600); do
    if "${CTL[@]}" --json status >"$WORK/status.json" 2>/dev/null &&
        [ "$(grep -c '"state" : "running"' "$WORK/status.json")" -ge 4 ]; then
        up=1
        break
    fi
    kill -0 "$MASTER_PID" 2>/dev/null || break
    sleep 0.1
done
[ "$up" = 1 ] || { cat "$WORK/master.out" "$WORK/status.json"; fail "the installed master did not bring every server up"; }
"${CTL[@]}" status
[ "$(ps -o user= -p "$MASTER_PID")" = lampyr ] || fail "the master does not run as lampyr"
grep -q '"version"' "$WORK/status.json" || fail "/status has no version"
# A player through net -> gate -> game1 (room plugin).
/usr/bin/lampyr-client --host 127.0.0.1 --port 11009 send 100 lobby send 104 "" >"$WORK/client.out" 2>&1 \
    || { cat "$WORK/client.out"; fail "lampyr-client through the installed cluster"; }
cat "$WORK/client.out"
grep -q 'server=game1' "$WORK/client.out" || fail "no answer from game1"
"${CTL[@]}" reload room || fail "lampyrctl reload room"
"${CTL[@]}" reopen-logs || fail "lampyrctl reopen-logs"
for f in master gate net game1; do
    [ "$(stat -c '%U %a' /var/log/lampyr/$f.log)" = "lampyr 640" ] || fail "/var/log/lampyr/$f.log: $(stat -c '%U %a' /var/log/lampyr/$f.log)"
done
if grep -rqF "$(cat "$TOKEN_FILE")" /var/log/lampyr "$WORK/master.out"; then fail "the admin token is in a log"; fi
"${CTL[@]}" stop || fail "lampyrctl stop"
wait "$MASTER_PID"
rc=$?
MASTER_PID=""
[ "$rc" = 0 ] || { cat "$WORK/master.out"; fail "the master exited with $rc"; }

# --- 5. a game project from the scaffold ---------------------------------------------------------
say "lampyr-new-game, build against the installed SDK, test"
GAME=$WORK/mygame
lampyr-new-game "$GAME" --name mygame || fail "lampyr-new-game"
(cd "$GAME" && cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$WORK/game-cmake.log" 2>&1) \
    || { cat "$WORK/game-cmake.log"; fail "cmake of the scaffolded project"; }
grep -q "LampyrSDK" "$GAME/build/CMakeCache.txt" && grep -q "/usr/lib/cmake/LampyrSDK" "$GAME/build/CMakeCache.txt" \
    || fail "the project did not find the installed SDK"
cmake --build "$GAME/build" -j"${LAMPYR_JOBS:-2}" >"$WORK/game-build.log" 2>&1 \
    || { cat "$WORK/game-build.log"; fail "build of the scaffolded project"; }
ctest --test-dir "$GAME/build" --output-on-failure || fail "the scaffolded project's test"

say "run it, change it, rebuild, hot reload"
GAME_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
(cd "$GAME" && exec env LAMPYR_ADMIN_TOKEN="$GAME_TOKEN" /usr/bin/lampyr --conf conf/mygame.json --server game) \
    >"$WORK/game.out" 2>&1 &
GAME_PID=$!
for _ in $(seq 1 300); do
    /usr/bin/lampyr-client --host 127.0.0.1 --port 11009 send 2 5 >"$WORK/g1.out" 2>&1 && break
    sleep 0.1
done
grep -q "	5$" "$WORK/g1.out" || { cat "$WORK/g1.out" "$WORK/game.out"; fail "the scaffolded game does not answer"; }
sed -i 's/r.reply(greeting_ + " " + std::string(r.body()));/r.reply(greeting_ + ", " + std::string(r.body()) + "!");/' \
    "$GAME/src/mygame.cpp"
cmake --build "$GAME/build" --target mygame >>"$WORK/game-build.log" 2>&1 || fail "rebuild of the plugin"
LAMPYR_ADMIN_TOKEN=$GAME_TOKEN /usr/bin/lampyrctl --url 127.0.0.1:11008 reload mygame || fail "hot reload of the rebuilt plugin"
/usr/bin/lampyr-client --host 127.0.0.1 --port 11009 send 1 player send 2 1 >"$WORK/g2.out" 2>&1
cat "$WORK/g2.out"
grep -q "hello, player!" "$WORK/g2.out" || fail "the reloaded plugin does not run the new code"
grep -q "	6$" "$WORK/g2.out" || fail "the score did not survive the reload"
kill "$GAME_PID"
wait "$GAME_PID"
GAME_PID=""

# --- 6. purge ---------------------------------------------------------------------------------------
say "apt-get purge lampyr lampyr-dev"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=300 lampyr lampyr-dev >"$WORK/purge.log" 2>&1 \
    || { cat "$WORK/purge.log"; fail "apt-get purge"; }
INSTALLED=0
left=""
while read -r p; do
    [ -e "$p" ] || [ -L "$p" ] && left="$left $p"
done <"$WORK/shipped"
for p in $LEFTOVERS; do [ -e "$p" ] && left="$left $p"; done
[ -z "$left" ] || fail "left after purge:$left"
getent passwd lampyr >/dev/null && fail "user lampyr left after purge"
getent group lampyr >/dev/null && fail "group lampyr left after purge"
purge_extra
for p in lampyr lampyr-dev $(comm -13 "$WORK/packages.before" "$WORK/packages.installed"); do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'installed\|config-files' && fail "package $p is still installed"
done

if [ -n "$LINTIAN_PID" ]; then
    say "lintian (errors fail, warnings listed)"
    lrc=0
    wait "$LINTIAN_PID" || lrc=$?
    LINTIAN_PID=""
    cat "$WORK/lintian.log"
    [ "$lrc" = 0 ] || fail "lintian reported errors"
fi

say "package test passed"
