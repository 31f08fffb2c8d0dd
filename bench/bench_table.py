#!/usr/bin/env python3
"""Prints the table of issue 4 from the two sides' results (stdlib only).

  bench_table.py --pytorch PYTORCH_JSONL --engine ENGINE_JSON...

ENGINE_JSON are engine_bench's --benchmark_out files (Google Benchmark JSON;
with repetitions, the median aggregate is used); PYTORCH_JSONL is the output
of pytorch_microgpt.py, one JSON object per line (or a "skipped" line). Rows
measured on neither side are left out.
"""

import argparse
import json
import sys

# (row, counter, label, target): a target is ("ratio", x), microgpt at least x
# times PyTorch; ("at_most_ratio", x), a time at most x times PyTorch's;
# ("absolute", x), microgpt's figure at least x; or None.
ROWS = [
    ("train_a", "steps_per_s", "train (a) steps/s", ("ratio", 50)),
    ("train_b", "tokens_per_s", "train (b) tokens/s", ("ratio", 5)),
    ("train_c", "tokens_per_s", "train (c) tokens/s", None),
    ("train_d", "tokens_per_s", "train (d) tokens/s", ("ratio", 2.5)),
    ("train_e", "tokens_per_s", "train (e) tokens/s, text", ("absolute", 35000)),
    ("train_f", "tokens_per_s", "train (f) tokens/s, text", ("ratio", 2.5)),
    ("decode_a_x1", "tokens_per_s", "decode (a), 1 stream, tokens/s", ("ratio", 100)),
    ("decode_a_x64", "tokens_per_s", "decode (a), 64 streams, aggregate tokens/s",
     ("ratio", 5)),
    ("decode_d_x1", "tokens_per_s", "decode (d), 1 stream, tokens/s", None),
    ("decode_d_x64", "tokens_per_s", "decode (d), 64 streams, aggregate tokens/s",
     ("ratio", 3)),
    ("decode_f_x1", "tokens_per_s", "decode (f), 1 stream, tokens/s", ("ratio", 3)),
    ("decode_f_x64", "tokens_per_s", "decode (f), 64 streams, aggregate tokens/s",
     ("ratio", 2.5)),
    ("prefill_f_255", "ms_per_prompt",
     "time to first token (f), 255-character prompt, ms", ("at_most_ratio", 1)),
]


def describe(target):
    if target is None:
        return "—"
    kind, value = target
    if kind == "ratio":
        return f"≥ {value:g}× PyTorch"
    if kind == "at_most_ratio":
        return f"≤ {value:g}× PyTorch's"
    return f"≥ {human(value)}"


def met(target, ours, theirs):
    if target is None or ours is None:
        return "—"
    kind, value = target
    if kind == "absolute":
        ok = ours >= value
    elif theirs is None:
        return "—"
    elif kind == "ratio":
        ok = ours / theirs >= value
    else:
        ok = ours / theirs <= value
    return "yes" if ok else "**no**"


def human(x):
    if x is None:
        return "—"
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if x >= div:
            v = x / div
            return f"{v:.3g}{suffix}" if v < 100 else f"{v:.0f}{suffix}"
    return f"{x:.3g}"


