#!/usr/bin/env bash
# Validates the Kubernetes manifests and the image definition under deploy/.
#
#   bash tests/deploy/validate_manifests.sh         (from anywhere; VERBOSE=1 lists every check)
#
# 1. renders every kustomization under deploy/k8s/overlays with `kubectl kustomize`;
# 2. validates every rendered object strictly (unknown fields, wrong types, missing
#    required fields) against the Kubernetes 1.33 schemas with ../shared/k8s/k8s_validate.py;
# 3. runs the checks the schema cannot make (tests/deploy/check_manifests.py): selectors
#    against labels, Service/NetworkPolicy/probe ports against container ports, requests
#    and limits, security context, references, HPA/PDB targets, the flags the containers
#    get (args + flag files) against ports, volumes and the grace period, and, when
#    $BUILD_DIR (default build/) has the binaries, against the flags they define;
# 4. cross-checks deploy/docker/Dockerfile with the manifests (user, binaries, ports);
# 5. shows that the checks can fail: deliberately broken copies must be rejected.
#
# The strict schemas live beside the project (../shared/k8s, or $MICROGPT_K8S_SCHEMAS):
# CI has them, a clone may not; without them this prints why and exits 0.
# Needs kubectl (with its built-in kustomize) and Debian's python3-yaml and
# python3-jsonschema (run by /usr/bin/python3).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

schemas=${MICROGPT_K8S_SCHEMAS:-../shared/k8s}
if [ ! -f "$schemas/k8s_validate.py" ] || [ ! -f "$schemas/k8s-1.33-strict.json" ]; then
  echo "validate_manifests: SKIP: no strict Kubernetes schemas at $schemas" \
       "(they are beside the project, not in it; set MICROGPT_K8S_SCHEMAS to use another folder)."
  echo "validate_manifests: nothing was validated."
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi
py=/usr/bin/python3
missing=()
command -v kubectl >/dev/null 2>&1 || missing+=("kubectl (with built-in kustomize)")
"$py" -c 'import yaml, jsonschema' 2>/dev/null || missing+=("python3-yaml and python3-jsonschema (apt-get install python3-yaml python3-jsonschema)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'validate_manifests: missing: %s\n' "${missing[@]}" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

verbose=${VERBOSE:-0}
build_dir=${BUILD_DIR:-build}
validator="$schemas/k8s_validate.py"
schema="$schemas/k8s-1.33-strict.json"
checks=tests/deploy/check_manifests.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); [ "$verbose" = 1 ] && echo "PASS $*"; return 0; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

# Adds the PASS/FAIL/SKIP lines of a check run to the counts; prints the
# lines that are not PASS (all of them with VERBOSE=1).
count_lines() {
  local file=$1 p f s
  p=$(grep -c '^PASS' "$file") f=$(grep -c '^FAIL' "$file") s=$(grep -c '^SKIP' "$file")
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  if [ "$verbose" = 1 ]; then cat "$file"; else grep -v '^PASS' "$file"; fi
  echo "  $2: $p passed, $f failed, $s skipped"
}

binaries_arg=()
if [ -x "$build_dir/trainer/microgpt-trainer" ] || [ -x "$build_dir/generator/microgpt-generator" ]; then
  binaries_arg=(--binaries "$build_dir")
else
  echo "SKIP flags against the binaries: $build_dir/ has no microgpt-trainer or microgpt-generator" \
       "(build first, or set BUILD_DIR)"
  skipped=$((skipped + 1))
fi

overlays=$(cd deploy/k8s/overlays && find . -name kustomization.yaml -printf '%h\n' | sed 's|^\./||' | sort)
if [ -z "$overlays" ]; then
  fail "no kustomization under deploy/k8s/overlays"
