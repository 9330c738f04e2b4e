#!/usr/bin/env python3
"""Fleet benchmark: the operator binary against a real cluster, N shops at once.

For each N of --shops (default 1,10,100,1000), in a fresh namespace of the
cluster KUBECONFIG names (the project's real control plane: ../shared/k8s):

1. the CRD (crds/shopregion.yaml, server-side apply);
2. `target/release/shopfleet run --cloud simulated ...` as its own process,
   so that its memory is the operator's (and the simulated cloud's, which
   lives in that process), never an API server's;
3. N shops x 3 ShopRegions copied from samples/acme-*.yaml and renamed as
   `simulate`'s fleet form does (src/simulate/fleet.rs), applied in chunks
   with `kubectl apply --server-side`;
4. time to converge (every ShopRegion Ready=True), then a steady window:
   AWS requests per region, Kubernetes writes, mutating AWS calls;
5. a us-east-1 outage through the simulated cloud's control endpoint: time
   until every shop has exactly one writer outside us-east-1, AWS requests
   and reconciles during the outage;
6. the operator's peak RSS (VmHWM) and RSS per ShopRegion;
7. cleanup: the operator stopped, the namespace deleted.

Standard library only; everything Kubernetes goes through kubectl. See
docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGIONS = ("us-east-1", "eu-west-1", "ap-northeast-1")
LOST_REGION = "us-east-1"
# AWS operations that change something (the simulated cloud's own notion of
# "mutating" is reported beside it, from /sim/state).
MUTATING_PREFIXES = (
    "Create", "Modify", "Delete", "Failover", "Switchover", "Remove", "Add",
    "Increase", "Decrease", "Disassociate",
)
CHILD_KINDS = ("Secret", "ConfigMap")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# kubectl


# A busy API server answers a read now and then with an error that the next
# read does not get ("Too large resource version" from a watch cache behind
# etcd, a timeout): reads are retried a few times, writes never.
READ_ATTEMPTS = 5


def kubectl(*args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 600) -> str:
    attempts = READ_ATTEMPTS if args and args[0] == "get" else 1
    for attempt in range(1, attempts + 1):
        proc = subprocess.run(
            ["kubectl", *args], input=stdin, capture_output=True, text=True,
            timeout=timeout,
        )
        if proc.returncode == 0 or attempt == attempts:
            break
        log(f"kubectl {args[0]} failed (attempt {attempt}), retrying: "
            f"{proc.stderr.strip()[:200]}")
        time.sleep(2 * attempt)
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    # A warning on apply means the manifest is not what the API server
    # expects: the figures would describe something else.
    if check and "Warning:" in proc.stderr:
        raise RuntimeError(f"kubectl {' '.join(args)} warned: {proc.stderr.strip()}")
    return proc.stdout


def items_of(document: dict) -> list[dict]:
    return document["items"] if document.get("kind") == "List" else [document]


# --------------------------------------------------------------------------
# the shops' manifests


def load_templates(samples: list[Path]) -> list[dict]:
    """The sample manifests as JSON, converted by kubectl (no YAML parser in
    the standard library)."""
    objects = []
    for path in samples:
        # One file at a time: kubectl prints several objects as
        # concatenated documents, not as one List.
        out = kubectl("create", "--dry-run=client", "-o", "json", "-f", str(path))
        objects += items_of(json.loads(out))
    for obj in objects:
        obj["metadata"].pop("namespace", None)
        obj["metadata"].pop("creationTimestamp", None)
    return objects


def shop_names(template: str, count: int) -> list[str]:
    # acme-0001 ...: at least four digits so that the names of one shop are
    # the same whatever N is; wider when N needs it (sorted in order).
    width = max(4, len(str(count)))
    return [f"{template}-{n:0{width}d}" for n in range(1, count + 1)]


def rename(name: str, template: str, shop: str) -> str:
    """As src/simulate/fleet.rs `Fleet::rename`: the template shop's prefix
    becomes the shop's; other names are kept (shared account networks)."""
    return shop + name[len(template):] if name.startswith(template) else name


