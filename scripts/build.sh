#!/usr/bin/env bash
# Installs missing packages and builds the project into build/ (or $BUILD_DIR).
# Extra arguments go to the CMake configure step, e.g. -DMICROGPT_SANITIZE_ADDRESS=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" 2>&1 | grep -E "error|warning:|Error" || true
# grep above keeps the output short; the build's own status decides.
cmake --build "$build_dir" -j"$(nproc)" >/dev/null
