#!/usr/bin/env python3
"""Checks of the Helm chart charts/shopfleet (see tests/chart/README.md).

Run with the venv that .ci/tools installs (it has kubernetes-validate and
PyYAML):

    .ci/tools && target/tools/venv/bin/python tests/chart/check_chart.py

Tools come from target/tools/bin, or from the environment variables HELM
and PROMTOOL (kubectl, also installed by .ci/tools, is for the live steps of
docs/install.md: nothing here needs a cluster). Prints one line per check and ends with
`N passed, M failed`; exits 1 when a check failed.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "shopfleet"
RELEASE = "shopfleet"
NAMESPACE = "shopfleet-system"
KUBERNETES_VERSION = "1.35.0"
RUNBOOK = ROOT / "docs" / "runbook.md"
ALERTS_TEST = ROOT / "tests" / "chart" / "alerts_test.yaml"
# The runbook base URL that the runbook_url expectations of alerts_test.yaml
# are written for (its header says so).
TEST_RUNBOOK_BASE_URL = "https://example.com/shopfleet"
LEASE_NAME = "shopfleet-leader"
RESTRICTED_UID = 65532

try:
    import yaml
    import kubernetes_validate
except ImportError as missing:  # pragma: no cover - a usage error
    sys.exit(
        f"check_chart.py: {missing}; run it with the venv of .ci/tools: "
        "target/tools/venv/bin/python tests/chart/check_chart.py"
    )


def tool(name: str) -> str:
    path = os.environ.get(name.upper()) or str(ROOT / "target" / "tools" / "bin" / name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        sys.exit(f"check_chart.py: {name} not found at {path}; run .ci/tools first (or set {name.upper()})")
    return path


HELM = tool("helm")
PROMTOOL = tool("promtool")

# ---------------------------------------------------------------------------
# The RBAC matrix: what the operator does, and nothing else.
# (apiGroup, resource) -> verbs. resourceNames are checked separately.
WATCHED_RULES: dict[tuple[str, str], set[str]] = {
    ("shopfleet.io", "shopregions"): {"list", "watch", "patch"},
    ("shopfleet.io", "shopregions/status"): {"patch"},
    ("shopfleet.io", "shopregions/finalizers"): {"update"},
    ("apps", "deployments"): {"list", "watch", "create", "patch"},
    ("", "services"): {"list", "watch", "create", "patch"},
    ("", "configmaps"): {"list", "watch", "create", "patch"},
    ("autoscaling", "horizontalpodautoscalers"): {"list", "watch", "create", "patch"},
    ("policy", "poddisruptionbudgets"): {"list", "watch", "create", "patch", "delete"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("", "secrets"): {"get", "create"},
}
LEASE_RULES: dict[tuple[str, str], set[str]] = {
    ("coordination.k8s.io", "leases"): {"create", "get", "patch"},
}
# Resources a namespaced installation must never get through a ClusterRole.
WATCHED_RESOURCES = {resource for (_, resource) in WATCHED_RULES}


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.blocked: list[str] = []

    def report(self, name: str, problems: list[str], detail: str = "", blocked: str = "") -> None:
        if problems:
            self.failed += 1
            print(f"FAIL  {name}" + (f": {detail}" if detail else ""))
            for problem in problems:
                print(f"        - {problem}")
            if blocked:
                self.blocked.append(f"{name}: {blocked}")
        else:
            self.passed += 1
            print(f"PASS  {name}" + (f": {detail}" if detail else ""))
        sys.stdout.flush()


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd or ROOT, capture_output=True, text=True)


def last_lines(text: str, count: int = 8) -> list[str]:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-count:]


def deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def helm_template(values_file: Path | None, extra: list[str] = ()) -> subprocess.CompletedProcess:
    cmd = [HELM, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds"]
    if values_file:
        cmd += ["--values", str(values_file)]
    return run(cmd + list(extra))


def kind_of(doc: dict) -> str:
    meta = doc.get("metadata") or {}
    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return f"{doc.get('kind')} {where}{meta.get('name')}"


# ---------------------------------------------------------------------------
# Checks of one rendered variant.


def check_schemas(docs: list[dict]) -> tuple[list[str], str]:
    """kubernetes-validate, strict, for the built-in kinds; our own structure
    checks for the monitoring.coreos.com kinds it has no schema for."""
    problems, validated, own = [], [], []
    for doc in docs:
        if str(doc.get("apiVersion", "")).startswith("monitoring.coreos.com/"):
            own.append(doc["kind"])
            problems += check_monitoring_structure(doc)
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            validated.append(doc["kind"])
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{kind_of(doc)}: no Kubernetes schema for {doc.get('apiVersion')}")
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            problems.append(f"{kind_of(doc)}: {path}: {error.message}")
    detail = f"{len(validated)} documents valid for Kubernetes {KUBERNETES_VERSION} (strict)"
    if own:
        detail += f"; {', '.join(sorted(set(own)))}: no schema in kubernetes-validate, structure checked by this script"
    return problems, detail


DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def check_monitoring_structure(doc: dict) -> list[str]:
    name, problems = kind_of(doc), []
    if doc.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.append(f"{name}: apiVersion {doc.get('apiVersion')}, expected monitoring.coreos.com/v1")
    meta = doc.get("metadata") or {}
    if not meta.get("name") or meta.get("namespace") != NAMESPACE:
        problems.append(f"{name}: metadata.name and metadata.namespace={NAMESPACE} required")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return problems + [f"{name}: no spec"]
    if doc["kind"] == "ServiceMonitor":
        unknown = set(spec) - {"selector", "namespaceSelector", "endpoints", "jobLabel"}
        if unknown:
            problems.append(f"{name}: unexpected spec fields {sorted(unknown)}")
        if not (spec.get("selector") or {}).get("matchLabels"):
            problems.append(f"{name}: spec.selector.matchLabels required")
        endpoints = spec.get("endpoints")
        if not isinstance(endpoints, list) or not endpoints:
            problems.append(f"{name}: spec.endpoints must be a non-empty list")
        for endpoint in endpoints or []:
            unknown = set(endpoint) - {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels"}
            if unknown:
                problems.append(f"{name}: unexpected endpoint fields {sorted(unknown)}")
            if not isinstance(endpoint.get("port"), str):
                problems.append(f"{name}: endpoint.port must name a Service port")
            for key in ("interval", "scrapeTimeout"):
                if key in endpoint and not DURATION.match(str(endpoint[key])):
                    problems.append(f"{name}: endpoint.{key} {endpoint[key]!r} is not a duration")
    elif doc["kind"] == "PrometheusRule":
        if set(spec) != {"groups"}:
            problems.append(f"{name}: spec must hold groups only, has {sorted(spec)}")
        groups = spec.get("groups")
        if not isinstance(groups, list) or not groups:
            return problems + [f"{name}: spec.groups must be a non-empty list"]
        for group in groups:
            if not isinstance(group, dict) or not isinstance(group.get("name"), str):
                problems.append(f"{name}: every group needs a name")
                continue
            unknown = set(group) - {"name", "interval", "rules", "limit", "partial_response_strategy"}
            if unknown:
                problems.append(f"{name}: group {group['name']}: unexpected fields {sorted(unknown)}")
            for rule in group.get("rules") or []:
                label = rule.get("alert") or rule.get("record")
                if ("alert" in rule) == ("record" in rule):
                    problems.append(f"{name}: group {group['name']}: a rule needs exactly one of alert, record")
                if not isinstance(rule.get("expr"), (str, int, float)):
                    problems.append(f"{name}: rule {label}: expr required")
                unknown = set(rule) - {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
                if unknown:
                    problems.append(f"{name}: rule {label}: unexpected fields {sorted(unknown)}")
                for key in ("for", "keep_firing_for"):
                    if key in rule and not DURATION.match(str(rule[key])):
                        problems.append(f"{name}: rule {label}: {key} {rule[key]!r} is not a duration")
                for key in ("labels", "annotations"):
                    value = rule.get(key, {})
                    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                        problems.append(f"{name}: rule {label}: {key} must map names to strings")
    else:
        problems.append(f"{name}: unexpected monitoring.coreos.com kind")
    return problems


def find(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc.get("kind") == kind]


def check_restricted(docs: list[dict]) -> list[str]:
    deployments = find(docs, "Deployment")
    if len(deployments) != 1:
        return [f"expected one Deployment, found {len(deployments)}"]
    pod = deployments[0]["spec"]["template"]["spec"]
    problems = []
    psc = pod.get("securityContext") or {}
    want_pod = {"runAsNonRoot": True, "runAsUser": RESTRICTED_UID, "runAsGroup": RESTRICTED_UID}
    for key, want in want_pod.items():
        if psc.get(key) != want:
            problems.append(f"pod securityContext.{key} is {psc.get(key)!r}, expected {want!r}")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("pod securityContext.seccompProfile.type is not RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not True:
        problems.append("pod automountServiceAccountToken is not true")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"pod {key} is set")
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            problems.append(f"volume {volume.get('name')} is a hostPath")
    containers = (pod.get("containers") or []) + (pod.get("initContainers") or [])
    for container in containers:
        name = container.get("name")
        sc = container.get("securityContext") or {}
        want = {
            "runAsNonRoot": True,
            "runAsUser": RESTRICTED_UID,
            "runAsGroup": RESTRICTED_UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
        }
        for key, value in want.items():
            if sc.get(key) != value:
                problems.append(f"container {name}: securityContext.{key} is {sc.get(key)!r}, expected {value!r}")
        if sc.get("privileged"):
            problems.append(f"container {name}: privileged")
        caps = sc.get("capabilities") or {}
        if caps.get("drop") != ["ALL"]:
            problems.append(f"container {name}: capabilities.drop is {caps.get('drop')!r}, expected ['ALL']")
        if caps.get("add"):
            problems.append(f"container {name}: capabilities.add {caps['add']!r}")
        if (sc.get("seccompProfile") or {}).get("type", "RuntimeDefault") != "RuntimeDefault":
            problems.append(f"container {name}: seccompProfile is not RuntimeDefault")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"container {name}: hostPort {port['hostPort']}")
    return problems


def expected_args(values: dict) -> list[str]:
    args = ["run", f"--cloud={values['cloud']}"]
    if values["cloud"] == "simulated":
        args.append(f"--sim-speed={values['simSpeed']}")
    if values.get("awsEndpointUrl"):
        args.append(f"--aws-endpoint-url={values['awsEndpointUrl']}")
    args.append(f"--aws-requests-per-second={values['awsRequestsPerSecond']}")
    args.append(f"--max-concurrent-reconciles={values['maxConcurrentReconciles']}")
    args += [f"--log-format={values['logFormat']}", f"--metrics-port={values['metrics']['port']}"]
    if values.get("watchNamespaces"):
        args.append("--namespace=" + ",".join(values["watchNamespaces"]))
    return args


def fullname(values: dict) -> str:
    """The chart's shopfleet.fullname helper, for RELEASE."""
    if values.get("fullnameOverride"):
        return values["fullnameOverride"][:63].rstrip("-")
    name = values.get("nameOverride") or "shopfleet"
    return (RELEASE if name in RELEASE else f"{RELEASE}-{name}")[:63].rstrip("-")


