#!/usr/bin/python3
"""Turns a rendered kustomize overlay into a plan for running its Deployments
as local processes (used by tests/deploy/local_run_test.sh).

  local_run_plan.py RENDERED.yaml BUILD_DIR WORK_DIR PORTS...

For each Deployment (in document order) and each of its containers it:
  - maps every volumeMount path to a directory under WORK_DIR and fills it with
    the keys of the ConfigMap / Secret the volume refers to (a missing
    optional ConfigMap, an emptyDir or a PVC gives an empty directory);
  - resolves env (value, configMapKeyRef, secretKeyRef) and envFrom;
  - maps each containerPort to one of the free loopback PORTS given;
  - rewrites command (image path /usr/local/bin/X -> BUILD_DIR binary), args
    and the files written from ConfigMaps: mount paths -> their directories,
    Service addresses (name[.ns[.svc[.cluster.local]]]:port) ->
    127.0.0.1:<port of the container the Service targets>, --host=0.0.0.0 ->
    127.0.0.1, --port=<containerPort> -> --port=<local port>;
  - takes the readinessProbe (grpc: port + service; tcpSocket: port).
It prints a bash fragment defining, per container (prefix = upper-cased
Deployment name with non-alphanumerics as _ + _ + container name):
  P_CMD=(...) P_ENV=(K=V ...) P_PORT=N P_PROBE_KIND=grpc|tcp|none
  P_PROBE_PORT=N P_PROBE_SERVICE=... and PLAN_CONTAINERS=(prefix ...)
and writes a human-readable summary to stderr.
"""
import base64
import os
import re
import shlex
import sys

import yaml

BINARIES = {
    "microgpt-trainer": "trainer/microgpt-trainer",
    "microgpt-generator": "generator/microgpt-generator",
    "microgpt": "cli/microgpt",
}


def die(msg):
    print("local_run_plan: " + msg, file=sys.stderr)
    sys.exit(2)


