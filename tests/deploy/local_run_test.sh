#!/usr/bin/env bash
# A local run of the dev overlay: renders deploy/k8s/overlays/dev, takes each
# container's command, args, env, ports, mounted ConfigMaps/Secrets and
# readiness probes from the rendered Deployments (tests/deploy/local_run_plan.py),
# starts the trainer and the generator as processes on loopback, runs the
# manifests' gRPC probes until SERVING, trains through the trainer's Service
# port and streams from the generator's, with the generator following the
# trainer over gRPC (WatchCheckpoints + DownloadCheckpoint into its cache).
# Then, while a stream is in flight, a resumed training run publishes newer
# versions: the generator must load them and the stream must finish on the
# version it started on.
#
#   bash tests/deploy/local_run_test.sh [BUILD_DIR]     (default: build)
#
# Skips (exit 0) without kubectl. Prints "N passed, N failed".
set -uo pipefail

if ! command -v kubectl >/dev/null 2>&1; then
  echo "SKIP: kubectl not found (needed for 'kubectl kustomize')"
  exit 0
fi

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=$(cd "${1:-$ROOT/build}" 2>/dev/null && pwd) || { echo "FAIL: no build dir ${1:-$ROOT/build}"; exit 1; }
OVERLAY=${LOCAL_RUN_OVERLAY:-deploy/k8s/overlays/dev}
PY=/usr/bin/python3
CLI=$BUILD_DIR/cli/microgpt
BUF=$ROOT/tools/buf/node_modules/.bin/buf  # scripts/setup.sh --with-buf
MODEL=names

