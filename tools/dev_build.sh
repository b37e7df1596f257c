#!/usr/bin/env bash
# Development build: compiles the C library, its C tests and the cffi module
# into build/dev and copies the module into microgradbn/, so that
# `python -m pytest` in this checkout runs against it (no install needed).
#   tools/dev_build.sh [extra cmake -D options]     e.g. -DMGBN_SANITIZE=ON
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${MGBN_BUILD_DIR:-build/dev}
mkdir -p "$(dirname "$BUILD_DIR")"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMGBN_BUILD_TESTS=ON \
      -DPython_EXECUTABLE="$(command -v python3)" "$@" > "$BUILD_DIR.log" 2>&1 \
  || { cat "$BUILD_DIR.log"; exit 1; }
cmake --build "$BUILD_DIR" > "$BUILD_DIR.log" 2>&1 || { cat "$BUILD_DIR.log"; exit 1; }
# Each file is copied under a temporary name and renamed into place: a test
# run still going keeps the module it loaded (cp over it would crash it).
for f in "$BUILD_DIR"/_mgbn*.so "$BUILD_DIR"/generated/_cdef.py; do
  cp "$f" "microgradbn/.$(basename "$f").new"
  mv -f "microgradbn/.$(basename "$f").new" "microgradbn/$(basename "$f")"
done
echo "built $(ls "$BUILD_DIR"/_mgbn*.so) and the C tests in $BUILD_DIR"
