#!/usr/bin/env bash
# Soak test of the generator (not in the default test run; ~90 s):
#   500 concurrent Generate streams for DURATION (default 60 s) on loopback,
#   of which SHORT_STREAMS have a short deadline (DEADLINE_EXCEEDED mid-stream),
#   plus clients killed at random moments (the server sees CANCELLED).
# Reports RSS before/after and errors by code; fails when an unexpected code
# shows up (only CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED are allowed),
# when the server died or stopped answering, or when it still burns CPU after
# the load stops.
#
#   scripts/soak.sh [BUILD_DIR] [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DURATION=${2:-60}
STREAMS=${STREAMS:-500}
SHORT_STREAMS=${SHORT_STREAMS:-100}
SHORT_DEADLINE=${SHORT_DEADLINE:-50ms}
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
  --max_queued 100000 >"$WORK/generator.log" 2>&1 &
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

# Long streams (normal deadline) and short-deadline streams side by side.
"$BENCH" --target "$TARGET" --streams $((STREAMS - SHORT_STREAMS)) \
  --channels 8 --duration "${DURATION}s" --deadline 30s --json \
  >"$WORK/long.json" 2>"$WORK/long.err" &
long_pid=$!
"$BENCH" --target "$TARGET" --streams "$SHORT_STREAMS" --channels 2 \
  --duration "${DURATION}s" --deadline "$SHORT_DEADLINE" --json \
  >"$WORK/short.json" 2>"$WORK/short.err" &
short_pid=$!
# Random client cancellations: CLI generate streams killed after 0-300 ms.
cancelled=0
end=$((SECONDS + DURATION))
while ((SECONDS < end)); do
  "$BUILD/cli/microgpt" generate --generator "$TARGET" --model soak \
    --num_samples 8 --prompt "" >/dev/null 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 300))"
  kill -9 "$pid" 2>/dev/null && cancelled=$((cancelled + 1)) || true
  wait "$pid" 2>/dev/null || true
done
wait "$long_pid" || true
wait "$short_pid" || true

fail=0
kill -0 "$GEN_PID" 2>/dev/null || { echo "soak: FAIL: the generator died" >&2; exit 1; }
sleep 2  # let cancelled work drain
rss_after=$(rss_kb "$GEN_PID")
t0=$(cpu_ticks "$GEN_PID"); sleep 5; t1=$(cpu_ticks "$GEN_PID")
idle_cpu_pct=$(( (t1 - t0) * 100 / (5 * $(getconf CLK_TCK)) ))
"$BUILD/cli/microgpt" generate --generator "$TARGET" --model soak --prompt e \
  >/dev/null || { echo "soak: FAIL: the generator does not answer" >&2; fail=1; }

python3 - "$WORK/long.json" "$WORK/short.json" <<'PY' || fail=1
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
echo "soak: RSS before ${rss_before} kB, after ${rss_after} kB ($(( (rss_after - rss_before) / 1024 )) MB growth)"
echo "soak: generator CPU over 5 s after the load: ${idle_cpu_pct}%"
if ((idle_cpu_pct > 5)); then echo "soak: FAIL: generator still busy" >&2; fail=1; fi
if ((fail)); then echo "soak: FAILED" >&2; exit 1; fi
echo "soak: OK"
