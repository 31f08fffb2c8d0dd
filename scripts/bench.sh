#!/usr/bin/env bash
# The engine benchmarks of docs/benchmarks.md, both sides in one go on this
# machine: builds (scripts/build.sh), then for every row runs microgpt's
# engine_bench and the PyTorch port (bench/pytorch_microgpt.py under
# /usr/bin/python3, Debian's python3-torch) back to back, so both see the same
# load, and prints the table of issue 4:
#   measure | PyTorch | microgpt | ratio | target | met?
# The PyTorch column says "skipped" when torch is not installed
# (scripts/setup.sh --with-torch installs it).
#
#   scripts/bench.sh                              # 3 s per row, median of 3
#   scripts/bench.sh --min_time 1 --repetitions 1 # quick look
#   scripts/bench.sh --rows train_d,decode_d_x64  # some rows only
#   scripts/bench.sh --no-build                   # use the binaries in $BUILD_DIR
#   scripts/bench.sh --no-text                    # without bench/text_bench.sh's service rows
#   scripts/bench.sh --baseline OTHER_BUILD_DIR   # also an earlier build's engine_bench,
#                                                 # row by row, to compare the two
#
# PYTORCH_PYTHON picks another interpreter for the PyTorch side (default
# /usr/bin/python3). OPENBLAS_CORETYPE defaults to Haswell, the kernels the
# issue's figures were measured with (by itself OpenBLAS 0.3.21 picks
# Cooperlake on these CPUs); set it to override. The raw results (Google
# Benchmark JSON and PyTorch JSON lines) are kept in the printed folder.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

min_time=3
repetitions=3
rows=train_a,train_b,train_c,train_d,train_e,train_f,decode_a_x1,decode_a_x64
rows+=,decode_d_x1,decode_d_x64,decode_f_x1,decode_f_x64,prefill_f_255
text_rows=1
build=1
baseline=""
data="$root/../shared/data/names.txt"
text="$root/../shared/data/shakespeare.txt"
while [ $# -gt 0 ]; do
  case "$1" in
    --min_time) min_time=$2; shift 2 ;;
    --repetitions) repetitions=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --text) text=$2; shift 2 ;;
    --no-text) text_rows=0; shift ;;
    --no-build) build=0; shift ;;
    --baseline) baseline=$(realpath "$2"); shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

# Only what this script runs (scripts/build.sh builds $BUILD_TARGETS).
[ "$build" = 1 ] && BUILD_TARGETS=${BUILD_TARGETS:-engine_bench microgpt-trainer microgpt-generator microgpt microgpt-bench} bash scripts/build.sh
bin=$(realpath "${BUILD_DIR:-build}")
[ -x "$bin/bench/engine_bench" ] || { echo "bench.sh: $bin/bench/engine_bench is missing" >&2; exit 1; }
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}

out=$(mktemp -d /tmp/microgpt-bench.XXXXXX)
if [ -f "$data" ]; then
  data=$(realpath "$data")
  echo "data: $data"
else
  # The same stand-in on both sides: 32,000 lowercase "names" of 3-8 letters.
  echo "data: $data is absent; using 32,000 generated names (figures are not comparable with names.txt)"
  data="$out/generated_names.txt"
  awk 'BEGIN { srand(1); for (i = 0; i < 32000; i++) { n = 3 + int(rand() * 6); s = "";
       for (j = 0; j < n; j++) s = s sprintf("%c", 97 + int(rand() * 26)); print s } }' > "$data"
fi
export MICROGPT_BENCH_DATA=$data
if [ -f "$text" ]; then
  text=$(realpath "$text")
  echo "text: $text"
else
  echo "text: $text is absent; both sides use a generated text (and the service rows are skipped)"
  text_rows=0
fi
export MICROGPT_BENCH_TEXT=$text

python=${PYTORCH_PYTHON:-/usr/bin/python3}  # Debian's python3-torch lives here
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "machine: $(nproc) cores, $cpu, OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE, OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-unset}"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load before: $load_before"
echo "per row: $repetitions x ${min_time}s, median; results in $out"

torch_ok=1
if [ ! -x "$python" ] || ! "$python" -c 'import torch' 2>/dev/null; then
  torch_ok=0
  "$python" bench/pytorch_microgpt.py 2>/dev/null > "$out/pytorch.jsonl" ||
    echo "{\"impl\": \"pytorch\", \"skipped\": \"$python is missing\"}" > "$out/pytorch.jsonl"
  echo "PyTorch: skipped ($(sed -n 's/.*"skipped": "\(.*\)"}/\1/p' "$out/pytorch.jsonl"))"
fi

# run_engine BIN NAME ROW: one row of engine_bench BIN, its JSON in $out/NAME_ROW.json.
run_engine() {
  "$1/bench/engine_bench" --benchmark_filter="^${3}(/|\$)" \
    --benchmark_min_time="$min_time" --benchmark_repetitions="$repetitions" \
    --benchmark_out="$out/${2}_$3.json" --benchmark_out_format=json \
    >"$out/${2}_$3.log" 2>&1 || { cat "$out/${2}_$3.log" >&2; exit 1; }
}
engine_files=()
baseline_files=()
for row in ${rows//,/ }; do
  if [ -n "$baseline" ]; then
    echo "  $row: baseline microgpt ($baseline)..." >&2
    run_engine "$baseline" baseline "$row"
    baseline_files+=("$out/baseline_$row.json")
  fi
  echo "  $row: microgpt..." >&2
  run_engine "$bin" engine "$row"
  engine_files+=("$out/engine_$row.json")
  if [ "$torch_ok" = 1 ]; then
    echo "  $row: PyTorch..." >&2
    "$python" bench/pytorch_microgpt.py --data "$data" --text "$text" --rows "$row" \
      --min_time "$min_time" --repetitions "$repetitions" >> "$out/pytorch.jsonl"
  fi
done
text_args=()
if [ "$text_rows" = 1 ]; then
  bash bench/text_bench.sh "$bin" "$text" "$out/text" > "$out/text.jsonl"
  text_args=(--text "$out/text.jsonl")
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load after: $load_after"
echo
[ -x "$python" ] || python=python3
"$python" bench/bench_table.py --pytorch "$out/pytorch.jsonl" --engine "${engine_files[@]}" \
  "${text_args[@]}"
if [ -n "$baseline" ]; then
  echo
  echo "baseline ($baseline), measured row by row just before the table above:"
  "$python" bench/bench_table.py --pytorch "$out/pytorch.jsonl" --engine "${baseline_files[@]}"
fi
echo "load average (1, 5, 15 min): $load_before before, $load_after after; $(nproc) cores"
