#!/usr/bin/python3
"""scripts/demo.sh as a user calls it: --help says what it does without
building or starting anything; a run from another directory with a relative
--data and an absolute BUILD_DIR trains, serves and samples, then removes its
work directory; a --data that is not a file is named.

  tests/scripts/demo_test.py BUILD_DIR
"""

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import check, finish  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(REPO, "scripts", "demo.sh")


def run(args, cwd, env=None):
    done = subprocess.run(["bash", DEMO] + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


def main():
    build = os.path.abspath(sys.argv[1])
    code, out = run(["--help"], cwd="/tmp")
    check("--help exits 0", code == 0, out)
    check("--help prints the usage", "scripts/demo.sh --data names.txt" in out, out)
    check("--help starts nothing", "listening" not in out and "trainer on" not in out, out)

    with tempfile.TemporaryDirectory(prefix="demo-test.") as caller:
        with open(os.path.join(caller, "few.txt"), "w") as f:
            f.write("emma\nolivia\nava\nisabella\nsophia\nmia\namelia\nharper\n")
        env = dict(os.environ, BUILD_DIR=build)
        code, out = run(["--data", "few.txt", "--steps", "40", "--checkpoint_every", "40"],
                        cwd=caller, env=env)
        check("a run with a relative --data and an absolute BUILD_DIR succeeds", code == 0, out)
        check("--data is the caller's file", "dataset: 8 documents" in out, out)
        check("it serves the trained version", "generator serves few version 40" in out, out)
        samples = [line for line in out.splitlines() if re.match(r"^ +\d+  ", line)]
        check("it prints 10 samples", len(samples) == 10, out)
        work = re.search(r"work dir (/tmp/microgpt-demo\.\w+)", out)
        check("it names its work directory", work is not None, out)
        check("the work directory is removed", work is not None and not os.path.exists(work[1]))

        code, out = run(["--data", "nope.txt"], cwd=caller, env=env)
        check("a --data that is not a file is named, exit 2",
              code == 2 and "is not a file" in out, out)
    finish()


if __name__ == "__main__":
    main()
