# Sourced by scripts/sanitize.sh and scripts/fuzz.sh: the one sanitizer build
# both use, so CI compiles the tree once for its sanitizer tests and its fuzz
# run. clang, AddressSanitizer + UndefinedBehaviorSanitizer everywhere, and
# libFuzzer coverage instrumentation (-fsanitize=fuzzer-no-link) so that the
# libraries under the fuzz targets report coverage; only the *_fuzzer targets
# link libFuzzer itself.
#
# Sets SANITIZER_BUILD (default build-asan, or $MICROGPT_ASAN_BUILD_DIR) and
# exports the ASan/UBSan options that make any report fatal.

SANITIZER_BUILD=${MICROGPT_ASAN_BUILD_DIR:-$PWD/build-asan}

configure_sanitizer_build() {
  CC=clang CXX=clang++ cmake -S . -B "$SANITIZER_BUILD" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMICROGPT_SANITIZE_ADDRESS=ON -DMICROGPT_BUILD_FUZZERS=ON \
    -DMICROGPT_BUILD_TESTS=ON -DMICROGPT_BUILD_BENCH=OFF \
    -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
}

# gRPC, protobuf and Abseil come from Debian uninstrumented: ASan's
# container-overflow check would misfire across that boundary.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_container_overflow=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/asan/lsan_suppressions.txt:print_suppressions=0}
