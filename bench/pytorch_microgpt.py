#!/usr/bin/python3
"""The microgpt model (docs/model.md) in PyTorch, the baseline of the engine benchmarks.

The same model as common/: a character-level GPT with rmsnorm without gain
(x / sqrt(mean(x^2) + 1e-5)), no biases, separate wq/wk/wv/wo, an fc1/fc2 ReLU
MLP, an untied lm_head, every weight drawn from N(0, 0.08^2); trained with
Adam (betas 0.85/0.99, eps 1e-8, bias-corrected) at lr 0.01 decayed linearly,
on batches of documents padded only to the batch's longest document (padded
targets are ignored, so tokens/s counts real targets); the text
configurations (e) and (f) train on windows of shakespeare.txt at random
offsets, as nanoGPT's get_batch does (--text). prefill_f_255 times one
batched causal forward of a 255-character prompt (the time to first token). Decoding feeds one
token per stream per step through a preallocated KV cache and samples at
temperature 0.5 with torch.multinomial; every stream restarts from BOS when
its cache is full, like bench/engine_bench.cc.

Prints one JSON object per line: a header, then one line per measured row:
  {"impl": "pytorch", "row": "train_a", "kind": "train", "config": "a",
   "batch": 1, "steps_per_s": ..., "tokens_per_s": ..., ...}
  {"impl": "pytorch", "row": "decode_a_x64", "kind": "decode", "config": "a",
   "streams": 64, "tokens_per_s": ..., ...}
When torch is not installed it prints {"impl": "pytorch", "skipped": ...} and
exits 0.

--verify CHECKPOINT_DIR loads a microgpt checkpoint (<root>/<model>/<version>/
model.safetensors) into this port and prints the log-probability of every
token of --verify_text, from the causal training forward and from the KV-cached
decoding step, to compare with the generator's (`microgpt generate
--temperature 0 --show_logprobs`): the same model gives the same numbers.

  OPENBLAS_CORETYPE=Haswell /usr/bin/python3 bench/pytorch_microgpt.py \
      --data ../shared/data/names.txt --min_time 3
"""

import argparse
import json
import math
import os
import platform
import random
import sys
import time

# name: (n_embd, n_layer, n_head, block_size, batch)
CONFIGS = {
    "a": (16, 1, 4, 16, 1),
    "b": (16, 1, 4, 16, 32),
    "c": (64, 2, 4, 16, 32),
    "d": (128, 4, 4, 32, 64),
    # Text models (nanoGPT's): its CPU recipe and its shakespeare_char model.
    "e": (128, 4, 4, 64, 12),
    "f": (384, 6, 6, 256, 16),
}
TEXT_CONFIGS = {"e", "f"}
# (config, streams) of the decoding rows.
DECODE_ROWS = [("a", 1), ("a", 64), ("d", 1), ("d", 64), ("f", 1), ("f", 64)]
# Time to first token: one batched causal forward of a prompt of this many
# characters (config f), what a prefill costs.
PREFILL_ROWS = [("f", 255)]


def emit(obj):
    print(json.dumps(obj), flush=True)


def load_documents(path):
    """docs/model.md: one document per line, stripped, empty lines dropped."""
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            docs = [line.strip() for line in f]
        return [d for d in docs if d], path
    # Stand-in: 32k lowercase "names" of 3-8 letters.
    rng = random.Random(1)
    docs = ["".join(chr(97 + rng.randrange(26)) for _ in range(3 + rng.randrange(6)))
            for _ in range(32000)]
    return docs, "generated"


def load_text(path):
    """The text format: the whole file is one character stream."""
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return f.read(), path
    # Stand-in: 1 MB of lowercase words and lines (not engine_bench's bytes).
    rng = random.Random(2)
    out = []
    size = 0
    while size < 1 << 20:
        out.append(chr(97 + rng.randrange(26)))
        if rng.randrange(6) == 0:
            out.append("\n" if rng.randrange(8) == 0 else " ")
        size += len(out[-1])
    return "".join(out), "generated"


