"""Engine-level tests of the mutating path: the RFC 6902 patch, idempotency, the
defaults-applied annotation and the skip annotation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook import durations
from webhook import policy as policy_mod
from webhook.engine import DEFAULTS_APPLIED, SKIP_DEFAULTS, Decision, evaluate
from webhook.inventory import MemoryInventory
from webhook.policy import EnforcementPoint, Policy

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
POLICY = policy_mod.load()
TIMEOUT = "default-route-timeout"
OUTLIER = "default-outlier-detection"


def _policy(**overrides: Any) -> Policy:
    doc: dict[str, Any] = {"apiVersion": "meshwarden.io/v1alpha1", "kind": "Policy", **overrides}
    return policy_mod.parse(yaml.safe_dump(doc).encode(), source="test-policy.yaml")


def _mutate(
    doc: dict[str, Any], policy: Policy = POLICY, operation: str = "CREATE", *, validate: bool = False
) -> Decision:
    old = doc if operation == "UPDATE" else None
    return evaluate(
        policy,
        EnforcementPoint.ADMISSION,
        MemoryInventory(),
        operation,
        doc,
        old,
        validate=validate,
        mutate=True,
    )


def _contained(original: Any, mutated: Any, where: str = "") -> None:
    """Every value of `original` is in `mutated`, unchanged: defaults only add."""
    if isinstance(original, dict):
        assert isinstance(mutated, dict), where
        for key, value in original.items():
            assert key in mutated, f"{where}/{key} removed"
            _contained(value, mutated[key], f"{where}/{key}")
    elif isinstance(original, list):
        assert isinstance(mutated, list) and len(mutated) == len(original), where
        for i, (a, b) in enumerate(zip(original, mutated, strict=True)):
            _contained(a, b, f"{where}/{i}")
    else:
        assert original == mutated, f"{where} changed from {original!r} to {mutated!r}"


_ANNOTATION_POINTER = "/metadata/annotations/meshwarden.io~1defaults-applied"


def _recorded(doc: dict[str, Any]) -> set[str]:
    annotations = doc.get("metadata", {}).get("annotations") or {}
    return {p for p in annotations.get(DEFAULTS_APPLIED, "").split(",") if p}


def _without_record(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out.get("metadata", {}).get("annotations", {}).pop(DEFAULTS_APPLIED, None)
    return out


def _check_patch(doc: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """The patch, applied to the original, gives the mutated object; it only adds, except
    that the defaults-applied record may be rewritten to gain ids. Returns the patched object."""
    before = copy.deepcopy(doc)
    patched = jsonpatch.apply_patch(doc, decision.patch)
    assert doc == before, "the engine must not modify its input"
    assert patched == decision.mutated
    for op in decision.patch:
        assert op["op"] == "add" or (op["op"] == "replace" and op["path"] == _ANNOTATION_POINTER), op
    assert _recorded(patched) == _recorded(doc) | set(decision.defaults_applied)
    _contained(_without_record(doc), patched)
    return patched


def _seed_docs(*kinds: str) -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for path in sorted(SEEDS.glob("*.yaml")):
        for i, doc in enumerate(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d):
            if doc.get("kind") in kinds:
                out.append((path.name, i, doc))
    return out


def _vs(*routes: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "reviews", "namespace": "shop"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": meta,
        "spec": {"hosts": ["reviews"], "http": list(routes)},
    }


_FORWARD = {"route": [{"destination": {"host": "reviews"}}]}


# --- seeds --------------------------------------------------------------------------------

_SEEDS = _seed_docs("VirtualService", "DestinationRule")


def test_seed_fixtures_hold_both_kinds() -> None:
    assert {doc["kind"] for _, _, doc in _SEEDS} == {"VirtualService", "DestinationRule"}


@pytest.mark.parametrize(("name", "index", "doc"), _SEEDS, ids=[f"{n}#{i}" for n, i, _ in _SEEDS])
def test_seed_patch_is_minimal_and_idempotent(name: str, index: int, doc: dict[str, Any]) -> None:
    first = _mutate(doc, validate=True)
    if not first.patch:
        assert first.mutated is None and first.defaults_applied == []
        return
    patched = _check_patch(doc, first)
    assert patched["metadata"]["annotations"][DEFAULTS_APPLIED] == ",".join(sorted(first.defaults_applied))
    second = _mutate(patched, validate=True)
    assert second.patch == []
    assert second.defaults_applied == []


def test_seed_destination_rule_patch_is_exactly_the_added_blocks() -> None:
    [(_, _, doc)] = [s for s in _SEEDS if s[0].startswith("001-06") and s[2]["kind"] == "DestinationRule"]
    block = {
        "consecutive5xxErrors": 5,
        "interval": "10s",
        "baseEjectionTime": "30s",
        "maxEjectionPercent": 50,
    }
    decision = _mutate(doc)
    assert sorted(decision.patch, key=lambda op: op["path"]) == [
        {"op": "add", "path": "/metadata/annotations", "value": {DEFAULTS_APPLIED: OUTLIER}},
        {"op": "add", "path": "/spec/trafficPolicy/outlierDetection", "value": block},
        {"op": "add", "path": "/spec/trafficPolicy/portLevelSettings/0/outlierDetection", "value": block},
    ]


def test_seed_virtual_service_keeps_its_fault_route_untouched() -> None:
    [(_, _, doc)] = [s for s in _SEEDS if s[0].startswith("002-08")]
    decision = _mutate(doc)
    assert [op["path"] for op in decision.patch if op["path"].startswith("/spec")] == ["/spec/http/1/timeout"]


# --- the annotation -----------------------------------------------------------------------


def test_annotation_is_added_beside_existing_annotations() -> None:
    doc = _vs(_FORWARD, annotations={"team": "shop"})
    decision = _mutate(doc)
    assert {
        "op": "add",
        "path": "/metadata/annotations/meshwarden.io~1defaults-applied",
        "value": TIMEOUT,
    } in (decision.patch)
    assert _check_patch(doc, decision)["metadata"]["annotations"]["team"] == "shop"


def test_update_that_adds_an_untimed_route_patches_only_the_route() -> None:
    # The object already carries the annotation from an earlier admission.
    doc = _vs({**_FORWARD, "timeout": "10s"}, _FORWARD, annotations={DEFAULTS_APPLIED: TIMEOUT})
    decision = _mutate(doc, operation="UPDATE")
    assert decision.patch == [{"op": "add", "path": "/spec/http/1/timeout", "value": "10s"}]
    assert decision.defaults_applied == [TIMEOUT]


def test_annotation_keeps_ids_recorded_earlier() -> None:
    doc = _vs(_FORWARD, annotations={DEFAULTS_APPLIED: "an-older-defaulter"})
    decision = _mutate(doc)
    assert decision.mutated is not None
    assert decision.mutated["metadata"]["annotations"][DEFAULTS_APPLIED] == f"an-older-defaulter,{TIMEOUT}"
    # Only the annotation's value is rewritten to record the new id; the spec only gains keys.
    _contained(doc["spec"], decision.mutated["spec"])


# --- when no defaults are applied ---------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "True", "TRUE"])
def test_skip_annotation_turns_defaults_off(value: str) -> None:
    decision = _mutate(_vs(_FORWARD, annotations={SKIP_DEFAULTS: value}))
    assert decision.patch == [] and decision.mutated is None and decision.defaults_applied == []


@pytest.mark.parametrize("value", ["false", "yes", ""])
def test_skip_annotation_other_values_do_not(value: str) -> None:
    decision = _mutate(_vs(_FORWARD, annotations={SKIP_DEFAULTS: value}))
    assert decision.defaults_applied == [TIMEOUT]


def test_skip_annotation_is_ignored_when_the_policy_disallows_it() -> None:
    policy = _policy(allowSkipDefaultsAnnotation=False)
    decision = _mutate(_vs(_FORWARD, annotations={SKIP_DEFAULTS: "true"}), policy)
    assert decision.defaults_applied == [TIMEOUT]


def test_disabled_defaulter_injects_nothing() -> None:
    policy = _policy(defaults={TIMEOUT: {"enabled": False}})
    assert _mutate(_vs(_FORWARD), policy).patch == []


def test_no_patch_without_mutate_on_delete_or_in_exempt_namespaces() -> None:
    doc = _vs(_FORWARD)
    no_mutate = evaluate(POLICY, EnforcementPoint.ADMISSION, MemoryInventory(), "CREATE", doc, mutate=False)
    assert no_mutate.patch == []
    deleted = evaluate(
        POLICY, EnforcementPoint.ADMISSION, MemoryInventory(), "DELETE", None, doc, mutate=True
    )
    assert deleted.patch == []
    exempt = copy.deepcopy(doc)
    exempt["metadata"]["namespace"] = "kube-system"
    assert _mutate(exempt).status == "exempt"
    assert _mutate(exempt).patch == []


def test_update_is_defaulted_like_create() -> None:
    decision = _mutate(_vs(_FORWARD), operation="UPDATE")
    assert decision.patch and decision.verdict == "mutated"


# --- properties over generated specs ------------------------------------------------------

_DURATIONS = st.sampled_from(["1ms", "500ms", "2s", "10s", "10001ms", "15s", "1m", "2m", "bogus"])
_DESTINATION = st.fixed_dictionaries(
    {
        "destination": st.fixed_dictionaries(
            {"host": st.sampled_from(["reviews", "ratings.shop.svc.cluster.local"])}
        )
    },
    optional={"weight": st.integers(0, 100)},
)
_HTTP_ROUTE = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["primary", "canary"]),
        "route": st.lists(_DESTINATION, max_size=2),
        "redirect": st.just({"uri": "/v2"}),
        "directResponse": st.just({"status": 503}),
        "delegate": st.just({"name": "reviews-delegate", "namespace": "shop"}),
        "fault": st.sampled_from([{}, {"abort": {"httpStatus": 500, "percentage": {"value": 1}}}]),
        "timeout": _DURATIONS,
        "retries": st.fixed_dictionaries(
            {},
            optional={"attempts": st.integers(0, 5), "perTryTimeout": _DURATIONS, "retryOn": st.just("5xx")},
        ),
    },
)
_VIRTUAL_SERVICE_SPEC = st.fixed_dictionaries(
    {"http": st.lists(_HTTP_ROUTE, max_size=6)},
    optional={
        "hosts": st.just(["reviews"]),  # absent: a delegate VirtualService
        "tcp": st.just([{"route": [{"destination": {"host": "db"}}]}]),
    },
)
_OUTLIER = st.fixed_dictionaries(
    {},
    optional={
        "consecutive5xxErrors": st.integers(0, 10),
        "interval": _DURATIONS,
        "maxEjectionPercent": st.integers(0, 100),
    },
)
_PORT_POLICY = st.fixed_dictionaries(
    {"port": st.fixed_dictionaries({"number": st.integers(1, 65535)})},
    optional={
        "outlierDetection": _OUTLIER,
        "tls": st.just({"mode": "SIMPLE"}),
        "connectionPool": st.just({"tcp": {"maxConnections": 10}}),
    },
)
_TRAFFIC_POLICY = st.fixed_dictionaries(
    {},
    optional={
        "loadBalancer": st.just({"simple": "RANDOM"}),
        "outlierDetection": _OUTLIER,
        "portLevelSettings": st.lists(_PORT_POLICY, max_size=3),
    },
)
_DESTINATION_RULE_SPEC = st.fixed_dictionaries(
    {"host": st.just("reviews")},
    optional={
        "trafficPolicy": _TRAFFIC_POLICY,
        "subsets": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["v1", "v2"])}, optional={"trafficPolicy": _TRAFFIC_POLICY}
            ),
            max_size=2,
        ),
    },
)
_ANNOTATIONS = st.one_of(
    st.none(), st.just({"team": "shop"}), st.just({DEFAULTS_APPLIED: "an-older-defaulter"})
)
_POLICIES = st.sampled_from(
    [POLICY, _policy(defaults={TIMEOUT: {"params": {"timeout": "15s", "maxTimeout": "1m"}}})]
)


def _wrap(kind: str, spec: dict[str, Any], annotations: dict[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "reviews", "namespace": "shop"}
    if annotations is not None:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "networking.istio.io/v1beta1", "kind": kind, "metadata": meta, "spec": spec}


def _route_is_exempt(route: dict[str, Any], default: str) -> bool:
    """The spec's list of routes that keep no timeout (DESIGN.md 4.5)."""
    if not route.get("route") or any(k in route for k in ("redirect", "directResponse", "delegate", "fault")):
        return True
    per_try = route.get("retries", {}).get("perTryTimeout")
    if per_try is None:
        return False
    try:
        return durations.parse(per_try) > durations.parse(default)
    except durations.DurationError:
        return True


