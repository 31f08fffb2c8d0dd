#!/usr/bin/env python3
"""Checks of rendered microgpt manifests that a schema cannot make.

  check_manifests.py check FILE.yaml [--overlay NAME] [--binaries BUILD_DIR]
  check_manifests.py dockerfile Dockerfile RENDERED.yaml...
  check_manifests.py mutate MUTATION FILE.yaml      (writes a broken copy to stdout)
  check_manifests.py mutations                      (lists the mutations)

`check` prints one line per check, "PASS <what>", "FAIL <what>: <why>" or
"SKIP <what>: <why>", and exits 1 when any check failed. The strict schema
(k8s_validate.py) covers fields and types; this covers what ties objects
together: selectors and labels, ports, probes, resources, security context,
references to ConfigMaps/Secrets/claims, and the flags the containers get
(args plus the --flagfile files of their ConfigMaps), optionally against the
flags the built binaries define (--binaries).

Needs python3-yaml (run with /usr/bin/python3 on Debian).
"""
import copy
import os
import re
import subprocess
import sys

import yaml

# Objects a render may refer to without containing them: they are created by
# the operator (the prod auth Secret, the datasets ConfigMap) or by the main
# overlay (the checkpoint claim, for the train-job renders).
EXTERNAL = {
    ("Secret", "microgpt-auth"),
    ("ConfigMap", "microgpt-datasets"),
    ("PersistentVolumeClaim", "microgpt-checkpoints"),
}

# Flags the manifests already pass that the binaries get in later work.
PENDING_FLAGS = {
    "trainer": "issue 7: generator follows the trainer over gRPC",
    "cache_dir": "issue 7: generator follows the trainer over gRPC",
    "max_connection_age": "issue 7: server-side max connection age",
    "metrics_port": "later issue: Prometheus /metrics",
}

# Binaries of the image and where a CMake build puts them.
BINARIES = {
    "/usr/local/bin/microgpt-trainer": "trainer/microgpt-trainer",
    "/usr/local/bin/microgpt-generator": "generator/microgpt-generator",
    "/usr/local/bin/microgpt": "cli/microgpt",
}

REQUIRED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                   "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by")
POD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance",
              "app.kubernetes.io/component")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding",
                  "PersistentVolume", "StorageClass", "PriorityClass",
                  "IngressClass", "CSIDriver", "Node"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job",
             "CronJob"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


# Enumerations of the fields these manifests use (the strict schema checks
# types, not enum values): (kinds or None, path suffix) -> allowed values.
ENUMS = [
    (None, ("strategy", "type"), {"RollingUpdate", "Recreate"}),
    (None, ("topologySpreadConstraints", "whenUnsatisfiable"), {"DoNotSchedule", "ScheduleAnyway"}),
    (None, ("topologySpreadConstraints", "nodeAffinityPolicy"), {"Honor", "Ignore"}),
    (None, ("topologySpreadConstraints", "nodeTaintsPolicy"), {"Honor", "Ignore"}),
    (None, ("protocol",), {"TCP", "UDP", "SCTP"}),
    (None, ("imagePullPolicy",), {"Always", "IfNotPresent", "Never"}),
    (None, ("restartPolicy",), {"Always", "OnFailure", "Never"}),
    (None, ("fsGroupChangePolicy",), {"OnRootMismatch", "Always"}),
    (None, ("seccompProfile", "type"), {"RuntimeDefault", "Localhost", "Unconfined"}),
    (None, ("capabilities", "drop"), None),  # free-form, listed so that it is not flagged
    (None, ("terminationMessagePolicy",), {"File", "FallbackToLogsOnError"}),
    (None, ("dnsPolicy",), {"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"}),
    (None, ("matchExpressions", "operator"), {"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"}),
    (None, ("accessModes",), {"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"}),
    (None, ("volumeMode",), {"Filesystem", "Block"}),
    (None, ("policyTypes",), {"Ingress", "Egress"}),
    (("PodDisruptionBudget",), ("spec", "unhealthyPodEvictionPolicy"), {"IfHealthyBudget", "AlwaysAllow"}),
    (("Service",), ("spec", "type"), {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}),
    (("Service",), ("spec", "sessionAffinity"), {"None", "ClientIP"}),
    (("Service",), ("spec", "externalTrafficPolicy"), {"Cluster", "Local"}),
    (("Service",), ("spec", "internalTrafficPolicy"), {"Cluster", "Local"}),
    (("HorizontalPodAutoscaler",), ("metrics", "type"), {"Resource", "Pods", "Object", "External", "ContainerResource"}),
    (("HorizontalPodAutoscaler",), ("target", "type"), {"Utilization", "Value", "AverageValue"}),
    (("HorizontalPodAutoscaler",), ("policies", "type"), {"Pods", "Percent"}),
    (("HorizontalPodAutoscaler",), ("selectPolicy",), {"Max", "Min", "Disabled"}),
    (("Job",), ("spec", "completionMode"), {"NonIndexed", "Indexed"}),
    (("Job",), ("spec", "podReplacementPolicy"), {"TerminatingOrFailed", "Failed"}),
]


def enum_problems(obj):
    problems = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + (k,))
        elif isinstance(node, list):
            for v in node:
                walk(v, path)
        else:
            for kinds, suffix, allowed in ENUMS:
                if allowed is None or (kinds and obj.get("kind") not in kinds):
                    continue
                if path[-len(suffix):] == suffix and node not in allowed:
                    problems.append(f"{'.'.join(path)}: {node!r} is not one of {sorted(allowed)}")
    walk(obj.get("spec") or {}, ("spec",))
    return problems


