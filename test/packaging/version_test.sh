#!/bin/sh
# cmake/LampyrVersion.cmake from a git checkout, from a `git archive`
# tarball (export-subst) and from a tarball with .tarball-version.
#   version_test.sh SOURCE_DIR
set -eu
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
script=$src/cmake/LampyrVersion.cmake
base=$(sed -n 's/^project(lampyr VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
ver() {
    rm -f "$tmp/v.h"
    cmake -DSRC="$1" -DBASE="$base" -DOUT="$tmp/v.h" -P "$script"
    sed -n 's/^#define LAMPYR_VERSION "\(.*\)"$/\1/p' "$tmp/v.h"
}
check() {  # $1 = what, $2 = value, $3 = extended regex
    if printf '%s\n' "$2" | grep -Eqx "$3"; then
        echo "ok: $1: $2"
    else
        echo "FAILED: $1: '$2' does not match $3"
        exit 1
    fi
}
if git -C "$src" rev-parse HEAD >/dev/null 2>&1; then
    check "git checkout" "$(ver "$src")" "$base\\+git[0-9]+\\.[0-9a-f]{10}(\\.dirty)?"
    hash=$(git -C "$src" rev-parse --short HEAD)
    mkdir "$tmp/archive"
    git -C "$src" archive HEAD | tar -x -C "$tmp/archive"
    check "git archive" "$(ver "$tmp/archive")" "$base\\+git\\.[0-9a-f]+"
    case "$(ver "$tmp/archive")" in *"$(printf '%s' "$hash" | cut -c1-7)"*) ;; *) echo "FAILED: archive version lacks $hash"; exit 1 ;; esac
fi
mkdir -p "$tmp/tarball/cmake"
echo '1.2.3+git7.abcdef1234' >"$tmp/tarball/.tarball-version"
check ".tarball-version" "$(ver "$tmp/tarball")" "1\\.2\\.3\\+git7\\.abcdef1234"
mkdir -p "$tmp/bare"
check "no version information" "$(ver "$tmp/bare")" "$base"
