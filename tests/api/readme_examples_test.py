"""The README's API examples, run with the real buf CLI against live servers.

Takes the block after the README's `<!-- api-examples: ... -->` marker, starts a
trainer (bearer token required) and a generator as the README's "Running the
services yourself" does, trains `names` with the README's `microgpt train`
command and a second model, then runs every `buf curl` line of the block with
bash (localhost:50051 / :50052 and JOB_ID replaced by the real addresses and
job id) and checks what each prints. Every grpcurl line must have a `buf curl`
twin with the same address, method, headers and request (grpcurl itself is not
in Debian or npm; `describe` has no buf equivalent). Prints a transcript: each
command, its exit code and its first lines.

    /usr/bin/python3 tests/api/readme_examples_test.py BUILD_DIR

Prints "N passed, N failed" last; exits 1 on any failure.
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import check, finish, word_list  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
BUF_BIN = os.path.join(ROOT, "tools", "buf", "node_modules", ".bin")
TOKEN = "readme-examples-test-token"

# ------------------------------------------------------------ the README ---

def readme_commands():
    """The shell commands of the marked block, continuation lines and
    multi-line quoted arguments joined, in README order."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    match = re.search(r"<!-- api-examples:[^>]*-->\s*```bash\n(.*?)```", text, re.S)
    if not match:
        return []
    commands, pending = [], ""
    for line in match.group(1).splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if line.endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the argument goes on
            continue
        commands.append(pending.strip())
        pending = ""
    return commands


def words(command):
    return shlex.split(command.replace("\\\n", " "), comments=True)


def option(args, *names):
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            return args[i + 1]
    return None


def call_of(command):
    """(client, address, method, request, headers, emit_defaults) of a
    grpcurl or buf curl line; method "list" for a listing."""
    args = words(command)
    headers = sorted(args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-H", "--header"))
    data = option(args, "-d", "--data")
    request = json.loads(data) if data else None
    if args[0] == "grpcurl":
        positional = [a for i, a in enumerate(args[1:], 1)
                      if not a.startswith("-") and args[i - 1] not in ("-d", "-H")]
        address = positional[0]
        method = "list" if positional[1:] == ["list"] else (
            "describe" if positional[1:2] == ["describe"] else positional[1])
        return ("grpcurl", address, method, request, headers, "-emit-defaults" in args)
    if args[:2] == ["buf", "curl"]:
        url = args[-1]
        address, _, method = url.removeprefix("http://").partition("/")
        if "--list-methods" in args:
            method = "list"
        return ("buf", address, method, request, headers, "--emit-defaults" in args)
    return None


# ------------------------------------------------------------- servers ---

def start(name, argv, env, log_dir):
    out = open(os.path.join(log_dir, f"{name}.log"), "w")
    process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        log = open(out.name).read()
        found = re.search(rf"{name} listening on \S+:(\d+)", log)
        if found:
            return process, int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.1)
    print(open(out.name).read()[-2000:])
    check(f"{name} starts", False)
    finish()


def main():
    commands = readme_commands()
    check("the README's API block has buf curl lines",
          sum(c.startswith("buf curl") for c in commands) >= 9, f"{len(commands)} commands found")
    buf = os.path.join(BUF_BIN, "buf")
    if not os.access(buf, os.X_OK):
        check(f"buf installed ({buf}; bash scripts/setup.sh --with-buf)", False)
        finish()

    # Every grpcurl line has its buf curl twin.
    def twin_key(call):  # what must be the same in both forms
        return json.dumps(call[1:], sort_keys=True)
    calls = [call_of(c) for c in commands]
    buf_calls = {twin_key(c) for c in calls if c and c[0] == "buf"}
    for command, call in zip(commands, calls):
        if call and call[0] == "grpcurl" and call[2] != "describe":
            check(f"grpcurl line has a buf curl twin: {call[2]} on {call[1]}",
                  twin_key(call) in buf_calls, command)

    tmp = tempfile.mkdtemp(prefix="readme_examples.")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MICROGPT_AUTH_TOKEN=TOKEN,
               PATH=BUF_BIN + os.pathsep + os.environ.get("PATH", ""))
    data_root, checkpoints = os.path.join(tmp, "data"), os.path.join(tmp, "ckpt")
    os.makedirs(data_root)
    with open(os.path.join(data_root, "names.txt"), "w") as f:
        f.write("emma\nemily\nmia\n" + word_list())
    processes = []
    try:
        trainer, trainer_port = start("microgpt-trainer", [
            f"{BUILD}/trainer/microgpt-trainer", "serve", "--host", "127.0.0.1", "--port", "0",
            "--checkpoint_root", checkpoints, "--data_root", data_root, "--shutdown_grace", "1s"],
            env, tmp)
        processes.append(trainer)
        generator, generator_port = start("microgpt-generator", [
            f"{BUILD}/generator/microgpt-generator", "--host", "127.0.0.1", "--port", "0",
            "--checkpoint_root", checkpoints, "--poll_interval", "0.2s", "--shutdown_grace", "1s"],
            env, tmp)
        processes.append(generator)
        trained = subprocess.run([f"{BUILD}/cli/microgpt", "train", "--model", "names", "--data", "names.txt",
                                        "--steps", "1000", "--checkpoint_every", "500"],
                                 env=dict(env, MICROGPT_TRAINER=f"127.0.0.1:{trainer_port}"),
                                 capture_output=True, text=True, timeout=120)
        check("microgpt train --model names (the README's command)", trained.returncode == 0,
              trained.stdout[-1000:] + trained.stderr[-1000:])
        second = subprocess.run([f"{BUILD}/trainer/microgpt-trainer", "train", "--data",
                                 os.path.join(data_root, "names.txt"), "--model", "second",
                                 "--checkpoint_root", checkpoints, "--steps", "100"],
                                env=env, capture_output=True, text=True, timeout=120)
        check("a second model served beside it", second.returncode == 0, second.stderr[-1000:])
        run_examples(commands, env, generator_port, trainer_port, tmp)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        subprocess.run(["rm", "-rf", tmp])
    finish()