def engine_rows(paths):
    rows, medians, context = {}, {}, {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        context = data.get("context", context)
        for b in data.get("benchmarks", []):
            add_engine_row(b, rows, medians)
    rows.update(medians)
    return rows, context


def add_engine_row(b, rows, medians):
    # run_name is "train_a/real_time"; the row is its first part.
    name = b.get("run_name", b["name"]).split("/")[0]
    if b.get("error_occurred"):
        return
    if b.get("run_type") == "aggregate":
        if b.get("aggregate_name") == "median":
            medians[name] = b
    else:
        rows.setdefault(name, b)


def pytorch_rows(path):
    rows, header, skipped = {}, {}, None
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                obj = json.loads(line)
                if "skipped" in obj:
                    skipped = obj["skipped"]
                elif "row" in obj:
                    rows[obj["row"]] = obj
                else:
                    header = obj
    except FileNotFoundError:
        skipped = "no PyTorch results"
    return rows, header, skipped


def text_rows(path):
    rows = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                obj = json.loads(line)
                rows[obj["row"]] = obj
    return rows


def print_text_table(rows, engine):
    """The rows of bench/text_bench.sh: the services end to end."""
    e, mf = rows.get("e2e_e", {}), rows.get("memory_f", {})
    grpc, sample = rows.get("grpc_f_x64", {}), rows.get("sample_e", {})
    decode = engine.get("decode_f_x64", {}).get("tokens_per_s")
    print("| measure | microgpt | target | met? |")
    print("|---|---|---|---|")

    def line(label, value, target, ok):
        met_s = "—" if ok is None else ("yes" if ok else "**no**")
        print(f"| {label} | {value} | {target} | {met_s} |")

    if e:
        val, wall = e.get("val_loss"), e.get("wall_s")
        line("(e) end to end: validation loss after 2,000 steps",
             f"{val:.4f}" if val else "—", "≤ 1.85", val is not None and val <= 1.85)
        line("(e) end to end: wall time, evaluations included", f"{wall:.1f} s",
             "≤ 50 s", wall <= 50)
        line("(e) training peak RSS (trainer's estimate)",
             f"{e['peak_rss_mib']:.0f} MiB ({e['estimate_mib']:.0f} MiB)", "—", None)
    if mf:
        line("(f) training peak RSS (trainer's estimate)",
             f"{mf['peak_rss_mib']:.0f} MiB ({mf['estimate_mib']:.0f} MiB)", "—", None)
    if grpc:
        ours = grpc.get("tokens_per_s")
        target = f"≥ 90% of the engine's {human(decode)}" if decode else "≥ 90% of the engine's"
        line("(f) through gRPC, 64 streams of 512 tokens, aggregate tokens/s",
             f"{human(ours)}" + (f" ({100 * ours / decode:.0f}%)" if decode else ""),
             target, None if not decode else ours >= 0.9 * decode)
        itl = grpc.get("itl_ms", {})
        line("(f) through gRPC: inter-token latency p50 / p99",
             f"{itl.get('p50', 0):.1f} / {itl.get('p99', 0):.1f} ms", "reported", None)
    if sample:
        print()
        print(f"(e) sample: {sample['characters']} characters in {sample['file']}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pytorch", required=True)
    parser.add_argument("--engine", nargs="+", required=True)
    parser.add_argument("--text", help="bench/text_bench.sh's JSON lines")
    args = parser.parse_args()
    engine, context = engine_rows(args.engine)
    torch_rows, header, skipped = pytorch_rows(args.pytorch)
    print("| measure | PyTorch | microgpt | ratio | target | met? |")
    print("|---|---|---|---|---|---|")
    for row, counter, label, target in ROWS:
        ours = engine.get(row, {}).get(counter)
        theirs = torch_rows.get(row, {}).get(counter)
        if ours is None and theirs is None:
            continue
        target_s = describe(target)
        if skipped:
            print(f"| {label} | skipped | {human(ours)} | — | {target_s} | "
                  f"{met(target, ours, None)} |")
            continue
        ratio = ours / theirs if ours and theirs else None
        ratio_s = f"{ratio:.2f}×" if ratio else "—"
        print(f"| {label} | {human(theirs)} | {human(ours)} | {ratio_s} | {target_s} | "
              f"{met(target, ours, theirs)} |")
    print()
    print(f"microgpt: OpenBLAS {context.get('openblas_corename', '?')} kernels "
          f"(OPENBLAS_CORETYPE={context.get('openblas_coretype', '') or 'unset'}), "
          "threads as the services set them (common/blas_threads.h: OpenBLAS single-threaded, "
          "two engine threads for the (c)-(f) training and (d), (f) x64 decoding rows; "
          "the JSON counters threads, workers and blas_threads give each row's), "
          f"data {context.get('data', '?')}, text {context.get('text', '?')}")
    if skipped:
        print(f"PyTorch: skipped: {skipped}")
    else:
        print(f"PyTorch: torch {header.get('torch', '?')}, "
              f"{header.get('threads', '?')} thread(s) (text rows: "
              f"{header.get('text_threads', '?')}), data {header.get('data', '?')}, "
              f"text {header.get('text', '?')}")
    if args.text:
        print()
        print_text_table(text_rows(args.text), engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
