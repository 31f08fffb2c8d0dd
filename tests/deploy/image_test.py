"""The container image and the dev overlay, run for real with podman.

Builds the base images (debootstrap, when podman has none) and the image from
the working tree (deploy/docker/Dockerfile), checks the image (its runtime
packages against ldd inside it, each binary's usage, its size), then runs the
rendered dev overlay's workloads as containers on a podman network, each as
its manifest says (tests/deploy/podman_pods.py):

  - the trainer's readiness probe passes; the generator's fails while it has
    no model;
  - the CLI, in a container of the image, trains through the trainer's
    Service name with the Secret's token;
  - the generator, in follow mode, downloads the version into its cache,
    its probe passes, and the CLI streams from it through its Service name;
  - the train Job (overlays/dev/train-job) trains into the checkpoint claim
    and exits 0, and the generator follows that version too;
  - SIGTERM with the pod's grace period: both drain and exit 0;
  - no container wrote outside its volumes.

    /usr/bin/python3 tests/deploy/image_test.py [--keep]

Prints "SKIP: ..." and exits 0 where podman cannot run containers; else
"N passed, N failed" last. Needs root (podman, nsenter), kubectl, and the
buf CLI (tools/buf) for the gRPC probes.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import check, finish, skip, word_list  # noqa: E402
from podman_pods import PODMAN_RUN, Cluster, Pod, SpecError, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUF = os.path.join(ROOT, "tools", "buf", "node_modules", ".bin", "buf")
IMAGE = "microgpt:dev"  # what the dev overlay runs
NETWORK = "microgpt-dev"
CLAIM = "microgpt-checkpoints"

def apt_mirror():
    """The Debian mirror the machine's apt sources name."""
    for path in ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]:
        if os.path.exists(path):
            match = re.search(r"(?:URIs:|deb)\s+(https?://\S+/debian)\b", open(path).read())
            if match:
                return match.group(1)
    return "http://deb.debian.org/debian"


def base_images():
    """debian:bookworm and debian:bookworm-slim from Debian's own packages
    (no image registry is reachable): debootstrap minbase, podman import."""
    if run(["podman", "image", "exists", "debian:bookworm"]).returncode == 0 and \
            run(["podman", "image", "exists", "debian:bookworm-slim"]).returncode == 0:
        return True
    rootfs = tempfile.mkdtemp(prefix="microgpt-rootfs.")
    try:
        start = time.time()
        boot = run(["debootstrap", "--variant=minbase", "bookworm", rootfs, apt_mirror()])
        if not check("debootstrap --variant=minbase bookworm", boot.returncode == 0,
                     boot.stdout[-1500:] + boot.stderr[-1500:]):
            return False
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = run(["podman", "import", "-", "debian:bookworm"], stdin=tar.stdout)
        tar.wait()
        run(["podman", "tag", "debian:bookworm", "debian:bookworm-slim"])
        return check(f"base images debian:bookworm(-slim) imported ({time.time() - start:.0f} s)",
                     imported.returncode == 0, imported.stderr)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def build_image():
    """Builds the image. The build stage is tagged as well, so that its
    layers (the apt step above all) stay cached for the next run while
    `podman image prune` removes the untagged stages of earlier runs."""
    start = time.time()
    log = ""
    for target in (["--target", "build", "-t", "microgpt:build-stage"], ["-t", IMAGE]):
        build = run(["podman", "build", *PODMAN_RUN,
                     "--ignorefile", "deploy/docker/Dockerfile.dockerignore",
                     "-f", "deploy/docker/Dockerfile", *target, "."], cwd=ROOT)
        log += build.stdout + build.stderr
        if build.returncode != 0:
            break
    run(["podman", "image", "prune", "--force"])
    print("  build log, last lines:\n    " + "\n    ".join(log.strip().splitlines()[-4:]))
    return check(f"podman build -f deploy/docker/Dockerfile -t {IMAGE} ({time.time() - start:.0f} s)",
                 build.returncode == 0, log[-3000:])


