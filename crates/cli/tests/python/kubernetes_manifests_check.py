#!/usr/bin/env python3
"""Checks the rendered deploy/kubernetes manifests offline (there is no cluster to apply them to).

Usage: kubernetes_manifests_check.py RENDERED.yaml ROTOR_BINARY
RENDERED.yaml is `kubectl kustomize deploy/kubernetes`. Every object is validated against the
Kubernetes OpenAPI schemas bundled in `kubernetes-validate` (strict: unknown fields fail), for the
oldest and the newest Kubernetes it bundles that we claim; then the project's own rules: the
expected objects, the planner's RBAC and nothing more, probes on routes each component serves,
resource requests, and every `--flag` a Rotor container passes exists in `rotor CMD --help`.
Exits non-zero with a message on the first failed expectation. Run by
crates/cli/tests/kubernetes_manifests.rs.
"""
import json
import re
import subprocess
import sys

import kubernetes_validate
import yaml

rendered, rotor = sys.argv[1], sys.argv[2]
VERSIONS = ["1.29.0", "1.37.0"]
NAMESPACE = "rotor"
IMAGE = "rotor:0.1.0"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


with open(rendered) as f:
    objects = [o for o in yaml.safe_load_all(f) if o]

# 1. Schemas.
for obj in objects:
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            check(False, f"{obj['kind']}/{obj['metadata']['name']} against Kubernetes {version}: "
                         f"{'.'.join(str(p) for p in e.path)}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            check(False, f"no schema for {obj['apiVersion']} {obj['kind']} in Kubernetes {version}")
print(f"ok: {len(objects)} objects valid against the Kubernetes {' and '.join(VERSIONS)} schemas")

# 2. The expected objects, all in the namespace.
by_key = {(o["kind"], o["metadata"]["name"]): o for o in objects}
check(len(by_key) == len(objects), "no object twice")
expected = {("Namespace", "rotor")}
for name in ["rotor-etcd", "rotor-nats", "rotor-frontend", "rotor-router", "rotor-planner"]:
    expected |= {("Service", name), ("Deployment", name)}
for role in ["aggregated", "prefill", "decode"]:
    expected.add(("Deployment", f"rotor-{role}"))
expected |= {("ServiceAccount", "rotor-planner"), ("Role", "rotor-planner"),
             ("RoleBinding", "rotor-planner"), ("ConfigMap", "rotor-planner-profile")}
check(set(by_key) == expected,
      f"objects: missing {sorted(expected - set(by_key))}, unexpected {sorted(set(by_key) - expected)}")
for (kind, name), o in by_key.items():
    if kind != "Namespace":
        check(o["metadata"].get("namespace") == NAMESPACE, f"{kind}/{name} is in namespace {NAMESPACE}")
print("ok: the expected objects, in namespace rotor")

# 3. RBAC: the planner's Role, exactly, bound to its ServiceAccount; no other pod gets a token.
role = by_key[("Role", "rotor-planner")]
rules = sorted((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"])),
                tuple(r.get("resourceNames", ()))) for r in role["rules"])
check(rules == [(("apps",), ("deployments",), ("get", "list", "watch"), ()),
                (("apps",), ("deployments/scale",), ("get", "patch"), ())],
      f"the planner's Role allows get/list/watch deployments and get/patch deployments/scale only: {rules}")
binding = by_key[("RoleBinding", "rotor-planner")]
check(binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rotor-planner"},
      "the RoleBinding refers to the planner's Role")
check(binding["subjects"] == [{"kind": "ServiceAccount", "name": "rotor-planner", "namespace": NAMESPACE}],
      "the RoleBinding binds the planner's ServiceAccount only")
deployments = {name: o for (kind, name), o in by_key.items() if kind == "Deployment"}
for name, d in deployments.items():
    pod = d["spec"]["template"]["spec"]
    if name == "rotor-planner":
        check(pod.get("serviceAccountName") == "rotor-planner", "the planner runs as rotor-planner")
    else:
        check(pod.get("automountServiceAccountToken") is False, f"{name} mounts no API token")
print("ok: RBAC is the planner's get/patch of deployments/scale and get/list/watch of deployments")


# 4. What each Rotor command serves, and its flags (from the binary itself).
def flags_of(cmd):
    out = subprocess.run([rotor, cmd, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"--[a-z0-9][a-z0-9-]*", out))


SERVES = {"frontend": {"/live", "/health", "/metrics"}, "router": {"/health", "/metrics"},
          "worker": {"/metrics"}, "planner": {"/metrics"}}
flags = {cmd: flags_of(cmd) for cmd in list(SERVES) + ["fetch-model"]}

for name, d in deployments.items():
    labels = d["spec"]["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in d["spec"]["selector"]["matchLabels"].items()),
          f"{name}: its selector matches its pods")
    pod = d["spec"]["template"]["spec"]
    for c in pod.get("initContainers", []) + pod["containers"]:
        where = f"{name}/{c['name']}"
        req = c.get("resources", {}).get("requests", {})
        check("cpu" in req and "memory" in req, f"{where} requests cpu and memory")
        check("memory" in c.get("resources", {}).get("limits", {}), f"{where} has a memory limit")
        rotor_container = c["image"].split(":")[0] == "rotor"
        if rotor_container:
            check(c["image"] == IMAGE, f"{where} runs {IMAGE}")
            args = c.get("args", [])
            check(args and args[0] in flags, f"{where} runs a rotor command: {args[:1]}")
            for a in args[1:]:
                check(a.startswith("--"), f"{where}: {a!r} is a --flag=value")
                flag = a.split("=", 1)[0]
                check(flag in flags[args[0]], f"{where}: `rotor {args[0]}` has {flag}")
            if "$(POD_IP)" in " ".join(args):
                env = {e["name"]: e for e in c.get("env", [])}
                check(env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                      == "status.podIP", f"{where}: POD_IP comes from status.podIP")
        if c in pod.get("initContainers", []):
            continue
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for probe in ["livenessProbe", "readinessProbe"]:
            check(probe in c, f"{where} has a {probe}")
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"]:
            http = c.get(probe, {}).get("httpGet")
            if not http:
                continue
            check(http["port"] in ports, f"{where} {probe} port {http['port']} is a container port")
            if rotor_container:
                check(http["path"] in SERVES[c["args"][0]],
                      f"{where} {probe} {http['path']} is served by `rotor {c['args'][0]}`")
        if rotor_container and c["args"][0] == "frontend":
            check(c["livenessProbe"]["httpGet"]["path"] == "/live"
                  and c["readinessProbe"]["httpGet"]["path"] == "/health",
                  f"{where}: liveness on /live, readiness on /health")
print("ok: probes on served routes, resource requests, real flags")

# 5. Services reach pods on named ports.
for (kind, name), svc in by_key.items():
    if kind != "Service":
        continue
    sel = svc["spec"]["selector"]
    pods = [d for d in deployments.values()
            if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())]
    check(len(pods) == 1, f"Service {name} selects the pods of one Deployment (got {len(pods)})")
    names = {p["name"] for c in pods[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    for p in svc["spec"]["ports"]:
        check(p["targetPort"] in names, f"Service {name} port {p['name']} targets a named container port")
print("ok: every Service selects one Deployment's pods on named ports")

# 6. The planner scales Deployments that exist, with a profile that parses.
planner = deployments["rotor-planner"]["spec"]["template"]["spec"]["containers"][0]["args"]
targets = [a.split("=", 2)[2] for a in planner if a.startswith("--k8s-deployment=")]
check(targets and all(t in deployments for t in targets), f"the planner's Deployments exist: {targets}")
check("--connector=kubernetes" in planner, "the planner uses the kubernetes connector")
profile = json.loads(by_key[("ConfigMap", "rotor-planner-profile")]["data"]["profile.json"])
check(profile["prefill"] and profile["decode"] and profile["max_batch"] > 0, "the profile has points")
for a in planner:
    if a.startswith("--frontend="):
        host = a.split("//", 1)[1].split(":")[0]
        check(("Service", host) in by_key, f"the planner scrapes Service {host}")
print("ok: the planner's Deployments, profile and frontend exist")

print(f"kubernetes manifests check passed: {len(objects)} objects")