# ------------------------------------------------------------ examples ---

def run_examples(commands, env, generator_port, trainer_port, tmp):
    job_id = None
    # Both models loaded, so no example can lean on "the only model".
    for _ in range(100):
        listed = subprocess.run(["buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge",
                                 f"http://127.0.0.1:{generator_port}/microgpt.v1.Generator/ListModels"],
                                env=env, capture_output=True, text=True)
        if '"second"' in listed.stdout and '"version": "1000"' in listed.stdout:
            break
        time.sleep(0.2)
    for command in commands:
        if not command.startswith("buf curl"):
            continue
        shell = (command.replace("localhost:50051", f"127.0.0.1:{generator_port}")
                 .replace("localhost:50052", f"127.0.0.1:{trainer_port}"))
        if "JOB_ID" in shell:
            shell = shell.replace("JOB_ID", job_id or "no-job-started")
        result = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True,
                                timeout=120)
        out, err, rc = result.stdout, result.stderr, result.returncode
        print(f"$ {command}\nexit {rc}")
        for line in (out + err).splitlines()[:6]:
            print(f"  {line}")
        _, address, method, request, headers, emit_defaults = call_of(command)
        server = "trainer" if address.endswith(":50052") else "generator"
        messages = [json.loads(m) for m in split_json(out)] if rc == 0 and method != "list" else []
        what = f"{server} {method} {json.dumps(request) if request else ''}".strip()
        if method == "list":
            expected = ({"microgpt.v1.Generator/Generate", "microgpt.v1.Generator/ListModels"}
                        if server == "generator" else {"microgpt.v1.Trainer/StartTraining"})
            expected |= {"grpc.health.v1.Health/Check",
                         "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                         "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"}
            check(f"{what}: lists its methods, health and both reflection versions",
                  rc == 0 and expected <= set(out.split()), out + err)
            # The same through each reflection version alone.
            for protocol in ("grpc-v1", "grpc-v1alpha"):
                alone = subprocess.run(["bash", "-c", shell.replace(
                    "--list-methods", f"--list-methods --reflect-protocol {protocol}")],
                    env=env, capture_output=True, text=True)
                check(f"{what} --reflect-protocol {protocol}: the same list",
                      alone.returncode == 0 and alone.stdout == out, alone.stderr)
        elif method == "grpc.health.v1.Health/Check":
            check(f"{what}: SERVING", rc == 0 and messages == [{"status": "SERVING"}], out + err)
        elif method == "microgpt.v1.Generator/Generate" and request.get("temperature") == -1:
            check(f"{what}: exit 24 (8 x INVALID_ARGUMENT), the message names temperature",
                  rc == 24 and '"invalid_argument"' in err and "temperature" in err, out + err)
        elif method == "microgpt.v1.Generator/Generate" and "regex" in request:
            texts, lasts = samples_of(messages)
            ended = [i for i, m in lasts.items() if m["finishReason"] == "FINISH_REASON_BOS"]
            check(f"{what}: every sample that ended matches the whole pattern (Python's re)",
                  rc == 0 and len(lasts) == request["numSamples"] and ended and
                  all(re.fullmatch(request["regex"], texts.get(i, "")) for i in ended),
                  out[-1500:] + err)
        elif method == "microgpt.v1.Generator/Score":
            scores = messages[0].get("scores", []) if messages else []
            check(f"{what}: one score per text, the sum of its tokens' logprobs, and the unlikely "
                  "text scores lower",
                  rc == 0 and len(scores) == len(request["texts"]) and
                  all(abs(s["sumLogprob"] - sum(t["logprob"] for t in s["tokens"])) < 1e-3
                      for s in scores) and
                  scores[0]["sumLogprob"] > scores[1]["sumLogprob"], out[-1500:] + err)
        elif method == "microgpt.v1.Generator/Generate" and "stop" in request:
            texts, lasts = samples_of(messages)
            check(f"{what}: {request['numSamples']} samples, none showing a stop sequence",
                  rc == 0 and len(lasts) == request["numSamples"] and
                  not any(stop in text for text in texts.values() for stop in request["stop"]),
                  out[-1500:] + err)
            check(f"{what}: each last message has its usage and seed (seed + sample index)",
                  len(lasts) == request["numSamples"] and all(int(m.get("generatedTokens", 0)) >= request["minTokens"] and
                      m.get("seed") == str(request["seed"] + i) for i, m in lasts.items()),
                  out[-1500:])
            check(f"{what}: a sample that stopped names its stop sequence",
                  len(lasts) == request["numSamples"] and all(m.get("stopSequence") in request["stop"] for m in lasts.values()
                      if m["finishReason"] == "FINISH_REASON_STOP_SEQUENCE"), out[-1500:])
        elif method == "microgpt.v1.Generator/Generate":
            samples = request.get("numSamples", 1)
            last = [m for m in messages if "finishReason" in m and
                    m["finishReason"] != "FINISH_REASON_UNSPECIFIED"]
            check(f"{what}: {samples} sample(s), each ending with finishReason, model and version",
                  rc == 0 and len(last) == samples and
                  all(m["finishReason"].startswith("FINISH_REASON_") and m["model"] == "names"
                      and m["version"] == str(request.get("version", 1000)) for m in last),
                  out[-1500:] + err)
            check(f"{what}: lowerCamelCase field names (finishReason, not finish_reason)",
                  rc == 0 and "finishReason" in out and "finish_reason" not in out, out[-800:])
            if emit_defaults:
                check(f"{what}: --emit-defaults shows sampleIndex 0 and 1",
                      {m.get("sampleIndex") for m in messages} == {0, 1}, out[-800:])
                check(f"{what}: at most maxTokens tokens per sample, topLogprobs listed",
                      len(messages) <= samples * request["maxTokens"] and
                      all(len(m["topLogprobs"]) == request["topLogprobs"] for m in messages), out[-800:])
                again = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True)
                check(f"{what}: the same seed gives the same stream", again.stdout == out)
        elif method == "microgpt.v1.Generator/ListModels":
            names = {m["name"]: m for m in (messages[0].get("models", []) if messages else [])}
            check(f"{what}: both models, names at versions 1000 and 500",
                  rc == 0 and set(names) == {"names", "second"} and
                  [v["version"] for v in names["names"]["versions"]] == ["1000", "500"], out + err)
        elif method == "microgpt.v1.Trainer/StartTraining":
            job_id = messages[0].get("jobId") if messages else None
            check(f"{what}: a jobId", rc == 0 and bool(job_id), out + err)
            without = subprocess.run(["bash", "-c", re.sub(r'-H "[^"]*" ', "", shell)], env=env,
                                     capture_output=True, text=True)
            check(f"{what} without the token: exit 128 (8 x UNAUTHENTICATED)",
                  without.returncode == 128 and '"unauthenticated"' in without.stderr,
                  without.stderr)
        elif method == "microgpt.v1.Trainer/WatchTraining":
            finished = messages[-1].get("finished", {}) if messages else {}
            check(f"{what}: streams until the job SUCCEEDED at version 50",
                  rc == 0 and finished.get("state") == "JOB_STATE_SUCCEEDED" and
                  finished.get("latestVersion") == "50", out[-1500:] + err)
        else:
            check(f"{what}: the test knows what this README command should print", False, command)


def samples_of(messages):
    """A Generate stream's text per sample index, and each sample's last message."""
    texts, lasts = {}, {}
    for m in messages:
        i = m.get("sampleIndex", 0)
        texts[i] = texts.get(i, "") + m.get("text", "")
        if m.get("finishReason", "FINISH_REASON_UNSPECIFIED") != "FINISH_REASON_UNSPECIFIED":
            lasts[i] = m
    return texts, lasts


def split_json(text):
    """The top-level JSON values of a stream of pretty-printed messages."""
    decoder, values, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return values
        _, end = decoder.raw_decode(text, i)
        values.append(text[i:end])
        i = end


if __name__ == "__main__":
    main()