class Results:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def check(self, what, problems):
        """problems: list of strings; empty means the check passed."""
        if problems:
            self.failed += 1
            print(f"FAIL {what}: " + "; ".join(problems))
        else:
            self.passed += 1
            print(f"PASS {what}")

    def skip(self, what, why):
        self.skipped += 1
        print(f"SKIP {what}: {why}")


# ------------------------------------------------------------ helpers ---

def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def ident(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def meta(obj):
    return obj.get("metadata") or {}


def pod_template(obj):
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    if kind in WORKLOADS:
        return spec.get("template") or {}
    if kind == "Pod":
        return obj
    return None


def all_containers(pod_spec):
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in pod_spec.get(key) or []:
            yield key, c


def selector_matches(selector, labels):
    """A LabelSelector (matchLabels/matchExpressions) or a plain map."""
    if selector is None:
        return False
    labels = labels or {}
    if "matchLabels" in selector or "matchExpressions" in selector:
        match_labels = selector.get("matchLabels") or {}
        expressions = selector.get("matchExpressions") or []
    else:
        match_labels, expressions = selector, []
    for k, v in match_labels.items():
        if labels.get(k) != v:
            return False
    for e in expressions:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selector_is_empty(selector):
    return not (selector or {}).get("matchLabels") and not (selector or {}).get("matchExpressions")


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
          "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9,
          "T": 1e12, "P": 1e15, "E": 1e18}


def quantity(q):
    m = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?", str(q))
    if not m:
        raise ValueError(f"bad quantity {q!r}")
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


def duration_seconds(text):
    """An abseil duration: 10s, 1m30s, 500ms, 1h."""
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"([0-9.]+)(ns|us|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"bad duration {text!r}")
    return sum(float(a) * units[b] for a, b in parts)


def container_port(container, port):
    """The containerPort a probe/Service port (name or number) refers to."""
    for p in container.get("ports") or []:
        if isinstance(port, str) and not port.isdigit():
            if p.get("name") == port:
                return p
        elif int(port) == p.get("containerPort"):
            return p
    return None


def pod_port(pod_spec, port, protocol="TCP"):
    for _, c in all_containers(pod_spec):
        p = container_port(c, port)
        if p is not None and p.get("protocol", "TCP") == protocol:
            return p
    return None


# ------------------------------------------------------------- the checks ---