fi
rendered=()
for overlay in $overlays; do
  out="$tmp/$(echo "$overlay" | tr / _).yaml"
  echo "== overlay $overlay"
  if kubectl kustomize "deploy/k8s/overlays/$overlay" > "$out" 2> "$tmp/err"; then
    pass "$overlay: kubectl kustomize renders"
  else
    fail "$overlay: kubectl kustomize: $(cat "$tmp/err")"
    continue
  fi
  rendered+=("$out")
  # Strict schema: one count per object.
  "$py" "$validator" "$schema" "$out" > "$tmp/strict" 2>&1
  rc=$?
  sed -n 's/^OK   [^ ]* /PASS '"${overlay//\//\\/}"': strict schema: /p; s/^FAIL [^ ]* /FAIL '"${overlay//\//\\/}"': strict schema: /p' \
    "$tmp/strict" > "$tmp/strict.lines"
  if [ $rc -ne 0 ] && ! grep -q '^FAIL' "$tmp/strict.lines"; then
    echo "FAIL $overlay: strict schema: the validator failed: $(tail -3 "$tmp/strict")" >> "$tmp/strict.lines"
  fi
  count_lines "$tmp/strict.lines" "strict schema"
  # The checks the schema cannot make.
  "$py" "$checks" check "$out" --overlay "$overlay" "${binaries_arg[@]}" > "$tmp/custom" 2>&1
  rc=$?
  if [ $rc -ne 0 ] && ! grep -q '^FAIL' "$tmp/custom"; then
    echo "FAIL $overlay: check_manifests.py exited $rc: $(tail -3 "$tmp/custom")" >> "$tmp/custom"
  fi
  count_lines "$tmp/custom" "consistency checks"
done

echo "== image"
if [ ${#rendered[@]} -gt 0 ]; then
  "$py" "$checks" dockerfile deploy/docker/Dockerfile "${rendered[@]}" > "$tmp/image" 2>&1
  rc=$?
  if [ $rc -ne 0 ] && ! grep -q '^FAIL' "$tmp/image"; then
    echo "FAIL dockerfile checks exited $rc: $(tail -3 "$tmp/image")" >> "$tmp/image"
  fi
  count_lines "$tmp/image" "Dockerfile against the manifests"
fi

echo "== broken copies must be rejected"
prod="$tmp/prod.yaml"
if [ -f "$prod" ]; then
  # The strict schema: a misspelled field, a wrong type, a removed API version.
  while IFS='|' read -r what from to; do
    sed "s/$from/$to/" "$prod" > "$tmp/broken.yaml"
    if cmp -s "$prod" "$tmp/broken.yaml"; then
      fail "strict schema rejects $what: the mutation changed nothing"
    elif "$py" "$validator" "$schema" "$tmp/broken.yaml" > "$tmp/broken.out" 2>&1; then
      fail "strict schema rejects $what: it passed"
    else
      pass "strict schema rejects $what: $(grep -m1 '^FAIL' "$tmp/broken.out" | sed 's|^FAIL [^ ]* ||')"
    fi
  done <<'EOF'
a misspelled field (readinesProbe)|readinessProbe:|readinesProbe:
a wrong type (terminationGracePeriodSeconds: "30s")|terminationGracePeriodSeconds: 30|terminationGracePeriodSeconds: "30s"
a removed API version (policy/v1beta1)|apiVersion: policy\/v1$|apiVersion: policy\/v1beta1
a misspelled kind (Deploymnet)|^kind: Deployment$|kind: Deploymnet
EOF
  # The consistency checks: one deliberate inconsistency at a time.
  for mutation in $("$py" "$checks" mutations); do
    "$py" "$checks" mutate "$mutation" "$prod" > "$tmp/mutated.yaml"
    if "$py" "$checks" check "$tmp/mutated.yaml" --overlay prod > "$tmp/mutated.out" 2>&1; then
      fail "consistency checks reject $mutation: they passed"
    elif ! grep -q '^FAIL' "$tmp/mutated.out"; then
      fail "consistency checks reject $mutation: crashed: $(tail -2 "$tmp/mutated.out")"
    else
      pass "consistency checks reject $mutation: $(grep -m1 '^FAIL' "$tmp/mutated.out" | cut -c1-160)"
    fi
  done
  [ "$verbose" = 1 ] || echo "  (run with VERBOSE=1 to see each rejection)"
else
  fail "no rendered prod overlay to break"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
