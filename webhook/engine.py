"""The policy engine: one function that the webhook and the CLI both call.

`evaluate` takes one object (and its old version on UPDATE/DELETE), the inventory of the
other objects, the policy and the enforcement point, and returns a `Decision`: the
findings with the action the policy assigns to each, and on request the JSON patch of the
defaults. It does no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.context import Context
from webhook.findings import Action, Finding, Outcome, weaker
from webhook.inventory import InventoryView, Overlay
from webhook.objects import SCHEMA_RULE, Resource, metadata_of, parse, scope_kind
from webhook.patching import apply_changes
from webhook.policy import EnforcementPoint, Policy
from webhook.registry import DEFAULTERS, RULES, Change, load_all

DEFAULTS_APPLIED = "meshwarden.io/defaults-applied"
SKIP_DEFAULTS = "meshwarden.io/skip-defaults"
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})


class EngineInputError(ValueError):
    """The request cannot be reviewed at all (no object to look at, unknown operation)."""


@dataclass(slots=True)
class Decision:
    kind: str  # the object's kind as written
    namespace: str
    name: str
    status: str  # reviewed | skipped (out of scope) | exempt (exempt namespace)
    outcomes: list[Outcome] = field(default_factory=list)
    patch: list[dict[str, Any]] = field(default_factory=list)
    defaults_applied: list[str] = field(default_factory=list)
    mutated: dict[str, Any] | None = None  # the object with defaults, when there are any

    @property
    def allowed(self) -> bool:
        # A loop rather than any() over a generator: asked several times per review.
        for o in self.outcomes:  # noqa: SIM110
            if o.action is Action.DENY:
                return False
        return True

    @property
    def denials(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action is Action.DENY]

    @property
    def warnings(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action in (Action.WARN, Action.DOWNGRADED)]

    @property
    def verdict(self) -> str:
        if not self.allowed:
            return "denied"
        return "mutated" if self.patch else "allowed"


def evaluate(
    policy: Policy,
    point: EnforcementPoint,
    inventory: InventoryView,
    operation: str,
    obj: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None = None,
    *,
    validate: bool = True,
    mutate: bool = False,
    today: dt.date | None = None,
    parsed_object: Resource | None = None,
) -> Decision:
    """`parsed_object`: `obj` as `webhook.objects.parse` already returned it, for callers that
    parsed every object to build their inventory (Resources are immutable)."""
    if not RULES:  # loading a Policy registers them; an engine without rules would pass anything
        load_all()
    if operation not in OPERATIONS:
        raise EngineInputError(f"unknown operation {operation!r}")
    target = obj if obj is not None else old
    if target is None or (operation == "DELETE" and old is None and obj is None):
        raise EngineInputError("no object to review: neither object nor oldObject is set")
    if operation != "DELETE" and obj is None:
        raise EngineInputError(f"{operation} without an object")

    mesh = policy.mesh
    namespace, name = metadata_of(target)
    raw_kind = str(target.get("kind", ""))
    kind = scope_kind(target, mesh.root_namespace)
    if kind is None or operation == "CONNECT":
        return Decision(raw_kind, namespace, name, "skipped")
    if policy.is_exempt(namespace):
        return Decision(raw_kind, namespace, name, "exempt")
    decision = Decision(raw_kind, namespace, name, "reviewed")

    parsed = parsed_object if parsed_object is not None and obj is not None else parse(target, kind)
    if isinstance(parsed, list):
        # Istio would refuse it: report that alone; no other rule reasons about it.
        if validate and operation != "DELETE":
            decision.outcomes = _resolve(policy, point, parsed, namespace, name, today, frozenset())
        return decision

    # The world before the change: a CREATE of an object the inventory does not hold yet
    # (the usual case) sees the inventory as it is.
    base_before: InventoryView = (
        inventory
        if operation != "CREATE" or inventory.get(parsed.key) is None
        else Overlay(inventory, remove=parsed.key, domain=mesh.cluster_domain)
    )
    if operation == "DELETE":
        after: InventoryView = Overlay(inventory, remove=parsed.key, domain=mesh.cluster_domain)
    else:
        after = Overlay(inventory, remove=parsed.key, add=parsed, domain=mesh.cluster_domain)

    resource, raw = parsed, target
    if mutate and operation in ("CREATE", "UPDATE"):
        mutated = _apply_defaults(policy, resource, raw, after, base_before, operation, decision)
        # Only the rules read the defaulted object again: a mutate-only review (the /mutate
        # webhook) skips parsing it a second time, which would double its cost.
        if mutated is not None and validate:
            raw = mutated
            reparsed = parse(mutated, kind)
            if isinstance(reparsed, Resource):
                resource = reparsed
                after = Overlay(inventory, remove=resource.key, add=resource, domain=mesh.cluster_domain)

    if not validate:
        return decision

    params = policy.rule_params
    rules = policy.rules_for(kind)
    ctx = Context(resource, operation, after, base_before, mesh, params.get(SCHEMA_RULE), raw)  # type: ignore[arg-type]
    findings: list[Finding] = []
    if rules and rules[0].id == SCHEMA_RULE:  # `rules_for` puts it first
        schema, rules = rules[0], rules[1:]
        if operation != "DELETE":
            findings = list(schema.check(ctx))
            if any(f.level == "deny" for f in findings):
                decision.outcomes = _resolve(policy, point, findings, namespace, name, today, frozenset())
                return decision
    for spec in rules:
        # One Context for every rule, given each its own parameters: `extend` has drained
        # the previous rule's findings before the next one starts.
        ctx.params = params[spec.id]
        findings.extend(spec.check(ctx))

    existing: frozenset[tuple[str, str, str]] = frozenset()
    if operation == "UPDATE" and old is not None and findings:
        existing = _existing_findings(policy, findings, old, kind, inventory, mesh)
    if findings:
        decision.outcomes = _resolve(policy, point, findings, namespace, name, today, existing)
    return decision


def _existing_findings(
    policy: Policy,
    findings: list[Finding],
    old: Mapping[str, Any],
    kind: str,
    inventory: InventoryView,
    mesh: Any,
) -> frozenset[tuple[str, str, str]]:
    """Findings the old object already had, for rules that downgrade them (on UPDATE, so a
    label change on an old non-compliant object is not blocked)."""
    old_res = parse(old, kind)
    if isinstance(old_res, list):
        return frozenset()
    keys: set[tuple[str, str, str]] = set()
    for rule_id in {f.rule for f in findings}:
        if rule_id == SCHEMA_RULE or not policy.downgrade_existing(rule_id):
            continue
        ctx = Context(old_res, "UPDATE", inventory, inventory, mesh, policy.rule_params[rule_id], old)
        keys.update((f.rule, f.path_text, f.message) for f in RULES[rule_id].check(ctx))
    return frozenset(keys)


def _resolve(
    policy: Policy,
    point: EnforcementPoint,
    findings: Iterable[Finding],
    namespace: str,
    name: str,
    today: dt.date | None,
    existing: frozenset[tuple[str, str, str]],
) -> list[Outcome]:
    # Only findings need the date (exceptions expire); most reviews have none.
    today = today or dt.datetime.now(dt.UTC).date()
    out: list[Outcome] = []
    for f in findings:
        action = policy.action(f.rule, point)
        if f.level == "warn":
            action = weaker(action, Action.WARN)
        exc = policy.exception_for(f.rule, namespace, name, today)
        if exc is not None:
            out.append(
                Outcome(f, Action.EXCEPTED, f"exception {exc.ticket} until {exc.expires}: {exc.reason}")
            )
        elif action is Action.DENY and (f.rule, f.path_text, f.message) in existing:
            out.append(Outcome(f, Action.DOWNGRADED, "existing violation: the old object already had it"))
        else:
            out.append(Outcome(f, action))
    return out


def _apply_defaults(
    policy: Policy,
    resource: Resource,
    raw: Mapping[str, Any],
    after: InventoryView,
    before: InventoryView,
    operation: str,
    decision: Decision,
) -> dict[str, Any] | None:
    annotations = resource.annotations
    if (
        policy.file.allow_skip_defaults_annotation
        and str(annotations.get(SKIP_DEFAULTS, "")).lower() == "true"
    ):
        return None
    changes: list[Change] = []
    applied: list[str] = []
    for did, spec in DEFAULTERS.items():
        if resource.kind not in spec.kinds or not policy.defaulter_enabled(did):
            continue
        ctx = Context(resource, operation, after, before, policy.mesh, policy.defaulter_params[did], raw)
        got = spec.mutate(ctx)
        if got:
            changes.extend(got)
            applied.append(did)
    if not changes:
        return None
    previous = [p for p in str(annotations.get(DEFAULTS_APPLIED, "")).split(",") if p]
    record = ",".join(sorted({*previous, *applied}))
    changes.append(Change(("metadata", "annotations", DEFAULTS_APPLIED), record))
    mutated, decision.patch = apply_changes(raw, changes)
    decision.defaults_applied = applied
    decision.mutated = mutated
    return mutated