@settings(max_examples=200, deadline=None)
@given(spec=_VIRTUAL_SERVICE_SPEC, annotations=_ANNOTATIONS, policy=_POLICIES)
def test_virtual_service_defaults_are_minimal_complete_and_idempotent(
    spec: dict[str, Any], annotations: dict[str, str] | None, policy: Policy
) -> None:
    doc = _wrap("VirtualService", spec, annotations)
    default = policy.defaulter_params[TIMEOUT].timeout  # type: ignore[attr-defined]
    first = _mutate(doc, policy)
    patched = _check_patch(doc, first) if first.patch else doc
    for before, after in zip(spec["http"], patched["spec"]["http"], strict=True):
        if "timeout" in before:
            assert after["timeout"] == before["timeout"]
        elif _route_is_exempt(before, default):
            assert "timeout" not in after
        else:
            assert after["timeout"] == default
    second = _mutate(patched, policy)
    assert second.patch == []


@settings(max_examples=200, deadline=None)
@given(spec=_DESTINATION_RULE_SPEC, annotations=_ANNOTATIONS)
def test_destination_rule_defaults_are_minimal_complete_and_idempotent(
    spec: dict[str, Any], annotations: dict[str, str] | None
) -> None:
    doc = _wrap("DestinationRule", spec, annotations)
    first = _mutate(doc)
    patched = _check_patch(doc, first) if first.patch else doc
    policy = patched["spec"]["trafficPolicy"]
    assert "outlierDetection" in policy
    assert all("outlierDetection" in entry for entry in policy.get("portLevelSettings", []))
    assert patched["spec"].get("subsets") == spec.get("subsets")
    assert _mutate(patched).patch == []


@settings(max_examples=50, deadline=None)
@given(spec=_VIRTUAL_SERVICE_SPEC)
def test_skip_annotation_holds_for_any_spec(spec: dict[str, Any]) -> None:
    decision = _mutate(_wrap("VirtualService", spec, {SKIP_DEFAULTS: "true"}))
    assert decision.patch == [] and decision.mutated is None
