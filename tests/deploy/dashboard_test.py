#!/usr/bin/python3
"""The Grafana dashboard (deploy/k8s/components/monitoring) against the real
servers: every series its queries name is exported by a running trainer or
generator, after a training job and a Generate call (the job's series exist
only then). A query of a series that does not exist would show an empty
panel.

  tests/deploy/dashboard_test.py BUILD_DIR
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import check, finish, word_list  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DASHBOARD = os.path.join(REPO, "deploy", "k8s", "components", "monitoring",
                         "microgpt-dashboard.json")
SERIES = re.compile(r"\b((?:microgpt|process)_[a-z_]+)\b")


def free_ports(n):
    """n distinct free ports (the sockets stay bound until all are picked, so
    that the kernel does not hand out one twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for_line(path, pattern, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path) as f:
            match = re.search(pattern, f.read())
        if match:
            return match
        time.sleep(0.1)
    return None


def exported(port):
    """The series a /metrics page has, name -> the label names its samples
    carry (a histogram's _bucket, _sum and _count are names of their own)."""
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    series = {}
    for line in page.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{")[0].split(" ")[0]
        labels = re.findall(r'([a-z_]+)="', line.split("}")[0]) if "{" in line else []
        series.setdefault(name, set()).update(labels)
    return series


# Labels that Prometheus adds to every scraped sample (from the target, the
# PodMonitor's discovery): a query may use them without the servers' export.
TARGET_LABELS = {"pod", "namespace", "instance", "job", "container", "endpoint"}


def query_labels(query):
    """The labels a query groups by or matches on."""
    labels = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", query):
        labels.update(label.strip() for label in group.split(",") if label.strip())
    labels.update(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"", query))
    return labels - TARGET_LABELS


def main():
    build = os.path.abspath(sys.argv[1])
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    check("the dashboard has queries", len(queries) >= 10, queries)
    wanted = sorted({name for q in queries for name in SERIES.findall(q)})

    with tempfile.TemporaryDirectory(prefix="dashboard-test.") as work:
        with open(os.path.join(work, "names.txt"), "w") as f:
            f.write(word_list())
        # The generator refuses a root that does not exist (yet).
        os.makedirs(os.path.join(work, "ckpt"))
        trainer_metrics, generator_metrics = free_ports(2)
        logs = {name: open(os.path.join(work, f"{name}.log"), "w")
                for name in ("trainer", "generator")}
        servers = [
            subprocess.Popen([f"{build}/trainer/microgpt-trainer", "serve", "--insecure_no_auth",
                              "--host", "127.0.0.1", "--port", "0", "--checkpoint_root",
                              f"{work}/ckpt", "--metrics_port", str(trainer_metrics)],
                             stdout=logs["trainer"], stderr=subprocess.STDOUT),
            subprocess.Popen([f"{build}/generator/microgpt-generator", "--host", "127.0.0.1",
                              "--port", "0", "--checkpoint_root", f"{work}/ckpt",
                              "--metrics_port", str(generator_metrics)],
                             stdout=logs["generator"], stderr=subprocess.STDOUT),
        ]
        try:
            ports = [wait_for_line(os.path.join(work, f"{n}.log"), r"listening on [\d.]+:(\d+)")
                     for n in ("trainer", "generator")]
            if not all(ports):
                check("the servers start", False,
                      "".join(f"{n} (exit {server.poll()}):\n"
                              + open(os.path.join(work, f"{n}.log")).read()
                              for n, server in zip(("trainer", "generator"), servers)))
                finish()
            trainer, generator = (f"127.0.0.1:{m[1]}" for m in ports)
            cli = f"{build}/cli/microgpt"
            train = subprocess.run([cli, "train", "--trainer", trainer, "--model", "names",
                                    "--data_file", f"{work}/names.txt", "--steps", "30",
                                    "--val_fraction", "0.1"],
                                   capture_output=True, text=True, timeout=120)
            check("a training job ran", train.returncode == 0, train.stdout + train.stderr)
            generate = None
            for _ in range(100):
                generate = subprocess.run([cli, "generate", "--generator", generator,
                                           "--model", "names", "--seed", "1"],
                                          capture_output=True, text=True, timeout=30)
                if generate.returncode == 0:
                    break
                time.sleep(0.1)
            check("a Generate call ran", generate.returncode == 0, generate.stderr)
            series = exported(trainer_metrics) | exported(generator_metrics)
            for name in wanted:
                check(f"the dashboard's {name} is exported", name in series,
                      sorted(s for s in series if s.startswith(name.rsplit("_", 1)[0])))
            # A grouping by a label the series lack shows one unlabelled line.
            for query in queries:
                names = [n for n in SERIES.findall(query) if n in series]
                for label in sorted(query_labels(query)):
                    check(f"the label {label} of {query!r} is exported",
                          any(label in series[n] for n in names),
                          {n: sorted(series[n]) for n in names})
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
    finish()


if __name__ == "__main__":
    main()
