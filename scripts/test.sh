#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-buf --with-containers --with-mpi
bash scripts/build.sh "$@"
export OPENBLAS_NUM_THREADS=1
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)"