def shop_copy(obj: dict, template: str, shop: str, replicas: int | None) -> dict:
    obj = json.loads(json.dumps(obj))
    meta = obj["metadata"]
    meta["name"] = rename(meta["name"], template, shop)
    if obj["kind"] != "ShopRegion":
        return obj
    spec = obj["spec"]
    spec["shop"] = shop
    # The identifiers every shop would otherwise share (fleet.rs does the
    # same), and the Secret the cache's AUTH token comes from (copied too).
    for path in (("database", "globalClusterIdentifier"),
                 ("cache", "globalReplicationGroupSuffix")):
        holder = spec.get(path[0]) or {}
        if isinstance(holder.get(path[1]), str):
            holder[path[1]] = rename(holder[path[1]], template, shop)
    secret_ref = (spec.get("cache") or {}).get("authSecretRef")
    if isinstance(secret_ref, dict) and isinstance(secret_ref.get("name"), str):
        secret_ref["name"] = rename(secret_ref["name"], template, shop)
    if replicas is not None:
        # The fake Nodes hold 250 Pods each: 1,000 shops at the samples'
        # 7-38 replicas per region would be ~60,000 Pods. Pinning the order
        # Deployments keeps the Kubernetes side feasible on 2 cores.
        orders = spec.setdefault("orders", {})
        orders["minReplicas"] = replicas
        orders["maxReplicas"] = replicas
    return obj


def fleet_objects(templates: list[dict], shops: list[str],
                  replicas: int | None) -> list[dict]:
    template = next(o["spec"]["shop"] for o in templates if o["kind"] == "ShopRegion")
    out = []
    for shop in shops:
        # Secrets and ConfigMaps first: a ShopRegion may name them.
        for obj in sorted(templates, key=lambda o: o["kind"] not in CHILD_KINDS):
            out.append(shop_copy(obj, template, shop, replicas))
    return out