class Manifests:
    def __init__(self, docs, overlay, binaries):
        self.docs = docs
        self.overlay = overlay
        self.binaries = binaries
        self.r = Results()
        self.index = {}
        for d in docs:
            self.index[(d.get("kind"), meta(d).get("namespace"), meta(d).get("name"))] = d
        self.namespaces = {meta(d).get("namespace") for d in docs
                           if d.get("kind") not in CLUSTER_SCOPED}
        self.workloads = [d for d in docs if d.get("kind") in WORKLOADS]
        self._helpfull = {}

    def get(self, kind, namespace, name):
        return self.index.get((kind, namespace, name))

    def pods_selected(self, namespace, selector):
        out = []
        for w in self.workloads:
            if meta(w).get("namespace") != namespace:
                continue
            t = pod_template(w)
            if selector_matches(selector, meta(t).get("labels")):
                out.append(w)
        return out

    def where(self, obj):
        return f"{self.overlay}: {ident(obj)}"

    # -- every object --
    def check_metadata(self, obj):
        problems = []
        m = meta(obj)
        name = m.get("name") or ""
        kind = obj.get("kind")
        pattern = DNS1035_LABEL if kind in ("Service", "Namespace") else DNS1123_SUBDOMAIN
        if kind == "Namespace":
            pattern = DNS1123_LABEL
        if not pattern.match(name) or len(name) > (63 if kind in ("Service", "Namespace") else 253):
            problems.append(f"invalid name {name!r}")
        for key, value in (m.get("labels") or {}).items():
            problems += label_problems(key, value)
        for key in REQUIRED_LABELS:
            if key not in (m.get("labels") or {}):
                problems.append(f"label {key} missing")
        if kind not in CLUSTER_SCOPED and not m.get("namespace"):
            problems.append("no namespace")
        self.r.check(f"{self.where(obj)}: name, labels, namespace", problems)
        if obj.get("spec") is not None:
            self.r.check(f"{self.where(obj)}: enum values", enum_problems(obj))

    # -- workloads --
    def check_workload(self, w):
        kind = w.get("kind")
        spec = w.get("spec") or {}
        t = pod_template(w)
        tl = meta(t).get("labels") or {}
        ns = meta(w).get("namespace")
        problems = []
        sel = spec.get("selector")
        if kind in LONG_RUNNING:
            if selector_is_empty(sel):
                problems.append("no selector")
            elif not selector_matches(sel, tl):
                problems.append(f"selector {sel} does not match template labels {tl}")
        elif sel is not None and not selector_matches(sel, tl):
            problems.append(f"selector {sel} does not match template labels {tl}")
        for key in POD_LABELS:
            if key not in tl:
                problems.append(f"pod template label {key} missing")
        for key, value in tl.items():
            problems += label_problems(key, value)
        # Another workload selecting these pods would fight over them.
        if kind in LONG_RUNNING:
            for other in self.workloads:
                if other is w or other.get("kind") not in LONG_RUNNING or meta(other).get("namespace") != ns:
                    continue
                if selector_matches(other["spec"].get("selector"), tl):
                    problems.append(f"pods also selected by {ident(other)}")
        self.r.check(f"{self.where(w)}: selector matches pod labels", problems)

        pod = t.get("spec") or {}
        self.check_pod_security(w, pod)
        for key, c in all_containers(pod):
            self.check_resources(w, c)
            self.check_container_security(w, pod, c)
            self.check_probes(w, c, long_running=kind in LONG_RUNNING and key == "containers")
            self.check_mounts_and_refs(w, pod, c)
            self.check_flags(w, pod, c)
        self.check_volumes(w, pod)
        if kind == "Deployment":
            self.check_rwo_deployment(w, pod)

    def check_pod_security(self, w, pod):
        problems = []
        if pod.get("automountServiceAccountToken") is not False:
            problems.append("automountServiceAccountToken is not false")
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(key):
                problems.append(f"{key} set")
        for v in pod.get("volumes") or []:
            if "hostPath" in v:
                problems.append(f"hostPath volume {v.get('name')}")
        sc = pod.get("securityContext") or {}
        if sc.get("runAsUser") == 0 or sc.get("runAsGroup") == 0:
            problems.append("pod runs as root (uid/gid 0)")
        if "terminationGracePeriodSeconds" not in pod:
            problems.append("terminationGracePeriodSeconds not set")
        self.r.check(f"{self.where(w)}: pod security (no SA token, no host namespaces)", problems)

    def check_resources(self, w, c):
        problems = []
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        for r in ("cpu", "memory"):
            if r not in req:
                problems.append(f"requests.{r} missing")
            if r not in lim:
                problems.append(f"limits.{r} missing")
        for r in set(req) & set(lim):
            try:
                if quantity(req[r]) > quantity(lim[r]):
                    problems.append(f"requests.{r} {req[r]} > limits.{r} {lim[r]}")
            except ValueError as e:
                problems.append(str(e))
        self.r.check(f"{self.where(w)}: container {c.get('name')}: requests and limits", problems)

    def check_container_security(self, w, pod, c):
        psc = pod.get("securityContext") or {}
        sc = c.get("securityContext") or {}
        problems = []
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            problems.append("runAsNonRoot is not true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append("runAsUser 0")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append("readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append("privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append("capabilities.drop lacks ALL")
        if caps.get("add"):
            problems.append(f"capabilities.add {caps['add']}")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"seccompProfile {seccomp!r}")
        self.r.check(f"{self.where(w)}: container {c.get('name')}: security context", problems)

    def check_probes(self, w, c, long_running):
        problems = []
        names = set()
        for p in c.get("ports") or []:
            if p.get("name"):
                if not IANA_SVC_NAME.match(p["name"]) or len(p["name"]) > 15:
                    problems.append(f"invalid port name {p['name']!r}")
                if p["name"] in names:
                    problems.append(f"duplicate port name {p['name']}")
                names.add(p["name"])
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.get(kind)
            if probe is None:
                if long_running:
                    problems.append(f"{kind} missing")
                continue
            if "grpc" in probe:
                port = probe["grpc"].get("port")
                if not isinstance(port, int) or container_port(c, port) is None:
                    problems.append(f"{kind} grpc port {port} is not a port of the container")
            for handler in ("tcpSocket", "httpGet"):
                if handler in probe:
                    port = probe[handler].get("port")
                    if container_port(c, port) is None:
                        problems.append(f"{kind} {handler} port {port!r} is not a port of the container")
            if "exec" in probe:
                problems.append(f"{kind} uses exec (the image has no shell to rely on)")
        if long_running and c.get("readinessProbe") and "grpc" not in c["readinessProbe"]:
            problems.append("readinessProbe is not a gRPC health probe")
        self.r.check(f"{self.where(w)}: container {c.get('name')}: probe ports are container ports", problems)

    def check_mounts_and_refs(self, w, pod, c):
        ns = meta(w).get("namespace")
        problems = []
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        paths = set()
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                problems.append(f"volumeMount {m.get('name')} has no volume")
            if m.get("mountPath") in paths:
                problems.append(f"mountPath {m.get('mountPath')} twice")
            paths.add(m.get("mountPath"))
        for e in c.get("env") or []:
            vf = e.get("valueFrom") or {}
            for ref_key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                ref = vf.get(ref_key)
                if ref:
                    problems += self.ref_problems(ns, kind, ref.get("name"), ref.get("key"), ref.get("optional"))
        for ef in c.get("envFrom") or []:
            for ref_key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                ref = ef.get(ref_key)
                if ref:
                    problems += self.ref_problems(ns, kind, ref.get("name"), None, ref.get("optional"))
        self.r.check(f"{self.where(w)}: container {c.get('name')}: mounts and env references resolve", problems)

    def ref_problems(self, ns, kind, name, key, optional):
        obj = self.get(kind, ns, name)
        if obj is None:
            if optional or (kind, name) in EXTERNAL:
                return []
            return [f"{kind} {name} not in the manifests"]
        if key is not None:
            data = dict(obj.get("data") or {})
            data.update(obj.get("binaryData") or {})
            data.update(obj.get("stringData") or {})
            if key not in data and not optional:
                return [f"{kind} {name} has no key {key}"]
        return []

    def check_volumes(self, w, pod):
        ns = meta(w).get("namespace")
        problems = []
        for v in pod.get("volumes") or []:
            if "configMap" in v:
                cm = v["configMap"]
                problems += self.ref_problems(ns, "ConfigMap", cm.get("name"), None, cm.get("optional"))
                for item in cm.get("items") or []:
                    problems += self.ref_problems(ns, "ConfigMap", cm.get("name"), item.get("key"), cm.get("optional"))
            if "secret" in v:
                s = v["secret"]
                problems += self.ref_problems(ns, "Secret", s.get("secretName"), None, s.get("optional"))
            if "persistentVolumeClaim" in v:
                problems += self.ref_problems(ns, "PersistentVolumeClaim", v["persistentVolumeClaim"].get("claimName"), None, False)
        used = {m.get("name") for _, c in all_containers(pod) for m in c.get("volumeMounts") or []}
        for v in pod.get("volumes") or []:
            if v.get("name") not in used:
                problems.append(f"volume {v.get('name')} is mounted nowhere")
        self.r.check(f"{self.where(w)}: volumes refer to existing objects", problems)

    def check_rwo_deployment(self, w, pod):
        """A Deployment writing a ReadWriteOnce claim: one replica, Recreate."""
        ns = meta(w).get("namespace")
        writers = []
        for v in pod.get("volumes") or []:
            pvc = v.get("persistentVolumeClaim")
            if not pvc or pvc.get("readOnly"):
                continue
            claim = self.get("PersistentVolumeClaim", ns, pvc.get("claimName"))
            modes = (claim or {}).get("spec", {}).get("accessModes") or []
            if claim is not None and "ReadWriteMany" not in modes:
                writers.append(pvc.get("claimName"))
        if not writers:
            return
        # ReadWriteOnce is per node: pods required to share a node with the
        # claim's other users (shared-checkpoints mode: generators writing
        # only their leases beside the trainer) can all attach it.
        affinity = (pod.get("affinity") or {}).get("podAffinity") or {}
        if any(t.get("topologyKey") == "kubernetes.io/hostname"
               for t in affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or []):
            return
        spec = w.get("spec") or {}
        problems = []
        if spec.get("replicas", 1) != 1:
            problems.append(f"replicas {spec.get('replicas')} with a ReadWriteOnce claim")
        if (spec.get("strategy") or {}).get("type") != "Recreate":
            problems.append("strategy is not Recreate (a new pod could not attach the claim)")
        if any(h.get("spec", {}).get("scaleTargetRef", {}).get("name") == meta(w).get("name")
               for h in self.docs if h.get("kind") == "HorizontalPodAutoscaler"):
            problems.append("autoscaled while writing a ReadWriteOnce claim")
        self.r.check(f"{self.where(w)}: writes ReadWriteOnce claim {', '.join(writers)}: one replica, Recreate", problems)

    # -- flags: args plus --flagfile files from mounted ConfigMaps --
    def flag_file(self, w, pod, c, path):
        ns = meta(w).get("namespace")
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        for m in c.get("volumeMounts") or []:
            mp = m.get("mountPath", "").rstrip("/") + "/"
            if not path.startswith(mp) or m.get("subPath"):
                continue
            v = volumes.get(m.get("name")) or {}
            if "configMap" not in v:
                return None, f"flagfile {path} is not on a ConfigMap volume"
            cm = self.get("ConfigMap", ns, v["configMap"].get("name"))
            if cm is None:
                return None, f"flagfile {path}: ConfigMap {v['configMap'].get('name')} not in the manifests"
            key = path[len(mp):]
            data = cm.get("data") or {}
            if key not in data:
                return None, f"flagfile {path}: ConfigMap {meta(cm).get('name')} has no key {key}"
            return data[key], None
        return None, f"flagfile {path} is on no volume"

    def effective_flags(self, w, pod, c):
        """[(name, value, origin)] in the order the binary reads them."""
        flags, problems = [], []
        positional = []
        for arg in c.get("args") or []:
            if not arg.startswith("--"):
                positional.append(arg)
                continue
            name, _, value = arg[2:].partition("=")
            if name == "flagfile":
                for path in value.split(","):
                    text, err = self.flag_file(w, pod, c, path)
                    if err:
                        problems.append(err)
                        continue
                    for n, line in enumerate(text.splitlines(), 1):
                        s = line.strip()
                        if not s or s.startswith("#"):
                            continue
                        if not s.startswith("--"):
                            problems.append(f"{path}:{n}: not a flag: {s!r}")
                            continue
                        if re.search(r"\s#", s):
                            problems.append(f"{path}:{n}: comment after a value (abseil would read it as the value)")
                        fname, _, fvalue = s[2:].partition("=")
                        flags.append((fname, fvalue, f"{path}:{n}"))
            else:
                flags.append((name, value, "args"))
        return positional, flags, problems

    def check_flags(self, w, pod, c):
        command = (c.get("command") or [None])[0]
        if command not in BINARIES:
            return
        positional, flags, problems = self.effective_flags(w, pod, c)
        values = {}
        for name, value, _ in flags:
            values[name] = value  # a later value wins
        ports = {p.get("containerPort"): p for p in c.get("ports") or []}
        server = command.endswith("microgpt-generator") or positional[:1] == ["serve"]
        if server:
            port = values.get("port")
            if port is None or not port.isdigit() or int(port) not in ports:
                problems.append(f"--port={port} is not a container port")
            elif (ports[int(port)].get("name") != "grpc"):
                problems.append(f"--port={port} is not the container port named grpc")
            # The drain must end before SIGKILL.
            tgps = (pod.get("terminationGracePeriodSeconds"))
            try:
                grace = duration_seconds(values.get("shutdown_grace", "10s"))
                sleep = (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
                if tgps is None or tgps <= grace + sleep:
                    problems.append(f"terminationGracePeriodSeconds {tgps} <= preStop sleep {sleep}s + --shutdown_grace {grace:g}s")
            except ValueError as e:
                problems.append(str(e))
        if "metrics_port" in values:
            p = ports.get(int(values["metrics_port"])) if values["metrics_port"].isdigit() else None
            if p is None or p.get("name") != "metrics":
                problems.append(f"--metrics_port={values['metrics_port']} is not the container port named metrics")
        # Paths the process reads or writes must be on a volume (the root
        # file system is read-only); the ones it writes on a writable one.
        mounts = c.get("volumeMounts") or []
        writes = {"cache_dir"}
        if positional[:1] in (["serve"], ["train"]):
            writes.add("checkpoint_root")
        for name in ("checkpoint_root", "cache_dir", "data_root", "data", "auth_token_file"):
            if name not in values or not values[name]:
                continue
            path = values[name]
            m = next((m for m in sorted(mounts, key=lambda m: -len(m.get("mountPath", "")))
                      if (path.rstrip("/") + "/").startswith(m.get("mountPath", "").rstrip("/") + "/")), None)
            if m is None:
                problems.append(f"--{name}={path} is on no volume (read-only root)")
            elif name in writes and m.get("readOnly"):
                problems.append(f"--{name}={path} is on a read-only mount")
        if values.get("trainer"):
            host, _, port = values["trainer"].rpartition(":")
            host = host.split("///")[-1]
            svc = self.get("Service", meta(w).get("namespace"), host.split(".")[0])
            if svc is None:
                problems.append(f"--trainer={values['trainer']}: no Service {host}")
            elif not any(str(p.get("port")) == port for p in svc["spec"].get("ports") or []):
                problems.append(f"--trainer={values['trainer']}: Service {host} has no port {port}")
        # `microgpt-trainer serve` refuses to start without a bearer token.
        if command.endswith("microgpt-trainer") and positional[:1] == ["serve"] \
                and not values.get("auth_token_file") and "insecure_no_auth" not in values:
            problems.append("microgpt-trainer serve without --auth_token_file would not start")
        self.r.check(f"{self.where(w)}: container {c.get('name')}: flags agree with ports, volumes, grace period", problems)
        self.check_flags_against_binary(w, c, command, flags)

    def helpfull(self, command):
        if command in self._helpfull:
            return self._helpfull[command]
        path = os.path.join(self.binaries, BINARIES[command])
        known = None
        if os.access(path, os.X_OK):
            out = subprocess.run([path, "--helpfull"], capture_output=True, text=True, timeout=30)
            known = set(re.findall(r"^\s+--([A-Za-z0-9_]+) \(", out.stdout + out.stderr, re.M))
            known |= {"flagfile", "fromenv", "tryfromenv", "undefok"}
        self._helpfull[command] = known
        return known

    def check_flags_against_binary(self, w, c, command, flags):
        what = f"{self.where(w)}: container {c.get('name')}: every flag is defined by {os.path.basename(command)}"
        if not self.binaries:
            return
        known = self.helpfull(command)
        if known is None:
            self.r.skip(what, f"{os.path.join(self.binaries, BINARIES[command])} not built")
            return
        problems, pending = [], []
        for name, _, origin in flags:
            if name in known:
                continue
            if name.startswith("no") and name[2:] in known:
                continue
            if name in PENDING_FLAGS:
                pending.append(f"--{name} ({PENDING_FLAGS[name]})")
            else:
                problems.append(f"--{name} ({origin}) is not a flag of the binary")
        if problems:
            self.r.check(what, problems)
        elif pending:
            self.r.skip(what, "waiting for " + ", ".join(sorted(set(pending))))
        else:
            self.r.check(what, [])

    # -- Services --
    def check_service(self, svc):
        ns = meta(svc).get("namespace")
        spec = svc.get("spec") or {}
        problems = []
        sel = spec.get("selector")
        if not sel:
            problems.append("no selector")
            self.r.check(f"{self.where(svc)}: selector and target ports", problems)
            return
        targets = self.pods_selected(ns, sel)
        if not targets:
            problems.append(f"selector {sel} matches no pod template")
        for p in spec.get("ports") or []:
            target = p.get("targetPort", p.get("port"))
            protocol = p.get("protocol", "TCP")
            for w in targets:
                if pod_port(pod_template(w).get("spec") or {}, target, protocol) is None:
                    problems.append(f"port {p.get('name')}: targetPort {target!r}/{protocol} is not a container port of {ident(w)}")
        if spec.get("clusterIP") == "None" and spec.get("publishNotReadyAddresses"):
            problems.append("headless Service publishes pods that are not ready")
        self.r.check(f"{self.where(svc)}: selector and target ports", problems)

    # -- PodDisruptionBudgets --
    def check_pdb(self, pdb):
        ns = meta(pdb).get("namespace")
        spec = pdb.get("spec") or {}
        problems = []
        targets = self.pods_selected(ns, spec.get("selector"))
        if selector_is_empty(spec.get("selector")):
            problems.append("empty selector")
        elif not targets:
            problems.append(f"selector {spec.get('selector')} matches no pod template")
        for w in targets:
            floor = self.min_replicas(w)
            if spec.get("maxUnavailable") in (0, "0%"):
                problems.append("maxUnavailable 0 blocks every drain")
            if isinstance(spec.get("minAvailable"), int) and floor is not None and spec["minAvailable"] >= floor:
                problems.append(f"minAvailable {spec['minAvailable']} >= {floor} replicas of {ident(w)} blocks drains")
        self.r.check(f"{self.where(pdb)}: selector matches pods, drains possible", problems)

    def hpa_for(self, w):
        for h in self.docs:
            if h.get("kind") != "HorizontalPodAutoscaler" or meta(h).get("namespace") != meta(w).get("namespace"):
                continue
            ref = (h.get("spec") or {}).get("scaleTargetRef") or {}
            if ref.get("kind") == w.get("kind") and ref.get("name") == meta(w).get("name"):
                return h
        return None

    def min_replicas(self, w):
        h = self.hpa_for(w)
        if h is not None:
            return h["spec"].get("minReplicas", 1)
        return (w.get("spec") or {}).get("replicas", 1)

    # -- HorizontalPodAutoscalers --
    def check_hpa(self, h):
        ns = meta(h).get("namespace")
        spec = h.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        problems = []
        target = self.get(ref.get("kind"), ns, ref.get("name"))
        if target is None:
            problems.append(f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} not in the manifests")
        else:
            if ref.get("apiVersion") != target.get("apiVersion"):
                problems.append(f"scaleTargetRef apiVersion {ref.get('apiVersion')} != {target.get('apiVersion')}")
            if "replicas" in (target.get("spec") or {}):
                problems.append(f"{ident(target)} sets spec.replicas (each apply would reset the autoscaler's count)")
            pod = pod_template(target).get("spec") or {}
            for m in spec.get("metrics") or []:
                if m.get("type") == "Resource" and (m["resource"].get("target") or {}).get("type") == "Utilization":
                    r = m["resource"]["name"]
                    for _, c in all_containers(pod):
                        if r not in ((c.get("resources") or {}).get("requests") or {}):
                            problems.append(f"{r} utilization needs requests.{r} on container {c.get('name')}")
        if spec.get("minReplicas", 1) > spec.get("maxReplicas", 0):
            problems.append("minReplicas > maxReplicas")
        self.r.check(f"{self.where(h)}: target exists, owns replicas, has requests", problems)

    # -- NetworkPolicies --
    def check_networkpolicy(self, np):
        ns = meta(np).get("namespace")
        spec = np.get("spec") or {}
        problems = []
        selected = self.pods_selected(ns, spec.get("podSelector") or {}) if not selector_is_empty(spec.get("podSelector")) \
            else [w for w in self.workloads if meta(w).get("namespace") == ns]
        if not selected:
            problems.append(f"podSelector {spec.get('podSelector')} matches no pod template")
        for i, rule in enumerate(spec.get("ingress") or []):
            for p in rule.get("ports") or []:
                if "port" not in p:
                    continue
                for w in selected:
                    if pod_port(pod_template(w).get("spec") or {}, p["port"], p.get("protocol", "TCP")) is None:
                        problems.append(f"ingress[{i}] port {p['port']!r} is not a container port of {ident(w)}")
        for i, rule in enumerate(spec.get("egress") or []):
            for peer in rule.get("to") or []:
                if "podSelector" not in peer or "namespaceSelector" in peer:
                    continue
                peers = self.pods_selected(ns, peer["podSelector"])
                if not peers:
                    problems.append(f"egress[{i}] podSelector {peer['podSelector']} matches no pod template")
                for p in rule.get("ports") or []:
                    for w in peers:
                        if pod_port(pod_template(w).get("spec") or {}, p.get("port"), p.get("protocol", "TCP")) is None:
                            problems.append(f"egress[{i}] port {p.get('port')!r} is not a container port of {ident(w)}")
        self.r.check(f"{self.where(np)}: selects pods, ports exist", problems)

    # -- what the overlays promise --
    def check_expectations(self):
        name = self.overlay
        deployments = {meta(d).get("name"): d for d in self.docs if d.get("kind") == "Deployment"}
        if "microgpt-generator" in deployments:
            g = deployments["microgpt-generator"]
            ns = meta(g).get("namespace")
            problems = []
            pods = meta(pod_template(g)).get("labels")
            headless = [s for s in self.docs if s.get("kind") == "Service" and meta(s).get("namespace") == ns
                        and s["spec"].get("clusterIP") == "None" and selector_matches(s["spec"].get("selector"), pods)]
            plain = [s for s in self.docs if s.get("kind") == "Service" and meta(s).get("namespace") == ns
                     and s["spec"].get("clusterIP") != "None" and selector_matches(s["spec"].get("selector"), pods)]
            if not any(meta(s).get("name") == "microgpt-generator-headless" for s in headless):
                problems.append("no headless Service microgpt-generator-headless")
            if not plain:
                problems.append("no ClusterIP Service for simple clients")
            h = self.hpa_for(g)
            if h is None:
                problems.append("no HorizontalPodAutoscaler")
            if not any(d.get("kind") == "PodDisruptionBudget" and selector_matches(d["spec"].get("selector"), pods)
                       for d in self.docs):
                problems.append("no PodDisruptionBudget")
            if not any(d.get("kind") == "NetworkPolicy" and selector_matches(d["spec"].get("podSelector"), pods)
                       for d in self.docs):
                problems.append("no NetworkPolicy")
            if name.startswith("prod") and h is not None and h["spec"].get("minReplicas", 1) < 2:
                problems.append(f"prod: minReplicas {h['spec'].get('minReplicas', 1)} < 2")
            self.r.check(f"{name}: generator has headless + ClusterIP Services, HPA, PDB, NetworkPolicy", problems)
        if "microgpt-trainer" in deployments:
            t = deployments["microgpt-trainer"]
            ns = meta(t).get("namespace")
            pods = meta(pod_template(t)).get("labels")
            problems = []
            if not any(s.get("kind") == "Service" and meta(s).get("namespace") == ns
                       and selector_matches(s["spec"].get("selector"), pods) for s in self.docs):
                problems.append("no Service")
            if not self.get("PersistentVolumeClaim", ns, "microgpt-checkpoints"):
                problems.append("no PersistentVolumeClaim microgpt-checkpoints")
            self.r.check(f"{name}: trainer has a Service and the checkpoint claim", problems)
        secrets = [meta(d).get("name") for d in self.docs if d.get("kind") == "Secret"]
        if name.startswith("prod"):
            self.r.check(f"{name}: no Secret in the manifests (prod uses an existing one)",
                         [f"Secret {s} would be applied" for s in secrets])
        elif name == "dev":
            self.r.check(f"{name}: placeholder Secret microgpt-auth generated",
                         [] if any(s.startswith("microgpt-auth") for s in secrets) else ["missing"])
        if len(self.namespaces) > 1:
            self.r.check(f"{name}: one namespace", [f"namespaces {sorted(map(str, self.namespaces))}"])

    def run(self):
        for d in self.docs:
            self.check_metadata(d)
        for d in self.docs:
            kind = d.get("kind")
            if kind in WORKLOADS:
                self.check_workload(d)
            elif kind == "Service":
                self.check_service(d)
            elif kind == "PodDisruptionBudget":
                self.check_pdb(d)
            elif kind == "HorizontalPodAutoscaler":
                self.check_hpa(d)
            elif kind == "NetworkPolicy":
                self.check_networkpolicy(d)
        self.check_expectations()
        return self.r


def label_problems(key, value):
    problems = []
    prefix, _, name = key.rpartition("/")
    if prefix and (not DNS1123_SUBDOMAIN.match(prefix) or len(prefix) > 253):
        problems.append(f"label key {key!r}: bad prefix")
    if not LABEL_NAME.match(name) or len(name) > 63:
        problems.append(f"label key {key!r}: bad name")
    if not isinstance(value, str):
        problems.append(f"label {key}: value {value!r} is not a string")
    elif value and (not LABEL_NAME.match(value) or len(value) > 63):
        problems.append(f"label {key}: bad value {value!r}")
    return problems


# ------------------------------------------------------------ mutations ---
# Deliberately broken copies: the test runs the checks on them and expects a
# failure, which shows that the checks can fail.

def _find(docs, kind, name_part):
    for d in docs:
        if d.get("kind") == kind and name_part in meta(d).get("name", ""):
            return d
    raise SystemExit(f"mutate: no {kind} with {name_part!r} in its name")


def _container(docs, name_part):
    return pod_template(_find(docs, "Deployment", name_part))["spec"]["containers"][0]


def mutate(name, docs):
    docs = copy.deepcopy(docs)
    if name == "service-selector":
        _find(docs, "Service", "generator-headless")["spec"]["selector"]["app.kubernetes.io/name"] = "microgpt-generater"
    elif name == "deployment-selector":
        _find(docs, "Deployment", "generator")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] = "other"
    elif name == "no-limits":
        del _container(docs, "trainer")["resources"]["limits"]
    elif name == "probe-port":
        _container(docs, "generator")["readinessProbe"]["grpc"]["port"] = 50053
    elif name == "target-port":
        _find(docs, "Service", "trainer")["spec"]["ports"][0]["targetPort"] = "grcp"
    elif name == "privilege-escalation":
        _container(docs, "generator")["securityContext"]["allowPrivilegeEscalation"] = True
    elif name == "grace-period":
        pod_template(_find(docs, "Deployment", "generator"))["spec"]["terminationGracePeriodSeconds"] = 10
    elif name == "hpa-target":
        _find(docs, "HorizontalPodAutoscaler", "generator")["spec"]["scaleTargetRef"]["name"] = "microgpt-generatr"
    elif name == "enum-value":
        _find(docs, "Deployment", "trainer")["spec"]["strategy"]["type"] = "Recreated"
    elif name == "port-flag":
        c = _container(docs, "trainer")
        c["args"] = [a if not a.startswith("--port=") else "--port=50053" for a in c["args"]]
    elif name == "trainer-no-token":
        cm = _find(docs, "ConfigMap", "trainer-config")
        cm["data"] = {k: "\n".join(l for l in v.splitlines() if not l.startswith("--auth_token_file"))
                      for k, v in cm["data"].items()}
    else:
        raise SystemExit(f"mutate: unknown mutation {name}")
    return docs


# ------------------------------------------------------------ the image ---

def dockerfile_stages(path):
    """[(stage name, [(instruction, text)])], continuation lines joined."""
    stages, logical, current = [], [], ""
    with open(path) as f:
        for line in f:
            stripped = line.strip()
            if not current and (not stripped or stripped.startswith("#")):
                continue
            if stripped.startswith("#"):
                continue
            if stripped.endswith("\\"):
                current += stripped[:-1] + " "
                continue
            logical.append(current + stripped)
            current = ""
    for line in logical:
        instruction, _, text = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            m = re.search(r"\s+AS\s+(\S+)\s*$", text, re.I)
            stages.append((m.group(1) if m else str(len(stages)), text, []))
        elif stages:
            stages[-1][2].append((instruction, text.strip()))
    return stages


def check_dockerfile(path, rendered):
    r = Results()
    stages = dockerfile_stages(path)
    if not stages:
        r.check(f"{path}: has stages", ["no FROM"])
        return r
    name, base, body = stages[-1]
    problems = []
    if len(stages) < 2:
        problems.append("not multi-stage")
    if not re.match(r"debian:bookworm-slim(@sha256:[0-9a-f]{64})?(\s|$)", base):
        problems.append(f"runtime stage is FROM {base}, not debian:bookworm-slim")
    r.check(f"{path}: multi-stage, runtime on debian:bookworm-slim", problems)

    users = [t for i, t in body if i == "USER"]
    uid = gid = None
    problems = []
    if not users:
        problems.append("no USER in the runtime stage")
    else:
        m = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
        if not m:
            problems.append(f"USER {users[-1]} is not numeric (runAsNonRoot cannot verify a name)")
        else:
            uid, gid = int(m.group(1)), m.group(2) and int(m.group(2))
            if uid == 0 or gid == 0:
                problems.append(f"USER {users[-1]} is root")
    r.check(f"{path}: runs as a numeric non-root user", problems)

    entry = [t for i, t in body if i == "ENTRYPOINT"]
    problems = []
    if not entry:
        problems.append("no ENTRYPOINT")
    else:
        try:
            import json
            value = json.loads(entry[-1])
            if not isinstance(value, list) or not value:
                problems.append("ENTRYPOINT is not a JSON array")
        except ValueError:
            problems.append(f"ENTRYPOINT {entry[-1]} is in shell form (needs /bin/sh)")
    r.check(f"{path}: ENTRYPOINT in exec form", problems)

    text = open(path).read()
    exposed = {int(p.split("/")[0]) for i, t in body if i == "EXPOSE" for p in t.split()}
    docs = [d for f in rendered for d in load(f)]
    commands, ports, run_as, problems = set(), set(), set(), []
    for w in docs:
        t = pod_template(w)
        if t is None:
            continue
        pod = t.get("spec") or {}
        for _, c in all_containers(pod):
            cmd = (c.get("command") or [None])[0]
            if cmd:
                commands.add(cmd)
            for p in c.get("ports") or []:
                if p.get("name") == "grpc":
                    ports.add(p.get("containerPort"))
            sc = c.get("securityContext") or {}
            psc = pod.get("securityContext") or {}
            run_as.add((sc.get("runAsUser", psc.get("runAsUser")), sc.get("runAsGroup", psc.get("runAsGroup"))))
    for cmd in sorted(commands):
        if not re.search(r"/out" + re.escape(cmd) + r"(\s|$)", text):
            problems.append(f"the manifests run {cmd}, which the Dockerfile does not install")
    r.check(f"{path}: installs every command the manifests run", problems)
    problems = [f"gRPC port {p} not EXPOSEd" for p in sorted(ports - exposed)]
    r.check(f"{path}: EXPOSEs the manifests' gRPC ports", problems)
    problems = []
    for u, g in sorted(run_as, key=str):
        if uid is not None and u is not None and u != uid:
            problems.append(f"manifests runAsUser {u} != image USER {uid}")
        if gid is not None and g is not None and g != gid:
            problems.append(f"manifests runAsGroup {g} != image group {gid}")
    r.check(f"{path}: manifests run as the image's user", problems)
    return r


MUTATIONS = ["service-selector", "deployment-selector", "no-limits", "probe-port",
             "target-port", "privilege-escalation", "grace-period", "hpa-target", "port-flag",
             "enum-value", "trainer-no-token"]


def main(argv):
    if len(argv) >= 2 and argv[1] == "mutations":
        print("\n".join(MUTATIONS))
        return 0
    if len(argv) >= 4 and argv[1] == "dockerfile":
        return 1 if check_dockerfile(argv[2], argv[3:]).failed else 0
    if len(argv) == 4 and argv[1] == "mutate":
        yaml.safe_dump_all(mutate(argv[2], load(argv[3])), sys.stdout, sort_keys=False)
        return 0
    if len(argv) >= 3 and argv[1] == "check":
        path, overlay, binaries = argv[2], os.path.basename(argv[2]), None
        rest = argv[3:]
        while rest:
            if rest[0] == "--overlay" and len(rest) > 1:
                overlay, rest = rest[1], rest[2:]
            elif rest[0] == "--binaries" and len(rest) > 1:
                binaries, rest = rest[1], rest[2:]
            else:
                print(__doc__, file=sys.stderr)
                return 2
        r = Manifests(load(path), overlay, binaries).run()
        return 1 if r.failed else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
