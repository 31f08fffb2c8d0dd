#!/usr/bin/env bash
# Soak test of the generator (not in the default test run; ~3 min):
#   ROUNDS (default 2) rounds of 500 concurrent Generate streams for DURATION
#   (default 60 s) on loopback, of which SHORT_STREAMS have a short deadline
#   (DEADLINE_EXCEEDED mid-stream), plus CLI clients of 64 samples killed
#   after 0-300 ms (the server sees CANCELLED); then SIGTERM under load.
# Reports RSS after warm-up and after each round (memory is flat when later
# rounds do not grow it) and errors by code; fails when an unexpected code
# shows up (only CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED are allowed),
# when the server died or stopped answering, when it still burns CPU after
# the load stops (cancelled streams must not keep running), or when SIGTERM
# under load does not end in exit status 0 within the grace period with new
# calls refused as UNAVAILABLE.
#
#   scripts/soak.sh [BUILD_DIR] [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DURATION=${2:-60}
STREAMS=${STREAMS:-500}
SHORT_STREAMS=${SHORT_STREAMS:-100}
SHORT_DEADLINE=${SHORT_DEADLINE:-50ms}
ROUNDS=${ROUNDS:-2}
GRACE_SECONDS=5
BENCH=$BUILD/bench/microgpt-bench
for bin in "$BENCH" "$BUILD/generator/microgpt-generator" \
           "$BUILD/trainer/microgpt-trainer" "$BUILD/cli/microgpt"; do
  [[ -x $bin ]] || { echo "soak: missing $bin (build it first)" >&2; exit 2; }
