#!/usr/bin/env bash
# The text benchmarks that run the services themselves (docs/benchmarks.md,
# "Text"): on shakespeare.txt in the text format,
#   (e) end to end: `microgpt-trainer train` with nanoGPT's CPU recipe
#       (n_layer 4, n_head 4, n_embd 128, block 64, batch 12, 2,000 steps,
#       lr 1e-3, val_fraction 0.1, evaluations every 500 steps): the wall
#       time, the validation loss, the peak RSS next to the trainer's memory
#       estimate, and a 1,000-character sample through the generator;
#   (f) memory: a short run of nanoGPT's shakespeare_char model (n_layer 6,
#       n_head 6, n_embd 384, block 256, batch 16): peak RSS and estimate;
#   (f) through gRPC: the generator serving that model, microgpt-bench with
#       64 streams of 512 tokens: aggregate tokens/s and inter-token latency.
# Prints JSON lines ({"row": ...}) for bench_table.py after a readable log.
#
#   bench/text_bench.sh BUILD_DIR TEXT_FILE OUT_DIR
set -euo pipefail
bin=$(realpath "$1")
text=$(realpath "$2")
out=$3
mkdir -p "$out"
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
trainer=$bin/trainer/microgpt-trainer
generator=$bin/generator/microgpt-generator
root=$out/checkpoints
rm -rf "$root"

# peak_rss_mib FILE: GNU time's "%M" (KiB) line as MiB.
peak_rss_mib() { awk '{printf "%.1f", $1 / 1024}' "$1"; }
# estimate_mib FILE: the trainer's "estimated memory X MiB" log line.
estimate_mib() { sed -n 's/.*estimated memory \([0-9.]*\) MiB.*/\1/p' "$1" | head -1; }

echo "  text (e): microgpt-trainer train, nanoGPT's CPU recipe..." >&2
start=$(date +%s%N)
/usr/bin/time -f "%M" -o "$out/e.rss" "$trainer" train --data "$text" --format text \
  --val_fraction 0.1 --eval_every 500 --model e --checkpoint_root "$root" \
  --n_layer 4 --n_head 4 --n_embd 128 --block_size 64 --batch_size 12 --steps 2000 \
  --lr 1e-3 --print_every 250 >"$out/e.log" 2>"$out/e.err"
wall=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
val=$(sed -n 's/^published e version 2000: .*val \([0-9.]*\))$/\1/p' "$out/e.log")
grep -E '^step|^published' "$out/e.log" >&2
echo "{\"row\": \"e2e_e\", \"wall_s\": $wall, \"val_loss\": ${val:-null}," \
  "\"peak_rss_mib\": $(peak_rss_mib "$out/e.rss"), \"estimate_mib\": $(estimate_mib "$out/e.err")}"

echo "  text (f): 8 steps, for the memory..." >&2
/usr/bin/time -f "%M" -o "$out/f.rss" "$trainer" train --data "$text" --format text \
  --model f --checkpoint_root "$root" --n_layer 6 --n_head 6 --n_embd 384 \
  --block_size 256 --batch_size 16 --steps 8 --lr 1e-3 --init_std 0.02 \
  >"$out/f.log" 2>"$out/f.err"
echo "{\"row\": \"memory_f\", \"peak_rss_mib\": $(peak_rss_mib "$out/f.rss")," \
  "\"estimate_mib\": $(estimate_mib "$out/f.err")}"

port=$((20000 + RANDOM % 20000))
"$generator" --host 127.0.0.1 --port "$port" --checkpoint_root "$root" \
  --max_tokens_limit 1000 >"$out/generator.log" 2>&1 &
generator_pid=$!
trap 'kill $generator_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "loaded model f version" "$out/generator.log" 2>/dev/null &&
    grep -q "loaded model e version" "$out/generator.log" && break
  sleep 0.2
done

echo "  text (e): a 1,000-character sample..." >&2
"$bin/cli/microgpt" generate --generator "127.0.0.1:$port" --model e --max_tokens 1000 \
  --temperature 0.8 --seed 1 >"$out/e_sample.txt"
echo "{\"row\": \"sample_e\", \"file\": \"$out/e_sample.txt\"," \
  "\"characters\": $(python3 -c 'import sys; print(len(open(sys.argv[1], encoding="utf-8").read()))' "$out/e_sample.txt")}"

echo "  text (f): microgpt-bench, 64 streams of 512 tokens..." >&2
"$bin/bench/microgpt-bench" --target "127.0.0.1:$port" --model f --streams 64 \
  --max_tokens 512 --temperature 0.8 --warmup 5s --duration 30s --deadline 120s \
  --json >"$out/grpc_f.json"
echo "{\"row\": \"grpc_f_x64\", $(sed 's/^{//' "$out/grpc_f.json")"
