#!/usr/bin/env bash
# Builds the generator's and the shared server's test suites (tests/generator:
# scheduler, model manager, service, follower, metrics; tests/server: runner,
# security, reflection, stream reactors) with ThreadSanitizer in build-tsan
# and runs them. Any TSan report fails its test.
#
# Debian's gRPC, protobuf and Abseil are not built with TSan:
# tests/tsan/absl_sync_annotations.cc makes Abseil's Mutex, CondVar and
# Notification visible to TSan, and tests/tsan/suppressions.txt names what
# stays invisible inside gRPC (each entry says why).
#
#   scripts/tsan.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-sanitizers
BUILD=${MICROGPT_TSAN_BUILD_DIR:-$PWD/build-tsan}
JOBS=${JOBS:-$(nproc)}
start=$(date +%s)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMICROGPT_SANITIZE_THREAD=ON -DMICROGPT_BUILD_BENCH=OFF >/dev/null
source scripts/lib/test_suites.sh
suites server generator
cmake --build "$BUILD" -j"$JOBS" "${suite_targets[@]}"
built=$(date +%s)
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan/suppressions.txt}
status=0
ctest --test-dir "$BUILD" -j"$JOBS" --output-on-failure --timeout 900 \
  "${suite_filter[@]}" "$@" || status=$?
end=$(date +%s)
echo "tsan: build $((built - start))s, tests $((end - built))s, status $status"
exit $status