done
WORK=$(mktemp -d /tmp/microgpt-soak.XXXXXX)
GEN_PID=
cleanup() { [[ -n $GEN_PID ]] && kill "$GEN_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# A small model to serve.
printf 'emma\nolivia\nava\nisabella\nsophia\nmia\namelia\nharper\n' > "$WORK/names.txt"
"$BUILD/trainer/microgpt-trainer" train --model soak --data "$WORK/names.txt" \
  --checkpoint_root "$WORK/ckpt" --steps 50 >/dev/null
"$BUILD/generator/microgpt-generator" --port 0 --checkpoint_root "$WORK/ckpt" \
  --max_queued 100000 --shutdown_grace ${GRACE_SECONDS}s >"$WORK/generator.log" 2>&1 &
GEN_PID=$!
for _ in $(seq 100); do
  grep -q "listening on" "$WORK/generator.log" && break
  sleep 0.1
done
PORT=$(grep -o 'listening on [^ ]*' "$WORK/generator.log" | head -1 | sed 's/.*://')
TARGET=localhost:$PORT
"$BUILD/cli/microgpt" generate --generator "$TARGET" --model soak --prompt e \
  >/dev/null  # warm: the model is loaded
rss_before=$(rss_kb "$GEN_PID")
echo "soak: generator pid $GEN_PID on $TARGET, RSS before ${rss_before} kB"

# One round: long streams (normal deadline) and short-deadline streams side by
# side, and CLI clients killed after 0-300 ms (the kills that land while the
# client still runs are counted).
round() {
  local r=$1
  "$BENCH" --target "$TARGET" --streams $((STREAMS - SHORT_STREAMS)) \
    --channels 8 --duration "${DURATION}s" --deadline 30s --json \
    >"$WORK/long$r.json" 2>"$WORK/long$r.err" &
  local long_pid=$!
  "$BENCH" --target "$TARGET" --streams "$SHORT_STREAMS" --channels 2 \
    --duration "${DURATION}s" --deadline "$SHORT_DEADLINE" --json \
    >"$WORK/short$r.json" 2>"$WORK/short$r.err" &
  local short_pid=$!
  local end=$((SECONDS + DURATION)) pid
  while ((SECONDS < end)); do
    "$BUILD/cli/microgpt" generate --generator "$TARGET" --model soak \
      --num_samples 64 --prompt "" >/dev/null 2>&1 &
    pid=$!
    sleep "$(printf '0.%03d' $((RANDOM % 300)))"
    kill -9 "$pid" 2>/dev/null && cancelled=$((cancelled + 1)) || true
    wait "$pid" 2>/dev/null || true
  done
  wait "$long_pid" || true
  wait "$short_pid" || true
}

cancelled=0
rss_rounds=()
for r in $(seq "$ROUNDS"); do
  round "$r"
  kill -0 "$GEN_PID" 2>/dev/null || { echo "soak: FAIL: the generator died" >&2; exit 1; }
  sleep 2  # let cancelled work drain
  rss_rounds+=("$(rss_kb "$GEN_PID")")
  echo "soak: round $r done, RSS ${rss_rounds[-1]} kB"
done

fail=0
t0=$(cpu_ticks "$GEN_PID"); sleep 5; t1=$(cpu_ticks "$GEN_PID")
idle_cpu_pct=$(( (t1 - t0) * 100 / (5 * $(getconf CLK_TCK)) ))
"$BUILD/cli/microgpt" generate --generator "$TARGET" --model soak --prompt e \
  >/dev/null || { echo "soak: FAIL: the generator does not answer" >&2; fail=1; }

python3 - "$WORK"/long*.json "$WORK"/short*.json <<'PY' || fail=1
import json, sys
allowed = {"CANCELLED", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}
bad = False
for path in sys.argv[1:]:
    text = open(path).read().strip()
    if not text:
        print(f"soak: FAIL: no report in {path}"); bad = True; continue
    report = json.loads(text)
    errors = report.get("errors_by_code") or report.get("errors") or {}
    print(f"soak: {path.split('/')[-1]}: " + json.dumps(
        {k: report[k] for k in report if k != "errors_by_code"} | {"errors": errors}))
    unexpected = {c: n for c, n in errors.items() if c not in allowed}
    if unexpected:
        print(f"soak: FAIL: unexpected codes {unexpected}"); bad = True
sys.exit(1 if bad else 0)
PY
echo "soak: client kills (CANCELLED on the server): $cancelled"
echo "soak: RSS before ${rss_before} kB, after each round: ${rss_rounds[*]} kB"
echo "soak: growth in round 1 $(( (rss_rounds[0] - rss_before) / 1024 )) MB (allocator arenas and gRPC buffers warming up), after it $(( (rss_rounds[-1] - rss_rounds[0]) / 1024 )) MB"
echo "soak: generator CPU over 5 s after the load: ${idle_cpu_pct}%"
if ((idle_cpu_pct > 5)); then echo "soak: FAIL: generator still busy" >&2; fail=1; fi

# SIGTERM under load: streams in flight finish or end CANCELLED within the
# grace period, new calls are refused with UNAVAILABLE, exit status 0.
"$BENCH" --target "$TARGET" --streams 64 --duration 10s --warmup 0s --json \
  >"$WORK/sigterm.json" 2>"$WORK/sigterm.err" &
bench_pid=$!
sleep 2
term_at=$SECONDS
kill -TERM "$GEN_PID"
gen_status=0
wait "$GEN_PID" || gen_status=$?
term_seconds=$((SECONDS - term_at))
GEN_PID=
wait "$bench_pid" || true
echo "soak: SIGTERM under load: exit status $gen_status after ${term_seconds} s (grace ${GRACE_SECONDS} s)"
grep -E "shutting down|drain|exit" "$WORK/generator.log" | tail -3 | sed 's/^/soak:   generator: /'
python3 - "$WORK/sigterm.json" <<'PY' || fail=1
import json, sys
report = json.loads(open(sys.argv[1]).read())
errors = report.get("errors") or {}
print(f"soak: calls during SIGTERM: completed {report['completed']}, errors {errors}")
unexpected = {c: n for c, n in errors.items() if c not in {"UNAVAILABLE", "CANCELLED"}}
if unexpected or not errors.get("UNAVAILABLE"):
    print(f"soak: FAIL: expected new calls refused with UNAVAILABLE only, got {errors}")
    sys.exit(1)
PY
if ((gen_status != 0)); then echo "soak: FAIL: exit status $gen_status" >&2; fail=1; fi
if ((term_seconds > GRACE_SECONDS + 2)); then echo "soak: FAIL: shutdown took ${term_seconds} s" >&2; fail=1; fi

if ((fail)); then echo "soak: FAILED" >&2; exit 1; fi
echo "soak: OK"