def apply_chunks(objects: list[dict], namespace: str, chunk: int, parallel: int) -> float:
    """Applies the objects in chunks of `chunk`, `parallel` kubectl processes
    at a time: kubectl sends one request per object, so a single process
    takes minutes for a thousand shops on a busy API server. Chunks hold
    whole shops in order, so shops start in order."""
    started = time.monotonic()
    errors: list[BaseException] = []

    def apply(batch: list[dict]) -> None:
        document = {"apiVersion": "v1", "kind": "List", "items": batch}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(document, f)
            path = f.name
        try:
            kubectl("apply", "--server-side", "--field-manager=fleet-bench",
                    "-n", namespace, "-f", path)
        except BaseException as error:  # reported once every chunk is done
            errors.append(error)
        finally:
            os.unlink(path)

    batches = [objects[i:i + chunk] for i in range(0, len(objects), chunk)]
    for start in range(0, len(batches), parallel):
        threads = [threading.Thread(target=apply, args=(b,)) for b in batches[start:start + parallel]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return time.monotonic() - started


# --------------------------------------------------------------------------
# the operator process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port: int, path: str, method: str = "GET", timeout: float = 30) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=b"" if method == "POST" else None,
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read().decode()


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


class Operator:
    def __init__(self, binary: Path, namespace: str, speed: int, log_path: Path):
        self.port = free_port()
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = open(log_path, "w")
        cmd = [
            str(binary), "run", "--cloud", "simulated", "--sim-control",
            "--sim-account", str(ROOT / "samples/accounts/samples.yaml"),
            "--sim-speed", str(speed), "--namespace", namespace,
            "--metrics-port", str(self.port), "--lease-namespace", namespace,
        ]
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     cwd=ROOT)
        self.max_rss_kib = 0
        self._stop_sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample_rss, daemon=True)
        self._sampler.start()

    def _sample_rss(self) -> None:
        # VmHWM is the kernel's own peak; VmRSS sampled as a cross-check and
        # for the RSS at each phase.
        while not self._stop_sampling.wait(0.5):
            try:
                self.max_rss_kib = max(self.max_rss_kib, proc_status(self.proc.pid)["VmRSS"])
            except (OSError, KeyError):
                return

    def memory(self) -> dict[str, int]:
        return proc_status(self.proc.pid)

    def sockets(self) -> int:
        """Open sockets: the API server connections the client keeps (plus
        the metrics listener and the watches), a large part of the memory
        when many reconciles run at once."""
        fd_dir = f"/proc/{self.proc.pid}/fd"
        count = 0
        for fd in os.listdir(fd_dir):
            try:
                count += os.readlink(f"{fd_dir}/{fd}").startswith("socket:")
            except OSError:
                pass
        return count

    def wait_leader(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the operator exited ({self.proc.returncode}); see {self.log_path}")
            try:
                if re.search(r"^shopfleet_leader 1$", http(self.port, "/metrics"), re.M):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the operator did not become leader in {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        self._stop_sampling.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


# --------------------------------------------------------------------------
# metrics and the simulated cloud's state

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m:
            out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def parse_time(text: str) -> float:
    """A jiff/RFC 3339 timestamp as seconds since the epoch (Python 3.11's
    fromisoformat takes at most six fractional digits)."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    return dt.datetime.fromisoformat(text).timestamp()


def sim_state(port: int) -> dict:
    return json.loads(http(port, "/sim/state", timeout=60))


def sim_writers(port: int) -> dict:
    """`now` and `writers` alone: polled through a failover, the whole state
    (every cluster and group of the fleet) would be built in the operator's
    process several times a second and counted in its memory."""
    return json.loads(http(port, "/sim/writers", timeout=60))


def sim_now(port: int) -> float:
    return parse_time(sim_writers(port)["now"])


def snapshot(op: Operator) -> dict:
    samples = parse_metrics(http(op.port, "/metrics"))
    aws, writes, reconciles = {}, {}, 0.0
    for name, labels, value in samples:
        if name == "shopfleet_aws_requests_total":
            key = (labels.get("region", ""), labels.get("operation", ""), labels.get("outcome", ""))
            aws[key] = aws.get(key, 0.0) + value
        elif name == "shopfleet_kube_writes_total":
            key = (labels.get("verb", ""), labels.get("resource", ""))
            writes[key] = writes.get(key, 0.0) + value
        elif name == "shopfleet_reconciles_total":
            reconciles += value
    state = sim_state(op.port)
    return {
        "real": time.monotonic(),
        "virtual": parse_time(state["now"]),
        "aws": aws,
        "writes": writes,
        "reconciles": reconciles,
        "sim_mutating": state.get("mutatingCalls", 0),
        "memory": op.memory(),
    }


def window(a: dict, b: dict, regions: int) -> dict:
    """What happened between two snapshots, as rates per virtual minute."""
    virtual_min = (b["virtual"] - a["virtual"]) / 60
    per_region: dict[str, float] = {}
    mutating = 0.0
    for key, value in b["aws"].items():
        delta = value - a["aws"].get(key, 0.0)
        region, operation, _ = key
        per_region[region] = per_region.get(region, 0.0) + delta
        if operation.startswith(MUTATING_PREFIXES):
            mutating += delta
    writes = {
        f"{verb} {resource}": value - a["writes"].get((verb, resource), 0.0)
        for (verb, resource), value in b["writes"].items()
        if resource != "leases" and value - a["writes"].get((verb, resource), 0.0) > 0
    }
    return {
        "virtualMinutes": round(virtual_min, 2),
        "realSeconds": round(b["real"] - a["real"], 1),
        # None: the running process exported no AWS request counter at all.
        "awsRequestsPerRegionPerMinute": (
            {r: round(v / virtual_min, 1) for r, v in sorted(per_region.items())}
            if b["aws"] else None
        ),
        "awsMutatingCalls": int(mutating) if b["aws"] else None,
        "simMutatingCalls": b["sim_mutating"] - a["sim_mutating"],
        "kubeWrites": int(sum(writes.values())),
        "kubeWritesByVerbResource": {k: int(v) for k, v in sorted(writes.items())},
        "reconcilesPerShopRegion": round((b["reconciles"] - a["reconciles"]) / regions, 2),
        "reconcilesPerShopRegionPerMinute": round(
            (b["reconciles"] - a["reconciles"]) / regions / virtual_min, 3),
    }


def writers_by_shop(state: dict, shops: set[str]) -> dict[str, list[str]]:
    """The writer regions of each shop from /sim/writers: each writer is a
    cluster `<shop>-<region>` in `region`."""
    out: dict[str, list[str]] = {shop: [] for shop in shops}
    for entry in state.get("writers", []):
        region, cluster = entry.get("region", ""), entry.get("cluster", "")
        if not cluster.endswith("-" + region):
            continue
        shop = cluster[: -len(region) - 1]
        if shop in out:
            out[shop].append(region)
    return out


def shopregion_rows(namespace: str) -> list[tuple[str, str, str, str]]:
    path = ('{range .items[*]}{.metadata.name}{"\\t"}{.spec.region}{"\\t"}'
            '{.status.conditions[?(@.type=="Ready")].status}{"\\t"}'
            '{.status.writerRegion}{"\\n"}{end}')
    out = kubectl("get", "shopregions", "-n", namespace, "-o", f"jsonpath={path}", timeout=120)
    rows = []
    for line in out.splitlines():
        parts = (line.split("\t") + ["", "", "", ""])[:4]
        rows.append(tuple(parts))
    return rows


def rollouts_pending(namespace: str) -> int:
    """Deployments whose controller has not yet rolled out their latest
    generation to every replica."""
    document = json.loads(kubectl("get", "deployments", "-n", namespace, "-o", "json", timeout=300))
    pending = 0
    for item in document.get("items", []):
        status = item.get("status") or {}
        wanted = (item.get("spec") or {}).get("replicas", 1)
        done = (status.get("observedGeneration", 0) >= item["metadata"].get("generation", 0)
                and status.get("updatedReplicas", 0) == wanted
                and status.get("replicas", 0) == wanted
                and status.get("availableReplicas", 0) == wanted)
        pending += not done
    return pending


def promotion_timings(namespace: str, out_virtual: float) -> dict:
    """Per shop, from the survivors' status: when the lost writer was first
    seen failing (`status.health[us-east-1].since` of an Unhealthy verdict,
    the first bad sample) and when a region recorded its promotion intent
    (`status.lastFailover.startedAt` of a failover from us-east-1), in
    virtual seconds after the outage; the slowest shop and the median."""
    document = json.loads(kubectl("get", "shopregions", "-n", namespace, "-o", "json", timeout=300))
    first_bad: dict[str, float] = {}
    intent: dict[str, float] = {}
    for item in document.get("items", []):
        spec, status = item.get("spec", {}), item.get("status") or {}
        shop = spec.get("shop", "")
        if spec.get("region") == LOST_REGION:
            continue
        for health in status.get("health") or []:
            if health.get("region") == LOST_REGION and health.get("verdict") == "Unhealthy" \
                    and health.get("since"):
                at = parse_time(health["since"]) - out_virtual
                first_bad[shop] = min(first_bad.get(shop, at), at)
        record = status.get("lastFailover") or {}
        if record.get("from") == LOST_REGION and record.get("startedAt"):
            at = parse_time(record["startedAt"]) - out_virtual
            intent[shop] = min(intent.get(shop, at), at)

    def worst_and_median(values: dict[str, float]) -> dict:
        ordered = sorted(values.values())
        if not ordered:
            return {"shops": 0, "worst": None, "median": None}
        return {"shops": len(ordered), "worst": round(ordered[-1], 1),
                "median": round(ordered[len(ordered) // 2], 1)}

    return {"firstBadSampleVirtualSeconds": worst_and_median(first_bad),
            "intentRecordedVirtualSeconds": worst_and_median(intent)}


# --------------------------------------------------------------------------
# one N


def default_speed(shops: int) -> int:
    # What the operator keeps up with on 2 shared cores: the sampler rounds
    # and requeues come `speed` times as often in real time as in virtual
    # time, so the work per real second grows with shops x speed.
    if shops <= 10:
        return 60
    if shops <= 100:
        return 20
    if shops <= 300:
        return 10
    return 5


def run_one(args, shops_count: int, templates: list[dict]) -> dict:
    speed = args.speed or default_speed(shops_count)
    namespace = f"fleet-bench-{shops_count}-{os.getpid()}"
    shops = shop_names(args.template_shop, shops_count)
    objects = fleet_objects(templates, shops, None if args.replicas == 0 else args.replicas)
    regions = sum(1 for o in objects if o["kind"] == "ShopRegion")
    result: dict = {"shops": shops_count, "shopRegions": regions, "speed": speed,
                    "namespace": namespace}
    log(f"N={shops_count}: {regions} ShopRegions at --sim-speed {speed} in {namespace}")
    kubectl("create", "namespace", namespace)
    op = Operator(args.binary, namespace, speed,
                  ROOT / "target/fleet-bench" / namespace / "operator.log")
    try:
        op.wait_leader()
        result["rssIdleKiB"] = op.memory()["VmRSS"]

        # Converge.
        start_real = time.monotonic()
        start_virtual = sim_now(op.port)
        result["applySeconds"] = round(
            apply_chunks(objects, namespace, args.chunk, args.apply_parallel), 1)
        applied_virtual = sim_now(op.port)
        log(f"N={shops_count}: applied in {result['applySeconds']}s")
        poll = 0.5 if regions <= 30 else 1.0 if regions <= 300 else 3.0
        deadline = start_real + args.converge_timeout_minutes * 60 / speed + result["applySeconds"]
        ready = 0
        while True:
            rows = shopregion_rows(namespace)
            ready = sum(1 for r in rows if r[2] == "True")
            if len(rows) == regions and ready == regions:
                break
            if time.monotonic() > deadline:
                # What a fleet too large for this machine's speed still
                # tells: the memory with every ShopRegion applied and worked
                # on. No steady or outage figure without convergence.
                log(f"N={shops_count}: {ready}/{regions} Ready after "
                    f"{args.converge_timeout_minutes} virtual minutes; memory only")
                result["notConverged"] = f"{ready}/{regions} Ready after {args.converge_timeout_minutes} virtual min"
                result["reconcilesPerShopRegion"] = round(
                    snapshot(op)["reconciles"] / regions, 2)
                memory = op.memory()
                result["peakRssKiB"] = memory["VmHWM"]
                result["rssEndKiB"] = memory["VmRSS"]
                result["peakRssPerShopRegionKiB"] = round(memory["VmHWM"] / regions, 1)
                result["socketsEnd"] = op.sockets()
                return result
            time.sleep(poll)
        converged_real = time.monotonic()
        converged_virtual = sim_now(op.port)
        result["convergeRealSeconds"] = round(converged_real - start_real, 1)
        result["convergeVirtualMinutes"] = round((converged_virtual - start_virtual) / 60, 1)
        # The same from the moment the last object was accepted: the part of
        # the figure that is the operator's rather than kubectl's.
        result["convergeAfterApplyVirtualMinutes"] = round(
            (converged_virtual - applied_virtual) / 60, 1)
        result["convergePollResolutionVirtualSeconds"] = round(poll * speed)
        result["rssConvergedKiB"] = op.memory()["VmRSS"]
        log(f"N={shops_count}: Ready after {result['convergeVirtualMinutes']} virtual min "
            f"({result['convergeRealSeconds']}s real)")

        # The cluster's own controllers may still be rolling the order
        # Deployments out (a busy controller manager lags by minutes at a
        # thousand shops): each step of theirs changes replica counts that a
        # status reports, a write that is news, not the operator's churn.
        # The steady window starts once they are done.
        settle_deadline = time.monotonic() + args.converge_timeout_minutes * 60 / speed
        while rollouts_pending(namespace) and time.monotonic() < settle_deadline:
            time.sleep(max(poll, 5.0))
        result["rolloutsDoneVirtualMinutes"] = round(
            (sim_now(op.port) - start_virtual) / 60, 1)
        log(f"N={shops_count}: order Deployments rolled out after "
            f"{result['rolloutsDoneVirtualMinutes']} virtual min")

        # Steady state: a settle, then the window.
        time.sleep(args.settle_minutes * 60 / speed)
        a = snapshot(op)
        time.sleep(args.steady_minutes * 60 / speed)
        b = snapshot(op)
        result["steady"] = window(a, b, regions)
        result["rssSteadyKiB"] = b["memory"]["VmRSS"]
        result["socketsSteady"] = op.sockets()
        log(f"N={shops_count}: steady {json.dumps(result['steady'])}")

        # Outage of us-east-1, for every shop at once, at the outage's own
        # speed: the takeover grace and every deadline of a failover are
        # virtual time, and the operator's work per reconcile is real time,
        # so a speed above 1 shortens the one against the other.
        c = snapshot(op)
        speed = args.outage_speed or speed
        result["outageSpeed"] = speed
        http(op.port, f"/sim/speed/{speed}", method="POST")
        http(op.port, f"/sim/outage/{LOST_REGION}", method="POST")
        out_real = time.monotonic()
        out_virtual = sim_now(op.port)
        shop_set = set(shops)
        max_writers = 0
        moved = 0
        moved_virtual = None
        deadline = out_real + args.failover_timeout_minutes * 60 / speed
        while moved_virtual is None and time.monotonic() < deadline:
            state = sim_writers(op.port)
            writers = writers_by_shop(state, shop_set)
            max_writers = max(max_writers, max((len(w) for w in writers.values()), default=0))
            moved = sum(1 for w in writers.values() if len(w) == 1 and w[0] != LOST_REGION)
            if moved == len(writers):
                moved_virtual = parse_time(state["now"])
                moved_real = time.monotonic()
                break
            time.sleep(args.outage_poll)
        outage: dict = {"maxWritersOfOneShop": max_writers, "shopsMoved": moved}
        if moved_virtual is None:
            outage["allShopsMovedVirtualSeconds"] = None
        else:
            outage["allShopsMovedVirtualSeconds"] = round(moved_virtual - out_virtual, 1)
            outage["allShopsMovedRealSeconds"] = round(moved_real - out_real, 1)
        # The same from the ShopRegions' status (coarser: kubectl polls).
        status_deadline = out_real + args.failover_timeout_minutes * 60 / speed
        outage["survivorStatusesMovedVirtualSeconds"] = None
        while time.monotonic() < status_deadline:
            rows = shopregion_rows(namespace)
            survivors = [r for r in rows if r[1] != LOST_REGION]
            if survivors and all(r[3] and r[3] != LOST_REGION for r in survivors):
                now = sim_now(op.port)
                outage["survivorStatusesMovedVirtualSeconds"] = round(now - out_virtual, 1)
                break
            time.sleep(poll)
        outage.update(promotion_timings(namespace, out_virtual))
        # The rest of the outage window.
        remaining = out_real + args.outage_minutes * 60 / speed - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        d = snapshot(op)
        outage.update(window(c, d, regions))
        result["outage"] = outage
        log(f"N={shops_count}: outage {json.dumps(outage)}")

        memory = op.memory()
        result["peakRssKiB"] = memory["VmHWM"]
        result["socketsEnd"] = op.sockets()
        result["rssEndKiB"] = memory["VmRSS"]
        result["maxSampledRssKiB"] = op.max_rss_kib
        result["peakRssPerShopRegionKiB"] = round(memory["VmHWM"] / regions, 1)
        result["rssSteadyPerShopRegionKiB"] = round(result["rssSteadyKiB"] / regions, 1)
        return result
    finally:
        op.stop()
        cleanup(namespace, args.keep)


def cleanup(namespace: str, keep: bool) -> None:
    if keep:
        log(f"kept namespace {namespace}")
        return
    # The operator is stopped: its finalizer would hold every ShopRegion,
    # and with it the namespace, forever. Drop it (the simulated cloud died
    # with the process; nothing outside is left behind).
    names = kubectl("get", "shopregions", "-n", namespace, "-o", "name", check=False).split()
    for start in range(0, len(names), 200):
        kubectl("patch", "-n", namespace, *names[start:start + 200], "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', check=False)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    # Wait, so that the next N does not share the API server with the GC.
    kubectl("wait", "--for=delete", f"namespace/{namespace}", "--timeout=600s", check=False,
            timeout=700)


# --------------------------------------------------------------------------
# report


def kib(value) -> str:
    return "-" if value is None else f"{value / 1024:.1f} MiB"


def rates(value) -> str:
    if value is None:
        return "not exported"
    return " ".join(f"{r}:{v:g}" for r, v in value.items()) or "0"


def timing(value) -> str:
    if not value or value.get("worst") is None:
        return "-"
    return f"{value['worst']}s / {value['median']}s ({value['shops']} shops)"


def table(results: list[dict]) -> str:
    rows = [
        ("shops / ShopRegions", lambda r: f"{r['shops']} / {r['shopRegions']}"),
        ("sim speed (virtual s per real s)", lambda r: str(r["speed"])),
        ("sim speed in the outage", lambda r: str(r.get("outageSpeed", "-"))),
        ("apply (real)", lambda r: f"{r['applySeconds']}s"),
        ("converged: virtual", lambda r: f"{r['convergeVirtualMinutes']} min"),
        ("converged: virtual, after apply", lambda r: f"{r['convergeAfterApplyVirtualMinutes']} min"),
        ("converged: real", lambda r: f"{r['convergeRealSeconds']}s"),
        ("order Deployments rolled out (virtual)", lambda r: f"{r['rolloutsDoneVirtualMinutes']} min"),
        ("steady window (virtual)", lambda r: f"{r['steady']['virtualMinutes']} min"),
        ("steady AWS req/region/min", lambda r: rates(r["steady"]["awsRequestsPerRegionPerMinute"])),
        ("steady AWS mutating calls", lambda r: f"{r['steady']['awsMutatingCalls']} (sim: {r['steady']['simMutatingCalls']})"),
        ("steady kube writes (no leases)", lambda r: str(r["steady"]["kubeWrites"])),
        ("steady reconciles/SR/min", lambda r: str(r["steady"]["reconcilesPerShopRegionPerMinute"])),
        ("outage: all shops moved (virtual)", lambda r: f"not in time ({r['outage']['shopsMoved']} of {r['shops']})" if r["outage"]["allShopsMovedVirtualSeconds"] is None else f"{r['outage']['allShopsMovedVirtualSeconds']}s"),
        ("outage: first bad sample, worst/median shop", lambda r: timing(r["outage"].get("firstBadSampleVirtualSeconds"))),
        ("outage: intent recorded, worst/median shop", lambda r: timing(r["outage"].get("intentRecordedVirtualSeconds"))),
        ("outage: survivor statuses (virtual)", lambda r: "never" if r["outage"]["survivorStatusesMovedVirtualSeconds"] is None else f"{r['outage']['survivorStatusesMovedVirtualSeconds']}s"),
        ("outage: max writers of a shop", lambda r: str(r["outage"]["maxWritersOfOneShop"])),
        ("outage window (virtual)", lambda r: f"{r['outage']['virtualMinutes']} min"),
        ("outage AWS req/region/min", lambda r: rates(r["outage"]["awsRequestsPerRegionPerMinute"])),
        ("outage AWS mutating calls", lambda r: f"{r['outage']['awsMutatingCalls']} (sim: {r['outage']['simMutatingCalls']})"),
        ("outage kube writes (no leases)", lambda r: str(r["outage"]["kubeWrites"])),
        ("outage reconciles per SR", lambda r: str(r["outage"]["reconcilesPerShopRegion"])),
        ("RSS idle (no ShopRegion)", lambda r: kib(r["rssIdleKiB"])),
        ("RSS steady", lambda r: kib(r["rssSteadyKiB"])),
        ("peak RSS (VmHWM)", lambda r: kib(r["peakRssKiB"])),
        ("peak RSS per ShopRegion", lambda r: f"{r['peakRssPerShopRegionKiB']} KiB"),
        ("open sockets: steady / end", lambda r: f"{r['socketsSteady']} / {r['socketsEnd']}"),
    ]
    def cell(fn, r) -> str:
        try:
            return fn(r)
        except (KeyError, TypeError):
            return "-"

    rows.insert(3, ("not converged", lambda r: r.get("notConverged", "-")))
    cells = [[label] + [cell(fn, r) for r in results] for label, fn in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    header = ["N"] + [str(r["shops"]) for r in results]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    if len(results) >= 2:
        small, large = results[-2], results[-1]
        slope = (large["peakRssKiB"] - small["peakRssKiB"]) / (large["shopRegions"] - small["shopRegions"])
        lines.append(f"marginal peak RSS per ShopRegion between N={small['shops']} and "
                     f"N={large['shops']}: {slope:.1f} KiB")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shops", default="1,10,100,1000",
                        help="comma-separated shop counts (each shop is 3 ShopRegions)")
    parser.add_argument("--speed", type=int, default=0,
                        help="--sim-speed for every N (default: 60 up to 10 shops, 20 up to 100, 10 up to 300, 5 above)")
    parser.add_argument("--binary", type=Path, default=ROOT / "target/release/shopfleet")
    parser.add_argument("--samples", nargs="+", type=Path,
                        default=sorted((ROOT / "samples").glob("acme-*.yaml")))
    parser.add_argument("--template-shop", default="acme")
    parser.add_argument("--replicas", type=int, default=1,
                        help="pin each order Deployment to this many replicas (0: the samples' capacity model)")
    parser.add_argument("--chunk", type=int, default=60, help="objects per kubectl apply")
    parser.add_argument("--apply-parallel", type=int, default=4,
                        help="kubectl apply processes at once")
    parser.add_argument("--settle-minutes", type=float, default=2,
                        help="virtual minutes between convergence and the steady window")
    parser.add_argument("--steady-minutes", type=float, default=10,
                        help="virtual minutes of the steady window")
    parser.add_argument("--outage-minutes", type=float, default=10,
                        help="virtual minutes of the outage window (from the outage)")
    parser.add_argument("--converge-timeout-minutes", type=float, default=180)
    parser.add_argument("--failover-timeout-minutes", type=float, default=30)
    parser.add_argument("--outage-speed", type=int, default=0,
                        help="--sim-speed from the outage on (default: the same as --speed; "
                             "1 measures the time to act as a real outage would)")
    parser.add_argument("--outage-poll", type=float, default=0.25,
                        help="real seconds between /sim/writers polls during the failover")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep each namespace")
    args = parser.parse_args()

    if not os.environ.get("KUBECONFIG"):
        parser.error("KUBECONFIG must name the cluster (e.g. ../shared/k8s's target/k8s/kubeconfig)")
    if not args.binary.exists():
        parser.error(f"{args.binary} is missing: cargo build --release --locked")
    counts = [int(n) for n in args.shops.split(",") if n.strip()]
    if args.steady_minutes < 10:
        parser.error("--steady-minutes: at least 10 virtual minutes, or rates at rest are noise")

    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=fleet-bench",
            "-f", str(ROOT / "crds/shopregion.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/shopregions.shopfleet.io", "--timeout=60s")
    templates = load_templates(args.samples)

    results, failures = [], []
    for n in counts:
        # One N that does not converge (too high a speed for the machine)
        # should not cost the others their figures.
        try:
            results.append(run_one(args, n, templates))
        except RuntimeError as error:
            log(f"N={n}: {error}")
            failures.append({"shops": n, "error": str(error)})
        if args.json:
            args.json.write_text(json.dumps(results + failures, indent=2) + "\n")
    if results:
        print(table(results))
    for failure in failures:
        print(f"N={failure['shops']}: {failure['error']}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