def sa_name(values: dict) -> str:
    if values["serviceAccount"]["create"]:
        return values["serviceAccount"]["name"] or fullname(values)
    return values["serviceAccount"]["name"] or "default"


def check_wiring(docs: list[dict], values: dict) -> list[str]:
    """Args, env, probes, ports, resources, replicas, PDB, Service and
    ServiceAccount agree with the values."""
    deployments = find(docs, "Deployment")
    if len(deployments) != 1:
        return [f"expected one Deployment, found {len(deployments)}"]
    deployment = deployments[0]
    problems = []
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    port = values["metrics"]["port"]
    if spec.get("replicas") != values["replicaCount"]:
        problems.append(f"replicas {spec.get('replicas')}, values say {values['replicaCount']}")
    if container.get("args") != expected_args(values):
        problems.append(f"args {container.get('args')}, expected {expected_args(values)}")
    env = {e["name"]: e for e in container.get("env") or []}
    for var, field in (("POD_NAMESPACE", "metadata.namespace"), ("POD_NAME", "metadata.name")):
        got = ((env.get(var) or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
        if got != field:
            problems.append(f"env {var} is not the downward API's {field}")
    ports = {p.get("name"): p for p in container.get("ports") or []}
    if (ports.get("metrics") or {}).get("containerPort") != port:
        problems.append(f"no container port named metrics on {port}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (container.get(probe) or {}).get("httpGet") or {}
        if get.get("path") != path or get.get("port") not in ("metrics", port):
            problems.append(f"{probe} is not GET {path} on the metrics port")
    resources = container.get("resources") or {}
    if not resources.get("requests") or not resources.get("limits"):
        problems.append("resources need requests and limits")
    if resources != values["resources"]:
        problems.append(f"resources {resources} differ from the values {values['resources']}")
    if pod.get("serviceAccountName") != sa_name(values):
        problems.append(f"serviceAccountName {pod.get('serviceAccountName')}, expected {sa_name(values)}")
    selector = spec["selector"]["matchLabels"]
    labels = spec["template"]["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in selector.items()):
        problems.append("the pod labels do not match the Deployment selector")
    pdbs = find(docs, "PodDisruptionBudget")
    if values["replicaCount"] > 1:
        if len(pdbs) != 1:
            problems.append(f"replicaCount {values['replicaCount']} needs one PodDisruptionBudget, found {len(pdbs)}")
        else:
            pdb = pdbs[0]["spec"]
            if pdb.get("minAvailable") != 1 or pdb.get("selector", {}).get("matchLabels") != selector:
                problems.append("the PodDisruptionBudget is not minAvailable 1 on the operator pods")
    elif pdbs:
        problems.append("a single replica must have no PodDisruptionBudget (it would block every drain)")
    services = find(docs, "Service")
    if len(services) != 1:
        problems.append(f"expected one (metrics) Service, found {len(services)}")
    else:
        service = services[0]["spec"]
        if service.get("selector") != selector:
            problems.append("the metrics Service does not select the operator pods")
        if [(p.get("name"), p.get("port")) for p in service.get("ports", [])] != [("metrics", port)]:
            problems.append(f"the metrics Service must expose port {port} named metrics")
    accounts = [d["metadata"]["name"] for d in find(docs, "ServiceAccount")]
    if values["serviceAccount"]["create"] and accounts != [sa_name(values)]:
        problems.append(f"ServiceAccounts {accounts}, expected [{sa_name(values)}]")
    annotations = (find(docs, "ServiceAccount") or [{}])[0].get("metadata", {}).get("annotations") or {}
    if annotations != (values["serviceAccount"]["annotations"] or {}):
        problems.append("the ServiceAccount annotations differ from the values")
    return problems


def rbac_roles(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d.get("kind") in ("Role", "ClusterRole")]


def check_no_wildcard(docs: list[dict]) -> tuple[list[str], str]:
    problems, rules = [], 0
    for role in rbac_roles(docs):
        if role.get("aggregationRule"):
            problems.append(f"{kind_of(role)}: aggregationRule")
        for rule in role.get("rules") or []:
            rules += 1
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                for value in rule.get(field) or []:
                    if "*" in str(value):
                        problems.append(f"{kind_of(role)}: {field} contains {value!r}")
    return problems, f"{rules} rules in {len(rbac_roles(docs))} Roles/ClusterRoles"


def grants(role: dict) -> tuple[dict[tuple[str, str], set[str]], list[tuple[dict, str, str]]]:
    granted: dict[tuple[str, str], set[str]] = {}
    expanded = []
    for rule in role.get("rules") or []:
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    granted.setdefault((group, resource), set()).add(verb)
                    expanded.append((rule, group, resource, verb))
    return granted, expanded


def check_rbac_matrix(docs: list[dict], values: dict) -> tuple[list[str], str]:
    """Every rule is in the matrix, in the right scope, with the right
    resourceNames; and the operator gets all it needs."""
    problems = []
    watched = values.get("watchNamespaces") or []
    secret_names = (values["rbac"]["cacheAuthSecretNames"] or []) + (
        values["rbac"].get("databaseMasterSecretNames") or []
    )
    sa = sa_name(values)
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in rbac_roles(docs)}
    bindings = [d for d in docs if d.get("kind") in ("RoleBinding", "ClusterRoleBinding")]

    def subjects_ok(binding: dict) -> bool:
        return binding.get("subjects") == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]

    bound: dict[tuple[str, str | None, str], dict] = {}
    for binding in bindings:
        ref = binding["roleRef"]
        ns = binding["metadata"].get("namespace")
        if not subjects_ok(binding):
            problems.append(f"{kind_of(binding)}: subjects must be the operator's ServiceAccount only")
        if ref.get("kind") == "Role":
            key = ("Role", ns, ref["name"])
        else:
            key = ("ClusterRole", None, ref["name"])
        if key not in roles:
            problems.append(f"{kind_of(binding)}: binds {ref.get('kind')} {ref.get('name')} that the chart does not create")
        bound[key] = binding
        if binding["kind"] == "RoleBinding" and ref.get("kind") == "ClusterRole":
            problems.append(f"{kind_of(binding)}: binds a ClusterRole")

    scopes_seen = []
    for key, role in roles.items():
        kind, ns, name = key
        if key not in bound:
            problems.append(f"{kind_of(role)}: not bound to the operator")
        granted, expanded = grants(role)
        if kind == "Role" and ns == NAMESPACE and any(r == "leases" for (_, r) in granted):
            matrix, scope = LEASE_RULES, "lease"
        elif kind == "ClusterRole" and not watched:
            matrix, scope = WATCHED_RULES, "cluster"
        elif kind == "Role" and ns in watched:
            matrix, scope = WATCHED_RULES, f"namespace {ns}"
        else:
            problems.append(f"{kind_of(role)}: no {kind} is expected there")
            continue
        scopes_seen.append(scope)
        for rule, group, resource, verb in expanded:
            if verb not in matrix.get((group, resource), set()):
                problems.append(f"{kind_of(role)}: {verb} {group or 'core'}/{resource} is not in the matrix")
                continue
            names = rule.get("resourceNames") or []
            if resource == "leases":
                if verb in ("get", "patch") and names != [LEASE_NAME]:
                    problems.append(f"{kind_of(role)}: {verb} leases must be narrowed to [{LEASE_NAME}], is {names}")
                if verb == "create" and names:
                    problems.append(f"{kind_of(role)}: create cannot be narrowed by resourceNames")
            elif resource == "secrets" and verb == "create":
                if names:
                    problems.append(f"{kind_of(role)}: create cannot be narrowed by resourceNames")
            elif resource == "secrets":
                if names != secret_names:
                    problems.append(f"{kind_of(role)}: secrets resourceNames {names}, values say {secret_names}")
            elif names:
                problems.append(f"{kind_of(role)}: unexpected resourceNames on {resource}")
        for (group, resource), verbs in matrix.items():
            missing = verbs - granted.get((group, resource), set())
            if missing:
                problems.append(f"{kind_of(role)}: missing {sorted(missing)} on {group or 'core'}/{resource}")
    expected_scopes = {"lease"} | ({"cluster"} if not watched else {f"namespace {ns}" for ns in watched})
    if set(scopes_seen) != expected_scopes or len(scopes_seen) != len(expected_scopes):
        problems.append(f"role scopes {sorted(scopes_seen)}, expected one each of {sorted(expected_scopes)}")
    return problems, "scopes: " + ", ".join(sorted(expected_scopes))


def check_namespaced_only(docs: list[dict]) -> list[str]:
    problems = []
    for role in find(docs, "ClusterRole"):
        granted, _ = grants(role)
        touched = sorted({r for (_, r) in granted if r.split("/")[0] in WATCHED_RESOURCES})
        if touched:
            problems.append(f"{kind_of(role)} grants {touched} cluster-wide")
    for binding in find(docs, "ClusterRoleBinding"):
        problems.append(f"{kind_of(binding)} in a namespaced installation")
    return problems


def check_spec_guard(docs: list[dict], values: dict) -> list[str]:
    policies = find(docs, "ValidatingAdmissionPolicy")
    bindings = find(docs, "ValidatingAdmissionPolicyBinding")
    if not values["specGuard"]["enabled"]:
        return [f"specGuard disabled but {len(policies)} policies rendered"] if policies else []
    if len(policies) != 1 or len(bindings) != 1:
        return [f"expected one ValidatingAdmissionPolicy and one binding, found {len(policies)} and {len(bindings)}"]
    policy, binding = policies[0], bindings[0]
    spec, problems = policy["spec"], []
    user = f"system:serviceaccount:{NAMESPACE}:{sa_name(values)}"
    if policy["apiVersion"] != "admissionregistration.k8s.io/v1":
        problems.append(f"apiVersion {policy['apiVersion']}")
    rules = spec.get("matchConstraints", {}).get("resourceRules") or []
    if not any(
        r.get("apiGroups") == ["shopfleet.io"]
        and r.get("resources") == ["shopregions"]
        and set(r.get("operations") or []) == {"CREATE", "UPDATE", "DELETE"}
        for r in rules
    ):
        problems.append("the policy must match CREATE, UPDATE and DELETE of shopfleet.io shopregions")
    for rule in rules:
        for field in ("apiGroups", "apiVersions", "resources", "operations"):
            if "*" in "".join(rule.get(field) or []):
                problems.append(f"resourceRules.{field} has a wildcard")
    conditions = " ".join(c.get("expression", "") for c in spec.get("matchConditions") or [])
    if user not in conditions:
        problems.append(f"matchConditions do not name {user}")
    validations = spec.get("validations") or []
    expressions = " ".join(v.get("expression", "") for v in validations)
    if "object.spec == oldObject.spec" not in expressions or 'request.operation == "UPDATE"' not in expressions:
        problems.append("the validation must allow only UPDATEs that keep object.spec == oldObject.spec")
    messages = " ".join(v.get("message", "") for v in validations)
    if "never writes the spec" not in messages:
        problems.append("the message must say that the operator never writes spec")
    if spec.get("failurePolicy") != "Fail":
        problems.append("failurePolicy must be Fail")
    if binding["spec"].get("policyName") != policy["metadata"]["name"] or binding["spec"].get("validationActions") != ["Deny"]:
        problems.append("the binding must Deny with this policy")
    return problems


def github_anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lowercase, markup and punctuation dropped,
    spaces to '-', repeated anchors numbered -1, -2, ..."""
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    fence = None
    for line in markdown.splitlines():
        stripped = line.strip()
        match = re.match(r"^(`{3,}|~{3,})", stripped)
        if match:
            if fence is None:
                fence = match.group(1)[0]
            elif stripped.startswith(fence * 3):
                fence = None
            continue
        if fence:
            continue
        heading = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1))
        text = re.sub(r"<[^>]+>", "", text).lower()
        slug = "".join(ch for ch in text if ch.isalnum() or ch in " -_").replace(" ", "-")
        n = counts.get(slug, 0)
        anchors.add(slug if n == 0 else f"{slug}-{n}")
        counts[slug] = n + 1
    return anchors


def rendered_groups(docs: list[dict]) -> list[dict] | None:
    rules = find(docs, "PrometheusRule")
    return rules[0]["spec"]["groups"] if len(rules) == 1 else None


def check_alerts_embedded(groups: list[dict], values: dict) -> list[str]:
    """The rendered groups are files/alerts.yaml untouched by Helm, but for
    RUNBOOK_BASE_URL and the additional labels."""
    base = values["prometheusRule"]["runbookBaseUrl"].rstrip("/")
    source = (CHART / "files" / "alerts.yaml").read_text().replace("RUNBOOK_BASE_URL", base)
    expected = yaml.safe_load(source)["groups"]
    extra = values["prometheusRule"]["additionalLabels"] or {}
    for group in expected:
        for rule in group.get("rules") or []:
            if "alert" in rule and extra:
                rule["labels"] = {**extra, **(rule.get("labels") or {})}
    if groups != expected:
        return ["the rendered groups differ from files/alerts.yaml (templated, or labels not as expected)"]
    if "RUNBOOK_BASE_URL" in json.dumps(groups):
        return ["RUNBOOK_BASE_URL left in the rendered rules"]
    return []


def check_runbook_links(groups: list[dict], values: dict) -> tuple[list[str], str, str]:
    base = values["prometheusRule"]["runbookBaseUrl"].rstrip("/") + "/docs/runbook.md#"
    alerts = [rule for group in groups for rule in group.get("rules") or [] if "alert" in rule]
    problems = []
    anchors = github_anchors(RUNBOOK.read_text()) if RUNBOOK.exists() else None
    for alert in alerts:
        url = (alert.get("annotations") or {}).get("runbook_url")
        if not url:
            problems.append(f"{alert['alert']}: no annotations.runbook_url")
            continue
        if not url.startswith(base) or len(url) == len(base):
            problems.append(f"{alert['alert']}: runbook_url {url} is not {base}<anchor>")
            continue
        anchor = url[len(base):]
        if anchors is None:
            problems.append(f"{alert['alert']}: #{anchor}: docs/runbook.md does not exist yet")
        elif anchor not in anchors:
            problems.append(f"{alert['alert']}: #{anchor} is no heading of docs/runbook.md")
    blocked = "docs/runbook.md is not written yet" if anchors is None else ""
    return problems, f"{len(alerts)} alerts, runbook anchors in docs/runbook.md", blocked


def promtool_check(groups: list[dict]) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "alerts.yaml"
        path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        result = run([PROMTOOL, "check", "rules", str(path)])
        return [] if result.returncode == 0 else last_lines(result.stdout + result.stderr)


def check_values_documented() -> tuple[list[str], str]:
    """Every key of values.yaml that the schema names has a comment line
    right above it, and values.yaml and values.schema.json know the same
    keys (keys inside free-form maps such as resources.requests are data)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    lines = (CHART / "values.yaml").read_text().splitlines()
    problems, stack, seen = [], [], set()
    for number, line in enumerate(lines, 1):
        match = re.match(r"^(\s*)([A-Za-z_][\w.-]*):", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        stack.append((indent, key))
        node = schema
        for part in path[:-1]:
            node = (node.get("properties") or {}).get(part) or {}
        if key not in (node.get("properties") or {}):
            if "properties" in node:
                problems.append(f"line {number}: {'.'.join(path)} is not in values.schema.json")
            continue
        seen.add(".".join(path))
        if not lines[number - 2].strip().startswith("#"):
            problems.append(f"line {number}: {'.'.join(path)} has no comment above it")

    def schema_paths(node: dict, prefix: str) -> set[str]:
        paths = set()
        for key, child in (node.get("properties") or {}).items():
            paths.add(prefix + key)
            if child.get("type") == "object":  # not the optional selectors
                paths |= schema_paths(child, prefix + key + ".")
        return paths

    for path in sorted(schema_paths(schema, "") - seen - {"global"}):
        problems.append(f"{path} is in values.schema.json but not in values.yaml")
    return problems, f"{len(seen)} keys"


# ---------------------------------------------------------------------------


def main() -> int:
    checks = Checks()
    print(f"chart {CHART.relative_to(ROOT)}; release {RELEASE} in {NAMESPACE}; Kubernetes {KUBERNETES_VERSION}")
    helm_version = run([HELM, "version", "--template", "{{.Version}}"]).stdout.strip()
    promtool_version = (run([PROMTOOL, "--version"]).stdout.split() + ["?"] * 3)[2]
    print(f"helm {helm_version} ({HELM}), promtool {promtool_version} ({PROMTOOL}), "
          f"kubernetes-validate {kubernetes_validate.__version__ if hasattr(kubernetes_validate, '__version__') else '?'}")

    # The chart's CRD is the repository's, byte for byte.
    repo_crd, chart_crd = ROOT / "crds" / "shopregion.yaml", CHART / "crds" / "shopregion.yaml"
    same = chart_crd.exists() and repo_crd.read_bytes() == chart_crd.read_bytes()
    problems = [] if same else ["they differ: cp crds/shopregion.yaml charts/shopfleet/crds/shopregion.yaml"]
    crd = yaml.safe_load(chart_crd.read_text()) if chart_crd.exists() else None
    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition" \
            or crd.get("metadata", {}).get("name") != "shopregions.shopfleet.io":
        problems.append("charts/shopfleet/crds/shopregion.yaml is not the CRD shopregions.shopfleet.io")
    checks.report("crd: charts/shopfleet/crds/shopregion.yaml == crds/shopregion.yaml", problems)

    problems, detail = check_values_documented()
    checks.report("values.yaml: a comment above every key; same keys as values.schema.json", problems, detail)

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    variants: list[tuple[str, Path | None]] = [("defaults", None)]
    variants += [(p.name, p) for p in sorted((CHART / "ci").glob("*.yaml"))]

    for label, values_file in variants:
        values = deep_merge(defaults, yaml.safe_load(values_file.read_text()) if values_file else {})
        tag = f"[{label}]"
        lint = [HELM, "lint", "--strict", str(CHART)] + (["--values", str(values_file)] if values_file else [])
        result = run(lint)
        checks.report(f"{tag} helm lint --strict", [] if result.returncode == 0 else last_lines(result.stdout + result.stderr))
        result = helm_template(values_file)
        if result.returncode != 0:
            checks.report(f"{tag} helm template", last_lines(result.stderr))
            continue
        docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        checks.report(f"{tag} helm template", [], f"{len(docs)} documents: " + ", ".join(sorted({d['kind'] for d in docs})))

        problems, detail = check_schemas(docs)
        checks.report(f"{tag} schemas", problems, detail)
        checks.report(f"{tag} deployment runs restricted", check_restricted(docs))
        checks.report(f"{tag} deployment wiring (args, env, probes, resources, PDB, Service)", check_wiring(docs, values),
                      " ".join(expected_args(values)))
        problems, detail = check_no_wildcard(docs)
        checks.report(f"{tag} rbac: no wildcard", problems, detail)
        problems, detail = check_rbac_matrix(docs, values)
        checks.report(f"{tag} rbac: only the matrix, all of it", problems, detail)
        if values.get("watchNamespaces"):
            checks.report(f"{tag} rbac: no cluster-wide access to ShopRegions or children", check_namespaced_only(docs))
        checks.report(f"{tag} spec guard (ValidatingAdmissionPolicy)", check_spec_guard(docs, values))

        groups = rendered_groups(docs)
        if values["prometheusRule"]["enabled"]:
            if groups is None:
                checks.report(f"{tag} PrometheusRule", ["prometheusRule.enabled but no single PrometheusRule rendered"])
                continue
            checks.report(f"{tag} alerts embedded untemplated from files/alerts.yaml", check_alerts_embedded(groups, values))
            problems, detail, blocked = check_runbook_links(groups, values)
            checks.report(f"{tag} alerts: runbook_url anchors", problems, detail, blocked)
            checks.report(f"{tag} promtool check rules", promtool_check(groups))

    # values.schema.json rejects wrong values.
    for args, what in (
        (["--set", "unknownKey=1"], "an unknown top-level key"),
        (["--set", "replicaCount=abc"], "a wrong type (replicaCount=abc)"),
        (["--set", "cloud=gcp"], "a value outside an enum (cloud=gcp)"),
        (["--set", "serviceAccount.unknownKey=1"], "an unknown nested key (serviceAccount.unknownKey)"),
    ):
        result = helm_template(None, args)
        said_schema = "schema" in result.stderr.lower()
        problems = []
        if result.returncode == 0:
            problems.append(f"helm template {' '.join(args)} succeeded")
        elif not said_schema:
            problems.append("failed, but not on the schema: " + " ".join(last_lines(result.stderr, 2)))
        checks.report(f"values.schema.json rejects {what}", problems)

    # promtool test rules: the groups rendered with the defaults (the rule
    # enabled, the test file's runbook base URL), as alerts.yaml beside a
    # copy of tests/chart/alerts_test.yaml (whose rule_files names alerts.yaml).
    result = helm_template(None, ["--set", "prometheusRule.enabled=true",
                                  "--set", f"prometheusRule.runbookBaseUrl={TEST_RUNBOOK_BASE_URL}"])
    groups = rendered_groups([d for d in yaml.safe_load_all(result.stdout) if d]) if result.returncode == 0 else None
    if groups is None:
        checks.report("promtool test rules", ["cannot render the PrometheusRule with the defaults"])
    elif not ALERTS_TEST.exists():
        print("SKIP  promtool test rules: tests/chart/alerts_test.yaml does not exist yet (only check rules ran)")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "alerts.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
            shutil.copy(ALERTS_TEST, Path(tmp) / "alerts_test.yaml")
            result = run([PROMTOOL, "test", "rules", "alerts_test.yaml"], cwd=Path(tmp))
            checks.report("promtool test rules tests/chart/alerts_test.yaml",
                          [] if result.returncode == 0 else last_lines(result.stdout + result.stderr, 20))

    if checks.blocked:
        print("blocked on files not written yet:")
        for line in checks.blocked:
            print(f"  {line}")
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
