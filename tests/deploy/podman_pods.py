"""Runs the containers of rendered Kubernetes workloads with podman, each as
its manifest says (used by tests/deploy/image_test.py).

A workload (Deployment, Job) becomes one podman container per container of
its pod template:
  - image, command (--entrypoint) and args as written;
  - env: value, configMapKeyRef, secretKeyRef, and envFrom;
  - volumes: configMap and secret volumes become host directories holding
    their keys (a secret's files root:fsGroup with its defaultMode, the way
    the kubelet writes them) mounted read-only; emptyDir a host directory
    owned by the pod's user; persistentVolumeClaim the podman named volume of
    the claim's name (created once, shared by every pod that mounts it,
    chowned to the pod's user like fsGroup does); readOnly mounts ro;
  - securityContext: runAsUser/runAsGroup (--user), fsGroup (--group-add),
    runAsNonRoot (refused when the user is 0), readOnlyRootFilesystem
    (--read-only without podman's extra tmpfs mounts), capabilities.drop ALL
    (--cap-drop), allowPrivilegeEscalation false (no-new-privileges),
    seccomp RuntimeDefault (podman's default profile), privileged false;
  - resources.limits: memory and cpu;
  - the pod is on one podman network; every Service whose selector matches
    the pod's labels names it there (name, name.ns, name.ns.svc,
    name.ns.svc.cluster.local), as cluster DNS would;
  - readiness probes (grpc, tcpSocket) run in the pod's network namespace
    (nsenter), as the kubelet's reach the pod's own address;
  - terminationGracePeriodSeconds and a preStop sleep on stop.
Anything else in a pod spec that changes how the container runs is refused
(SpecError), so that a manifest cannot silently mean more than this runs.
"""

import base64
import json
import os
import shutil
import subprocess
import time

PODMAN_RUN = ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

# Pod and container fields run here, or that only place a pod (affinity and
# topology spread: every pod here is on this one machine, as the train Job's
# required affinity to the trainer's node asks); any other field is an error.
POD_FIELDS = {"containers", "volumes", "securityContext", "serviceAccountName",
              "automountServiceAccountToken", "enableServiceLinks", "terminationGracePeriodSeconds",
              "topologySpreadConstraints", "affinity", "restartPolicy"}
CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "command", "args", "env", "envFrom",
                    "ports", "resources", "securityContext", "volumeMounts", "readinessProbe",
                    "livenessProbe", "startupProbe", "lifecycle"}


class SpecError(Exception):
    pass


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


class Cluster:
    """The rendered objects of one or more overlays, by kind and name."""

    def __init__(self, documents, network, work_dir):
        self.objects = {}
        for doc in documents:
            self.objects.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
        self.network = network
        self.work_dir = work_dir

    def get(self, kind, name, optional=False):
        found = self.objects.get(kind, {}).get(name)
        if found is None and not optional:
            raise SpecError(f"{kind} {name} is not in the rendered manifests")
        return found

    def add(self, document):
        self.objects.setdefault(document["kind"], {})[document["metadata"]["name"]] = document

    def config_map(self, name, optional=False):
        found = self.get("ConfigMap", name, optional)
        return None if found is None else dict(found.get("data") or {})

    def secret(self, name, optional=False):
        found = self.get("Secret", name, optional)
        if found is None:
            return None
        data = {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}
        data.update(found.get("stringData") or {})
        return data

    def services_of(self, labels, namespace):
        """DNS names of the Services that select a pod with these labels, and
        their ports (port -> targetPort, which must be the same here)."""
        names = []
        for name, service in self.objects.get("Service", {}).items():
            selector = service["spec"].get("selector") or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                if isinstance(target, int) and target != port["port"]:
                    raise SpecError(f"Service {name}: port {port['port']} -> {target} "
                                    "needs port mapping, which a podman network alias lacks")
            names += [name, f"{name}.{namespace}", f"{name}.{namespace}.svc",
                      f"{name}.{namespace}.svc.cluster.local"]
        return names


