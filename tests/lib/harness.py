"""What the Python test scripts (tests/api, tests/deploy) share: their PASS
and FAIL lines, their last line ("N passed, N failed", which ctest's log and
CI read), and a dataset that needs no ../shared."""

import sys

_counts = {"passed": 0, "failed": 0}


def check(description, ok, detail=""):
    """Prints PASS or FAIL and, on failure, the detail (its last 3,000
    characters, indented). Returns ok."""
    _counts["passed" if ok else "failed"] += 1
    print(f"{'PASS' if ok else 'FAIL'} {description}", flush=True)
    if not ok and detail:
        print("  " + str(detail).strip()[-3000:].replace("\n", "\n  "), flush=True)
    return ok


def finish():
    """Prints the counts and exits, 1 when any check failed."""
    print(f"{_counts['passed']} passed, {_counts['failed']} failed", flush=True)
    sys.exit(1 if _counts["failed"] else 0)


def skip(reason):
    """The test cannot run on this machine: ctest counts "SKIP: ..." as skipped."""
    print(f"SKIP: {reason}", flush=True)
    sys.exit(0)


def word_list(count=300):
    """`count` made-up names of 3 to 7 letters, one per line: a documents
    dataset the same on every machine."""
    letters = "aeilmnorsy"
    return "".join("".join(letters[(i * 7 + j * j * 3 + i // 5) % 10] for j in range(3 + i % 5))
                   + "\n" for i in range(count))