def image_checks():
    size = int(run(["podman", "image", "inspect", "--format", "{{.Size}}", IMAGE]).stdout or 0)
    print(f"  image size: {size / 1e6:.0f} MB")
    # The runtime stage's package list, against what the binaries really
    # load inside the image.
    dockerfile = open(os.path.join(ROOT, "deploy/docker/Dockerfile")).read()
    runtime = dockerfile[dockerfile.index("AS runtime"):]
    listed = set(re.findall(r"^\s+(lib[\w.+-]+|zlib1g)\s*\\$", runtime, re.M))
    # dpkg knows a library by the path its package installed it at, which
    # usrmerge may have moved: try the path ldd prints, its real path, and
    # both without /usr.
    script = r"""
for b in /usr/local/bin/microgpt /usr/local/bin/microgpt-trainer /usr/local/bin/microgpt-generator
do ldd "$b"; done | awk '/=> \// {print $3} /^[[:space:]]*\// {print $1}' | sort -u |
while read -r lib; do
  real=$(readlink -f "$lib")
  for p in "$lib" "$real" "${lib#/usr}" "${real#/usr}"; do
    dpkg -S "$p" 2>/dev/null && break
  done || echo "no-package-owns:$lib"
done | cut -d: -f1 | sort -u
"""
    out = run(["podman", "run", "--rm", *PODMAN_RUN, "--network", "none", "--user", "0",
               "--entrypoint", "/bin/sh", IMAGE, "-c", script])
    loaded = set(out.stdout.split())
    check("image: every package whose libraries the binaries load is in the runtime stage",
          out.returncode == 0 and loaded and loaded <= listed,
          f"loaded, not listed: {sorted(loaded - listed)}\n{out.stderr}")
    check("image: the runtime stage installs no package the binaries do not load",
          listed <= loaded, f"listed, not loaded: {sorted(listed - loaded)}")
    for binary, expected in [("microgpt", "microgpt train"),
                             ("microgpt-trainer", "microgpt-trainer serve"),
                             ("microgpt-generator", "microgpt-generator")]:
        usage = run(["podman", "run", "--rm", *PODMAN_RUN, "--network", "none",
                     "--entrypoint", f"/usr/local/bin/{binary}", IMAGE, "--help"])
        text = usage.stdout + usage.stderr
        check(f"image: {binary} --help prints its usage", expected in text, text[-800:])
    return size