class Pod:
    """One container of a workload, run with podman."""

    def __init__(self, cluster, workload, container_name=None, name=None):
        self.cluster = cluster
        self.workload = workload
        template = workload["spec"]["template"]
        self.spec = template["spec"]
        self.labels = template["metadata"].get("labels", {})
        self.namespace = workload["metadata"].get("namespace", "default")
        unknown = set(self.spec) - POD_FIELDS
        if unknown:
            raise SpecError(f"{workload['metadata']['name']}: pod fields not run here: {unknown}")
        containers = self.spec["containers"]
        self.container = (containers[0] if container_name is None else
                          next(c for c in containers if c["name"] == container_name))
        unknown = set(self.container) - CONTAINER_FIELDS
        if unknown:
            raise SpecError(f"{self.container['name']}: container fields not run here: {unknown}")
        self.name = name or workload["metadata"]["name"]
        self.dir = os.path.join(cluster.work_dir, self.name)

    # ---------------------------------------------------------------- flags

    def _security(self):
        pod = self.spec.get("securityContext", {})
        ctx = dict(pod)
        ctx.update(self.container.get("securityContext", {}))
        user, group = ctx.get("runAsUser"), ctx.get("runAsGroup")
        if ctx.get("runAsNonRoot") and (user is None or user == 0):
            raise SpecError(f"{self.name}: runAsNonRoot needs a numeric non-zero runAsUser")
        if ctx.get("privileged"):
            raise SpecError(f"{self.name}: privileged containers are not run")
        flags = []
        if user is not None:
            flags += ["--user", f"{user}:{group if group is not None else user}"]
        if pod.get("fsGroup") is not None:
            flags += ["--group-add", str(pod["fsGroup"])]
        if ctx.get("readOnlyRootFilesystem"):
            # podman adds tmpfs on /tmp, /run and /var/tmp to --read-only
            # containers unless told not to; Kubernetes adds none.
            flags += ["--read-only", "--read-only-tmpfs=false"]
        drop = ctx.get("capabilities", {}).get("drop", [])
        add = ctx.get("capabilities", {}).get("add", [])
        flags += [f"--cap-drop={c}" for c in drop] + [f"--cap-add={c}" for c in add]
        if ctx.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        seccomp = ctx.get("seccompProfile", {}).get("type", "RuntimeDefault")
        if seccomp != "RuntimeDefault":
            raise SpecError(f"{self.name}: seccomp profile {seccomp} not run here")
        self.user = (user or 0, group or 0, pod.get("fsGroup"))
        return flags

    def _env(self):
        flags = []
        for source in self.container.get("envFrom", []):
            if "configMapRef" in source:
                ref = source["configMapRef"]
                data = self.cluster.config_map(ref["name"], ref.get("optional", False)) or {}
            else:
                ref = source["secretRef"]
                data = self.cluster.secret(ref["name"], ref.get("optional", False)) or {}
            for key, value in data.items():
                flags += ["--env", f"{source.get('prefix', '')}{key}={value}"]
        for var in self.container.get("env", []):
            if "value" in var:
                value = var["value"]
            else:
                ref = var["valueFrom"]
                if "configMapKeyRef" in ref:
                    key_ref = ref["configMapKeyRef"]
                    data = self.cluster.config_map(key_ref["name"], key_ref.get("optional", False))
                elif "secretKeyRef" in ref:
                    key_ref = ref["secretKeyRef"]
                    data = self.cluster.secret(key_ref["name"], key_ref.get("optional", False))
                else:
                    raise SpecError(f"{self.name}: env {var['name']}: {list(ref)} not run here")
                if data is None or key_ref["key"] not in data:
                    if key_ref.get("optional"):
                        continue
                    raise SpecError(f"{self.name}: env {var['name']}: key {key_ref['key']} missing")
                value = data[key_ref["key"]]
            flags += ["--env", f"{var['name']}={value}"]
        return flags

    def _write_files(self, directory, files, mode, gid):
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o755)
        for key, value in files.items():
            path = os.path.join(directory, key)
            with open(path, "w") as f:
                f.write(value)
            os.chown(path, 0, gid or 0)
            os.chmod(path, mode)

    def _volumes(self):
        uid, gid, fs_group = self.user
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        flags = []
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            read_only = mount.get("readOnly", False)
            if "subPath" in mount:
                raise SpecError(f"{self.name}: subPath mounts not run here")
            host = os.path.join(self.dir, "volumes", mount["name"])
            if "configMap" in volume or "secret" in volume:
                kind = "configMap" if "configMap" in volume else "secret"
                ref = volume[kind]
                name = ref["name"] if kind == "configMap" else ref["secretName"]
                optional = ref.get("optional", False)
                data = (self.cluster.config_map(name, optional) if kind == "configMap"
                        else self.cluster.secret(name, optional)) or {}
                if ref.get("items"):
                    data = {item["path"]: data[item["key"]] for item in ref["items"]}
                self._write_files(host, data, ref.get("defaultMode", 0o644), fs_group)
                # The kubelet always mounts these read-only.
                flags += ["--volume", f"{host}:{mount['mountPath']}:ro"]
            elif "emptyDir" in volume:
                os.makedirs(host, exist_ok=True)
                os.chown(host, uid, fs_group if fs_group is not None else gid)
                os.chmod(host, 0o2775 if fs_group is not None else 0o755)
                flags += ["--volume", f"{host}:{mount['mountPath']}{':ro' if read_only else ''}"]
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                self.cluster.get("PersistentVolumeClaim", claim, optional=True)
                if run(["podman", "volume", "exists", claim]).returncode != 0:
                    run(["podman", "volume", "create", claim]).check_returncode()
                # U: the volume is chowned to the container's user and group,
                # as fsGroup makes it group-owned by the pod.
                options = "U" + (",ro" if read_only or volume["persistentVolumeClaim"].get(
                    "readOnly") else "")
                flags += ["--volume", f"{claim}:{mount['mountPath']}:{options}"]
            else:
                raise SpecError(f"{self.name}: volume {mount['name']}: {list(volume)} not run here")
        return flags

    def _resources(self):
        limits = self.container.get("resources", {}).get("limits", {})
        flags = []
        if "memory" in limits:
            flags += ["--memory", kubernetes_bytes(limits["memory"])]
        if "cpu" in limits:
            flags += ["--cpus", str(kubernetes_cpus(limits["cpu"]))]
        return flags

    def podman_argv(self, extra_flags=()):
        """The `podman run` command line of this container (detached), with
        `extra_flags` for podman."""
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        os.makedirs(self.dir)
        argv = ["podman", "run", "--detach", "--name", self.name, *PODMAN_RUN,
                "--network", self.cluster.network, "--hostname", self.name]
        argv += self._security()
        for alias in self.cluster.services_of(self.labels, self.namespace):
            argv += ["--network-alias", alias]
        argv += self._env() + self._volumes() + self._resources() + list(extra_flags)
        command = self.container.get("command")
        if command:
            argv += ["--entrypoint", json.dumps(command)]
        argv += [self.container["image"]] + list(self.container.get("args", []))
        return argv

    # ------------------------------------------------------------- life cycle

    def start(self, extra_flags=()):
        run(["podman", "rm", "--force", "--ignore", self.name])
        self.argv = self.podman_argv(extra_flags)
        started = run(self.argv)
        if started.returncode != 0:
            raise SpecError(f"{self.name}: podman run failed: {started.stderr.strip()}")
        return self

    def pid(self):
        return run(["podman", "inspect", "--format", "{{.State.Pid}}", self.name]).stdout.strip()

    def state(self):
        out = run(["podman", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                   self.name]).stdout.split()
        return out[0], int(out[1])

    def wait_exit(self, timeout):
        waited = run(["podman", "wait", self.name], timeout=timeout)
        return int(waited.stdout.strip().splitlines()[-1])

    def logs(self):
        out = run(["podman", "logs", self.name])
        return out.stdout + out.stderr

    def probe(self, kind="readinessProbe", buf=None):
        """One run of a probe: SERVING/NOT_SERVING/... for grpc, OPEN or
        UNREACHABLE for tcpSocket."""
        spec = self.container[kind]
        timeout = spec.get("timeoutSeconds", 1)
        pid = self.pid()
        if not pid or pid == "0":
            return "NOT_RUNNING"
        if "grpc" in spec:
            request = json.dumps({"service": spec["grpc"].get("service", "")})
            out = run(["nsenter", "-t", pid, "-n", buf, "curl", "--protocol", "grpc",
                       "--http2-prior-knowledge", "--connect-timeout", str(timeout),
                       "--timeout", f"{timeout}s", "-d", request,
                       f"http://127.0.0.1:{self.port(spec['grpc']['port'])}"
                       "/grpc.health.v1.Health/Check"])
            if out.returncode != 0:
                return "UNREACHABLE"
            return json.loads(out.stdout).get("status", "UNKNOWN")
        if "tcpSocket" in spec:
            port = self.port(spec["tcpSocket"]["port"])
            out = run(["nsenter", "-t", pid, "-n", "bash", "-c",
                       f"exec 3<>/dev/tcp/127.0.0.1/{port}"], timeout=timeout + 1)
            return "OPEN" if out.returncode == 0 else "UNREACHABLE"
        raise SpecError(f"{self.name}: {kind}: only grpc and tcpSocket probes are run here")

    def wait_probe(self, want, timeout, kind="readinessProbe", buf=None):
        deadline = time.time() + timeout
        status = None
        while time.time() < deadline:
            status = self.probe(kind, buf)
            if status == want:
                return status
            time.sleep(self.container[kind].get("periodSeconds", 1) / 5)
        return status

    def port(self, port):
        if isinstance(port, int):
            return port
        for p in self.container.get("ports", []):
            if p.get("name") == port:
                return p["containerPort"]
        raise SpecError(f"{self.name}: no port named {port}")

    def stop(self):
        """As the kubelet ends a pod: the preStop hook, then SIGTERM, then
        SIGKILL when terminationGracePeriodSeconds (preStop included) ran
        out. Returns the container's exit code and the seconds it took."""
        grace = self.spec.get("terminationGracePeriodSeconds", 30)
        pre_stop = self.container.get("lifecycle", {}).get("preStop", {})
        if pre_stop and set(pre_stop) != {"sleep"}:
            raise SpecError(f"{self.name}: preStop {list(pre_stop)} not run here")
        start = time.time()
        sleep = pre_stop.get("sleep", {}).get("seconds", 0) if pre_stop else 0
        time.sleep(sleep)
        run(["podman", "stop", "--time", str(max(grace - sleep, 0)), self.name])
        return self.state()[1], time.time() - start

    def diff(self):
        """What the container changed in its root file system, less what the
        runtime itself creates there: the mount points of its volumes and the
        image's working directory, with their parent directories."""
        workdir = run(["podman", "inspect", "--format", "{{.Config.WorkingDir}}",
                       self.name]).stdout.strip()
        made_by_runtime = set()
        targets = [m["mountPath"] for m in self.container.get("volumeMounts", [])]
        argv = self.argv
        targets += [argv[i + 1].split(":")[1] for i, a in enumerate(argv[:-1]) if a == "--volume"]
        for path in targets + [workdir]:
            while path not in ("", "/"):
                made_by_runtime.add(path)
                path = os.path.dirname(path)
        changes = []
        for line in run(["podman", "diff", self.name]).stdout.splitlines():
            kind, _, path = line.partition(" ")
            if kind in ("A", "C") and path in made_by_runtime:
                continue
            changes.append(line)
        return changes

    def remove(self):
        run(["podman", "rm", "--force", "--ignore", self.name])


def kubernetes_bytes(quantity):
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 1000, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return str(int(float(quantity[:-len(suffix)]) * factor))
    return str(int(quantity))


def kubernetes_cpus(quantity):
    quantity = str(quantity)
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