def load_checkpoint(directory, torch):
    """model.safetensors of a microgpt version: (config dict, vocab, {name: tensor})."""
    import struct
    with open(os.path.join(directory, "model.safetensors"), "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        data = bytearray(blob[8 + n + start:8 + n + end])
        tensors[name] = torch.frombuffer(data, dtype=torch.float32).view(*info["shape"])
    return json.loads(meta["microgpt.config"]), json.loads(meta["microgpt.vocab"]), tensors


def verify(args, torch, F, rmsnorm, forward_train):
    config, vocab, p = load_checkpoint(args.verify, torch)
    n_layer, n_head, C = config["n_layer"], config["n_head"], config["n_embd"]
    bos = len(vocab)
    tokens = [bos] + [vocab.index(c) for c in args.verify_text] + [bos]
    tokens = tokens[:config["block_size"] + 1]
    with torch.no_grad():
        idx = torch.tensor([tokens[:-1]])
        train_lp = forward_train(p, idx, n_layer, n_head)[0].log_softmax(-1)
        # The decoding step of bench_decode, one token at a time.
        hd = C // n_head
        kc = [torch.zeros(1, n_head, config["block_size"], hd) for _ in range(n_layer)]
        vc = [torch.zeros(1, n_head, config["block_size"], hd) for _ in range(n_layer)]
        decode_lp = []
        for pos, tok in enumerate(tokens[:-1]):
            x = rmsnorm(p["wte"][torch.tensor([tok])] + p["wpe"][pos])
            for i in range(n_layer):
                a = rmsnorm(x)
                q = F.linear(a, p[f"layer{i}.attn_wq"]).view(1, n_head, 1, hd)
                kc[i][:, :, pos] = F.linear(a, p[f"layer{i}.attn_wk"]).view(1, n_head, hd)
                vc[i][:, :, pos] = F.linear(a, p[f"layer{i}.attn_wv"]).view(1, n_head, hd)
                att = ((q @ kc[i][:, :, :pos + 1].transpose(-2, -1)) / math.sqrt(hd)).softmax(-1)
                y = (att @ vc[i][:, :, :pos + 1]).view(1, C)
                x = x + F.linear(y, p[f"layer{i}.attn_wo"])
                x = x + F.linear(F.relu(F.linear(rmsnorm(x), p[f"layer{i}.mlp_fc1"])),
                                 p[f"layer{i}.mlp_fc2"])
            decode_lp.append(F.linear(x, p["lm_head"])[0].log_softmax(-1))
    for pos in range(1, len(tokens)):
        tok = tokens[pos]
        emit({"impl": "pytorch", "verify": args.verify, "position": pos,
              "token": "<bos>" if tok == bos else vocab[tok],
              "logprob_train": round(float(train_lp[pos - 1, tok]), 4),
              "logprob_decode": round(float(decode_lp[pos - 1][tok]), 4)})
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/names.txt")
    parser.add_argument("--text", default="../shared/data/shakespeare.txt",
                        help="the text of the text configurations (e), (f)")
    parser.add_argument("--min_time", type=float, default=3.0,
                        help="seconds measured per row (after the warm-up)")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="seconds of warm-up per row")
    parser.add_argument("--repetitions", type=int, default=1,
                        help="measurements per row; the median is reported")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (1 is the best setting on 2 cores)")
    parser.add_argument("--text_threads", type=int, default=os.cpu_count(),
                        help="torch threads of the text rows' training and prefill "
                             "(nanoGPT's setting: every core)")
    parser.add_argument("--rows", default="",
                        help="comma-separated row names to run (default: all)")
    parser.add_argument("--verify", default="",
                        help="a checkpoint version directory: check the port against it")
    parser.add_argument("--verify_text", default="eman",
                        help="the document whose token log-probabilities --verify prints")
    args = parser.parse_args()

    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        emit({"impl": "pytorch", "skipped":
              f"torch is not importable by {sys.executable} ({e}); "
              "install Debian's python3-torch (scripts/setup.sh --with-torch)"})
        return 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    docs, source = load_documents(args.data)
    text, text_source = load_text(args.text)
    text_stoi = {c: i for i, c in enumerate(sorted(set(text)))}
    text_ids = torch.tensor([text_stoi[c] for c in text], dtype=torch.long)
    text_vocab = len(text_stoi) + 1  # as microgpt's: the characters and BOS
    chars = sorted(set("".join(docs)))
    stoi = {c: i for i, c in enumerate(chars)}
    bos = len(chars)
    vocab_size = len(chars) + 1
    emit({"impl": "pytorch", "torch": torch.__version__, "python": platform.python_version(),
          "threads": torch.get_num_threads(), "text_threads": args.text_threads,
          "data": source, "documents": len(docs),
          "vocab_size": vocab_size, "text": text_source, "text_chars": len(text),
          "text_vocab_size": text_vocab,
          "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "")})
    wanted = set(filter(None, args.rows.split(",")))

    def init_params(n_embd, n_layer, vocab, block_size, requires_grad):
        def mat(rows, cols):
            return (torch.randn(rows, cols) * 0.08).requires_grad_(requires_grad)
        p = {"wte": mat(vocab, n_embd), "wpe": mat(block_size, n_embd),
             "lm_head": mat(vocab, n_embd)}
        for i in range(n_layer):
            for name in ("attn_wq", "attn_wk", "attn_wv", "attn_wo"):
                p[f"layer{i}.{name}"] = mat(n_embd, n_embd)
            p[f"layer{i}.mlp_fc1"] = mat(4 * n_embd, n_embd)
            p[f"layer{i}.mlp_fc2"] = mat(n_embd, 4 * n_embd)
        return p

    def rmsnorm(x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)

    # ------------------------------------------------------------ training
    def forward_train(p, idx, n_layer, n_head):
        """idx [B, T] -> logits [B, T, V], causal (docs/model.md's forward)."""
        B, T = idx.shape
        C = p["wte"].shape[1]
        hd = C // n_head
        x = rmsnorm(p["wte"][idx] + p["wpe"][:T])
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        for i in range(n_layer):
            a = rmsnorm(x)
            q = F.linear(a, p[f"layer{i}.attn_wq"]).view(B, T, n_head, hd).transpose(1, 2)
            k = F.linear(a, p[f"layer{i}.attn_wk"]).view(B, T, n_head, hd).transpose(1, 2)
            v = F.linear(a, p[f"layer{i}.attn_wv"]).view(B, T, n_head, hd).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
            att = att.masked_fill(mask, float("-inf")).softmax(-1)
            y = (att @ v).transpose(1, 2).reshape(B, T, C)
            x = x + F.linear(y, p[f"layer{i}.attn_wo"])
            m = rmsnorm(x)
            x = x + F.linear(F.relu(F.linear(m, p[f"layer{i}.mlp_fc1"])),
                             p[f"layer{i}.mlp_fc2"])
        return F.linear(x, p["lm_head"])

    # Documents encoded once as [BOS] + chars + [BOS], kept in one padded
    # tensor; a batch takes its rows and cuts them to its longest document.
    encoded = [[bos] + [stoi[c] for c in d] + [bos] for d in docs]
    max_len = max(len(e) for e in encoded)
    table = torch.full((len(encoded), max_len), -1, dtype=torch.long)
    for i, e in enumerate(encoded):
        table[i, :len(e)] = torch.tensor(e)
    lengths = torch.tensor([len(e) for e in encoded])

    def bench_train(name):
        n_embd, n_layer, n_head, block_size, batch = CONFIGS[name]
        num_steps = 1 << 30  # the lr decay horizon, never reached here
        is_text = name in TEXT_CONFIGS
        torch.set_num_threads(args.text_threads if is_text else args.threads)
        V = text_vocab if is_text else vocab_size
        p = init_params(n_embd, n_layer, V, block_size, True)
        opt = torch.optim.Adam(p.values(), lr=0.01, betas=(0.85, 0.99), eps=1e-8)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / num_steps)
        order = torch.randperm(len(encoded))  # shuffled once
        cursor = 0

        def text_step():
            # nanoGPT's get_batch: windows at uniform random offsets; the loss
            # is the mean over every position.
            ix = torch.randint(len(text_ids) - block_size, (batch,))
            chunk = torch.stack([text_ids[i:i + block_size + 1] for i in ix.tolist()])
            logits = forward_train(p, chunk[:, :-1], n_layer, n_head)
            loss = F.cross_entropy(logits.view(-1, V), chunk[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            return batch * block_size, loss

        def step():
            nonlocal cursor
            if is_text:
                return text_step()
            if cursor + batch > len(order):
                cursor = 0
            rows = order[cursor:cursor + batch]
            cursor += batch
            n = torch.clamp(lengths[rows] - 1, max=block_size)  # targets per doc
            T = int(n.max())
            chunk = table[rows, :T + 1]
            inputs = chunk[:, :T].clamp(min=0)  # pads: token 0, target -1
            targets = chunk[:, 1:T + 1].clone()
            targets[torch.arange(T).unsqueeze(0) >= n.unsqueeze(1)] = -1
            logits = forward_train(p, inputs, n_layer, n_head)
            loss = F.cross_entropy(logits.view(-1, vocab_size), targets.view(-1),
                                   ignore_index=-1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            return int(n.sum()), loss

        def run(seconds):
            steps = tokens = 0
            start = time.perf_counter()
            while True:
                t, loss = step()
                steps += 1
                tokens += t
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    return steps, tokens, elapsed, float(loss)

        run(args.warmup)
        reps = sorted((run(args.min_time) for _ in range(max(1, args.repetitions))),
                      key=lambda r: r[1] / r[2])
        steps, tokens, elapsed, loss = reps[len(reps) // 2]
        emit({"impl": "pytorch", "row": f"train_{name}", "kind": "train", "config": name,
              "batch": batch, "steps": steps, "seconds": round(elapsed, 4),
              "steps_per_s": steps / elapsed, "tokens_per_s": tokens / elapsed,
              "last_loss": round(loss, 4)})

    # ------------------------------------------------------------ decoding
    def bench_decode(name, streams):
        n_embd, n_layer, n_head, block_size, _ = CONFIGS[name]
        torch.set_num_threads(args.threads)
        # names.txt's vocabulary, or shakespeare.txt's, as in engine_bench.cc
        V = 66 if name in TEXT_CONFIGS else 27
        hd = n_embd // n_head
        scale = 1.0 / math.sqrt(hd)
        p = init_params(n_embd, n_layer, V, block_size, False)
        # Preallocated caches, [n_layer][streams, n_head, block_size, hd].
        kc = [torch.zeros(streams, n_head, block_size, hd) for _ in range(n_layer)]
        vc = [torch.zeros(streams, n_head, block_size, hd) for _ in range(n_layer)]
        gen = torch.Generator().manual_seed(1)
        state = {"pos": 0, "tok": torch.full((streams,), V - 1, dtype=torch.long)}
        W = p

        def step():
            pos, tok = state["pos"], state["tok"]
            x = rmsnorm(W["wte"][tok] + W["wpe"][pos])  # [S, C]
            for i in range(n_layer):
                a = rmsnorm(x)
                q = F.linear(a, W[f"layer{i}.attn_wq"]).view(streams, n_head, 1, hd)
                kc[i][:, :, pos] = F.linear(a, W[f"layer{i}.attn_wk"]).view(streams, n_head, hd)
                vc[i][:, :, pos] = F.linear(a, W[f"layer{i}.attn_wv"]).view(streams, n_head, hd)
                keys, values = kc[i][:, :, :pos + 1], vc[i][:, :, :pos + 1]
                att = ((q @ keys.transpose(-2, -1)) * scale).softmax(-1)  # [S, NH, 1, L]
                y = (att @ values).view(streams, n_embd)
                x = x + F.linear(y, W[f"layer{i}.attn_wo"])
                m = rmsnorm(x)
                x = x + F.linear(F.relu(F.linear(m, W[f"layer{i}.mlp_fc1"])),
                                 W[f"layer{i}.mlp_fc2"])
            logits = F.linear(x, W["lm_head"])
            probs = (logits / 0.5).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=gen).view(streams)
            if pos + 1 == block_size:  # caches full: every stream restarts
                state["pos"], state["tok"] = 0, torch.full((streams,), V - 1, dtype=torch.long)
            else:
                state["pos"], state["tok"] = pos + 1, nxt

        def run(seconds):
            steps = 0
            start = time.perf_counter()
            while True:
                for _ in range(8):
                    step()
                steps += 8
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    return steps, elapsed

        with torch.inference_mode():
            run(args.warmup)
            reps = sorted((run(args.min_time) for _ in range(max(1, args.repetitions))),
                          key=lambda r: r[0] / r[1])
            steps, elapsed = reps[len(reps) // 2]
        emit({"impl": "pytorch", "row": f"decode_{name}_x{streams}", "kind": "decode",
              "config": name, "streams": streams, "steps": steps,
              "seconds": round(elapsed, 4), "tokens_per_s": steps * streams / elapsed})

    # ------------------------------------------------------------ prefill
    def bench_prefill(name, length):
        n_embd, n_layer, n_head, block_size, _ = CONFIGS[name]
        torch.set_num_threads(args.text_threads)
        p = init_params(n_embd, n_layer, 66, block_size, False)
        prompt = torch.randint(65, (1, length))

        def run(seconds):
            count = 0
            start = time.perf_counter()
            while True:
                forward_train(p, prompt, n_layer, n_head)
                count += 1
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    return count, elapsed

        with torch.inference_mode():
            run(args.warmup)
            reps = sorted((run(args.min_time) for _ in range(max(1, args.repetitions))),
                          key=lambda r: r[1] / r[0])
            count, elapsed = reps[len(reps) // 2]
        emit({"impl": "pytorch", "row": f"prefill_{name}_{length}", "kind": "prefill",
              "config": name, "prompt": length, "count": count,
              "seconds": round(elapsed, 4), "ms_per_prompt": 1000 * elapsed / count})

    if args.verify:
        return verify(args, torch, F, rmsnorm, forward_train)

    for name in CONFIGS:
        if not wanted or f"train_{name}" in wanted:
            bench_train(name)
    for name, streams in DECODE_ROWS:
        if not wanted or f"decode_{name}_x{streams}" in wanted:
            bench_decode(name, streams)
    for name, length in PREFILL_ROWS:
        if not wanted or f"prefill_{name}_{length}" in wanted:
            bench_prefill(name, length)
    return 0


if __name__ == "__main__":
    sys.exit(main())
