"""Inventory of 100,000 objects: memory per object and the cost of host lookups.

    .venv/bin/python bench/inventory_memory.py [--objects 100000] [--json FILE]

Generates a fleet of ServiceEntries, DestinationRules, VirtualServices, Gateways and
Sidecars (realistic specs, with kubectl's last-applied annotation), parses each one and
keeps it as the cluster inventory does (`slim_resource`), the raw dict dropped at once.
Prints:
- bytes per object (tracemalloc: Python allocations still live after the load, divided by
  the number of objects), and the load rate;
- the time of the lookups the cross-object rules make (`InventoryView.matching`), with
  100,000 objects against an empty inventory and a small one holding the same objects the
  lookups find;
- the time of a whole `engine.evaluate` of a ServiceEntry (the rules' real lookups),
  against the same three inventories: DESIGN.md section 9 asks that a large inventory slow
  a request by no more than 20% (compared with the small inventory: the empty one answers
  differently, it holds no DestinationRule, so the rule reports and builds a fix).
Absolute times depend on the machine; the ratios are the result.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import timeit
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webhook.cluster_inventory import slim_resource
from webhook.engine import evaluate
from webhook.inventory import MemoryInventory
from webhook.objects import Resource, parse, scope_kind
from webhook.policy import EnforcementPoint
from webhook.policy import load as load_policy

NET = "networking.istio.io/v1"
NAMESPACES = 200


def _meta(name: str, ns: str, spec: dict[str, Any], kind: str) -> dict[str, Any]:
    obj = {"apiVersion": NET, "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec}
    obj["metadata"].update(
        {
            "uid": f"00000000-0000-0000-0000-{hash(name) & 0xFFFFFFFFFFFF:012x}",
            "resourceVersion": "123456",
            "labels": {"app": name.rsplit("-", 1)[0], "team": f"team-{hash(ns) % 40}"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(obj)},
        }
    )
    return obj


def fleet(n: int) -> Iterator[dict[str, Any]]:
    """n objects: 40% ServiceEntries (1 in 50 wildcard), 25% DestinationRules, 25%
    VirtualServices, 5% Gateways, 5% Sidecars."""
    for i in range(n):
        ns = f"ns-{i % NAMESPACES}"
        slot = i % 20
        if slot < 8:
            host = f"*.wild-{i}.example.com" if i % 50 == 0 else f"api-{i}.ext-{i % 500}.example.com"
            spec = {
                "hosts": [host],
                "location": "MESH_EXTERNAL",
                "resolution": "DNS",
                "ports": [
                    {"number": 443, "name": "https", "protocol": "HTTPS"},
                    {"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 443},
                ],
                "exportTo": ["."],
            }
            yield _meta(f"se-{i}", ns, spec, "ServiceEntry")
        elif slot < 13:
            spec = {
                "host": f"api-{i - 8}.ext-{(i - 8) % 500}.example.com" if i % 2 else f"svc-{i}",
                "trafficPolicy": {
                    "tls": {"mode": "SIMPLE", "sni": f"api-{i}.example.com", "caCertificates": "/etc/ca.pem"},
                    "outlierDetection": {
                        "consecutive5xxErrors": 5,
                        "interval": "10s",
                        "baseEjectionTime": "30s",
                    },
                    "portLevelSettings": [{"port": {"number": 80}, "tls": {"mode": "SIMPLE"}}],
                },
                "subsets": [{"name": "v1", "labels": {"version": "v1"}}],
            }
            yield _meta(f"dr-{i}", ns, spec, "DestinationRule")
        elif slot < 18:
            spec = {
                "hosts": [f"svc-{i}"],
                "http": [
                    {
                        "match": [{"headers": {"x-canary": {"exact": "1"}}}],
                        "route": [{"destination": {"host": f"svc-{i}", "subset": "v2"}}],
                        "timeout": "5s",
                    },
                    {
                        "route": [{"destination": {"host": f"svc-{i}", "subset": "v1"}, "weight": 100}],
                        "retries": {"attempts": 3, "perTryTimeout": "2s"},
                        "timeout": "10s",
                    },
                ],
            }
            yield _meta(f"vs-{i}", ns, spec, "VirtualService")
        elif slot == 18:
            spec = {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {
                        "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                        "hosts": [f"{ns}/app-{i}.example.com"],
                        "tls": {"mode": "SIMPLE", "credentialName": f"cert-{i}"},
                    }
                ],
            }
            yield _meta(f"gw-{i}", ns, spec, "Gateway")
        else:
            spec = {
                "workloadSelector": {"labels": {"app": f"app-{i}"}},
                "egress": [{"hosts": ["./*", "istio-system/*"]}],
                "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
            }
            yield _meta(f"sc-{i}", ns, spec, "Sidecar")


def _kept(raw: dict[str, Any]) -> Resource:
    kind = scope_kind(raw, "istio-system")
    assert kind is not None
    res = parse(raw, kind)
    assert isinstance(res, Resource), res
    return slim_resource(res)


def _per_call(fn: Callable[[], object], budget: float = 0.5) -> float:
    """Seconds per call: the best of five runs, each about `budget`/5 long."""
    number = 1
    while timeit.timeit(fn, number=number) < budget / 5:
        number *= 2
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args()
    n = args.objects

    # Memory: everything allocated by the load and still alive, per object.
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    big = MemoryInventory()
    for raw in fleet(n):
        big.upsert(_kept(raw))
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(big) == n

    # Load rate without tracing (parse + index, as a relist does).
    start = time.perf_counter()
    reload = MemoryInventory()
    for raw in fleet(n):
        reload.upsert(_kept(raw))
    load_s = time.perf_counter() - start
    del reload

    # A DestinationRule (slot 9) that originates TLS for the ServiceEntry eight objects before it.
    i = n // 2 - (n // 2) % 20 + 9
    # The small inventory holds the objects the lookups below find, and a few more: the big
    # one differs from it only by the objects no lookup should touch.
    wanted = {f"se-{i - 8}", f"dr-{i}", f"vs-{i + 5}", "se-0", *(f"sc-{j}" for j in range(19, 120, 20))}
    small = MemoryInventory(_kept(raw) for raw in fleet(n) if raw["metadata"]["name"] in wanted)
    empty = MemoryInventory()
    vs_host = f"svc-{i + 5}.ns-{(i + 5) % NAMESPACES}.svc.cluster.local"
    lookups = {
        "ServiceEntry by exact host": ("ServiceEntry", f"api-{i - 8}.ext-{(i - 8) % 500}.example.com"),
        "DestinationRule by exact host": ("DestinationRule", f"api-{i - 8}.ext-{(i - 8) % 500}.example.com"),
        "VirtualService by FQDN": ("VirtualService", vs_host),
        "ServiceEntry by wildcard": ("ServiceEntry", "*.wild-0.example.com"),
        "VirtualService, no match": ("VirtualService", "nothing.example.org"),
    }
    rows: list[dict[str, Any]] = []
    for label, (kind, host) in lookups.items():
        t_empty = _per_call(lambda kind=kind, host=host: empty.matching(kind, host))
        t_small = _per_call(lambda kind=kind, host=host: small.matching(kind, host))
        t_big = _per_call(lambda kind=kind, host=host: big.matching(kind, host))
        rows.append(
            {
                "lookup": label,
                "hits": len(big.matching(kind, host)),
                "emptyUs": t_empty * 1e6,
                "smallUs": t_small * 1e6,
                "bigUs": t_big * 1e6,
            }
        )

    policy = load_policy()
    review = {
        "apiVersion": NET,
        "kind": "ServiceEntry",
        "metadata": {"name": "reviewed", "namespace": "ns-7"},
        "spec": {
            "hosts": [f"api-{i - 8}.ext-{(i - 8) % 500}.example.com"],
            "location": "MESH_EXTERNAL",
            "resolution": "DNS",
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        },
    }

    def engine_on(inv: MemoryInventory) -> float:
        return _per_call(lambda: evaluate(policy, EnforcementPoint.ADMISSION, inv, "CREATE", review), 1.0)

    e_empty, e_small, e_big = engine_on(empty), engine_on(small), engine_on(big)

    print(f"inventory of {n:,} objects")
    print(f"  memory held: {held / 2**20:.1f} MiB = {held / n:,.0f} bytes per object (tracemalloc)")
    print(f"  load (parse + index): {load_s:.1f} s = {n / load_s:,.0f} objects/s")
    print()
    head = f"  {'lookup (matching)':<32} {'hits':>5} {'empty':>9} {f'{len(small)} objs':>9}"
    print(f"{head} {f'{n:,} objs':>12} {'ratio':>6}")
    for r in rows:
        print(
            f"  {r['lookup']:<32} {r['hits']:>5} {r['emptyUs']:>7.2f}us {r['smallUs']:>7.2f}us "
            f"{r['bigUs']:>10.2f}us {r['bigUs'] / r['smallUs']:>5.2f}x"
        )
    print()
    print(
        f"  engine.evaluate (ServiceEntry CREATE): empty {e_empty * 1e6:.0f}us, {len(small)} objects "
        f"{e_small * 1e6:.0f}us, {n:,} objects {e_big * 1e6:.0f}us -> {e_big / e_small:.2f}x "
        f"the {len(small)}-object inventory with the same relevant objects (target <= 1.20x)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "objects": n,
                    "bytesPerObject": held / n,
                    "loadSeconds": load_s,
                    "lookups": rows,
                    "engineUs": {"empty": e_empty * 1e6, "small": e_small * 1e6, "big": e_big * 1e6},
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