def render(overlay):
    out = run(["kubectl", "kustomize", os.path.join(ROOT, overlay)])
    if out.returncode != 0:
        raise SpecError(f"kubectl kustomize {overlay}: {out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def main():
    keep = "--keep" in sys.argv
    if os.geteuid() != 0:
        skip("podman, nsenter and debootstrap need root here")
    for tool in ["podman", "runc", "debootstrap", "nsenter", "kubectl"]:
        if shutil.which(tool) is None:
            skip(f"{tool} not found (apt-get install podman runc debootstrap iptables)")
    if not os.access(BUF, os.X_OK):
        check(f"buf installed ({BUF}; bash scripts/setup.sh --with-buf)", False)
        finish()
    started = time.time()
    if not base_images():
        finish()
    smoke = run(["podman", "run", "--rm", *PODMAN_RUN, "--network", "none",
                 "debian:bookworm", "true"])
    if smoke.returncode != 0:
        skip(f"podman cannot run a container here: {smoke.stderr.strip()}")
    if not build_image():
        finish()
    size = image_checks()

    work = tempfile.mkdtemp(prefix="microgpt-image-test.")
    pods = []
    try:
        run_overlay(work, pods)
    except SpecError as error:
        check(f"the manifests run as written: {error}", False)
    finally:
        for pod in pods:
            if not keep:
                pod.remove()
        if not keep:
            run(["podman", "network", "rm", "--force", NETWORK])
            run(["podman", "volume", "rm", "--force", CLAIM])
            shutil.rmtree(work, ignore_errors=True)
    print(f"image test: {time.time() - started:.0f} s, image {size / 1e6:.0f} MB")
    finish()


def run_overlay(work, pods):
    documents = render("deploy/k8s/overlays/dev")
    cluster = Cluster(documents, NETWORK, work)
    run(["podman", "network", "rm", "--force", NETWORK])
    run(["podman", "volume", "rm", "--force", CLAIM])
    # --internal: the pods reach each other, nothing outside the machine.
    created = run(["podman", "network", "create", "--internal", NETWORK])
    check(f"podman network {NETWORK}", created.returncode == 0, created.stderr)

    trainer = Pod(cluster, cluster.get("Deployment", "microgpt-trainer"))
    generator = Pod(cluster, cluster.get("Deployment", "microgpt-generator"))
    pods += [trainer, generator]
    trainer.start()
    generator.start()
    check("trainer: readiness probe (grpc) SERVING",
          trainer.wait_probe("SERVING", 60, buf=BUF) == "SERVING", trainer.logs())
    check("generator: startup probe (tcpSocket) open",
          generator.wait_probe("OPEN", 60, kind="startupProbe") == "OPEN", generator.logs())
    status = generator.probe(buf=BUF)
    check(f"generator: readiness probe fails while no model is served ({status})",
          status == "NOT_SERVING", generator.logs())

    # The CLI trains through the trainer's Service name with the Secret's token.
    data_dir = os.path.join(work, "cli-data")
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "words.txt"), "w") as f:
        f.write(word_list())
    os.chmod(data_dir, 0o755)
    train = cli(cluster, trainer, "microgpt-cli-train", data_dir, [
        "train", "--trainer", "microgpt-trainer:50052",
        "--auth_token_file", "/etc/microgpt/auth/token", "--model", "words",
        "--data_file", "/data/words.txt", "--steps", "300", "--checkpoint_every", "100"])
    pods.append(train)
    code = train.wait_exit(120)
    logs = train.logs()
    check("CLI container: microgpt train --trainer microgpt-trainer:50052 (Service name, "
          "Secret token) exits 0", code == 0, logs)
    print("  " + "\n  ".join(logs.strip().splitlines()[-2:]))

    check("generator: readiness probe SERVING once the version is followed",
          generator.wait_probe("SERVING", 60, buf=BUF) == "SERVING", generator.logs())
    cache = os.path.join(generator.dir, "volumes", "cache", "words", "300", "manifest.json")
    check("generator: version 300 downloaded into its cache (emptyDir)", os.path.exists(cache),
          generator.logs())
    generate = cli(cluster, trainer, "microgpt-cli-generate", None, [
        "generate", "--generator", "microgpt-generator.microgpt-dev.svc.cluster.local:50051",
        "--model", "words", "--num_samples", "3", "--seed", "1"])
    pods.append(generate)
    code = generate.wait_exit(60)
    samples = generate.logs()
    check("CLI container: generate through the generator's Service name: 3 samples",
          code == 0 and len([s for s in samples.splitlines() if s.strip()]) >= 3, samples)
    print("  " + "\n  ".join(samples.strip().splitlines()))

    # The train Job of overlays/dev/train-job, into the same claim.
    job_documents = render("deploy/k8s/overlays/dev/train-job")
    for document in job_documents:
        cluster.add(document)
    cluster.add({"kind": "ConfigMap", "metadata": {"name": "microgpt-datasets"},
                 "data": {"names.txt": open(os.path.join(data_dir, "words.txt")).read()}})
    job = Pod(cluster, cluster.get("Job", "microgpt-train"))
    pods.append(job)
    job.start()
    code = job.wait_exit(300)
    check("train Job: microgpt-trainer train into the checkpoint claim exits 0", code == 0,
          job.logs())
    followed = False
    for _ in range(100):
        if os.path.exists(os.path.join(generator.dir, "volumes", "cache", "names", "1000",
                                       "manifest.json")):
            followed = True
            break
        time.sleep(0.2)
    check("generator: follows the Job's version names/1000 (written by another pod)", followed,
          generator.logs())

    for pod in [trainer, generator, train, generate, job]:
        changed = [line for line in pod.diff() if line.strip()]
        check(f"{pod.name}: nothing written outside its volumes (podman diff)", not changed,
              "\n".join(changed))

    for pod in [generator, trainer]:
        code, seconds = pod.stop()
        logs = pod.logs()
        grace = pod.spec.get("terminationGracePeriodSeconds", 30)
        check(f"{pod.name}: SIGTERM (grace {grace} s) drains and exits 0 after {seconds:.1f} s",
              code == 0 and seconds < grace and "server stopped" in logs, logs[-1500:])


def cli(cluster, trainer, name, data_dir, args):
    """A one-off container of the image running the CLI on the pods'
    network, with the trainer pod's security context and token Secret."""
    auth = next(v for v in trainer.spec["volumes"] if v["name"] == "auth")
    mounts = [{"name": "auth", "readOnly": True, "mountPath": "/etc/microgpt/auth"}]
    volumes = [auth]
    pod = Pod(cluster, {
        "kind": "Job", "metadata": {"name": name, "namespace": trainer.namespace},
        "spec": {"template": {
            "metadata": {"labels": {"app.kubernetes.io/name": name}},
            "spec": {"securityContext": trainer.spec["securityContext"], "restartPolicy": "Never",
                     "volumes": volumes,
                     "containers": [{"name": "cli", "image": IMAGE,
                                     "command": ["/usr/local/bin/microgpt"], "args": args,
                                     "securityContext": trainer.container["securityContext"],
                                     "volumeMounts": mounts}]}}}})
    return pod.start(extra_flags=["--volume", f"{data_dir}:/data:ro"] if data_dir else [])


if __name__ == "__main__":
    main()
