"""Load Istio objects from YAML fixture files and review one through the real engine."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from webhook.engine import Decision, evaluate
from webhook.findings import Outcome
from webhook.inventory import MemoryInventory
from webhook.objects import Resource, parse, scope_kind
from webhook.policy import EnforcementPoint, Policy

FIXTURES = Path(__file__).parent / "fixtures"
SEEDS = FIXTURES / "seeds"
EGRESS = FIXTURES / "egress"

Doc = dict[str, Any]


def load(path: Path) -> list[Doc]:
    """Every document of a YAML file (a fresh copy each call, so tests may edit them)."""
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def pick(docs: Iterable[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} documents"
    return found[0]


def resources(docs: Iterable[Mapping[str, Any]], policy: Policy) -> list[Resource]:
    out = []
    for doc in docs:
        kind = scope_kind(doc, policy.mesh.root_namespace)
        assert kind is not None, f"not in scope: {doc.get('kind')}"
        res = parse(doc, kind)
        assert isinstance(res, Resource), res
        out.append(res)
    return out


def inventory(docs: Iterable[Mapping[str, Any]], policy: Policy) -> MemoryInventory:
    return MemoryInventory(resources(docs, policy), domain=policy.mesh.cluster_domain)


def review(
    policy: Policy,
    world: Iterable[Mapping[str, Any]],
    operation: str,
    obj: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None = None,
) -> Decision:
    """Review `obj` at admission against an inventory of `world` (which may hold the old
    version of the object, as a cluster inventory would)."""
    return evaluate(policy, EnforcementPoint.ADMISSION, inventory(world, policy), operation, obj, old)


def outcomes(decision: Decision, rule: str) -> list[Outcome]:
    return [o for o in decision.outcomes if o.finding.rule == rule]


def with_api_version(doc: Mapping[str, Any], version: str) -> Doc:
    out = copy.deepcopy(dict(doc))
    out["apiVersion"] = f"networking.istio.io/{version}"
    return out


def fix_documents(fix: str) -> list[Doc]:
    """The YAML of a finding's fix: from its first line that opens a document or a spec."""
    lines = fix.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("apiVersion:", "spec:")))
    return [d for d in yaml.safe_load_all("\n".join(lines[start:])) if d]
