#!/bin/sh
# The scaffold and the plugin test helper without root or packages: install
# the SDK component of this build into a temp prefix, lampyr-new-game a
# project, build it against that SDK and run its tests (which start this
# build's lampyr with the plugin and hot reload it).
#   scaffold_test.sh BUILD_DIR BIN_DIR
set -eu
build=$1
bin=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --component sdk --prefix "$tmp/prefix" >/dev/null
"$tmp/prefix/bin/lampyr-new-game" "$tmp/space game" >/dev/null   # a space in the path, a name derived from it
test -f "$tmp/space game/src/space_game.cpp"
if "$tmp/prefix/bin/lampyr-new-game" "$tmp/space game" 2>/dev/null; then
    echo "FAILED: lampyr-new-game overwrote a non-empty directory"; exit 1
fi
if "$tmp/prefix/bin/lampyr-new-game" "$tmp/x" --name 'Bad-Name' 2>/dev/null; then
    echo "FAILED: lampyr-new-game accepted an invalid name"; exit 1
fi
"$tmp/prefix/bin/lampyr-new-game" "$tmp/game" --name mygame
cd "$tmp/game"
cmake -S . -B build -DCMAKE_PREFIX_PATH="$tmp/prefix" -DLAMPYR_HOST_EXECUTABLE="$bin/lampyr" >build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j2 >>build.log 2>&1 || { cat build.log; exit 1; }
ctest --test-dir build --output-on-failure