for b in "$BUILD_DIR/trainer/microgpt-trainer" "$BUILD_DIR/generator/microgpt-generator" "$CLI" "$BUF"; do
  [[ -x $b ]] || { echo "FAIL: $b not built"; echo "0 passed, 1 failed"; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/microgpt-local-run.XXXXXX")
PIDS=()
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [[ ${KEEP_WORK:-0} == 1 ]]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PASS=0 FAIL=0
pass() { echo "PASS: $*"; PASS=$((PASS + 1)); }
fail() { echo "FAIL: $*"; FAIL=$((FAIL + 1)); }
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
finish() {
  echo "$PASS passed, $FAIL failed"
  [[ $FAIL -eq 0 ]]
  exit $?
}
abort() { fail "$*"; for f in "$WORK"/*.log; do [[ -f $f ]] && { echo "--- $f (tail)"; tail -n 20 "$f"; }; done; finish; }

free_ports() {  # free_ports N: N distinct free loopback ports
  $PY - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# --- render and plan ------------------------------------------------------
cd "$ROOT" || exit 1
if kubectl kustomize "$OVERLAY" > "$WORK/rendered.yaml" 2> "$WORK/kustomize.err"; then
  pass "kubectl kustomize $OVERLAY renders"
else
  cat "$WORK/kustomize.err"; abort "kubectl kustomize $OVERLAY"
fi
NPORTS=$($PY -c 'import sys,yaml
print(sum(len(c.get("ports") or []) for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"]=="Deployment"
          for c in d["spec"]["template"]["spec"]["containers"]))' "$WORK/rendered.yaml")
# shellcheck disable=SC2046
if $PY "$ROOT/tests/deploy/local_run_plan.py" "$WORK/rendered.yaml" "$BUILD_DIR" "$WORK/pods" \
     $(free_ports "$NPORTS") > "$WORK/plan.sh" 2> "$WORK/plan.txt"; then
  pass "plan: command, args, env, ports, mounts and probes taken from the rendered Deployments"
  cat "$WORK/plan.txt"
else
  cat "$WORK/plan.txt"; abort "plan from the rendered Deployments"
fi
# shellcheck disable=SC1091
source "$WORK/plan.sh"
T=MICROGPT_TRAINER_TRAINER G=MICROGPT_GENERATOR_GENERATOR
for p in $T $G; do
  v=${p}_CMD; [[ -n ${!v+x} ]] || abort "no container $p in the plan (Deployment or container renamed?)"
done
port_of() { local v=${1}_PORT; echo "${!v}"; }
TRAINER=127.0.0.1:$(port_of $T)
GENERATOR=127.0.0.1:$(port_of $G)
# The trainer requires the bearer token of the Secret microgpt-auth, which
# the plan wrote where the trainer's pod mounts it.
TOKEN_FILE=$(sed -n 's/^--auth_token_file=//p' "$WORK"/pods/microgpt-trainer/trainer/mnt/config/*.flags | tail -n 1)

# --- start the "pods" -----------------------------------------------------
start() {  # start PREFIX LOG: the container's argv under exactly its manifest env
  local cmd="${1}_CMD[@]" env="${1}_ENV[@]"
  env -i "${!env}" "${!cmd}" > "$WORK/$2.log" 2>&1 &
  PIDS+=($!)
}
start $T trainer
start $G generator

# probe PREFIX: one run of the container's readinessProbe; prints the status.
probe() {
  local kind=${1}_PROBE_KIND port=${1}_PROBE_PORT svc=${1}_PROBE_SERVICE
  case ${!kind} in
    grpc)
      "$BUF" curl --protocol grpc --http2-prior-knowledge --connect-timeout 3 \
        -d "{\"service\":\"${!svc}\"}" \
        "http://127.0.0.1:${!port}/grpc.health.v1.Health/Check" 2>/dev/null |
        $PY -c 'import json,sys; print(json.load(sys.stdin).get("status","UNKNOWN"))' 2>/dev/null ||
        echo UNREACHABLE ;;
    tcp) (exec 3<>"/dev/tcp/127.0.0.1/${!port}") 2>/dev/null && echo SERVING || echo UNREACHABLE ;;
    *) echo "NO_PROBE" ;;
  esac
}
wait_serving() {  # wait_serving PREFIX SECONDS
  local deadline=$((SECONDS + $2)) st
  while :; do
    st=$(probe "$1")
    [[ $st == SERVING ]] && return 0
    ((SECONDS >= deadline)) && { echo "  last status of $1: $st"; return 1; }
    sleep 0.2
  done
}

check "trainer readinessProbe (${MICROGPT_TRAINER_TRAINER_PROBE_KIND} :$(port_of $T)) reports SERVING" wait_serving $T 30
# The generator must be up but not ready before the trainer has published
# anything (deploy/README.md: "stay not ready until ... a first version").
deadline=$((SECONDS + 30)); st=UNREACHABLE
while [[ $st == UNREACHABLE ]] && ((SECONDS < deadline)); do st=$(probe $G); sleep 0.2; done
check "generator readinessProbe answers NOT_SERVING before any version (got $st)" test "$st" = NOT_SERVING

# --- train through the trainer's Service port ------------------------------
$PY - > "$WORK/words.txt" <<'EOF'
import random
r = random.Random(7)
c, v = "bcdfghjklmnprstvz", "aeiou"
for _ in range(500):
    print("".join(r.choice(c) + r.choice(v) for _ in range(r.randint(2, 4))))
EOF
echo "--- microgpt train --steps 200 --checkpoint_every 100"
refused_without_token() {
  local out
  out=$(env -u MICROGPT_AUTH_TOKEN "$CLI" jobs --trainer "$TRAINER" 2>&1) && return 1
  grep -qi unauthenticated <<<"$out"
}
check "trainer refuses a call without the token (UNAUTHENTICATED)" refused_without_token
if "$CLI" train --trainer "$TRAINER" --auth_token_file "$TOKEN_FILE" --model $MODEL --data_file "$WORK/words.txt" \
     --steps 200 --checkpoint_every 100 --seed 1 > "$WORK/train1.log" 2>&1; then
  tail -n 2 "$WORK/train1.log"; pass "training run 1 through the trainer port"
else
  cat "$WORK/train1.log"; abort "training run 1"
fi

models() { "$CLI" models --generator "$GENERATOR" 2>&1; }
latest() {  # latest version the generator serves for $MODEL
  models | awk -v m=$MODEL '$1 == m && $2 == "version" { print $3; exit }'
}
wait_version() {  # wait_version N SECONDS: generator serves version >= N
  local deadline=$((SECONDS + $2)) v
  while :; do
    v=$(latest); [[ -n $v && $v -ge $1 ]] && return 0
    ((SECONDS >= deadline)) && return 1
    sleep 0.1
  done
}
check "generator readinessProbe reports SERVING after the first publish" wait_serving $G 30
check "generator follows the trainer: serves $MODEL version 200" wait_version 200 30
models
CACHE=$(sed -n 's/^--cache_dir=//p' "$WORK"/pods/microgpt-generator/generator/mnt/config/*.flags | tail -n 1)
check "versions downloaded over gRPC into the generator's cache ($CACHE)" \
  test -f "$CACHE/$MODEL/200/manifest.json" -a -f "$CACHE/$MODEL/200/model.safetensors"
CKROOT=$(sed -n 's/^--checkpoint_root=//p' "$WORK"/pods/microgpt-trainer/trainer/mnt/config/*.flags | tail -n 1)
check "trainer published into its PVC mount ($CKROOT)" test -f "$CKROOT/$MODEL/200/manifest.json"

echo "--- microgpt generate (generator port)"
if "$CLI" generate --generator "$GENERATOR" --model $MODEL --num_samples 3 --seed 1 > "$WORK/gen.out" 2>&1 &&
   [[ $(grep -c . "$WORK/gen.out") -ge 3 ]]; then
  cat "$WORK/gen.out"; pass "tokens streamed from the generator port"
else
  cat "$WORK/gen.out"; fail "tokens streamed from the generator port"
fi

# --- a stream in flight across a new version -------------------------------
# 64 samples with 20 top_logprobs each is ~0.5 MB of JSON; the reader takes the
# first KB, then stops reading until the gate exists, so the call stays open
# (pipe and HTTP/2 flow control) while the next training run publishes.
echo "--- long stream (64 samples) held open; training run 2 (--resume, to step 400)"
STREAM_REQ='{"model":"'$MODEL'","num_samples":64,"seed":3,"top_logprobs":20}'
( "$BUF" curl --protocol grpc --http2-prior-knowledge -d "$STREAM_REQ" \
    "http://$GENERATOR/microgpt.v1.Generator/Generate" 2> "$WORK/stream.err"
  echo $? > "$WORK/stream.rc" ) |
  $PY -c '
import os, sys, time
work = sys.argv[1]
f = sys.stdin.buffer
first = f.read(1024)
open(os.path.join(work, "stream.started"), "w").close()
while not os.path.exists(os.path.join(work, "stream.gate")):
    time.sleep(0.05)
with open(os.path.join(work, "stream.json"), "wb") as out:
    out.write(first + f.read())
' "$WORK" &
READER=$!
PIDS+=("$READER")
deadline=$((SECONDS + 20))
while [[ ! -e $WORK/stream.started ]] && ((SECONDS < deadline)); do sleep 0.05; done
check "long stream started" test -e "$WORK/stream.started"

if "$CLI" train --trainer "$TRAINER" --auth_token_file "$TOKEN_FILE" --model $MODEL --data_file "$WORK/words.txt" \
     --steps 400 --checkpoint_every 100 --seed 1 --resume > "$WORK/train2.log" 2>&1; then
  tail -n 2 "$WORK/train2.log"; pass "training run 2 (--resume, to step 400) through the trainer port"
else
  cat "$WORK/train2.log"; fail "training run 2 (--resume, to step 400)"
fi
NEW=$(sed -n "s/.*published $MODEL version \([0-9]*\).*/\1/p" "$WORK/train2.log" | tail -n 1)
[[ -n $NEW ]] || NEW=400
if wait_version "$NEW" 30; then
  # Sampled right after the generator lists it: the stream must still be open.
  [[ -e $WORK/stream.rc ]] && INFLIGHT=no || INFLIGHT=yes
  pass "generator picked up the newer version $NEW (ListModels)"
else
  INFLIGHT=unknown
  fail "generator picked up the newer version $NEW (ListModels)"
fi
models | tee "$WORK/models2.txt"
check "the stream was still in flight when version $NEW was loaded (in flight: $INFLIGHT)" test "$INFLIGHT" = yes
check "version $NEW was downloaded into the generator's cache" test -f "$CACHE/$MODEL/$NEW/manifest.json"

touch "$WORK/stream.gate"
wait "$READER"
check "long stream completed OK (exit $(cat "$WORK/stream.rc" 2>/dev/null))" \
  test "$(cat "$WORK/stream.rc" 2>/dev/null)" = 0
read -r NSAMP VERS < <($PY - "$WORK/stream.json" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
dec, i, versions = json.JSONDecoder(), 0, []
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        break
    msg, i = dec.raw_decode(text, i)
    if msg.get("finishReason"):
        versions.append(msg.get("version", "0"))
print(len(versions), ",".join(sorted(set(versions))) or "-")
EOF
)
echo "  long stream: $NSAMP samples finished, on version(s) $VERS"
check "all 64 samples of the stream finished on the old version 200" test "$NSAMP $VERS" = "64 200"

echo "--- generator log"
grep -E "following|downloaded|loaded|unloaded|evict" "$WORK/generator.log" | sed 's/^/  /'
finish