def main():
    if len(sys.argv) < 4:
        die("usage: local_run_plan.py RENDERED.yaml BUILD_DIR WORK_DIR PORTS...")
    rendered, build_dir, work_dir = sys.argv[1:4]
    free_ports = [int(p) for p in sys.argv[4:]]
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    configmaps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    deployments = list(by_kind.get("Deployment", {}).values())
    services = list(by_kind.get("Service", {}).values())

    def cm_data(name, optional=False):
        cm = configmaps.get(name)
        if cm is None:
            if optional:
                return None
            die(f"ConfigMap {name} not in the rendered output")
        return dict(cm.get("data") or {})

    def secret_data(name, optional=False):
        s = secrets.get(name)
        if s is None:
            if optional:
                return None
            die(f"Secret {name} not in the rendered output")
        out = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
        out.update(s.get("stringData") or {})
        return out

    # Pass 1: local ports for every container port (by Deployment).
    port_iter = iter(free_ports)
    local_port = {}  # (deployment, containerPort) -> local port
    named_port = {}  # (deployment, port name) -> containerPort
    for dep in deployments:
        dn = dep["metadata"]["name"]
        for c in dep["spec"]["template"]["spec"]["containers"]:
            for p in c.get("ports") or []:
                try:
                    local_port[(dn, p["containerPort"])] = next(port_iter)
                except StopIteration:
                    die("not enough free ports given")
                if "name" in p:
                    named_port[(dn, p["name"])] = p["containerPort"]

    # Services -> local addresses of the Deployment they select.
    addr_map = []  # (regex, replacement)
    for svc in services:
        sel = svc["spec"].get("selector") or {}
        ns = svc["metadata"].get("namespace", "default")
        target = None
        for dep in deployments:
            labels = dep["spec"]["template"]["metadata"].get("labels") or {}
            if sel and all(labels.get(k) == v for k, v in sel.items()):
                target = dep["metadata"]["name"]
        if target is None:
            continue
        for p in svc["spec"].get("ports") or []:
            tp = p.get("targetPort", p["port"])
            if isinstance(tp, str):
                tp = named_port.get((target, tp))
            lp = local_port.get((target, tp))
            if lp is None:
                continue
            name = re.escape(svc["metadata"]["name"])
            host = rf"{name}(?:\.{re.escape(ns)}(?:\.svc(?:\.cluster\.local)?)?)?"
            addr_map.append((re.compile(rf"(?<![\w.-]){host}:{p['port']}\b"),
                             f"127.0.0.1:{lp}"))

    out = []
    prefixes = []
    for dep in deployments:
        dn = dep["metadata"]["name"]
        pod = dep["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for c in pod["containers"]:
            prefix = re.sub(r"[^A-Za-z0-9]", "_", dn).upper() + "_" + \
                re.sub(r"[^A-Za-z0-9]", "_", c["name"]).upper()
            prefixes.append(prefix)
            root = os.path.join(work_dir, dn, c["name"])
            mounts = []  # (mountPath, local dir)
            files_to_write = []  # (path, content, is_configmap)
            for vm in c.get("volumeMounts") or []:
                v = volumes.get(vm["name"])
                if v is None:
                    die(f"{dn}/{c['name']}: volumeMount {vm['name']} has no volume")
                local = os.path.join(root, "mnt", vm["name"])
                os.makedirs(local, exist_ok=True)
                mounts.append((vm["mountPath"].rstrip("/") or "/", local))
                data = None
                if "configMap" in v:
                    data = cm_data(v["configMap"]["name"], v["configMap"].get("optional", False))
                    kind = True
                elif "secret" in v:
                    data = secret_data(v["secret"]["secretName"], v["secret"].get("optional", False))
                    kind = False
                elif "emptyDir" in v or "persistentVolumeClaim" in v:
                    pass
                else:
                    die(f"{dn}: volume {vm['name']}: unsupported type {list(v)}")
                if data is not None:
                    src = v.get("configMap") or v.get("secret")
                    items = src.get("items")
                    pairs = [(i["key"], i["path"]) for i in items] if items else \
                        [(k, k) for k in data]
                    sub = vm.get("subPath")
                    for key, rel in pairs:
                        if sub and rel != sub:
                            continue
                        path = local if sub else os.path.join(local, rel)
                        files_to_write.append((path, data[key], kind))
            # Longest mount path first, so /a/b wins over /a.
            mounts.sort(key=lambda m: -len(m[0]))

            # One pass over every mount path (longest first), so a local
            # directory (itself under /tmp) is never rewritten again by the
            # mount at /tmp.
            mount_rx = re.compile(
                r"(?<![\w/.-])(" + "|".join(re.escape(mp) for mp, _ in mounts) +
                r")(?=/|[^\w.-]|$)") if mounts else None
            mount_to = dict(mounts)

            def rewrite(s):
                for rx, rep in addr_map:
                    s = rx.sub(rep, s)
                if mount_rx:
                    s = mount_rx.sub(lambda m: mount_to[m.group(1)], s)
                return s

            ports = [p["containerPort"] for p in c.get("ports") or []]

            def rewrite_arg(a):
                a = rewrite(a)
                m = re.fullmatch(r"(--?host=)0\.0\.0\.0", a)
                if m:
                    return m.group(1) + "127.0.0.1"
                m = re.fullmatch(r"(--?port=)(\d+)", a)
                if m and int(m.group(2)) in ports:
                    return m.group(1) + str(local_port[(dn, int(m.group(2)))])
                return a

            for path, content, is_cm in files_to_write:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write("\n".join(rewrite_arg(l) for l in content.split("\n"))
                            if is_cm else content)
                os.chmod(path, 0o600)

            cmd = list(c.get("command") or [])
            if not cmd:
                die(f"{dn}/{c['name']}: no command (the image's ENTRYPOINT would run)")
            base = os.path.basename(cmd[0])
            if base not in BINARIES:
                die(f"{dn}/{c['name']}: unknown binary {cmd[0]}")
            cmd[0] = os.path.join(build_dir, BINARIES[base])
            argv = cmd[:1] + [rewrite_arg(a) for a in cmd[1:] + list(c.get("args") or [])]

            env = {}
            for ef in c.get("envFrom") or []:
                pre = ef.get("prefix", "")
                if "configMapRef" in ef:
                    d = cm_data(ef["configMapRef"]["name"], ef["configMapRef"].get("optional", False))
                else:
                    d = secret_data(ef["secretRef"]["name"], ef["secretRef"].get("optional", False))
                for k, val in (d or {}).items():
                    env[pre + k] = val
            for e in c.get("env") or []:
                if "value" in e:
                    env[e["name"]] = e["value"]
                elif "valueFrom" in e:
                    vf = e["valueFrom"]
                    if "configMapKeyRef" in vf:
                        r = vf["configMapKeyRef"]
                        d = cm_data(r["name"], r.get("optional", False)) or {}
                    elif "secretKeyRef" in vf:
                        r = vf["secretKeyRef"]
                        d = secret_data(r["name"], r.get("optional", False)) or {}
                    else:
                        die(f"{dn}: env {e['name']}: unsupported valueFrom {list(vf)}")
                    if r["key"] not in d:
                        if r.get("optional"):
                            continue
                        die(f"{dn}: env {e['name']}: key {r['key']} missing in {r['name']}")
                    env[e["name"]] = d[r["key"]]

            probe = c.get("readinessProbe") or {}
            kind, pport, psvc = "none", "", ""
            if "grpc" in probe:
                kind = "grpc"
                pp = probe["grpc"]["port"]
                pport = local_port.get((dn, pp))
                psvc = probe["grpc"].get("service", "")
                if pport is None:
                    die(f"{dn}: grpc probe port {pp} is not a containerPort")
            elif "tcpSocket" in probe:
                kind = "tcp"
                pp = probe["tcpSocket"]["port"]
                if isinstance(pp, str):
                    pp = named_port.get((dn, pp))
                pport = local_port.get((dn, pp))
            main_port = local_port.get((dn, ports[0])) if ports else ""

            q = shlex.quote
            out.append(f"{prefix}_CMD=({' '.join(q(a) for a in argv)})")
            out.append(f"{prefix}_ENV=({' '.join(q(k + '=' + v) for k, v in env.items())})")
            out.append(f"{prefix}_PORT={main_port}")
            out.append(f"{prefix}_PROBE_KIND={kind}")
            out.append(f"{prefix}_PROBE_PORT={pport}")
            out.append(f"{prefix}_PROBE_SERVICE={q(psvc)}")
            print(f"  {dn}/{c['name']}: ports {ports} -> {main_port}; "
                  f"readiness {kind} port {pport} service '{psvc}'", file=sys.stderr)
            print(f"    env: {' '.join(k + '=' + v for k, v in env.items())}", file=sys.stderr)
            print(f"    argv: {' '.join(q(a) for a in argv)}", file=sys.stderr)
            for mp, local in mounts:
                print(f"    mount {mp} -> {local}", file=sys.stderr)
    out.append(f"PLAN_CONTAINERS=({' '.join(prefixes)})")
    print("\n".join(out))


if __name__ == "__main__":
    main()
