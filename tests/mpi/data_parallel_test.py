#!/usr/bin/python3
"""Data-parallel training under Open MPI's real mpirun (issue 17):

- the same global batch in the same shards (ranks x --threads = 4) gives the
  same weights with 1, 2 and 4 ranks, bit for bit, and those of one process
  of 4 threads without mpirun, in documents and text mode (validation too);
- a run resumed under mpirun continues as the uninterrupted one does;
- a rank started with other arguments, or whose dataset file differs, fails
  the job at once, naming the rank (and the field);
- a rank killed with SIGKILL ends the job on every rank (mpirun exits
  non-zero, no rank hangs, no partial version), and the same command with
  --resume_if_exists continues from the last published version.

  tests/mpi/data_parallel_test.py BUILD_DIR

Prints "SKIP: ..." when mpirun is not installed or the trainer was built
without MPI.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import check, finish, skip, word_list  # noqa: E402

# As root (CI) Open MPI wants both; --oversubscribe runs 4 ranks on 2 cores.
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OPENBLAS_NUM_THREADS="1")


def mpirun(ranks, args, timeout=300):
    return subprocess.run(["mpirun", "-n", str(ranks)] + args, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def weights(root, model, version):
    with open(os.path.join(root, model, str(version), "model.safetensors"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    build = os.path.abspath(sys.argv[1])
    trainer = os.path.join(build, "trainer", "microgpt-trainer")
    if shutil.which("mpirun") is None:
        skip("mpirun is not installed (scripts/setup.sh installs openmpi-bin)")
    with tempfile.TemporaryDirectory(prefix="mpi-test.") as work:
        names = os.path.join(work, "names.txt")
        with open(names, "w") as f:
            f.write(word_list(600))
        text = os.path.join(work, "text.txt")
        with open(text, "w") as f:
            f.write(word_list(600).replace("\n", " ") * 3)
        root = os.path.join(work, "ckpt")

        def train(model, data, extra, threads):
            return [trainer, "train", "--data", data, "--model", model, "--checkpoint_root",
                    root, "--batch_size", "8", "--n_embd", "32", "--threads", str(threads)] + extra

        probe = mpirun(1, train("probe", names, ["--steps", "1"], 1))
        if "built without MPI" in probe.stderr:
            skip("this microgpt-trainer was built without MPI")
        check("a one-rank run works", probe.returncode == 0, probe.stdout + probe.stderr)

        for mode, data, extra in (
                ("documents", names, ["--steps", "200"]),
                ("text", text, ["--steps", "200", "--format", "text", "--block_size", "32",
                                "--val_fraction", "0.1", "--eval_every", "50"])):
            alone = subprocess.run(train(f"{mode}-alone", data, extra, 4), env=ENV,
                                   capture_output=True, text=True, timeout=300)
            check(f"{mode}: one process of 4 threads trains", alone.returncode == 0,
                  alone.stdout + alone.stderr)
            reference = weights(root, f"{mode}-alone", 200)
            for ranks in (1, 2, 4):
                run = mpirun(ranks, train(f"{mode}-{ranks}", data, extra, 4 // ranks))
                check(f"{mode}: {ranks} rank(s) x {4 // ranks} thread(s) train", run.returncode == 0,
                      run.stdout + run.stderr)
                check(f"{mode}: the weights after 200 steps with {ranks} rank(s) are those of one "
                      "process of 4 threads, bit for bit",
                      run.returncode == 0 and weights(root, f"{mode}-{ranks}", 200) == reference)
                published = [line for line in run.stdout.splitlines()
                             if line.startswith("published ")]
                check(f"{mode}: {ranks} rank(s): rank 0 alone publishes and prints",
                      len(published) == 1 and run.stdout.count("final version:") == 1, run.stdout)

        # Resume under mpirun: the run's version 200 removed, the run resumed
        # from version 100 publishes the same version 200 again.
        whole = mpirun(2, train("resumed", names, ["--steps", "200", "--checkpoint_every",
                                                   "100"], 2))
        uninterrupted = weights(root, "resumed", 200) if whole.returncode == 0 else None
        shutil.rmtree(os.path.join(root, "resumed", "200"), ignore_errors=True)
        rest = mpirun(2, train("resumed", names, ["--steps", "200", "--resume"], 2))
        check("a run resumed under mpirun from version 100 ends with the uninterrupted run's "
              "weights", whole.returncode == 0 and rest.returncode == 0 and
              "from step 100 to 200" in rest.stderr and
              weights(root, "resumed", 200) == uninterrupted, whole.stderr + rest.stderr)

        # A rank with other arguments: the job fails at once, naming it.
        started = time.time()
        mismatch = subprocess.run(
            ["mpirun", "-n", "1"] + train("mismatch", names, ["--steps", "200"], 2) +
            [":", "-n", "1"] + train("mismatch", names, ["--steps", "100"], 2),
            env=ENV, capture_output=True, text=True, timeout=120)
        check("a rank with other arguments fails the job, naming the rank and the field",
              mismatch.returncode != 0 and "rank 1: this rank's arguments differ from rank 0's"
              in mismatch.stderr and "steps: 200 -> 100" in mismatch.stderr,
              mismatch.stderr)
        check("... at once, before any step", time.time() - started < 60 and
              not os.path.exists(os.path.join(root, "mismatch")))

        # The same relative path, another file on rank 1 (its own directory).
        for d, words in (("a", 600), ("b", 500)):
            os.makedirs(os.path.join(work, d))
            with open(os.path.join(work, d, "names.txt"), "w") as f:
                f.write(word_list(words))
        same_path = train("otherdata", "names.txt", ["--steps", "50"], 2)
        otherdata = subprocess.run(
            ["mpirun", "-n", "1", "--wdir", os.path.join(work, "a")] + same_path +
            [":", "-n", "1", "--wdir", os.path.join(work, "b")] + same_path,
            env=ENV, capture_output=True, text=True, timeout=120)
        check("a rank whose dataset file differs fails the job, naming the rank",
              otherdata.returncode != 0 and "rank 1: this rank's dataset differs from rank 0's"
              in otherdata.stderr and not os.path.exists(os.path.join(root, "otherdata")),
              otherdata.stderr)

        # SIGKILL one rank mid-run; then the same command continues.
        command = train("killed", names, ["--steps", "4000", "--checkpoint_every", "400",
                                          "--n_layer", "2", "--resume_if_exists"], 1)
        command[command.index("--n_embd") + 1] = "64"
        job = subprocess.Popen(["mpirun", "-n", "2"] + command, env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
        versions_dir = os.path.join(root, "killed")
        deadline = time.time() + 120
        while time.time() < deadline and not (os.path.isdir(versions_dir) and
                                              any(v.isdigit() for v in os.listdir(versions_dir))):
            time.sleep(0.1)
        ranks = subprocess.run(["pgrep", "-f", "--", "--model killed"], capture_output=True,
                               text=True).stdout.split()
        victims = [int(pid) for pid in ranks if int(pid) != job.pid]
        if victims:
            os.kill(max(victims), signal.SIGKILL)  # the later-started rank
        try:
            out, err = job.communicate(timeout=60)
            ended = True
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            out, err = job.communicate()
            ended = False
        check("a rank killed with SIGKILL ends the job on every rank: mpirun exits non-zero, "
              "none hangs", bool(victims) and ended and job.returncode != 0, err[-2000:])
        left = subprocess.run(["pgrep", "-f", "--", "--model killed"], capture_output=True,
                              text=True).stdout.split()
        check("... no rank is left running", not left, left)
        entries = os.listdir(versions_dir)
        check("... and no partial version is visible", all(v.isdigit() for v in entries), entries)
        last = max(int(v) for v in entries)
        again = mpirun(2, command)
        check(f"the same command with --resume_if_exists continues from version {last}",
              again.returncode == 0 and f"from step {last} to 4000" in again.stdout + again.stderr and
              os.path.isdir(os.path.join(versions_dir, "4000")), again.stderr[-2000:])
    finish()


if __name__ == "__main__":
    main()
