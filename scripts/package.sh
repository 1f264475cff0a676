#!/usr/bin/env bash
# Builds the Debian packages lampyr and lampyr-dev with CPack and checks them
# with lintian (errors fail; warnings are printed).
#
#   scripts/package.sh            # build tree build-pkg/ (no tests), .debs in build-pkg/packages/
#
# Environment:
#   LAMPYR_PKG_BUILD_DIR=DIR   build tree (default build-pkg; an existing tree is reused, e.g.
#                              scripts/test.sh passes its normal build so nothing is compiled twice)
#   LAMPYR_PKG_OUT=DIR         where the .debs go (default <build tree>/packages)
#   LAMPYR_JOBS=N              parallel build jobs (default: number of CPUs)
#   LAMPYR_SKIP_LINTIAN=1      skip lintian
# Prints the paths of the two .debs on its last two lines.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
BUILD=${LAMPYR_PKG_BUILD_DIR:-build-pkg}
JOBS=${LAMPYR_JOBS:-$(nproc 2>/dev/null || echo 2)}

for tool in cmake cpack dpkg-deb dpkg-shlibdeps; do
    command -v "$tool" >/dev/null || { echo "package.sh: $tool not found (scripts/deps.sh installs it)" >&2; exit 1; }
done

# The package's prefix is /usr (CPack stages with DESTDIR, so the tree's
# install prefix is the package's). Configuring an existing tree again also
# recomputes the package version (git describe).
if [ -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$REPO" -B "$BUILD" -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
else
    cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAMPYR_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr
fi
BUILD=$(cd "$BUILD" && pwd)
OUT=${LAMPYR_PKG_OUT:-$BUILD/packages}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cmake --build "$BUILD" -j"$JOBS" --target lampyr lampyrctl lampyr-client lampyr-bench echo room room_v2 gate_router account

rm -f "$OUT"/lampyr_*.deb "$OUT"/lampyr-dev_*.deb
# cpack installs what was built above (CMAKE_SKIP_INSTALL_ALL_DEPENDENCY:
# it does not build "all", which in a tree with tests is the whole suite).
(cd "$BUILD" && cpack -G DEB -B "$OUT" >"$OUT/cpack.log" 2>&1) || { cat "$OUT/cpack.log" >&2; exit 1; }
rm -rf "$OUT/_CPack_Packages"
runtime=$(ls "$OUT"/lampyr_*.deb)
dev=$(ls "$OUT"/lampyr-dev_*.deb)

if [ "${LAMPYR_SKIP_LINTIAN:-0}" != 1 ]; then
    if command -v lintian >/dev/null; then
        echo "lintian:"
        # --fail-on error: warnings are reported, errors fail the build.
        if ! lintian --fail-on error --allow-root --tag-display-limit 0 "$runtime" "$dev"; then
            echo "package.sh: lintian reported errors" >&2
            exit 1
        fi
    else
        echo "package.sh: lintian not installed; skipped" >&2
    fi
fi
dpkg-deb --info "$runtime" | sed -n 's/^ \(Package\|Version\|Depends\|Recommends\):/  \1:/p'
dpkg-deb --info "$dev" | sed -n 's/^ \(Package\|Version\|Depends\):/  \1:/p'
echo "$runtime"
echo "$dev"
