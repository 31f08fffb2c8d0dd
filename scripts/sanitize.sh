#!/usr/bin/env bash
# Builds the test suite with AddressSanitizer + UndefinedBehaviorSanitizer in
# build-asan and runs ctest (the deploy.* checks excluded: they test the
# release image, not the code). Any ASan/UBSan report fails the test.
#
#   scripts/sanitize.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${MICROGPT_ASAN_BUILD_DIR:-$PWD/build-asan}
JOBS=${JOBS:-$(nproc)}
start=$(date +%s)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMICROGPT_SANITIZE_ADDRESS=ON -DMICROGPT_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$JOBS"
built=$(date +%s)
# gRPC/protobuf/abseil are not instrumented: container-overflow checks would
# misfire across that boundary.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_container_overflow=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
ctest --test-dir "$BUILD" -j"$JOBS" --output-on-failure --timeout 600 \
  -E '^deploy\.' "$@" || status=$?
end=$(date +%s)
echo "sanitize: build $((built - start))s, tests $((end - built))s, status $status"
exit $status
