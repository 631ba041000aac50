"""`meshwarden check` throughput: objects reviewed per second on one core.

Generates a repository-like tree of Istio objects in a temporary directory (a realistic
mix: external ServiceEntries with and without TLS origination, VirtualServices with
routes, timeouts and retries, DestinationRules with subsets and outlier detection,
Sidecars, wildcard egress through the egress gateway, and a few non-compliant objects so
findings and their line lookups are part of the run), then times the real command, pinned
to one CPU where `taskset` exists, with the full default rule set.

DESIGN.md section 9 sets the target: at least 5,000 objects per second. After the figures
the script shows where the time goes (start-up, reading, review) and the floor PyYAML's C
parser sets on its own, so the figure can be judged against what this parser allows.

    .venv/bin/python bench/check_throughput.py [--objects 10000] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from webhook.sources import iter_documents

TARGET = 5000


def _group(i: int) -> Iterator[tuple[str, str]]:
    """(file name, YAML) of one application's objects."""
    ns = f"team-{i % 97}"
    yield (
        "external.yaml",
        f"""\
# External APIs used by app {i}.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: payments-{i}
  namespace: {ns}
spec:
  hosts:
  - payments-{i}.example.com
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - number: 443
    name: https
    protocol: HTTPS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: legacy-{i}
  namespace: {ns}
spec:
  hosts:
  - legacy-{i}.example.com
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - number: 80
    name: http
    protocol: HTTP
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: legacy-{i}-tls
  namespace: {ns}
spec:
  host: legacy-{i}.example.com
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
    portLevelSettings:
    - port:
        number: 80
      outlierDetection:
        consecutive5xxErrors: 5
        interval: 10s
        baseEjectionTime: 30s
      tls:
        mode: SIMPLE
        sni: legacy-{i}.example.com
        caCertificates: /etc/ssl/certs/ca-certificates.crt
""",
    )
    yield (
        "routing.yaml",
        f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-{i}
  namespace: {ns}
  labels:
    app: reviews-{i}
spec:
  hosts:
  - reviews-{i}
  http:
  - match:
    - headers:
        end-user:
          exact: tester
    route:
    - destination:
        host: reviews-{i}
        subset: v2
    timeout: 5s
    retries:
      attempts: 3
      perTryTimeout: 1s
  - route:
    - destination:
        host: reviews-{i}
        subset: v1
      weight: 90
    - destination:
        host: reviews-{i}
        subset: v2
      weight: 10
    timeout: 10s
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews-{i}
  namespace: {ns}
spec:
  host: reviews-{i}
  trafficPolicy:
    connectionPool:
      http:
        http2MaxRequests: 1000
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
""",
    )
    if i % 10 == 0:
        yield (
            "egress.yaml",
            f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: wiki-{i}
  namespace: {ns}
spec:
  hosts:
  - "*.wiki-{i}.org"
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: egress-wiki-{i}
  namespace: {ns}
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 443
      name: tls
      protocol: TLS
    hosts:
    - "*.wiki-{i}.org"
    tls:
      mode: PASSTHROUGH
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: wiki-{i}-through-egress
  namespace: {ns}
spec:
  hosts:
  - "*.wiki-{i}.org"
  gateways:
  - mesh
  - egress-wiki-{i}
  tls:
  - match:
    - gateways: [mesh]
      port: 443
      sniHosts: ["*.wiki-{i}.org"]
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        port:
          number: 443
  - match:
    - gateways: [egress-wiki-{i}]
      port: 443
      sniHosts: ["*.wiki-{i}.org"]
    route:
    - destination:
        host: www.wiki-{i}.org
        port:
          number: 443
""",
        )
    # A namespace-wide default Sidecar for one application in 98, as before, but each in a
    # namespace of its own: i = 98k lands in team-k, so the 97 namespaces get at most one.
    if i % 98 == 0 and i < 97 * 98:
        yield (
            "sidecar.yaml",
            f"""\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: {ns}
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
""",
        )
    if i % 20 == 7:
        # Non-compliant: plaintext to an external host, and a wildcard host sent directly.
        yield (
            "todo-review.yaml",
            f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: metrics-{i}
  namespace: {ns}
spec:
  hosts:
  - metrics-{i}.example.net
  - "*.cdn-{i}.example.net"
  resolution: NONE
  ports:
  - number: 80
    name: http
    protocol: HTTP
""",
        )


def generate(root: Path, objects: int) -> int:
    written = 0
    i = 0
    while written < objects:
        app = root / f"apps/app-{i:05d}"
        app.mkdir(parents=True)
        for name, text in _group(i):
            docs = text.split("\n---\n")
            keep = docs[: objects - written]
            (app / name).write_text("\n---\n".join(keep))
            written += len(keep)
            if written >= objects:
                break
        i += 1
    return written


def _command(tree: Path) -> list[str]:
    cmd = [sys.executable, "-m", "webhook", "check", "--format", "json", "--output", os.devnull, str(tree)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    return cmd


def run_once(tree: Path) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(_command(tree), capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"check failed ({proc.returncode}): {proc.stderr[-2000:]}")
    if proc.stderr:
        # The tree is meant to be clean input: a duplicate or unreadable object would put
        # notices, and work that a real repository does not have, into the figures.
        raise SystemExit(f"check printed notices on the generated tree:\n{proc.stderr[:2000]}")
    return wall, cpu, proc.returncode


def startup() -> tuple[float, float]:
    """The cost of starting the command at all, measured on an empty directory: the best
    wall and CPU times of three runs."""
    with tempfile.TemporaryDirectory() as empty:
        runs = [run_once(Path(empty)) for _ in range(3)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def _best_cpu(work: Callable[[], object], rounds: int) -> float:
    """The least CPU time of `rounds` calls of `work`. The cyclic GC is off during each, as
    `check` turns it off while it reads and reviews; what `work` returns is freed after the
    clock stops, as the command keeps its documents until the report is written."""
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            kept = work()
            best = min(best, time.process_time() - start)
        finally:
            gc.enable()
        del kept
    return best


def _parse_events(texts: list[str]) -> None:
    for text in texts:
        deque(yaml.parse(text, Loader=yaml.CSafeLoader), maxlen=0)


def breakdown(tree: Path, count: int, rounds: int, command_cpu: float, startup_cpu: float) -> None:
    """Where the command's CPU goes per object, and the ceiling the YAML parser sets."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(tree.rglob("*.yaml"))]
    floor = _best_cpu(lambda: _parse_events(texts), rounds) / count
    # Later rounds find sources' memo of scalar tags filled, as the command never does: if
    # anything, reading comes out a little low here and the derived review a little high.
    reading = _best_cpu(lambda: list(iter_documents([str(tree)])), rounds) / count
    start, command = startup_cpu / count, command_cpu / count
    review = command - start - reading
    ceiling = 1 / (start + floor)
    # What the target leaves, per object, for everything above the parser's own events:
    # building the objects, parsing them into models, the rules, the report.
    budget = 1 / TARGET - start - floor
    print(f"where the time goes (CPU per object, best of {rounds}, cyclic GC off as in the command):")
    print(f"  start-up (empty tree), spread over the objects   {start * 1e6:6.0f} µs")
    print(f"  reading: webhook.sources.iter_documents          {reading * 1e6:6.0f} µs")
    print(f"  review: derived, command - start-up - reading    {review * 1e6:6.0f} µs")
    print(f"  the command (subprocess, best round)             {command * 1e6:6.0f} µs")
    print(
        f"YAML parser floor (PyYAML C parser events, texts in memory, nothing built): "
        f"{floor * 1e6:.0f} µs/object, {1 / floor:,.0f} objects/s on its own"
    )
    print(f"ceiling if nothing but start-up and the parser's events cost anything: {ceiling:,.0f} objects/s")
    print(
        f"target {TARGET:,}/s leaves {budget * 1e6:.0f} µs/object above the parser floor for building "
        f"and reviewing each object; they take {(reading - floor + review) * 1e6:.0f} µs here"
    )


def profile(tree: Path) -> None:
    from webhook.cli import main

    prof = cProfile.Profile()
    prof.enable()
    with contextlib.suppress(SystemExit):
        main(["check", "--format", "json", "--output", os.devnull, str(tree)], standalone_mode=False)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also profile one in-process run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="meshwarden-check-bench-") as tmp:
        tree = Path(tmp)
        count = generate(tree, args.objects)
        files = sum(1 for _ in tree.rglob("*.yaml"))
        size = sum(p.stat().st_size for p in tree.rglob("*.yaml"))
        print(f"tree: {count} objects in {files} files, {size / 1e6:.1f} MB")
        base, base_cpu = startup()
        walls, cpus = [], []
        for n in range(args.rounds):
            wall, cpu, code = run_once(tree)
            walls.append(wall)
            cpus.append(cpu)
            print(f"round {n + 1}: {wall:.2f} s wall, {cpu:.2f} s CPU, exit {code}")
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(f"command start-up (empty tree): {base:.2f} s")
        print(f"objects/s (wall, median):          {count / wall:,.0f}")
        print(f"objects/s (CPU, median):           {count / cpu:,.0f}")
        print(f"objects/s (wall minus start-up):   {count / max(wall - base, 1e-9):,.0f}")
        verdict = "meets" if count / wall >= TARGET else "misses"
        print(f"target {TARGET:,}/s on one core: {verdict} it (wall, start-up included)")
        breakdown(tree, count, args.rounds, min(cpus), base_cpu)
        if args.profile:
            profile(tree)


if __name__ == "__main__":
    main()
