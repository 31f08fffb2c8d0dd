#!/usr/bin/env bash
# Builds the test suites with AddressSanitizer + UndefinedBehaviorSanitizer
# (clang; the build fuzz.sh uses too, see scripts/lib/sanitizer_build.sh) and
# runs them with ctest. Any ASan/UBSan report fails its test.
#
#   scripts/sanitize.sh            every suite (the deploy.* checks and
#                                  clients.cpp_find_package excluded: they
#                                  test the release image and the installed
#                                  package, not the code)
#   scripts/sanitize.sh --quick    the engine, server and generator suites
#                                  only (tests/common, tests/server,
#                                  tests/generator): what CI runs
#   scripts/sanitize.sh [--quick] -R regex ...   extra ctest arguments
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-sanitizers
source scripts/lib/sanitizer_build.sh
source scripts/lib/test_suites.sh
JOBS=${JOBS:-$(nproc)}
quick=0
if [[ ${1:-} == --quick ]]; then quick=1; shift; fi

start=$(date +%s)
configure_sanitizer_build
if ((quick)); then
  suites common server generator
  cmake --build "$SANITIZER_BUILD" -j"$JOBS" "${suite_targets[@]}"
  filter=("${suite_filter[@]}")
else
  cmake --build "$SANITIZER_BUILD" -j"$JOBS"
  filter=(-E '^(deploy\.|clients\.cpp_find_package$)')
fi
built=$(date +%s)
status=0
ctest --test-dir "$SANITIZER_BUILD" -j"$JOBS" --output-on-failure --timeout 600 \
  "${filter[@]}" "$@" || status=$?
end=$(date +%s)
echo "sanitize: build $((built - start))s, tests $((end - built))s, status $status"
exit $status
