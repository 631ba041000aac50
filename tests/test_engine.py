"""The engine's own semantics (scope, exemptions, exceptions, existing violations,
enforcement points), exercised with real rules on real objects."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from webhook import policy as P
from webhook.engine import DEFAULTS_APPLIED, EngineInputError, evaluate
from webhook.findings import Action
from webhook.inventory import MemoryInventory
from webhook.objects import Resource, parse, scope_kind

ADMISSION = P.EnforcementPoint.ADMISSION


def sidecar(
    mode: str | None, ns: str = "shop", name: str = "default", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"egress": [{"hosts": ["./*", "istio-system/*"]}]}
    if mode is not None:
        spec["outboundTrafficPolicy"] = {"mode": mode}
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar", "metadata": meta, "spec": spec}


def run(
    obj: dict[str, Any] | None,
    *,
    pol: P.Policy | None = None,
    op: str = "CREATE",
    old: dict[str, Any] | None = None,
    **kw: Any,
):
    return evaluate(pol or P.load(), kw.pop("point", ADMISSION), MemoryInventory(), op, obj, old, **kw)


@pytest.mark.parametrize("version", ["v1alpha3", "v1beta1", "v1"])
def test_every_served_version_is_reviewed_alike(version: str) -> None:
    obj = sidecar("ALLOW_ANY")
    obj["apiVersion"] = f"networking.istio.io/{version}"
    d = run(obj)
    assert d.status == "reviewed"
    assert [(o.finding.rule, o.action) for o in d.outcomes] == [("no-allow-any-outbound", Action.DENY)]
    assert not d.allowed and d.verdict == "denied"


@pytest.mark.parametrize(
    "obj",
    [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app", "namespace": "shop"},
            "data": {},
        },
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}},
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "EnvoyFilter",
            "metadata": {"name": "x"},
            "spec": {},
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "x"},
            "spec": {},
        },
        {"apiVersion": "networking.istio.io/v2", "kind": "Sidecar", "metadata": {"name": "x"}, "spec": {}},
        # istio-* ConfigMaps that carry no mesh config
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "istio-ca-root-cert", "namespace": "istio-system"},
            "data": {"root-cert.pem": "x"},
        },
        # the mesh ConfigMap name outside the root namespace
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "shop"},
            "data": {"mesh": ""},
        },
    ],
)
def test_objects_out_of_scope_are_skipped_untouched(obj: dict[str, Any]) -> None:
    d = run(obj, mutate=True)
    assert d.status == "skipped" and d.allowed and d.outcomes == [] and d.patch == []


@pytest.mark.parametrize("name", ["istio", "istio-canary"])
def test_mesh_configmaps_in_the_root_namespace_are_in_scope(name: str) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "istio-system"},
        "data": {"mesh": "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n"},
    }
    d = run(cm)
    assert d.status == "reviewed"
    assert [o.finding.rule for o in d.denials] == ["no-allow-any-outbound"]
    cm["data"]["mesh"] = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"
    assert run(cm).outcomes == []


def test_exempt_namespaces_are_admitted_and_recorded_as_exempt() -> None:
    d = run(sidecar("ALLOW_ANY", ns="kube-system"), mutate=True)
    assert d.status == "exempt" and d.allowed and d.outcomes == []


def test_an_object_without_namespace_is_in_default() -> None:
    obj = sidecar("ALLOW_ANY")
    del obj["metadata"]["namespace"]
    d = run(obj)
    assert d.namespace == "default" and not d.allowed


def test_schema_findings_stop_the_other_rules() -> None:
    obj = sidecar("ALLOW_ANY")
    obj["spec"]["egress"] = "not-a-list"
    d = run(obj)
    assert {o.finding.rule for o in d.outcomes} == {"istio-schema"}
    assert d.outcomes[0].finding.path_text == "spec.egress"
    assert not d.allowed


def test_enforcement_points_take_their_own_action() -> None:
    pol = P.parse(
        b"rules: {no-allow-any-outbound: {action: {admission: warn, check: deny, scan: audit}}}", source="x"
    )
    obj = sidecar("ALLOW_ANY")
    assert [o.action for o in run(obj, pol=pol).outcomes] == [Action.WARN]
    assert [o.action for o in run(obj, pol=pol, point=P.EnforcementPoint.CHECK).outcomes] == [Action.DENY]
    audit = run(obj, pol=pol, point=P.EnforcementPoint.SCAN)
    assert [o.action for o in audit.outcomes] == [Action.AUDIT] and audit.allowed and audit.warnings == []


def test_disabled_rules_do_not_run() -> None:
    pol = P.parse(b"rules: {no-allow-any-outbound: {enabled: false}}", source="x")
    assert run(sidecar("ALLOW_ANY"), pol=pol).outcomes == []


def test_exception_covers_until_it_expires() -> None:
    pol = P.parse(
        b"exceptions: [{rule: no-allow-any-outbound, namespace: shop, name: 'default', reason: migration,"
        b" ticket: SEC-9, expires: 2030-06-30}]",
        source="x",
    )
    covered = run(sidecar("ALLOW_ANY"), pol=pol, today=dt.date(2030, 6, 30))
    assert covered.allowed and [o.action for o in covered.outcomes] == [Action.EXCEPTED]
    assert "SEC-9" in covered.outcomes[0].note
    expired = run(sidecar("ALLOW_ANY"), pol=pol, today=dt.date(2030, 7, 1))
    assert not expired.allowed


def test_exception_expiry_is_judged_on_todays_date_when_none_is_given() -> None:
    # The server passes no date: the engine reads the clock itself, for reviews with findings.
    def policy(expires: dt.date) -> P.Policy:
        text = (
            "exceptions: [{rule: no-allow-any-outbound, namespace: shop, name: 'default', reason: r,"
            f" ticket: SEC-1, expires: {expires.isoformat()}}}]"
        )
        return P.parse(text.encode(), source="x")

    today = dt.datetime.now(dt.UTC).date()
    live = run(sidecar("ALLOW_ANY"), pol=policy(today + dt.timedelta(days=30)))
    assert live.allowed and [o.action for o in live.outcomes] == [Action.EXCEPTED]
    lapsed = run(sidecar("ALLOW_ANY"), pol=policy(today - dt.timedelta(days=30)))
    assert not lapsed.allowed and [o.action for o in lapsed.outcomes] == [Action.DENY]


def test_update_downgrades_what_the_old_object_already_had() -> None:
    old = sidecar("ALLOW_ANY")
    new = sidecar("ALLOW_ANY", labels={"team": "shop"})
    d = run(new, op="UPDATE", old=old)
    assert d.allowed and [o.action for o in d.outcomes] == [Action.DOWNGRADED]
    assert d.warnings and "existing violation" in d.outcomes[0].note
    # A new violation on UPDATE is enforced.
    fresh = run(sidecar("ALLOW_ANY"), op="UPDATE", old=sidecar("REGISTRY_ONLY"))
    assert not fresh.allowed
    # And the downgrade can be turned off per rule.
    strict = P.parse(b"rules: {no-allow-any-outbound: {downgradeExisting: false}}", source="x")
    assert not run(new, pol=strict, op="UPDATE", old=old).allowed


def test_delete_reviews_the_old_object_without_schema_noise() -> None:
    d = run(None, op="DELETE", old=sidecar("ALLOW_ANY"))
    assert d.status == "reviewed" and d.allowed


@pytest.mark.parametrize(
    ("op", "obj", "old"), [("CREATE", None, None), ("DELETE", None, None), ("PATCH", {}, None)]
)
def test_unreviewable_requests_raise_a_clear_error(op: str, obj: Any, old: Any) -> None:
    with pytest.raises(EngineInputError):
        run(obj, op=op, old=old)


def test_connect_is_skipped() -> None:
    assert run(sidecar("ALLOW_ANY"), op="CONNECT").status == "skipped"


def _vs_without_timeout() -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "shop"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
    }


def test_mutation_patch_applies_and_is_idempotent() -> None:
    obj = _vs_without_timeout()
    d = run(obj, mutate=True, validate=False)
    assert d.verdict == "mutated" and d.defaults_applied == ["default-route-timeout"]
    patched = jsonpatch.apply_patch(obj, d.patch)
    assert patched == d.mutated
    assert patched["spec"]["http"][0]["timeout"] == "10s"
    assert patched["metadata"]["annotations"][DEFAULTS_APPLIED] == "default-route-timeout"
    again = run(patched, mutate=True, validate=False)
    assert again.patch == [] and again.verdict == "allowed"


def test_skip_defaults_annotation_is_honoured_only_when_allowed() -> None:
    obj = _vs_without_timeout()
    obj["metadata"]["annotations"] = {"meshwarden.io/skip-defaults": "true"}
    assert run(obj, mutate=True).patch == []
    pol = P.parse(b"allowSkipDefaultsAnnotation: false", source="x")
    assert run(obj, pol=pol, mutate=True).patch != []


def test_a_parsed_object_handed_in_gives_the_same_decision() -> None:
    # check and scan parse every object for their inventory and hand the Resource back in.
    pol = P.load()
    docs = [
        d
        for f in sorted((Path(__file__).parent / "fixtures" / "seeds").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if isinstance(d, dict)
    ]
    resources = []
    for d in docs:
        kind = scope_kind(d, pol.mesh.root_namespace)
        res = parse(d, kind) if kind else None
        resources.append(res if isinstance(res, Resource) else None)
    inventory = MemoryInventory(r for r in resources if r is not None)
    compared = 0
    for d, res in zip(docs, resources, strict=True):
        for mutate in (False, True):
            plain = evaluate(pol, ADMISSION, inventory, "CREATE", d, mutate=mutate)
            handed = evaluate(pol, ADMISSION, inventory, "CREATE", d, mutate=mutate, parsed_object=res)
            assert (handed.outcomes, handed.patch) == (plain.outcomes, plain.patch)
            assert handed.status == plain.status
            compared += res is not None
    assert compared >= 2 * 30  # the seeds' objects, not a vacuous loop
