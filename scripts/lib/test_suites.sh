# Sourced by scripts/sanitize.sh and scripts/tsan.sh: the GoogleTest suites of
# some test areas (one binary per tests/<area>/<name>_test.cc, whose ctest
# names start with "<name>.").
#
#   suites common generator   # sets suite_targets (cmake --target args) and
#                             # suite_filter (ctest -R args)
suites() {
  local names="" area file
  for area in "$@"; do
    for file in tests/"$area"/*_test.cc; do
      names+="${names:+|}$(basename "$file" .cc)"
    done
  done
  suite_targets=()
  for name in ${names//|/ }; do suite_targets+=(--target "$name"); done
  suite_filter=(-R "^($names)\\.")
}
