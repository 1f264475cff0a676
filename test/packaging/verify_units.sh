#!/bin/sh
# systemd-analyze verify on the packaged units (packaging/systemd): unknown
# or misspelt directives, bad values and missing executables all fail.
# The units name /usr/bin/...; before the package is installed those are
# the build's binaries, so a copy of each unit points there instead.
#   verify_units.sh SOURCE_DIR BIN_DIR
set -eu
src=$1
bin=$2
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for unit in lampyr.service lampyr@.service; do
    sed "s|/usr/bin/|$bin/|g" "$src/packaging/systemd/$unit" >"$tmp/$unit"
done
# verify prints problems on stderr but may still exit 0: both must be clean.
if ! systemd-analyze verify "$tmp/lampyr.service" "$tmp/lampyr@.service" >"$tmp/out" 2>&1 || [ -s "$tmp/out" ]; then
    cat "$tmp/out"
    echo "FAILED: systemd-analyze verify"
    exit 1
fi
echo "systemd-analyze verify: lampyr.service, lampyr@.service clean"
